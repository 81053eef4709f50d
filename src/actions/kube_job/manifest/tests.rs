use serde_json::{Value, json};

use super::*;
use crate::actions::kube_job::fixtures::Inputs;

fn job_json(inputs: &Inputs) -> Value {
    serde_json::to_value(job(&inputs.run()).unwrap()).unwrap()
}

fn plain() -> Inputs {
    Inputs::new(json!({}), json!({}))
}

fn env(container: &Value) -> BTreeMap<String, Value> {
    container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let value = e
                .get("value")
                .cloned()
                .unwrap_or_else(|| e["valueFrom"].clone());
            (e["name"].as_str().unwrap().to_string(), value)
        })
        .collect()
}

/// The checks of the Pod Security `restricted` profile that a pod spec can fail.
fn assert_restricted(pod: &Value) {
    let sc = &pod["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_ne!(sc["runAsUser"], 0);
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    for c in pod["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .chain(pod["containers"].as_array().unwrap())
    {
        let csc = &c["securityContext"];
        assert_eq!(csc["allowPrivilegeEscalation"], false, "{}", c["name"]);
        assert_eq!(csc["capabilities"]["drop"], json!(["ALL"]), "{}", c["name"]);
        assert!(csc.get("privileged").is_none() && csc.get("runAsUser").is_none());
        assert!(c.get("ports").is_none_or(|p| {
            p.as_array()
                .unwrap()
                .iter()
                .all(|p| p.get("hostPort").is_none())
        }));
    }
    for v in pod["volumes"].as_array().unwrap() {
        let kinds: Vec<&String> = v
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| *k != "name")
            .collect();
        assert!(
            kinds
                .iter()
                .all(|k| ["configMap", "emptyDir", "persistentVolumeClaim"].contains(&k.as_str())),
            "volume {v} is not allowed under restricted"
        );
    }
    assert!(pod.get("hostNetwork").is_none() && pod.get("hostPID").is_none());
}

#[test]
fn a_run_is_one_restricted_pod_owned_by_its_experiment_that_is_never_retried() {
    let j = job_json(&plain());
    assert_eq!(j["metadata"]["name"], "train-2-0123456789");
    assert_eq!(j["metadata"]["namespace"], "ml");
    assert_eq!(
        j["metadata"]["ownerReferences"],
        json!([{"apiVersion": "amlops.io/v1alpha1", "kind": "Experiment", "name": "train",
                "uid": "0b7c2d4e-1111-2222-3333-444455556666", "controller": true, "blockOwnerDeletion": true}])
    );
    assert_eq!(
        j["metadata"]["labels"],
        json!({"app.kubernetes.io/managed-by": "amlops", "amlops.io/experiment": "train",
               "amlops.io/run-id": "train-2-0123456789"})
    );
    assert_eq!(
        j["metadata"]["annotations"]["amlops.io/snapshot-id"],
        "5f1e"
    );
    assert_eq!(
        j["metadata"]["annotations"]["amlops.io/run-id"],
        "train-2-0123456789"
    );
    let spec = &j["spec"];
    assert_eq!(
        (
            &spec["backoffLimit"],
            &spec["completions"],
            &spec["parallelism"],
            &spec["suspend"]
        ),
        (&json!(0), &json!(1), &json!(1), &json!(false))
    );
    assert!(
        spec.get("activeDeadlineSeconds").is_none()
            && spec.get("ttlSecondsAfterFinished").is_none()
    );
    assert_eq!(
        spec["template"]["metadata"]["labels"],
        j["metadata"]["labels"]
    );
    let pod = &spec["template"]["spec"];
    assert_restricted(pod);
    assert_eq!(pod["securityContext"]["runAsUser"], 1000);
    assert_eq!(pod["securityContext"]["fsGroup"], 1000);
    assert_eq!(pod["restartPolicy"], "Never");
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert!(pod.get("serviceAccountName").is_none());
    assert_eq!(pod["enableServiceLinks"], false);
    let volumes = pod["volumes"].as_array().unwrap();
    assert_eq!(volumes[0]["configMap"]["name"], "train-2-0123456789");
    assert_eq!(volumes[3], json!({"name": "cache", "emptyDir": {}}));
    for c in pod["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .chain(pod["containers"].as_array().unwrap())
    {
        assert_eq!(c["image"], DEFAULT_IMAGE);
        assert_eq!(c["terminationMessagePolicy"], "FallbackToLogsOnError");
        assert!(c.get("resources").is_none());
    }
}

#[test]
fn the_run_container_gets_the_command_and_what_a_laptop_run_gets() {
    let j = job_json(&plain());
    let run = &j["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(run["name"], RUN_CONTAINER);
    assert_eq!(run["args"], json!(["train.py", "--epochs", "3"]));
    assert_eq!(run["command"][3], "amlops-run");
    assert_eq!(run["workingDir"], "/amlops/workspace");
    let vars = env(run);
    assert_eq!(
        vars["AZUREML_RUN_ID"], "train-2-0123456789",
        "amlops' own id wins over the user's"
    );
    assert_eq!(vars["AZUREML_EXPERIMENT_NAME"], "train");
    assert_eq!(vars["AZUREML_ARM_PROJECT_NAME"], "train");
    assert_eq!(vars["LEARNING_RATE"], "0.1");
    assert_eq!(vars["PYTHONUNBUFFERED"], "1");
    assert_eq!(vars["HOME"], "/amlops/home");
    assert_eq!(vars["AMLOPS_COMMAND"], "script");
    assert_eq!(vars["AMLOPS_PYTHON"], "python3");
    assert_eq!(vars["AMLOPS_REQUIREMENTS"], "scikit-learn==1.5.0");
    assert_eq!(vars["AMLOPS_ENVS"], "/amlops/cache/envs");
    assert_eq!(
        vars[POD_NAME_VAR],
        json!({"fieldRef": {"fieldPath": "metadata.name"}})
    );
    assert!(
        !vars.contains_key("PIP_CACHE_DIR"),
        "pip caches in HOME without a cache claim"
    );
    let mounts: Vec<&str> = run["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    assert_eq!(
        mounts,
        ["/amlops/workspace", "/amlops/home", "/amlops/cache"]
    );

    let unpack = &j["spec"]["template"]["spec"]["initContainers"][0];
    assert_eq!(unpack["name"], UNPACK_CONTAINER);
    assert_eq!(
        env(unpack)["AMLOPS_ARCHIVE"],
        "/amlops/snapshot/source.tar.gz"
    );
    assert_eq!(
        unpack["volumeMounts"][0],
        json!({"name": "snapshot", "mountPath": "/amlops/snapshot", "readOnly": true})
    );

    let mut shell = plain();
    shell.experiment.script = None;
    shell.experiment.arguments.clear();
    shell.experiment.command = Some("python train.py && echo done".into());
    shell.experiment.experiment_name = Some("mnist".into());
    let j = job_json(&shell);
    let run = &j["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(run["args"], json!(["python train.py && echo done"]));
    assert_eq!(env(run)["AMLOPS_COMMAND"], "shell");
    assert_eq!(env(run)["AZUREML_EXPERIMENT_NAME"], "mnist");
}

#[test]
fn the_target_places_and_sizes_the_pod() {
    let inputs = Inputs::new(
        json!({"maxRunDurationSeconds": 3600}),
        json!({
            "resources": {"requests": {"cpu": 2, "memory": "8Gi"}, "limits": {"memory": "16Gi", "nvidia.com/gpu": 1}},
            "nodeSelector": {"agentpool": "gpu"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "serviceAccountName": "trainer",
            "priorityClassName": "batch-low",
            "ttlSecondsAfterFinished": 86400,
            "imagePullSecrets": [{"name": "registry"}],
            "cachePersistentVolumeClaim": "ml-cache"
        }),
    );
    let j = job_json(&inputs);
    assert_eq!(j["spec"]["activeDeadlineSeconds"], 3600);
    assert_eq!(j["spec"]["ttlSecondsAfterFinished"], 86400);
    let pod = &j["spec"]["template"]["spec"];
    assert_restricted(pod);
    assert_eq!(pod["serviceAccountName"], "trainer");
    assert!(
        pod.get("automountServiceAccountToken").is_none(),
        "a named ServiceAccount decides itself"
    );
    assert_eq!(pod["priorityClassName"], "batch-low");
    assert_eq!(pod["nodeSelector"], json!({"agentpool": "gpu"}));
    assert_eq!(
        pod["tolerations"],
        json!([{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}])
    );
    assert_eq!(pod["imagePullSecrets"], json!([{"name": "registry"}]));
    assert_eq!(
        pod["volumes"][3],
        json!({"name": "cache", "persistentVolumeClaim": {"claimName": "ml-cache"}})
    );
    assert_eq!(
        pod["containers"][0]["resources"],
        json!({"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"memory": "16Gi", "nvidia.com/gpu": "1"}})
    );
    assert_eq!(
        pod["initContainers"][0]["resources"],
        json!({"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"memory": "16Gi"}}),
        "GPUs stay with the run container"
    );
    assert_eq!(
        env(&pod["containers"][0])["PIP_CACHE_DIR"],
        "/amlops/cache/pip"
    );
}

#[test]
fn a_queued_or_suspended_run_is_created_suspended_and_a_queue_is_labelled() {
    let queued = Inputs::new(json!({}), json!({"queueName": "team-gpu"}));
    let j = job_json(&queued);
    assert_eq!(j["spec"]["suspend"], true);
    assert_eq!(
        j["metadata"]["labels"]["kueue.x-k8s.io/queue-name"],
        "team-gpu"
    );
    assert!(
        j["spec"]["template"]["metadata"]["labels"]
            .get("kueue.x-k8s.io/queue-name")
            .is_none()
    );
    let mut suspended = plain();
    suspended.experiment.suspend = true;
    let j = job_json(&suspended);
    assert_eq!(j["spec"]["suspend"], true);
    assert!(
        j["metadata"]["labels"]
            .get("kueue.x-k8s.io/queue-name")
            .is_none()
    );
}

#[test]
fn the_image_is_the_run_configurations_then_the_targets_then_one_of_the_python_version() {
    let image = |rc: Value, target: Value| {
        let inputs = Inputs::new(rc, target);
        image(&inputs.run())
    };
    let versioned = json!({"environment": {"condaDependencies": {"pythonVersion": "3.11", "pipPackages": ["numpy"]}}});
    assert_eq!(image(json!({}), json!({})), "python:3.12-slim");
    assert_eq!(image(versioned.clone(), json!({})), "python:3.11-slim");
    assert_eq!(
        image(
            versioned.clone(),
            json!({"image": "registry.example.com/py:1"})
        ),
        "registry.example.com/py:1"
    );
    let mut with_docker = versioned;
    with_docker["docker"] = json!({"baseImage": "mambaorg/micromamba:2.0"});
    assert_eq!(
        image(with_docker, json!({"image": "registry.example.com/py:1"})),
        "mambaorg/micromamba:2.0"
    );
}

#[test]
fn an_environment_is_keyed_by_its_content_and_the_image() {
    let key = |target: Value| {
        let j = job_json(&Inputs::new(json!({}), target));
        env(&j["spec"]["template"]["spec"]["containers"][0])["AMLOPS_ENV_KEY"].clone()
    };
    assert_eq!(key(json!({})), key(json!({})));
    assert_ne!(
        key(json!({})),
        key(json!({"image": "python:3.12-bookworm"}))
    );
    let user = Inputs::new(
        json!({"environment": {"userManaged": {"interpreterPath": "/opt/venv/bin/python"}}}),
        json!({}),
    );
    let j = job_json(&user);
    let vars = env(&j["spec"]["template"]["spec"]["containers"][0]);
    assert_eq!(vars["AMLOPS_PYTHON"], "/opt/venv/bin/python");
    assert!(
        !vars.contains_key("AMLOPS_ENV_KEY"),
        "a user-managed interpreter is run as it is"
    );
    assert_eq!(
        env(&j["spec"]["template"]["spec"]["initContainers"][0])["AMLOPS_PYTHON"],
        "/opt/venv/bin/python"
    );
}

#[test]
fn what_a_cluster_run_cannot_do_is_refused_with_a_named_reason() {
    let refused = |inputs: Inputs| job(&inputs.run()).unwrap_err();
    let e = refused(Inputs::new(json!({"nodeCount": 2}), json!({})));
    assert_eq!(
        (e.reason.as_str(), e.retryable()),
        ("MultiNodeNotSupported", false)
    );
    assert!(e.message.contains("nodeCount 2"));
    let e = refused(Inputs::new(
        json!({"environment": {"existing": {"name": "AzureML-sklearn", "version": "1"}}}),
        json!({}),
    ));
    assert_eq!(e.reason, "UnsupportedEnvironment");
    let conda = json!({"environment": {"condaDependencies": {"condaPackages": ["python=3.11", "numpy"], "pipPackages": ["x"]}}});
    let e = refused(Inputs::new(conda.clone(), json!({})));
    assert_eq!(e.reason, "CondaPackagesNeedMicromamba");
    assert!(
        e.message.contains("[numpy]") && e.message.contains("python:3.12-slim"),
        "{}",
        e.message
    );
    // A declared image is trusted to have micromamba; the run script checks.
    let ok = job_json(&Inputs::new(
        conda,
        json!({"image": "mambaorg/micromamba:2.0"}),
    ));
    assert_eq!(
        env(&ok["spec"]["template"]["spec"]["containers"][0])["AMLOPS_CONDA_ONLY"],
        "numpy"
    );
    let mut nothing = plain();
    nothing.experiment.script = None;
    assert_eq!(refused(nothing).reason, "InvalidSpec");
}

#[test]
fn the_config_maps_owner_moves_to_the_job_once_it_has_a_uid() {
    let mut j = job(&plain().run()).unwrap();
    assert_eq!(
        job_owner(&j),
        None,
        "no uid before the API server assigns one"
    );
    j.metadata.uid = Some("job-uid".into());
    let owner = job_owner(&j).unwrap();
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("Job", "job-uid", Some(true))
    );
    assert_eq!(owner.block_owner_deletion, None);
}
