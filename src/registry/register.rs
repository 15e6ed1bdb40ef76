//! Registering a new version: validation, idempotency, version allocation and
//! the approval policy, all inside one write transaction that holds the
//! group's lock from its first read.
//!
//! Holding the lock from the first read means the next version number,
//! the champion a `BeatChampion` policy compares against, and the duplicate
//! check all see the same state, and no other process can register or approve
//! in between. A crash before commit leaves nothing behind.

use super::db::{Sql, params};
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
        self.write("lock the database to register", |tx| {
            register_in(tx, new, policy)
        })
    }
}

fn register_in(
    tx: &mut dyn Sql,
    new: &NewVersion,
    policy: &ApprovalPolicy,
) -> Result<Registration, RegistryError> {
    let key = new.effective_key();
    let now = now_rfc3339();
    // Creating the group is a no-op when it exists (or when another writer
    // creates it first: this waits for that writer and then does nothing).
    tx.execute(
        "create the model group",
        "INSERT INTO model_groups (name, created_at) VALUES (?1, ?2) \
         ON CONFLICT (name) DO NOTHING",
        params![&new.group, now.as_str()],
    )?;
    let group_id = rows::group_id(tx, &new.group, true)?;

    let action = "look for an earlier registration";
    let existing = tx.query_opt(
        action,
        &format!(
            "SELECT {VERSION_COLUMNS} FROM model_versions v \
             JOIN model_groups g ON g.id = v.group_id \
             WHERE v.group_id = ?1 AND v.registration_key = ?2"
        ),
        params![group_id, key.as_str()],
    )?;
    if let Some(row) = existing {
        // Nothing was written (the group existed, since it has this version).
        return Ok(Registration {
            version: tx.decode_row(action, &row, rows::version_from_row)?,
            created: false,
            decision: None,
        });
    }

    let champion = if matches!(policy, ApprovalPolicy::BeatChampion { .. }) {
        let action = "find the champion version";
        let row = tx.query_opt(
            action,
            &format!(
                "SELECT {VERSION_COLUMNS} FROM model_versions v \
                 JOIN model_groups g ON g.id = v.group_id \
                 WHERE v.group_id = ?1 AND v.status = 'Approved' \
                 ORDER BY v.version DESC LIMIT 1"
            ),
            params![group_id],
        )?;
        row.map(|r| tx.decode_row(action, &r, rows::version_from_row))
            .transpose()?
    } else {
        None
    };
    let decision: Decision = policy.decide(&new.metrics, champion.as_ref())?;

    let action = "allocate a version number";
    let row = tx.query_one(
        action,
        "SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions WHERE group_id = ?1",
        params![group_id],
    )?;
    let number = tx.decode_row(action, &row, |r| r.u32(0))?;

    let action = "insert the version";
    let (hyperparameters, metrics, input_digests, params, tags) = (
        to_json(&new.hyperparameters),
        to_json(&new.metrics),
        to_json(&new.input_digests),
        to_json(&new.params),
        to_json(&new.tags),
    );
    let row = tx.query_one(
        action,
        "INSERT INTO model_versions (group_id, version, registration_key, status, \
         artifact_digest, algorithm, hyperparameters, metrics, run_id, step, input_digests, \
         spec_hash, params, created_at, description, tags, registered_by) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17) \
         RETURNING id",
        params![
            group_id,
            number,
            key.as_str(),
            Status::PendingManualApproval.as_str(),
            &new.artifact_digest,
            &new.algorithm,
            &hyperparameters,
            &metrics,
            &new.run_id,
            &new.step,
            &input_digests,
            &new.spec_hash,
            &params,
            now.as_str(),
            &new.description,
            &tags,
            &new.registered_by,
        ],
    )?;
    let version_id = tx.decode_row(action, &row, |r| r.int(0))?;
    if !new.on_approved.is_empty() {
        tx.execute(
            "record the version's on_approved hooks",
            "INSERT INTO version_hooks (version_id, on_approved) VALUES (?1, ?2)",
            params![version_id, &to_json(&new.on_approved)],
        )?;
    }

    let register_note = if decision.approved {
        None
    } else {
        Some(decision.reason.as_str())
    };
    rows::append_audit(
        tx,
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
            "approve the version",
            "UPDATE model_versions SET status = ?1 WHERE id = ?2",
            params![Status::Approved.as_str(), version_id],
        )?;
        rows::append_audit(
            tx,
            version_id,
            &now,
            &new.registered_by,
            Action::AutoApprove,
            Some(Status::PendingManualApproval),
            Status::Approved,
            Some(&decision.reason),
        )?;
    }

    let (_, version) = rows::load_version_in(tx, group_id, &new.group, number)?;
    Ok(Registration {
        version,
        created: true,
        decision: Some(decision),
    })
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
