//! `amlops get`, `describe` and `logs`.

use super::*;

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
