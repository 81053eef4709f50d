use std::process::ExitCode;

use clap::{Parser, Subcommand};

use amlops::snapshot::cli::SnapshotArgs;
use amlops::standalone::cli::{
    self as standalone, ApplyArgs, DeleteArgs, DescribeArgs, FilesArgs, GetArgs, LogsArgs,
    StateArgs,
};

/// amlops: declarative Azure Machine Learning training infrastructure, in a cluster or on this machine.
#[derive(Parser)]
#[command(name = "amlops", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create or update objects from manifests and reconcile them until settled.
    Apply {
        #[command(flatten)]
        args: ApplyArgs,
        #[command(flatten)]
        state: StateArgs,
    },
    /// List objects with the same columns as `kubectl get`.
    Get {
        #[command(flatten)]
        args: GetArgs,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Show an object's spec, conditions, current run and events.
    Describe {
        #[command(flatten)]
        args: DescribeArgs,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Print (or follow) the logs of an Experiment's current run, local or on Azure ML;
    /// `--cluster` reads the Experiment from a cluster (the default when run as `kubectl amlops`).
    Logs {
        #[command(flatten)]
        args: LogsArgs,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Delete objects through their finalizers (cancel runs, clean up).
    Delete {
        #[command(flatten)]
        args: DeleteArgs,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Check manifests offline: schema, CEL rules, cross-references. Exit 2 on problems.
    Validate {
        #[command(flatten)]
        args: FilesArgs,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Show what apply would change, per object.
    Plan {
        #[command(flatten)]
        args: FilesArgs,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Show what a source snapshot would include, its size and id.
    Snapshot(SnapshotArgs),
    /// Run the controllers against the cluster of the current kubeconfig (or in-cluster config).
    Controller(amlops::controller::ControllerArgs),
    /// Print the CustomResourceDefinitions as YAML (or write one file per CRD into a directory).
    Crd {
        /// Write `<crd name>.yaml` files into this directory instead of printing.
        #[arg(long)]
        out_dir: Option<std::path::PathBuf>,
    },
    /// Print the version.
    Version,
    /// Internal: the supervisor of one local run, started by `apply` (see src/local/supervisor.rs).
    #[command(name = amlops::local::SUPERVISOR_SUBCOMMAND, hide = true)]
    SuperviseRun(amlops::local::SupervisorArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Apply { args, state } => standalone::apply(&args, &state),
        Command::Get { args, state } => standalone::get(&args, &state),
        Command::Describe { args, state } => standalone::describe(&args, &state),
        Command::Logs { mut args, state } => {
            args.cluster |= invoked_as_kubectl_plugin();
            standalone::logs(&args, &state)
        }
        Command::Delete { args, state } => standalone::delete(&args, &state),
        Command::Validate { args, state } => standalone::validate(&args, &state),
        Command::Plan { args, state } => standalone::plan(&args, &state),
        Command::Snapshot(args) => amlops::snapshot::cli::run(&args),
        Command::Controller(args) => run_controller(args),
        Command::Crd { out_dir } => print_crds(out_dir.as_deref()).map(|()| 0),
        Command::SuperviseRun(args) => Ok(amlops::local::supervise(&args)),
        Command::Version => {
            println!("amlops {}", env!("CARGO_PKG_VERSION"));
            Ok(0)
        }
    };
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("error: {}", message(&e));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes, each said once: many errors already print their cause (and
/// SQLite's repeat theirs with an error code), which `{:#}` would print again.
fn message(error: &anyhow::Error) -> String {
    let mut out = error.to_string();
    let mut previous = out.clone();
    for cause in error.chain().skip(1) {
        let text = cause.to_string();
        if !previous.contains(&text) && !text.contains(&previous) {
            out.push_str(": ");
            out.push_str(&text);
        }
        previous = text;
    }
    out
}

/// Installed as `kubectl-amlops`, the binary is a kubectl plugin: objects live in the cluster.
fn invoked_as_kubectl_plugin() -> bool {
    std::env::args_os()
        .next()
        .and_then(|arg0| {
            std::path::Path::new(&arg0)
                .file_stem()
                .map(|s| s == "kubectl-amlops")
        })
        .unwrap_or(false)
}

fn run_controller(args: amlops::controller::ControllerArgs) -> anyhow::Result<i32> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(amlops::controller::run(args));
    // Blocking work a cut-off reconcile left behind (hashing, an upload) must not hold the
    // exit: dropping the runtime would wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    result?;
    Ok(0)
}

fn print_crds(out_dir: Option<&std::path::Path>) -> anyhow::Result<()> {
    let files = amlops::api::crds_yaml()?;
    match out_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            for (name, yaml) in files {
                std::fs::write(dir.join(name), yaml)?;
            }
        }
        None => {
            for (_, yaml) in files {
                print!("{yaml}");
            }
        }
    }
    Ok(())
}
