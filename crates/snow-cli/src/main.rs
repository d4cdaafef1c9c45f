//! `snow` — one binary for every Snow role: CA administration, key import,
//! and (in later versions) the server, the lab tools and the GP client.

mod cli;
mod commands;
mod config;
mod secrets;

use std::process::ExitCode;

use clap::Parser;

/// The log filter without `SNOW_LOG`.
const DEFAULT_LOG: &str = "warn,snow_lab::import=info,snow_agents::detect=info";

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // Warnings and errors, one line per lab file imported or refused, and
    // what outbreak detection runs with, unless SNOW_LOG says otherwise; colours only on a terminal (a log
    // file gets plain text).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("SNOW_LOG").unwrap_or_else(|_| DEFAULT_LOG.into()))
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One sentence: the outermost context, then its causes.
            let mut msg = e.to_string();
            for cause in e.chain().skip(1) {
                // An error that already quotes its cause (an OS error,
                // say) is not followed by it a second time.
                let cause = cause.to_string();
                if !msg.contains(&cause) {
                    msg.push_str(": ");
                    msg.push_str(&cause);
                }
            }
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}
