//! `snow.toml` on arbitrary text. snow-cli's `Config` is in the binary
//! crate, so this reads the same file into the sections the libraries
//! own, with the same serde attributes (`[pki]`, `[server]`, `[s2s]`,
//! `[lab]`, `[msgauth]`, `[[components]]`, `[pubsub]`; `[smtp]` and `[app]`
//! are snow-cli's and taken as any table), then runs every validation the
//! libraries offer: `PkiSettings::validate`, `LabServerSettings::validate`
//! and the server's `ServerConfig::validate` (which includes the pubsub
//! section's), and the accessors `snow serve` uses. A config is accepted
//! or refused with an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use snow_server::config::PubsubSettings;
use snow_server::{ComponentSettings, MsgAuthSettings, S2sSettings, ServerConfig, ServerSettings};

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct SnowToml {
    pki: snow_pki::PkiSettings,
    server: ServerSettings,
    s2s: S2sSettings,
    lab: snow_lab::config::LabServerSettings,
    msgauth: MsgAuthSettings,
    components: Vec<ComponentSettings>,
    smtp: toml::Table,
    pubsub: PubsubSettings,
    app: toml::Table,
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(cfg) = toml::from_str::<SnowToml>(text) else { return };
    let _ = cfg.pki.validate();
    if cfg.lab.validate().is_ok() {
        let _ = cfg.lab.lab_settings();
        let d = &cfg.lab.detection;
        for params in std::iter::once(&d.default).chain(d.analyses.values()).take(8) {
            let _ = params.detector();
        }
    }
    let domain = cfg.server.domain.as_deref().unwrap_or("po.example");
    let Ok(domain) = domain.parse::<snow_core::Domain>() else { return };
    let home = snow_core::SiteHome::new("/nonexistent/snow-fuzz");
    let mut server = ServerConfig::for_home(&home, domain, cfg.server, cfg.s2s);
    server.components = cfg.components;
    server.msgauth = cfg.msgauth;
    server.pubsub = cfg.pubsub;
    if server.validate().is_ok() {
        let limits = server.limits();
        assert!(limits.max_stanza_bytes >= 4096 && limits.max_depth >= 4);
        let _ = server.negotiation_timeout();
        let replicas = server.s2s.federation();
        let _ = server.pubsub.signal_publishers(&replicas);
        let _ = server.pubsub.node_analyses();
        for c in &server.components {
            let _ = server.resolve(&c.secret_file);
        }
    }
});
