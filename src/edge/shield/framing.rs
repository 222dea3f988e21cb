//! Where each request on a connection begins and ends, followed on the raw bytes as
//! they are read: heads (to the blank line), then bodies by their framing
//! (`Content-Length` bytes, or chunks to the last chunk and its trailers).
//!
//! Knowing the boundaries from the bytes themselves, rather than from when
//! responses are written, keeps the shield right when a client sends its next
//! request before the previous answer (pipelining): that request's head is scanned
//! as a head, and its body is never scanned as one.

/// Why the bytes read end the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Violation {
    /// The head grew past `max_header_bytes` (it need not be finished).
    HeadTooLarge,
    /// `Content-Length` and `Transfer-Encoding` in one head: Pingora would silently
    /// drop the length before any hook could see both.
    AmbiguousFraming,
    /// A `Content-Length` line too long to read here (padding hides the value).
    UnreadableLength,
    /// A chunked body of more than `max_chunks` chunks.
    TooManyChunks,
}

/// The limits the bytes are held to.
#[derive(Debug, Clone, Copy)]
pub(super) struct FrameLimits {
    pub max_header_bytes: usize,
    pub max_chunks: u64,
}

#[derive(Debug)]
enum State {
    Head(HeadScanner),
    /// Body bytes still to come.
    Length(u64),
    Chunked(ChunkScanner),
}

/// The request boundaries of one connection.
#[derive(Debug)]
pub(super) struct Tracker {
    state: State,
    /// Request heads completed on this connection.
    heads: u64,
}

impl Default for Tracker {
    fn default() -> Self {
        Self {
            state: State::Head(HeadScanner::default()),
            heads: 0,
        }
    }
}

/// Where the connection is, for deciding what a wait for more bytes means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Position {
    /// Between requests: not one byte of the next head yet.
    Boundary,
    /// Inside a head.
    Head,
    /// Inside a body.
    Body,
}

impl Tracker {
    pub(super) fn heads(&self) -> u64 {
        self.heads
    }

    pub(super) fn position(&self) -> Position {
        match &self.state {
            State::Head(h) if h.seen == 0 => Position::Boundary,
            State::Head(_) => Position::Head,
            State::Length(_) | State::Chunked(_) => Position::Body,
        }
    }

    /// Follows `data`; returns how many of its bytes were body bytes.
    pub(super) fn feed(&mut self, mut data: &[u8], limits: FrameLimits) -> Result<u64, Violation> {
        let mut body = 0u64;
        while !data.is_empty() {
            match &mut self.state {
                State::Head(scanner) => {
                    let Some(end) = scanner.feed(data, limits.max_header_bytes)? else {
                        return Ok(body);
                    };
                    let next = scanner.body_state()?;
                    self.heads += 1;
                    self.state = next;
                    data = &data[end..];
                }
                State::Length(left) => {
                    let n = data.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                    *left -= n as u64;
                    body += n as u64;
                    data = &data[n..];
                    if *left == 0 {
                        self.state = State::Head(HeadScanner::default());
                    }
                }
                State::Chunked(chunks) => {
                    let used = chunks.feed(data, limits.max_chunks)?;
                    body += used as u64;
                    data = &data[used..];
                    if chunks.done() {
                        self.state = State::Head(HeadScanner::default());
                    }
                }
            }
        }
        Ok(body)
    }
}

/// Longest `Content-Length` line read: the name, a colon, a 19-digit value and
/// some blanks fit with room to spare; a longer one is refused rather than guessed.
const LINE_KEPT: usize = 64;

/// Follows a request head as it arrives: finds the blank line that ends it, counts
/// its bytes, and notes the framing headers it carries.
#[derive(Debug)]
pub(super) struct HeadScanner {
    /// Bytes of the head so far, the line in progress included.
    seen: usize,
    /// Bytes of the head's complete lines.
    lines: usize,
    /// Progress through the terminator: 0 nothing, 1 after `\n`, 2 after `\n\r`.
    matched: u8,
    /// The start of a line that began in an earlier read.
    line: [u8; LINE_KEPT],
    line_len: usize,
    /// The current line did not fit in `line`.
    line_cut: bool,
    content_length: Option<Length>,
    transfer_encoding: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Length {
    Value(u64),
    /// Not a number: refused later by the head checks, with the connection closed.
    Invalid,
    Unreadable,
}

impl Default for HeadScanner {
    fn default() -> Self {
        Self {
            seen: 0,
            lines: 0,
            matched: 0,
            line: [0; LINE_KEPT],
            line_len: 0,
            line_cut: false,
            content_length: None,
            transfer_encoding: false,
        }
    }
}

impl HeadScanner {
    /// Returns the offset just past the blank line (`\r\n\r\n`, or `\n\n`, which
    /// HTTP parsers also accept) when it is in `data`; fails as soon as the head
    /// (without that blank line) is longer than `max` bytes.
    ///
    /// Line by line with `memchr` rather than byte by byte: real heads are several
    /// hundred bytes (cookies, user agents) and every one passes through here.
    fn feed(&mut self, data: &[u8], max: usize) -> Result<Option<usize>, Violation> {
        let mut pos = 0;
        while let Some(k) = memchr::memchr(b'\n', &data[pos..]) {
            let part = &data[pos..pos + k];
            // The line that just ended was empty (or only `\r`): the head is over.
            let blank = match self.matched {
                1 => part.is_empty() || part == b"\r",
                2 => part.is_empty(),
                _ => false,
            };
            if blank {
                return Ok(Some(pos + k + 1));
            }
            if self.line_len == 0 {
                // The whole line is in this read (the usual case): no copy.
                self.classify_line(part, false);
            } else {
                self.keep_line_start(part);
                let (kept, cut) = (self.line, self.line_cut);
                self.classify_line(&kept[..self.line_len], cut);
            }
            self.lines = self.seen + part.len() + 1;
            self.seen = self.lines;
            if self.lines > max {
                return Err(Violation::HeadTooLarge);
            }
            self.line_len = 0;
            self.line_cut = false;
            self.matched = 1;
            pos += k + 1;
        }
        let rest = &data[pos..];
        if !rest.is_empty() {
            self.keep_line_start(rest);
            self.seen += rest.len();
            self.matched = u8::from(self.matched == 1 && rest == b"\r") * 2;
            // A lone `\r` after a line may be the start of the blank line.
            let head = if self.matched == 2 {
                self.lines
            } else {
                self.seen
            };
            if head > max {
                return Err(Violation::HeadTooLarge);
            }
        }
        Ok(None)
    }

    /// Keeps the first bytes of a line that continues in the next read.
    fn keep_line_start(&mut self, part: &[u8]) {
        let take = part.len().min(LINE_KEPT - self.line_len);
        self.line[self.line_len..self.line_len + take].copy_from_slice(&part[..take]);
        self.line_len += take;
        self.line_cut |= take < part.len();
    }

    /// Notes a framing header; `cut` when the line was longer than what was kept.
    fn classify_line(&mut self, line: &[u8], cut: bool) {
        // Most lines name neither: one byte tells.
        if !matches!(line.first(), Some(b'c' | b'C' | b't' | b'T')) {
            return;
        }
        let value = |name: &[u8]| {
            line.get(..name.len())
                .filter(|start| start.eq_ignore_ascii_case(name))
                .map(|_| &line[name.len()..])
                .filter(|rest| {
                    rest.first()
                        .is_some_and(|c| matches!(c, b':' | b' ' | b'\t'))
                })
        };
        if let Some(rest) = value(b"content-length") {
            self.content_length = Some(if cut || line.len() > LINE_KEPT {
                Length::Unreadable
            } else {
                parse_length(rest)
            });
        }
        self.transfer_encoding |= value(b"transfer-encoding").is_some();
    }

    /// What follows the finished head.
    fn body_state(&self) -> Result<State, Violation> {
        match (self.content_length, self.transfer_encoding) {
            (Some(_), true) => Err(Violation::AmbiguousFraming),
            (_, true) => Ok(State::Chunked(ChunkScanner::default())),
            (Some(Length::Unreadable), false) => Err(Violation::UnreadableLength),
            (Some(Length::Value(n)), false) if n > 0 => Ok(State::Length(n)),
            _ => Ok(State::Head(HeadScanner::default())),
        }
    }
}

/// The value after a `Content-Length` name: blanks, a colon, blanks, digits (a
/// list of equal values, which Pingora accepts, reads as its first).
fn parse_length(rest: &[u8]) -> Length {
    let rest = rest.trim_ascii_start();
    let Some(value) = rest.strip_prefix(b":") else {
        return Length::Invalid;
    };
    let first = value
        .split(|b| *b == b',')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    if first.is_empty() || first.len() > 19 || !first.iter().all(u8::is_ascii_digit) {
        return Length::Invalid;
    }
    Length::Value(first.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// In a chunk-size line: the size so far, and whether its hex digits are over
    /// (an extension or `\r` may follow them).
    Size {
        size: u64,
        digits_done: bool,
    },
    /// Data bytes still to come.
    Data(u64),
    /// After the data, up to the end of its line.
    DataEnd,
    /// After the last chunk: trailer lines up to an empty one. `line`: 0 while the
    /// current line is empty, 1 when it holds only `\r` so far, 2 when it has content.
    Trailers {
        line: u8,
    },
    Done,
}

/// Counts the chunks of a chunked body and finds its end.
///
/// Only counts and frames: malformed chunk syntax is Pingora's to refuse. Each
/// chunk costs a pass through the proxy, so their number is limited, not only the
/// body's bytes.
#[derive(Debug)]
pub(super) struct ChunkScanner {
    at: Chunk,
    chunks: u64,
}

impl Default for ChunkScanner {
    fn default() -> Self {
        Self {
            at: Chunk::Size {
                size: 0,
                digits_done: false,
            },
            chunks: 0,
        }
    }
}

impl ChunkScanner {
    fn done(&self) -> bool {
        self.at == Chunk::Done
    }

    /// Follows `data`; returns how many of its bytes belong to the body.
    fn feed(&mut self, data: &[u8], max_chunks: u64) -> Result<usize, Violation> {
        let mut pos = 0;
        while pos < data.len() && !self.done() {
            let rest = &data[pos..];
            match &mut self.at {
                Chunk::Size { size, digits_done } => {
                    let line_end = memchr::memchr(b'\n', rest);
                    let line = &rest[..line_end.unwrap_or(rest.len())];
                    for &b in line {
                        if *digits_done {
                            break;
                        }
                        match (b as char).to_digit(16) {
                            Some(d) => *size = size.saturating_mul(16).saturating_add(d.into()),
                            None => *digits_done = true,
                        }
                    }
                    let Some(end) = line_end else {
                        return Ok(data.len());
                    };
                    pos += end + 1;
                    self.at = if *size == 0 {
                        Chunk::Trailers { line: 0 }
                    } else {
                        self.chunks += 1;
                        if self.chunks > max_chunks {
                            return Err(Violation::TooManyChunks);
                        }
                        Chunk::Data(*size)
                    };
                }
                Chunk::Data(left) => {
                    let n = rest.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                    *left -= n as u64;
                    pos += n;
                    if *left == 0 {
                        self.at = Chunk::DataEnd;
                    }
                }
                Chunk::DataEnd => match memchr::memchr(b'\n', rest) {
                    Some(end) => {
                        pos += end + 1;
                        self.at = Chunk::Size {
                            size: 0,
                            digits_done: false,
                        };
                    }
                    None => return Ok(data.len()),
                },
                Chunk::Trailers { line } => {
                    let line_end = memchr::memchr(b'\n', rest);
                    for &b in &rest[..line_end.unwrap_or(rest.len())] {
                        *line = if *line == 0 && b == b'\r' { 1 } else { 2 };
                    }
                    let Some(end) = line_end else {
                        return Ok(data.len());
                    };
                    pos += end + 1;
                    self.at = if *line < 2 {
                        Chunk::Done
                    } else {
                        Chunk::Trailers { line: 0 }
                    };
                }
                Chunk::Done => {}
            }
        }
        Ok(pos)
    }
}

#[cfg(test)]
#[path = "framing_tests.rs"]
mod tests;
