//! `amlops apply` with Azure-backed objects: the real binary against the fake Azure ML server,
//! trusting its CA through SSL_CERT_FILE, authenticating with a service principal Secret
//! from the manifests.

mod cli_support;

use cli_support::{amlops_in, text};

use std::process::Output;

use serde_json::Value;

const SP_SECRET: &str = "sp-secret-value-never-printed";

fn amlops(dir: &std::path::Path, ca: &std::path::Path, args: &[&str]) -> Output {
    amlops_in(dir)
        .args(args)
        .env("SSL_CERT_FILE", ca)
        .output()
        .unwrap()
}

fn condition(obj: &Value, type_: &str) -> Value {
    obj["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == type_).cloned())
        .unwrap_or(Value::Null)
}

/// A service principal Secret, the Workspace `ml` on the fake and the amlCompute
/// ComputeTarget `cpu-cluster` in it.
fn workspace_and_cluster(fake: &fake_azureml::FakeAzureMl) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: sp}}\nstringData:\n  AZURE_TENANT_ID: 11111111-1111-1111-1111-111111111111\n  AZURE_CLIENT_ID: client-1\n  AZURE_CLIENT_SECRET: {SP_SECRET}\n---\n\
         apiVersion: amlops.io/v1alpha1\nkind: Workspace\nmetadata: {{name: ml}}\nspec:\n  subscriptionId: 00000000-0000-0000-0000-000000000001\n  resourceGroup: rg1\n  workspaceName: ws1\n  \
         credential: {{servicePrincipal: {{secretRef: {{name: sp}}}}}}\n  endpoints: {{resourceManager: \"{}\", authorityHost: \"{}\"{}}}\n---\n\
         apiVersion: amlops.io/v1alpha1\nkind: ComputeTarget\nmetadata: {{name: cpu-cluster}}\nspec:\n  workspaceRef: {{name: ml}}\n  amlCompute: {{vmSize: STANDARD_D2_V2, minNodes: 0, maxNodes: 2}}\n",
        fake.arm_endpoint(),
        fake.authority_host(),
        fake.blob_endpoint()
            .map(|b| format!(", blobStorage: \"{b}\""))
            .unwrap_or_default()
    )
}

/// An Experiment `name` running an inline `train.py` with the RunConfiguration `rc`.
fn experiment(name: &str, rc: &str, tags: &str) -> String {
    format!(
        "apiVersion: amlops.io/v1alpha1\nkind: Experiment\nmetadata: {{name: {name}}}\nspec:\n  runConfigurationRef: {{name: {rc}}}\n  \
         script: train.py\n  arguments: [\"--epochs\", \"3\"]\n  tags: {tags}\n  \
         source: {{inline: {{files: {{train.py: \"print('training')\\n\"}}}}}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workspace_and_aml_compute_converge_against_azure_and_delete_cleans_up() {
    let fake = fake_azureml::FakeAzureMl::start(fake_azureml::Options {
        compute_provision_delay: std::time::Duration::from_millis(300),
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, fake.ca_pem()).unwrap();
    let manifests = workspace_and_cluster(&fake);
    std::fs::write(dir.path().join("azure.yaml"), manifests).unwrap();

    let out = tokio::task::block_in_place(|| {
        amlops(
            dir.path(),
            &ca,
            &["apply", "-f", "azure.yaml", "--timeout", "60s"],
        )
    });
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let get = |kind: &str, name: &str| -> Value {
        let out = amlops(dir.path(), &ca, &["get", kind, name, "-o", "json"]);
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let ws = tokio::task::block_in_place(|| get("amlws", "ml"));
    assert_eq!(condition(&ws, "Ready")["status"], "True", "{ws:#}");
    assert!(ws["status"]["location"].is_string());
    let ct = tokio::task::block_in_place(|| get("ct", "cpu-cluster"));
    assert_eq!(condition(&ct, "Ready")["status"], "True", "{ct:#}");
    assert_eq!(ct["status"]["provisioningState"], "Succeeded");
    assert_eq!(fake.count("PUT", "/computes/cpu-cluster"), 1);
    assert!(
        !ws.to_string().contains(SP_SECRET)
            && !ct.to_string().contains(SP_SECRET)
            && !text(&out).contains(SP_SECRET)
    );

    // Applying the same manifests again writes nothing to Azure.
    let out =
        tokio::task::block_in_place(|| amlops(dir.path(), &ca, &["apply", "-f", "azure.yaml"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(fake.count("PUT", "/computes/cpu-cluster"), 1);
    assert_eq!(fake.count("PATCH", "/computes/cpu-cluster"), 0);

    // Deleting goes through the finalizer: the compute is deleted in Azure, then the object goes.
    let out = tokio::task::block_in_place(|| {
        amlops(
            dir.path(),
            &ca,
            &["delete", "ct", "cpu-cluster", "--timeout", "60s"],
        )
    });
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("computetarget/cpu-cluster deleted"),
        "{}",
        text(&out)
    );
    let deletes: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE" && r.path.contains("/computes/cpu-cluster"))
        .collect();
    assert_eq!(deletes.len(), 1);
    assert!(deletes[0].query.contains("underlyingResourceAction=Delete"));
    fake.shutdown().await;
}

/// A conda RunConfiguration `name`; `target` is its targetRef or run-based amlCompute.
fn run_configuration(name: &str, target: &str) -> String {
    format!(
        "apiVersion: amlops.io/v1alpha1\nkind: RunConfiguration\nmetadata: {{name: {name}}}\nspec:\n  {target}\n  \
         environment: {{condaDependencies: {{pythonVersion: \"3.11\", pipPackages: [scikit-learn==1.5.2]}}}}\n"
    )
}

/// The fake Azure ML with Azurite as its storage, and a directory holding its CA.
async fn start_with_storage(
    job_phase_delay: std::time::Duration,
) -> (
    fake_azureml::azurite::Azurite,
    fake_azureml::FakeAzureMl,
    tempfile::TempDir,
    std::path::PathBuf,
) {
    start_with(fake_azureml::Options {
        job_phase_delay,
        ..Default::default()
    })
    .await
}

/// [`start_with_storage`] with more of the fake's options.
async fn start_with(
    options: fake_azureml::Options,
) -> (
    fake_azureml::azurite::Azurite,
    fake_azureml::FakeAzureMl,
    tempfile::TempDir,
    std::path::PathBuf,
) {
    let azurite = fake_azureml::azurite::Azurite::start();
    let fake = fake_azureml::FakeAzureMl::start(fake_azureml::Options {
        compute_provision_delay: std::time::Duration::from_millis(300),
        storage: Some(azurite.storage_backend()),
        ..options
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, fake.ca_pem()).unwrap();
    (azurite, fake, dir, ca)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn experiments_run_on_azure_compute_and_a_failed_run_fails_the_apply() {
    let (_azurite, fake, dir, ca) = start_with_storage(std::time::Duration::from_millis(100)).await;
    const REGISTRY_PASSWORD: &str = "registry-pass-3c9e";
    let manifests = format!(
        "{}---\n{}---\n{}---\n{}",
        workspace_and_cluster(&fake),
        format_args!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: registry}}\nstringData: {{password: {REGISTRY_PASSWORD}}}\n"
        ),
        run_configuration(
            "rc",
            "targetRef: {name: cpu-cluster}\n  docker: {baseImage: private.example.io/train:1, registry: {address: private.example.io, username: puller, passwordSecretRef: {name: registry, key: password}}}"
        ),
        experiment("train", "rc", "{}")
    );
    std::fs::write(dir.path().join("run.yaml"), manifests).unwrap();
    let get = |kind: &str, name: &str| -> Value {
        let out = amlops(dir.path(), &ca, &["get", kind, name, "-o", "json"]);
        serde_json::from_slice(&out.stdout).unwrap()
    };

    // The plan knows the run goes to Azure: the environment is registered, not staged here.
    let plan = tokio::task::block_in_place(|| amlops(dir.path(), &ca, &["plan", "-f", "run.yaml"]));
    assert!(
        text(&plan).contains("register environment amlops-default-rc:"),
        "{}",
        text(&plan)
    );
    assert!(
        text(&plan).contains("write workspace connection amlops-registry-"),
        "{}",
        text(&plan)
    );
    assert_eq!(fake.requests().len(), 0, "plan calls nothing");

    let out = tokio::task::block_in_place(|| {
        amlops(
            dir.path(),
            &ca,
            &["apply", "-f", "run.yaml", "--wait", "--timeout", "120s"],
        )
    });
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let rc = tokio::task::block_in_place(|| get("runconfiguration", "rc"));
    assert_eq!(condition(&rc, "Ready")["status"], "True", "{rc:#}");
    let exp = tokio::task::block_in_place(|| get("experiment", "train"));
    assert_eq!(condition(&exp, "Succeeded")["status"], "True", "{exp:#}");
    let run = &exp["status"]["currentRun"];
    assert!(
        run["id"].as_str().is_some_and(|id| !id.is_empty()),
        "{exp:#}"
    );
    assert_eq!(run["state"], "Completed");
    assert_eq!(fake.count("PUT", "/environments/"), 1);
    assert_eq!(fake.count("PUT", "/jobs/"), 1);
    assert_eq!(fake.count("PUT", "/computes/cpu-cluster"), 1);
    assert!(!text(&out).contains(SP_SECRET));
    // The private registry's password went to Azure as a connection, and nowhere else.
    let connection = rc["status"]["registryConnection"].as_str().unwrap();
    let stored = fake.connections(connection);
    assert_eq!(
        stored[0]["properties"]["credentials"]["password"],
        REGISTRY_PASSWORD
    );
    assert_eq!(fake.count("PUT", "/connections/"), 1);
    assert!(!text(&out).contains(REGISTRY_PASSWORD));
    assert!(!rc.to_string().contains(REGISTRY_PASSWORD));

    // A run that fails in Azure fails the apply, once its run-based cluster is deleted.
    std::fs::write(
        dir.path().join("bad.yaml"),
        format!(
            "{}---\n{}",
            run_configuration(
                "burst",
                "workspaceRef: {name: ml}\n  amlCompute: {vmSize: STANDARD_D2_V2, maxNodes: 2}"
            ),
            experiment("bad", "burst", "{fake.outcome: Failed}")
        ),
    )
    .unwrap();
    let out = tokio::task::block_in_place(|| {
        amlops(
            dir.path(),
            &ca,
            &["apply", "-f", "bad.yaml", "--wait", "--timeout", "120s"],
        )
    });
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let bad = tokio::task::block_in_place(|| get("experiment", "bad"));
    assert_eq!(condition(&bad, "Failed")["status"], "True", "{bad:#}");
    assert_eq!(bad["status"]["currentRun"]["state"], "Failed");
    assert!(
        bad["status"]["currentRun"].get("runBasedCompute").is_none(),
        "{bad:#}"
    );
    assert_eq!(fake.count("PUT", "/computes/amlr"), 1);
    assert_eq!(fake.count("DELETE", "/computes/amlr"), 1);
    // Environments are named per RunConfiguration: "burst" registers its own, "rc" not again.
    assert_eq!(fake.count("PUT", "/environments/"), 2);
    assert_eq!(fake.count("PUT", "/environments/amlops-default-rc/"), 1);
    assert_eq!(fake.count("PUT", "/jobs/"), 2);
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_azure_runs_are_cancelled_by_delete_and_by_ctrl_c() {
    let (_azurite, fake, dir, ca) = start_with_storage(std::time::Duration::from_millis(100)).await;
    let manifests = format!(
        "{}---\n{}---\n{}",
        workspace_and_cluster(&fake),
        run_configuration("rc", "targetRef: {name: cpu-cluster}"),
        experiment("long", "rc", "{fake.outcome: Running}")
    );
    std::fs::write(dir.path().join("long.yaml"), manifests).unwrap();
    let get = |kind: &str, name: &str| -> Value {
        let out = amlops(dir.path(), &ca, &["get", kind, name, "-o", "json"]);
        serde_json::from_slice(&out.stdout).unwrap()
    };

    // Without --wait, a submitted run is enough.
    let out = tokio::task::block_in_place(|| {
        amlops(
            dir.path(),
            &ca,
            &["apply", "-f", "long.yaml", "--timeout", "120s"],
        )
    });
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let long = tokio::task::block_in_place(|| get("experiment", "long"));
    assert_eq!(condition(&long, "Submitted")["status"], "True", "{long:#}");
    assert_eq!(fake.count("PUT", "/jobs/"), 1);

    // Deleting cancels the job in Azure, then the object goes.
    let out = tokio::task::block_in_place(|| {
        amlops(
            dir.path(),
            &ca,
            &["delete", "experiment", "long", "--timeout", "120s"],
        )
    });
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("experiment/long deleted"),
        "{}",
        text(&out)
    );
    assert_eq!(fake.count("POST", "/cancel"), 1);

    // Ctrl-C during `apply --wait` cancels the run in Azure.
    std::fs::write(
        dir.path().join("stuck.yaml"),
        experiment("stuck", "rc", "{fake.outcome: Running}"),
    )
    .unwrap();
    let child = amlops_in(dir.path())
        .args(["apply", "-f", "stuck.yaml", "--wait", "--timeout", "120s"])
        .env("SSL_CERT_FILE", &ca)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let submitted = std::time::Instant::now();
    while fake.count("PUT", "/jobs/") < 2 {
        assert!(submitted.elapsed() < std::time::Duration::from_secs(60));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The status naming the run is written right after the PUT.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = tokio::task::block_in_place(|| child.wait_with_output().unwrap());
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    assert_eq!(fake.count("POST", "/cancel"), 2, "{}", text(&out));

    // With its RunConfiguration gone, an Azure run cannot be reached: the deletion stops
    // and says so (instead of dropping the object while the job runs on), until --force.
    std::fs::write(
        dir.path().join("orphan.yaml"),
        experiment("orphan", "rc", "{fake.outcome: Running}"),
    )
    .unwrap();
    let run = |args: &[&str]| tokio::task::block_in_place(|| amlops(dir.path(), &ca, args));
    let out = run(&["apply", "-f", "orphan.yaml", "--timeout", "120s"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = run(&["delete", "runconfiguration", "rc", "--timeout", "60s"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = run(&["delete", "experiment", "orphan", "--timeout", "20s"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("still deleting"), "{}", text(&out));
    let orphan = tokio::task::block_in_place(|| get("experiment", "orphan"));
    let stalled = condition(&orphan, "Stalled");
    assert_eq!(stalled["reason"], "CleanupBlocked", "{orphan:#}");
    assert!(
        stalled["message"].as_str().unwrap().contains("--force"),
        "{stalled:#}"
    );
    assert_eq!(fake.count("POST", "/cancel"), 2, "nothing reached Azure");
    let out = run(&["delete", "experiment", "orphan", "--force"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("removed without cleanup"),
        "{}",
        text(&out)
    );
    let out = run(&["get", "experiment", "orphan"]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    fake.shutdown().await;
}

/// Writes `<name>.yaml`: the Workspace, cluster, a RunConfiguration `rc` on it and the
/// Experiment `name` with `tags`; returns the file name.
fn one_run(
    dir: &std::path::Path,
    fake: &fake_azureml::FakeAzureMl,
    name: &str,
    tags: &str,
) -> String {
    let file = format!("{name}.yaml");
    let manifests = format!(
        "{}---\n{}---\n{}",
        workspace_and_cluster(fake),
        run_configuration("rc", "targetRef: {name: cpu-cluster}"),
        experiment(name, "rc", tags)
    );
    std::fs::write(dir.join(&file), manifests).unwrap();
    file
}

/// `amlops apply -f FILE [--wait]` with a 120 s timeout.
fn apply(dir: &std::path::Path, ca: &std::path::Path, file: &str, wait: bool) -> Output {
    let mut args = vec!["apply", "-f", file, "--timeout", "120s"];
    if wait {
        args.push("--wait");
    }
    tokio::task::block_in_place(|| amlops(dir, ca, &args))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_azure_run_tells_why_from_run_history_and_logs_prints_its_log() {
    let (_azurite, fake, dir, ca) = start_with_storage(std::time::Duration::from_millis(100)).await;
    let file = one_run(dir.path(), &fake, "bad", "{fake.outcome: Failed}");
    let out = apply(dir.path(), &ca, &file, true);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let exp: Value = tokio::task::block_in_place(|| {
        let out = amlops(dir.path(), &ca, &["get", "experiment", "bad", "-o", "json"]);
        serde_json::from_slice(&out.stdout).unwrap()
    });
    let run = &exp["status"]["currentRun"];
    // The specific code the runtime reported, not the generic UserError of the envelope.
    assert_eq!(
        run["error"]["code"], "ScriptExecutionStreamAccessNotFound",
        "{exp:#}"
    );
    assert!(
        run["startedAt"].is_string() && run["finishedAt"].is_string(),
        "{exp:#}"
    );
    assert!(run["duration"].is_string(), "{exp:#}");
    let failed = condition(&exp, "Failed");
    let message = failed["message"].as_str().unwrap();
    assert!(
        message.contains("UserError/ScriptExecution.StreamAccess.NotFound: Error Code:"),
        "{message}"
    );
    // The tail of the run's own log: the script's last lines, the traceback included.
    let log = fake
        .run_log(run["id"].as_str().unwrap(), "user_logs/std_log.txt")
        .unwrap();
    let last_line = log.lines().last().unwrap();
    assert!(
        message.contains("--- last lines of user_logs/std_log.txt ---")
            && message.ends_with(last_line),
        "{message}\n---\n{log}"
    );
    assert!(message.contains("Traceback"), "{message}");
    assert!(text(&out).contains("Warning Failed"), "{}", text(&out));

    // `amlops logs` prints the whole log of the finished run and names the other log files.
    let logs = tokio::task::block_in_place(|| amlops(dir.path(), &ca, &["logs", "exp/bad"]));
    assert_eq!(logs.status.code(), Some(0), "{}", text(&logs));
    assert_eq!(String::from_utf8_lossy(&logs.stdout), log);
    assert!(
        String::from_utf8_lossy(&logs.stderr)
            .contains("other logs: system_logs/lifecycler/execution-wrapper.log"),
        "{}",
        text(&logs)
    );
    assert!(
        !text(&logs).contains("sig="),
        "no SAS in the output: {}",
        text(&logs)
    );
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_streams_an_azure_run_to_its_end_printing_each_byte_once() {
    // Phases long enough that the run is still going while `logs -f` looks.
    let (_azurite, fake, dir, ca) =
        start_with_storage(std::time::Duration::from_millis(1500)).await;
    let file = one_run(dir.path(), &fake, "train", "{}");
    let out = apply(dir.path(), &ca, &file, false);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let logs =
        tokio::task::block_in_place(|| amlops(dir.path(), &ca, &["logs", "exp/train", "-f"]));
    assert_eq!(logs.status.code(), Some(0), "{}", text(&logs));
    let stdout = String::from_utf8_lossy(&logs.stdout).to_string();
    let stderr = String::from_utf8_lossy(&logs.stderr).to_string();
    let run_id = fake.put_names("jobs").remove(0);
    // Followed to the end: the complete log, every line once, in order.
    assert_eq!(
        stdout,
        fake.run_log(&run_id, "user_logs/std_log.txt").unwrap(),
        "{stderr}"
    );
    assert!(stdout.ends_with("final loss=0.3000\n"), "{stdout}");
    // It watched the run go by: more than one state, the last one Completed.
    assert!(stderr.contains("run is Running"), "{stderr}");
    assert!(stderr.contains("run is Completed (after"), "{stderr}");
    assert_eq!(fake.count("POST", "/cancel"), 0, "following never cancels");
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_datastore_falls_back_to_a_whole_upload_and_says_so() {
    let (azurite, fake, dir, ca) = start_with(fake_azureml::Options {
        job_phase_delay: std::time::Duration::from_millis(100),
        datastore_secrets_forbidden: true,
        ..Default::default()
    })
    .await;
    let file = one_run(dir.path(), &fake, "train", "{}");
    let out = apply(dir.path(), &ca, &file, true);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("Warning SnapshotUploadedWhole"),
        "{}",
        text(&out)
    );
    assert_eq!(fake.count("POST", "/listSecrets"), 1);
    assert_eq!(fake.count("POST", "/startPendingUpload"), 1);
    // Whole: the one file went to the pending-upload container with PUTs only (its SAS
    // cannot list or delete), no manifest, no copies.
    let blob_requests: Vec<_> = azurite
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("train.py") || r.path.contains("amlops-manifests"))
        .collect();
    assert!(
        blob_requests.iter().all(|r| r.method == "PUT") && !blob_requests.is_empty(),
        "{blob_requests:?}"
    );
    assert!(
        !text(&out).contains("sig="),
        "no SAS in the output: {}",
        text(&out)
    );
    fake.shutdown().await;
}

/// The deadline of `apply --wait --timeout` bounds each Azure call, token requests and their
/// retries included: with a token endpoint that holds its answers, apply ends with the timeout
/// exit code soon after the deadline (not after the 60 s HTTP timeout and the credential's
/// retries), and the store is left readable, with nothing claimed Ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeout_bounds_a_token_request_that_does_not_answer() {
    let fake = fake_azureml::FakeAzureMl::start(fake_azureml::Options {
        token_delay: std::time::Duration::from_secs(300),
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, fake.ca_pem()).unwrap();
    std::fs::write(dir.path().join("azure.yaml"), workspace_and_cluster(&fake)).unwrap();

    let started = std::time::Instant::now();
    let out = tokio::task::block_in_place(|| {
        amlops(
            dir.path(),
            &ca,
            &["apply", "-f", "azure.yaml", "--wait", "--timeout", "3s"],
        )
    });
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    // Loose on purpose: what matters is that the deadline ended the wait, not how fast.
    assert!(
        took < std::time::Duration::from_secs(15),
        "took {took:?}: {}",
        text(&out)
    );
    assert!(
        text(&out).contains("timed out after 3s while workspace/ml was waiting for an answer"),
        "{}",
        text(&out)
    );

    let out = tokio::task::block_in_place(|| {
        amlops(dir.path(), &ca, &["get", "amlws", "ml", "-o", "json"])
    });
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let ws: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_ne!(condition(&ws, "Ready")["status"], "True", "{ws:#}");
    fake.shutdown().await;
}
