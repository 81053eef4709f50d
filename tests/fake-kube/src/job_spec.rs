//! The apiserver's rules for batch/v1 Job objects: defaults, the generated selector and pod
//! labels, and the validation a client runs into (pkg/registry/batch/job/strategy.go,
//! pkg/apis/batch/v1/defaults.go, pkg/apis/batch/validation).

use serde_json::{Map, Value, json};

use crate::store::ApiError;
use crate::strategy::invalid;

/// Labels the apiserver puts on every Job's pod template (`generateSelector`): the legacy and
/// the `batch.kubernetes.io/` forms of the job name and the Job's uid.
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
pub const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
const LEGACY_JOB_NAME_LABEL: &str = "job-name";
const LEGACY_CONTROLLER_UID_LABEL: &str = "controller-uid";

/// Label values are at most 63 characters (IsValidLabelValue), and the job name is one.
const MAX_LABEL_VALUE: usize = 63;

fn name_of(obj: &Value) -> String {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn set_default(spec: &mut Map<String, Value>, field: &str, value: Value) {
    spec.entry(field).or_insert(value);
}

/// SetDefaults_Job and the container defaults the fake relies on. The apiserver defaults every
/// object it decodes, updates included, so a client re-sending its own manifest (an apply
/// without the defaulted fields) changes nothing.
fn apply_defaults(obj: &mut Value) {
    if let Some(spec) = obj["spec"].as_object_mut() {
        if !spec.contains_key("completions") && !spec.contains_key("parallelism") {
            spec.insert("completions".into(), json!(1));
        }
        set_default(spec, "parallelism", json!(1));
        set_default(spec, "backoffLimit", json!(6));
        set_default(spec, "completionMode", json!("NonIndexed"));
        set_default(spec, "suspend", json!(false));
        set_default(spec, "manualSelector", json!(false));
        let replacement = if spec.contains_key("podFailurePolicy") {
            "Failed"
        } else {
            "TerminatingOrFailed"
        };
        set_default(spec, "podReplacementPolicy", json!(replacement));
    }
    default_containers(obj);
}

/// Defaults, generated selector and template labels (generateSelector), then the validation a
/// Job needs before it is stored. `obj.metadata.uid` is already set.
pub fn prepare_create(obj: &mut Value) -> Result<(), ApiError> {
    let name = name_of(obj);
    let uid = obj
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if !obj["spec"].is_object() {
        return Err(invalid("Job.batch", &name, "spec: Required value"));
    }
    let manual_selector = obj.pointer("/spec/manualSelector") == Some(&json!(true));
    apply_defaults(obj);
    if !manual_selector {
        let labels = &mut obj["spec"]["template"]["metadata"]["labels"];
        if !labels.is_object() {
            *labels = json!({});
        }
        for (label, value) in [
            (LEGACY_JOB_NAME_LABEL, &name),
            (JOB_NAME_LABEL, &name),
            (LEGACY_CONTROLLER_UID_LABEL, &uid),
            (CONTROLLER_UID_LABEL, &uid),
        ] {
            if labels.get(label).is_none() {
                labels[label] = json!(value);
            }
        }
        let matching = &mut obj["spec"]["selector"]["matchLabels"];
        if matching.get(CONTROLLER_UID_LABEL).is_none() {
            matching[CONTROLLER_UID_LABEL] = json!(uid);
        }
    }
    // A Job without labels takes its template's (SetDefaults_Job, applied again on every read,
    // which is why stored Jobs show the generated labels too).
    let has_labels = obj
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .is_some_and(|l| !l.is_empty());
    if !has_labels {
        obj["metadata"]["labels"] = obj["spec"]["template"]["metadata"]["labels"].clone();
    }
    validate(obj, &name)
}

/// SetDefaults_Container, the part the fake relies on: where and how the kubelet reads the
/// termination message.
fn default_containers(obj: &mut Value) {
    for list in ["containers", "initContainers"] {
        let Some(containers) = obj["spec"]["template"]["spec"]
            .get_mut(list)
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for c in containers.iter_mut().filter_map(Value::as_object_mut) {
            set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
            set_default(c, "terminationMessagePolicy", json!("File"));
        }
    }
}

fn validate(obj: &Value, name: &str) -> Result<(), ApiError> {
    let pod = &obj["spec"]["template"]["spec"];
    if pod["containers"].as_array().is_none_or(Vec::is_empty) {
        return Err(invalid(
            "Job.batch",
            name,
            "spec.template.spec.containers: Required value",
        ));
    }
    // A pod template defaults restartPolicy to Always, which a Job refuses.
    let restart = pod["restartPolicy"].as_str().unwrap_or("Always");
    if restart != "Never" && restart != "OnFailure" {
        return Err(invalid(
            "Job.batch",
            name,
            format!(
                "spec.template.spec.restartPolicy: Unsupported value: {restart:?}: supported values: \"OnFailure\", \"Never\""
            ),
        ));
    }
    if name.len() > MAX_LABEL_VALUE {
        return Err(invalid(
            "Job.batch",
            name,
            format!(
                "spec.template.labels: Invalid value: {name:?}: must be no more than {MAX_LABEL_VALUE} characters (the job name is the {JOB_NAME_LABEL} label of its pods)"
            ),
        ));
    }
    Ok(())
}

/// Pod template fields that may change while a Job is suspended and has never started
/// (`AllowMutableSchedulingDirectives`, what Kueue relies on to place a Job it admits).
const SCHEDULING_DIRECTIVES: [&str; 4] =
    ["nodeSelector", "affinity", "tolerations", "schedulingGates"];

fn without_scheduling_directives(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(spec) = t.get_mut("spec").and_then(Value::as_object_mut) {
        for f in SCHEDULING_DIRECTIVES {
            spec.remove(f);
        }
    }
    if let Some(meta) = t.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("labels");
        meta.remove("annotations");
    }
    t
}

/// Defaults the new version, then ValidateJobSpecUpdate: the selector, completion mode and pod
/// template are immutable, except the scheduling directives of a suspended Job that never
/// started.
pub fn prepare_update(old: &Value, new: &mut Value) -> Result<(), ApiError> {
    apply_defaults(new);
    let name = name_of(old);
    validate(new, &name)?;
    for field in ["selector", "completionMode"] {
        if old["spec"].get(field) != new["spec"].get(field) {
            return Err(invalid(
                "Job.batch",
                &name,
                format!("spec.{field}: Invalid value: field is immutable"),
            ));
        }
    }
    let (was, is) = (&old["spec"]["template"], &new["spec"]["template"]);
    if was == is {
        return Ok(());
    }
    let suspended = old.pointer("/spec/suspend") == Some(&json!(true));
    let never_started = old.pointer("/status/startTime").is_none_or(Value::is_null);
    if suspended
        && never_started
        && without_scheduling_directives(was) == without_scheduling_directives(is)
    {
        return Ok(());
    }
    Err(invalid(
        "Job.batch",
        &name,
        "spec.template: Invalid value: field is immutable",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(name: &str) -> Value {
        json!({"apiVersion": "batch/v1", "kind": "Job",
               "metadata": {"name": name, "uid": "u-1", "labels": {"kueue.x-k8s.io/queue-name": "q"}},
               "spec": {"suspend": true, "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "python"}]}}}})
    }

    #[test]
    fn create_defaults_the_spec_and_generates_the_selector() {
        let mut j = job("run-1");
        prepare_create(&mut j).unwrap();
        let spec = &j["spec"];
        assert_eq!(spec["backoffLimit"], 6);
        assert_eq!(spec["completions"], 1);
        assert_eq!(spec["parallelism"], 1);
        assert_eq!(spec["suspend"], true, "an explicit suspend stays");
        assert_eq!(spec["selector"]["matchLabels"][CONTROLLER_UID_LABEL], "u-1");
        let labels = &spec["template"]["metadata"]["labels"];
        assert_eq!(labels[JOB_NAME_LABEL], "run-1");
        assert_eq!(labels["job-name"], "run-1");
        assert_eq!(labels["controller-uid"], "u-1");
        assert_eq!(
            j["metadata"]["labels"],
            json!({"kueue.x-k8s.io/queue-name": "q"}),
            "a Job with labels keeps its own"
        );
        assert_eq!(
            spec["template"]["spec"]["containers"][0]["terminationMessagePolicy"],
            "File"
        );
    }

    #[test]
    fn create_refuses_what_the_apiserver_refuses() {
        let mut always = job("run-1");
        always["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
        let e = prepare_create(&mut always).unwrap_err();
        assert_eq!(e.code, 422);
        assert!(e.message.contains("restartPolicy"), "{}", e.message);
        let long = "r".repeat(64);
        let e = prepare_create(&mut job(&long)).unwrap_err();
        assert!(e.message.contains("63 characters"), "{}", e.message);
        let mut empty = job("run-1");
        empty["spec"]["template"]["spec"]["containers"] = json!([]);
        assert!(
            prepare_create(&mut empty)
                .unwrap_err()
                .message
                .contains("containers")
        );
    }

    #[test]
    fn the_template_is_immutable_except_placement_while_suspended_and_never_started() {
        let mut old = job("run-1");
        prepare_create(&mut old).unwrap();
        let mut placed = old.clone();
        placed["spec"]["template"]["spec"]["nodeSelector"] = json!({"gpu": "a100"});
        prepare_update(&old, &mut placed).unwrap();
        let mut started = old.clone();
        started["status"]["startTime"] = json!("2026-01-01T00:00:00Z");
        assert_eq!(prepare_update(&started, &mut placed).unwrap_err().code, 422);
        let mut image = old.clone();
        image["spec"]["template"]["spec"]["containers"][0]["image"] = json!("other");
        let e = prepare_update(&old, &mut image).unwrap_err();
        assert!(e.message.contains("spec.template"), "{}", e.message);
        let mut resumed = old.clone();
        resumed["spec"]["suspend"] = json!(false);
        prepare_update(&old, &mut resumed).unwrap();
        let mut reapplied = old.clone();
        let main = &mut reapplied["spec"]["template"]["spec"]["containers"][0];
        main.as_object_mut()
            .unwrap()
            .remove("terminationMessagePolicy");
        prepare_update(&old, &mut reapplied).expect("re-sending the manifest changes nothing");
    }
}
