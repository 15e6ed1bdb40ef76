//! Content digests of pipeline inputs, remembered by file identity.
//!
//! Hashing a large data set on every run would make a fully cached re-run as
//! slow as reading the data. A file whose path, size, modification time and
//! inode are unchanged keeps its digest (as git's index does); the digest,
//! not the timestamp, is what enters cache keys.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::dag::cache::{ImageId, program_paths, user_image};
use crate::error::{Error, Result};
use crate::runs::RunsDb;
use crate::spec::model::{InputDef, Pipeline, Step};
use crate::store::{Workspace, digest_dir, digest_file, digest_path};

/// The content identity of a pipeline input: a local file's or directory's
/// digest, or an `s3://` input's identity (see `store/s3.rs`).
pub fn input_digest(db: &RunsDb, ws: &Workspace, def: &InputDef) -> Result<String> {
    match def.remote() {
        Some(uri) => crate::store::remote::input_identity(db, ws, uri),
        None => digest_input(db, &def.resolved),
    }
}

pub fn digest_input(db: &RunsDb, path: &Path) -> Result<String> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io("read the input", path, e))?;
    if meta.is_dir() {
        return digest_dir(path).map_err(|e| Error::io("hash the input", path, e));
    }
    let key = path.display().to_string();
    let (size, mtime, ino) = (
        meta.len() as i64,
        meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        meta.ino() as i64,
    );
    if let Some(d) = db.file_hash_get(&key, size, mtime, ino)? {
        return Ok(d);
    }
    let d = digest_file(path).map_err(|e| Error::io("hash the input", path, e))?;
    db.file_hash_put(&key, size, mtime, ino, &d)?;
    Ok(d)
}

/// The content digest of each program file or directory a user step's
/// `run:` names inside the pipeline's directory (see [`program_paths`]),
/// remembered by file identity when `db` is given.
pub fn program_digests(
    db: Option<&RunsDb>,
    step: &Step,
    base_dir: &Path,
) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (name, path) in program_paths(step, base_dir) {
        let d = match db {
            Some(db) => digest_input(db, &path)?,
            None => digest_path(&path).map_err(|e| Error::io("hash the program file", &path, e))?,
        };
        out.insert(name, d);
    }
    Ok(out)
}

/// The user image of `step` with its ID among `ids` (from [`image_ids`]).
pub fn image_of(step: &Step, ids: &BTreeMap<String, Option<String>>) -> Option<ImageId> {
    user_image(step).map(|tag| ImageId {
        tag: tag.to_string(),
        id: ids.get(tag).cloned().flatten(),
    })
}

/// The Docker Engine's ID of every user image the pipeline's docker steps
/// name. An image the engine lacks, or an engine that cannot be reached,
/// maps to `None`: such a step's key matches no stored result, and running it
/// reports the missing image as it always has.
pub async fn image_ids(p: &Pipeline) -> BTreeMap<String, Option<String>> {
    let tags: std::collections::BTreeSet<&str> = p.steps.iter().filter_map(user_image).collect();
    let mut out = BTreeMap::new();
    if tags.is_empty() {
        return out;
    }
    let docker = crate::exec::docker::connect().await.ok();
    for tag in tags {
        let id = match &docker {
            Some(d) => d.inspect_image(tag).await.ok().and_then(|i| i.id),
            None => None,
        };
        out.insert(tag.to_string(), id);
    }
    out
}
