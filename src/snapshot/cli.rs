//! `amlops snapshot PATH`: shows what a submission would upload, explains exclusions, and
//! optionally uploads to a container SAS URL with a progress bar.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use serde_json::json;

use super::limits::human_bytes;
use super::{Explanation, Limits, Progress, Transfer, UploadOptions};
use crate::azure::blob::BlobContainer;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

/// Arguments of `amlops snapshot`.
#[derive(Debug, Clone, clap::Args)]
pub struct SnapshotArgs {
    /// Source directory to snapshot.
    pub path: PathBuf,
    /// Only show what would be included; never upload.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Explain whether PATH (relative to the source directory) is included, and why not.
    #[arg(long, value_name = "PATH")]
    pub explain: Option<PathBuf>,
    /// Size limit, in bytes or with a unit (300MiB, 1GB).
    #[arg(long, value_parser = parse_size)]
    pub max_bytes: Option<u64>,
    /// File-count limit.
    #[arg(long)]
    pub max_files: Option<u64>,
    /// Upload into this blob container (SAS URL); the snapshot goes to LocalUpload/<id>/.
    #[arg(
        long,
        env = "AMLOPS_SNAPSHOT_SAS_URL",
        hide_env_values = true,
        value_name = "SAS_URL"
    )]
    pub upload_to: Option<String>,
}

/// Runs the command; returns the process exit code.
pub fn run(args: &SnapshotArgs) -> anyhow::Result<i32> {
    if let Some(query) = &args.explain {
        let explanation = super::explain(&args.path, query)?;
        print_explanation(query, &explanation, args.output);
        return Ok(0);
    }
    let defaults = Limits::default();
    let limits = Limits {
        max_bytes: args.max_bytes.unwrap_or(defaults.max_bytes),
        max_files: args.max_files.unwrap_or(defaults.max_files),
    };
    let mut snapshot = super::take_dir(&args.path, &limits)?;
    snapshot.provenance = super::provenance::detect(&args.path);
    match args.output {
        OutputFormat::Json => {
            let files: Vec<_> = snapshot
                .manifest
                .files
                .iter()
                .map(|f| json!({"path": f.path, "size": f.size, "hash": f.hash}))
                .collect();
            let git = snapshot.provenance.as_ref().map(|p| p.to_properties());
            let doc = json!({
                "snapshotId": snapshot.id,
                "hashVersion": super::HASH_VERSION,
                "files": files,
                "totalBytes": snapshot.manifest.total_bytes(),
                "git": git,
            });
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        OutputFormat::Text => {
            for f in &snapshot.manifest.files {
                println!("{:>10}  {}", human_bytes(f.size), f.path);
            }
            println!(
                "{} files, {} total, snapshot id {}",
                snapshot.manifest.files.len(),
                human_bytes(snapshot.manifest.total_bytes()),
                snapshot.id
            );
            if let Some(p) = &snapshot.provenance {
                for (k, v) in p.to_properties() {
                    println!("{k}={v}");
                }
            }
        }
    }
    if let (Some(url), false) = (&args.upload_to, args.dry_run) {
        let container = BlobContainer::from_sas_url(url)?;
        let bar = Arc::new(BarProgress::new());
        let progress = Arc::clone(&bar);
        let work = async move {
            super::upload(&snapshot, &container, &UploadOptions::default(), &*progress).await
        };
        let outcome = match tokio::runtime::Handle::try_current() {
            Ok(handle) => tokio::task::block_in_place(|| handle.block_on(work)),
            Err(_) => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(work),
        }
        .context("uploading the snapshot")?;
        bar.bar.finish_and_clear();
        eprintln!(
            "uploaded {} files ({}), copied {}, already present {}{} -> {}",
            outcome.uploaded_files,
            human_bytes(outcome.uploaded_bytes),
            outcome.copied_files,
            outcome.present_files,
            if outcome.already_complete {
                " (snapshot already complete)"
            } else {
                ""
            },
            outcome.folder_url
        );
    }
    Ok(0)
}

fn print_explanation(query: &std::path::Path, e: &Explanation, output: OutputFormat) {
    let (included, reason, rule) = match e {
        Explanation::Included {
            reincluded_by: None,
        } => (true, "no ignore rule matches".to_string(), None),
        Explanation::Included {
            reincluded_by: Some(r),
        } => (true, "re-included by a negated rule".to_string(), Some(r)),
        Explanation::Excluded { path, rule } => {
            (false, format!("'{path}' is excluded"), Some(rule))
        }
        Explanation::GitDirectory { path } => (
            false,
            format!("'{path}': .git is never part of a snapshot"),
            None,
        ),
        Explanation::OutsideTree => (false, "outside the source directory".to_string(), None),
        Explanation::NotFound { path } => (false, format!("'{path}' does not exist"), None),
        Explanation::Refused { reason } => (false, reason.clone(), None),
    };
    match output {
        OutputFormat::Json => {
            let doc = json!({
                "path": query,
                "included": included,
                "reason": reason,
                "rule": rule.map(|r| json!({"file": r.file, "line": r.line, "pattern": r.pattern})),
            });
            println!("{doc}");
        }
        OutputFormat::Text => {
            let verdict = if included { "included" } else { "excluded" };
            match rule {
                Some(r) => println!(
                    "{}: {verdict}: {reason} by {}:{} ({})",
                    query.display(),
                    r.file.display(),
                    r.line,
                    r.pattern
                ),
                None => println!("{}: {verdict}: {reason}", query.display()),
            }
        }
    }
}

/// An indicatif bar over bytes, fed by the upload progress hook.
struct BarProgress {
    bar: indicatif::ProgressBar,
}

impl BarProgress {
    fn new() -> BarProgress {
        let bar = indicatif::ProgressBar::new(0);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg} ({eta})")
        {
            bar.set_style(style);
        }
        BarProgress { bar }
    }
}

impl Progress for BarProgress {
    fn start(&self, files: u64, bytes: u64) {
        self.bar.set_length(bytes);
        self.bar.set_message(format!("0/{files} files"));
    }
    fn file_done(&self, path: &str, bytes: u64, how: Transfer) {
        self.bar.inc(bytes);
        self.bar.set_message(format!("{how:?} {path}"));
    }
}

/// `123`, `300MB`, `300MiB`, `1.5GiB` -> bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("'{text}' is not a size (e.g. 300MiB)"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "unknown size unit in '{text}' (use B, KB, KiB, MB, MiB, GB, GiB)"
            ));
        }
    };
    Ok((value * factor as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("123"), Ok(123));
        assert_eq!(parse_size("300MiB"), Ok(300 << 20));
        assert_eq!(parse_size("2 GB"), Ok(2_000_000_000));
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("MB").is_err());
    }
}
