//! Tests of the registry as the engine uses it: through [`Registry`] on a real
//! database file. `lifecycle` covers registering, policies, reviews and
//! queries; `files` opening, damaged and foreign files and migrations;
//! `concurrency` several threads and processes sharing one file.

mod concurrency;
mod files;
mod lifecycle;

use std::path::PathBuf;

use super::*;

pub(super) use concurrency::CRASH_BEFORE_COMMIT;

pub(super) fn temp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".pipeline").join("registry.db");
    (dir, path)
}

pub(super) fn new_version(group: &str, key: &str, metrics: &[(&str, f64)]) -> NewVersion {
    NewVersion {
        group: group.to_string(),
        registration_key: Some(key.to_string()),
        artifact_digest: format!("sha256:{key}"),
        algorithm: "gbdt".to_string(),
        hyperparameters: [("max_depth", "4"), ("eta", "0.3")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        run_id: format!("run-{key}"),
        step: "register".to_string(),
        input_digests: [("penguins".to_string(), "sha256:data".to_string())].into(),
        spec_hash: "sha256:spec".to_string(),
        params: [("seed".to_string(), serde_json::json!(42))].into(),
        description: Some("nightly".to_string()),
        tags: [("team".to_string(), "ml".to_string())].into(),
        registered_by: "pipeline run".to_string(),
        on_approved: vec![],
    }
}

pub(super) fn manual() -> ApprovalPolicy {
    ApprovalPolicy::Manual
}
