//! Real TLS and HTTP/2 clients for the tests: curl (HTTP/1.1, HTTP/2 by ALPN or
//! prior knowledge, client certificates) and `openssl s_client` (protocol
//! versions, SNI, the certificate served).

use std::io::Write;
use std::process::{Command, Stdio};

/// What curl got: its exit code (0 = a response arrived), the status, the HTTP
/// version it spoke (`1.1`, `2`), the response headers and the body.
#[derive(Debug)]
pub struct Curl {
    pub exit: i32,
    pub status: u16,
    pub version: String,
    pub headers: String,
    pub body: String,
    pub stderr: String,
}

impl Curl {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// A response header's value (names compare without case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

const MARK: &str = "\n@@curl-result@@ ";

/// Runs curl with `args` (plus the flags that make its output readable here).
pub fn curl(args: &[&str]) -> Curl {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-D", "/dev/stderr"])
        .args(["-w", &format!("{MARK}%{{http_code}} %{{http_version}}")])
        .args(args)
        .output()
        .expect("run curl (scripts/test installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let (body, result) = stdout.rsplit_once(MARK).unwrap_or((&stdout, "000 0"));
    let (status, version) = result.split_once(' ').unwrap_or(("000", "0"));
    // -D to stderr: the last header block (after any 1xx) precedes curl's own messages.
    let headers = stderr
        .split("\r\n\r\n")
        .filter(|b| b.contains("HTTP/"))
        .last()
        .unwrap_or_default()
        .to_owned();
    Curl {
        exit: out.status.code().unwrap_or(-1),
        status: status.parse().unwrap_or(0),
        version: version.to_owned(),
        headers,
        body: body.to_owned(),
        stderr,
    }
}

/// `https://NAME:PORT/path` reached on 127.0.0.1 (SNI = NAME), trusting `ca`.
pub fn https(name: &str, port: u16, path: &str, ca: &std::path::Path) -> Vec<String> {
    vec![
        "--cacert".into(),
        ca.display().to_string(),
        "--resolve".into(),
        format!("{name}:{port}:127.0.0.1"),
        format!("https://{name}:{port}{path}"),
    ]
}

/// curl with owned arguments.
pub fn curl_args(args: &[String]) -> Curl {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    curl(&args)
}

/// What `openssl s_client` saw: whether the handshake completed, the protocol,
/// and the subject of the certificate the server sent.
#[derive(Debug)]
pub struct Handshake {
    pub ok: bool,
    pub protocol: Option<String>,
    pub subject: Option<String>,
    pub output: String,
}

/// A handshake with `openssl s_client` to 127.0.0.1:`port`, with extra flags
/// (e.g. `-tls1_2`, `-servername NAME`).
pub fn s_client(port: u16, flags: &[&str]) -> Handshake {
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(flags)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run openssl (scripts/test installs it)");
    // Close stdin at once: s_client ends after the handshake.
    child.stdin.take().unwrap().write_all(b"").unwrap();
    let out = child.wait_with_output().unwrap();
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |prefix: &str| {
        output
            .lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|v| v.trim().to_owned()))
    };
    // "New, TLSv1.3, Cipher is ...", or "New, (NONE), Cipher is (NONE)" when it failed.
    let protocol = output.lines().find_map(|l| {
        l.strip_prefix("New, ")
            .and_then(|r| r.split(',').next())
            .filter(|p| *p != "(NONE)")
            .map(str::to_owned)
    });
    Handshake {
        ok: out.status.success() && protocol.is_some(),
        protocol,
        subject: field("subject="),
        output,
    }
}
