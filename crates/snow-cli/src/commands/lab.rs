//! `snow lab …`.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{bail, Context};
use snow_lab::export::{export, Pseudonymiser};
use snow_lab::import::{import_file, DropDir, ImportError, Imported};
use snow_store::LabDb;

use super::Ctx;
use crate::cli::LabCommand;

/// A spinner with a row count on a terminal; nothing otherwise.
fn progress(what: &str) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new_spinner();
    pb.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg} {pos} rows ({per_sec}, {elapsed})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    pb.set_message(what.to_owned());
    pb.enable_steady_tick(std::time::Duration::from_millis(200));
    pb
}

fn today() -> time::Date {
    time::OffsetDateTime::now_utc().date()
}

pub fn run(ctx: &Ctx, cmd: LabCommand) -> anyhow::Result<()> {
    let settings = ctx.config.lab.lab_settings();
    match cmd {
        LabCommand::Export { input, secret_file, out } => {
            let secret = snow_core::files::read_limited(&secret_file, 4096)
                .with_context(|| format!("cannot read the secret {}", secret_file.display()))?;
            let p = Pseudonymiser::new(secret.trim_ascii())?;
            let raw = std::fs::File::open(&input).with_context(|| format!("cannot read {}", input.display()))?;
            let dir = match out.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
                _ => Path::new(".").to_owned(),
            };
            // Written to a temporary file and renamed: no half-written export.
            let tmp =
                tempfile::NamedTempFile::new_in(&dir).with_context(|| format!("cannot write in {}", dir.display()))?;
            let pb = progress("exporting");
            let rows = export(
                std::io::BufReader::new(raw),
                std::io::BufWriter::new(tmp.as_file()),
                &p,
                &settings,
                today(),
                |n| pb.set_position(n),
            )
            .with_context(|| format!("cannot export {}", input.display()))?;
            pb.finish_and_clear();
            tmp.as_file().sync_all()?;
            tmp.persist(&out).map_err(|e| e.error).with_context(|| format!("cannot write {}", out.display()))?;
            println!(
                "Exported {rows} rows to {}. Upload it to the lab server's data/in as NAME.csv.part and rename it \
                 to NAME.csv when the upload is complete.",
                out.display()
            );
            Ok(())
        }
        LabCommand::Secret { out } => {
            // 32 random bytes as hex: the key of the lab's pseudonyms. It
            // stays in the lab; losing it only means new pseudonyms.
            let secret = snow_crypto::one_time_password::random_hex(32)?;
            snow_core::files::write_new(&out, format!("{secret}\n").as_bytes(), snow_core::files::Mode::Private)
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!(
                "Wrote a new pseudonymisation secret to {} (readable by you only). Keep it inside the lab, with \
                 the export job, and back it up: the same secret gives the same pseudonyms, so a patient tested \
                 twice is counted once.",
                out.display()
            );
            Ok(())
        }
        LabCommand::Import { file } => {
            let mut db = LabDb::open(&ctx.paths.lab_db())?;
            let pb = progress("importing");
            let r = import_file(&mut db, &file, &settings, today(), |n| pb.set_position(n));
            pb.finish_and_clear();
            match r {
                Ok(i @ Imported::New { .. }) => println!("Imported {}: {i}", file.display()),
                Ok(Imported::Duplicate) => println!("{} was imported before; nothing changed", file.display()),
                Err(ImportError::Rejected(errors)) => {
                    // The list on stderr, then the one-line error.
                    eprintln!("{}: {}", file.display(), indented(&errors.to_string(), "  "));
                    bail!("{} was not imported: {} (listed above)", file.display(), errors.count());
                }
                Err(e) => return Err(e).with_context(|| format!("{} was not imported", file.display())),
            }
            Ok(())
        }
        LabCommand::Detect {
            input,
            algorithm,
            alpha,
            baseline,
            min_sigma,
            b,
            w,
            threshold_method,
            no_periods,
            past_weeks_not_included,
            epoch_as_date,
            format,
        } => {
            use snow_lab::detect::{ears, farrington, series};
            if format != "csv" {
                bail!("--format must be csv");
            }
            let method = match algorithm.to_ascii_uppercase().as_str() {
                "C1" => Some(ears::Method::C1),
                "C2" => Some(ears::Method::C2),
                "C3" => Some(ears::Method::C3),
                "FARRINGTON" => None,
                _ => bail!("--algorithm must be C1, C2, C3 or farrington"),
            };
            let file = std::fs::File::open(&input).with_context(|| format!("cannot read {}", input.display()))?;
            let all = series::read_csv(file)?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            match method {
                Some(method) => {
                    let params = ears::Params {
                        alpha: alpha.unwrap_or(method.default_alpha()),
                        baseline,
                        min_sigma,
                        ..ears::Params::new(method)
                    };
                    warn_short(&all, &snow_lab::detect::Detector::Ears(params));
                    series::write_ears_csv(&mut out, &all, &params)?;
                }
                None => {
                    let d = farrington::Params::default();
                    let params = farrington::Params {
                        b,
                        w,
                        alpha: alpha.unwrap_or(d.alpha),
                        threshold_method: threshold_method.parse()?,
                        no_periods,
                        past_weeks_not_included,
                        epoch_as_date,
                        ..d
                    };
                    warn_short(&all, &snow_lab::detect::Detector::Farrington(params));
                    series::write_farrington_csv(&mut out, &all, &params)?;
                }
            }
            std::io::Write::flush(&mut out)?;
            Ok(())
        }
        LabCommand::Ptable { format } => {
            let Some(table) = ctx.config.lab.ptable().map_err(|e| anyhow::anyhow!("{}", e.0))? else {
                println!("Perturbation is off ([lab.perturbation] enabled = false): counts are exact.");
                return Ok(());
            };
            match format.as_str() {
                "text" => print!("{}", table.describe()),
                "csv" => print!("{}", table.to_csv()),
                _ => bail!("--format must be text or csv"),
            }
            Ok(())
        }
        LabCommand::Audit { since, requester, last, format } => {
            super::lab_audit::run(ctx, since.as_deref(), requester.as_deref(), last, &format)
        }
        LabCommand::Process => {
            let mut db = LabDb::open(&ctx.paths.lab_db())?;
            let settle = std::time::Duration::from_millis(ctx.config.lab.settle_ms);
            let drop = DropDir::of(&ctx.paths).with_settle(settle);
            let results = drop.process(&mut db, &settings, today());
            if results.is_empty() {
                println!("Nothing to import in {}", drop.incoming().display());
            }
            if let Some(wait) = drop.next_ready() {
                println!(
                    "Some files in {} are still changing; they are imported once unchanged for {} ms (in about {} ms)",
                    drop.incoming().display(),
                    settle.as_millis(),
                    wait.as_millis()
                );
            }
            let mut failed = 0;
            for (path, r) in results {
                match r {
                    Ok(i) => println!("imported  {}: {i}", path.display()),
                    // A database error, or a file still being written: it stays in in/.
                    Err(e) if path.exists() => {
                        failed += 1;
                        println!("left      {}: {e}", path.display());
                    }
                    Err(e) => {
                        failed += 1;
                        println!("rejected  {}: {}", path.display(), indented(&e, "          "));
                    }
                }
            }
            if failed > 0 {
                bail!(
                    "{failed} file(s) not imported; the rejected ones are in {}, each with NAME.error",
                    drop.rejected().display()
                );
            }
            Ok(())
        }
    }
}

/// `text` with every line after the first indented by `by`.
fn indented(text: &str, by: &str) -> String {
    text.lines().collect::<Vec<_>>().join(&format!("\n{by}"))
}

/// Says on stderr which series are too short for the algorithm to judge
/// any week (their rows would be missing from the output, not zero).
fn warn_short(all: &[snow_lab::detect::series::Series], detector: &snow_lab::detect::Detector) {
    let needed = detector.history_needed();
    for s in all.iter().filter(|s| s.counts.len() < needed) {
        eprintln!(
            "warning: series {}: {} needs {needed} weeks of history and the series has {}: no week of it is judged",
            s.name,
            detector.describe(),
            s.counts.len()
        );
    }
}
