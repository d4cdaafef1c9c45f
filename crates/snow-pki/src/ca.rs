//! The certificate authority: init, issue, revoke, CRL.

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, OtherNameValue, RevokedCertParams, SanType, SerialNumber,
};
use snow_core::files::{self, Mode};
use snow_core::{AgentJid, BareJid, Domain, Email, Hpnr, Phone, SiteHome};
use snow_crypto::cert::{CertInfo, OID_XMPP_ADDR_ARCS};
use snow_crypto::{one_time_password, pem, pkcs12, pkcs8_file, rsa_key, CryptoError, MAX_KEY_FILE_BYTES};
use snow_store::{CaDb, CertKind, CertRecord, UserRecord};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use crate::outbox::{self, Delivery, Letter, Withdrawn};
use crate::{PkiError, PkiSettings, RevocationReason};

/// Metadata key under which the CA remembers its domain.
const META_DOMAIN: &str = "domain";

/// An opened CA: its certificate, its decrypted key and its database.
pub struct Ca {
    paths: SiteHome,
    settings: PkiSettings,
    domain: Domain,
    cert_der: Vec<u8>,
    key_pkcs8: Zeroizing<Vec<u8>>,
    db: CaDb,
}

/// A user certificate just issued, with the delivery written for it.
#[derive(Debug)]
pub struct IssuedUser {
    pub jid: BareJid,
    pub serial_hex: String,
    pub not_after: OffsetDateTime,
    /// The PKCS#12 file, also inside the delivery e-mail.
    pub p12: Vec<u8>,
    pub delivery: Delivery,
    /// After a re-key: the old certificate's deliveries taken out of the
    /// outbox unsent (none for a new user).
    pub withdrawn: Withdrawn,
}

/// What [`Ca::revoke_user`] did.
#[derive(Debug)]
pub struct Revoked {
    pub jid: BareJid,
    /// The new CRL (`ca/crl.pem`).
    pub crl: std::path::PathBuf,
    /// The user's key deliveries taken out of the outbox unsent.
    pub withdrawn: Withdrawn,
    /// The certificate was revoked before (a revocation cut short, say by
    /// a crash, before its deliveries were withdrawn): only the
    /// withdrawal happened now.
    pub already_revoked: bool,
}

/// A server certificate just issued and where it was written.
#[derive(Debug)]
pub struct IssuedServer {
    pub serial_hex: String,
    pub not_after: OffsetDateTime,
    pub cert_path: std::path::PathBuf,
    pub key_path: std::path::PathBuf,
    /// The serials of the same server's or agent's earlier certificates,
    /// revoked now as superseded (the new CRL lists them).
    pub superseded: Vec<String>,
}

/// What [`Ca::revoke_server`] and [`Ca::revoke_agent`] did.
#[derive(Debug)]
pub struct RevokedCerts {
    /// The serials revoked (every certificate of that server or agent that
    /// was not revoked yet).
    pub serials: Vec<String>,
    /// The new CRL (`ca/crl.pem`).
    pub crl: std::path::PathBuf,
}

impl Ca {
    /// Creates the site's CA: key, self-signed certificate, database.
    pub fn init(paths: &SiteHome, domain: &Domain, passphrase: &str, settings: &PkiSettings) -> Result<Ca, PkiError> {
        settings.validate()?;
        if passphrase.chars().count() < settings.min_passphrase_length {
            return Err(PkiError::WeakPassphrase(settings.min_passphrase_length));
        }
        if paths.ca_key().exists() || paths.ca_cert().exists() {
            return Err(PkiError::CaExists(paths.ca_dir()));
        }
        let now = OffsetDateTime::now_utc();
        let key_pkcs8 = rsa_key::generate(PkiSettings::bits("pki.ca_key_bits", settings.ca_key_bits)?)?;
        let kp = rcgen_key(&key_pkcs8)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = subject(format!("Snow CA {domain}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        params.serial_number = Some(random_serial()?);
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(settings.ca_validity_days.into());
        let cert = params.self_signed(&kp)?;
        let cert_der = cert.der().to_vec();

        std::fs::create_dir_all(paths.ca_dir()).map_err(PkiError::io("create", &paths.ca_dir()))?;
        let db = CaDb::open(&paths.ca_db())?;
        db.set_meta(META_DOMAIN, domain.as_str())?;
        db.insert_certificate(&record(&cert_der, CertKind::Ca, domain.as_str(), None, now)?)?;
        // The key is written before the certificate: `open` looks for the
        // certificate, so a crash in between leaves "no CA", not a CA
        // without a key.
        let key_pem = pkcs8_file::encrypt_pem(&key_pkcs8, passphrase)?;
        files::write_new(&paths.ca_key(), key_pem.as_bytes(), Mode::Private)
            .map_err(PkiError::io("write", &paths.ca_key()))?;
        files::write_new(&paths.ca_cert(), pem::encode("CERTIFICATE", &cert_der)?.as_bytes(), Mode::Public)
            .map_err(PkiError::io("write", &paths.ca_cert()))?;
        let mut ca =
            Ca { paths: paths.clone(), settings: settings.clone(), domain: domain.clone(), cert_der, key_pkcs8, db };
        ca.write_crl()?;
        tracing::info!(%domain, "CA created");
        Ok(ca)
    }

    /// Opens the CA, decrypting its key with the admin passphrase.
    pub fn open(paths: &SiteHome, passphrase: &str, settings: &PkiSettings) -> Result<Ca, PkiError> {
        settings.validate()?;
        let (db, domain, cert_der) = open_public(paths)?;
        let key_text =
            files::read_limited(&paths.ca_key(), MAX_KEY_FILE_BYTES).map_err(PkiError::io("read", &paths.ca_key()))?;
        let key_pkcs8 = match pkcs8_file::decrypt(&key_text, passphrase, "the CA key") {
            Err(CryptoError::WrongPassword) => return Err(PkiError::WrongCaPassphrase),
            other => other?,
        };
        Ok(Ca { paths: paths.clone(), settings: settings.clone(), domain, cert_der, key_pkcs8, db })
    }

    pub fn domain(&self) -> &Domain {
        &self.domain
    }

    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    fn issuer(&self) -> Result<Issuer<'static, KeyPair>, PkiError> {
        Ok(Issuer::from_ca_cert_der(&self.cert_der.as_slice().into(), rcgen_key(&self.key_pkcs8)?)?)
    }

    /// Issues a TLS certificate for this site's server (c2s and s2s): SAN
    /// dNSName and xmppAddr = `domain`, EKU serverAuth + clientAuth (a
    /// server is the TLS client on outgoing s2s links). `components` are
    /// the domains of the server's external components (an agent such as
    /// `search.lab.example`): the server answers s2s links for them and
    /// opens links from them, so the certificate names them too. The
    /// server's earlier certificates (same domain) are revoked as
    /// superseded and the CRL is rewritten: restart a running server with
    /// the new one.
    ///
    /// Roles are told apart by extended key usage: only a server's
    /// certificate has serverAuth (snow-server's `trust.rs` refuses a
    /// server link without it, and a client login with it).
    pub fn issue_server(&mut self, domain: &Domain, components: &[Domain]) -> Result<IssuedServer, PkiError> {
        let now = OffsetDateTime::now_utc();
        let key = rsa_key::generate(PkiSettings::bits("pki.server_key_bits", self.settings.server_key_bits)?)?;
        let kp = rcgen_key(&key)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = subject(domain.as_str());
        params.subject_alt_names = Vec::new();
        for d in std::iter::once(domain).chain(components) {
            params.subject_alt_names.push(SanType::DnsName(d.as_str().try_into()?));
            params
                .subject_alt_names
                .push(SanType::OtherName((OID_XMPP_ADDR_ARCS.to_vec(), OtherNameValue::Utf8String(d.to_string()))));
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let cert_der = self.sign(params, &kp, now, self.settings.server_validity_days)?;
        let rec = record(&cert_der, CertKind::Server, domain.as_str(), Some(domain.to_string()), now)?;

        let cert_path = self.paths.server_cert(domain.as_str());
        let key_path = self.paths.server_key(domain.as_str());
        self.write_unattended(&cert_path, &key_path, &cert_der, &key)?;
        let superseded = self.db.add_server_certificate(&rec, RevocationReason::Superseded.code())?;
        if !superseded.is_empty() {
            self.write_crl()?;
            tracing::info!(%domain, serials = ?superseded, "earlier server certificates revoked as superseded");
        }
        tracing::info!(%domain, serial = %rec.serial_hex, "server certificate issued");
        Ok(IssuedServer { serial_hex: rec.serial_hex, not_after: ts(rec.not_after), cert_path, key_path, superseded })
    }

    /// Revokes the certificates of the server `domain` (every one not
    /// revoked yet) and writes the new CRL. A running server at this site
    /// reads it within a second and closes the server's links; the PO's
    /// server pushes it to its replicas, which do the same.
    pub fn revoke_server(&mut self, domain: &Domain, reason: RevocationReason) -> Result<RevokedCerts, PkiError> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let serials = self.db.revoke_server(domain.as_str(), reason.code(), now)?;
        if serials.is_empty() {
            return Err(PkiError::NothingToRevoke(format!("the server {domain}")));
        }
        let crl = self.write_crl()?;
        tracing::info!(%domain, %reason, serials = ?serials, "server certificate revoked");
        Ok(RevokedCerts { serials, crl })
    }

    /// Revokes the certificates of the agent `jid` (every one not revoked
    /// yet), puts the revocation in the key feed (its key directory entry
    /// becomes revoked everywhere) and writes the new CRL (an agent that
    /// logs in with it is refused, and its live session closed).
    pub fn revoke_agent(&mut self, jid: &AgentJid, reason: RevocationReason) -> Result<RevokedCerts, PkiError> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let serials = self.db.revoke_agent(&jid.to_string(), reason.code(), now)?;
        if serials.is_empty() {
            return Err(PkiError::NothingToRevoke(format!("the agent {jid}")));
        }
        let crl = self.write_crl()?;
        tracing::info!(%jid, %reason, serials = ?serials, "agent certificate revoked");
        Ok(RevokedCerts { serials, crl })
    }

    /// Issues the certificate of an agent (the lab's search agent, …): an
    /// XMPP entity that logs in like a user or attaches as a component
    /// (SAN xmppAddr = `jid`, EKU clientAuth) and receives end-to-end encrypted requests, so its
    /// certificate enters the key directory. It starts unattended, so its
    /// key is written like a server's: plain PKCS#8, mode 0600. A previous
    /// certificate of the same agent is revoked as superseded.
    pub fn issue_agent(&mut self, jid: &AgentJid) -> Result<IssuedServer, PkiError> {
        if matches!(jid, AgentJid::Client(j) if j.local().bytes().all(|b| b.is_ascii_digit())) {
            return Err(PkiError::Setting(format!(
                "{jid}: an agent's name must not be all digits (those are users' HPNRs)"
            )));
        }
        let now = OffsetDateTime::now_utc();
        let key = rsa_key::generate(PkiSettings::bits("pki.user_key_bits", self.settings.user_key_bits)?)?;
        let kp = rcgen_key(&key)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = subject(jid.to_string());
        params.subject_alt_names =
            vec![SanType::OtherName((OID_XMPP_ADDR_ARCS.to_vec(), OtherNameValue::Utf8String(jid.to_string())))];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert_der = self.sign(params, &kp, now, self.settings.server_validity_days)?;
        let rec = record(&cert_der, CertKind::Agent, &jid.to_string(), Some(jid.to_string()), now)?;
        let cert_path = self.paths.agent_cert(&jid.to_string());
        let key_path = self.paths.agent_key(&jid.to_string());
        let superseded = self.db.add_agent_certificate(&rec, RevocationReason::Superseded.code())?;
        self.write_unattended(&cert_path, &key_path, &cert_der, &key)?;
        self.write_crl()?;
        tracing::info!(%jid, serial = %rec.serial_hex, "agent certificate issued");
        Ok(IssuedServer { serial_hex: rec.serial_hex, not_after: ts(rec.not_after), cert_path, key_path, superseded })
    }

    /// Creates a user: key, certificate (subject CN = HPNR, SAN xmppAddr
    /// `hpnr@domain`, EKU clientAuth), PKCS#12 under a fresh one-time
    /// password, and the e-mail + SMS delivery in the outbox. The password
    /// exists only in the SMS file.
    pub fn add_user(&mut self, hpnr: &Hpnr, phone: &Phone, email: &Email) -> Result<IssuedUser, PkiError> {
        let domain = self.domain.clone();
        self.add_user_at(hpnr, phone, email, &domain)
    }

    /// Like [`add_user`](Self::add_user), for a user whose home server is
    /// another site of this CA (a lab server): the JID is `hpnr@domain`.
    pub fn add_user_at(
        &mut self,
        hpnr: &Hpnr,
        phone: &Phone,
        email: &Email,
        domain: &Domain,
    ) -> Result<IssuedUser, PkiError> {
        if self.db.user_exists(hpnr.as_str())? {
            return Err(snow_store::StoreError::DuplicateUser(hpnr.to_string()).into());
        }
        let (jid, rec, p12, delivery) = self.issue_user(hpnr, phone, email, domain)?;
        if let Err(e) = self.db.add_user(hpnr.as_str(), phone.as_str(), email.as_str(), &rec) {
            outbox::withdraw(&delivery);
            return Err(e.into());
        }
        tracing::info!(%jid, serial = %rec.serial_hex, "user certificate issued, delivery in outbox");
        Ok(IssuedUser {
            jid,
            serial_hex: rec.serial_hex,
            not_after: ts(rec.not_after),
            p12,
            delivery,
            withdrawn: Withdrawn::default(),
        })
    }

    /// Gives an existing user a new key and certificate (lost or
    /// compromised key, or the old one expiring), delivered like a new
    /// user's. The old certificate is revoked as superseded (unless already
    /// revoked), the CRL is rewritten, and the key feed carries both changes
    /// to the federated servers. Then, and only then, the deliveries of the
    /// user's older certificates still waiting in the outbox are withdrawn
    /// (a crash in between leaves them for the next re-key or revocation,
    /// never a valid certificate without its delivery).
    pub fn rekey_user(&mut self, hpnr: &Hpnr) -> Result<IssuedUser, PkiError> {
        let user = self.db.user(hpnr.as_str())?.ok_or_else(|| snow_store::StoreError::UnknownUser(hpnr.to_string()))?;
        let jid: BareJid = user.jid.parse()?;
        let (phone, email): (Phone, Email) = (user.phone.parse()?, user.email.parse()?);
        let (jid, rec, p12, delivery) = self.issue_user(hpnr, &phone, &email, jid.domain())?;
        let now = OffsetDateTime::now_utc().unix_timestamp();
        if let Err(e) = self.db.rekey_user(hpnr.as_str(), &rec, RevocationReason::Superseded.code(), now) {
            outbox::withdraw(&delivery);
            return Err(e.into());
        }
        self.write_crl()?;
        tracing::info!(%jid, serial = %rec.serial_hex, "user re-keyed, old certificate superseded");
        let withdrawn = outbox::withdraw_user(&self.paths, &jid, hpnr, Some(&rec.serial_hex))?;
        Ok(IssuedUser { jid, serial_hex: rec.serial_hex, not_after: ts(rec.not_after), p12, delivery, withdrawn })
    }

    /// Key, certificate, PKCS#12 and outbox delivery for a user; the caller
    /// records it in the database (and withdraws the delivery if that fails).
    fn issue_user(
        &mut self,
        hpnr: &Hpnr,
        phone: &Phone,
        email: &Email,
        domain: &Domain,
    ) -> Result<(BareJid, CertRecord, Vec<u8>, Delivery), PkiError> {
        let now = OffsetDateTime::now_utc();
        let jid = BareJid::for_user(hpnr, domain);
        let key = rsa_key::generate(PkiSettings::bits("pki.user_key_bits", self.settings.user_key_bits)?)?;
        let kp = rcgen_key(&key)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = subject(hpnr.as_str());
        params.subject_alt_names =
            vec![SanType::OtherName((OID_XMPP_ADDR_ARCS.to_vec(), OtherNameValue::Utf8String(jid.to_string())))];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert_der = self.sign(params, &kp, now, self.settings.user_validity_days)?;
        let rec = record(&cert_der, CertKind::User, hpnr.as_str(), Some(jid.to_string()), now)?;
        let password = Zeroizing::new(one_time_password::generate(self.settings.one_time_password_length)?);
        let p12 = pkcs12::build(&key, &[cert_der.clone(), self.cert_der.clone()], &jid.to_string(), &password)?;
        let from = match &self.settings.email_from {
            Some(f) => f.clone(),
            None => format!("snow-admin@{}", self.domain),
        };
        let letter = Letter {
            from: &from,
            to: email,
            phone,
            hpnr,
            jid: &jid,
            serial: &rec.serial_hex,
            p12: &p12,
            password: &password,
            now,
        };
        let delivery = outbox::deliver(&self.paths, &letter)?;
        Ok((jid, rec, p12, delivery))
    }

    /// Revokes a user's certificate, writes the new CRL, and then withdraws
    /// the user's key deliveries still waiting in the outbox, so a revoked
    /// key is never sent. Revocation comes first: a crash in between leaves
    /// a revoked certificate whose files are still queued, and revoking
    /// again finishes the withdrawal (`already_revoked`); a user already
    /// revoked with nothing left to withdraw is an error, as before.
    pub fn revoke_user(&mut self, hpnr: &Hpnr, reason: RevocationReason) -> Result<Revoked, PkiError> {
        let user = self.db.user(hpnr.as_str())?.ok_or_else(|| snow_store::StoreError::UnknownUser(hpnr.to_string()))?;
        let jid: BareJid = user.jid.parse()?;
        let now = OffsetDateTime::now_utc();
        match self.db.revoke_user(hpnr.as_str(), reason.code(), now.unix_timestamp()) {
            Ok(()) => {}
            Err(snow_store::StoreError::AlreadyRevoked(h)) => {
                let withdrawn = outbox::withdraw_user(&self.paths, &jid, hpnr, None)?;
                if withdrawn.is_empty() {
                    return Err(snow_store::StoreError::AlreadyRevoked(h).into());
                }
                return Ok(Revoked { jid, crl: self.paths.crl(), withdrawn, already_revoked: true });
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(user = %hpnr, %reason, "user certificate revoked");
        let crl = self.write_crl()?;
        let withdrawn = outbox::withdraw_user(&self.paths, &jid, hpnr, None)?;
        Ok(Revoked { jid, crl, withdrawn, already_revoked: false })
    }

    /// Signs a fresh CRL listing every revoked certificate with its reason,
    /// and writes it as PEM to `ca/crl.pem`. Returns the path.
    pub fn write_crl(&mut self) -> Result<std::path::PathBuf, PkiError> {
        let now = OffsetDateTime::now_utc();
        let next = now + Duration::days(self.settings.crl_validity_days.into());
        let crl = self.sign_crl(now - Duration::minutes(5), next)?;
        let path = self.paths.crl();
        files::write(&path, crl.pem()?.as_bytes(), Mode::Public).map_err(PkiError::io("write", &path))?;
        Ok(path)
    }

    /// A CRL (DER) of every revocation so far, with the next CRL number and
    /// the given thisUpdate and nextUpdate, written nowhere: to check how
    /// servers treat a CRL that is out of date.
    pub fn signed_crl(
        &mut self,
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
    ) -> Result<Vec<u8>, PkiError> {
        Ok(self.sign_crl(this_update, next_update)?.der().to_vec())
    }

    fn sign_crl(
        &mut self,
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
    ) -> Result<rcgen::CertificateRevocationList, PkiError> {
        let revoked = self
            .db
            .revocations()?
            .into_iter()
            .map(|r| {
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&unhex(&r.serial_hex)?),
                    revocation_time: ts(r.revoked_at),
                    reason_code: RevocationReason::from_code(r.reason).map(RevocationReason::to_rcgen),
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>, PkiError>>()?;
        let number = self.db.next_crl_number()?;
        let params = CertificateRevocationListParams {
            this_update,
            next_update,
            crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs: revoked,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.issuer()?)?;
        tracing::info!(crl_number = number, "CRL signed");
        Ok(crl)
    }

    /// Writes the files of something that starts unattended (a server, an
    /// agent): the certificate followed by the CA's, and the plain PKCS#8
    /// key, mode 0600.
    fn write_unattended(
        &self,
        cert_path: &std::path::Path,
        key_path: &std::path::Path,
        cert_der: &[u8],
        key: &[u8],
    ) -> Result<(), PkiError> {
        let chain_pem = pem::encode("CERTIFICATE", cert_der)? + &pem::encode("CERTIFICATE", &self.cert_der)?;
        let key_pem = Zeroizing::new(pem::encode("PRIVATE KEY", key)?);
        files::write(key_path, key_pem.as_bytes(), Mode::Private).map_err(PkiError::io("write", key_path))?;
        files::write(cert_path, chain_pem.as_bytes(), Mode::Public).map_err(PkiError::io("write", cert_path))?;
        Ok(())
    }

    fn sign(
        &self,
        mut params: CertificateParams,
        kp: &KeyPair,
        now: OffsetDateTime,
        days: u32,
    ) -> Result<Vec<u8>, PkiError> {
        params.serial_number = Some(random_serial()?);
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(days.into());
        params.use_authority_key_identifier_extension = true;
        Ok(params.signed_by(kp, &self.issuer()?)?.der().to_vec())
    }
}

/// Lists users; needs no passphrase (the database holds no secrets).
pub fn list_users(paths: &SiteHome) -> Result<Vec<UserRecord>, PkiError> {
    Ok(open_public(paths)?.0.users()?)
}

/// The CA certificate and domain, without the key.
pub fn ca_certificate(paths: &SiteHome) -> Result<(Domain, Vec<u8>), PkiError> {
    let (_, domain, der) = open_public(paths)?;
    Ok((domain, der))
}

fn open_public(paths: &SiteHome) -> Result<(CaDb, Domain, Vec<u8>), PkiError> {
    if !paths.ca_cert().exists() || !paths.ca_db().exists() {
        return Err(PkiError::CaNotInitialised(paths.home().to_owned()));
    }
    let text =
        files::read_limited(&paths.ca_cert(), MAX_KEY_FILE_BYTES).map_err(PkiError::io("read", &paths.ca_cert()))?;
    let cert_der = pem::certificates(&text, "the CA certificate")?.remove(0);
    let db = CaDb::open(&paths.ca_db())?;
    let domain = db.meta(META_DOMAIN)?.ok_or_else(|| PkiError::CaNotInitialised(paths.home().to_owned()))?.parse()?;
    Ok((db, domain, cert_der))
}

/// `CN=<cn>, O=Snow`: the subject of every certificate the CA issues.
fn subject(cn: impl Into<String>) -> rcgen::DistinguishedName {
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(DnType::CommonName, cn.into());
    dn.push(DnType::OrganizationName, "Snow");
    dn
}

fn rcgen_key(pkcs8: &[u8]) -> Result<KeyPair, PkiError> {
    Ok(KeyPair::try_from(pkcs8)?)
}

/// A random positive 128-bit serial (RFC 5280 wants ≤ 20 octets, unique;
/// randomness also defeats chosen-prefix attacks).
fn random_serial() -> Result<SerialNumber, PkiError> {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    let mut b = [0u8; 16];
    SystemRandom::new().fill(&mut b).map_err(|_| CryptoError::Internal("no randomness".into()))?;
    b[0] = (b[0] & 0x7f) | 0x01;
    Ok(SerialNumber::from_slice(&b))
}

fn record(
    der: &[u8],
    kind: CertKind,
    name: &str,
    jid: Option<String>,
    now: OffsetDateTime,
) -> Result<CertRecord, PkiError> {
    let info = CertInfo::from_der(der)?;
    Ok(CertRecord {
        serial_hex: info.serial_hex,
        kind,
        name: name.to_owned(),
        jid,
        not_before: info.not_before.unix_timestamp(),
        not_after: info.not_after.unix_timestamp(),
        der: der.to_vec(),
        issued_at: now.unix_timestamp(),
    })
}

fn ts(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn unhex(s: &str) -> Result<Vec<u8>, PkiError> {
    if !s.len().is_multiple_of(2) {
        return Err(PkiError::Setting(format!("corrupt serial number {s:?} in the CA database")));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&s[i..i + 2], 16)
                .map_err(|_| PkiError::Setting(format!("corrupt serial number {s:?} in the CA database")))
        })
        .collect()
}
