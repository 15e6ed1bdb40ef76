//! Errors of the model registry.
//!
//! One enum, [`RegistryError`], whose messages are lowercase fragments that read
//! after "failed to …" and end with how to fix the problem. The caller tells the
//! user's mistakes (a bad reference, an unknown group or version, a malformed
//! approval condition: exit code 2) from failures of the registry itself (an
//! unreadable database, an I/O error: exit code 1) with
//! [`RegistryError::is_invalid_input`] or [`RegistryError::exit_code`].

use std::fmt;
use std::path::PathBuf;

use super::db::DbError;
use super::expr::ExprError;
use super::location::Location;
use super::model::Status;

/// Everything that can go wrong in the registry.
#[derive(Debug)]
pub enum RegistryError {
    /// A value the caller passed is unusable (a group name, a metric, a policy).
    InvalidInput {
        message: String,
        hint: Option<String>,
    },
    /// An approval condition such as `auc >= 0.9` does not parse or refers to a
    /// metric the version does not have.
    Condition(ExprError),
    /// A `registry://` reference does not parse.
    BadReference { reference: String, message: String },
    /// No model group has this name.
    UnknownGroup {
        group: String,
        /// The closest existing name, when one is close enough to be a typo.
        suggestion: Option<String>,
        /// Every group in the registry, sorted.
        known: Vec<String>,
    },
    /// The group exists but has no such version.
    UnknownVersion {
        group: String,
        version: u32,
        /// The versions the group has, ascending.
        existing: Vec<u32>,
    },
    /// `@approved` was asked for but nothing in the group is approved.
    NoApprovedVersion {
        group: String,
        /// Every version of the group with its status, ascending.
        versions: Vec<(u32, Status)>,
    },
    /// The file is not an SQLite database, or its pages are damaged.
    Corrupt { location: Location, detail: String },
    /// The file or PostgreSQL database holds something else than a registry.
    Foreign { location: Location, detail: String },
    /// The database was written by a newer release with a schema this one does not know.
    TooNew {
        location: Location,
        found: u32,
        supported: u32,
    },
    /// The PostgreSQL server could not be reached, or refused the connection.
    Unreachable { location: Location, source: DbError },
    /// The database could not be created or its directory could not be made.
    Io {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
    /// The database reported an error that is none of the above (locked for
    /// too long, disk full, read-only file, connection lost, ...).
    Database {
        location: Location,
        action: &'static str,
        source: DbError,
    },
}

impl RegistryError {
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        RegistryError::InvalidInput {
            message: message.into(),
            hint: None,
        }
    }

    pub(crate) fn invalid_with_hint(message: impl Into<String>, hint: impl Into<String>) -> Self {
        RegistryError::InvalidInput {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    /// True when the error is the caller's input (exit code 2), false when the
    /// registry itself failed (exit code 1).
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            RegistryError::InvalidInput { .. }
                | RegistryError::Condition(_)
                | RegistryError::BadReference { .. }
                | RegistryError::UnknownGroup { .. }
                | RegistryError::UnknownVersion { .. }
                | RegistryError::NoApprovedVersion { .. }
        )
    }

    /// The process exit code the command line should use: 2 for invalid input, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        if self.is_invalid_input() { 2 } else { 1 }
    }
}

fn join_versions(versions: &[u32]) -> String {
    versions
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistryError::InvalidInput { message, hint } => {
                f.write_str(message)?;
                if let Some(h) = hint {
                    write!(f, "\n  help: {h}")?;
                }
                Ok(())
            }
            RegistryError::Condition(e) => e.fmt(f),
            RegistryError::BadReference { reference, message } => write!(
                f,
                "invalid registry reference `{reference}`: {message}\n  help: write \
                 `registry://GROUP@approved`, `registry://GROUP@latest` or `registry://GROUP@3`"
            ),
            RegistryError::UnknownGroup {
                group,
                suggestion,
                known,
            } => {
                write!(f, "no model group named `{group}` in the registry")?;
                match (suggestion, known.is_empty()) {
                    (Some(s), _) => write!(f, "\n  help: did you mean `{s}`?"),
                    (None, true) => write!(
                        f,
                        "\n  help: the registry is empty; a `register` step creates the group \
                         the first time it runs"
                    ),
                    (None, false) => {
                        let list: Vec<String> = known.iter().map(|g| format!("`{g}`")).collect();
                        write!(f, "\n  help: existing groups: {}", list.join(", "))
                    }
                }
            }
            RegistryError::UnknownVersion {
                group,
                version,
                existing,
            } => {
                write!(f, "model group `{group}` has no version {version}")?;
                if existing.is_empty() {
                    write!(f, "\n  help: the group has no versions yet")
                } else {
                    write!(
                        f,
                        "\n  help: existing versions: {}; list them with `pipeline registry list {group}`",
                        join_versions(existing)
                    )
                }
            }
            RegistryError::NoApprovedVersion { group, versions } => {
                write!(f, "model group `{group}` has no approved version yet")?;
                if versions.is_empty() {
                    return write!(f, "\n  help: the group has no versions yet");
                }
                let list: Vec<String> =
                    versions.iter().map(|(v, s)| format!("{v} ({s})")).collect();
                // Suggest the newest version still waiting for review, if any.
                let newest = versions
                    .iter()
                    .rev()
                    .find(|(_, s)| *s == Status::PendingManualApproval)
                    .or(versions.last())
                    .map(|(v, _)| *v)
                    .unwrap_or(1);
                write!(
                    f,
                    "\n  help: versions: {}; approve one with \
                     `pipeline registry approve {group} {newest} --by NAME`, \
                     or refer to `registry://{group}@latest`",
                    list.join(", ")
                )
            }
            RegistryError::Corrupt { location, detail } => write!(
                f,
                "read the registry database {location}: the file is not a readable registry ({detail})\n  \
                 help: move the file aside to start a new registry, or restore it from a backup"
            ),
            RegistryError::Foreign { location, detail } => match location {
                Location::File(_) => write!(
                    f,
                    "open {location} as the registry database: it belongs to another program ({detail})\n  \
                     help: point the registry at another path, or move that file aside"
                ),
                Location::Postgres(_) => write!(
                    f,
                    "open {location} as the registry database: it holds another program's tables ({detail})\n  \
                     help: point the registry at a database of its own (`CREATE DATABASE ...`), \
                     or at an empty one"
                ),
            },
            RegistryError::TooNew {
                location,
                found,
                supported,
            } => write!(
                f,
                "open the registry database {location}: its schema version {found} is newer than the \
                 newest this release knows ({supported})\n  help: upgrade `pipeline` to a release \
                 that wrote this database"
            ),
            RegistryError::Unreachable { location, source } => write!(
                f,
                "connect to the registry database {location}: {source}\n  help: check that the \
                 PostgreSQL server is running and reachable from here, that the user, password \
                 (PGPASSWORD) and database in the URL are right, and that the server accepts \
                 connections from this host (pg_hba.conf)"
            ),
            RegistryError::Io {
                path,
                action,
                source,
            } => write!(f, "{action} {}: {source}", path.display()),
            RegistryError::Database {
                location,
                action,
                source,
            } => {
                write!(f, "{action} in the registry database {location}: {source}")?;
                if source.is_busy() {
                    write!(
                        f,
                        "\n  help: another process held the database for too long; try again"
                    )?;
                } else if source.is_connection() {
                    write!(
                        f,
                        "\n  help: the connection to the PostgreSQL server failed; check that it \
                         is running and reachable, then try again"
                    )?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for RegistryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RegistryError::Io { source, .. } => Some(source),
            RegistryError::Database { source, .. } => Some(source),
            RegistryError::Unreachable { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<ExprError> for RegistryError {
    fn from(e: ExprError) -> Self {
        RegistryError::Condition(e)
    }
}

/// Classifies a database error at `location`: damaged files become
/// [`RegistryError::Corrupt`] so the user is told what to do with the file.
pub(crate) fn db_error(
    location: &Location,
    action: &'static str,
    e: impl Into<DbError>,
) -> RegistryError {
    let e = e.into();
    if e.is_corrupt() {
        RegistryError::Corrupt {
            location: location.clone(),
            detail: e.to_string(),
        }
    } else {
        RegistryError::Database {
            location: location.clone(),
            action,
            source: e,
        }
    }
}
