//! Timestamps and durations of time splits.
//!
//! A timestamp is an ISO 8601 date (`2024-03-01`) or date-time
//! (`2024-03-01T12:30:00`, a space instead of `T`, optional fractional
//! seconds, `Z` or a `+02:00`/`+0200`/`+02` offset; none means UTC), or a
//! number of seconds since 1970-01-01 UTC (`1709290000`, `1709290000.25`,
//! negative allowed). Both become nanoseconds since the epoch, so one column
//! may mix them. A duration is a sequence of number-unit pairs with units
//! `w`, `d`, `h`, `m`, `s` (`7d`, `12h`, `1d12h`, `90s`).

/// Nanoseconds since 1970-01-01T00:00:00Z.
pub type Nanos = i128;

const SECOND: i128 = 1_000_000_000;

/// Parses a timestamp; `None` when `s` is not one of the accepted forms.
pub fn parse(s: &str) -> Option<Nanos> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Some(n) = parse_epoch(s) {
        return Some(n);
    }
    parse_iso(s)
}

fn parse_epoch(s: &str) -> Option<Nanos> {
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    if let Ok(i) = s.parse::<i64>() {
        return Some(i128::from(i) * SECOND);
    }
    let f: f64 = s.parse().ok()?;
    if !f.is_finite() || f.abs() > 1e12 {
        return None;
    }
    Some((f * 1e9).round() as i128)
}

fn num(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_iso(s: &str) -> Option<Nanos> {
    // Every accepted form is ASCII; this also keeps the slicing below on character boundaries.
    if !s.is_ascii() {
        return None;
    }
    let (date, rest) = if s.len() > 10 {
        s.split_at(10)
    } else {
        (s, "")
    };
    let mut parts = date.split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let (y, m, d) = (num(y)?, num(m)?, num(d)?);
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    let mut nanos = i128::from(days_from_civil(y, m, d)) * 86_400 * SECOND;
    if rest.is_empty() {
        return Some(nanos);
    }
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    // The clock part ends where an offset starts.
    let tz_at = rest.find(['Z', 'z', '+', '-']).unwrap_or(rest.len());
    let (clock, tz) = rest.split_at(tz_at);
    let mut c = clock.split(':');
    let h = num(c.next()?).filter(|h| *h < 24)?;
    let mi = num(c.next()?).filter(|m| *m < 60)?;
    let (sec, frac) = match c.next() {
        None => (0, 0),
        Some(sf) => {
            let (sec, frac) = sf.split_once('.').unwrap_or((sf, ""));
            let sec = num(sec).filter(|s| *s < 60)?;
            let frac = if frac.is_empty() {
                if sf.contains('.') {
                    return None;
                }
                0
            } else {
                let digits: String = frac.chars().take(9).collect();
                if !frac.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                num(&digits)? * 10i64.pow(9 - digits.len() as u32)
            };
            (sec, frac)
        }
    };
    if c.next().is_some() {
        return None;
    }
    nanos += i128::from(h * 3600 + mi * 60 + sec) * SECOND + i128::from(frac);
    let offset = match tz {
        "" | "Z" | "z" => 0,
        _ => {
            let sign = if tz.starts_with('-') { -1 } else { 1 };
            let body = &tz[1..];
            let (oh, om) = match body.len() {
                2 => (num(body)?, 0),
                4 => (num(&body[..2])?, num(&body[2..])?),
                5 if &body[2..3] == ":" => (num(&body[..2])?, num(&body[3..])?),
                _ => return None,
            };
            if oh > 23 || om > 59 {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        }
    };
    // Local time minus its offset is UTC.
    Some(nanos - i128::from(offset) * SECOND)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the well-known
/// era-based conversion: 400-year eras of 146097 days, years starting in March).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses a duration like `7d`, `12h` or `1d12h`; `None` when malformed.
pub fn parse_duration(s: &str) -> Option<Nanos> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s == "0" {
        return Some(0);
    }
    let mut total: i128 = 0;
    let mut digits = String::new();
    for ch in s.chars() {
        if ch.is_ascii_digit() {
            digits.push(ch);
            continue;
        }
        let unit: i128 = match ch {
            'w' => 7 * 86_400,
            'd' => 86_400,
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        if digits.is_empty() {
            return None;
        }
        let n: i128 = digits.parse().ok()?;
        total = total.checked_add(n.checked_mul(unit * SECOND)?)?;
        digits.clear();
    }
    if !digits.is_empty() {
        return None;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i128 = 86_400 * SECOND;

    #[test]
    fn dates_and_datetimes() {
        assert_eq!(parse("1970-01-01"), Some(0));
        assert_eq!(parse("1970-01-02"), Some(DAY));
        assert_eq!(parse("2000-03-01"), Some(11_017 * DAY));
        assert_eq!(parse("1969-12-31"), Some(-DAY));
        assert_eq!(parse("2024-02-29T00:00:00Z"), Some(19_782 * DAY));
        assert_eq!(
            parse("2024-02-29T02:00:00+02:00"),
            parse("2024-02-29 00:00:00")
        );
        assert_eq!(
            parse("2024-02-29T00:00-0130"),
            Some(19_782 * DAY + 5400 * SECOND)
        );
        assert_eq!(
            parse("2024-02-29T00:00:00.25Z"),
            Some(19_782 * DAY + SECOND / 4)
        );
        for bad in [
            "2024-01-0é",
            "2024-01-01T10:00+0é",
            "2023-02-29",
            "2024-13-01",
            "2024-1-01",
            "24:00",
            "2024-01-01T25:00",
            "yesterday",
            "2024-01-01T10:00:00.",
            "2024-01-01X",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn epoch_seconds() {
        assert_eq!(parse("86400"), Some(DAY));
        assert_eq!(parse("-1.5"), Some(-3 * SECOND / 2));
        assert_eq!(parse("2007"), Some(2007 * SECOND));
        assert_eq!(parse("1e5"), None);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("7d"), Some(7 * DAY));
        assert_eq!(parse_duration("1d12h"), Some(DAY + DAY / 2));
        assert_eq!(parse_duration("2w"), Some(14 * DAY));
        assert_eq!(parse_duration("90s"), Some(90 * SECOND));
        assert_eq!(parse_duration("0"), Some(0));
        for bad in ["", "7", "d", "7x", "-1d"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
