//! What the fuzz targets share: the fixed test PKI in `fuzz/fixtures/`
//! (a CA, a user's key and certificate, another user's certificate and
//! a CRL, all made by snow-pki through `examples/seeds.rs`, which also
//! wrote the seeds in `fuzz/corpus/`), and the message-authentication
//! key store the msgauth targets and their seeds agree on.
//!
//! Nothing here is secret: the keys exist only for fuzzing.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use snow_crypto::msgauth::{KeyStore, Receiver, Sender};
use snow_crypto::Identity;

/// The test CA's certificate (DER), `Snow CA po.example`.
pub const CA_DER: &[u8] = include_bytes!("../fixtures/ca.der");
/// The user `9144889@po.example`: certificate (DER) and PKCS#8 key (DER).
pub const USER_DER: &[u8] = include_bytes!("../fixtures/user.der");
pub const USER_KEY: &[u8] = include_bytes!("../fixtures/user.key");
/// Another user of the same CA, `1111111@po.example` (no key here).
pub const OTHER_DER: &[u8] = include_bytes!("../fixtures/other.der");
/// A CRL of the CA listing one revoked user, current for a century from
/// [`now`].
pub const CRL_DER: &[u8] = include_bytes!("../fixtures/crl.der");
const NOW: &str = include_str!("../fixtures/now.txt");

pub const DOMAIN: &str = "po.example";
pub const USER_JID: &str = "9144889@po.example";
pub const OTHER_JID: &str = "1111111@po.example";

/// The moment the fixtures were made (Unix seconds): CRL checks that take
/// a time use it, so they do not depend on the clock.
pub fn now() -> time::OffsetDateTime {
    let secs: i64 = NOW.trim().parse().expect("fixtures/now.txt holds Unix seconds");
    time::OffsetDateTime::from_unix_timestamp(secs).expect("a time")
}

/// The user's identity (key and certificate, then the CA).
pub fn identity() -> &'static Identity {
    static ID: OnceLock<Identity> = OnceLock::new();
    ID.get_or_init(|| {
        Identity::new(zeroize::Zeroizing::new(USER_KEY.to_vec()), vec![USER_DER.to_vec(), CA_DER.to_vec()])
            .expect("the fixture identity")
    })
}

/// Message-authentication keys: source, key id, algorithm, key, start.
/// The seeds of the msgauth targets are signed with these.
pub const MSGAUTH_KEYS: &str = "agent k1 hmac-sha256 c2VjcmV0IGtleSBvZiB0aGUgYWdlbnQsIDMyIGJ5dGVzIQ== 0\n\
                                legacy k1 hmac-md5 bGVnYWN5IGtleSBvZiAxNiBieXRlcyE= 0\n";

pub fn msgauth_store() -> Arc<KeyStore> {
    static S: OnceLock<Arc<KeyStore>> = OnceLock::new();
    Arc::clone(S.get_or_init(|| Arc::new(KeyStore::parse(MSGAUTH_KEYS, 0).expect("keys"))))
}

/// Two receivers over [`MSGAUTH_KEYS`]: the default clock window (a seed
/// older than five minutes is stale, after its MAC has been checked), and
/// one a century wide, so the committed seeds still reach the sequence
/// and replay logic.
pub fn receivers() -> [&'static Receiver; 2] {
    static R: OnceLock<(Receiver, Receiver)> = OnceLock::new();
    let (a, b) = R.get_or_init(|| {
        let wide = 100 * 366 * 86_400;
        (Receiver::new(msgauth_store()), Receiver::with_window(msgauth_store(), wide))
    });
    [a, b]
}

/// The same two receivers with confidentiality on
/// (`msgauth::confidential`): they take only sealed messages, and decrypt
/// them after the MAC and the replay window pass.
pub fn confidential_receivers() -> [&'static Receiver; 2] {
    static R: OnceLock<(Receiver, Receiver)> = OnceLock::new();
    let (a, b) = R.get_or_init(|| {
        let wide = 100 * 366 * 86_400;
        (
            Receiver::new(msgauth_store()).confidential(true),
            Receiver::with_window(msgauth_store(), wide).confidential(true),
        )
    });
    [a, b]
}

/// A confidential sender of source `agent` and a confidential receiver
/// of its own, for round trips of fuzzed plaintexts (the sender numbers
/// on, so the receiver never sees a replay).
pub fn confidential_pair() -> &'static (Sender, Receiver) {
    static P: OnceLock<(Sender, Receiver)> = OnceLock::new();
    P.get_or_init(|| {
        let wide = 100 * 366 * 86_400;
        (
            Sender::new(msgauth_store(), "agent").expect("the agent's key").confidential(true),
            Receiver::with_window(msgauth_store(), wide).confidential(true),
        )
    })
}

/// A directory of this process's own under the temporary directory.
pub fn scratch_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("snow-fuzz-{what}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

/// The server's trust store over the test CA, as `snow serve` loads it:
/// `ca.pem` and (not there at first) `crl.pem` in a scratch directory.
pub fn trust_store() -> &'static snow_server::trust::TrustStore {
    static T: OnceLock<snow_server::trust::TrustStore> = OnceLock::new();
    T.get_or_init(|| {
        let dir = scratch_dir("trust");
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, snow_crypto::pem::encode("CERTIFICATE", CA_DER).expect("pem")).expect("write ca.pem");
        let crl = dir.join("crl.pem");
        let _ = std::fs::remove_file(&crl);
        snow_server::trust::TrustStore::load(&ca, &crl, &[], &[]).expect("trust store")
    })
}
