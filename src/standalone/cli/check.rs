//! `amlops validate` and `amlops plan`: offline checks for pull requests.

use super::*;
use crate::standalone::store::Change;

pub fn validate(args: &FilesArgs, state: &StateArgs) -> anyhow::Result<i32> {
    let store = state.read()?;
    Ok(match checked(&args.files, state, &store)? {
        Some(docs) => {
            println!("{} objects valid", docs.len());
            EXIT_OK
        }
        None => EXIT_INVALID,
    })
}

/// The documents, when they pass admission and every reference they make resolves; else
/// None, the problems printed. `validate` and `plan` judge alike.
fn checked(
    files: &[PathBuf],
    state: &StateArgs,
    store: &Store,
) -> anyhow::Result<Option<Vec<Document>>> {
    let Some(docs) = load_admitted(files, state, store)? else {
        return Ok(None);
    };
    let problems = cross_references(&docs, store)?;
    for p in &problems {
        eprintln!("error: {p}");
    }
    Ok(problems.is_empty().then_some(docs))
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
        for r in manifests::references(&d.key.kind, &d.object) {
            if !exists(r.kind, ns, r.name)? {
                problems.push(format!(
                    "{}: {}: {} {:?} is not defined in these manifests or the state store",
                    d.location(),
                    r.field,
                    r.kind,
                    r.name
                ));
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
    let store = state.read()?;
    let Some(docs) = checked(&args.files, state, &store)? else {
        return Ok(EXIT_INVALID);
    };
    for d in &docs {
        let old = store.get(&d.key)?;
        // The same comparison apply makes (a Secret's or ConfigMap's data is its content).
        let verb = match &old {
            None => "create",
            Some(o) => match crate::standalone::store::change(&d.key.kind, o, &d.object) {
                Change::Content => "update (new generation)",
                Change::Metadata => "update (metadata only)",
                Change::None => "no change",
            },
        };
        println!("{}: {verb}", d.key.short());
        for line in
            crate::standalone::plan::effects(d, &docs, old.as_ref(), &store, &state.local())?
        {
            println!("  - {line}");
        }
    }
    Ok(EXIT_OK)
}
