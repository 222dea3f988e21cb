//! `DurationStr::parse` and `SizeStr::parse` on arbitrary strings: never panic,
//! agree with an independent u128 reference (`<digits><unit>` repeated, summed,
//! refused past u64), and what they display parses back to the same value.
#![no_main]

use fingate::units::{DurationStr, SizeStr};
use libfuzzer_sys::fuzz_target;
use std::time::Duration;

const DURATION_UNITS: &[(&str, u128)] = &[
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
];

const SIZE_UNITS: &[(&str, u128)] = &[
    ("B", 1),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
];

/// Sum of `<digits><unit>` parts, or `None` if malformed or above `u64::MAX`.
fn reference(text: &str, units: &[(&str, u128)]) -> Option<u64> {
    if text.is_empty() {
        return None;
    }
    let mut rest = text;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let number: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let factor = units.iter().find(|(u, _)| *u == &rest[..unit_len])?.1;
        rest = &rest[unit_len..];
        total += u128::from(number) * factor;
        if total > u128::from(u64::MAX) {
            return None;
        }
    }
    u64::try_from(total).ok()
}

fuzz_target!(|text: &str| {
    let duration = DurationStr::parse(text);
    assert_eq!(
        duration.as_ref().ok().map(|d| d.0),
        reference(text, DURATION_UNITS).map(Duration::from_millis),
        "duration {text:?}: {duration:?}"
    );
    match duration {
        Ok(d) => {
            let shown = d.to_string();
            assert_eq!(
                DurationStr::parse(&shown),
                Ok(d),
                "{text:?} displayed as {shown:?}"
            );
        }
        Err(e) => assert!(!e.is_empty()),
    }

    let size = SizeStr::parse(text);
    assert_eq!(
        size.as_ref().ok().map(|s| s.0),
        reference(text, SIZE_UNITS),
        "size {text:?}: {size:?}"
    );
    match size {
        Ok(s) => {
            let shown = format!("{}B", s.0);
            assert_eq!(SizeStr::parse(&shown), Ok(s), "{text:?} as {shown:?}");
        }
        Err(e) => assert!(!e.is_empty()),
    }
});
