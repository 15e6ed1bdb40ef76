//! Reading and writing registry rows: the column lists, JSON-encoded maps, and
//! the lookups that turn "no such row" into errors a person can act on.
//!
//! Maps (hyperparameters, metrics, params, ...) are stored as JSON text: they
//! are always read and written whole, and JSON keeps the params' types.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::db::{DbError, Row, Sql, params};
use super::error::RegistryError;
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

fn from_json<T: DeserializeOwned>(row: &Row, idx: usize) -> Result<T, DbError> {
    let text = row.text(idx)?;
    serde_json::from_str(&text).map_err(|e| DbError::decode(idx, format!("bad JSON: {e}")))
}

fn status_at(row: &Row, idx: usize) -> Result<Status, DbError> {
    let text = row.text(idx)?;
    Status::from_db(&text).ok_or_else(|| DbError::decode(idx, format!("unknown status `{text}`")))
}

pub(crate) fn version_from_row(row: &Row) -> Result<ModelVersion, DbError> {
    version_at(row, 0)
}

pub(crate) fn audit_from_row(row: &Row) -> Result<AuditEntry, DbError> {
    let action = row.text(4)?;
    Ok(AuditEntry {
        group: row.text(0)?,
        version: row.u32(1)?,
        at: row.text(2)?,
        by: row.text(3)?,
        action: Action::from_db(&action)
            .ok_or_else(|| DbError::decode(4, format!("unknown action `{action}`")))?,
        from_status: match row.opt_text(5)? {
            None => None,
            Some(_) => Some(status_at(row, 5)?),
        },
        to_status: status_at(row, 6)?,
        note: row.opt_text(7)?,
    })
}

/// The id of `group`, or [`RegistryError::UnknownGroup`] with the closest
/// existing name. With `lock`, the group's row stays locked until the
/// transaction ends (see [`Sql::for_update`]): every write takes it first,
/// so writes to one group never interleave.
pub(crate) fn group_id(db: &mut dyn Sql, group: &str, lock: bool) -> Result<i64, RegistryError> {
    let suffix = if lock { db.for_update() } else { "" };
    let action = "look up the model group";
    let row = db.query_opt(
        action,
        &format!("SELECT id FROM model_groups WHERE name = ?1{suffix}"),
        params![group],
    )?;
    match row {
        Some(r) => db.decode_row(action, &r, |r| r.int(0)),
        None => Err(unknown_group(db, group)?),
    }
}

fn unknown_group(db: &mut dyn Sql, group: &str) -> Result<RegistryError, RegistryError> {
    let known = group_names(db)?;
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

pub(crate) fn group_names(db: &mut dyn Sql) -> Result<Vec<String>, RegistryError> {
    let action = "list the model groups";
    let rows = db.query(
        action,
        "SELECT name FROM model_groups ORDER BY name",
        params![],
    )?;
    db.decode(action, rows, |r| r.text(0))
}

/// Every version number of a group with its status, ascending.
pub(crate) fn version_statuses(
    db: &mut dyn Sql,
    group_id: i64,
) -> Result<Vec<(u32, Status)>, RegistryError> {
    let action = "list the versions";
    let rows = db.query(
        action,
        "SELECT version, status FROM model_versions WHERE group_id = ?1 ORDER BY version",
        params![group_id],
    )?;
    db.decode(action, rows, |r| Ok((r.u32(0)?, status_at(r, 1)?)))
}

/// Version `version` of the group with id `gid`, with its row id, or an
/// error naming what exists.
pub(crate) fn load_version_in(
    db: &mut dyn Sql,
    gid: i64,
    group: &str,
    version: u32,
) -> Result<(i64, ModelVersion), RegistryError> {
    let action = "read the version";
    let row = db.query_opt(
        action,
        &format!(
            "SELECT v.id, {VERSION_COLUMNS} FROM model_versions v \
             JOIN model_groups g ON g.id = v.group_id \
             WHERE v.group_id = ?1 AND v.version = ?2"
        ),
        params![gid, version],
    )?;
    match row {
        Some(r) => db.decode_row(action, &r, |r| Ok((r.int(0)?, version_at(r, 1)?))),
        None => Err(RegistryError::UnknownVersion {
            group: group.to_string(),
            version,
            existing: version_statuses(db, gid)?
                .into_iter()
                .map(|(v, _)| v)
                .collect(),
        }),
    }
}

/// Version `version` of `group`, with its row id, or an error naming what exists.
pub(crate) fn load_version(
    db: &mut dyn Sql,
    group: &str,
    version: u32,
) -> Result<(i64, ModelVersion), RegistryError> {
    let gid = group_id(db, group, false)?;
    load_version_in(db, gid, group, version)
}

/// Reads the [`VERSION_COLUMNS`] starting at column `o`.
fn version_at(row: &Row, o: usize) -> Result<ModelVersion, DbError> {
    Ok(ModelVersion {
        group: row.text(o)?,
        version: row.u32(o + 1)?,
        status: status_at(row, o + 2)?,
        artifact_digest: row.text(o + 3)?,
        algorithm: row.text(o + 4)?,
        hyperparameters: from_json(row, o + 5)?,
        metrics: from_json(row, o + 6)?,
        run_id: row.text(o + 7)?,
        step: row.text(o + 8)?,
        input_digests: from_json(row, o + 9)?,
        spec_hash: row.text(o + 10)?,
        params: from_json(row, o + 11)?,
        created_at: row.text(o + 12)?,
        description: row.opt_text(o + 13)?,
        tags: from_json(row, o + 14)?,
        registration_key: row.text(o + 15)?,
        registered_by: row.text(o + 16)?,
    })
}

/// Appends one line to the audit trail.
#[allow(clippy::too_many_arguments)]
pub(crate) fn append_audit(
    db: &mut dyn Sql,
    version_id: i64,
    at: &str,
    by: &str,
    action: Action,
    from_status: Option<Status>,
    to_status: Status,
    note: Option<&str>,
) -> Result<(), RegistryError> {
    db.execute(
        "append to the audit trail",
        "INSERT INTO audit_events (version_id, at, actor, action, from_status, to_status, note) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            version_id,
            at,
            by,
            action.as_str(),
            from_status.map(Status::as_str),
            to_status.as_str(),
            note
        ],
    )?;
    Ok(())
}
