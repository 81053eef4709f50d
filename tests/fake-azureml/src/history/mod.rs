//! Discovery and run history, served on the fake's HTTPS origin beside ARM (the real service
//! puts them on the workspace's regional API host, `https://<region>.api.azureml.ms`):
//!
//! - `GET /discovery` answers the keys of history/…child_run_download.json #24, with `api`,
//!   `history` (and `experimentation`/`hyperdrive`/`labeling`, which #24 shows on the same host
//!   as `history`) = the fake's base URL;
//! - `GET /history/v1.0/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.MachineLearningServices/workspaces/{ws}/runs/{runId}`
//!   answers the run of job `runId` (see `run`), `.../children` its children (#25; a command job
//!   has none: `{"value": []}`), `.../details` its `RunDetails` with `logFiles` (see `logs`).
//!
//! Run history needs a bearer token like ARM (any `api-version` is accepted: #25 sends
//! `api-version=v1.0`, the generated client sends none). Its errors use the run-history
//! `ErrorResponse` envelope (`crate::errors::component`): the generated client deserializes every
//! run-history error as that model; the 404 itself is not recorded.

mod logs;
mod run;
mod view;

use crate::arm::{self, Outcome};
use crate::errors;
use crate::reply::Reply;
use crate::server::{Request, Shared};
use crate::storage;
use serde_json::{Map, Value, json};
use view::RunView;

pub use logs::LOG_FILES;

/// Counter template of the discovery document.
const DISCOVERY_TEMPLATE: &str = "/discovery";
const RUN_TEMPLATE: &str = "/history/v1.0/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.MachineLearningServices/workspaces/{workspaceName}/runs/{runId}";
/// Container of the workspace artifact store, where run logs live under
/// `ExperimentRun/dcid.<run>/` (the folder of job/…dependency_label_resolution.json #17's default
/// output `azureml://datastores/workspaceartifactstore/ExperimentRun/dcid.<job>`; the container
/// name itself is not recorded). One storage backend serves every workspace of the fake, so
/// same-named jobs of two workspaces share their log blobs.
const ARTIFACT_CONTAINER: &str = "azureml";

/// `{base}/discovery`, the workspace's `discoveryUrl`.
pub fn discovery_url(base_url: &str) -> String {
    format!("{base_url}{DISCOVERY_TEMPLATE}")
}

/// What a run-history path asks for.
enum RunPart {
    Run,
    Children,
    Details,
}

struct RunPath<'a> {
    workspace_id: String,
    run_id: &'a str,
    part: RunPart,
}

fn parse_run_path(path: &str) -> Option<RunPath<'_>> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (fixed, tail) = segs.split_at_checked(12)?;
    let [
        history,
        version,
        subs,
        sub,
        rgs,
        rg,
        providers,
        ns,
        workspaces,
        ws,
        runs,
        run_id,
    ] = fixed
    else {
        return None;
    };
    let expected = [
        (history, "history"),
        (version, "v1.0"),
        (subs, "subscriptions"),
        (rgs, "resourceGroups"),
        (providers, "providers"),
        (ns, "Microsoft.MachineLearningServices"),
        (workspaces, "workspaces"),
        (runs, "runs"),
    ];
    if !expected
        .iter()
        .all(|(seg, want)| seg.eq_ignore_ascii_case(want))
    {
        return None;
    }
    let part = match tail {
        [] => RunPart::Run,
        [t] if t.eq_ignore_ascii_case("children") => RunPart::Children,
        [t] if t.eq_ignore_ascii_case("details") => RunPart::Details,
        _ => return None,
    };
    Some(RunPath {
        workspace_id: format!(
            "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.MachineLearningServices/workspaces/{ws}"
        ),
        run_id,
        part,
    })
}

/// The counter template of `req` if it is a discovery or run-history request.
pub fn template_of(req: &Request) -> Option<String> {
    if req.path == DISCOVERY_TEMPLATE {
        return Some(DISCOVERY_TEMPLATE.to_string());
    }
    let run = parse_run_path(&req.path)?;
    Some(match run.part {
        RunPart::Run => RUN_TEMPLATE.to_string(),
        RunPart::Children => format!("{RUN_TEMPLATE}/children"),
        RunPart::Details => format!("{RUN_TEMPLATE}/details"),
    })
}

/// Answers a discovery or run-history request (after fault injection, like ARM); `None` if
/// the path is neither.
pub async fn handle(shared: &Shared, req: &Request) -> Option<(Outcome, String)> {
    let template = template_of(req)?;
    if let Some(fault) = arm::injected_fault(shared).await {
        return Some((fault, template));
    }
    let reply = if req.method != "GET" {
        Reply::arm_error(
            405,
            "MethodNotAllowed",
            format!("{} is not allowed on {}", req.method, req.path),
        )
    } else if req.path == DISCOVERY_TEMPLATE {
        discovery(shared)
    } else {
        match (arm::require_bearer(req), parse_run_path(&req.path)) {
            (Some(unauthorized), _) => unauthorized,
            (None, Some(path)) => run_reply(shared, &path).await,
            (None, None) => return None,
        }
    };
    Some((Outcome::Reply(reply), template))
}

/// #24, with the fake's base URL for the hosts a client calls. No bearer token is needed:
/// azure-ai-ml fetches this URL with a plain session, no credential
/// (`_utils.utils._get_base_urls_from_discovery_service`), and #24 carries no Authorization
/// header. The other hosts are the real ones of the fake's region (`catalog` is sanitized in
/// #24: not recorded).
fn discovery(shared: &Shared) -> Reply {
    let base = &shared.base_url;
    let region = arm::workspace::LOCATION;
    Reply::json(
        200,
        json!({
            "api": base,
            "catalog": "https://catalog.cortanaanalytics.com",
            "experimentation": base,
            "history": base,
            "hyperdrive": base,
            "labeling": base,
            "modelmanagement": format!("https://{region}.modelmanagement.azureml.net"),
            "pipelines": format!("https://{region}.aether.ms"),
            "studio": "https://ml.azure.com",
        }),
    )
}

async fn run_reply(shared: &Shared, path: &RunPath<'_>) -> Reply {
    let published = match (&path.part, &shared.options.storage) {
        (RunPart::Children, _) | (_, None) => {
            RunView::take(shared, &path.workspace_id, path.run_id).map(|v| (v, Map::new()))
        }
        (_, Some(backend)) => match publish_logs(shared, backend, path).await {
            Ok(published) => published,
            Err(e) => {
                return errors::component(
                    500,
                    "RunHistory",
                    &format!("fake: writing the run's log files failed: {e}"),
                    &["InternalServerError"],
                );
            }
        },
    };
    let Some((view, log_files)) = published else {
        return errors::component(
            404,
            "RunHistory",
            &format!("Run {} was not found", path.run_id),
            &["NotFoundError"],
        );
    };
    match path.part {
        RunPart::Run => Reply::json(200, run::run(&view)),
        RunPart::Children => Reply::json(200, json!({"value": []})),
        RunPart::Details => Reply::json(200, run::details(&view, &log_files)),
    }
}

/// Writes the run's logs as of now to blobs (only when they grew since the last write; the
/// prefix never changes, so an overwrite never rewrites bytes a reader already has) and returns
/// the view they were computed from plus their read-only SAS URLs. One write at a time, and
/// the view is taken inside that section, so a later answer never shows shorter logs.
async fn publish_logs(
    shared: &Shared,
    backend: &crate::StorageBackend,
    path: &RunPath<'_>,
) -> Result<Option<(RunView, Map<String, Value>)>, storage::StorageError> {
    let mut written = shared.written_logs.lock().await;
    let Some(view) = RunView::take(shared, &path.workspace_id, path.run_id) else {
        return Ok(None);
    };
    let now = view.at(view.elapsed);
    let mut urls = Map::new();
    for name in LOG_FILES {
        let blob = format!("ExperimentRun/dcid.{}/{name}", view.name);
        // A job created again under the same name (after a state reset) starts a new blob.
        let key = format!(
            "{}/{blob}@{}",
            path.workspace_id.to_ascii_lowercase(),
            view.created_wall
        );
        let content = logs::content(&view, name);
        let before = written.get(&key).copied();
        if before.is_none() {
            storage::ensure_container(&shared.http, backend, ARTIFACT_CONTAINER, now).await?;
        }
        if before.is_none_or(|len| content.len() > len) {
            let len = content.len();
            storage::put_blob(
                &shared.http,
                backend,
                ARTIFACT_CONTAINER,
                &blob,
                content.into_bytes(),
                now,
            )
            .await?;
            written.insert(key, len);
        }
        let sas = storage::blob_read_sas(backend, ARTIFACT_CONTAINER, &blob, now)?;
        let url = format!(
            "{}/{blob}?{sas}",
            storage::container_url(backend, ARTIFACT_CONTAINER)
        );
        urls.insert(name.to_string(), json!(url));
    }
    Ok(Some((view, urls)))
}

/// The current content of log `name` of job `job` (first job of that name in any workspace).
pub fn current_log(shared: &Shared, job: &str, name: &str) -> Option<String> {
    let workspace_id = {
        let store = shared.store.lock().ok()?;
        let found = store.jobs.values().find(|j| j.name == job)?;
        let id = found.id.clone();
        id.rsplit_once("/jobs/")?.0.to_string()
    };
    RunView::take(shared, &workspace_id, job).map(|view| logs::content(&view, name))
}
