//! Which EncryptedKey a recipient tries (issue 17 item 6): only the one
//! that names its certificate in Snow's envelopes; never one that names
//! someone else; at most 16 read, the rest refused before any RSA
//! operation. Foreign files (other XML Encryption tools) may name the key
//! by KeyName or not at all.

use std::time::Instant;

use snow_crypto::e2e::{self, DecryptPolicy, E2eError, KeyTransport, NS_DSIG, NS_XENC};
use snow_crypto::{rsa_key, CertInfo};
use snow_xml::{Element, Limits};

struct Party {
    key: zeroize::Zeroizing<Vec<u8>>,
    cert: Vec<u8>,
}

/// A certificate issued by a test CA `CN=Snow CA po.example, O=Snow` (so
/// the IssuerName has two parts whose order matters).
fn parties(n: usize) -> Vec<Party> {
    let ca_kp = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::default();
    ca.distinguished_name.push(rcgen::DnType::CommonName, "Snow CA po.example");
    ca.distinguished_name.push(rcgen::DnType::OrganizationName, "Snow");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    let issuer = rcgen::Issuer::new(ca, ca_kp);
    (0..n)
        .map(|i| {
            let key = rsa_key::generate(rsa_key::KeyBits::Rsa2048).unwrap();
            let kp = rcgen::KeyPair::try_from(&key[..]).unwrap();
            let mut p = rcgen::CertificateParams::default();
            p.distinguished_name.push(rcgen::DnType::CommonName, format!("{}", 1111111 + i));
            p.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x10, i as u8 + 1]));
            let cert = p.signed_by(&kp, &issuer).unwrap().der().to_vec();
            Party { key, cert }
        })
        .collect()
}

fn reparse(el: &Element) -> Element {
    snow_xml::parse_document(el.to_xml("").as_bytes(), Limits::default()).unwrap()
}

fn keys_mut(enc: &mut Element) -> impl Iterator<Item = &mut Element> {
    enc.child_mut(NS_DSIG, "KeyInfo").unwrap().nodes_mut().iter_mut().filter_map(|n| match n {
        snow_xml::Node::Element(e) if e.is(NS_XENC, "EncryptedKey") => Some(e),
        _ => None,
    })
}

/// The KeyInfo of every EncryptedKey replaced by `key_info` (None: removed).
fn rename(enc: &Element, key_info: Option<Element>) -> Element {
    let mut enc = enc.clone();
    for ek in keys_mut(&mut enc) {
        ek.take_children(|c| c.is(NS_DSIG, "KeyInfo"));
        if let Some(ki) = &key_info {
            let at =
                ek.nodes().iter().position(|n| matches!(n, snow_xml::Node::Element(e) if e.is(NS_XENC, "CipherData")));
            ek.nodes_mut().insert(at.unwrap(), snow_xml::Node::Element(ki.clone()));
        }
    }
    reparse(&enc)
}

fn issuer_serial(issuer: &str, serial: &str) -> Element {
    Element::new(NS_DSIG, "KeyInfo").with_child(
        Element::new(NS_DSIG, "X509Data").with_child(
            Element::new(NS_DSIG, "X509IssuerSerial")
                .with_child(Element::new(NS_DSIG, "X509IssuerName").with_text(issuer))
                .with_child(Element::new(NS_DSIG, "X509SerialNumber").with_text(serial)),
        ),
    )
}

#[test]
fn each_encrypted_key_names_the_issuer_and_serial_of_the_certificate_used() {
    let ps = parties(2);
    let enc = e2e::encrypt(b"x", &[&ps[0].cert, &ps[1].cert], KeyTransport::default()).unwrap();
    let named: Vec<(String, String)> = enc
        .child(NS_DSIG, "KeyInfo")
        .unwrap()
        .children()
        .map(|ek| {
            let is = ek.child(NS_DSIG, "KeyInfo").unwrap().child(NS_DSIG, "X509Data").unwrap();
            let is = is.child(NS_DSIG, "X509IssuerSerial").unwrap();
            (is.child(NS_DSIG, "X509IssuerName").unwrap().text(), is.child(NS_DSIG, "X509SerialNumber").unwrap().text())
        })
        .collect();
    let want: Vec<(String, String)> = ps
        .iter()
        .map(|p| {
            let info = CertInfo::from_der(&p.cert).unwrap();
            (info.issuer, info.serial_decimal)
        })
        .collect();
    assert_eq!(named, want);
    assert_eq!(want[0].0, "CN=Snow CA po.example, O=Snow");
}

/// The attack of issue 17: hundreds of EncryptedKeys in one request, each
/// an RSA decryption if tried. Refused on the count, before the private
/// key is even read (a key that is not one shows it: the error is still
/// the count).
#[test]
fn two_hundred_encrypted_keys_are_refused_before_any_rsa_operation() {
    let ps = parties(1);
    let one = e2e::encrypt(b"x", &[&ps[0].cert], KeyTransport::default()).unwrap();
    let ek = one.child(NS_DSIG, "KeyInfo").unwrap().children().next().unwrap().clone();
    let mut many = one.clone();
    let ki = many.child_mut(NS_DSIG, "KeyInfo").unwrap();
    for _ in 1..200 {
        ki.push_child(ek.clone());
    }
    let many = reparse(&many);
    let want = Err(E2eError::TooManyEncryptedKeys { found: 200, max: 16 });
    for policy in [DecryptPolicy::SNOW, DecryptPolicy::FOREIGN] {
        let start = Instant::now();
        assert_eq!(e2e::decrypt_with(&many, &ps[0].key, &ps[0].cert, &policy), want);
        println!("200 EncryptedKeys refused in {:?} ({policy:?})", start.elapsed());
        assert_eq!(e2e::decrypt_with(&many, b"not a key", &ps[0].cert, &policy), want);
    }
    let mut body = Element::new(snow_xml::NS_CLIENT, "body").with_child(many);
    assert_eq!(
        e2e::decrypt_content(&mut body, snow_xml::NS_CLIENT, &ps[0].key, &ps[0].cert),
        Err(E2eError::TooManyEncryptedKeys { found: 200, max: 16 })
    );
}

/// An EncryptedKey wrapped for A's key but naming B's certificate would
/// open with A's key if A tried it: A does not.
#[test]
fn an_encrypted_key_that_names_another_certificate_is_never_tried() {
    let ps = parties(2);
    let (a, b) = (&ps[0], &ps[1]);
    let (ia, ib) = (CertInfo::from_der(&a.cert).unwrap(), CertInfo::from_der(&b.cert).unwrap());
    let enc = e2e::encrypt(b"hemmelig", &[&a.cert], KeyTransport::default()).unwrap();
    assert_eq!(&*e2e::decrypt(&enc, &a.key, &a.cert).unwrap(), b"hemmelig");

    let cert_of_b = Element::new(NS_DSIG, "KeyInfo").with_child(Element::new(NS_DSIG, "X509Data").with_child(
        Element::new(NS_DSIG, "X509Certificate").with_text({
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(&b.cert)
        }),
    ));
    for (what, ki) in [
        ("B's issuer and serial", issuer_serial(&ib.issuer, &ib.serial_decimal)),
        ("A's serial under another issuer", issuer_serial("CN=Snow CA evil.example, O=Snow", &ia.serial_decimal)),
        ("B's certificate", cert_of_b),
        (
            "a KeyName of B",
            Element::new(NS_DSIG, "KeyInfo").with_child(Element::new(NS_DSIG, "KeyName").with_text("1111112")),
        ),
    ] {
        let renamed = rename(&enc, Some(ki));
        for policy in [DecryptPolicy::SNOW, DecryptPolicy::FOREIGN] {
            assert_eq!(
                e2e::decrypt_with(&renamed, &a.key, &a.cert, &policy),
                Err(E2eError::NotForThisKey),
                "{what}, {policy:?}"
            );
        }
    }
    // Named as xmlsec1 writes names (RFC 4514 order), it is A's.
    let xmlsec_order = rename(&enc, Some(issuer_serial("O=Snow,CN=Snow CA po.example", &ia.serial_decimal)));
    assert_eq!(&*e2e::decrypt(&xmlsec_order, &a.key, &a.cert).unwrap(), b"hemmelig");
}

/// Snow's envelopes always name the certificate: an unnamed EncryptedKey
/// is not tried for them; a foreign file's is, when none names us.
#[test]
fn unnamed_keys_are_tried_only_in_foreign_files() {
    let ps = parties(2);
    let (a, b) = (&ps[0], &ps[1]);
    let enc = e2e::encrypt(b"fra xmlsec1", &[&a.cert], KeyTransport::RsaOaepMgf1pSha1).unwrap();
    let unnamed = rename(&enc, None);
    assert_eq!(e2e::decrypt(&unnamed, &a.key, &a.cert), Err(E2eError::NotForThisKey));
    assert_eq!(&*e2e::decrypt_with(&unnamed, &a.key, &a.cert, &DecryptPolicy::FOREIGN).unwrap(), b"fra xmlsec1");
    assert_eq!(e2e::decrypt_with(&unnamed, &b.key, &b.cert, &DecryptPolicy::FOREIGN), Err(E2eError::NotForThisKey));
    // KeyName as xmlsec1 fills it in (the name the key was loaded under):
    // the subject's CN… is not the subject; the JID or subject counts.
    let ia = CertInfo::from_der(&a.cert).unwrap();
    let by_subject = rename(
        &enc,
        Some(Element::new(NS_DSIG, "KeyInfo").with_child(Element::new(NS_DSIG, "KeyName").with_text(ia.subject))),
    );
    assert_eq!(e2e::decrypt(&by_subject, &a.key, &a.cert), Err(E2eError::NotForThisKey));
    assert_eq!(&*e2e::decrypt_with(&by_subject, &a.key, &a.cert, &DecryptPolicy::FOREIGN).unwrap(), b"fra xmlsec1");
}
