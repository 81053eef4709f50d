//! Jobs: create (not long-running), get, list (filters: jobType, tag, properties,
//! listViewType — there is no experiment filter), cancel (long-running, 202 + Location).
//!
//! Status follows time (see `lifecycle`); the outcome comes from the job tag `fake.outcome`
//! or the control endpoint. The ARM job carries status, services and ids only: no times and no
//! errors (job/…dependency_label_resolution.json #17, history/…child_run_download.json #21-22
//! show a `Failed` job without either). Those live in run history (`crate::history`).

use super::immutable::{Rewrite, Rules, rewrite};
use super::{Ctx, list_reply, lock_poisoned, lro, system_data, workspace};
use crate::errors;
use crate::lifecycle::{self, JobOutcome, Timeline};
use crate::reply::Reply;
use crate::server::Shared;
use crate::store::{Job, Operation, Store};
use serde_json::{Map, Value, json};
use std::time::Instant;

fn ids(ctx: &Ctx<'_>) -> (String, String) {
    let id = format!("{}/jobs/{}", ctx.workspace_id, ctx.route.param("id"));
    (id.to_ascii_lowercase(), id)
}

fn not_found(ctx: &Ctx<'_>) -> Reply {
    // Not recorded: a missing job; answered in the MFE shape of job/…ray_command_job.json #1.
    errors::mfe_user(
        404,
        format!(
            "Job {} was not found in workspace {}.",
            ctx.route.param("id"),
            ctx.route.param("workspaceName")
        ),
        &["NotFound"],
    )
}

const RULES: Rules = Rules {
    server_fields: &["status", "services", "parameters"],
    updatable: &["isArchived", "tags", "description", "notificationSetting"],
};

/// The job's timeline (phase length, outcome, cancel time).
pub fn timeline(shared: &Shared, job: &Job) -> Timeline {
    Timeline {
        phase: shared.options.job_phase_delay,
        outcome: job.outcome,
        cancelled_after: job
            .cancelled_at
            .map(|t| t.saturating_duration_since(job.created)),
    }
}

/// The job's status at `now`.
pub fn status(shared: &Shared, job: &Job, now: Instant) -> &'static str {
    timeline(shared, job).status(now.saturating_duration_since(job.created))
}

/// `services` with the keys of job/…dependency_label_resolution.json #17.
fn services(ctx: &Ctx<'_>, job: &Job) -> Value {
    let service = |kind: &str, endpoint: String| {
        json!({"jobServiceType": kind, "port": null, "endpoint": endpoint, "status": null,
               "errorMessage": null, "properties": null, "nodes": null})
    };
    let (sub, rg, ws) = (
        ctx.route.param("subscriptionId"),
        ctx.route.param("resourceGroupName"),
        ctx.route.param("workspaceName"),
    );
    json!({
        "Tracking": service("Tracking", format!("azureml://{}.api.azureml.ms/mlflow/v1.0{}?", workspace::LOCATION, ctx.workspace_id)),
        "Studio": service("Studio", format!("https://ml.azure.com/runs/{}?wsid=/subscriptions/{sub}/resourcegroups/{rg}/workspaces/{ws}", job.name)),
    })
}

fn render(ctx: &Ctx<'_>, job: &Job) -> Value {
    let mut props = job
        .body
        .get("properties")
        .cloned()
        .unwrap_or_else(|| json!({}));
    props["status"] = json!(status(ctx.shared, job, ctx.now));
    for (field, default) in [
        ("experimentName", json!("Default")),
        ("isArchived", json!(false)),
        ("tags", json!({})),
        ("properties", json!({})),
    ] {
        if props.get(field).is_none_or(Value::is_null) {
            props[field] = default;
        }
    }
    props["services"] = services(ctx, job);
    if let Some(user_props) = props["properties"].as_object_mut() {
        user_props.extend(job.server_properties.clone());
    }
    json!({
        "id": job.id,
        "name": job.name,
        "type": "Microsoft.MachineLearningServices/workspaces/jobs",
        "systemData": system_data(job.created_wall, job.created_wall),
        "properties": props,
    })
}

pub fn get(ctx: &Ctx<'_>) -> Reply {
    let (k, _) = ids(ctx);
    let Ok(store) = ctx.shared.store.lock() else {
        return lock_poisoned();
    };
    match store.jobs.get(&k) {
        Some(job) => Reply::json(200, render(ctx, job)),
        None => not_found(ctx),
    }
}

/// The compute a job names, as `(name, computeType)`: `Ok(None)` for a job without
/// `computeId` (not recorded: accepted, as serverless), `Err` with the answer for one that does
/// not exist (job/…ray_command_job.json #1: 400, `UserError` -> `BadArgument` ->
/// `UnknownTargetType`, "Unknown compute target '<name>'.").
fn compute_of(
    ctx: &Ctx<'_>,
    store: &Store,
    body: &Value,
) -> Result<Option<(String, String)>, Reply> {
    let Some(compute_id) = body
        .pointer("/properties/computeId")
        .and_then(Value::as_str)
    else {
        return Ok(None);
    };
    let name = compute_id.rsplit('/').next().unwrap_or(compute_id);
    let key = if compute_id.contains('/') {
        compute_id
            .trim_start_matches("azureml:")
            .to_ascii_lowercase()
    } else {
        format!("{}/computes/{name}", ctx.workspace_id).to_ascii_lowercase()
    };
    let found = store
        .computes
        .get(&key)
        .filter(|c| c.exists(ctx.now) && c.gone_at.is_none());
    match found {
        Some(c) => Ok(Some((
            c.name.clone(),
            c.body
                .pointer("/properties/computeType")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        ))),
        None => Err(errors::mfe_user(
            400,
            format!("Unknown compute target '{name}'."),
            &["BadArgument", "UnknownTargetType"],
        )),
    }
}

/// What the service adds to `properties.properties` (job/…dependency_label_resolution.json #17).
fn server_properties(
    ctx: &Ctx<'_>,
    body: &Value,
    compute: Option<(String, String)>,
) -> Map<String, Value> {
    let mut added = Map::new();
    if let Some((name, compute_type)) = compute {
        // #17 shows `amlctrain` for an AmlCompute; other compute types are not recorded.
        let target_type = match compute_type.as_str() {
            "AmlCompute" => "amlctrain".to_string(),
            other => other.to_ascii_lowercase(),
        };
        added.insert("_azureml.ComputeTargetType".into(), json!(target_type));
        added.insert("_azureml.ClusterName".into(), json!(name));
    }
    // #17 submits a `codeId`; not recorded without one, so the snapshot id comes with it.
    if body
        .pointer("/properties/codeId")
        .is_some_and(Value::is_string)
    {
        let snapshot = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, ctx.workspace_id.as_bytes());
        let snapshot = uuid::Uuid::new_v5(&snapshot, ctx.route.param("id").as_bytes());
        added.insert("ContentSnapshotId".into(), json!(snapshot.to_string()));
    }
    added
}

pub fn put(ctx: &Ctx<'_>) -> Reply {
    let (k, id) = ids(ctx);
    let body = match ctx.resource_body() {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    let Ok(mut store) = ctx.shared.store.lock() else {
        return lock_poisoned();
    };
    if let Some(existing) = store.jobs.get_mut(&k) {
        if rewrite(&RULES, &mut existing.body, &body) == Rewrite::Accepted {
            return Reply::json(200, render(ctx, existing));
        }
        // Not recorded: a changed job body; refused like a changed asset version.
        return errors::mfe_user(
            409,
            format!(
                "Job {} already exists with a different definition; only tags, description, notificationSetting and isArchived can change.",
                ctx.route.param("id")
            ),
            &["Conflict"],
        );
    }
    let compute = match compute_of(ctx, &store, &body) {
        Ok(compute) => compute,
        Err(reply) => return reply,
    };
    let outcome = body
        .pointer("/properties/tags/fake.outcome")
        .and_then(Value::as_str)
        .and_then(JobOutcome::parse)
        .unwrap_or(JobOutcome::Completed);
    let job = Job {
        id,
        name: ctx.route.param("id").to_string(),
        workspace: ctx.workspace_id.to_ascii_lowercase(),
        server_properties: server_properties(ctx, &body, compute),
        body,
        created: ctx.now,
        created_wall: ctx.wall,
        outcome,
        cancelled_at: None,
    };
    let rendered = render(ctx, &job);
    let location = format!(
        "{}{}?api-version={}",
        ctx.shared.base_url,
        job.id,
        crate::spec::API_VERSION
    );
    store.jobs.insert(k, job);
    // #17 answers the creation with `Location` on the job itself (not an operation).
    Reply::json(201, rendered).header("Location", location)
}

pub fn list(ctx: &Ctx<'_>) -> Reply {
    let ws = ctx.workspace_id.to_ascii_lowercase();
    let wanted = |job: &Job| {
        let props = &job.body["properties"];
        let archived = props.get("isArchived").and_then(Value::as_bool) == Some(true);
        let view_ok = match ctx.query("listViewType").unwrap_or("ActiveOnly") {
            "All" => true,
            "ArchivedOnly" => archived,
            _ => !archived,
        };
        let type_ok = ctx
            .query("jobType")
            .is_none_or(|t| props.get("jobType").and_then(Value::as_str) == Some(t));
        let tag_ok = ctx
            .query("tag")
            .is_none_or(|t| key_value_matches(props.get("tags"), t));
        let props_ok = ctx.query("properties").is_none_or(|list| {
            list.split(',')
                .all(|p| key_value_matches(props.get("properties"), p.trim()))
        });
        job.workspace == ws && view_ok && type_ok && tag_ok && props_ok
    };
    let Ok(store) = ctx.shared.store.lock() else {
        return lock_poisoned();
    };
    let mut items: Vec<&Job> = store.jobs.values().filter(|j| wanted(j)).collect();
    items.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.name.cmp(&b.name)));
    list_reply(items.into_iter().map(|j| render(ctx, j)).collect())
}

/// `key` (present) or `key=value` (equal) against a string map.
fn key_value_matches(map: Option<&Value>, filter: &str) -> bool {
    let (key, value) = match filter.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (filter, None),
    };
    match map.and_then(|m| m.get(key)) {
        None => false,
        Some(v) => value.is_none_or(|want| v.as_str() == Some(want)),
    }
}

/// Cancel: 202, body `null`, `Location` + `x-ms-async-operation-timeout`
/// (job/…dependency_label_resolution.json #18). The job shows `CancelRequested` for one phase,
/// then `Canceled`.
pub fn cancel(ctx: &Ctx<'_>) -> Reply {
    let (k, _) = ids(ctx);
    let phase = ctx.shared.options.job_phase_delay;
    let Ok(mut store) = ctx.shared.store.lock() else {
        return lock_poisoned();
    };
    let Some(job) = store.jobs.get_mut(&k) else {
        return not_found(ctx);
    };
    if lifecycle::is_terminal(status(ctx.shared, job, ctx.now)) {
        // Not recorded: cancelling a finished job; answered as an operation already done.
        return Reply::empty(200);
    }
    let cancelled_at = *job.cancelled_at.get_or_insert(ctx.now);
    drop(store);
    let op = Operation {
        done_at: cancelled_at + phase,
        error: None,
    };
    Reply {
        status: 202,
        headers: lro::start_cancel(ctx, ctx.route.param("id"), op),
        body: Some(Value::Null),
    }
}
