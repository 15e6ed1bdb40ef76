//! Reproducibility: the lock a run is made from, and reproductions of runs.
//!
//! [`lock`] is what every run records before it starts (and what
//! `run --locked` holds a run to); [`compare`] sets a reproduction's outputs
//! against the recorded ones. A reproduction (`pipeline reproduce RUN`) runs
//! the recorded pipeline again in a [`Scratch`] workspace of its own, inside
//! the run's directory, so that the workspace's store, cache index, run list
//! and registry are left as they are: only the reproduction's report is
//! added to the run's directory (see docs/reproducibility.md).

pub mod compare;
pub mod lock;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::store::Workspace;
use compare::{StepComparison, Verdict};

/// Where a reproduction runs: a workspace of its own, with its own store,
/// run database and copy of the registry.
pub struct Scratch {
    /// `.pipeline/runs/RUN/reproductions/N`: the scratch workspace's root.
    pub ws: Workspace,
    /// The scratch copy of the registry its register steps write to.
    pub registry: PathBuf,
    /// `.pipeline/runs/RUN/reproductions/N.json`: the report, kept.
    pub report: PathBuf,
}

impl Scratch {
    /// A new scratch workspace for reproducing `run_id` (the first number not used yet).
    pub fn create(ws: &Workspace, run_id: &str) -> Result<Scratch> {
        let dir = ws.run_dir(run_id).join("reproductions");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
        for n in 1u32.. {
            let root = dir.join(n.to_string());
            let report = dir.join(format!("{n}.json"));
            if report.exists() {
                continue;
            }
            match std::fs::create_dir(&root) {
                Ok(()) => {
                    let scratch = Workspace { root };
                    scratch.create_dirs()?;
                    return Ok(Scratch {
                        registry: scratch.registry_path(),
                        ws: scratch,
                        report,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io("create", &root, e)),
            }
        }
        unreachable!("a reproduction number is always free")
    }

    /// Removes the scratch workspace (the report stays).
    pub fn remove(&self) {
        let _ = crate::store::remove_tree(&self.ws.root);
    }

    /// Removes the scratch workspace of a reproduction that did not start,
    /// and `reproductions/` too when nothing else is in it.
    pub fn discard(&self) {
        self.remove();
        if let Some(dir) = self.ws.root.parent() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// What `pipeline reproduce` found: the last line of `--json`, and the report
/// kept in the run's directory.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub run_id: String,
    pub pipeline: String,
    pub verdict: Verdict,
    /// Every step of the pipeline, by name.
    pub steps: BTreeMap<String, StepComparison>,
    /// What differs between the run and the reproduction but need not
    /// change a result (the engine version, the platform).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Where the reproduction's workspace was kept (only when something differs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept: Option<String>,
}

impl Report {
    /// The overall verdict: the worst of the steps'.
    pub fn verdict_of(steps: &BTreeMap<String, StepComparison>) -> Verdict {
        steps
            .values()
            .map(|s| s.verdict)
            .max()
            .unwrap_or(Verdict::Identical)
    }
}
