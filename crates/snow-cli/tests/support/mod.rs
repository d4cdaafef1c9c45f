//! The `snow` binary as the integration tests run it: on a site home and a
//! `snow.toml` in a temporary directory, with no terminal.

// Each test file uses its own part of this.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// A site home and its `snow.toml` in a temporary directory.
pub struct Site {
    pub dir: tempfile::TempDir,
}

impl Site {
    /// A temporary directory with `config` as its `snow.toml`; the home is
    /// `home` in it.
    pub fn with_config(config: &str) -> Site {
        let site = Site { dir: tempfile::tempdir().unwrap() };
        std::fs::write(site.path("snow.toml"), config).unwrap();
        site
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn home(&self) -> PathBuf {
        self.path("home")
    }

    /// Runs `snow` with no terminal, a clean secret environment and the
    /// default log filter.
    pub fn snow(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_snow"))
            .args(args)
            .env("SNOW_HOME", self.home())
            .env("SNOW_CONFIG", self.path("snow.toml"))
            .env_remove("SNOW_CA_PASSPHRASE")
            .env_remove("SNOW_P12_PASSWORD")
            .env_remove("SNOW_KEY_PASSPHRASE")
            .env_remove("SNOW_KEYSTORE")
            .env_remove("SNOW_LOG")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.snow(args);
        assert!(out.status.success(), "snow {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a command that must fail; returns its one-line error.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.snow(args);
        assert!(!out.status.success(), "snow {args:?} succeeded");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.starts_with("error: "), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
        err
    }
}
