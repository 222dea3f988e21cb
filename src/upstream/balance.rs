//! Target selection algorithms. All are lock-free on the request path.

use super::Target;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Smooth weighted round robin (nginx's algorithm), precomputed as one full cycle
/// so that picking is one atomic increment: weights 1:2 give `b a b`, never `a b b`.
#[derive(Debug)]
pub(super) struct Schedule {
    order: Vec<usize>,
    cursor: AtomicUsize,
}

impl Schedule {
    pub(super) fn new(weights: &[u32]) -> Self {
        let total: i64 = weights.iter().map(|w| i64::from(*w)).sum();
        let mut current = vec![0i64; weights.len()];
        let mut order = Vec::with_capacity(total as usize);
        for _ in 0..total {
            let mut best = 0;
            for (i, w) in weights.iter().enumerate() {
                current[i] += i64::from(*w);
                if current[i] > current[best] {
                    best = i;
                }
            }
            current[best] -= total;
            order.push(best);
        }
        Self {
            order,
            cursor: AtomicUsize::new(0),
        }
    }

    /// The next target in the cycle that `ok` accepts.
    pub(super) fn next(&self, ok: impl Fn(usize) -> bool) -> Option<usize> {
        let len = self.order.len();
        if len == 0 {
            return None;
        }
        let start = self.cursor.fetch_add(1, Ordering::Relaxed);
        (0..len)
            .map(|step| self.order[(start + step) % len])
            .find(|&i| ok(i))
    }
}

/// A random target, each with probability proportional to its weight.
pub(super) fn weighted_random(targets: &[Target], ok: impl Fn(usize) -> bool) -> Option<usize> {
    let total: u64 = (0..targets.len())
        .filter(|&i| ok(i))
        .map(|i| u64::from(targets[i].weight))
        .sum();
    if total == 0 {
        return None;
    }
    let mut pick = rand::random::<u64>() % total;
    for (i, t) in targets.iter().enumerate() {
        if !ok(i) {
            continue;
        }
        let w = u64::from(t.weight);
        if pick < w {
            return Some(i);
        }
        pick -= w;
    }
    None
}

/// The target with the fewest requests in flight per unit of weight; ties go round
/// robin so idle targets share the load.
pub(super) fn least_conn(
    targets: &[Target],
    schedule: &Schedule,
    ok: impl Fn(usize) -> bool,
) -> Option<usize> {
    let start = schedule.next(&ok)?;
    let n = targets.len();
    let load =
        |i: usize| targets[i].active_requests() as u64 * 1000 / u64::from(targets[i].weight.max(1));
    (0..n)
        .map(|step| (start + step) % n)
        .filter(|&i| ok(i))
        .min_by_key(|&i| load(i))
}

/// Weighted rendezvous hashing: every key has a stable preferred target, and when a
/// target leaves only its own keys move.
pub(super) fn rendezvous(
    targets: &[Target],
    key: &[u8],
    ok: impl Fn(usize) -> bool,
) -> Option<usize> {
    let key_hash = fnv1a(key, 0xcbf2_9ce4_8422_2325);
    targets
        .iter()
        .enumerate()
        .filter(|(i, _)| ok(*i))
        .map(|(i, t)| {
            let h = mix(key_hash ^ fnv1a(t.label.as_bytes(), 0x8422_2325_cbf2_9ce4));
            // Uniform in (0, 1]; score = -w / ln(u) makes the winner weight-proportional.
            let u = ((h >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
            (i, -f64::from(t.weight) / u.ln())
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i)
}

fn fnv1a(bytes: &[u8], seed: u64) -> u64 {
    bytes.iter().fold(seed, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// splitmix64 finaliser: spreads FNV's weak low bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smooth_schedule_interleaves() {
        let s = Schedule::new(&[5, 1, 1]);
        assert_eq!(s.order, [0, 0, 1, 0, 2, 0, 0]);
        let s = Schedule::new(&[1, 2]);
        assert_eq!(s.order, [1, 0, 1]);
    }
}
