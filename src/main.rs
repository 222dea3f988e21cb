//! `fingate`: command dispatch only; the work lives in the library.

use anyhow::Context;
use clap::Parser;
use fingate::cli::{Cli, Command};
use fingate::{config, logging, runtime, server};
use std::process::ExitCode;

/// mimalloc rather than glibc malloc: +13-15% requests per CPU-second under load
/// (benches/RESULTS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    match dispatch(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("fingate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run {
            config,
            log_format,
            upgrade,
            watch,
            demo,
        } => {
            logging::init(log_format);
            let config = match config::load(&config.config, demo.secrets()) {
                Ok(c) => c,
                Err(errors) => {
                    eprintln!("{errors}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            for e in &config.demo_secrets {
                tracing::warn!(
                    at = %e.file_position(),
                    field = %e.path,
                    "--demo: running with a secret published in the fingate repository; never expose this gateway"
                );
            }
            server::run(config, &server::RunOptions { upgrade, watch }).context("cannot start")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate { config, demo } => match config::load(&config.config, demo.secrets()) {
            Ok(c) => {
                for e in &c.demo_secrets {
                    eprintln!(
                        "{}: {}: a demo secret (accepted with --demo only)",
                        e.file_position(),
                        e.path
                    );
                }
                println!(
                    "{}: ok ({} routes, {} upstreams)",
                    config.config.display(),
                    c.routes.len(),
                    c.upstreams.len()
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(errors) => {
                eprintln!("{errors}");
                eprintln!("{} error(s)", errors.0.len());
                Ok(ExitCode::FAILURE)
            }
        },
        Command::HashPassword => fingate::cli::auth::hash_password(),
        Command::Token {
            sub,
            scopes,
            ttl,
            config,
        } => fingate::cli::auth::token(&config.config, &sub, &scopes, &ttl),
        Command::Consumers { action } => fingate::cli::auth::consumers(&action),
        Command::Routes { config } => {
            // Prints the table only: demo secrets are no concern here.
            let config = match config::load(&config.config, config::Secrets::Demo) {
                Ok(c) => c,
                Err(errors) => {
                    eprintln!("{errors}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            let runtime = runtime::Runtime::build(config, None)?;
            print!("{}", fingate::admin::routes_table(&runtime));
            Ok(ExitCode::SUCCESS)
        }
    }
}
