//! Key delivery through the outbox: an e-mail carrying the PKCS#12 file and
//! an SMS carrying its one-time password, as files an operator's mail and
//! SMS gateways pick up. The two travel by separate channels so neither
//! alone opens the key.

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

/// Removes a delivery's files (used when the database write after it fails).
pub(crate) fn withdraw(d: &Delivery) {
    let _ = std::fs::remove_file(&d.email);
    let _ = std::fs::remove_file(&d.sms);
}

fn render_sms(l: &Letter<'_>) -> String {
    format!("To: {}\n\nSnow: the one-time password for the key file sent to your e-mail is {}\n", l.phone, l.password)
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
