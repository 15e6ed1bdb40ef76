//! `pipeline registry ...`: model groups, versions, approvals, lineage.

use clap::Subcommand;

use crate::error::{Error, Result};
use crate::registry::{Location, Registry, RegistryError};
use crate::spec::source::Diagnostic;
use crate::store::Workspace;

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Every model package group.
    Groups {
        #[arg(long)]
        json: bool,
    },
    /// The versions of a group.
    List {
        group: String,
        #[arg(long)]
        json: bool,
    },
    /// One version: metrics, status, and lineage back to input files and params.
    Show {
        group: String,
        version: u32,
        #[arg(long)]
        json: bool,
    },
    /// Approve a version.
    Approve {
        group: String,
        version: u32,
        /// Who approves (default: the OS user).
        #[arg(long)]
        by: Option<String>,
        #[arg(long)]
        note: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Reject a version.
    Reject {
        group: String,
        version: u32,
        #[arg(long)]
        by: Option<String>,
        #[arg(long)]
        note: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The audit trail of a group.
    History {
        group: String,
        #[arg(long)]
        json: bool,
    },
    /// What differs between two versions.
    Diff {
        group: String,
        v1: u32,
        v2: u32,
        #[arg(long)]
        json: bool,
    },
}

/// The registry: `--registry`, else `$PIPELINE_REGISTRY`, else the
/// workspace's file; each a file path or a `postgres://` URL. A URL that is
/// not usable is the user's mistake (exit code 2).
pub fn registry_location(flag: Option<&str>) -> Result<Location> {
    let (text, from) = match flag {
        Some(f) => (f.to_string(), "--registry"),
        None => match std::env::var_os("PIPELINE_REGISTRY").filter(|p| !p.is_empty()) {
            Some(p) => (
                p.into_string().map_err(|p| {
                    Error::invalid(Diagnostic::new(format!(
                        "PIPELINE_REGISTRY is not valid UTF-8: {}",
                        p.to_string_lossy()
                    )))
                })?,
                "PIPELINE_REGISTRY",
            ),
            None => return Ok(Location::File(Workspace::locate().registry_path())),
        },
    };
    Location::parse(&text).map_err(|e| Error::invalid(Diagnostic::new(format!("{from}: {e}"))))
}

/// A registry error as the engine's error (keeping its exit code).
pub fn reg_err(e: RegistryError) -> Error {
    if e.is_invalid_input() {
        Error::invalid(Diagnostic::new(e.to_string()))
    } else {
        Error::failed(e.to_string())
    }
}

/// The name of the user running this process: `$USER`, else the password database's entry.
pub fn os_user() -> String {
    if let Ok(u) = std::env::var("USER").or_else(|_| std::env::var("LOGNAME"))
        && !u.is_empty()
    {
        return u;
    }
    // SAFETY: getpwuid returns a pointer into static storage or null; we copy the name at once.
    unsafe {
        let pw = libc::getpwuid(libc::getuid());
        if !pw.is_null() && !(*pw).pw_name.is_null() {
            return std::ffi::CStr::from_ptr((*pw).pw_name)
                .to_string_lossy()
                .into_owned();
        }
    }
    format!("uid-{}", unsafe { libc::getuid() })
}

fn print_json<T: serde::Serialize>(v: &T) {
    outln!("{}", serde_json::to_string_pretty(v).expect("json"));
}

pub fn run(cmd: RegistryCommand, flag: Option<&str>) -> Result<i32> {
    let location = registry_location(flag)?;
    let path = &location;
    let open_existing = || -> Result<Registry> {
        no_registry_yet(&location)?;
        Registry::open_existing(location.clone()).map_err(reg_err)
    };
    match cmd {
        RegistryCommand::Groups { json } => {
            let reg = open_existing()?;
            let groups = reg.groups().map_err(reg_err)?;
            if json {
                print_json(&groups);
            } else if groups.is_empty() {
                outln!("no groups yet");
            } else {
                outln!(
                    "{:<28} {:>8} {:>7} {:>9}  CREATED",
                    "GROUP",
                    "VERSIONS",
                    "LATEST",
                    "APPROVED"
                );
                for g in groups {
                    let o = |v: Option<u32>| v.map_or("-".to_string(), |v| v.to_string());
                    outln!(
                        "{:<28} {:>8} {:>7} {:>9}  {}",
                        g.name,
                        g.version_count,
                        o(g.latest_version),
                        o(g.approved_version),
                        g.created_at
                    );
                }
            }
        }
        RegistryCommand::List { group, json } => {
            let reg = open_existing()?;
            let versions = reg.versions(&group).map_err(reg_err)?;
            if json {
                print_json(&versions);
            } else {
                outln!(
                    "{:>7}  {:<22} {:<15} {:<22} METRICS",
                    "VERSION",
                    "STATUS",
                    "ALGORITHM",
                    "RUN"
                );
                for v in versions {
                    let m: Vec<String> = v
                        .metrics
                        .iter()
                        .map(|(k, x)| format!("{k}={x:.4}"))
                        .collect();
                    outln!(
                        "{:>7}  {:<22} {:<15} {:<22} {}",
                        v.version,
                        v.status.to_string(),
                        v.algorithm,
                        v.run_id,
                        m.join(" ")
                    );
                }
            }
        }
        RegistryCommand::Show {
            group,
            version,
            json,
        } => {
            let reg = open_existing()?;
            let v = reg.version(&group, version).map_err(reg_err)?;
            let trail = reg.version_history(&group, version).map_err(reg_err)?;
            if json {
                print_json(&serde_json::json!({"version": v, "history": trail}));
                return Ok(0);
            }
            outln!("{}  {}", v.reference(), v.status);
            if let Some(d) = &v.description {
                outln!("  {d}");
            }
            outln!("  artifact   {}", v.artifact_digest);
            let stored = Workspace::locate().store().path_of(&v.artifact_digest);
            if stored.is_dir() {
                outln!("  stored at  {}", stored.display());
            }
            outln!("  algorithm  {}", v.algorithm);
            for (k, x) in &v.hyperparameters {
                outln!("    {k} = {x}");
            }
            outln!("  metrics");
            for (k, x) in &v.metrics {
                outln!("    {k} = {x}");
            }
            outln!("  lineage");
            outln!(
                "    run {} step {} (registered by {}, {})",
                v.run_id,
                v.step,
                v.registered_by,
                v.created_at
            );
            outln!("    pipeline spec hash {}", v.spec_hash);
            for (k, x) in &v.input_digests {
                outln!("    input {k}: {x}");
            }
            for (k, x) in &v.params {
                outln!("    param {k} = {x}");
            }
            for (k, x) in &v.tags {
                outln!("    tag {k} = {x}");
            }
            outln!("  history");
            for a in trail {
                outln!(
                    "    {}  {:?} by {} -> {}{}",
                    a.at,
                    a.action,
                    a.by,
                    a.to_status,
                    a.note.map(|n| format!(": {n}")).unwrap_or_default()
                );
            }
        }
        RegistryCommand::Approve {
            group,
            version,
            by,
            note,
            json,
        } => return review(path, true, &group, version, by, note, json),
        RegistryCommand::Reject {
            group,
            version,
            by,
            note,
            json,
        } => return review(path, false, &group, version, by, note, json),
        RegistryCommand::History { group, json } => {
            let reg = open_existing()?;
            let h = reg.history(&group).map_err(reg_err)?;
            if json {
                print_json(&h);
            } else {
                for a in h {
                    outln!(
                        "{}  v{}  {:?} by {}: {} -> {}{}",
                        a.at,
                        a.version,
                        a.action,
                        a.by,
                        a.from_status.map_or("-".to_string(), |s| s.to_string()),
                        a.to_status,
                        a.note.map(|n| format!("  ({n})")).unwrap_or_default()
                    );
                }
            }
        }
        RegistryCommand::Diff {
            group,
            v1,
            v2,
            json,
        } => {
            let reg = open_existing()?;
            let d = reg.diff(&group, v1, v2).map_err(reg_err)?;
            if json {
                print_json(&d);
                return Ok(0);
            }
            outln!("{group}: version {v1} -> {v2}");
            if d.is_empty() {
                outln!("  no differences besides the version number and time");
            }
            use crate::registry::ChangeKind::Unchanged;
            let show = |title: &str, rows: Vec<(String, String, String)>| {
                if !rows.is_empty() {
                    outln!("  {title}");
                    for (n, a, b) in rows {
                        outln!("    {n}: {a} -> {b}");
                    }
                }
            };
            let changed =
                |list: &[crate::registry::FieldChange<String>]| -> Vec<(String, String, String)> {
                    let o = |x: &Option<String>| x.clone().unwrap_or_else(|| "(none)".into());
                    list.iter()
                        .filter(|c| c.kind != Unchanged)
                        .map(|c| (c.name.clone(), o(&c.from), o(&c.to)))
                        .collect()
                };
            show("fields", changed(&d.fields));
            show("hyperparameters", changed(&d.hyperparameters));
            show(
                "metrics",
                d.metrics
                    .iter()
                    .filter(|c| c.kind != Unchanged)
                    .map(|c| {
                        let f = |x: Option<f64>| x.map_or("(none)".into(), |v| format!("{v:.6}"));
                        let delta = c.delta.map(|x| format!(" ({x:+.6})")).unwrap_or_default();
                        (c.name.clone(), f(c.from), format!("{}{delta}", f(c.to)))
                    })
                    .collect(),
            );
            let j = |x: &Option<serde_json::Value>| {
                x.as_ref().map_or("(none)".into(), |v| v.to_string())
            };
            show(
                "params",
                d.params
                    .iter()
                    .filter(|c| c.kind != Unchanged)
                    .map(|c| (c.name.clone(), j(&c.from), j(&c.to)))
                    .collect(),
            );
            show("inputs", changed(&d.inputs));
            show("tags", changed(&d.tags));
        }
    }
    Ok(0)
}

/// Refuses a registry file that does not exist, saying how one is made.
fn no_registry_yet(location: &Location) -> Result<()> {
    match location.as_path() {
        Some(path) if !path.exists() => Err(Error::invalid(
            Diagnostic::new(format!("no model registry at {}", path.display()))
                .help("a `kind: register` step creates it; or point --registry / PIPELINE_REGISTRY at an existing one"),
        )),
        _ => Ok(()),
    }
}

fn review(
    path: &Location,
    approve: bool,
    group: &str,
    version: u32,
    by: Option<String>,
    note: Option<String>,
    json: bool,
) -> Result<i32> {
    no_registry_yet(path)?;
    let mut reg = Registry::open_existing(path.clone()).map_err(reg_err)?;
    let by = by.unwrap_or_else(os_user);
    crate::exec::hooks::review(
        &mut reg,
        approve,
        group,
        version,
        &by,
        note.as_deref(),
        |t| {
            if json {
                print_json(t);
            } else {
                outln!("{}", t.summary());
            }
        },
    )
    .map_err(reg_err)?;
    Ok(0)
}
