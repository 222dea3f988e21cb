//! W3C Trace Context: the `traceparent` header read and written, ids made, and
//! the trace-id ratio decision.
//!
//! `traceparent` is `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`; bit 0
//! of the flags says the caller sampled the trace. A header from a later version
//! is read by its first four fields, as the recommendation asks.

use http::HeaderValue;

/// One `traceparent`'s content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: u128,
    pub parent_id: u64,
    pub sampled: bool,
}

/// Length of a version-00 `traceparent`.
const LEN: usize = 55;

/// Reads a `traceparent` value; None when it is not one (then the trace restarts).
pub fn parse(value: &[u8]) -> Option<TraceParent> {
    if value.len() < LEN || value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
        return None;
    }
    let version = hex_u64(&value[0..2])?;
    // `ff` is forbidden; version 00 has exactly four fields, later ones may add more.
    let later_ok = value.len() == LEN || value[LEN] == b'-';
    if version == 0xff || (version == 0 && value.len() != LEN) || !later_ok {
        return None;
    }
    let trace_id =
        (u128::from(hex_u64(&value[3..19])?) << 64) | u128::from(hex_u64(&value[19..35])?);
    let parent_id = hex_u64(&value[36..52])?;
    let flags = hex_u64(&value[53..55])?;
    (trace_id != 0 && parent_id != 0).then_some(TraceParent {
        trace_id,
        parent_id,
        sampled: flags & 1 == 1,
    })
}

/// Lowercase hex digits only (the header allows no upper case).
fn hex_u64(digits: &[u8]) -> Option<u64> {
    let mut n: u64 = 0;
    for &d in digits {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => return None,
        };
        n = (n << 4) | u64::from(v);
    }
    Some(n)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn put_hex(out: &mut [u8], mut n: u128) {
    for slot in out.iter_mut().rev() {
        *slot = HEX[(n & 0xf) as usize];
        n >>= 4;
    }
}

/// The trace id as 32 lowercase hex digits (the access log's `trace_id`).
pub fn trace_id_hex(trace_id: u128) -> [u8; 32] {
    let mut out = [0u8; 32];
    put_hex(&mut out, trace_id);
    out
}

/// The `traceparent` to send on: this trace, `parent_id` as the caller's parent.
pub fn traceparent(trace_id: u128, parent_id: u64, sampled: bool) -> HeaderValue {
    let mut out = *b"00-00000000000000000000000000000000-0000000000000000-00";
    put_hex(&mut out[3..35], trace_id);
    put_hex(&mut out[36..52], u128::from(parent_id));
    if sampled {
        out[54] = b'1';
    }
    // Hex digits and dashes only: always a valid header value.
    HeaderValue::from_bytes(&out).unwrap_or(HeaderValue::from_static(""))
}

/// A new trace id (never zero, which means "none").
pub fn new_trace_id() -> u128 {
    rand::random::<u128>().max(1)
}

/// A new span id (never zero).
pub fn new_span_id() -> u64 {
    rand::random::<u64>().max(1)
}

/// The bound [`ratio_sampled`] compares with, for a ratio in 0..=1.
pub fn ratio_bound(ratio: f64) -> u64 {
    // 2^63 · ratio, as OpenTelemetry's TraceIdRatioBased computes it.
    (ratio.clamp(0.0, 1.0) * (1u64 << 63) as f64) as u64
}

/// OpenTelemetry's trace-id ratio decision: the low 8 bytes of the id, shifted
/// right once, below the bound. Deterministic per trace, so every service that
/// decides by the same ratio keeps the same traces.
pub fn ratio_sampled(trace_id: u128, bound: u64) -> bool {
    ((trace_id as u64) >> 1) < bound
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_recommendations_example_parses_and_writes_back() {
        let p = parse(EXAMPLE.as_bytes()).unwrap();
        assert_eq!(p.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(p.parent_id, 0x00f067aa0ba902b7);
        assert!(p.sampled);
        assert_eq!(traceparent(p.trace_id, p.parent_id, true), EXAMPLE);
        assert_eq!(
            traceparent(p.trace_id, 1, false),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000001-00"
        );
        assert_eq!(
            &trace_id_hex(p.trace_id),
            b"4bf92f3577b34da6a3ce929d0e0e4736"
        );
    }

    #[test]
    fn what_is_no_traceparent_is_refused() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        ] {
            assert_eq!(parse(bad.as_bytes()), None, "{bad}");
        }
        // A later version with more fields is read by its first four.
        let later = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-what-comes";
        assert_eq!(parse(later.as_bytes()).map(|p| p.sampled), Some(false));
    }

    #[test]
    fn the_ratio_decision_keeps_its_share_and_its_extremes() {
        let (none, all, tenth) = (ratio_bound(0.0), ratio_bound(1.0), ratio_bound(0.1));
        let ids: Vec<u128> = (0..20_000).map(|_| new_trace_id()).collect();
        assert!(ids.iter().all(|&id| ratio_sampled(id, all)));
        assert!(!ids.iter().any(|&id| ratio_sampled(id, none)));
        let kept = ids.iter().filter(|&&id| ratio_sampled(id, tenth)).count();
        assert!((1_600..2_400).contains(&kept), "{kept} of 20000 at 0.1");
        assert!(
            ratio_sampled(u128::MAX << 64, tenth),
            "low bytes zero: kept"
        );
        assert!(!ratio_sampled(u128::from(u64::MAX), tenth));
    }
}
