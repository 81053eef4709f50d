//! A run as run history answers it: `GET .../runs/{runId}` in the shape of the `value[]`
//! elements of history/…child_run_download.json #25 (every key kept; null where the fake has
//! nothing to say), and `GET .../runs/{runId}/details` as azure-ai-ml's generated run-history
//! client models `RunDetails` (`_restclient/runhistory/models/_models_py3.py`).

use super::view::{RunView, time, timespan};
use crate::arm::workspace;
use crate::errors;
use serde_json::{Map, Value, json};

/// The user of `createdBy`/`lastModifiedBy`, with the keys of #25.
fn user() -> Value {
    json!({
        "userObjectId": "00000000-0000-0000-0000-0000000000aa",
        "userPuId": null,
        "userIdp": null,
        "userAltSecId": null,
        "userIss": "https://sts.windows.net/00000000-0000-0000-0000-000000000001/",
        "userTenantId": "00000000-0000-0000-0000-000000000001",
        "userName": "fake-user@example.com",
        "upn": null,
        "clientApplicationId": null,
        "applicationACR": null,
    })
}

fn uuid_of(parts: &[&str]) -> String {
    let joined = parts.join("/").to_ascii_lowercase();
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, joined.as_bytes()).to_string()
}

/// The error of a Failed run: the envelope of #25 (`error.error.{code,message}` with the
/// `Error Code:`/`Native Error:`/`Error Message:` message layout and a session id, no
/// correlation, `time` 0001-01-01, `componentName: CommonRuntime`).
fn run_error(view: &RunView) -> Value {
    let message = format!(
        "\nError Code: ScriptExecution.StreamAccess.NotFound\nNative Error: error in streaming from input data sources\n\tStreamError(NotFound)\n=> stream not found\n\tNotFound\nError Message: The requested stream was not found. Please make sure the request uri is correct.| session_id={}",
        uuid_of(&[&view.workspace_id, &view.name, "session"])
    );
    let mut root = errors::root_error("UserError", &message, &[]);
    root["messageParameters"] = json!({});
    json!({
        "error": root,
        "correlation": null,
        "environment": null,
        "location": null,
        "time": "0001-01-01T00:00:00+00:00",
        "componentName": "CommonRuntime",
    })
}

/// The warnings of a Failed run (#25: `[{source, message}]`); null otherwise (not recorded
/// for a run that did not fail).
fn warnings(failed: bool) -> Value {
    if failed {
        json!([{"source": "fake", "message": "AzureMLCompute job failed\nExecutionError: the user script exited with a non-zero code"}])
    } else {
        Value::Null
    }
}

/// The fields of a `json!({...})` object.
fn into_map(object: Value) -> Map<String, Value> {
    match object {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// How many status changes the run has seen (a monotone `revision`).
fn status_revision(view: &RunView) -> u64 {
    let t = view.timeline;
    let phases = if t.phase.is_zero() {
        7
    } else {
        (view.elapsed.as_nanos() / t.phase.as_nanos()).min(6) as u64 + 1
    };
    phases + u64::from(t.cancelled_after.is_some()) + u64::from(view.ended().is_some())
}

/// The run object (keys of #25 `value[]`): its state and its definition.
pub fn run(view: &RunView) -> Value {
    let mut fields = state(view);
    fields.extend(definition(view));
    Value::Object(fields)
}

/// Who, when, status, error: what changes while the run goes on.
fn state(view: &RunView) -> Map<String, Value> {
    let status = view.status();
    let failed = status == "Failed";
    let duration = view.duration().map(timespan);
    let run_uuid = uuid_of(&[&view.workspace_id, "runs", &view.name]);
    let experiment = view.job_field("experimentName").unwrap_or("Default");
    let mut properties = view
        .body
        .pointer("/properties/properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    properties.extend(view.server_properties.clone());
    let last_change = view.ended().or(view.started()).unwrap_or(view.created_wall);
    let revision = status_revision(view);
    let fields = json!({
        "runNumber": view.created_wall.as_second(),
        "rootRunId": view.name,
        "createdUtc": time(view.created_wall),
        "createdBy": user(),
        "userId": "00000000-0000-0000-0000-0000000000aa",
        "token": null,
        "tokenExpiryTimeUtc": null,
        "error": if failed { run_error(view) } else { Value::Null },
        "warnings": warnings(failed),
        "revision": revision + 1,
        "statusRevision": revision,
        "runUuid": run_uuid,
        "parentRunUuid": null,
        "rootRunUuid": run_uuid,
        "lastStartTimeUtc": null,
        "currentComputeTime": null,
        "computeDuration": duration,
        "effectiveStartTimeUtc": null,
        "lastModifiedBy": user(),
        "lastModifiedUtc": time(last_change),
        "duration": duration,
        "cancelationReason": null,
        "currentAttemptId": 1,
        "runId": view.name,
        "parentRunId": null,
        "experimentId": uuid_of(&[&view.workspace_id, "experiments", experiment]),
        "status": status,
        "startTimeUtc": view.started().map(time),
        "endTimeUtc": view.ended().map(time),
        "properties": properties,
    });
    into_map(fields)
}

/// What the job asked for: names, target, tags.
fn definition(view: &RunView) -> Map<String, Value> {
    let instances = view
        .body
        .pointer("/properties/resources/instanceCount")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let target = view.target();
    let fields = json!({
        "scheduleId": null,
        "displayName": view.job_field("displayName").unwrap_or(&view.name),
        "name": null,
        "dataContainerId": format!("dcid.{}", view.name),
        "description": view.job_field("description"),
        "hidden": false,
        // Not recorded for a command job (#25 shows pipeline steps): the script-run type.
        "runType": "azureml.scriptrun",
        "runTypeV2": {"orchestrator": "Execution", "traits": ["scriptRun", "remote", "CommonRuntime", "OsType:Linux"], "attribution": "Execution", "computeType": "AmlcTrain"},
        "parameters": {},
        "actionUris": {},
        "scriptName": null,
        "target": target,
        "uniqueChildRunComputeTargets": [],
        "tags": view.body.pointer("/properties/tags").cloned().unwrap_or_else(|| json!({})),
        "settings": {},
        "services": {},
        "inputDatasets": [],
        "outputDatasets": [],
        "runDefinition": null,
        "jobSpecification": null,
        "primaryMetricName": null,
        "createdFrom": null,
        "cancelUri": null,
        "completeUri": null,
        "diagnosticsUri": null,
        "computeRequest": {"nodeCount": instances, "gpuCount": 0},
        "compute": target.map(|t| json!({
            "target": t, "targetType": "amlcompute", "vmSize": null, "instanceType": null,
            "instanceCount": instances, "gpuCount": 0, "priority": null, "region": workspace::LOCATION,
            "armId": null, "properties": null,
        })),
        "retainForLifetimeOfWorkspace": null,
        "queueingInfo": null,
        "inputs": null,
        "outputs": null,
    });
    into_map(fields)
}

/// The keys of the generated client's `RunDetails`, in its order.
const DETAILS_KEYS: [&str; 41] = [
    "runId",
    "runUuid",
    "parentRunUuid",
    "rootRunUuid",
    "target",
    "status",
    "parentRunId",
    "createdTimeUtc",
    "startTimeUtc",
    "endTimeUtc",
    "error",
    "warnings",
    "tags",
    "properties",
    "parameters",
    "services",
    "inputDatasets",
    "outputDatasets",
    "runDefinition",
    "logFiles",
    "jobCost",
    "revision",
    "runTypeV2",
    "settings",
    "computeRequest",
    "compute",
    "createdBy",
    "computeDuration",
    "effectiveStartTimeUtc",
    "runNumber",
    "rootRunId",
    "userId",
    "statusRevision",
    "hasVirtualParent",
    "currentComputeTime",
    "lastStartTimeUtc",
    "lastModifiedBy",
    "lastModifiedUtc",
    "duration",
    "inputs",
    "outputs",
];

/// `RunDetails`: the run's fields under the model's keys, plus `logFiles` (log name -> SAS URL).
pub fn details(view: &RunView, log_files: &Map<String, Value>) -> Value {
    let run = run(view);
    let fields = DETAILS_KEYS.iter().map(|key| {
        let value = match *key {
            "createdTimeUtc" => run["createdUtc"].clone(),
            "logFiles" => Value::Object(log_files.clone()),
            "hasVirtualParent" => json!(false),
            other => run.get(other).cloned().unwrap_or(Value::Null),
        };
        (key.to_string(), value)
    });
    Value::Object(fields.collect())
}
