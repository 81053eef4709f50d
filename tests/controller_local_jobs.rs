//! `local` ComputeTargets in a cluster: the quickstart manifests (the same file `make run`
//! applies) run as one Kubernetes Job per run in the Experiment's namespace, and the
//! Experiment's status follows the Job: started, completed, failed with the container's
//! termination message, cancelled on delete, queued while Kueue holds it suspended. The fake
//! API server's Job controller is driven by the test (fake-kube's start_job / complete_job /
//! fail_job / unsuspend_job).

mod controller_support;

use serde_json::{Value, json};

use controller_support::{Env, NS, assert_rbac_allows, condition, fast_azure};

const QUICKSTART: &str = include_str!("../examples/quickstart/quickstart.yaml");

/// The quickstart's objects in the test namespace, the Experiment renamed to `name`.
fn quickstart(env: &Env, name: &str, target: Option<Value>) {
    let docs: Vec<Value> = serde_saphyr::from_multiple(QUICKSTART).unwrap();
    for mut doc in docs {
        doc["metadata"]["namespace"] = json!(NS);
        if doc["kind"] == "Experiment" {
            doc["metadata"]["name"] = json!(name);
        }
        if let (Some(spec), "ComputeTarget") = (&target, doc["kind"].as_str().unwrap()) {
            doc["spec"] = spec.clone();
        }
        // The shared objects exist after the first call.
        let _ = env.kube.create(doc);
    }
}

/// Waits for the Job of Experiment `name` and returns it.
async fn job_of(env: &Env, name: &str) -> Value {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let jobs: Vec<Value> = env
            .kube
            .jobs(NS)
            .into_iter()
            .filter(|j| j["metadata"]["labels"]["amlops.io/experiment"] == name)
            .collect();
        match jobs.as_slice() {
            [job] => return job.clone(),
            [] => {}
            more => panic!("Experiment {name} has {} Jobs: {more:#?}", more.len()),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no Job for Experiment {name}: {:#?}",
            env.get("Experiment", name)
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

fn job_name(job: &Value) -> String {
    job["metadata"]["name"].as_str().unwrap().to_string()
}

async fn run_state(env: &Env, name: &str, state: &str) -> Value {
    env.wait_for("Experiment", name, 30, |o| {
        o["status"]["currentRun"]["state"] == state
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quickstart_runs_as_one_job_that_survives_a_restart_and_succeeds() {
    let mut env = Env::start(fast_azure()).await;
    quickstart(&env, "quickstart", None);
    let job = job_of(&env, "quickstart").await;
    let name = job_name(&job);

    // The Job runs the quickstart's script with its interpreter, from the snapshot in the
    // run's ConfigMap, owned by the Experiment.
    let text = job.to_string();
    assert!(
        text.contains("train.py") && text.contains("python3"),
        "{job:#}"
    );
    assert_eq!(job["metadata"]["ownerReferences"][0]["kind"], "Experiment");
    let config_map = env.kube.get("v1", "ConfigMap", NS, &name).unwrap();
    assert!(
        config_map["binaryData"]
            .as_object()
            .is_some_and(|d| !d.is_empty())
    );
    // The status is written after the Job is created.
    let exp = env
        .wait_for("Experiment", "quickstart", 30, |o| {
            o["status"]["currentRun"]["snapshotId"].is_string()
        })
        .await;
    let snapshot = &exp["status"]["currentRun"]["snapshotId"];
    assert!(
        text.contains(snapshot.as_str().unwrap()),
        "the Job names its snapshot"
    );

    env.kube.start_job(NS, &name).unwrap();
    run_state(&env, "quickstart", "Running").await;

    // A restart adopts the running Job by its name (the run id): no second Job.
    env.stop_controllers().await;
    env.start_controllers();
    env.kube
        .complete_job(NS, &name, "epoch 20/20 loss=0.0012\n")
        .unwrap();
    let exp = run_state(&env, "quickstart", "Completed").await;
    assert_eq!(condition(&exp, "Succeeded").unwrap().0, "True");
    let run = &exp["status"]["currentRun"];
    assert!(
        run["startedAt"].is_string() && run["finishedAt"].is_string(),
        "{run:#}"
    );
    assert_eq!(env.kube.jobs(NS).len(), 1, "one Job across the restart");
    assert_rbac_allows(&env);

    // `amlops logs --kubeconfig` reads the run's log from its pod.
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("config");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: fake, cluster: {{server: \"{}\"}}}}]\nusers: [{{name: u, user: {{}}}}]\ncontexts: [{{name: c, context: {{cluster: fake, user: u}}}}]\ncurrent-context: c\n",
            env.kube.url()
        ),
    )
    .unwrap();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_amlops"))
            .args(["logs", "exp/quickstart", "-n", NS, "--kubeconfig"])
            .arg(&kubeconfig)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("epoch 20/20 loss=0.0012"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_job_fails_the_experiment_with_its_termination_message() {
    let env = Env::start(fast_azure()).await;
    quickstart(&env, "broken", None);
    let name = job_name(&job_of(&env, "broken").await);
    env.kube.start_job(NS, &name).unwrap();
    env.kube
        .fail_job(
            NS,
            &name,
            1,
            "ZeroDivisionError: division by zero",
            "Traceback (most recent call last):\nZeroDivisionError: division by zero\n",
        )
        .unwrap();
    let exp = run_state(&env, "broken", "Failed").await;
    let (status, _reason, message) = {
        let c = exp["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Failed")
            .cloned()
            .unwrap();
        (
            c["status"].clone(),
            c["reason"].clone(),
            c["message"].clone(),
        )
    };
    assert_eq!(status, "True");
    assert!(
        message.as_str().unwrap().contains("ZeroDivisionError"),
        "{exp:#}"
    );
    assert!(
        exp["status"]["currentRun"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ZeroDivisionError")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_experiment_cancels_its_running_job() {
    let env = Env::start(fast_azure()).await;
    quickstart(&env, "doomed", None);
    let name = job_name(&job_of(&env, "doomed").await);
    env.kube.start_job(NS, &name).unwrap();
    run_state(&env, "doomed", "Running").await;
    env.kube
        .delete("amlops.io/v1alpha1", "Experiment", NS, "doomed")
        .unwrap();
    env.wait_gone("Experiment", "doomed", 30).await;
    assert!(env.kube.get("batch/v1", "Job", NS, &name).is_none());
    assert!(env.kube.get("v1", "ConfigMap", NS, &name).is_none());
    assert!(
        env.kube
            .pods(NS)
            .iter()
            .all(|p| p["metadata"]["labels"]["job-name"] != name.as_str()),
        "the Job's pod goes with it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_job_waits_suspended_for_kueue_and_runs_once_admitted() {
    let env = Env::start(fast_azure()).await;
    quickstart(
        &env,
        "queued",
        Some(json!({"local": {"queueName": "team-a"}})),
    );
    let job = job_of(&env, "queued").await;
    let name = job_name(&job);
    assert_eq!(job["spec"]["suspend"], true, "{job:#}");
    assert_eq!(
        job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"],
        "team-a"
    );
    run_state(&env, "queued", "Queued").await;
    // Kueue admits the workload by unsuspending the Job; the Job controller starts it.
    env.kube.unsuspend_job(NS, &name).unwrap();
    env.kube.start_job(NS, &name).unwrap();
    run_state(&env, "queued", "Running").await;
    env.kube.complete_job(NS, &name, "done\n").unwrap();
    run_state(&env, "queued", "Completed").await;
}
