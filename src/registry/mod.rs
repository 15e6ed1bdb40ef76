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
//! Storage is one embedded SQLite file (by default `.pipeline/registry.db`).
//! Several processes may use it at once: the file is in WAL mode, waits for
//! locks instead of failing at once, and every write is a single
//! `BEGIN IMMEDIATE` transaction, so version numbers are allocated under the
//! write lock (1..N without gaps) and a crash never leaves half a version.
//!
//! Map of the module:
//! - [`model`]: the records ([`NewVersion`], [`ModelVersion`], [`AuditEntry`], ...);
//! - `register`, `review`: the writes (register with a policy; approve, reject);
//! - `query`: the reads for the command line (groups, list, show, history, diff, resolve);
//! - [`policy`] and [`expr`]: approval policies and the `auc >= 0.9` condition language;
//! - [`reference`]: parsing `registry://GROUP@SELECTOR`;
//! - [`hook`]: the environment an `on_approved` hook command receives;
//! - `schema`: the schema and its forward migrations.

pub mod error;
pub mod expr;
pub mod hook;
pub mod model;
pub mod policy;
pub mod reference;

mod query;
mod register;
mod review;
mod rows;
mod schema;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

pub use error::RegistryError;
pub use expr::{Condition, Evaluation, ExprError};
pub use hook::hook_env;
pub use model::{
    Action, AuditEntry, ChangeKind, Decision, FieldChange, GroupSummary, MetricChange,
    ModelVersion, NewVersion, Registration, Status, Transition, VersionDiff, VersionSummary,
};
pub use policy::ApprovalPolicy;
pub use reference::{RegistryRef, Selector};

/// The registry's default location, relative to the project directory.
pub const DEFAULT_PATH: &str = ".pipeline/registry.db";

/// How long a write waits for another process's write to finish before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// An open registry database. One per thread or process; it is cheap to open.
pub struct Registry {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("path", &self.path)
            .finish()
    }
}

impl Registry {
    /// Opens the registry at `path`, creating the file and its parent
    /// directories if needed and upgrading an older schema.
    ///
    /// Fails with [`RegistryError::Corrupt`] for a file that is not an SQLite
    /// database, [`RegistryError::Foreign`] for another program's database and
    /// [`RegistryError::TooNew`] for a registry written by a newer release.
    pub fn open(path: impl AsRef<Path>) -> Result<Registry, RegistryError> {
        Self::open_with_migrations(path.as_ref(), schema::MIGRATIONS)
    }

    /// Opens the registry at `path` only if it exists, for commands that read
    /// (`pipeline registry list`, `pipeline predict --model registry://...`)
    /// and should not leave an empty registry behind.
    pub fn open_existing(path: impl AsRef<Path>) -> Result<Registry, RegistryError> {
        let path = path.as_ref();
        if !path.exists() {
            return Err(RegistryError::invalid_with_hint(
                format!("there is no registry at {} yet", path.display()),
                "a pipeline with a `register` step creates it on its first run",
            ));
        }
        Self::open(path)
    }

    fn open_with_migrations(path: &Path, migrations: &[&str]) -> Result<Registry, RegistryError> {
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
        let mut conn = Connection::open_with_flags(path, flags)
            .map_err(|e| error::db_error(path, "open the database", e))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| error::db_error(path, "set the lock timeout", e))?;
        // Read the header before anything else: a damaged or foreign file must
        // be reported before we change its journal mode.
        schema::migrate(&mut conn, path, migrations)?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(|e| error::db_error(path, "switch the database to WAL mode", e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            // Some file systems (network mounts) cannot do WAL; the rollback
            // journal still gives atomic transactions, only less concurrency.
            conn.pragma_update(None, "journal_mode", "DELETE")
                .map_err(|e| error::db_error(path, "set the journal mode", e))?;
        }
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(|e| error::db_error(path, "enable foreign keys", e))?;
        // In WAL mode NORMAL is durable against crashes of the process; only a
        // power loss can drop the last commits, never corrupt the file.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| error::db_error(path, "set the sync mode", e))?;
        Ok(Registry {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// How long a write waits for another process's write before failing
    /// (30 seconds unless changed). A command line may want to fail faster.
    pub fn set_lock_timeout(&mut self, timeout: Duration) -> Result<(), RegistryError> {
        self.conn
            .busy_timeout(timeout)
            .map_err(|e| self.db("set the lock timeout", e))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version of the open database (`PRAGMA user_version`).
    pub fn schema_version(&self) -> Result<u32, RegistryError> {
        let v: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| self.db("read the schema version", e))?;
        Ok(v as u32)
    }

    /// Writes a consistent copy of the whole registry to `dest` (a new
    /// file), as of one moment, while others may go on writing to it. A
    /// reproduction registers into such a copy, never into the original.
    pub fn copy_to(&self, dest: &Path) -> Result<(), RegistryError> {
        self.conn
            .execute("VACUUM INTO ?1", [dest.display().to_string()])
            .map_err(|e| self.db("copy the registry", e))?;
        crate::store::owner_only(dest).map_err(|source| RegistryError::Io {
            path: dest.to_path_buf(),
            action: "restrict access to the registry copy",
            source,
        })
    }

    fn db(&self, action: &'static str, e: rusqlite::Error) -> RegistryError {
        error::db_error(&self.path, action, e)
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
