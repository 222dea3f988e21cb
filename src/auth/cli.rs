//! `fingate hash-password`, `fingate token`, `fingate consumers …` (spec §8).
//! Passwords come from stdin only: never from argv, where `ps` and shell history
//! would show them.

use super::consumers::{ConsumerStore, YamlConsumers, READ_ONLY_MESSAGE};
use super::token_endpoint::mint;
use super::{password, settings};
use crate::cli::ConsumersAction;
use crate::config::{self, units::DurationStr, StoreBackend};
use std::io::{BufRead, IsTerminal};
use std::path::Path;
use std::process::ExitCode;

/// One line from stdin, without its line ending.
fn read_password() -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        eprint!("password: ");
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    anyhow::ensure!(!password.is_empty(), "no password on stdin");
    Ok(password)
}

pub fn hash_password() -> anyhow::Result<ExitCode> {
    let password = read_password()?;
    println!("{}", password::hash(&password).map_err(anyhow::Error::msg)?);
    Ok(ExitCode::SUCCESS)
}

fn load(path: &Path) -> Option<config::Config> {
    match config::load(path) {
        Ok(c) => Some(c),
        Err(errors) => {
            eprintln!("{errors}");
            None
        }
    }
}

pub fn token(path: &Path, sub: &str, scopes: &[String], ttl: &str) -> anyhow::Result<ExitCode> {
    let ttl = DurationStr::parse(ttl)
        .map_err(|e| anyhow::anyhow!("--ttl: {e}"))?
        .0;
    anyhow::ensure!(ttl.as_secs() >= 1, "--ttl: use at least 1s");
    if let Some(p) = settings::username_problem(sub) {
        anyhow::bail!("--sub: {p}");
    }
    if let Some(p) = scopes.iter().find_map(|s| settings::scope_problem(s)) {
        anyhow::bail!("--scope: {p}");
    }
    let Some(config) = load(path) else {
        return Ok(ExitCode::FAILURE);
    };
    let auth = &config.auth;
    let Some(key) = auth.keys.signing() else {
        anyhow::bail!(
            "{}: no signing key: mark one of auth.keys with `sign: true`",
            path.display()
        );
    };
    let (token, _) = mint(
        key,
        &auth.issuer,
        &auth.audience,
        sub,
        &scopes.join(" "),
        ttl,
    )
    .map_err(anyhow::Error::msg)?;
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

pub fn consumers(path: &Path, action: &ConsumersAction) -> anyhow::Result<ExitCode> {
    let Some(config) = load(path) else {
        return Ok(ExitCode::FAILURE);
    };
    if config.store.backend == StoreBackend::Redis {
        // The redis consumer store arrives with the shared store; see the README status.
        anyhow::bail!("run-time consumers in redis are not implemented in this build yet");
    }
    let yaml = YamlConsumers::new(&config.consumers);
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    match action {
        ConsumersAction::List { .. } => {
            for c in rt.block_on(yaml.list())? {
                let state = if c.disabled { " (disabled)" } else { "" };
                println!(
                    "{}\t{}\t{}{state}",
                    c.username,
                    c.source,
                    c.scopes.join(" ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ConsumersAction::Add { .. } | ConsumersAction::Remove { .. } => {
            eprintln!("fingate: {READ_ONLY_MESSAGE}");
            Ok(ExitCode::FAILURE)
        }
    }
}
