//! The engine's one error type and its exit codes.
//!
//! Two kinds of failure reach the user: the input is invalid (pipeline file,
//! parameters, data: exit code 2, rendered as located [`Diagnostic`]s), or
//! something failed while running (a step, the store, a database: exit code 1).
//! Messages are lowercase fragments that read after "failed to" or stand alone.

use std::fmt;

use crate::spec::source::Diagnostic;

/// Exit code for success.
pub const EXIT_OK: i32 = 0;
/// Exit code when a step (or the engine while running) failed.
pub const EXIT_FAILED: i32 = 1;
/// Exit code when the input is invalid.
pub const EXIT_INVALID: i32 = 2;
/// Exit code when the user interrupted the run (128 + SIGINT).
pub const EXIT_INTERRUPTED: i32 = 130;

#[derive(Debug)]
pub enum Error {
    /// The input is invalid; each diagnostic says where, what and how to fix.
    Invalid(Vec<Diagnostic>),
    /// Something failed while running.
    Failed(String),
    /// A run ended without success; the summary has already been printed.
    RunEnded { code: i32 },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(d: Diagnostic) -> Self {
        Error::Invalid(vec![d])
    }
    pub fn failed(msg: impl Into<String>) -> Self {
        Error::Failed(msg.into())
    }
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Invalid(_) => EXIT_INVALID,
            Error::Failed(_) => EXIT_FAILED,
            Error::RunEnded { code } => *code,
        }
    }
    /// Wraps an I/O error with what was being done to which path.
    pub fn io(action: &str, path: &std::path::Path, e: std::io::Error) -> Self {
        Error::Failed(format!("{action} {}: {e}", path.display()))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Invalid(ds) => {
                for (i, d) in ds.iter().enumerate() {
                    if i > 0 {
                        writeln!(f)?;
                    }
                    write!(f, "{d}")?;
                }
                Ok(())
            }
            Error::Failed(m) => write!(f, "error: {m}"),
            Error::RunEnded { code } => write!(f, "run ended with exit code {code}"),
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Failed(format!("database: {e}"))
    }
}
