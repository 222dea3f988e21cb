//! The command line: subcommands and their options (clap); `auth` runs the
//! credential subcommands.

pub mod auth;

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

#[derive(Debug, Args)]
pub struct DemoArg {
    /// A demo: accept the JWT secret and admin key values published in the fingate
    /// repository (gateway.yaml, examples/). Without it they are an error, since
    /// anyone can read them. `scripts/demo` passes it.
    #[arg(long)]
    pub demo: bool,
}

impl DemoArg {
    pub fn secrets(&self) -> crate::config::Secrets {
        if self.demo {
            crate::config::Secrets::Demo
        } else {
            crate::config::Secrets::Production
        }
    }
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
        #[command(flatten)]
        demo: DemoArg,
    },
    /// Check a configuration file: exit 0, or 1 with every error.
    Validate {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        demo: DemoArg,
    },
    /// Print the route table in the order the gateway resolves it.
    Routes {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Read a password from stdin and print its argon2id hash (for `consumers:`).
    HashPassword,
    /// Mint a token with the configuration's signing key (`sign: true`).
    Token {
        /// The subject (`sub`): the consumer the token speaks for.
        #[arg(long)]
        sub: String,
        /// A scope to grant; repeat for more (`--scope a:read --scope b:write`).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Lifetime, e.g. 15m, 1h.
        #[arg(long, default_value = "15m")]
        ttl: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Manage run-time consumers (needs store.backend: redis).
    Consumers {
        #[command(subcommand)]
        action: ConsumersAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConsumersAction {
    /// Register a consumer; the password is read from stdin.
    Add {
        username: String,
        #[arg(long = "scope")]
        scopes: Vec<String>,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// List consumers (the file's and, with redis, the run-time ones).
    List {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Remove a run-time consumer.
    Remove {
        username: String,
        #[command(flatten)]
        config: ConfigArg,
    },
}

impl ConsumersAction {
    pub fn config(&self) -> &std::path::Path {
        match self {
            Self::Add { config, .. } | Self::List { config } | Self::Remove { config, .. } => {
                &config.config
            }
        }
    }
}
