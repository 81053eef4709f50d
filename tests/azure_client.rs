//! End-to-end tests of the Azure ML client against the fake Azure ML server over HTTPS:
//! real `azure_identity` credentials against the fake token endpoint (trusting its CA),
//! every typed operation, LROs, retries with fault injection, error classification and
//! resuming an interrupted poll. The fake validates every request against the spec.

use amlops::azure::arm::{ArmRequest, CallObserver};
use amlops::azure::budget::{ArmBudget, BudgetLimits};
use amlops::azure::http::HttpOptions;
use amlops::azure::lro::PollOptions;
use amlops::azure::models::code::{CodeVersion, CodeVersionProperties};
use amlops::azure::models::common::{IsoDuration, ResourceBase};
use amlops::azure::models::compute::{
    AmlComputeProperties, Compute, ComputeCommon, ComputeKind, ComputeResource, ProvisioningState,
    RemoteLoginPortPublicAccess, ScaleSettings, UnderlyingResourceAction, UserAccountCredentials,
    VirtualMachineProperties, VirtualMachineSshCredentials, VmPriority,
};
use amlops::azure::models::environment::{EnvironmentVersion, EnvironmentVersionProperties};
use amlops::azure::models::job::{
    CommandJob, CommandJobLimits, Distribution, IdentityConfiguration, JobProperties, JobResource,
    JobResources, JobStatus, QueueSettings,
};
use amlops::azure::rate_limit::RateLimit;
use amlops::azure::retry::RetryPolicy;
use amlops::azure::{
    ArmClient, ArmConfig, AzureError, CredentialSource, Endpoints, OperationHandle, OperationKind,
    PollState, Secret, Started, WorkspaceClient, WorkspaceRef,
};
use fake_azureml::{FakeAzureMl, Faults, Options};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOKEN_PATH: &str = "/oauth2/v2.0/token";

/// Records every ARM exchange the client reports.
#[derive(Default)]
struct Recorder(Mutex<Vec<(&'static str, Option<u16>)>>);

impl CallObserver for Recorder {
    fn on_call(&self, operation: &'static str, status: Option<u16>) {
        self.0.lock().unwrap().push((operation, status));
    }
}

impl Recorder {
    fn calls(&self) -> Vec<(&'static str, Option<u16>)> {
        self.0.lock().unwrap().clone()
    }
    fn count(&self, operation: &str) -> usize {
        self.calls().iter().filter(|(o, _)| *o == operation).count()
    }
}

fn fast_options() -> Options {
    Options {
        compute_provision_delay: Duration::from_millis(100),
        job_phase_delay: Duration::from_millis(30),
        ..Options::default()
    }
}

fn config(fake: &FakeAzureMl) -> ArmConfig {
    ArmConfig {
        endpoints: Endpoints::new(&fake.arm_endpoint(), &fake.authority_host()).unwrap(),
        http: HttpOptions {
            request_timeout: Duration::from_secs(10),
            extra_ca_pem: vec![fake.ca_pem()],
            use_ssl_cert_file: false,
            ..HttpOptions::default()
        },
        retry: RetryPolicy {
            max_retries: 6,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(50),
            max_retry_after: Duration::from_secs(5),
            max_inline_wait: Duration::from_secs(1),
        },
        budget: ArmBudget::new(every_kind(RateLimit {
            per_second: 1000.0,
            burst: 1000,
        })),
        polling: PollOptions {
            default_interval: Duration::from_millis(50),
            min_interval: Duration::from_millis(10),
            max_interval: Duration::from_secs(2),
        },
        ..ArmConfig::default()
    }
}

fn every_kind(limit: RateLimit) -> BudgetLimits {
    BudgetLimits {
        reads: limit,
        writes: limit,
        deletes: limit,
    }
}

fn service_principal() -> CredentialSource {
    CredentialSource::ServicePrincipal {
        tenant_id: "tenant-1".into(),
        client_id: "app-1".into(),
        client_secret: Secret::new("s3cret-value"),
    }
}

fn workspace() -> WorkspaceRef {
    WorkspaceRef {
        subscription_id: "00000000-0000-0000-0000-000000000001".into(),
        resource_group: "rg-ml".into(),
        workspace: "ws-1".into(),
    }
}

fn client_with(config: ArmConfig, source: &CredentialSource) -> (WorkspaceClient, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    let arm = ArmClient::new(config, source)
        .unwrap()
        .with_observer(recorder.clone());
    (WorkspaceClient::new(arm, workspace()), recorder)
}

fn client(fake: &FakeAzureMl) -> (WorkspaceClient, Arc<Recorder>) {
    client_with(config(fake), &service_principal())
}

/// ARM requests the fake saw (token requests excluded).
fn arm_requests(fake: &FakeAzureMl) -> usize {
    fake.requests()
        .iter()
        .filter(|r| !r.path.contains(TOKEN_PATH))
        .count()
}

fn cluster(max_nodes: u32) -> ComputeResource {
    ComputeResource {
        id: None,
        name: None,
        location: None,
        tags: BTreeMap::new(),
        properties: Compute::new(ComputeKind::AmlCompute(AmlComputeProperties {
            vm_size: Some("STANDARD_DS3_V2".into()),
            vm_priority: Some(VmPriority::Dedicated),
            scale_settings: Some(ScaleSettings {
                max_node_count: max_nodes,
                min_node_count: Some(0),
                node_idle_time_before_scale_down: Some(IsoDuration::from_secs(120)),
            }),
            user_account_credentials: Some(UserAccountCredentials {
                admin_user_name: "azureuser".into(),
                admin_user_ssh_public_key: Some(Secret::new("ssh-ed25519 AAAA test")),
                admin_user_password: None,
            }),
            remote_login_port_public_access: Some(RemoteLoginPortPublicAccess::Disabled),
            ..Default::default()
        })),
    }
}

fn pending<T: std::fmt::Debug>(started: Started<T>) -> OperationHandle {
    match started {
        Started::Pending(h) => h,
        Started::Done(v) => panic!("expected a long-running operation, got {v:?}"),
    }
}

async fn environment(ws: &WorkspaceClient, version: &str) -> String {
    let env = EnvironmentVersion {
        id: None,
        name: None,
        properties: EnvironmentVersionProperties {
            image: Some("mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04".into()),
            conda_file: Some("name: train\ndependencies:\n- python=3.11\n".into()),
            ..Default::default()
        },
    };
    ws.environment_version_create_or_update("train-env", version, &env)
        .await
        .unwrap();
    ws.workspace().environment_version_id("train-env", version)
}

fn command_job(environment_id: String, tags: &[(&str, &str)]) -> JobResource {
    JobResource {
        id: None,
        name: None,
        properties: JobProperties::Command(Box::new(CommandJob {
            command: "python train.py".into(),
            environment_id,
            code_id: None,
            compute_id: Some(workspace().compute_id("cpu")),
            distribution: Some(Distribution::PyTorch {
                process_count_per_instance: Some(1),
            }),
            resources: Some(JobResources {
                instance_count: Some(1),
                ..Default::default()
            }),
            limits: Some(CommandJobLimits {
                timeout: Some(IsoDuration::from_secs(600)),
                ..Default::default()
            }),
            environment_variables: BTreeMap::from([("EPOCHS".into(), "3".into())]),
            experiment_name: Some("mnist".into()),
            display_name: Some("mnist run".into()),
            // As a RunConfiguration's identity and queueSettings send them: the fake checks
            // the body against the spec's IdentityConfiguration and QueueSettings.
            identity: Some(IdentityConfiguration {
                identity_type: "Managed".into(),
                client_id: Some("00000000-0000-0000-0000-000000000001".into()),
                resource_id: None,
            }),
            queue_settings: Some(QueueSettings {
                job_tier: Some("Spot".into()),
            }),
            base: ResourceBase {
                description: None,
                properties: BTreeMap::from([("amlops.io/git-commit".into(), "abc123".into())]),
                tags: tags
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            },
            status: None,
            services: BTreeMap::new(),
        })),
    }
}

fn job_status(job: &JobResource) -> JobStatus {
    match &job.properties {
        JobProperties::Command(c) => c.status.unwrap_or(JobStatus::Unknown),
        JobProperties::Other => JobStatus::Unknown,
    }
}

/// Polls a job every `interval` until it is terminal; returns the final status.
async fn wait_job(ws: &WorkspaceClient, id: &str, interval: Duration) -> JobStatus {
    for _ in 0..500 {
        let job = ws.job_get(id).await.unwrap().expect("job exists");
        let status = job_status(&job);
        if amlops::actions::job::run_state(status).is_terminal() {
            return status;
        }
        tokio::time::sleep(interval).await;
    }
    panic!("job {id} never finished");
}

#[tokio::test]
async fn one_token_serves_many_requests() {
    let fake = FakeAzureMl::start(fast_options()).await.unwrap();
    let (ws, recorder) = client(&fake);
    for _ in 0..10 {
        assert!(ws.workspace_get().await.unwrap().is_some());
    }
    assert_eq!(fake.count("POST", TOKEN_PATH), 1, "token requests");
    assert_eq!(fake.count("GET", "/workspaces/ws-1"), 10);
    assert_eq!(recorder.count("workspace.get"), 10);
    // a clone shares the credential and so the cached token
    let clone = ws.clone();
    clone.workspace_get().await.unwrap();
    assert_eq!(fake.count("POST", TOKEN_PATH), 1);
    fake.shutdown().await;
}

#[tokio::test]
async fn workload_identity_exchanges_the_federated_token() {
    let fake = FakeAzureMl::start(fast_options()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzYTpucyJ9.sig").unwrap();
    let source = CredentialSource::WorkloadIdentity {
        tenant_id: "tenant-1".into(),
        client_id: "wi-app".into(),
        token_file,
    };
    let (ws, _) = client_with(config(&fake), &source);
    let info = ws.workspace_info().await.unwrap();
    assert_eq!(info.id, workspace().resource_id());
    ws.compute_get("none").await.unwrap();
    assert_eq!(fake.count("POST", TOKEN_PATH), 1);
    fake.shutdown().await;
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused() {
    let fake = FakeAzureMl::start(fast_options()).await.unwrap();
    let mut cfg = config(&fake);
    cfg.http.extra_ca_pem.clear();
    let (ws, _) = client_with(cfg, &service_principal());
    let err = ws.workspace_get().await.unwrap_err();
    assert_eq!(err.code(), "AuthenticationFailed", "{err}");
    assert_eq!(
        arm_requests(&fake),
        0,
        "nothing may reach ARM without TLS trust"
    );
    fake.shutdown().await;
}

#[tokio::test]
async fn a_refused_client_needs_a_human_and_leaks_no_secret() {
    let fake = FakeAzureMl::start(fast_options()).await.unwrap();
    let source = CredentialSource::ServicePrincipal {
        tenant_id: "tenant-1".into(),
        client_id: "invalid-app".into(),
        client_secret: Secret::new("very-secret-value"),
    };
    let (ws, _) = client_with(config(&fake), &source);
    let err = ws.workspace_get().await.unwrap_err();
    assert_eq!(err.code(), "AuthenticationFailed");
    assert!(!err.retryable(), "{err}");
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("invalid-app"), "{shown}");
    assert!(!shown.contains("very-secret-value"), "{shown}");
    fake.shutdown().await;
}

#[tokio::test]
async fn workspace_info_discovers_storage_datastore_and_studio_url() {
    let fake = FakeAzureMl::start(fast_options()).await.unwrap();
    let (ws, _) = client(&fake);
    let info = ws.workspace_info().await.unwrap();
    assert!(info.location.is_some());
    assert!(
        info.storage_account
            .as_deref()
            .is_some_and(|s| s.contains("Microsoft.Storage/storageAccounts")),
        "{info:?}"
    );
    let ds = info.default_datastore.expect("workspaceblobstore");
    assert_eq!(ds.properties.datastore_type, "AzureBlob");
    assert!(ds.properties.container_name.is_some());
    assert!(
        info.studio_url
            .starts_with("https://ml.azure.com/?wsid=%2Fsubscriptions%2F")
    );
    assert!(ws.datastore_get("no-such-store").await.unwrap().is_none());
    fake.shutdown().await;
}

#[tokio::test]
async fn compute_create_scale_list_and_delete() {
    let fake = FakeAzureMl::start(fast_options()).await.unwrap();
    let (ws, recorder) = client(&fake);
    assert!(ws.compute_get("cpu").await.unwrap().is_none());

    let handle = pending(
        ws.compute_create_or_update("cpu", &cluster(2))
            .await
            .unwrap(),
    );
    assert_eq!(handle.kind, OperationKind::AzureAsyncOperation);
    ws.arm().wait(&handle).await.unwrap();
    let c = ws.compute_get("cpu").await.unwrap().unwrap();
    assert_eq!(
        c.properties.common.provisioning_state,
        Some(ProvisioningState::Succeeded)
    );
    let ComputeKind::AmlCompute(p) = &c.properties.kind else {
        panic!("{c:?}")
    };
    assert_eq!(p.scale_settings.as_ref().unwrap().max_node_count, 2);

    let scale = ScaleSettings {
        max_node_count: 5,
        min_node_count: Some(1),
        node_idle_time_before_scale_down: Some(IsoDuration::from_secs(300)),
    };
    match ws.compute_update_scale("cpu", &scale).await.unwrap() {
        Started::Pending(h) => ws.arm().wait(&h).await.unwrap(),
        Started::Done(_) => {}
    }
    let c = ws.compute_get("cpu").await.unwrap().unwrap();
    let ComputeKind::AmlCompute(p) = &c.properties.kind else {
        panic!("{c:?}")
    };
    assert_eq!(p.scale_settings.as_ref().unwrap(), &scale);

    let nodes = ws.compute_list_nodes("cpu").await.unwrap();
    assert!(nodes.iter().all(|n| n.node_id.is_some()));
    assert_eq!(recorder.count("compute.list_nodes"), 1);

    let handle = pending(
        ws.compute_delete("cpu", UnderlyingResourceAction::Delete)
            .await
            .unwrap(),
    );
    ws.arm().wait(&handle).await.unwrap();
    assert!(ws.compute_get("cpu").await.unwrap().is_none());
    assert!(
        fake.requests()
            .iter()
            .all(|r| r.status < 400 || r.status == 404),
        "the fake rejected a request: {:?}",
        fake.requests()
    );
    fake.shutdown().await;
}

#[tokio::test]
async fn attach_and_detach_a_virtual_machine() {
    let fake = FakeAzureMl::start(fast_options()).await.unwrap();
    let (ws, _) = client(&fake);
    let vm = ComputeResource {
        id: None,
        name: None,
        location: None,
        tags: BTreeMap::new(),
        properties: Compute {
            kind: ComputeKind::VirtualMachine(VirtualMachineProperties {
                ssh_port: Some(22),
                address: Some("10.0.0.4".into()),
                administrator_account: Some(VirtualMachineSshCredentials {
                    username: Some("azureuser".into()),
                    password: Some(Secret::new("vm-pa55")),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            common: ComputeCommon {
                resource_id: Some("/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-vm/providers/Microsoft.Compute/virtualMachines/dsvm".into()),
                ..Default::default()
            },
        },
    };
    match ws.compute_create_or_update("dsvm", &vm).await.unwrap() {
        Started::Pending(h) => ws.arm().wait(&h).await.unwrap(),
        Started::Done(_) => {}
    }
    let c = ws.compute_get("dsvm").await.unwrap().unwrap();
    assert_eq!(c.properties.common.is_attached_compute, Some(true));
    assert!(matches!(c.properties.kind, ComputeKind::VirtualMachine(_)));
    match ws
        .compute_delete("dsvm", UnderlyingResourceAction::Detach)
        .await
        .unwrap()
    {
        Started::Pending(h) => ws.arm().wait(&h).await.unwrap(),
        Started::Done(()) => {}
    }
    assert!(ws.compute_get("dsvm").await.unwrap().is_none());
    assert!(
        fake.requests()
            .iter()
            .any(|r| r.method == "DELETE" && r.query.contains("underlyingResourceAction=Detach"))
    );
    fake.shutdown().await;
}

#[tokio::test]
async fn a_failed_provisioning_is_a_human_problem_with_the_azure_code() {
    let fake = FakeAzureMl::start(fast_options()).await.unwrap();
    let (ws, _) = client(&fake);
    let mut c = cluster(1);
    c.tags.insert("fake.outcome".into(), "Failed".into());
    let handle = pending(ws.compute_create_or_update("bad", &c).await.unwrap());
    let err = ws.arm().wait(&handle).await.unwrap_err();
    assert_eq!(err.code(), "ComputeProvisioningFailed", "{err}");
    assert!(!err.retryable());
    fake.shutdown().await;
}

#[tokio::test]
async fn an_interrupted_poll_resumes_from_the_persisted_handle() {
    let fake = FakeAzureMl::start(Options {
        compute_provision_delay: Duration::from_millis(400),
        ..fast_options()
    })
    .await
    .unwrap();
    let persisted = {
        let (ws, _) = client(&fake);
        let handle = pending(
            ws.compute_create_or_update("gpu", &cluster(1))
                .await
                .unwrap(),
        );
        assert!(matches!(
            ws.arm().poll(&handle).await.unwrap(),
            PollState::InProgress { .. }
        ));
        serde_json::to_string(&handle).unwrap()
        // the client is dropped here, as in a process restart
    };
    let (ws, _) = client(&fake);
    let handle: OperationHandle = serde_json::from_str(&persisted).unwrap();
    ws.arm().wait(&handle).await.unwrap();
    let c = ws.compute_get("gpu").await.unwrap().unwrap();
    assert_eq!(
        c.properties.common.provisioning_state,
        Some(ProvisioningState::Succeeded)
    );
    // the Location flavour of the same operation also reads as done
    let location = OperationHandle {
        url: handle
            .url
            .replace("mfeOperationsStatus", "mfeOperationResults"),
        kind: OperationKind::Location,
    };
    assert!(matches!(
        ws.arm().poll(&location).await.unwrap(),
        PollState::Succeeded
    ));
    fake.shutdown().await;
}

#[tokio::test]
async fn a_poll_url_off_the_arm_origin_never_gets_a_token() {
    let fake = FakeAzureMl::start(fast_options()).await.unwrap();
    let (ws, _) = client(&fake);
    let forged = OperationHandle {
        url: "https://attacker.example/op?api-version=2026-07-01".into(),
        kind: OperationKind::AzureAsyncOperation,
    };
    let err = ws.arm().poll(&forged).await.unwrap_err();
    assert_eq!(err.code(), "InvalidConfiguration");
    assert_eq!(fake.count("POST", TOKEN_PATH), 0);
    fake.shutdown().await;
}

#[tokio::test]
async fn environment_versions_are_immutable() {
    let fake = FakeAzureMl::start(fast_options()).await.unwrap();
    let (ws, recorder) = client(&fake);
    assert!(
        ws.environment_version_get("train-env", "h1")
            .await
            .unwrap()
            .is_none()
    );
    let id = environment(&ws, "h1").await;
    assert!(id.ends_with("/environments/train-env/versions/h1"));
    // same body again: fine
    environment(&ws, "h1").await;
    let got = ws
        .environment_version_get("train-env", "h1")
        .await
        .unwrap()
        .unwrap();
    assert!(got.properties.conda_file.unwrap().contains("python=3.11"));
    // a different body for the same version: refused at once, a human problem
    let changed = EnvironmentVersion {
        id: None,
        name: None,
        properties: EnvironmentVersionProperties {
            image: Some("ubuntu:22.04".into()),
            ..Default::default()
        },
    };
    let err = ws
        .environment_version_create_or_update("train-env", "h1", &changed)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(409));
    assert!(!err.retryable(), "{err}");
    assert_eq!(
        recorder.count("environment_version.create_or_update"),
        3,
        "no retries of a 409"
    );
    fake.shutdown().await;
}

#[tokio::test]
async fn code_versions_by_hash_and_pending_upload() {
    let fake = FakeAzureMl::start(fast_options()).await.unwrap();
    let (ws, _) = client(&fake);
    let upload = ws
        .code_version_start_pending_upload("snap", "b3-1")
        .await
        .unwrap();
    assert!(upload.blob_uri.starts_with("http"), "{upload:?}");
    assert!(!format!("{upload:?}").contains(upload.sas_uri.expose()));
    assert!(upload.sas_uri.expose().contains("sig="));

    assert!(
        ws.code_version_list_by_hash("snap", "b3-1", "blake3")
            .await
            .unwrap()
            .is_empty()
    );
    let body = CodeVersion {
        id: None,
        name: None,
        properties: CodeVersionProperties {
            code_uri: Some(upload.blob_uri.clone()),
            is_anonymous: Some(true),
            base: ResourceBase {
                properties: BTreeMap::from([
                    ("hash_sha256".into(), "b3-1".into()),
                    ("hash_version".into(), "blake3".into()),
                ]),
                ..Default::default()
            },
            ..Default::default()
        },
    };
    ws.code_version_create_or_update("snap", "b3-1", &body)
        .await
        .unwrap();
    let found = ws
        .code_version_list_by_hash("snap", "b3-1", "blake3")
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].properties.code_uri.as_deref(),
        Some(upload.blob_uri.as_str())
    );
    assert!(
        ws.code_version_list_by_hash("snap", "other", "blake3")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(ws.code_version_get("snap", "b3-1").await.unwrap().is_some());
    fake.shutdown().await;
}

#[tokio::test]
async fn job_lifecycle_outcomes_cancel_and_list_by_tag() {
    let fake = FakeAzureMl::start(fast_options()).await.unwrap();
    let (ws, _) = client(&fake);
    let env = environment(&ws, "h1").await;
    // Azure refuses a job whose compute does not exist (UnknownTargetType).
    let bad = ws
        .job_create("job-nowhere", &command_job(env.clone(), &[]))
        .await;
    assert_eq!(bad.unwrap_err().code(), "UnknownTargetType");
    let handle = pending(
        ws.compute_create_or_update("cpu", &cluster(1))
            .await
            .unwrap(),
    );
    ws.arm().wait(&handle).await.unwrap();
    let tag = ("amlops.io/experiment", "ns.mnist");

    let created = ws
        .job_create("job-ok", &command_job(env.clone(), &[tag]))
        .await
        .unwrap();
    assert_eq!(created.name.as_deref(), Some("job-ok"));
    // a re-submit after a crash is a no-op
    ws.job_create("job-ok", &command_job(env.clone(), &[tag]))
        .await
        .unwrap();
    assert_eq!(
        wait_job(&ws, "job-ok", Duration::from_millis(20)).await,
        JobStatus::Completed
    );
    let job = ws.job_get("job-ok").await.unwrap().unwrap();
    let JobProperties::Command(c) = &job.properties else {
        panic!("{job:?}")
    };
    assert!(
        c.studio_url()
            .is_some_and(|u| u.starts_with("https://ml.azure.com/"))
    );
    assert_eq!(
        c.identity.as_ref().map(|i| i.identity_type.as_str()),
        Some("Managed")
    );
    assert_eq!(
        c.queue_settings
            .as_ref()
            .and_then(|q| q.job_tier.as_deref()),
        Some("Spot")
    );

    let failing = command_job(env.clone(), &[tag, ("fake.outcome", "Failed")]);
    ws.job_create("job-bad", &failing).await.unwrap();
    assert_eq!(
        wait_job(&ws, "job-bad", Duration::from_millis(20)).await,
        JobStatus::Failed
    );

    let long = command_job(
        env.clone(),
        &[
            ("amlops.io/experiment", "ns.other"),
            ("fake.outcome", "Running"),
        ],
    );
    ws.job_create("job-long", &long).await.unwrap();
    let handle = pending(ws.job_cancel("job-long").await.unwrap());
    assert_eq!(handle.kind, OperationKind::Location);
    ws.arm().wait(&handle).await.unwrap();
    assert_eq!(
        wait_job(&ws, "job-long", Duration::from_millis(20)).await,
        JobStatus::Canceled
    );

    let mut listed: Vec<String> = ws
        .job_list_by_tag(tag.0, tag.1)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|j| j.name)
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        ["job-bad", "job-ok"],
        "job-long has another tag value"
    );
    assert!(ws.job_get("no-such-job").await.unwrap().is_none());
    fake.shutdown().await;
}

#[tokio::test]
async fn throttling_is_retried_after_retry_after() {
    let fake = FakeAzureMl::start(Options {
        faults: Faults {
            throttle_ratio: 0.5,
            retry_after_secs: 1,
            seed: 7,
            ..Faults::default()
        },
        ..fast_options()
    })
    .await
    .unwrap();
    let (ws, recorder) = client(&fake);
    let start = Instant::now();
    for _ in 0..4 {
        ws.workspace_get().await.unwrap();
    }
    let throttled = recorder
        .calls()
        .iter()
        .filter(|(_, s)| *s == Some(429))
        .count();
    assert!(
        throttled >= 1,
        "seed 7 must throttle something: {:?}",
        recorder.calls()
    );
    assert_eq!(recorder.count("workspace.get"), 4 + throttled);
    // each 429 said Retry-After: 1 and the client waited at least that long
    assert!(start.elapsed() >= Duration::from_secs(throttled as u64));
    fake.shutdown().await;
}

#[tokio::test]
async fn persistent_throttling_gives_up_as_retryable() {
    let fake = FakeAzureMl::start(Options {
        faults: Faults {
            throttle_ratio: 1.0,
            retry_after_secs: 0,
            ..Faults::default()
        },
        ..fast_options()
    })
    .await
    .unwrap();
    let mut cfg = config(&fake);
    cfg.retry.max_retries = 3;
    let (ws, recorder) = client_with(cfg, &service_principal());
    let err = ws.compute_get("cpu").await.unwrap_err();
    assert_eq!(err.code(), "TooManyRequests", "{err}");
    assert!(err.retryable());
    assert_eq!(
        recorder.count("compute.get"),
        4,
        "one try plus three retries"
    );
    fake.shutdown().await;
}

#[tokio::test]
async fn a_spec_violation_is_a_human_problem_and_not_retried() {
    let fake = FakeAzureMl::start(fast_options()).await.unwrap();
    let (ws, recorder) = client(&fake);
    // scaleSettings without the required maxNodeCount
    let body =
        serde_json::json!({"properties": {"properties": {"scaleSettings": {"minNodeCount": 1}}}});
    let mut segments: Vec<String> = workspace()
        .resource_id()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    segments.extend(["computes".to_owned(), "cpu".to_owned()]);
    let request = ArmRequest::new("raw.patch", reqwest::Method::PATCH, segments)
        .json(&body)
        .unwrap();
    let err: AzureError = ws.arm().send(&request).await.unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert!(!err.retryable(), "{err}");
    assert!(err.to_string().contains("maxNodeCount"), "{err}");
    assert_eq!(recorder.count("raw.patch"), 1);
    fake.shutdown().await;
}

#[tokio::test]
async fn server_errors_and_dropped_connections_are_survived() {
    let fake = FakeAzureMl::start(Options {
        faults: Faults {
            server_error_ratio: 0.2,
            drop_ratio: 0.15,
            retry_after_secs: 0,
            seed: 42,
            ..Faults::default()
        },
        ..fast_options()
    })
    .await
    .unwrap();
    let (ws, recorder) = client(&fake);
    let env = environment(&ws, "h1").await;
    let handle = pending(
        ws.compute_create_or_update("cpu", &cluster(1))
            .await
            .unwrap(),
    );
    ws.arm().wait(&handle).await.unwrap();
    ws.job_create("job-1", &command_job(env, &[]))
        .await
        .unwrap();
    assert_eq!(
        wait_job(&ws, "job-1", Duration::from_millis(20)).await,
        JobStatus::Completed
    );
    let calls = recorder.calls();
    assert!(
        calls.iter().any(|(_, s)| matches!(s, Some(500 | 503))),
        "{calls:?}"
    );
    assert!(
        calls.iter().any(|(_, s)| s.is_none()),
        "a dropped connection: {calls:?}"
    );
    fake.shutdown().await;
}

/// The numbers for the closing note: ARM calls for one compute create
/// (including polls) and one job lifecycle, with the fake's and the client's default
/// timings (the job is polled at the client's minimum poll interval).
#[tokio::test]
async fn arm_calls_with_default_timings() {
    let fake = FakeAzureMl::start(Options::default()).await.unwrap();
    let mut cfg = config(&fake);
    cfg.polling = PollOptions::default();
    let (ws, _) = client_with(cfg, &service_principal());
    let env = environment(&ws, "h1").await;

    fake.reset();
    let handle = pending(
        ws.compute_create_or_update("cpu", &cluster(1))
            .await
            .unwrap(),
    );
    ws.arm().wait(&handle).await.unwrap();
    let compute_calls = arm_requests(&fake);

    fake.reset();
    ws.job_create("job-1", &command_job(env, &[]))
        .await
        .unwrap();
    let status = wait_job(&ws, "job-1", PollOptions::default().min_interval).await;
    assert_eq!(status, JobStatus::Completed);
    let job_calls = arm_requests(&fake);
    eprintln!(
        "ARM calls: compute create incl. polls = {compute_calls}, job lifecycle = {job_calls}"
    );
    // create + at least one poll; a job is one PUT plus GETs until terminal
    assert!(compute_calls >= 2, "{:?}", fake.requests());
    assert!(job_calls >= 2, "{:?}", fake.requests());
    fake.shutdown().await;
}

#[tokio::test]
async fn the_client_side_rate_limit_spaces_requests() {
    let fake = FakeAzureMl::start(fast_options()).await.unwrap();
    let mut cfg = config(&fake);
    cfg.budget = ArmBudget::new(every_kind(RateLimit {
        per_second: 20.0,
        burst: 1,
    }));
    let (ws, _) = client_with(cfg, &service_principal());
    let start = Instant::now();
    for _ in 0..11 {
        ws.workspace_get().await.unwrap();
    }
    // one free request, then ten at 20 per second
    assert!(
        start.elapsed() >= Duration::from_millis(500),
        "{:?}",
        start.elapsed()
    );
    fake.shutdown().await;
}

/// A `Retry-After` longer than a call may wait inside ends the call at once with that wait, and
/// holds back every client of the same config on that subscription without a request: a 429
/// never turns into more requests.
#[tokio::test]
async fn a_long_retry_after_returns_at_once_and_holds_back_the_whole_subscription() {
    let fake = FakeAzureMl::start(Options {
        faults: Faults {
            throttle_ratio: 1.0,
            retry_after_secs: 3,
            ..Faults::default()
        },
        ..fast_options()
    })
    .await
    .unwrap();
    let cfg = config(&fake);
    let (ws, recorder) = client_with(cfg.clone(), &service_principal());
    let err = ws.workspace_get().await.unwrap_err();
    assert_eq!(err.code(), "TooManyRequests", "{err}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
    assert_eq!(
        recorder.count("workspace.get"),
        1,
        "no retry inside the call"
    );
    let sent = arm_requests(&fake);

    // Another client (another workspace, same subscription, same config): held back unsent.
    let (other, other_recorder) = client_with(cfg, &service_principal());
    let err = other.compute_get("cpu").await.unwrap_err();
    assert_eq!(err.code(), "ArmRequestBudgetSpent", "{err}");
    assert!(err.retryable());
    let wait = err.retry_after().unwrap();
    assert!(
        wait > Duration::from_secs(1) && wait <= Duration::from_secs(3),
        "{wait:?}"
    );
    assert_eq!(arm_requests(&fake), sent, "{:?}", fake.requests());
    assert!(other_recorder.calls().is_empty());
    fake.shutdown().await;
}

/// The remaining write count ARM reports lowers the client's budget: with the subscription's
/// writes spent elsewhere, the next write is held back unsent while reads still go.
#[tokio::test]
async fn the_remaining_writes_arm_reports_hold_back_the_next_write() {
    let fake = FakeAzureMl::start(Options {
        subscription_budget: fake_azureml::SubscriptionBudget {
            writes: fake_azureml::Bucket {
                size: 1.0,
                per_second: 0.01,
            },
            ..Default::default()
        },
        ..fast_options()
    })
    .await
    .unwrap();
    let mut cfg = config(&fake);
    // Without the header this client could send 100 writes at once; one token takes 5 s.
    cfg.budget = ArmBudget::new(BudgetLimits {
        writes: RateLimit {
            per_second: 0.2,
            burst: 100,
        },
        ..*cfg.budget.limits()
    });
    let (ws, _) = client_with(cfg, &service_principal());
    environment(&ws, "h1").await;
    let puts = fake.count("PUT", "/environments/");
    let env = EnvironmentVersion {
        id: None,
        name: None,
        properties: EnvironmentVersionProperties {
            image: Some("mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04".into()),
            ..Default::default()
        },
    };
    let err = ws
        .environment_version_create_or_update("train-env", "h2", &env)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "ArmRequestBudgetSpent", "{err}");
    assert!(err.retry_after().unwrap() > Duration::from_secs(1), "{err}");
    assert_eq!(
        fake.count("PUT", "/environments/"),
        puts,
        "held back unsent"
    );
    ws.workspace_get().await.unwrap();
    fake.shutdown().await;
}

/// A run's log file read by byte range (what the log tail of a failed run and `logs -f` do):
/// a bounded read never transfers more than asked, and a read from an offset resumes there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_files_are_read_by_byte_range() {
    let azurite = fake_azureml::azurite::Azurite::start();
    let fake = FakeAzureMl::start(fast_options()).await.unwrap();
    let (ws, _) = client(&fake);
    azurite.create_container("logs");
    let sas = azurite.container_sas_url("logs", Duration::from_secs(600));
    let container = amlops::azure::blob::BlobContainer::from_sas_url(&sas).unwrap();
    let log: String = (0..2000).map(|i| format!("line {i}\n")).collect();
    container
        .put_blob("std_log.txt", bytes::Bytes::from(log.clone()))
        .await
        .unwrap();
    let (base, query) = sas.split_once('?').unwrap();
    let url = format!("{base}/std_log.txt?{query}");

    let head = ws.read_log(&url, 0, Some(2048)).await.unwrap();
    assert_eq!(head.bytes.len(), 2048);
    assert_eq!(head.total, Some(log.len() as u64));
    let from = log.len() as u64 - 10;
    let tail = ws.read_log(&url, from, None).await.unwrap();
    assert_eq!(tail.bytes, log.as_bytes()[log.len() - 10..]);
    // Nothing past the end yet is an empty chunk, not an error.
    let past = ws.read_log(&url, log.len() as u64, None).await.unwrap();
    assert!(past.bytes.is_empty());
    fake.shutdown().await;
}
