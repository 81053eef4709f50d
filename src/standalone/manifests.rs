//! Reading manifests: files, directories (recursively) or stdin, multi-document YAML or JSON.
//! Every problem names the file, the document index, the object and the field.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::store::Key;
use crate::api::validate::{self, Problem};
use crate::api::{ComputeTarget, GROUP, VERSION};
use crate::reconcile::{ObjectInfo, compute_target};
use crate::snapshot;

/// The amlops kinds in dependency order (what a kind references comes first).
pub const KINDS: [&str; 4] = [
    "Workspace",
    "ComputeTarget",
    "RunConfiguration",
    "Experiment",
];
/// Core kinds standalone mode also stores, because amlops objects reference them.
pub const CORE_KINDS: [&str; 2] = ["Secret", "ConfigMap"];

/// A reference from one object to another of the same namespace.
pub struct Reference<'a> {
    /// The field that names the other object, as the user writes it.
    pub field: &'static str,
    pub kind: &'static str,
    pub name: &'a str,
}

/// The objects `object` (of `kind`) names: what it waits for and what must exist.
pub fn references<'a>(kind: &str, object: &'a Value) -> Vec<Reference<'a>> {
    let fields: &[(&str, &str, &str)] = match kind {
        "ComputeTarget" => &[(
            "spec.workspaceRef.name",
            "Workspace",
            "/spec/workspaceRef/name",
        )],
        "RunConfiguration" => &[
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
        "Experiment" => &[
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
        _ => &[],
    };
    fields
        .iter()
        .filter_map(|(field, kind, pointer)| {
            let name = object.pointer(pointer).and_then(Value::as_str)?;
            Some(Reference { field, kind, name })
        })
        .collect()
}

/// One object read from a manifest, and where it came from.
#[derive(Clone, Debug)]
pub struct Document {
    pub file: String,
    pub index: usize,
    pub key: Key,
    pub object: Value,
}

impl Document {
    /// `file document N (Kind/name)`, the prefix of every message about this object.
    pub fn location(&self) -> String {
        format!(
            "{} document {} ({}/{})",
            self.file,
            self.index + 1,
            self.key.kind,
            // A name breaking the naming rules is shown escaped, never with raw control characters.
            self.key.name.escape_debug()
        )
    }
}

/// Reads every document of `paths` ("-" is stdin). Errors are collected, not stopped at.
pub fn load(paths: &[PathBuf], namespace: &str) -> Result<Vec<Document>, Vec<String>> {
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for p in paths {
        if p.as_os_str() == "-" {
            files.push(p.clone());
            continue;
        }
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => match Walk::new(p) {
                Ok(mut walk) => {
                    walk.dir(p);
                    // Skipped files do not make the input invalid: say so and go on.
                    walk.notes.iter().for_each(|n| eprintln!("note: {n}"));
                    files.append(&mut walk.files);
                    problems.append(&mut walk.problems);
                }
                Err(e) => problems.push(e),
            },
            Ok(m) if m.is_file() => files.push(p.clone()),
            Ok(_) => problems.push(format!(
                "{}: not a regular file or a directory",
                p.display()
            )),
            Err(e) => problems.push(format!("{}: {e}", p.display())),
        }
    }
    let mut docs = Vec::new();
    for file in files {
        match read_file(&file, namespace) {
            Ok(mut d) => docs.append(&mut d),
            Err(mut e) => problems.append(&mut e),
        }
    }
    if docs.is_empty() && problems.is_empty() {
        problems.push("no manifests found (looked for *.yaml, *.yml and *.json)".into());
    }
    let mut seen = std::collections::BTreeMap::new();
    for d in &docs {
        if let Some(first) = seen.insert(d.key.clone(), d.location()) {
            problems.push(format!(
                "{}: {} is also defined in {first}",
                d.location(),
                d.key
            ));
        }
    }
    if problems.is_empty() {
        Ok(docs)
    } else {
        Err(problems)
    }
}

/// The manifest files under one directory given on the command line: regular files only (a
/// FIFO would block the read), symlinks only to what stays inside that directory, each
/// directory once (a symlink loop or alias is read once).
struct Walk {
    /// The given directory, resolved.
    root: PathBuf,
    visited: std::collections::BTreeSet<PathBuf>,
    files: Vec<PathBuf>,
    problems: Vec<String>,
    notes: Vec<String>,
}

impl Walk {
    fn new(root: &Path) -> Result<Self, String> {
        Ok(Self {
            root: std::fs::canonicalize(root).map_err(|e| format!("{}: {e}", root.display()))?,
            visited: Default::default(),
            files: Vec::new(),
            problems: Vec::new(),
            notes: Vec::new(),
        })
    }

    fn dir(&mut self, dir: &Path) {
        if !self.first_visit(dir) {
            return;
        }
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => return self.problems.push(format!("{}: {e}", dir.display())),
        };
        let mut entries: Vec<std::fs::DirEntry> = entries.filter_map(Result::ok).collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            self.entry(&e.path());
        }
    }

    fn entry(&mut self, path: &Path) {
        let root = &self.root;
        let Ok(link) = std::fs::symlink_metadata(path) else {
            return;
        };
        if link.file_type().is_symlink() {
            match std::fs::canonicalize(path) {
                Ok(target) if !target.starts_with(root) => {
                    return self.problems.push(format!(
                        "{}: refused: a symlink to {}, outside {}",
                        path.display(),
                        target.display(),
                        root.display()
                    ));
                }
                Ok(_) => {}
                Err(e) => {
                    return self.problems.push(format!(
                        "{}: a symlink that cannot be followed: {e}",
                        path.display()
                    ));
                }
            }
        }
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        if meta.is_dir() {
            self.dir(path);
        } else if is_manifest_name(path) {
            if meta.is_file() {
                if self.first_visit(path) {
                    self.files.push(path.to_path_buf());
                }
            } else {
                self.notes
                    .push(format!("{}: skipped: not a regular file", path.display()));
            }
        }
    }

    /// False, with a note, when `path` was read already under another name (a symlink loop
    /// or alias); resolving it fails only in a race with a change of the tree, then it is skipped.
    fn first_visit(&mut self, path: &Path) -> bool {
        let Ok(real) = std::fs::canonicalize(path) else {
            return false;
        };
        let first = self.visited.insert(real);
        if !first {
            self.notes.push(format!(
                "{}: skipped: read already under another name (a symlink loop or alias)",
                path.display()
            ));
        }
        first
    }
}

fn is_manifest_name(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
}

fn read_file(file: &Path, namespace: &str) -> Result<Vec<Document>, Vec<String>> {
    let name = file.display().to_string();
    let text = if file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| vec![format!("stdin: {e}")])?;
        s
    } else {
        std::fs::read_to_string(file).map_err(|e| vec![format!("{name}: {e}")])?
    };
    let base_dir = if file.as_os_str() == "-" {
        std::env::current_dir().unwrap_or_default()
    } else {
        file.parent().map(Path::to_path_buf).unwrap_or_default()
    };
    parse(&name, &text, namespace, &base_dir)
}

/// The documents of one manifest's text, as `validate` and `apply` read a file named `name`
/// (the name is only for messages; a `localPath` source is relative to `base_dir`).
pub fn parse(
    name: &str,
    text: &str,
    namespace: &str,
    base_dir: &Path,
) -> Result<Vec<Document>, Vec<String>> {
    let options = serde_saphyr::options! { with_snippet: false };
    let values: Vec<Value> =
        serde_saphyr::from_multiple_with_options(text, options).map_err(|e| {
            vec![format!(
                "{name}: not valid YAML: {}",
                syntax_error(text, &e)
            )]
        })?;
    let mut docs = Vec::new();
    let mut problems = Vec::new();
    for (index, value) in values.into_iter().enumerate().filter(|(_, v)| !v.is_null()) {
        match document(name, index, value, namespace, base_dir) {
            Ok(d) => docs.push(d),
            Err(p) => problems.push(p),
        }
    }
    if problems.is_empty() {
        Ok(docs)
    } else {
        Err(problems)
    }
}

/// A YAML error with the lines around it, only when its document names a kind that holds no
/// secrets: a Secret's lines (or those of a document whose kind cannot be read) may hold a
/// secret value.
fn syntax_error(text: &str, error: &serde_saphyr::Error) -> String {
    let Some(at) = error.location() else {
        return error.to_string();
    };
    let lines: Vec<&str> = text.lines().collect();
    let line = usize::try_from(at.line())
        .map_or(usize::MAX, |l| l.saturating_sub(1))
        .min(lines.len());
    let is_boundary = |l: &&str| l.starts_with("---") || l.starts_with("...");
    let start = lines[..line.min(lines.len())]
        .iter()
        .rposition(is_boundary)
        .map_or(0, |i| i + 1);
    let end = lines
        .iter()
        .skip(line + 1)
        .position(is_boundary)
        .map_or(lines.len(), |i| line + 1 + i);
    let kinds: Vec<&str> = lines[start..end.max(start)]
        .iter()
        .filter_map(|l| l.strip_prefix("kind:"))
        .map(|k| {
            k.split('#')
                .next()
                .unwrap_or_default()
                .trim()
                .trim_matches(['"', '\''])
        })
        .collect();
    let harmless = |k: &&str| KINDS.contains(k) || *k == "ConfigMap";
    if kinds.is_empty() || !kinds.iter().all(harmless) || line >= end {
        return format!(
            "{error} (the lines are not shown: they belong to a Secret or a document whose kind cannot be read, and may hold secret values)"
        );
    }
    let mut out = error.to_string();
    let first = line.saturating_sub(2).max(start);
    let shown = lines[first..(line + 2).min(end)].iter();
    for (i, l) in shown.enumerate().map(|(i, l)| (first + i, l)) {
        out.push_str(&format!("\n{:>5} | {l}", i + 1));
        if i == line {
            let column = usize::try_from(at.column()).unwrap_or(1).max(1);
            out.push_str(&format!("\n      | {:>column$}", "^"));
        }
    }
    out
}

fn document(
    file: &str,
    index: usize,
    mut object: Value,
    namespace: &str,
    base_dir: &Path,
) -> Result<Document, String> {
    let at = format!("{file} document {}", index + 1);
    let kind = object["kind"]
        .as_str()
        .ok_or_else(|| format!("{at}: kind: is required"))?
        .to_string();
    let api_version = object["apiVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let expected = if KINDS.contains(&kind.as_str()) {
        format!("{GROUP}/{VERSION}")
    } else if CORE_KINDS.contains(&kind.as_str()) {
        "v1".to_string()
    } else {
        return Err(format!(
            "{at}: kind: {kind:?} is not an amlops kind (expected one of {}, or Secret/ConfigMap)",
            KINDS.join(", ")
        ));
    };
    if api_version != expected {
        return Err(format!(
            "{at} ({kind}): apiVersion: expected {expected:?}, got {api_version:?}"
        ));
    }
    let name = object["metadata"]["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| format!("{at} ({kind}): metadata.name: is required"))?
        .to_string();
    let ns = match object["metadata"]["namespace"].as_str() {
        Some(ns) => ns.to_string(),
        None => {
            // The namespace given with -n: admission checks one written in the manifest.
            validate::check_namespace(namespace)
                .map_err(|e| format!("{at} ({kind}/{}): --namespace: {e}", name.escape_debug()))?;
            namespace.to_string()
        }
    };
    // A local source path is relative to the manifest that names it, wherever amlops runs from.
    if let Some(Value::String(p)) = object.pointer_mut("/spec/source/localPath") {
        let abs = base_dir.join(&*p);
        *p = std::fs::canonicalize(&abs)
            .unwrap_or(abs)
            .display()
            .to_string();
    }
    Ok(Document {
        file: file.to_string(),
        index,
        key: Key {
            kind,
            namespace: ns,
            name,
        },
        object,
    })
}

/// Admission of one document, as `apply` does it before storing anything: what the apiserver
/// checks on create (`old` None) or update (metadata, schema, CEL, Secret and ConfigMap
/// rules), and what a reconcile would refuse for the manifest alone. Returns messages that
/// name the location and the field.
pub fn admit(doc: &Document, old: Option<&Value>) -> Vec<String> {
    let mut problems = validate::validate(&doc.key.kind, &doc.object, old);
    // One message per field: the CRD's, when it has one already.
    problems.extend(
        refused_by_reconcile(doc).filter(|extra| problems.iter().all(|p| p.field != extra.field)),
    );
    problems
        .into_iter()
        .map(|p| format!("{}: {p}", doc.location()))
        .collect()
}

/// What reconciling the manifest would stop at, whatever else is stored: checked here so that
/// `validate` finds it and `apply` stores nothing instead of a Stalled object.
fn refused_by_reconcile(doc: &Document) -> Option<Problem> {
    match doc.key.kind.as_str() {
        "ComputeTarget" => {
            let ct: ComputeTarget = serde_json::from_value(doc.object.clone()).ok()?;
            if ct.spec.local.is_some() {
                return None;
            }
            let info = ObjectInfo {
                name: doc.key.name.clone(),
                ..Default::default()
            };
            let name = compute_target::azure_name(&info, &ct.spec);
            (!compute_target::valid_azure_name(&name)).then(|| Problem {
                field: if ct.spec.azure_name.is_some() {
                    "spec.azureName".into()
                } else {
                    "metadata.name".into()
                },
                message: format!(
                    "{name:?} is the name of this compute in Azure ML, which allows 3-24 characters: a letter, then letters, digits and '-', not ending in '-<digits>'; set spec.azureName to such a name"
                ),
            })
        }
        "Experiment" => {
            let files = doc
                .object
                .pointer("/spec/source/inline/files")?
                .as_object()?;
            let names = files.keys().map(String::as_str);
            snapshot::check_file_names("inline files", names)
                .err()
                .map(|e| Problem {
                    field: "spec.source.inline.files".into(),
                    message: e.to_string(),
                })
        }
        _ => None,
    }
}
