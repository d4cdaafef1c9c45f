//! The `snow` binary as an administrator and a GP use it: every command,
//! and every failure is one clear sentence with a non-zero exit and no
//! half-written file left behind.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::Site;

const CA_PASS: &str = "admin passphrase 1";
const GP_PASS: &str = "gp personal pass";

impl Site {
    fn new() -> Site {
        // A 2048-bit CA keeps the tests quick.
        let site = Site::with_config("[pki]\nca_key_bits = 2048\n");
        std::fs::write(site.path("ca.pass"), format!("{CA_PASS}\n")).unwrap();
        std::fs::write(site.path("gp.pass"), format!("{GP_PASS}\n")).unwrap();
        site
    }

    fn ca_pass_arg(&self) -> String {
        self.path("ca.pass").display().to_string()
    }

    fn init(&self) {
        let pass = self.ca_pass_arg();
        self.ok(&["ca", "init", "--domain", "po.example", "--ca-passphrase-file", &pass]);
    }

    fn add_user(&self, hpnr: &str) -> (PathBuf, PathBuf) {
        let pass = self.ca_pass_arg();
        let p12 = self.path(&format!("{hpnr}.p12"));
        self.ok(&[
            "user",
            "add",
            "--hpnr",
            hpnr,
            "--phone",
            "+4791234567",
            "--email",
            "gp@legekontor.example",
            "--p12-out",
            p12.to_str().unwrap(),
            "--ca-passphrase-file",
            &pass,
        ]);
        let sms = newest(&self.home().join("outbox/sms"), hpnr);
        let otp = snow_pki_password(&std::fs::read_to_string(sms).unwrap());
        let otp_file = self.path(&format!("{hpnr}.otp"));
        std::fs::write(&otp_file, otp).unwrap();
        (p12, otp_file)
    }
}

/// `snow CMD… --server ADDR --keystore KS --passphrase-file PASS REST…`:
/// a client command as a GP runs it.
fn client<'a>(cmd: &[&'a str], addr: &'a str, ks: &'a str, pass: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut v = cmd.to_vec();
    v.extend(["--server", addr, "--keystore", ks, "--passphrase-file", pass]);
    v.extend_from_slice(rest);
    v
}

fn newest(dir: &Path, needle: &str) -> PathBuf {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().contains(needle))
        .collect();
    v.sort();
    v.pop().unwrap()
}

fn snow_pki_password(sms: &str) -> String {
    sms.lines().find_map(|l| l.rsplit_once(" is ").map(|(_, p)| p.trim().to_owned())).unwrap()
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn full_walk_through() {
    let site = Site::new();
    site.init();
    let pass = site.ca_pass_arg();
    let out = site.ok(&["server", "cert", "--ca-passphrase-file", &pass]);
    assert!(out.contains("po.example"), "{out}");
    let (p12, otp) = site.add_user("9144889");
    let eml = std::fs::read_to_string(newest(&site.home().join("outbox/email"), "9144889")).unwrap();
    assert!(eml.contains("Content-Type: application/x-pkcs12"));
    let password = std::fs::read_to_string(&otp).unwrap();
    assert!(!eml.contains(&password));

    let list = site.ok(&["user", "list"]);
    assert!(list.contains("9144889@po.example") && list.contains("active"), "{list}");
    // Contact details are not printed.
    assert!(!list.contains("4791234567") && !list.contains("legekontor"), "{list}");

    let ks = site.path("gp-keystore");
    let out = site.ok(&[
        "key",
        "import",
        p12.to_str().unwrap(),
        "--keystore",
        ks.to_str().unwrap(),
        "--password-file",
        otp.to_str().unwrap(),
        "--passphrase-file",
        site.path("gp.pass").to_str().unwrap(),
    ]);
    assert!(out.contains("9144889@po.example"), "{out}");
    let gp_pass = site.path("gp.pass");
    let show =
        site.ok(&["key", "show", "--keystore", ks.to_str().unwrap(), "--passphrase-file", gp_pass.to_str().unwrap()]);
    for needle in ["CN=9144889", "9144889@po.example", "Snow CA po.example", "Valid until", "SHA-256"] {
        assert!(show.contains(needle), "{needle} missing in {show}");
    }
    // `key show` checks the passphrase, and says which secret was wrong.
    std::fs::write(site.path("not-mine.pass"), "somebody else's passphrase\n").unwrap();
    let e = site.fails(&[
        "key",
        "show",
        "--keystore",
        ks.to_str().unwrap(),
        "--passphrase-file",
        site.path("not-mine.pass").to_str().unwrap(),
    ]);
    assert!(e.contains("your personal passphrase does not open the key store"), "{e}");
    assert!(!e.contains("CN=9144889"), "{e}");
    // Nothing secret on stdout or in the key store's certificate file.
    assert!(!out.contains(&password) && !show.contains(&password));

    site.ok(&["user", "revoke", "--hpnr", "9144889", "--reason", "key-compromise", "--ca-passphrase-file", &pass]);
    assert!(site.ok(&["user", "list"]).contains("revoked (key-compromise)"));
    let crl_copy = site.path("crl-copy.pem");
    site.ok(&["ca", "crl", "--out", crl_copy.to_str().unwrap(), "--ca-passphrase-file", &pass]);
    assert!(std::fs::read_to_string(crl_copy).unwrap().starts_with("-----BEGIN X509 CRL-----"));
}

#[test]
fn secrets_from_the_environment() {
    let site = Site::new();
    let out = Command::new(env!("CARGO_BIN_EXE_snow"))
        .args(["ca", "init", "--domain", "lab.example"])
        .env("SNOW_HOME", site.home())
        .env("SNOW_CONFIG", site.path("snow.toml"))
        .env("SNOW_CA_PASSPHRASE", CA_PASS)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn ca_errors() {
    let site = Site::new();
    let pass = site.ca_pass_arg();
    let e = site.fails(&["user", "list"]);
    assert!(e.contains("no CA in") && e.contains("snow ca init"), "{e}");
    let e = site.fails(&[
        "user",
        "add",
        "--hpnr",
        "9144889",
        "--phone",
        "+4791234567",
        "--email",
        "a@b.example",
        "--ca-passphrase-file",
        &pass,
    ]);
    assert!(e.contains("no CA in"), "{e}");
    // No passphrase and no terminal: say how to give one instead of hanging.
    let e = site.fails(&["ca", "init", "--domain", "po.example"]);
    assert!(e.contains("--ca-passphrase-file") && e.contains("SNOW_CA_PASSPHRASE"), "{e}");
    let e = site.fails(&["ca", "init", "--domain", "bad_domain", "--ca-passphrase-file", &pass]);
    assert!(e.contains("malformed domain"), "{e}");
    std::fs::write(site.path("short.pass"), "short\n").unwrap();
    let e = site.fails(&[
        "ca",
        "init",
        "--domain",
        "po.example",
        "--ca-passphrase-file",
        site.path("short.pass").to_str().unwrap(),
    ]);
    assert!(e.contains("too short"), "{e}");
    assert!(files_under(&site.home()).is_empty(), "a failed init left files: {:?}", files_under(&site.home()));

    site.init();
    let e = site.fails(&["ca", "init", "--domain", "po.example", "--ca-passphrase-file", &pass]);
    assert!(e.contains("already exists"), "{e}");
    std::fs::write(site.path("wrong.pass"), "not the admin passphrase\n").unwrap();
    let wrong = site.path("wrong.pass").display().to_string();
    let e = site.fails(&["ca", "crl", "--ca-passphrase-file", &wrong]);
    assert_eq!(e.trim(), "error: wrong CA passphrase");
}

#[test]
fn user_errors() {
    let site = Site::new();
    site.init();
    let pass = site.ca_pass_arg();
    let before = files_under(&site.home());
    for (hpnr, phone, email, expect) in [
        ("12", "+4791234567", "gp@x.example", "malformed HPNR"),
        ("91448x9", "+4791234567", "gp@x.example", "malformed HPNR"),
        ("9144889", "123", "gp@x.example", "malformed phone number"),
        ("9144889", "+47 abc", "gp@x.example", "malformed phone number"),
        ("9144889", "+4791234567", "gp-at-x.example", "malformed e-mail"),
        ("9144889", "+4791234567", "gp@x", "malformed e-mail"),
    ] {
        let e = site.fails(&[
            "user",
            "add",
            "--hpnr",
            hpnr,
            "--phone",
            phone,
            "--email",
            email,
            "--ca-passphrase-file",
            &pass,
        ]);
        assert!(e.contains(expect), "{hpnr} {phone} {email}: {e}");
    }
    assert_eq!(files_under(&site.home()), before, "failed user add left files");

    site.add_user("9144889");
    let before = files_under(&site.home());
    let e = site.fails(&[
        "user",
        "add",
        "--hpnr",
        "9144889",
        "--phone",
        "+4791234567",
        "--email",
        "gp@x.example",
        "--ca-passphrase-file",
        &pass,
    ]);
    assert!(e.contains("already exists"), "{e}");
    let e =
        site.fails(&["user", "revoke", "--hpnr", "7654321", "--reason", "superseded", "--ca-passphrase-file", &pass]);
    assert!(e.contains("no user with HPNR 7654321"), "{e}");
    let e = site.fails(&["user", "revoke", "--hpnr", "9144889", "--reason", "bored", "--ca-passphrase-file", &pass]);
    assert!(e.contains("unknown revocation reason") && e.contains("key-compromise"), "{e}");
    assert_eq!(files_under(&site.home()), before, "failed commands changed files");
    site.ok(&["user", "revoke", "--hpnr", "9144889", "--reason", "superseded", "--ca-passphrase-file", &pass]);
    let e =
        site.fails(&["user", "revoke", "--hpnr", "9144889", "--reason", "superseded", "--ca-passphrase-file", &pass]);
    assert!(e.contains("already revoked"), "{e}");
}

#[test]
fn import_errors() {
    let site = Site::new();
    site.init();
    let (p12, otp) = site.add_user("9144889");
    let ks = site.path("ks");
    let ks_arg = ks.to_str().unwrap();
    let gp = site.path("gp.pass").display().to_string();
    let import = |file: &Path, pw: &Path| -> Vec<String> {
        vec![
            "key".into(),
            "import".into(),
            file.display().to_string(),
            "--keystore".into(),
            ks_arg.into(),
            "--password-file".into(),
            pw.display().to_string(),
            "--passphrase-file".into(),
            gp.clone(),
        ]
    };

    // Wrong one-time password.
    std::fs::write(site.path("bad.otp"), "WRONGPASSWORD1234567\n").unwrap();
    let v = import(&p12, &site.path("bad.otp"));
    let e = site.fails(&args(&v));
    assert!(e.contains("wrong password") && e.contains("one-time password"), "{e}");
    // Corrupt file: flip bytes in the middle.
    let mut bytes = std::fs::read(&p12).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 16] {
        *b ^= 0x5a;
    }
    std::fs::write(site.path("corrupt.p12"), &bytes).unwrap();
    let v = import(&site.path("corrupt.p12"), &otp);
    let e = site.fails(&args(&v));
    assert!(e.contains("corrupt.p12"), "{e}");
    // Foreign files: text, a certificate, nothing at all.
    std::fs::write(site.path("notes.txt"), "dear colleague, see you at the meeting\n").unwrap();
    let v = import(&site.path("notes.txt"), &otp);
    let e = site.fails(&args(&v));
    assert!(e.contains("neither a PKCS#12"), "{e}");
    let v = import(&site.home().join("ca/ca.pem"), &otp);
    let e = site.fails(&args(&v));
    assert!(e.contains("neither a PKCS#12"), "{e}");
    let v = import(&site.path("missing.p12"), &otp);
    let e = site.fails(&args(&v));
    assert!(e.contains("cannot read"), "{e}");
    // A too-short personal passphrase.
    std::fs::write(site.path("short.pass"), "short\n").unwrap();
    let mut v = import(&p12, &otp);
    let last = v.len() - 1;
    v[last] = site.path("short.pass").display().to_string();
    let e = site.fails(&args(&v));
    assert!(e.contains("too short"), "{e}");
    assert!(!ks.exists(), "a failed import left a key store behind");
    // No key store yet.
    let e = site.fails(&["key", "show", "--keystore", ks_arg]);
    assert!(e.contains("no key store"), "{e}");

    // Success, then a second import without --force is refused.
    let v = import(&p12, &otp);
    site.ok(&args(&v));
    let e = site.fails(&args(&v));
    assert!(e.contains("already exists") && e.contains("--force"), "{e}");
    let mut v = v;
    v.push("--force".into());
    site.ok(&args(&v));
    let leftovers: Vec<_> = std::fs::read_dir(site.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(".snow"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Starts `snow serve` for `site`; returns the process and its STARTTLS address.
fn start_server(site: &Site) -> (std::process::Child, String) {
    let (server, addr, _) = start_server_until(site, "(STARTTLS)");
    (server, addr)
}

/// Like [`start_server`], also returning the start-up lines up to the one
/// that contains `until`.
fn start_server_until(site: &Site, until: &str) -> (std::process::Child, String, Vec<String>) {
    use std::io::{BufRead, BufReader};
    let mut server = Command::new(env!("CARGO_BIN_EXE_snow"))
        .arg("serve")
        .env("SNOW_HOME", site.home())
        .env("SNOW_CONFIG", site.path("snow.toml"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let done = line.contains(until);
        seen.push(line);
        if done {
            break;
        }
    }
    let addr = seen[0].rsplit_once(" on ").unwrap().1.split(' ').next().unwrap().to_owned();
    // Keep reading, so the server never writes into a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (server, addr, seen)
}

/// A site with a server certificate and two users with imported keys.
fn chat_site() -> Site {
    let site = Site::new();
    std::fs::write(
        site.path("snow.toml"),
        "[pki]\nca_key_bits = 2048\n[server]\nc2s_bind = \"127.0.0.1:0\"\ndirect_tls_bind = \"127.0.0.1:0\"\n[s2s]\nbind = \"\"\n",
    )
    .unwrap();
    site.init();
    let pass = site.ca_pass_arg();
    site.ok(&["server", "cert", "--ca-passphrase-file", &pass]);
    let gp = site.path("gp.pass").display().to_string();
    for hpnr in ["1111111", "2222222"] {
        let (p12, otp) = site.add_user(hpnr);
        let ks = site.path(&format!("ks-{hpnr}")).display().to_string();
        site.ok(&[
            "key",
            "import",
            p12.to_str().unwrap(),
            "--keystore",
            &ks,
            "--password-file",
            otp.to_str().unwrap(),
            "--passphrase-file",
            &gp,
        ]);
    }
    site
}

/// A chat site whose server has one external component `domain` with
/// message authentication (its secret in SNOW_HOME/`name`.secret, its
/// source and the server's keys generated).
fn component_site(name: &str, domain: &str) -> Site {
    let site = chat_site();
    std::fs::write(
        site.path("snow.toml"),
        format!(
            "[pki]\nca_key_bits = 2048\n[server]\nc2s_bind = \"127.0.0.1:0\"\ndirect_tls_bind = \"\"\n\
             component_bind = \"127.0.0.1:0\"\n[s2s]\nbind = \"\"\n\
             [[components]]\ndomain = \"{domain}\"\nsecret_file = \"{name}.secret\"\nhmac = true\nsource = \"{name}\"\n"
        ),
    )
    .unwrap();
    site.ok(&["msgauth", "keygen", "--source", name]);
    site.ok(&["msgauth", "keygen", "--source", "po.example"]);
    std::fs::write(site.home().join(format!("{name}.secret")), format!("a shared secret of the {name} agent\n"))
        .unwrap();
    site
}

/// `snow ARGS` as a background process of `site`, its standard output
/// piped and read line by line.
fn spawn_snow(
    site: &Site,
    args: &[&str],
) -> (std::process::Child, std::io::Lines<std::io::BufReader<std::process::ChildStdout>>) {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_snow"))
        .args(args)
        .env("SNOW_HOME", site.home())
        .env("SNOW_CONFIG", site.path("snow.toml"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let out = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    (child, out)
}

/// SIGTERM, and a clean exit.
fn terminate(p: &mut std::process::Child) {
    assert!(Command::new("kill").args(["-TERM", &p.id().to_string()]).status().unwrap().success());
    assert!(p.wait().unwrap().success());
}

/// `snow serve` as a process, `snow chat send`/`listen` and `snow
/// presence` against it, and a graceful stop on SIGTERM.
#[test]
fn serve_and_chat() {
    let site = chat_site();
    let gp = site.path("gp.pass").display().to_string();
    let (mut server, addr) = start_server(&site);
    let ks1 = site.path("ks-1111111").display().to_string();
    let ks2 = site.path("ks-2222222").display().to_string();

    let out = site.ok(&client(&["chat", "send"], &addr, &ks1, &gp, &["--to", "2222222@po.example", "God morgen"]));
    assert!(out.contains("Sent to 2222222@po.example"), "{out}");
    let out = site.ok(&client(&["chat", "listen"], &addr, &ks2, &gp, &["--count", "1", "--timeout", "20"]));
    assert!(
        out.contains("1111111@po.example") && out.contains(": [encrypted, signed by 1111111@po.example] God morgen"),
        "{out}"
    );
    let e = site.fails(&client(&["chat", "send"], &addr, &ks1, &gp, &["--to", "7777777@po.example", "hallo"]));
    assert!(e.contains("no such user in the key directory: 7777777@po.example"), "{e}");
    let e =
        site.fails(&client(&["chat", "send", "--plain"], &addr, &ks1, &gp, &["--to", "7777777@po.example", "hallo"]));
    assert!(e.contains("not delivered") && e.contains("service-unavailable"), "{e}");
    let out = site.ok(&client(
        &["chat", "send", "--plain"],
        &addr,
        &ks1,
        &gp,
        &["--to", "2222222@po.example", "i klartekst"],
    ));
    assert!(out.contains("(clear text)"), "{out}");
    let out = site.ok(&client(&["chat", "listen"], &addr, &ks2, &gp, &["--count", "1", "--timeout", "20"]));
    assert!(out.contains(": [NOT encrypted] i klartekst"), "{out}");
    std::fs::write(site.path("wrong.pass"), "not my passphrase\n").unwrap();
    let e = site.fails(&client(
        &["chat", "send"],
        &addr,
        &ks1,
        site.path("wrong.pass").to_str().unwrap(),
        &["--to", "2222222@po.example", "x"],
    ));
    assert!(e.contains("your personal passphrase does not open the key store"), "{e}");

    let out = site.ok(&client(&["keys", "lookup"], &addr, &ks1, &gp, &["2222222@po.example", "3333333@po.example"]));
    assert!(out.contains("2222222@po.example: valid") && out.contains("CN=2222222"), "{out}");
    assert!(out.contains("3333333@po.example: unknown"), "{out}");
    let out = site.ok(&client(&["presence"], &addr, &ks1, &gp, &["--listen", "0"]));
    assert!(out.contains("You are online as 1111111@po.example/"), "{out}");

    // SIGTERM: the server says goodbye and exits cleanly.
    let pid = server.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = server.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

/// A chat whose signature does not hold for the receiver (here: signed
/// for someone else) is dropped by `snow chat listen`, with its reason and
/// without its text.
#[test]
fn chat_listen_drops_an_unverified_chat() {
    let site = chat_site();
    let gp = site.path("gp.pass").display().to_string();
    let (mut server, addr) = start_server(&site);
    let ks1 = site.path("ks-1111111");
    let ks2 = site.path("ks-2222222").display().to_string();
    // GP 1 writes with its own client: signed for GP 1 only, encrypted to GP 2.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        use snow_crypto::KeyStore;
        let store = snow_crypto::FileKeyStore::new(&ks1);
        let identity = store.unlock(GP_PASS).unwrap();
        let chain = store.certificate_chain().unwrap();
        let gp2 = snow_crypto::FileKeyStore::new(&ks2).certificate_chain().unwrap();
        let opts = snow_client::ConnectOptions {
            addr: addr.parse().unwrap(),
            domain: "po.example".into(),
            ca_der: chain.last().unwrap().clone(),
            direct_tls: false,
            resource: None,
            timeout: std::time::Duration::from_secs(15),
        };
        let mut c = snow_client::Client::connect(&opts, &identity).await.unwrap();
        let signed = snow_client::signed::sign(
            snow_client::signed::Kind::Chat,
            vec![snow_xml::Node::Text("ikke til deg".into())],
            &["1111111@po.example"],
            None,
            &identity,
            snow_client::unix_now(),
        )
        .unwrap();
        let mut body = snow_xml::Element::new(snow_xml::NS_CLIENT, "body").with_child(signed);
        snow_crypto::e2e::encrypt_content(&mut body, snow_xml::NS_CLIENT, &[gp2[0].as_slice()], Default::default())
            .unwrap();
        let msg = snow_xml::Element::new(snow_xml::NS_CLIENT, "message")
            .with_attr("to", "2222222@po.example")
            .with_attr("type", "chat")
            .with_child(body);
        c.send(&msg).await.unwrap();
        c.close().await.unwrap();
    });
    let out = site.ok(&client(&["chat", "listen"], &addr, &ks2, &gp, &["--count", "1", "--timeout", "20"]));
    assert!(
        out.contains("1111111@po.example")
            && out.contains(": unverified message dropped: it is not addressed to 2222222@po.example"),
        "{out}"
    );
    assert!(!out.contains("ikke til deg"), "the text was shown: {out}");
    server.kill().unwrap();
    server.wait().unwrap();
}

/// Offline messages are on disk once the sender has its answer: a server
/// killed with SIGKILL and restarted delivers each of them exactly once.
#[test]
fn offline_messages_survive_sigkill() {
    let site = chat_site();
    let gp = site.path("gp.pass").display().to_string();
    let ks1 = site.path("ks-1111111").display().to_string();
    let ks2 = site.path("ks-2222222").display().to_string();
    let (mut server, addr) = start_server(&site);
    // The recipient's account exists (the PO's users are known accounts).
    for i in 1..=3 {
        site.ok(&client(&["chat", "send"], &addr, &ks1, &gp, &["--to", "2222222@po.example", &format!("melding {i}")]));
    }
    server.kill().unwrap();
    server.wait().unwrap();
    // The stored copies are end-to-end encrypted: no clear text on disk.
    let db = snow_core::SiteHome::new(site.home()).server_db();
    for f in [db.clone(), db.with_extension("db-wal")] {
        if let Ok(bytes) = std::fs::read(&f) {
            assert!(!bytes.windows(7).any(|w| w == b"melding"), "clear text in {}", f.display());
        }
    }

    let (mut server, addr) = start_server(&site);
    let out = site.ok(&client(&["chat", "listen"], &addr, &ks2, &gp, &["--count", "3", "--timeout", "20"]));
    let got: Vec<&str> = out.lines().filter_map(|l| l.rsplit_once(": ").map(|(_, b)| b)).collect();
    let signed = |t: &str| format!("[encrypted, signed by 1111111@po.example] {t}");
    assert_eq!(got, [signed("melding 1"), signed("melding 2"), signed("melding 3")], "{out}");
    // Listening again right away: nothing is delivered twice.
    let out = site.ok(&client(&["chat", "listen"], &addr, &ks2, &gp, &["--timeout", "2"]));
    assert!(!out.contains("melding"), "delivered twice: {out}");
    server.kill().unwrap();
    server.wait().unwrap();
}

/// `snow msgauth keygen|sign|verify` by hand.
#[test]
fn msgauth_keys_sign_and_verify() {
    let site = Site::new();
    let out = site.ok(&["msgauth", "keygen", "--source", "echo", "--kid", "k1"]);
    assert!(out.contains("Added key \"k1\" (hmac-sha256) for source \"echo\""), "{out}");
    let keys = site.home().join("msgauth.keys");
    let text = std::fs::read_to_string(&keys).unwrap();
    assert!(!out.contains(text.split_whitespace().nth(3).unwrap()), "the key was printed");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&keys).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let e = site.fails(&["msgauth", "keygen", "--source", "echo", "--kid", "k1"]);
    assert!(e.contains("already has key"), "{e}");
    site.ok(&["msgauth", "keygen", "--source", "legacy", "--kid", "k1", "--algorithm", "hmac-md5"]);

    std::fs::write(site.path("msg.txt"), "Influensa A: 12 positive i uke 47").unwrap();
    let signed = site.ok(&["msgauth", "sign", "--source", "legacy", "--in", site.path("msg.txt").to_str().unwrap()]);
    assert!(signed.starts_with("Influensa A: 12 positive i uke 47:") && signed.ends_with("=="), "{signed}");
    std::fs::write(site.path("signed.txt"), &signed).unwrap();
    let back = site.ok(&["msgauth", "verify", "--in", site.path("signed.txt").to_str().unwrap()]);
    assert_eq!(back, "Influensa A: 12 positive i uke 47");
    std::fs::write(site.path("changed.txt"), signed.replace("12", "13")).unwrap();
    let e = site.fails(&["msgauth", "verify", "--in", site.path("changed.txt").to_str().unwrap()]);
    assert!(e.contains("does not match"), "{e}");

    std::fs::write(
        site.path("stanza.xml"),
        "<message xmlns='jabber:client' to='echo.po.example'><body>hi</body></message>",
    )
    .unwrap();
    let signed = site.ok(&[
        "msgauth",
        "sign",
        "--source",
        "echo",
        "--carrier",
        "stanza",
        "--in",
        site.path("stanza.xml").to_str().unwrap(),
    ]);
    assert!(signed.contains("urn:snow:msgauth:1"), "{signed}");
    std::fs::write(site.path("signed.xml"), &signed).unwrap();
    let back =
        site.ok(&["msgauth", "verify", "--carrier", "stanza", "--in", site.path("signed.xml").to_str().unwrap()]);
    assert!(back.contains("<body>hi</body>") && !back.contains("msgauth"), "{back}");

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = site.fails(&["msgauth", "verify", "--in", site.path("signed.txt").to_str().unwrap()]);
        assert!(e.contains("chmod 600"), "{e}");
    }
}

/// `snow serve` with an external component and `snow agent run echo`
/// attached with message authentication: a GP's message comes back.
#[test]
fn serve_with_the_echo_agent_as_a_component() {
    use std::io::{BufRead, BufReader};
    let site = component_site("echo", "echo.po.example");

    let (mut server, addr, lines) = start_server_until(&site, "(external components)");
    let component = lines.last().and_then(|l| l.split_whitespace().rev().nth(2).map(str::to_owned)).unwrap();

    let secret = site.home().join("echo.secret");
    let (mut echo, mut out) = spawn_snow(
        &site,
        &[
            "agent",
            "run",
            "echo",
            "--server",
            &component,
            "--domain",
            "echo.po.example",
            "--hmac",
            "--source",
            "echo",
            "--secret-file",
            secret.to_str().unwrap(),
        ],
    );
    let attached = out.next().unwrap().unwrap();
    assert!(attached.contains("attached") && attached.contains("message authentication"), "{attached}");

    let gp = site.path("gp.pass").display().to_string();
    let ks1 = site.path("ks-1111111").display().to_string();
    // Listening (another resource of the same user) before the message goes.
    let mut listen = Command::new(env!("CARGO_BIN_EXE_snow"))
        .args(client(&["chat", "listen"], &addr, &ks1, &gp, &["--count", "1", "--timeout", "30"]))
        .env("SNOW_HOME", site.home())
        .env("SNOW_CONFIG", site.path("snow.toml"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut listening = BufReader::new(listen.stderr.take().unwrap()).lines();
    let first = listening.next().unwrap().unwrap();
    assert!(first.contains("Listening as"), "{first}");
    site.ok(&client(&["chat", "send", "--plain"], &addr, &ks1, &gp, &["--to", "echo.po.example", "ekko?"]));
    let got = listen.wait_with_output().unwrap();
    let got = String::from_utf8_lossy(&got.stdout);
    assert!(got.contains("echo.po.example") && got.contains("ekko?"), "{got}");

    terminate(&mut echo);
    terminate(&mut server);
    let summary = out.next().unwrap().unwrap();
    assert!(summary.starts_with("Echoed 1"), "{summary}");
}

/// `snow agent cert --jid search.po.example` and `snow agent run search`:
/// the search agent as a component in a process of its own, with message
/// authentication, answering a GP's `snow search --agent`.
#[test]
fn the_search_agent_runs_as_a_component() {
    let site = component_site("search", "search.po.example");
    let pass = site.ca_pass_arg();
    let secret = site.home().join("search.secret");
    let run = [
        "agent",
        "run",
        "search",
        "--domain",
        "search.po.example",
        "--hmac",
        "--source",
        "search",
        "--secret-file",
        secret.to_str().unwrap(),
    ];
    // Without its certificate the agent says what to do.
    let err = site.fails(&run);
    assert!(err.contains("snow agent cert --jid search.po.example"), "{err}");
    let issued = site.ok(&["agent", "cert", "--jid", "search.po.example", "--ca-passphrase-file", &pass]);
    assert!(issued.contains("search.po.example"), "{issued}");

    let (mut server, addr, lines) = start_server_until(&site, "(external components)");
    let component = lines.last().and_then(|l| l.split_whitespace().rev().nth(2).map(str::to_owned)).unwrap();
    let (mut agent, mut out) = spawn_snow(&site, &[&run[..], &["--server", &component]].concat());
    let started = out.next().unwrap().unwrap();
    assert!(started.contains("search.po.example") && started.contains("message authentication"), "{started}");

    let gp = site.path("gp.pass").display().to_string();
    let ks1 = site.path("ks-1111111").display().to_string();
    let search = client(
        &["search"],
        &addr,
        &ks1,
        &gp,
        &["--agent", "search.po.example", "--analysis", "INFA", "--area", "all", "--weeks", "4", "--format", "csv"],
    );
    // The agent attaches in the background: retry for a while.
    let mut last = String::new();
    let csv = (0..50)
        .find_map(|_| {
            let o = site.snow(&search);
            if o.status.success() {
                return Some(String::from_utf8(o.stdout).unwrap());
            }
            last = String::from_utf8_lossy(&o.stderr).into_owned();
            std::thread::sleep(std::time::Duration::from_millis(200));
            None
        })
        .unwrap_or_else(|| panic!("the component never answered: {last}"));
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows[0], "period,tested,positive,persons,note");
    assert_eq!(rows.len(), 5, "{csv}");
    assert!(rows[1..].iter().all(|r| r.ends_with(",,,,no data")), "an empty lab store: {csv}");
    // Its choices: the lab's analyses, and no areas or weeks yet.
    let choices = site.ok(&client(&["search"], &addr, &ks1, &gp, &["--agent", "search.po.example", "--choices"]));
    assert!(choices.starts_with("What you may search at search.po.example:"), "{choices}");
    assert!(choices.contains("  INFA   Influensa A\n") && choices.contains("choice):\n  none yet\n"), "{choices}");
    assert!(choices.contains("No data yet"), "{choices}");

    terminate(&mut agent);
    terminate(&mut server);
    let summary = out.next().unwrap().unwrap();
    assert!(summary.starts_with("Took ") && !summary.starts_with("Took 0 "), "{summary}");
}

/// `snow lab detect` on a series too short for the algorithm says so, by
/// series name, with the history needed and present (its rows would
/// otherwise just be missing), and still writes the others.
#[test]
fn lab_detect_names_series_too_short_for_the_algorithm() {
    let site = Site::new();
    let mut csv = String::from("series,year,week,count\n");
    for w in 1..=52 {
        csv.push_str(&format!("short,2025,{w},{}\n", w % 3));
    }
    for (year, weeks) in [(2020, 53), (2021, 52), (2022, 52), (2023, 52), (2024, 52), (2025, 52)] {
        for w in 1..=weeks {
            csv.push_str(&format!("long,{year},{w},{}\n", w % 4));
        }
    }
    std::fs::write(site.path("series.csv"), csv).unwrap();
    let input = site.path("series.csv").display().to_string();
    let out = site.snow(&["lab", "detect", "--input", &input, "--algorithm", "farrington"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("series short") && err.contains("264 weeks") && err.contains("has 52"), "{err}");
    assert!(!err.contains("series long"), "{err}");
    let rows = String::from_utf8_lossy(&out.stdout);
    assert!(rows.lines().any(|l| l.contains(",long,")), "{rows}");
}

/// `snow contacts` and `snow presence` between two GPs over a real server:
/// a request shown as pending, adding each other, both seeing the other
/// online, and removal ending it; errors in words.
#[test]
fn contacts_add_list_remove_and_presence() {
    let site = chat_site();
    let gp = site.path("gp.pass").display().to_string();
    let (mut server, addr) = start_server(&site);
    let ks1 = site.path("ks-1111111").display().to_string();
    let ks2 = site.path("ks-2222222").display().to_string();
    let (one, two) = ("1111111@po.example", "2222222@po.example");

    let out = site.ok(&client(&["contacts", "list"], &addr, &ks1, &gp, &[]));
    assert!(out.contains("No contacts yet: add one with `snow contacts add JID`."), "{out}");
    let out = site.ok(&client(&["contacts", "add"], &addr, &ks1, &gp, &[two, "--name", "Dr To"]));
    assert!(out.contains("Added 2222222@po.example (Dr To)") && out.contains("waiting for them to accept"), "{out}");
    let out = site.ok(&client(&["contacts", "list"], &addr, &ks1, &gp, &[]));
    assert!(out.contains("2222222@po.example (Dr To): waiting for them to accept"), "{out}");

    // The other GP sees the request, in `presence` and in `contacts list`.
    let out = site.ok(&client(&["presence"], &addr, &ks2, &gp, &["--listen", "0"]));
    assert!(
        out.contains(
            "1111111@po.example asked to see your presence — accept with `snow contacts add 1111111@po.example`"
        ),
        "{out}"
    );
    let out = site.ok(&client(&["contacts", "list"], &addr, &ks2, &gp, &[]));
    assert!(out.contains("1111111@po.example: they asked to see your presence"), "{out}");
    let out = site.ok(&client(&["contacts", "add"], &addr, &ks2, &gp, &[one]));
    assert!(out.contains("You accepted their request"), "{out}");
    assert!(out.contains("Now: you see each other's presence"), "{out}");
    let out = site.ok(&client(&["contacts", "list"], &addr, &ks1, &gp, &[]));
    assert!(out.contains("2222222@po.example (Dr To): you see each other's presence"), "{out}");

    // Each sees the other online while the other listens.
    let online_line = |out: &str, jid: &str| -> String {
        out.lines().find(|l| l.contains(jid) && !l.contains("asked")).unwrap_or_default().to_owned()
    };
    let listen = |ks: &str| {
        let (child, _) = spawn_snow(&site, &client(&["chat", "listen"], &addr, ks, &gp, &["--timeout", "60"]));
        child
    };
    let seen_online = |ks: &str, jid: &str| -> String {
        // The listener logs in in the background: ask until it is there.
        let mut last = String::new();
        for _ in 0..20 {
            last = site.ok(&client(&["presence"], &addr, ks, &gp, &["--listen", "1"]));
            if online_line(&last, jid).contains(" online ") {
                break;
            }
        }
        last
    };
    let mut two_listening = listen(&ks2);
    let out = seen_online(&ks1, two);
    assert!(online_line(&out, two).contains(" online "), "{out}");
    assert!(online_line(&out, two).contains("you see each other's presence"), "{out}");
    let mut one_listening = listen(&ks1);
    let out = seen_online(&ks2, one);
    assert!(online_line(&out, one).contains(" online "), "{out}");

    // Removal: the first GP's list is empty, and neither sees the other.
    let out = site.ok(&client(&["contacts", "remove"], &addr, &ks1, &gp, &[two]));
    assert!(out.contains("Removed 2222222@po.example"), "{out}");
    let out = site.ok(&client(&["presence"], &addr, &ks1, &gp, &["--listen", "1"]));
    assert!(out.contains("No contacts yet") && !out.contains(two), "{out}");
    let out = site.ok(&client(&["presence"], &addr, &ks2, &gp, &["--listen", "1"]));
    let line = online_line(&out, one);
    assert!(line.contains("neither of you sees the other's presence") && !line.contains(" online "), "{out}");
    one_listening.kill().unwrap();
    one_listening.wait().unwrap();
    two_listening.kill().unwrap();
    two_listening.wait().unwrap();

    // Errors, each one sentence.
    let e = site.fails(&client(&["contacts", "add"], &addr, &ks1, &gp, &["not a jid"]));
    assert!(e.contains("\"not a jid\" is not a JID like 9144889@po.example"), "{e}");
    let e = site.fails(&client(&["contacts", "add"], &addr, &ks1, &gp, &["2222222@po.example/laptop"]));
    assert!(e.contains("without a resource"), "{e}");
    let e = site.fails(&client(&["contacts", "add"], &addr, &ks1, &gp, &["7777777@po.example"]));
    assert_eq!(e.trim(), "error: no such user in the key directory: 7777777@po.example");
    let e = site.fails(&client(&["contacts", "add"], &addr, &ks1, &gp, &[one]));
    assert!(e.contains("is you"), "{e}");
    let e = site.fails(&client(&["contacts", "remove"], &addr, &ks1, &gp, &["7777777@po.example"]));
    assert!(e.contains("7777777@po.example is not one of your contacts"), "{e}");
    terminate(&mut server);
}

/// Revoking or re-keying a user withdraws their unsent key e-mail and SMS
/// from the outbox and says how many; a mailed e-mail stays as the record;
/// `snow outbox send` has nothing left to send.
#[test]
fn revocation_withdraws_queued_key_deliveries() {
    let site = Site::new();
    site.init();
    let pass = site.ca_pass_arg();
    site.add_user("9144889");
    site.add_user("1234567");
    let waiting = |hpnr: &str| -> Vec<PathBuf> {
        ["outbox/email", "outbox/sms"]
            .iter()
            .flat_map(|d| std::fs::read_dir(site.home().join(d)).unwrap())
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .filter(|p| std::fs::read_to_string(p).unwrap().contains(&format!("X-Snow-User: {hpnr}@po.example")))
            .collect()
    };
    assert_eq!(waiting("9144889").len(), 2, "an e-mail and an SMS, each naming the user");

    let out =
        site.ok(&["user", "revoke", "--hpnr", "9144889", "--reason", "key-compromise", "--ca-passphrase-file", &pass]);
    assert!(out.contains("Revoked 9144889@po.example (key-compromise)"), "{out}");
    assert!(out.contains("Withdrew 2 unsent key delivery files from the outbox (1 e-mail and 1 SMS)"), "{out}");
    assert!(waiting("9144889").is_empty());
    assert!(files_under(&site.home().join("outbox")).iter().all(|p| !p.to_string_lossy().contains("9144889")));
    assert_eq!(waiting("1234567").len(), 2, "another user's delivery was touched");

    // Re-key: the old certificate's files go, the new ones wait.
    let before = waiting("1234567");
    let out = site.ok(&["user", "rekey", "--hpnr", "1234567", "--ca-passphrase-file", &pass]);
    assert!(out.contains("Withdrew 2 unsent key delivery files from the outbox (1 e-mail and 1 SMS)"), "{out}");
    let after = waiting("1234567");
    assert_eq!(after.len(), 2);
    assert!(before.iter().all(|p| !p.exists()));
    // The new e-mail is mailed (as `snow outbox send` does), then the user
    // is revoked: only the SMS is left to withdraw, the sent e-mail stays.
    let eml = after.iter().find(|p| p.extension().is_some_and(|e| e == "eml")).unwrap();
    let sent = site.home().join("outbox/email/sent").join(eml.file_name().unwrap());
    std::fs::create_dir_all(sent.parent().unwrap()).unwrap();
    std::fs::rename(eml, &sent).unwrap();
    let out =
        site.ok(&["user", "revoke", "--hpnr", "1234567", "--reason", "superseded", "--ca-passphrase-file", &pass]);
    assert!(out.contains("Withdrew 1 unsent key delivery file from the outbox (0 e-mails and 1 SMS)"), "{out}");
    assert!(sent.exists(), "the record of a mailed e-mail was removed");
    let out = site.ok(&["outbox", "send"]);
    assert!(out.contains("No e-mail waiting"), "{out}");
    assert!(std::fs::read_dir(site.home().join("outbox/sms")).unwrap().next().is_none());
}

/// The GP's client commands say what went wrong in words: a revoked
/// user's login, an unknown recipient or lab, a server that is not there.
#[test]
fn client_errors_in_words() {
    let site = chat_site();
    let pass = site.ca_pass_arg();
    let gp = site.path("gp.pass").display().to_string();
    let ks1 = site.path("ks-1111111").display().to_string();
    let ks2 = site.path("ks-2222222").display().to_string();
    site.ok(&["user", "revoke", "--hpnr", "2222222", "--reason", "key-compromise", "--ca-passphrase-file", &pass]);
    let (mut server, addr) = start_server(&site);

    for cmd in [&["chat", "send", "--to", "1111111@po.example", "hei"][..], &["presence"], &["contacts", "list"]] {
        let e = site.fails(&client(cmd, &addr, &ks2, &gp, &[]));
        assert_eq!(e.trim(), "error: your certificate has been revoked — contact the Snow administrator", "{cmd:?}");
    }
    let e = site.fails(&client(&["chat", "send"], &addr, &ks1, &gp, &["--to", "7777777@po.example", "hallo"]));
    assert_eq!(e.trim(), "error: no such user in the key directory: 7777777@po.example");
    let e = site.fails(&client(
        &["search"],
        &addr,
        &ks1,
        &gp,
        &["--lab", "nolab.example", "--analysis", "INFA", "--weeks", "4"],
    ));
    assert!(
        e.contains(
            "no such lab in the key directory: nolab.example \
             (its search agent search@nolab.example/agent has no certificate)"
        ),
        "{e}"
    );
    let out = site.ok(&client(&["keys", "lookup"], &addr, &ks1, &gp, &["2222222@po.example", "7777777@po.example"]));
    assert!(out.contains("2222222@po.example: revoked — the certificate has been revoked"), "{out}");
    assert!(out.contains("7777777@po.example: unknown — no such user in the key directory"), "{out}");
    terminate(&mut server);

    // Nothing listens: said at once with --wait 0, in words.
    let e =
        site.fails(&client(&["chat", "send", "--wait", "0"], &addr, &ks1, &gp, &["--to", "2222222@po.example", "x"]));
    assert_eq!(
        e.trim(),
        format!("error: no Snow server answers at {addr}: start it with `snow serve`, or give --server")
    );
    let secret = site.path("echo.secret");
    std::fs::write(&secret, "a shared secret\n").unwrap();
    let e = site.fails(&[
        "agent",
        "run",
        "echo",
        "--server",
        &addr,
        "--domain",
        "echo.po.example",
        "--secret-file",
        secret.to_str().unwrap(),
        "--wait",
        "0",
    ]);
    assert!(e.contains(&format!("no Snow server answers at the component port {addr}")), "{e}");
    assert!(e.contains("[[components]]") && e.contains("component_bind"), "{e}");
}

/// `snow chat listen --wait 20` started before `snow serve` (the copy-paste
/// race of `snow serve &` and a client): it says once that it waits, then
/// logs in when the server is up and gets a message.
#[test]
fn a_client_started_before_the_server_waits_for_it() {
    use std::io::{BufRead, BufReader};
    let site = chat_site();
    let port = snow_core::spare_port::spare_port().unwrap();
    std::fs::write(
        site.path("snow.toml"),
        format!(
            "[pki]\nca_key_bits = 2048\n[server]\nc2s_bind = \"127.0.0.1:{port}\"\ndirect_tls_bind = \"\"\n[s2s]\nbind = \"\"\n"
        ),
    )
    .unwrap();
    let addr = format!("127.0.0.1:{port}");
    let gp = site.path("gp.pass").display().to_string();
    let ks1 = site.path("ks-1111111").display().to_string();
    let ks2 = site.path("ks-2222222").display().to_string();
    let mut listen = Command::new(env!("CARGO_BIN_EXE_snow"))
        .args(client(&["chat", "listen"], &addr, &ks2, &gp, &["--wait", "20", "--count", "1", "--timeout", "30"]))
        .env("SNOW_HOME", site.home())
        .env("SNOW_CONFIG", site.path("snow.toml"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(listen.stderr.take().unwrap()).lines();
    let first = err.next().unwrap().unwrap();
    assert_eq!(first, format!("waiting for the Snow server at {addr}…"));
    let (mut server, server_addr) = start_server(&site);
    assert_eq!(server_addr, addr);
    let next = err.next().unwrap().unwrap();
    assert!(next.starts_with("Listening as 2222222@po.example/"), "{next}");
    site.ok(&client(&["chat", "send"], &addr, &ks1, &gp, &["--to", "2222222@po.example", "God morgen"]));
    let got = listen.wait_with_output().unwrap();
    assert!(got.status.success());
    let got = String::from_utf8_lossy(&got.stdout);
    assert!(got.contains(": [encrypted, signed by 1111111@po.example] God morgen"), "{got}");
    let rest: Vec<String> = err.map_while(Result::ok).collect();
    assert!(rest.iter().all(|l| !l.contains("waiting for")), "said more than once: {rest:?}");
    terminate(&mut server);
}

/// `snow server revoke` and `snow agent revoke` (issue 17 item 2): with a
/// reason, into the CA's revocations and the CRL; a second `server cert`
/// for the same domain supersedes the first; revoking twice, or with an
/// unknown reason, is one clear sentence.
#[test]
fn server_and_agent_revoke() {
    let site = Site::new();
    site.init();
    let pass = site.ca_pass_arg();
    let serial_of =
        |out: &str| out.lines().find_map(|l| l.trim().strip_prefix("serial")).map(|s| s.trim().to_owned()).unwrap();
    let first = serial_of(&site.ok(&["server", "cert", "--domain", "lab.example", "--ca-passphrase-file", &pass]));
    let out = site.ok(&["server", "cert", "--domain", "lab.example", "--ca-passphrase-file", &pass]);
    let second = serial_of(&out);
    assert!(out.contains(&format!("revoked as superseded: {first}")), "{out}");
    let agent = serial_of(&site.ok(&["agent", "cert", "--jid", "search@lab.example", "--ca-passphrase-file", &pass]));
    let component =
        serial_of(&site.ok(&["agent", "cert", "--jid", "search.lab.example", "--ca-passphrase-file", &pass]));
    let crl_before = std::fs::read(site.home().join("ca/crl.pem")).unwrap();

    let e = site.fails(&[
        "server",
        "revoke",
        "--domain",
        "lab.example",
        "--reason",
        "bored",
        "--ca-passphrase-file",
        &pass,
    ]);
    assert!(e.contains("unknown revocation reason") && e.contains("key-compromise"), "{e}");
    let out = site.ok(&[
        "server",
        "revoke",
        "--domain",
        "lab.example",
        "--reason",
        "key-compromise",
        "--ca-passphrase-file",
        &pass,
    ]);
    assert!(
        out.contains(&format!("Revoked the server certificate of lab.example (key-compromise; serial {second})")),
        "{out}"
    );
    assert!(out.contains("closes the revoked certificate's sessions and links"), "{out}");
    let e = site.fails(&[
        "server",
        "revoke",
        "--domain",
        "lab.example",
        "--reason",
        "unspecified",
        "--ca-passphrase-file",
        &pass,
    ]);
    assert_eq!(
        e.trim(),
        "error: the server lab.example has no valid certificate to revoke (revoked already, or never issued)"
    );
    let e = site.fails(&[
        "server",
        "revoke",
        "--domain",
        "never.example",
        "--reason",
        "unspecified",
        "--ca-passphrase-file",
        &pass,
    ]);
    assert!(e.contains("the server never.example has no valid certificate"), "{e}");

    let out = site.ok(&[
        "agent",
        "revoke",
        "--jid",
        "search@lab.example",
        "--reason",
        "privilege-withdrawn",
        "--ca-passphrase-file",
        &pass,
    ]);
    assert!(
        out.contains(&format!(
            "Revoked the agent certificate of search@lab.example (privilege-withdrawn; serial {agent})"
        )),
        "{out}"
    );
    assert!(!out.contains("shared secret"), "{out}");
    let out = site.ok(&[
        "agent",
        "revoke",
        "--jid",
        "search.lab.example",
        "--reason",
        "cessation-of-operation",
        "--ca-passphrase-file",
        &pass,
    ]);
    assert!(out.contains(&format!("serial {component}")) && out.contains("closed and refused"), "{out}");
    let e = site.fails(&[
        "agent",
        "revoke",
        "--jid",
        "search@lab.example",
        "--reason",
        "unspecified",
        "--ca-passphrase-file",
        &pass,
    ]);
    assert!(e.contains("the agent search@lab.example has no valid certificate to revoke"), "{e}");

    // Each with its reason in the CA's revocations, and a new CRL.
    assert_ne!(std::fs::read(site.home().join("ca/crl.pem")).unwrap(), crl_before);
    let db = snow_store::CaDb::open(&site.home().join("ca/ca.db")).unwrap();
    let revoked: Vec<(String, u8)> = db.revocations().unwrap().into_iter().map(|r| (r.serial_hex, r.reason)).collect();
    for (serial, reason) in [(&first, 4), (&second, 1), (&agent, 9), (&component, 5)] {
        assert!(revoked.contains(&(serial.to_lowercase(), reason)), "{serial} ({reason}) not in {revoked:?}");
    }
}

/// `snow serve` without a current CRL (issue 17 item 2): it says so in its
/// log, in words, with what to do, and refuses every login with a
/// sentence the GP can pass on.
#[test]
fn serve_without_a_crl_says_so_and_refuses_logins() {
    use std::io::{BufRead, BufReader};
    let site = chat_site();
    std::fs::remove_file(site.home().join("ca/crl.pem")).unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_snow"))
        .arg("serve")
        .env("SNOW_HOME", site.home())
        .env("SNOW_CONFIG", site.path("snow.toml"))
        .env_remove("SNOW_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = server.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let mut stdout = BufReader::new(server.stdout.take().unwrap()).lines();
    let mut addr = None;
    for line in stdout.by_ref() {
        let line = line.unwrap();
        if addr.is_none() {
            addr = line.rsplit_once(" on ").and_then(|(_, a)| a.split(' ').next()).map(str::to_owned);
        }
        if line.contains("(STARTTLS)") {
            break;
        }
    }
    std::thread::spawn(move || stdout.for_each(drop));
    let addr = addr.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let said = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = rx.recv_timeout(left).expect("snow serve never said that revocation status is unknown");
        if line.contains("revocation status unknown") {
            break line;
        }
    };
    let crl = site.home().join("ca/crl.pem");
    assert!(said.contains(&format!("there is no CRL at {}", crl.display())), "{said}");
    assert!(said.contains("every login and server link is refused") && said.contains("snow ca crl"), "{said}");

    let gp = site.path("gp.pass").display().to_string();
    let ks1 = site.path("ks-1111111").display().to_string();
    let e = site.fails(&client(&["chat", "send"], &addr, &ks1, &gp, &["--to", "2222222@po.example", "hei"]));
    assert_eq!(
        e.trim(),
        "error: the server cannot check certificates now (its list of revoked certificates is missing or out of \
         date) — contact the Snow administrator"
    );
    let refused = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = rx.recv_timeout(left).expect("the refused login was not logged");
        if line.contains("certificate refused: revocation status unknown") {
            break line;
        }
    };
    assert!(refused.contains("there is no CRL at"), "{refused}");
    terminate(&mut server);
}

/// `snow serve` with a NaN, an infinite, a negative or a zero number in
/// snow.toml: one sentence naming the key and its range, never a panic.
#[test]
fn serve_refuses_nan_negative_and_zero_settings_naming_the_key() {
    let site = Site::new();
    site.init();
    site.ok(&["server", "cert", "--ca-passphrase-file", &site.ca_pass_arg()]);
    for (section, line, key) in [
        ("[server]", "stanza_rate = nan", "[server] stanza_rate"),
        ("[server]", "account_stanza_burst = inf", "[server] account_stanza_burst"),
        ("[server]", "component_stanza_rate = -1.0", "[server] component_stanza_rate"),
        ("[server]", "max_connections = 0", "[server] max_connections"),
        ("[s2s]", "stanza_burst = 0.0", "[s2s] stanza_burst"),
        ("[pubsub]", "max_item_bytes = 0", "[pubsub] max_item_bytes"),
        ("[msgauth]", "window_secs = -300", "[msgauth] window_secs"),
    ] {
        std::fs::write(site.path("snow.toml"), format!("[pki]\nca_key_bits = 2048\n{section}\n{line}\n")).unwrap();
        let e = site.fails(&["serve"]);
        assert!(e.contains(key) && e.contains("it must be from"), "{line}: {e}");
    }
    // A negative count is not even a number of its type: refused when
    // read, pointing at the line (the TOML parser's several lines).
    std::fs::write(site.path("snow.toml"), "[server]\nidle_timeout_secs = -1\n").unwrap();
    let out = site.snow(&["serve"]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && e.contains("idle_timeout_secs") && !e.contains("panicked"), "{e}");
}
