//! Who may log in and who may federate (docs/architecture.md §3, §4):
//! a certificate issued by a trusted CA, made for the role of the link,
//! naming the identity claimed, and not revoked in a *current* CRL of its
//! CA.
//!
//! Roles, as snow-pki issues them (`snow-pki/src/ca.rs`):
//!
//! | role | extended key usage | key usage | names |
//! |---|---|---|---|
//! | user, agent (c2s login, key directory) | clientAuth, **not** serverAuth | digitalSignature, keyEncipherment | one xmppAddr, the JID |
//! | server (s2s, both directions) | serverAuth **and** clientAuth | digitalSignature, keyEncipherment | dNSName and xmppAddr per domain |
//!
//! So a user's or an agent's certificate never authenticates a server
//! link (no serverAuth), and a server's never logs in as a client.
//!
//! Revocation: the site CA's CRL (`ca/crl.pem`) and, for the other CAs of
//! `[s2s] trusted_cas`, the CRLs in `[s2s] trusted_crls`. A CRL is taken
//! only if it is signed by its CA, names it as issuer and has a CRL number
//! greater than the one in force ([`TrustStore::install_crl`],
//! [`TrustStore::reload_crl`]). No CRL for a certificate's CA, or one past
//! its nextUpdate, is *status unknown*, and unknown is refused
//! ([`AuthError::StatusUnknown`]), logged, and said to the administrator.
//! Each CRL put in force bumps a generation ([`TrustStore::subscribe`]):
//! every live session and link then checks its peer's certificate again
//! and closes with `<reset/>` if it is revoked (RFC 6120 §4.9.3.16,
//! §13.7.2.3).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls_pki_types::{CertificateDer, UnixTime};
use snow_core::{BareJid, Domain};
use time::OffsetDateTime;
use webpki::{anchor_from_trusted_cert, EndEntityCert, KeyUsage};
use x509_parser::num_bigint::BigUint;
use x509_parser::prelude::{parse_x509_certificate, parse_x509_crl, X509Certificate};

use crate::ServerError;

/// How far a CRL's thisUpdate may lie ahead of our clock.
const CLOCK_SKEW: time::Duration = time::Duration::minutes(5);
/// The administrator is warned this long before the CRL expires.
const EXPIRY_WARNING: time::Duration = time::Duration::days(2);
/// How often the CRL files are looked at for changes.
const FILE_POLL: Duration = Duration::from_millis(500);
/// How often the administrator is reminded while status is unknown.
const UNKNOWN_REMINDER: Duration = Duration::from_secs(3600);

/// What an administrator does to put a current CRL in force.
const CRL_ADVICE: &str = "at the PO, `snow ca crl` signs a new one (and the PO's server pushes it to its replicas); \
     at a lab server, it arrives with the PO's next push, or copy the PO's ca/crl.pem here and send SIGHUP";

/// Why a certificate was refused (logged; the peer only learns
/// `not-authorized`, a client with [`AuthError::advice`]).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no client certificate was presented")]
    NoCertificate,
    #[error("the certificate has been revoked")]
    Revoked,
    #[error("the certificate has expired")]
    Expired,
    #[error("the certificate is not valid yet")]
    NotYetValid,
    #[error("the certificate was not issued by a trusted CA")]
    UnknownIssuer,
    #[error("certificate rejected: {0}")]
    Invalid(String),
    #[error("the certificate names no JID (id-on-xmppAddr)")]
    NoJid,
    #[error("the certificate names more than one JID")]
    SeveralJids,
    #[error("the certificate is not for {0}")]
    ForeignDomain(String),
    #[error("the authorization identity {authzid} differs from the certificate's JID {jid}")]
    AuthzidMismatch { authzid: String, jid: String },
    /// Not a certificate for this kind of link (its key usages).
    #[error("{0}")]
    WrongRole(&'static str),
    /// No current CRL of the certificate's CA: it may be revoked.
    #[error("revocation status unknown: {0}")]
    StatusUnknown(CrlProblem),
}

impl AuthError {
    /// What the person logging in is told (in the SASL failure's text,
    /// which the `snow` client shows as it is): one sentence, what
    /// happened and what to do, never more than their own certificate's
    /// state.
    pub fn advice(&self) -> &'static str {
        match self {
            AuthError::Revoked => "your certificate has been revoked — contact the Snow administrator",
            AuthError::Expired => "your certificate has expired — ask the Snow administrator for a new one",
            AuthError::NotYetValid => {
                "your certificate is not valid yet — check the computer's clock, or contact the Snow administrator"
            }
            AuthError::NoCertificate => "log in with your Snow certificate (snow key import)",
            AuthError::UnknownIssuer => {
                "your certificate is not for this server (another CA issued it) — \
                 check the server address (--server) or your key store (--keystore)"
            }
            AuthError::ForeignDomain(_) => {
                "your certificate is not for this server (it names another domain) — \
                 check the server address (--server) or your key store (--keystore)"
            }
            AuthError::StatusUnknown(_) => {
                "the server cannot check certificates now (its list of revoked certificates is missing or out \
                 of date) — contact the Snow administrator"
            }
            _ => "your certificate was refused — contact the Snow administrator",
        }
    }

    fn from_webpki(e: webpki::Error) -> AuthError {
        match e {
            webpki::Error::CertRevoked => AuthError::Revoked,
            webpki::Error::CertExpired { .. } => AuthError::Expired,
            webpki::Error::CertNotValidYet { .. } => AuthError::NotYetValid,
            // A chain to another CA of the same name fails on the signature.
            webpki::Error::UnknownIssuer | webpki::Error::InvalidSignatureForPublicKey => AuthError::UnknownIssuer,
            other => AuthError::Invalid(words(&other)),
        }
    }
}

/// A webpki error in words (its `Display` is its debug name).
fn words(e: &webpki::Error) -> String {
    match e {
        webpki::Error::BadDer | webpki::Error::BadDerTime => "the certificate is not well-formed".into(),
        webpki::Error::RequiredEkuNotFoundContext(_) => {
            "the certificate is not for this use (extended key usage)".into()
        }
        webpki::Error::CaUsedAsEndEntity => "a CA certificate was presented as a user's".into(),
        webpki::Error::UnsupportedSignatureAlgorithmContext(_)
        | webpki::Error::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => {
            "the certificate uses an unsupported signature algorithm".into()
        }
        other => {
            tracing::debug!(error = ?other, "certificate refused");
            "the certificate cannot be verified".into()
        }
    }
}

/// Why a CRL does not establish revocation status, or was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrlProblem {
    #[error("there is no CRL at {}", .0.display())]
    Missing(PathBuf),
    #[error("the CRL cannot be read: {0}")]
    Unreadable(String),
    #[error("the CRL is not issued and signed by {0}")]
    NotFromCa(&'static str),
    #[error("the CRL has no CRL number")]
    NoNumber,
    #[error("the CRL has no next update")]
    NoNextUpdate,
    #[error("the CRL is not valid before {}", show(*.0))]
    NotYetValid(OffsetDateTime),
    #[error("the CRL expired on {} (its next update)", show(*.0))]
    Expired(OffsetDateTime),
    #[error("no CRL of the CA that issued it is installed (list it in [s2s] trusted_crls)")]
    NoneForIssuer,
}

/// Why a CRL was not put in force ([`TrustStore::install_crl`],
/// [`TrustStore::reload_crl`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrlRefused {
    #[error(transparent)]
    Invalid(CrlProblem),
    #[error("its CRL number {offered} is lower than the one in force, {installed}")]
    Older { offered: String, installed: String },
    #[error("it has the CRL number {0} of the one in force but different contents")]
    SameNumber(String),
    #[error("it cannot be written: {0}")]
    Write(String),
}

/// What became of a CRL offered to [`TrustStore::install_crl`] or
/// [`TrustStore::reload_crl`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrlChange {
    /// Now in force, with this CRL number.
    Installed(String),
    /// The one in force already.
    Unchanged,
}

/// The revocation status this server works with, for the administrator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevocationStatus {
    /// The site CA's CRL in force is current.
    Current { crl_number: String, next_update: OffsetDateTime },
    /// Every login and link is refused: why.
    Unknown(CrlProblem),
}

/// Counters since start, for the administrator (`ServerHandle::trust_stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrustStats {
    /// CRLs put in force after the one at start (reloads and pushes).
    pub crls_installed: u64,
    /// CRLs refused: not signed by the CA, an older CRL number, expired…
    pub crls_refused: u64,
    /// Key directory pushes refused (not from the master, a certificate
    /// not from the CA or not for its entry, a refused CRL).
    pub pushes_refused: u64,
    /// Logins and server links refused because revocation status was unknown.
    pub refused_status_unknown: u64,
    /// Live client sessions closed because their certificate was revoked.
    pub closed_c2s: u64,
    /// Live server links (either direction) closed because the peer's
    /// certificate was revoked.
    pub closed_s2s: u64,
    /// Live component links closed because the agent certificate the key
    /// directory lists for the component's domain was revoked.
    pub closed_components: u64,
}

#[derive(Default)]
struct Counters {
    crls_installed: AtomicU64,
    crls_refused: AtomicU64,
    pushes_refused: AtomicU64,
    refused_status_unknown: AtomicU64,
    closed_c2s: AtomicU64,
    closed_s2s: AtomicU64,
    closed_components: AtomicU64,
}

/// Which counter [`TrustStore::count`] adds to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    PushRefused,
    ClosedC2s,
    ClosedS2s,
    ClosedComponent,
}

/// The certificate a session or link was authenticated with, to match it
/// against CRLs that arrive later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRef {
    /// The issuer's distinguished name, DER.
    pub issuer: Vec<u8>,
    /// The serial number, big-endian, without leading zero bytes.
    pub serial: Vec<u8>,
}

impl CertRef {
    fn of(cert: &X509Certificate<'_>) -> CertRef {
        CertRef { issuer: cert.issuer().as_raw().to_vec(), serial: unpadded(cert.raw_serial()).to_vec() }
    }

    /// The serial in lower-case hex, for the log.
    pub fn serial_hex(&self) -> String {
        hex(&self.serial)
    }
}

/// Which end of a server link the peer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerSide {
    /// It connected to us: it is the TLS client (clientAuth).
    Initiating,
    /// We connected to it: it is the TLS server (serverAuth).
    Receiving,
}

/// A CRL checked against its CA.
#[derive(Debug, Clone)]
struct Crl {
    der: Vec<u8>,
    issuer: Vec<u8>,
    number: BigUint,
    this_update: OffsetDateTime,
    next_update: OffsetDateTime,
    revoked: HashSet<Vec<u8>>,
}

impl Crl {
    /// Checks `der` against `cas` (by issuer name, then the signature):
    /// issued and signed by one of them, with a CRL number and a next
    /// update. The time is checked at use ([`Crl::current_at`]).
    fn verify(der: &[u8], cas: &[CertificateDer<'static>], whose: &'static str) -> Result<Crl, CrlProblem> {
        let crl = match parse_x509_crl(der) {
            Ok(([], crl)) => crl,
            _ => return Err(CrlProblem::Unreadable("not a DER X.509 CRL".into())),
        };
        let issuer = crl.issuer().as_raw();
        let signed = cas.iter().filter_map(|c| parse_cert(c)).any(|ca| {
            let may_sign_crls = match ca.key_usage() {
                Ok(Some(ku)) => ku.value.crl_sign(),
                Ok(None) => true,
                Err(_) => false,
            };
            ca.is_ca()
                && may_sign_crls
                && ca.subject().as_raw() == issuer
                && crl.verify_signature(ca.public_key()).is_ok()
        });
        if !signed {
            return Err(CrlProblem::NotFromCa(whose));
        }
        let number = crl.crl_number().cloned().ok_or(CrlProblem::NoNumber)?;
        let next_update = crl.next_update().ok_or(CrlProblem::NoNextUpdate)?.to_datetime();
        Ok(Crl {
            der: der.to_vec(),
            issuer: issuer.to_vec(),
            number,
            this_update: crl.last_update().to_datetime(),
            next_update,
            revoked: crl.iter_revoked_certificates().map(|r| unpadded(r.raw_serial()).to_vec()).collect(),
        })
    }

    fn current_at(&self, now: OffsetDateTime) -> Result<(), CrlProblem> {
        if self.this_update > now + CLOCK_SKEW {
            return Err(CrlProblem::NotYetValid(self.this_update));
        }
        if now >= self.next_update {
            return Err(CrlProblem::Expired(self.next_update));
        }
        Ok(())
    }
}

/// The CRLs in force.
struct Installed {
    /// The site CA's, or why there is none.
    site: Result<Crl, CrlProblem>,
    /// Those of the other trusted CAs (`[s2s] trusted_crls`).
    peers: Vec<Crl>,
}

/// A file's identity and size and time, to notice a new one.
type FileStamp = Option<(SystemTime, u64, u64)>;

fn stamp(path: &Path) -> FileStamp {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let ino = 0;
    Some((m.modified().ok()?, m.len(), ino))
}

/// The site CA, the CAs whose servers may federate, and the CRLs in force.
pub struct TrustStore {
    ca: CertificateDer<'static>,
    /// The site CA's subject (DER): the issuer of this site's certificates.
    ca_subject: Vec<u8>,
    peer_cas: Vec<CertificateDer<'static>>,
    crl_path: PathBuf,
    peer_crl_paths: Vec<PathBuf>,
    installed: RwLock<Installed>,
    /// The files as last read, to notice changes.
    stamps: Mutex<Vec<FileStamp>>,
    generation: tokio::sync::watch::Sender<u64>,
    counters: Counters,
}

impl TrustStore {
    /// `peer_ca_paths` lists the CAs trusted for server-to-server links
    /// (empty: this site's CA only); `peer_crl_paths` the CRLs of those
    /// other than the site CA. A missing site CRL, or one past its next
    /// update, is logged and makes every login and link fail until a
    /// current one is installed; a CRL file that is not a CRL of its CA is
    /// an error.
    pub fn load(
        ca_path: &Path,
        crl_path: &Path,
        peer_ca_paths: &[PathBuf],
        peer_crl_paths: &[PathBuf],
    ) -> Result<Self, ServerError> {
        let text = read(ca_path)?;
        let ca = CertificateDer::from(snow_crypto::pem::certificates(&text, &ca_path.display().to_string())?.remove(0));
        let mut peer_cas = Vec::new();
        for p in peer_ca_paths {
            for c in snow_crypto::pem::certificates(&read(p)?, &p.display().to_string())? {
                peer_cas.push(CertificateDer::from(c));
            }
        }
        if peer_cas.is_empty() {
            peer_cas.push(ca.clone());
        }
        let ca_subject = parse_cert(&ca).map(|c| c.subject().as_raw().to_vec()).unwrap_or_default();
        let store = TrustStore {
            ca,
            ca_subject,
            peer_cas,
            crl_path: crl_path.to_owned(),
            peer_crl_paths: peer_crl_paths.to_vec(),
            installed: RwLock::new(Installed {
                site: Err(CrlProblem::Missing(crl_path.to_owned())),
                peers: Vec::new(),
            }),
            stamps: Mutex::new(Vec::new()),
            generation: tokio::sync::watch::Sender::new(0),
            counters: Counters::default(),
        };
        let (site, peers) = store.read_files()?;
        *store.installed.write().unwrap_or_else(|p| p.into_inner()) =
            Installed { site: site.ok_or_else(|| CrlProblem::Missing(crl_path.to_owned())), peers };
        store.tell_status(true);
        Ok(store)
    }

    pub fn ca_der(&self) -> &CertificateDer<'static> {
        &self.ca
    }

    /// The CAs whose servers may federate with this one.
    pub fn peer_cas(&self) -> &[CertificateDer<'static>] {
        &self.peer_cas
    }

    /// The revocation status for this site's certificates now.
    pub fn status(&self) -> RevocationStatus {
        let installed = self.installed.read().unwrap_or_else(|p| p.into_inner());
        match &installed.site {
            Ok(crl) => match crl.current_at(OffsetDateTime::now_utc()) {
                Ok(()) => {
                    RevocationStatus::Current { crl_number: crl.number.to_string(), next_update: crl.next_update }
                }
                Err(p) => RevocationStatus::Unknown(p),
            },
            Err(p) => RevocationStatus::Unknown(p.clone()),
        }
    }

    /// The site CA's CRL in force (DER) and its number, if there is one.
    pub fn site_crl(&self) -> Option<(Vec<u8>, BigUint)> {
        let installed = self.installed.read().unwrap_or_else(|p| p.into_inner());
        installed.site.as_ref().ok().map(|c| (c.der.clone(), c.number.clone()))
    }

    pub fn stats(&self) -> TrustStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        TrustStats {
            crls_installed: get(&c.crls_installed),
            crls_refused: get(&c.crls_refused),
            pushes_refused: get(&c.pushes_refused),
            refused_status_unknown: get(&c.refused_status_unknown),
            closed_c2s: get(&c.closed_c2s),
            closed_s2s: get(&c.closed_s2s),
            closed_components: get(&c.closed_components),
        }
    }

    /// Adds one to a counter; returns the new count (for the log line).
    pub fn count(&self, which: Count) -> u64 {
        let c = &self.counters;
        let a = match which {
            Count::PushRefused => &c.pushes_refused,
            Count::ClosedC2s => &c.closed_c2s,
            Count::ClosedS2s => &c.closed_s2s,
            Count::ClosedComponent => &c.closed_components,
        };
        a.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Changes each time a CRL is put in force: a live session or link
    /// then asks [`TrustStore::is_revoked`] about its peer's certificate.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// True if a CRL in force (current or not) lists `cert`.
    pub fn is_revoked(&self, cert: &CertRef) -> bool {
        let installed = self.installed.read().unwrap_or_else(|p| p.into_inner());
        installed
            .site
            .iter()
            .chain(installed.peers.iter())
            .any(|c| c.issuer == cert.issuer && c.revoked.contains(&cert.serial))
    }

    /// True if the site CA's CRL in force lists the serial (hex, any case,
    /// leading zeros or not).
    pub fn site_revokes_serial_hex(&self, serial_hex: &str) -> bool {
        let Some(serial) = unhex(serial_hex) else { return false };
        let installed = self.installed.read().unwrap_or_else(|p| p.into_inner());
        installed.site.as_ref().is_ok_and(|c| c.revoked.contains(unpadded(&serial)))
    }

    /// XEP-0178: a peer server's certificate must chain to a trusted CA, be
    /// a server's (serverAuth; and clientAuth when it is the initiating
    /// side), name `domain` in its SAN (dNSName or xmppAddr, exactly), and
    /// not be revoked in a current CRL of its CA. Revocation is checked
    /// last: [`AuthError::StatusUnknown`] means everything else was right.
    pub fn authenticate_server(
        &self,
        chain: &[CertificateDer<'_>],
        domain: &str,
        side: PeerSide,
    ) -> Result<CertRef, AuthError> {
        let leaf = chain.first().ok_or(AuthError::NoCertificate)?;
        let ee = EndEntityCert::try_from(leaf).map_err(AuthError::from_webpki)?;
        let anchors = self
            .peer_cas
            .iter()
            .map(|c| anchor_from_trusted_cert(c).map_err(AuthError::from_webpki))
            .collect::<Result<Vec<_>, _>>()?;
        let usage = match side {
            PeerSide::Initiating => KeyUsage::client_auth(),
            PeerSide::Receiving => KeyUsage::server_auth(),
        };
        ee.verify_for_usage(webpki::ALL_VERIFICATION_ALGS, &anchors, &chain[1..], UnixTime::now(), usage, None, None)
            .map_err(AuthError::from_webpki)?;
        let cert = parse_cert(leaf).ok_or_else(|| AuthError::Invalid("the certificate is not well-formed".into()))?;
        check_role(&cert, Role::Server)?;
        let info = snow_crypto::CertInfo::from_der(leaf).map_err(|e| AuthError::Invalid(e.to_string()))?;
        let names_domain = info.dns_names.iter().chain(info.xmpp_addrs.iter()).any(|n| n.eq_ignore_ascii_case(domain));
        if !names_domain {
            return Err(AuthError::ForeignDomain(domain.to_owned()));
        }
        let cert = CertRef::of(&cert);
        self.check_revocation(&cert)?;
        Ok(cert)
    }

    /// Verifies a client's certificate chain for login (site CA,
    /// clientAuth and not a server's, one xmppAddr of `domain`, not
    /// revoked in the current CRL) and returns its JID.
    pub fn authenticate(
        &self,
        chain: &[CertificateDer<'_>],
        domain: &Domain,
        authzid: Option<&str>,
    ) -> Result<(BareJid, CertRef), AuthError> {
        let leaf = chain.first().ok_or(AuthError::NoCertificate)?;
        let ee = EndEntityCert::try_from(leaf).map_err(AuthError::from_webpki)?;
        let anchors = [anchor_from_trusted_cert(&self.ca).map_err(AuthError::from_webpki)?];
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &chain[1..],
            UnixTime::now(),
            KeyUsage::client_auth(),
            None,
            None,
        )
        .map_err(AuthError::from_webpki)?;
        let cert = parse_cert(leaf).ok_or_else(|| AuthError::Invalid("the certificate is not well-formed".into()))?;
        check_role(&cert, Role::Client)?;
        let info = snow_crypto::CertInfo::from_der(leaf).map_err(|e| AuthError::Invalid(e.to_string()))?;
        let jid_text = match info.xmpp_addrs.as_slice() {
            [] => return Err(AuthError::NoJid),
            [one] => one.clone(),
            _ => return Err(AuthError::SeveralJids),
        };
        let jid: BareJid = jid_text.parse().map_err(|_| AuthError::NoJid)?;
        if jid.domain() != domain {
            return Err(AuthError::ForeignDomain(jid.to_string()));
        }
        if let Some(a) = authzid {
            if a != jid.to_string() {
                return Err(AuthError::AuthzidMismatch { authzid: a.to_owned(), jid: jid.to_string() });
            }
        }
        let cert = CertRef::of(&cert);
        self.check_revocation(&cert)?;
        Ok((jid, cert))
    }

    /// A certificate pushed for the key directory entry `jid` with
    /// `serial_hex`: issued by the site CA, a user's or an agent's (for
    /// key encipherment, not a server's or a CA's), naming exactly `jid`,
    /// with that serial. Its validity dates and revocation are the
    /// directory's status and the CRL's business.
    pub fn check_directory_certificate(&self, der: &[u8], jid: &str, serial_hex: &str) -> Result<(), String> {
        snow_crypto::cert::verify_issued_by(der, &self.ca).map_err(|_| "it is not issued by the site CA".to_owned())?;
        let cert = parse_cert(der).ok_or_else(|| "it is not a DER X.509 certificate".to_owned())?;
        check_role(&cert, Role::Client).map_err(|e| e.to_string())?;
        match cert.key_usage() {
            Ok(Some(ku)) if ku.value.key_encipherment() => {}
            _ => return Err("its key usage does not allow key encipherment".into()),
        }
        let info = snow_crypto::CertInfo::from_der(der).map_err(|e| e.to_string())?;
        if info.xmpp_addrs.len() != 1 || !info.xmpp_addrs[0].eq_ignore_ascii_case(jid) {
            return Err(format!("it names {:?}, not {jid}", info.xmpp_addrs));
        }
        let norm = |s: &str| s.trim().trim_start_matches('0').to_ascii_lowercase();
        if norm(serial_hex) != norm(&info.serial_hex) {
            return Err(format!("its serial is {}, not {serial_hex}", info.serial_hex));
        }
        Ok(())
    }

    /// The revocation check of a login, for a certificate known from the
    /// key directory rather than presented on the link: a component (whose
    /// credential on the wire is its shared secret) stands only while the
    /// agent certificate issued for its domain does.
    pub fn check_revocation_of(&self, der: &[u8]) -> Result<CertRef, AuthError> {
        let cert = parse_cert(der).ok_or_else(|| AuthError::Invalid("not a DER X.509 certificate".into()))?;
        let cert = CertRef::of(&cert);
        self.check_revocation(&cert)?;
        Ok(cert)
    }

    /// Fails unless a current CRL of `cert`'s CA is installed and does not
    /// list it. A refusal for unknown status is counted and logged as an
    /// error with what the administrator should do.
    fn check_revocation(&self, cert: &CertRef) -> Result<(), AuthError> {
        let now = OffsetDateTime::now_utc();
        let outcome = {
            let installed = self.installed.read().unwrap_or_else(|p| p.into_inner());
            let crl = match &installed.site {
                Ok(c) if c.issuer == cert.issuer => Ok(c),
                Err(p) if cert.issuer == self.ca_subject => Err(p.clone()),
                _ => installed.peers.iter().find(|c| c.issuer == cert.issuer).ok_or(CrlProblem::NoneForIssuer),
            };
            match crl {
                Ok(c) if c.revoked.contains(&cert.serial) => Err(AuthError::Revoked),
                Ok(c) => c.current_at(now).map_err(AuthError::StatusUnknown),
                Err(p) => Err(AuthError::StatusUnknown(p)),
            }
        };
        if let Err(AuthError::StatusUnknown(p)) = &outcome {
            let n = self.counters.refused_status_unknown.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::error!(
                serial = %cert.serial_hex(),
                refused = n,
                "certificate refused: revocation status unknown ({p}); nobody can log in or federate until a \
                 current CRL is installed: {CRL_ADVICE}"
            );
        }
        outcome
    }

    /// Re-reads the CRL files (SIGHUP, a new file seen, a revocation at
    /// the PO). A file that is not a CRL of its CA, or a site CRL with a
    /// lower CRL number than the one in force, is refused (counted) and the
    /// CRL in force stays; a missing file leaves the one in force.
    pub fn reload_crl(&self) -> Result<CrlChange, ServerError> {
        let (site, peers) = match self.read_files() {
            Ok(x) => x,
            Err(e) => {
                self.counters.crls_refused.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        };
        let mut installed = self.installed.write().unwrap_or_else(|p| p.into_inner());
        let mut change = CrlChange::Unchanged;
        if let Some(new) = site {
            match compare(&installed.site, &new) {
                Ok(true) => {
                    change = CrlChange::Installed(new.number.to_string());
                    installed.site = Ok(new);
                }
                Ok(false) => {}
                Err(refused) => {
                    self.counters.crls_refused.fetch_add(1, Ordering::Relaxed);
                    return Err(ServerError::Crl { path: self.crl_path.clone(), reason: refused.to_string() });
                }
            }
        }
        let peers_changed =
            peers.len() != installed.peers.len() || peers.iter().zip(&installed.peers).any(|(a, b)| a.der != b.der);
        if peers_changed {
            installed.peers = peers;
            if change == CrlChange::Unchanged {
                change = CrlChange::Installed("(another CA's)".into());
            }
        }
        drop(installed);
        if change != CrlChange::Unchanged {
            self.counters.crls_installed.fetch_add(1, Ordering::Relaxed);
            self.generation.send_modify(|g| *g += 1);
            self.tell_status(false);
        }
        Ok(change)
    }

    /// A CRL pushed by the master: put in force (and written to the CRL
    /// file) only if it is signed by the site CA, names it as issuer, is
    /// current, and has a CRL number greater than the one in force (the
    /// same CRL again changes nothing). A refusal is counted; the caller
    /// logs it.
    pub fn install_crl(&self, der: &[u8]) -> Result<CrlChange, CrlRefused> {
        let refused = |r: CrlRefused| {
            self.counters.crls_refused.fetch_add(1, Ordering::Relaxed);
            Err(r)
        };
        let new = match Crl::verify(der, std::slice::from_ref(&self.ca), "the site CA") {
            Ok(c) => c,
            Err(p) => return refused(CrlRefused::Invalid(p)),
        };
        let mut installed = self.installed.write().unwrap_or_else(|p| p.into_inner());
        match compare(&installed.site, &new) {
            Ok(true) => {}
            Ok(false) => return Ok(CrlChange::Unchanged),
            Err(r) => return refused(r),
        }
        if let Err(p) = new.current_at(OffsetDateTime::now_utc()) {
            return refused(CrlRefused::Invalid(p));
        }
        let pem = match snow_crypto::pem::encode("X509 CRL", der) {
            Ok(p) => p,
            Err(e) => return refused(CrlRefused::Write(e.to_string())),
        };
        // Written while holding the lock, so the file and the CRL in force
        // change together; the file watcher then finds what is in force.
        if let Err(e) = snow_core::files::write(&self.crl_path, pem.as_bytes(), snow_core::files::Mode::Public) {
            return refused(CrlRefused::Write(e.to_string()));
        }
        let number = new.number.to_string();
        installed.site = Ok(new);
        drop(installed);
        *self.stamps.lock().unwrap_or_else(|p| p.into_inner()) = self.file_stamps();
        self.counters.crls_installed.fetch_add(1, Ordering::Relaxed);
        self.generation.send_modify(|g| *g += 1);
        self.tell_status(false);
        Ok(CrlChange::Installed(number))
    }

    /// Watches the CRL files until shutdown: a changed file is reloaded
    /// (`snow user|server|agent revoke` and `snow ca crl` at the PO write a
    /// new one); the administrator is reminded while status is unknown and
    /// warned before the CRL expires.
    pub async fn watch(self: std::sync::Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut last_reminder: Option<std::time::Instant> = None;
        let mut was_current = matches!(self.status(), RevocationStatus::Current { .. });
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(FILE_POLL) => {}
            }
            let now_stamps = self.file_stamps();
            // A file refused once is not read again until it changes.
            let changed =
                std::mem::replace(&mut *self.stamps.lock().unwrap_or_else(|p| p.into_inner()), now_stamps.clone())
                    != now_stamps;
            if changed {
                match self.reload_crl() {
                    Ok(CrlChange::Installed(n)) => tracing::info!(crl_number = %n, "new CRL in force"),
                    Ok(CrlChange::Unchanged) => {}
                    Err(e) => tracing::error!(error = %e, "CRL file refused; the CRL in force stays"),
                }
            }
            let status = self.status();
            let current = matches!(status, RevocationStatus::Current { .. });
            if let RevocationStatus::Unknown(p) = status {
                if was_current || last_reminder.is_none_or(|t| t.elapsed() >= UNKNOWN_REMINDER) {
                    tracing::error!(
                        "revocation status unknown: {p}; every login and server link is refused until a current \
                         CRL is installed: {CRL_ADVICE}"
                    );
                    last_reminder = Some(std::time::Instant::now());
                }
            }
            was_current = current;
        }
    }

    /// Reads the site CRL (`None` if there is no file) and the peer CRLs,
    /// each checked against its CA, and notes the files' stamps.
    #[allow(clippy::type_complexity)]
    fn read_files(&self) -> Result<(Option<Crl>, Vec<Crl>), ServerError> {
        let stamps = self.file_stamps();
        let site = match self.crl_path.exists() {
            false => None,
            true => Some(read_crl(&self.crl_path, std::slice::from_ref(&self.ca), "the site CA")?),
        };
        let mut peers = Vec::new();
        for p in &self.peer_crl_paths {
            peers.push(read_crl(p, &self.peer_cas, "a CA of [s2s] trusted_cas")?);
        }
        *self.stamps.lock().unwrap_or_else(|p| p.into_inner()) = stamps;
        Ok((site, peers))
    }

    fn file_stamps(&self) -> Vec<FileStamp> {
        std::iter::once(&self.crl_path).chain(&self.peer_crl_paths).map(|p| stamp(p)).collect()
    }

    /// Logs the revocation status for the administrator: an error if it is
    /// unknown, a warning if the CRL expires soon, else (at start) the CRL
    /// in force.
    fn tell_status(&self, at_start: bool) {
        match self.status() {
            RevocationStatus::Unknown(p) => tracing::error!(
                "revocation status unknown: {p}; every login and server link is refused until a current CRL is \
                 installed: {CRL_ADVICE}"
            ),
            RevocationStatus::Current { crl_number, next_update } => {
                if next_update - OffsetDateTime::now_utc() < EXPIRY_WARNING {
                    tracing::warn!(
                        crl_number = %crl_number,
                        "the CRL expires on {}: after that every login and server link is refused: {CRL_ADVICE}",
                        show(next_update)
                    );
                } else if at_start {
                    tracing::info!(crl_number = %crl_number, "CRL in force until {}", show(next_update));
                }
            }
        }
    }
}

/// Whether `new` replaces the site CRL in force: a greater CRL number
/// does; the same CRL changes nothing; anything else is refused.
fn compare(current: &Result<Crl, CrlProblem>, new: &Crl) -> Result<bool, CrlRefused> {
    let Ok(cur) = current else { return Ok(true) };
    if new.number > cur.number {
        Ok(true)
    } else if new.number == cur.number && new.der == cur.der {
        Ok(false)
    } else if new.number == cur.number {
        Err(CrlRefused::SameNumber(cur.number.to_string()))
    } else {
        Err(CrlRefused::Older { offered: new.number.to_string(), installed: cur.number.to_string() })
    }
}

fn read_crl(path: &Path, cas: &[CertificateDer<'static>], whose: &'static str) -> Result<Crl, ServerError> {
    let bad = |reason: String| ServerError::Crl { path: path.to_owned(), reason };
    let text = read(path)?;
    let blocks = snow_crypto::pem::decode_all(&text, &path.display().to_string())?;
    let der = blocks
        .into_iter()
        .find(|(l, _)| l == "X509 CRL")
        .map(|(_, d)| d)
        .ok_or_else(|| bad("no X509 CRL block".into()))?;
    Crl::verify(&der, cas, whose).map_err(|p| bad(p.to_string()))
}

/// The kinds of certificate snow-pki issues, as links see them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// A user's or an agent's: clientAuth only.
    Client,
    /// A server's: serverAuth (and clientAuth).
    Server,
}

/// Key usage and extended key usage for `role` (the chain's own checks
/// come first).
fn check_role(cert: &X509Certificate<'_>, role: Role) -> Result<(), AuthError> {
    if cert.is_ca() {
        return Err(AuthError::WrongRole("a CA certificate is not an end entity's"));
    }
    match cert.key_usage() {
        Ok(Some(ku)) if !ku.value.digital_signature() => {
            return Err(AuthError::WrongRole("the certificate's key usage does not allow digital signatures"));
        }
        Ok(_) => {}
        Err(_) => return Err(AuthError::Invalid("the key usage cannot be read".into())),
    }
    let (client, server) = match cert.extended_key_usage() {
        Ok(Some(eku)) => (eku.value.client_auth, eku.value.server_auth),
        Ok(None) => (false, false),
        Err(_) => return Err(AuthError::Invalid("the extended key usage cannot be read".into())),
    };
    match role {
        Role::Client if server => {
            Err(AuthError::WrongRole("a server's certificate (serverAuth) does not log in as a user or an agent"))
        }
        Role::Client if !client => Err(AuthError::WrongRole("the certificate is not for client authentication")),
        Role::Server if !server => Err(AuthError::WrongRole(
            "not a server's certificate (no serverAuth): a user's or an agent's certificate does not \
             authenticate a server",
        )),
        _ => Ok(()),
    }
}

fn parse_cert<'a>(der: &'a [u8]) -> Option<X509Certificate<'a>> {
    match parse_x509_certificate(der) {
        Ok(([], cert)) => Some(cert),
        _ => None,
    }
}

fn unpadded(serial: &[u8]) -> &[u8] {
    let start = serial.iter().position(|b| *b != 0).unwrap_or(serial.len());
    &serial[start..]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    let s = if s.len() % 2 == 1 { format!("0{s}") } else { s.to_owned() };
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// A time as the administrator reads it.
fn show(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!("{:04}-{:02}-{:02} {:02}:{:02} UTC", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute())
}

fn read(path: &Path) -> Result<Vec<u8>, ServerError> {
    snow_core::files::read_limited(path, snow_crypto::MAX_KEY_FILE_BYTES)
        .map_err(|source| ServerError::Read { path: path.to_owned(), source })
}
