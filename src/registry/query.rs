//! Reads for the command line and for resolving references: groups, versions,
//! one version, the audit trail, and the difference between two versions.
//!
//! Reads take no write lock; they see the last committed state and never
//! wait for a writer (SQLite in WAL mode; PostgreSQL's snapshots).

use std::collections::{BTreeMap, BTreeSet};

use super::Registry;
use super::db::{Param, params};

use super::error::RegistryError;
use super::model::{
    AuditEntry, ChangeKind, FieldChange, GroupSummary, MetricChange, ModelVersion, VersionDiff,
    VersionSummary,
};
use super::reference::{RegistryRef, Selector};
use super::rows::{self, AUDIT_COLUMNS, VERSION_COLUMNS};

impl Registry {
    /// The `on_approved` commands of the pipeline that registered
    /// `group` version `version` (none for versions registered before they
    /// were recorded).
    pub fn pipeline_hooks(&self, group: &str, version: u32) -> Result<Vec<String>, RegistryError> {
        self.read(|db| {
            let action = "read the version's on_approved hooks";
            let row = db.query_opt(
                action,
                "SELECT h.on_approved FROM version_hooks h \
                 JOIN model_versions v ON v.id = h.version_id \
                 JOIN model_groups g ON g.id = v.group_id \
                 WHERE g.name = ?1 AND v.version = ?2",
                params![group, version],
            )?;
            let text = row
                .map(|r| db.decode_row(action, &r, |r| r.text(0)))
                .transpose()?;
            Ok(text
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or_default())
        })
    }

    /// Every group, by name, with its version count, newest and newest Approved version.
    pub fn groups(&self) -> Result<Vec<GroupSummary>, RegistryError> {
        self.read(|db| {
            let action = "list the model groups";
            let rows = db.query(
                action,
                "SELECT g.name, g.created_at, COUNT(v.id), MAX(v.version), \
                 MAX(CASE WHEN v.status = 'Approved' THEN v.version END) \
                 FROM model_groups g LEFT JOIN model_versions v ON v.group_id = g.id \
                 GROUP BY g.id ORDER BY g.name",
                params![],
            )?;
            db.decode(action, rows, |r| {
                Ok(GroupSummary {
                    name: r.text(0)?,
                    created_at: r.text(1)?,
                    version_count: r.u32(2)?,
                    latest_version: r.opt_u32(3)?,
                    approved_version: r.opt_u32(4)?,
                })
            })
        })
    }

    /// The versions of `group`, oldest first.
    pub fn versions(&self, group: &str) -> Result<Vec<VersionSummary>, RegistryError> {
        Ok(self
            .full_versions(group)?
            .into_iter()
            .map(|v| VersionSummary {
                version: v.version,
                status: v.status,
                created_at: v.created_at,
                artifact_digest: v.artifact_digest,
                algorithm: v.algorithm,
                metrics: v.metrics,
                run_id: v.run_id,
                description: v.description,
            })
            .collect())
    }

    fn full_versions(&self, group: &str) -> Result<Vec<ModelVersion>, RegistryError> {
        self.read(|db| {
            let gid = rows::group_id(db, group, false)?;
            let action = "list the versions";
            let rows = db.query(
                action,
                &format!(
                    "SELECT {VERSION_COLUMNS} FROM model_versions v \
                     JOIN model_groups g ON g.id = v.group_id \
                     WHERE v.group_id = ?1 ORDER BY v.version"
                ),
                params![gid],
            )?;
            db.decode(action, rows, rows::version_from_row)
        })
    }

    /// Version `version` of `group` with all its lineage.
    pub fn version(&self, group: &str, version: u32) -> Result<ModelVersion, RegistryError> {
        self.read(|db| Ok(rows::load_version(db, group, version)?.1))
    }

    /// The audit trail of `group`, oldest first.
    pub fn history(&self, group: &str) -> Result<Vec<AuditEntry>, RegistryError> {
        self.read(|db| {
            let gid = rows::group_id(db, group, false)?;
            audit(db, "WHERE v.group_id = ?1 ORDER BY a.id", params![gid])
        })
    }

    /// The audit trail of one version, oldest first.
    pub fn version_history(
        &self,
        group: &str,
        version: u32,
    ) -> Result<Vec<AuditEntry>, RegistryError> {
        self.read(|db| {
            let (id, _) = rows::load_version(db, group, version)?;
            audit(db, "WHERE a.version_id = ?1 ORDER BY a.id", params![id])
        })
    }

    /// The version a reference names. `@approved` without an approved version
    /// is [`RegistryError::NoApprovedVersion`], listing the versions and statuses.
    pub fn resolve(&self, reference: &RegistryRef) -> Result<ModelVersion, RegistryError> {
        let group = &reference.group;
        match reference.selector {
            Selector::Version(n) => self.version(group, n),
            Selector::Latest | Selector::Approved => self.read(|db| {
                let gid = rows::group_id(db, group, false)?;
                let any_status = reference.selector == Selector::Latest;
                // Two statements rather than one with an `OR`, so that each
                // is a single lookup in an index.
                let status_filter = if any_status {
                    ""
                } else {
                    "AND v.status = 'Approved'"
                };
                let action = "resolve the reference";
                let found = db.query_opt(
                    action,
                    &format!(
                        "SELECT {VERSION_COLUMNS} FROM model_versions v \
                         JOIN model_groups g ON g.id = v.group_id \
                         WHERE v.group_id = ?1 {status_filter} \
                         ORDER BY v.version DESC LIMIT 1"
                    ),
                    params![gid],
                )?;
                match found {
                    Some(r) => db.decode_row(action, &r, rows::version_from_row),
                    None if any_status => Err(RegistryError::invalid(format!(
                        "model group `{group}` has no versions yet"
                    ))),
                    None => Err(RegistryError::NoApprovedVersion {
                        group: group.clone(),
                        versions: rows::version_statuses(db, gid)?,
                    }),
                }
            }),
        }
    }

    /// Parses and resolves a `registry://GROUP@SELECTOR` string.
    pub fn resolve_str(&self, reference: &str) -> Result<ModelVersion, RegistryError> {
        self.resolve(&RegistryRef::parse(reference)?)
    }

    /// What differs between versions `from` and `to` of `group`.
    pub fn diff(&self, group: &str, from: u32, to: u32) -> Result<VersionDiff, RegistryError> {
        let a = self.version(group, from)?;
        let b = self.version(group, to)?;
        let scalar =
            |name: &str, x: Option<String>, y: Option<String>| change(name.to_string(), x, y);
        let fields = vec![
            scalar(
                "status",
                Some(a.status.to_string()),
                Some(b.status.to_string()),
            ),
            scalar(
                "algorithm",
                Some(a.algorithm.clone()),
                Some(b.algorithm.clone()),
            ),
            scalar(
                "artifact_digest",
                Some(a.artifact_digest.clone()),
                Some(b.artifact_digest.clone()),
            ),
            scalar(
                "spec_hash",
                Some(a.spec_hash.clone()),
                Some(b.spec_hash.clone()),
            ),
            scalar("run_id", Some(a.run_id.clone()), Some(b.run_id.clone())),
            scalar("step", Some(a.step.clone()), Some(b.step.clone())),
            scalar("description", a.description.clone(), b.description.clone()),
        ];
        let metrics = union(&a.metrics, &b.metrics)
            .into_iter()
            .map(|name| {
                let x = a.metrics.get(name).copied();
                let y = b.metrics.get(name).copied();
                MetricChange {
                    name: name.clone(),
                    from: x,
                    to: y,
                    delta: x.zip(y).map(|(x, y)| y - x),
                    kind: kind(x.as_ref(), y.as_ref()),
                }
            })
            .collect();
        Ok(VersionDiff {
            group: group.to_string(),
            from_version: from,
            to_version: to,
            fields,
            hyperparameters: map_diff(&a.hyperparameters, &b.hyperparameters),
            metrics,
            params: map_diff(&a.params, &b.params),
            inputs: map_diff(&a.input_digests, &b.input_digests),
            tags: map_diff(&a.tags, &b.tags),
        })
    }
}

fn audit(
    db: &mut dyn super::db::Sql,
    filter: &str,
    params: &[Param<'_>],
) -> Result<Vec<AuditEntry>, RegistryError> {
    let action = "read the audit trail";
    let rows = db.query(
        action,
        &format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_events a \
             JOIN model_versions v ON v.id = a.version_id \
             JOIN model_groups g ON g.id = v.group_id {filter}"
        ),
        params,
    )?;
    db.decode(action, rows, rows::audit_from_row)
}

fn union<'a, V>(a: &'a BTreeMap<String, V>, b: &'a BTreeMap<String, V>) -> BTreeSet<&'a String> {
    a.keys().chain(b.keys()).collect()
}

fn kind<T: PartialEq>(x: Option<&T>, y: Option<&T>) -> ChangeKind {
    match (x, y) {
        (None, Some(_)) => ChangeKind::Added,
        (Some(_), None) => ChangeKind::Removed,
        (Some(x), Some(y)) if x != y => ChangeKind::Changed,
        _ => ChangeKind::Unchanged,
    }
}

fn change<T: PartialEq>(name: String, x: Option<T>, y: Option<T>) -> FieldChange<T> {
    let kind = kind(x.as_ref(), y.as_ref());
    FieldChange {
        name,
        from: x,
        to: y,
        kind,
    }
}

fn map_diff<T: PartialEq + Clone>(
    a: &BTreeMap<String, T>,
    b: &BTreeMap<String, T>,
) -> Vec<FieldChange<T>> {
    union(a, b)
        .into_iter()
        .map(|name| change(name.clone(), a.get(name).cloned(), b.get(name).cloned()))
        .collect()
}
