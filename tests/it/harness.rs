//! Real processes on ephemeral loopback ports: the `fingate` binary, the
//! `services-mock` binary, a tiny HTTP/1.1 client over a raw socket. Everything
//! started here is killed when its handle drops.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub fn fingate_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_fingate"))
}

/// The services-mock binary next to fingate's, built once if missing.
pub fn mock_bin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let path = fingate_bin().with_file_name("services-mock");
            if !path.exists() {
                let status = Command::new(env!("CARGO"))
                    .args(["build", "-p", "services-mock"])
                    .status()
                    .expect("cargo build -p services-mock");
                assert!(status.success(), "building services-mock failed");
            }
            path
        })
        .clone()
}

/// A config file shipped in the repository, with the files it names relative to
/// its folder (`examples/schemas/...`) made absolute, so it can run from a test's
/// temporary folder.
pub fn shipped_config(name: &str) -> String {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    dev_cert();
    std::fs::read_to_string(repo.join(name))
        .unwrap()
        .replace(
            "json_schema: examples/",
            &format!("json_schema: {}/examples/", repo.display()),
        )
        // From the repository root (gateway.yaml) or from examples/.
        .replace("../certs/dev/", "certs/dev/")
        .replace("certs/dev/", &format!("{}/certs/dev/", repo.display()))
}

/// Makes the demo's development certificate (`scripts/dev-cert`) once per run:
/// the shipped configs name it.
pub fn dev_cert() {
    static MADE: OnceLock<()> = OnceLock::new();
    MADE.get_or_init(|| {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let status = Command::new(repo.join("scripts/dev-cert"))
            .status()
            .expect("run scripts/dev-cert");
        assert!(status.success(), "scripts/dev-cert failed");
    });
}

/// A free loopback port for a process the test starts.
///
/// Ports come from a range below Linux's ephemeral range (32768+), handed out by a
/// counter, so two tests of this run never get the same port and no outgoing
/// connection can be holding it; the start is spread by PID so parallel test runs
/// rarely meet. Each candidate is checked by binding it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let offset = (std::process::id() % 500) * 20;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (20_000 + (offset + n) % 12_700) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Polls `f` every 20 ms until it returns Some or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running services-mock process.
pub struct Mock {
    child: Child,
    pub addrs: HashMap<String, SocketAddr>,
}

impl Mock {
    /// Starts `services-mock <args>` and waits for `expect` LISTENING lines.
    pub fn start(args: &[&str], expect: usize) -> Mock {
        let mut child = Command::new(mock_bin())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn services-mock");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut addrs = HashMap::new();
        while addrs.len() < expect {
            let line = lines
                .next()
                .expect("services-mock exited before listening")
                .unwrap();
            let mut parts = line.split_whitespace();
            if parts.next() == Some("LISTENING") {
                let name = parts.next().unwrap().to_owned();
                let addr = parts.next().unwrap().parse().unwrap();
                addrs.insert(name, addr);
            }
        }
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Mock { child, addrs }
    }

    /// One service alone on an ephemeral port: `services-mock accounts --listen 127.0.0.1:0 --name NAME`.
    pub fn one(service: &str, name: &str, extra: &[&str]) -> Mock {
        let mut args = vec![service, "--listen", "127.0.0.1:0", "--name", name];
        args.extend_from_slice(extra);
        Mock::start(&args, 1)
    }

    pub fn addr(&self, name: &str) -> SocketAddr {
        *self
            .addrs
            .get(name)
            .unwrap_or_else(|| panic!("no service {name} in {:?}", self.addrs))
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Requests counted by an instance (excluding /health and /_mock/*).
    pub fn requests(addr: SocketAddr) -> u64 {
        let r = get(addr, "/_mock/stats");
        r.json()["requests"].as_u64().unwrap()
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running fingate process with its config in a temp dir.
pub struct Gateway {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub log: Arc<Mutex<String>>,
}

pub const ADMIN_KEY: &str = "test-admin-key-0123456789";

impl Gateway {
    /// Writes `yaml` (with `{LISTEN}`, `{ADMIN}` and `{ADMIN_KEY}` filled in) and starts
    /// `fingate run` on it; returns once `/healthz` answers.
    pub fn start(yaml: &str) -> Gateway {
        Self::start_with(yaml, &[])
    }

    /// Like [`Gateway::start`] with extra `fingate run` arguments (e.g. `--watch`).
    pub fn start_with_args(yaml: &str, args: &[&str]) -> Gateway {
        Self::start_full(yaml, &[], args)
    }

    pub fn start_with(yaml: &str, env: &[(&str, &str)]) -> Gateway {
        Self::start_full(yaml, env, &[])
    }

    /// Like [`Gateway::start`] with one more file beside the config (e.g. a schema).
    pub fn start_with_file(yaml: &str, name: &str, contents: &str) -> Gateway {
        Self::start_in(yaml, &[], &[], &[(name, contents)])
    }

    pub fn start_full(yaml: &str, env: &[(&str, &str)], args: &[&str]) -> Gateway {
        Self::start_in(yaml, env, args, &[])
    }

    /// Like [`Gateway::start`], listening on `addr` (a port the test chose
    /// before, e.g. named in another gateway's config).
    pub fn start_at(yaml: &str, addr: SocketAddr) -> Gateway {
        Self::start_on(yaml, Some(addr), &[], &[], &[])
    }

    fn start_in(
        yaml: &str,
        env: &[(&str, &str)],
        args: &[&str],
        files: &[(&str, &str)],
    ) -> Gateway {
        Self::start_on(yaml, None, env, args, files)
    }

    fn start_on(
        yaml: &str,
        addr: Option<SocketAddr>,
        env: &[(&str, &str)],
        args: &[&str],
        files: &[(&str, &str)],
    ) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        for (name, contents) in files {
            std::fs::write(dir.path().join(name), contents).unwrap();
        }
        let addr: SocketAddr =
            addr.unwrap_or_else(|| format!("127.0.0.1:{}", free_port()).parse().unwrap());
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let config = dir.path().join("gateway.yaml");
        std::fs::write(&config, fill(yaml, addr, admin)).unwrap();
        let mut gw = Gateway {
            child: None,
            addr,
            admin,
            dir,
            config,
            log: Arc::default(),
        };
        gw.spawn(env, args);
        gw
    }

    fn spawn(&mut self, env: &[(&str, &str)], args: &[&str]) {
        let mut cmd = Command::new(fingate_bin());
        cmd.args(["run", "-c"])
            .arg(&self.config)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn fingate");
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let log = self.log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut l = log.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
            });
        }
        self.child = Some(child);
        let admin = self.admin;
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "fingate exited with {status} during start-up:\n{}",
                    self.log()
                );
            }
            // Pingora starts the admin and proxy services side by side: ready means
            // both the admin probe answers and the public listener accepts.
            let admin_up =
                try_request(admin, "GET", "/healthz", &[], b"").is_ok_and(|r| r.status == 200);
            if admin_up && TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "fingate did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Rewrites the config file (placeholders filled as at start).
    pub fn write_config(&self, yaml: &str) {
        std::fs::write(&self.config, self.fill(yaml)).unwrap();
    }

    /// `yaml` with this gateway's placeholders filled in.
    pub fn fill(&self, yaml: &str) -> String {
        fill(yaml, self.addr, self.admin)
    }

    /// Waits for the process to exit by itself; its exit code, or None on timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    pub fn get(&self, path: &str) -> Response {
        get(self.addr, path)
    }

    /// An admin API call with the test key.
    pub fn admin(&self, method: &str, path: &str) -> Response {
        request(
            self.admin,
            method,
            path,
            &[("Authorization", &format!("Bearer {ADMIN_KEY}"))],
            b"",
        )
    }

    /// The access-log lines (as JSON) once the log holds at least `n` of them.
    pub fn access_lines(&self, n: usize) -> Vec<serde_json::Value> {
        wait_for(Duration::from_secs(5), "access lines", || {
            let lines: Vec<serde_json::Value> = self
                .log()
                .lines()
                .filter(|l| l.contains("\"target\":\"fingate::access\""))
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            (lines.len() >= n).then_some(lines)
        })
    }

    /// An admin API POST of a JSON body with the test key.
    pub fn admin_post(&self, path: &str, body: &serde_json::Value) -> Response {
        request(
            self.admin,
            "POST",
            path,
            &[
                ("Authorization", &format!("Bearer {ADMIN_KEY}")),
                ("Content-Type", "application/json"),
            ],
            body.to_string().as_bytes(),
        )
    }

    /// The value of one series in `/metrics`, e.g. `fingate_requests_total{route="a",method="GET",status="200"}`.
    pub fn metric(&self, series: &str) -> Option<f64> {
        let text = get(self.admin, "/metrics").body_text();
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn fill(yaml: &str, addr: SocketAddr, admin: SocketAddr) -> String {
    yaml.replace("{LISTEN}", &addr.to_string())
        .replace("{ADMIN}", &admin.to_string())
        .replace("{ADMIN_KEY}", ADMIN_KEY)
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body_text()))
    }
}

/// Sets a mock service's fault knobs (`POST /_mock/faults`), e.g. `{"latency_ms": 300}`.
pub fn set_faults(mock: SocketAddr, faults: &str) {
    let r = request(
        mock,
        "POST",
        "/_mock/faults",
        &[("Content-Type", "application/json")],
        faults.as_bytes(),
    );
    assert_eq!(r.status, 200, "setting faults {faults}: {}", r.body_text());
}

pub fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path, &[], b"")
}

/// Opens `n` connections to `addr` that stay open and silent, i.e. hold `n`
/// connection slots. The gateway's readiness probe may still hold a slot for a
/// moment after start-up: a connection refused then is seen closed, and all are
/// opened again.
pub fn hold_connections(addr: SocketAddr, n: usize, what: &str) -> Vec<TcpStream> {
    wait_for(Duration::from_secs(5), what, || {
        let held: Vec<TcpStream> = (0..n).map(|_| TcpStream::connect(addr).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(200));
        held.iter()
            .all(|c| {
                // Still open and silent: a read times out (a refusal would answer 503 and close).
                c.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
                let mut byte = [0u8; 1];
                matches!((&*c).read(&mut byte), Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut))
            })
            .then_some(held)
    })
}

/// Waits (up to 5 s) until `GET path` on `addr` answers 200, e.g. for a freed
/// connection slot.
pub fn wait_for_ok(addr: SocketAddr, path: &str, what: &str) -> Response {
    wait_for(Duration::from_secs(5), what, || {
        try_request(addr, "GET", path, &[], b"")
            .ok()
            .filter(|r| r.status == 200)
    })
}

pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    try_request(addr, method, path, headers, body)
        .unwrap_or_else(|e| panic!("{method} {addr}{path}: {e}"))
}

/// One HTTP/1.1 exchange on a fresh connection (`Connection: close`).
pub fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    exchange(s, addr, method, path, headers, body)
}

/// [`request`] from the loopback address `from` (any 127.x.y.z), so one test can
/// be several clients as the gateway sees them.
pub fn request_from(
    from: std::net::IpAddr,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let connect = || -> std::io::Result<TcpStream> {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        socket.bind(&SocketAddr::new(from, 0).into())?;
        socket.connect_timeout(&addr.into(), Duration::from_secs(5))?;
        Ok(socket.into())
    };
    connect()
        .and_then(|s| exchange(s, addr, method, path, headers, body))
        .unwrap_or_else(|e| panic!("{method} {addr}{path} from {from}: {e}"))
}

fn exchange(
    mut s: TcpStream,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: {addr}\r\n"));
    }
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse_response(&raw, method == "HEAD")
}

pub fn parse_response(raw: &[u8], head_only: bool) -> std::io::Result<Response> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned());
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| bad("non-UTF-8 head"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or_else(|| bad("empty"))?;
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(status_line))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        })
        .collect();
    let rest = &raw[end + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if head_only {
        Vec::new()
    } else if chunked {
        dechunk(rest).ok_or_else(|| bad("bad chunked body"))?
    } else {
        rest.to_vec()
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// Runs `fingate <args>` to completion: (exit code, stdout, stderr).
pub fn fingate(args: &[&str], dir: &Path) -> (i32, String, String) {
    fingate_with_stdin(args, dir, "")
}

/// Like [`fingate`], with `stdin` piped in (passwords are read from stdin only).
pub fn fingate_with_stdin(args: &[&str], dir: &Path, stdin: &str) -> (i32, String, String) {
    use std::io::Write;
    let mut child = Command::new(fingate_bin())
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command that exits without reading closes the pipe: not an error here.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
