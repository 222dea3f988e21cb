//! Upstream groups: targets and weights, balancing, hashing, health checks,
//! timeouts and retries, TLS and HTTP/2 to the targets.

use super::file::UpstreamTlsFile;
use super::*;
use crate::upstream::tls::{valid_server_name, TlsEntry, UpstreamTls, UpstreamTlsSettings};
use std::path::Path;
use std::time::SystemTime;

const MAX_WEIGHT: u32 = 1000;
const MAX_RETRIES: u32 = 10;

/// The valid upstream groups, and the names of every group declared (valid or not),
/// so a route naming a broken group is not also told the group is unknown.
/// Certificate files are read here, relative to `base_dir` (the config's folder).
pub(super) fn upstreams(
    value: Value,
    base_dir: &Path,
    errors: &mut Errors,
) -> (BTreeMap<String, UpstreamConfig>, Vec<String>) {
    let mut out = BTreeMap::new();
    let mut declared = Vec::new();
    let map = match value {
        Value::Mapping(map) if !map.is_empty() => map,
        Value::Null | Value::Mapping(_) => {
            push(
                errors,
                "upstreams",
                "at least one upstream group is required",
            );
            return (out, declared);
        }
        _ => {
            push(
                errors,
                "upstreams",
                "expected a mapping of upstream names to groups",
            );
            return (out, declared);
        }
    };
    for (key, value) in map {
        let name = key.as_str().unwrap_or_default().to_owned();
        let base = format!("upstreams.{name}");
        declared.push(name.clone());
        if !valid_name(&name) {
            push(
                errors,
                &base,
                format!("invalid upstream name {name:?}: use letters, digits, '-', '_' and '.'"),
            );
        }
        if let Some(file) = typed::<UpstreamFile>(value, &base, errors) {
            if let Some(u) = upstream(name.clone(), file, &base, base_dir, errors) {
                out.insert(name, u);
            }
        }
    }
    (out, declared)
}

fn upstream(
    name: String,
    file: UpstreamFile,
    base: &str,
    base_dir: &Path,
    errors: &mut Errors,
) -> Option<UpstreamConfig> {
    let before = errors.len();
    if file.targets.is_empty() {
        push(
            errors,
            format!("{base}.targets"),
            "an upstream needs at least one target",
        );
    }
    let mut targets: Vec<TargetConfig> = Vec::new();
    for (i, t) in file.targets.iter().enumerate() {
        let path = format!("{base}.targets[{i}]");
        let Some(address) = socket_addr(&t.address, &path, errors) else {
            continue;
        };
        let weight = t.weight.unwrap_or(1);
        if !(1..=MAX_WEIGHT).contains(&weight) {
            push(
                errors,
                format!("{path}.weight"),
                format!("{weight} is out of range: use 1 to {MAX_WEIGHT}"),
            );
        }
        if targets.iter().any(|o| o.address == address) {
            push(errors, &path, format!("{address} is listed twice"));
        }
        targets.push(TargetConfig { address, weight });
    }
    let balance = match (file.balance, file.hash_on.as_deref()) {
        (Some(BalanceFile::ConsistentHash), hash_on) => {
            Balance::ConsistentHash(hash_on_key(hash_on.unwrap_or("ip"), base, errors))
        }
        (_, Some(_)) => {
            push(
                errors,
                format!("{base}.hash_on"),
                "`hash_on` is only used with balance: consistent_hash",
            );
            Balance::RoundRobin
        }
        (None | Some(BalanceFile::RoundRobin | BalanceFile::Weighted), None) => Balance::RoundRobin,
        (Some(BalanceFile::LeastConn), None) => Balance::LeastConn,
        (Some(BalanceFile::Random), None) => Balance::Random,
    };
    let health_check = file
        .health_check
        .and_then(|h| health_check(h, &format!("{base}.health_check"), errors));
    let positive =
        |d: Option<crate::units::DurationStr>, default_ms: u64, key: &str, errors: &mut Errors| {
            let d = d.map_or(Duration::from_millis(default_ms), |d| d.0);
            if d.is_zero() {
                push(errors, format!("{base}.{key}"), "must be greater than 0");
            }
            d
        };
    let connect_timeout = positive(file.connect_timeout, 1_000, "connect_timeout", errors);
    let read_timeout = positive(file.read_timeout, 10_000, "read_timeout", errors);
    let eject_for = positive(file.eject_for, 10_000, "eject_for", errors);
    let retries = file.retries.unwrap_or(1);
    if retries > MAX_RETRIES {
        push(
            errors,
            format!("{base}.retries"),
            format!("{retries} is out of range: use 0 to {MAX_RETRIES}"),
        );
    }
    let tls = file
        .tls
        .and_then(|t| upstream_tls(t, &format!("{base}.tls"), base_dir, errors));
    (errors.len() == before).then_some(UpstreamConfig {
        name,
        targets,
        balance,
        health_check,
        connect_timeout,
        read_timeout,
        retries,
        eject_for,
        tls,
        http2: file.http2.unwrap_or(false),
    })
}

/// `tls:` of a group: its names checked, its files read (now, and on every reload).
fn upstream_tls(
    file: UpstreamTlsFile,
    base: &str,
    base_dir: &Path,
    errors: &mut Errors,
) -> Option<Arc<UpstreamTls>> {
    let before = errors.len();
    if let Some(sni) = file.sni.as_deref().filter(|s| !valid_server_name(s)) {
        push(
            errors,
            format!("{base}.sni"),
            format!("{sni:?} is not a host name or IP address"),
        );
    }
    let client = match (file.client_cert, file.client_key) {
        (Some(cert), Some(key)) => Some((base_dir.join(cert), base_dir.join(key))),
        (None, None) => None,
        (Some(_), None) => {
            push(
                errors,
                format!("{base}.client_cert"),
                "`client_cert` needs `client_key` (the certificate's private key)",
            );
            None
        }
        (None, Some(_)) => {
            push(
                errors,
                format!("{base}.client_key"),
                "`client_key` needs `client_cert` (the certificate it belongs to)",
            );
            None
        }
    };
    let settings = UpstreamTlsSettings {
        sni: file.sni,
        ca: file.ca.map(|ca| base_dir.join(ca)),
        verify: file.verify.unwrap_or(true),
        client,
    };
    // The files are read even after a problem above, so all of them are reported.
    match UpstreamTls::load(settings, SystemTime::now()) {
        Ok(tls) if errors.len() == before => Some(Arc::new(tls)),
        Ok(_) => None,
        Err(problems) => {
            for (entry, message) in problems {
                let key = match entry {
                    TlsEntry::Ca => "ca",
                    TlsEntry::ClientCert => "client_cert",
                    TlsEntry::ClientKey => "client_key",
                };
                push(errors, format!("{base}.{key}"), message);
            }
            None
        }
    }
}

fn hash_on_key(text: &str, base: &str, errors: &mut Errors) -> HashOn {
    match text {
        "consumer" => HashOn::Consumer,
        "ip" => HashOn::Ip,
        other => match other
            .strip_prefix("header:")
            .map(|h| HeaderName::from_bytes(h.trim().as_bytes()))
        {
            Some(Ok(name)) => HashOn::Header(name),
            _ => {
                push(
                    errors,
                    format!("{base}.hash_on"),
                    format!("{other:?}: expected consumer, ip or header:<Name>"),
                );
                HashOn::Ip
            }
        },
    }
}

fn health_check(
    file: HealthCheckFile,
    base: &str,
    errors: &mut Errors,
) -> Option<HealthCheckConfig> {
    let before = errors.len();
    let path = file.path.unwrap_or_else(|| "/health".to_owned());
    if !path.starts_with('/') || path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        push(
            errors,
            format!("{base}.path"),
            format!("{path:?} is not a request path like /health"),
        );
    }
    let interval = file.interval.map_or(Duration::from_secs(5), |d| d.0);
    let timeout = file.timeout.map_or(Duration::from_secs(1), |d| d.0);
    if interval.is_zero() {
        push(errors, format!("{base}.interval"), "must be greater than 0");
    } else if file.timeout.is_none() && timeout > interval {
        push(
            errors,
            format!("{base}.timeout"),
            "the default timeout (1s) is longer than `interval`: set `timeout` to at most `interval`",
        );
    } else if timeout.is_zero() || timeout > interval {
        push(
            errors,
            format!("{base}.timeout"),
            "must be greater than 0 and at most `interval`",
        );
    }
    let healthy = file.healthy.unwrap_or(2);
    let unhealthy = file.unhealthy.unwrap_or(3);
    for (key, v) in [("healthy", healthy), ("unhealthy", unhealthy)] {
        if !(1..=100).contains(&v) {
            push(
                errors,
                format!("{base}.{key}"),
                format!("{v} is out of range: use 1 to 100"),
            );
        }
    }
    (errors.len() == before).then_some(HealthCheckConfig {
        path,
        interval,
        timeout,
        healthy,
        unhealthy,
    })
}
