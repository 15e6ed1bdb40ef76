//! The model registry: versioned, approvable models, like SageMaker Model Registry.
//!
//! A `register` step records the model it produced as the next version of a
//! model package group, with its lineage (run, step, input digests, spec
//! hash, params), metrics and an approval status. People approve or reject
//! versions from the command line; pipelines and `pipeline predict` refer to
//! them as `registry://GROUP@approved`, `@latest` or `@N`. Model artifacts
//! themselves live in the content-addressed store; the registry keeps only
//! their digests.
//!
//! Storage is one embedded SQLite file (by default `.pipeline/registry.db`)
//! or, for a team, a PostgreSQL database (`postgres://USER@HOST:PORT/DB`,
//! see [`Location`]). Several processes, on one machine or many, may use it
//! at once: every write is a single transaction that holds the model group's
//! lock from its first read (SQLite: the file's write lock, `BEGIN
//! IMMEDIATE`; PostgreSQL: the group's row, `SELECT ... FOR UPDATE`), so
//! version numbers are allocated under the lock (1..N without gaps), no
//! approval is lost, and a crash never leaves half a version. The SQLite
//! file is in WAL mode and waits for locks instead of failing at once.
//!
//! The logic is written once; [`db`] is the one place the two backends and
//! their SQL dialects differ.
//!
//! Map of the module:
//! - [`model`]: the records ([`NewVersion`], [`ModelVersion`], [`AuditEntry`], ...);
//! - `register`, `review`: the writes (register with a policy; approve, reject);
//! - `query`: the reads for the command line (groups, list, show, history, diff, resolve);
//! - [`policy`] and [`expr`]: approval policies and the `auc >= 0.9` condition language;
//! - [`reference`]: parsing `registry://GROUP@SELECTOR`;
//! - [`hook`]: the environment an `on_approved` hook command receives;
//! - `schema`: the schema and its forward migrations, in both dialects;
//! - [`location`]: a file path or a `postgres://` URL;
//! - [`db`]: the backends behind one statement interface.

pub mod db;
pub mod error;
pub mod expr;
pub mod hook;
pub mod location;
pub mod model;
pub mod policy;
pub mod reference;

mod query;
mod register;
mod review;
mod rows;
mod schema;

use std::cell::RefCell;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use db::{Lite, Pg, Sql};
pub use error::RegistryError;
pub use expr::{Condition, Evaluation, ExprError};
pub use hook::hook_env;
pub use location::{Location, PostgresUrl};
pub use model::{
    Action, AuditEntry, ChangeKind, Decision, FieldChange, GroupSummary, MetricChange,
    ModelVersion, NewVersion, Registration, Status, Transition, VersionDiff, VersionSummary,
};
pub use policy::ApprovalPolicy;
pub use reference::{RegistryRef, Selector};
use schema::Migration;

/// The registry's default location, relative to the project directory.
pub const DEFAULT_PATH: &str = ".pipeline/registry.db";

/// What to do when a version's artifact is not in this workspace's store
/// (it was registered from another workspace, which stored it there).
pub const MISSING_ARTIFACT_HELP: &str = "the registry keeps only the artifact's digest, and the \
    workspace that registered this version has the artifact; workspaces that share a registry \
    share artifacts through a shared store: run them all with `--store s3://BUCKET/PREFIX` (or \
    `store:` in .pipeline/config.yaml), see docs/registry.md";

/// How long a write waits for another process's write to finish before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a PostgreSQL write that lost a conflict (a serialization
/// failure or a deadlock, which the server resolves by aborting one side)
/// is run again before the error is reported.
const CONFLICT_RETRIES: usize = 5;

/// An open registry database. One per thread or process; it is cheap to open.
pub struct Registry {
    backend: Backend,
    location: Location,
}

enum Backend {
    Sqlite(Connection),
    /// In a cell so that reads can take `&self` as they do on SQLite;
    /// boxed, since the client is large.
    Postgres(Box<RefCell<Pg>>),
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("location", &self.location)
            .finish()
    }
}

impl Registry {
    /// Opens the registry at `location` (a path, or a [`Location`]), creating
    /// it if needed (the file and its parent directories; the tables in an
    /// empty PostgreSQL database) and upgrading an older schema.
    ///
    /// Fails with [`RegistryError::Corrupt`] for a file that is not an SQLite
    /// database, [`RegistryError::Foreign`] for another program's database,
    /// [`RegistryError::TooNew`] for a registry written by a newer release
    /// and [`RegistryError::Unreachable`] when the PostgreSQL server cannot
    /// be reached.
    pub fn open(location: impl Into<Location>) -> Result<Registry, RegistryError> {
        Self::open_with_migrations(&location.into(), schema::MIGRATIONS, true)
    }

    /// Opens the registry at `location` only if it exists, for commands that
    /// read (`pipeline registry list`, `pipeline predict --model registry://...`)
    /// and should not leave an empty registry behind.
    pub fn open_existing(location: impl Into<Location>) -> Result<Registry, RegistryError> {
        let location = location.into();
        if let Location::File(path) = &location
            && !path.exists()
        {
            return Err(RegistryError::invalid_with_hint(
                format!("there is no registry at {} yet", path.display()),
                "a pipeline with a `register` step creates it on its first run",
            ));
        }
        Self::open_with_migrations(&location, schema::MIGRATIONS, false)
    }

    fn open_with_migrations(
        location: &Location,
        migrations: &[Migration],
        create: bool,
    ) -> Result<Registry, RegistryError> {
        match location {
            Location::File(path) => Self::open_file(path, migrations),
            Location::Postgres(url) => {
                let mut pg = Pg::connect(location.clone(), url.config()).map_err(|source| {
                    RegistryError::Unreachable {
                        location: location.clone(),
                        source,
                    }
                })?;
                pg.set_lock_timeout(BUSY_TIMEOUT)
                    .map_err(|e| error::db_error(location, "set the lock timeout", e))?;
                schema::migrate_postgres(&mut pg, migrations, create)?;
                Ok(Registry {
                    backend: Backend::Postgres(Box::new(RefCell::new(pg))),
                    location: location.clone(),
                })
            }
        }
    }

    fn open_file(path: &Path, migrations: &[Migration]) -> Result<Registry, RegistryError> {
        let location = Location::File(path.to_path_buf());
        if path.as_os_str().is_empty() {
            // SQLite would silently open a private temporary database.
            return Err(RegistryError::invalid_with_hint(
                "the registry path is empty",
                format!("pass a file path, e.g. {DEFAULT_PATH}"),
            ));
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| RegistryError::Io {
                path: parent.to_path_buf(),
                action: "create the registry directory",
                source,
            })?;
        }
        if path.is_dir() {
            return Err(RegistryError::invalid_with_hint(
                format!("the registry path {} is a directory", path.display()),
                format!(
                    "pass a file path, e.g. {}",
                    path.join("registry.db").display()
                ),
            ));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        crate::store::owner_only(path).map_err(|source| RegistryError::Io {
            path: path.to_path_buf(),
            action: "restrict access to the registry database",
            source,
        })?;
        let db = |action, e| error::db_error(&location, action, e);
        let mut conn =
            Connection::open_with_flags(path, flags).map_err(|e| db("open the database", e))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| db("set the lock timeout", e))?;
        // Read the header before anything else: a damaged or foreign file must
        // be reported before we change its journal mode.
        schema::migrate_sqlite(&mut conn, &location, migrations)?;
        // Switching to WAL needs a lock that SQLite's busy handler does not
        // always wait for (two engines opening a new registry at once), so
        // that step is retried until the lock timeout.
        let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
        let mut pause = std::time::Duration::from_millis(5);
        let mode: String = loop {
            match conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)) {
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if matches!(
                        e.code,
                        rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                    ) && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(std::time::Duration::from_millis(100));
                }
                other => break other.map_err(|e| db("switch the database to WAL mode", e))?,
            }
        };
        if !mode.eq_ignore_ascii_case("wal") {
            // Some file systems (network mounts) cannot do WAL; the rollback
            // journal still gives atomic transactions, only less concurrency.
            conn.pragma_update(None, "journal_mode", "DELETE")
                .map_err(|e| db("set the journal mode", e))?;
        }
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(|e| db("enable foreign keys", e))?;
        // In WAL mode NORMAL is durable against crashes of the process; only a
        // power loss can drop the last commits, never corrupt the file.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| db("set the sync mode", e))?;
        Ok(Registry {
            backend: Backend::Sqlite(conn),
            location,
        })
    }

    /// How long a write waits for another process's write before failing
    /// (30 seconds unless changed). A command line may want to fail faster.
    pub fn set_lock_timeout(&mut self, timeout: Duration) -> Result<(), RegistryError> {
        let result = match &mut self.backend {
            Backend::Sqlite(conn) => conn.busy_timeout(timeout).map_err(Into::into),
            Backend::Postgres(pg) => pg.get_mut().set_lock_timeout(timeout),
        };
        result.map_err(|e| error::db_error(&self.location, "set the lock timeout", e))
    }

    /// Where the registry is.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The database file, for an SQLite registry.
    pub fn path(&self) -> Option<&Path> {
        self.location.as_path()
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<u32, RegistryError> {
        match &self.backend {
            Backend::Sqlite(conn) => {
                let v: i64 = conn
                    .pragma_query_value(None, "user_version", |r| r.get(0))
                    .map_err(|e| error::db_error(&self.location, "read the schema version", e))?;
                Ok(v as u32)
            }
            Backend::Postgres(pg) => {
                Ok(schema::read_postgres_header(&mut pg.borrow_mut())?.unwrap_or(0))
            }
        }
    }

    /// Runs reads outside a write transaction: on SQLite in WAL mode and on
    /// PostgreSQL they see committed state and never wait for a writer.
    fn read<T>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<T, RegistryError>,
    ) -> Result<T, RegistryError> {
        match &self.backend {
            Backend::Sqlite(conn) => f(&mut Lite {
                conn,
                location: &self.location,
            }),
            Backend::Postgres(pg) => f(&mut *pg.borrow_mut()),
        }
    }

    /// Runs `f` as one write transaction, committed when it returns `Ok`
    /// and rolled back otherwise. On SQLite the transaction holds the
    /// database's write lock from the start; on PostgreSQL `f` takes the
    /// group's row lock first (`rows::group_id` with `lock`), and a
    /// transaction the server aborted over a conflict runs again.
    fn write<T>(
        &mut self,
        what: &'static str,
        mut f: impl FnMut(&mut dyn Sql) -> Result<T, RegistryError>,
    ) -> Result<T, RegistryError> {
        let location = &self.location;
        let fail = |action, e: db::DbError| error::db_error(location, action, e);
        match &mut self.backend {
            Backend::Sqlite(conn) => {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(|e| fail(what, e.into()))?;
                let out = f(&mut Lite {
                    conn: &tx,
                    location,
                })?;
                #[cfg(test)]
                tests::maybe_crash();
                tx.commit().map_err(|e| fail("commit", e.into()))?;
                Ok(out)
            }
            Backend::Postgres(pg) => {
                let pg = pg.get_mut();
                let mut attempt = 0;
                loop {
                    attempt += 1;
                    // Read committed, whatever the server's default: each
                    // statement after the group's lock sees what the writers
                    // before committed (a repeatable-read snapshot, taken at
                    // the first statement, would not).
                    pg.raw_batch("BEGIN ISOLATION LEVEL READ COMMITTED")
                        .map_err(|e| fail(what, e))?;
                    let result = f(pg);
                    #[cfg(test)]
                    if result.is_ok() {
                        tests::maybe_crash();
                    }
                    let ended = match &result {
                        Ok(_) => pg.raw_batch("COMMIT"),
                        Err(_) => pg.raw_batch("ROLLBACK"),
                    };
                    let conflict = |e: &RegistryError| matches!(e, RegistryError::Database { source, .. } if source.is_retryable());
                    match (result, ended) {
                        (Ok(out), Ok(())) => return Ok(out),
                        (Ok(_), Err(e)) if e.is_retryable() && attempt < CONFLICT_RETRIES => {}
                        (Ok(_), Err(e)) => return Err(fail("commit", e)),
                        (Err(e), _) if conflict(&e) && attempt < CONFLICT_RETRIES => {}
                        (Err(e), _) => return Err(e),
                    }
                }
            }
        }
    }

    /// Writes a consistent copy of the whole registry to `dest` (a new
    /// SQLite file), as of one moment, while others may go on writing to
    /// it. A reproduction registers into such a copy, never into the original.
    pub fn copy_to(&self, dest: &Path) -> Result<(), RegistryError> {
        match &self.backend {
            Backend::Sqlite(conn) => {
                conn.execute("VACUUM INTO ?1", [dest.display().to_string()])
                    .map_err(|e| error::db_error(&self.location, "copy the registry", e))?;
            }
            Backend::Postgres(pg) => self.copy_postgres(&mut pg.borrow_mut(), dest)?,
        }
        crate::store::owner_only(dest).map_err(|source| RegistryError::Io {
            path: dest.to_path_buf(),
            action: "restrict access to the registry copy",
            source,
        })
    }

    /// Every row of every table, read in one snapshot, into a new file registry.
    fn copy_postgres(&self, pg: &mut Pg, dest: &Path) -> Result<(), RegistryError> {
        if dest.exists() {
            return Err(RegistryError::invalid(format!(
                "copy the registry to {}: the file exists already",
                dest.display()
            )));
        }
        let mut copy = Registry::open(dest)?;
        let Backend::Sqlite(conn) = &mut copy.backend else {
            unreachable!("a path opens an SQLite registry")
        };
        let dest_location = copy.location.clone();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| error::db_error(&dest_location, "write the registry copy", e))?;
        let mut target = Lite {
            conn: &tx,
            location: &dest_location,
        };
        let fail = |action, e| error::db_error(&self.location, action, e);
        pg.raw_batch("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .map_err(|e| fail("read the registry to copy it", e))?;
        let copied = (|| -> Result<(), RegistryError> {
            for (table, columns) in schema::TABLES {
                let source: &mut dyn Sql = pg;
                let rows = source.query(
                    "read the registry to copy it",
                    &format!("SELECT {columns} FROM {table} ORDER BY 1"),
                    db::params![],
                )?;
                let n = columns.split(',').count();
                let marks: Vec<String> = (1..=n).map(|i| format!("?{i}")).collect();
                let insert = format!(
                    "INSERT INTO {table} ({columns}) VALUES ({})",
                    marks.join(", ")
                );
                let target: &mut dyn Sql = &mut target;
                for row in &rows {
                    target.execute("write the registry copy", &insert, &row.params())?;
                }
            }
            Ok(())
        })();
        let _ = pg.raw_batch("ROLLBACK");
        copied?;
        tx.commit()
            .map_err(|e| error::db_error(&dest_location, "commit the registry copy", e))
    }
}

/// The current time as RFC 3339 in UTC, to the second.
fn now_rfc3339() -> String {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string()
}

#[cfg(test)]
mod tests;
