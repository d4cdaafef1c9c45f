//! Getting secrets from the person or the script: a file named by a flag,
//! an environment variable, or a hidden prompt at the terminal — never the
//! command line (other users see argv in `ps`).

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{bail, Context};
use zeroize::Zeroizing;

/// One kind of secret and where it may come from.
pub struct Source<'a> {
    /// What it is, for prompts and errors ("the CA passphrase").
    pub what: &'a str,
    pub file: Option<&'a Path>,
    pub env: &'static str,
    pub flag: &'static str,
}

impl<'a> Source<'a> {
    /// The CA's admin passphrase.
    pub fn ca_passphrase(args: &'a crate::cli::CaSecret) -> Self {
        Source {
            what: "the CA passphrase",
            file: args.ca_passphrase_file.as_deref(),
            env: "SNOW_CA_PASSPHRASE",
            flag: "--ca-passphrase-file",
        }
    }

    /// The one-time password of a key file being imported (from the SMS).
    pub fn one_time_password(file: Option<&'a Path>) -> Self {
        Source { what: "the key file's one-time password", file, env: "SNOW_P12_PASSWORD", flag: "--password-file" }
    }

    /// The personal passphrase of the user's key store.
    pub fn personal_passphrase(args: &'a crate::cli::KeyStoreArgs) -> Self {
        Source {
            what: "your personal passphrase",
            file: args.passphrase_file.as_deref(),
            env: "SNOW_KEY_PASSPHRASE",
            flag: "--passphrase-file",
        }
    }

    /// The secret, asked once at a prompt.
    pub fn get(&self) -> anyhow::Result<Zeroizing<String>> {
        self.obtain(false)
    }

    /// The secret; at a prompt it is asked twice and must match (for a new
    /// passphrase, where a typo would lock the owner out).
    pub fn get_new(&self) -> anyhow::Result<Zeroizing<String>> {
        self.obtain(true)
    }

    fn obtain(&self, confirm: bool) -> anyhow::Result<Zeroizing<String>> {
        if let Some(path) = self.file {
            let bytes = Zeroizing::new(
                snow_core::files::read_limited(path, 64 * 1024)
                    .with_context(|| format!("cannot read {} from {}", self.what, path.display()))?,
            );
            let text = std::str::from_utf8(&bytes).with_context(|| format!("{} is not UTF-8 text", path.display()))?;
            let line = text.lines().next().unwrap_or_default();
            return non_empty(Zeroizing::new(line.to_owned()), self.what);
        }
        if let Ok(v) = std::env::var(self.env) {
            return non_empty(Zeroizing::new(v), self.what);
        }
        if !std::io::stdin().is_terminal() {
            bail!(
                "{} is needed and there is no terminal to ask: give {} PATH or set {}",
                self.what,
                self.flag,
                self.env
            );
        }
        let first = Zeroizing::new(
            rpassword::prompt_password(format!("{}: ", capitalise(self.what)))
                .context("cannot read from the terminal")?,
        );
        let first = non_empty(first, self.what)?;
        if confirm {
            let again = Zeroizing::new(
                rpassword::prompt_password(format!("{} again: ", capitalise(self.what)))
                    .context("cannot read from the terminal")?,
            );
            if *again != *first {
                bail!("the two entries of {} differ", self.what);
            }
        }
        Ok(first)
    }
}

fn non_empty(s: Zeroizing<String>, what: &str) -> anyhow::Result<Zeroizing<String>> {
    if s.is_empty() {
        bail!("{what} is empty");
    }
    Ok(s)
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}
