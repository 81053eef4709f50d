//! Compute actions: observe (poll the pending operation, GET the compute), and execute
//! create/attach (PUT), scale (PATCH) and delete/detach (DELETE). Secret values are read
//! from their Secrets right before the PUT and only ever live in the request body.

use super::{SecretSource, azure_failure};
use crate::api::ComputeTargetStatus;
use crate::api::{
    AdminUser, ComputeKind as SpecKind, ComputeTargetSpec, ErrorInfo, NodeCounts, PendingOperation,
    SecretKeyRef, SshCompute,
};
use crate::azure::error::ErrorBody;
use crate::azure::lro::{OperationHandle, OperationKind, PollState, Started};
use crate::azure::models::common::IsoDuration;
use crate::azure::models::compute::{
    AmlComputeProperties, Compute, ComputeKind, ComputeResource, DataLakeAnalyticsProperties,
    DatabricksProperties, HdInsightProperties, InstanceTypeResources, InstanceTypeSchema,
    KubernetesProperties, RemoteLoginPortPublicAccess, ResourceId, ScaleSettings,
    UnderlyingResourceAction, UserAccountCredentials, VirtualMachineProperties,
    VirtualMachineSshCredentials, VmPriority,
};
use crate::azure::{Secret, WorkspaceClient};
use crate::reconcile::compute_target::{
    ActionOutcome, ComputeAction, Input, ObservedCompute, OperationOutcome, Scale, apply_outcome,
    azure_name, reconcile as decide,
};
use crate::reconcile::{ActionFailure, Decision, FailureKind};

/// Tag naming the Kubernetes object that owns an Azure compute (`namespace/name`).
pub const OWNER_TAG: &str = "amlops.io/owner";

/// One poll of the pending operation (if any), then one GET of the compute.
pub async fn observe(
    client: &WorkspaceClient,
    name: &str,
    pending: Option<&PendingOperation>,
) -> Result<(Option<OperationOutcome>, Option<ObservedCompute>), ActionFailure> {
    let outcome = match pending {
        None => None,
        Some(p) => Some(poll(client, p).await?),
    };
    let resource = client
        .compute_get(name)
        .await
        .map_err(|e| azure_failure(&e))?;
    Ok((outcome, resource.as_ref().map(observed)))
}

async fn poll(
    client: &WorkspaceClient,
    pending: &PendingOperation,
) -> Result<OperationOutcome, ActionFailure> {
    match client.arm().poll(&handle_of(pending)).await {
        Ok(PollState::InProgress { next_poll }) => Ok(OperationOutcome::InProgress { next_poll }),
        Ok(PollState::Succeeded) => Ok(OperationOutcome::Succeeded),
        Ok(PollState::Failed(e)) => Ok(OperationOutcome::Failed(azure_failure(&e))),
        // Azure forgets finished operations after a while: the GET that follows tells the truth.
        Err(e) if e.is_not_found() => Ok(OperationOutcome::Succeeded),
        Err(e) => Err(azure_failure(&e)),
    }
}

/// `PendingOperation.kind` is the verb, with `:Location` appended when the operation must be
/// polled by its Location URL (the status has no separate field for the protocol).
pub fn pending_of(verb: &str, handle: &OperationHandle) -> PendingOperation {
    let kind = match handle.kind {
        OperationKind::AzureAsyncOperation => verb.to_string(),
        OperationKind::Location => format!("{verb}:Location"),
    };
    PendingOperation {
        kind,
        url: handle.url.clone(),
        started_at: None,
    }
}

pub fn handle_of(p: &PendingOperation) -> OperationHandle {
    let kind = if p.kind.ends_with(":Location") {
        OperationKind::Location
    } else {
        OperationKind::AzureAsyncOperation
    };
    OperationHandle {
        url: p.url.clone(),
        kind,
    }
}

fn count(n: Option<u32>) -> i32 {
    n.map_or(0, |n| i32::try_from(n).unwrap_or(i32::MAX))
}

/// Azure's `ErrorResponse`s as the status shows them: the most specific code (`fallback`
/// when Azure names none) and the scrubbed message led by the code chain.
fn error_infos(errors: &[ErrorBody], fallback: &str) -> Vec<ErrorInfo> {
    errors
        .iter()
        .filter_map(|e| e.error.as_ref())
        .map(|e| ErrorInfo {
            code: e.reason().unwrap_or_else(|| fallback.into()),
            message: e.describe(),
        })
        .collect()
}

/// The reconciler's view of an Azure compute.
pub fn observed(r: &ComputeResource) -> ObservedCompute {
    let common = &r.properties.common;
    let mut o = ObservedCompute {
        compute_type: r.properties.kind.compute_type().to_string(),
        provisioning_state: common.provisioning_state.map(|s| format!("{s:?}")),
        resource_id: r.id.clone(),
        attached_resource_id: common.resource_id.clone(),
        attached: common.is_attached_compute.unwrap_or(false),
        errors: error_infos(&common.provisioning_errors, "ProvisioningFailed"),
        ..ObservedCompute::default()
    };
    if let ComputeKind::AmlCompute(p) = &r.properties.kind {
        o.node_errors = error_infos(&p.errors, "NodeError");
        o.vm_size = p.vm_size.clone();
        o.vm_priority = p.vm_priority.map(|v| format!("{v:?}"));
        o.scale = p.scale_settings.as_ref().map(|s| Scale {
            min_nodes: count(s.min_node_count),
            max_nodes: count(Some(s.max_node_count)),
            idle_seconds: s
                .node_idle_time_before_scale_down
                .map_or(-1, |d| i64::try_from(d.0.as_secs()).unwrap_or(i64::MAX)),
        });
        let c = p.node_state_counts.clone().unwrap_or_default();
        o.nodes = Some(NodeCounts {
            current: count(p.current_node_count),
            target: count(p.target_node_count),
            idle: count(Some(c.idle_node_count)),
            running: count(Some(c.running_node_count)),
            preparing: count(Some(c.preparing_node_count)),
            unusable: count(Some(c.unusable_node_count)),
            leaving: count(Some(c.leaving_node_count)),
            preempted: count(Some(c.preempted_node_count)),
        });
        o.allocation_state = p.allocation_state.clone();
    }
    o
}

/// Runs one action. `owner` is `namespace/name` of the ComputeTarget.
pub async fn execute<S: SecretSource>(
    client: &WorkspaceClient,
    name: &str,
    spec: &ComputeTargetSpec,
    owner: &str,
    action: &ComputeAction,
    secrets: &S,
) -> ActionOutcome {
    let result = match action {
        ComputeAction::Create => create(client, name, spec, owner, secrets).await,
        ComputeAction::UpdateScale(scale) => client
            .compute_update_scale(name, &scale_settings(*scale))
            .await
            .map(|s| started("Update", s))
            .map_err(|e| azure_failure(&e)),
        ComputeAction::Delete { detach } => {
            let (verb, how) = if *detach {
                ("Detach", UnderlyingResourceAction::Detach)
            } else {
                ("Delete", UnderlyingResourceAction::Delete)
            };
            client
                .compute_delete(name, how)
                .await
                .map(|s| started(verb, s))
                .map_err(|e| azure_failure(&e))
        }
        ComputeAction::ReleaseFinalizer => Ok(ActionOutcome::Done),
    };
    result.unwrap_or_else(ActionOutcome::Failed)
}

fn started<T>(verb: &str, s: Started<T>) -> ActionOutcome {
    match s {
        Started::Done(_) => ActionOutcome::Done,
        Started::Pending(handle) => ActionOutcome::Started(pending_of(verb, &handle)),
    }
}

async fn create<S: SecretSource>(
    client: &WorkspaceClient,
    name: &str,
    spec: &ComputeTargetSpec,
    owner: &str,
    secrets: &S,
) -> Result<ActionOutcome, ActionFailure> {
    let resource =
        build_resource(spec, owner, &client.workspace().subscription_id, secrets).await?;
    let s = client
        .compute_create_or_update(name, &resource)
        .await
        .map_err(|e| azure_failure(&e))?;
    Ok(started("Create", s))
}

fn scale_settings(s: Scale) -> ScaleSettings {
    let nonneg = |n: i32| u32::try_from(n).unwrap_or(0);
    ScaleSettings {
        max_node_count: nonneg(s.max_nodes),
        min_node_count: Some(nonneg(s.min_nodes)),
        node_idle_time_before_scale_down: Some(IsoDuration::from_secs(
            u64::try_from(s.idle_seconds).unwrap_or(0),
        )),
    }
}

async fn read<S: SecretSource>(
    secrets: &S,
    r: &Option<SecretKeyRef>,
) -> Result<Option<Secret>, ActionFailure> {
    match r {
        None => Ok(None),
        Some(r) => Ok(Some(secrets.secret_value(&r.name, &r.key).await?)),
    }
}

async fn admin<S: SecretSource>(
    secrets: &S,
    a: &AdminUser,
) -> Result<UserAccountCredentials, ActionFailure> {
    Ok(UserAccountCredentials {
        admin_user_name: a.username.clone(),
        admin_user_ssh_public_key: read(secrets, &a.ssh_public_key_secret_ref).await?,
        admin_user_password: read(secrets, &a.password_secret_ref).await?,
    })
}

async fn ssh<S: SecretSource>(
    secrets: &S,
    s: &SshCompute,
) -> Result<VirtualMachineSshCredentials, ActionFailure> {
    Ok(VirtualMachineSshCredentials {
        username: Some(s.username.clone()),
        password: read(secrets, &s.password_secret_ref).await?,
        public_key_data: None,
        private_key_data: read(secrets, &s.private_key_secret_ref).await?,
    })
}

fn port(p: i32) -> Option<u16> {
    u16::try_from(p).ok()
}

/// The PUT body for the declared compute, with Secret values resolved now.
pub async fn build_resource<S: SecretSource>(
    spec: &ComputeTargetSpec,
    owner: &str,
    subscription_id: &str,
    secrets: &S,
) -> Result<ComputeResource, ActionFailure> {
    let unsupported = |what: &str| ActionFailure {
        kind: FailureKind::NeedsHuman,
        reason: "UnsupportedComputeType".into(),
        message: format!("{what} cannot be created in Azure ML"),
    };
    let kind = spec
        .kind()
        .ok_or_else(|| unsupported("a spec without exactly one compute kind"))?;
    let (kind, resource_id) = match kind {
        SpecKind::AmlCompute(a) => {
            let creds = match &a.admin_user {
                Some(u) => Some(admin(secrets, u).await?),
                None => None,
            };
            let p = AmlComputeProperties {
                vm_size: Some(a.vm_size.clone()),
                vm_priority: Some(match a.vm_priority {
                    crate::api::VmPriority::Dedicated => VmPriority::Dedicated,
                    crate::api::VmPriority::LowPriority => VmPriority::LowPriority,
                }),
                scale_settings: Some(scale_settings(Scale {
                    min_nodes: a.min_nodes,
                    max_nodes: a.max_nodes,
                    idle_seconds: i64::from(a.idle_seconds_before_scale_down),
                })),
                user_account_credentials: creds,
                subnet: a.subnet.clone().map(|id| ResourceId { id }),
                remote_login_port_public_access: a.remote_login_port_public_access.map(
                    |r| match r {
                        crate::api::RemoteLoginPortPublicAccess::Enabled => {
                            RemoteLoginPortPublicAccess::Enabled
                        }
                        crate::api::RemoteLoginPortPublicAccess::Disabled => {
                            RemoteLoginPortPublicAccess::Disabled
                        }
                        crate::api::RemoteLoginPortPublicAccess::NotSpecified => {
                            RemoteLoginPortPublicAccess::NotSpecified
                        }
                    },
                ),
                ..AmlComputeProperties::default()
            };
            (ComputeKind::AmlCompute(p), None)
        }
        SpecKind::RemoteVm(s) => {
            let p = VirtualMachineProperties {
                ssh_port: port(s.ssh_port),
                address: Some(s.address.clone()),
                administrator_account: Some(ssh(secrets, s).await?),
                ..VirtualMachineProperties::default()
            };
            (ComputeKind::VirtualMachine(p), Some(s.resource_id.clone()))
        }
        SpecKind::HdInsight(s) => {
            let p = HdInsightProperties {
                ssh_port: port(s.ssh_port),
                address: Some(s.address.clone()),
                administrator_account: Some(ssh(secrets, s).await?),
            };
            (ComputeKind::HdInsight(p), Some(s.resource_id.clone()))
        }
        SpecKind::Databricks(d) => {
            let token = secrets
                .secret_value(
                    &d.access_token_secret_ref.name,
                    &d.access_token_secret_ref.key,
                )
                .await?;
            let p = DatabricksProperties {
                databricks_access_token: Some(token),
                workspace_url: d.workspace_url.clone(),
            };
            (ComputeKind::Databricks(p), Some(d.resource_id.clone()))
        }
        SpecKind::DataLakeAnalytics(d) => {
            let sub = d
                .subscription_id
                .clone()
                .unwrap_or_else(|| subscription_id.to_string());
            let id = format!(
                "/subscriptions/{sub}/resourceGroups/{}/providers/Microsoft.DataLakeAnalytics/accounts/{}",
                d.resource_group, d.account_name
            );
            let p = DataLakeAnalyticsProperties {
                data_lake_store_account_name: None,
            };
            (ComputeKind::DataLakeAnalytics(p), Some(id))
        }
        SpecKind::Kubernetes(k) => {
            let instance_types = k
                .instance_types
                .iter()
                .map(|(name, t)| {
                    let schema = InstanceTypeSchema {
                        node_selector: t.node_selector.clone(),
                        resources: InstanceTypeResources {
                            requests: t.resources.requests.clone(),
                            limits: t.resources.limits.clone(),
                        },
                    };
                    (name.clone(), schema)
                })
                .collect();
            let p = KubernetesProperties {
                namespace: Some(k.namespace.clone()),
                default_instance_type: k.default_instance_type.clone(),
                instance_types,
            };
            (ComputeKind::Kubernetes(p), Some(k.resource_id.clone()))
        }
        SpecKind::Local(_) => return Err(unsupported("local compute")),
        SpecKind::AzureBatch(_) => {
            return Err(unsupported(
                "Azure Batch (no such compute type in api-version 2026-07-01)",
            ));
        }
    };
    let mut compute = Compute::new(kind);
    compute.common.resource_id = resource_id;
    compute.common.description = spec.description.clone();
    Ok(ComputeResource {
        id: None,
        name: None,
        location: None,
        tags: [(OWNER_TAG.to_string(), owner.to_string())].into(),
        properties: compute,
    })
}

#[cfg(test)]
mod tests;

/// The outcome of one [`converge`]: the decision with every executed action folded in, the
/// failure (reason, retryable) if one stopped it, and whether the finalizer may go.
pub type Converged = super::Converged<ComputeTargetStatus, ComputeAction>;

/// One reconcile of a ComputeTarget, shared by both frontends: observe Azure (when the spec
/// needs it and a client could be built), decide, execute the actions in order, stop at the
/// first failure. `client` is `None` when nothing in Azure has to be read.
pub async fn converge<S: SecretSource>(
    client: Option<Result<WorkspaceClient, ActionFailure>>,
    input: Input<'_>,
    secrets: &S,
) -> Converged {
    let (info, spec, now) = (input.info, input.spec, input.now);
    let name = azure_name(info, spec);
    let owner = format!("{}/{}", info.namespace, info.name);
    let mut failure = None;
    let (mut decision, client) = match client {
        None => (decide(input), None),
        Some(connected) => {
            let pending = input.status.and_then(|s| s.pending_operation.as_ref());
            let observed = match connected {
                Ok(client) => observe(&client, &name, pending).await.map(|o| (o, client)),
                Err(f) => Err(f),
            };
            match observed {
                Ok(((operation, compute), client)) => {
                    let observed = Input {
                        operation,
                        observed: compute.as_ref(),
                        ..input
                    };
                    (decide(observed), Some(client))
                }
                Err(f) => {
                    let mut d = Decision::new(input.status.cloned().unwrap_or_default());
                    d.status.observed_generation = info.generation;
                    failure = Some(f.clone());
                    apply_outcome(&mut d, ActionOutcome::Failed(f), info.generation, now);
                    (d, None)
                }
            }
        }
    };
    let mut release_finalizer = false;
    for action in decision.actions.clone() {
        if action == ComputeAction::ReleaseFinalizer {
            release_finalizer = true;
            continue;
        }
        let Some(client) = &client else { break };
        let outcome = execute(client, &name, spec, &owner, &action, secrets).await;
        tracing::info!(compute_target = %info.name, namespace = %info.namespace, ?action, ok = !matches!(outcome, ActionOutcome::Failed(_)), "executed");
        let failed = if let ActionOutcome::Failed(f) = &outcome {
            failure = Some(f.clone());
            true
        } else {
            false
        };
        apply_outcome(&mut decision, outcome, info.generation, now);
        if failed {
            break;
        }
    }
    Converged {
        decision,
        failure,
        release_finalizer,
    }
}
