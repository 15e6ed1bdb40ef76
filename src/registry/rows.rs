//! Reading and writing registry rows: the column lists, JSON-encoded maps, and
//! the lookups that turn "no such row" into errors a person can act on.
//!
//! Maps (hyperparameters, metrics, params, ...) are stored as JSON text: they
//! are always read and written whole, and JSON keeps the params' types.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, Row};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::{RegistryError, db_error};
use super::model::{Action, AuditEntry, ModelVersion, Status};

/// The columns [`version_from_row`] reads, in order; `v` is `model_versions`, `g` is `model_groups`.
pub(crate) const VERSION_COLUMNS: &str = "g.name, v.version, v.status, v.artifact_digest, \
    v.algorithm, v.hyperparameters, v.metrics, v.run_id, v.step, v.input_digests, v.spec_hash, \
    v.params, v.created_at, v.description, v.tags, v.registration_key, v.registered_by";

/// The columns [`audit_from_row`] reads, in order; `a` is `audit_events`.
pub(crate) const AUDIT_COLUMNS: &str =
    "g.name, v.version, a.at, a.actor, a.action, a.from_status, a.to_status, a.note";

pub(crate) fn to_json<T: Serialize>(value: &T) -> String {
    // Maps of strings, finite floats and JSON values always serialize.
    serde_json::to_string(value).unwrap_or_else(|_| "{}".to_string())
}

fn from_json<T: DeserializeOwned>(row: &Row<'_>, idx: usize) -> rusqlite::Result<T> {
    let text: String = row.get(idx)?;
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn status_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<Status> {
    let text: String = row.get(idx)?;
    Status::from_db(&text).ok_or_else(|| bad_text(idx, format!("unknown status `{text}`")))
}

fn bad_text(idx: usize, message: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, message.into())
}

pub(crate) fn version_from_row(row: &Row<'_>) -> rusqlite::Result<ModelVersion> {
    version_at(row, 0)
}

pub(crate) fn audit_from_row(row: &Row<'_>) -> rusqlite::Result<AuditEntry> {
    let action: String = row.get(4)?;
    let from_status: Option<String> = row.get(5)?;
    Ok(AuditEntry {
        group: row.get(0)?,
        version: row.get(1)?,
        at: row.get(2)?,
        by: row.get(3)?,
        action: Action::from_db(&action)
            .ok_or_else(|| bad_text(4, format!("unknown action `{action}`")))?,
        from_status: match from_status {
            None => None,
            Some(s) => Some(
                Status::from_db(&s).ok_or_else(|| bad_text(5, format!("unknown status `{s}`")))?,
            ),
        },
        to_status: status_at(row, 6)?,
        note: row.get(7)?,
    })
}

/// The id of `group`, or [`RegistryError::UnknownGroup`] with the closest existing name.
pub(crate) fn group_id(conn: &Connection, path: &Path, group: &str) -> Result<i64, RegistryError> {
    let id: Option<i64> = conn
        .prepare_cached("SELECT id FROM model_groups WHERE name = ?1")
        .and_then(|mut stmt| stmt.query_row([group], |r| r.get(0)).optional())
        .map_err(|e| db_error(path, "look up the model group", e))?;
    match id {
        Some(id) => Ok(id),
        None => Err(unknown_group(conn, path, group)?),
    }
}

fn unknown_group(
    conn: &Connection,
    path: &Path,
    group: &str,
) -> Result<RegistryError, RegistryError> {
    let known = group_names(conn, path)?;
    let suggestion = known
        .iter()
        .map(|k| (strsim::jaro_winkler(group, k), k))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k.clone());
    Ok(RegistryError::UnknownGroup {
        group: group.to_string(),
        suggestion,
        known,
    })
}

pub(crate) fn group_names(conn: &Connection, path: &Path) -> Result<Vec<String>, RegistryError> {
    let mut stmt = conn
        .prepare_cached("SELECT name FROM model_groups ORDER BY name")
        .map_err(|e| db_error(path, "list the model groups", e))?;
    stmt.query_map([], |r| r.get(0))
        .and_then(|rows| rows.collect())
        .map_err(|e| db_error(path, "list the model groups", e))
}

/// Every version number of a group with its status, ascending.
pub(crate) fn version_statuses(
    conn: &Connection,
    path: &Path,
    group_id: i64,
) -> Result<Vec<(u32, Status)>, RegistryError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT version, status FROM model_versions WHERE group_id = ?1 ORDER BY version",
        )
        .map_err(|e| db_error(path, "list the versions", e))?;
    stmt.query_map([group_id], |r| Ok((r.get(0)?, status_at(r, 1)?)))
        .and_then(|rows| rows.collect())
        .map_err(|e| db_error(path, "list the versions", e))
}

/// Version `version` of `group`, with its row id, or an error naming what exists.
pub(crate) fn load_version(
    conn: &Connection,
    path: &Path,
    group: &str,
    version: u32,
) -> Result<(i64, ModelVersion), RegistryError> {
    let gid = group_id(conn, path, group)?;
    let sql = format!(
        "SELECT v.id, {VERSION_COLUMNS} FROM model_versions v JOIN model_groups g ON g.id = v.group_id \
         WHERE v.group_id = ?1 AND v.version = ?2"
    );
    let found = conn
        .prepare_cached(&sql)
        .and_then(|mut stmt| {
            stmt.query_row(rusqlite::params![gid, version], |r| {
                Ok((r.get::<_, i64>(0)?, version_at(r, 1)?))
            })
            .optional()
        })
        .map_err(|e| db_error(path, "read the version", e))?;
    match found {
        Some(v) => Ok(v),
        None => Err(RegistryError::UnknownVersion {
            group: group.to_string(),
            version,
            existing: version_statuses(conn, path, gid)?
                .into_iter()
                .map(|(v, _)| v)
                .collect(),
        }),
    }
}

/// Reads the [`VERSION_COLUMNS`] starting at column `o`.
fn version_at(row: &Row<'_>, o: usize) -> rusqlite::Result<ModelVersion> {
    Ok(ModelVersion {
        group: row.get(o)?,
        version: row.get(o + 1)?,
        status: status_at(row, o + 2)?,
        artifact_digest: row.get(o + 3)?,
        algorithm: row.get(o + 4)?,
        hyperparameters: from_json(row, o + 5)?,
        metrics: from_json(row, o + 6)?,
        run_id: row.get(o + 7)?,
        step: row.get(o + 8)?,
        input_digests: from_json(row, o + 9)?,
        spec_hash: row.get(o + 10)?,
        params: from_json(row, o + 11)?,
        created_at: row.get(o + 12)?,
        description: row.get(o + 13)?,
        tags: from_json(row, o + 14)?,
        registration_key: row.get(o + 15)?,
        registered_by: row.get(o + 16)?,
    })
}

/// Appends one line to the audit trail.
#[allow(clippy::too_many_arguments)]
pub(crate) fn append_audit(
    conn: &Connection,
    path: &Path,
    version_id: i64,
    at: &str,
    by: &str,
    action: Action,
    from_status: Option<Status>,
    to_status: Status,
    note: Option<&str>,
) -> Result<(), RegistryError> {
    conn.prepare_cached(
        "INSERT INTO audit_events (version_id, at, actor, action, from_status, to_status, note) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .and_then(|mut stmt| {
        stmt.execute(rusqlite::params![
            version_id,
            at,
            by,
            action.as_str(),
            from_status.map(Status::as_str),
            to_status.as_str(),
            note
        ])
    })
    .map_err(|e| db_error(path, "append to the audit trail", e))?;
    Ok(())
}
