//! Drives the real binary the way gateway integration tests will: start on
//! ephemeral ports, read the LISTENING lines, call, then SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_services-mock");

fn spawn(args: &[&str], env: &[(&str, &str)]) -> (Child, Vec<(String, String)>, usize) {
    let mut child = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let expected = if args.first() == Some(&"all") { 4 } else { 1 };
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut found = Vec::new();
    for _ in 0..expected {
        let line = lines.next().unwrap().unwrap();
        let parts: Vec<&str> = line.split(' ').collect();
        assert_eq!(parts.len(), 3, "{line}");
        assert_eq!(parts[0], "LISTENING", "{line}");
        found.push((parts[1].to_string(), parts[2].to_string()));
    }
    (child, found, expected)
}

fn get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: mock\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split(' ').nth(1).unwrap().parse().unwrap();
    (status, out)
}

fn terminate(mut child: Child) -> i32 {
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    child.wait().unwrap().code().unwrap_or(-1)
}

#[test]
fn all_announces_every_instance_and_exits_cleanly() {
    let zero = "127.0.0.1:0";
    let (child, found, n) = spawn(
        &[
            "all",
            "--accounts-1",
            zero,
            "--accounts-2",
            zero,
            "--payments",
            zero,
            "--loans",
            zero,
        ],
        &[],
    );
    assert_eq!(n, 4);
    let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["accounts-1", "accounts-2", "payments", "loans"]);
    for (name, addr) in &found {
        assert!(!addr.ends_with(":0"), "{addr}");
        let (status, raw) = get(addr, "/health");
        assert_eq!(status, 200);
        assert!(
            raw.to_ascii_lowercase()
                .contains(&format!("x-served-by: {name}")),
            "{raw}"
        );
    }
    assert_eq!(terminate(child), 0);
}

#[test]
fn single_service_with_startup_faults_from_flags_and_env() {
    let (child, found, _) = spawn(
        &[
            "accounts",
            "--listen",
            "127.0.0.1:0",
            "--name",
            "acc-x",
            "--force-status",
            "503",
        ],
        &[("MOCK_HEALTH_STATUS", "500")],
    );
    assert_eq!(found[0].0, "acc-x");
    let addr = &found[0].1;
    assert_eq!(get(addr, "/accounts/ACC-1001").0, 503);
    assert_eq!(get(addr, "/health").0, 500);
    let (_, faults) = get(addr, "/_mock/faults");
    assert!(faults.contains(r#""force_status":503"#), "{faults}");
    assert_eq!(terminate(child), 0);
}

#[test]
fn refuses_non_loopback_with_exit_2() {
    let status = Command::new(BIN)
        .args(["loans", "--listen", "0.0.0.0:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(status.status.code(), Some(2));
    assert!(status.stdout.is_empty(), "nothing may be announced");
    assert!(String::from_utf8_lossy(&status.stderr).contains("non-loopback"));
}
