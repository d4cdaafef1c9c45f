//! `snow outbox send`: the key-delivery e-mails leave through SMTP.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use snow_client::smtp::{self, Envelope, Mechanism, SmtpAuth, SmtpOptions};

use super::Ctx;

/// The first `name:` header of a message, as a bare address.
fn header_address(eml: &str, name: &str) -> Option<String> {
    let head = eml.split("\r\n\r\n").next()?.split("\n\n").next()?;
    let value = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })?;
    let addr = match (value.rfind('<'), value.rfind('>')) {
        (Some(a), Some(b)) if a < b => value[a + 1..b].to_owned(),
        _ => value,
    };
    Some(addr.trim().to_owned())
}

pub fn send(ctx: &Ctx) -> anyhow::Result<()> {
    let s = &ctx.config.smtp;
    let outbox = ctx.paths.email_outbox();
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&outbox) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "eml"))
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    if files.is_empty() {
        println!("No e-mail waiting in {}", outbox.display());
        return Ok(());
    }
    let addr: SocketAddr = match format!("{}:{}", s.host, s.port).parse() {
        Ok(a) => a,
        Err(_) => std::net::ToSocketAddrs::to_socket_addrs(&(s.host.as_str(), s.port))
            .with_context(|| format!("cannot resolve smtp.host {}", s.host))?
            .next()
            .with_context(|| format!("smtp.host {} has no address", s.host))?,
    };
    let ca = match &s.ca_file {
        Some(p) => ctx.resolve(p),
        None => ctx.paths.ca_cert(),
    };
    let roots = if s.starttls {
        let text = snow_core::files::read_limited(&ca, snow_crypto::MAX_KEY_FILE_BYTES)
            .with_context(|| format!("cannot read the mail server's CA {} (smtp.ca_file)", ca.display()))?;
        snow_crypto::pem::certificates(&text, "the mail server's CA")?
    } else {
        Vec::new()
    };
    let auth = match (&s.username, &s.password_file) {
        (Some(user), Some(pw)) => {
            let pw = ctx.resolve(pw);
            let bytes = snow_core::files::read_limited(&pw, 4096)
                .with_context(|| format!("cannot read smtp.password_file {}", pw.display()))?;
            let mechanism = match s.mechanism.as_str() {
                "auto" => Mechanism::Auto,
                "cram-md5" => Mechanism::CramMd5,
                "plain" => Mechanism::Plain,
                _ => bail!("smtp.mechanism must be auto, cram-md5 or plain"),
            };
            let password =
                zeroize::Zeroizing::new(String::from_utf8_lossy(&bytes).trim_end_matches(['\r', '\n']).to_owned());
            Some(SmtpAuth { user: user.clone(), password, mechanism })
        }
        (None, None) => None,
        _ => bail!("smtp.username and smtp.password_file go together"),
    };
    let helo = match &s.helo {
        Some(h) => h.clone(),
        None => snow_pki::ca_certificate(&ctx.paths).map(|(d, _)| d.to_string()).unwrap_or_else(|_| "localhost".into()),
    };
    let opts = SmtpOptions {
        addr,
        server_name: s.server_name.clone().unwrap_or_else(|| s.host.clone()),
        helo,
        starttls: s.starttls,
        roots,
        auth,
        timeout: Duration::from_secs(s.timeout_secs.max(1)),
    };
    let sent_dir = ctx.paths.email_sent();
    let rt = super::runtime()?;
    let mut failed = 0usize;
    for path in &files {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let result = (|| -> anyhow::Result<String> {
            let bytes = snow_core::files::read_limited(path, smtp::MAX_MESSAGE as u64)?;
            let text = String::from_utf8_lossy(&bytes);
            let from = header_address(&text, "From").context("no From header")?;
            let to = header_address(&text, "To").context("no To header")?;
            rt.block_on(smtp::send(&opts, &Envelope { from: &from, to: &[to.as_str()], data: &bytes }))?;
            std::fs::create_dir_all(&sent_dir)?;
            std::fs::rename(path, sent_dir.join(&name))?;
            Ok(to)
        })();
        match result {
            Ok(to) => println!("Sent {name} to {to}"),
            Err(e) => {
                failed += 1;
                eprintln!("Not sent: {name}: {e:#}");
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} e-mails were not sent; they stay in {}", files.len(), outbox.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn addresses_from_headers() {
        let eml = "From: Snow <snow-admin@po.example>\r\nTo: gp@legekontor.example\r\nSubject: x\r\n\r\nTo: not@this";
        assert_eq!(super::header_address(eml, "from").as_deref(), Some("snow-admin@po.example"));
        assert_eq!(super::header_address(eml, "To").as_deref(), Some("gp@legekontor.example"));
    }
}
