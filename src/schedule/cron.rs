//! Cron timing for `pipeline schedule`: when each pipeline next fires.
//!
//! Five-field cron (`0 3 * * 1`), or six with seconds first, evaluated as
//! wall-clock time in the schedule's time zone (default: UTC), so a Monday
//! 03:00 Europe/Berlin schedule stays at 03:00 across daylight saving.

use croner::Cron;
use croner::parser::{CronParser, Seconds};
use jiff::Zoned;
use jiff::tz::TimeZone;

/// A parsed schedule.
#[derive(Debug, Clone)]
pub struct Timing {
    cron: Cron,
    tz: TimeZone,
}

impl Timing {
    /// Parses the cron expression and time zone; the error says which is wrong.
    pub fn new(cron: &str, timezone: Option<&str>) -> Result<Timing, String> {
        let parsed = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(cron)
            .map_err(|e| format!("`{cron}` is not a cron expression: {e}"))?;
        let tz = match timezone {
            None => TimeZone::UTC,
            Some(name) => {
                TimeZone::get(name).map_err(|_| format!("`{name}` is not a known time zone"))?
            }
        };
        Ok(Timing { cron: parsed, tz })
    }

    /// The first firing strictly after `after`.
    pub fn next_after(&self, after: &jiff::Timestamp) -> Option<Zoned> {
        let start = after.to_zoned(self.tz.clone());
        self.cron.find_next_occurrence(&start, false).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekly_in_a_time_zone() {
        let t = Timing::new("0 3 * * 1", Some("Europe/Berlin")).unwrap();
        // Sunday 2026-11-22 12:00 UTC -> Monday 2026-11-23 03:00 Berlin (02:00 UTC).
        let after: jiff::Timestamp = "2026-11-22T12:00:00Z".parse().unwrap();
        let next = t.next_after(&after).unwrap();
        assert_eq!(next.timestamp().to_string(), "2026-11-23T02:00:00Z");
    }

    #[test]
    fn bad_expressions_and_zones_are_explained() {
        assert!(
            Timing::new("0 3 * *", None)
                .unwrap_err()
                .contains("not a cron expression")
        );
        assert!(
            Timing::new("0 3 * * 1", Some("Mars/Olympus"))
                .unwrap_err()
                .contains("time zone")
        );
        assert!(Timing::new("*/2 * * * * *", None).is_ok());
    }
}
