//! MT19937 (Matsumoto & Nishimura 1998) with the reference `init_genrand` seeding, and NumPy's legacy
//! `RandomState.randint`/`choice` bounded draw (masked rejection), so a bootstrap here resamples the same rows
//! as `numpy.random.RandomState(seed)` does for obp.

const N: usize = 624;
const M: usize = 397;

/// The 32-bit Mersenne Twister.
#[derive(Clone)]
pub struct Mt19937 {
    state: [u32; N],
    index: usize,
}

impl Mt19937 {
    /// Seeded like the reference `init_genrand(seed)` (what `RandomState(int)` does).
    pub fn new(seed: u32) -> Mt19937 {
        let mut state = [0u32; N];
        state[0] = seed;
        for i in 1..N {
            let prev = state[i - 1];
            state[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        Mt19937 { state, index: N }
    }

    fn twist(&mut self) {
        // The reference recurrence, in three runs so no index needs a modulo (same order of updates).
        fn mix(a: u32, b: u32, c: u32) -> u32 {
            let y = (a & 0x8000_0000) | (b & 0x7fff_ffff);
            c ^ (y >> 1) ^ if y & 1 != 0 { 0x9908_b0df } else { 0 }
        }
        let s = &mut self.state;
        for i in 0..N - M {
            s[i] = mix(s[i], s[i + 1], s[i + M]);
        }
        for i in N - M..N - 1 {
            s[i] = mix(s[i], s[i + 1], s[i + M - N]);
        }
        s[N - 1] = mix(s[N - 1], s[0], s[M - 1]);
        self.index = 0;
    }

    /// `genrand_int32`.
    pub fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            self.twist();
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// A uniform index in `[0, n)` (`n ≤ 2³²`) by masked rejection, as NumPy's legacy bounded draw.
    pub fn below(&mut self, n: u64) -> u64 {
        let max = n - 1;
        if max == 0 {
            return 0;
        }
        let mask = u64::MAX >> max.leading_zeros();
        loop {
            let u = u64::from(self.next_u32()) & mask;
            if u <= max {
                return u;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_numpy_randomstate_12345() {
        // numpy.random.RandomState(12345): the first raw outputs and choice(10000) indices
        // (tools/obp/golden/index.json, mt19937_test_vector).
        let mut g = Mt19937::new(12345);
        let raw: Vec<u32> = (0..5).map(|_| g.next_u32()).collect();
        assert_eq!(
            raw,
            [3992670690, 3823185381, 1358822685, 561383553, 789925284]
        );
        let mut g = Mt19937::new(12345);
        let idx: Vec<u64> = (0..10).map(|_| g.below(10_000)).collect();
        assert_eq!(
            idx,
            [4578, 2177, 3492, 4094, 4478, 546, 7709, 3441, 7483, 6798]
        );
    }
}
