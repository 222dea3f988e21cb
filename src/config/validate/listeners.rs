//! `listen:`: addresses, TLS (certificates read and checked here, so a bad one is
//! a validation error and the running ones stay), HTTP/2 and h2c.

use super::{push, socket_addr, Errors};
use crate::config::file::{ListenFile, TlsFile};
use crate::config::ListenConfig;
use crate::edge::tls::{ClientAuth, Entry, MinVersion, ServerTls, ServerTlsSettings};
use crate::filter::FilterFile;
use serde_yaml::Value;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

pub(super) fn listeners(
    files: Vec<ListenFile>,
    base_dir: &Path,
    errors: &mut Errors,
) -> Vec<ListenConfig> {
    let mut out: Vec<ListenConfig> = Vec::new();
    for (i, l) in files.into_iter().enumerate() {
        let base = format!("listen[{i}]");
        let Some(address) = socket_addr(&l.address, &format!("{base}.address"), errors) else {
            continue;
        };
        if out.iter().any(|o| o.address == address) {
            push(
                errors,
                format!("{base}.address"),
                format!("{address} is listed twice"),
            );
            continue;
        }
        let h2c = l.h2c.unwrap_or(false);
        let tls = match l.tls {
            Some(tls) => {
                if h2c {
                    push(
                        errors,
                        format!("{base}.h2c"),
                        "h2c is cleartext HTTP/2 for plain listeners; a TLS listener offers HTTP/2 by ALPN (`http2`, on by default)",
                    );
                }
                let http2 = l.http2.unwrap_or(true);
                server_tls(tls, http2, base_dir, &format!("{base}.tls"), errors)
            }
            None => {
                if l.http2.is_some() {
                    push(
                        errors,
                        format!("{base}.http2"),
                        "http2 is negotiated by ALPN on TLS listeners; for cleartext HTTP/2 on this listener use `h2c: true`",
                    );
                }
                None
            }
        };
        out.push(ListenConfig {
            address,
            name: Arc::from(l.address.as_str()),
            tls,
            h2c,
        });
    }
    if out.is_empty() && !errors.iter().any(|(p, _)| p.starts_with("listen")) {
        push(
            errors,
            "listen",
            "at least one listener is required, e.g. `listen: [{ address: 127.0.0.1:8080 }]`",
        );
    }
    out
}

fn server_tls(
    tls: TlsFile,
    http2: bool,
    base_dir: &Path,
    base: &str,
    errors: &mut Errors,
) -> Option<Arc<ServerTls>> {
    let before = errors.len();
    let shorthand = tls.certs.is_none();
    let certs: Vec<(std::path::PathBuf, std::path::PathBuf)> = match (tls.certs, tls.cert, tls.key)
    {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            push(
                errors,
                base,
                "give either `certs:` (a list of {cert, key}) or the `cert:`/`key:` shorthand, not both",
            );
            Vec::new()
        }
        (Some(list), None, None) if list.is_empty() => {
            push(
                errors,
                format!("{base}.certs"),
                "at least one certificate is required",
            );
            Vec::new()
        }
        (Some(list), None, None) => list
            .into_iter()
            .map(|p| (base_dir.join(p.cert), base_dir.join(p.key)))
            .collect(),
        (None, Some(cert), Some(key)) => vec![(base_dir.join(cert), base_dir.join(key))],
        (None, Some(_), None) => {
            push(errors, base, "`cert` needs its `key`");
            Vec::new()
        }
        (None, None, Some(_)) => {
            push(errors, base, "`key` needs its `cert`");
            Vec::new()
        }
        (None, None, None) => {
            push(
                errors,
                base,
                "a TLS listener needs a certificate: `certs: [{ cert: FILE, key: FILE }]`",
            );
            Vec::new()
        }
    };
    let min_version = match tls.min_version {
        None => MinVersion::default(),
        Some(v) => match version_text(&v).as_deref() {
            Some("1.2") => MinVersion::Tls12,
            Some("1.3") => MinVersion::Tls13,
            _ => {
                push(
                    errors,
                    format!("{base}.min_version"),
                    "expected \"1.2\" or \"1.3\" (TLS below 1.2 is never offered)",
                );
                MinVersion::default()
            }
        },
    };
    if errors.len() > before {
        return None;
    }
    let settings = ServerTlsSettings {
        certs,
        min_version,
        client_auth: tls.client_auth.map(|c| ClientAuth {
            ca: base_dir.join(c.ca),
            required: c.required,
        }),
        http2,
    };
    match ServerTls::load(&settings, SystemTime::now()) {
        Ok(loaded) => Some(Arc::new(loaded)),
        Err((entry, message)) => {
            let path = match entry {
                Entry::Cert(_) if shorthand => format!("{base}.cert"),
                Entry::Cert(i) => format!("{base}.certs[{i}]"),
                Entry::ClientCa => format!("{base}.client_auth.ca"),
            };
            push(errors, path, message);
            None
        }
    }
}

fn version_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// An `mtls` filter can only ever pass with a listener that asks for client
/// certificates and a consumer known by one: without either, every request on
/// its routes would be refused, which is a mistake in the file, not a policy.
pub(super) fn check_mtls(
    listen: &[ListenConfig],
    consumers: &[crate::auth::consumers::Consumer],
    global: &[crate::config::FilterConfig],
    routes: &[crate::config::RouteConfig],
    errors: &mut Errors,
) {
    let is_mtls = |f: &crate::config::FilterConfig| matches!(f.config, FilterFile::Mtls(_));
    let first = global
        .iter()
        .position(is_mtls)
        .map(|i| format!("filters[{i}].mtls"))
        .or_else(|| {
            routes.iter().enumerate().find_map(|(r, route)| {
                let i = route.filters.iter().position(is_mtls)?;
                Some(format!("routes[{r}].filters[{i}].mtls"))
            })
        });
    let Some(path) = first else { return };
    let asks = listen.iter().any(|l| {
        l.tls
            .as_ref()
            .is_some_and(|t| t.settings.client_auth.is_some())
    });
    if !asks {
        push(
            errors,
            path.clone(),
            "no listener asks for client certificates: add `tls.client_auth: { ca: FILE }` to a TLS listener",
        );
    }
    if !consumers.iter().any(|c| c.client_cert.is_some()) {
        push(
            errors,
            path,
            "no consumer has a `client_cert`: add `client_cert: { subject: \"CN=...\" }` (or `san:`) to the consumers this route serves",
        );
    }
}
