//! Cron timing for `pipeline schedule`: when each pipeline next fires.
//!
//! Five-field cron (`0 3 * * 1`), or six with seconds first, evaluated as
//! wall-clock time in the schedule's time zone (default: UTC), so a Monday
//! 03:00 Europe/Berlin schedule stays at 03:00 across daylight saving.

use croner::Cron;
use croner::parser::{CronParser, Seconds};
use jiff::Zoned;
use jiff::tz::TimeZone;

/// A parsed schedule: one or more cron expressions in one time zone.
#[derive(Debug, Clone)]
pub struct Timing {
    crons: Vec<Cron>,
    tz: TimeZone,
}

/// Parses one cron expression; the error says what is wrong.
pub fn parse_cron(cron: &str) -> Result<Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .build()
        .parse(cron)
        .map_err(|e| format!("`{cron}` is not a cron expression: {e}"))
}

/// Looks up an IANA time zone.
pub fn parse_timezone(name: &str) -> Result<TimeZone, String> {
    TimeZone::get(name).map_err(|_| format!("`{name}` is not a known time zone"))
}

impl Timing {
    /// Parses the cron expressions and the time zone (default UTC).
    pub fn new<S: AsRef<str>>(crons: &[S], timezone: Option<&str>) -> Result<Timing, String> {
        let crons = crons
            .iter()
            .map(|c| parse_cron(c.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        if crons.is_empty() {
            return Err("a schedule needs at least one cron expression".into());
        }
        let tz = match timezone {
            None => TimeZone::UTC,
            Some(name) => parse_timezone(name)?,
        };
        Ok(Timing { crons, tz })
    }

    /// The first firing strictly after `after`, of any of the expressions.
    ///
    /// Expressions are wall-clock times in the time zone. Where daylight
    /// saving skips an hour, a time inside it fires at the first valid time
    /// after the gap (02:30 on the spring change fires at 03:00). Where it
    /// repeats an hour, a time inside it fires once, on its first pass: the
    /// second pass through the same wall-clock times fires nothing.
    pub fn next_after(&self, after: &jiff::Timestamp) -> Option<Zoned> {
        self.crons
            .iter()
            .filter_map(|c| self.next_of(c, *after))
            .min_by_key(|z| z.timestamp())
    }

    fn next_of(&self, cron: &Cron, after: jiff::Timestamp) -> Option<Zoned> {
        let mut at = after;
        // A repeated hour holds at most an hour's worth of firings to skip.
        for _ in 0..4000 {
            let next = cron
                .find_next_occurrence(&at.to_zoned(self.tz.clone()), false)
                .ok()?;
            if !self.second_pass(&next) {
                return Some(next);
            }
            at = next.timestamp();
        }
        None
    }

    /// Whether `z` is on the second pass through a repeated wall-clock hour.
    fn second_pass(&self, z: &Zoned) -> bool {
        match self.tz.to_ambiguous_timestamp(z.datetime()).offset() {
            jiff::tz::AmbiguousOffset::Fold { before, .. } => z.offset() != before,
            _ => false,
        }
    }

    /// The next `count` firings after `from`, in order.
    pub fn preview(&self, from: jiff::Timestamp, count: usize) -> Vec<Zoned> {
        let mut out = Vec::with_capacity(count);
        let mut at = from;
        while out.len() < count {
            let Some(n) = self.next_after(&at) else { break };
            at = n.timestamp();
            out.push(n);
        }
        out
    }
}

/// A firing time in RFC 3339 with its UTC offset (`2026-03-29T03:00:00+02:00`).
pub fn rfc3339(z: &Zoned) -> String {
    z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekly_in_a_time_zone() {
        let t = Timing::new(&["0 3 * * 1"], Some("Europe/Berlin")).unwrap();
        // Sunday 2026-11-22 12:00 UTC -> Monday 2026-11-23 03:00 Berlin (02:00 UTC).
        let after: jiff::Timestamp = "2026-11-22T12:00:00Z".parse().unwrap();
        let next = t.next_after(&after).unwrap();
        assert_eq!(next.timestamp().to_string(), "2026-11-23T02:00:00Z");
    }

    #[test]
    fn bad_expressions_and_zones_are_explained() {
        assert!(
            Timing::new(&["0 3 * *"], None)
                .unwrap_err()
                .contains("not a cron expression")
        );
        assert!(
            Timing::new(&["0 3 * * 1"], Some("Mars/Olympus"))
                .unwrap_err()
                .contains("time zone")
        );
        assert!(Timing::new(&["*/2 * * * * *"], None).is_ok());
        assert!(Timing::new::<&str>(&[], None).is_err());
    }

    fn times(t: &Timing, from: &str, n: usize) -> Vec<String> {
        t.preview(from.parse().unwrap(), n)
            .iter()
            .map(rfc3339)
            .collect()
    }

    #[test]
    fn the_skipped_spring_hour_fires_at_the_first_valid_time() {
        // Europe/Berlin skips 02:00-03:00 on 2026-03-29.
        let t = Timing::new(&["30 2 * * *"], Some("Europe/Berlin")).unwrap();
        assert_eq!(
            times(&t, "2026-03-27T12:00:00Z", 3),
            [
                "2026-03-28T02:30:00+01:00",
                "2026-03-29T03:00:00+02:00",
                "2026-03-30T02:30:00+02:00"
            ]
        );
    }

    #[test]
    fn the_repeated_autumn_hour_fires_once() {
        // Europe/Berlin goes through 02:00-03:00 twice on 2026-10-25.
        let daily = Timing::new(&["30 2 * * *"], Some("Europe/Berlin")).unwrap();
        assert_eq!(
            times(&daily, "2026-10-23T12:00:00Z", 3),
            [
                "2026-10-24T02:30:00+02:00",
                "2026-10-25T02:30:00+02:00",
                "2026-10-26T02:30:00+01:00"
            ]
        );
        let half_hourly = Timing::new(&["*/30 * * * *"], Some("Europe/Berlin")).unwrap();
        assert_eq!(
            times(&half_hourly, "2026-10-24T23:50:00Z", 4),
            [
                "2026-10-25T02:00:00+02:00",
                "2026-10-25T02:30:00+02:00",
                "2026-10-25T03:00:00+01:00",
                "2026-10-25T03:30:00+01:00"
            ]
        );
    }

    #[test]
    fn several_expressions_fire_in_order_and_a_shared_time_once() {
        let t = Timing::new(&["0 3 * * 1", "0 3 1 * *"], Some("Europe/Berlin")).unwrap();
        // 2027-02-01 is a Monday and the first of the month: once.
        assert_eq!(
            times(&t, "2027-01-20T00:00:00Z", 4),
            [
                "2027-01-25T03:00:00+01:00",
                "2027-02-01T03:00:00+01:00",
                "2027-02-08T03:00:00+01:00",
                "2027-02-15T03:00:00+01:00"
            ]
        );
    }
}
