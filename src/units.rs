//! Durations (`250ms`, `30s`, `5m`, `1h`, `1h30m`) and sizes (`512B`, `64KiB`, `1MiB`)
//! as they are written in `gateway.yaml`.
//!
//! Both are strings with a unit so that a bare number is never misread (is `30`
//! seconds or milliseconds?). Parsing is strict: no spaces inside, no negatives,
//! no fractions, and overflow is an error rather than a wrap.

use serde::{de, Deserialize, Deserializer};
use std::fmt;
use std::time::Duration;

/// A duration written with a unit. Deserializes from strings like `250ms` or `1h30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DurationStr(pub Duration);

/// A size in bytes written with a unit. Deserializes from strings like `64KiB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SizeStr(pub u64);

const DURATION_UNITS: &[(&str, u64)] = &[
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
];

const SIZE_UNITS: &[(&str, u64)] = &[
    ("B", 1),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
];

/// Parses `<digits><unit>` repeated at least once, summing the parts.
fn parse_with_units(text: &str, units: &[(&str, u64)], what: &str) -> Result<u64, String> {
    let expected = || {
        let names: Vec<&str> = units.iter().map(|(u, _)| *u).collect();
        format!(
            "invalid {what} {text:?}: expected a whole number followed by a unit ({})",
            names.join(", ")
        )
    };
    if text.is_empty() {
        return Err(expected());
    }
    let mut rest = text;
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(expected());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| expected())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let Some((_, factor)) = units.iter().find(|(u, _)| *u == unit) else {
            return Err(expected());
        };
        total = number
            .checked_mul(*factor)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("{what} {text:?} is too large"))?;
    }
    Ok(total)
}

impl DurationStr {
    /// Parses a duration such as `250ms`, `30s`, `5m`, `1h` or `1h30m`.
    pub fn parse(text: &str) -> Result<Self, String> {
        parse_with_units(text, DURATION_UNITS, "duration").map(|ms| Self(Duration::from_millis(ms)))
    }
}

impl SizeStr {
    /// Parses a size such as `512B`, `64KiB`, `1MiB` (binary) or `10MB` (decimal).
    pub fn parse(text: &str) -> Result<Self, String> {
        parse_with_units(text, SIZE_UNITS, "size").map(Self)
    }
}

/// In the largest unit that states it exactly, as one would write it: `31d`, `90s`, `250ms`.
impl fmt::Display for DurationStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        let (unit, factor) = DURATION_UNITS
            .iter()
            .rev()
            .find(|(_, factor)| ms % u128::from(*factor) == 0 && ms > 0)
            .map_or(("ms", 1), |(u, factor)| (*u, u128::from(*factor)));
        write!(f, "{}{unit}", ms / factor)
    }
}

struct UnitVisitor<T> {
    parse: fn(&str) -> Result<T, String>,
    expecting: &'static str,
}

impl<T> de::Visitor<'_> for UnitVisitor<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        (self.parse)(v).map_err(E::custom)
    }
    // A bare number is refused with a hint rather than guessed at.
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        Err(E::custom(format!(
            "{v} has no unit: write it as {}",
            self.expecting
        )))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        Err(E::custom(format!(
            "{v} has no unit: write it as {}",
            self.expecting
        )))
    }
}

impl<'de> Deserialize<'de> for DurationStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UnitVisitor {
            parse: DurationStr::parse,
            expecting: "a duration with a unit, e.g. \"250ms\", \"30s\", \"5m\", \"1h\"",
        })
    }
}

impl<'de> Deserialize<'de> for SizeStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UnitVisitor {
            parse: SizeStr::parse,
            expecting: "a size with a unit, e.g. \"512B\", \"64KiB\", \"1MiB\"",
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ms = |s: &str| DurationStr::parse(s).map(|d| d.0.as_millis());
        assert_eq!(ms("250ms"), Ok(250));
        assert_eq!(ms("30s"), Ok(30_000));
        assert_eq!(ms("5m"), Ok(300_000));
        assert_eq!(ms("1h"), Ok(3_600_000));
        assert_eq!(ms("1h30m"), Ok(5_400_000));
        assert_eq!(ms("0s"), Ok(0));
        for bad in [
            "",
            "30",
            "s",
            "1.5s",
            "-1s",
            "30 s",
            "30sec",
            "1h 30m",
            "99999999999999999999d",
        ] {
            assert!(ms(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn durations_display_in_their_largest_exact_unit() {
        let shown = |s: &str| DurationStr::parse(s).unwrap().to_string();
        assert_eq!(shown("31d"), "31d");
        assert_eq!(shown("90s"), "90s");
        assert_eq!(shown("1h30m"), "90m");
        assert_eq!(shown("1500ms"), "1500ms");
        assert_eq!(shown("0s"), "0ms");
    }

    #[test]
    fn sizes() {
        let b = |s: &str| SizeStr::parse(s).map(|s| s.0);
        assert_eq!(b("512B"), Ok(512));
        assert_eq!(b("64KiB"), Ok(65_536));
        assert_eq!(b("1MiB"), Ok(1_048_576));
        assert_eq!(b("2GiB"), Ok(2 << 30));
        assert_eq!(b("10MB"), Ok(10_000_000));
        for bad in [
            "",
            "64",
            "64kib",
            "KiB",
            "1.5MiB",
            "18446744073709551615GiB",
        ] {
            assert!(b(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn bare_number_is_refused_with_a_hint() {
        let err = serde_yaml::from_str::<DurationStr>("30")
            .unwrap_err()
            .to_string();
        assert!(err.contains("has no unit"), "{err}");
    }
}
