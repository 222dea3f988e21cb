//! Minimal civil-date handling. The mock only needs strict `YYYY-MM-DD`
//! parsing, today's date and RFC 3339 timestamps, which is not worth a
//! date-time dependency.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// Field order (year, month, day) makes the derived ordering chronological.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    pub year: i32,
    pub month: u32,
    pub day: u32,
}

fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

impl Date {
    pub fn new(year: i32, month: u32, day: u32) -> Option<Self> {
        if !(1..=9999).contains(&year) || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        Some(Self { year, month, day })
    }

    /// Strict ISO calendar date: exactly `YYYY-MM-DD`, digits only, real day.
    pub fn parse(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let digits = |r: std::ops::Range<usize>| -> Option<u32> {
            let part = s.get(r)?;
            if !part.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            part.parse().ok()
        };
        let year = i32::try_from(digits(0..4)?).ok()?;
        Self::new(year, digits(5..7)?, digits(8..10)?)
    }

    /// Days since 1970-01-01 (Howard Hinnant's days_from_civil).
    pub fn to_days(self) -> i64 {
        let y = i64::from(self.year) - i64::from(self.month <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i64::from(self.month);
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// Inverse of `to_days` (Howard Hinnant's civil_from_days).
    pub fn from_days(days: i64) -> Self {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
        Self { year, month, day }
    }

    pub fn add_days(self, n: i64) -> Self {
        Self::from_days(self.to_days() + n)
    }

    pub fn today() -> Self {
        Self::from_days(unix_now().0.div_euclid(86_400))
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// (seconds, milliseconds) since the Unix epoch; a clock before 1970 reads as 0.
fn unix_now() -> (i64, u32) {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (i64::try_from(d.as_secs()).unwrap_or(0), d.subsec_millis())
}

/// Current UTC time as RFC 3339, e.g. `2026-03-01T12:00:00.123Z`. Milliseconds
/// are kept so cache tests can tell a fresh answer from a cached one.
pub fn now_rfc3339() -> String {
    let (secs, millis) = unix_now();
    let date = Date::from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{date}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_dates() {
        assert_eq!(Date::parse("2026-02-28"), Date::new(2026, 2, 28));
        assert_eq!(Date::parse("2024-02-29"), Date::new(2024, 2, 29));
        assert!(Date::parse("2026-12-31").is_some());
    }

    #[test]
    fn rejects_bad_dates() {
        for bad in [
            "2026-02-30",
            "2026-02-29",
            "1900-02-29",
            "2026-13-01",
            "2026-00-10",
            "2026-04-31",
            "2026-1-1",
            "yesterday",
            "",
            "2026/01/01",
            "+026-01-01",
            "2026-01-1a",
            "2026-01-01T00:00:00",
            "0000-01-01",
        ] {
            assert_eq!(Date::parse(bad), None, "{bad:?} should be rejected");
        }
    }

    #[test]
    fn day_numbers_round_trip() {
        let epoch = Date::new(1970, 1, 1);
        assert_eq!(epoch.map(Date::to_days), Some(0));
        let mut d = Date::from_days(Date::parse("2023-12-25").map_or(0, Date::to_days));
        for _ in 0..800 {
            let next = d.add_days(1);
            assert!(next > d);
            assert_eq!(Date::from_days(next.to_days()), next);
            assert_eq!(Date::parse(&next.to_string()), Some(next));
            d = next;
        }
    }

    #[test]
    fn rfc3339_shape() {
        let s = now_rfc3339();
        assert_eq!(s.len(), 24, "{s}");
        assert!(Date::parse(&s[..10]).is_some(), "{s}");
        assert!(s.ends_with('Z'));
    }
}
