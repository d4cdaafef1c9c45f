//! Timings of the two PKI steps a person waits for: the administrator's
//! `snow user add` (RSA keygen + certificate + PKCS#12 + delivery files +
//! database) and the GP's `snow key import` (open the PKCS#12, check the
//! key, re-encrypt under the personal passphrase, write the key store).

use criterion::{criterion_group, criterion_main, Criterion};
use snow_core::SiteHome;
use snow_crypto::{pkcs12, FileKeyStore, Identity, KeyStore};
use snow_pki::{outbox, Ca, PkiSettings};

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = SiteHome::new(dir.path().join("home"));
    let settings = PkiSettings::default();
    let mut ca =
        Ca::init(&paths, &"po.example".parse().expect("domain"), "bench admin passphrase", &settings).expect("ca init");
    let mut next: u32 = 1_000_000;

    let mut g = c.benchmark_group("pki");
    g.sample_size(20);
    g.bench_function("user_issue_rsa2048", |b| {
        b.iter(|| {
            next += 1;
            let hpnr = next.to_string().parse().expect("hpnr");
            ca.add_user(&hpnr, &"+4791234567".parse().expect("phone"), &"gp@x.example".parse().expect("email"))
                .expect("issue")
        })
    });

    let issued = ca
        .add_user(
            &"9144889".parse().expect("hpnr"),
            &"+4791234567".parse().expect("phone"),
            &"gp@x.example".parse().expect("email"),
        )
        .expect("issue");
    let sms = std::fs::read_to_string(&issued.delivery.sms).expect("sms");
    let password = outbox::password_of(&sms).expect("password");
    let store = FileKeyStore::new(dir.path().join("keystore"));
    g.bench_function("key_import", |b| {
        b.iter(|| {
            let contents = pkcs12::read(&issued.p12, &password, "p12").expect("read");
            let id = Identity::new(contents.key_pkcs8, contents.chain).expect("identity");
            store.save(&id, "bench personal passphrase", true).expect("save")
        })
    });
    g.bench_function("key_unlock", |b| b.iter(|| store.unlock("bench personal passphrase").expect("unlock")));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
