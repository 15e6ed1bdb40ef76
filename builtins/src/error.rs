//! Errors of the compute crate.
//!
//! Two families: [`DataError`] says where in a data file something is wrong
//! (file, line, column) so a person can open the file and fix it;
//! [`BuiltinError`] wraps it together with bad hyperparameters and failures
//! during training. Messages are lowercase fragments that read after
//! "failed to", and each says how to fix the problem where that is known.

use std::fmt;
use std::path::PathBuf;

/// A problem with the contents of a data file.
#[derive(Debug, Clone, PartialEq)]
pub struct DataError {
    /// The file the problem is in.
    pub file: PathBuf,
    /// 1-based line in the file, when the problem is on one line.
    pub line: Option<u64>,
    /// 1-based column (field number for CSV), when known.
    pub column: Option<u64>,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when known.
    pub hint: Option<String>,
}

impl DataError {
    pub fn new(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        DataError {
            file: file.into(),
            line: None,
            column: None,
            message: message.into(),
            hint: None,
        }
    }
    pub fn at(mut self, line: u64, column: Option<u64>) -> Self {
        self.line = Some(line);
        self.column = column;
        self
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        write!(f, ": {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  help: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DataError {}

/// Everything that can go wrong inside a built-in.
#[derive(Debug, Clone, PartialEq)]
pub enum BuiltinError {
    /// The input data is unusable (exit code 2 at the engine).
    Data(DataError),
    /// A hyperparameter is unknown or has a bad value (exit code 2).
    Hyperparameter {
        name: String,
        value: Option<String>,
        message: String,
        hint: Option<String>,
    },
    /// The model could not be trained, loaded or applied (a failed step, exit code 1).
    Failed(String),
}

impl BuiltinError {
    pub fn hyperparameter(name: &str, value: Option<&str>, message: impl Into<String>) -> Self {
        BuiltinError::Hyperparameter {
            name: name.to_string(),
            value: value.map(str::to_string),
            message: message.into(),
            hint: None,
        }
    }
    pub fn with_hint(mut self, h: impl Into<String>) -> Self {
        match &mut self {
            BuiltinError::Data(d) => d.hint = Some(h.into()),
            BuiltinError::Hyperparameter { hint, .. } => *hint = Some(h.into()),
            BuiltinError::Failed(_) => {}
        }
        self
    }
    pub fn failed(msg: impl Into<String>) -> Self {
        BuiltinError::Failed(msg.into())
    }
    /// True when the error is the user's input (data or hyperparameters), not a failure while running.
    pub fn is_invalid_input(&self) -> bool {
        !matches!(self, BuiltinError::Failed(_))
    }
}

impl fmt::Display for BuiltinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuiltinError::Data(d) => d.fmt(f),
            BuiltinError::Hyperparameter {
                name,
                value,
                message,
                hint,
            } => {
                match value {
                    Some(v) => write!(f, "hyperparameter `{name}` = `{v}`: {message}")?,
                    None => write!(f, "hyperparameter `{name}`: {message}")?,
                }
                if let Some(h) = hint {
                    write!(f, "\n  help: {h}")?;
                }
                Ok(())
            }
            BuiltinError::Failed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for BuiltinError {}

impl From<DataError> for BuiltinError {
    fn from(e: DataError) -> Self {
        BuiltinError::Data(e)
    }
}

/// Turns an I/O error on a model or checkpoint file into a failure naming the file.
pub fn io_failed(action: &str, path: &std::path::Path, e: std::io::Error) -> BuiltinError {
    BuiltinError::Failed(format!("{action} {}: {e}", path.display()))
}
