//! The command line (spec §8).

use crate::logging::LogFormat;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "fingate",
    version,
    about = "An API gateway for fintech microservices, built on Pingora"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct ConfigArg {
    /// The configuration file.
    #[arg(
        short,
        long = "config",
        env = "FINGATE_CONFIG",
        default_value = "gateway.yaml"
    )]
    pub config: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve. SIGHUP or POST /admin/reload re-reads the file; SIGTERM drains and exits.
    Run {
        #[command(flatten)]
        config: ConfigArg,
        /// Log format: json (one object per line) or text (for people).
        #[arg(long, value_enum, default_value_t = LogFormat::Json)]
        log_format: LogFormat,
        /// Take over the listening sockets of a running fingate (graceful upgrade):
        /// start this, then send SIGQUIT to the old process.
        #[arg(long)]
        upgrade: bool,
        /// Reload by itself when the config file changes.
        #[arg(long)]
        watch: bool,
    },
    /// Check a configuration file: exit 0, or 1 with every error.
    Validate {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Print the route table in the order the gateway resolves it.
    Routes {
        #[command(flatten)]
        config: ConfigArg,
    },
}
