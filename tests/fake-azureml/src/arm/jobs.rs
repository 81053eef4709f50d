//! Jobs: create (not long-running), get, list (filters: jobType, tag, properties,
//! listViewType — there is no experiment filter), cancel (long-running, 202 + Location).
//!
//! Status follows time (see `lifecycle`); the outcome comes from the job tag `fake.outcome`
//! (Completed | Failed | Canceled | Running) or the control endpoint. The spec has no
//! start/end time or error fields on jobs, so, as the service does, they are reported in the
//! job's `properties` map: `StartTimeUtc`, `EndTimeUtc`, and `ErrorCode`/`ErrorMessage` on failure.

use super::immutable::{Rewrite, Rules, rewrite};
use super::{Ctx, list_reply, lock_poisoned, lro, system_data, workspace};
use crate::lifecycle::{self, JobOutcome};
use crate::reply::Reply;
use crate::store::{Job, Operation};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn ids(ctx: &Ctx<'_>) -> (String, String) {
    let id = format!("{}/jobs/{}", ctx.workspace_id, ctx.route.param("id"));
    (id.to_ascii_lowercase(), id)
}

fn not_found(ctx: &Ctx<'_>) -> Reply {
    Reply::arm_error(
        404,
        "UserError",
        format!(
            "Job {} was not found in workspace {}.",
            ctx.route.param("id"),
            ctx.route.param("workspaceName")
        ),
    )
}

const RULES: Rules = Rules {
    server_fields: &["status", "services", "parameters"],
    updatable: &["isArchived", "tags", "description", "notificationSetting"],
};

/// The job's status at `now`.
pub fn status(job: &Job, phase: Duration, now: Instant) -> &'static str {
    let cancelled = job.cancelled_at.map(|t| now.saturating_duration_since(t));
    lifecycle::job_status(
        now.saturating_duration_since(job.created),
        phase,
        job.outcome,
        cancelled,
    )
}

fn at(created: Timestamp, offset: Duration) -> String {
    let offset = SignedDuration::try_from(offset).unwrap_or(SignedDuration::ZERO);
    created
        .saturating_add(offset)
        .unwrap_or(created)
        .to_string()
}

fn render(ctx: &Ctx<'_>, job: &Job) -> Value {
    let phase = ctx.shared.options.job_phase_delay;
    let state = status(job, phase, ctx.now);
    let mut props = job
        .body
        .get("properties")
        .cloned()
        .unwrap_or_else(|| json!({}));
    props["status"] = json!(state);
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
    let guid = workspace::workspace_guid(&ctx.workspace_id);
    props["services"] = json!({
        "Studio": {"jobServiceType": "Studio", "endpoint": format!("https://ml.azure.com/runs/{}?wsid={}&tid=00000000-0000-0000-0000-000000000001", job.name, ctx.workspace_id), "status": null},
        "Tracking": {"jobServiceType": "Tracking", "endpoint": format!("azureml://{}.api.azureml.ms/mlflow/v1.0{}?workspaceId={guid}", workspace::LOCATION, ctx.workspace_id), "status": null},
    });
    let cancelled_after = job
        .cancelled_at
        .map(|t| t.saturating_duration_since(job.created));
    let (start, end) = lifecycle::job_times(phase, state, cancelled_after);
    let user_props = &mut props["properties"];
    if !user_props.is_object() {
        *user_props = json!({}); // only reachable with validation off
    }
    if let Some(start) = start {
        user_props["StartTimeUtc"] = json!(at(job.created_wall, start));
    }
    if let Some(end) = end {
        user_props["EndTimeUtc"] = json!(at(job.created_wall, end));
    }
    if state == "Failed" {
        user_props["ErrorCode"] = json!("UserError");
        user_props["ErrorMessage"] =
            json!("fake: the job failed because its outcome is set to Failed");
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
        return Reply::arm_error(
            409,
            "Conflict",
            format!(
                "Job {} already exists with a different definition; only tags, description, notificationSetting and isArchived can change.",
                ctx.route.param("id")
            ),
        );
    }
    let outcome = body
        .pointer("/properties/tags/fake.outcome")
        .and_then(Value::as_str)
        .and_then(JobOutcome::parse)
        .unwrap_or(JobOutcome::Completed);
    let job = Job {
        id,
        name: ctx.route.param("id").to_string(),
        workspace: ctx.workspace_id.to_ascii_lowercase(),
        body,
        created: ctx.now,
        created_wall: ctx.wall,
        outcome,
        cancelled_at: None,
    };
    let rendered = render(ctx, &job);
    store.jobs.insert(k, job);
    Reply::json(201, rendered)
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

pub fn cancel(ctx: &Ctx<'_>) -> Reply {
    let (k, _) = ids(ctx);
    let phase = ctx.shared.options.job_phase_delay;
    let Ok(mut store) = ctx.shared.store.lock() else {
        return lock_poisoned();
    };
    let Some(job) = store.jobs.get_mut(&k) else {
        return not_found(ctx);
    };
    if lifecycle::is_terminal(status(job, phase, ctx.now)) {
        return Reply::empty(200);
    }
    let cancelled_at = *job.cancelled_at.get_or_insert(ctx.now);
    drop(store);
    let op = Operation {
        done_at: cancelled_at + phase,
        error: None,
        result_compute: None,
    };
    let headers = lro::start(ctx, op)
        .into_iter()
        .filter(|(name, _)| name != "Azure-AsyncOperation")
        .collect();
    Reply {
        status: 202,
        headers,
        body: None,
    }
}
