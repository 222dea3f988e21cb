//! `fingate hash-password`, `fingate token`, `fingate consumers …`.
//! Passwords come from stdin only: never from argv, where `ps` and shell history
//! would show them.

use super::ConsumersAction;
use crate::auth::consumers::{over_store, Consumer, READ_ONLY_MESSAGE};
use crate::auth::token_endpoint::mint;
use crate::auth::{password, settings};
use crate::config::{self, StoreBackend};
use crate::units::DurationStr;
use std::io::{BufRead, IsTerminal};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

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

/// The config as these commands read it. Demo secrets are no error here: they
/// serve nothing themselves, and a token signed with a demo secret is accepted only
/// by a gateway that was started with `--demo` (`fingate token` says so).
fn load(path: &Path) -> Option<config::Config> {
    match config::load(path, config::Secrets::Demo) {
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
    for demo in config
        .demo_secrets
        .iter()
        .filter(|e| e.path.starts_with("auth."))
    {
        let note = config::ConfigError {
            message: "is a demo secret: only a gateway started with --demo accepts what it signs"
                .into(),
            ..demo.clone()
        };
        eprintln!("fingate: note: {note}");
    }
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

/// A person is waiting, not a request: the CLI allows a slow link more than the
/// per-operation budget the gateway uses.
const CLI_STORE_TIMEOUT: Duration = Duration::from_secs(2);

pub fn consumers(action: &ConsumersAction) -> anyhow::Result<ExitCode> {
    let path = action.config();
    let Some(config) = load(path) else {
        return Ok(ExitCode::FAILURE);
    };
    let store_settings = crate::store::StoreConfig {
        timeout: config.store.timeout.max(CLI_STORE_TIMEOUT),
        ..config.store.clone()
    };
    let store = over_store(&config.consumers, &crate::store::open(&store_settings));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let outcome = match action {
        ConsumersAction::List { .. } => rt.block_on(store.list()).map(|list| {
            for c in list {
                let state = if c.disabled { " (disabled)" } else { "" };
                println!(
                    "{}\t{}\t{}{state}",
                    c.username,
                    c.source,
                    c.scopes.join(" ")
                );
            }
        }),
        ConsumersAction::Add {
            username, scopes, ..
        } => {
            if config.store.backend != StoreBackend::Redis {
                // Say so before asking for a password that could not be kept.
                eprintln!("fingate: {READ_ONLY_MESSAGE}");
                return Ok(ExitCode::FAILURE);
            }
            if let Some(p) = settings::username_problem(username) {
                anyhow::bail!("username: {p}");
            }
            if let Some(p) = scopes.iter().find_map(|s| settings::scope_problem(s)) {
                anyhow::bail!("--scope: {p}");
            }
            let hash = password::hash(&read_password()?).map_err(anyhow::Error::msg)?;
            let consumer = Consumer {
                username: username.clone(),
                password_hash: Some(hash),
                client_cert: None,
                scopes: scopes.clone(),
                disabled: false,
            };
            rt.block_on(store.add(consumer))
                .map(|()| println!("added {username}"))
        }
        ConsumersAction::Remove { username, .. } => match rt.block_on(store.remove(username)) {
            Ok(true) => {
                println!("removed {username}");
                Ok(())
            }
            Ok(false) => {
                eprintln!("fingate: no run-time consumer named {username:?}");
                return Ok(ExitCode::FAILURE);
            }
            Err(e) => Err(e),
        },
    };
    match outcome {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("fingate: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
