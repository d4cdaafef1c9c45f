//! End-to-end encryption speed: encrypt for 1, 10 and 100 recipients and
//! decrypt, with the same messages through the xmlsec1 command line as the
//! reference in the same run (xmlsec1 1.2 needs rsa-oaep-mgf1p, so both
//! sides use it for the comparison; our SHA-256 default is measured too).
//! Prints messages/s for both and the ratio.

use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use snow_crypto::e2e::{self, DecryptPolicy, KeyTransport};
use snow_crypto::{pem, rsa_key};

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
    c.final_summary();

    // Side by side with xmlsec1, same messages, rsa-oaep-mgf1p on both sides.
    if !xmlsec1_available() {
        println!("xmlsec1 not installed: reference figures skipped (apt-get install xmlsec1)");
        return;
    }
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
