//! A reviewer's decisions: approving and rejecting versions.
//!
//! Any status may move to Approved or Rejected (SageMaker allows rejecting an
//! approved model to withdraw it); asking for the status a version already has
//! writes nothing and says so, so `approve` can be repeated safely and an
//! `on_approved` hook runs once.

use super::db::params;
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
        self.write("lock the database to review", |tx| {
            // The group's lock first: a concurrent review of the same version
            // waits here and then sees this one's result.
            let gid = rows::group_id(tx, group, true)?;
            let (id, mut current) = rows::load_version_in(tx, gid, group, version)?;
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
                "update the status",
                "UPDATE model_versions SET status = ?1 WHERE id = ?2",
                params![to.as_str(), id],
            )?;
            let action = match to {
                Status::Approved => Action::Approve,
                _ => Action::Reject,
            };
            rows::append_audit(tx, id, &now_rfc3339(), by, action, Some(from), to, note)?;
            current.status = to;
            Ok(Transition {
                version: current,
                from_status: from,
                to_status: to,
                changed: true,
            })
        })
    }
}
