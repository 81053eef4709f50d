use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// amlops: declarative Azure Machine Learning training infrastructure.
#[derive(Parser)]
#[command(name = "amlops", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions as YAML (or write one file per CRD into a directory).
    Crd {
        /// Write `<crd name>.yaml` files into this directory instead of printing.
        #[arg(long)]
        out_dir: Option<std::path::PathBuf>,
    },
    /// Print the version.
    Version,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crd { out_dir } => print_crds(out_dir.as_deref()),
        Command::Version => {
            println!("amlops {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
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
