//! Request-path normalisation: one canonical spelling per path, computed once per
//! request and used by BOTH the route matcher and the upstream request.
//!
//! A gateway whose routes carry authentication must not be bypassable by spelling
//! a path differently (`/admin` vs `/%61dmin` vs `/x/../admin` vs `/.;/admin`), so
//! [`normalize_path`] either returns the one canonical form or refuses the path.
//! The caller handles the `*` and absolute-form request targets and strips the
//! query before calling it.
//!
//! # Rules
//!
//! Input is the path part of the request target (no query, no fragment).
//!
//! 1. **Length**: more than [`MAX_PATH_LEN`] (8 KiB) bytes, before or after
//!    normalisation, is [`PathError::TooLong`]. The output limit keeps the
//!    function idempotent (escaping raw non-ASCII can grow a path).
//! 2. **Absolute**: the path must start with `/`, else [`PathError::NotAbsolute`].
//! 3. **Percent-escapes**, decoded in a single pass (the output of a decode is
//!    never decoded again, so `%252e` stays `%252e`):
//!    * a malformed escape (`%`, `%2`, `%zz`) is [`PathError::BadPercentEncoding`];
//!    * an escape of an *unreserved* character (`A-Z a-z 0-9 - . _ ~`) is
//!      decoded, whatever the case of its hex digits (`%41` → `A`, `%7e` → `~`,
//!      `%2e` → `.`);
//!    * `%2F` is [`PathError::EncodedSlash`], `%5C` is
//!      [`PathError::EncodedBackslash`], `%00` is [`PathError::Nul`], and the
//!      other control characters `%01`-`%1F`, `%7F` are
//!      [`PathError::ControlChar`] (any hex case);
//!    * every other escape is kept encoded with its hex digits upper-cased
//!      (`%3f` → `%3F`; `%25`, `%23`, `%3B` stay encoded).
//! 4. **Literal bytes**: a backslash is [`PathError::Backslash`], NUL is
//!    [`PathError::Nul`], any other control character (including DEL) is
//!    [`PathError::ControlChar`]. The characters RFC 3986 allows literally in a
//!    path (unreserved, sub-delims `!$&'()*+,;=`, `:`, `@`) are kept as given.
//!    Anything else (space, `"`, `#`, `<`, `>`, `?`, `[`, `]`, `^`, `` ` ``,
//!    `{`, `|`, `}` and every non-ASCII byte) is percent-encoded with upper-case
//!    hex, so that e.g. a raw `é` and `%C3%A9` are the same path (`%C3%A9`).
//! 5. **UTF-8**: the bytes the path denotes (escapes decoded for the check only,
//!    raw non-ASCII as is) must be valid UTF-8: overlong forms (`%C0%AE`,
//!    `%C0%AF`), lone continuation bytes (`%80`), surrogates (`%ED%A0%80`),
//!    truncated sequences and code points above U+10FFFF are
//!    [`PathError::InvalidUtf8`]. Non-ASCII stays encoded (`%C3%A9`).
//! 6. **Slashes**: runs of `/` are merged (`//a///b` → `/a/b`).
//! 7. **Dot segments**, after unreserved decoding (so `%2e%2E` is `..`): `.` is
//!    removed and `..` removes the segment before it (`/a/./b` → `/a/b`,
//!    `/a/b/../c` → `/a/c`). A `..` above the root is refused
//!    ([`PathError::AboveRoot`]), never clamped. A trailing `.` or `..` leaves a
//!    trailing slash (`/a/b/..` → `/a/`).
//! 8. **`;` parameters**: `;` is an ordinary character and is never stripped,
//!    but a segment whose part before its first `;` (or `%3B`) is `.`, `..` or
//!    empty (`/..;/admin`, `/.;x/`, `/;x/admin`, `/..%3Bx/`) is
//!    [`PathError::DotSegmentParameter`]: servers that strip path parameters
//!    (Tomcat and other servlet containers) would otherwise resolve it to a
//!    different path than the one the routes were matched against.
//! 9. **Trailing slash**: kept as given (`/a/` stays `/a/`, `/a` stays `/a`).
//!
//! The output is canonical: normalising it again returns it unchanged (borrowed).
//! It never contains `//`, a `.` or `..` segment, `\`, `%2F`, `%5C`, lower-case
//! hex in an escape, an escaped unreserved character, or a non-ASCII byte.
//!
//! # Cost
//!
//! The common, already-canonical path is checked by one byte loop over a class
//! table and returned as [`Cow::Borrowed`] without allocating. Only a path that
//! needs a change (or an error message) takes the second, allocating pass.

use std::borrow::Cow;
use std::fmt;

/// Longest accepted request path, in bytes (before and after normalisation).
pub const MAX_PATH_LEN: usize = 8 * 1024;

/// Why a request path was refused. Each message can be shown to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PathError {
    /// The path does not start with `/`.
    NotAbsolute,
    /// The path is longer than [`MAX_PATH_LEN`] bytes.
    TooLong,
    /// A `%` not followed by two hex digits.
    BadPercentEncoding,
    /// `%2F`: an encoded `/`.
    EncodedSlash,
    /// `%5C`: an encoded `\`.
    EncodedBackslash,
    /// A literal `\`.
    Backslash,
    /// A NUL byte, literal or `%00`.
    Nul,
    /// Another control character (U+0001-U+001F, U+007F), literal or encoded.
    ControlChar,
    /// The escapes do not spell valid UTF-8 (overlong, surrogate, truncated...).
    InvalidUtf8,
    /// A `..` segment would climb above the root.
    AboveRoot,
    /// A `.`, `..` or empty segment followed by a `;` parameter (`/..;/x`).
    DotSegmentParameter,
}

impl PathError {
    /// A short, client-readable explanation.
    pub fn message(self) -> &'static str {
        match self {
            PathError::NotAbsolute => "the request path must start with '/'",
            PathError::TooLong => "the request path is longer than 8192 bytes",
            PathError::BadPercentEncoding => {
                "the request path has a '%' that is not followed by two hex digits"
            }
            PathError::EncodedSlash => "the request path contains an encoded '/' (%2F)",
            PathError::EncodedBackslash => "the request path contains an encoded '\\' (%5C)",
            PathError::Backslash => "the request path contains a '\\'",
            PathError::Nul => "the request path contains a NUL character",
            PathError::ControlChar => "the request path contains a control character",
            PathError::InvalidUtf8 => "the request path's percent-escapes are not valid UTF-8",
            PathError::AboveRoot => "the request path's '..' segments climb above '/'",
            PathError::DotSegmentParameter => {
                "the request path has a '.', '..' or empty segment with a ';' parameter"
            }
        }
    }
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for PathError {}

/// Normalises a request path (the path part of the request target, no query)
/// for routing and forwarding; see the [module documentation](self) for the rules.
///
/// Returns [`Cow::Borrowed`] exactly when the path is already canonical.
pub fn normalize_path(raw: &str) -> Result<Cow<'_, str>, PathError> {
    if raw.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong);
    }
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    if is_canonical(bytes) {
        return Ok(Cow::Borrowed(raw));
    }
    let out = rebuild(bytes)?;
    if out == raw {
        Ok(Cow::Borrowed(raw))
    } else {
        Ok(Cow::Owned(out))
    }
}

// Byte classes for the fast scan. Anything not listed as "kept" sends the path
// to the slow pass, which either rewrites it or reports the error.
/// Kept literally, no further meaning in the fast scan.
const PLAIN: u8 = 0;
/// `.`: kept, but may start a dot segment.
const DOT: u8 = 1;
/// `;`: kept, but may follow an empty segment.
const SEMI: u8 = 2;
const SLASH: u8 = 3;
const PERCENT: u8 = 4;
/// Needs the slow pass: escaping, or an error.
const SLOW: u8 = 5;

static CLASS: [u8; 256] = build_classes();

const fn build_classes() -> [u8; 256] {
    let mut t = [SLOW; 256];
    let mut b = 0;
    while b < 128 {
        let c = b as u8;
        if is_pchar_literal(c) {
            t[b] = PLAIN;
        }
        b += 1;
    }
    t[b'.' as usize] = DOT;
    t[b';' as usize] = SEMI;
    t[b'/' as usize] = SLASH;
    t[b'%' as usize] = PERCENT;
    t
}

/// RFC 3986 unreserved: `ALPHA / DIGIT / "-" / "." / "_" / "~"`.
const fn is_unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')
}

/// Allowed literally in a path segment (RFC 3986 `pchar` without `%`).
const fn is_pchar_literal(c: u8) -> bool {
    is_unreserved(c)
        || matches!(
            c,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
        )
}

/// Control characters refused in a path, literal or encoded (NUL separately).
const fn is_control(c: u8) -> bool {
    c < 0x20 || c == 0x7f
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'F' => Some(c - b'A' + 10),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// Like [`hex_value`] but refuses lower case: the canonical form is upper case.
fn upper_hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Incremental UTF-8 validator (Unicode table 3-7): refuses overlong forms,
/// surrogates, code points above U+10FFFF, stray and missing continuations.
#[derive(Debug, Default)]
struct Utf8 {
    /// Continuation bytes still expected.
    need: u8,
    /// Allowed range of the next continuation byte.
    lo: u8,
    hi: u8,
}

impl Utf8 {
    #[inline]
    fn feed(&mut self, b: u8) -> bool {
        if self.need == 0 {
            if b < 0x80 {
                return true;
            }
            let (need, lo, hi) = match b {
                0xC2..=0xDF => (1, 0x80, 0xBF),
                0xE0 => (2, 0xA0, 0xBF),
                0xE1..=0xEC | 0xEE..=0xEF => (2, 0x80, 0xBF),
                0xED => (2, 0x80, 0x9F),
                0xF0 => (3, 0x90, 0xBF),
                0xF1..=0xF3 => (3, 0x80, 0xBF),
                0xF4 => (3, 0x80, 0x8F),
                _ => return false,
            };
            *self = Utf8 { need, lo, hi };
            true
        } else if b < self.lo || b > self.hi {
            false
        } else {
            self.need -= 1;
            self.lo = 0x80;
            self.hi = 0xBF;
            true
        }
    }

    fn complete(&self) -> bool {
        self.need == 0
    }
}

/// The fast scan: true only if [`rebuild`] would return the path unchanged.
/// It never reports errors; anything unusual is left to the slow pass.
fn is_canonical(b: &[u8]) -> bool {
    let mut utf8 = Utf8::default();
    let mut seg_start = 1;
    let mut i = 1;
    loop {
        // The common case: a run of plain bytes, one table load each.
        i += b
            .get(i..)
            .unwrap_or_default()
            .iter()
            .position(|&c| CLASS[usize::from(c)] != PLAIN)
            .unwrap_or(b.len() - i);
        let Some(&c) = b.get(i) else {
            return true;
        };
        match CLASS[usize::from(c)] {
            DOT => {
                if i == seg_start && starts_dot_segment(b, i) {
                    return false;
                }
            }
            SEMI => {
                if i == seg_start {
                    return false;
                }
            }
            SLASH => {
                if i == seg_start {
                    return false; // `//`
                }
                seg_start = i + 1;
            }
            PERCENT => {
                let (Some(hi), Some(lo)) = (
                    b.get(i + 1).copied().and_then(upper_hex_value),
                    b.get(i + 2).copied().and_then(upper_hex_value),
                ) else {
                    return false; // malformed or lower-case hex
                };
                let d = hi << 4 | lo;
                if d < 0x80 {
                    // Kept encoded only if not unreserved, not refused, and not
                    // a `;` that starts a segment (an empty-segment parameter).
                    if is_unreserved(d)
                        || matches!(d, b'/' | b'\\')
                        || is_control(d)
                        || (d == b';' && i == seg_start)
                        || !utf8.complete()
                    {
                        return false;
                    }
                } else if !utf8.feed(d) {
                    return false;
                }
                i += 3;
                // An unfinished UTF-8 sequence must go on with another escape
                // (this also catches one cut by the end of the path).
                if !utf8.complete() && b.get(i) != Some(&b'%') {
                    return false;
                }
                continue;
            }
            _ => return false,
        }
        i += 1;
    }
}

/// Whether the segment starting with the `.` at `i` may be `.` or `..`, or
/// carry a parameter after one: `.` or `..` followed by the end, `/`, `;` or `%`.
fn starts_dot_segment(b: &[u8], i: usize) -> bool {
    let mut j = i + 1;
    if b.get(j) == Some(&b'.') {
        j += 1;
    }
    matches!(b.get(j), None | Some(b'/' | b';' | b'%'))
}

/// What a canonical segment is, for dot-segment resolution.
#[derive(Debug, PartialEq, Eq)]
enum SegmentKind {
    Empty,
    Dot,
    DotDot,
    DotParam,
    Normal,
}

/// Classifies a segment written in canonical form (upper-case `%3B`).
fn segment_kind(seg: &[u8]) -> SegmentKind {
    if seg.is_empty() {
        return SegmentKind::Empty;
    }
    let head_len = (0..seg.len())
        .find(|&k| seg.get(k) == Some(&b';') || seg.get(k..k + 3) == Some(b"%3B".as_slice()))
        .unwrap_or(seg.len());
    let has_param = head_len < seg.len();
    match (seg.get(..head_len), has_param) {
        (Some(b"."), false) => SegmentKind::Dot,
        (Some(b".."), false) => SegmentKind::DotDot,
        (Some(b"" | b"." | b".."), true) => SegmentKind::DotParam,
        _ => SegmentKind::Normal,
    }
}

fn push_escaped(out: &mut String, d: u8) {
    out.push('%');
    out.push(char::from(HEX_UPPER[usize::from(d >> 4)]));
    out.push(char::from(HEX_UPPER[usize::from(d & 0x0f)]));
}

/// The slow pass: builds the canonical path, or finds why there is none.
/// `b` starts with `/`.
fn rebuild(b: &[u8]) -> Result<String, PathError> {
    let mut out = String::with_capacity(b.len() + 8);
    out.push('/');
    let mut utf8 = Utf8::default();
    let mut i = 1;
    loop {
        let seg_start = out.len();
        // One segment, up to the next '/' or the end.
        while let Some(&c) = b.get(i) {
            if c == b'/' {
                break;
            }
            if c == b'%' {
                let (Some(hi), Some(lo)) = (
                    b.get(i + 1).copied().and_then(hex_value),
                    b.get(i + 2).copied().and_then(hex_value),
                ) else {
                    return Err(PathError::BadPercentEncoding);
                };
                let d = hi << 4 | lo;
                match d {
                    b'/' => return Err(PathError::EncodedSlash),
                    b'\\' => return Err(PathError::EncodedBackslash),
                    0 => return Err(PathError::Nul),
                    d if is_control(d) => return Err(PathError::ControlChar),
                    _ => {}
                }
                if !utf8.feed(d) {
                    return Err(PathError::InvalidUtf8);
                }
                if is_unreserved(d) {
                    out.push(char::from(d));
                } else {
                    push_escaped(&mut out, d);
                }
                i += 3;
            } else {
                match c {
                    b'\\' => return Err(PathError::Backslash),
                    0 => return Err(PathError::Nul),
                    c if is_control(c) => return Err(PathError::ControlChar),
                    _ => {}
                }
                if !utf8.feed(c) {
                    return Err(PathError::InvalidUtf8);
                }
                if is_pchar_literal(c) {
                    out.push(char::from(c));
                } else {
                    push_escaped(&mut out, c);
                }
                i += 1;
            }
        }
        let last = i >= b.len();
        // A '/' or the end must not cut a multi-byte sequence.
        if !utf8.complete() {
            return Err(PathError::InvalidUtf8);
        }
        match segment_kind(out.as_bytes().get(seg_start..).unwrap_or_default()) {
            SegmentKind::Normal => {
                if !last {
                    out.push('/');
                }
            }
            // Merged slash; a trailing one is already in `out`.
            SegmentKind::Empty => {}
            SegmentKind::Dot => out.truncate(seg_start),
            SegmentKind::DotDot => {
                out.truncate(seg_start);
                if seg_start <= 1 {
                    return Err(PathError::AboveRoot);
                }
                // `out` is `/.../prev/`: drop `prev/`.
                let prev = out
                    .as_bytes()
                    .get(..seg_start - 1)
                    .and_then(|s| s.iter().rposition(|&c| c == b'/'))
                    .unwrap_or(0);
                out.truncate(prev + 1);
            }
            SegmentKind::DotParam => return Err(PathError::DotSegmentParameter),
        }
        if last {
            break;
        }
        i += 1; // the '/'
    }
    if out.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong);
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::PathError::*;
    use super::*;

    /// Expected outcome: `Ok(s)` with the normalised path, or the error.
    type Expect = Result<&'static str, PathError>;

    const CASES: &[(&str, Expect)] = &[
        // Already canonical: returned as is.
        ("/", Ok("/")),
        ("/a", Ok("/a")),
        ("/a/", Ok("/a/")),
        (
            "/api/v1/accounts/42/statement",
            Ok("/api/v1/accounts/42/statement"),
        ),
        ("/a.b/.c/..d/...", Ok("/a.b/.c/..d/...")),
        ("/a;b=c/d", Ok("/a;b=c/d")),
        ("/x:y@z!$&'()*+,=", Ok("/x:y@z!$&'()*+,=")),
        // Not absolute.
        ("", Err(NotAbsolute)),
        ("a/b", Err(NotAbsolute)),
        ("%2Fa", Err(NotAbsolute)),
        ("*", Err(NotAbsolute)),
        // Duplicate slashes.
        ("//a///b", Ok("/a/b")),
        ("//", Ok("/")),
        ("/a//", Ok("/a/")),
        ("///a", Ok("/a")),
        // Dot segments, literal.
        ("/a/./b", Ok("/a/b")),
        ("/a/b/../c", Ok("/a/c")),
        ("/a/b/..", Ok("/a/")),
        ("/a/b/.", Ok("/a/b/")),
        ("/a/..", Ok("/")),
        ("/.", Ok("/")),
        ("/./", Ok("/")),
        ("/a/./", Ok("/a/")),
        ("/a//../b", Ok("/b")),
        ("/a/b/c/../../d", Ok("/a/d")),
        ("/..", Err(AboveRoot)),
        ("/../admin", Err(AboveRoot)),
        ("/a/../../admin", Err(AboveRoot)),
        ("/./../a", Err(AboveRoot)),
        // Dot segments, encoded (any case, mixed).
        ("/%2e%2e/admin", Err(AboveRoot)),
        ("/%2E%2E/admin", Err(AboveRoot)),
        ("/x/%2e%2e/admin", Ok("/admin")),
        ("/x/.%2e/admin", Ok("/admin")),
        ("/x/%2e./admin", Ok("/admin")),
        ("/x/%2E/admin", Ok("/x/admin")),
        ("/x/%2e", Ok("/x/")),
        ("/a%2eb", Ok("/a.b")),
        // Double encoding: decoded once only, never a dot segment or slash.
        ("/x/%252e%252e/admin", Ok("/x/%252e%252e/admin")),
        ("/x/%252E/y", Ok("/x/%252E/y")),
        ("/a%252fb", Ok("/a%252fb")),
        ("/a%25", Ok("/a%25")),
        // Encoded slash and backslash, raw backslash.
        ("/a%2fb", Err(EncodedSlash)),
        ("/a%2Fb", Err(EncodedSlash)),
        ("/a%5cb", Err(EncodedBackslash)),
        ("/a%5Cb", Err(EncodedBackslash)),
        ("/a\\b", Err(Backslash)),
        ("/..\\admin", Err(Backslash)),
        ("/%2e%2e%2fadmin", Err(EncodedSlash)),
        // `;` parameters.
        ("/..;/admin", Err(DotSegmentParameter)),
        ("/x/..;/admin", Err(DotSegmentParameter)),
        ("/.;x/", Err(DotSegmentParameter)),
        ("/.;/a", Err(DotSegmentParameter)),
        ("/;x/admin", Err(DotSegmentParameter)),
        ("/x/%2e%2e;/admin", Err(DotSegmentParameter)),
        ("/x/..%3bx/admin", Err(DotSegmentParameter)),
        ("/x/..%3Bx/admin", Err(DotSegmentParameter)),
        ("/x/%3Bx/admin", Err(DotSegmentParameter)),
        ("/a;x/b", Ok("/a;x/b")),
        ("/...;x/b", Ok("/...;x/b")),
        ("/a/;", Err(DotSegmentParameter)),
        // Control characters and NUL.
        ("/a%00b", Err(Nul)),
        ("/a\0b", Err(Nul)),
        ("/a%01", Err(ControlChar)),
        ("/a%1f", Err(ControlChar)),
        ("/a%7F", Err(ControlChar)),
        ("/a\tb", Err(ControlChar)),
        ("/a\x7fb", Err(ControlChar)),
        ("/a\rb", Err(ControlChar)),
        // Malformed escapes.
        ("/%", Err(BadPercentEncoding)),
        ("/%2", Err(BadPercentEncoding)),
        ("/%zz", Err(BadPercentEncoding)),
        ("/%g0", Err(BadPercentEncoding)),
        ("/a%2/b", Err(BadPercentEncoding)),
        // UTF-8.
        ("/caf%C3%A9", Ok("/caf%C3%A9")),
        ("/caf%c3%a9", Ok("/caf%C3%A9")),
        ("/café", Ok("/caf%C3%A9")),
        ("/%E2%82%AC", Ok("/%E2%82%AC")),
        ("/%F0%9F%92%B8", Ok("/%F0%9F%92%B8")),
        ("/%C0%AE%C0%AE/admin", Err(InvalidUtf8)),
        ("/%C0%AF", Err(InvalidUtf8)),
        ("/%E0%80%AE", Err(InvalidUtf8)),
        ("/%80", Err(InvalidUtf8)),
        ("/%ED%A0%80", Err(InvalidUtf8)),
        ("/%F4%90%80%80", Err(InvalidUtf8)),
        ("/%FF", Err(InvalidUtf8)),
        ("/%C3", Err(InvalidUtf8)),
        ("/%C3/%A9", Err(InvalidUtf8)),
        ("/%C3a", Err(InvalidUtf8)),
        ("/%C3é", Err(InvalidUtf8)),
        // Unreserved decoding, reserved kept, hex case normalised.
        ("/%7e", Ok("/~")),
        ("/%7Euser", Ok("/~user")),
        ("/%41%62c", Ok("/Abc")),
        ("/%61dmin", Ok("/admin")),
        ("/%2D%5F%30", Ok("/-_0")),
        ("/a%3Fb", Ok("/a%3Fb")),
        ("/a%3fb", Ok("/a%3Fb")),
        ("/a%23b", Ok("/a%23b")),
        ("/a%25b", Ok("/a%25b")),
        ("/a%20b", Ok("/a%20b")),
        ("/a%3a%40", Ok("/a%3A%40")),
        // Characters not allowed literally are escaped.
        ("/a b", Ok("/a%20b")),
        (
            "/a\"<>`{|}^[]#?",
            Ok("/a%22%3C%3E%60%7B%7C%7D%5E%5B%5D%23%3F"),
        ),
    ];

    #[test]
    fn table() {
        assert!(CASES.len() >= 40);
        let mut failures = Vec::new();
        for (input, expect) in CASES {
            let got = normalize_path(input);
            let same = match (&got, expect) {
                (Ok(g), Ok(e)) => g == e,
                (Err(g), Err(e)) => g == e,
                _ => false,
            };
            if !same {
                failures.push(format!("{input:?}: got {got:?}, want {expect:?}"));
            }
            // Borrowed exactly when unchanged.
            if let Ok(out) = &got {
                assert_eq!(
                    matches!(out, Cow::Borrowed(_)),
                    out == input,
                    "{input:?} -> {out:?}"
                );
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn canonical_paths_do_not_allocate() {
        for p in [
            "/",
            "/api/v1/x",
            "/a/b/",
            "/caf%C3%A9",
            "/a%3Fb;c=d",
            "/.well-known/x",
        ] {
            assert!(matches!(normalize_path(p), Ok(Cow::Borrowed(_))), "{p}");
        }
    }

    #[test]
    fn length_limit() {
        let ok = format!("/{}", "a".repeat(MAX_PATH_LEN - 1));
        assert_eq!(normalize_path(&ok).map(|c| c.len()), Ok(MAX_PATH_LEN));
        let long = format!("/{}", "a".repeat(MAX_PATH_LEN));
        assert_eq!(normalize_path(&long), Err(TooLong));
        // Escaping raw non-ASCII may grow a path past the limit.
        let grows = format!("/{}", "é".repeat(2000));
        assert_eq!(normalize_path(&grows), Err(TooLong));
        // Long input that shrinks is still refused.
        let shrinks = format!("/{}", "./".repeat(MAX_PATH_LEN));
        assert_eq!(normalize_path(&shrinks), Err(TooLong));
    }

    #[test]
    fn error_messages_display() {
        for (_, expect) in CASES {
            if let Err(e) = expect {
                assert!(!e.to_string().is_empty());
            }
        }
        assert!(TooLong.to_string().contains("8192"));
    }

    /// xorshift64*: deterministic, no dependencies.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[rustfmt::skip]
    const TOKENS: &[&str] = &[
        "/", "/", "/", "//", ".", ".", "..", "%2e", "%2E", "%2f", "%2F", "%5c", "\\", ";", "%3b",
        "%3B", "a", "b", "A", "~", "%41", "%7e", "%61", "%25", "%252e", "%", "%2", "%zz", "%00",
        "%01", "%7f", "%C3", "%c3", "%A9", "%a9", "%C3%A9", "%C0%AE", "%ED%A0%80", "%E2%82%AC",
        "%F0", "%9F", "%92", "%B8", "é", "€", " ", "?", "#", "{", "}", ":", "@", "=", "x", "%3F",
        "%3f", "%20",
    ];

    fn random_input(rng: &mut Rng) -> String {
        let mut s = String::new();
        if rng.below(8) != 0 {
            s.push('/');
        }
        if rng.below(4) == 0 {
            // Raw bytes, made into a str.
            let n = rng.below(24);
            let bytes: Vec<u8> = (0..n).map(|_| (rng.next() >> 32) as u8).collect();
            s.push_str(&String::from_utf8_lossy(&bytes));
        } else {
            for _ in 0..rng.below(16) {
                s.push_str(TOKENS[rng.below(TOKENS.len())]);
            }
        }
        s
    }

    fn check_invariants(input: &str, out: &str) {
        let again = normalize_path(out);
        assert!(
            matches!(again, Ok(Cow::Borrowed(s)) if s == out),
            "not idempotent: {input:?} -> {out:?} -> {again:?}"
        );
        assert!(out.starts_with('/'), "{input:?} -> {out:?}");
        for bad in ["//", "/./", "/../", "\\", "%2F", "%2f", "%5C", "%5c"] {
            assert!(!out.contains(bad), "{input:?} -> {out:?} contains {bad:?}");
        }
        assert!(
            !out.ends_with("/.") && !out.ends_with("/.."),
            "{input:?} -> {out:?}"
        );
        assert!(out.is_ascii(), "{input:?} -> {out:?}");
        for seg in out.split('/').skip(1) {
            let head = seg.split(';').next().unwrap_or_default();
            let head = head.split("%3B").next().unwrap_or_default();
            assert!(
                !(seg.contains(';') || seg.contains("%3B")) || !matches!(head, "" | "." | ".."),
                "{input:?} -> {out:?}: dot segment with a parameter"
            );
        }
    }

    #[test]
    fn random_inputs_are_idempotent_and_clean() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (mut ok, mut fast) = (0, 0);
        for _ in 0..200_000 {
            let input = random_input(&mut rng);
            // The fast scan never accepts what the slow pass would change.
            if input.starts_with('/') && is_canonical(input.as_bytes()) {
                fast += 1;
                assert_eq!(rebuild(input.as_bytes()).as_deref(), Ok(input.as_str()));
            }
            if let Ok(out) = normalize_path(&input) {
                ok += 1;
                check_invariants(&input, &out);
            }
        }
        // The generator must exercise both outcomes.
        assert!(ok > 10_000, "only {ok} inputs normalised");
        assert!(fast > 2_000, "only {fast} inputs took the fast path");
    }
}
