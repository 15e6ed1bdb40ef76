//! Registering a new version: validation, idempotency, version allocation and
//! the approval policy, all inside one `BEGIN IMMEDIATE` transaction.
//!
//! Holding the write lock from the first read means the next version number,
//! the champion a `BeatChampion` policy compares against, and the duplicate
//! check all see the same state, and no other process can register or approve
//! in between. A crash before commit leaves nothing behind.

use rusqlite::{OptionalExtension, TransactionBehavior};

use super::error::RegistryError;
use super::model::{Action, Decision, NewVersion, Registration, Status};
use super::policy::ApprovalPolicy;
use super::reference::validate_group_name;
use super::rows::{self, VERSION_COLUMNS, to_json};
use super::{Registry, now_rfc3339};

impl Registry {
    /// Registers `new` as the next version of its group (creating the group on
    /// first use) and applies `policy`.
    ///
    /// When the group already has a version with the same registration key
    /// (see [`NewVersion::registration_key`]), that version is returned with
    /// `created: false` and nothing is written. Check
    /// [`Registration::became_approved`] to decide whether to run hooks.
    pub fn register(
        &mut self,
        new: &NewVersion,
        policy: &ApprovalPolicy,
    ) -> Result<Registration, RegistryError> {
        validate(new)?;
        policy.check()?;
        let key = new.effective_key();
        let path = self.path.clone();
        let db = |action, e| super::error::db_error(&path, action, e);

        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| db("lock the database to register", e))?;

        let now = now_rfc3339();
        let group_id: i64 = match tx
            .query_row(
                "SELECT id FROM model_groups WHERE name = ?1",
                [&new.group],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| db("look up the model group", e))?
        {
            Some(id) => id,
            None => {
                tx.execute(
                    "INSERT INTO model_groups (name, created_at) VALUES (?1, ?2)",
                    rusqlite::params![new.group, now],
                )
                .map_err(|e| db("create the model group", e))?;
                tx.last_insert_rowid()
            }
        };

        let existing = tx
            .query_row(
                &format!(
                    "SELECT {VERSION_COLUMNS} FROM model_versions v \
                     JOIN model_groups g ON g.id = v.group_id \
                     WHERE v.group_id = ?1 AND v.registration_key = ?2"
                ),
                rusqlite::params![group_id, key],
                rows::version_from_row,
            )
            .optional()
            .map_err(|e| db("look for an earlier registration", e))?;
        if let Some(version) = existing {
            // Nothing was written (the group existed, since it has this version).
            tx.commit().map_err(|e| db("finish the registration", e))?;
            return Ok(Registration {
                version,
                created: false,
                decision: None,
            });
        }

        let champion = if matches!(policy, ApprovalPolicy::BeatChampion { .. }) {
            tx.query_row(
                &format!(
                    "SELECT {VERSION_COLUMNS} FROM model_versions v \
                     JOIN model_groups g ON g.id = v.group_id \
                     WHERE v.group_id = ?1 AND v.status = 'Approved' \
                     ORDER BY v.version DESC LIMIT 1"
                ),
                [group_id],
                rows::version_from_row,
            )
            .optional()
            .map_err(|e| db("find the champion version", e))?
        } else {
            None
        };
        let decision: Decision = policy.decide(&new.metrics, champion.as_ref())?;

        let number: u32 = tx
            .query_row(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions WHERE group_id = ?1",
                [group_id],
                |r| r.get(0),
            )
            .map_err(|e| db("allocate a version number", e))?;

        tx.execute(
            "INSERT INTO model_versions (group_id, version, registration_key, status, \
             artifact_digest, algorithm, hyperparameters, metrics, run_id, step, input_digests, \
             spec_hash, params, created_at, description, tags, registered_by) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
            rusqlite::params![
                group_id,
                number,
                key,
                Status::PendingManualApproval.as_str(),
                new.artifact_digest,
                new.algorithm,
                to_json(&new.hyperparameters),
                to_json(&new.metrics),
                new.run_id,
                new.step,
                to_json(&new.input_digests),
                new.spec_hash,
                to_json(&new.params),
                now,
                new.description,
                to_json(&new.tags),
                new.registered_by,
            ],
        )
        .map_err(|e| db("insert the version", e))?;
        let version_id = tx.last_insert_rowid();
        if !new.on_approved.is_empty() {
            tx.execute(
                "INSERT INTO version_hooks (version_id, on_approved) VALUES (?1, ?2)",
                rusqlite::params![version_id, to_json(&new.on_approved)],
            )
            .map_err(|e| db("record the version's on_approved hooks", e))?;
        }

        let register_note = if decision.approved {
            None
        } else {
            Some(decision.reason.as_str())
        };
        rows::append_audit(
            &tx,
            &path,
            version_id,
            &now,
            &new.registered_by,
            Action::Register,
            None,
            Status::PendingManualApproval,
            register_note,
        )?;
        if decision.approved {
            tx.execute(
                "UPDATE model_versions SET status = ?1 WHERE id = ?2",
                rusqlite::params![Status::Approved.as_str(), version_id],
            )
            .map_err(|e| db("approve the version", e))?;
            rows::append_audit(
                &tx,
                &path,
                version_id,
                &now,
                &new.registered_by,
                Action::AutoApprove,
                Some(Status::PendingManualApproval),
                Status::Approved,
                Some(&decision.reason),
            )?;
        }

        let (_, version) = rows::load_version(&tx, &path, &new.group, number)?;
        #[cfg(test)]
        if super::tests::CRASH_BEFORE_COMMIT.load(std::sync::atomic::Ordering::SeqCst) {
            // Simulates the process dying with the version written but not committed.
            std::process::abort();
        }
        tx.commit().map_err(|e| db("commit the registration", e))?;
        Ok(Registration {
            version,
            created: true,
            decision: Some(decision),
        })
    }
}

/// Refuses what could not be compared, resolved or shown later.
fn validate(new: &NewVersion) -> Result<(), RegistryError> {
    validate_group_name(&new.group)?;
    let required = [
        ("artifact_digest", &new.artifact_digest),
        ("run_id", &new.run_id),
        ("step", &new.step),
        ("registered_by", &new.registered_by),
    ];
    for (field, value) in required {
        if value.trim().is_empty() {
            return Err(RegistryError::invalid(format!(
                "the new version of `{}` has an empty `{field}`",
                new.group
            )));
        }
    }
    if new.registration_key.as_deref() == Some("") {
        return Err(RegistryError::invalid_with_hint(
            format!(
                "the new version of `{}` has an empty registration key",
                new.group
            ),
            "pass the step's cache key, or `None` to derive one from the run, step and artifact",
        ));
    }
    for (name, value) in &new.metrics {
        if !value.is_finite() {
            return Err(RegistryError::invalid_with_hint(
                format!(
                    "metric `{name}` of the new version of `{}` is {value}",
                    new.group
                ),
                "the registry stores finite metrics only, since others cannot be compared; \
                 fix the evaluation or leave the metric out",
            ));
        }
    }
    Ok(())
}
