//! What `amlops get` and `describe` print: the CRD printer columns, like kubectl.

use jiff::Timestamp;
use serde_json::Value;

use super::store::{Key, StoredEvent};
use crate::api::all_crds;

/// A printer column of a kind's CRD.
#[derive(Clone, Debug)]
pub struct Column {
    pub name: String,
    pub json_path: String,
    pub date: bool,
    pub wide_only: bool,
}

/// The columns `kubectl get` shows for `kind` (NAME first, then the CRD's printer columns).
pub fn columns(kind: &str) -> Vec<Column> {
    let crds = all_crds();
    let Some(crd) = crds.iter().find(|c| c.spec.names.kind == kind) else {
        return Vec::new();
    };
    crd.spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| Column {
            name: c.name.to_uppercase(),
            json_path: c.json_path.clone(),
            date: c.type_ == "date",
            wide_only: c.priority.unwrap_or(0) > 0,
        })
        .collect()
}

/// Evaluates the JSONPath subset the printer columns use: `.a.b` and `.a[?(@.k=="v")].b`.
pub fn json_path<'v>(object: &'v Value, path: &str) -> Option<&'v Value> {
    let mut current = object;
    let mut rest = path.trim_start_matches('.');
    while !rest.is_empty() {
        let end = rest.find(['.', '[']).unwrap_or(rest.len());
        let (field, tail) = rest.split_at(end);
        if !field.is_empty() {
            current = current.get(field)?;
        }
        rest = tail;
        if let Some(filter) = rest.strip_prefix("[?(@.") {
            let close = filter.find(")]")?;
            let (cond, after) = (&filter[..close], &filter[close + 2..]);
            let (k, v) = cond.split_once("==")?;
            let want = v.trim_matches('"');
            current = current
                .as_array()?
                .iter()
                .find(|item| item.get(k).and_then(Value::as_str) == Some(want))?;
            rest = after;
        }
        rest = rest.trim_start_matches('.');
    }
    Some(current)
}

/// A kubectl-style age: `45s`, `12m`, `3h`, `2d`.
pub fn age(since: &str, now: Timestamp) -> String {
    let Ok(t) = since.parse::<Timestamp>() else {
        return since.to_string();
    };
    let s = now.duration_since(t).as_secs().max(0);
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        7200..172800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

fn cell(object: &Value, column: &Column, now: Timestamp) -> String {
    match json_path(object, &column.json_path) {
        None | Some(Value::Null) => "<none>".into(),
        Some(Value::String(s)) if column.date => age(s, now),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

/// One table per kind, columns aligned like kubectl; a NAMESPACE column first (as with
/// `kubectl get -A`) when an object is outside the `default` namespace, so objects of one name
/// in two namespaces read apart.
pub fn table(kind: &str, objects: &[(Key, Value)], wide: bool, now: Timestamp) -> String {
    let columns: Vec<Column> = columns(kind)
        .into_iter()
        .filter(|c| wide || !c.wide_only)
        .collect();
    let namespaced = objects.iter().any(|(k, _)| k.namespace != "default");
    let identity =
        |namespace: String, name: String| namespaced.then_some(namespace).into_iter().chain([name]);
    let mut rows = vec![
        identity("NAMESPACE".into(), "NAME".into())
            .chain(columns.iter().map(|c| c.name.clone()))
            .collect::<Vec<_>>(),
    ];
    for (key, object) in objects {
        rows.push(
            identity(key.namespace.clone(), key.name.clone())
                .chain(columns.iter().map(|c| cell(object, c, now)))
                .collect(),
        );
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    out
}

/// `amlops describe`: metadata, spec, conditions, the current run and recent events.
pub fn describe(key: &Key, object: &Value, events: &[StoredEvent], now: Timestamp) -> String {
    let mut out = format!(
        "Name:         {}\nNamespace:    {}\nKind:         {}\n",
        key.name, key.namespace, key.kind
    );
    let meta = &object["metadata"];
    for (label, field) in [
        ("UID", "uid"),
        ("Generation", "generation"),
        ("Created", "creationTimestamp"),
        ("Deleting since", "deletionTimestamp"),
    ] {
        if let Some(v) = meta.get(field).filter(|v| !v.is_null()) {
            out.push_str(&format!(
                "{:<14}{}\n",
                format!("{label}:"),
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string())
            ));
        }
    }
    out.push_str("Spec:\n");
    out.push_str(&indent(
        &serde_saphyr::to_string(&object["spec"]).unwrap_or_default(),
        2,
    ));
    let status = &object["status"];
    if let Some(conditions) = status["conditions"].as_array().filter(|c| !c.is_empty()) {
        out.push_str(
            "Conditions:\n  TYPE          STATUS   REASON                        AGE    MESSAGE\n",
        );
        for c in conditions {
            let text = |f: &str| c[f].as_str().unwrap_or_default().to_string();
            out.push_str(&format!(
                "  {:<13} {:<8} {:<29} {:<6} {}\n",
                text("type"),
                text("status"),
                text("reason"),
                age(&text("lastTransitionTime"), now),
                text("message").replace('\n', "\n      ")
            ));
        }
    }
    let rest: serde_json::Map<String, Value> = status
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| *k != "conditions")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    if !rest.is_empty() {
        out.push_str("Status:\n");
        out.push_str(&indent(
            &serde_saphyr::to_string(&rest).unwrap_or_default(),
            2,
        ));
    }
    out.push_str("Events:\n");
    if events.is_empty() {
        out.push_str("  <none>\n");
    }
    for e in events {
        let kind = if e.warning { "Warning" } else { "Normal" };
        out.push_str(&format!(
            "  {:<8} {:<20} {:<6} {}\n",
            kind,
            e.reason,
            age(&e.time, now),
            e.message
        ));
    }
    out
}

fn indent(text: &str, n: usize) -> String {
    text.lines()
        .map(|l| format!("{}{l}\n", " ".repeat(n)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_path_reads_fields_and_condition_filters() {
        let obj = json!({"status": {"currentRun": {"id": "r1"}, "conditions": [{"type": "Stalled", "status": "False"}, {"type": "Ready", "status": "True"}]}});
        assert_eq!(json_path(&obj, ".status.currentRun.id"), Some(&json!("r1")));
        assert_eq!(
            json_path(&obj, ".status.conditions[?(@.type==\"Ready\")].status"),
            Some(&json!("True"))
        );
        assert_eq!(
            json_path(&obj, ".status.conditions[?(@.type==\"Running\")].status"),
            None
        );
        assert_eq!(json_path(&obj, ".status.missing"), None);
    }

    #[test]
    fn experiment_table_has_the_printer_columns() {
        let now: Timestamp = "2026-11-26T12:00:00Z".parse().unwrap();
        let key = Key {
            kind: "Experiment".into(),
            namespace: "default".into(),
            name: "quickstart".into(),
        };
        let obj = json!({"metadata": {"creationTimestamp": "2026-11-26T11:58:00Z"}, "status": {"currentRun": {"id": "quickstart-1-ab", "state": "Completed", "startedAt": "2026-11-26T11:59:00Z", "duration": "3s"}, "conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded"}]}});
        let t = table("Experiment", &[(key, obj)], false, now);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            [
                "NAME", "RUN", "STATE", "STARTED", "DURATION", "READY", "AGE"
            ]
        );
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            [
                "quickstart",
                "quickstart-1-ab",
                "Completed",
                "60s",
                "3s",
                "True",
                "2m"
            ]
        );
        assert!(table("Experiment", &[], true, now).contains("STUDIO"));
    }

    #[test]
    fn objects_outside_the_default_namespace_show_it() {
        let now: Timestamp = "2026-11-26T12:00:00Z".parse().unwrap();
        let in_namespace = |namespace: &str| {
            let key = Key {
                kind: "ComputeTarget".into(),
                namespace: namespace.into(),
                name: "local".into(),
            };
            (key, json!({}))
        };
        let one = table("ComputeTarget", &[in_namespace("default")], false, now);
        assert!(one.starts_with("NAME "), "{one}");
        let two = table(
            "ComputeTarget",
            &[in_namespace("default"), in_namespace("team-a")],
            false,
            now,
        );
        let rows: Vec<Vec<&str>> = two
            .lines()
            .map(|l| l.split_whitespace().take(2).collect())
            .collect();
        assert_eq!(
            rows,
            [
                ["NAMESPACE", "NAME"],
                ["default", "local"],
                ["team-a", "local"]
            ]
        );
    }
}
