//! The access log: one line per request, written without `tracing`.
//!
//! Formatting each request through `tracing-subscriber`'s generic JSON layer and
//! one `write(2)` per line was the largest item in the load profile
//! (benches/RESULTS.md). Here a line is written straight into a per-thread
//! buffer (integers with `itoa`, a small JSON string escaper, the date part of the
//! timestamp formatted once per second) and appended to a shared buffer that a
//! writer thread sends to stdout every [`FLUSH_EVERY`] or once [`FLUSH_AT`] bytes
//! are pending — nginx's `access_log … buffer= flush=`. A request never waits on
//! stdout: if the reader of stdout stalls and [`MAX_PENDING`] bytes pile up, lines
//! are dropped and counted in `fingate_access_log_dropped_total` instead.
//!
//! The line has the same fields as before (`timestamp`, `level`, `target`, then the
//! request's), so log pipelines see no change; `--log-format text` gets the same
//! fields as `key=value`. Operational events still go through `tracing`.

use super::LogFormat;
use crate::metrics::metrics;
use std::cell::RefCell;
use std::io::Write;
use std::net::IpAddr;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longest a line waits before it reaches stdout.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Pending bytes that wake the writer early.
pub const FLUSH_AT: usize = 64 * 1024;
/// Pending bytes beyond which new lines are dropped (stdout is not being read).
pub const MAX_PENDING: usize = 8 * 1024 * 1024;

/// One request, as the proxy saw it.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub request_id: &'a str,
    pub route: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    /// The query string (without `?`), with `logging.redact.query` values hashed.
    pub query: Option<&'a str>,
    pub client: Option<IpAddr>,
    /// The HTTP version the client spoke: `1.1`, `2` (or `1.0`).
    pub http: &'a str,
    /// The TLS version of the client's connection (`1.2`, `1.3`); none on plain ones.
    pub tls: Option<&'a str>,
    pub status: u16,
    pub duration: Duration,
    pub upstream: Option<&'a str>,
    pub consumer: Option<&'a str>,
    pub cache: Option<&'a str>,
    pub error: Option<&'a str>,
    /// The W3C trace id (32 hex digits), with tracing on.
    pub trace_id: Option<&'a str>,
}

struct Sink {
    format: LogFormat,
    pending: Mutex<Vec<u8>>,
    wake: Condvar,
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// Starts the writer thread. Without this call (or with `enabled` false) the
/// access log is off and [`write`] does nothing.
pub fn init(format: LogFormat, enabled: bool) {
    if !enabled {
        return;
    }
    let sink = Sink {
        format,
        pending: Mutex::new(Vec::with_capacity(FLUSH_AT * 2)),
        wake: Condvar::new(),
    };
    if SINK.set(sink).is_err() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("fingate-access-log".into())
        .spawn(writer);
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the access-log writer; lines are written by flush() only");
    }
}

/// Hands one request's line to the writer. Never blocks on stdout.
pub fn write(entry: &Entry<'_>) {
    let Some(sink) = SINK.get() else { return };
    thread_local! {
        static LINE: RefCell<(Vec<u8>, Stamp)> = RefCell::new((Vec::with_capacity(512), Stamp::default()));
    }
    LINE.with(|cell| {
        let Ok(mut cell) = cell.try_borrow_mut() else {
            return;
        };
        let (line, stamp) = &mut *cell;
        line.clear();
        match sink.format {
            LogFormat::Json => json_line(line, stamp, entry),
            LogFormat::Text => text_line(line, stamp, entry),
        }
        let mut pending = sink.pending.lock().unwrap_or_else(|p| p.into_inner());
        if pending.len() + line.len() > MAX_PENDING {
            drop(pending);
            metrics().access_log_dropped_total.inc();
            return;
        }
        let was_below = pending.len() < FLUSH_AT;
        pending.extend_from_slice(line);
        // Wake the writer only when crossing the threshold: a notify is a syscall.
        if was_below && pending.len() >= FLUSH_AT {
            sink.wake.notify_one();
        }
    });
}

/// Writes every pending line now (before the process exits).
pub fn flush() {
    let Some(sink) = SINK.get() else { return };
    let out = std::mem::take(&mut *sink.pending.lock().unwrap_or_else(|p| p.into_inner()));
    emit(&out);
}

fn writer() {
    let Some(sink) = SINK.get() else { return };
    let mut spare = Vec::with_capacity(FLUSH_AT * 2);
    loop {
        {
            let pending = sink.pending.lock().unwrap_or_else(|p| p.into_inner());
            let (mut pending, _) = sink
                .wake
                .wait_timeout_while(pending, FLUSH_EVERY, |p| p.len() < FLUSH_AT)
                .unwrap_or_else(|p| p.into_inner());
            // Swap, so workers append to an empty buffer while this one is written.
            std::mem::swap(&mut *pending, &mut spare);
        }
        emit(&spare);
        spare.clear();
        if spare.capacity() > FLUSH_AT * 4 {
            spare.shrink_to(FLUSH_AT * 2);
        }
    }
}

fn emit(bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    let mut out = std::io::stdout().lock();
    // stdout closed: nothing sensible to do; the lines are lost either way.
    let _ = out.write_all(bytes).and_then(|()| out.flush());
}

/// The timestamp's date and time to the second, formatted once per second per thread.
#[derive(Default)]
struct Stamp {
    second: u64,
    text: Vec<u8>,
}

impl Stamp {
    /// Appends `2026-11-30T05:11:33.123456Z`.
    fn push(&mut self, out: &mut Vec<u8>) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let second = now.as_secs();
        if self.text.is_empty() || second != self.second {
            let mut text = crate::clock::rfc3339(second).into_bytes();
            text.pop(); // the `Z`: the fraction goes before it
            self.text = text;
            self.second = second;
        }
        out.extend_from_slice(&self.text);
        let micros = now.subsec_micros();
        out.push(b'.');
        push_padded(out, u64::from(micros), 6);
        out.push(b'Z');
    }
}

fn push_padded(out: &mut Vec<u8>, n: u64, width: usize) {
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(n).as_bytes();
    out.resize(out.len() + width.saturating_sub(digits.len()), b'0');
    out.extend_from_slice(digits);
}

fn push_int(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Milliseconds with three decimals (microsecond resolution), e.g. `0.412`.
fn push_millis(out: &mut Vec<u8>, d: Duration) {
    let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    push_int(out, micros / 1000);
    out.push(b'.');
    push_padded(out, micros % 1000, 3);
}

fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        // Four small integers: `Display` goes through the formatting machinery and
        // a padding check, visible in the load profile.
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                push_int(out, u64::from(octet));
            }
        }
        // Writing into a Vec cannot fail.
        IpAddr::V6(_) => {
            let _ = write!(out, "{ip}");
        }
    }
}

/// A JSON string: quotes, backslashes and control characters escaped (the rest of
/// UTF-8 passes through). Values such as the path and request id come from clients.
fn push_json_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    if !needs_escape(bytes) {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        // One table load per byte; almost every byte passes.
        if !NEEDS_ESCAPE[usize::from(b)] {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Whether any byte needs escaping, eight bytes at a time: five strings per line,
/// nearly always clean, so the common case is one copy.
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    // Whether some byte of `v` is below `n` (exact for n <= 0x80), or zero.
    let below = |v: u64, n: u8| v.wrapping_sub(ONES * u64::from(n)) & !v & HIGH != 0;
    let zero = |v: u64| below(v, 1);
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let v = u64::from_ne_bytes(word);
        if below(v, 0x20)
            || zero(v ^ (ONES * u64::from(b'"')))
            || zero(v ^ (ONES * u64::from(b'\\')))
            || zero(v ^ (ONES * 0x7f))
        {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&b| NEEDS_ESCAPE[usize::from(b)])
}

/// Bytes a JSON string cannot hold as they are: `"`, `\`, control characters, DEL.
const NEEDS_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table[0x7f] = true;
    table
};

/// One field's value, written per format.
enum Value<'a> {
    Str(&'a str),
    Ip(IpAddr),
    Int(u64),
    Millis(Duration),
}

/// The request's fields in line order; absent ones are left out of the line.
fn fields<'a>(e: &Entry<'a>) -> [(&'static str, Option<Value<'a>>); 15] {
    [
        ("request_id", Some(Value::Str(e.request_id))),
        ("trace_id", e.trace_id.map(Value::Str)),
        ("route", Some(Value::Str(e.route))),
        ("method", Some(Value::Str(e.method))),
        ("path", Some(Value::Str(e.path))),
        ("query", e.query.map(Value::Str)),
        ("client", e.client.map(Value::Ip)),
        ("http", Some(Value::Str(e.http))),
        ("tls", e.tls.map(Value::Str)),
        ("status", Some(Value::Int(u64::from(e.status)))),
        ("duration_ms", Some(Value::Millis(e.duration))),
        ("upstream", e.upstream.map(Value::Str)),
        ("consumer", e.consumer.map(Value::Str)),
        ("cache", e.cache.map(Value::Str)),
        ("error", e.error.map(Value::Str)),
    ]
}

fn json_line(out: &mut Vec<u8>, stamp: &mut Stamp, e: &Entry<'_>) {
    out.extend_from_slice(b"{\"timestamp\":\"");
    stamp.push(out);
    out.extend_from_slice(b"\",\"level\":\"INFO\"");
    for (name, value) in fields(e) {
        let Some(value) = value else { continue };
        out.extend_from_slice(b",\"");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        match value {
            Value::Str(s) => push_json_str(out, s),
            Value::Ip(ip) => {
                out.push(b'"');
                push_ip(out, ip);
                out.push(b'"');
            }
            Value::Int(n) => push_int(out, n),
            Value::Millis(d) => push_millis(out, d),
        }
    }
    out.extend_from_slice(b",\"target\":\"fingate::access\"}\n");
}

/// For people: the same fields as `key=value`, values quoted only when they
/// contain a space, quote or control character.
fn text_line(out: &mut Vec<u8>, stamp: &mut Stamp, e: &Entry<'_>) {
    stamp.push(out);
    out.extend_from_slice(b"  INFO fingate::access:");
    for (name, value) in fields(e) {
        let Some(value) = value else { continue };
        out.push(b' ');
        out.extend_from_slice(name.as_bytes());
        out.push(b'=');
        match value {
            Value::Str(s) => push_text(out, s),
            Value::Ip(ip) => push_ip(out, ip),
            Value::Int(n) => push_int(out, n),
            Value::Millis(d) => push_millis(out, d),
        }
    }
    out.push(b'\n');
}

fn push_text(out: &mut Vec<u8>, s: &str) {
    if s.is_empty() || s.bytes().any(|b| b <= b' ' || b == b'"' || b == 0x7f) {
        push_json_str(out, s);
    } else {
        out.extend_from_slice(s.as_bytes());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn entry() -> Entry<'static> {
        Entry {
            request_id: "id-1",
            route: "accounts",
            method: "GET",
            path: "/api/accounts/acc-1",
            client: "192.0.2.7".parse().ok(),
            http: "2",
            tls: Some("1.3"),
            status: 200,
            duration: Duration::from_micros(1_234_567),
            upstream: Some("127.0.0.1:9101"),
            consumer: Some("mobile-app"),
            cache: None,
            error: None,
            trace_id: None,
            query: None,
        }
    }

    fn json(e: &Entry<'_>) -> serde_json::Value {
        let mut out = Vec::new();
        json_line(&mut out, &mut Stamp::default(), e);
        assert_eq!(out.last(), Some(&b'\n'));
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1, "one line");
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn a_json_line_has_every_field_and_parses() {
        let v = json(&entry());
        assert_eq!(v["request_id"], "id-1");
        assert_eq!(v["route"], "accounts");
        assert_eq!(v["method"], "GET");
        assert_eq!(v["path"], "/api/accounts/acc-1");
        assert_eq!(v["client"], "192.0.2.7");
        assert_eq!(v["status"], 200);
        assert_eq!(v["duration_ms"].as_f64(), Some(1234.567));
        assert_eq!(v["upstream"], "127.0.0.1:9101");
        assert_eq!(v["consumer"], "mobile-app");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["target"], "fingate::access");
        assert!(v.get("cache").is_none() && v.get("error").is_none(), "{v}");
        let ts = v["timestamp"].as_str().unwrap();
        assert_eq!(ts.len(), "2026-11-30T05:11:33.123456Z".len(), "{ts}");
        assert!(ts.ends_with('Z') && ts.as_bytes()[19] == b'.', "{ts}");
    }

    #[test]
    fn client_strings_cannot_break_the_line_or_the_json() {
        let nasty = "a\"b\\c\nd\re\tf\u{1}g\u{7f}h — ü";
        let e = Entry {
            request_id: nasty,
            path: nasty,
            consumer: Some(nasty),
            ..entry()
        };
        let v = json(&e);
        assert_eq!(v["request_id"], nasty);
        assert_eq!(v["path"], nasty);
        assert_eq!(v["consumer"], nasty);
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for text in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.255.9",
            "203.0.113.200",
            "::1",
            "2001:db8::8a2e:370:7334",
        ] {
            let ip: IpAddr = text.parse().unwrap_or(IpAddr::V4([0; 4].into()));
            let mut out = Vec::new();
            push_ip(&mut out, ip);
            assert_eq!(String::from_utf8_lossy(&out), ip.to_string());
            assert_eq!(ip.to_string(), text);
        }
    }

    #[test]
    fn every_byte_round_trips_through_a_json_string() {
        let all: String = (0u8..=0x7f).map(char::from).chain("é—€".chars()).collect();
        let mut out = Vec::new();
        push_json_str(&mut out, &all);
        let back: String = serde_json::from_slice(&out).unwrap_or_default();
        assert_eq!(back, all);
        assert!(
            !out.iter().any(|&b| b < 0x20 || b == 0x7f),
            "raw control byte left"
        );
    }

    #[test]
    fn the_word_check_agrees_with_the_byte_table() {
        // Every byte value at every position of a 16-byte run, against clean
        // neighbours of each kind (the word trick must not be fooled by carries).
        for fill in [b'a', b'~', 0x80, 0xff, b' ', b'!', b'#', b'['] {
            for pos in 0..16 {
                for b in 0..=255u8 {
                    let mut run = [fill; 16];
                    run[pos] = b;
                    let expected = run.iter().any(|&x| NEEDS_ESCAPE[usize::from(x)]);
                    assert_eq!(
                        needs_escape(&run),
                        expected,
                        "byte {b:#x} at {pos} among {fill:#x}"
                    );
                }
            }
        }
    }

    #[test]
    fn durations_are_milliseconds_with_three_decimals() {
        for (micros, text) in [
            (0, "0.000"),
            (7, "0.007"),
            (1_000, "1.000"),
            (61_050, "61.050"),
        ] {
            let mut out = Vec::new();
            push_millis(&mut out, Duration::from_micros(micros));
            assert_eq!(String::from_utf8(out).unwrap(), text);
        }
    }

    #[test]
    fn the_cached_second_follows_the_clock() {
        let mut stamp = Stamp {
            second: 1,
            text: b"1970-01-01T00:00:01".to_vec(),
        };
        let mut out = Vec::new();
        stamp.push(&mut out);
        let now = crate::clock::rfc3339(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs(),
        );
        let text = String::from_utf8(out).unwrap();
        // Within the same second (or the next, if the clock ticked in between).
        assert!(text[..16] == now[..16], "{text} vs {now}");
    }

    #[test]
    fn text_lines_quote_only_what_needs_it() {
        let mut out = Vec::new();
        let e = Entry {
            path: "/a b",
            ..entry()
        };
        text_line(&mut out, &mut Stamp::default(), &e);
        let line = String::from_utf8(out).unwrap();
        assert!(line.contains(" INFO fingate::access: request_id=id-1 route=accounts method=GET path=\"/a b\" client=192.0.2.7 http=2 tls=1.3 status=200 duration_ms=1234.567 upstream=127.0.0.1:9101 consumer=mobile-app\n"), "{line}");
    }
}
