//! Scenario harness: the real controllers against fake-kube (Kubernetes API) and
//! fake-azureml (ARM + token endpoint over HTTPS), all in this process.

#![allow(dead_code)] // each scenario file uses a different part of the harness

use std::sync::Arc;
use std::time::Duration;

use amlops::azure::ArmConfig;
use amlops::azure::http::HttpOptions;
use amlops::azure::lro::PollOptions;
use amlops::controller::{Metrics, Settings, run_controllers};
use fake_azureml::FakeAzureMl;
use fake_kube::FakeKube;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub const NS: &str = "ml";
pub const AMLOPS: &str = "amlops.io/v1alpha1";
pub const SUBSCRIPTION: &str = "00000000-0000-0000-0000-000000000001";
/// The service principal's client secret: must never show up in any object.
pub const SP_SECRET: &str = "sp-client-secret-value-7f3a";
/// The leader-election Lease of [`Env::start_leading`].
pub const LEASE: &str = "amlops-controller";
pub const LEASE_NAMESPACE: &str = "amlops-system";

pub struct Env {
    pub kube: FakeKube,
    pub azure: FakeAzureMl,
    pub metrics: Arc<Metrics>,
    controllers: Option<(watch::Sender<bool>, JoinHandle<anyhow::Result<()>>)>,
    /// Whether `local` targets run as Jobs (the operator's default) or are refused.
    pub local_jobs: bool,
}

pub fn fast_azure() -> fake_azureml::Options {
    fake_azureml::Options {
        compute_provision_delay: Duration::from_millis(300),
        ..Default::default()
    }
}

impl Env {
    pub async fn start(options: fake_azureml::Options) -> Env {
        Self::start_with(options, true).await
    }

    /// With `local_jobs` false, as the operator runs with `--disable-local-jobs`.
    pub async fn start_with(options: fake_azureml::Options, local_jobs: bool) -> Env {
        let mut env = Self::without_controllers(options, local_jobs).await;
        env.start_controllers();
        env
    }

    /// As [`Env::start`], with the controllers running only while holding the leader-election
    /// Lease `LEASE` in `LEASE_NAMESPACE` as `identity`, the way the operator's pod runs them.
    pub async fn start_leading(options: fake_azureml::Options, identity: &str) -> Env {
        let mut env = Self::without_controllers(options, true).await;
        let (tx, rx) = watch::channel(false);
        let lease = amlops::controller::leader::Lease {
            name: LEASE.into(),
            namespace: LEASE_NAMESPACE.into(),
            identity: identity.into(),
        };
        let (client, settings, metrics) = (env.client(), env.settings(), env.metrics.clone());
        let task = tokio::spawn(amlops::controller::leader::run_as_leader(
            client,
            lease,
            Arc::new(std::sync::atomic::AtomicBool::new(false)),
            rx,
            tx.clone(),
            move |client, rx| run_controllers(client, settings, metrics, rx),
        ));
        env.controllers = Some((tx, task));
        env
    }

    /// The fake API server and Azure ML only; whoever uses it starts the controllers.
    pub async fn without_controllers(options: fake_azureml::Options, local_jobs: bool) -> Env {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let kube = FakeKube::start().await.unwrap();
        let azure = FakeAzureMl::start(options).await.unwrap();
        Env {
            kube,
            azure,
            metrics: Arc::new(Metrics::default()),
            controllers: None,
            local_jobs,
        }
    }

    pub fn client(&self) -> kube::Client {
        let config = kube::Config::new(self.kube.url().parse().unwrap());
        kube::Client::try_from(config).unwrap()
    }

    /// The controllers' settings: the test namespace, and the fake's CA with fast LRO polling.
    pub fn settings(&self) -> Settings {
        Settings {
            namespaces: vec![NS.to_string()],
            concurrency: 4,
            resync_period: Duration::from_secs(3600),
            enable_kubernetes_compute: false,
            local_jobs: self.local_jobs,
            arm: ArmConfig {
                http: HttpOptions {
                    extra_ca_pem: vec![self.azure.ca_pem()],
                    use_ssl_cert_file: false,
                    ..HttpOptions::default()
                },
                polling: PollOptions {
                    default_interval: Duration::from_millis(200),
                    min_interval: Duration::from_millis(100),
                    max_interval: Duration::from_secs(1),
                },
                ..ArmConfig::default()
            },
            instance: Some("test".into()),
        }
    }

    pub fn start_controllers(&mut self) {
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(run_controllers(
            self.client(),
            self.settings(),
            self.metrics.clone(),
            rx,
        ));
        self.controllers = Some((tx, task));
    }

    /// Stops the controllers the way SIGTERM does (graceful shutdown) and waits for them.
    pub async fn stop_controllers(&mut self) {
        if let Some((tx, task)) = self.controllers.take() {
            let _ = tx.send(true);
            tokio::time::timeout(Duration::from_secs(20), task)
                .await
                .expect("controllers stop within 20s")
                .unwrap()
                .unwrap();
        }
    }

    /// A service-principal Secret and a Workspace pointing at the fake.
    pub fn workspace(&self, name: &str, workspace_name: &str, resync: Option<&str>) {
        let _ = self.kube.create(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "sp", "namespace": NS},
            "stringData": {"AZURE_TENANT_ID": "tenant-1", "AZURE_CLIENT_ID": "client-1", "AZURE_CLIENT_SECRET": SP_SECRET},
        }));
        let mut spec = json!({
            "subscriptionId": SUBSCRIPTION, "resourceGroup": "rg1", "workspaceName": workspace_name,
            "credential": {"servicePrincipal": {"secretRef": {"name": "sp"}}},
            "endpoints": {"resourceManager": self.azure.arm_endpoint(), "authorityHost": self.azure.authority_host()},
        });
        if let Some(blob) = self.azure.blob_endpoint() {
            spec["endpoints"]["blobStorage"] = json!(blob);
        }
        if let Some(r) = resync {
            spec["resyncPeriod"] = json!(r);
        }
        self.kube.create(json!({"apiVersion": AMLOPS, "kind": "Workspace", "metadata": {"name": name, "namespace": NS}, "spec": spec})).unwrap();
    }

    pub fn compute_target(&self, name: &str, spec: Value) {
        self.kube.create(json!({"apiVersion": AMLOPS, "kind": "ComputeTarget", "metadata": {"name": name, "namespace": NS}, "spec": spec})).unwrap();
    }

    /// Creates an amlops object of `kind` in the test namespace, as `kubectl create` would.
    pub fn create(&self, kind: &str, name: &str, spec: Value) {
        self.kube
            .create(json!({"apiVersion": AMLOPS, "kind": kind, "metadata": {"name": name, "namespace": NS}, "spec": spec}))
            .unwrap();
    }

    /// Reconciles of `kind` the controllers finished so far (their metrics).
    pub fn reconciles(&self, kind: &str) -> u64 {
        let prefix = format!("amlops_reconciles_total{{kind=\"{kind}\"}} ");
        self.metrics
            .encode()
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Kubernetes API requests with `verb` on `resource` (e.g. `get`, `secrets`) so far.
    pub fn kube_calls(&self, verb: &str, resource: &str) -> usize {
        self.kube
            .requests()
            .iter()
            .filter(|r| r.verb == verb && r.resource == resource)
            .count()
    }

    pub fn get(&self, kind: &str, name: &str) -> Option<Value> {
        self.kube.get(AMLOPS, kind, NS, name)
    }

    /// Waits until the object satisfies `pred`; panics with the last state after `secs`.
    pub async fn wait_for(
        &self,
        kind: &str,
        name: &str,
        secs: u64,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let obj = self.get(kind, name);
            if let Some(o) = &obj
                && pred(o)
            {
                return o.clone();
            }
            if tokio::time::Instant::now() > deadline {
                panic!("{kind} {name} did not reach the expected state in {secs}s; last: {obj:#?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn wait_gone(&self, kind: &str, name: &str, secs: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        while self.get(kind, name).is_some() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{kind} {name} still exists after {secs}s: {:#?}",
                self.get(kind, name)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Events recorded for an object, as (type, reason, note).
    pub fn events(&self, name: &str) -> Vec<(String, String, String)> {
        self.kube
            .list("events.k8s.io/v1", "Event", Some(NS))
            .iter()
            .filter(|e| e["regarding"]["name"] == name)
            .map(|e| {
                (
                    e["type"].as_str().unwrap_or("").to_string(),
                    e["reason"].as_str().unwrap_or("").to_string(),
                    e["note"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    /// Waits for an event of `type_` with `reason` about `name`.
    pub async fn wait_for_event(&self, name: &str, type_: &str, reason: &str, secs: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        while !self
            .events(name)
            .iter()
            .any(|(t, r, _)| t == type_ && r == reason)
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {type_} {reason} event for {name}: {:#?}",
                self.events(name)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the fake Azure ML has seen more than `seen` requests with `method` on a
    /// path containing `path`; panics after `secs`.
    pub async fn wait_for_azure_calls(&self, method: &str, path: &str, seen: usize, secs: u64) {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        while self.azure.count(method, path) <= seen {
            assert!(
                std::time::Instant::now() < deadline,
                "no new {method} {path} within {secs}s: {:#?}",
                self.azure.requests()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// ARM requests with `method` whose path contains `/computes/` (polls excluded).
    pub fn compute_calls(&self, method: &str) -> usize {
        self.azure.count(method, "/computes/")
    }

    pub fn arm_writes(&self) -> usize {
        self.azure
            .requests()
            .iter()
            .filter(|r| {
                r.method != "GET" && !r.path.contains("listNodes") && !r.path.contains("oauth2")
            })
            .count()
    }
}

/// Condition `type_` of an object: (status, reason).
pub fn condition(obj: &Value, type_: &str) -> Option<(String, String)> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .map(|c| {
            (
                c["status"].as_str().unwrap_or("").to_string(),
                c["reason"].as_str().unwrap_or("").to_string(),
            )
        })
}

pub fn is_ready(obj: &Value) -> bool {
    condition(obj, "Ready").is_some_and(|(s, _)| s == "True")
}

pub fn has_reason(obj: &Value, type_: &str, reason: &str) -> bool {
    condition(obj, type_).is_some_and(|(s, r)| s == "True" && r == reason)
}

pub fn aml(min: i32, max: i32) -> Value {
    json!({"workspaceRef": {"name": "ws"}, "amlCompute": {"vmSize": "STANDARD_D2_V2", "minNodes": min, "maxNodes": max}})
}

/// One rule of tests/deploy/expected-rbac.yaml.
#[derive(serde::Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
struct Rule {
    api_group: String,
    resource: String,
    verbs: Vec<String>,
    scope: String,
    #[serde(default)]
    when: Option<String>,
}

/// Fails if the controllers made a Kubernetes API call that the RBAC the chart renders (the
/// rule list in tests/deploy/expected-rbac.yaml, with leader election off and local jobs as
/// the scenario runs) does not allow in the watched namespace.
pub fn assert_rbac_allows(env: &Env) {
    let calls = env.kube.requests();
    assert!(!calls.is_empty());
    let features: &[&str] = if env.local_jobs { &["localJobs"] } else { &[] };
    let denied = rbac_denied(&calls, features);
    assert!(
        denied.is_empty(),
        "calls the RBAC does not allow: {denied:#?}"
    );
}

/// The calls the namespace rules of tests/deploy/expected-rbac.yaml do not allow in the
/// watched namespace, with the optional `features` (their `when:` names) on.
pub fn rbac_denied<'a>(
    calls: &'a [fake_kube::RequestRecord],
    features: &[&str],
) -> Vec<&'a fake_kube::RequestRecord> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/deploy/expected-rbac.yaml"
    ))
    .unwrap();
    let rules: Vec<Rule> = serde_saphyr::from_str(&text).unwrap();
    let rules: Vec<&Rule> = rules
        .iter()
        .filter(|r| r.when.as_deref().is_none_or(|w| features.contains(&w)))
        .filter(|r| r.scope == "namespace")
        .collect();
    calls
        .iter()
        .filter(|c| {
            c.namespace != NS
                || !rules.iter().any(|r| {
                    r.api_group == c.group && r.resource == c.resource && r.verbs.contains(&c.verb)
                })
        })
        .collect()
}
