//! The generated CRDs: committed copies match the code, every regex and CEL rule would be
//! accepted by a Kubernetes 1.32 apiserver, examples pass admission and invalid manifests fail
//! with the field named.

use std::path::{Path, PathBuf};

use amlops::api::{self, validate};
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_multiple::<Value>(&text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(yaml_files(&p));
        } else if p.extension().is_some_and(|e| e == "yaml") {
            out.push(p);
        }
    }
    out.sort();
    out
}

#[test]
fn committed_crds_match_the_code() {
    for (name, yaml) in api::crds_yaml().unwrap() {
        let path = repo().join("crds").join(&name);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == yaml,
            "{} is out of date: run `make crds`",
            path.display()
        );
    }
}

/// Walks every schema node of every CRD.
fn walk<'a>(v: &'a Value, path: String, f: &mut dyn FnMut(&str, &'a Value)) {
    f(&path, v);
    match v {
        Value::Object(m) => m
            .iter()
            .for_each(|(k, c)| walk(c, format!("{path}/{k}"), f)),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, c)| walk(c, format!("{path}/{i}"), f)),
        _ => {}
    }
}

#[test]
fn every_pattern_is_re2_and_no_unsigned_formats() {
    let mut patterns = 0;
    for kind in [
        "Workspace",
        "ComputeTarget",
        "RunConfiguration",
        "Experiment",
    ] {
        let schema = validate::schema_for(kind).unwrap();
        walk(&schema, kind.to_string(), &mut |path, node| {
            if let Some(p) = node.get("pattern").and_then(Value::as_str) {
                patterns += 1;
                // The `regex` crate, like RE2, has no lookaround or backreferences.
                assert!(
                    regex::Regex::new(p).is_ok(),
                    "{path}: pattern {p} is not RE2-compatible"
                );
            }
            if let Some(f) = node.get("format").and_then(Value::as_str) {
                assert!(
                    !f.starts_with("uint"),
                    "{path}: format {f} is rejected by the apiserver"
                );
            }
        });
    }
    assert!(
        patterns > 10,
        "expected the CRDs to carry patterns, found {patterns}"
    );
}

#[test]
fn every_cel_rule_compiles_within_the_cost_budget() {
    use kube::core::cel::{CompiledSchema, WarningKind, compile_schema, estimate_rule_cost};
    fn check(node: &CompiledSchema, path: &str, rules: &mut usize) {
        for v in &node.validations {
            let compiled = v
                .as_ref()
                .unwrap_or_else(|e| panic!("{path}: CEL rule does not compile: {e}"));
            *rules += 1;
            for w in estimate_rule_cost(&compiled.rule.rule, node) {
                assert!(
                    w.kind != WarningKind::CostExceeded,
                    "{path}: {} ({})",
                    w.message,
                    w.rule
                );
            }
        }
        for (k, child) in &node.properties {
            check(child, &format!("{path}.{k}"), rules);
        }
        if let Some(items) = &node.items {
            check(items, &format!("{path}[]"), rules);
        }
        if let Some(add) = &node.additional_properties {
            check(add, &format!("{path}{{}}"), rules);
        }
    }
    let mut rules = 0;
    for kind in [
        "Workspace",
        "ComputeTarget",
        "RunConfiguration",
        "Experiment",
    ] {
        check(
            &compile_schema(&validate::schema_for(kind).unwrap()),
            kind,
            &mut rules,
        );
    }
    assert!(rules >= 15, "expected at least 15 CEL rules, found {rules}");
}

#[test]
fn conditions_merge_by_type() {
    for kind in [
        "Workspace",
        "ComputeTarget",
        "RunConfiguration",
        "Experiment",
    ] {
        let schema = validate::schema_for(kind).unwrap();
        let conditions = schema
            .pointer("/properties/status/properties/conditions")
            .unwrap();
        assert_eq!(conditions["x-kubernetes-list-type"], "map", "{kind}");
        assert_eq!(
            conditions["x-kubernetes-list-map-keys"],
            serde_json::json!(["type"]),
            "{kind}"
        );
    }
}

#[test]
fn every_example_is_typed_and_admitted() {
    let mut checked = 0;
    for file in yaml_files(&repo().join("examples")) {
        for (i, doc) in documents(&file).into_iter().enumerate() {
            let kind = doc["kind"].as_str().unwrap_or_default().to_string();
            let where_ = format!("{} document {i} ({kind})", file.display());
            match kind.as_str() {
                "Workspace" => {
                    drop(serde_json::from_value::<api::Workspace>(doc.clone()).expect(&where_))
                }
                "ComputeTarget" => {
                    drop(serde_json::from_value::<api::ComputeTarget>(doc.clone()).expect(&where_))
                }
                "RunConfiguration" => drop(
                    serde_json::from_value::<api::RunConfiguration>(doc.clone()).expect(&where_),
                ),
                "Experiment" => {
                    drop(serde_json::from_value::<api::Experiment>(doc.clone()).expect(&where_))
                }
                _ => continue,
            }
            let problems = validate::validate(&kind, &doc, None);
            assert!(problems.is_empty(), "{where_}: {problems:?}");
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} example objects found");
}

/// Each file in tests/invalid starts with `# expect: <field>: <message fragment>` lines.
#[test]
fn invalid_manifests_are_rejected_naming_the_field() {
    let files = yaml_files(&repo().join("tests/invalid"));
    assert!(
        files.len() >= 10,
        "expected invalid manifests in tests/invalid"
    );
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let expected: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .collect();
        assert!(
            !expected.is_empty(),
            "{}: no `# expect:` line",
            file.display()
        );
        let docs = documents(&file);
        let (new, old) = match docs.as_slice() {
            [new] => (new, None),
            [old, new] => (new, Some(old)),
            _ => panic!(
                "{}: one document, or old + new for an update",
                file.display()
            ),
        };
        let problems: Vec<String> = validate::validate(new["kind"].as_str().unwrap(), new, old)
            .iter()
            .map(ToString::to_string)
            .collect();
        for e in expected {
            assert!(
                problems.iter().any(|p| p.contains(e)),
                "{}: expected a problem containing {e:?}, got {problems:?}",
                file.display()
            );
        }
    }
}
