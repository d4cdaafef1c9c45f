//! `snow.toml`: every setting has a default (see `snow.example.toml`).

use std::path::Path;

use anyhow::Context;
use serde::Deserialize;
use snow_lab::config::LabServerSettings;
use snow_pki::PkiSettings;
use snow_server::{ComponentSettings, MsgAuthSettings, S2sSettings, ServerSettings};

/// Largest configuration file read.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub pki: PkiSettings,
    pub server: ServerSettings,
    pub s2s: S2sSettings,
    pub lab: LabServerSettings,
    pub msgauth: MsgAuthSettings,
    pub components: Vec<ComponentSettings>,
    pub smtp: SmtpSettings,
    pub pubsub: snow_server::config::PubsubSettings,
    pub app: AppSettings,
}

/// The `[app]` section: the GP's app (`snow app`) on the GP's computer.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AppSettings {
    /// The Snow server the app logs in to (host:port).
    pub server: String,
    /// Direct TLS (XEP-0368) instead of STARTTLS.
    pub direct_tls: bool,
    /// The labs whose statistics the GP may search (domains).
    pub labs: Vec<String>,
    /// The alerts' pubsub service (default: the GP's own domain).
    pub alert_service: Option<String>,
    /// The port on 127.0.0.1 (0: a free one each time).
    pub port: u16,
    /// nb or en.
    pub language: String,
}

impl Default for AppSettings {
    fn default() -> Self {
        AppSettings {
            server: "127.0.0.1:5222".into(),
            direct_tls: false,
            labs: Vec::new(),
            alert_service: None,
            port: 0,
            language: "nb".into(),
        }
    }
}

/// The `[smtp]` section: where `snow outbox send` delivers e-mail.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    /// The name the server's certificate must carry (default: host).
    pub server_name: Option<String>,
    /// STARTTLS (RFC 3207); without it, no PLAIN login is attempted.
    pub starttls: bool,
    /// CA certificate (PEM) of the mail server (default: the site's CA).
    pub ca_file: Option<std::path::PathBuf>,
    /// Login user; none means no AUTH.
    pub username: Option<String>,
    /// File holding the password (owner-only).
    pub password_file: Option<std::path::PathBuf>,
    /// auto (CRAM-MD5 if offered, else PLAIN), cram-md5 or plain.
    pub mechanism: String,
    /// Our name in EHLO (default: the CA's domain).
    pub helo: Option<String>,
    pub timeout_secs: u64,
}

impl Default for SmtpSettings {
    fn default() -> Self {
        SmtpSettings {
            host: "127.0.0.1".into(),
            port: 25,
            server_name: None,
            starttls: true,
            ca_file: None,
            username: None,
            password_file: None,
            mechanism: "auto".into(),
            helo: None,
            timeout_secs: 30,
        }
    }
}

impl Config {
    /// Reads `explicit` if given (it must exist), else `home/snow.toml` if
    /// it exists, else the defaults.
    pub fn load(explicit: Option<&Path>, home: &snow_core::SiteHome) -> anyhow::Result<Config> {
        let default_path = home.config_file();
        let path = match explicit {
            Some(p) => p,
            None if default_path.exists() => &default_path,
            None => return Ok(Config::default()),
        };
        let bytes = snow_core::files::read_limited(path, MAX_CONFIG_BYTES)
            .with_context(|| format!("cannot read the configuration {}", path.display()))?;
        let text = String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8 text", path.display()))?;
        let config: Config =
            toml::from_str(&text).with_context(|| format!("bad configuration in {}", path.display()))?;
        config.pki.validate().with_context(|| format!("bad configuration in {}", path.display()))?;
        config.lab.validate().with_context(|| format!("bad configuration in {}", path.display()))?;
        config.smtp.validate().with_context(|| format!("bad configuration in {}", path.display()))?;
        Ok(config)
    }
}

impl SmtpSettings {
    /// The numbers in range and the mechanism known, when the
    /// configuration is read rather than at the first `snow outbox send`.
    pub fn validate(&self) -> anyhow::Result<()> {
        snow_core::settings::range("smtp.port", self.port, 1, u16::MAX).map_err(anyhow::Error::msg)?;
        snow_core::settings::range("smtp.timeout_secs", self.timeout_secs, 1, 3600).map_err(anyhow::Error::msg)?;
        if !matches!(self.mechanism.as_str(), "auto" | "cram-md5" | "plain") {
            anyhow::bail!("smtp.mechanism = {:?}: it must be auto, cram-md5 or plain", self.mechanism);
        }
        if self.username.is_some() != self.password_file.is_some() {
            anyhow::bail!("smtp.username and smtp.password_file go together");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_is_the_default() {
        let text = include_str!("../../../snow.example.toml");
        let c: Config = toml::from_str(text).unwrap();
        let d = PkiSettings::default();
        assert_eq!(c.pki.user_key_bits, d.user_key_bits);
        assert_eq!(c.pki.ca_key_bits, d.ca_key_bits);
        assert_eq!(c.pki.crl_validity_days, d.crl_validity_days);
        assert_eq!(c.pki.one_time_password_length, d.one_time_password_length);
        assert_eq!(c.pki.min_passphrase_length, d.min_passphrase_length);
        let (s, sd) = (c.server, ServerSettings::default());
        assert_eq!(format!("{s:?}"), format!("{sd:?}"), "snow.example.toml [server] differs from the defaults");
        let (l, ld) = (&c.lab, LabServerSettings::default());
        assert_eq!(format!("{l:?}"), format!("{ld:?}"), "snow.example.toml [lab] differs from the defaults");
        let (m, md) = (&c.msgauth, MsgAuthSettings::default());
        assert_eq!(format!("{m:?}"), format!("{md:?}"), "snow.example.toml [msgauth] differs from the defaults");
        assert!(c.components.is_empty());
        assert_eq!(
            format!("{:?}", c.smtp),
            format!("{:?}", SmtpSettings::default()),
            "[smtp] differs from the defaults"
        );
        let (s, sd) = (c.s2s, S2sSettings::default());
        assert_eq!(format!("{s:?}"), format!("{sd:?}"), "snow.example.toml [s2s] differs from the defaults");
        let (p, pd) = (c.pubsub, snow_server::config::PubsubSettings::default());
        assert_eq!(format!("{p:?}"), format!("{pd:?}"), "snow.example.toml [pubsub] differs from the defaults");
        // Without [pubsub] analyses, a server library user gets [lab]'s default.
        assert_eq!(snow_server::config::DEFAULT_ALERT_ANALYSES, LabServerSettings::default().analyses);
    }

    #[test]
    fn smtp_numbers_and_mechanism_are_checked() {
        SmtpSettings::default().validate().unwrap();
        for (text, key) in [
            ("port = 0", "smtp.port"),
            ("timeout_secs = 0", "smtp.timeout_secs"),
            ("timeout_secs = 86400", "smtp.timeout_secs"),
            ("mechanism = \"login\"", "smtp.mechanism"),
            ("username = \"snow\"", "smtp.username"),
        ] {
            let c: Config = toml::from_str(&format!("[smtp]\n{text}\n")).unwrap();
            let e = c.smtp.validate().unwrap_err().to_string();
            assert!(e.starts_with(key), "{text}: {e}");
        }
        assert!(toml::from_str::<Config>("[smtp]\nport = -1\n").is_err());
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<Config>("[pki]\nuser_key_bit = 2048\n").is_err());
    }
}
