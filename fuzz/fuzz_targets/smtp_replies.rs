//! The SMTP client's reading of a mail server's replies. The reply parser
//! (`Conn::reply` in snow-client's smtp.rs) is private, so the whole public
//! `snow_client::smtp::send` runs against a mail server on loopback that
//! says the input: the greeting, EHLO's capabilities, the AUTH challenge
//! (CRAM-MD5's Base64), each command's code, and with STARTTLS a TLS
//! handshake on whatever follows. Byte 0: bit 0 STARTTLS, bit 1 log in,
//! bit 2 CRAM-MD5 (else PLAIN), bit 3 `Auto`. `send` ends in `Ok` or an
//! error, never a panic; the connection is the only thing it waits on.
#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use snow_client::smtp::{self, Envelope, Mechanism, SmtpAuth, SmtpOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

struct Rig {
    rt: tokio::runtime::Runtime,
    listener: TcpListener,
    addr: SocketAddr,
}

fn rig() -> &'static Rig {
    static R: OnceLock<Rig> = OnceLock::new();
    R.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).expect("bind on loopback");
        let addr = listener.local_addr().expect("address");
        Rig { rt, listener, addr }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, said)) = data.split_first() else { return };
    let r = rig();
    let mechanism = match (flags & 8 != 0, flags & 4 != 0) {
        (true, _) => Mechanism::Auto,
        (false, true) => Mechanism::CramMd5,
        (false, false) => Mechanism::Plain,
    };
    let opts = SmtpOptions {
        addr: r.addr,
        server_name: "mail.po.example".into(),
        helo: "po.example".into(),
        starttls: flags & 1 != 0,
        roots: vec![snow_fuzz::CA_DER.to_vec()],
        auth: (flags & 2 != 0).then(|| SmtpAuth {
            user: "snow-admin".into(),
            password: zeroize::Zeroizing::new("tanstaaftanstaaf".into()),
            mechanism,
        }),
        timeout: Duration::from_secs(10),
    };
    let to = ["9144889@po.example"];
    let env = Envelope { from: "snow-admin@po.example", to: &to, data: b"Subject: key\n\n.hello\n" };
    r.rt.block_on(async {
        let server = async {
            let (mut s, _) = r.listener.accept().await.expect("accept");
            let _ = s.write_all(said).await;
            let _ = s.shutdown().await;
            // Take what the client writes until it hangs up.
            let mut sink = vec![0u8; 4096];
            while let Ok(n) = s.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        };
        let client = async {
            let outcome = smtp::send(&opts, &env).await;
            if let Err(e) = &outcome {
                assert!(!matches!(e, smtp::SmtpError::Connect { .. }), "{e}");
                assert!(!matches!(e, smtp::SmtpError::Timeout(_)), "{e}");
            }
            outcome
        };
        let _ = tokio::join!(server, client);
    });
});
