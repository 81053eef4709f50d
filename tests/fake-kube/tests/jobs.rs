//! batch/v1 Jobs, their pods, garbage collection and pod logs on fake-kube, through a real
//! `kube::Client`, as the Job backend will use them.

use std::time::Duration;

use fake_kube::{FakeKube, Propagation};
use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, LogParams, Patch,
    PatchParams, PostParams, WatchEvent, WatchParams,
};
use serde_json::{Value, json};

const NS: &str = "ml";
const EXPERIMENT_API: &str = "amlops.io/v1alpha1";

/// An Experiment-like owner named `train`.
fn experiment(kube: &FakeKube, finalizers: Value) -> Value {
    kube.create(json!({"apiVersion": EXPERIMENT_API, "kind": "Experiment",
                       "metadata": {"name": "train", "namespace": NS, "finalizers": finalizers}}))
        .expect("the Experiment is created")
}

/// The reference a controller puts on what it creates for `owner`.
fn owned_by(owner: &Value) -> Vec<OwnerReference> {
    serde_json::from_value(
        json!([{"apiVersion": owner["apiVersion"], "kind": owner["kind"],
        "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
        "controller": true, "blockOwnerDeletion": true}]),
    )
    .expect("an owner reference")
}

fn client(kube: &FakeKube) -> kube::Client {
    let config = kube::Config::new(kube.url().parse().expect("the fake's URL"));
    kube::Client::try_from(config).expect("a client for the fake")
}

fn job_manifest(name: &str, spec: Value) -> Job {
    let mut spec = spec;
    spec["template"] = json!({"spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "python:3.12"}]}});
    serde_json::from_value(
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": spec}),
    )
    .expect("a Job")
}

async fn create_job(kube: &FakeKube, name: &str, spec: Value) -> Job {
    let jobs: Api<Job> = Api::namespaced(client(kube), NS);
    jobs.create(&PostParams::default(), &job_manifest(name, spec))
        .await
        .expect("the Job is created")
}

fn job(kube: &FakeKube, name: &str) -> Value {
    kube.get("batch/v1", "Job", NS, name)
        .expect("the Job exists")
}

fn pod(kube: &FakeKube, name: &str) -> Option<Value> {
    kube.get("v1", "Pod", NS, name)
}

/// The `(type, status, reason)` of each condition, in order.
fn conditions(obj: &Value) -> Vec<(String, String, String)> {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    let s = |f: &str| c[f].as_str().unwrap_or_default().to_string();
                    (s("type"), s("status"), s("reason"))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn cond(kind: &str, status: &str, reason: &str) -> (String, String, String) {
    (kind.into(), status.into(), reason.into())
}

/// Fails instead of hanging when a stream the test waits on never delivers.
async fn soon<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen"))
}

#[tokio::test]
async fn a_job_runs_to_completion_with_its_pod_selected_by_the_job_name() {
    let kube = FakeKube::start().await.unwrap();
    let created = create_job(&kube, "run-1", json!({})).await;
    let uid = created
        .metadata
        .uid
        .clone()
        .expect("the apiserver fills the uid");
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.metadata.creation_timestamp.is_some());
    let spec = created.spec.expect("a spec");
    assert_eq!(spec.backoff_limit, Some(6));
    let selected = spec
        .selector
        .and_then(|s| s.match_labels)
        .unwrap_or_default();
    assert_eq!(
        selected.get("batch.kubernetes.io/controller-uid"),
        Some(&uid)
    );
    assert!(kube.pods(NS).is_empty(), "the fake runs no Job by itself");

    let pod_name = kube.start_job(NS, "run-1").unwrap();
    assert!(pod_name.starts_with("run-1-") && pod_name.len() == "run-1-".len() + 5);
    let pods: Api<Pod> = Api::namespaced(client(&kube), NS);
    let selected = pods
        .list(&ListParams::default().labels("batch.kubernetes.io/job-name=run-1"))
        .await
        .unwrap();
    assert_eq!(selected.items.len(), 1);
    let p = &selected.items[0];
    assert_eq!(p.metadata.name.as_deref(), Some(pod_name.as_str()));
    let owner = &p.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("Job", uid.as_str())
    );
    assert_eq!(owner.controller, Some(true));
    assert_eq!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Running")
    );
    let other = pods
        .list(&ListParams::default().labels("batch.kubernetes.io/job-name=run-2"))
        .await
        .unwrap();
    assert!(other.items.is_empty(), "the selector filters");
    let running = job(&kube, "run-1");
    assert_eq!(running["status"]["active"], 1);
    assert!(running["status"]["startTime"].is_string());

    kube.complete_job(NS, "run-1", "loss 0.1\n").unwrap();
    let jobs: Api<Job> = Api::namespaced(client(&kube), NS);
    let done = jobs.get("run-1").await.unwrap();
    let status = done.status.expect("a status");
    assert_eq!(status.succeeded, Some(1));
    assert_eq!(status.active, None, "active is omitted at 0");
    assert!(status.completion_time.is_some());
    assert_eq!(
        conditions(&job(&kube, "run-1")),
        [
            cond("SuccessCriteriaMet", "True", "CompletionsReached"),
            cond("Complete", "True", "CompletionsReached")
        ]
    );
    let finished = pod(&kube, &pod_name).expect("a finished pod stays");
    assert_eq!(finished["status"]["phase"], "Succeeded");
    assert_eq!(
        finished["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
        0
    );
    let log = pods.logs(&pod_name, &LogParams::default()).await.unwrap();
    assert_eq!(log, "loss 0.1\n");
    assert!(
        kube.start_job(NS, "run-1").is_err(),
        "a finished Job runs no more pods"
    );
}

#[tokio::test]
async fn a_failed_job_carries_the_termination_message_and_the_backoff_reason() {
    let kube = FakeKube::start().await.unwrap();
    create_job(&kube, "run-1", json!({"backoffLimit": 0})).await;
    let pod_name = kube.start_job(NS, "run-1").unwrap();
    kube.fail_job(
        NS,
        "run-1",
        3,
        "ValueError: bad learning rate",
        "Traceback ...\n",
    )
    .unwrap();
    let failed = pod(&kube, &pod_name).unwrap();
    assert_eq!(failed["status"]["phase"], "Failed");
    let terminated = &failed["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(terminated["exitCode"], 3);
    assert_eq!(terminated["reason"], "Error");
    assert_eq!(terminated["message"], "ValueError: bad learning rate");
    let j = job(&kube, "run-1");
    assert_eq!(j["status"]["failed"], 1);
    assert!(
        j["status"].get("completionTime").is_none(),
        "only success sets it"
    );
    assert_eq!(
        conditions(&j),
        [
            cond("FailureTarget", "True", "BackoffLimitExceeded"),
            cond("Failed", "True", "BackoffLimitExceeded")
        ]
    );
    assert!(
        kube.fail_job(NS, "run-1", 1, "", "").is_err(),
        "nothing runs any more"
    );
}

#[tokio::test]
async fn below_the_backoff_limit_a_failed_pod_waits_for_its_replacement() {
    let kube = FakeKube::start().await.unwrap();
    let mut manifest = job_manifest("run-1", json!({"backoffLimit": 1}));
    let main = &mut manifest
        .spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers[0];
    main.termination_message_policy = Some("FallbackToLogsOnError".into());
    let jobs: Api<Job> = Api::namespaced(client(&kube), NS);
    jobs.create(&PostParams::default(), &manifest)
        .await
        .unwrap();

    let first = kube.start_job(NS, "run-1").unwrap();
    kube.fail_job(NS, "run-1", 1, "", "step 1\nout of memory\n")
        .unwrap();
    let message = &pod(&kube, &first).unwrap()["status"]["containerStatuses"][0]["state"]["terminated"]
        ["message"];
    assert_eq!(message, "step 1\nout of memory\n", "the log tail stands in");
    let j = job(&kube, "run-1");
    assert_eq!(j["status"]["failed"], 1);
    assert!(
        conditions(&j).is_empty(),
        "one failure is within backoffLimit 1"
    );

    let second = kube.start_job(NS, "run-1").unwrap();
    assert_ne!(first, second);
    kube.fail_job(NS, "run-1", 1, "again", "").unwrap();
    assert_eq!(
        conditions(&job(&kube, "run-1")).last(),
        Some(&cond("Failed", "True", "BackoffLimitExceeded"))
    );
}

#[tokio::test]
async fn deleting_the_owner_in_the_background_removes_its_job_pod_and_snapshot() {
    let kube = FakeKube::start().await.unwrap();
    let exp = experiment(&kube, json!([]));
    let mut manifest = job_manifest("run-1", json!({}));
    manifest.metadata.owner_references = Some(owned_by(&exp));
    let jobs: Api<Job> = Api::namespaced(client(&kube), NS);
    let j = jobs
        .create(&PostParams::default(), &manifest)
        .await
        .unwrap();
    let snapshot: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "run-1-snapshot",
        "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "run-1", "uid": j.metadata.uid}]},
        "binaryData": {"snapshot.tar.gz": "H4sI"}}))
    .unwrap();
    let maps: Api<ConfigMap> = Api::namespaced(client(&kube), NS);
    maps.create(&PostParams::default(), &snapshot)
        .await
        .unwrap();
    let pod_name = kube.start_job(NS, "run-1").unwrap();

    let gvk = GroupVersionKind::gvk("amlops.io", "v1alpha1", "Experiment");
    let experiments: Api<DynamicObject> =
        Api::namespaced_with(client(&kube), NS, &ApiResource::from_gvk(&gvk));
    experiments
        .delete("train", &DeleteParams::background())
        .await
        .unwrap();
    assert!(
        kube.get(EXPERIMENT_API, "Experiment", NS, "train")
            .is_none()
    );
    assert!(kube.jobs(NS).is_empty(), "the Job follows its owner");
    assert!(
        pod(&kube, &pod_name).is_none(),
        "and its pod follows the Job"
    );
    assert!(maps.get_opt("run-1-snapshot").await.unwrap().is_none());
    assert!(
        kube.requests()
            .iter()
            .any(|r| r.verb == "delete" && r.group == "amlops.io" && r.resource == "experiments")
    );
}

#[tokio::test]
async fn a_job_deleted_without_a_policy_orphans_its_pod_and_background_does_not() {
    let kube = FakeKube::start().await.unwrap();
    let jobs: Api<Job> = Api::namespaced(client(&kube), NS);
    for name in ["orphaning", "cascading"] {
        create_job(&kube, name, json!({})).await;
    }
    let orphan = kube.start_job(NS, "orphaning").unwrap();
    let cascaded = kube.start_job(NS, "cascading").unwrap();

    jobs.delete("orphaning", &DeleteParams::default())
        .await
        .unwrap();
    let left = pod(&kube, &orphan).expect("batch/v1 orphans pods by default");
    assert!(left["metadata"].get("ownerReferences").is_none());

    jobs.delete("cascading", &DeleteParams::background())
        .await
        .unwrap();
    assert!(pod(&kube, &cascaded).is_none());
    assert!(kube.jobs(NS).is_empty());
}

#[tokio::test]
async fn an_owner_with_a_finalizer_keeps_its_job_until_the_finalizer_goes() {
    let kube = FakeKube::start().await.unwrap();
    let exp = experiment(&kube, json!(["amlops.io/cleanup"]));
    let mut manifest = job_manifest("run-1", json!({}));
    manifest.metadata.owner_references = Some(owned_by(&exp));
    Api::<Job>::namespaced(client(&kube), NS)
        .create(&PostParams::default(), &manifest)
        .await
        .unwrap();
    kube.delete(EXPERIMENT_API, "Experiment", NS, "train")
        .unwrap();
    assert_eq!(
        kube.jobs(NS).len(),
        1,
        "the owner still exists, being deleted"
    );
    kube.merge_patch(
        EXPERIMENT_API,
        "Experiment",
        NS,
        "train",
        json!({"metadata": {"finalizers": null}}),
    )
    .unwrap();
    assert!(kube.jobs(NS).is_empty());
}

#[tokio::test]
async fn a_suspended_job_has_no_pod_and_no_start_time_until_it_is_admitted() {
    let kube = FakeKube::start().await.unwrap();
    let mut manifest = job_manifest("run-1", json!({"suspend": true}));
    manifest.metadata.labels = Some(
        [(
            "kueue.x-k8s.io/queue-name".to_string(),
            "team-a".to_string(),
        )]
        .into(),
    );
    Api::<Job>::namespaced(client(&kube), NS)
        .create(&PostParams::default(), &manifest)
        .await
        .unwrap();
    let queued = job(&kube, "run-1");
    assert_eq!(
        conditions(&queued),
        [cond("Suspended", "True", "JobSuspended")]
    );
    assert!(queued["status"].get("startTime").is_none());
    assert_eq!(
        queued["metadata"]["labels"]["kueue.x-k8s.io/queue-name"],
        "team-a"
    );
    let refused = kube.start_job(NS, "run-1").unwrap_err();
    assert_eq!(refused.code, 409);
    assert!(refused.message.contains("suspended"), "{}", refused.message);
    assert!(kube.pods(NS).is_empty());

    kube.unsuspend_job(NS, "run-1").unwrap();
    let admitted = job(&kube, "run-1");
    assert_eq!(
        conditions(&admitted),
        [cond("Suspended", "False", "JobResumed")]
    );
    assert!(admitted["status"]["startTime"].is_string());
    let pod_name = kube.start_job(NS, "run-1").unwrap();

    kube.suspend_job(NS, "run-1").unwrap();
    assert!(
        pod(&kube, &pod_name).is_none(),
        "suspension deletes the running pod"
    );
    let preempted = job(&kube, "run-1");
    assert_eq!(
        conditions(&preempted),
        [cond("Suspended", "True", "JobSuspended")]
    );
    assert!(preempted["status"].get("active").is_none());
}

#[tokio::test]
async fn a_job_past_its_deadline_fails_and_loses_its_pod() {
    let kube = FakeKube::start().await.unwrap();
    create_job(&kube, "run-1", json!({"activeDeadlineSeconds": 60})).await;
    assert!(
        kube.exceed_job_deadline(NS, "run-1").is_err(),
        "the clock starts with the Job"
    );
    let pod_name = kube.start_job(NS, "run-1").unwrap();
    kube.exceed_job_deadline(NS, "run-1").unwrap();
    assert!(pod(&kube, &pod_name).is_none());
    let j = job(&kube, "run-1");
    assert_eq!(j["status"]["failed"], 1);
    assert_eq!(
        conditions(&j),
        [
            cond("FailureTarget", "True", "DeadlineExceeded"),
            cond("Failed", "True", "DeadlineExceeded")
        ]
    );
    create_job(&kube, "no-deadline", json!({})).await;
    kube.start_job(NS, "no-deadline").unwrap();
    assert!(kube.exceed_job_deadline(NS, "no-deadline").is_err());
}

#[tokio::test]
async fn a_finished_job_with_a_ttl_is_deleted_with_its_pod() {
    let kube = FakeKube::start().await.unwrap();
    create_job(&kube, "run-1", json!({"ttlSecondsAfterFinished": 600})).await;
    let pod_name = kube.start_job(NS, "run-1").unwrap();
    assert!(
        kube.expire_job_ttl(NS, "run-1").is_err(),
        "it has not finished"
    );
    kube.complete_job(NS, "run-1", "").unwrap();
    kube.expire_job_ttl(NS, "run-1").unwrap();
    assert!(kube.jobs(NS).is_empty());
    assert!(pod(&kube, &pod_name).is_none());
}

#[tokio::test]
async fn following_a_log_streams_appended_text_until_the_pod_stops() {
    let kube = FakeKube::start().await.unwrap();
    create_job(&kube, "run-1", json!({})).await;
    let pod_name = kube.start_job(NS, "run-1").unwrap();
    kube.append_pod_log(NS, &pod_name, "epoch 1\n").unwrap();
    kube.clear_requests();
    let pods: Api<Pod> = Api::namespaced(client(&kube), NS);
    let follow = LogParams {
        follow: true,
        ..LogParams::default()
    };
    let mut lines = pods.log_stream(&pod_name, &follow).await.unwrap().lines();
    let first = soon("the first line", lines.try_next()).await.unwrap();
    assert_eq!(first.as_deref(), Some("epoch 1"));
    kube.append_pod_log(NS, &pod_name, "epoch 2\n").unwrap();
    let second = soon("an appended line", lines.try_next()).await.unwrap();
    assert_eq!(second.as_deref(), Some("epoch 2"));
    kube.complete_job(NS, "run-1", "done\n").unwrap();
    let rest: Vec<String> = soon("the end of the stream", lines.try_collect())
        .await
        .unwrap();
    assert_eq!(rest, ["done"], "the stream ends when the container stops");
    assert_eq!(
        kube.requests()
            .iter()
            .map(|r| (r.verb.as_str(), r.resource.as_str()))
            .collect::<Vec<_>>(),
        [("get", "pods/log")]
    );
}

#[tokio::test]
async fn log_options_cut_the_tail_and_the_bytes() {
    let kube = FakeKube::start().await.unwrap();
    create_job(&kube, "run-1", json!({})).await;
    let pod_name = kube.start_job(NS, "run-1").unwrap();
    kube.append_pod_log(NS, &pod_name, "a\nb\nc\n").unwrap();
    let pods: Api<Pod> = Api::namespaced(client(&kube), NS);
    let tail = LogParams {
        tail_lines: Some(2),
        ..LogParams::default()
    };
    assert_eq!(pods.logs(&pod_name, &tail).await.unwrap(), "b\nc\n");
    let limited = LogParams {
        limit_bytes: Some(3),
        ..LogParams::default()
    };
    assert_eq!(pods.logs(&pod_name, &limited).await.unwrap(), "a\nb");
    let followed = LogParams {
        follow: true,
        limit_bytes: Some(8),
        ..LogParams::default()
    };
    let stream = pods.log_stream(&pod_name, &followed).await.unwrap();
    kube.append_pod_log(NS, &pod_name, "d\ne\n").unwrap();
    let got: Vec<String> = soon("a limited stream to end", stream.lines().try_collect())
        .await
        .unwrap();
    assert_eq!(got, ["a", "b", "c", "d"], "the byte limit spans the stream");
    let wrong = LogParams {
        container: Some("sidecar".into()),
        ..LogParams::default()
    };
    let e = pods.logs(&pod_name, &wrong).await.unwrap_err();
    assert!(e.to_string().contains("is not valid for pod"), "{e}");
}

#[tokio::test]
async fn a_watch_with_a_label_selector_sees_only_its_jobs_pods() {
    let kube = FakeKube::start().await.unwrap();
    create_job(&kube, "run-1", json!({})).await;
    create_job(&kube, "run-2", json!({})).await;
    let pods: Api<Pod> = Api::namespaced(client(&kube), NS);
    let params = WatchParams::default().labels("batch.kubernetes.io/job-name=run-2");
    let mut events = pods.watch(&params, "0").await.unwrap().boxed();
    kube.start_job(NS, "run-1").unwrap();
    let wanted = kube.start_job(NS, "run-2").unwrap();
    let first = soon("a pod event", events.try_next()).await.unwrap();
    let Some(WatchEvent::Added(p)) = first else {
        panic!("expected the pod's creation, got {first:?}");
    };
    assert_eq!(p.metadata.name.as_deref(), Some(wanted.as_str()));
}

#[tokio::test]
async fn the_apiserver_refuses_jobs_a_cluster_would_refuse() {
    let kube = FakeKube::start().await.unwrap();
    let jobs: Api<Job> = Api::namespaced(client(&kube), NS);
    let mut always = job_manifest("run-1", json!({}));
    always
        .spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .restart_policy = Some("Always".into());
    let e = jobs
        .create(&PostParams::default(), &always)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("restartPolicy"), "{e}");
    let long = "r".repeat(64);
    let e = jobs
        .create(&PostParams::default(), &job_manifest(&long, json!({})))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("63 characters"), "{e}");
    let created = jobs
        .create(&PostParams::default(), &job_manifest("run-1", json!({})))
        .await
        .unwrap();
    // A controller re-applying its own manifest (without the defaulted fields) changes nothing.
    let reapplied = jobs
        .patch(
            "run-1",
            &PatchParams::apply("amlops"),
            &Patch::Apply(&job_manifest("run-1", json!({}))),
        )
        .await
        .unwrap();
    assert_eq!(reapplied.metadata.generation, Some(1));
    assert_eq!(
        reapplied.metadata.resource_version,
        created.metadata.resource_version
    );
    let mut changed = jobs.get("run-1").await.unwrap();
    changed
        .spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers[0]
        .image = Some("python:3.13".into());
    let e = jobs
        .replace("run-1", &PostParams::default(), &changed)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("immutable"), "{e}");
}

#[tokio::test]
async fn orphaning_an_owner_leaves_its_job_and_foreground_deletion_removes_job_and_pod() {
    let kube = FakeKube::start().await.unwrap();
    let exp = experiment(&kube, json!([]));
    let mut manifest = job_manifest("run-1", json!({}));
    manifest.metadata.owner_references = Some(owned_by(&exp));
    let jobs: Api<Job> = Api::namespaced(client(&kube), NS);
    jobs.create(&PostParams::default(), &manifest)
        .await
        .unwrap();
    let pod_name = kube.start_job(NS, "run-1").unwrap();
    kube.delete_with_propagation(
        EXPERIMENT_API,
        "Experiment",
        NS,
        "train",
        Propagation::Orphan,
    )
    .unwrap();
    let kept = job(&kube, "run-1");
    assert!(kept["metadata"].get("ownerReferences").is_none());
    assert!(pod(&kube, &pod_name).is_some());

    jobs.delete("run-1", &DeleteParams::foreground())
        .await
        .unwrap();
    assert!(kube.jobs(NS).is_empty() && kube.pods(NS).is_empty());
}
