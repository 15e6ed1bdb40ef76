//! The scheduler's clock: the system's, or a test clock that starts at a
//! given time and may run faster than real time (`--now`, `--clock-rate`),
//! so that tests drive firings, downtime and daylight-saving changes
//! without waiting for the wall clock.

use std::time::{Duration, Instant};

use jiff::Timestamp;

#[derive(Debug, Clone)]
pub struct Clock {
    /// `None`: the system clock.
    origin: Option<(Timestamp, Instant)>,
    rate: f64,
}

impl Clock {
    pub fn system() -> Clock {
        Clock {
            origin: None,
            rate: 1.0,
        }
    }

    /// A clock that reads `start` now and advances `rate` seconds a real second.
    pub fn starting_at(start: Timestamp, rate: f64) -> Clock {
        Clock {
            origin: Some((start, Instant::now())),
            rate,
        }
    }

    /// The system clock, or with `start`/`rate` a test clock (a rate alone
    /// starts from the system's time).
    pub fn new(start: Option<Timestamp>, rate: Option<f64>) -> Clock {
        match (start, rate) {
            (None, None) => Clock::system(),
            (s, r) => Clock::starting_at(s.unwrap_or_else(Timestamp::now), r.unwrap_or(1.0)),
        }
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    pub fn now(&self) -> Timestamp {
        match self.origin {
            None => Timestamp::now(),
            Some((start, at)) => {
                let ns = at.elapsed().as_nanos() as f64 * self.rate;
                let d = jiff::SignedDuration::from_nanos(ns.min(i64::MAX as f64) as i64);
                start.checked_add(d).unwrap_or(Timestamp::MAX)
            }
        }
    }

    /// The real time until the clock reads `t` (zero if it has passed).
    pub fn real_until(&self, t: Timestamp) -> Duration {
        let ahead = t.duration_since(self.now());
        if !ahead.is_positive() {
            return Duration::ZERO;
        }
        Duration::try_from(ahead)
            .unwrap_or(Duration::MAX)
            .div_f64(self.rate)
    }

    /// How much clock time passes in `real` real time.
    pub fn span_of(&self, real: Duration) -> jiff::SignedDuration {
        jiff::SignedDuration::try_from(real.mul_f64(self.rate)).unwrap_or(jiff::SignedDuration::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fast_test_clock_runs_ahead_at_its_rate() {
        let start: Timestamp = "2026-03-29T00:00:00Z".parse().unwrap();
        let c = Clock::starting_at(start, 3600.0);
        std::thread::sleep(Duration::from_millis(20));
        let ahead = c.now().duration_since(start);
        // 20 ms real is at least 72 s of clock time.
        assert!(ahead >= jiff::SignedDuration::from_secs(72), "{ahead:?}");
        let target = start + jiff::SignedDuration::from_secs(3600 * 10);
        let wait = c.real_until(target);
        assert!(wait <= Duration::from_secs(10) && wait > Duration::from_secs(9));
        assert_eq!(c.real_until(start), Duration::ZERO);
    }
}
