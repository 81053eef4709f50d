//! Fleet benchmark (numbers, not pass/fail): the real controllers in this process against
//! fake-kube, the fake Azure ML and Azurite, with 1 Workspace, 1 AmlCompute ComputeTarget,
//! 1 conda RunConfiguration and N Experiments with inline sources.
//!
//! The objects are in the API server when the controllers start, so they meet all N at once.
//! Prints the time until every Experiment is Succeeded, Experiments/s, ARM writes/s (the
//! busiest 1-s window and the mean), apiserver requests per Experiment, peak RSS above the
//! baseline measured before the controllers started, CPU seconds; then the steady state:
//! ARM and apiserver requests per minute.
//!
//! The controllers run with the operator's defaults (ARM client, LRO polling, run polling),
//! the fake's CA, and `--concurrency 16` as in issue 14's measurement.
//!
//! Environment: `AMLOPS_FLEET` (N, default 1000), `AMLOPS_FLEET_STEADY_SECS` (default 60),
//! `AMLOPS_FLEET_CONCURRENCY` (default 16), `AMLOPS_FLEET_TIMEOUT_SECS` (give up waiting for
//! Succeeded, default 7200).

#[path = "../tests/controller_support/mod.rs"]
mod controller_support;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use amlops::azure::ArmConfig;
use amlops::azure::http::HttpOptions;
use amlops::controller::{Settings, run_controllers};
use controller_support::{AMLOPS, Env, NS, aml, has_reason};
use fake_azureml::azurite::Azurite;
use serde_json::json;

/// Threads of the controllers' runtime: their CPU time is told apart from the fakes'.
const CONTROLLER_THREAD: &str = "amlops-ctl";

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let n = env_number("AMLOPS_FLEET", 1000);
    let steady = Duration::from_secs(env_number("AMLOPS_FLEET_STEADY_SECS", 60));
    let concurrency = env_number("AMLOPS_FLEET_CONCURRENCY", 16) as u16;
    let timeout = Duration::from_secs(env_number("AMLOPS_FLEET_TIMEOUT_SECS", 7200));
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
        // Idle blocking threads would exit and take their CPU time with them.
        .thread_keep_alive(Duration::from_secs(24 * 3600))
        .enable_all()
        .build()
        .expect("the controllers' runtime");
    fakes.block_on(fleet(
        &azurite,
        controllers.handle(),
        Run {
            n,
            steady,
            concurrency,
            timeout,
        },
    ));
    controllers.shutdown_background();
}

struct Run {
    n: u64,
    steady: Duration,
    concurrency: u16,
    timeout: Duration,
}

async fn fleet(azurite: &Azurite, controllers: &tokio::runtime::Handle, run: Run) {
    let options = fake_azureml::Options {
        storage: Some(azurite.storage_backend()),
        ..fake_azureml::Options::default()
    };
    let env = Env::without_controllers(options.clone(), true).await;
    apply(&env, run.n);
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
    println!(
        "fleet: {} Experiments (inline sources) on 1 AmlCompute, concurrency {}, fake job phases {:?} each",
        run.n, run.concurrency, options.job_phase_delay
    );
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
    let elapsed = started.elapsed();
    let usage = Usage::now();
    let done = run.n - pending.len() as u64;
    let kube_calls = env.kube.requests();
    report_burst(
        &run,
        done,
        elapsed,
        &windows,
        &baseline,
        &usage,
        &kube_calls,
    );

    let before = (arm_requests(&env), kube_calls.len());
    tokio::time::sleep(run.steady).await;
    let minutes = run.steady.as_secs_f64() / 60.0;
    let arm = arm_requests(&env);
    let kube_steady = env.kube.requests().len() - before.1;
    println!(
        "steady state over {:?}: {:.1} ARM requests/min ({:.1} writes/min), {:.1} apiserver requests/min",
        run.steady,
        (arm.all - before.0.all) as f64 / minutes,
        (arm.writes - before.0.writes) as f64 / minutes,
        kube_steady as f64 / minutes,
    );
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

/// ARM requests (paths under `/subscriptions/`; run history and token requests are not ARM).
#[derive(Clone, Copy, Default)]
struct ArmCount {
    all: u64,
    writes: u64,
}

fn arm_requests(env: &Env) -> ArmCount {
    env.azure
        .counters()
        .into_iter()
        .filter_map(|(key, n)| {
            let (method, template) = key.split_once(' ')?;
            template
                .starts_with("/subscriptions/")
                .then_some((method != "GET", n))
        })
        .fold(ArmCount::default(), |c, (write, n)| ArmCount {
            all: c.all + n,
            writes: c.writes + if write { n } else { 0 },
        })
}

/// ARM writes per 1-s window.
struct Windows {
    first: u64,
    last: u64,
    max: u64,
}

impl Windows {
    fn new(env: &Env) -> Self {
        let now = arm_requests(env).writes;
        Windows {
            first: now,
            last: now,
            max: 0,
        }
    }

    fn sample(&mut self, env: &Env) {
        let now = arm_requests(env).writes;
        self.max = self.max.max(now - self.last);
        self.last = now;
    }
}

/// Peak RSS and CPU time of this process, and the CPU time of the controllers' threads.
struct Usage {
    peak_rss_kib: u64,
    cpu: Duration,
    controller_cpu: Duration,
}

impl Usage {
    fn now() -> Self {
        Usage {
            peak_rss_kib: peak_rss_kib(),
            cpu: process_cpu(),
            controller_cpu: threads_cpu(CONTROLLER_THREAD),
        }
    }
}

/// VmHWM of /proc/self/status.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn process_cpu() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// User + system time of the live threads named `prefix`… (fields 14 and 15 of
/// /proc/self/task/*/stat, in clock ticks).
fn threads_cpu(prefix: &str) -> Duration {
    // SAFETY: sysconf reads a constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    let total: u64 = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("stat")).ok())
        .filter_map(|stat| {
            let (head, rest) = stat.rsplit_once(')')?;
            let comm = head.split_once('(')?.1;
            if !comm.starts_with(prefix) {
                return None;
            }
            // After "pid (comm)": state is field 3, utime 14, stime 15.
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: u64 = fields.get(11)?.parse().ok()?;
            let stime: u64 = fields.get(12)?.parse().ok()?;
            Some(utime + stime)
        })
        .sum();
    Duration::from_secs_f64(total as f64 / ticks)
}

fn report_burst(
    run: &Run,
    done: u64,
    elapsed: Duration,
    windows: &Windows,
    baseline: &Usage,
    usage: &Usage,
    kube_calls: &[fake_kube::RequestRecord],
) {
    let secs = elapsed.as_secs_f64();
    if done < run.n {
        println!(
            "gave up after {secs:.0} s: {done} of {} Experiments Succeeded",
            run.n
        );
    } else {
        println!("all {} Experiments Succeeded after {secs:.1} s", run.n);
    }
    println!("  {:.2} Experiments/s", done as f64 / secs);
    println!(
        "  ARM writes/s: max {} (busiest 1-s window), mean {:.2}",
        windows.max,
        (windows.last - windows.first) as f64 / secs
    );
    let per_exp = |count: usize| count as f64 / run.n.max(1) as f64;
    let mut by_call: BTreeMap<String, usize> = BTreeMap::new();
    for c in kube_calls {
        *by_call
            .entry(format!("{} {}", c.verb, c.resource))
            .or_default() += 1;
    }
    let mut by_call: Vec<(String, usize)> = by_call.into_iter().collect();
    by_call.sort_by_key(|c| std::cmp::Reverse(c.1));
    let top: Vec<String> = by_call
        .iter()
        .take(6)
        .map(|(call, count)| format!("{call} {:.2}", per_exp(*count)))
        .collect();
    println!(
        "  apiserver requests per Experiment: {:.2} ({})",
        per_exp(kube_calls.len()),
        top.join(", ")
    );
    println!(
        "  peak RSS above the baseline: {:.1} MiB (process peak {:.1} MiB, baseline {:.1} MiB with the fakes and the {} objects loaded)",
        usage.peak_rss_kib.saturating_sub(baseline.peak_rss_kib) as f64 / 1024.0,
        usage.peak_rss_kib as f64 / 1024.0,
        baseline.peak_rss_kib as f64 / 1024.0,
        run.n + 3
    );
    println!(
        "  CPU: {:.1} s on the controllers' threads, {:.1} s for the whole process (fakes included)",
        (usage.controller_cpu - baseline.controller_cpu).as_secs_f64(),
        (usage.cpu - baseline.cpu).as_secs_f64()
    );
}
