//! `snow crypt sign` and `snow crypt verify`: a GP signs a file with the
//! key store's key, anyone with the CA (a key store) checks it and sees
//! who signed; every refusal is one clear line and a non-zero exit.

mod support;

use std::path::PathBuf;

use support::Site;

const CA_PASS: &str = "admin passphrase 1";
const GP_PASS: &str = "gp personal pass";

fn site() -> Site {
    // A 2048-bit CA keeps the test quick.
    let site = Site::with_config("[pki]\nca_key_bits = 2048\n");
    std::fs::write(site.path("ca.pass"), format!("{CA_PASS}\n")).unwrap();
    std::fs::write(site.path("gp.pass"), format!("{GP_PASS}\n")).unwrap();
    let pass = s(&site.path("ca.pass"));
    site.ok(&["ca", "init", "--domain", "po.example", "--ca-passphrase-file", &pass]);
    site
}

fn s(p: &std::path::Path) -> String {
    p.display().to_string()
}

/// Adds the GP `hpnr` at the CA and imports the key into a key store of
/// its own; returns the key store.
fn gp(site: &Site, hpnr: &str) -> PathBuf {
    let pass = s(&site.path("ca.pass"));
    let p12 = site.path(&format!("{hpnr}.p12"));
    site.ok(&[
        "user",
        "add",
        "--hpnr",
        hpnr,
        "--phone",
        "+4791234567",
        "--email",
        "gp@legekontor.example",
        "--p12-out",
        &s(&p12),
        "--ca-passphrase-file",
        &pass,
    ]);
    let sms = std::fs::read_dir(site.home().join("outbox/sms"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains(hpnr))
        .unwrap();
    let otp = std::fs::read_to_string(sms)
        .unwrap()
        .lines()
        .find_map(|l| l.rsplit_once(" is ").map(|(_, p)| p.trim().to_owned()))
        .unwrap();
    let otp_file = site.path(&format!("{hpnr}.otp"));
    std::fs::write(&otp_file, otp).unwrap();
    let ks = site.path(&format!("ks-{hpnr}"));
    site.ok(&[
        "key",
        "import",
        &s(&p12),
        "--keystore",
        &s(&ks),
        "--password-file",
        &s(&otp_file),
        "--passphrase-file",
        &s(&site.path("gp.pass")),
    ]);
    ks
}

#[test]
fn sign_then_verify_shows_the_signer_and_refuses_any_change() {
    let site = site();
    let ks = s(&gp(&site, "9144889"));
    let gp_pass = s(&site.path("gp.pass"));
    let doc = site.path("melding.xml");
    std::fs::write(
        &doc,
        "<?xml version='1.0'?>\n<p:melding xmlns:p='urn:m' uke='47'><p:tekst>Influensa A — æøå &amp; &lt;5401&gt;</p:tekst></p:melding>\n",
    )
    .unwrap();
    let signed = site.path("melding.signed.xml");
    site.ok(&["crypt", "sign", "--keystore", &ks, "--passphrase-file", &gp_pass, &s(&doc), "--out", &s(&signed)]);
    let text = std::fs::read_to_string(&signed).unwrap();
    assert!(text.contains("<Signature xmlns='http://www.w3.org/2000/09/xmldsig#'>"), "{text}");
    assert!(text.contains("xmldsig-more#rsa-sha256"), "{text}");

    let out = site.ok(&["crypt", "verify", "--keystore", &ks, &s(&signed)]);
    assert!(out.contains("signature valid: signed by 9144889"), "{out}");
    assert!(out.contains("JID 9144889@po.example"), "{out}");
    assert!(out.contains("revocation: not revoked"), "{out}");
    assert!(out.contains("content: an XML document <melding> in \"urn:m\""), "{out}");
    // The verified content back, without the Signature.
    let content = site.path("melding.content.xml");
    site.ok(&["crypt", "verify", "--keystore", &ks, &s(&signed), "--out", &s(&content)]);
    let back = std::fs::read_to_string(&content).unwrap();
    assert!(back.contains("Influensa A — æøå") && !back.contains("Signature"), "{back}");

    // Changed content, a changed signature: refused, one line, non-zero.
    let tampered = site.path("tampered.xml");
    std::fs::write(&tampered, text.replace("uke='47'", "uke='48'")).unwrap();
    let e = site.fails(&["crypt", "verify", "--keystore", &ks, &s(&tampered)]);
    assert!(e.contains("is not accepted: the signed content was changed"), "{e}");
    std::fs::write(
        &tampered,
        text.replace(
            "<SignatureMethod Algorithm='http://www.w3.org/2001/04/xmldsig-more#rsa-sha256'/>",
            "<SignatureMethod Algorithm='http://www.w3.org/2000/09/xmldsig#hmac-sha1'/>",
        ),
    )
    .unwrap();
    let e = site.fails(&["crypt", "verify", "--keystore", &ks, &s(&tampered)]);
    assert!(e.contains("Signature/SignedInfo/SignatureMethod: algorithm") && e.contains("hmac-sha1"), "{e}");
    // Not signed at all.
    let e = site.fails(&["crypt", "verify", "--keystore", &ks, &s(&doc)]);
    assert!(e.contains("it has no ds:Signature"), "{e}");

    // Malformed XML is refused, with the way to sign its bytes.
    let bad = site.path("bad.xml");
    std::fs::write(&bad, "<a><b></a>").unwrap();
    let e = site.fails(&["crypt", "sign", "--keystore", &ks, "--passphrase-file", &gp_pass, &s(&bad)]);
    assert!(e.contains("not a well-formed document (--wrap signs its bytes)"), "{e}");
    // A wrong passphrase says which secret.
    std::fs::write(site.path("wrong.pass"), "not it\n").unwrap();
    let e =
        site.fails(&["crypt", "sign", "--keystore", &ks, "--passphrase-file", &s(&site.path("wrong.pass")), &s(&doc)]);
    assert!(e.contains("personal passphrase does not open the key store"), "{e}");
}

#[test]
fn files_are_wrapped_and_a_revoked_signer_is_refused() {
    let site = site();
    let ks = s(&gp(&site, "9144889"));
    let gp_pass = s(&site.path("gp.pass"));
    // Any bytes: wrapped in a signed-file, given back byte for byte.
    let data = site.path("rapport.bin");
    std::fs::write(&data, b"\x00\x01binary \xff rapport").unwrap();
    let signed = site.path("rapport.signed.xml");
    site.ok(&["crypt", "sign", "--keystore", &ks, "--passphrase-file", &gp_pass, &s(&data), "--out", &s(&signed)]);
    let text = std::fs::read_to_string(&signed).unwrap();
    assert!(text.contains("<signed-file xmlns='urn:snow:signed:1' name='rapport.bin'>"), "{text}");
    let back = site.path("rapport.out");
    let out = site.ok(&["crypt", "verify", "--keystore", &ks, &s(&signed), "--out", &s(&back)]);
    assert!(out.contains("content: the file \"rapport.bin\", 18 bytes"), "{out}");
    assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&data).unwrap());
    // An XML file with --wrap is signed as bytes too.
    let xml = site.path("x.xml");
    std::fs::write(&xml, "<x/>").unwrap();
    let wrapped = site.ok(&["crypt", "sign", "--keystore", &ks, "--passphrase-file", &gp_pass, "--wrap", &s(&xml)]);
    assert!(wrapped.contains("name='x.xml'>PHgvPg==<Signature"), "{wrapped}");

    // Revoked, and the CA's new CRL in the home: refused.
    let pass = s(&site.path("ca.pass"));
    site.ok(&["user", "revoke", "--hpnr", "9144889", "--reason", "key-compromise", "--ca-passphrase-file", &pass]);
    site.ok(&["ca", "crl", "--ca-passphrase-file", &pass]);
    let e = site.fails(&["crypt", "verify", "--keystore", &ks, &s(&signed)]);
    assert!(e.contains("the signer of") && e.contains("is revoked in the CA's CRL"), "{e}");
    // An explicit CRL that is not one.
    std::fs::write(site.path("junk.crl"), b"junk").unwrap();
    let e = site.fails(&["crypt", "verify", "--keystore", &ks, "--crl", &s(&site.path("junk.crl")), &s(&signed)]);
    assert!(e.contains("revocation status is unknown"), "{e}");
    // Without any CRL, the rest is checked and it says revocation was not.
    std::fs::remove_file(site.home().join("ca/crl.pem")).unwrap();
    let out = site.ok(&["crypt", "verify", "--keystore", &ks, &s(&signed)]);
    assert!(out.contains("revocation: not checked"), "{out}");
}
