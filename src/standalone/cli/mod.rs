//! The standalone commands: apply, get, describe, logs, delete, validate, plan (one file per group).
//! Exit codes: 0 success, 1 a run failed or an object needs a human, 2 invalid input, 3 timeout,
//! 130 interrupted (SIGINT or SIGTERM; the runs followed are cancelled first).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use jiff::Timestamp;
use serde_json::Value;

use super::azure::Azure;
use super::engine::{Engine, Outcome, Reporter};
use super::manifests::{self, Document, KINDS};
use super::render;
use super::store::{Applied, Key, Store};
use crate::actions::local::LocalBackend;
use crate::reconcile::Event;

pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_INVALID: i32 = 2;
pub const EXIT_TIMEOUT: i32 = 3;

/// Where standalone state lives, shared by every standalone command.
#[derive(Args, Clone, Debug)]
pub struct StateArgs {
    /// The state database; environments, snapshots and runs live next to it.
    #[arg(
        long,
        env = "AMLOPS_STATE",
        default_value = ".amlops/state.db",
        global = true
    )]
    pub state: PathBuf,
    /// Namespace of objects whose manifests name none.
    #[arg(short = 'n', long, default_value = "default", global = true)]
    pub namespace: String,
}

impl StateArgs {
    /// Opens the store to change it, in its private state directory (creating or tightening
    /// it first).
    fn open(&self) -> anyhow::Result<Store> {
        self.make_private()?;
        Ok(Store::open(&self.state)?)
    }

    /// Opens the store to read it: nothing is created (a state that does not exist reads as
    /// empty), so readers work on a read-only state; existing files are still made private.
    fn read(&self) -> anyhow::Result<Store> {
        if self.state.exists() {
            self.make_private()?;
        }
        Ok(Store::open_read_only(&self.state)?)
    }

    fn make_private(&self) -> anyhow::Result<()> {
        // A directory given as --state would be made private itself and then fail to open.
        if self.state.is_dir() {
            anyhow::bail!(
                "--state {} is a directory; it names the database file, e.g. {}",
                self.state.display(),
                self.state.join("state.db").display()
            );
        }
        let notices = super::private::make_private(&self.state).map_err(|e| match e {
            // Creating the state failed: say which part and what to do.
            super::private::PrivateError::Io { path, source, .. } if !path.exists() => {
                anyhow::anyhow!(
                    "cannot create the state {} (for --state {}): {source}; choose a --state in a directory you can write, or fix its permissions",
                    path.display(),
                    self.state.display()
                )
            }
            e => e.into(),
        })?;
        for notice in notices {
            eprintln!("amlops: {notice}");
        }
        Ok(())
    }
    /// Environments, snapshots and runs live next to the database, as an absolute path
    /// because runs execute in their own working directories.
    fn local(&self) -> LocalBackend {
        let dir = self
            .state
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let state_dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        LocalBackend { state_dir }
    }
}

#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// Manifest files or directories (recursive); `-` reads stdin.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    /// Follow Experiments until their runs finish.
    #[arg(long)]
    pub wait: bool,
    /// Give up after this long (e.g. 90s, 10m) with exit code 3; bounds every Azure call
    /// (token requests and retries included), not only the wait for runs.
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Start a new run of every applied Experiment even if its spec did not change.
    #[arg(long)]
    pub rerun: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum GetOutput {
    Wide,
    Yaml,
    Json,
}

#[derive(Args, Debug)]
pub struct GetArgs {
    /// Kind (workspace|amlws, computetarget|ct, runconfiguration|runcfg, experiment|exp); all when omitted.
    pub kind: Option<String>,
    pub name: Option<String>,
    #[arg(short = 'o', long)]
    pub output: Option<GetOutput>,
}

#[derive(Args, Debug)]
pub struct DescribeArgs {
    pub kind: String,
    pub name: String,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// `exp/NAME` or an Experiment name.
    pub target: String,
    /// Keep printing until the run finishes.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Read the Experiment from the cluster of the current kubeconfig context (namespace from
    /// `-n`) instead of the local state: the log comes from Azure ML, or from the run's Job
    /// for a `local` target.
    #[arg(long)]
    pub cluster: bool,
    /// Kubeconfig file to read the Experiment from (implies --cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// With --cluster: read Azure as the signed-in Azure CLI user instead of with the
    /// Workspace's credential (a workload identity only works inside the cluster).
    #[arg(long)]
    pub azure_cli: bool,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// Manifest files or directories whose objects are deleted.
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<PathBuf>,
    /// Or KIND NAME.
    pub kind: Option<String>,
    pub name: Option<String>,
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Remove the objects from the store at once, without their cleanup: runs are not
    /// cancelled and nothing in Azure is deleted or detached (like removing a finalizer by
    /// hand). For an object whose cleanup cannot finish.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct FilesArgs {
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (n, unit) = s.trim().split_at(
        s.trim()
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(s.trim().len()),
    );
    let too_long = || format!("{s:?}: too long (at most {}s)", u64::MAX);
    let n: u64 = n
        .parse()
        .map_err(|e: std::num::ParseIntError| match e.kind() {
            std::num::IntErrorKind::PosOverflow => too_long(),
            _ => format!("{s:?}: expected a duration such as 90s, 10m or 1h"),
        })?;
    let seconds_per_unit = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(format!("{s:?}: unit must be s, m or h")),
    };
    n.checked_mul(seconds_per_unit)
        .map(Duration::from_secs)
        .ok_or_else(too_long)
}

/// Accepts kubectl-style kind names: `exp`, `experiment`, `experiments`, `Experiment`, ...
pub fn parse_kind(s: &str) -> Option<&'static str> {
    Some(match s.to_ascii_lowercase().as_str() {
        "amlws" | "workspace" | "workspaces" => "Workspace",
        "ct" | "computetarget" | "computetargets" => "ComputeTarget",
        "runcfg" | "runconfiguration" | "runconfigurations" => "RunConfiguration",
        "exp" | "experiment" | "experiments" => "Experiment",
        _ => return None,
    })
}

pub(super) fn unknown_kind(s: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "unknown kind {s:?}: expected workspace (amlws), computetarget (ct), runconfiguration (runcfg) or experiment (exp)"
    )
}

mod apply;
mod check;
mod console;
mod delete;
mod inspect;

pub use apply::apply;
pub use check::{plan, validate};
pub use delete::delete;
pub use inspect::{describe, get, logs};

/// Loads and admits every document; prints problems and returns None when any.
pub(super) fn load_admitted(
    files: &[PathBuf],
    state: &StateArgs,
    store: &Store,
) -> anyhow::Result<Option<Vec<Document>>> {
    let docs = match manifests::load(files, &state.namespace) {
        Ok(d) => d,
        Err(problems) => {
            problems.iter().for_each(|p| eprintln!("error: {p}"));
            return Ok(None);
        }
    };
    let mut problems = Vec::new();
    for doc in &docs {
        let old = store.get(&doc.key)?;
        problems.extend(manifests::admit(doc, old.as_ref()));
    }
    if problems.is_empty() {
        Ok(Some(docs))
    } else {
        problems.iter().for_each(|p| eprintln!("error: {p}"));
        Ok(None)
    }
}

pub(super) fn kind_order(kind: &str) -> usize {
    KINDS.iter().position(|k| *k == kind).map_or(0, |p| p + 1)
}
