//! `snow site add-lab`: at the PO, everything a new lab server needs in one
//! step — its server and search-agent certificates, the CA certificate and
//! CRL, and a `snow.toml` naming the PO as its master — written as the lab
//! server's home directory, and the PO's own `snow.toml` told about the
//! new replica. With `--same-host` both sites run on one computer (other
//! ports for the lab, routes both ways), as in the README.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Context};
use snow_core::files::{self, Mode};
use snow_core::{Domain, SiteHome};

use super::Ctx;
use crate::cli::CaSecret;

/// The lab server's ports when it shares a computer with the PO: the
/// defaults plus 100, so neither site's defaults change.
const SAME_HOST_C2S: &str = "127.0.0.1:5322";
const SAME_HOST_S2S: &str = "127.0.0.1:5369";
const SAME_HOST_COMPONENTS: &str = "127.0.0.1:5447";

/// What `add_lab` is asked to make.
pub struct AddLab<'a> {
    pub domain: &'a str,
    pub lab_home: &'a Path,
    pub same_host: bool,
    /// The PO's configuration file (created or extended).
    pub po_config: &'a Path,
}

pub fn add_lab(ctx: &Ctx, ca_secret: &CaSecret, req: AddLab<'_>) -> anyhow::Result<()> {
    let lab: Domain = req.domain.parse().with_context(|| format!("--domain {:?}", req.domain))?;
    let (po, _) = snow_pki::ca_certificate(&ctx.paths)?;
    if lab == po {
        bail!("{lab} is the PO's own domain: give the lab server a domain of its own, e.g. lab.{po}");
    }
    if req.lab_home.exists() && std::fs::read_dir(req.lab_home).map(|mut d| d.next().is_some()).unwrap_or(true) {
        bail!("{} is not empty: give the lab server's home a new or empty directory", req.lab_home.display());
    }
    // Check the PO's configuration can take the replica before anything is
    // issued, so a refusal leaves nothing half done.
    let po_addition = po_config_addition(req.po_config, &lab, req.same_host)?;
    let s2s_of_po = ctx.config.s2s.bind.clone();
    if req.same_host && s2s_of_po.trim().is_empty() {
        bail!("the PO's [s2s] bind is empty (no incoming server links): the lab server could not reach it");
    }

    let mut ca = ctx.open_ca(ca_secret)?;
    let server = ca.issue_server(&lab, &[])?;
    let agent_jid = format!("{}@{lab}", ctx.config.lab.search_agent_name);
    let agent = ca.issue_agent(&agent_jid.parse()?)?;
    let crl = ca.write_crl()?;

    let home = SiteHome::new(req.lab_home);
    for (from, to) in [
        (ctx.paths.ca_cert(), home.ca_cert()),
        (crl, home.crl()),
        (server.cert_path.clone(), home.server_cert(lab.as_str())),
        (server.key_path.clone(), home.server_key(lab.as_str())),
        (agent.cert_path.clone(), home.agent_cert(&agent_jid)),
        (agent.key_path.clone(), home.agent_key(&agent_jid)),
    ] {
        let bytes = std::fs::read(&from).with_context(|| format!("cannot read {}", from.display()))?;
        let is_key = to.extension().is_some_and(|e| e == "key");
        files::write(&to, &bytes, if is_key { Mode::Private } else { Mode::Public })
            .with_context(|| format!("cannot write {}", to.display()))?;
    }
    std::fs::create_dir_all(home.incoming()).with_context(|| format!("cannot create {}", home.incoming().display()))?;
    let lab_config = lab_config(&lab, &po, req.same_host.then_some(s2s_of_po.as_str()));
    files::write(&home.config_file(), lab_config.as_bytes(), Mode::Private)
        .with_context(|| format!("cannot write {}", home.config_file().display()))?;

    let mut po_text = match std::fs::read_to_string(req.po_config) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", req.po_config.display())),
    };
    if !po_text.is_empty() && !po_text.ends_with('\n') {
        po_text.push('\n');
    }
    po_text.push_str(&po_addition);
    files::write(req.po_config, po_text.as_bytes(), Mode::Private)
        .with_context(|| format!("cannot write {}", req.po_config.display()))?;

    println!("Made the home of the lab server {lab} in {}:", req.lab_home.display());
    println!("  server certificate   {}", home.server_cert(lab.as_str()).display());
    println!("  search agent         {agent_jid} ({})", home.agent_cert(&agent_jid).display());
    println!("  CA certificate, CRL  {}, {}", home.ca_cert().display(), home.crl().display());
    println!("  configuration        {}", home.config_file().display());
    println!("  drop directory       {}", home.incoming().display());
    println!("Added {lab} to [s2s] replicas in {}.", req.po_config.display());
    if req.same_host {
        println!(
            "Both sites run on this computer: the lab server takes GPs on {SAME_HOST_C2S} and servers on \
             {SAME_HOST_S2S}; each knows the other's address from [s2s.routes]."
        );
    } else {
        println!(
            "Copy {} to the lab server (it holds private keys: scp -r, then keep it readable by the Snow user \
             only). Both servers find each other by DNS (SRV or the domain, port 5269) unless [s2s.routes] says \
             otherwise.",
            req.lab_home.display()
        );
    }
    println!(
        "Start it with `snow --home {} serve`; restart the PO's `snow serve` so it pushes the key directory.",
        req.lab_home.display()
    );
    Ok(())
}

/// The lab server's `snow.toml`: its domain, the PO as master, import,
/// search agent and detection on; on one computer, its own ports and the
/// route to the PO.
fn lab_config(lab: &Domain, po: &Domain, same_host_po_s2s: Option<&str>) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "# The lab server {lab}, made at {po} by `snow site add-lab`.");
    let _ = writeln!(t, "# Every setting not here has its default (see snow.example.toml).\n");
    let _ = writeln!(t, "[server]\ndomain = \"{lab}\"");
    if same_host_po_s2s.is_some() {
        let _ = writeln!(t, "# Other ports than the PO's, which runs on the same computer.");
        let _ = writeln!(t, "c2s_bind = \"{SAME_HOST_C2S}\"\ndirect_tls_bind = \"\"");
        let _ = writeln!(t, "component_bind = \"{SAME_HOST_COMPONENTS}\"");
    }
    let _ = writeln!(t, "\n[s2s]\n# The PO pushes the key directory and the CRL to this server.\nmaster = \"{po}\"");
    if let Some(po_s2s) = same_host_po_s2s {
        let _ = writeln!(t, "bind = \"{SAME_HOST_S2S}\"\n\n[s2s.routes]\n\"{po}\" = \"{po_s2s}\"");
    }
    let _ = writeln!(
        t,
        "\n[lab]\n# Import the files the lab pushes to data/in (upload as NAME.csv.part, then rename to NAME.csv).\n\
         import = true\n# Answer GPs' searches as search@{lab}/agent.\nsearch_agent = true\n\n\
         [lab.detection]\n# Look for outbreaks after every import and alert the GPs who subscribe at {po}.\n\
         enabled = true"
    );
    t
}

/// The lines to append to the PO's configuration for the new replica, or
/// why it cannot be done by appending (the administrator edits by hand).
fn po_config_addition(path: &Path, lab: &Domain, same_host: bool) -> anyhow::Result<String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let table: toml::Table = text.parse().with_context(|| format!("{} is not valid TOML", path.display()))?;
    let by_hand = |what: &str| {
        anyhow::anyhow!(
            "{} already has {what}: add \"{lab}\" to [s2s] replicas{} there by hand, then run this again \
             with a new --lab-home (nothing was issued)",
            path.display(),
            if same_host { format!(" and \"{lab}\" = \"{SAME_HOST_S2S}\" to [s2s.routes]") } else { String::new() }
        )
    };
    if table.contains_key("s2s") {
        return Err(by_hand("an [s2s] section"));
    }
    let mut add = format!("\n# Added by `snow site add-lab --domain {lab}`.\n[s2s]\nreplicas = [\"{lab}\"]\n");
    if same_host {
        let _ = write!(add, "\n[s2s.routes]\n\"{lab}\" = \"{SAME_HOST_S2S}\"\n");
    }
    Ok(add)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_configurations_parse_and_say_what_they_should() {
        let (lab, po): (Domain, Domain) = ("lab.example".parse().unwrap(), "po.example".parse().unwrap());
        let text = lab_config(&lab, &po, Some("127.0.0.1:5269"));
        let c: crate::config::Config = toml::from_str(&text).unwrap();
        assert_eq!(c.server.domain.as_deref(), Some("lab.example"));
        assert_eq!(c.s2s.master.as_deref(), Some("po.example"));
        assert_eq!(c.s2s.routes.get("po.example").map(String::as_str), Some("127.0.0.1:5269"));
        assert_eq!(c.s2s.bind, SAME_HOST_S2S);
        assert!(c.lab.import && c.lab.search_agent && c.lab.detection.enabled);

        let dir = tempfile::tempdir().unwrap();
        let po_path = dir.path().join("snow.toml");
        std::fs::write(&po_path, "[server]\nrequire_e2e = true\n").unwrap();
        let add = po_config_addition(&po_path, &lab, true).unwrap();
        let c: crate::config::Config = toml::from_str(&format!("[server]\nrequire_e2e = true\n{add}")).unwrap();
        assert_eq!(c.s2s.replicas, vec!["lab.example".to_owned()]);
        assert_eq!(c.s2s.routes.get("lab.example").map(String::as_str), Some(SAME_HOST_S2S));

        // An existing [s2s] section is not edited behind the admin's back.
        std::fs::write(&po_path, "[s2s]\nreplicas = []\n").unwrap();
        let e = po_config_addition(&po_path, &lab, false).unwrap_err().to_string();
        assert!(e.contains("by hand") && e.contains("\"lab.example\""), "{e}");
    }
}
