//! ComputeTarget: create / attach, scale, delete / detach, with long-running operations that
//! survive restarts (`status.pendingOperation`).
//!
//! The frontend observes before it calls [`reconcile`]: it polls the pending operation once
//! (if any) and GETs the compute. A compute found in Azure is never created again, so a crash
//! between the PUT and the status write costs nothing but a GET.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{
    ActionFailure, Decision, Event, ObjectInfo, mark_progressing, mark_ready, mark_stalled,
    record_failure, refusal_hold,
};
use crate::api::conditions::{self, READY};
use crate::api::{
    ComputeKind, ComputeTargetSpec, ComputeTargetStatus, DeletionPolicy, ErrorInfo, NodeCounts,
    PendingOperation,
};
use crate::reconcile::FailureKind;

/// How often to look at an operation Azure is still working on, when Azure does not say.
const BUSY_RECHECK: Duration = Duration::from_secs(10);
/// First look after an operation was accepted.
const AFTER_START: Duration = Duration::from_secs(1);
/// How often to look for a Workspace that is not Ready yet.
const WORKSPACE_RECHECK: Duration = Duration::from_secs(30);

/// Scale settings of an AmlCompute cluster, in the units of the spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scale {
    pub min_nodes: i32,
    pub max_nodes: i32,
    pub idle_seconds: i64,
}

/// What Azure reports about the compute (built by the actions from the Azure model).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ObservedCompute {
    /// Azure's `computeType`, e.g. `AmlCompute` or `VirtualMachine`.
    pub compute_type: String,
    /// `Creating`, `Updating`, `Deleting`, `Succeeded`, `Failed`, `Canceled`, `Unknown`.
    pub provisioning_state: Option<String>,
    /// ARM id of the Azure ML compute.
    pub resource_id: Option<String>,
    /// ARM id of the attached underlying resource (`properties.resourceId`).
    pub attached_resource_id: Option<String>,
    pub attached: bool,
    pub vm_size: Option<String>,
    /// `Dedicated` or `LowPriority`.
    pub vm_priority: Option<String>,
    pub scale: Option<Scale>,
    pub nodes: Option<NodeCounts>,
    pub allocation_state: Option<String>,
    /// Provisioning errors Azure reports on a Failed compute.
    pub errors: Vec<ErrorInfo>,
    /// Errors an AmlCompute cluster's nodes met during setup or allocation.
    pub node_errors: Vec<ErrorInfo>,
}

impl ObservedCompute {
    /// The compute as `spec` declared it, provisioned: what Azure holds after a successful
    /// reconcile of that spec (`amlops plan` decides against it, without reading Azure).
    pub fn as_declared(spec: &ComputeTargetSpec) -> Option<Self> {
        let kind = spec.kind()?;
        let aml = spec.aml_compute.as_ref();
        Some(Self {
            compute_type: kind.type_name().to_string(),
            provisioning_state: Some("Succeeded".into()),
            attached_resource_id: attached_resource(spec).map(str::to_string),
            attached: is_attach(&kind),
            vm_size: aml.map(|a| a.vm_size.clone()),
            vm_priority: aml.map(|a| match a.vm_priority {
                crate::api::VmPriority::Dedicated => "Dedicated".to_string(),
                crate::api::VmPriority::LowPriority => "LowPriority".to_string(),
            }),
            scale: desired_scale(spec),
            ..Self::default()
        })
    }
}

/// The referenced Workspace, as far as this compute cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkspaceState {
    Missing,
    NotReady { reason: String, message: String },
    Ready,
}

/// The result of polling `status.pendingOperation` once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OperationOutcome {
    InProgress { next_poll: Duration },
    Succeeded,
    Failed(ActionFailure),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ComputeAction {
    /// PUT the declared compute (attach when the kind is an attach kind). Secret values are
    /// resolved by the executor at the moment of the PUT.
    Create,
    /// PATCH only the scale settings.
    UpdateScale(Scale),
    /// DELETE with `underlyingResourceAction` Detach (true) or Delete (false).
    Delete { detach: bool },
    /// Cleanup is done (or not wanted): the finalizer may go.
    ReleaseFinalizer,
}

/// How an executed action ended, fed back through [`apply_outcome`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ActionOutcome {
    Done,
    /// Azure accepted a long-running operation; the status keeps it so a restart resumes it.
    Started(PendingOperation),
    Failed(ActionFailure),
}

pub struct Input<'a> {
    pub info: &'a ObjectInfo,
    pub spec: &'a ComputeTargetSpec,
    pub status: Option<&'a ComputeTargetStatus>,
    pub workspace: WorkspaceState,
    /// The compute in Azure; `None` when it does not exist (or was not read: see [`needs_azure`]).
    pub observed: Option<&'a ObservedCompute>,
    /// The poll of `status.pendingOperation`, when there is one.
    pub operation: Option<OperationOutcome>,
    /// Another ComputeTarget of the same workspace attaches the same underlying resource first.
    pub already_attached_by: Option<String>,
    /// Running inside a cluster (the controller) rather than standalone.
    pub in_cluster: bool,
    /// In a cluster: whether `local` targets run as Jobs (`--disable-local-jobs` unset).
    pub local_jobs: bool,
    pub kubernetes_compute_enabled: bool,
    /// How long a write Azure refused with a needs-a-human error (e.g. `QuotaExceeded`) waits
    /// before it is sent again for the same generation: the resync period.
    pub retry_after_stall: Duration,
    pub now: Timestamp,
}

/// The compute's name in Azure ML: `spec.azureName`, else the object name.
pub fn azure_name(info: &ObjectInfo, spec: &ComputeTargetSpec) -> String {
    spec.azure_name.clone().unwrap_or_else(|| info.name.clone())
}

/// Azure ML's compute name rule: 3-24 characters, a letter first, then letters, digits and
/// `-`, not ending in `-<digits>`. The CRD checks `spec.azureName`; a default taken from
/// `metadata.name` is checked here.
pub fn valid_azure_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    let digits_tail = name.trim_end_matches(|c: char| c.is_ascii_digit());
    first_ok
        && rest_ok
        && (3..=24).contains(&name.len())
        && !(digits_tail.ends_with('-') && digits_tail.len() < name.len())
}

/// Whether the frontend must read Azure (poll + GET) before calling [`reconcile`].
pub fn needs_azure(
    info: &ObjectInfo,
    spec: &ComputeTargetSpec,
    workspace: &WorkspaceState,
) -> bool {
    let azure_kind = !matches!(
        spec.kind(),
        None | Some(ComputeKind::Local(_)) | Some(ComputeKind::AzureBatch(_))
    ) && valid_azure_name(&azure_name(info, spec));
    let cleanup_skipped =
        info.deleting && spec.effective_deletion_policy() == DeletionPolicy::Retain;
    azure_kind && !info.paused && !cleanup_skipped && *workspace == WorkspaceState::Ready
}

/// The underlying resource an attach kind attaches, if any (for the AlreadyAttached check).
pub fn attached_resource(spec: &ComputeTargetSpec) -> Option<&str> {
    match spec.kind()? {
        ComputeKind::RemoteVm(s) | ComputeKind::HdInsight(s) => Some(&s.resource_id),
        ComputeKind::Databricks(d) => Some(&d.resource_id),
        ComputeKind::Kubernetes(k) => Some(&k.resource_id),
        _ => None,
    }
}

fn is_attach(kind: &ComputeKind<'_>) -> bool {
    !matches!(kind, ComputeKind::AmlCompute(_) | ComputeKind::Local(_))
}

/// The desired scale settings of an amlCompute spec.
pub fn desired_scale(spec: &ComputeTargetSpec) -> Option<Scale> {
    spec.aml_compute.as_ref().map(|a| Scale {
        min_nodes: a.min_nodes,
        max_nodes: a.max_nodes,
        idle_seconds: i64::from(a.idle_seconds_before_scale_down),
    })
}

pub fn reconcile(input: Input<'_>) -> Decision<ComputeTargetStatus, ComputeAction> {
    let Input {
        info, spec, now, ..
    } = input;
    let generation = info.generation;
    let old = input.status.cloned().unwrap_or_default();
    let mut d = Decision::new(old);
    d.status.observed_generation = generation;
    let Some(kind) = spec.kind() else {
        let msg = "exactly one compute kind must be set";
        mark_stalled(
            &mut d.status.conditions,
            "InvalidSpec",
            msg,
            generation,
            now,
        );
        if info.deleting {
            d.actions.push(ComputeAction::ReleaseFinalizer);
        }
        return d;
    };
    d.status.compute_type = Some(kind.type_name().to_string());
    if !matches!(kind, ComputeKind::Local(_) | ComputeKind::AzureBatch(_)) {
        d.status.azure_name = Some(azure_name(info, spec));
    }
    if info.deleting {
        deleting(&mut d, &input, kind);
        return d;
    }
    let c = &mut d.status.conditions;
    if info.paused {
        let msg =
            "reconciliation is paused by the amlops.io/reconcile annotation: no writes to Azure";
        mark_progressing(c, "Paused", msg, generation, now);
        return d;
    }
    match kind {
        ComputeKind::Local(_) if input.in_cluster && !input.local_jobs => {
            let msg = "this operator runs with --disable-local-jobs (chart value controller.localJobs.enabled=false), so local compute takes no runs in this cluster; use amlCompute, remoteVM or kubernetes, or `amlops apply` for local runs";
            mark_stalled(c, "LocalComputeNotAllowed", msg, generation, now);
            return d;
        }
        ComputeKind::Local(_) => {
            d.status.provisioning_state = Some("Succeeded".into());
            let c = &mut d.status.conditions;
            let msg = match input.in_cluster {
                true => "runs execute as Kubernetes Jobs in this namespace",
                false => "runs execute on this machine",
            };
            mark_ready(c, "Local", msg, generation, now);
            return d;
        }
        ComputeKind::AzureBatch(_) => {
            let msg = "Azure ML api-version 2026-07-01 has no Azure Batch compute type; use amlCompute instead";
            mark_stalled(c, "UnsupportedComputeType", msg, generation, now);
            return d;
        }
        ComputeKind::Kubernetes(_) if input.in_cluster && !input.kubernetes_compute_enabled => {
            let msg = "kubernetes compute is disabled in this operator; start it with --enable-kubernetes-compute";
            mark_stalled(c, "KubernetesComputeDisabled", msg, generation, now);
            return d;
        }
        _ => {}
    }
    let name = azure_name(info, spec);
    if !valid_azure_name(&name) {
        let msg = format!(
            "{name:?} is not a valid Azure ML compute name (3-24 characters: a letter, then letters, digits and '-', not ending in '-<digits>'); set spec.azureName"
        );
        mark_stalled(c, "InvalidAzureName", &msg, generation, now);
        return d;
    }
    if let Some(first) = &input.already_attached_by {
        let msg = format!(
            "the underlying resource is already attached to this workspace by ComputeTarget {first:?}"
        );
        mark_stalled(c, "AlreadyAttached", &msg, generation, now);
        return d;
    }
    if !workspace_ready(&mut d, &input) {
        return d;
    }
    if let Some(outcome) = input.operation.clone()
        && !pending_outcome(&mut d, outcome, generation, now)
    {
        return d;
    }
    match input.observed {
        None => {
            if let Some(wait) = stall_wait(&input) {
                d.requeue_after = Some(wait);
                return d;
            }
            let (reason, verb) = if is_attach(&kind) {
                ("Attaching", "attaching")
            } else {
                ("Creating", "creating")
            };
            let msg = format!(
                "{verb} {} compute {}",
                kind.type_name(),
                azure_name(info, spec)
            );
            mark_progressing(&mut d.status.conditions, reason, &msg, generation, now);
            d.events.push(Event::normal(reason, msg));
            d.actions.push(ComputeAction::Create);
            d.requeue_after = Some(AFTER_START);
        }
        Some(observed) => converge(&mut d, &input, kind, observed),
    }
    d
}

/// Applies the Workspace gate; false when the reconcile stops here.
fn workspace_ready(
    d: &mut Decision<ComputeTargetStatus, ComputeAction>,
    input: &Input<'_>,
) -> bool {
    let (generation, now, c) = (input.info.generation, input.now, &mut d.status.conditions);
    let name = input
        .spec
        .workspace_ref
        .as_ref()
        .map(|r| r.name.as_str())
        .unwrap_or_default();
    match &input.workspace {
        WorkspaceState::Ready => true,
        WorkspaceState::Missing => {
            let msg = format!(
                "Workspace {name:?} not found in namespace {}",
                input.info.namespace
            );
            mark_stalled(c, "WorkspaceNotFound", &msg, generation, now);
            false
        }
        WorkspaceState::NotReady { reason, message } => {
            let msg = format!("waiting for Workspace {name:?}: {reason}: {message}");
            mark_progressing(c, "WaitingForWorkspace", &msg, generation, now);
            d.requeue_after = Some(WORKSPACE_RECHECK);
            d.waiting_for = Some(format!("Workspace {name:?}"));
            false
        }
    }
}

/// The refusal hold ([`refusal_hold`]) of the last write Azure refused, if any.
fn stall_wait(input: &Input<'_>) -> Option<Duration> {
    let status = input.status?;
    refusal_hold(
        &status.conditions,
        &status.last_error.as_ref()?.code,
        status.observed_generation,
        input.info.generation,
        input.retry_after_stall,
        input.now,
    )
}

/// The verb of a pending operation kind (`Create`, `Update`, `Delete`, `Detach`).
fn operation_name(p: &PendingOperation) -> &str {
    p.kind.split(':').next().unwrap_or_default()
}

/// Applies the poll of the pending operation; false when the reconcile stops here.
fn pending_outcome(
    d: &mut Decision<ComputeTargetStatus, ComputeAction>,
    outcome: OperationOutcome,
    generation: Option<i64>,
    now: Timestamp,
) -> bool {
    let op = d
        .status
        .pending_operation
        .clone()
        .map(|p| operation_name(&p).to_string())
        .unwrap_or_default();
    match outcome {
        OperationOutcome::InProgress { next_poll } => {
            let reason = match op.as_str() {
                "Update" => "Scaling",
                "Delete" => "Deleting",
                "Detach" => "Detaching",
                _ => "Creating",
            };
            let msg = format!("waiting for the Azure {op} operation to finish");
            mark_progressing(&mut d.status.conditions, reason, &msg, generation, now);
            d.requeue_after = Some(next_poll);
            false
        }
        OperationOutcome::Failed(failure) => {
            d.status.pending_operation = None;
            fail(d, failure, generation, now);
            false
        }
        OperationOutcome::Succeeded => {
            d.status.pending_operation = None;
            if op == "Update" {
                d.events
                    .push(Event::normal("Scaled", "scale settings updated"));
            }
            true
        }
    }
}

fn fail(
    d: &mut Decision<ComputeTargetStatus, ComputeAction>,
    failure: ActionFailure,
    generation: Option<i64>,
    now: Timestamp,
) {
    let same = d
        .status
        .last_error
        .as_ref()
        .is_some_and(|e| e.code == failure.reason);
    if !same {
        d.events
            .push(Event::warning(&failure.reason, failure.message.clone()));
    }
    d.status.last_error = Some(ErrorInfo {
        code: failure.reason.clone(),
        message: failure.message.clone(),
    });
    record_failure(&mut d.status.conditions, &failure, generation, now);
}

/// The compute exists in Azure: publish what it is, then fix what differs.
fn converge(
    d: &mut Decision<ComputeTargetStatus, ComputeAction>,
    input: &Input<'_>,
    kind: ComputeKind<'_>,
    o: &ObservedCompute,
) {
    let (generation, now) = (input.info.generation, input.now);
    let name = azure_name(input.info, input.spec);
    if o.compute_type != kind.type_name() {
        let msg = format!(
            "a {} compute named {name} already exists in the workspace; choose another azureName",
            o.compute_type
        );
        mark_stalled(
            &mut d.status.conditions,
            "ComputeTypeMismatch",
            &msg,
            generation,
            now,
        );
        return;
    }
    if let (Some(want), Some(have)) = (
        attached_resource(input.spec),
        o.attached_resource_id.as_deref(),
    ) && !want.eq_ignore_ascii_case(have)
    {
        let msg = format!(
            "compute {name} attaches {have}, not {want}; detach it or choose another azureName"
        );
        mark_stalled(
            &mut d.status.conditions,
            "AttachedResourceMismatch",
            &msg,
            generation,
            now,
        );
        return;
    }
    let s = &mut d.status;
    s.provisioning_state = o.provisioning_state.clone();
    s.resource_id = o.resource_id.clone();
    s.attached = Some(o.attached);
    s.nodes = o.nodes.clone();
    s.allocation_state = o.allocation_state.clone();
    node_errors::track(
        &mut s.conditions,
        &mut d.events,
        &o.node_errors,
        generation,
        now,
    );
    let s = &mut d.status;
    match o.provisioning_state.as_deref() {
        Some("Creating" | "Updating" | "Deleting") => {
            let state = o.provisioning_state.as_deref().unwrap_or_default();
            let msg = format!("Azure reports the compute as {state}");
            mark_progressing(&mut s.conditions, "Provisioning", &msg, generation, now);
            d.requeue_after = Some(BUSY_RECHECK);
        }
        Some("Failed" | "Canceled") => {
            let err = o.errors.first().cloned().unwrap_or(ErrorInfo {
                code: "ProvisioningFailed".into(),
                message: "Azure reports provisioning failed without details".into(),
            });
            let msg = format!(
                "{}; delete the ComputeTarget (deletionPolicy Delete) and apply it again",
                err.message
            );
            fail(
                d,
                ActionFailure {
                    kind: FailureKind::NeedsHuman,
                    reason: err.code,
                    message: msg,
                },
                generation,
                now,
            );
        }
        _ => settled(d, input, kind, o),
    }
}

fn settled(
    d: &mut Decision<ComputeTargetStatus, ComputeAction>,
    input: &Input<'_>,
    kind: ComputeKind<'_>,
    o: &ObservedCompute,
) {
    let (generation, now) = (input.info.generation, input.now);
    if let ComputeKind::AmlCompute(aml) = kind {
        let priority = match aml.vm_priority {
            crate::api::VmPriority::Dedicated => "Dedicated",
            crate::api::VmPriority::LowPriority => "LowPriority",
        };
        let size_differs = o
            .vm_size
            .as_deref()
            .is_some_and(|s| !s.eq_ignore_ascii_case(&aml.vm_size));
        let priority_differs = o.vm_priority.as_deref().is_some_and(|p| p != priority);
        if size_differs || priority_differs {
            let msg = format!(
                "vmSize/vmPriority cannot change on an existing cluster (Azure has {}/{}, spec wants {}/{priority}); delete and re-create the ComputeTarget",
                o.vm_size.as_deref().unwrap_or("?"),
                o.vm_priority.as_deref().unwrap_or("?"),
                aml.vm_size
            );
            mark_stalled(
                &mut d.status.conditions,
                "RecreateRequired",
                &msg,
                generation,
                now,
            );
            return;
        }
        if let Some(want) = desired_scale(input.spec)
            && o.scale != Some(want)
        {
            if let Some(wait) = stall_wait(input) {
                d.requeue_after = Some(wait);
                return;
            }
            let msg = format!(
                "scaling to min {} / max {} nodes, idle {}s",
                want.min_nodes, want.max_nodes, want.idle_seconds
            );
            mark_progressing(&mut d.status.conditions, "Scaling", &msg, generation, now);
            d.events.push(Event::normal("Scaling", msg));
            d.actions.push(ComputeAction::UpdateScale(want));
            d.requeue_after = Some(AFTER_START);
            return;
        }
    }
    if let Some(first) = o.node_errors.first() {
        // In sync with the spec, so no write of ours is failing; the nodes are the problem.
        d.status.last_error = None;
        let msg = node_errors::summary(&o.node_errors);
        mark_stalled(&mut d.status.conditions, &first.code, &msg, generation, now);
        return;
    }
    let was_ready = conditions::is_true(&d.status.conditions, READY);
    let (reason, msg) = if is_attach(&kind) {
        ("Attached", format!("{} attached", kind.type_name()))
    } else {
        ("Provisioned", format!("{} provisioned", kind.type_name()))
    };
    d.status.last_error = None;
    mark_ready(&mut d.status.conditions, reason, &msg, generation, now);
    if !was_ready {
        d.events.push(Event::normal(reason, msg));
    }
}

fn deleting(
    d: &mut Decision<ComputeTargetStatus, ComputeAction>,
    input: &Input<'_>,
    kind: ComputeKind<'_>,
) {
    let (generation, now) = (input.info.generation, input.now);
    let policy = input.spec.effective_deletion_policy();
    let no_azure = matches!(kind, ComputeKind::Local(_) | ComputeKind::AzureBatch(_))
        || input.already_attached_by.is_some()
        || !valid_azure_name(&azure_name(input.info, input.spec));
    if no_azure || policy == DeletionPolicy::Retain {
        if policy == DeletionPolicy::Retain && !no_azure {
            d.events.push(Event::normal(
                "Retained",
                "deletionPolicy Retain: the Azure compute is left untouched",
            ));
        }
        d.actions.push(ComputeAction::ReleaseFinalizer);
        return;
    }
    if input.info.paused {
        let msg = "deletion waits: reconciliation is paused by the amlops.io/reconcile annotation";
        mark_progressing(&mut d.status.conditions, "Paused", msg, generation, now);
        return;
    }
    if !workspace_ready(d, input) {
        if input.workspace == WorkspaceState::Missing {
            let msg = "cannot clean up in Azure without the Workspace: restore it, or set deletionPolicy Retain";
            mark_stalled(
                &mut d.status.conditions,
                "WorkspaceNotFound",
                msg,
                generation,
                now,
            );
        }
        return;
    }
    // Attached resources are only ever detached, whatever the policy says.
    let detach = policy == DeletionPolicy::Detach || is_attach(&kind);
    let gone = |d: &mut Decision<ComputeTargetStatus, ComputeAction>| {
        let reason = if detach { "Detached" } else { "Deleted" };
        if d.status.resource_id.is_some() {
            d.events.push(Event::normal(
                reason,
                format!(
                    "compute {} {}",
                    azure_name(input.info, input.spec),
                    reason.to_lowercase()
                ),
            ));
        }
        d.actions.push(ComputeAction::ReleaseFinalizer);
    };
    if let Some(outcome) = input.operation.clone() {
        let op = d
            .status
            .pending_operation
            .as_ref()
            .map(|p| operation_name(p).to_string());
        let deleting_op = matches!(op.as_deref(), Some("Delete" | "Detach"));
        match outcome {
            OperationOutcome::Succeeded if deleting_op => {
                d.status.pending_operation = None;
                gone(d);
                return;
            }
            other => {
                if !pending_outcome(d, other, generation, now) {
                    return;
                }
            }
        }
    }
    match input.observed {
        None => gone(d),
        Some(o) if o.provisioning_state.as_deref() == Some("Deleting") => {
            mark_progressing(
                &mut d.status.conditions,
                "Deleting",
                "Azure is deleting the compute",
                generation,
                now,
            );
            d.requeue_after = Some(BUSY_RECHECK);
        }
        Some(_) => {
            let (reason, msg) = if detach {
                ("Detaching", "detaching the compute from the workspace")
            } else {
                ("Deleting", "deleting the compute")
            };
            mark_progressing(&mut d.status.conditions, reason, msg, generation, now);
            d.events.push(Event::normal(reason, msg));
            d.actions.push(ComputeAction::Delete { detach });
            d.requeue_after = Some(AFTER_START);
        }
    }
}

/// Folds the outcome of an executed action into the decision (status, events).
pub fn apply_outcome(
    d: &mut Decision<ComputeTargetStatus, ComputeAction>,
    outcome: ActionOutcome,
    generation: Option<i64>,
    now: Timestamp,
) {
    match outcome {
        ActionOutcome::Done => {}
        ActionOutcome::Started(mut op) => {
            op.started_at = Some(Time(now));
            d.status.pending_operation = Some(op);
        }
        ActionOutcome::Failed(failure) => {
            fail(d, failure, generation, now);
            d.requeue_after = None;
        }
    }
}

mod node_errors;

#[cfg(test)]
mod tests;
