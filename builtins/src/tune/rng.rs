//! The seeded generator of the search strategies.
//!
//! SplitMix64, as [`crate::split`]'s, but with its own documented stream
//! derivation (see `docs/tuning-strategies.md`): a stream is a pure function
//! of `(seed, trial index, key)`, so trial `i`'s draws never depend on how
//! many trials were drawn before, on the thread drawing them, or on the
//! order the engine asks for them.

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// Domain separation from the crate's other seeded users of the same seed:
/// the ASCII bytes of `tune-v01`.
const DOMAIN: u64 = 0x7475_6e65_2d76_3031;

/// SplitMix64's output function applied to state `z` (one step of the
/// generator from `z`). A bijection of `u64`.
pub(crate) fn mix(z: u64) -> u64 {
    let mut z = z.wrapping_add(GOLDEN);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// FNV-1a (64-bit) of a parameter name: the key of that parameter's stream
/// under random search.
pub(crate) fn name_key(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[derive(Debug, Clone)]
pub(crate) struct Rng {
    state: u64,
}

impl Rng {
    /// The stream of trial `index` of the search seeded with `seed`, for the
    /// use named by `key`. For a fixed seed and key, distinct indices give
    /// distinct starting states (each step is a bijection).
    pub(crate) fn stream(seed: u64, index: u64, key: u64) -> Self {
        let per_trial = mix(mix(seed ^ DOMAIN).wrapping_add(index));
        Rng {
            state: mix(per_trial ^ key),
        }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let out = mix(self.state);
        self.state = self.state.wrapping_add(GOLDEN);
        out
    }

    /// Uniform in `[0, 1)`, on the 2^-53 grid.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `0..n`, without modulo bias (Lemire's method); 0 when `n` is 0.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        let n = n as u64;
        let threshold = n.wrapping_neg() % n;
        loop {
            let m = u128::from(self.next_u64()) * u128::from(n);
            if (m as u64) >= threshold {
                return (m >> 64) as usize;
            }
        }
    }

    /// A standard normal draw (Box-Muller, one of the pair).
    pub(crate) fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unit(); // (0, 1]
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_pure_and_distinct() {
        let a = Rng::stream(7, 3, 11).next_u64();
        assert_eq!(a, Rng::stream(7, 3, 11).next_u64());
        assert_ne!(a, Rng::stream(7, 4, 11).next_u64());
        assert_ne!(a, Rng::stream(8, 3, 11).next_u64());
        assert_ne!(a, Rng::stream(7, 3, 12).next_u64());
        // Pinned, so a change of the derivation (which would change every
        // recorded search) is a deliberate one.
        assert_eq!(Rng::stream(0, 0, 0).next_u64(), 0x9615_5bde_9f14_aafc);
    }

    #[test]
    fn below_and_normal_are_sane() {
        let mut r = Rng::stream(1, 2, 3);
        assert_eq!(r.below(0), 0);
        assert_eq!(r.below(1), 0);
        let mut seen = [0usize; 3];
        for _ in 0..3000 {
            seen[r.below(3)] += 1;
        }
        assert!(seen.iter().all(|&c| c > 900), "{seen:?}");
        let n = 20_000;
        let (mut s, mut s2) = (0.0, 0.0);
        for _ in 0..n {
            let z = r.normal();
            assert!(z.is_finite());
            s += z;
            s2 += z * z;
        }
        let mean = s / n as f64;
        let var = s2 / n as f64 - mean * mean;
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
    }
}
