use super::*;
use crate::api::conditions::{RECONCILING, STALLED, find, is_true};
use crate::api::{AmlCompute, AzureBatch, LocalCompute, ObjectRef, SecretKeyRef, SshCompute};
use crate::reconcile::FailureKind;

const VM_ID: &str =
    "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1";

fn info() -> ObjectInfo {
    ObjectInfo {
        name: "cpu".into(),
        namespace: "ml".into(),
        uid: "u1".into(),
        generation: Some(2),
        ..Default::default()
    }
}
fn base() -> ComputeTargetSpec {
    ComputeTargetSpec {
        workspace_ref: Some(ObjectRef { name: "ws".into() }),
        azure_name: None,
        description: None,
        deletion_policy: None,
        local: None,
        aml_compute: None,
        remote_vm: None,
        hd_insight: None,
        azure_batch: None,
        databricks: None,
        data_lake_analytics: None,
        kubernetes: None,
    }
}
fn aml() -> ComputeTargetSpec {
    ComputeTargetSpec {
        aml_compute: Some(AmlCompute {
            vm_size: "STANDARD_D2_V2".into(),
            min_nodes: 0,
            max_nodes: 4,
            idle_seconds_before_scale_down: 1800,
            ..Default::default()
        }),
        ..base()
    }
}
fn vm() -> ComputeTargetSpec {
    ComputeTargetSpec {
        remote_vm: Some(SshCompute {
            resource_id: VM_ID.into(),
            address: "10.0.0.4".into(),
            ssh_port: 22,
            username: "azureuser".into(),
            private_key_secret_ref: Some(SecretKeyRef {
                name: "vm-key".into(),
                key: "id_rsa".into(),
            }),
            password_secret_ref: None,
        }),
        ..base()
    }
}
fn t(s: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + s).unwrap()
}
fn observed_aml(state: &str, min: i32, max: i32) -> ObservedCompute {
    ObservedCompute {
        compute_type: "AmlCompute".into(),
        provisioning_state: Some(state.into()),
        resource_id: Some("/subscriptions/s/.../computes/cpu".into()),
        vm_size: Some("STANDARD_D2_V2".into()),
        vm_priority: Some("Dedicated".into()),
        scale: Some(Scale {
            min_nodes: min,
            max_nodes: max,
            idle_seconds: 1800,
        }),
        nodes: Some(NodeCounts {
            current: min,
            target: min,
            idle: min,
            ..Default::default()
        }),
        allocation_state: Some("Steady".into()),
        ..Default::default()
    }
}
fn observed_vm(resource: &str) -> ObservedCompute {
    ObservedCompute {
        compute_type: "VirtualMachine".into(),
        provisioning_state: Some("Succeeded".into()),
        resource_id: Some("/subscriptions/s/.../computes/cpu".into()),
        attached_resource_id: Some(resource.into()),
        attached: true,
        ..Default::default()
    }
}

struct Case<'a> {
    info: ObjectInfo,
    spec: ComputeTargetSpec,
    status: Option<&'a ComputeTargetStatus>,
    workspace: WorkspaceState,
    observed: Option<&'a ObservedCompute>,
    operation: Option<OperationOutcome>,
    already_attached_by: Option<String>,
    in_cluster: bool,
    local_jobs: bool,
    retry_after_stall: Duration,
    now: Timestamp,
}

impl<'a> Case<'a> {
    fn new(spec: ComputeTargetSpec) -> Self {
        Case {
            info: info(),
            spec,
            status: None,
            workspace: WorkspaceState::Ready,
            observed: None,
            operation: None,
            already_attached_by: None,
            in_cluster: true,
            local_jobs: true,
            retry_after_stall: Duration::from_secs(3600),
            now: t(0),
        }
    }
    fn run(&self) -> Decision<ComputeTargetStatus, ComputeAction> {
        reconcile(Input {
            info: &self.info,
            spec: &self.spec,
            status: self.status,
            workspace: self.workspace.clone(),
            observed: self.observed,
            operation: self.operation.clone(),
            already_attached_by: self.already_attached_by.clone(),
            in_cluster: self.in_cluster,
            local_jobs: self.local_jobs,
            kubernetes_compute_enabled: false,
            retry_after_stall: self.retry_after_stall,
            now: self.now,
        })
    }
}

fn reason(d: &Decision<ComputeTargetStatus, ComputeAction>, type_: &str) -> String {
    find(&d.status.conditions, type_)
        .map(|c| c.reason.clone())
        .unwrap_or_default()
}

fn pending(kind: &str) -> PendingOperation {
    PendingOperation {
        kind: kind.into(),
        url: "https://arm/op/1".into(),
        started_at: None,
    }
}

#[test]
fn absent_amlcompute_is_created_and_the_operation_is_kept() {
    let mut d = Case::new(aml()).run();
    assert_eq!(d.actions, vec![ComputeAction::Create]);
    assert_eq!(reason(&d, RECONCILING), "Creating");
    assert_eq!(reason(&d, READY), "Creating");
    assert_eq!(d.status.compute_type.as_deref(), Some("AmlCompute"));
    assert_eq!(d.status.azure_name.as_deref(), Some("cpu"));
    assert_eq!(d.events[0].reason, "Creating");
    apply_outcome(
        &mut d,
        ActionOutcome::Started(pending("Create")),
        Some(2),
        t(1),
    );
    let p = d.status.pending_operation.clone().unwrap();
    assert_eq!(p.started_at, Some(Time(t(1))));
    // The next pass polls the operation: still running, so nothing new is sent.
    let mut c = Case::new(aml());
    c.status = Some(&d.status);
    c.operation = Some(OperationOutcome::InProgress {
        next_poll: Duration::from_secs(7),
    });
    c.observed = None;
    let d2 = c.run();
    assert!(d2.actions.is_empty(), "a pending create is never repeated");
    assert_eq!(d2.requeue_after, Some(Duration::from_secs(7)));
    assert!(d2.status.pending_operation.is_some());
}

#[test]
fn succeeded_operation_then_in_sync_is_ready_with_nodes_and_no_writes() {
    let mut status = ComputeTargetStatus {
        pending_operation: Some(pending("Create")),
        ..Default::default()
    };
    let obs = observed_aml("Succeeded", 0, 4);
    let mut c = Case::new(aml());
    c.status = Some(&status);
    c.observed = Some(&obs);
    c.operation = Some(OperationOutcome::Succeeded);
    let d = c.run();
    assert!(d.actions.is_empty());
    assert!(is_true(&d.status.conditions, READY));
    assert_eq!(reason(&d, READY), "Provisioned");
    assert!(find(&d.status.conditions, RECONCILING).is_none());
    assert!(d.status.pending_operation.is_none());
    assert_eq!(d.status.nodes.as_ref().unwrap().current, 0);
    assert_eq!(d.status.allocation_state.as_deref(), Some("Steady"));
    assert_eq!(
        d.events
            .iter()
            .map(|e| e.reason.as_str())
            .collect::<Vec<_>>(),
        ["Provisioned"]
    );
    // resync: identical status, no events, no actions, transition time kept
    status = d.status.clone();
    let mut c = Case::new(aml());
    c.status = Some(&status);
    c.observed = Some(&obs);
    c.now = t(3600);
    let again = c.run();
    assert!(again.actions.is_empty() && again.events.is_empty());
    assert_eq!(again.status, status);
    assert_eq!(
        find(&again.status.conditions, READY)
            .unwrap()
            .last_transition_time,
        Time(t(0))
    );
}

fn with_node_errors(codes: &[&str]) -> ObservedCompute {
    let mut obs = observed_aml("Succeeded", 0, 4);
    obs.node_errors = codes
        .iter()
        .map(|c| ErrorInfo {
            code: (*c).into(),
            message: format!("{c} on a node"),
        })
        .collect();
    obs
}

#[test]
fn a_cluster_with_node_errors_is_degraded_not_ready_and_warns_once() {
    let obs = with_node_errors(&["AllocationFailed", "NodeSetupFailure"]);
    let mut c = Case::new(aml());
    c.observed = Some(&obs);
    let d = c.run();
    assert!(
        d.actions.is_empty(),
        "nothing amlops can write fixes the nodes"
    );
    assert!(!is_true(&d.status.conditions, READY));
    assert_eq!(reason(&d, READY), "AllocationFailed");
    assert_eq!(reason(&d, STALLED), "AllocationFailed");
    assert_eq!(reason(&d, crate::api::DEGRADED), "AllocationFailed");
    let message = &find(&d.status.conditions, READY).unwrap().message;
    assert!(
        message.contains("AllocationFailed: AllocationFailed on a node")
            && message.contains("NodeSetupFailure: NodeSetupFailure on a node"),
        "{message}"
    );
    let warnings: Vec<_> = d.events.iter().filter(|e| e.warning).collect();
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].reason, "AllocationFailed");
    assert_eq!(d.status.provisioning_state.as_deref(), Some("Succeeded"));
    // Resync with the same report: one GET, no writes, no events, the same status.
    let status = d.status.clone();
    let mut c = Case::new(aml());
    c.status = Some(&status);
    c.observed = Some(&obs);
    c.now = t(3600);
    let again = c.run();
    assert!(again.actions.is_empty() && again.events.is_empty());
    assert_eq!(again.status, status);
}

#[test]
fn node_errors_clearing_make_the_cluster_ready_again() {
    let degraded = with_node_errors(&["AllocationFailed"]);
    let mut c = Case::new(aml());
    c.observed = Some(&degraded);
    let status = c.run().status;
    let healthy = observed_aml("Succeeded", 0, 4);
    let mut c = Case::new(aml());
    c.status = Some(&status);
    c.observed = Some(&healthy);
    c.now = t(60);
    let d = c.run();
    assert!(is_true(&d.status.conditions, READY));
    assert!(find(&d.status.conditions, crate::api::DEGRADED).is_none());
    assert!(find(&d.status.conditions, STALLED).is_none());
    assert!(
        d.events
            .iter()
            .any(|e| !e.warning && e.reason == "NodeErrorsCleared")
    );
}

#[test]
fn node_errors_do_not_hold_back_a_scale_change() {
    let obs = with_node_errors(&["QuotaExceeded"]);
    let mut c = Case::new(aml());
    c.observed = Some(&obs);
    let status = c.run().status;
    // A new generation lowers maxNodes, e.g. to fit the quota: the PATCH goes out at once.
    let mut spec = aml();
    if let Some(a) = spec.aml_compute.as_mut() {
        a.max_nodes = 2;
    }
    let mut c = Case::new(spec);
    c.info.generation = Some(3);
    c.status = Some(&status);
    c.observed = Some(&obs);
    let d = c.run();
    assert!(
        matches!(d.actions.as_slice(), [ComputeAction::UpdateScale(s)] if s.max_nodes == 2),
        "{:?}",
        d.actions
    );
    assert_eq!(
        reason(&d, crate::api::DEGRADED),
        "QuotaExceeded",
        "still reported"
    );
}

#[test]
fn scale_drift_is_exactly_one_patch() {
    let obs = observed_aml("Succeeded", 0, 2);
    let mut c = Case::new(aml());
    c.observed = Some(&obs);
    let d = c.run();
    assert_eq!(
        d.actions,
        vec![ComputeAction::UpdateScale(Scale {
            min_nodes: 0,
            max_nodes: 4,
            idle_seconds: 1800
        })]
    );
    assert_eq!(reason(&d, RECONCILING), "Scaling");
    let mut done = d.status.clone();
    done.pending_operation = Some(pending("Update"));
    let obs = observed_aml("Succeeded", 0, 4);
    let mut c = Case::new(aml());
    c.status = Some(&done);
    c.observed = Some(&obs);
    c.operation = Some(OperationOutcome::Succeeded);
    let d = c.run();
    assert!(d.actions.is_empty());
    assert!(d.events.iter().any(|e| e.reason == "Scaled"));
    assert!(is_true(&d.status.conditions, READY));
}

#[test]
fn vm_size_change_needs_a_recreate_and_is_stalled() {
    let mut obs = observed_aml("Succeeded", 0, 4);
    obs.vm_size = Some("STANDARD_NC6".into());
    let mut c = Case::new(aml());
    c.observed = Some(&obs);
    let d = c.run();
    assert!(d.actions.is_empty());
    assert_eq!(reason(&d, STALLED), "RecreateRequired");
}

#[test]
fn busy_compute_waits_and_failed_compute_is_stalled_with_the_azure_code() {
    let obs = observed_aml("Creating", 0, 4);
    let mut c = Case::new(aml());
    c.observed = Some(&obs);
    let d = c.run();
    assert!(
        d.actions.is_empty(),
        "a compute found Creating (e.g. after a crash) is not created again"
    );
    assert_eq!(reason(&d, RECONCILING), "Provisioning");
    assert_eq!(d.requeue_after, Some(BUSY_RECHECK));
    let mut obs = observed_aml("Failed", 0, 4);
    obs.errors = vec![ErrorInfo {
        code: "QuotaExceeded".into(),
        message: "not enough cores".into(),
    }];
    c.observed = Some(&obs);
    let d = c.run();
    assert_eq!(reason(&d, STALLED), "QuotaExceeded");
    assert_eq!(d.status.last_error.as_ref().unwrap().code, "QuotaExceeded");
    assert!(
        d.events
            .iter()
            .any(|e| e.warning && e.reason == "QuotaExceeded")
    );
}

#[test]
fn failed_action_is_stalled_or_reconciling_by_retryability() {
    let mut d = Case::new(aml()).run();
    let quota = ActionFailure {
        kind: FailureKind::NeedsHuman,
        reason: "QuotaExceeded".into(),
        message: "cores".into(),
    };
    apply_outcome(&mut d, ActionOutcome::Failed(quota.clone()), Some(2), t(1));
    assert_eq!(reason(&d, STALLED), "QuotaExceeded");
    assert!(find(&d.status.conditions, RECONCILING).is_none());
    assert_eq!(d.requeue_after, None, "needs a human: no hot loop");
    assert!(
        d.events
            .iter()
            .any(|e| e.warning && e.reason == "QuotaExceeded")
    );
    // the retry after the resync period fails the same way: no new warning
    let mut c = Case::new(aml());
    c.status = Some(&d.status);
    c.now = t(1 + 3600);
    let mut d2 = c.run();
    assert_eq!(d2.actions, vec![ComputeAction::Create]);
    apply_outcome(&mut d2, ActionOutcome::Failed(quota), Some(2), t(2));
    assert!(!d2.events.iter().any(|e| e.warning));
    let throttled = ActionFailure {
        kind: FailureKind::Retryable,
        reason: "TooManyRequests".into(),
        message: "429".into(),
    };
    let mut d3 = Case::new(aml()).run();
    apply_outcome(&mut d3, ActionOutcome::Failed(throttled), Some(2), t(1));
    assert_eq!(reason(&d3, RECONCILING), "TooManyRequests");
    assert!(find(&d3.status.conditions, STALLED).is_none());
}

#[test]
fn refused_write_is_held_back_until_the_resync_period_or_a_new_generation() {
    let quota = ActionFailure {
        kind: FailureKind::NeedsHuman,
        reason: "QuotaExceeded".into(),
        message: "cores".into(),
    };
    let mut refused = Case::new(aml()).run();
    apply_outcome(
        &mut refused,
        ActionOutcome::Failed(quota.clone()),
        Some(2),
        t(10),
    );
    let mut c = Case::new(aml());
    c.status = Some(&refused.status);
    // Any trigger within the period (a Workspace write, a restart): nothing is sent.
    c.now = t(70);
    let d = c.run();
    assert!(d.actions.is_empty(), "{:?}", d.actions);
    assert_eq!(d.requeue_after, Some(Duration::from_secs(3600 - 60)));
    assert_eq!(reason(&d, STALLED), "QuotaExceeded");
    assert_eq!(d.status, refused.status, "the status is left as it is");
    // The period is over: one more try.
    c.now = t(10 + 3600);
    assert_eq!(c.run().actions, vec![ComputeAction::Create]);
    // A new generation (the user changed the spec) tries at once.
    c.now = t(70);
    c.info.generation = Some(3);
    assert_eq!(c.run().actions, vec![ComputeAction::Create]);
    // A scale-up refused for quota is held back the same way.
    let obs = observed_aml("Succeeded", 0, 2);
    let mut scaling = Case::new(aml());
    scaling.observed = Some(&obs);
    let mut d = scaling.run();
    assert!(matches!(d.actions[..], [ComputeAction::UpdateScale(_)]));
    apply_outcome(&mut d, ActionOutcome::Failed(quota), Some(2), t(10));
    scaling.status = Some(&d.status);
    scaling.now = t(20);
    assert!(scaling.run().actions.is_empty());
    // A missing Secret is not Azure's refusal: when its watch brings the reconcile, try again.
    let mut d = Case::new(aml()).run();
    let secret = ActionFailure {
        kind: FailureKind::NeedsHuman,
        reason: "SecretNotFound".into(),
        message: "Secret ml/admin not found".into(),
    };
    apply_outcome(&mut d, ActionOutcome::Failed(secret), Some(2), t(10));
    let mut c = Case::new(aml());
    c.status = Some(&d.status);
    c.now = t(20);
    assert_eq!(c.run().actions, vec![ComputeAction::Create]);
}

#[test]
fn failed_operation_clears_it_and_records_the_error() {
    let status = ComputeTargetStatus {
        pending_operation: Some(pending("Create")),
        ..Default::default()
    };
    let mut c = Case::new(aml());
    c.status = Some(&status);
    c.operation = Some(OperationOutcome::Failed(ActionFailure {
        kind: FailureKind::NeedsHuman,
        reason: "ComputeProvisioningFailed".into(),
        message: "boom".into(),
    }));
    let d = c.run();
    assert!(d.status.pending_operation.is_none());
    assert_eq!(reason(&d, STALLED), "ComputeProvisioningFailed");
    assert!(d.actions.is_empty());
}

#[test]
fn local_is_ready_standalone_and_in_a_cluster_unless_local_jobs_are_disabled() {
    let spec = ComputeTargetSpec {
        local: Some(LocalCompute::default()),
        workspace_ref: None,
        ..base()
    };
    let mut c = Case::new(spec);
    c.in_cluster = false;
    c.workspace = WorkspaceState::Missing;
    let d = c.run();
    assert!(is_true(&d.status.conditions, READY));
    assert!(d.actions.is_empty());
    assert_eq!(d.status.compute_type.as_deref(), Some("Local"));
    c.in_cluster = true;
    let d = c.run();
    let ready = find(&d.status.conditions, READY).unwrap();
    assert!(ready.message.contains("Kubernetes Jobs"), "{ready:?}");
    c.local_jobs = false;
    let d = c.run();
    assert_eq!(reason(&d, STALLED), "LocalComputeNotAllowed");
    assert!(
        find(&d.status.conditions, STALLED)
            .unwrap()
            .message
            .contains("--disable-local-jobs")
    );
}

#[test]
fn azure_batch_is_unsupported() {
    let spec = ComputeTargetSpec {
        azure_batch: Some(AzureBatch {
            account_name: "batch1".into(),
            resource_group: "rg".into(),
        }),
        ..base()
    };
    let d = Case::new(spec).run();
    assert_eq!(reason(&d, STALLED), "UnsupportedComputeType");
    assert!(d.actions.is_empty());
}

#[test]
fn broken_one_of_is_invalid_spec() {
    let d = Case::new(base()).run();
    assert_eq!(reason(&d, STALLED), "InvalidSpec");
}

#[test]
fn workspace_missing_is_stalled_and_not_ready_waits() {
    let mut c = Case::new(aml());
    c.workspace = WorkspaceState::Missing;
    let d = c.run();
    assert_eq!(reason(&d, STALLED), "WorkspaceNotFound");
    assert!(d.actions.is_empty());
    c.workspace = WorkspaceState::NotReady {
        reason: "AuthenticationFailed".into(),
        message: "x".into(),
    };
    let d = c.run();
    assert_eq!(reason(&d, RECONCILING), "WaitingForWorkspace");
    assert!(find(&d.status.conditions, STALLED).is_none());
    assert_eq!(d.requeue_after, Some(WORKSPACE_RECHECK));
    assert!(!needs_azure(&c.info, &c.spec, &c.workspace));
}

#[test]
fn paused_makes_no_actions_even_when_drifted_or_deleting() {
    let obs = observed_aml("Succeeded", 0, 2);
    let mut c = Case::new(aml());
    c.info.paused = true;
    c.observed = Some(&obs);
    let d = c.run();
    assert!(d.actions.is_empty());
    assert_eq!(reason(&d, RECONCILING), "Paused");
    assert!(!needs_azure(&c.info, &c.spec, &c.workspace));
    c.info.deleting = true;
    let d = c.run();
    assert!(d.actions.is_empty());
}

#[test]
fn attach_creates_then_is_ready_attached() {
    let d = Case::new(vm()).run();
    assert_eq!(d.actions, vec![ComputeAction::Create]);
    assert_eq!(reason(&d, RECONCILING), "Attaching");
    let obs = observed_vm(VM_ID);
    let mut c = Case::new(vm());
    c.observed = Some(&obs);
    let d = c.run();
    assert_eq!(reason(&d, READY), "Attached");
    assert_eq!(d.status.attached, Some(true));
    assert_eq!(d.status.compute_type.as_deref(), Some("VirtualMachine"));
}

#[test]
fn attach_conflicts_are_stalled() {
    let mut c = Case::new(vm());
    c.already_attached_by = Some("first".into());
    let d = c.run();
    assert_eq!(reason(&d, STALLED), "AlreadyAttached");
    assert!(
        find(&d.status.conditions, STALLED)
            .unwrap()
            .message
            .contains("first")
    );
    // deleting the second object never detaches the first one's compute
    c.info.deleting = true;
    assert_eq!(c.run().actions, vec![ComputeAction::ReleaseFinalizer]);
    let other = observed_vm(
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/other",
    );
    let mut c = Case::new(vm());
    c.observed = Some(&other);
    assert_eq!(reason(&c.run(), STALLED), "AttachedResourceMismatch");
    let aml_there = observed_aml("Succeeded", 0, 4);
    c.observed = Some(&aml_there);
    assert_eq!(reason(&c.run(), STALLED), "ComputeTypeMismatch");
}

#[test]
fn delete_policies() {
    let obs = observed_aml("Succeeded", 0, 4);
    let mut c = Case::new(aml());
    c.info.deleting = true;
    c.observed = Some(&obs);
    let d = c.run();
    assert_eq!(d.actions, vec![ComputeAction::Delete { detach: false }]);
    // Retain: no Azure call at all
    c.spec.deletion_policy = Some(DeletionPolicy::Retain);
    assert!(!needs_azure(&c.info, &c.spec, &c.workspace));
    let d = c.run();
    assert_eq!(d.actions, vec![ComputeAction::ReleaseFinalizer]);
    assert_eq!(d.events[0].reason, "Retained");
    // attached computes are detached even under Delete
    let vobs = observed_vm(VM_ID);
    let mut c = Case::new(ComputeTargetSpec {
        deletion_policy: Some(DeletionPolicy::Delete),
        ..vm()
    });
    c.info.deleting = true;
    c.observed = Some(&vobs);
    assert_eq!(
        c.run().actions,
        vec![ComputeAction::Delete { detach: true }]
    );
}

#[test]
fn delete_waits_for_the_operation_then_releases() {
    let status = ComputeTargetStatus {
        pending_operation: Some(pending("Delete")),
        resource_id: Some("/x".into()),
        ..Default::default()
    };
    let obs = observed_aml("Deleting", 0, 4);
    let mut c = Case::new(aml());
    c.info.deleting = true;
    c.status = Some(&status);
    c.observed = Some(&obs);
    c.operation = Some(OperationOutcome::InProgress {
        next_poll: Duration::from_secs(2),
    });
    let d = c.run();
    assert!(d.actions.is_empty());
    assert_eq!(reason(&d, RECONCILING), "Deleting");
    c.operation = Some(OperationOutcome::Succeeded);
    c.observed = None;
    let d = c.run();
    assert_eq!(d.actions, vec![ComputeAction::ReleaseFinalizer]);
    assert_eq!(d.events[0].reason, "Deleted");
    // found Deleting without a pending operation (restart): wait, do not DELETE again
    let mut c = Case::new(aml());
    c.info.deleting = true;
    c.observed = Some(&obs);
    assert!(c.run().actions.is_empty());
    // already gone
    c.observed = None;
    assert_eq!(c.run().actions, vec![ComputeAction::ReleaseFinalizer]);
}

#[test]
fn deleting_without_a_workspace_is_stalled_not_released() {
    let mut c = Case::new(aml());
    c.info.deleting = true;
    c.workspace = WorkspaceState::Missing;
    let d = c.run();
    assert!(d.actions.is_empty());
    assert_eq!(reason(&d, STALLED), "WorkspaceNotFound");
}

#[test]
fn local_and_batch_release_the_finalizer_without_azure() {
    let spec = ComputeTargetSpec {
        local: Some(LocalCompute::default()),
        workspace_ref: None,
        ..base()
    };
    let mut c = Case::new(spec);
    c.info.deleting = true;
    assert_eq!(c.run().actions, vec![ComputeAction::ReleaseFinalizer]);
}

#[test]
fn an_invalid_default_azure_name_is_stalled_and_never_sent() {
    assert!(valid_azure_name("cpu") && valid_azure_name("gpu-a100") && valid_azure_name("a1-b2c"));
    for bad in ["vm", "1cpu", "cpu_1", "cpu-12", "abcdefghijklmnopqrstuvwxy"] {
        assert!(!valid_azure_name(bad), "{bad}");
    }
    let mut c = Case::new(aml());
    c.info.name = "vm".into();
    assert!(!needs_azure(&c.info, &c.spec, &c.workspace));
    let d = c.run();
    assert_eq!(reason(&d, STALLED), "InvalidAzureName");
    assert!(d.actions.is_empty());
    c.info.deleting = true;
    assert_eq!(c.run().actions, vec![ComputeAction::ReleaseFinalizer]);
}
