//! Which cron firings are due, and which of them run: the catch-up and
//! starting-deadline rules, as pure functions of the schedule, the cursor
//! (up to when firings were dealt with) and the clock.
//!
//! A firing is *on time* when it came due since the scheduler last looked
//! (with a minute's slack); any other due firing was missed (the scheduler
//! was down, suspended in a debugger, or the machine slept), and
//! `catch_up` decides which missed ones still run: `none`, only the
//! `latest`, or `all` of them up to `max_catch_up` (the latest ones). A
//! `starting_deadline` then drops any firing that is later than it.

use jiff::{SignedDuration, Timestamp, Zoned};

use super::cron::Timing;
use crate::spec::model::{CatchUp, Schedule};

/// The slack an on-time firing is allowed beyond the scheduler's own tick.
pub const ON_TIME_SLACK: SignedDuration = SignedDuration::from_secs(60);

/// At most this many missed firings are recorded one by one (the latest); the rest are counted.
const LISTED_MISSED: usize = 100;

/// At most this many firings are walked in one look; older ones are counted as missed.
const WALK_LIMIT: usize = 100_000;

/// What to do with the firings due in (cursor, now].
#[derive(Debug, Default)]
pub struct Due {
    /// To start, oldest first.
    pub run: Vec<Zoned>,
    /// Not to start, with the reason (the latest missed ones, oldest first).
    pub missed: Vec<(Zoned, String)>,
    /// Missed firings not listed in `missed` (too many to list).
    pub missed_unlisted: u64,
    /// Firings in `run` at or before this time are caught up (missed, run late).
    pub caught_up_until: Option<Timestamp>,
}

/// The firings in (`after`, `upto`]: the last `keep` of them, how many there
/// were, and whether that count is exact (walks are bounded).
pub fn between(
    timing: &Timing,
    after: Timestamp,
    upto: Timestamp,
    keep: usize,
) -> (Vec<Zoned>, u64, bool) {
    let walk = |from: Timestamp| {
        let mut kept = std::collections::VecDeque::new();
        let mut n = 0usize;
        let mut at = from;
        while n < WALK_LIMIT {
            let Some(z) = timing.next_after(&at) else {
                break;
            };
            if z.timestamp() > upto {
                break;
            }
            at = z.timestamp();
            n += 1;
            kept.push_back(z);
            if kept.len() > keep {
                kept.pop_front();
            }
        }
        (Vec::from(kept), n)
    };
    let (kept, n) = walk(after);
    if n < WALK_LIMIT {
        return (kept, n as u64, true);
    }
    // Too many to walk from the cursor: find the latest ones in a window
    // before `upto`, widening it until it holds `keep` or reaches the cursor.
    let mut w = SignedDuration::from_secs(60);
    loop {
        let lo = upto.checked_sub(w).unwrap_or(Timestamp::MIN).max(after);
        let (kept, m) = walk(lo);
        if kept.len() >= keep || lo == after || m >= WALK_LIMIT {
            return (kept, (n as u64).max(m as u64), false);
        }
        w = w.checked_mul(4).unwrap_or(SignedDuration::MAX);
    }
}

/// Decides the due cron firings: those after `cursor` up to `now`, where the
/// scheduler last looked at `last_look` (at start: `now`) and a tick spans
/// `tick` of clock time.
pub fn due(
    timing: &Timing,
    sched: &Schedule,
    cursor: Timestamp,
    last_look: Timestamp,
    now: Timestamp,
    tick: SignedDuration,
) -> Due {
    let keep = match sched.catch_up {
        CatchUp::All => sched.max_catch_up.unwrap_or(1) as usize,
        _ => 1,
    };
    let on_time_from = last_look
        .checked_sub(ON_TIME_SLACK + tick)
        .unwrap_or(Timestamp::MIN);
    let split = cursor.max(on_time_from);
    // On-time firings are few (one look's worth); the missed ones are walked apart.
    let (on_time, _, _) = between(timing, split, now, usize::MAX);
    let (missed, missed_n, _) = if split > cursor {
        between(timing, cursor, split, keep.max(LISTED_MISSED))
    } else {
        (vec![], 0, true)
    };
    let mut out = Due {
        caught_up_until: Some(split),
        ..Due::default()
    };
    let unlisted = missed_n.saturating_sub(missed.len() as u64);
    let reason_all_missed = "missed: the scheduler was not running then (catch_up: none)";
    match sched.catch_up {
        CatchUp::None => {
            out.missed = missed
                .into_iter()
                .map(|z| (z, reason_all_missed.to_string()))
                .collect();
            out.missed_unlisted = unlisted;
            out.run = on_time;
        }
        CatchUp::Latest => {
            out.missed_unlisted = unlisted;
            let n = missed.len();
            for (i, z) in missed.into_iter().enumerate() {
                if i + 1 == n && on_time.is_empty() {
                    out.run.push(z);
                } else {
                    out.missed.push((
                        z,
                        "missed: catch_up: latest runs only the latest missed firing".into(),
                    ));
                }
            }
            out.run.extend(on_time);
        }
        CatchUp::All => {
            out.missed_unlisted = unlisted;
            let first_run = missed.len().saturating_sub(keep);
            for (i, z) in missed.into_iter().enumerate() {
                if i < first_run {
                    out.missed.push((
                        z,
                        format!("missed: catch_up: all runs at most max_catch_up ({keep}) missed firings, the latest"),
                    ));
                } else {
                    out.run.push(z);
                }
            }
            out.run.extend(on_time);
        }
    }
    if let Some(deadline) = sched.starting_deadline {
        let deadline = SignedDuration::try_from(deadline).unwrap_or(SignedDuration::MAX);
        let (run, late): (Vec<_>, Vec<_>) = out
            .run
            .into_iter()
            .partition(|z| now.duration_since(z.timestamp()) <= deadline);
        out.run = run;
        for z in late {
            out.missed.push((
                z,
                format!(
                    "missed: not started within its starting_deadline ({})",
                    crate::spec::model::duration::format(deadline.unsigned_abs())
                ),
            ));
        }
        out.missed.sort_by_key(|(z, _)| z.timestamp());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::model::{Concurrency, Schedule};

    fn sched(catch_up: CatchUp, max: Option<u32>, deadline: Option<u64>) -> Schedule {
        Schedule {
            cron: vec!["0 * * * *".into()],
            timezone: None,
            only_if_inputs_changed: false,
            concurrency: Concurrency::Forbid,
            catch_up,
            max_catch_up: max,
            starting_deadline: deadline.map(std::time::Duration::from_secs),
            suspend: false,
            on_change: vec![],
            poll_interval: std::time::Duration::from_secs(60),
        }
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn hours(zs: &[Zoned]) -> Vec<i8> {
        zs.iter().map(|z| z.hour()).collect()
    }

    const TICK: SignedDuration = SignedDuration::from_secs(1);

    #[test]
    fn an_on_time_firing_runs_whatever_the_catch_up_policy() {
        let t = Timing::new(&["0 * * * *"], None).unwrap();
        for c in [CatchUp::None, CatchUp::Latest, CatchUp::All] {
            let d = due(
                &t,
                &sched(c, (c == CatchUp::All).then_some(5), None),
                ts("2026-05-01T02:30:00Z"),
                ts("2026-05-01T02:59:59Z"),
                ts("2026-05-01T03:00:01Z"),
                TICK,
            );
            assert_eq!(hours(&d.run), [3], "{c:?}");
            assert!(d.missed.is_empty());
        }
    }

    #[test]
    fn two_hours_of_downtime_under_each_policy() {
        // Down from 02:30 to 05:30: 03:00, 04:00 and 05:00 were missed.
        let t = Timing::new(&["0 * * * *"], None).unwrap();
        let (cursor, now) = (ts("2026-05-01T02:30:00Z"), ts("2026-05-01T05:30:00Z"));
        let none = due(
            &t,
            &sched(CatchUp::None, None, None),
            cursor,
            now,
            now,
            TICK,
        );
        assert!(none.run.is_empty());
        assert_eq!(none.missed.len(), 3);
        assert_eq!(none.missed_unlisted, 0);
        let latest = due(
            &t,
            &sched(CatchUp::Latest, None, None),
            cursor,
            now,
            now,
            TICK,
        );
        assert_eq!(hours(&latest.run), [5]);
        let all = due(
            &t,
            &sched(CatchUp::All, Some(10), None),
            cursor,
            now,
            now,
            TICK,
        );
        assert_eq!(hours(&all.run), [3, 4, 5]);
        let bounded = due(
            &t,
            &sched(CatchUp::All, Some(2), None),
            cursor,
            now,
            now,
            TICK,
        );
        assert_eq!(hours(&bounded.run), [4, 5]);
        assert_eq!(bounded.missed.len(), 1);
        // A 45-minute deadline lets only 05:00 start at 05:30.
        let late = due(
            &t,
            &sched(CatchUp::All, Some(10), Some(2700)),
            cursor,
            now,
            now,
            TICK,
        );
        assert_eq!(hours(&late.run), [5]);
        assert_eq!(late.missed.len(), 2);
        assert!(
            late.missed[0].1.contains("starting_deadline (45m)"),
            "{:?}",
            late.missed
        );
    }

    #[test]
    fn a_year_of_downtime_on_a_per_minute_schedule_is_bounded_work() {
        let t = Timing::new(&["* * * * *"], None).unwrap();
        let (cursor, now) = (ts("2025-05-01T00:00:00Z"), ts("2026-05-01T00:00:30Z"));
        let started = std::time::Instant::now();
        let d = due(
            &t,
            &sched(CatchUp::All, Some(3), None),
            cursor,
            now,
            now,
            TICK,
        );
        // The three latest missed ones, then the one of the last minute (on time).
        assert_eq!(d.run.len(), 4);
        assert_eq!(d.run[2].timestamp(), ts("2026-04-30T23:59:00Z"));
        assert_eq!(d.run[3].timestamp(), ts("2026-05-01T00:00:00Z"));
        assert!(d.missed_unlisted >= 99_000, "{}", d.missed_unlisted);
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]
        /// Whatever the policy, the cursor and the clock: every firing decided
        /// on lies in (cursor, now], none is both run and missed, runs are in
        /// order, and at most `max_catch_up` missed ones (plus on-time ones) run.
        #[test]
        fn decisions_stay_within_the_window(
            cursor_min in 0i64..20_000,
            down_min in 0i64..5_000,
            policy in 0usize..3,
            max in 1u32..20,
            deadline_min in proptest::option::of(1u64..600),
            expr in proptest::sample::select(vec!["*/7 * * * *", "0 * * * *", "30 2 * * *", "*/30 * * * *"]),
        ) {
            let t = Timing::new(&[expr], Some("Europe/Berlin")).unwrap();
            let base = ts("2026-03-25T00:00:00Z");
            let cursor = base + SignedDuration::from_mins(cursor_min);
            let now = cursor + SignedDuration::from_mins(down_min);
            let c = [CatchUp::None, CatchUp::Latest, CatchUp::All][policy];
            let s = sched(c, (c == CatchUp::All).then_some(max), deadline_min.map(|m| m * 60));
            let d = due(&t, &s, cursor, now, now, TICK);
            for z in d.run.iter().chain(d.missed.iter().map(|(z, _)| z)) {
                proptest::prop_assert!(z.timestamp() > cursor && z.timestamp() <= now);
            }
            proptest::prop_assert!(d.run.windows(2).all(|w| w[0].timestamp() < w[1].timestamp()));
            for z in &d.run {
                proptest::prop_assert!(!d.missed.iter().any(|(m, _)| m.timestamp() == z.timestamp()));
            }
            let late = d.run.iter().filter(|z| d.caught_up_until.is_some_and(|u| z.timestamp() <= u)).count();
            let bound = match c { CatchUp::None => 0, CatchUp::Latest => 1, CatchUp::All => max as usize };
            proptest::prop_assert!(late <= bound, "{late} caught up, bound {bound}");
        }
    }
}
