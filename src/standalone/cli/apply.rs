//! `amlops apply`: store the manifests, then reconcile until settled.

use super::*;

use super::console::{Console, INTERRUPTED, catch_interrupts};
use crate::standalone::azure::Deadline;

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
    let mut keys: Vec<Key> = Vec::new();
    let mut fed: Vec<Key> = Vec::new();
    for d in &docs {
        let (applied, _) = store.apply(&d.key, &d.object)?;
        let word = match applied {
            Applied::Created => "created",
            Applied::Configured => "configured",
            Applied::Unchanged => "unchanged",
        };
        println!("{} {word}", d.key.short());
        if KINDS.contains(&d.key.kind.as_str()) {
            keys.push(d.key.clone());
        } else if applied != Applied::Unchanged {
            // Objects in the store that this one feeds (a ConfigMap's Experiments) got a new
            // generation: they are reconciled by this apply too, not at the next one.
            fed.extend(store.dependants(&d.key)?);
        }
    }
    for key in fed {
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    let code = converge(&mut store, state, &keys, args.wait, args.timeout)?;
    print_summary(&store, &keys)?;
    Ok(code)
}

/// Reconciles `keys` until each is settled, stalled or gone, or the timeout passes.
pub(super) fn converge(
    store: &mut Store,
    state: &StateArgs,
    keys: &[Key],
    wait: bool,
    timeout: Duration,
) -> anyhow::Result<i32> {
    if wait {
        catch_interrupts();
    }
    let console = Console::new();
    // A timeout too long for the clock to represent means no deadline.
    let deadline = Instant::now().checked_add(timeout);
    let azure = Azure::new()?.with_deadline(deadline.map(|at| Deadline {
        at,
        timeout,
        report: Box::new(report(console.bar.clone())),
        exit_code: EXIT_TIMEOUT,
    }));
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
            azure.reconciling(key);
            let mut outcome = engine.reconcile(key, Timestamp::now())?;
            if let Outcome::Progressing(_) = outcome
                && let Some(why) = blocked(engine.store, key)?
            {
                console.line(format!("{}: stopped waiting: {why}", key.short()));
                outcome = Outcome::Stalled;
            }
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
        let waiting: Vec<String> = due.keys().map(Key::short).collect();
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
        if deadline.is_some_and(|d| Instant::now() >= d) {
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

/// Reports a deadline that passed inside an Azure call, like `converge` reports its own.
fn report(bar: ProgressBar) -> impl Fn(&str) {
    move |message| {
        bar.finish_and_clear();
        eprintln!("error: {message}");
    }
}

/// Why `key` cannot progress until a human acts: an object it names is missing from the store,
/// Stalled, or blocked itself. None while it can progress, is deleting, or follows a run that
/// has not finished (that run does not need its dependencies any more).
fn blocked(store: &Store, key: &Key) -> anyhow::Result<Option<String>> {
    let Some(object) = store.get(key)? else {
        return Ok(None);
    };
    let run = &object["status"]["currentRun"];
    if object["metadata"].get("deletionTimestamp").is_some()
        || (run.is_object() && run.get("finishedAt").is_none())
    {
        return Ok(None);
    }
    for r in manifests::references(&key.kind, &object) {
        let what = format!("{}: {} {:?}", r.field, r.kind, r.name);
        let dependency = Key {
            kind: r.kind.into(),
            namespace: key.namespace.clone(),
            name: r.name.into(),
        };
        let Some(dependency_object) = store.get(&dependency)? else {
            return Ok(Some(format!(
                "{what} does not exist: apply it, then apply this again"
            )));
        };
        if let Some(problem) = problem_message(&dependency_object) {
            return Ok(Some(format!("{what} needs a human: {problem}")));
        }
        if let Some(why) = blocked(store, &dependency)? {
            return Ok(Some(format!("{what} is blocked: {why}")));
        }
    }
    Ok(None)
}

fn cancel_runs(
    store: &mut Store,
    azure: &Azure,
    state: &StateArgs,
    keys: &[Key],
) -> anyhow::Result<()> {
    for key in keys.iter().filter(|k| k.kind == "Experiment") {
        azure.reconciling(key);
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
                    "{}: logs {logs}/stdout.log and stderr.log; outputs {outputs}",
                    key.short()
                );
            }
            if let Some(message) = problem_message(object) {
                println!("{}: {message}", key.short());
            }
        }
        for (key, object) in objects.iter().filter(|_| kind != "Experiment") {
            if let Some(message) = problem_message(object) {
                println!("{}: {message}", key.short());
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
