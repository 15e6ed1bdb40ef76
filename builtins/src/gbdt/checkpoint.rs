//! Checkpoints: the trees so far plus the early-stopping state, so an
//! interrupted run resumes and ends with exactly the model it would have made.
//!
//! Resuming needs no saved margins: training adds leaf values to margins in
//! tree order, and predicting the saved trees on the same rows adds the same
//! values in the same order. Per-round randomness is derived from the seed and
//! the round number, so it needs no saved state either. A checkpoint is only
//! used when its parameter and data fingerprints match this run's.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::model::{GbdtModel, write_atomic};
use crate::error::{BuiltinError, io_failed};

pub const FILE_NAME: &str = "gbdt-checkpoint.json";

/// Early-stopping bookkeeping: the best validation score so far and its round.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Best {
    pub round: usize,
    pub score: f64,
}

#[derive(Serialize, Deserialize)]
struct CheckpointFile {
    params: String,
    data: String,
    rounds_done: usize,
    best: Option<Best>,
    last_score: Option<f64>,
    /// The model (`model.json` text) after `rounds_done` rounds.
    model: String,
}

/// A resumable state.
pub struct Checkpoint {
    pub rounds_done: usize,
    pub best: Option<Best>,
    pub last_score: Option<f64>,
    pub model: GbdtModel,
}

/// Writes the state after `rounds_done` rounds into `dir`, replacing the previous checkpoint.
pub fn write(dir: &Path, params: &str, data: &str, ckpt: &Checkpoint) -> Result<(), BuiltinError> {
    std::fs::create_dir_all(dir).map_err(|e| io_failed("create", dir, e))?;
    let f = CheckpointFile {
        params: params.to_string(),
        data: data.to_string(),
        rounds_done: ckpt.rounds_done,
        best: ckpt.best,
        last_score: ckpt.last_score,
        model: ckpt.model.to_json_string(),
    };
    let text = serde_json::to_string(&f).expect("a checkpoint always serialises");
    write_atomic(&dir.join(FILE_NAME), &text)
}

/// A checkpoint as text, to hand to other nodes ([`decode`] reads it).
pub fn encode(ckpt: &Checkpoint) -> String {
    let f = CheckpointFile {
        params: String::new(),
        data: String::new(),
        rounds_done: ckpt.rounds_done,
        best: ckpt.best,
        last_score: ckpt.last_score,
        model: ckpt.model.to_json_string(),
    };
    serde_json::to_string(&f).expect("a checkpoint always serialises")
}

pub fn decode(text: &str) -> Result<Checkpoint, BuiltinError> {
    let f: CheckpointFile = serde_json::from_str(text)
        .map_err(|e| BuiltinError::failed(format!("read a checkpoint from the main node: {e}")))?;
    let model = GbdtModel::from_json_str(&f.model).map_err(BuiltinError::failed)?;
    Ok(Checkpoint {
        rounds_done: f.rounds_done,
        best: f.best,
        last_score: f.last_score,
        model,
    })
}

/// The checkpoint in `dir` written under the same parameters and data, if any.
/// A checkpoint of another run is reported through `log` and ignored.
pub fn read(
    dir: &Path,
    params: &str,
    data: &str,
    log: &dyn Fn(&str),
) -> Result<Option<Checkpoint>, BuiltinError> {
    let path = dir.join(FILE_NAME);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_failed("read", &path, e)),
    };
    let f: CheckpointFile = serde_json::from_str(&text).map_err(|e| {
        BuiltinError::failed(format!(
            "read {}: not a gbdt checkpoint: {e}",
            path.display()
        ))
        .with_hint("delete the file to start training from the beginning")
    })?;
    if f.params != params || f.data != data {
        log(&format!(
            "ignoring checkpoint {}: it was written with other hyperparameters or data",
            path.display()
        ));
        return Ok(None);
    }
    let model = GbdtModel::from_json_str(&f.model)
        .map_err(|m| BuiltinError::failed(format!("read {}: {m}", path.display())))?;
    Ok(Some(Checkpoint {
        rounds_done: f.rounds_done,
        best: f.best,
        last_score: f.last_score,
        model,
    }))
}

/// A 64-bit FNV-1a hash, to fingerprint the training data cheaply.
pub struct Fingerprint(u64);

impl Default for Fingerprint {
    fn default() -> Self {
        Fingerprint(0xcbf2_9ce4_8422_2325)
    }
}

impl Fingerprint {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 ^= x as u64;
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    pub fn f32s(&mut self, v: impl Iterator<Item = f32>) {
        for x in v {
            self.bytes(&x.to_bits().to_le_bytes());
        }
    }
    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}
