//! Issue 14: no published secret in production. `gateway.yaml` and the examples run
//! out of the box on `${VAR:-default}` secrets written in the repository; outside
//! `--demo`, fingate refuses to serve (or reload) with them.

use crate::harness::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SECRET_VARS: [&str; 2] = ["FINGATE_JWT_SECRET", "FINGATE_ADMIN_KEY"];
const OWN_JWT_SECRET: &str = "own-jwt-secret-for-this-test-0123456789abcdef";
const OWN_ADMIN_KEY: &str = "own-admin-key-for-this-test-0123";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn shipped(name: &str) -> String {
    shipped_config(name)
}

/// The default a shipped file gives `${var:-default}`.
fn shipped_default(text: &str, var: &str) -> String {
    let start = text.find(&format!("${{{var}:-")).unwrap() + var.len() + 4;
    let len = text[start..].find('}').unwrap();
    text[start..start + len].to_owned()
}

/// `file:line:col` of the key on the first line containing `needle`.
fn position_of(file: &str, text: &str, needle: &str, key: &str) -> String {
    let (i, line) = text
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains(needle))
        .unwrap();
    format!("{file}:{}:{}", i + 1, line.find(key).unwrap() + 1)
}

/// gateway.yaml on this test's ports (no service behind it: none is needed).
fn demo_yaml() -> String {
    shipped("gateway.yaml")
        .replace("127.0.0.1:8080", "{LISTEN}")
        .replace("127.0.0.1:9901", "{ADMIN}")
}

/// A token as anyone who read the repository can make one.
fn forged_token(secret: &str) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("main".into());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "iss": "fingate", "aud": "fintech-api", "sub": "mallory",
        "scope": "accounts:read payments:write", "iat": now, "exp": now + 600,
    });
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// `fingate <args>` in `dir` with the secret variables unset.
fn fingate_unset(args: &[&str], dir: &Path) -> (i32, String, String) {
    let mut cmd = Command::new(fingate_bin());
    cmd.args(args).current_dir(dir);
    for var in SECRET_VARS {
        cmd.env_remove(var);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn run_refuses_to_serve_on_the_published_demo_secrets() {
    let text = shipped("gateway.yaml");
    let demo_secret = shipped_default(&text, "FINGATE_JWT_SECRET");
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let admin = format!("127.0.0.1:{}", free_port());
    let yaml = demo_yaml()
        .replace("{LISTEN}", &listen)
        .replace("{ADMIN}", &admin);
    std::fs::write(dir.path().join("gateway.yaml"), yaml).unwrap();

    let mut cmd = Command::new(fingate_bin());
    cmd.args(["run", "-c", "gateway.yaml"])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for var in SECRET_VARS {
        cmd.env_remove(var);
    }
    let mut child = cmd.spawn().unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::net::TcpStream::connect(&listen).is_ok() {
            // It serves: the attack of the finding, a token made from the repository.
            let r = request(
                listen.parse().unwrap(),
                "GET",
                "/api/accounts/ACC-1001/statement",
                &[(
                    "Authorization",
                    &format!("Bearer {}", forged_token(&demo_secret)),
                )],
                b"",
            );
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "fingate run served on the repository's demo secrets; a token forged with the \
                 published secret was answered {} (401 would have refused it)",
                r.status
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "neither exited nor served"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    let admin_at = position_of("gateway.yaml", &text, "api_key:", "api_key");
    let secret_at = position_of("gateway.yaml", &text, "secret: ${FINGATE_JWT", "secret");
    let line = |at: &str, path: &str| {
        err.lines()
            .find(|l| l.starts_with(&format!("{at}: {path}: ")))
            .unwrap_or_else(|| panic!("no {at}: {path} error in:\n{err}"))
            .to_owned()
    };
    let admin_line = line(&admin_at, "admin.api_key");
    assert!(
        admin_line.contains("set FINGATE_ADMIN_KEY") && admin_line.contains("--demo"),
        "{admin_line}"
    );
    let secret_line = line(&secret_at, "auth.keys[0].secret");
    assert!(
        secret_line.contains("mint tokens") && secret_line.contains("set FINGATE_JWT_SECRET"),
        "{secret_line}"
    );
}

#[test]
fn a_demo_value_set_through_the_environment_is_refused_too() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("g.yaml"),
        "listen: [{ address: '127.0.0.1:1' }]\nadmin: { address: '127.0.0.1:2', api_key: '${FINGATE_ADMIN_KEY}' }\nupstreams:\n  a: { targets: ['127.0.0.1:3'] }\nroutes:\n  - { name: r, match: { prefix: /r }, upstream: a }\n",
    )
    .unwrap();
    let demo_admin = shipped_default(&shipped("gateway.yaml"), "FINGATE_ADMIN_KEY");
    let out = Command::new(fingate_bin())
        .args(["validate", "-c", "g.yaml"])
        .current_dir(dir.path())
        .env("FINGATE_ADMIN_KEY", &demo_admin)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.starts_with("g.yaml:2:"), "{err}");
    assert!(err.contains("admin.api_key"), "{err}");
}

#[test]
fn with_demo_it_serves_and_with_own_secrets_it_needs_no_flag() {
    let text = shipped("gateway.yaml");
    let demo_secret = shipped_default(&text, "FINGATE_JWT_SECRET");
    let demo_admin = shipped_default(&text, "FINGATE_ADMIN_KEY");
    let demo_env = [
        ("FINGATE_JWT_SECRET", demo_secret.as_str()),
        ("FINGATE_ADMIN_KEY", demo_admin.as_str()),
    ];
    let demo = Gateway::start_full(&demo_yaml(), &demo_env, &["--demo"]);
    let log = wait_for(Duration::from_secs(5), "the --demo warning", || {
        let log = demo.log();
        log.contains("never expose this gateway").then_some(log)
    });
    assert!(
        log.contains("auth.keys[0].secret") && log.contains("admin.api_key"),
        "{log}"
    );
    let forged = format!("Bearer {}", forged_token(&demo_secret));
    let r = request(
        demo.addr,
        "GET",
        "/api/accounts/ACC-1001/statement",
        &[("Authorization", &forged)],
        b"",
    );
    assert_ne!(
        r.status,
        401,
        "a demo accepts the demo secret: {}",
        r.body_text()
    );
    drop(demo);

    let own = Gateway::start_with(
        &demo_yaml(),
        &[
            ("FINGATE_JWT_SECRET", OWN_JWT_SECRET),
            ("FINGATE_ADMIN_KEY", OWN_ADMIN_KEY),
        ],
    );
    let r = request(
        own.addr,
        "GET",
        "/api/accounts/ACC-1001/statement",
        &[("Authorization", &forged)],
        b"",
    );
    assert_eq!(r.status, 401, "{}", r.body_text());
    let demo_key = format!("Bearer {demo_admin}");
    let r = request(
        own.admin,
        "GET",
        "/admin/routes",
        &[("Authorization", &demo_key)],
        b"",
    );
    assert_eq!(r.status, 401);
    let own_key = format!("Bearer {OWN_ADMIN_KEY}");
    let r = request(
        own.admin,
        "GET",
        "/admin/routes",
        &[("Authorization", &own_key)],
        b"",
    );
    assert_eq!(r.status, 200);
}

/// What `.ci/run` checks: every shipped config is valid with its secrets from the
/// environment, and as a demo; without either, each demo secret is an error at its
/// position.
#[test]
fn validate_judges_every_shipped_config() {
    let mut files = vec!["gateway.yaml".to_owned()];
    for entry in std::fs::read_dir(repo().join("examples")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".yaml") {
            files.push(format!("examples/{name}"));
        }
    }
    let mut refused = 0;
    for file in &files {
        let text = shipped(file);
        let (code, out, err) = fingate_unset(&["validate", "-c", file], repo());
        let demo_fields = ["api_key: ${", "secret: ${"]
            .iter()
            .filter(|needle| text.contains(**needle) && text.contains(":-"))
            .count();
        if demo_fields == 0 {
            assert_eq!(code, 0, "{file}: {out}{err}");
            continue;
        }
        refused += 1;
        assert_eq!(code, 1, "{file} accepted without --demo: {out}");
        let errors: Vec<&str> = err
            .lines()
            .filter(|l| l.starts_with(file.as_str()))
            .collect();
        assert_eq!(errors.len(), demo_fields, "{file}: {err}");
        for e in errors {
            assert!(
                e.contains("demo value published") && e.contains("--demo"),
                "{e}"
            );
            // file:line:col: path: message
            let mut parts = e.splitn(4, ':');
            let (_, line, col) = (parts.next(), parts.next().unwrap(), parts.next().unwrap());
            assert!(
                line.parse::<u32>().is_ok() && col.parse::<u32>().is_ok(),
                "{e}"
            );
        }
        let (code, _, err) = fingate_unset(&["validate", "--demo", "-c", file], repo());
        assert_eq!(code, 0, "{file} --demo: {err}");
        let out = Command::new(fingate_bin())
            .args(["validate", "-c", file])
            .current_dir(repo())
            .env("FINGATE_JWT_SECRET", OWN_JWT_SECRET)
            .env("FINGATE_ADMIN_KEY", OWN_ADMIN_KEY)
            .output()
            .unwrap();
        assert!(out.status.success(), "{file} with own secrets: {out:?}");
    }
    assert!(refused >= 3, "{files:?}");
}

/// `fingate token` signs with whatever the file holds, and says when that is a
/// demo secret; it serves nothing, so it is no error.
#[test]
fn token_notes_a_demo_signing_secret() {
    let (code, out, err) = fingate_unset(&["token", "--sub", "ops", "-c", "gateway.yaml"], repo());
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim().split('.').count(), 3, "{out}");
    assert!(
        err.contains("auth.keys[0].secret") && err.contains("--demo"),
        "{err}"
    );
}

#[test]
fn a_reload_cannot_bring_in_a_demo_secret() {
    let demo_secret = shipped_default(&shipped("gateway.yaml"), "FINGATE_JWT_SECRET");
    let m = Mock::one("accounts", "a", &[]);
    let config = |secret: &str| {
        format!(
            "listen: [{{ address: '{{LISTEN}}' }}]\nadmin: {{ address: '{{ADMIN}}', api_key: '{{ADMIN_KEY}}' }}\nauth:\n  issuer: fingate\n  audience: fintech-api\n  keys: [ {{ id: main, algorithm: HS256, secret: '{secret}', sign: true }} ]\nupstreams:\n  a: {{ targets: [{}] }}\nroutes:\n  - {{ name: echo, match: {{ prefix: /_mock/echo }}, upstream: a, filters: [ {{ jwt: {{}} }} ] }}\n",
            m.addr("a")
        )
    };
    let gw = Gateway::start(&config(OWN_JWT_SECRET));
    let forged = format!("Bearer {}", forged_token(&demo_secret));
    let call = |gw: &Gateway| {
        request(
            gw.addr,
            "GET",
            "/_mock/echo",
            &[("Authorization", &forged)],
            b"",
        )
        .status
    };
    assert_eq!(call(&gw), 401);
    gw.write_config(&config(&demo_secret));
    let r = gw.admin("POST", "/admin/reload");
    assert_eq!(r.status, 400, "{}", r.body_text());
    let errors = r.json()["errors"].to_string();
    assert!(
        errors.contains("auth.keys[0].secret") && errors.contains("--demo"),
        "{errors}"
    );
    assert_eq!(call(&gw), 401, "the running configuration stays");
}
