//! Fleet benchmark (numbers, not pass/fail): the real controllers in this process against
//! fake-kube, the fake Azure ML and Azurite, with 1 Workspace, 1 AmlCompute ComputeTarget,
//! 1 conda RunConfiguration and N Experiments with inline sources.
//!
//! The objects are in the API server when the controllers start, so they meet all N at once.
//! Prints the time until every Experiment is Succeeded, Experiments/s, ARM writes/s (the
//! busiest 1-s window and the mean), Azure and apiserver requests per Experiment, peak RSS
//! above the baseline measured before the controllers started, the controllers' peak heap,
//! CPU seconds; then the steady state: ARM and apiserver requests per minute.
//!
//! The controllers run on their own runtime with the operator's defaults (ARM client, LRO
//! and run polling), the fake's CA, and `--concurrency 16` as in issue 14's measurement.
//!
//! Environment: `AMLOPS_FLEET` (N, default 1000), `AMLOPS_FLEET_STEADY_SECS` (default 60),
//! `AMLOPS_FLEET_CONCURRENCY` (default 16), `AMLOPS_FLEET_TIMEOUT_SECS` (stop waiting for
//! Succeeded, default 7200).

#[path = "../tests/controller_support/mod.rs"]
mod controller_support;
#[path = "fleet/usage.rs"]
mod usage;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use amlops::azure::ArmConfig;
use amlops::azure::http::HttpOptions;
use amlops::controller::{Settings, run_controllers};
use controller_support::{AMLOPS, Env, NS, aml, has_reason};
use fake_azureml::azurite::Azurite;
use serde_json::json;
use usage::{CONTROLLER_THREAD, CountingAllocator, Usage};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Run {
    n: u64,
    steady: Duration,
    concurrency: u16,
    timeout: Duration,
}

fn main() {
    let run = Run {
        n: env_number("AMLOPS_FLEET", 1000),
        steady: Duration::from_secs(env_number("AMLOPS_FLEET_STEADY_SECS", 60)),
        concurrency: env_number("AMLOPS_FLEET_CONCURRENCY", 16) as u16,
        timeout: Duration::from_secs(env_number("AMLOPS_FLEET_TIMEOUT_SECS", 7200)),
    };
    // Azurite panics with an install hint when it is missing; the benchmark then says why it
    // cannot run (inline sources are uploaded to blob storage before a job is submitted).
    let Ok(azurite) = std::panic::catch_unwind(Azurite::start) else {
        println!(
            "fleet: skipped: Azurite did not start (see above). Every Experiment uploads its \
             snapshot to blob storage, so there is no run without it; `npm install azurite`."
        );
        return;
    };
    let fakes = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("fakes")
        .enable_all()
        .build()
        .expect("the fakes' runtime");
    let controllers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(CONTROLLER_THREAD)
        .on_thread_start(usage::controller_thread_started)
        // Idle blocking threads would exit and take their CPU time with them.
        .thread_keep_alive(Duration::from_secs(24 * 3600))
        .enable_all()
        .build()
        .expect("the controllers' runtime");
    fakes.block_on(fleet(&azurite, controllers.handle(), &run));
    controllers.shutdown_background();
}

async fn fleet(azurite: &Azurite, controllers: &tokio::runtime::Handle, run: &Run) {
    let options = fake_azureml::Options {
        storage: Some(azurite.storage_backend()),
        ..fake_azureml::Options::default()
    };
    let env = Env::without_controllers(options.clone(), true).await;
    let applying = Instant::now();
    apply(&env, run.n);
    println!(
        "fleet: {} Experiments (inline sources) on 1 AmlCompute, concurrency {}, fake job phases {:?} each; applied in {:.1} s",
        run.n,
        run.concurrency,
        options.job_phase_delay,
        applying.elapsed().as_secs_f64()
    );
    let settings = Settings {
        concurrency: run.concurrency,
        instance: Some("fleet".into()),
        arm: ArmConfig {
            http: HttpOptions {
                extra_ca_pem: vec![env.azure.ca_pem()],
                use_ssl_cert_file: false,
                ..HttpOptions::default()
            },
            ..ArmConfig::default()
        },
        ..env.settings()
    };
    let baseline = Usage::now();
    let started = Instant::now();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    // The client's connection tasks run where it is made: on the controllers' runtime.
    let client = {
        let _on = controllers.enter();
        env.client()
    };
    let task = controllers.spawn(run_controllers(
        client,
        settings,
        env.metrics.clone(),
        shutdown,
    ));

    let mut windows = Windows::new(&env);
    let mut pending: HashSet<String> = (0..run.n).map(name).collect();
    while !pending.is_empty() && started.elapsed() < run.timeout {
        tokio::time::sleep(Duration::from_secs(1)).await;
        windows.sample(&env);
        for exp in env.kube.list(AMLOPS, "Experiment", Some(NS)) {
            if has_reason(&exp, "Succeeded", "Completed")
                && let Some(name) = exp.pointer("/metadata/name").and_then(|v| v.as_str())
            {
                pending.remove(name);
            }
        }
    }
    let burst = Burst {
        done: run.n - pending.len() as u64,
        elapsed: started.elapsed(),
        usage: Usage::now(),
        azure: azure_requests(&env),
        kube_calls: env.kube.requests(),
    };
    burst.report(run, &windows, &baseline);
    if burst.done == run.n {
        steady_state(&env, run.steady, &burst).await;
    } else {
        println!("steady state: not measured (the Experiments did not all finish)");
    }
    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
}

fn name(i: u64) -> String {
    format!("exp-{i:05}")
}

/// What is applied at once: the Workspace with its Secret, the target, the run
/// configuration and `n` Experiments.
fn apply(env: &Env, n: u64) {
    env.workspace("ws", "ws1", None);
    env.compute_target("cpu", aml(0, 4));
    env.create(
        "RunConfiguration",
        "rc",
        json!({"targetRef": {"name": "cpu"},
            "environment": {"condaDependencies": {"pythonVersion": "3.11", "pipPackages": ["scikit-learn==1.5.2"]}}}),
    );
    for i in 0..n {
        env.create(
            "Experiment",
            &name(i),
            json!({"runConfigurationRef": {"name": "rc"}, "script": "train.py", "arguments": ["--seed", i.to_string()],
                "source": {"inline": {"files": {
                    "train.py": format!("import sys\nprint('experiment {i}', sys.argv[1:])\n"),
                    "utils.py": "def helper():\n    return 42\n",
                }}}}),
        );
    }
}

/// Requests to the fake Azure ML: ARM (paths under `/subscriptions/`) and run history
/// (discovery included); token requests are neither.
#[derive(Clone, Copy, Default)]
struct AzureCount {
    arm: u64,
    arm_writes: u64,
    history: u64,
}

fn azure_requests(env: &Env) -> AzureCount {
    let mut c = AzureCount::default();
    for (key, n) in env.azure.counters() {
        let Some((method, template)) = key.split_once(' ') else {
            continue;
        };
        if template.starts_with("/subscriptions/") {
            c.arm += n;
            if method != "GET" {
                c.arm_writes += n;
            }
        } else if template.starts_with("/history/") || template == "/discovery" {
            c.history += n;
        }
    }
    c
}

/// ARM writes per 1-s window.
struct Windows {
    first: u64,
    last: u64,
    max: u64,
}

impl Windows {
    fn new(env: &Env) -> Self {
        let now = azure_requests(env).arm_writes;
        Windows {
            first: now,
            last: now,
            max: 0,
        }
    }

    fn sample(&mut self, env: &Env) {
        let now = azure_requests(env).arm_writes;
        self.max = self.max.max(now - self.last);
        self.last = now;
    }
}

/// From the controllers' start until every Experiment Succeeded (or the timeout).
struct Burst {
    done: u64,
    elapsed: Duration,
    usage: Usage,
    azure: AzureCount,
    kube_calls: Vec<fake_kube::RequestRecord>,
}

const MIB: f64 = 1024.0 * 1024.0;

impl Burst {
    fn report(&self, run: &Run, windows: &Windows, baseline: &Usage) {
        let secs = self.elapsed.as_secs_f64();
        if self.done < run.n {
            println!(
                "stopped after {secs:.0} s: {} of {} Experiments Succeeded",
                self.done, run.n
            );
        } else {
            println!("all {} Experiments Succeeded after {secs:.1} s", run.n);
        }
        let per_exp = |count: f64| count / run.n.max(1) as f64;
        println!("  {:.2} Experiments/s", self.done as f64 / secs);
        println!(
            "  ARM writes/s: max {} (busiest 1-s window), mean {:.2}",
            windows.max,
            (windows.last - windows.first) as f64 / secs
        );
        println!(
            "  Azure requests per Experiment: ARM {:.2} ({:.2} writes), run history {:.2}",
            per_exp(self.azure.arm as f64),
            per_exp(self.azure.arm_writes as f64),
            per_exp(self.azure.history as f64)
        );
        let mut by_call: BTreeMap<String, usize> = BTreeMap::new();
        for c in &self.kube_calls {
            *by_call
                .entry(format!("{} {}", c.verb, c.resource))
                .or_default() += 1;
        }
        let mut by_call: Vec<(String, usize)> = by_call.into_iter().collect();
        by_call.sort_by_key(|c| std::cmp::Reverse(c.1));
        let top: Vec<String> = by_call
            .iter()
            .take(6)
            .map(|(call, count)| format!("{call} {:.2}", per_exp(*count as f64)))
            .collect();
        let gets: usize = by_call
            .iter()
            .filter(|(call, _)| call.starts_with("get "))
            .map(|(_, n)| n)
            .sum();
        println!(
            "  apiserver requests per Experiment: {:.2} ({}; GETs of any kind {gets} in all)",
            per_exp(self.kube_calls.len() as f64),
            top.join(", ")
        );
        let u = &self.usage;
        println!(
            "  memory: controllers' heap peak {:.1} MiB ({:.1} MiB at the end); process peak RSS {:.1} MiB above the baseline of {:.1} MiB (the fakes with {} objects), fakes included",
            u.controller_peak_heap as f64 / MIB,
            u.controller_heap as f64 / MIB,
            u.peak_rss_kib.saturating_sub(baseline.peak_rss_kib) as f64 / 1024.0,
            baseline.peak_rss_kib as f64 / 1024.0,
            run.n + 3
        );
        println!(
            "  CPU: {:.1} s on the controllers' threads, {:.1} s for the whole process (fakes included)",
            (u.controller_cpu - baseline.controller_cpu).as_secs_f64(),
            (u.cpu - baseline.cpu).as_secs_f64()
        );
    }
}

/// Requests per minute while nothing changes.
async fn steady_state(env: &Env, period: Duration, burst: &Burst) {
    tokio::time::sleep(period).await;
    let minutes = period.as_secs_f64() / 60.0;
    let azure = azure_requests(env);
    let kube = env.kube.requests().len() - burst.kube_calls.len();
    println!(
        "steady state over {:?}: {:.1} ARM requests/min ({:.1} writes/min), {:.1} run-history requests/min, {:.1} apiserver requests/min",
        period,
        (azure.arm - burst.azure.arm) as f64 / minutes,
        (azure.arm_writes - burst.azure.arm_writes) as f64 / minutes,
        (azure.history - burst.azure.history) as f64 / minutes,
        kube as f64 / minutes,
    );
}
