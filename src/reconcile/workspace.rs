//! Workspace: read-only discovery. amlops never writes a workspace; it resolves the
//! credential, reads the workspace and publishes what it found (or why it could not).

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{
    ActionFailure, Decision, Event, ObjectInfo, mark_progressing, mark_ready, record_failure,
};
use crate::api::conditions::{self, READY};
use crate::api::{WorkspaceSpec, WorkspaceStatus};

/// What discovery found about a workspace (built by the actions from the Azure answer).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct WorkspaceFacts {
    pub resource_id: String,
    pub location: Option<String>,
    pub storage_account: Option<String>,
    pub default_datastore: Option<String>,
    pub studio_url: Option<String>,
}

/// Workspaces decide no Azure writes; the type exists so the frontends treat every kind alike.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkspaceAction {}

pub struct Input<'a> {
    pub info: &'a ObjectInfo,
    pub spec: &'a WorkspaceSpec,
    pub status: Option<&'a WorkspaceStatus>,
    /// The discovery result; `None` when nothing was read (paused).
    pub observed: Option<Result<WorkspaceFacts, ActionFailure>>,
    pub now: Timestamp,
}

pub fn reconcile(input: Input<'_>) -> Decision<WorkspaceStatus, WorkspaceAction> {
    let Input {
        info,
        spec,
        status,
        observed,
        now,
    } = input;
    let generation = info.generation;
    let old = status.cloned().unwrap_or_default();
    let was_ready = conditions::is_true(&old.conditions, READY);
    let mut d = Decision::new(old);
    d.status.observed_generation = generation;
    match observed {
        _ if info.deleting => {}
        None => {
            let msg = "reconciliation is paused by the amlops.io/reconcile annotation";
            mark_progressing(&mut d.status.conditions, "Paused", msg, generation, now);
        }
        Some(Ok(facts)) => {
            let changed = d.status.resource_id.as_deref() != Some(facts.resource_id.as_str())
                || d.status.location != facts.location
                || d.status.storage_account != facts.storage_account
                || d.status.default_datastore != facts.default_datastore
                || d.status.studio_url != facts.studio_url;
            // lastSyncedAt moves only when something else changed, so a resync that finds the
            // same workspace leaves the object untouched (and wakes no dependent object).
            if changed || !was_ready || d.status.last_synced_at.is_none() {
                d.status.last_synced_at = Some(Time(now));
            }
            d.status.resource_id = Some(facts.resource_id);
            d.status.location = facts.location;
            d.status.storage_account = facts.storage_account;
            d.status.default_datastore = facts.default_datastore;
            d.status.studio_url = facts.studio_url;
            let msg = format!("connected to workspace {}", spec.workspace_name);
            mark_ready(&mut d.status.conditions, "Connected", &msg, generation, now);
            if !was_ready {
                d.events.push(Event::normal("Connected", msg));
            }
        }
        Some(Err(failure)) => {
            let was_same = conditions::find(&d.status.conditions, READY).is_some_and(|c| {
                c.reason == failure.reason && c.status == crate::api::ConditionStatus::False
            });
            if !was_same {
                d.events
                    .push(Event::warning(&failure.reason, failure.message.clone()));
            }
            record_failure(&mut d.status.conditions, &failure, generation, now);
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::WorkspaceCredential;
    use crate::api::conditions::{RECONCILING, STALLED, find, is_true};
    use crate::reconcile::FailureKind;

    fn info() -> ObjectInfo {
        ObjectInfo {
            name: "ws".into(),
            namespace: "ml".into(),
            uid: "u".into(),
            generation: Some(3),
            ..Default::default()
        }
    }
    fn spec() -> WorkspaceSpec {
        WorkspaceSpec {
            subscription_id: "00000000-0000-0000-0000-000000000000".into(),
            resource_group: "rg".into(),
            workspace_name: "ws1".into(),
            credential: WorkspaceCredential::default(),
            endpoints: None,
            resync_period: None,
        }
    }
    fn facts() -> WorkspaceFacts {
        WorkspaceFacts {
            resource_id: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws1".into(),
            location: Some("westeurope".into()),
            storage_account: Some("/sa".into()),
            default_datastore: Some("workspaceblobstore".into()),
            studio_url: Some("https://ml.azure.com/?wsid=x".into()),
        }
    }
    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }
    fn run(
        status: Option<&WorkspaceStatus>,
        observed: Option<Result<WorkspaceFacts, ActionFailure>>,
        now: Timestamp,
    ) -> Decision<WorkspaceStatus, WorkspaceAction> {
        let (i, s) = (info(), spec());
        reconcile(Input {
            info: &i,
            spec: &s,
            status,
            observed,
            now,
        })
    }

    #[test]
    fn discovered_facts_make_it_ready_once_and_a_resync_changes_nothing() {
        let d = run(None, Some(Ok(facts())), t(0));
        assert!(is_true(&d.status.conditions, READY));
        assert_eq!(
            find(&d.status.conditions, READY).unwrap().reason,
            "Connected"
        );
        assert_eq!(
            find(&d.status.conditions, READY)
                .unwrap()
                .observed_generation,
            Some(3)
        );
        assert_eq!(d.status.observed_generation, Some(3));
        assert_eq!(d.status.location.as_deref(), Some("westeurope"));
        assert_eq!(
            d.status.default_datastore.as_deref(),
            Some("workspaceblobstore")
        );
        assert_eq!(d.status.last_synced_at, Some(Time(t(0))));
        assert_eq!(d.events.len(), 1);
        let again = run(Some(&d.status), Some(Ok(facts())), t(3600));
        assert_eq!(
            again.status, d.status,
            "an unchanged workspace leaves the status byte-identical"
        );
        assert!(again.events.is_empty());
    }

    #[test]
    fn not_found_is_stalled_and_auth_outage_is_reconciling() {
        let missing = ActionFailure {
            kind: FailureKind::NeedsHuman,
            reason: "WorkspaceNotFound".into(),
            message: "workspace ws1 does not exist".into(),
        };
        let d = run(None, Some(Err(missing.clone())), t(0));
        assert_eq!(
            find(&d.status.conditions, STALLED).unwrap().reason,
            "WorkspaceNotFound"
        );
        assert!(!is_true(&d.status.conditions, READY));
        assert!(d.events[0].warning);
        // the same failure again tells nobody anything new
        let again = run(Some(&d.status), Some(Err(missing)), t(10));
        assert!(again.events.is_empty());
        assert_eq!(again.status, d.status);
        let outage = ActionFailure {
            kind: FailureKind::Retryable,
            reason: "AuthenticationFailed".into(),
            message: "token endpoint unreachable".into(),
        };
        let d = run(Some(&d.status), Some(Err(outage)), t(20));
        assert!(find(&d.status.conditions, STALLED).is_none());
        assert_eq!(
            find(&d.status.conditions, RECONCILING).unwrap().reason,
            "AuthenticationFailed"
        );
    }

    #[test]
    fn recovery_after_a_failure_moves_the_transition_time() {
        let fail = ActionFailure {
            kind: FailureKind::NeedsHuman,
            reason: "AuthenticationFailed".into(),
            message: "bad secret".into(),
        };
        let d = run(None, Some(Err(fail)), t(0));
        let ok = run(Some(&d.status), Some(Ok(facts())), t(50));
        let ready = find(&ok.status.conditions, READY).unwrap();
        assert_eq!(ready.last_transition_time, Time(t(50)));
        assert!(find(&ok.status.conditions, STALLED).is_none());
        assert_eq!(ok.events[0].reason, "Connected");
    }

    #[test]
    fn paused_reads_nothing_and_says_so() {
        let d = run(None, None, t(0));
        assert_eq!(
            find(&d.status.conditions, RECONCILING).unwrap().reason,
            "Paused"
        );
        assert!(d.status.location.is_none());
    }
}
