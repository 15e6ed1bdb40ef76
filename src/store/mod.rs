//! The workspace (`.pipeline/`) and its content-addressed artifact store.
//!
//! Every step output is a directory. When a step succeeds its output
//! directories are hashed (blake3 over the sorted relative paths and file
//! contents) and renamed into `store/<2 hex>/<digest>/`: one atomic rename on
//! the same file system, so an artifact is either wholly there or not at all.
//! Stored artifacts are never modified; the same content is stored once.
//!
//! Before it is hashed an output is made self-contained: a symlink to a file
//! or directory inside the same output becomes a copy of it, a file with
//! other hard links becomes a copy of its own, and a link that points outside
//! the output or nowhere, or a special file, is refused (naming the link and
//! its target). Stored files are read-only (0444, directories 0555), so a
//! step that is given them as input cannot write to them by mistake; the
//! scheduler also re-checks its inputs when it ends ([`TreeStat`]).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub mod remote;
#[cfg(feature = "aws")]
pub mod s3;

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
    /// Where `s3://` inputs are kept on this machine (see `s3.rs`).
    pub fn staging_dir(&self) -> PathBuf {
        self.root.join("s3-inputs")
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

    /// Whether the artifact is in the store: here, or in the shared store.
    pub fn contains(&self, digest: &str) -> Result<bool> {
        if self.path_of(digest).is_dir() {
            return Ok(true);
        }
        match remote::shared()? {
            Some(s) => s.has(digest),
            None => Ok(false),
        }
    }

    /// The artifact's directory on this machine, brought from the shared
    /// store first when only that has it.
    pub fn local_path(&self, digest: &str) -> Result<PathBuf> {
        let p = self.path_of(digest);
        if p.is_dir() {
            return Ok(p);
        }
        match remote::shared()? {
            Some(s) => s.fetch(digest, self),
            None => Err(Error::failed(format!(
                "the artifact {digest} is not in this workspace's store ({})",
                p.display()
            ))),
        }
    }

    /// Stores `dir` ([`Store::ingest_local`]) and, with a shared store, puts
    /// it there too; returns its digest and local path.
    pub fn ingest_dir(&self, dir: &Path) -> Result<(String, PathBuf)> {
        let (digest, path) = self.ingest_local(dir)?;
        if let Some(s) = remote::shared()? {
            s.push(&digest, &path)?;
        }
        Ok((digest, path))
    }

    /// Moves `dir` into the local store, read-only; returns its digest and stored
    /// path. If the same content is already stored, `dir` is removed instead.
    /// Symlinks and hard links in `dir` are resolved first ([`make_self_contained`]).
    pub fn ingest_local(&self, dir: &Path) -> Result<(String, PathBuf)> {
        make_self_contained(dir)?;
        let digest = digest_dir(dir).map_err(|e| Error::io("hash", dir, e))?;
        let dest = self.path_of(&digest);
        if dest.is_dir() {
            let _ = remove_tree(dir);
            return Ok((digest, dest));
        }
        let parent = dest.parent().expect("store paths have a parent");
        fs::create_dir_all(parent).map_err(|e| Error::io("create", parent, e))?;
        // Everything below the top is made read-only before the rename; the
        // top after it (renaming a directory needs it writable, for `..`).
        make_read_only(dir, false).map_err(|e| Error::io("make read-only", dir, e))?;
        let seal = |d: &Path| {
            fs::set_permissions(d, fs::Permissions::from_mode(DIR_MODE))
                .map_err(|e| Error::io("make read-only", d, e))
        };
        match fs::rename(dir, &dest) {
            Ok(()) => {
                seal(&dest)?;
                Ok((digest, dest))
            }
            // Another process stored the same content first.
            Err(_) if dest.is_dir() => {
                let _ = remove_tree(dir);
                Ok((digest, dest))
            }
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                let tmp = parent.join(format!(".tmp-{digest}-{}", std::process::id()));
                copy_dir(dir, &tmp).map_err(|e| Error::io("copy into the store", dir, e))?;
                make_read_only(&tmp, false).map_err(|e| Error::io("make read-only", &tmp, e))?;
                match fs::rename(&tmp, &dest) {
                    Ok(()) => seal(&dest)?,
                    Err(_) if dest.is_dir() => {
                        let _ = remove_tree(&tmp);
                    }
                    Err(e) => return Err(Error::io("store", &dest, e)),
                }
                let _ = remove_tree(dir);
                Ok((digest, dest))
            }
            Err(e) => Err(Error::io("store", &dest, e)),
        }
    }

    /// Copies the artifact `digest` from the store `from` into this one
    /// (a scratch store that must hold what the workspace's store has),
    /// checked against its digest; returns where it is here.
    pub fn copy_in(&self, from: &Store, digest: &str) -> Result<PathBuf> {
        let dest = self.path_of(digest);
        if dest.is_dir() {
            return Ok(dest);
        }
        let src = from.path_of(digest);
        fs::create_dir_all(&self.root).map_err(|e| Error::io("create", &self.root, e))?;
        let tmp = self
            .root
            .join(format!(".copy-{digest}-{}", std::process::id()));
        copy_dir(&src, &tmp).map_err(|e| Error::io("copy the artifact", &src, e))?;
        let (got, path) = self.ingest_local(&tmp)?;
        if got != digest {
            let _ = remove_tree(&path);
            return Err(Error::failed(format!(
                "the artifact {} no longer has the content its digest says (it hashes to {got})",
                src.display()
            )));
        }
        Ok(path)
    }

    /// Whether `path` is inside this store.
    pub fn holds(&self, path: &Path) -> bool {
        let root = fs::canonicalize(&self.root).unwrap_or_else(|_| self.root.clone());
        path.starts_with(&root) || path.starts_with(&self.root)
    }

    /// Takes a stored artifact out of the store (it no longer has the content
    /// its digest says), into `quarantine/` beside the store; returns where it went.
    pub fn quarantine(&self, digest: &str) -> io::Result<PathBuf> {
        let from = self.path_of(digest);
        let dir = self.root.parent().unwrap_or(&self.root).join("quarantine");
        fs::create_dir_all(&dir)?;
        let to = dir.join(format!(
            "{digest}-{}",
            jiff::Timestamp::now().as_millisecond()
        ));
        // Renaming a directory to another parent needs it writable.
        fs::set_permissions(&from, fs::Permissions::from_mode(0o755))?;
        fs::rename(&from, &to)?;
        Ok(to)
    }

    /// Makes a stored artifact read-only again (after a step changed only its modes).
    pub fn reseal(&self, digest: &str) -> io::Result<()> {
        make_read_only(&self.path_of(digest), true)
    }
}

/// Stored files' mode: read-only for everyone.
const FILE_MODE: u32 = 0o444;
/// Stored directories' mode.
const DIR_MODE: u32 = 0o555;

/// Makes every file under `dir` 0444 and every directory 0555 (`dir` itself too when `top`).
fn make_read_only(dir: &Path, top: bool) -> io::Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        let meta = e.metadata()?;
        if meta.is_dir() {
            make_read_only(&e.path(), true)?;
        } else if meta.permissions().mode() & 0o7777 != FILE_MODE {
            fs::set_permissions(e.path(), fs::Permissions::from_mode(FILE_MODE))?;
        }
    }
    if top {
        fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))?;
    }
    Ok(())
}

/// Removes a directory tree, read-only parts included (a stored artifact, a
/// work directory holding one).
pub fn remove_tree(dir: &Path) -> io::Result<()> {
    fn writable(d: &Path) -> io::Result<()> {
        let meta = fs::symlink_metadata(d)?;
        if !meta.is_dir() {
            return Ok(());
        }
        fs::set_permissions(d, fs::Permissions::from_mode(0o755))?;
        for e in fs::read_dir(d)? {
            let e = e?;
            if e.file_type()?.is_dir() {
                writable(&e.path())?;
            }
        }
        Ok(())
    }
    let _ = writable(dir);
    fs::remove_dir_all(dir)
}

/// Makes an output directory hold only its own regular files and
/// directories: a symlink to something inside it is replaced by a copy of
/// that, a file with other hard links by a copy of its own; a symlink that
/// points outside it or nowhere, or a special file (fifo, socket, device), is
/// an error naming it.
pub fn make_self_contained(dir: &Path) -> Result<()> {
    let root = fs::canonicalize(dir).map_err(|e| Error::io("read the output", dir, e))?;
    // Every link found in one walk is replaced; a copied directory may hold
    // links of its own, which the next walk finds.
    for _ in 0..1000 {
        let mut found = Vec::new();
        foreign_entries(&root, &mut found).map_err(|e| Error::io("read the output", dir, e))?;
        if found.is_empty() {
            return Ok(());
        }
        for f in found {
            match f {
                Foreign::Link(link) => materialise(&root, &link)?,
                Foreign::HardLinked(file) => {
                    let tmp = file.with_file_name(format!(
                        ".{}.copy",
                        file.file_name().unwrap_or_default().to_string_lossy()
                    ));
                    fs::copy(&file, &tmp)
                        .and_then(|_| fs::rename(&tmp, &file))
                        .map_err(|e| Error::io("copy the hard-linked file", &file, e))?;
                }
                Foreign::Special(p) => {
                    return Err(Error::failed(format!(
                        "the output has `{}`, which is not a regular file or directory (a fifo, socket or device); outputs may only hold files and directories",
                        p.strip_prefix(&root).unwrap_or(&p).display()
                    )));
                }
            }
        }
    }
    Err(Error::failed(format!(
        "the output {} has symlinks nested too deeply to resolve",
        dir.display()
    )))
}

enum Foreign {
    Link(PathBuf),
    HardLinked(PathBuf),
    Special(PathBuf),
}

/// Every entry under `dir` that is not a plain file or directory of its own, in name order.
fn foreign_entries(dir: &Path, out: &mut Vec<Foreign>) -> io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let meta = fs::symlink_metadata(&p)?;
        let t = meta.file_type();
        if t.is_symlink() {
            out.push(Foreign::Link(p));
        } else if t.is_dir() {
            foreign_entries(&p, out)?;
        } else if !t.is_file() {
            out.push(Foreign::Special(p));
        } else if meta.nlink() > 1 {
            out.push(Foreign::HardLinked(p));
        }
    }
    Ok(())
}

/// Replaces the symlink `link` (inside the output `root`) by a copy of what
/// it points to, which must be inside `root` too.
fn materialise(root: &Path, link: &Path) -> Result<()> {
    let rel = link.strip_prefix(root).unwrap_or(link);
    let target = fs::read_link(link).map_err(|e| Error::io("read the link", link, e))?;
    let refuse = |why: &str| {
        Error::failed(format!(
            "the output's symlink `{}` points to `{}`, {why}; outputs are stored as plain files, so a link may only point to a file or directory inside the same output (write a copy there instead)",
            rel.display(),
            target.display()
        ))
    };
    let resolved = match fs::canonicalize(link) {
        Ok(p) => p,
        Err(_) => return Err(refuse("which does not exist")),
    };
    if !resolved.starts_with(root) {
        return Err(refuse("outside the output"));
    }
    let io = |e| Error::io("copy the link's target into the output", link, e);
    fs::remove_file(link).map_err(io)?;
    if resolved.is_dir() {
        if link.starts_with(&resolved) {
            return Err(refuse("a directory that holds the link itself"));
        }
        copy_tree_raw(&resolved, link).map_err(io)
    } else {
        fs::copy(&resolved, link).map(|_| ()).map_err(io)
    }
}

/// Copies a directory, keeping symlinks as symlinks to where they led from
/// their old place (they are resolved, or refused, by the next walk).
fn copy_tree_raw(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir_all(to)?;
    for e in fs::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        let t = e.file_type()?;
        if t.is_symlink() {
            let led_to = fs::canonicalize(e.path())
                .unwrap_or_else(|_| fs::read_link(e.path()).unwrap_or_default());
            std::os::unix::fs::symlink(led_to, target)?;
        } else if t.is_dir() {
            copy_tree_raw(&e.path(), &target)?;
        } else {
            fs::copy(e.path(), target)?;
        }
    }
    Ok(())
}

/// The identity of a file as the file system sees it: when any of it changes,
/// its content may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    pub size: u64,
    pub mtime_ns: i64,
    /// Changes on every write, chmod, rename and link, and cannot be set back.
    pub ctime_ns: i64,
    pub inode: u64,
    pub mode: u32,
}

impl FileId {
    fn of(meta: &fs::Metadata) -> FileId {
        FileId {
            size: meta.len(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
            inode: meta.ino(),
            mode: meta.mode(),
        }
    }
}

/// A stat snapshot of a file or of every entry under a directory (symlinks
/// followed, as a step reading it would): comparing two is cheap, and equal
/// snapshots mean the content was not changed, without hashing it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeStat(BTreeMap<PathBuf, FileId>);

impl TreeStat {
    pub fn of(path: &Path) -> io::Result<TreeStat> {
        let mut m = BTreeMap::new();
        fn walk(
            p: &Path,
            rel: PathBuf,
            depth: usize,
            m: &mut BTreeMap<PathBuf, FileId>,
        ) -> io::Result<()> {
            // A symlink loop in a pipeline's own input directory ends here.
            if depth > 256 {
                return Err(io::Error::other(format!(
                    "{} is nested too deeply (a symlink loop?)",
                    p.display()
                )));
            }
            let meta = fs::metadata(p)?;
            m.insert(rel.clone(), FileId::of(&meta));
            if meta.is_dir() {
                for e in fs::read_dir(p)? {
                    let e = e?;
                    walk(&e.path(), rel.join(e.file_name()), depth + 1, m)?;
                }
            }
            Ok(())
        }
        walk(path, PathBuf::new(), 0, &mut m)?;
        Ok(TreeStat(m))
    }

    /// The first entry (relative path; empty for the top) that differs
    /// between the two snapshots: changed, added or removed.
    pub fn first_difference(&self, later: &TreeStat) -> Option<PathBuf> {
        for (p, id) in &self.0 {
            if later.0.get(p) != Some(id) {
                return Some(p.clone());
            }
        }
        later.0.keys().find(|p| !self.0.contains_key(*p)).cloned()
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
    Ok(digest_entries(&tree_entries(dir)?))
}

/// One entry of a directory tree, as its digest sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TreeEntry {
    /// A directory, by its path relative to the top (`/`-separated).
    Dir(String),
    /// A file: relative path, content digest, size in bytes.
    File(String, String, u64),
}

/// Every directory and file under `dir`, in the order the digest takes them:
/// each directory's entries sorted by name, a directory followed by what it holds.
pub fn tree_entries(dir: &Path) -> io::Result<Vec<TreeEntry>> {
    fn walk(dir: &Path, rel: &str, out: &mut Vec<TreeEntry>) -> io::Result<()> {
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
                out.push(TreeEntry::Dir(relp.clone()));
                walk(&path, &relp, out)?;
            } else {
                out.push(TreeEntry::File(relp, digest_file(&path)?, meta.len()));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, "", &mut out)?;
    Ok(out)
}

/// The digest of a tree from its entries (as [`tree_entries`] orders them):
/// what a stored manifest is checked against without its files at hand.
pub fn digest_entries(entries: &[TreeEntry]) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"pipeline-tree-v1\n");
    for e in entries {
        match e {
            TreeEntry::Dir(rel) => {
                h.update(b"D ");
                h.update(rel.as_bytes());
                h.update(b"\n");
            }
            TreeEntry::File(rel, digest, _) => {
                h.update(b"F ");
                h.update(rel.as_bytes());
                h.update(b" ");
                h.update(digest.as_bytes());
                h.update(b"\n");
            }
        }
    }
    h.finalize().to_hex().to_string()
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
    fn links_in_an_output_become_copies_of_what_they_lead_to() {
        use std::os::unix::fs::symlink;
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("out");
        fs::create_dir_all(d.join("d/sub")).unwrap();
        fs::write(d.join("real.txt"), "real").unwrap();
        // A link two levels down, relative to where it is.
        symlink("../../real.txt", d.join("d/sub/x")).unwrap();
        symlink("d/sub", d.join("top")).unwrap();
        symlink("top", d.join("chain")).unwrap();
        make_self_contained(&d).unwrap();
        for p in ["d/sub/x", "top/x", "chain/x"] {
            let meta = fs::symlink_metadata(d.join(p)).unwrap();
            assert!(meta.is_file(), "{p}");
            assert_eq!(fs::read_to_string(d.join(p)).unwrap(), "real", "{p}");
        }
        symlink(t.path(), d.join("out-of-it")).unwrap();
        let e = make_self_contained(&d).unwrap_err().to_string();
        assert!(
            e.contains("symlink `out-of-it`") && e.contains("outside the output"),
            "{e}"
        );
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
