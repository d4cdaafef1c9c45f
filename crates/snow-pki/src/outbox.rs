//! Key delivery through the outbox: an e-mail carrying the PKCS#12 file and
//! an SMS carrying its one-time password, as files an operator's mail and
//! SMS gateways pick up. The two travel by separate channels so neither
//! alone opens the key.
//!
//! Each file records whose key it carries, in two header lines:
//! `X-Snow-User: JID` and `X-Snow-Certificate: SERIAL` (hex). When the
//! certificate is revoked or superseded, [`withdraw_user`] removes the
//! user's files still waiting, found by those headers, so a key that no
//! longer counts is never sent. Mailed e-mails (`email/sent/`) stay.

use std::path::{Path, PathBuf};

use base64::Engine;
use snow_core::files::{self, Mode};
use snow_core::{BareJid, Email, Hpnr, Phone, SiteHome};
use time::format_description::well_known::Rfc2822;
use time::OffsetDateTime;

use crate::PkiError;

/// Files written for one delivery.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub email: PathBuf,
    pub sms: PathBuf,
}

pub(crate) struct Letter<'a> {
    pub from: &'a str,
    pub to: &'a Email,
    pub phone: &'a Phone,
    pub hpnr: &'a Hpnr,
    pub jid: &'a BareJid,
    /// The serial number (hex) of the certificate inside `p12`.
    pub serial: &'a str,
    pub p12: &'a [u8],
    pub password: &'a str,
    pub now: OffsetDateTime,
}

/// Writes the e-mail and the SMS. If the second write fails the first file
/// is removed, so a delivery is whole or absent.
pub(crate) fn deliver(paths: &SiteHome, letter: &Letter<'_>) -> Result<Delivery, PkiError> {
    // Nanoseconds: a re-key in the same second as the first issue gets its own files.
    let stem = format!("{}-{}", letter.now.unix_timestamp_nanos(), letter.hpnr);
    let email = paths.email_outbox().join(format!("{stem}.eml"));
    let sms = paths.sms_outbox().join(format!("{stem}.txt"));
    files::write_new(&email, render_email(letter)?.as_bytes(), Mode::Private).map_err(PkiError::io("write", &email))?;
    if let Err(e) = files::write_new(&sms, render_sms(letter).as_bytes(), Mode::Private) {
        let _ = std::fs::remove_file(&email);
        return Err(PkiError::io("write", &sms)(e));
    }
    Ok(Delivery { email, sms })
}

/// The header naming the user whose key a file carries.
pub const HEADER_USER: &str = "X-Snow-User";
/// The header naming the certificate (serial, hex) whose key a file carries.
pub const HEADER_CERTIFICATE: &str = "X-Snow-Certificate";

/// Removes a delivery's files (used when the database write after it fails).
pub(crate) fn withdraw(d: &Delivery) {
    let _ = std::fs::remove_file(&d.email);
    let _ = std::fs::remove_file(&d.sms);
}

fn render_sms(l: &Letter<'_>) -> String {
    format!(
        "To: {}\n{HEADER_USER}: {}\n{HEADER_CERTIFICATE}: {}\n\n\
         Snow: the one-time password for the key file sent to your e-mail is {}\n",
        l.phone, l.jid, l.serial, l.password
    )
}

/// A MIME message (RFC 5322 + RFC 2045/2046) with CRLF line ends: a short
/// text part and the `.p12` attachment in base64.
fn render_email(l: &Letter<'_>) -> Result<String, PkiError> {
    let date = l.now.format(&Rfc2822).map_err(|e| PkiError::Setting(format!("cannot format date: {e}")))?;
    let boundary = format!("snow-{}", snow_crypto::one_time_password::generate(24)?);
    let message_id =
        format!("{}.{}@{}", l.now.unix_timestamp(), snow_crypto::one_time_password::generate(16)?, l.jid.domain());
    let body = format!(
        "Hello,\r\n\r\n\
         attached is your key and certificate for Snow. Your Snow address is\r\n\
         {jid}.\r\n\r\n\
         The file is protected by a one-time password that is sent to your\r\n\
         registered mobile phone by SMS. To install the key, save the attached\r\n\
         file and run:\r\n\r\n    snow key import {hpnr}.p12\r\n\r\n\
         You will be asked for the one-time password, then for a personal\r\n\
         passphrase that protects the key on your computer from then on.\r\n\
         Delete this e-mail and the file afterwards.\r\n\r\n\
         -- \r\nSnow administrator\r\n",
        jid = l.jid,
        hpnr = l.hpnr
    );
    let b64 = base64::engine::general_purpose::STANDARD.encode(l.p12);
    let mut attachment = String::with_capacity(b64.len() + b64.len() / 76 * 2 + 2);
    for chunk in b64.as_bytes().chunks(76) {
        attachment.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        attachment.push_str("\r\n");
    }
    Ok(format!(
        "From: Snow administrator <{from}>\r\n\
         To: <{to}>\r\n\
         Subject: Your Snow certificate\r\n\
         Date: {date}\r\n\
         Message-ID: <{message_id}>\r\n\
         {HEADER_USER}: {jid}\r\n\
         {HEADER_CERTIFICATE}: {serial}\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\
         \r\n\
         This is a MIME message.\r\n\
         --{boundary}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\
         \r\n\
         {body}\
         --{boundary}\r\n\
         Content-Type: application/x-pkcs12; name=\"{hpnr}.p12\"\r\n\
         Content-Disposition: attachment; filename=\"{hpnr}.p12\"\r\n\
         Content-Transfer-Encoding: base64\r\n\
         \r\n\
         {attachment}\
         --{boundary}--\r\n",
        from = l.from,
        to = l.to,
        hpnr = l.hpnr,
        jid = l.jid,
        serial = l.serial,
    ))
}

/// Pulls the `.p12` attachment back out of an e-mail this module wrote.
/// For tests and for operators checking an outbox; not a general MIME parser.
pub fn attachment_of(eml: &str) -> Option<Vec<u8>> {
    let start =
        eml.find("Content-Transfer-Encoding: base64\r\n\r\n")? + "Content-Transfer-Encoding: base64\r\n\r\n".len();
    let rest = &eml[start..];
    let end = rest.find("--")?;
    let b64: String = rest[..end].chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

/// The password line of an SMS this module wrote.
pub fn password_of(sms: &str) -> Option<String> {
    sms.lines().find_map(|l| l.rsplit_once(" is ").map(|(_, p)| p.trim().to_owned()))
}

/// The newest file in an outbox folder whose name starts with `prefix`.
pub fn newest(dir: &Path, prefix: &str) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.contains(prefix)))
        .collect();
    found.sort();
    found.pop()
}

/// The files [`withdraw_user`] removed from the outbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Withdrawn {
    pub emails: Vec<PathBuf>,
    pub sms: Vec<PathBuf>,
}

impl Withdrawn {
    /// How many files were removed.
    pub fn count(&self) -> usize {
        self.emails.len() + self.sms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }
}

/// Whose key an outbox file carries, as its headers say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub user: String,
    pub certificate: String,
}

/// Most bytes of a file read for its headers (they come first).
const HEAD_BYTES: u64 = 16 * 1024;

/// The `X-Snow-User` and `X-Snow-Certificate` headers of an outbox file's
/// text; `None` for a file without them (written before they existed).
pub fn recorded(text: &str) -> Option<Recorded> {
    let mut user = None;
    let mut certificate = None;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else { continue };
        if name.trim().eq_ignore_ascii_case(HEADER_USER) {
            user = Some(value.trim().to_owned());
        } else if name.trim().eq_ignore_ascii_case(HEADER_CERTIFICATE) {
            certificate = Some(value.trim().to_ascii_lowercase());
        }
    }
    Some(Recorded { user: user?, certificate: certificate? })
}

/// Removes the e-mails and SMS waiting in the outbox that carry a key of
/// `jid` other than the certificate `keep` (serial, hex): after a
/// revocation (`keep` = `None`: all of the user's) or a re-key (`keep` =
/// the new certificate). A file is matched by the user and certificate
/// its headers record; only a file without them (written by an older
/// version) is matched by its name, `<time>-<HPNR>.eml|txt`. Mailed
/// e-mails in `email/sent/` are the record of what went out and stay.
pub fn withdraw_user(paths: &SiteHome, jid: &BareJid, hpnr: &Hpnr, keep: Option<&str>) -> Result<Withdrawn, PkiError> {
    let jid_text = jid.to_string();
    let keep = keep.map(str::to_ascii_lowercase);
    let mut out = Withdrawn::default();
    for (dir, ext, list) in [(paths.email_outbox(), "eml", &mut out.emails), (paths.sms_outbox(), "txt", &mut out.sms)]
    {
        for path in waiting(&dir, ext)? {
            let Some(head) = read_head(&path)? else { continue };
            let matches = match recorded(&head) {
                Some(r) => r.user.eq_ignore_ascii_case(&jid_text) && keep.as_deref() != Some(r.certificate.as_str()),
                None => legacy_name_matches(&path, hpnr),
            };
            if !matches {
                continue;
            }
            match std::fs::remove_file(&path) {
                Ok(()) => list.push(path),
                // Taken meanwhile (`snow outbox send` mailed it): not ours to count.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(PkiError::io("remove", &path)(e)),
            }
        }
    }
    if !out.is_empty() {
        tracing::info!(user = %jid, emails = out.emails.len(), sms = out.sms.len(), "key deliveries withdrawn");
    }
    Ok(out)
}

/// The files with extension `ext` directly in `dir` (not its `sent/`), by
/// name; none if the folder does not exist.
fn waiting(dir: &Path, ext: &str) -> Result<Vec<PathBuf>, PkiError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(PkiError::io("read", dir)(e)),
    };
    let mut found: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == ext))
        .collect();
    found.sort();
    Ok(found)
}

/// The first bytes of a file, as text; `None` if it is gone already.
fn read_head(path: &Path) -> Result<Option<String>, PkiError> {
    use std::io::Read;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(PkiError::io("read", path)(e)),
    };
    let mut buf = Vec::new();
    file.take(HEAD_BYTES).read_to_end(&mut buf).map_err(PkiError::io("read", path))?;
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

/// `<digits>-<HPNR>.<ext>`: the name [`deliver`] gives a user's files.
fn legacy_name_matches(path: &Path, hpnr: &Hpnr) -> bool {
    let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else { return false };
    match stem.split_once('-') {
        Some((time, who)) => !time.is_empty() && time.bytes().all(|b| b.is_ascii_digit()) && who == hpnr.as_str(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_read_until_the_blank_line() {
        let eml = "From: a\r\nX-Snow-User: 9144889@po.example\r\nX-Snow-Certificate: 0A1b\r\n\r\nX-Snow-User: x@y\r\n";
        assert_eq!(recorded(eml), Some(Recorded { user: "9144889@po.example".into(), certificate: "0a1b".into() }));
        let sms = "To: +4791234567\n\nX-Snow-User: 9144889@po.example\nX-Snow-Certificate: 01\n";
        assert_eq!(recorded(sms), None, "headers after the blank line are body");
    }

    #[test]
    fn old_file_names_match_the_hpnr_exactly() {
        let h: Hpnr = "9144889".parse().unwrap();
        assert!(legacy_name_matches(Path::new("/o/1700000000000-9144889.eml"), &h));
        assert!(!legacy_name_matches(Path::new("/o/1700000000000-19144889.eml"), &h));
        assert!(!legacy_name_matches(Path::new("/o/x-9144889.eml"), &h));
        assert!(!legacy_name_matches(Path::new("/o/9144889.eml"), &h));
    }
}
