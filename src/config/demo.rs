//! The demo secrets this repository publishes, and the refusal to serve with them.
//!
//! `gateway.yaml` and `examples/*.yaml` run out of the box: their JWT secret and
//! admin key fall back to `${VAR:-default}` values written in the file. Anyone who
//! reads the repository knows those values, so a gateway left on them (the
//! variable unset) lets anyone mint tokens or drive the admin API. Outside a demo
//! (`--demo`), a secret equal to one of them is a configuration error.

use serde_yaml::Value;

/// Every secret value shipped in this repository's configs, whatever the file.
/// A unit test reads `gateway.yaml` and `examples/*.yaml` and fails when one of
/// their secrets is missing here.
pub const DEMO_SECRETS: &[&str] = &[
    // gateway.yaml: auth.keys[0].secret
    "demo-jwt-secret-change-me-0123456789abcdef",
    // gateway.yaml: admin.api_key
    "demo-admin-key-change-me",
    // examples/balancing.yaml, examples/redis-store.yaml: admin.api_key
    "example-admin-key-change-me",
];

/// Whether the demo secrets may be used (`fingate run --demo`, `validate --demo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Secrets {
    /// A demo secret is an error.
    #[default]
    Production,
    /// Demo secrets are accepted (and reported as warnings).
    Demo,
}

/// A secret field of the file: its path and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretField {
    pub path: String,
    pub text: String,
}

/// The secrets of a config document: `admin.api_key` and `auth.keys[i].secret`.
/// Called on the document as written (to learn which variable a value comes from)
/// and after `${ENV}` substitution (to see the value in force).
pub fn secret_fields(root: &Value) -> Vec<SecretField> {
    let mut out = Vec::new();
    let text = |v: &Value| v.as_str().map(str::to_owned);
    if let Some(key) = root
        .get("admin")
        .and_then(|a| a.get("api_key"))
        .and_then(text)
    {
        out.push(SecretField {
            path: "admin.api_key".into(),
            text: key,
        });
    }
    let keys = root.get("auth").and_then(|a| a.get("keys"));
    if let Some(Value::Sequence(keys)) = keys {
        for (i, k) in keys.iter().enumerate() {
            if let Some(secret) = k.get("secret").and_then(text) {
                out.push(SecretField {
                    path: format!("auth.keys[{i}].secret"),
                    text: secret,
                });
            }
        }
    }
    out
}

/// The variable a value as written reads first (`${NAME}` or `${NAME:-...}`).
fn variable(written: &str) -> Option<&str> {
    let start = written.find("${")? + 2;
    let rest = written.get(start..)?;
    let end = rest.find(['}', ':'])?;
    rest.get(..end).filter(|name| !name.is_empty())
}

/// (path, message) for every secret in force that is a published demo value.
/// `written` are the fields before substitution, `resolved` after.
pub fn published(written: &[SecretField], resolved: &[SecretField]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for field in resolved {
        if !DEMO_SECRETS.contains(&field.text.as_str()) {
            continue;
        }
        let (what, conventional) = if field.path.starts_with("admin.") {
            (
                "anyone who reads it can use the admin API",
                "FINGATE_ADMIN_KEY",
            )
        } else {
            ("anyone who reads it can mint tokens", "FINGATE_JWT_SECRET")
        };
        let source = written
            .iter()
            .find(|w| w.path == field.path)
            .and_then(|w| variable(&w.text));
        let fix = match source {
            Some(name) => format!(
                "set {name} to your own secret (e.g. `export {name}=$(openssl rand -base64 48)`)"
            ),
            None => format!(
                "write your own secret here, best from the environment (`${{{conventional}}}`)"
            ),
        };
        out.push((
            field.path.clone(),
            format!(
                "the demo value published in the fingate repository, so {what}; {fix}, or pass --demo to run the demo"
            ),
        ));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn fields(yaml: &str) -> Vec<SecretField> {
        secret_fields(&serde_yaml::from_str(yaml).unwrap())
    }

    #[test]
    fn finds_the_secret_fields() {
        let f = fields(
            "admin: { api_key: a }\nauth:\n  keys:\n    - { id: x, secret: s }\n    - { id: y, public_key_file: p }\n    - { id: z, secret: t }\n",
        );
        let paths: Vec<_> = f.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "admin.api_key",
                "auth.keys[0].secret",
                "auth.keys[2].secret"
            ]
        );
        assert!(fields("listen: []\n").is_empty());
    }

    #[test]
    fn names_the_variable_to_set() {
        let written = fields("admin: { api_key: '${FINGATE_ADMIN_KEY:-demo-admin-key-change-me}' }\nauth: { keys: [ { secret: demo-jwt-secret-change-me-0123456789abcdef } ] }\n");
        let resolved = fields("admin: { api_key: demo-admin-key-change-me }\nauth: { keys: [ { secret: demo-jwt-secret-change-me-0123456789abcdef } ] }\n");
        let found = published(&written, &resolved);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].0, "admin.api_key");
        assert!(found[0]
            .1
            .contains("set FINGATE_ADMIN_KEY to your own secret"));
        assert!(found[0].1.contains("--demo"));
        assert_eq!(found[1].0, "auth.keys[0].secret");
        assert!(found[1].1.contains("mint tokens"));
        assert!(found[1].1.contains("`${FINGATE_JWT_SECRET}`"));
        // Not demo values: nothing to say.
        let own = fields("admin: { api_key: my-own-long-admin-key }\n");
        assert!(published(&written, &own).is_empty());
        assert_eq!(variable("${A_B}"), Some("A_B"));
        assert_eq!(variable("x${A:-d}"), Some("A"));
        assert_eq!(variable("plain"), None);
    }

    /// Every secret the repository's configs ship (a literal, or the default of
    /// `${VAR:-default}`) is in [`DEMO_SECRETS`].
    #[test]
    fn the_list_holds_every_secret_the_repository_ships() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = vec![root.join("gateway.yaml")];
        for entry in std::fs::read_dir(root.join("examples")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(path);
            }
        }
        let mut seen = 0;
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap();
            for field in secret_fields(&serde_yaml::from_str(&text).unwrap()) {
                // What the field is when no variable is set.
                let shipped = crate::config::interpolate::expand(&field.text, &|_| None);
                let Ok(shipped) = shipped else {
                    continue; // `${VAR}` without a default: nothing is shipped
                };
                assert!(
                    DEMO_SECRETS.contains(&shipped.as_str()),
                    "{}: {} ships {shipped:?}, which is not in DEMO_SECRETS",
                    file.display(),
                    field.path
                );
                seen += 1;
            }
        }
        assert!(seen >= 4, "only {seen} shipped secrets found in {files:?}");
    }
}
