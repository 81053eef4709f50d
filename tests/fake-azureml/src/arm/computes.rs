//! Computes: create (or attach with `properties.resourceId`), get, list, scale (PATCH),
//! delete/detach and list nodes. Provisioning ends after `compute_provision_delay`, in
//! `Failed` when the compute is tagged `fake.outcome: Failed`.

use super::{Ctx, list_reply, lock_poisoned, lro, system_data, workspace};
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
    Reply::arm_error(
        404,
        "ResourceNotFound",
        format!(
            "The Resource 'Microsoft.MachineLearningServices/workspaces/{}/computes/{}' was not found.",
            ctx.route.param("workspaceName"),
            ctx.route.param("computeName")
        ),
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
    out["systemData"] = system_data(c.created_wall, c.modified_wall);
    let props = &mut out["properties"];
    props["provisioningState"] = json!(state);
    props["isAttachedCompute"] = json!(props.get("resourceId").is_some_and(Value::is_string));
    props["createdOn"] = json!(c.created_wall.to_string());
    props["modifiedOn"] = json!(c.modified_wall.to_string());
    if props.get("computeLocation").is_none() {
        props["computeLocation"] = json!(workspace::LOCATION);
    }
    if state == "Failed" {
        props["provisioningErrors"] = json!([{"error": provisioning_error()}]);
    }
    if props["computeType"] == "AmlCompute" {
        let nodes = if state == "Succeeded" {
            min_nodes(props)
        } else {
            0
        };
        let inner = &mut props["properties"];
        if !inner.is_object() {
            *inner = json!({});
        }
        inner["allocationState"] = json!("Steady");
        inner["allocationStateTransitionTime"] = json!(c.modified_wall.to_string());
        inner["currentNodeCount"] = json!(nodes);
        inner["targetNodeCount"] = json!(nodes);
        inner["nodeStateCounts"] = json!({
            "idleNodeCount": nodes, "runningNodeCount": 0, "preparingNodeCount": 0,
            "unusableNodeCount": 0, "leavingNodeCount": 0, "preemptedNodeCount": 0,
        });
    }
    if let Some(schema) = shared.spec.definition("ComputeResource") {
        shared.spec.strip_secrets(schema, &mut out);
    }
    out
}

fn min_nodes(props: &Value) -> i64 {
    props
        .pointer("/properties/scaleSettings/minNodeCount")
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

pub fn put(ctx: &Ctx<'_>) -> Reply {
    let (k, id) = key(ctx);
    let body = match ctx.resource_body() {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    let asked = body
        .pointer("/properties/properties/scaleSettings/maxNodeCount")
        .and_then(Value::as_i64);
    if let (Some(quota), Some(asked)) = (ctx.shared.options.max_nodes_quota, asked)
        && asked > quota
    {
        let message = format!(
            "Operation results in exceeding quota limits of Core. Maximum allowed: {quota} nodes, requested: {asked}."
        );
        return Reply::arm_error(400, "QuotaExceeded", &message);
    }
    let Ok(mut store) = ctx.shared.store.lock() else {
        return lock_poisoned();
    };
    if let Some(existing) = store.computes.get_mut(&k).filter(|c| c.exists(ctx.now)) {
        if existing.gone_at.is_some() {
            return Reply::arm_error(
                409,
                "Conflict",
                "The compute is being deleted; retry after the delete operation completes.",
            );
        }
        if existing.body.pointer("/properties/computeType")
            != body.pointer("/properties/computeType")
        {
            return Reply::arm_error(
                400,
                "BadRequest",
                "properties.computeType of an existing compute cannot be changed.",
            );
        }
        existing.body = body;
        existing.modified_wall = ctx.wall;
        return Reply::json(200, render(ctx.shared, existing, ctx.now));
    }
    let fails = body.pointer("/tags/fake.outcome").and_then(Value::as_str) == Some("Failed");
    let compute = Compute {
        id,
        name: ctx.route.param("computeName").to_string(),
        body,
        created_wall: ctx.wall,
        modified_wall: ctx.wall,
        busy_until: ctx.now + ctx.shared.options.compute_provision_delay,
        busy_state: "Creating",
        fails,
        gone_at: None,
    };
    let op = Operation {
        done_at: compute.busy_until,
        error: fails.then(provisioning_error),
        result_compute: Some(k.clone()),
    };
    let rendered = render(ctx.shared, &compute, ctx.now);
    store.computes.insert(k, compute);
    drop(store);
    let headers = lro::start(ctx, op);
    Reply {
        status: 201,
        headers,
        body: Some(rendered),
    }
}

/// PATCH with `{"properties":{"properties":{"scaleSettings":..}}}`: a long-running update.
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
        return Reply::arm_error(
            400,
            "BadRequest",
            "Scale settings can only be updated on an AmlCompute.",
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
        result_compute: Some(k.clone()),
    };
    let rendered = render(ctx.shared, c, ctx.now);
    drop(store);
    Reply {
        status: 200,
        headers: lro::start(ctx, op),
        body: Some(rendered),
    }
}

pub fn delete(ctx: &Ctx<'_>) -> Reply {
    match ctx.query("underlyingResourceAction") {
        Some("Delete" | "Detach") => {}
        other => {
            return Reply::arm_error(
                400,
                "BadRequest",
                format!(
                    "query parameter underlyingResourceAction must be 'Delete' or 'Detach', got {other:?}"
                ),
            );
        }
    }
    let (k, _) = key(ctx);
    let Ok(mut store) = ctx.shared.store.lock() else {
        return lock_poisoned();
    };
    let Some(c) = store.computes.get_mut(&k).filter(|c| c.exists(ctx.now)) else {
        return Reply::empty(204);
    };
    let gone_at = *c
        .gone_at
        .get_or_insert(ctx.now + ctx.shared.options.compute_provision_delay);
    drop(store);
    let op = Operation {
        done_at: gone_at,
        error: None,
        result_compute: None,
    };
    Reply {
        status: 202,
        headers: lro::start(ctx, op),
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
        return Reply::arm_error(
            400,
            "BadRequest",
            "Nodes can only be listed for an AmlCompute.",
        );
    }
    let count = if provisioning_state(c, ctx.now) == "Succeeded" {
        min_nodes(&c.body["properties"])
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
