//! `fingate::normalize::normalize_path` on arbitrary input.
//!
//! Checks, for every input that is UTF-8 (as is and with a leading `/`):
//! - the output is canonical: normalising it again returns it, borrowed;
//! - it has no `//`, no `.`/`..` segment, no `\`, no encoded `/` or `\`, no
//!   lower-case or unreserved escape, no dot segment with a `;` parameter, no
//!   non-ASCII byte, and fits in `MAX_PATH_LEN`;
//! - `Cow::Borrowed` exactly when nothing changed;
//! - it agrees (accept/refuse and output) with `reference` below, a slow and
//!   independent implementation of the rules written straight from the module
//!   documentation.
#![no_main]

use fingate::normalize::{normalize_path, MAX_PATH_LEN};
use libfuzzer_sys::fuzz_target;
use std::borrow::Cow;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    check(raw);
    if !raw.starts_with('/') {
        check(&format!("/{raw}"));
    }
});

fn check(raw: &str) {
    let got = normalize_path(raw);
    let want = reference(raw);
    match (&got, &want) {
        (Ok(out), Some(expected)) => assert_eq!(out, expected, "input {raw:?}"),
        (Err(_), None) => {}
        _ => panic!("input {raw:?}: normalize_path gave {got:?}, reference {want:?}"),
    }
    match got {
        Ok(out) => {
            assert_eq!(matches!(out, Cow::Borrowed(_)), out == raw, "input {raw:?}");
            invariants(raw, &out);
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

fn invariants(raw: &str, out: &str) {
    let again = normalize_path(out);
    assert!(
        matches!(again, Ok(Cow::Borrowed(s)) if s == out),
        "not idempotent: {raw:?} -> {out:?} -> {again:?}"
    );
    assert!(out.starts_with('/'), "{raw:?} -> {out:?}");
    assert!(out.len() <= MAX_PATH_LEN, "{raw:?} -> {out:?}");
    assert!(out.is_ascii(), "{raw:?} -> {out:?}");
    for bad in ["//", "/./", "/../", "\\", "%2F", "%2f", "%5C", "%5c"] {
        assert!(!out.contains(bad), "{raw:?} -> {out:?} contains {bad:?}");
    }
    assert!(
        !out.ends_with("/.") && !out.ends_with("/.."),
        "{raw:?} -> {out:?}"
    );
    let b = out.as_bytes();
    for (i, _) in out.match_indices('%') {
        let hex = &b[i + 1..i + 3];
        assert!(
            hex.iter()
                .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(c)),
            "{raw:?} -> {out:?}: escape not upper-case hex"
        );
        let d = u8::from_str_radix(std::str::from_utf8(hex).unwrap_or("zz"), 16).unwrap_or(0);
        assert!(
            !unreserved(d),
            "{raw:?} -> {out:?}: escaped unreserved {d:#x}"
        );
    }
    for seg in out.split('/').skip(1) {
        let head_end = seg.find(';').into_iter().chain(seg.find("%3B")).min();
        if let Some(end) = head_end {
            assert!(
                !matches!(&seg[..end], "" | "." | ".."),
                "{raw:?} -> {out:?}: dot segment with a parameter"
            );
        }
    }
}

fn unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')
}

fn pchar_literal(c: u8) -> bool {
    unreserved(c) || b"!$&'()*+,;=:@".contains(&c)
}

/// The rules, implemented the slow and obvious way: decode everything into
/// (byte, was-escaped) pairs, validate, re-encode canonically, then resolve
/// segments with a stack. `None` = refused.
fn reference(raw: &str) -> Option<String> {
    if raw.len() > MAX_PATH_LEN || !raw.starts_with('/') {
        return None;
    }
    let b = raw.as_bytes();
    let mut decoded: Vec<(u8, bool)> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            if !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
                return None;
            }
            let d = u8::from_str_radix(hex, 16).ok()?;
            if d == b'/' {
                return None; // an encoded slash
            }
            decoded.push((d, true));
            i += 3;
        } else {
            decoded.push((b[i], false));
            i += 1;
        }
    }
    if decoded
        .iter()
        .any(|&(c, _)| c == b'\\' || c < 0x20 || c == 0x7f)
    {
        return None;
    }
    let bytes: Vec<u8> = decoded.iter().map(|&(c, _)| c).collect();
    std::str::from_utf8(&bytes).ok()?;

    // Canonical text, segment by segment (split on literal '/').
    let mut segments: Vec<String> = vec![String::new()];
    for &(c, escaped) in &decoded[1..] {
        if c == b'/' && !escaped {
            segments.push(String::new());
            continue;
        }
        let seg = segments.last_mut()?;
        if unreserved(c) || (!escaped && pchar_literal(c)) {
            seg.push(char::from(c));
        } else {
            seg.push_str(&format!("%{c:02X}"));
        }
    }
    let mut stack: Vec<String> = Vec::new();
    let mut trailing = false;
    let n = segments.len();
    for (k, seg) in segments.into_iter().enumerate() {
        let last = k + 1 == n;
        let head_end = seg.find(';').into_iter().chain(seg.find("%3B")).min();
        if let Some(end) = head_end {
            if matches!(&seg[..end], "" | "." | "..") {
                return None;
            }
        }
        match seg.as_str() {
            "" | "." => {}
            ".." => {
                stack.pop()?;
            }
            _ => stack.push(seg.clone()),
        }
        if last {
            trailing = matches!(seg.as_str(), "" | "." | "..");
        }
    }
    let mut out = String::from("/");
    out.push_str(&stack.join("/"));
    if trailing && !stack.is_empty() {
        out.push('/');
    }
    (out.len() <= MAX_PATH_LEN).then_some(out)
}
