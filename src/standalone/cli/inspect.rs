//! `amlops get`, `describe` and `logs`.

use super::console::Console;
use super::*;
use crate::actions::run_logs::{LogEvent, LogOptions};
use crate::standalone::engine::RunPlace;

pub fn get(args: &GetArgs, state: &StateArgs) -> anyhow::Result<i32> {
    let store = state.read()?;
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
    let store = state.read()?;
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
    if args.cluster || args.kubeconfig.is_some() {
        return cluster_logs(args, &state.namespace, name);
    }
    let mut store = state.read()?;
    let key = Key {
        kind: "Experiment".into(),
        namespace: state.namespace.clone(),
        name: name.into(),
    };
    if store.get(&key)?.is_none() {
        eprintln!("error: {key} not found");
        return Ok(EXIT_FAILED);
    }
    let azure = Azure::new()?;
    let console = Console::new();
    let engine = Engine {
        store: &mut store,
        azure: &azure,
        local: state.local(),
        reporter: &console,
        wait_for_runs: false,
    };
    let Some(run) = engine.current_run(&key)? else {
        eprintln!("error: {key} has no run yet");
        return Ok(EXIT_FAILED);
    };
    use std::io::Write;
    match run.place {
        RunPlace::Azure(Ok(client)) => {
            let options = LogOptions {
                follow: args.follow,
                ..LogOptions::default()
            };
            let streamed = azure.block_on(print_azure_log(&client, &run.id, &options));
            if let Err(f) = streamed {
                eprintln!("error: logs of run {}: {}", run.id, f.message);
                return Ok(EXIT_FAILED);
            }
        }
        RunPlace::Azure(Err(f)) => {
            eprintln!("error: cannot reach the Workspace of {key}: {}", f.message);
            return Ok(EXIT_FAILED);
        }
        RunPlace::Local => {
            let Some(record) = crate::local::load_run(&state.local().state_dir, &run.id)? else {
                eprintln!("error: run {} has no local logs yet", run.id);
                return Ok(EXIT_FAILED);
            };
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
        }
    }
    Ok(EXIT_OK)
}

/// `amlops logs --cluster`: the Experiment comes from the API server.
fn cluster_logs(args: &LogsArgs, namespace: &str, name: &str) -> anyhow::Result<i32> {
    use crate::controller::run_logs::{ClusterRun, Identity, current_run};
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let identity = if args.azure_cli {
        Identity::AzureCli
    } else {
        Identity::Workspace
    };
    let options = LogOptions {
        follow: args.follow,
        ..LogOptions::default()
    };
    runtime.block_on(async {
        let config = match &args.kubeconfig {
            Some(path) => {
                let kubeconfig = kube::config::Kubeconfig::read_from(path)?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?
            }
            None => kube::Config::infer().await?,
        };
        let kube = kube::Client::try_from(config)?;
        let found = current_run(kube, namespace, name, identity, Default::default()).await;
        let (run_id, place) = match found {
            Ok(found) => found,
            Err(e) => {
                eprintln!("error: {e:#}");
                return Ok(EXIT_FAILED);
            }
        };
        let printed = match place {
            ClusterRun::Azure(client) => print_azure_log(&client, &run_id, &options).await,
            ClusterRun::Job(jobs) => print_job_log(&jobs, &run_id, args.follow).await,
        };
        Ok(match printed {
            Ok(()) => EXIT_OK,
            Err(f) => {
                eprintln!("error: logs of run {run_id}: {}", f.message);
                EXIT_FAILED
            }
        })
    })
}

/// The log of a run's Job (its run container) on stdout; with `follow`, until it ends.
async fn print_job_log(
    jobs: &crate::actions::kube_job::KubeJobs,
    run_id: &str,
    follow: bool,
) -> Result<(), crate::reconcile::ActionFailure> {
    use futures::AsyncReadExt;
    use std::io::Write;
    let Some(mut log) = jobs.log_stream(run_id, follow).await? else {
        eprintln!("# run {run_id} has not started yet: its pod has no running container");
        return Ok(());
    };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = log.read(&mut buf).await.map_err(|e| {
            crate::actions::transient("LogReadFailed", format!("reading the pod log: {e}"))
        })?;
        if n == 0 {
            return Ok(());
        }
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(&buf[..n]);
        let _ = out.flush();
    }
}

/// The user log of an Azure run on stdout, notes (state, other log files) on stderr.
pub(crate) async fn print_azure_log(
    client: &crate::azure::WorkspaceClient,
    run_id: &str,
    options: &LogOptions,
) -> Result<(), crate::reconcile::ActionFailure> {
    use std::io::Write;
    let mut sink = |event: LogEvent| match event {
        LogEvent::Output(bytes) => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&bytes);
            let _ = out.flush();
        }
        LogEvent::Note(line) => eprintln!("# {line}"),
    };
    crate::actions::run_logs::stream(client, run_id, options, &mut sink).await
}
