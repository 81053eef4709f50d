//! `amlops plan`: what an apply would do to each object beyond storing it.

use serde_json::Value;

use super::engine::is_azure_compute;
use super::manifests::Document;
use super::store::{self, Change, Key, Store, StoreError};
use crate::actions::local::LocalBackend;
use crate::api::conditions;
use crate::api::{ComputeTarget, RunConfiguration};
use crate::reconcile::ObjectInfo;
use crate::reconcile::compute_target::{self, ComputeAction, ObservedCompute, WorkspaceState};
use crate::reconcile::run_configuration::{EnvironmentPlan, plan_environment, plan_registry};

/// Human-readable effects, one per line.
pub fn effects(
    doc: &Document,
    docs: &[Document],
    old: Option<&Value>,
    store: &Store,
    local: &LocalBackend,
) -> Result<Vec<String>, StoreError> {
    let spec_changed = old.is_none_or(|o| o.get("spec") != doc.object.get("spec"));
    Ok(match doc.key.kind.as_str() {
        "ComputeTarget" => match serde_json::from_value::<ComputeTarget>(doc.object.clone()) {
            Ok(ct) if ct.spec.local.is_some() => {
                vec!["local compute: nothing to create; runs execute on this machine".into()]
            }
            Ok(ct) => compute_effects(&ct, old, spec_changed),
            Err(e) => vec![format!("unreadable: {e}")],
        },
        "RunConfiguration" => {
            match serde_json::from_value::<RunConfiguration>(doc.object.clone()) {
                Ok(rc) => {
                    let info = ObjectInfo {
                        name: doc.key.name.clone(),
                        namespace: doc.key.namespace.clone(),
                        ..Default::default()
                    };
                    let azure = runs_in_azure(&rc, doc, docs, store)?;
                    let registry = plan_registry(&rc.spec).filter(|_| azure).map(|r| {
                        format!(
                            "write workspace connection {} with the credentials of registry {} unless it is there",
                            r.name, r.address
                        )
                    });
                    let environment = match plan_environment(&info, &rc.spec) {
                        Some(plan @ EnvironmentPlan::Existing { .. }) => vec![format!(
                            "use the registered Azure ML environment {}:{}",
                            plan.name(),
                            plan.version()
                        )],
                        Some(plan) if azure => vec![format!(
                            "register environment {}:{} in the Workspace unless it is there ({})",
                            plan.name(),
                            short(plan.version()),
                            describe_plan(&plan)
                        )],
                        Some(plan) => match (local.environment_staged(&plan), &plan) {
                            (Err(f), _) => vec![format!("cannot run locally: {}", f.message)],
                            // A user-managed interpreter is used as found: nothing is staged.
                            (Ok(true), EnvironmentPlan::UserManaged { interpreter, .. }) => {
                                vec![format!("run with interpreter {interpreter} as found")]
                            }
                            (Ok(false), EnvironmentPlan::UserManaged { interpreter, .. }) => {
                                vec![format!(
                                    "interpreter {interpreter} is not found on this machine: install it or set environment.userManaged.interpreterPath, else the RunConfiguration stalls"
                                )]
                            }
                            (Ok(true), _) => vec![format!(
                                "environment {} is staged already: reused",
                                short(plan.version())
                            )],
                            (Ok(false), _) => vec![format!(
                                "stage environment {} ({})",
                                short(plan.version()),
                                describe_plan(&plan)
                            )],
                        },
                        None => vec!["no environment declared".into()],
                    };
                    registry.into_iter().chain(environment).collect()
                }
                Err(e) => vec![format!("unreadable: {e}")],
            }
        }
        "Experiment" => {
            let current = old.and_then(|o| o["status"]["currentRun"].as_object().cloned());
            let rerun_changed = old.is_some_and(|o| {
                o["metadata"]["annotations"].get(crate::api::RERUN_ANNOTATION)
                    != doc.object["metadata"]["annotations"].get(crate::api::RERUN_ANNOTATION)
            });
            let source_changed = old.is_some() && config_map_changed(doc, docs, store)?;
            match (spec_changed || rerun_changed || source_changed, current) {
                (true, _) => {
                    let mut lines = vec![format!(
                        "snapshot the source and start a new run ({}{})",
                        source_summary(&doc.object),
                        if source_changed {
                            ", whose data changed"
                        } else {
                            ""
                        }
                    )];
                    if rc_missing(doc, docs, store)? {
                        lines.push(format!(
                            "waits for RunConfiguration {:?}, which does not exist yet",
                            doc.object["spec"]["runConfigurationRef"]["name"]
                                .as_str()
                                .unwrap_or_default()
                        ));
                    }
                    lines
                }
                (false, Some(run)) => vec![format!(
                    "no new run: run {} is {}",
                    run.get("id").and_then(Value::as_str).unwrap_or("?"),
                    run.get("state").and_then(Value::as_str).unwrap_or("?")
                )],
                (false, None) => vec!["start a run".into()],
            }
        }
        "ConfigMap" | "Secret" if old.is_some_and(|o| content_changed(doc, o)) => {
            dependants(doc, store)?
        }
        _ => vec![],
    })
}

/// What the ComputeTarget reconciler decides for `ct`, against Azure as the stored spec left
/// it (a stored ComputeTarget was reconciled into Azure; a new one is not there yet): the
/// same decision `apply` executes, so a change the reconciler refuses is shown as refused.
fn compute_effects(ct: &ComputeTarget, old: Option<&Value>, spec_changed: bool) -> Vec<String> {
    let stored: Option<ComputeTarget> = old.and_then(|o| serde_json::from_value(o.clone()).ok());
    let observed = stored
        .as_ref()
        .and_then(|s| ObservedCompute::as_declared(&s.spec));
    let mut info = ObjectInfo::of(ct);
    info.generation = Some(
        stored
            .as_ref()
            .and_then(|s| s.metadata.generation)
            .unwrap_or(0)
            + i64::from(spec_changed),
    );
    let d = compute_target::reconcile(compute_target::Input {
        info: &info,
        spec: &ct.spec,
        status: stored.as_ref().and_then(|s| s.status.as_ref()),
        workspace: WorkspaceState::Ready,
        observed: observed.as_ref(),
        operation: None,
        already_attached_by: None,
        in_cluster: false,
        local_jobs: false,
        kubernetes_compute_enabled: false,
        retry_after_stall: std::time::Duration::ZERO,
        now: jiff::Timestamp::now(),
    });
    let kind = ct.spec.kind().map(|k| k.type_name()).unwrap_or("?");
    let name = compute_target::azure_name(&info, &ct.spec);
    let mut lines: Vec<String> = d
        .actions
        .iter()
        .filter_map(|action| match action {
            ComputeAction::Create if ct.spec.aml_compute.is_some() => {
                Some(format!("Azure: create {kind} compute {name:?}"))
            }
            ComputeAction::Create => Some(format!("Azure: attach {kind} compute {name:?}")),
            ComputeAction::UpdateScale(s) => Some(format!(
                "Azure: update {kind} compute {name:?} in place: {}..{} nodes, idle {}s before scale-down",
                s.min_nodes, s.max_nodes, s.idle_seconds
            )),
            ComputeAction::Delete { detach: true } => {
                Some(format!("Azure: detach {kind} compute {name:?}"))
            }
            ComputeAction::Delete { detach: false } => {
                Some(format!("Azure: delete {kind} compute {name:?}"))
            }
            ComputeAction::ReleaseFinalizer => None,
        })
        .collect();
    if let Some(c) = conditions::find(&d.status.conditions, conditions::STALLED)
        .filter(|_| conditions::is_true(&d.status.conditions, conditions::STALLED))
    {
        lines.push(format!("refused: {}: {}", c.reason, c.message));
    }
    lines
}

fn content_changed(doc: &Document, stored: &Value) -> bool {
    store::change(&doc.key.kind, stored, &doc.object) == Change::Content
}

/// Whether the ConfigMap the Experiment snapshots is among `docs` with new content (or is
/// created anew): the store gives the Experiment a new generation for it.
fn config_map_changed(
    doc: &Document,
    docs: &[Document],
    store: &Store,
) -> Result<bool, StoreError> {
    let Some(name) = doc
        .object
        .pointer("/spec/source/configMap/name")
        .and_then(Value::as_str)
    else {
        return Ok(false);
    };
    let key = doc.key.sibling("ConfigMap", name);
    let Some(new) = docs.iter().find(|d| d.key == key) else {
        return Ok(false);
    };
    Ok(store
        .get(&key)?
        .is_none_or(|stored| content_changed(new, &stored)))
}

/// What new content in a Secret or ConfigMap sets off among the stored objects.
fn dependants(doc: &Document, store: &Store) -> Result<Vec<String>, StoreError> {
    let name = doc.key.name.as_str();
    let same_namespace = |kind| -> Result<Vec<(Key, Value)>, StoreError> {
        Ok(store
            .list(Some(kind))?
            .into_iter()
            .filter(|(k, _)| k.namespace == doc.key.namespace)
            .collect())
    };
    let mut lines = vec!["data changed".to_string()];
    if doc.key.kind == "ConfigMap" {
        for (k, _) in same_namespace("Experiment")?
            .into_iter()
            .filter(|(_, e)| store::snapshots_config_map(e, name))
        {
            lines.push(format!(
                "Experiment {:?} snapshots it: new generation, new run",
                k.name
            ));
        }
    } else {
        for (k, _) in same_namespace("RunConfiguration")?
            .into_iter()
            .filter(|(_, rc)| {
                rc.pointer("/spec/docker/registry/passwordSecretRef/name")
                    .and_then(Value::as_str)
                    == Some(name)
            })
        {
            lines.push(format!(
                "RunConfiguration {:?} writes its registry connection again when applied",
                k.name
            ));
        }
    }
    Ok(lines)
}

/// Whether the Experiment's RunConfiguration is neither in these manifests nor stored.
fn rc_missing(doc: &Document, docs: &[Document], store: &Store) -> Result<bool, StoreError> {
    let name = doc.object["spec"]["runConfigurationRef"]["name"]
        .as_str()
        .unwrap_or_default();
    let key = doc.key.sibling("RunConfiguration", name);
    Ok(!docs.iter().any(|d| d.key == key) && store.get(&key)?.is_none())
}

/// Whether the RunConfiguration's runs go to Azure: run-based amlCompute, or a ComputeTarget
/// (from these manifests, else the store) that is not local.
fn runs_in_azure(
    rc: &RunConfiguration,
    doc: &Document,
    docs: &[Document],
    store: &Store,
) -> Result<bool, StoreError> {
    let Some(target) = &rc.spec.target_ref else {
        return Ok(true);
    };
    let key = doc.key.sibling("ComputeTarget", &target.name);
    let ct = match docs.iter().find(|d| d.key == key) {
        Some(d) => Some(d.object.clone()),
        None => store.get(&key)?,
    };
    Ok(ct.is_some_and(|ct| is_azure_compute(&ct)))
}

fn short(version: &str) -> &str {
    &version[..version.len().min(12)]
}

fn describe_plan(plan: &EnvironmentPlan) -> String {
    match plan {
        EnvironmentPlan::UserManaged { interpreter, .. } => {
            format!("user-managed: {interpreter} as is")
        }
        EnvironmentPlan::SystemManaged {
            conda_packages,
            pip_packages,
            ..
        } => {
            format!(
                "system-managed: {} conda and {} pip packages",
                conda_packages.len(),
                pip_packages.len()
            )
        }
        EnvironmentPlan::Existing { name, version } => format!("{name}:{version}"),
    }
}

fn source_summary(object: &Value) -> String {
    let s = &object["spec"]["source"];
    if let Some(p) = s["localPath"].as_str() {
        format!("local directory {p}")
    } else if let Some(u) = s["git"]["url"].as_str() {
        format!(
            "git {u}@{}",
            s["git"]["revision"].as_str().unwrap_or("default branch")
        )
    } else if let Some(c) = s["configMap"]["name"].as_str() {
        format!("ConfigMap {c}")
    } else {
        "inline files".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cluster(vm_size: &str, max_nodes: i32) -> Value {
        json!({"apiVersion": "amlops.io/v1alpha1", "kind": "ComputeTarget",
               "metadata": {"name": "cpu", "namespace": "default", "generation": 1, "uid": "u1"},
               "spec": {"workspaceRef": {"name": "ml"},
                        "amlCompute": {"vmSize": vm_size, "minNodes": 0, "maxNodes": max_nodes}}})
    }

    fn plan(new: &Value, old: Option<&Value>) -> Vec<String> {
        let ct: ComputeTarget = serde_json::from_value(new.clone()).unwrap();
        compute_effects(&ct, old, old.is_none_or(|o| o["spec"] != new["spec"]))
    }

    #[test]
    fn compute_plans_are_what_the_reconciler_decides() {
        let stored = cluster("STANDARD_D2_V2", 2);
        assert_eq!(
            plan(&stored, None),
            ["Azure: create AmlCompute compute \"cpu\""]
        );
        assert!(plan(&stored, Some(&stored)).is_empty());
        let scaled = plan(&cluster("STANDARD_D2_V2", 4), Some(&stored));
        assert_eq!(scaled.len(), 1, "{scaled:?}");
        assert!(scaled[0].contains("in place: 0..4 nodes"), "{scaled:?}");
        // The reconciler refuses a new VM size on an existing cluster; plan says so rather
        // than promising an update.
        let resized = plan(&cluster("STANDARD_NC6", 2), Some(&stored));
        assert_eq!(resized.len(), 1, "{resized:?}");
        assert!(
            resized[0].starts_with("refused: RecreateRequired"),
            "{resized:?}"
        );
    }
}
