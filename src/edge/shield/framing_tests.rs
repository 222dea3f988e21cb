#![allow(clippy::unwrap_used)]

use super::*;

const ROOMY: FrameLimits = FrameLimits {
    max_header_bytes: 1 << 20,
    max_chunks: 1 << 20,
};

fn scan(chunks: &[&[u8]]) -> (Option<(usize, usize)>, bool, bool) {
    let mut h = HeadScanner::default();
    let end = chunks
        .iter()
        .enumerate()
        .find_map(|(i, c)| h.feed(c, 1 << 20).unwrap().map(|off| (i, off)));
    (end, h.content_length.is_some(), h.transfer_encoding)
}

#[test]
fn finds_the_blank_line_across_reads() {
    assert_eq!(
        scan(&[b"GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY"]).0,
        Some((0, 27))
    );
    assert_eq!(
        scan(&[b"GET / HTTP/1.1\r\nHost: a\r", b"\n", b"\r", b"\nrest"]).0,
        Some((3, 1))
    );
    assert_eq!(scan(&[b"GET / HTTP/1.1\nHost: a\n\n"]).0, Some((0, 24)));
    assert_eq!(scan(&[b"GET / HTTP/1.1\r\nHost: a\r\n"]).0, None);
    assert_eq!(scan(&[b"a\r\rb\r\n"]).0, None);
}

/// The byte-at-a-time scanner the line scanner replaced: the reference.
fn reference(chunks: &[&[u8]]) -> Option<(usize, usize)> {
    let mut matched = 0u8;
    for (c, chunk) in chunks.iter().enumerate() {
        for (i, &b) in chunk.iter().enumerate() {
            matched = match (matched, b) {
                (1 | 2, b'\n') => return Some((c, i + 1)),
                (1, b'\r') => 2,
                (_, b'\n') => 1,
                _ => 0,
            };
        }
    }
    None
}

/// A small xorshift so the cases are the same on every run.
fn rng() -> impl FnMut() -> u64 {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}

fn split<'a>(bytes: &'a [u8], next: &mut impl FnMut() -> u64) -> Vec<&'a [u8]> {
    let mut chunks = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let n = 1 + (next() as usize % rest.len());
        chunks.push(&rest[..n]);
        rest = &rest[n..];
    }
    chunks
}

#[test]
fn agrees_with_the_byte_by_byte_reference_on_random_splits() {
    let mut next = rng();
    let alphabet = b"\r\nab: ";
    for _ in 0..20_000 {
        let len = (next() % 24) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
            .collect();
        let chunks = split(&bytes, &mut next);
        assert_eq!(scan(&chunks).0, reference(&chunks), "{chunks:?}");
    }
}

#[test]
fn notes_both_framing_headers_in_any_spelling() {
    let (_, cl, te) =
        scan(&[b"POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"]);
    assert!(cl && te);
    let (_, cl, te) = scan(&[
        b"POST / HTTP/1.1\r\ncontent-LENGTH:4\r\nTransfer-Enc",
        b"oding : chunked\r\n\r\n",
    ]);
    assert!(cl && te);
    let (_, cl, te) =
        scan(&[b"POST / HTTP/1.1\r\nContent-Lengthy: 4\r\nX-Transfer-Encoding: chunked\r\n\r\n"]);
    assert!(!cl && !te);
}

#[test]
fn a_head_is_refused_as_soon_as_it_passes_the_limit() {
    let head = b"GET /x HTTP/1.1\r\nHost: h\r\n"; // 26 bytes, as the head checks count them
    let mut h = HeadScanner::default();
    assert_eq!(h.feed(head, 26), Ok(None));
    assert_eq!(
        h.feed(b"\r", 26),
        Ok(None),
        "the blank line's \\r is not counted"
    );
    assert_eq!(h.feed(b"\n", 26), Ok(Some(1)));
    // One byte over, unfinished: refused without waiting for the rest.
    let mut h = HeadScanner::default();
    assert_eq!(h.feed(head, 26), Ok(None));
    assert_eq!(h.feed(b"X", 26), Err(Violation::HeadTooLarge));
    // A single line that never ends.
    let mut h = HeadScanner::default();
    assert_eq!(h.feed(&[b'a'; 100], 1000), Ok(None));
    assert_eq!(h.feed(&[b'a'; 901], 1000), Err(Violation::HeadTooLarge));
}

/// Feeds `bytes` whole and in random pieces; both give the same outcome.
fn track(bytes: &[u8], limits: FrameLimits) -> (Result<u64, Violation>, u64, Position) {
    let mut whole = Tracker::default();
    let outcome = whole.feed(bytes, limits);
    let mut next = rng();
    for _ in 0..200 {
        let mut t = Tracker::default();
        let mut body = 0;
        let mut split_outcome = Ok(0);
        for piece in split(bytes, &mut next) {
            match t.feed(piece, limits) {
                Ok(n) => body += n,
                Err(v) => {
                    split_outcome = Err(v);
                    break;
                }
            }
        }
        let split_outcome = split_outcome.map(|_| body);
        assert_eq!(
            split_outcome,
            outcome,
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
        if outcome.is_ok() {
            assert_eq!((t.heads(), t.position()), (whole.heads(), whole.position()));
        }
    }
    (outcome, whole.heads(), whole.position())
}

#[test]
fn pipelined_requests_are_told_apart_by_their_framing() {
    let two_gets = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n";
    assert_eq!(track(two_gets, ROOMY), (Ok(0), 2, Position::Boundary));
    // A body that looks like a head is a body.
    let sized =
        b"POST /a HTTP/1.1\r\nContent-Length: 12\r\n\r\nX: 1\r\n\r\nabcdGET /b HTTP/1.1\r\n";
    assert_eq!(track(sized, ROOMY), (Ok(12), 1, Position::Head));
    let chunked = b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nX: 1\r\n10\r\n0123456789abcdef\r\n0\r\nX-Trailer: t\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n";
    assert_eq!(track(chunked, ROOMY), (Ok(56), 2, Position::Boundary));
    let unfinished = b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nab";
    assert_eq!(track(unfinished, ROOMY), (Ok(5), 1, Position::Body));
    // A length that is not a number frames no body: the head checks refuse it.
    let bad = b"POST /a HTTP/1.1\r\nContent-Length: 1x\r\n\r\n";
    assert_eq!(track(bad, ROOMY), (Ok(0), 1, Position::Boundary));
}

#[test]
fn framing_the_shield_cannot_trust_is_refused() {
    let both = b"POST /a HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(track(both, ROOMY).0, Err(Violation::AmbiguousFraming));
    let padded = format!(
        "POST /a HTTP/1.1\r\nContent-Length:{}5\r\n\r\n",
        " ".repeat(60)
    );
    assert_eq!(
        track(padded.as_bytes(), ROOMY).0,
        Err(Violation::UnreadableLength)
    );
    let spaced = b"POST /a HTTP/1.1\r\nContent-Length :  3 \r\n\r\nabc";
    assert_eq!(track(spaced, ROOMY), (Ok(3), 1, Position::Boundary));
}

#[test]
fn chunks_are_counted_against_the_limit() {
    let body = |n: usize| {
        let mut b = b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..n {
            b.extend_from_slice(b"1\r\nx\r\n");
        }
        b.extend_from_slice(b"0\r\n\r\n");
        b
    };
    let limits = FrameLimits {
        max_chunks: 10,
        ..ROOMY
    };
    assert_eq!(track(&body(10), limits), (Ok(65), 1, Position::Boundary));
    assert_eq!(track(&body(11), limits).0, Err(Violation::TooManyChunks));
}
