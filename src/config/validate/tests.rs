//! Config validation as a table: a YAML snippet in, the exact
//! `file:line:col: path: message` lines `fingate validate` prints out.
//!
//! Each snippet is the start of the file, so its line numbers are the file's;
//! [`config`] appends a minimal `listen`, `upstreams` (one group `svc`) and `routes`
//! (one route `r`) for each of those sections the snippet does not write itself.
//! Routes, filters, auth and consumers are in `tests_routes.rs`.

use crate::config::demo::Secrets;
use crate::config::parse;
use std::path::Path;

/// A case: what it checks, the snippet, and every error line in order (none = valid).
pub(super) type Case = (&'static str, &'static str, &'static [&'static str]);

const FILE: &str = "gateway.yaml";

/// A valid argon2id hash (from gateway.yaml), as `${FG_HASH}`.
const HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$MPROSEfPoKhKp2PG+szU5A$Zd0v22MBZD9KB2LSc7XvO/2QiJg8mugt6xYtmjCgSRY";

/// A 32-byte HMAC secret (the shortest accepted).
const SECRET: &str = "0123456789abcdef0123456789abcdef";

const DEFAULTS: [(&str, &str); 3] = [
    ("listen", "listen: [{ address: 127.0.0.1:8080 }]\n"),
    (
        "upstreams",
        "upstreams:\n  svc: { targets: [127.0.0.1:9101] }\n",
    ),
    (
        "routes",
        "routes:\n  - { name: r, match: { prefix: /r }, upstream: svc }\n",
    ),
];

/// The snippet, then the default sections it does not write.
pub(super) fn config(snippet: &str) -> String {
    let mut yaml = snippet.to_owned();
    for (key, section) in DEFAULTS {
        let written = snippet
            .lines()
            .any(|l| l.strip_prefix(key).is_some_and(|r| r.starts_with(':')));
        if !written {
            yaml.push_str(section);
        }
    }
    yaml
}

/// The environment the cases see: `${KEYS}` is a folder holding test key files.
fn env<'a>(keys: &'a Path) -> impl Fn(&str) -> Option<String> + 'a {
    move |name| match name {
        "KEYS" => Some(keys.display().to_string()),
        "FG_SECRET" => Some(SECRET.to_owned()),
        "FG_ADMIN" => Some("127.0.0.1:9999".to_owned()),
        "FG_EMPTY" => Some(String::new()),
        "FG_HASH" => Some(HASH.to_owned()),
        _ => None,
    }
}

/// A folder with an Ed25519 key pair (PKCS#8 / SPKI PEM) and a file that is not PEM.
fn key_files() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    // SubjectPublicKeyInfo for Ed25519: a fixed 12-byte header, then the key.
    let mut spki = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    spki.extend_from_slice(ring::signature::KeyPair::public_key(&pair).as_ref());
    let write_pem = |name: &str, tag: &str, der: &[u8]| {
        let text = pem::encode(&pem::Pem::new(tag, der.to_vec()));
        std::fs::write(dir.path().join(name), text).unwrap();
    };
    write_pem("ed25519.pem", "PRIVATE KEY", pkcs8.as_ref());
    write_pem("ed25519.pub.pem", "PUBLIC KEY", &spki);
    std::fs::write(dir.path().join("garbage.pem"), "not a key\n").unwrap();
    super::tests_tls::write_tls_files(dir.path());
    dir
}

/// Runs every case and reports all mismatches at once, with the actual lines.
pub(super) fn check(cases: &[Case]) {
    check_files(cases, config);
}

/// [`check`], with `file` making the whole file from each snippet.
fn check_files(cases: &[Case], file: fn(&str) -> String) {
    check_in(cases, file, key_files().path());
}

/// [`check_files`], with `${KEYS}` naming the folder `keys`.
pub(super) fn check_in(cases: &[Case], file: fn(&str) -> String, keys: &Path) {
    let mut failures = Vec::new();
    for (name, snippet, expected) in cases {
        let text = file(snippet);
        let actual: Vec<String> =
            match parse(&text, Path::new(FILE), &env(keys), Secrets::Production) {
                Ok(_) => Vec::new(),
                Err(errors) => errors
                    .0
                    .iter()
                    .map(|e| e.to_string().replace(&keys.display().to_string(), "$KEYS"))
                    .collect(),
            };
        if actual != *expected {
            failures.push(format!(
                "case {name:?}\n--- yaml:\n{text}--- expected:\n{expected:#?}\n--- actual:\n{actual:#?}\n"
            ));
        }
    }
    let mut names: Vec<_> = cases.iter().map(|c| c.0).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), cases.len(), "case names must be unique");
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Whole files, without the default sections.
const FILES: &[Case] = &[
    ("empty file", "", &[
        "gateway.yaml: the file is empty: it needs at least `listen`, `upstreams` and `routes`",
    ]),
    ("only a comment", "# nothing yet\n", &[
        "gateway.yaml: the file is empty: it needs at least `listen`, `upstreams` and `routes`",
    ]),
    ("top level is a list", "- listen\n", &[
        "gateway.yaml: expected a mapping of top-level keys",
    ]),
    ("tab indentation", "listen:\n\t- address: 127.0.0.1:8080\n", &[
        "gateway.yaml:2:2: tabs disallowed within this context (block indentation)",
    ]),
    ("duplicate key", "listen: []\nlisten: []\n", &[
        "gateway.yaml:2:1: listen: duplicate key (first at line 1, column 1)",
    ]),
    ("duplicate nested key", "listen: [{ address: 127.0.0.1:8080 }]\nupstreams:\n  svc: { targets: [127.0.0.1:9101] }\nroutes:\n  - name: r\n    match: { prefix: /r }\n    upstream: svc\n    name: s\n", &[
        "gateway.yaml:8:5: routes[0].name: duplicate key (first at line 5, column 5)",
    ]),
];

const CASES: &[Case] = &[
    // --- the file as a whole
    ("minimal config is valid", "", &[]),
    ("unknown top-level key", "listn: [{ address: 127.0.0.1:8080 }]\n", &[
        "gateway.yaml:1:1: listn: unknown key \"listn\" (expected one of: listen, admin, threads, store, upstreams, filters, routes, limits, trusted_proxies, shutdown, cache, auth, consumers, logging, tracing)",
    ]),
    ("wrong type for a section", "threads: many\n", &[
        "gateway.yaml:1:1: threads: invalid type: string \"many\", expected a whole number 0 or more",
    ]),
    ("yaml syntax error", "listen: [{ address: 127.0.0.1:8080 }\n", &[
        "gateway.yaml:2:1: invalid indentation in flow construct",
    ]),
    ("required sections missing", "listen: []\nupstreams:\nroutes:\n", &[
        "gateway.yaml:1:1: listen: at least one listener is required, e.g. `listen: [{ address: 127.0.0.1:8080 }]`",
        "gateway.yaml:2:1: upstreams: at least one upstream group is required",
        "gateway.yaml:3:1: routes: at least one route is required",
    ]),
    ("routes not a list", "routes: everything\n", &[
        "gateway.yaml:1:1: routes: expected a list of routes",
    ]),
    ("routes empty list", "routes: []\n", &[
        "gateway.yaml:1:1: routes: at least one route is required",
    ]),
    // --- values: durations and sizes
    ("duration without unit", "store: { timeout: 50 }\n", &[
        "gateway.yaml:1:10: store.timeout: 50 has no unit: write it as a duration with a unit, e.g. \"250ms\", \"30s\", \"5m\", \"1h\"",
    ]),
    ("duration with unknown unit", "store: { timeout: 5sec }\n", &[
        "gateway.yaml:1:10: store.timeout: invalid duration \"5sec\": expected a whole number followed by a unit (ms, s, m, h, d)",
    ]),
    ("duration fraction", "shutdown: { grace_period: 1.5s }\n", &[
        "gateway.yaml:1:13: shutdown.grace_period: invalid duration \"1.5s\": expected a whole number followed by a unit (ms, s, m, h, d)",
    ]),
    ("duration zero", "store: { timeout: 0ms }\n", &[
        "gateway.yaml:1:10: store.timeout: must be greater than 0",
    ]),
    ("duration too long", "shutdown: { grace_period: 2h }\n", &[
        "gateway.yaml:1:13: shutdown.grace_period: use at most 1h",
    ]),
    ("size without unit", "limits: { max_body: 1024 }\n", &[
        "gateway.yaml:1:11: limits.max_body: 1024 has no unit: write it as a size with a unit, e.g. \"512B\", \"64KiB\", \"1MiB\"",
    ]),
    ("size lowercase unit", "limits: { max_body: 1mb }\n", &[
        "gateway.yaml:1:11: limits.max_body: invalid size \"1mb\": expected a whole number followed by a unit (B, KiB, MiB, GiB, KB, MB, GB)",
    ]),
    ("size too small", "cache: { max_size: 1KiB }\n", &[
        "gateway.yaml:1:10: cache.max_size: 1024 bytes is too small: use at least 64KiB",
    ]),
    // --- ${ENV}
    ("env unset without default", "admin: { address: 127.0.0.1:9901, api_key: '${FG_UNSET}' }\n", &[
        "gateway.yaml:1:35: admin.api_key: environment variable FG_UNSET is not set (set it, or write ${FG_UNSET:-default})",
    ]),
    ("env default used", "store: { timeout: '${FG_UNSET:-75ms}' }\n", &[]),
    ("env value used", "admin: { address: '${FG_ADMIN}' }\n", &[]),
    ("env empty value", "admin: { address: '${FG_EMPTY}' }\n", &[
        "gateway.yaml:1:10: admin.address: invalid address \"\": expected IP:port, e.g. 127.0.0.1:9101 (host names are not resolved)",
    ]),
    ("env bad name", "admin: { address: '${1X}' }\n", &[
        "gateway.yaml:1:10: admin.address: invalid variable name \"1X\" in \"${1X}\": use letters, digits and _ (not starting with a digit)",
    ]),
    ("env unterminated", "admin: { address: '${FG_ADMIN' }\n", &[
        "gateway.yaml:1:10: admin.address: unterminated \"${\" in \"${FG_ADMIN\": expected ${NAME} or ${NAME:-default}",
    ]),
    ("env literal", "admin: { address: 127.0.0.1:9901, api_key: 'x$${FG_ADMIN}xxxxxxxxxxxx' }\n", &[]),
    ("env result is always a string", "threads: '${FG_THREADS:-4}'\n", &[
        "gateway.yaml:1:1: threads: invalid type: string \"4\", expected a whole number 0 or more",
    ]),
    ("env errors everywhere", "admin: { address: '${A_UNSET}' }\nstore: { backend: redis, url: '${B_UNSET}' }\n", &[
        "gateway.yaml:1:10: admin.address: environment variable A_UNSET is not set (set it, or write ${A_UNSET:-default})",
        "gateway.yaml:2:26: store.url: environment variable B_UNSET is not set (set it, or write ${B_UNSET:-default})",
    ]),
    // --- listen, admin, threads
    ("listen host name", "listen: [{ address: 'localhost:8080' }]\n", &[
        "gateway.yaml:1:12: listen[0].address: invalid address \"localhost:8080\": expected IP:port, e.g. 127.0.0.1:9101 (host names are not resolved)",
    ]),
    ("listen twice", "listen:\n  - address: 127.0.0.1:8080\n  - address: 127.0.0.1:8080\n", &[
        "gateway.yaml:3:5: listen[1].address: 127.0.0.1:8080 is listed twice",
    ]),
    ("listen unknown key", "listen: [{ address: 127.0.0.1:8080, port: 80 }]\n", &[
        "gateway.yaml:1:37: listen[0].port: unknown field `port`, expected one of `address`, `tls`, `http2`, `h2c`",
    ]),
    ("listen tls without key", "listen: [{ address: 127.0.0.1:8443, tls: { cert: c.pem } }]\n", &[
        "gateway.yaml:1:37: listen[0].tls: `cert` needs its `key`",
    ]),
    ("admin same as listen", "admin: { address: 127.0.0.1:8080 }\n", &[
        "gateway.yaml:1:10: admin.address: 127.0.0.1:8080 is also a public listener; the admin API must never be served publicly",
    ]),
    ("admin key short", "admin: { address: 127.0.0.1:9901, api_key: short }\n", &[
        "gateway.yaml:1:35: admin.api_key: too short (5 characters): use at least 16 random characters",
    ]),
    ("admin unknown key", "admin: { address: 127.0.0.1:9901, key: x }\n", &[
        "gateway.yaml:1:35: admin.key: unknown field `key`, expected `address` or `api_key`",
    ]),
    ("threads zero", "threads: 0\n", &[
        "gateway.yaml:1:1: threads: 0 is out of range: use 1 to 1024",
    ]),
    ("threads too many", "threads: 1025\n", &[
        "gateway.yaml:1:1: threads: 1025 is out of range: use 1 to 1024",
    ]),
    ("threads negative", "threads: -1\n", &[
        "gateway.yaml:1:1: threads: invalid value: integer `-1`, expected a whole number 0 or more",
    ]),
    // --- store
    ("redis without url", "store: { backend: redis }\n", &[
        "gateway.yaml:1:1: store: backend: redis needs `url`, e.g. redis://127.0.0.1:6379/0",
    ]),
    ("redis url scheme", "store: { backend: redis, url: 'http://127.0.0.1:6379' }\n", &[
        "gateway.yaml:1:26: store.url: \"http://127.0.0.1:6379\": the scheme must be redis, rediss, redis+cluster, rediss+cluster, redis+sentinel or rediss+sentinel",
    ]),
    ("redis sentinel without a primary", "store: { backend: redis, url: 'redis+sentinel://127.0.0.1:26379' }\n", &[
        "gateway.yaml:1:26: store.url: \"redis+sentinel://127.0.0.1:26379\": name the primary the sentinels watch, e.g. redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster",
    ]),
    ("memory with url", "store: { url: 'redis://127.0.0.1:6379' }\n", &[
        "gateway.yaml:1:10: store.url: `url` is only used with backend: redis",
    ]),
    ("unknown backend", "store: { backend: etcd }\n", &[
        "gateway.yaml:1:10: store.backend: unknown variant `etcd`, expected `memory` or `redis`",
    ]),
    ("redis valid", "store: { backend: redis, url: 'rediss://cache.internal:6380/0', timeout: 100ms }\n", &[]),
    ("redis cluster valid", "store: { backend: redis, url: 'redis+cluster://10.0.0.1:7000,10.0.0.2:7000' }\n", &[]),
    ("redis sentinel valid", "store: { backend: redis, url: 'rediss+sentinel://:pw@10.0.0.1,10.0.0.2:26380/payments/1' }\n", &[]),
    // --- limits, trusted_proxies
    ("limits out of range", "limits:\n  max_header_bytes: 512B\n  max_headers: 0\n  max_uri_bytes: 10B\n  header_timeout: 500ms\n  max_requests_per_connection: 0\n  max_connections: 0\n", &[
        "gateway.yaml:2:3: limits.max_header_bytes: use 1KiB to 1MiB",
        "gateway.yaml:3:3: limits.max_headers: use 1 to 256",
        "gateway.yaml:4:3: limits.max_uri_bytes: use at least 64B",
        "gateway.yaml:5:3: limits.header_timeout: use at least 1s",
        "gateway.yaml:6:3: limits.max_requests_per_connection: must be at least 1",
        "gateway.yaml:7:3: limits.max_connections: must be at least 1",
    ]),
    ("limits of abuse resistance", "limits:\n  write_timeout: 500ms\n  max_chunks: 0\n  admin_max_connections: 2000\n", &[
        "gateway.yaml:2:3: limits.write_timeout: use at least 1s",
        "gateway.yaml:3:3: limits.max_chunks: 0 is out of range: use 1 to 16777216 chunks per request body",
        "gateway.yaml:4:3: limits.admin_max_connections: 2000 is out of range: use 1 to 1024",
    ]),
    ("limits semicolon", "limits: { semicolon_in_path: drop }\n", &[
        "gateway.yaml:1:11: limits.semicolon_in_path: unknown variant `drop`, expected `allow` or `reject`",
    ]),
    ("limits unknown key", "limits: { max_bodies: 1MiB }\n", &[
        "gateway.yaml:1:11: limits.max_bodies: unknown field `max_bodies`, expected one of `max_header_bytes`, `max_headers`, `max_uri_bytes`, `max_body`, `header_timeout`, `body_timeout`, `min_body_rate`, `idle_timeout`, `max_requests_per_connection`, `max_connections`, `write_timeout`, `max_chunks`, `admin_max_connections`, `semicolon_in_path`",
    ]),
    ("trusted proxies", "trusted_proxies: [10.0.0.0/8, 10.0.0.0/33, proxy.local, '::1']\n", &[
        "gateway.yaml:1:31: trusted_proxies[1]: \"10.0.0.0/33\" is not an IP address or network like 10.0.0.0/8",
        "gateway.yaml:1:44: trusted_proxies[2]: \"proxy.local\" is not an IP address or network like 10.0.0.0/8",
    ]),
    ("trusted proxies not a list", "trusted_proxies: 10.0.0.0/8\n", &[
        "gateway.yaml:1:1: trusted_proxies: expected a list",
    ]),
];

#[test]
fn whole_files() {
    check_files(FILES, str::to_owned);
}

#[test]
fn general() {
    check(CASES);
}

const UPSTREAMS: &[Case] = &[
    ("upstream without targets", "upstreams:\n  svc: { targets: [] }\n", &[
        "gateway.yaml:2:10: upstreams.svc.targets: an upstream needs at least one target",
    ]),
    ("upstream targets missing", "upstreams:\n  svc: { balance: random }\n", &[
        "gateway.yaml:2:3: upstreams.svc: missing field `targets`",
    ]),
    ("upstream bad target address", "upstreams:\n  svc: { targets: [svc.internal:9101, '127.0.0.1'] }\n", &[
        "gateway.yaml:2:20: upstreams.svc.targets[0]: invalid address \"svc.internal:9101\": expected IP:port, e.g. 127.0.0.1:9101 (host names are not resolved)",
        "gateway.yaml:2:39: upstreams.svc.targets[1]: invalid address \"127.0.0.1\": expected IP:port, e.g. 127.0.0.1:9101 (host names are not resolved)",
    ]),
    ("upstream weights", "upstreams:\n  svc:\n    targets:\n      - { address: 127.0.0.1:9101, weight: 0 }\n      - { address: 127.0.0.1:9102, weight: 1001 }\n      - { address: 127.0.0.1:9103, weight: 1000 }\n", &[
        "gateway.yaml:4:36: upstreams.svc.targets[0].weight: 0 is out of range: use 1 to 1000",
        "gateway.yaml:5:36: upstreams.svc.targets[1].weight: 1001 is out of range: use 1 to 1000",
    ]),
    ("upstream target twice", "upstreams:\n  svc: { targets: [127.0.0.1:9101, { address: 127.0.0.1:9101, weight: 2 }] }\n", &[
        "gateway.yaml:2:36: upstreams.svc.targets[1]: 127.0.0.1:9101 is listed twice",
    ]),
    ("upstream target unknown key", "upstreams:\n  svc: { targets: [{ addr: 127.0.0.1:9101 }] }\n", &[
        "gateway.yaml:2:22: upstreams.svc.targets[0].addr: unknown field `addr`, expected `address` or `weight`",
    ]),
    ("upstream unknown balance", "upstreams:\n  svc: { targets: [127.0.0.1:9101], balance: fastest }\n", &[
        "gateway.yaml:2:37: upstreams.svc.balance: unknown variant `fastest`, expected one of `round_robin`, `weighted`, `least_conn`, `consistent_hash`, `random`",
    ]),
    ("upstream hash_on without consistent_hash", "upstreams:\n  svc: { targets: [127.0.0.1:9101], balance: least_conn, hash_on: consumer }\n", &[
        "gateway.yaml:2:58: upstreams.svc.hash_on: `hash_on` is only used with balance: consistent_hash",
    ]),
    ("upstream hash_on values", "upstreams:\n  svc: { targets: [127.0.0.1:9101], balance: consistent_hash, hash_on: cookie }\n  b: { targets: [127.0.0.1:9102], balance: consistent_hash, hash_on: 'header:' }\n  c: { targets: [127.0.0.1:9103], balance: consistent_hash, hash_on: 'header:X-Account' }\n", &[
        "gateway.yaml:2:63: upstreams.svc.hash_on: \"cookie\": expected consumer, ip or header:<Name>",
        "gateway.yaml:3:61: upstreams.b.hash_on: \"header:\": expected consumer, ip or header:<Name>",
    ]),
    ("upstream health_check values", "upstreams:\n  svc:\n    targets: [127.0.0.1:9101]\n    health_check: { path: health, interval: 1s, timeout: 2s, healthy: 0, unhealthy: 101 }\n", &[
        "gateway.yaml:4:21: upstreams.svc.health_check.path: \"health\" is not a request path like /health",
        "gateway.yaml:4:49: upstreams.svc.health_check.timeout: must be greater than 0 and at most `interval`",
        "gateway.yaml:4:62: upstreams.svc.health_check.healthy: 0 is out of range: use 1 to 100",
        "gateway.yaml:4:74: upstreams.svc.health_check.unhealthy: 101 is out of range: use 1 to 100",
    ]),
    ("upstream health_check interval zero", "upstreams:\n  svc:\n    targets: [127.0.0.1:9101]\n    health_check: { interval: 0s }\n", &[
        "gateway.yaml:4:21: upstreams.svc.health_check.interval: must be greater than 0",
    ]),
    ("upstream health_check default timeout", "upstreams:\n  svc:\n    targets: [127.0.0.1:9101]\n    health_check: { interval: 500ms }\n", &[
        "gateway.yaml:4:5: upstreams.svc.health_check.timeout: the default timeout (1s) is longer than `interval`: set `timeout` to at most `interval`",
    ]),
    ("upstream health_check unknown key", "upstreams:\n  svc:\n    targets: [127.0.0.1:9101]\n    health_check: { every: 5s }\n", &[
        "gateway.yaml:4:21: upstreams.svc.health_check.every: unknown field `every`, expected one of `path`, `interval`, `timeout`, `healthy`, `unhealthy`",
    ]),
    ("upstream timeouts zero", "upstreams:\n  svc:\n    targets: [127.0.0.1:9101]\n    connect_timeout: 0s\n    read_timeout: 0ms\n    eject_for: 0s\n", &[
        "gateway.yaml:4:5: upstreams.svc.connect_timeout: must be greater than 0",
        "gateway.yaml:5:5: upstreams.svc.read_timeout: must be greater than 0",
        "gateway.yaml:6:5: upstreams.svc.eject_for: must be greater than 0",
    ]),
    ("upstream retries", "upstreams:\n  svc: { targets: [127.0.0.1:9101], retries: 11 }\n", &[
        "gateway.yaml:2:37: upstreams.svc.retries: 11 is out of range: use 0 to 10",
    ]),
    ("upstream retries negative", "upstreams:\n  svc: { targets: [127.0.0.1:9101], retries: -1 }\n", &[
        "gateway.yaml:2:37: upstreams.svc.retries: invalid value: integer `-1`, expected a whole number from 0 to 4294967295",
    ]),
    ("upstream bad name", "upstreams:\n  svc: { targets: [127.0.0.1:9101] }\n  'my svc': { targets: [127.0.0.1:9102] }\n", &[
        "gateway.yaml:3:3: upstreams.my svc: invalid upstream name \"my svc\": use letters, digits, '-', '_' and '.'",
    ]),
    ("upstream unknown key", "upstreams:\n  svc: { targets: [127.0.0.1:9101], timeout: 1s }\n", &[
        "gateway.yaml:2:37: upstreams.svc.timeout: unknown field `timeout`, expected one of `targets`, `balance`, `hash_on`, `health_check`, `connect_timeout`, `read_timeout`, `retries`, `eject_for`, `tls`, `http2`",
    ]),
    ("upstreams empty", "upstreams: {}\n", &[
        "gateway.yaml:1:1: upstreams: at least one upstream group is required",
    ]),
    ("upstreams not a map", "upstreams: [127.0.0.1:9101]\n", &[
        "gateway.yaml:1:1: upstreams: expected a mapping of upstream names to groups",
    ]),
    ("upstream every option valid", "upstreams:\n  svc:\n    targets: ['[::1]:9101', { address: 127.0.0.1:9102, weight: 2 }]\n    balance: consistent_hash\n    hash_on: 'header:X-Account'\n    health_check: { path: /health, interval: 2s, timeout: 500ms, healthy: 2, unhealthy: 3 }\n    connect_timeout: 1s\n    read_timeout: 10s\n    retries: 10\n    eject_for: 30s\n", &[]),
];

#[test]
fn upstreams() {
    check(UPSTREAMS);
}

#[test]
fn the_shipped_configs_are_valid() {
    for name in [
        "gateway.yaml",
        "examples/minimal.yaml",
        "examples/balancing.yaml",
        "examples/redis-store.yaml",
        "examples/tls.yaml",
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        // As the demo runs them: secrets unset, their published defaults accepted.
        let errors = parse(&text, &path, &|_| None, Secrets::Demo).err();
        assert!(
            errors.is_none(),
            "{name} is invalid (certs/dev missing? scripts/test makes it with scripts/dev-cert):\n{}",
            errors.unwrap()
        );
    }
}

#[test]
fn a_valid_config_carries_the_values_written() {
    let keys = key_files();
    let yaml = config(
        "admin: { address: '${FG_ADMIN}', api_key: 'x$${FG_ADMIN}-0123456789' }\n\
         store: { timeout: '${FG_UNSET:-75ms}' }\n\
         threads: 3\n\
         trusted_proxies: [10.0.0.0/8]\n",
    );
    let c = parse(
        &yaml,
        Path::new(FILE),
        &env(keys.path()),
        Secrets::Production,
    )
    .unwrap();
    assert_eq!(c.admin.address.to_string(), "127.0.0.1:9999");
    assert_eq!(c.admin.api_key.as_deref(), Some("x${FG_ADMIN}-0123456789"));
    assert_eq!(c.store.timeout, std::time::Duration::from_millis(75));
    assert_eq!(c.threads, 3);
    assert_eq!(c.trusted_proxies.len(), 1);
    assert_eq!(c.routes[0].name, "r");
    assert_eq!(c.upstreams["svc"].targets.len(), 1);
}
