//! End-to-end encryption speed: encrypt for 1, 10 and 100 recipients and
//! decrypt, with the same messages through the xmlsec1 command line as the
//! reference in the same run (xmlsec1 1.2 needs rsa-oaep-mgf1p, so both
//! sides use it for the comparison; our SHA-256 default is measured too).
//! Prints messages/s for both and the ratio.
//!
//! Issue 20: sign+encrypt and decrypt+verify of a 1 KiB chat to 2
//! recipients (XML Signature enveloped, then XML Encryption), against
//! `xmlsec1 --sign` then `--encrypt`, and `--decrypt` then `--verify`, with
//! the added cost over encryption alone (`cargo bench -p snow-crypto
//! --bench e2e -- dsig`).

use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use snow_crypto::e2e::{self, DecryptPolicy, KeyTransport};
use snow_crypto::{pem, rsa_key, xmldsig, Identity};
use snow_xml::Element;

struct Party {
    key: zeroize::Zeroizing<Vec<u8>>,
    cert: Vec<u8>,
}

fn party(i: usize) -> Party {
    let key = rsa_key::generate(rsa_key::KeyBits::Rsa2048).expect("keygen");
    let kp = rcgen::KeyPair::try_from(&key[..]).expect("key");
    let mut params = rcgen::CertificateParams::new(vec![format!("r{i}.example")]).expect("params");
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&(i as u32 + 1).to_be_bytes()));
    let cert = params.self_signed(&kp).expect("cert").der().to_vec();
    Party { key, cert }
}

const MESSAGE: &str = "Influensa A: 12 positive prøver i kommune 5401 uke 47 &amp; 3 &lt;5 år";

/// Messages per second of `f`, run for about `budget`.
fn rate(budget: Duration, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut n = 0u32;
    while start.elapsed() < budget || n < 3 {
        f();
        n += 1;
    }
    f64::from(n) / start.elapsed().as_secs_f64()
}

fn xmlsec1_available() -> bool {
    Command::new("xmlsec1").arg("--version").output().is_ok_and(|o| o.status.success())
}

fn main() {
    let parties: Vec<Party> = (0..100).map(party).collect();
    let mut c = Criterion::default().configure_from_args().sample_size(20);
    {
        let mut g = c.benchmark_group("e2e");
        for n in [1usize, 10, 100] {
            let certs: Vec<&[u8]> = parties[..n].iter().map(|p| p.cert.as_slice()).collect();
            g.bench_with_input(BenchmarkId::new("encrypt_rsa_oaep_sha256", n), &certs, |b, certs| {
                b.iter(|| e2e::encrypt(MESSAGE.as_bytes(), certs, KeyTransport::RsaOaepSha256).expect("encrypt"))
            });
            let enc = e2e::encrypt(MESSAGE.as_bytes(), &certs, KeyTransport::RsaOaepSha256).expect("encrypt");
            let last = &parties[n - 1];
            // More than 16 EncryptedKeys only as a broadcast (one RSA
            // decryption either way: the EncryptedKey naming us).
            let policy = if n <= e2e::MAX_ENCRYPTED_KEYS { DecryptPolicy::SNOW } else { DecryptPolicy::BROADCAST };
            g.bench_with_input(BenchmarkId::new("decrypt_last_of", n), &enc, |b, enc| {
                b.iter(|| e2e::decrypt_with(enc, &last.key, &last.cert, &policy).expect("decrypt"))
            });
        }
        // Issue 17: a request with 200 EncryptedKeys is refused before any
        // RSA operation (compare decrypt_last_of/1: one RSA decryption).
        let one = e2e::encrypt(MESSAGE.as_bytes(), &[&parties[0].cert], KeyTransport::RsaOaepSha256).expect("encrypt");
        let mut many = one.clone();
        if let Some(ki) = many.child_mut(e2e::NS_DSIG, "KeyInfo") {
            let ek = ki.children().next().cloned().expect("an EncryptedKey");
            for _ in 1..200 {
                ki.push_child(ek.clone());
            }
        }
        g.bench_function("refuse_200_encrypted_keys", |b| {
            b.iter(|| {
                let r = e2e::decrypt(&many, &parties[0].key, &parties[0].cert);
                assert!(matches!(r, Err(e2e::E2eError::TooManyEncryptedKeys { found: 200, .. })));
            })
        });
        g.finish();
    }
    let signer = Identity::new(parties[0].key.clone(), vec![parties[0].cert.clone()]).expect("identity");
    let chat = chat_1k();
    let to: Vec<&[u8]> = vec![&parties[1].cert, &parties[2].cert];
    {
        let mut g = c.benchmark_group("dsig");
        g.bench_function("sign_1k", |b| b.iter(|| xmldsig::sign_enveloped(&chat, &signer).expect("sign")));
        g.bench_function("encrypt_1k_to_2", |b| {
            b.iter(|| e2e::encrypt(chat.to_xml("").as_bytes(), &to, KeyTransport::RsaOaepSha256).expect("encrypt"))
        });
        g.bench_function("sign_encrypt_1k_to_2", |b| {
            b.iter(|| sign_encrypt(&chat, &signer, &to, KeyTransport::RsaOaepSha256))
        });
        let enc = sign_encrypt(&chat, &signer, &to, KeyTransport::RsaOaepSha256);
        let plain_enc = e2e::encrypt(chat.to_xml("").as_bytes(), &to, KeyTransport::RsaOaepSha256).expect("encrypt");
        let r = &parties[2];
        g.bench_function("decrypt_1k", |b| {
            b.iter(|| {
                let plain = e2e::decrypt(&plain_enc, &r.key, &r.cert).expect("decrypt");
                snow_xml::parse_document(&plain, snow_xml::Limits::default()).expect("parse")
            })
        });
        g.bench_function("decrypt_verify_1k", |b| b.iter(|| decrypt_verify(&enc, &r.key, &r.cert)));
        g.finish();
    }
    c.final_summary();

    // Side by side with xmlsec1, same messages, rsa-oaep-mgf1p on both sides.
    if !xmlsec1_available() {
        println!("xmlsec1 not installed: reference figures skipped (apt-get install xmlsec1)");
        return;
    }
    let budget = Duration::from_secs(3);
    signed_versus_xmlsec1(&parties, &signer, &chat, budget);
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    for (i, p) in parties.iter().enumerate() {
        std::fs::write(d.join(format!("c{i}.pem")), pem::encode("CERTIFICATE", &p.cert).expect("pem")).expect("write");
        std::fs::write(d.join(format!("k{i}.pem")), pem::encode("PRIVATE KEY", &p.key).expect("pem")).expect("write");
    }
    std::fs::write(d.join("msg.xml"), MESSAGE).expect("write");
    let budget = Duration::from_secs(3);
    println!("\n{:<34} {:>12} {:>12} {:>8}", "messages/s (rsa-oaep-mgf1p)", "snow", "xmlsec1", "ratio");
    for n in [1usize, 10, 100] {
        let certs: Vec<&[u8]> = parties[..n].iter().map(|p| p.cert.as_slice()).collect();
        let ours = rate(budget, || {
            e2e::encrypt(MESSAGE.as_bytes(), &certs, KeyTransport::RsaOaepMgf1pSha1).expect("encrypt");
        });
        let template = d.join(format!("t{n}.xml"));
        std::fs::write(&template, template_for(n)).expect("write");
        let mut args: Vec<String> = vec!["--encrypt".into()];
        for i in 0..n {
            args.push(format!("--pubkey-cert-pem:r{i}"));
            args.push(d.join(format!("c{i}.pem")).display().to_string());
        }
        args.extend(["--session-key", "aes-256", "--binary-data"].map(String::from));
        args.push(d.join("msg.xml").display().to_string());
        args.push("--output".into());
        args.push(d.join(format!("x{n}.xml")).display().to_string());
        args.push(template.display().to_string());
        let theirs = rate(budget, || run_xmlsec1(&args));
        println!("{:<34} {ours:>12.0} {theirs:>12.0} {:>7.0}x", format!("encrypt, {n} recipient(s)"), ours / theirs);
    }
    // Decrypt: our envelope for one recipient, by both.
    let enc = e2e::encrypt(MESSAGE.as_bytes(), &[&parties[0].cert], KeyTransport::RsaOaepMgf1pSha1).expect("encrypt");
    let doc = d.join("enc1.xml");
    std::fs::write(&doc, enc.to_xml("")).expect("write");
    let ours = rate(budget, || {
        let parsed =
            snow_xml::parse_document(&std::fs::read(&doc).expect("read"), snow_xml::Limits::default()).expect("parse");
        e2e::decrypt(&parsed, &parties[0].key, &parties[0].cert).expect("decrypt");
    });
    let args: Vec<String> = vec![
        "--decrypt".into(),
        "--privkey-pem".into(),
        d.join("k0.pem").display().to_string(),
        doc.display().to_string(),
    ];
    let theirs = rate(budget, || run_xmlsec1(&args));
    println!("{:<34} {ours:>12.0} {theirs:>12.0} {:>7.0}x", "decrypt (parse + decrypt)", ours / theirs);
}

/// A chat of about 1 KiB as the benchmark wants it.
fn chat_1k() -> Element {
    let body = "Influensa A: 12 positive prøver i kommune 5401 uke 47 &amp; 3 under 5 år. ".repeat(12);
    let xml = format!(
        "<chat xmlns='urn:snow:chat:1' kind='chat' nonce='q83vEjRWeJA' ts='2026-12-03T12:00:00Z'>\
         <from>9144889@po.example</from><to>1111111@po.example</to><to>2222222@po.example</to>\
         <body>{body}</body></chat>"
    );
    snow_xml::parse_document(xml.as_bytes(), snow_xml::Limits::default()).expect("chat")
}

fn sign_encrypt(chat: &Element, signer: &Identity, to: &[&[u8]], transport: KeyTransport) -> Element {
    let signed = xmldsig::sign_enveloped(chat, signer).expect("sign");
    e2e::encrypt(signed.to_xml("").as_bytes(), to, transport).expect("encrypt")
}

fn decrypt_verify(enc: &Element, key: &[u8], cert: &[u8]) -> xmldsig::Verified {
    let plain = e2e::decrypt(enc, key, cert).expect("decrypt");
    let doc = snow_xml::parse_document(&plain, snow_xml::Limits::default()).expect("parse");
    xmldsig::verify_enveloped(&doc).expect("verify")
}

/// Sign+encrypt and decrypt+verify of the 1 KiB chat to 2 recipients, by
/// Snow and by the xmlsec1 command line (`--sign` then `--encrypt`;
/// `--decrypt` then `--verify` with the signer's certificate trusted), with
/// rsa-oaep-mgf1p on both sides; and Snow's added cost over encryption.
fn signed_versus_xmlsec1(parties: &[Party], signer: &Identity, chat: &Element, budget: Duration) {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let path = |name: &str| d.join(name).display().to_string();
    for (i, p) in parties.iter().enumerate().take(3) {
        std::fs::write(d.join(format!("c{i}.pem")), pem::encode("CERTIFICATE", &p.cert).expect("pem")).expect("write");
        std::fs::write(d.join(format!("k{i}.pem")), pem::encode("PRIVATE KEY", &p.key).expect("pem")).expect("write");
    }
    // The chat with an empty Signature of Snow's profile, for xmlsec1 --sign.
    let mut tmpl = chat.clone();
    let ds = |n: &'static str| Element::new(xmldsig::NS_DSIG, n);
    let alg = |n: &'static str, a: &'static str| ds(n).with_attr("Algorithm", a);
    tmpl.push_child(
        ds("Signature")
            .with_child(
                ds("SignedInfo")
                    .with_child(alg("CanonicalizationMethod", xmldsig::ALG_EXC_C14N))
                    .with_child(alg("SignatureMethod", xmldsig::ALG_RSA_SHA256))
                    .with_child(
                        ds("Reference")
                            .with_attr("URI", "")
                            .with_child(
                                ds("Transforms")
                                    .with_child(alg("Transform", xmldsig::ALG_ENVELOPED))
                                    .with_child(alg("Transform", xmldsig::ALG_EXC_C14N)),
                            )
                            .with_child(alg("DigestMethod", xmldsig::ALG_SHA256))
                            .with_child(ds("DigestValue")),
                    ),
            )
            .with_child(ds("SignatureValue"))
            .with_child(ds("KeyInfo").with_child(ds("X509Data").with_child(ds("X509Certificate")))),
    );
    std::fs::write(d.join("sign-tmpl.xml"), tmpl.to_xml("")).expect("write");
    let enc_tmpl = template_for(2).replace("r0", "ra").replace("r1", "rb");
    std::fs::write(d.join("enc-tmpl.xml"), enc_tmpl).expect("write");
    let to: Vec<&[u8]> = vec![&parties[1].cert, &parties[2].cert];
    let transport = KeyTransport::RsaOaepMgf1pSha1;

    let ours_se = rate(budget, || {
        sign_encrypt(chat, signer, &to, transport);
    });
    let ours_e = rate(budget, || {
        e2e::encrypt(chat.to_xml("").as_bytes(), &to, transport).expect("encrypt");
    });
    let sign_args: Vec<String> = vec![
        "--sign".into(),
        "--privkey-pem".into(),
        format!("{},{}", path("k0.pem"), path("c0.pem")),
        "--output".into(),
        path("signed.xml"),
        path("sign-tmpl.xml"),
    ];
    let encrypt_args: Vec<String> = [
        "--encrypt",
        "--pubkey-cert-pem:ra",
        &path("c1.pem"),
        "--pubkey-cert-pem:rb",
        &path("c2.pem"),
        "--session-key",
        "aes-256",
        "--binary-data",
        &path("signed.xml"),
        "--output",
        &path("enc.xml"),
        &path("enc-tmpl.xml"),
    ]
    .map(String::from)
    .to_vec();
    let theirs_se = rate(budget, || {
        run_xmlsec1(&sign_args);
        run_xmlsec1(&encrypt_args);
    });

    let enc = sign_encrypt(chat, signer, &to, transport);
    let plain_enc = e2e::encrypt(chat.to_xml("").as_bytes(), &to, transport).expect("encrypt");
    std::fs::write(d.join("snow-enc.xml"), enc.to_xml("")).expect("write");
    let r = &parties[2];
    let ours_dv = rate(budget, || {
        let parsed =
            snow_xml::parse_document(&std::fs::read(d.join("snow-enc.xml")).expect("read"), Default::default())
                .expect("parse");
        decrypt_verify(&parsed, &r.key, &r.cert);
    });
    let ours_d = rate(budget, || {
        let plain = e2e::decrypt(&plain_enc, &r.key, &r.cert).expect("decrypt");
        snow_xml::parse_document(&plain, snow_xml::Limits::default()).expect("parse");
    });
    let decrypt_args: Vec<String> =
        ["--decrypt", "--privkey-pem", &path("k2.pem"), "--output", &path("dec.xml"), &path("snow-enc.xml")]
            .map(String::from)
            .to_vec();
    let verify_args: Vec<String> =
        ["--verify", "--trusted-pem", &path("c0.pem"), &path("dec.xml")].map(String::from).to_vec();
    let theirs_dv = rate(budget, || {
        run_xmlsec1(&decrypt_args);
        run_xmlsec1(&verify_args);
    });
    println!("\n{:<44} {:>10} {:>10} {:>8}", "1 KiB chat, 2 recipients (ops/s)", "snow", "xmlsec1", "ratio");
    println!(
        "{:<44} {ours_se:>10.0} {theirs_se:>10.0} {:>7.0}x",
        "sign + encrypt (--sign, --encrypt)",
        ours_se / theirs_se
    );
    println!(
        "{:<44} {ours_dv:>10.0} {theirs_dv:>10.0} {:>7.0}x",
        "decrypt + verify (--decrypt, --verify)",
        ours_dv / theirs_dv
    );
    println!(
        "added by the signature: sign+encrypt {:.0} µs vs encrypt {:.0} µs (+{:.0} µs); decrypt+verify {:.0} µs vs decrypt {:.0} µs (+{:.0} µs)",
        1e6 / ours_se,
        1e6 / ours_e,
        1e6 / ours_se - 1e6 / ours_e,
        1e6 / ours_dv,
        1e6 / ours_d,
        1e6 / ours_dv - 1e6 / ours_d
    );
}

fn run_xmlsec1(args: &[String]) {
    let out = Command::new("xmlsec1").args(args).output().expect("xmlsec1");
    assert!(out.status.success(), "xmlsec1 failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// An xmlsec1 template with one EncryptedKey per recipient key name.
fn template_for(n: usize) -> String {
    let mut keys = String::new();
    for i in 0..n {
        keys.push_str(&format!(
            "<EncryptedKey xmlns='http://www.w3.org/2001/04/xmlenc#'>\
             <EncryptionMethod Algorithm='http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p'/>\
             <KeyInfo xmlns='http://www.w3.org/2000/09/xmldsig#'><KeyName>r{i}</KeyName></KeyInfo>\
             <CipherData><CipherValue/></CipherData></EncryptedKey>"
        ));
    }
    format!(
        "<EncryptedData xmlns='http://www.w3.org/2001/04/xmlenc#' Type='http://www.w3.org/2001/04/xmlenc#Content'>\
         <EncryptionMethod Algorithm='http://www.w3.org/2009/xmlenc11#aes256-gcm'/>\
         <KeyInfo xmlns='http://www.w3.org/2000/09/xmldsig#'>{keys}</KeyInfo>\
         <CipherData><CipherValue/></CipherData></EncryptedData>"
    )
}
