//! What `pipeline schedule` keeps in the run database: each scheduled
//! pipeline (its file, timing, and how far its firings have been dealt with)
//! and each firing, keyed by (pipeline, scheduled time, trigger).
//!
//! The key is what makes a restart safe: a firing is claimed by inserting
//! its row, which succeeds once, so no firing runs twice; and the cursor
//! says up to when every firing was dealt with, so none is lost.

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::{RunsDb, from_json, json, now_rfc3339};
use crate::error::Result;

pub(super) const MIGRATION_2: &str = "
CREATE TABLE IF NOT EXISTS schedules(
    pipeline TEXT PRIMARY KEY, file TEXT NOT NULL, timing TEXT NOT NULL, registered_at TEXT NOT NULL,
    cursor_unix INTEGER NOT NULL, watch TEXT, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS firings(
    pipeline TEXT NOT NULL, at_unix INTEGER NOT NULL, at TEXT NOT NULL, trigger TEXT NOT NULL,
    status TEXT NOT NULL, reason TEXT, run_id TEXT, inputs TEXT, claimed_at TEXT NOT NULL,
    finished_at TEXT,
    PRIMARY KEY(pipeline, at_unix, trigger));
PRAGMA user_version = 2;";

/// When a pipeline fires, as the scheduler last registered it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TimingRecord {
    #[serde(default)]
    pub cron: Vec<String>,
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub on_change: Vec<String>,
    #[serde(default)]
    pub suspend: bool,
}

/// A scheduled pipeline.
#[derive(Debug, Clone)]
pub struct ScheduleRow {
    pub pipeline: String,
    pub file: String,
    pub timing: TimingRecord,
    pub registered_at: String,
    /// Every cron firing at or before this time (Unix seconds) was dealt with.
    pub cursor_unix: i64,
    /// `on_change`: the inputs' digests last acted on (name -> digest).
    pub watch: Option<std::collections::BTreeMap<String, String>>,
}

/// What started a firing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Cron,
    Change,
}

impl Trigger {
    pub fn as_str(&self) -> &'static str {
        match self {
            Trigger::Cron => "cron",
            Trigger::Change => "change",
        }
    }
    fn parse(s: &str) -> Trigger {
        if s == "change" {
            Trigger::Change
        } else {
            Trigger::Cron
        }
    }
}

/// Where a firing is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FiringStatus {
    /// A missed firing waiting its turn to run (caught up one after another).
    Queued,
    /// Claimed, its run id chosen, its run not yet seen started.
    Starting,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    /// Cancelled to make way for a later firing (`concurrency: replace`).
    Replaced,
    /// Not run: a policy said so (`forbid`, inputs unchanged); `reason` says which.
    Skipped,
    /// Not run: its time passed while the scheduler was down or late.
    Missed,
}

impl FiringStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            FiringStatus::Queued => "queued",
            FiringStatus::Starting => "starting",
            FiringStatus::Running => "running",
            FiringStatus::Succeeded => "succeeded",
            FiringStatus::Failed => "failed",
            FiringStatus::Cancelled => "cancelled",
            FiringStatus::Replaced => "replaced",
            FiringStatus::Skipped => "skipped",
            FiringStatus::Missed => "missed",
        }
    }
    fn parse(s: &str) -> FiringStatus {
        match s {
            "queued" => FiringStatus::Queued,
            "starting" => FiringStatus::Starting,
            "running" => FiringStatus::Running,
            "succeeded" => FiringStatus::Succeeded,
            "failed" => FiringStatus::Failed,
            "cancelled" => FiringStatus::Cancelled,
            "replaced" => FiringStatus::Replaced,
            "skipped" => FiringStatus::Skipped,
            _ => FiringStatus::Missed,
        }
    }
    /// Still has (or is about to have) a run in progress.
    pub fn is_open(&self) -> bool {
        matches!(
            self,
            FiringStatus::Queued | FiringStatus::Starting | FiringStatus::Running
        )
    }
}

/// One firing of a pipeline's schedule.
#[derive(Debug, Clone, Serialize)]
pub struct Firing {
    pub pipeline: String,
    /// The scheduled time, Unix seconds (the key).
    pub at_unix: i64,
    /// The scheduled time in RFC 3339 with the schedule's UTC offset.
    pub at: String,
    pub trigger: Trigger,
    pub status: FiringStatus,
    pub reason: Option<String>,
    pub run_id: Option<String>,
    /// The combined digest of the inputs when it fired (`only_if_inputs_changed`).
    pub inputs: Option<String>,
    pub claimed_at: String,
    pub finished_at: Option<String>,
}

impl Firing {
    pub fn new(pipeline: &str, at: &jiff::Zoned, trigger: Trigger, status: FiringStatus) -> Self {
        Firing {
            pipeline: pipeline.to_string(),
            at_unix: at.timestamp().as_second(),
            at: crate::schedule::cron::rfc3339(at),
            trigger,
            status,
            reason: None,
            run_id: None,
            inputs: None,
            claimed_at: now_rfc3339(),
            finished_at: None,
        }
    }
}

const FIRING_COLUMNS: &str =
    "pipeline, at_unix, at, trigger, status, reason, run_id, inputs, claimed_at, finished_at";

fn firing_row(r: &rusqlite::Row) -> rusqlite::Result<Firing> {
    Ok(Firing {
        pipeline: r.get(0)?,
        at_unix: r.get(1)?,
        at: r.get(2)?,
        trigger: Trigger::parse(&r.get::<_, String>(3)?),
        status: FiringStatus::parse(&r.get::<_, String>(4)?),
        reason: r.get(5)?,
        run_id: r.get(6)?,
        inputs: r.get(7)?,
        claimed_at: r.get(8)?,
        finished_at: r.get(9)?,
    })
}

fn schedule_row(r: &rusqlite::Row) -> rusqlite::Result<ScheduleRow> {
    Ok(ScheduleRow {
        pipeline: r.get(0)?,
        file: r.get(1)?,
        timing: from_json(r.get(2)?),
        registered_at: r.get(3)?,
        cursor_unix: r.get(4)?,
        watch: r
            .get::<_, Option<String>>(5)?
            .and_then(|s| serde_json::from_str(&s).ok()),
    })
}

impl RunsDb {
    /// Records that `pipeline` is scheduled from `file` with `timing`. The
    /// first registration starts the cursor at `now_unix` (firings before it
    /// are not the scheduler's); later ones keep the cursor and the watch.
    pub fn register_schedule(
        &self,
        pipeline: &str,
        file: &str,
        timing: &TimingRecord,
        now_unix: i64,
    ) -> Result<ScheduleRow> {
        let now = now_rfc3339();
        self.conn.execute(
            "INSERT INTO schedules(pipeline, file, timing, registered_at, cursor_unix, watch, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, NULL, ?4)
             ON CONFLICT(pipeline) DO UPDATE SET file = excluded.file, timing = excluded.timing,
                 updated_at = excluded.updated_at",
            params![pipeline, file, json(timing), now, now_unix],
        )?;
        Ok(self.schedule(pipeline)?.expect("the row was just written"))
    }

    pub fn schedule(&self, pipeline: &str) -> Result<Option<ScheduleRow>> {
        Ok(self
            .conn
            .query_row(
                "SELECT pipeline, file, timing, registered_at, cursor_unix, watch FROM schedules WHERE pipeline = ?1",
                params![pipeline],
                schedule_row,
            )
            .optional()?)
    }

    pub fn schedules(&self) -> Result<Vec<ScheduleRow>> {
        let mut st = self.conn.prepare(
            "SELECT pipeline, file, timing, registered_at, cursor_unix, watch FROM schedules ORDER BY pipeline",
        )?;
        let rows = st.query_map([], schedule_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Moves the cursor forward (never back).
    pub fn advance_cursor(&self, pipeline: &str, unix: i64) -> Result<()> {
        self.conn.execute(
            "UPDATE schedules SET cursor_unix = MAX(cursor_unix, ?2) WHERE pipeline = ?1",
            params![pipeline, unix],
        )?;
        Ok(())
    }

    pub fn set_watch(
        &self,
        pipeline: &str,
        watch: &std::collections::BTreeMap<String, String>,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE schedules SET watch = ?2 WHERE pipeline = ?1",
            params![pipeline, json(watch)],
        )?;
        Ok(())
    }

    /// Inserts the firing's row; false when it was claimed before (by this
    /// scheduler before a restart, or by another).
    pub fn claim_firing(&self, f: &Firing) -> Result<bool> {
        let n = self.conn.execute(
            &format!(
                "INSERT INTO firings({FIRING_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT DO NOTHING"
            ),
            params![
                f.pipeline,
                f.at_unix,
                f.at,
                f.trigger.as_str(),
                f.status.as_str(),
                f.reason,
                f.run_id,
                f.inputs,
                f.claimed_at,
                f.finished_at
            ],
        )?;
        Ok(n == 1)
    }

    /// Rewrites a claimed firing's state.
    pub fn update_firing(&self, f: &Firing) -> Result<()> {
        self.conn.execute(
            "UPDATE firings SET status = ?4, reason = ?5, run_id = ?6, inputs = ?7, finished_at = ?8
             WHERE pipeline = ?1 AND at_unix = ?2 AND trigger = ?3",
            params![
                f.pipeline,
                f.at_unix,
                f.trigger.as_str(),
                f.status.as_str(),
                f.reason,
                f.run_id,
                f.inputs,
                f.finished_at
            ],
        )?;
        Ok(())
    }

    /// Firings of `pipeline` whose run may still be going.
    pub fn open_firings(&self, pipeline: &str) -> Result<Vec<Firing>> {
        self.query_firings(
            "WHERE pipeline = ?1 AND status IN ('queued', 'starting', 'running') ORDER BY at_unix",
            pipeline,
        )
    }

    /// The latest firings of `pipeline`, newest first.
    pub fn firings(&self, pipeline: &str, limit: usize) -> Result<Vec<Firing>> {
        self.query_firings(
            &format!("WHERE pipeline = ?1 ORDER BY at_unix DESC, claimed_at DESC LIMIT {limit}"),
            pipeline,
        )
    }

    /// The inputs digest of the latest firing whose run succeeded, with its run.
    pub fn last_succeeded_inputs(&self, pipeline: &str) -> Result<Option<(String, String)>> {
        Ok(self
            .conn
            .query_row(
                "SELECT run_id, inputs FROM firings
                 WHERE pipeline = ?1 AND status = 'succeeded' AND inputs IS NOT NULL
                 ORDER BY at_unix DESC LIMIT 1",
                params![pipeline],
                |r| Ok((r.get::<_, Option<String>>(0)?, r.get::<_, String>(1)?)),
            )
            .optional()?
            .map(|(run, d)| (run.unwrap_or_default(), d)))
    }

    fn query_firings(&self, tail: &str, pipeline: &str) -> Result<Vec<Firing>> {
        let mut st = self
            .conn
            .prepare(&format!("SELECT {FIRING_COLUMNS} FROM firings {tail}"))?;
        let rows = st.query_map(params![pipeline], firing_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, RunsDb) {
        let t = tempfile::tempdir().unwrap();
        let db = RunsDb::open(&t.path().join("runs.db")).unwrap();
        (t, db)
    }

    #[test]
    fn a_firing_is_claimed_once() {
        let (_t, db) = db();
        let at: jiff::Zoned = "2026-03-29T03:00:00+02:00[Europe/Berlin]".parse().unwrap();
        let f = Firing::new("p", &at, Trigger::Cron, FiringStatus::Starting);
        assert!(db.claim_firing(&f).unwrap());
        assert!(!db.claim_firing(&f).unwrap());
        // The same time from another trigger is another firing.
        let g = Firing::new("p", &at, Trigger::Change, FiringStatus::Starting);
        assert!(db.claim_firing(&g).unwrap());
        let mut f = f;
        f.status = FiringStatus::Succeeded;
        f.run_id = Some("r1".into());
        f.inputs = Some("d1".into());
        db.update_firing(&f).unwrap();
        assert_eq!(db.open_firings("p").unwrap().len(), 1);
        assert_eq!(
            db.last_succeeded_inputs("p").unwrap(),
            Some(("r1".into(), "d1".into()))
        );
        assert_eq!(
            db.firings("p", 10).unwrap()[0].at,
            "2026-03-29T03:00:00+02:00"
        );
    }

    #[test]
    fn registering_again_keeps_the_cursor_and_it_never_goes_back() {
        let (_t, db) = db();
        let t = TimingRecord {
            cron: vec!["0 3 * * *".into()],
            ..Default::default()
        };
        assert_eq!(
            db.register_schedule("p", "a.yaml", &t, 100)
                .unwrap()
                .cursor_unix,
            100
        );
        db.advance_cursor("p", 500).unwrap();
        db.advance_cursor("p", 200).unwrap();
        let again = db.register_schedule("p", "b.yaml", &t, 900).unwrap();
        assert_eq!((again.cursor_unix, again.file.as_str()), (500, "b.yaml"));
    }
}
