//! A small, fast, non-cryptographic hasher for the literal-segment index of
//! wide trie nodes (the algorithm of rustc's `FxHasher`).
//!
//! Hash flooding is not a concern here: the maps are filled once from the
//! configuration, and request segments are only looked up. A lookup probes
//! until it meets an empty slot, so however a client crafts its segments it
//! cannot make probe sequences longer than the fixed table already has.

use std::hash::{BuildHasherDefault, Hasher};

pub(super) type FxBuildHasher = BuildHasherDefault<FxHasher>;

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

#[derive(Default, Clone, Copy)]
pub(super) struct FxHasher {
    hash: u64,
}

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let mut tail = [0u8; 8];
        for (t, b) in tail.iter_mut().zip(chunks.remainder()) {
            *t = *b;
        }
        self.add(u64::from_le_bytes(tail));
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}
