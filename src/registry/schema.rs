//! The database schema and its forward migrations.
//!
//! The schema version lives in `PRAGMA user_version`; `MIGRATIONS[i]` takes a
//! database from version `i` to `i + 1`, and the initial schema is simply
//! migration 1, so a fresh file and an old file go through the same code.
//! `PRAGMA application_id` marks the file as ours, which is how a foreign
//! SQLite file is told apart from an empty one. Migrations run inside one
//! `BEGIN IMMEDIATE` transaction that re-reads the version, so two processes
//! opening an old registry at once migrate it exactly once.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::error::{RegistryError, db_error};

/// `PIPR` in ASCII: marks a database file as a pipeline registry.
pub(crate) const APPLICATION_ID: i32 = 0x5049_5052;

/// The schema steps, oldest first. Never edit a released step; append a new one.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    r#"
    CREATE TABLE model_groups (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        created_at  TEXT NOT NULL
    );
    CREATE TABLE model_versions (
        id               INTEGER PRIMARY KEY,
        group_id         INTEGER NOT NULL REFERENCES model_groups(id),
        version          INTEGER NOT NULL CHECK (version >= 1),
        registration_key TEXT NOT NULL,
        status           TEXT NOT NULL CHECK (status IN ('PendingManualApproval', 'Approved', 'Rejected')),
        artifact_digest  TEXT NOT NULL,
        algorithm        TEXT NOT NULL,
        hyperparameters  TEXT NOT NULL,
        metrics          TEXT NOT NULL,
        run_id           TEXT NOT NULL,
        step             TEXT NOT NULL,
        input_digests    TEXT NOT NULL,
        spec_hash        TEXT NOT NULL,
        params           TEXT NOT NULL,
        created_at       TEXT NOT NULL,
        description      TEXT,
        tags             TEXT NOT NULL,
        registered_by    TEXT NOT NULL,
        UNIQUE (group_id, version),
        UNIQUE (group_id, registration_key)
    );
    CREATE TABLE audit_events (
        id           INTEGER PRIMARY KEY,
        version_id   INTEGER NOT NULL REFERENCES model_versions(id),
        at           TEXT NOT NULL,
        actor        TEXT NOT NULL,
        action       TEXT NOT NULL,
        from_status  TEXT,
        to_status    TEXT NOT NULL,
        note         TEXT
    );
    CREATE INDEX model_versions_by_status ON model_versions(group_id, status, version);
    CREATE INDEX audit_events_by_version ON audit_events(version_id);
    CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
        BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
    CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
        BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
    "#,
    // 2: the `on_approved` hooks of the pipeline that registered a version,
    // so an approval by a person runs them as an approval by policy does.
    r#"
    CREATE TABLE version_hooks (
        version_id   INTEGER PRIMARY KEY REFERENCES model_versions(id),
        on_approved  TEXT NOT NULL
    );
    "#,
];

/// Checks that the database at `path` is ours (or empty) and brings it to the
/// current schema version by applying `migrations` in order.
pub(crate) fn migrate(
    conn: &mut Connection,
    path: &Path,
    migrations: &[&str],
) -> Result<(), RegistryError> {
    let supported = migrations.len() as u32;
    // Cheap check outside a write transaction: the common case is an
    // up-to-date registry, which must not take the write lock on every open.
    // One read transaction, so the id, the version and the table list come
    // from the same snapshot even while another process is migrating.
    let version = {
        let snapshot = conn
            .transaction()
            .map_err(|e| db_error(path, "read the database header", e))?;
        let (app_id, version) = read_header(&snapshot, path)?;
        check_identity(&snapshot, path, app_id, version)?;
        version
    };
    if version > supported {
        return Err(RegistryError::TooNew {
            path: path.to_path_buf(),
            found: version,
            supported,
        });
    }
    if version == supported {
        return Ok(());
    }

    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| db_error(path, "lock the database to upgrade its schema", e))?;
    // Another process may have migrated while we waited for the lock.
    let (app_id, version) = read_header(&tx, path)?;
    check_identity(&tx, path, app_id, version)?;
    if version > supported {
        return Err(RegistryError::TooNew {
            path: path.to_path_buf(),
            found: version,
            supported,
        });
    }
    for (i, sql) in migrations.iter().enumerate().skip(version as usize) {
        tx.execute_batch(sql)
            .map_err(|e| db_error(path, "upgrade the schema", e))?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .map_err(|e| db_error(path, "record the schema version", e))?;
    }
    tx.pragma_update(None, "application_id", APPLICATION_ID)
        .map_err(|e| db_error(path, "mark the database as a registry", e))?;
    tx.commit()
        .map_err(|e| db_error(path, "commit the schema upgrade", e))?;
    Ok(())
}

fn read_header(conn: &Connection, path: &Path) -> Result<(i32, u32), RegistryError> {
    let app_id: i32 = conn
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .map_err(|e| db_error(path, "read the database header", e))?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|e| db_error(path, "read the schema version", e))?;
    // user_version is a signed 32-bit field; a negative value is not ours.
    let version = u32::try_from(version).map_err(|_| RegistryError::Foreign {
        path: path.to_path_buf(),
        detail: format!("schema version {version}"),
    })?;
    Ok((app_id, version))
}

/// A file is ours when it carries our application id, or when it is a blank
/// database (no tables, version 0) that we are about to initialise.
fn check_identity(
    conn: &Connection,
    path: &Path,
    app_id: i32,
    version: u32,
) -> Result<(), RegistryError> {
    if app_id == APPLICATION_ID {
        return Ok(());
    }
    if app_id != 0 {
        return Err(RegistryError::Foreign {
            path: path.to_path_buf(),
            detail: format!("application id {app_id:#010x}"),
        });
    }
    let tables: Vec<String> = {
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name LIMIT 5")
            .map_err(|e| db_error(path, "list the tables", e))?;
        stmt.query_map([], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(|e| db_error(path, "list the tables", e))?
    };
    if tables.is_empty() && version == 0 {
        return Ok(());
    }
    let detail = if tables.is_empty() {
        format!("schema version {version} but no registry tables")
    } else {
        format!("it has tables {}", tables.join(", "))
    };
    Err(RegistryError::Foreign {
        path: path.to_path_buf(),
        detail,
    })
}
