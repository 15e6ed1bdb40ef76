//! Text to `f32`, fast and exact.
//!
//! Reading a large CSV is mostly turning short decimal strings into floats, so
//! this is the hottest loop of every reader. The fast path handles the plain
//! forms data files are made of (`-12.5`, `3`, `1.25e-07`) and returns exactly
//! the value `str::parse::<f32>` would: the decimal is built in `f64` from an
//! integer mantissa of at most 2^53 and a power of ten of at most 10^22, both
//! exact, so one multiplication or division rounds once (correctly); rounding
//! that `f64` to `f32` can only go wrong when it lands exactly on a midpoint
//! between two `f32`s, and that case is sent to the standard parser. Anything
//! else unusual (more than 19 digits, huge exponents, `inf`) is too.

/// Powers of ten that are exact in `f64`.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Parses a plain decimal number at the start of `b`.
///
/// Returns the value and how many bytes it took, or `None` when `b` does not
/// start with a number the fast path can round exactly; the caller then finds
/// the whole field and asks [`parse_field`]. What follows the number is not
/// looked at: the caller checks it is a field end.
#[inline]
pub fn parse_prefix(b: &[u8]) -> Option<(f32, usize)> {
    let mut i = 0;
    let neg = match b.first() {
        Some(b'-') => {
            i = 1;
            true
        }
        Some(b'+') => {
            i = 1;
            false
        }
        _ => false,
    };
    let mut mant: u64 = 0;
    let int_start = i;
    while let Some(&c) = b.get(i) {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        // Wrapping keeps this branch-free; more than 19 digits is rejected below.
        mant = mant.wrapping_mul(10).wrapping_add(u64::from(d));
        i += 1;
    }
    let int_digits = i - int_start;
    let mut frac_digits = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let frac_start = i;
        while let Some(&c) = b.get(i) {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            mant = mant.wrapping_mul(10).wrapping_add(u64::from(d));
            i += 1;
        }
        frac_digits = i - frac_start;
    }
    let digits = int_digits + frac_digits;
    if digits == 0 || digits > 19 {
        return None;
    }
    let mut exp = -(frac_digits as i64);
    if b.get(i).is_some_and(|&c| c | 0x20 == b'e') {
        i += 1;
        let exp_neg = match b.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let exp_start = i;
        let mut e: i64 = 0;
        while let Some(&c) = b.get(i) {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            if e < 100_000 {
                e = e * 10 + i64::from(d);
            }
            i += 1;
        }
        if i == exp_start {
            return None;
        }
        exp += if exp_neg { -e } else { e };
    }
    if mant == 0 {
        return Some((if neg { -0.0 } else { 0.0 }, i));
    }
    if mant > 1 << 53 || !(-22..=22).contains(&exp) {
        return None;
    }
    let m = mant as f64;
    let d = if exp >= 0 {
        m * POW10[exp as usize]
    } else {
        m / POW10[(-exp) as usize]
    };
    // An f64 exactly halfway between two f32s: the true decimal may lie on
    // either side of it, so a second rounding could go the wrong way.
    if d.to_bits() & ((1 << 29) - 1) == 1 << 28 {
        return None;
    }
    let f = d as f32;
    Some((if neg { -f } else { f }, i))
}

/// Parses a whole field (already trimmed) as a number, or `None` if it is not one.
pub fn parse_field(b: &[u8]) -> Option<f32> {
    match parse_prefix(b) {
        Some((v, n)) if n == b.len() => Some(v),
        _ => std::str::from_utf8(b).ok()?.parse::<f32>().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small seeded generator so the test needs no dependency.
    struct SplitMix(u64);
    impl SplitMix {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn check(s: &str) {
        let want = s.parse::<f32>().ok();
        let got = parse_field(s.as_bytes());
        match (want, got) {
            (Some(w), Some(g)) => assert_eq!(w.to_bits(), g.to_bits(), "{s}: {w} vs {g}"),
            (None, None) => {}
            _ => panic!("{s}: std {want:?}, ours {got:?}"),
        }
    }

    #[test]
    fn plain_forms() {
        for s in [
            "0",
            "-0",
            "+0",
            "1",
            "-1",
            "1.",
            ".5",
            "-.5",
            "0.1",
            "3.14159",
            "1e5",
            "1E-5",
            "2.5e+3",
            "-1.23457e-05",
            "123456789012345678",
            "1234567890123456789",
            "12345678901234567890",
            "1e22",
            "1e23",
            "1e-22",
            "1e-23",
            "1e39",
            "1e-46",
            "inf",
            "-infinity",
            "NaN",
            "",
            "-",
            ".",
            "e5",
            "1e",
            "1e+",
            "1.2.3",
            "0x10",
            "1_0",
            "16777217",
            "0.000000000000000000001",
        ] {
            check(s);
        }
    }

    #[test]
    fn matches_std_on_random_floats_in_every_form() {
        let mut rng = SplitMix(42);
        for _ in 0..300_000 {
            let bits = rng.next() as u32;
            let f = f32::from_bits(bits);
            if !f.is_finite() {
                continue;
            }
            check(&format!("{f}"));
            check(&format!("{f:e}"));
            check(&format!("{:.6e}", f));
            let x = f as f64;
            check(&format!("{x:.9}"));
            check(&format!("{:.3}", x * 1e-30));
        }
    }

    #[test]
    fn matches_std_on_random_decimal_strings() {
        let mut rng = SplitMix(7);
        for _ in 0..500_000 {
            let mut s = String::new();
            if rng.below(2) == 0 {
                s.push('-');
            }
            for _ in 0..rng.below(12) {
                s.push(char::from(b'0' + rng.below(10) as u8));
            }
            if rng.below(3) > 0 {
                s.push('.');
                for _ in 0..rng.below(14) {
                    s.push(char::from(b'0' + rng.below(10) as u8));
                }
            }
            if rng.below(3) == 0 {
                s.push('e');
                s.push_str(&(rng.below(90) as i64 - 45).to_string());
            }
            check(&s);
        }
    }

    #[test]
    fn midpoints_go_to_the_exact_parser() {
        // 16777217 = 2^24 + 1 lies exactly between two f32s; ties go to even.
        check("16777217");
        check("16777219");
        check("33554434");
        check("33554438e0");
        // Each f32 midpoint written out in full, scaled into the fast range.
        let mut rng = SplitMix(3);
        for _ in 0..50_000 {
            let f = f32::from_bits((rng.next() as u32) & 0x7f7f_ffff);
            let mid = f as f64 + (f32::from_bits(f.to_bits() + 1) as f64 - f as f64) / 2.0;
            check(&format!("{mid}"));
            check(&format!("{mid:e}"));
        }
    }

    #[test]
    fn reports_how_much_it_read() {
        assert_eq!(parse_prefix(b"1.5,2"), Some((1.5, 3)));
        assert_eq!(parse_prefix(b"-2e3\n"), Some((-2000.0, 4)));
        assert_eq!(parse_prefix(b"abc"), None);
    }
}
