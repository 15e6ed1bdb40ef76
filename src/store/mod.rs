//! The workspace (`.pipeline/`) and its content-addressed artifact store.
//!
//! Every step output is a directory. When a step succeeds its output
//! directories are hashed (blake3 over the sorted relative paths and file
//! contents) and renamed into `store/<2 hex>/<digest>/`: one atomic rename on
//! the same file system, so an artifact is either wholly there or not at all.
//! Stored artifacts are never modified; the same content is stored once.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Where the engine keeps its state: `.pipeline/` in the current directory or
/// the nearest parent that has one (or `$PIPELINE_HOME`).
#[derive(Debug, Clone)]
pub struct Workspace {
    pub root: PathBuf,
}

impl Workspace {
    /// Finds the workspace for this directory (without creating it).
    pub fn locate() -> Workspace {
        if let Some(h) = std::env::var_os("PIPELINE_HOME").filter(|h| !h.is_empty()) {
            return Workspace {
                root: PathBuf::from(h),
            };
        }
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        let mut dir = Some(cwd.as_path());
        while let Some(d) = dir {
            let candidate = d.join(".pipeline");
            if candidate.is_dir() {
                return Workspace { root: candidate };
            }
            dir = d.parent();
        }
        Workspace {
            root: cwd.join(".pipeline"),
        }
    }

    pub fn create_dirs(&self) -> Result<()> {
        for d in [self.root.clone(), self.store_dir(), self.runs_dir()] {
            fs::create_dir_all(&d).map_err(|e| Error::io("create", &d, e))?;
        }
        Ok(())
    }

    pub fn exists(&self) -> bool {
        self.root.is_dir()
    }
    pub fn store_dir(&self) -> PathBuf {
        self.root.join("store")
    }
    pub fn runs_dir(&self) -> PathBuf {
        self.root.join("runs")
    }
    pub fn db_path(&self) -> PathBuf {
        self.root.join("runs.db")
    }
    pub fn registry_path(&self) -> PathBuf {
        self.root.join("registry.db")
    }
    /// A run's directory: step work directories and logs.
    pub fn run_dir(&self, run_id: &str) -> PathBuf {
        self.runs_dir().join(run_id)
    }
    pub fn log_path(&self, run_id: &str, step: &str) -> PathBuf {
        self.run_dir(run_id)
            .join("logs")
            .join(format!("{step}.log"))
    }
    pub fn store(&self) -> Store {
        Store {
            root: self.store_dir(),
        }
    }
}

/// The content-addressed store of artifact directories.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    pub fn new(root: PathBuf) -> Self {
        Store { root }
    }

    /// Where the artifact with `digest` lives (whether or not it is there).
    pub fn path_of(&self, digest: &str) -> PathBuf {
        self.root.join(&digest[..2.min(digest.len())]).join(digest)
    }

    pub fn contains(&self, digest: &str) -> bool {
        self.path_of(digest).is_dir()
    }

    /// Moves `dir` into the store; returns its digest and stored path.
    /// If the same content is already stored, `dir` is removed instead.
    pub fn ingest_dir(&self, dir: &Path) -> Result<(String, PathBuf)> {
        let digest = digest_dir(dir).map_err(|e| Error::io("hash", dir, e))?;
        let dest = self.path_of(&digest);
        if dest.is_dir() {
            let _ = fs::remove_dir_all(dir);
            return Ok((digest, dest));
        }
        let parent = dest.parent().expect("store paths have a parent");
        fs::create_dir_all(parent).map_err(|e| Error::io("create", parent, e))?;
        match fs::rename(dir, &dest) {
            Ok(()) => Ok((digest, dest)),
            // Another process stored the same content first.
            Err(_) if dest.is_dir() => {
                let _ = fs::remove_dir_all(dir);
                Ok((digest, dest))
            }
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                let tmp = parent.join(format!(".tmp-{digest}-{}", std::process::id()));
                copy_dir(dir, &tmp).map_err(|e| Error::io("copy into the store", dir, e))?;
                fs::rename(&tmp, &dest).map_err(|e| Error::io("store", &dest, e))?;
                let _ = fs::remove_dir_all(dir);
                Ok((digest, dest))
            }
            Err(e) => Err(Error::io("store", &dest, e)),
        }
    }
}

fn copy_dir(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// The content digest of a directory: file names, kinds and contents, in sorted order.
pub fn digest_dir(dir: &Path) -> io::Result<String> {
    let mut h = blake3::Hasher::new();
    h.update(b"pipeline-tree-v1\n");
    hash_tree(dir, "", &mut h)?;
    Ok(h.finalize().to_hex().to_string())
}

fn hash_tree(dir: &Path, rel: &str, h: &mut blake3::Hasher) -> io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        let relp = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let meta = fs::metadata(&path)?;
        if meta.is_dir() {
            h.update(b"D ");
            h.update(relp.as_bytes());
            h.update(b"\n");
            hash_tree(&path, &relp, h)?;
        } else {
            let fd = digest_file(&path)?;
            h.update(b"F ");
            h.update(relp.as_bytes());
            h.update(b" ");
            h.update(fd.as_bytes());
            h.update(b"\n");
        }
    }
    Ok(())
}

/// The content digest of one file (memory-mapped and parallel for large files).
pub fn digest_file(path: &Path) -> io::Result<String> {
    let mut h = blake3::Hasher::new();
    let len = fs::metadata(path)?.len();
    if len > 16 << 20 {
        h.update_mmap_rayon(path)?;
    } else {
        h.update(&fs::read(path)?);
    }
    Ok(h.finalize().to_hex().to_string())
}

/// The digest of an input path: a file's or a directory's.
pub fn digest_path(path: &Path) -> io::Result<String> {
    if fs::metadata(path)?.is_dir() {
        digest_dir(path)
    } else {
        digest_file(path)
    }
}

/// Makes a database file and its SQLite companions (`-wal`, `-shm`,
/// `-journal`) readable and writable by the owner only: created so when
/// missing (SQLite gives its companions the main file's mode), and changed
/// back when an existing one is open to others. Run and registry records may
/// hold parameters and metrics that are nobody else's business.
pub fn owner_only(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if !path.exists() {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
    }
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let p = std::path::PathBuf::from(p);
        match std::fs::metadata(&p) {
            Ok(m) if m.permissions().mode() & 0o077 != 0 => {
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))?;
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, then a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    fs::write(&tmp, bytes)?;
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    #[test]
    fn databases_become_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        super::owner_only(&db).unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&db), 0o600);
        let wal = dir.path().join("x.db-wal");
        std::fs::write(&wal, b"").unwrap();
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(&wal, std::fs::Permissions::from_mode(0o644)).unwrap();
        super::owner_only(&db).unwrap();
        assert_eq!((mode(&db), mode(&wal)), (0o600, 0o600));
    }

    use super::*;

    #[test]
    fn same_content_same_digest_and_stored_once() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::new(t.path().join("store"));
        for name in ["a", "b"] {
            let d = t.path().join(name);
            fs::create_dir_all(d.join("sub")).unwrap();
            fs::write(d.join("x.txt"), "hello").unwrap();
            fs::write(d.join("sub/y.txt"), "world").unwrap();
        }
        let (da, pa) = store.ingest_dir(&t.path().join("a")).unwrap();
        let (db, pb) = store.ingest_dir(&t.path().join("b")).unwrap();
        assert_eq!(da, db);
        assert_eq!(pa, pb);
        assert!(!t.path().join("b").exists());
        assert_eq!(fs::read_to_string(pa.join("sub/y.txt")).unwrap(), "world");
    }

    #[test]
    fn names_and_contents_change_the_digest() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("d");
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("x"), "1").unwrap();
        let a = digest_dir(&d).unwrap();
        fs::write(d.join("x"), "2").unwrap();
        let b = digest_dir(&d).unwrap();
        fs::rename(d.join("x"), d.join("y")).unwrap();
        let c = digest_dir(&d).unwrap();
        assert!(a != b && b != c && a != c);
    }
}
