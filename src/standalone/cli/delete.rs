//! `amlops delete`: through the finalizers, like a cluster.

use super::*;

use super::apply::converge;

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
            println!("{} not found", key.short());
            continue;
        }
        if args.force {
            store.remove(key)?;
            println!("{} removed without cleanup (--force)", key.short());
            continue;
        }
        store.delete(key)?;
        pending.push(key.clone());
    }
    let code = converge(&mut store, state, &pending, false, args.timeout)?;
    for key in &pending {
        match store.get(key)? {
            None => println!("{} deleted", key.short()),
            Some(_) => println!("{} still deleting (finalizer pending)", key.short()),
        }
    }
    Ok(code)
}
