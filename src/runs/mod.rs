//! Record: run records, the step cache index and the input hash cache, in
//! one embedded SQLite database (`.pipeline/runs.db`).
//!
//! Every state change of a run is committed as it happens (WAL, one short
//! transaction each), so a run killed at any point can be shown and resumed:
//! the record says which steps finished and where their outputs are.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::dag::cache::KeyParts;
use crate::error::{Error, Result};

pub mod schedules;

const SCHEMA_VERSION: i64 = 2;

/// One artifact a step produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputRecord {
    pub path: String,
    pub digest: String,
}

/// The state of a step within a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    Skipped,
    /// Not started because an earlier step failed or the run was cancelled.
    NotRun,
}

impl StepStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Running => "running",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Cancelled => "cancelled",
            StepStatus::Skipped => "skipped",
            StepStatus::NotRun => "not-run",
        }
    }
    fn parse(s: &str) -> StepStatus {
        match s {
            "running" => StepStatus::Running,
            "succeeded" => StepStatus::Succeeded,
            "failed" => StepStatus::Failed,
            "cancelled" => StepStatus::Cancelled,
            "skipped" => StepStatus::Skipped,
            "not-run" => StepStatus::NotRun,
            _ => StepStatus::Pending,
        }
    }
    /// Finished for good: a resume keeps it.
    pub fn is_done(&self) -> bool {
        matches!(self, StepStatus::Succeeded | StepStatus::Skipped)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    Cancelled,
    /// Recorded as running, but its engine is gone (killed outright): never
    /// stored, worked out when shown ([`live_status`]).
    Interrupted,
}

impl RunStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Interrupted => "interrupted",
        }
    }
    fn parse(s: &str) -> RunStatus {
        match s {
            "interrupted" => RunStatus::Interrupted,
            "succeeded" => RunStatus::Succeeded,
            "failed" => RunStatus::Failed,
            "cancelled" => RunStatus::Cancelled,
            _ => RunStatus::Running,
        }
    }
}

/// A run as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub id: String,
    pub pipeline: String,
    /// The pipeline file as given on the command line.
    pub file: String,
    /// The file's text when the run started (resume re-reads this, not the file).
    #[serde(skip)]
    pub source: String,
    /// The directory relative paths resolved against.
    pub base_dir: String,
    pub params: Vec<(String, String)>,
    pub status: RunStatus,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub engine_version: String,
    /// The engine process running it (to refuse resuming a live run).
    #[serde(skip)]
    pub pid: u32,
    pub options: RunOptionsRecord,
}

/// The command-line options a run was started with, kept for resume.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunOptionsRecord {
    pub executor: Option<String>,
    pub jobs: Option<usize>,
    pub no_cache: bool,
    /// The shared store (`--store`, `PIPELINE_STORE` or the config file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
}

/// A step within a run, as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    pub run_id: String,
    pub name: String,
    pub status: StepStatus,
    pub cached: bool,
    pub attempts: u32,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_s: Option<f64>,
    pub exit_code: Option<i32>,
    pub failure: Option<String>,
    pub cache_key: Option<String>,
    pub outputs: BTreeMap<String, OutputRecord>,
    pub metrics: BTreeMap<String, serde_json::Value>,
    pub inputs: BTreeMap<String, String>,
}

impl StepRecord {
    pub fn new(run_id: &str, name: &str) -> Self {
        StepRecord {
            run_id: run_id.to_string(),
            name: name.to_string(),
            status: StepStatus::Pending,
            cached: false,
            attempts: 0,
            started_at: None,
            finished_at: None,
            duration_s: None,
            exit_code: None,
            failure: None,
            cache_key: None,
            outputs: BTreeMap::new(),
            metrics: BTreeMap::new(),
            inputs: BTreeMap::new(),
        }
    }
}

/// A cached step result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CacheEntry {
    pub key: String,
    pub pipeline: String,
    pub step: String,
    pub created_at: String,
    pub created_unix: i64,
    pub parts: KeyParts,
    pub outputs: BTreeMap<String, OutputRecord>,
    pub metrics: BTreeMap<String, serde_json::Value>,
    pub run_id: String,
}

impl CacheEntry {
    /// Whether the entry may still be used under the step's cache policy.
    pub fn is_fresh(&self, policy: crate::spec::model::CachePolicy) -> bool {
        match policy {
            crate::spec::model::CachePolicy::ExpireAfter(d) => {
                now_unix() - self.created_unix <= d.as_secs() as i64
            }
            _ => true,
        }
    }
}

pub struct RunsDb {
    conn: Connection,
}

pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Millisecond)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

pub fn now_unix() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("records serialize")
}

fn from_json<T: for<'de> Deserialize<'de> + Default>(s: Option<String>) -> T {
    s.and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default()
}

/// The first schema: runs, their steps, the step cache and remembered file digests.
const MIGRATION_1: &str = "
CREATE TABLE IF NOT EXISTS runs(
    id TEXT PRIMARY KEY, pipeline TEXT NOT NULL, file TEXT NOT NULL, source TEXT NOT NULL,
    base_dir TEXT NOT NULL, params TEXT NOT NULL, status TEXT NOT NULL, started_at TEXT NOT NULL,
    finished_at TEXT, engine_version TEXT NOT NULL, pid INTEGER NOT NULL, options TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS steps(
    run_id TEXT NOT NULL, name TEXT NOT NULL, status TEXT NOT NULL, cached INTEGER NOT NULL,
    attempts INTEGER NOT NULL, started_at TEXT, finished_at TEXT, duration_s REAL, exit_code INTEGER,
    failure TEXT, cache_key TEXT, outputs TEXT, metrics TEXT, inputs TEXT,
    PRIMARY KEY(run_id, name));
CREATE TABLE IF NOT EXISTS cache(
    key TEXT PRIMARY KEY, pipeline TEXT NOT NULL, step TEXT NOT NULL, created_at TEXT NOT NULL,
    created_unix INTEGER NOT NULL, parts TEXT NOT NULL, outputs TEXT NOT NULL, metrics TEXT NOT NULL,
    run_id TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS cache_by_step ON cache(pipeline, step, created_unix);
CREATE TABLE IF NOT EXISTS file_hashes(
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, inode INTEGER NOT NULL,
    digest TEXT NOT NULL);
PRAGMA user_version = 1;";

/// Runs `f` again while SQLite reports the database busy or locked, until `deadline`.
fn retry_busy<T>(
    deadline: std::time::Instant,
    mut f: impl FnMut() -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    let mut pause = Duration::from_millis(5);
    loop {
        match f() {
            Err(rusqlite::Error::SqliteFailure(e, m))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) =>
            {
                if std::time::Instant::now() >= deadline {
                    return Err(rusqlite::Error::SqliteFailure(e, m));
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

impl RunsDb {
    /// Opens (creating and migrating) the database at `path`.
    pub fn open(path: &Path) -> Result<RunsDb> {
        crate::store::owner_only(path).map_err(|e| Error::io("restrict access to", path, e))?;
        let conn = Connection::open(path)
            .map_err(|e| Error::failed(format!("open the run database {}: {e}", path.display())))?;
        conn.busy_timeout(Duration::from_secs(10))?;
        let bad = |e: rusqlite::Error| {
            Error::failed(format!(
                "open the run database {}: {e}; if the file is damaged, move it aside (runs are then forgotten, artifacts stay in the store)",
                path.display()
            ))
        };
        // Several engines may open a new workspace at once (concurrent runs,
        // a scheduler beside a run). Switching to WAL needs a lock the busy
        // handler does not always wait for, so that step is retried until the
        // same deadline; migrations run under one writer's lock and re-read
        // the version inside it, so two engines never both migrate.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        retry_busy(deadline, || conn.pragma_update(None, "journal_mode", "WAL")).map_err(bad)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(bad)?;
        let version = |conn: &Connection| -> rusqlite::Result<i64> {
            conn.pragma_query_value(None, "user_version", |r| r.get(0))
        };
        let mut v = retry_busy(deadline, || version(&conn)).map_err(bad)?;
        if v < SCHEMA_VERSION {
            retry_busy(deadline, || conn.execute_batch("BEGIN IMMEDIATE")).map_err(bad)?;
            let migrated = (|| -> rusqlite::Result<i64> {
                let v = version(&conn)?;
                if v < 1 {
                    conn.execute_batch(MIGRATION_1)?;
                }
                if v < 2 {
                    conn.execute_batch(schedules::MIGRATION_2)?;
                }
                conn.execute_batch("COMMIT")?;
                Ok(v)
            })();
            match migrated {
                Ok(found) => v = found,
                Err(e) => {
                    let _ = conn.execute_batch("ROLLBACK");
                    return Err(bad(e));
                }
            }
        }
        if v > SCHEMA_VERSION {
            return Err(Error::failed(format!(
                "the run database {} was written by a newer engine (schema {v}, this engine knows {SCHEMA_VERSION}); upgrade the engine",
                path.display()
            )));
        }
        Ok(RunsDb { conn })
    }

    pub fn insert_run(&self, r: &RunRecord) -> Result<()> {
        self.conn.execute(
            "INSERT INTO runs(id, pipeline, file, source, base_dir, params, status, started_at, finished_at, engine_version, pid, options)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![r.id, r.pipeline, r.file, r.source, r.base_dir, json(&r.params), r.status.as_str(), r.started_at, r.finished_at, r.engine_version, r.pid, json(&r.options)],
        )?;
        Ok(())
    }

    pub fn set_run_status(&self, id: &str, status: RunStatus) -> Result<()> {
        let finished = (status != RunStatus::Running).then(now_rfc3339);
        self.conn.execute(
            "UPDATE runs SET status = ?2, finished_at = ?3 WHERE id = ?1",
            params![id, status.as_str(), finished],
        )?;
        Ok(())
    }

    /// Marks the run as taken over by this process (resume).
    pub fn claim_run(&self, id: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE runs SET status = 'running', finished_at = NULL, pid = ?2 WHERE id = ?1",
            params![id, std::process::id()],
        )?;
        Ok(())
    }

    fn run_from_row(row: &rusqlite::Row) -> rusqlite::Result<RunRecord> {
        Ok(RunRecord {
            id: row.get(0)?,
            pipeline: row.get(1)?,
            file: row.get(2)?,
            source: row.get(3)?,
            base_dir: row.get(4)?,
            params: from_json(row.get(5)?),
            status: RunStatus::parse(&row.get::<_, String>(6)?),
            started_at: row.get(7)?,
            finished_at: row.get(8)?,
            engine_version: row.get(9)?,
            pid: row.get(10)?,
            options: from_json(row.get(11)?),
        })
    }

    const RUN_COLS: &'static str = "id, pipeline, file, source, base_dir, params, status, started_at, finished_at, engine_version, pid, options";

    pub fn get_run(&self, id: &str) -> Result<Option<RunRecord>> {
        let sql = format!("SELECT {} FROM runs WHERE id = ?1", Self::RUN_COLS);
        Ok(self
            .conn
            .query_row(&sql, [id], Self::run_from_row)
            .optional()?)
    }

    /// The most recent runs first.
    pub fn list_runs(&self, limit: usize) -> Result<Vec<RunRecord>> {
        let sql = format!(
            "SELECT {} FROM runs ORDER BY started_at DESC, id DESC LIMIT ?1",
            Self::RUN_COLS
        );
        let mut st = self.conn.prepare(&sql)?;
        let rows = st.query_map([limit as i64], Self::run_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// One page of runs, the most recent first: those whose id or pipeline
    /// contains `text` and, when given, whose recorded status is `status`;
    /// with how many match in all. The pipeline file's text is left out.
    pub fn search_runs(
        &self,
        text: &str,
        status: Option<&str>,
        limit: usize,
        offset: usize,
    ) -> Result<(Vec<RunRecord>, usize)> {
        let cols = Self::RUN_COLS.replace("source", "'' AS source");
        let like = format!(
            "%{}%",
            text.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let filter = "(id LIKE ?1 ESCAPE '\\' OR pipeline LIKE ?1 ESCAPE '\\') AND (?2 IS NULL OR status = ?2)";
        let total: i64 = self.conn.query_row(
            &format!("SELECT COUNT(*) FROM runs WHERE {filter}"),
            params![like, status],
            |r| r.get(0),
        )?;
        let sql = format!(
            "SELECT {cols} FROM runs WHERE {filter} ORDER BY started_at DESC, id DESC LIMIT ?3 OFFSET ?4"
        );
        let mut st = self.conn.prepare(&sql)?;
        let rows = st.query_map(
            params![like, status, limit as i64, offset as i64],
            Self::run_from_row,
        )?;
        Ok((rows.collect::<rusqlite::Result<_>>()?, total as usize))
    }

    /// Run ids starting with `prefix` (for abbreviated ids).
    pub fn find_runs(&self, prefix: &str) -> Result<Vec<String>> {
        let mut st = self
            .conn
            .prepare("SELECT id FROM runs WHERE id LIKE ?1 || '%' ORDER BY id")?;
        let rows = st.query_map([prefix], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// How long the latest attempt that made the result with `cache_key`
    /// ran (a cache hit's own record says 0 s).
    pub fn made_in(&self, cache_key: &str) -> Result<Option<f64>> {
        Ok(self
            .conn
            .query_row(
                "SELECT duration_s FROM steps WHERE cache_key = ?1 AND cached = 0 AND status = 'succeeded' AND duration_s IS NOT NULL ORDER BY finished_at DESC LIMIT 1",
                params![cache_key],
                |r| r.get::<_, f64>(0),
            )
            .optional()?)
    }

    pub fn upsert_step(&self, s: &StepRecord) -> Result<()> {
        RunsDbTx { conn: &self.conn }.upsert(s)
    }

    /// Inserts many step records in one transaction (the start of a run).
    pub fn upsert_steps(&mut self, steps: &[StepRecord]) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let db = RunsDbTx { conn: &tx };
            for s in steps {
                db.upsert(s)?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    pub fn steps_of(&self, run_id: &str) -> Result<Vec<StepRecord>> {
        let mut st = self.conn.prepare(
            "SELECT run_id, name, status, cached, attempts, started_at, finished_at, duration_s, exit_code, failure, cache_key, outputs, metrics, inputs
             FROM steps WHERE run_id = ?1",
        )?;
        let rows = st.query_map([run_id], |row| {
            Ok(StepRecord {
                run_id: row.get(0)?,
                name: row.get(1)?,
                status: StepStatus::parse(&row.get::<_, String>(2)?),
                cached: row.get(3)?,
                attempts: row.get(4)?,
                started_at: row.get(5)?,
                finished_at: row.get(6)?,
                duration_s: row.get(7)?,
                exit_code: row.get(8)?,
                failure: row.get(9)?,
                cache_key: row.get(10)?,
                outputs: from_json(row.get(11)?),
                metrics: from_json(row.get(12)?),
                inputs: from_json(row.get(13)?),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn cache_get(&self, key: &str) -> Result<Option<CacheEntry>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT key, pipeline, step, created_at, created_unix, parts, outputs, metrics, run_id FROM cache WHERE key = ?1",
            )?
            .query_row([key], Self::cache_from_row)
            .optional()?)
    }

    /// Every cache entry among `keys`, in one query.
    pub fn cache_get_many(&self, keys: &[String]) -> Result<BTreeMap<String, CacheEntry>> {
        let mut out = BTreeMap::new();
        let mut st = self.conn.prepare_cached(
            "SELECT key, pipeline, step, created_at, created_unix, parts, outputs, metrics, run_id FROM cache WHERE key = ?1",
        )?;
        for k in keys {
            if let Some(e) = st.query_row([k], Self::cache_from_row).optional()? {
                out.insert(k.clone(), e);
            }
        }
        Ok(out)
    }

    /// The newest cache entry of a step of a pipeline made before `created_unix`
    /// under another key: what a step that ran is compared with.
    pub fn cache_before(
        &self,
        pipeline: &str,
        step: &str,
        key: &str,
        created_unix: i64,
    ) -> Result<Option<CacheEntry>> {
        Ok(self
            .conn
            .query_row(
                "SELECT key, pipeline, step, created_at, created_unix, parts, outputs, metrics, run_id FROM cache
                 WHERE pipeline = ?1 AND step = ?2 AND key <> ?3 AND created_unix <= ?4
                 ORDER BY created_unix DESC, rowid DESC LIMIT 1",
                params![pipeline, step, key, created_unix],
                Self::cache_from_row,
            )
            .optional()?)
    }

    /// The newest cache entry of a step of a pipeline, to explain what changed since.
    pub fn cache_latest(&self, pipeline: &str, step: &str) -> Result<Option<CacheEntry>> {
        Ok(self
            .conn
            .query_row(
                "SELECT key, pipeline, step, created_at, created_unix, parts, outputs, metrics, run_id FROM cache
                 WHERE pipeline = ?1 AND step = ?2 ORDER BY created_unix DESC, rowid DESC LIMIT 1",
                [pipeline, step],
                Self::cache_from_row,
            )
            .optional()?)
    }

    fn cache_from_row(row: &rusqlite::Row) -> rusqlite::Result<CacheEntry> {
        let parts: String = row.get(5)?;
        Ok(CacheEntry {
            key: row.get(0)?,
            pipeline: row.get(1)?,
            step: row.get(2)?,
            created_at: row.get(3)?,
            created_unix: row.get(4)?,
            parts: serde_json::from_str(&parts).unwrap_or(KeyParts {
                engine: String::new(),
                step: String::new(),
                spec: serde_json::Value::Null,
                inputs: BTreeMap::new(),
                reading: BTreeMap::new(),
                code: BTreeMap::new(),
                image: None,
            }),
            outputs: from_json(row.get(6)?),
            metrics: from_json(row.get(7)?),
            run_id: row.get(8)?,
        })
    }

    /// Records a step that succeeded and, when it is cached, its cache
    /// entry, in one transaction (one commit a step, not two).
    pub fn record_success(&mut self, step: &StepRecord, cache: Option<&CacheEntry>) -> Result<()> {
        let tx = self.conn.transaction()?;
        if let Some(e) = cache {
            Self::put_cache_entry(&tx, e)?;
        }
        RunsDbTx { conn: &tx }.upsert(step)?;
        tx.commit()?;
        Ok(())
    }

    pub fn cache_put(&self, e: &CacheEntry) -> Result<()> {
        Self::put_cache_entry(&self.conn, e)
    }

    fn put_cache_entry(conn: &Connection, e: &CacheEntry) -> Result<()> {
        conn.prepare_cached(
            "INSERT OR REPLACE INTO cache(key, pipeline, step, created_at, created_unix, parts, outputs, metrics, run_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?.execute(
            params![e.key, e.pipeline, e.step, e.created_at, e.created_unix, json(&e.parts), json(&e.outputs), json(&e.metrics), e.run_id],
        )?;
        Ok(())
    }

    /// A remembered digest for a file whose size, mtime and inode are unchanged.
    pub fn file_hash_get(
        &self,
        path: &str,
        size: i64,
        mtime_ns: i64,
        inode: i64,
    ) -> Result<Option<String>> {
        Ok(self
            .conn
            .prepare_cached("SELECT digest FROM file_hashes WHERE path = ?1 AND size = ?2 AND mtime_ns = ?3 AND inode = ?4")?
            .query_row(params![path, size, mtime_ns, inode], |r| r.get(0))
            .optional()?)
    }

    pub fn file_hash_put(
        &self,
        path: &str,
        size: i64,
        mtime_ns: i64,
        inode: i64,
        digest: &str,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO file_hashes(path, size, mtime_ns, inode, digest) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![path, size, mtime_ns, inode, digest],
        )?;
        Ok(())
    }
}

struct RunsDbTx<'a> {
    conn: &'a Connection,
}

impl RunsDbTx<'_> {
    fn upsert(&self, s: &StepRecord) -> Result<()> {
        // Once or twice a step: a statement parsed once a connection.
        self.conn.prepare_cached(
            "INSERT OR REPLACE INTO steps(run_id, name, status, cached, attempts, started_at, finished_at, duration_s, exit_code, failure, cache_key, outputs, metrics, inputs)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )?.execute(
            params![s.run_id, s.name, s.status.as_str(), s.cached, s.attempts, s.started_at, s.finished_at, s.duration_s, s.exit_code, s.failure, s.cache_key, json(&s.outputs), json(&s.metrics), json(&s.inputs)],
        )?;
        Ok(())
    }
}

/// The lock an engine holds on a run for as long as it runs it (`flock` on
/// `runs/RUN/engine.lock`, released by the kernel however the engine ends):
/// a second engine cannot run the same run, and a run recorded as running
/// whose lock is free was interrupted.
pub struct RunLock {
    _file: std::fs::File,
}

/// Whether another engine holds a run's lock, and which process that is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockState {
    Free,
    Held {
        pid: Option<u32>,
    },
    /// No lock file: the run was recorded by an engine that did not lock runs.
    Missing,
}

impl RunLock {
    pub fn path(run_dir: &Path) -> std::path::PathBuf {
        run_dir.join("engine.lock")
    }

    /// Takes the lock of the run whose directory is `run_dir`, or says who holds it.
    pub fn acquire(run_dir: &Path) -> Result<std::result::Result<RunLock, LockState>> {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        std::fs::create_dir_all(run_dir).map_err(|e| Error::io("create", run_dir, e))?;
        let path = Self::path(run_dir);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io("open the run lock", &path, e))?;
        // SAFETY: flock on a file we own; the lock goes with the descriptor.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Ok(Err(LockState::Held {
                pid: read_pid(&path),
            }));
        }
        file.set_len(0)
            .and_then(|()| write!(file, "{}", std::process::id()))
            .map_err(|e| Error::io("write the run lock", &path, e))?;
        Ok(Ok(RunLock { _file: file }))
    }

    /// Whether an engine holds the lock of the run whose directory is `run_dir`.
    pub fn state(run_dir: &Path) -> LockState {
        use std::os::fd::AsRawFd;
        let path = Self::path(run_dir);
        let Ok(file) = std::fs::File::open(&path) else {
            return LockState::Missing;
        };
        // SAFETY: as above; a shared lock taken only to test, dropped with the file.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } == 0 {
            LockState::Free
        } else {
            LockState::Held {
                pid: read_pid(&path),
            }
        }
    }
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A run's status as it is now: a run recorded as running whose engine is
/// gone is [`RunStatus::Interrupted`].
pub fn live_status(run: &RunRecord, run_dir: &Path) -> RunStatus {
    if run.status != RunStatus::Running {
        return run.status;
    }
    let alive = match RunLock::state(run_dir) {
        LockState::Held { .. } => true,
        LockState::Free => false,
        // SAFETY: signal 0 only checks that the process exists.
        LockState::Missing => (unsafe { libc::kill(run.pid as i32, 0) }) == 0,
    };
    if alive {
        RunStatus::Running
    } else {
        RunStatus::Interrupted
    }
}

/// Whether `s` has the shape of a run id (`new_run_id`): safe as a directory name.
pub fn is_run_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A new run id: sortable by start time, unique enough to type a prefix of.
pub fn new_run_id() -> String {
    let now = jiff::Zoned::now().with_time_zone(jiff::tz::TimeZone::UTC);
    let seed = format!(
        "{}-{}-{:?}",
        std::process::id(),
        now.timestamp().as_nanosecond(),
        std::thread::current().id()
    );
    let h = blake3::hash(seed.as_bytes()).to_hex();
    format!("{}-{}", now.strftime("%Y%m%d-%H%M%S"), &h[..6])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Engines started together on a new workspace all open (and one of them
    /// creates) the database; none may fail with "database is locked".
    #[test]
    fn many_engines_opening_a_new_database_at_once_all_succeed() {
        for round in 0..40 {
            let t = tempfile::tempdir().unwrap();
            let path = t.path().join("runs.db");
            let start = std::sync::Arc::new(std::sync::Barrier::new(8));
            let opened: Vec<_> = (0..8)
                .map(|_| {
                    let (path, start) = (path.clone(), start.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        RunsDb::open(&path).map(|db| db.list_runs(10).map(|r| r.len()))
                    })
                })
                .collect();
            for o in opened {
                let listed = o.join().unwrap();
                assert!(
                    matches!(listed, Ok(Ok(0))),
                    "round {round}: {:?}",
                    listed
                        .map(|r| r.map_err(|e| e.to_string()))
                        .map_err(|e| e.to_string())
                );
            }
            let db = RunsDb::open(&path).unwrap();
            let v: i64 = db
                .conn
                .pragma_query_value(None, "user_version", |r| r.get(0))
                .unwrap();
            assert_eq!(v, SCHEMA_VERSION);
        }
    }

    #[test]
    fn runs_and_steps_round_trip() {
        let t = tempfile::tempdir().unwrap();
        let mut db = RunsDb::open(&t.path().join("runs.db")).unwrap();
        let run = RunRecord {
            id: new_run_id(),
            pipeline: "p".into(),
            file: "p.yaml".into(),
            source: "name: p".into(),
            base_dir: ".".into(),
            params: vec![("a".into(), "1".into())],
            status: RunStatus::Running,
            started_at: now_rfc3339(),
            finished_at: None,
            engine_version: "0".into(),
            pid: 1,
            options: RunOptionsRecord::default(),
        };
        db.insert_run(&run).unwrap();
        let mut s = StepRecord::new(&run.id, "train");
        s.status = StepStatus::Succeeded;
        s.outputs.insert(
            "model".into(),
            OutputRecord {
                path: "/x".into(),
                digest: "ab".into(),
            },
        );
        db.upsert_steps(&[s.clone(), StepRecord::new(&run.id, "eval")])
            .unwrap();
        db.set_run_status(&run.id, RunStatus::Failed).unwrap();
        let back = db.get_run(&run.id).unwrap().unwrap();
        assert_eq!(back.status, RunStatus::Failed);
        assert_eq!(back.params, run.params);
        let steps = db.steps_of(&run.id).unwrap();
        assert_eq!(steps.len(), 2);
        let train = steps.iter().find(|s| s.name == "train").unwrap();
        assert_eq!(train.outputs["model"].digest, "ab");
        assert_eq!(db.find_runs(&run.id[..8]).unwrap(), vec![run.id.clone()]);
    }

    #[test]
    fn a_run_lock_is_held_by_one_engine_at_a_time() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("run");
        assert_eq!(RunLock::state(&dir), LockState::Missing);
        let lock = RunLock::acquire(&dir).unwrap().expect("free");
        let me = Some(std::process::id());
        assert_eq!(RunLock::state(&dir), LockState::Held { pid: me });
        assert_eq!(
            RunLock::acquire(&dir).unwrap().err(),
            Some(LockState::Held { pid: me })
        );
        drop(lock);
        assert_eq!(RunLock::state(&dir), LockState::Free);
        assert!(RunLock::acquire(&dir).unwrap().is_ok());
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("runs.db");
        Connection::open(&p)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        let e = RunsDb::open(&p).err().unwrap();
        assert!(e.to_string().contains("newer engine"), "{e}");
    }
}
