//! Computes: create or update (PUT; attach with `properties.resourceId`), get, list, scale
//! (PATCH), delete/detach and list nodes, as compute/…create_and_delete.json shows them.
//! Provisioning ends after `compute_provision_delay`, in `Failed` when the compute is tagged
//! `fake.outcome: Failed` (not recorded: no recording shows a failed provisioning).

use super::{Ctx, list_reply, lock_poisoned, lro, system_data, workspace};
use crate::errors;
use crate::reply::Reply;
use crate::server::Shared;
use crate::store::{Compute, Operation};
use serde_json::{Value, json};
use std::time::Instant;

fn key(ctx: &Ctx<'_>) -> (String, String) {
    let id = format!(
        "{}/computes/{}",
        ctx.workspace_id,
        ctx.route.param("computeName")
    );
    (id.to_ascii_lowercase(), id)
}

fn not_found(ctx: &Ctx<'_>) -> Reply {
    // Not recorded: a missing compute; answered in the MFE shape of job/…ray_command_job.json #1.
    errors::mfe_user(
        404,
        format!(
            "The Resource 'Microsoft.MachineLearningServices/workspaces/{}/computes/{}' was not found.",
            ctx.route.param("workspaceName"),
            ctx.route.param("computeName")
        ),
        &["NotFound", "ResourceNotFound"],
    )
}

/// The provisioning state of `c` at `now`.
fn provisioning_state(c: &Compute, now: Instant) -> &'static str {
    if c.gone_at.is_some() {
        "Deleting"
    } else if now < c.busy_until {
        c.busy_state
    } else if c.fails {
        "Failed"
    } else {
        "Succeeded"
    }
}

/// The compute as Azure returns it: readOnly fields filled in, secrets removed.
pub fn render(shared: &Shared, c: &Compute, now: Instant) -> Value {
    let mut out = c.body.clone();
    let state = provisioning_state(c, now);
    out["id"] = json!(c.id);
    out["name"] = json!(c.name);
    out["type"] = json!("Microsoft.MachineLearningServices/workspaces/computes");
    if out.get("location").is_none() {
        out["location"] = json!(workspace::LOCATION);
    }
    if out.get("tags").is_none() {
        out["tags"] = json!({});
    }
    out["systemData"] = system_data(c.created_wall, c.modified_wall);
    let props = &mut out["properties"];
    // compute/…create_and_delete.json #0, #3: what the service fills in when not sent.
    for (field, default) in [
        ("description", Value::Null),
        ("resourceId", Value::Null),
        ("disableLocalAuth", json!(false)),
    ] {
        if props.get(field).is_none() {
            props[field] = default;
        }
    }
    props["provisioningWarnings"] = if state == "Creating" {
        Value::Null
    } else {
        json!({})
    };
    props["provisioningState"] = json!(state);
    props["isAttachedCompute"] = json!(props.get("resourceId").is_some_and(Value::is_string));
    props["createdOn"] = json!(c.created_wall.to_string());
    props["modifiedOn"] = json!(c.modified_wall.to_string());
    if props.get("computeLocation").is_none() {
        props["computeLocation"] = json!(workspace::LOCATION);
    }
    // compute/…create_and_delete.json #0, #3: `provisioningErrors` is null unless provisioning failed.
    props["provisioningErrors"] = if state == "Failed" {
        json!([{"error": provisioning_error()}])
    } else {
        Value::Null
    };
    if props["computeType"] == "AmlCompute" {
        let inner = &mut props["properties"];
        if !inner.is_object() {
            *inner = json!({});
        }
        render_cluster(inner, c, state == "Succeeded");
    }
    if let Some(schema) = shared.spec.definition("ComputeResource") {
        shared.spec.strip_secrets(schema, &mut out);
    }
    out
}

/// The node fields of an AmlCompute: null while it is being created (compute/…create_and_delete.json
/// #0, #5), numbers once it exists (#3), `errors` null unless a test injected node errors; and
/// the defaults #0 shows for fields the request left out (`osType`, `remoteLoginPortPublicAccess`
/// and `enableNodePublicIp` are also the spec's defaults).
fn render_cluster(inner: &mut Value, c: &Compute, ready: bool) {
    for (field, default) in [
        ("osType", json!("Linux")),
        ("vmPriority", json!("Dedicated")),
        ("subnet", Value::Null),
        ("remoteLoginPortPublicAccess", json!("NotSpecified")),
        ("virtualMachineImage", Value::Null),
        ("isolatedNetwork", json!(false)),
        ("enableNodePublicIp", json!(true)),
        ("enableBatchPrivateLink", json!(false)),
    ] {
        if inner.get(field).is_none() {
            inner[field] = default;
        }
    }
    let nodes = min_nodes(inner);
    let (allocation, current, target, errors) = match (ready, c.node_errors.is_empty()) {
        (false, _) => (Value::Null, Value::Null, Value::Null, Value::Null),
        (true, true) => (json!("Steady"), json!(nodes), json!(nodes), Value::Null),
        // Not recorded: a cluster that cannot get its nodes. It keeps asking for at least one
        // node (a queued job wants one), has none, and reports the errors in the spec's
        // `AmlComputeProperties.errors` (an array of ARM `ErrorResponse`).
        (true, false) => (
            json!("Resizing"),
            json!(0),
            json!(nodes.max(1)),
            node_errors(&c.node_errors),
        ),
    };
    let idle = current.as_i64();
    inner["allocationState"] = allocation;
    inner["currentNodeCount"] = current;
    inner["targetNodeCount"] = target;
    inner["errors"] = errors;
    inner["nodeStateCounts"] = match idle {
        Some(idle) => json!({
            "preparingNodeCount": 0, "runningNodeCount": 0, "idleNodeCount": idle,
            "unusableNodeCount": 0, "leavingNodeCount": 0, "preemptedNodeCount": 0,
        }),
        None => Value::Null,
    };
    if ready {
        inner["allocationStateTransitionTime"] = json!(c.modified_wall.to_string());
        inner["propertyBag"] = json!({});
    }
}

fn node_errors(errors: &[(String, String)]) -> Value {
    errors
        .iter()
        .map(|(code, message)| json!({"error": {"code": code, "message": message}}))
        .collect()
}

fn min_nodes(amlcompute_properties: &Value) -> i64 {
    amlcompute_properties
        .pointer("/scaleSettings/minNodeCount")
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

fn provisioning_error() -> Value {
    json!({"code": "ComputeProvisioningFailed", "message": "fake: provisioning failed because the compute is tagged fake.outcome=Failed"})
}

pub fn get(ctx: &Ctx<'_>) -> Reply {
    let (k, _) = key(ctx);
    let Ok(store) = ctx.shared.store.lock() else {
        return lock_poisoned();
    };
    match store.computes.get(&k).filter(|c| c.exists(ctx.now)) {
        Some(c) => Reply::json(200, render(ctx.shared, c, ctx.now)),
        None => not_found(ctx),
    }
}

pub fn list(ctx: &Ctx<'_>) -> Reply {
    let prefix = format!("{}/computes/", ctx.workspace_id.to_ascii_lowercase());
    let Ok(store) = ctx.shared.store.lock() else {
        return lock_poisoned();
    };
    let mut items: Vec<(&String, &Compute)> = store
        .computes
        .iter()
        .filter(|(k, c)| k.starts_with(&prefix) && c.exists(ctx.now))
        .collect();
    items.sort_by_key(|(k, _)| *k);
    list_reply(
        items
            .into_iter()
            .map(|(_, c)| render(ctx.shared, c, ctx.now))
            .collect(),
    )
}

/// The quota check: an AmlCompute asking for more nodes than `max_nodes_quota` is refused.
/// Not recorded: the message follows Azure's quota wording, in the MFE shape.
fn check_quota(ctx: &Ctx<'_>, body: &Value) -> Option<Reply> {
    let asked = body
        .pointer("/properties/properties/scaleSettings/maxNodeCount")
        .and_then(Value::as_i64)?;
    let quota = ctx.shared.options.max_nodes_quota?;
    (asked > quota).then(|| {
        errors::mfe_user(
            400,
            format!(
                "Operation results in exceeding quota limits of Core. Maximum allowed: {quota} nodes, requested: {asked}."
            ),
            &["QuotaExceeded"],
        )
    })
}

/// Create or update. Both answer 201 `Creating` with only `Azure-AsyncOperation`
/// (compute/…create_and_delete.json #0 for a create, #5 for an update by PUT).
pub fn put(ctx: &Ctx<'_>) -> Reply {
    let (k, id) = key(ctx);
    let body = match ctx.resource_body() {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    if let Some(refused) = check_quota(ctx, &body) {
        return refused;
    }
    let busy_until = ctx.now + ctx.shared.options.compute_provision_delay;
    let Ok(mut store) = ctx.shared.store.lock() else {
        return lock_poisoned();
    };
    let (rendered, fails) = match store.computes.get_mut(&k).filter(|c| c.exists(ctx.now)) {
        Some(existing) => {
            if let Some(refused) = refuse_update(existing, &body) {
                return refused;
            }
            existing.body = body;
            existing.modified_wall = ctx.wall;
            existing.busy_until = busy_until;
            existing.busy_state = "Creating";
            let mut rendered = render(ctx.shared, existing, ctx.now);
            // compute/…create_and_delete.json #5: the update answer names the underlying
            // BatchAI cluster as `resourceId` (a later GET, #8, shows null again).
            rendered["properties"]["resourceId"] = json!(format!(
                "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.BatchAI/workspaces/{}/clusters/{}",
                ctx.route.param("subscriptionId"),
                ctx.route.param("resourceGroupName"),
                ctx.route.param("workspaceName"),
                ctx.route.param("computeName")
            ));
            (rendered, existing.fails)
        }
        None => {
            let fails =
                body.pointer("/tags/fake.outcome").and_then(Value::as_str) == Some("Failed");
            let compute = Compute {
                id,
                name: ctx.route.param("computeName").to_string(),
                body,
                created_wall: ctx.wall,
                modified_wall: ctx.wall,
                busy_until,
                busy_state: "Creating",
                fails,
                gone_at: None,
                node_errors: Vec::new(),
            };
            let rendered = render(ctx.shared, &compute, ctx.now);
            store.computes.insert(k, compute);
            (rendered, fails)
        }
    };
    drop(store);
    let op = Operation {
        done_at: busy_until,
        error: fails.then(provisioning_error),
    };
    Reply {
        status: 201,
        headers: lro::start_compute(ctx, op),
        body: Some(rendered),
    }
}

/// Why an update by PUT is refused, if it is. Not recorded: both refusals.
fn refuse_update(existing: &Compute, body: &Value) -> Option<Reply> {
    if existing.gone_at.is_some() {
        return Some(errors::mfe_user(
            409,
            "The compute is being deleted; retry after the delete operation completes.",
            &["Conflict"],
        ));
    }
    let same_type =
        existing.body.pointer("/properties/computeType") == body.pointer("/properties/computeType");
    (!same_type).then(|| {
        errors::mfe_user(
            400,
            "properties.computeType of an existing compute cannot be changed.",
            &["BadArgument"],
        )
    })
}

/// PATCH with `{"properties":{"properties":{"scaleSettings":..}}}`: a long-running update.
/// Not recorded: answered like the update by PUT (only `Azure-AsyncOperation`), with 200
/// and state `Updating` as the spec's PATCH response describes.
pub fn patch(ctx: &Ctx<'_>) -> Reply {
    let (k, _) = key(ctx);
    let scale = ctx
        .body
        .as_ref()
        .and_then(|b| b.pointer("/properties/properties/scaleSettings"))
        .cloned();
    let Ok(mut store) = ctx.shared.store.lock() else {
        return lock_poisoned();
    };
    let Some(c) = store
        .computes
        .get_mut(&k)
        .filter(|c| c.exists(ctx.now) && c.gone_at.is_none())
    else {
        return not_found(ctx);
    };
    if c.body
        .pointer("/properties/computeType")
        .and_then(Value::as_str)
        != Some("AmlCompute")
    {
        return errors::mfe_user(
            400,
            "Scale settings can only be updated on an AmlCompute.",
            &["BadArgument"],
        );
    }
    if let Some(scale) = scale {
        let props = &mut c.body["properties"];
        if !props["properties"].is_object() {
            props["properties"] = json!({});
        }
        props["properties"]["scaleSettings"] = scale;
    }
    c.busy_until = ctx.now + ctx.shared.options.compute_provision_delay;
    c.busy_state = "Updating";
    c.modified_wall = ctx.wall;
    let op = Operation {
        done_at: c.busy_until,
        error: None,
    };
    let rendered = render(ctx.shared, c, ctx.now);
    drop(store);
    Reply {
        status: 200,
        headers: lro::start_compute(ctx, op),
        body: Some(rendered),
    }
}

/// Delete or detach: 202, empty body, only `Azure-AsyncOperation` (compute/…create_and_delete.json
/// #10; aso/EXCERPTS.md shows the same for a detach).
pub fn delete(ctx: &Ctx<'_>) -> Reply {
    match ctx.query("underlyingResourceAction") {
        Some("Delete" | "Detach") => {}
        other => {
            return errors::mfe_user(
                400,
                format!(
                    "query parameter underlyingResourceAction must be 'Delete' or 'Detach', got {other:?}"
                ),
                &["BadArgument"],
            );
        }
    }
    let (k, _) = key(ctx);
    let Ok(mut store) = ctx.shared.store.lock() else {
        return lock_poisoned();
    };
    let Some(c) = store.computes.get_mut(&k).filter(|c| c.exists(ctx.now)) else {
        // Not recorded: deleting a compute that does not exist (ARM's 204 for "already gone").
        return Reply::empty(204);
    };
    let gone_at = *c
        .gone_at
        .get_or_insert(ctx.now + ctx.shared.options.compute_provision_delay);
    drop(store);
    let op = Operation {
        done_at: gone_at,
        error: None,
    };
    Reply {
        status: 202,
        headers: lro::start_compute(ctx, op),
        body: None,
    }
}

pub fn list_nodes(ctx: &Ctx<'_>) -> Reply {
    let (k, _) = key(ctx);
    let Ok(store) = ctx.shared.store.lock() else {
        return lock_poisoned();
    };
    let Some(c) = store.computes.get(&k).filter(|c| c.exists(ctx.now)) else {
        return not_found(ctx);
    };
    if c.body
        .pointer("/properties/computeType")
        .and_then(Value::as_str)
        != Some("AmlCompute")
    {
        return errors::mfe_user(
            400,
            "Nodes can only be listed for an AmlCompute.",
            &["BadArgument"],
        );
    }
    // Not recorded: node listing; a cluster with node errors has no nodes.
    let count = if provisioning_state(c, ctx.now) == "Succeeded" && c.node_errors.is_empty() {
        min_nodes(&c.body["properties"]["properties"])
    } else {
        0
    };
    let nodes: Vec<Value> = (0..count)
        .map(|i| {
            json!({
                "nodeId": format!("tvmps_{i:04}_d"),
                "privateIpAddress": format!("10.0.0.{}", i + 4),
                "publicIpAddress": null,
                "port": 50000 + i,
                "nodeState": "idle",
                "runId": null,
            })
        })
        .collect();
    Reply::json(200, json!({ "nodes": nodes }))
}

/// Sets the node errors of every compute named `name` (any workspace); returns how many.
pub fn set_errors(shared: &Shared, name: &str, errors: &[(String, String)]) -> usize {
    let Ok(mut store) = shared.store.lock() else {
        return 0;
    };
    store
        .computes
        .values_mut()
        .filter(|c| c.name.eq_ignore_ascii_case(name))
        .map(|c| c.node_errors = errors.to_vec())
        .count()
}
