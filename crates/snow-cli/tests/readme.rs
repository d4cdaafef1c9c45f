//! The README's shell blocks, run as a new user pastes them: top to bottom,
//! in one shell, from a fresh copy of the repository, with nothing between
//! them. The copy holds what the blocks use: the `snow` binary where
//! `cargo build --release` leaves it (the build itself is this test's
//! build) and `docs/examples/`.
//!
//! A block is left out only by a `<!-- readme-test: skip (why) -->` line
//! just above its fence (the demo, which runs until Ctrl-C, and the test
//! command, which is this suite). A block marked `<!-- readme-test: needs
//! TOOL -->` runs when TOOL is installed; without it the block is reported
//! as not run, and with `SNOW_README_REQUIRE_ALL=1` (as `scripts/interop`
//! sets) the test fails instead.
//!
//! The blocks use the documented default ports (5222, 5223, 5269, 5347 for
//! the PO; 5322, 5369, 5447 for the lab server on the same computer).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest the whole walk may take.
const DEADLINE: Duration = Duration::from_secs(600);

/// One ```sh block of the README.
struct Block {
    /// Line of the opening fence (1-based), for messages.
    line: usize,
    code: String,
    skip: Option<String>,
    needs: Option<String>,
}

fn sh_blocks(readme: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut lines = readme.lines().enumerate().peekable();
    let mut directive: Option<String> = None;
    while let Some((i, line)) = lines.next() {
        let trimmed = line.trim();
        if let Some(d) = trimmed.strip_prefix("<!-- readme-test:").and_then(|d| d.strip_suffix("-->")) {
            directive = Some(d.trim().to_owned());
            continue;
        }
        if trimmed == "```sh" {
            let mut code = String::new();
            for (_, l) in lines.by_ref() {
                if l.trim() == "```" {
                    break;
                }
                code.push_str(l);
                code.push('\n');
            }
            let d = directive.take().unwrap_or_default();
            blocks.push(Block {
                line: i + 1,
                code,
                skip: d.strip_prefix("skip").map(|w| w.trim().to_owned()),
                needs: d.strip_prefix("needs").map(|w| w.trim().to_owned()),
            });
        } else if !trimmed.is_empty() {
            directive = None;
        }
    }
    blocks
}

fn installed(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// The ports the README's servers listen on.
const PORTS: [u16; 7] = [5222, 5223, 5269, 5347, 5322, 5369, 5447];

/// Waits (up to 30 s) until every port of the walk is free: a server an
/// earlier test or script stopped may still be shutting down.
fn wait_for_free_ports() {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let taken: Vec<u16> =
            PORTS.iter().copied().filter(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_err()).collect();
        if taken.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the README's ports {taken:?} are taken by another program on this computer"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn the_readme_blocks_run_as_pasted() {
    wait_for_free_ports();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(repo.join("README.md")).unwrap();
    let blocks = sh_blocks(&readme);
    assert!(blocks.len() >= 8, "the README has {} shell blocks", blocks.len());
    let require_all = std::env::var_os("SNOW_README_REQUIRE_ALL").is_some_and(|v| v == "1");

    // The fresh copy.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("target/release")).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_snow"), root.join("target/release/snow")).unwrap();
    copy_dir(&repo.join("docs/examples"), &root.join("docs/examples"));
    // `cargo build --release` has been done by this test's build.
    let shims = root.join(".shims");
    std::fs::create_dir_all(&shims).unwrap();
    let cargo = shims.join("cargo");
    std::fs::write(
        &cargo,
        "#!/bin/sh\n[ \"$*\" = 'build --release' ] && exit 0\necho \"readme test: unexpected cargo $*\" >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&cargo, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    // `|| true`: with no job left (all killed and reaped by the README's
    // own `kill`), `kill` without arguments fails, and under `set -e` the
    // trap would turn a good walk into exit status 2.
    let mut script = String::from("set -e\ntrap 'kill $(jobs -p) 2>/dev/null || true; wait' EXIT\n");
    let mut not_run = Vec::new();
    for b in &blocks {
        if let Some(why) = &b.skip {
            eprintln!("README block at line {}: left out ({why})", b.line);
            continue;
        }
        if let Some(tool) = &b.needs {
            if !installed(tool) {
                not_run.push(format!("line {} (needs {tool})", b.line));
                continue;
            }
        }
        script.push_str(&format!("echo '### README block at line {}' >&2\n{}", b.line, b.code));
    }
    if !not_run.is_empty() {
        assert!(!require_all, "README blocks not run, their tools are missing: {not_run:?}");
        eprintln!("README blocks NOT run here, their tools are missing (scripts/interop runs them): {not_run:?}");
    }

    let path = format!("{}:{}", shims.display(), std::env::var("PATH").unwrap_or_default());
    let mut cmd = Command::new("bash");
    cmd.args(["-c", &script]).current_dir(root).env("PATH", path).stdin(Stdio::null());
    for (k, _) in std::env::vars() {
        if k.starts_with("SNOW_") {
            cmd.env_remove(k);
        }
    }
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let out_path: PathBuf = root.join("walk.log");
    let log = std::fs::File::create(&out_path).unwrap();
    let mut child = cmd.stdout(log.try_clone().unwrap()).stderr(log).spawn().unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if started.elapsed() > DEADLINE {
            let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).status();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // Whatever the blocks left running (a failed block stops the script
    // before its `kill`) goes with the process group.
    let _ = Command::new("kill").args(["--", &format!("-{}", child.id())]).stderr(Stdio::null()).status();
    let log = std::fs::read_to_string(&out_path).unwrap_or_default();
    match status {
        Some(s) if s.success() => {}
        // The reason goes last: CI shows the tail of what a failed check printed.
        Some(s) => panic!("the walk so far:\n{log}\n=> the README's blocks failed ({s})"),
        None => panic!("the walk so far:\n{log}\n=> the README's blocks did not finish in {DEADLINE:?}"),
    }
    // What a new user sees at the key points of the walk.
    for expected in [
        "Created the CA for po.example",
        "Influensa A: 12 positive i uke 47",
        "Made the home of the lab server lab.example",
        "period,tested,positive,persons",
        "ekko?",
    ] {
        assert!(log.contains(expected), "the walk:\n{log}\n=> {expected:?} is missing from the walk");
    }
    if installed("openssl") {
        assert!(log.contains("certificate revoked"), "the walk:\n{log}\n=> OpenSSL did not see the revocation");
    }
}
