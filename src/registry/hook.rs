//! The environment of an `on_approved` hook command.
//!
//! When a version becomes Approved (by policy at registration, or by a
//! reviewer) the engine runs the pipeline's `on_approved` command once, with
//! these variables describing the version, so a hook can deploy or announce it
//! without querying the registry. Maps are passed as JSON objects.

use std::collections::BTreeMap;

use super::model::ModelVersion;
use super::rows::to_json;

/// The prefix of every variable the hook receives.
pub const ENV_PREFIX: &str = "PIPELINE_REGISTRY_";

/// The variables for a hook about `version`, by name:
/// `PIPELINE_REGISTRY_GROUP`, `_VERSION`, `_REF` (`registry://GROUP@N`),
/// `_DIGEST` (the artifact digest), `_STATUS`, `_ALGORITHM`, `_RUN_ID`,
/// `_STEP`, `_SPEC_HASH`, `_CREATED_AT`, `_DESCRIPTION` (empty when none),
/// and as JSON objects `_METRICS`, `_HYPERPARAMETERS`, `_PARAMS`, `_INPUTS`, `_TAGS`.
pub fn hook_env(version: &ModelVersion) -> BTreeMap<String, String> {
    let pairs = [
        ("GROUP", version.group.clone()),
        ("VERSION", version.version.to_string()),
        ("REF", version.reference()),
        ("DIGEST", version.artifact_digest.clone()),
        ("STATUS", version.status.to_string()),
        ("ALGORITHM", version.algorithm.clone()),
        ("RUN_ID", version.run_id.clone()),
        ("STEP", version.step.clone()),
        ("SPEC_HASH", version.spec_hash.clone()),
        ("CREATED_AT", version.created_at.clone()),
        (
            "DESCRIPTION",
            version.description.clone().unwrap_or_default(),
        ),
        ("METRICS", to_json(&version.metrics)),
        ("HYPERPARAMETERS", to_json(&version.hyperparameters)),
        ("PARAMS", to_json(&version.params)),
        ("INPUTS", to_json(&version.input_digests)),
        ("TAGS", to_json(&version.tags)),
    ];
    pairs
        .into_iter()
        .map(|(k, v)| (format!("{ENV_PREFIX}{k}"), v))
        .collect()
}
