//! Reconcile overhead without Azure latency: 10,000 Experiments and 1,000 ComputeTargets held in
//! memory, each reconciled against an in-sync observation. Prints p50/p99 per reconcile, the
//! writes the decisions ask for (target: 0 in steady state) and the process RSS.
//! Run with `cargo bench --bench reconcile` (part of `make bench`).

use std::time::{Duration, Instant};

use amlops::api::{ComputeTarget, Experiment};
use amlops::reconcile::ObjectInfo;
use amlops::reconcile::compute_target::{self, ObservedCompute, WorkspaceState};
use amlops::reconcile::experiment::{self, ObservedRun, RunConfigurationState, RunState};

fn experiment(i: usize) -> Experiment {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "amlops.io/v1alpha1", "kind": "Experiment",
        "metadata": {"name": format!("exp-{i}"), "namespace": "ml", "uid": format!("uid-{i}"), "generation": 1},
        "spec": {"runConfigurationRef": {"name": "rc"}, "source": {"git": {"url": "https://example.com/r.git"}},
                 "script": "train.py", "arguments": ["--lr", "0.1"], "tags": {"team": "a"}}
    }))
    .expect("valid experiment")
}

fn compute(i: usize) -> ComputeTarget {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "amlops.io/v1alpha1", "kind": "ComputeTarget",
        "metadata": {"name": format!("cluster-{i}x"), "namespace": "ml", "uid": format!("ct-{i}"), "generation": 1},
        "spec": {"workspaceRef": {"name": "ws"}, "amlCompute": {"vmSize": "STANDARD_D2_V2", "minNodes": 0, "maxNodes": 4}}
    }))
    .expect("valid compute target")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    let now = jiff::Timestamp::now();
    let mut experiments: Vec<Experiment> = (0..10_000).map(experiment).collect();
    let mut computes: Vec<ComputeTarget> = (0..1_000).map(compute).collect();
    let running = ObservedRun {
        state: Some(RunState::Running),
        started_at: Some(now),
        ..Default::default()
    };

    // Two passes: the first writes status (as after a controller restart), the second is the steady state.
    let mut timings = Vec::with_capacity(10_000);
    for pass in 0..2 {
        timings.clear();
        let mut writes = 0;
        for exp in experiments.iter_mut() {
            let start = Instant::now();
            let info = ObjectInfo::of(exp);
            let d = experiment::reconcile(experiment::Input {
                info: &info,
                spec: &exp.spec,
                status: exp.status.as_ref(),
                run_configuration: RunConfigurationState::Ready,
                desired: Some(&running),
                previous: None,
                retry_after_stall: Duration::from_secs(3600),
                now,
            });
            let changed = exp.status.as_ref() != Some(&d.status);
            writes += usize::from(changed) + d.actions.len();
            exp.status = Some(d.status);
            timings.push(start.elapsed());
        }
        if pass == 1 {
            timings.sort();
            println!(
                "experiment reconcile x{}: p50 {:?}, p99 {:?}, max {:?}; steady-state writes/actions: {writes}",
                timings.len(),
                percentile(&timings, 0.5),
                percentile(&timings, 0.99),
                timings[timings.len() - 1]
            );
        }
    }

    for pass in 0..2 {
        timings.clear();
        let mut writes = 0;
        for ct in computes.iter_mut() {
            let start = Instant::now();
            let info = ObjectInfo::of(ct);
            let observed = ObservedCompute {
                compute_type: "AmlCompute".into(),
                provisioning_state: Some("Succeeded".into()),
                resource_id: Some(format!(
                    "/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws/computes/{}",
                    info.name
                )),
                vm_size: Some("STANDARD_D2_V2".into()),
                vm_priority: Some("Dedicated".into()),
                scale: compute_target::desired_scale(&ct.spec),
                ..Default::default()
            };
            let d = compute_target::reconcile(compute_target::Input {
                info: &info,
                spec: &ct.spec,
                status: ct.status.as_ref(),
                workspace: WorkspaceState::Ready,
                observed: Some(&observed),
                operation: None,
                already_attached_by: None,
                in_cluster: true,
                local_jobs: true,
                kubernetes_compute_enabled: false,
                retry_after_stall: Duration::from_secs(3600),
                now,
            });
            let changed = ct.status.as_ref() != Some(&d.status);
            writes += usize::from(changed) + d.actions.len();
            ct.status = Some(d.status);
            timings.push(start.elapsed());
        }
        if pass == 1 {
            timings.sort();
            println!(
                "compute target reconcile x{}: p50 {:?}, p99 {:?}; steady-state writes/actions: {writes}",
                timings.len(),
                percentile(&timings, 0.5),
                percentile(&timings, 0.99)
            );
        }
    }
    println!(
        "RSS with 10,000 Experiments + 1,000 ComputeTargets and their statuses in memory: {:.1} MiB",
        rss_mib()
    );
}
