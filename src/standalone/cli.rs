//! The standalone commands: apply, get, describe, logs, delete, validate, plan.
//! Exit codes: 0 success, 1 a run failed or an object needs a human, 2 invalid input, 3 timeout.

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
    fn open(&self) -> anyhow::Result<Store> {
        Ok(Store::open(&self.state)?)
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
    /// Give up after this long (e.g. 90s, 10m) with exit code 3.
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
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?}: expected a duration such as 90s, 10m or 1h"))?;
    Ok(Duration::from_secs(match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{s:?}: unit must be s, m or h")),
    }))
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

fn unknown_kind(s: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "unknown kind {s:?}: expected workspace (amlws), computetarget (ct), runconfiguration (runcfg) or experiment (exp)"
    )
}

/// Set by SIGINT while `apply --wait` follows runs: cancel them, then exit.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: nix::libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn catch_ctrl_c() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let action = SigAction::new(
        SigHandler::Handler(on_sigint),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handler only stores into an atomic, which is async-signal-safe.
    let _ = unsafe { sigaction(Signal::SIGINT, &action) };
}

/// Prints progress above a spinner (plain lines when stderr is not a terminal).
struct Console {
    bar: ProgressBar,
}

impl Console {
    fn new() -> Self {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        Self { bar }
    }
    fn line(&self, s: String) {
        if self.bar.is_hidden() {
            eprintln!("{s}");
        } else {
            self.bar.println(s);
        }
    }
}

impl Reporter for Console {
    fn event(&self, key: &Key, e: &Event) {
        let kind = if e.warning { "Warning" } else { "Normal" };
        self.line(format!(
            "{}/{}: {kind} {}: {}",
            key.kind.to_lowercase(),
            key.name,
            e.reason,
            e.message
        ));
    }
    fn step(&self, key: &Key, message: &str) {
        self.line(format!(
            "{}/{}: {message}",
            key.kind.to_lowercase(),
            key.name
        ));
    }
}

/// Loads and admits every document; prints problems and returns None when any.
fn load_admitted(
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

fn kind_order(kind: &str) -> usize {
    KINDS.iter().position(|k| *k == kind).map_or(0, |p| p + 1)
}

pub fn apply(args: &ApplyArgs, state: &StateArgs) -> anyhow::Result<i32> {
    let mut store = state.open()?;
    let Some(mut docs) = load_admitted(&args.files, state, &store)? else {
        return Ok(EXIT_INVALID);
    };
    if args.rerun {
        let token = Timestamp::now().to_string();
        for d in docs.iter_mut().filter(|d| d.key.kind == "Experiment") {
            d.object["metadata"]["annotations"][crate::api::RERUN_ANNOTATION] =
                Value::String(token.clone());
        }
    }
    docs.sort_by_key(|d| kind_order(&d.key.kind));
    for d in &docs {
        let (applied, _) = store.apply(&d.key, &d.object)?;
        let word = match applied {
            Applied::Created => "created",
            Applied::Configured => "configured",
            Applied::Unchanged => "unchanged",
        };
        println!("{}/{} {word}", d.key.kind.to_lowercase(), d.key.name);
    }
    let keys: Vec<Key> = docs
        .iter()
        .filter(|d| KINDS.contains(&d.key.kind.as_str()))
        .map(|d| d.key.clone())
        .collect();
    let code = converge(&mut store, state, &keys, args.wait, args.timeout)?;
    print_summary(&store, &keys)?;
    Ok(code)
}

/// Reconciles `keys` until each is settled, stalled or gone, or the timeout passes.
fn converge(
    store: &mut Store,
    state: &StateArgs,
    keys: &[Key],
    wait: bool,
    timeout: Duration,
) -> anyhow::Result<i32> {
    if wait {
        catch_ctrl_c();
    }
    let console = Console::new();
    let azure = Azure::new()?;
    let deadline = Instant::now() + timeout;
    let mut due: BTreeMap<Key, Instant> =
        keys.iter().map(|k| (k.clone(), Instant::now())).collect();
    let mut outcomes: BTreeMap<Key, Outcome> = BTreeMap::new();
    loop {
        let mut engine = Engine {
            store,
            azure: &azure,
            local: state.local(),
            reporter: &console,
            wait_for_runs: wait,
        };
        for key in keys {
            if due.get(key).is_none_or(|t| *t > Instant::now()) {
                continue;
            }
            let outcome = engine.reconcile(key, Timestamp::now())?;
            match outcome {
                Outcome::Progressing(after) => {
                    due.insert(key.clone(), Instant::now() + after);
                }
                _ => {
                    due.remove(key);
                }
            }
            outcomes.insert(key.clone(), outcome);
        }
        let waiting: Vec<String> = due
            .keys()
            .map(|k| format!("{}/{}", k.kind.to_lowercase(), k.name))
            .collect();
        if waiting.is_empty() {
            console.bar.finish_and_clear();
            let failed = outcomes
                .values()
                .any(|o| matches!(o, Outcome::Stalled | Outcome::RunFailed));
            return Ok(if failed { EXIT_FAILED } else { EXIT_OK });
        }
        if INTERRUPTED.swap(false, Ordering::SeqCst) {
            console.line("interrupted: cancelling the runs of this apply".into());
            cancel_runs(engine.store, &azure, state, keys)?;
            console.bar.finish_and_clear();
            return Ok(130);
        }
        if Instant::now() >= deadline {
            console.bar.finish_and_clear();
            eprintln!(
                "error: timed out after {}s waiting for {}",
                timeout.as_secs(),
                waiting.join(", ")
            );
            return Ok(EXIT_TIMEOUT);
        }
        console
            .bar
            .set_message(format!("waiting for {}", waiting.join(", ")));
        let next = due.values().min().copied().unwrap_or_else(Instant::now);
        std::thread::sleep(
            next.saturating_duration_since(Instant::now())
                .clamp(Duration::from_millis(50), Duration::from_millis(500)),
        );
    }
}

fn cancel_runs(
    store: &mut Store,
    azure: &Azure,
    state: &StateArgs,
    keys: &[Key],
) -> anyhow::Result<()> {
    for key in keys.iter().filter(|k| k.kind == "Experiment") {
        let console = Console::new();
        let mut engine = Engine {
            store,
            azure,
            local: state.local(),
            reporter: &console,
            wait_for_runs: false,
        };
        if let Err(f) = engine.cancel_current_run(key)? {
            eprintln!("error: cancelling the run of {key}: {}", f.message);
        }
        engine.reconcile(key, Timestamp::now())?;
        console.bar.finish_and_clear();
    }
    Ok(())
}

fn print_summary(store: &Store, keys: &[Key]) -> anyhow::Result<()> {
    let now = Timestamp::now();
    for kind in KINDS {
        let objects: Vec<(Key, Value)> = keys
            .iter()
            .filter(|k| k.kind == kind)
            .filter_map(|k| store.get(k).ok().flatten().map(|v| (k.clone(), v)))
            .collect();
        if !objects.is_empty() {
            println!("\n{}", render::table(kind, &objects, false, now).trim_end());
        }
        for (key, object) in objects.iter().filter(|_| kind == "Experiment") {
            let run = &object["status"]["currentRun"];
            if let (Some(logs), Some(outputs)) = (run["logs"].as_str(), run["outputs"].as_str()) {
                println!(
                    "experiment/{}: logs {logs}/stdout.log and stderr.log; outputs {outputs}",
                    key.name
                );
            }
            if let Some(message) = problem_message(object) {
                println!("experiment/{}: {message}", key.name);
            }
        }
        for (key, object) in objects.iter().filter(|_| kind != "Experiment") {
            if let Some(message) = problem_message(object) {
                println!("{}/{}: {message}", kind.to_lowercase(), key.name);
            }
        }
    }
    Ok(())
}

/// The Stalled message of an object, if it needs a human.
fn problem_message(object: &Value) -> Option<String> {
    let c = render::json_path(object, ".status.conditions[?(@.type==\"Stalled\")]")?;
    (c["status"] == "True").then(|| {
        format!(
            "{}: {}",
            c["reason"].as_str().unwrap_or_default(),
            c["message"].as_str().unwrap_or_default()
        )
    })
}

pub fn get(args: &GetArgs, state: &StateArgs) -> anyhow::Result<i32> {
    let store = state.open()?;
    let kinds: Vec<&str> = match &args.kind {
        Some(k) => vec![parse_kind(k).ok_or_else(|| unknown_kind(k))?],
        None => KINDS.to_vec(),
    };
    let mut found = Vec::new();
    for kind in &kinds {
        let objects: Vec<(Key, Value)> = store
            .list(Some(kind))?
            .into_iter()
            .filter(|(k, _)| {
                k.namespace == state.namespace && args.name.as_ref().is_none_or(|n| *n == k.name)
            })
            .collect();
        found.push((*kind, objects));
    }
    if let Some(name) = &args.name
        && found.iter().all(|(_, o)| o.is_empty())
    {
        eprintln!("error: {} {name:?} not found", kinds.join("/"));
        return Ok(EXIT_FAILED);
    }
    let all: Vec<&Value> = found
        .iter()
        .flat_map(|(_, o)| o.iter().map(|(_, v)| v))
        .collect();
    match args.output {
        Some(GetOutput::Json) => println!(
            "{}",
            serde_json::to_string_pretty(&list_or_one(&all, args.name.is_some()))?
        ),
        Some(GetOutput::Yaml) => print!(
            "{}",
            serde_saphyr::to_string(&list_or_one(&all, args.name.is_some()))?
        ),
        wide => {
            let now = Timestamp::now();
            let tables: Vec<String> = found
                .iter()
                .filter(|(_, o)| !o.is_empty())
                .map(|(k, o)| render::table(k, o, wide.is_some(), now))
                .collect();
            if tables.is_empty() {
                eprintln!("No resources found in {} namespace.", state.namespace);
            }
            print!("{}", tables.join("\n"));
        }
    }
    Ok(EXIT_OK)
}

fn list_or_one(items: &[&Value], one: bool) -> Value {
    match items {
        [only] if one => (*only).clone(),
        _ => serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items}),
    }
}

pub fn describe(args: &DescribeArgs, state: &StateArgs) -> anyhow::Result<i32> {
    let store = state.open()?;
    let kind = parse_kind(&args.kind).ok_or_else(|| unknown_kind(&args.kind))?;
    let key = Key {
        kind: kind.into(),
        namespace: state.namespace.clone(),
        name: args.name.clone(),
    };
    let Some(object) = store.get(&key)? else {
        eprintln!("error: {key} not found");
        return Ok(EXIT_FAILED);
    };
    print!(
        "{}",
        render::describe(&key, &object, &store.events(&key, 20)?, Timestamp::now())
    );
    Ok(EXIT_OK)
}

pub fn logs(args: &LogsArgs, state: &StateArgs) -> anyhow::Result<i32> {
    let name = args
        .target
        .split_once('/')
        .map_or(args.target.as_str(), |(kind, name)| {
            if parse_kind(kind) == Some("Experiment") {
                name
            } else {
                ""
            }
        });
    if name.is_empty() {
        eprintln!("error: logs are kept for Experiments: use exp/NAME");
        return Ok(EXIT_INVALID);
    }
    let store = state.open()?;
    let key = Key {
        kind: "Experiment".into(),
        namespace: state.namespace.clone(),
        name: name.into(),
    };
    let Some(run_id) = store
        .get(&key)?
        .and_then(|o| o["status"]["currentRun"]["id"].as_str().map(str::to_string))
    else {
        eprintln!("error: {key} has no run yet");
        return Ok(EXIT_FAILED);
    };
    let local = state.local();
    let Some(record) = crate::local::load_run(&local.state_dir, &run_id)? else {
        eprintln!(
            "error: run {run_id} has no local logs (runs on Azure have their logs in Azure ML studio)"
        );
        return Ok(EXIT_FAILED);
    };
    use std::io::Write;
    let mut sink = |_: crate::local::LogStream, bytes: &[u8]| {
        let _ = std::io::stdout().write_all(bytes);
        let _ = std::io::stdout().flush();
    };
    if args.follow {
        crate::local::follow_logs(&record, Duration::from_millis(300), &mut sink)?;
    } else {
        let mut follower = crate::local::LogFollower::new(&record);
        for (stream, bytes) in follower.read_new()? {
            sink(stream, &bytes);
        }
    }
    Ok(EXIT_OK)
}

pub fn delete(args: &DeleteArgs, state: &StateArgs) -> anyhow::Result<i32> {
    let mut store = state.open()?;
    let mut keys = Vec::new();
    if !args.files.is_empty() {
        match manifests::load(&args.files, &state.namespace) {
            Ok(docs) => keys.extend(docs.into_iter().map(|d| d.key)),
            Err(problems) => {
                problems.iter().for_each(|p| eprintln!("error: {p}"));
                return Ok(EXIT_INVALID);
            }
        }
    }
    match (&args.kind, &args.name) {
        (Some(kind), Some(name)) => {
            let kind = parse_kind(kind).ok_or_else(|| unknown_kind(kind))?;
            keys.push(Key {
                kind: kind.into(),
                namespace: state.namespace.clone(),
                name: name.clone(),
            });
        }
        (Some(_), None) => {
            eprintln!("error: delete KIND NAME needs a name");
            return Ok(EXIT_INVALID);
        }
        _ if keys.is_empty() => {
            eprintln!("error: delete needs -f FILE or KIND NAME");
            return Ok(EXIT_INVALID);
        }
        _ => {}
    }
    // Dependents first: Experiments cancel their runs before their RunConfiguration goes.
    keys.sort_by_key(|k| std::cmp::Reverse(kind_order(&k.kind)));
    let mut pending = Vec::new();
    for key in &keys {
        if store.get(key)?.is_none() {
            println!("{}/{} not found", key.kind.to_lowercase(), key.name);
            continue;
        }
        store.delete(key)?;
        pending.push(key.clone());
    }
    let code = converge(&mut store, state, &pending, false, args.timeout)?;
    for key in &pending {
        match store.get(key)? {
            None => println!("{}/{} deleted", key.kind.to_lowercase(), key.name),
            Some(_) => println!(
                "{}/{} still deleting (finalizer pending)",
                key.kind.to_lowercase(),
                key.name
            ),
        }
    }
    Ok(code)
}

pub fn validate(args: &FilesArgs, state: &StateArgs) -> anyhow::Result<i32> {
    let store = state.open()?;
    let Some(docs) = load_admitted(&args.files, state, &store)? else {
        return Ok(EXIT_INVALID);
    };
    let problems = cross_references(&docs, &store)?;
    for p in &problems {
        eprintln!("error: {p}");
    }
    if problems.is_empty() {
        println!("{} objects valid", docs.len());
        Ok(EXIT_OK)
    } else {
        Ok(EXIT_INVALID)
    }
}

/// References that point nowhere: neither among the documents nor in the store.
fn cross_references(docs: &[Document], store: &Store) -> anyhow::Result<Vec<String>> {
    let exists = |kind: &str, ns: &str, name: &str| -> anyhow::Result<bool> {
        let key = Key {
            kind: kind.into(),
            namespace: ns.into(),
            name: name.into(),
        };
        Ok(docs.iter().any(|d| d.key == key) || store.get(&key)?.is_some())
    };
    let mut problems = Vec::new();
    for d in docs {
        let ns = &d.key.namespace;
        let refs: Vec<(&str, &str, &str)> = match d.key.kind.as_str() {
            "ComputeTarget" => vec![(
                "spec.workspaceRef.name",
                "Workspace",
                "/spec/workspaceRef/name",
            )],
            "RunConfiguration" => vec![
                (
                    "spec.targetRef.name",
                    "ComputeTarget",
                    "/spec/targetRef/name",
                ),
                (
                    "spec.workspaceRef.name",
                    "Workspace",
                    "/spec/workspaceRef/name",
                ),
            ],
            "Experiment" => vec![
                (
                    "spec.runConfigurationRef.name",
                    "RunConfiguration",
                    "/spec/runConfigurationRef/name",
                ),
                (
                    "spec.source.configMap.name",
                    "ConfigMap",
                    "/spec/source/configMap/name",
                ),
                (
                    "spec.source.git.secretRef.name",
                    "Secret",
                    "/spec/source/git/secretRef/name",
                ),
            ],
            _ => vec![],
        };
        for (field, kind, pointer) in refs {
            if let Some(name) = d.object.pointer(pointer).and_then(Value::as_str)
                && !exists(kind, ns, name)?
            {
                problems.push(format!("{}: {field}: {kind} {name:?} is not defined in these manifests or the state store", d.location()));
            }
        }
        if let Some(path) = d
            .object
            .pointer("/spec/source/localPath")
            .and_then(Value::as_str)
            && !Path::new(path).is_dir()
        {
            problems.push(format!(
                "{}: spec.source.localPath: {path} is not a directory",
                d.location()
            ));
        }
    }
    Ok(problems)
}

pub fn plan(args: &FilesArgs, state: &StateArgs) -> anyhow::Result<i32> {
    let store = state.open()?;
    let Some(docs) = load_admitted(&args.files, state, &store)? else {
        return Ok(EXIT_INVALID);
    };
    for d in &docs {
        let old = store.get(&d.key)?;
        let verb = match &old {
            None => "create",
            Some(o) if o.get("spec") != d.object.get("spec") => "update (new generation)",
            Some(o)
                if o["metadata"].get("annotations") != d.object["metadata"].get("annotations")
                    || o["metadata"].get("labels") != d.object["metadata"].get("labels") =>
            {
                "update (metadata only)"
            }
            Some(_) => "no change",
        };
        println!("{}/{}: {verb}", d.key.kind.to_lowercase(), d.key.name);
        for line in super::plan::effects(d, &docs, old.as_ref(), &store, &state.local())? {
            println!("  - {line}");
        }
    }
    Ok(EXIT_OK)
}
