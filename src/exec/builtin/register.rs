//! `kind: register`: records the model as a new version of a registry group.
//!
//! The registration key is the step's cache key, so running the same
//! registration twice (a re-run with `cache: false`, a resumed run) returns
//! the version registered the first time instead of adding a duplicate.

use std::collections::BTreeMap;

use super::{Layout, StepConfig, StepError, read_metrics_file};
use crate::registry::{ApprovalPolicy, NewVersion, Registry, RegistryError};
use crate::spec::model::{Approval, RegisterStep};

fn reg_err(e: RegistryError) -> StepError {
    StepError {
        invalid_input: e.is_invalid_input(),
        message: e.to_string(),
    }
}

/// Metrics where a smaller value is better.
fn lower_is_better(metric: &str) -> bool {
    let m = metric.to_ascii_lowercase();
    [
        "loss", "error", "rmse", "mae", "mse", "mape", "inertia", "merror",
    ]
    .iter()
    .any(|k| m.contains(k))
}

pub fn run(layout: &Layout, r: &RegisterStep, cfg: &StepConfig) -> Result<(), StepError> {
    let x = &cfg.extra;
    let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let registry = crate::registry::Location::parse(&s(&x["registry"])).map_err(reg_err)?;
    let digest = x["input_digests"]["model"]
        .as_str()
        .ok_or_else(|| StepError::failed("the engine passed no digest for the model"))?;
    let metrics = if r.metrics.is_some() {
        let f = layout.channel("metrics").join("metrics.json");
        if f.is_file() {
            read_metrics_file(&f)?
        } else {
            BTreeMap::new()
        }
    } else {
        BTreeMap::new()
    };
    let lineage = &x["lineage"];
    let map_of = |v: &serde_json::Value| -> BTreeMap<String, String> {
        v.as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.as_str().map_or_else(|| v.to_string(), str::to_string),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let new = NewVersion {
        group: r.group.clone(),
        registration_key: x["cache_key"].as_str().map(str::to_string),
        artifact_digest: digest.to_string(),
        algorithm: s(&lineage["algorithm"]),
        hyperparameters: map_of(&lineage["hyperparameters"]),
        metrics,
        run_id: s(&x["run_id"]),
        step: cfg.step.name().to_string(),
        input_digests: map_of(&lineage["data"]),
        spec_hash: s(&lineage["spec_hash"]),
        params: lineage["params"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
        description: r.description.clone(),
        tags: r.tags.clone(),
        registered_by: crate::cli::registry::os_user(),
        on_approved: hook_list(&lineage["on_approved"]),
    };
    let policy = match &r.approval {
        Approval::Manual => ApprovalPolicy::Manual,
        Approval::AutoApproveIf(c) => ApprovalPolicy::auto_approve_if(c).map_err(reg_err)?,
        Approval::BeatChampion {
            metric,
            by,
            higher_is_better,
        } => ApprovalPolicy::beat_champion(
            metric.clone(),
            *by,
            higher_is_better.unwrap_or_else(|| !lower_is_better(metric)),
        )
        .map_err(reg_err)?,
    };
    let mut reg = Registry::open(registry.clone()).map_err(reg_err)?;
    let done = reg.register(&new, &policy).map_err(reg_err)?;
    let v = &done.version;
    if done.created {
        println!("registered {} ({})", v.reference(), v.status);
    } else {
        println!(
            "already registered as {} ({}): nothing changed",
            v.reference(),
            v.status
        );
    }
    if let Some(d) = &done.decision {
        println!("approval: {}", d.reason);
    }
    if done.became_approved() {
        crate::exec::hooks::run_on_approved(&registry, &new.on_approved, v);
    }
    let out = layout.output("version");
    let body = serde_json::json!({"group": v.group, "version": v.version, "status": v.status.to_string(), "reference": v.reference(), "artifact_digest": v.artifact_digest, "created": done.created});
    crate::store::write_atomic(
        &out.join("version.json"),
        &serde_json::to_vec_pretty(&body).expect("json"),
    )
    .map_err(|e| StepError::failed(format!("write {}: {e}", out.display())))?;
    Ok(())
}

/// The `on_approved` commands in the lineage facts.
fn hook_list(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|h| h.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
