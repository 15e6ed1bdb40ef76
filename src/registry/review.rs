//! A reviewer's decisions: approving and rejecting versions.
//!
//! Any status may move to Approved or Rejected (SageMaker allows rejecting an
//! approved model to withdraw it); asking for the status a version already has
//! writes nothing and says so, so `approve` can be repeated safely and an
//! `on_approved` hook runs once.

use rusqlite::TransactionBehavior;

use super::error::RegistryError;
use super::model::{Action, Status, Transition};
use super::rows;
use super::{Registry, now_rfc3339};

impl Registry {
    /// Approves version `version` of `group` on behalf of `by`.
    pub fn approve(
        &mut self,
        group: &str,
        version: u32,
        by: &str,
        note: Option<&str>,
    ) -> Result<Transition, RegistryError> {
        self.review(group, version, by, note, Status::Approved)
    }

    /// Rejects version `version` of `group` on behalf of `by`.
    pub fn reject(
        &mut self,
        group: &str,
        version: u32,
        by: &str,
        note: Option<&str>,
    ) -> Result<Transition, RegistryError> {
        self.review(group, version, by, note, Status::Rejected)
    }

    fn review(
        &mut self,
        group: &str,
        version: u32,
        by: &str,
        note: Option<&str>,
        to: Status,
    ) -> Result<Transition, RegistryError> {
        if by.trim().is_empty() {
            return Err(RegistryError::invalid_with_hint(
                "the reviewer's name is empty",
                "say who decides, e.g. `--by alice`",
            ));
        }
        let note = note.filter(|n| !n.trim().is_empty());
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| super::error::db_error(&path, "lock the database to review", e))?;
        let (id, mut current) = rows::load_version(&tx, &path, group, version)?;
        let from = current.status;
        if from == to {
            return Ok(Transition {
                version: current,
                from_status: from,
                to_status: to,
                changed: false,
            });
        }
        tx.execute(
            "UPDATE model_versions SET status = ?1 WHERE id = ?2",
            rusqlite::params![to.as_str(), id],
        )
        .map_err(|e| super::error::db_error(&path, "update the status", e))?;
        let action = match to {
            Status::Approved => Action::Approve,
            _ => Action::Reject,
        };
        rows::append_audit(
            &tx,
            &path,
            id,
            &now_rfc3339(),
            by,
            action,
            Some(from),
            to,
            note,
        )?;
        tx.commit()
            .map_err(|e| super::error::db_error(&path, "commit the review", e))?;
        current.status = to;
        Ok(Transition {
            version: current,
            from_status: from,
            to_status: to,
            changed: true,
        })
    }
}
