//! The command line, as a newcomer reads it in `snow --help`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// The environment variables, shown at the end of `snow --help`.
const ENVIRONMENT: &str = "\
Environment:
  SNOW_HOME            the site's home directory (as --home)
  SNOW_CONFIG          the configuration file (as --config)
  SNOW_CA_PASSPHRASE   the CA's admin passphrase (as --ca-passphrase-file)
  SNOW_P12_PASSWORD    a key file's one-time password (as --password-file)
  SNOW_KEY_PASSPHRASE  your personal key-store passphrase (as --passphrase-file)
  SNOW_KEYSTORE        your key store directory (as --keystore)
  SNOW_SERVER          your server's address, host:port (as --server)
  SNOW_LAB             the lab server to search (as --lab)
  SNOW_ALERT_SERVICE   the pubsub service of alerts (as --service)
  SNOW_LOG             what is logged to standard error, e.g. info, debug,
                       or warn,snow_server=debug (default: warnings, and one
                       line per lab file imported or refused)

A secret in a variable is seen by other programs of the same user; a file
readable by you alone is safer. At a terminal, leave both out and Snow asks.";

/// Snow: secure, federated messaging for laboratory-based disease
/// surveillance.
///
/// A site keeps its CA, database and outbox in SNOW_HOME (default
/// ./snow-home). Secrets are asked for at the terminal with hidden input;
/// scripts give them in files or environment variables, never on the
/// command line.
///
/// Setting up a site and a first user:
///
///   snow ca init --domain po.example
///   snow server cert
///   snow user add --hpnr 9144889 --phone +4791234567 --email gp@example.org --p12-out 9144889.p12
///   snow key import 9144889.p12      (on the GP's computer; the password is in the SMS)
///   snow serve
#[derive(Debug, Parser)]
#[command(name = "snow", version, about, long_about, verbatim_doc_comment, after_long_help = ENVIRONMENT)]
pub struct Cli {
    /// The site's home directory: CA, database, outbox, key store.
    #[arg(long, global = true, env = "SNOW_HOME", default_value = "snow-home")]
    pub home: PathBuf,

    /// Configuration file (default: SNOW_HOME/snow.toml if it exists).
    #[arg(long, global = true, env = "SNOW_CONFIG")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

/// The CA's admin passphrase, for the commands that sign with the CA.
#[derive(Debug, Args)]
pub struct CaSecret {
    /// File whose first line is the CA's admin passphrase (else
    /// SNOW_CA_PASSPHRASE, else asked at the terminal).
    #[arg(long, value_name = "PATH")]
    pub ca_passphrase_file: Option<PathBuf>,
}

/// Your key store and the passphrase that unlocks it.
#[derive(Debug, Args)]
pub struct KeyStoreArgs {
    /// Key store directory (default: SNOW_HOME/keystore).
    #[arg(long, value_name = "DIR", env = "SNOW_KEYSTORE")]
    pub keystore: Option<PathBuf>,
    /// File whose first line is your personal key-store passphrase (else
    /// SNOW_KEY_PASSPHRASE, else asked at the terminal).
    #[arg(long, value_name = "PATH")]
    pub passphrase_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The site's certificate authority (at the PO server).
    #[command(subcommand)]
    Ca(CaCommand),
    /// Certificates for this site's XMPP server.
    #[command(subcommand)]
    Server(ServerCommand),
    /// Agents: certificates (the lab's search agent), and running an agent
    /// as an external component (the echo agent).
    #[command(subcommand)]
    Agent(AgentCommand),
    /// Message authentication between components: keys, and signing or
    /// checking a message by hand.
    #[command(subcommand)]
    Msgauth(MsgauthCommand),
    /// The PKI outbox: deliver the waiting key e-mails by SMTP.
    #[command(subcommand)]
    Outbox(OutboxCommand),
    /// Search a lab's statistics, e.g. positive influenza A tests in a
    /// municipality over the last 8 weeks. Parameters only; the request and
    /// the answer are end-to-end encrypted between you and the lab's agent.
    /// `--choices` lists what you may search with.
    Search(SearchArgs),
    /// Outbreak alerts: subscribe per area and analysis, list what you
    /// received, confirm an alert, or send your own to the GPs of an area.
    #[command(subcommand)]
    Alert(AlertCommand),
    /// Start a complete demonstration on this computer: a PO server and a
    /// lab server (federated, fresh CA, two GPs), a synthetic winter season
    /// of lab data, and a GP's search across the federation. Runs until
    /// Ctrl-C.
    Demo(DemoArgs),
    /// Users: create (with key delivery), list, revoke.
    #[command(subcommand)]
    User(UserCommand),
    /// Your own key store: import the key file you were sent, show it.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Run this site's XMPP server (until Ctrl-C or SIGTERM; SIGHUP
    /// re-reads the CRL).
    Serve,
    /// Chat with other users: send a message, or listen for messages.
    #[command(subcommand)]
    Chat(ChatCommand),
    /// Lab data: pseudonymising export (in the lab), import (at the lab server).
    #[command(subcommand)]
    Lab(LabCommand),
    /// At the PO: set up another site of this CA, such as a lab server.
    #[command(subcommand)]
    Site(SiteCommand),
    /// XML Encryption and XML Signature for files: the envelope and the
    /// signature Snow puts on messages.
    #[command(subcommand)]
    Crypt(CryptCommand),
    /// The key directory: other users' certificates, from your server.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Load tests of a running server (Snow or any XMPP server).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Announce your presence and show your contacts' presence, and the
    /// requests to see yours that wait for your answer.
    Presence {
        #[command(flatten)]
        conn: ConnArgs,
        /// away, chat, dnd or xa (default: plain available).
        #[arg(long)]
        show: Option<String>,
        /// A short status text.
        #[arg(long)]
        status: Option<String>,
        /// Seconds to listen for your contacts' presence.
        #[arg(long, value_name = "SECS", default_value_t = 2)]
        listen: u64,
    },
    /// Your contacts: who sees whose presence. Adding someone asks to see
    /// their presence (and lets them see yours); removing them stops it
    /// both ways.
    #[command(subcommand)]
    Contacts(ContactsCommand),
    /// The GP's Snow app: search, alerts and chat in your browser. It
    /// runs on this computer only (127.0.0.1) and opens the browser with a
    /// one-time link (also printed). The first time, it imports your key
    /// (the .p12 from the e-mail, the password from the SMS); then it asks
    /// for your personal passphrase. Settings: [app] in snow.toml.
    App(AppArgs),
}

#[derive(Debug, clap::Args)]
pub struct AppArgs {
    /// The Snow server (host:port; default: [app] server).
    #[arg(long, env = "SNOW_SERVER")]
    pub server: Option<String>,
    /// Key store directory (default: SNOW_HOME/keystore).
    #[arg(long, value_name = "DIR", env = "SNOW_KEYSTORE")]
    pub keystore: Option<PathBuf>,
    /// The port on 127.0.0.1 (default: [app] port; 0 picks a free one).
    #[arg(long)]
    pub port: Option<u16>,
    /// A lab whose statistics you may search (repeat for more; default:
    /// [app] labs).
    #[arg(long = "lab", value_name = "DOMAIN", env = "SNOW_LAB", value_delimiter = ',')]
    pub labs: Vec<String>,
    /// Print the link only; do not open the browser.
    #[arg(long)]
    pub no_browser: bool,
    /// nb (Norwegian) or en (English) (default: [app] language).
    #[arg(long)]
    pub lang: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ContactsCommand {
    /// Your contacts, each with its name and who sees whose presence,
    /// and the requests waiting for your answer.
    List {
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Add a contact (or rename one): asks to see their presence, and if
    /// they asked to see yours, accepts.
    Add {
        #[command(flatten)]
        conn: ConnArgs,
        /// The contact, e.g. 9144889@po.example.
        jid: String,
        /// A name to show for them.
        #[arg(long)]
        name: Option<String>,
    },
    /// Remove a contact: neither of you sees the other's presence any more.
    Remove {
        #[command(flatten)]
        conn: ConnArgs,
        /// The contact, e.g. 9144889@po.example.
        jid: String,
    },
}

/// How the client reaches its server and finds its key.
#[derive(Debug, Args)]
pub struct ConnArgs {
    /// The server's address (host:port).
    #[arg(long, env = "SNOW_SERVER", default_value = "127.0.0.1:5222")]
    pub server: String,
    /// Connect with direct TLS (XEP-0368) instead of STARTTLS.
    #[arg(long)]
    pub direct_tls: bool,
    #[command(flatten)]
    pub key: KeyStoreArgs,
    /// Resource name for this connection.
    #[arg(long)]
    pub resource: Option<String>,
    /// Seconds to wait for the server while it refuses connections (it
    /// may be starting); 0 tries once.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub wait: u64,
}

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Inside the lab: turn the lab database's CSV export into the pushed
    /// format (keyed pseudonyms, age groups, nothing else identifying).
    Export {
        /// The lab database's export (columns sample_id, patient_id,
        /// birth_date, sex, municipality, sample_date, analysis, result).
        #[arg(long = "in", value_name = "RAW.csv")]
        input: PathBuf,
        /// The lab's pseudonymisation secret (at least 16 bytes; it never
        /// leaves the lab).
        #[arg(long, value_name = "PATH")]
        secret_file: PathBuf,
        /// Where to write the pseudonymised file (then push it to the lab server's data/in).
        #[arg(long, value_name = "OUT.csv")]
        out: PathBuf,
    },
    /// At the lab server: import one pushed file by hand (as the drop
    /// directory does). A file with a bad row is not imported at all; its
    /// first 20 errors are listed by line number.
    Import {
        /// The pushed file (the output of `snow lab export`).
        file: PathBuf,
    },
    /// At the lab server: import every complete file in SNOW_HOME/data/in;
    /// a refused file goes to data/rejected with NAME.error, which lists its
    /// errors by line.
    Process,
    /// Inside the lab: make the pseudonymisation secret `snow lab export`
    /// keys its pseudonyms with (32 random bytes, written readable by you
    /// only). Make it once and keep it: the same secret gives the same
    /// pseudonyms, so a patient tested twice is counted once.
    Secret {
        /// The new secret's file (it must not exist yet).
        #[arg(long, value_name = "PATH")]
        out: PathBuf,
    },
    /// Run an outbreak-detection algorithm over weekly series, exactly as
    /// the R package surveillance does. Input columns series,year,week,count
    /// (ISO weeks, no gaps); output one row per monitored week:
    /// algorithm,series,year,week,t,observed,upperbound,alarm (Farrington
    /// adds expected,phi,trend_used,trend_coef,score,pvalue,mu0_quantile).
    Detect {
        /// The weekly series (CSV: series,year,week,count).
        #[arg(long, value_name = "SERIES.csv")]
        input: PathBuf,
        /// C1, C2 or C3 (EARS), or farrington (Farrington-flexible).
        #[arg(long)]
        algorithm: String,
        /// Significance level (default: 0.001, and 0.025 for C3 as the
        /// package does; 0.05 for Farrington, one-sided).
        #[arg(long)]
        alpha: Option<f64>,
        /// Farrington: past years in the baseline (default 5).
        #[arg(long, default_value_t = 5)]
        b: usize,
        /// Farrington: half-width of the window around each reference week
        /// (default 3).
        #[arg(long, default_value_t = 3)]
        w: usize,
        /// Farrington: delta (default), nbPlugin or muan.
        #[arg(long, default_value = "delta")]
        threshold_method: String,
        /// Farrington: seasonal factor levels (default 1: none).
        #[arg(long, default_value_t = 1)]
        no_periods: usize,
        /// Farrington: recent weeks left out of the baseline (default: w).
        #[arg(long)]
        past_weeks_not_included: Option<usize>,
        /// Farrington: reference weeks by calendar date (the package's
        /// epochAsDate), not 52 weeks back; monitoring starts at 52·b + w + 3.
        #[arg(long)]
        epoch_as_date: bool,
        /// Weeks in the baseline (EARS; default 7).
        #[arg(long, default_value_t = 7)]
        baseline: usize,
        /// Floor for the standard deviation (EARS minSigma; default 0).
        #[arg(long, default_value_t = 0.0)]
        min_sigma: f64,
        /// csv (the reference-file format of docs/detection-algorithms.md §3).
        #[arg(long, default_value = "csv")]
        format: String,
    },
    /// The perturbation table this lab's searches use ([lab.perturbation]):
    /// for each true count, the published values and their probabilities.
    /// It is public; the protection is in the records' secret keys.
    Ptable {
        /// text or csv.
        #[arg(long, default_value = "text")]
        format: String,
    },
    /// At the lab server: the searches the lab's agent was asked — who,
    /// what, when, how many cells were answered, and refusals (over the
    /// budget, unverified, invalid), oldest first.
    Audit {
        /// From this day on (YYYY-MM-DD, UTC).
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
        /// Only this GP's searches (their address, e.g. 1234567@po.example).
        #[arg(long, value_name = "JID")]
        requester: Option<String>,
        /// Only the newest N.
        #[arg(long, value_name = "N")]
        last: Option<u32>,
        /// table, csv or json.
        #[arg(long, default_value = "table")]
        format: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SiteCommand {
    /// Make a lab server's home directory: its server and search-agent
    /// certificates, the CA certificate and CRL, and a snow.toml with the
    /// import, the search agent and outbreak detection on and this PO as
    /// its master; and add it to this PO's [s2s] replicas. Copy the
    /// directory to the lab server (it holds private keys), or use it here
    /// with --same-host.
    AddLab {
        /// The lab server's XMPP domain, e.g. lab.example.
        #[arg(long)]
        domain: String,
        /// The new (or empty) directory to make the lab server's home in.
        #[arg(long, value_name = "DIR")]
        lab_home: PathBuf,
        /// Both sites run on this computer: the lab server listens on
        /// 127.0.0.1:5322 (clients), 5369 (servers) and 5447 (components),
        /// and each site gets a route to the other in [s2s.routes].
        #[arg(long)]
        same_host: bool,
        #[command(flatten)]
        ca: CaSecret,
    },
}

#[derive(Debug, Subcommand)]
pub enum CryptCommand {
    /// Encrypt FILE for the holders of the given certificates; writes an
    /// XML document with one xenc:EncryptedData (Type Content).
    Encrypt {
        /// A recipient's certificate (PEM or DER); repeat for more.
        #[arg(long = "to", value_name = "CERT", required = true)]
        to: Vec<PathBuf>,
        /// rsa-oaep (SHA-256, the default) or rsa-oaep-mgf1p (SHA-1, for
        /// xmlsec1 1.2).
        #[arg(long, default_value = "rsa-oaep")]
        key_transport: String,
        /// FILE is XML content (text and elements, like a message body):
        /// mark it Type Content, so XML tools put it back into the tree.
        #[arg(long)]
        content: bool,
        /// Output file (default: standard output).
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
        /// The file to encrypt.
        file: PathBuf,
    },
    /// Decrypt the first xenc:EncryptedData in FILE with your key store's
    /// key; writes the plaintext.
    Decrypt {
        #[command(flatten)]
        key: KeyStoreArgs,
        /// Output file (default: standard output).
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
        /// The file holding the xenc:EncryptedData.
        file: PathBuf,
    },
    /// Sign FILE with your key store's key: W3C XML Signature, enveloped
    /// (exclusive c14n, RSA-SHA256, your certificate in KeyInfo), as Snow
    /// signs its messages. An XML document gets the ds:Signature as its
    /// root's last child; any other file is first wrapped in
    /// <signed-file xmlns='urn:snow:signed:1' name='…'>base64</signed-file>.
    Sign {
        #[command(flatten)]
        key: KeyStoreArgs,
        /// Wrap FILE even if it is XML (sign its bytes, not its content).
        #[arg(long)]
        wrap: bool,
        /// Output file (default: standard output).
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
        /// The file to sign.
        file: PathBuf,
    },
    /// Verify the XML Signature in FILE (Snow's profile only), the
    /// signer's certificate chain to the CA in your key store, its validity
    /// and, with a CRL, its revocation; prints the signer.
    Verify {
        /// Key store whose CA certificate is trusted (default:
        /// SNOW_HOME/keystore; without one, SNOW_HOME/ca/ca.pem). No
        /// passphrase is needed.
        #[arg(long, value_name = "DIR", env = "SNOW_KEYSTORE")]
        keystore: Option<PathBuf>,
        /// The CA's CRL (PEM or DER); default SNOW_HOME/ca/crl.pem when it
        /// exists. Without one, revocation is not checked (and said so).
        #[arg(long, value_name = "PATH")]
        crl: Option<PathBuf>,
        /// Write the verified content here: the document without its
        /// Signature, or a signed-file's original bytes.
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
        /// The signed file.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print the certificates of these users as your server's key
    /// directory returns them: status, subject, fingerprint.
    Lookup {
        #[command(flatten)]
        conn: ConnArgs,
        /// One or more JIDs, e.g. 9144889@po.example.
        #[arg(required = true)]
        jids: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ChatCommand {
    /// Send one chat message.
    Send {
        #[command(flatten)]
        conn: ConnArgs,
        /// The recipient, e.g. 9144889@po.example.
        #[arg(long)]
        to: String,
        /// Send in clear text instead of end-to-end encrypted (the server
        /// may refuse it).
        #[arg(long)]
        plain: bool,
        /// The message text.
        text: String,
    },
    /// Print incoming messages (stored ones first) until Ctrl-C.
    Listen {
        #[command(flatten)]
        conn: ConnArgs,
        /// Stop after this many messages.
        #[arg(long)]
        count: Option<usize>,
        /// Stop after this many seconds.
        #[arg(long)]
        timeout: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create the site's CA: an RSA key kept encrypted under an admin
    /// passphrase, a self-signed CA certificate, the CA database and a
    /// first (empty) CRL.
    Init {
        /// The site's XMPP domain, e.g. po.example.
        #[arg(long)]
        domain: String,
        #[command(flatten)]
        ca: CaSecret,
    },
    /// Write the current signed CRL (PEM) listing every revoked certificate.
    Crl {
        /// Also copy the CRL here (it is always written to SNOW_HOME/ca/crl.pem).
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
        #[command(flatten)]
        ca: CaSecret,
    },
}

#[derive(Debug, Subcommand)]
pub enum ServerCommand {
    /// Issue the TLS certificate the server uses for client and
    /// server-to-server connections (written to SNOW_HOME/server/). The
    /// server's earlier certificate is revoked as superseded: restart a
    /// running server with the new one.
    Cert {
        /// The server's domain (default: the CA's domain).
        #[arg(long)]
        domain: Option<String>,
        /// The domain of an external component of this server that other
        /// sites reach over s2s, e.g. search.lab.example (repeatable).
        #[arg(long = "component", value_name = "DOMAIN")]
        components: Vec<String>,
        #[command(flatten)]
        ca: CaSecret,
    },
    /// At the PO: revoke a server's certificate (a lab server given up, or
    /// its key compromised) and publish a new CRL. Every site refuses the
    /// server from then on and closes its links within seconds.
    Revoke {
        /// The server's domain, e.g. lab.example.
        #[arg(long)]
        domain: String,
        /// unspecified, key-compromise, affiliation-changed, superseded,
        /// cessation-of-operation or privilege-withdrawn.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        ca: CaSecret,
    },
}

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// At the PO: issue an agent's certificate (written to
    /// SNOW_HOME/agents/; copy both files to the lab server's SNOW_HOME).
    /// The certificate enters the key directory, so GPs can encrypt to the
    /// agent. A previous certificate of the agent is revoked as superseded.
    Cert {
        /// The agent's JID: search@lab.example for an agent that logs in
        /// like a user, or a domain (search.lab.example) for one that runs
        /// as a component.
        #[arg(long)]
        jid: String,
        #[command(flatten)]
        ca: CaSecret,
    },
    /// At the PO: revoke an agent's certificate and publish a new CRL. Its
    /// key directory entry becomes revoked everywhere (GPs stop encrypting
    /// to it), and an agent that logs in with it is refused and its live
    /// session closed. An agent running as a component is refused at its
    /// next handshake and its live link closed, at every server that has
    /// the new CRL.
    Revoke {
        /// The agent's JID (search@lab.example) or component domain
        /// (search.lab.example).
        #[arg(long)]
        jid: String,
        /// unspecified, key-compromise, affiliation-changed, superseded,
        /// cessation-of-operation or privilege-withdrawn.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        ca: CaSecret,
    },
    /// Run an agent as an external component (XEP-0114) of a server,
    /// until Ctrl-C: `echo` returns every message it gets; `search` is the
    /// lab's search agent, answering at its domain (search.lab.example)
    /// from this site's lab store with the certificate `snow agent cert
    /// --jid search.lab.example` issued.
    Run {
        /// The agent: echo or search.
        agent: String,
        /// The server's component port.
        #[arg(long, default_value = "127.0.0.1:5347")]
        server: String,
        /// The component's domain, e.g. echo.po.example.
        #[arg(long)]
        domain: String,
        /// File with the shared secret (as in the server's [[components]]).
        #[arg(long, value_name = "PATH")]
        secret_file: PathBuf,
        /// Sign and verify every stanza with the [msgauth] key file.
        #[arg(long)]
        hmac: bool,
        /// The source this agent signs with (default: its domain).
        #[arg(long)]
        source: Option<String>,
        /// The source the server signs with (default: the parent domain).
        #[arg(long)]
        server_source: Option<String>,
        /// Also encrypt every stanza's content both ways (AES-256-GCM under
        /// a key derived from the [msgauth] keys); the server's
        /// [[components]] entry must say confidential = true.
        #[arg(long, requires = "hmac")]
        confidential: bool,
        /// Seconds to wait for the component port while it refuses
        /// connections (the server may be starting); 0 tries once.
        #[arg(long, value_name = "SECS", default_value_t = 10)]
        wait: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Send every e-mail waiting in SNOW_HOME/outbox/email through the
    /// [smtp] server (STARTTLS, AUTH CRAM-MD5 or PLAIN); sent ones move to
    /// outbox/email/sent. The SMS files stay for the SMS gateway.
    Send,
}

#[derive(Debug, Subcommand)]
pub enum MsgauthCommand {
    /// Add a new random key for a source to the key file ([msgauth] keys,
    /// created owner-only). The key itself is never printed.
    Keygen {
        /// The source the key belongs to (a component or server name, e.g. echo).
        #[arg(long)]
        source: String,
        /// Key id (default: the current year and month).
        #[arg(long)]
        kid: Option<String>,
        /// hmac-sha256, or hmac-md5 for the legacy 24-character format.
        #[arg(long, default_value = "hmac-sha256")]
        algorithm: String,
        /// When the key starts to be used (RFC 3339; default: now).
        #[arg(long)]
        valid_from: Option<String>,
    },
    /// Sign a message as SOURCE; writes the tagged message.
    Sign {
        /// The source to sign as (its key must be in the key file).
        #[arg(long)]
        source: String,
        /// text, xml, stanza or shim.
        #[arg(long, default_value = "text")]
        carrier: String,
        /// The message (default: standard input).
        #[arg(long = "in", value_name = "FILE")]
        input: Option<PathBuf>,
    },
    /// Print the exclusive XML canonical form (W3C exc-c14n) of a stanza
    /// or XML document: what the stanza and XML carriers sign. For finding
    /// why a MAC does not match.
    Canonical {
        /// The stanza or XML document (default: standard input).
        #[arg(long = "in", value_name = "FILE")]
        input: Option<PathBuf>,
    },
    /// Check a tagged message; writes the message without its tag. Each
    /// run starts with no memory, so a replay across runs is not detected.
    Verify {
        /// text, xml, stanza or shim.
        #[arg(long, default_value = "text")]
        carrier: String,
        /// The tagged message (default: standard input).
        #[arg(long = "in", value_name = "FILE")]
        input: Option<PathBuf>,
    },
}

/// Where alerts are published: the PO's pubsub service.
#[derive(Debug, Args)]
pub struct AlertService {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// The pubsub service (default: your own server's domain, the PO).
    #[arg(long, env = "SNOW_ALERT_SERVICE")]
    pub service: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AlertCommand {
    /// Receive the alerts of an area and analysis. A municipality also
    /// subscribes you to its county's alerts.
    Subscribe {
        #[command(flatten)]
        at: AlertService,
        /// Analysis code, e.g. INFA (any case).
        #[arg(long)]
        analysis: String,
        /// A municipality (4 digits, e.g. 5401) or a county (2 digits, e.g. 54).
        #[arg(long)]
        area: String,
    },
    /// The alerts you received, newest first, with confirmations.
    List {
        #[command(flatten)]
        at: AlertService,
        /// At most this many per area and analysis.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Confirm an alert (its ID from `snow alert list`): the confirmation
    /// goes to the alert's author and to the other GPs of the area.
    Confirm {
        #[command(flatten)]
        at: AlertService,
        /// The alert's ID, e.g. INFA-5401-2026W47.
        id: String,
        /// A comment for the other GPs.
        #[arg(long)]
        comment: Option<String>,
    },
    /// Send your own outbreak alert (a cluster seen in your practice) to
    /// the GPs of an area.
    Send {
        #[command(flatten)]
        at: AlertService,
        /// Analysis code, e.g. INFA (any case).
        #[arg(long)]
        analysis: String,
        /// A municipality (4 digits, e.g. 5401) or a county (2 digits, e.g. 54).
        #[arg(long)]
        area: String,
        /// What you saw (at most 2000 bytes).
        #[arg(long)]
        text: String,
    },
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// The lab server whose agent to ask, e.g. lab.example (the agent is
    /// search@DOMAIN/agent).
    #[arg(long, env = "SNOW_LAB")]
    pub lab: Option<String>,
    /// The agent's full JID, if not search@LAB/agent.
    #[arg(long)]
    pub agent: Option<String>,
    /// List the lab's choices instead of searching: its analyses, the
    /// areas it has data for, age groups, sexes, granularities and the
    /// weeks its data covers (asked in clear: nothing personal in it).
    /// As a table, or with --format json.
    #[arg(long, conflicts_with_all = ["analysis", "area", "weeks", "months", "from", "age_group", "sex", "granularity"])]
    pub choices: bool,
    /// Analysis code, e.g. INFA (influenza A), INFB, RSV, SARS2 (any case);
    /// `--choices` lists the lab's.
    #[arg(long, required_unless_present = "choices")]
    pub analysis: Option<String>,
    /// A municipality (4 digits, e.g. 5401), a county (2 digits, e.g. 54), or all.
    #[arg(long, default_value = "all")]
    pub area: String,
    /// The last N ISO weeks, this one included.
    #[arg(long, conflicts_with_all = ["months", "from"])]
    pub weeks: Option<u32>,
    /// The last N months, this one included.
    #[arg(long, conflicts_with = "from")]
    pub months: Option<u32>,
    /// Start of the period: an ISO week (2026-W01) or a month (2026-01).
    #[arg(long, requires = "to")]
    pub from: Option<String>,
    /// End of the period, the same kind as --from.
    #[arg(long, requires = "from")]
    pub to: Option<String>,
    /// Only this age group, e.g. 25-44 or 80+.
    #[arg(long)]
    pub age_group: Option<String>,
    /// Only this sex: M, F or U (any case).
    #[arg(long)]
    pub sex: Option<String>,
    /// week, month or total, any case (default: week for weeks, month for months).
    #[arg(long)]
    pub granularity: Option<String>,
    /// table (with a sparkline), csv or json. A period outside the lab's
    /// data is "no data", not 0; in JSON every count is a number, or null
    /// when suppressed or no data.
    #[arg(long, default_value = "table")]
    pub format: String,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the demo keeps its two sites (default: a fresh temporary
    /// directory, removed at the end).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<std::path::PathBuf>,
    /// Stop after showing the search instead of running until Ctrl-C.
    #[arg(long)]
    pub once: bool,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user: key, certificate and a PKCS#12 file under a random
    /// one-time password. The file goes to the outbox as an e-mail, the
    /// password as an SMS; the password is never shown.
    Add {
        /// Health Personnel Number (4-9 digits); the user's JID is HPNR@domain.
        #[arg(long)]
        hpnr: String,
        /// Mobile number for the one-time password, e.g. +4791234567.
        #[arg(long)]
        phone: String,
        /// E-mail address for the key file.
        #[arg(long)]
        email: String,
        /// Also write the PKCS#12 file here (for hand delivery).
        #[arg(long, value_name = "PATH")]
        p12_out: Option<PathBuf>,
        /// The user's home server, if not the PO's domain (a lab server of
        /// this CA): the JID becomes HPNR@DOMAIN.
        #[arg(long)]
        domain: Option<String>,
        #[command(flatten)]
        ca: CaSecret,
    },
    /// List users and the state of their certificates.
    List,
    /// Give a user a new key and certificate (lost or compromised key,
    /// expiry), delivered like a new user's; the old certificate is revoked
    /// as superseded.
    Rekey {
        /// The user's Health Personnel Number.
        #[arg(long)]
        hpnr: String,
        /// Also write the new PKCS#12 file here.
        #[arg(long, value_name = "PATH")]
        p12_out: Option<PathBuf>,
        #[command(flatten)]
        ca: CaSecret,
    },
    /// Revoke a user's certificate and publish a new CRL.
    Revoke {
        /// The user's Health Personnel Number.
        #[arg(long)]
        hpnr: String,
        /// unspecified, key-compromise, affiliation-changed, superseded,
        /// cessation-of-operation or privilege-withdrawn.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        ca: CaSecret,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Import the key file you were sent (.p12, or an encrypted PKCS#8 key
    /// with --cert) into your key store, under a personal passphrase.
    Import {
        /// The .p12 file, or an encrypted PKCS#8 key (PEM or DER).
        file: PathBuf,
        /// The certificate (PEM) for a PKCS#8 key; a .p12 carries its own.
        #[arg(long, value_name = "PATH")]
        cert: Option<PathBuf>,
        /// File whose first line is the key file's one-time password (from
        /// the SMS; else SNOW_P12_PASSWORD, else asked at the terminal).
        #[arg(long, value_name = "PATH")]
        password_file: Option<PathBuf>,
        /// Where to keep the key, and the personal passphrase you choose
        /// for it (at a terminal you type it twice).
        #[command(flatten)]
        key: KeyStoreArgs,
        /// Replace an existing key store.
        #[arg(long)]
        force: bool,
    },
    /// Show the certificate in your key store: subject, JID, issuer,
    /// validity, fingerprint.
    Show {
        #[command(flatten)]
        key: KeyStoreArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// N clients send one-to-one messages to each other; prints delivered
    /// messages/s, latency percentiles and (with --server-pid) the server's
    /// peak memory and CPU time. With --idle, holds N logged-in connections
    /// and prints the server's memory per connection instead.
    C2s(BenchC2sArgs),
    /// Senders logged in to one server send to receivers on another, so
    /// every message crosses the s2s link; prints messages/s and latency.
    S2s(BenchS2sArgs),
    /// Whether one account's flood hurts everyone else: a fresh site in a
    /// temporary directory with its own `snow serve`, N users chatting in a
    /// ring at a steady rate, then the same while one more account floods
    /// from several connections; prints the users' delivered ratio and
    /// latency p50/p99 for both, what the flood got through, and the
    /// server's memory and database size.
    Abuse(BenchAbuseArgs),
}

#[derive(Debug, Args)]
pub struct BenchAbuseArgs {
    /// Normal users (each sends to the next).
    #[arg(long, default_value_t = 100)]
    pub users: usize,
    /// Messages per second each normal user sends.
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Seconds each phase lasts.
    #[arg(long, default_value_t = 20)]
    pub secs: u64,
    /// Connections the flooding account opens, each sending at full speed.
    #[arg(long, default_value_t = 20)]
    pub flood_connections: usize,
}

#[derive(Debug, Args)]
pub struct BenchS2sArgs {
    /// The senders' server and login (as for `bench c2s`).
    #[command(flatten)]
    pub base: BenchC2sArgs,
    /// The receivers' server.
    #[arg(long, default_value = "127.0.0.1")]
    pub to_host: String,
    /// The receivers' server port.
    #[arg(long)]
    pub to_port: u16,
    /// The receivers' domain (default: from --to-keystore's JID).
    #[arg(long)]
    pub to_domain: Option<String>,
    /// Key store of the receivers' account.
    #[arg(long, value_name = "DIR")]
    pub to_keystore: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BenchC2sArgs {
    /// The server's host name or address.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// The server's client port.
    #[arg(long, default_value_t = 5222)]
    pub port: u16,
    /// The server's XMPP domain (default: the domain of the key store's JID).
    #[arg(long)]
    pub domain: Option<String>,
    /// Connected clients.
    #[arg(long, default_value_t = 200)]
    pub clients: usize,
    /// Messages each client sends.
    #[arg(long, default_value_t = 100)]
    pub messages: usize,
    /// Bytes of filler in each message body.
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// external (certificate from --keystore) or plain (--username and
    /// the password in --passphrase-file / SNOW_KEY_PASSPHRASE).
    #[arg(long, default_value = "external")]
    pub auth: String,
    /// Account name for --auth plain.
    #[arg(long)]
    pub username: Option<String>,
    /// CA certificate (PEM) that issued the server's certificate (default:
    /// the CA in the key store).
    #[arg(long, value_name = "PATH")]
    pub ca: Option<PathBuf>,
    /// Key store for --auth external, and its passphrase (for --auth
    /// plain: the password).
    #[command(flatten)]
    pub key: KeyStoreArgs,
    /// The server's process id, to report its peak memory and CPU time.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Hold the connections idle and report memory per connection.
    #[arg(long)]
    pub idle: bool,
    /// Logins in flight at once.
    #[arg(long, default_value_t = 32)]
    pub parallel: usize,
}
