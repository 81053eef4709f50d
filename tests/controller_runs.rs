//! Scenarios: RunConfiguration + Experiment through the real controllers, against fake-kube,
//! fake-azureml and Azurite (the blob storage startPendingUpload hands out).

mod controller_support;

use std::sync::Arc;
use std::time::Duration;

use amlops::actions::code;
use amlops::azure::http::HttpOptions;
use amlops::azure::{
    ArmClient, ArmConfig, CredentialSource, Endpoints, Secret, WorkspaceClient, WorkspaceRef,
};
use controller_support::*;
use fake_azureml::azurite::Azurite;
use serde_json::{Value, json};

const TRAIN: &str = "import sys\nprint('training', sys.argv[1:])\n";
const UTILS: &str = "def helper():\n    return 42\n";

async fn start() -> (Env, Azurite) {
    let azurite = Azurite::start();
    let options = fake_azureml::Options {
        job_phase_delay: Duration::from_millis(100),
        storage: Some(azurite.storage_backend()),
        ..fast_azure()
    };
    (Env::start(options).await, azurite)
}

fn run_configuration(env: &Env, name: &str, spec: Value) {
    env.kube
        .create(json!({"apiVersion": AMLOPS, "kind": "RunConfiguration", "metadata": {"name": name, "namespace": NS}, "spec": spec}))
        .unwrap();
}

fn conda_rc(target: Value) -> Value {
    let mut spec = json!({
        "environment": {"condaDependencies": {"pythonVersion": "3.11", "pipPackages": ["scikit-learn==1.5.2"]}},
        "maxRunDurationSeconds": 600,
        "environmentVariables": {"MODE": "test"},
    });
    if let (Some(s), Some(t)) = (spec.as_object_mut(), target.as_object()) {
        s.extend(t.clone());
    }
    spec
}

fn experiment(env: &Env, name: &str, rc: &str, source: Value, tags: Value) {
    env.kube
        .create(json!({"apiVersion": AMLOPS, "kind": "Experiment", "metadata": {"name": name, "namespace": NS},
            "spec": {"runConfigurationRef": {"name": rc}, "source": source, "script": "train.py", "arguments": ["--epochs", "3"], "tags": tags}}))
        .unwrap();
}

fn inline() -> Value {
    json!({"inline": {"files": {"train.py": TRAIN, "utils.py": UTILS}}})
}

fn succeeded(o: &Value) -> bool {
    has_reason(o, "Succeeded", "Completed")
}

fn failed(o: &Value) -> bool {
    condition(o, "Failed").is_some_and(|(s, _)| s == "True")
}

/// A Workspace, a Ready amlCompute target and a Ready conda RunConfiguration `rc`.
async fn ready_target(env: &Env) {
    env.workspace("ws", "ws1", None);
    env.compute_target("cpu", aml(0, 2));
    run_configuration(env, "rc", conda_rc(json!({"targetRef": {"name": "cpu"}})));
    env.wait_for("RunConfiguration", "rc", 60, is_ready).await;
}

/// Blob PUTs (bytes of blocks/blobs sent) into snapshot folders, from Azurite's access log.
fn snapshot_blob_puts(azurite: &Azurite) -> Vec<String> {
    azurite
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT" && r.path.contains("/LocalUpload/"))
        .map(|r| r.path)
        .collect()
}

fn arm_writes_of(env: &Env, method: &str, path: &str) -> usize {
    env.azure.count(method, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn experiment_succeeds_resync_is_free_and_a_spec_change_runs_again() {
    let (env, azurite) = start().await;
    ready_target(&env).await;
    let rc = env.get("RunConfiguration", "rc").unwrap();
    let staged = &rc["status"]["environment"];
    assert!(
        staged["condaFile"]
            .as_str()
            .unwrap()
            .contains("scikit-learn")
    );
    assert_eq!(staged["version"].as_str().unwrap().len(), 32);
    assert_eq!(env.azure.count("PUT", "/environments/"), 1);

    env.azure.reset();
    experiment(&env, "train", "rc", inline(), json!({"team": "vision"}));
    let exp = env.wait_for("Experiment", "train", 90, succeeded).await;
    let calls_to_success = env.azure.counters();
    let uploaded: Vec<String> = snapshot_blob_puts(&azurite);
    let bytes = (TRAIN.len() + UTILS.len()) as u64;
    eprintln!(
        "apply -> Succeeded: {} ARM requests {calls_to_success:#?}; {} snapshot blobs ({bytes} bytes) uploaded",
        env.azure.requests().len(),
        uploaded.len()
    );
    assert_eq!(uploaded.len(), 2, "{uploaded:#?}");

    let run = &exp["status"]["currentRun"];
    assert_eq!(run["state"], "Completed");
    assert!(run["id"].as_str().unwrap().starts_with("train-1-"));
    assert!(
        run["studioUrl"]
            .as_str()
            .unwrap()
            .starts_with("https://ml.azure.com/runs/")
    );
    assert_eq!(run["snapshotId"].as_str().unwrap().len(), 64);
    assert!(run["startedAt"].is_string() && run["finishedAt"].is_string());
    assert!(is_ready(&exp));
    assert_eq!(exp["metadata"]["finalizers"], json!(["amlops.io/cleanup"]));
    assert_eq!(arm_writes_of(&env, "PUT", "/jobs/"), 1);
    for reason in ["Submitted", "Started", "Completed"] {
        env.wait_for_event("train", "Normal", reason, 10).await;
    }

    // The job body as Azure got it.
    let job_path = format!("/jobs/{}", run["id"].as_str().unwrap());
    let job = env
        .azure
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT" && r.path.ends_with(&job_path));
    assert!(job.is_some());

    // An unchanged resync: one GET of the job, no writes anywhere.
    env.azure.reset();
    let before = env.get("Experiment", "train").unwrap();
    env.kube
        .merge_patch(
            AMLOPS,
            "Experiment",
            NS,
            "train",
            json!({"metadata": {"annotations": {"example.com/touch": "1"}}}),
        )
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while env.azure.count("GET", &job_path) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no resync GET of the job"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(env.arm_writes(), 0, "{:#?}", env.azure.requests());
    let after = env.get("Experiment", "train").unwrap();
    assert_eq!(before["status"], after["status"]);

    // A new generation: a second run, the first in the history; one changed file uploads one blob.
    let first_id = run["id"].as_str().unwrap().to_string();
    env.azure.reset();
    let blobs_before = snapshot_blob_puts(&azurite).len();
    env.kube
        .merge_patch(
            AMLOPS,
            "Experiment",
            NS,
            "train",
            json!({"spec": {"source": {"inline": {"files": {"train.py": format!("{TRAIN}# v2\n")}}}}}),
        )
        .unwrap();
    let exp = env
        .wait_for("Experiment", "train", 90, |o| {
            succeeded(o) && o["status"]["currentRun"]["id"] != first_id.as_str()
        })
        .await;
    let resubmit_blobs = snapshot_blob_puts(&azurite).len() - blobs_before;
    eprintln!(
        "resubmission with one changed file: {} ARM requests {:#?}; {resubmit_blobs} snapshot blob(s) uploaded ({} bytes)",
        env.azure.requests().len(),
        env.azure.counters(),
        TRAIN.len() + 5
    );
    // The new snapshot folder gets the changed file uploaded and the unchanged one copied
    // server-side from the first folder (both are PUTs in Azurite's log; the snapshot_upload
    // tests tell them apart). A full re-upload would also rewrite the first folder.
    assert_eq!(resubmit_blobs, 2, "one upload + one server-side copy");
    let runs = exp["status"]["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["id"], first_id.as_str());
    assert_eq!(runs[0]["state"], "Completed");
    assert!(
        exp["status"]["currentRun"]["id"]
            .as_str()
            .unwrap()
            .starts_with("train-2-")
    );
    // The environment registered before the first run is not registered again.
    assert_eq!(arm_writes_of(&env, "PUT", "/environments/"), 0);
    assert_rbac_allows(&env);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_experiments_share_one_environment_and_a_failing_job_is_failed() {
    let (env, _azurite) = start().await;
    ready_target(&env).await;
    env.kube
        .create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "code", "namespace": NS},
            "data": {"train.py": TRAIN}}))
        .unwrap();
    experiment(
        &env,
        "good",
        "rc",
        json!({"configMap": {"name": "code"}}),
        json!({}),
    );
    experiment(
        &env,
        "bad",
        "rc",
        inline(),
        json!({"fake.outcome": "Failed"}),
    );
    let good = env.wait_for("Experiment", "good", 90, succeeded).await;
    let bad = env.wait_for("Experiment", "bad", 90, failed).await;
    assert_eq!(good["status"]["currentRun"]["state"], "Completed");
    let run = &bad["status"]["currentRun"];
    assert_eq!(run["state"], "Failed");
    // The specific code run history reports, the chain and the log tail in the message.
    assert_eq!(run["error"]["code"], "ScriptExecutionStreamAccessNotFound");
    let message = run["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("UserError/ScriptExecution.StreamAccess.NotFound: Error Code:"),
        "{message}"
    );
    assert!(
        message.contains("--- last lines of user_logs/std_log.txt ---\n"),
        "{message}"
    );
    assert!(
        run["startedAt"].is_string() && run["finishedAt"].is_string(),
        "{bad:#}"
    );
    assert_eq!(
        condition(&bad, "Stalled").unwrap().1,
        "ScriptExecutionStreamAccessNotFound"
    );
    assert!(!is_ready(&bad));
    env.wait_for_event("bad", "Warning", "Failed", 10).await;
    // The Warning carries the same (the apiserver's 1024-byte limit on notes holds).
    let note = env
        .events("bad")
        .into_iter()
        .find(|(t, r, _)| t == "Warning" && r == "Failed")
        .map(|(_, _, note)| note)
        .unwrap();
    assert!(
        note.contains("ScriptExecution.StreamAccess.NotFound") && note.len() <= 1024,
        "{note}"
    );
    assert_eq!(
        env.azure.count("PUT", "/environments/"),
        1,
        "one registration for both Experiments"
    );
    assert_eq!(env.azure.count("PUT", "/jobs/"), 2);
    assert_rbac_allows(&env);
}

fn arm_config(env: &Env) -> ArmConfig {
    ArmConfig {
        endpoints: Endpoints::new(&env.azure.arm_endpoint(), &env.azure.authority_host()).unwrap(),
        http: HttpOptions {
            extra_ca_pem: vec![env.azure.ca_pem()],
            use_ssl_cert_file: false,
            ..HttpOptions::default()
        },
        ..ArmConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_upload_before_submit_submits_once_and_uploads_nothing_again() {
    let (env, _azurite) = start().await;
    ready_target(&env).await;
    // What an operator that crashed right after the upload left behind: the snapshot uploaded
    // and registered as a code version, no job, no status.
    let source = amlops::snapshot::Source::Inline(
        [("train.py", TRAIN), ("utils.py", UTILS)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    let snapshot = code::take(source, Default::default()).await.unwrap();
    let arm = ArmClient::new(
        arm_config(&env),
        &CredentialSource::ServicePrincipal {
            tenant_id: "tenant-1".into(),
            client_id: "client-1".into(),
            client_secret: Secret::new(SP_SECRET),
        },
    )
    .unwrap();
    let client = WorkspaceClient::new(
        arm,
        WorkspaceRef {
            subscription_id: SUBSCRIPTION.into(),
            resource_group: "rg1".into(),
            workspace: "ws1".into(),
        },
    )
    .with_blob_endpoint(
        env.azure
            .blob_endpoint()
            .map(|u| url::Url::parse(&u).unwrap()),
    );
    let staged = code::stage(&client, Arc::new(snapshot)).await.unwrap();
    assert!(!staged.reused && staged.uploaded_bytes > 0);
    env.azure.reset();

    experiment(&env, "train", "rc", inline(), json!({}));
    let exp = env.wait_for("Experiment", "train", 90, succeeded).await;
    assert_eq!(env.azure.count("PUT", "/jobs/"), 1, "exactly one job");
    assert_eq!(env.azure.count("POST", "startPendingUpload"), 0);
    assert_eq!(
        env.azure.count("PUT", "/codes/"),
        0,
        "the code version is reused"
    );
    assert_eq!(
        exp["status"]["currentRun"]["snapshotId"],
        staged.snapshot_id.as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_running_experiment_cancels_the_job_then_releases() {
    let (env, _azurite) = start().await;
    ready_target(&env).await;
    experiment(
        &env,
        "long",
        "rc",
        inline(),
        json!({"fake.outcome": "Running"}),
    );
    env.wait_for("Experiment", "long", 90, |o| {
        has_reason(o, "Running", "Running")
    })
    .await;
    env.kube.delete(AMLOPS, "Experiment", NS, "long").unwrap();
    env.wait_gone("Experiment", "long", 60).await;
    assert_eq!(env.azure.count("POST", "/cancel"), 1);
    env.wait_for_event("long", "Normal", "Cancelling", 10).await;
    assert_rbac_allows(&env);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_based_compute_lives_exactly_as_long_as_its_run_even_when_it_fails() {
    let (env, _azurite) = start().await;
    env.workspace("ws", "ws1", None);
    run_configuration(
        &env,
        "burst",
        conda_rc(
            json!({"workspaceRef": {"name": "ws"}, "amlCompute": {"vmSize": "STANDARD_D2_V2", "maxNodes": 2}}),
        ),
    );
    env.wait_for("RunConfiguration", "burst", 60, is_ready)
        .await;
    experiment(&env, "ok", "burst", inline(), json!({}));
    experiment(
        &env,
        "boom",
        "burst",
        inline(),
        json!({"fake.outcome": "Failed"}),
    );
    let gone = |o: &Value| o["status"]["currentRun"].get("runBasedCompute").is_none();
    let ok = env
        .wait_for("Experiment", "ok", 120, |o| succeeded(o) && gone(o))
        .await;
    let boom = env
        .wait_for("Experiment", "boom", 120, |o| failed(o) && gone(o))
        .await;
    for exp in [&ok, &boom] {
        let name = exp["metadata"]["name"].as_str().unwrap();
        env.wait_for_event(name, "Normal", "CreatingCompute", 10)
            .await;
        env.wait_for_event(name, "Normal", "ComputeDeleted", 10)
            .await;
    }
    let compute_puts = env
        .azure
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT" && r.path.contains("/computes/amlr"))
        .count();
    let compute_deletes = env
        .azure
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE" && r.path.contains("/computes/amlr"))
        .count();
    assert_eq!((compute_puts, compute_deletes), (2, 2));
    assert_rbac_allows(&env);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_target_is_stalled_in_a_cluster_with_local_jobs_disabled() {
    let env = Env::start_with(fast_azure(), false).await;
    env.compute_target("laptop", json!({"local": {}}));
    run_configuration(
        &env,
        "rc",
        conda_rc(json!({"targetRef": {"name": "laptop"}})),
    );
    let rc = env
        .wait_for("RunConfiguration", "rc", 30, |o| {
            condition(o, "Stalled").is_some()
        })
        .await;
    assert_eq!(
        condition(&rc, "Stalled").unwrap().1,
        "LocalComputeNotAllowed"
    );
    assert_eq!(env.azure.count("PUT", "/environments/"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_registry_credentials_reach_azure_as_a_connection_and_nowhere_else() {
    const PASSWORD: &str = "registry-pass-7f3a";
    let env = Env::start(fast_azure()).await;
    env.workspace("ws", "ws1", None);
    let mut spec = conda_rc(json!({"workspaceRef": {"name": "ws"}}));
    spec["docker"] = json!({
        "baseImage": "private.example.io/train:1",
        "registry": {"address": "private.example.io", "username": "puller",
                     "passwordSecretRef": {"name": "registry", "key": "password"}},
    });
    run_configuration(&env, "private", spec);

    // The Secret is not there yet: Stalled, naming it; nothing is written to Azure.
    let rc = env
        .wait_for("RunConfiguration", "private", 30, |o| {
            has_reason(o, "Stalled", "SecretNotFound")
        })
        .await;
    assert!(rc["status"].to_string().contains("registry"), "{rc:#}");
    assert_eq!(env.azure.count("PUT", "/connections/"), 0);

    // It appears: the connection is written once with the password, then Ready.
    env.kube
        .create(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "registry", "namespace": NS}, "stringData": {"password": PASSWORD}}))
        .unwrap();
    let rc = env
        .wait_for("RunConfiguration", "private", 30, is_ready)
        .await;
    let name = rc["status"]["registryConnection"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(name.starts_with("amlops-registry-"), "{name}");
    let stored = env.azure.connections(&name);
    assert_eq!(stored.len(), 1, "{stored:#?}");
    let props = &stored[0]["properties"];
    assert_eq!(props["category"], "ContainerRegistry");
    assert_eq!(props["target"], "private.example.io");
    assert_eq!(props["credentials"]["username"], "puller");
    assert_eq!(props["credentials"]["password"], PASSWORD);
    assert_eq!(env.azure.count("PUT", "/connections/"), 1);
    env.wait_for_event("private", "Normal", "RegistryConnectionWritten", 10)
        .await;

    // The password is nowhere in the object or its events.
    assert!(!rc.to_string().contains(PASSWORD));
    assert!(
        !format!("{:?}", env.events("private")).contains(PASSWORD),
        "{:?}",
        env.events("private")
    );

    // Reconciling again (a restart would) reads the connection and writes nothing.
    env.azure.reset();
    env.kube
        .merge_patch(
            AMLOPS,
            "RunConfiguration",
            NS,
            "private",
            json!({"metadata": {"annotations": {"touch": "1"}}}),
        )
        .unwrap();
    env.wait_for_azure_calls("GET", "/connections/", 0, 5).await;
    assert_eq!(env.azure.count("GET", "/connections/"), 1);
    assert_eq!(env.azure.count("PUT", "/connections/"), 0);

    // Rotation: a new password in the same Secret key is written once more (the Secret's
    // watch brings the reconcile; its version in the connection's metadata tells it changed).
    const ROTATED: &str = "registry-pass-rotated-91c2";
    env.kube
        .merge_patch(
            "v1",
            "Secret",
            NS,
            "registry",
            json!({"stringData": {"password": ROTATED}}),
        )
        .unwrap();
    env.wait_for_azure_calls("PUT", "/connections/", 0, 10)
        .await;
    assert_eq!(env.azure.count("PUT", "/connections/"), 1);
    let stored = env.azure.connections(&name);
    assert_eq!(stored[0]["properties"]["credentials"]["password"], ROTATED);
    let rc = env.get("RunConfiguration", "private").unwrap();
    assert!(!rc.to_string().contains(ROTATED));
    assert_rbac_allows(&env);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_waiting_for_its_configmap_starts_when_it_appears() {
    let (env, _azurite) = start().await;
    ready_target(&env).await;
    experiment(
        &env,
        "from-cm",
        "rc",
        json!({"configMap": {"name": "code"}}),
        json!({}),
    );
    let exp = env
        .wait_for("Experiment", "from-cm", 30, |o| {
            has_reason(o, "Stalled", "ConfigMapNotFound")
        })
        .await;
    assert!(exp["status"].to_string().contains("code"), "{exp:#}");
    assert_eq!(env.azure.count("PUT", "/jobs/"), 0);

    // The ConfigMap's watch brings the Experiment back at once (the resync is an hour away).
    env.kube
        .create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "code", "namespace": NS}, "data": {"train.py": TRAIN}}))
        .unwrap();
    env.wait_for("Experiment", "from-cm", 30, succeeded).await;
    assert_eq!(env.azure.count("PUT", "/jobs/"), 1);
    assert_rbac_allows(&env);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_based_cluster_over_quota_is_stalled_once_and_not_resubmitted_on_restart() {
    let azurite = Azurite::start();
    let mut env = Env::start(fake_azureml::Options {
        job_phase_delay: Duration::from_millis(100),
        storage: Some(azurite.storage_backend()),
        max_nodes_quota: Some(4),
        ..fast_azure()
    })
    .await;
    env.workspace("ws", "ws1", None);
    run_configuration(
        &env,
        "big",
        conda_rc(
            json!({"workspaceRef": {"name": "ws"}, "amlCompute": {"vmSize": "STANDARD_D2_V2", "maxNodes": 10}}),
        ),
    );
    env.wait_for("RunConfiguration", "big", 60, is_ready).await;
    experiment(&env, "wide", "big", inline(), json!({}));
    let exp = env
        .wait_for("Experiment", "wide", 60, |o| {
            has_reason(o, "Stalled", "QuotaExceeded")
        })
        .await;
    assert_eq!(
        exp["status"]["currentRun"]["error"]["code"], "QuotaExceeded",
        "{exp:#}"
    );
    env.wait_for_event("wide", "Warning", "QuotaExceeded", 10)
        .await;
    assert_eq!(env.compute_calls("PUT"), 1);
    assert_eq!(env.azure.count("PUT", "/jobs/"), 0);

    // A restart reconciles it again: the refused cluster is not asked for again.
    let gets = env.azure.count("GET", "/jobs/");
    env.stop_controllers().await;
    env.start_controllers();
    // The restarted controller looks again...
    env.wait_for_azure_calls("GET", "/jobs/", gets, 10).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(env.compute_calls("PUT"), 1, "no second PUT while Stalled");
    let exp = env.get("Experiment", "wide").unwrap();
    assert_eq!(condition(&exp, "Stalled").unwrap().1, "QuotaExceeded");
}
