//! The registry's records: what a version holds, its status and its audit trail.
//!
//! These are the values the engine hands in ([`NewVersion`]) and the values
//! queries hand back ([`ModelVersion`], [`AuditEntry`]); all of the latter
//! serialize with serde so the command line can print them as tables or JSON.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a version stands in the approval workflow (SageMaker's `ModelApprovalStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Status {
    PendingManualApproval,
    Approved,
    Rejected,
}

impl Status {
    /// The name stored in the database and shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::PendingManualApproval => "PendingManualApproval",
            Status::Approved => "Approved",
            Status::Rejected => "Rejected",
        }
    }

    pub(crate) fn from_db(s: &str) -> Option<Status> {
        match s {
            "PendingManualApproval" => Some(Status::PendingManualApproval),
            "Approved" => Some(Status::Approved),
            "Rejected" => Some(Status::Rejected),
            _ => None,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a `register` step hands to [`super::Registry::register`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NewVersion {
    /// The model package group; created on first registration.
    pub group: String,
    /// Makes registration idempotent: registering the same key into the same
    /// group again returns the existing version. Pass the step's cache key so a
    /// re-run that hits the cache does not add a duplicate. When `None`, the key
    /// is derived from `run_id`, `step` and `artifact_digest`.
    pub registration_key: Option<String>,
    /// Content hash of the model artifact in the artifact store.
    pub artifact_digest: String,
    pub algorithm: String,
    pub hyperparameters: BTreeMap<String, String>,
    /// Finite values only; NaN and infinities are refused because they cannot be compared.
    pub metrics: BTreeMap<String, f64>,
    pub run_id: String,
    pub step: String,
    /// Digest of each input the model was trained from, by input name.
    pub input_digests: BTreeMap<String, String>,
    /// Hash of the pipeline specification that produced the version.
    pub spec_hash: String,
    /// The pipeline parameters of the run, with their types kept.
    pub params: BTreeMap<String, serde_json::Value>,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// Who registered it (a user name, or e.g. `pipeline run`); kept in the audit trail.
    pub registered_by: String,
    /// The registering pipeline's `on_approved` commands, run whenever the
    /// version becomes Approved (at registration or by a person later).
    #[serde(default)]
    pub on_approved: Vec<String>,
}

impl NewVersion {
    /// The key used for idempotency: the caller's key, or `run_id/step/artifact_digest`.
    pub fn effective_key(&self) -> String {
        match &self.registration_key {
            Some(k) => k.clone(),
            None => format!("{}/{}/{}", self.run_id, self.step, self.artifact_digest),
        }
    }
}

/// One registered version with everything known about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelVersion {
    pub group: String,
    /// 1-based, gapless within the group.
    pub version: u32,
    pub status: Status,
    pub artifact_digest: String,
    pub algorithm: String,
    pub hyperparameters: BTreeMap<String, String>,
    pub metrics: BTreeMap<String, f64>,
    pub run_id: String,
    pub step: String,
    pub input_digests: BTreeMap<String, String>,
    pub spec_hash: String,
    pub params: BTreeMap<String, serde_json::Value>,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub registration_key: String,
    pub registered_by: String,
}

impl ModelVersion {
    /// `registry://GROUP@N`, the reference that always names this version.
    pub fn reference(&self) -> String {
        format!("registry://{}@{}", self.group, self.version)
    }
}

/// What happened to a version, as recorded in the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// The version was created.
    Register,
    /// The approval policy approved it at registration.
    AutoApprove,
    Approve,
    Reject,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Register => "register",
            Action::AutoApprove => "auto-approve",
            Action::Approve => "approve",
            Action::Reject => "reject",
        }
    }

    pub(crate) fn from_db(s: &str) -> Option<Action> {
        match s {
            "register" => Some(Action::Register),
            "auto-approve" => Some(Action::AutoApprove),
            "approve" => Some(Action::Approve),
            "reject" => Some(Action::Reject),
            _ => None,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of a group's append-only audit trail.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    pub group: String,
    pub version: u32,
    /// RFC 3339, UTC.
    pub at: String,
    pub by: String,
    pub action: Action,
    /// `None` for the registration itself.
    pub from_status: Option<Status>,
    pub to_status: Status,
    /// The reviewer's note, or the approval policy's reason.
    pub note: Option<String>,
}

/// The result of [`super::Registry::register`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Registration {
    pub version: ModelVersion,
    /// False when the registration key was already registered and the existing
    /// version is returned unchanged.
    pub created: bool,
    /// The approval policy's verdict; `None` when no new version was created.
    pub decision: Option<Decision>,
}

impl Registration {
    /// True when the version became Approved in this call: run `on_approved` hooks then, and only then.
    pub fn became_approved(&self) -> bool {
        self.created && self.version.status == Status::Approved
    }
}

/// An approval policy's verdict with the reason recorded in the audit trail.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub approved: bool,
    pub reason: String,
}

/// The result of approving or rejecting a version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transition {
    /// The version after the call.
    pub version: ModelVersion,
    pub from_status: Status,
    pub to_status: Status,
    /// False when the version already had the requested status (nothing was written).
    pub changed: bool,
}

impl Transition {
    /// True when the version became Approved in this call: run `on_approved` hooks then, and only then.
    pub fn became_approved(&self) -> bool {
        self.changed && self.to_status == Status::Approved
    }

    /// A one-line summary for the command line, e.g.
    /// `version 3 of `churn` is already Approved; nothing changed`.
    pub fn summary(&self) -> String {
        let v = &self.version;
        if self.changed {
            format!(
                "version {} of `{}`: {} -> {}",
                v.version, v.group, self.from_status, self.to_status
            )
        } else {
            format!(
                "version {} of `{}` is already {}; nothing changed",
                v.version, v.group, self.to_status
            )
        }
    }
}

/// A group in the `pipeline registry groups` listing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupSummary {
    pub name: String,
    pub created_at: String,
    pub version_count: u32,
    pub latest_version: Option<u32>,
    /// The newest Approved version, the one `@approved` resolves to.
    pub approved_version: Option<u32>,
}

/// A version in the `pipeline registry list GROUP` listing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionSummary {
    pub version: u32,
    pub status: Status,
    pub created_at: String,
    pub artifact_digest: String,
    pub algorithm: String,
    pub metrics: BTreeMap<String, f64>,
    pub run_id: String,
    pub description: Option<String>,
}

/// How a named field differs between two versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    Added,
    Removed,
    Changed,
    Unchanged,
}

/// One named entry of a diff (a hyperparameter, a param, an input, a lineage field).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange<T> {
    pub name: String,
    pub from: Option<T>,
    pub to: Option<T>,
    pub kind: ChangeKind,
}

/// One metric of a diff, with the signed difference when both sides have it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricChange {
    pub name: String,
    pub from: Option<f64>,
    pub to: Option<f64>,
    /// `to - from`.
    pub delta: Option<f64>,
    pub kind: ChangeKind,
}

/// Everything that differs (and what does not) between two versions of a group.
/// Every list holds the union of names of both sides, sorted, each marked with its [`ChangeKind`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionDiff {
    pub group: String,
    pub from_version: u32,
    pub to_version: u32,
    /// `status`, `algorithm`, `artifact_digest`, `spec_hash`, `run_id`, `step`, `description`.
    pub fields: Vec<FieldChange<String>>,
    pub hyperparameters: Vec<FieldChange<String>>,
    pub metrics: Vec<MetricChange>,
    pub params: Vec<FieldChange<serde_json::Value>>,
    pub inputs: Vec<FieldChange<String>>,
    pub tags: Vec<FieldChange<String>>,
}

impl VersionDiff {
    /// True when nothing but the version number and creation time differ.
    pub fn is_empty(&self) -> bool {
        let same = |k: ChangeKind| k == ChangeKind::Unchanged;
        self.fields.iter().all(|c| same(c.kind))
            && self.hyperparameters.iter().all(|c| same(c.kind))
            && self.metrics.iter().all(|c| same(c.kind))
            && self.params.iter().all(|c| same(c.kind))
            && self.inputs.iter().all(|c| same(c.kind))
            && self.tags.iter().all(|c| same(c.kind))
    }
}
