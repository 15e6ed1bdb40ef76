//! `on_approved` hooks: commands run when a model version becomes Approved,
//! with the version's details in `PIPELINE_REGISTRY_*` variables (the shape
//! SageMaker users wire to EventBridge and a Lambda).
//!
//! Hooks come from the pipeline file (`on_approved:`, for versions its
//! register step approves) and from `registry.yaml` beside the registry
//! database (for every approval, by a policy or a person); for a PostgreSQL
//! registry, which has no file to be beside, the workspace's
//! `.pipeline/registry.yaml`. A failing hook is reported but does not undo
//! the approval.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use crate::registry::{Location, ModelVersion, hook_env};
use crate::spec::source::Source;
use crate::spec::yaml::{self, NodeKind};

/// Where the registry-wide hooks of the registry at `location` are configured.
pub fn registry_hooks_file(location: &Location) -> PathBuf {
    match location {
        Location::File(path) => path.with_file_name("registry.yaml"),
        Location::Postgres(_) => crate::store::Workspace::locate()
            .registry_path()
            .with_file_name("registry.yaml"),
    }
}

/// The hooks configured for the registry at `location`.
pub fn registry_hooks(location: &Location) -> Vec<String> {
    let cfg = registry_hooks_file(location);
    let Ok(text) = std::fs::read_to_string(&cfg) else {
        return vec![];
    };
    let source = Arc::new(Source {
        name: cfg.display().to_string(),
        text,
    });
    let Ok(root) = yaml::parse(&source) else {
        eprintln!(
            "warning: {} is not valid YAML; its hooks are ignored",
            cfg.display()
        );
        return vec![];
    };
    let NodeKind::Map(entries) = root.kind else {
        return vec![];
    };
    let Some((_, v)) = entries
        .into_iter()
        .find(|(k, _)| k.as_scalar() == Some("on_approved"))
    else {
        return vec![];
    };
    match v.kind {
        NodeKind::Scalar { text, .. } => vec![text],
        NodeKind::Seq(items) => items
            .into_iter()
            .filter_map(|n| n.as_scalar().map(str::to_string))
            .collect(),
        _ => vec![],
    }
}

/// Runs every hook for `version`; reports failures on stderr.
pub fn run_on_approved(location: &Location, pipeline_hooks: &[String], version: &ModelVersion) {
    let env = hook_env(version);
    for cmd in pipeline_hooks
        .iter()
        .cloned()
        .chain(registry_hooks(location))
    {
        eprintln!("on_approved: {cmd}");
        match Command::new("sh").arg("-c").arg(&cmd).envs(&env).status() {
            Ok(s) if s.success() => {}
            Ok(s) => {
                eprintln!("warning: the on_approved hook `{cmd}` failed ({s}); the approval stands")
            }
            Err(e) => eprintln!(
                "warning: cannot run the on_approved hook `{cmd}`: {e}; the approval stands"
            ),
        }
    }
}

/// A reviewer's decision as every front end records it (`pipeline registry
/// approve`/`reject`, the web UI): the transition in the registry's audit
/// trail (`recorded` hears of it first), then, when the version became approved, the hooks of the pipeline
/// that registered it and the registry's own.
pub fn review(
    reg: &mut crate::registry::Registry,
    approve: bool,
    group: &str,
    version: u32,
    by: &str,
    note: Option<&str>,
    recorded: impl FnOnce(&crate::registry::model::Transition),
) -> Result<crate::registry::model::Transition, crate::registry::RegistryError> {
    let t = if approve {
        reg.approve(group, version, by, note)
    } else {
        reg.reject(group, version, by, note)
    }?;
    recorded(&t);
    if t.became_approved() {
        let hooks = reg.pipeline_hooks(&t.version.group, t.version.version)?;
        let location = reg.location().clone();
        run_on_approved(&location, &hooks, &t.version);
    }
    Ok(t)
}
