//! The Job backend's API calls against the fake API server: a run is submitted exactly once
//! (ConfigMap, Job, then the ConfigMap handed to the Job), read back from its Job and pod,
//! and cancelled by deleting both — with only the calls the chart's RBAC grants.

mod controller_support;

use amlops::actions::kube_job::KubeJobs;
use amlops::actions::kube_job::names::SNAPSHOT_ANNOTATION;
use amlops::reconcile::experiment::RunState;
use fake_kube::{FakeKube, RequestRecord};
use k8s_openapi::ByteString;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::{Value, json};

use controller_support::{NS, rbac_denied};

const RUN: &str = "train-2-0123456789";

fn client(kube: &FakeKube) -> kube::Client {
    kube::Client::try_from(kube::Config::new(kube.url().parse().unwrap())).unwrap()
}

/// The fake API server with the Experiment that owns the run: the garbage collector deletes
/// objects whose owner does not exist, as a real cluster's does.
async fn start() -> (FakeKube, String) {
    let kube = FakeKube::start().await.unwrap();
    let exp = kube
        .create(
            json!({"apiVersion": "amlops.io/v1alpha1", "kind": "Experiment",
                       "metadata": {"name": "train", "namespace": NS}, "spec": {}}),
        )
        .unwrap();
    let uid = exp["metadata"]["uid"].as_str().unwrap().to_string();
    (kube, uid)
}

/// A run's two objects.
struct Submission {
    config_map: ConfigMap,
    job: Job,
}

/// A run's two objects as `KubeJobRuns` makes them (the shape matters here, not the
/// pod spec), owned by the Experiment `uid`.
fn submission(snapshot: &str, uid: &str) -> Submission {
    let owner = json!([{"apiVersion": "amlops.io/v1alpha1", "kind": "Experiment", "name": "train",
                        "uid": uid, "controller": true, "blockOwnerDeletion": true}]);
    let labels = json!({"app.kubernetes.io/managed-by": "amlops", "amlops.io/run-id": RUN});
    let config_map: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": RUN, "namespace": NS, "labels": labels, "ownerReferences": owner,
                     "annotations": {SNAPSHOT_ANNOTATION: snapshot}},
        "immutable": true,
    }))
    .unwrap();
    let config_map = ConfigMap {
        binary_data: Some(
            [(
                "source.tar.gz".to_string(),
                ByteString(snapshot.as_bytes().to_vec()),
            )]
            .into(),
        ),
        ..config_map
    };
    let job: Job = serde_json::from_value(json!({
        "metadata": {"name": RUN, "namespace": NS, "labels": labels, "ownerReferences": owner,
                     "annotations": {SNAPSHOT_ANNOTATION: snapshot}},
        "spec": {"backoffLimit": 0, "activeDeadlineSeconds": 600, "template": {"metadata": {"labels": labels}, "spec": {"restartPolicy": "Never", "containers": [{"name": "run", "image": "python:3.12-slim"}]}}}
    }))
    .unwrap();
    Submission { config_map, job }
}

fn writes(kube: &FakeKube) -> Vec<(String, String)> {
    kube.requests()
        .into_iter()
        .filter(|r: &RequestRecord| !matches!(r.verb.as_str(), "get" | "list" | "watch"))
        .map(|r| (r.verb, r.resource))
        .collect()
}

fn config_map_owner(kube: &FakeKube) -> Value {
    kube.get("v1", "ConfigMap", NS, RUN).unwrap()["metadata"]["ownerReferences"].clone()
}

#[tokio::test]
async fn a_run_is_submitted_once_and_its_config_map_goes_to_the_job() {
    let (kube, uid) = start().await;
    let jobs = KubeJobs::new(client(&kube), NS);
    assert_eq!(jobs.observe(RUN).await.unwrap(), None);
    let s = submission("snap-1", &uid);
    jobs.submit(s.job.clone(), s.config_map.clone())
        .await
        .unwrap();
    assert_eq!(
        writes(&kube),
        [
            ("create".to_string(), "configmaps".to_string()),
            ("create".to_string(), "jobs".to_string()),
            ("patch".to_string(), "configmaps".to_string())
        ]
    );
    let job = kube.get("batch/v1", "Job", NS, RUN).unwrap();
    let uid = job["metadata"]["uid"].as_str().unwrap().to_string();
    assert_eq!(
        config_map_owner(&kube),
        json!([{"apiVersion": "batch/v1", "kind": "Job", "name": RUN, "uid": uid, "controller": true}])
    );
    let cm = kube.get("v1", "ConfigMap", NS, RUN).unwrap();
    assert_eq!(cm["immutable"], true);
    assert_eq!(
        cm["binaryData"]["source.tar.gz"], "c25hcC0x",
        "base64 of snap-1"
    );

    // A restart submits again: the Job that exists is the run; nothing new is created.
    kube.clear_requests();
    jobs.submit(s.job, s.config_map).await.unwrap();
    assert_eq!(kube.list("batch/v1", "Job", Some(NS)).len(), 1);
    assert_eq!(
        kube.get("batch/v1", "Job", NS, RUN).unwrap()["metadata"]["uid"],
        uid.as_str()
    );
    assert_eq!(config_map_owner(&kube)[0]["uid"], uid.as_str());
    assert!(
        !writes(&kube).contains(&("delete".to_string(), "configmaps".to_string())),
        "the submitted run's ConfigMap is kept"
    );
}

#[tokio::test]
async fn a_config_map_of_another_snapshot_left_before_the_job_existed_is_replaced() {
    let (kube, uid) = start().await;
    let jobs = KubeJobs::new(client(&kube), NS);
    let stale = submission("snap-old", &uid);
    kube.create(serde_json::to_value(&stale.config_map).unwrap())
        .unwrap();
    let s = submission("snap-new", &uid);
    jobs.submit(s.job, s.config_map).await.unwrap();
    let cm = kube.get("v1", "ConfigMap", NS, RUN).unwrap();
    assert_eq!(
        cm["metadata"]["annotations"][SNAPSHOT_ANNOTATION],
        "snap-new"
    );
    assert_eq!(config_map_owner(&kube)[0]["kind"], "Job");
}

#[tokio::test]
async fn a_run_is_read_from_its_job_and_pod_and_cancel_deletes_both_objects() {
    let (kube, uid) = start().await;
    let jobs = KubeJobs::new(client(&kube), NS);
    let s = submission("snap-1", &uid);
    jobs.submit(s.job, s.config_map).await.unwrap();
    let seen = jobs.observe(RUN).await.unwrap().unwrap();
    assert_eq!(seen.state, Some(RunState::Queued), "no pod yet");
    assert_eq!(seen.snapshot_id.as_deref(), Some("snap-1"));

    kube.start_job(NS, RUN).unwrap();
    let seen = jobs.observe(RUN).await.unwrap().unwrap();
    assert_eq!(seen.state, Some(RunState::Running));
    let started = kube.get("batch/v1", "Job", NS, RUN).unwrap()["status"]["startTime"].clone();
    assert_eq!(
        seen.started_at.map(|t| t.to_string()),
        started.as_str().map(str::to_string)
    );

    kube.exceed_job_deadline(NS, RUN).unwrap();
    let seen = jobs.observe(RUN).await.unwrap().unwrap();
    assert_eq!(seen.state, Some(RunState::Failed));
    assert_eq!(seen.error.unwrap().code, "Timeout");

    kube.clear_requests();
    jobs.cancel(RUN).await.unwrap();
    assert!(kube.get("batch/v1", "Job", NS, RUN).is_none());
    assert!(kube.get("v1", "ConfigMap", NS, RUN).is_none());
    assert_eq!(jobs.observe(RUN).await.unwrap(), None);
    jobs.cancel(RUN).await.unwrap();
    assert_eq!(
        writes(&kube).iter().filter(|w| w.0 == "delete").count(),
        4,
        "a second cancel finds nothing and is content"
    );
}

#[tokio::test]
async fn every_call_is_one_the_local_jobs_rbac_grants() {
    let (kube, uid) = start().await;
    let jobs = KubeJobs::new(client(&kube), NS);
    let stale = submission("snap-old", &uid);
    kube.create(serde_json::to_value(&stale.config_map).unwrap())
        .unwrap();
    let s = submission("snap-new", &uid);
    jobs.submit(s.job.clone(), s.config_map.clone())
        .await
        .unwrap();
    jobs.submit(s.job, s.config_map).await.unwrap();
    kube.start_job(NS, RUN).unwrap();
    jobs.observe(RUN).await.unwrap();
    jobs.log_tail(RUN, 2048).await.unwrap();
    jobs.cancel(RUN).await.unwrap();
    let calls = kube.requests();
    let verbs: std::collections::BTreeSet<_> = calls
        .iter()
        .map(|c| (c.verb.as_str(), c.resource.as_str()))
        .collect();
    for call in [
        ("create", "jobs"),
        ("patch", "configmaps"),
        ("delete", "configmaps"),
        ("list", "pods"),
        ("get", "pods/log"),
    ] {
        assert!(verbs.contains(&call), "{call:?} not exercised: {verbs:?}");
    }
    assert_eq!(
        rbac_denied(&calls, &["localJobs"]),
        Vec::<&RequestRecord>::new()
    );
    assert!(
        !rbac_denied(&calls, &[]).is_empty(),
        "the same calls need the localJobs rules"
    );
}
