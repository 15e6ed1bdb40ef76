//! Content digests of pipeline inputs, remembered by file identity.
//!
//! Hashing a large data set on every run would make a fully cached re-run as
//! slow as reading the data. A file whose path, size, modification time and
//! inode are unchanged keeps its digest (as git's index does); the digest,
//! not the timestamp, is what enters cache keys.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::error::{Error, Result};
use crate::runs::RunsDb;
use crate::store::{digest_dir, digest_file};

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
