//! S3 for the engine: the client of this process, `s3://` inputs (their
//! identity for cache keys, and their staging on this machine), and the
//! shared store and step cache under `--store s3://BUCKET/PREFIX`.
//!
//! Layout of a shared store (every object written once, with `If-None-Match: *`):
//!
//! ```text
//! PREFIX/blobs/<2 hex>/<blake3>   a file's content
//! PREFIX/trees/<digest>.json      an artifact: its directories and files (path, blake3, size)
//! PREFIX/cache/<key>.json         a step result: the cache entry, and who made it
//! ```
//!
//! A tree is written only once all its blobs are there, and a cache entry
//! only once its trees are: whatever is visible is whole. A tree's digest is
//! computed from its entries exactly as the local store computes it from the
//! files, so it is checked before anything is downloaded, and every file is
//! checked against its blob's digest when it arrives.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use pipeline_aws::s3::{
    Checksum, ClientOptions, ErrorKind, ObjectInfo, PutOptions, PutOutcome, S3, S3Error, S3Uri,
};
use serde::{Deserialize, Serialize};

use super::remote::{SharedEntry, StoreSettings};
use super::{Store, TreeEntry, Workspace, digest_entries, digest_file, tree_entries};
use crate::error::{Error, Result};
use crate::runs::{CacheEntry, RunsDb};
use crate::spec::source::Diagnostic;

/// An S3 failure as the engine reports it: invalid input (exit 2) when the
/// user's configuration or data is at fault, else a failure.
pub fn error(e: S3Error) -> Error {
    if e.is_user_error() {
        Error::invalid(Diagnostic::new(e.to_string()))
    } else {
        Error::failed(e.to_string())
    }
}

/// The S3 client of this process (one connection pool for everything).
pub fn client() -> Result<S3> {
    static CLIENT: OnceLock<std::result::Result<S3, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            let s = super::remote::settings();
            S3::connect(ClientOptions {
                kms_key_id: s.kms_key_id,
                ..ClientOptions::default()
            })
            .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(Error::failed)
}

fn parse(uri: &str) -> Result<S3Uri> {
    S3Uri::parse(uri).map_err(|why| Error::invalid(Diagnostic::new(why)))
}

// ---------------------------------------------------------------------------
// Inputs

/// The objects an input URI stands for: the one object, or every object
/// under the prefix (also when the URI lacks its final `/` and names no
/// object), in key order, each with its path relative to the URI.
pub fn input_objects(s3: &S3, uri: &str) -> Result<Vec<(String, ObjectInfo)>> {
    let u = parse(uri)?;
    if !u.is_prefix()
        && let Some(o) = s3.head(&u).map_err(error)?
    {
        let name = u.key.rsplit('/').next().unwrap_or(&u.key).to_string();
        return Ok(vec![(name, o)]);
    }
    let prefix = u.as_prefix();
    let listed = s3.list(&prefix).map_err(error)?;
    let mut out = Vec::new();
    for o in listed {
        let rel = o.uri.key[prefix.key.len()..].to_string();
        // "Directory" markers some tools write.
        if rel.is_empty() || rel.ends_with('/') {
            continue;
        }
        if rel
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(Error::invalid(Diagnostic::new(format!(
                "{}: the key cannot be made a local path (an empty, `.` or `..` segment)",
                o.uri
            ))));
        }
        out.push((rel, o));
    }
    if out.is_empty() {
        return Err(Error::invalid(
            Diagnostic::new(format!(
                "{uri}: no such key, and no objects under the prefix `{prefix}`"
            ))
            .help("check the URI; `aws s3 ls` lists what is there"),
        ));
    }
    Ok(out)
}

/// What identifies one object's content for the cache, and how it was learnt.
fn object_identity(s3: &S3, db: &RunsDb, ws: &Workspace, o: &ObjectInfo) -> Result<String> {
    // Remembered against what S3 says of the object: an overwrite changes its
    // ETag and last-modified time (and usually its size).
    let memo = format!(
        "{}\u{0}{}\u{0}{}",
        o.uri,
        o.etag.as_deref().unwrap_or(""),
        o.last_modified.as_deref().unwrap_or("")
    );
    if let Some(d) = db.file_hash_get(&memo, o.size as i64, 0, 0)? {
        return Ok(d);
    }
    // Listings carry no checksums: ask for the object's own.
    let head = if o.checksum.is_some() || o.version_id.is_some() {
        o.clone()
    } else {
        s3.head(&o.uri).map_err(error)?.unwrap_or_else(|| o.clone())
    };
    let id = match (&head.checksum, &head.version_id) {
        (Some(Checksum::Sha256(c)), _) => format!("s3-sha256:{c}"),
        (Some(Checksum::Crc64Nvme(c)), _) => format!("s3-crc64nvme:{c}"),
        (None, Some(v)) => format!("s3-version:{}?versionId={v}", o.uri),
        (None, None) => {
            // S3 cannot vouch for the content: digest it, from the staged
            // copy when a step has just staged it, else streamed from S3
            // (nothing lands on disk: plan, and Pipe-mode steps, need no copy).
            let staged = staged_path(ws, &head);
            if staged.is_file() {
                digest_file(&staged).map_err(|e| Error::io("hash", &staged, e))?
            } else {
                let mut h = blake3::Hasher::new();
                s3.stream(&head, &mut h).map_err(error)?;
                h.finalize().to_hex().to_string()
            }
        }
    };
    db.file_hash_put(&memo, o.size as i64, 0, 0, &id)?;
    Ok(id)
}

/// The identity of an `s3://` input for cache keys: of its one object, or of
/// the list of keys under its prefix and each one's identity.
pub fn input_identity(db: &RunsDb, ws: &Workspace, uri: &str) -> Result<String> {
    let s3 = client()?;
    let objects = input_objects(&s3, uri)?;
    if let [(_, o)] = objects.as_slice()
        && o.uri.to_string() == uri
    {
        return object_identity(&s3, db, ws, o);
    }
    let mut h = blake3::Hasher::new();
    h.update(b"pipeline-s3-prefix-v1\n");
    for (rel, o) in &objects {
        let id = object_identity(&s3, db, ws, o)?;
        h.update(rel.as_bytes());
        h.update(b" ");
        h.update(id.as_bytes());
        h.update(b"\n");
    }
    Ok(h.finalize().to_hex().to_string())
}

/// The staging area: downloaded objects, read-only, one directory per
/// object version (bucket, key, ETag), kept for the next run.
fn staging_dir(ws: &Workspace) -> PathBuf {
    ws.staging_dir()
}

/// Where one object version is kept on this machine, downloading it first
/// when it is not.
fn stage_object(s3: &S3, ws: &Workspace, o: &ObjectInfo) -> Result<PathBuf> {
    let path = staged_path(ws, o);
    if path.is_file() {
        return Ok(path);
    }
    let tmp = staging_dir(ws).join(format!(".tmp-{}", std::process::id()));
    fs::create_dir_all(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
    let part = tmp.join(blake3::hash(o.uri.to_string().as_bytes()).to_hex().as_str());
    let placed = s3
        .download(o, &part)
        .map_err(error)
        .and_then(|()| place_staged(ws, o, &part));
    let _ = fs::remove_file(&part);
    let _ = fs::remove_dir(&tmp);
    placed.map(|()| path)
}

/// Puts an `s3://` input on this machine (File mode) and returns the local
/// path a step reads: the object's file, or a directory holding the
/// prefix's objects at their relative keys (hard links to the staged
/// copies, so nothing is copied twice).
pub fn stage_input(ws: &Workspace, uri: &str) -> Result<PathBuf> {
    let s3 = client()?;
    let objects = input_objects(&s3, uri)?;
    if let [(_, o)] = objects.as_slice()
        && o.uri.to_string() == uri
    {
        return stage_object(&s3, ws, o);
    }
    // Download what is missing in parallel, then lay out the directory.
    let missing: Vec<&ObjectInfo> = objects
        .iter()
        .map(|(_, o)| o)
        .filter(|o| !staged_path(ws, o).is_file())
        .collect();
    if !missing.is_empty() {
        let tmp = staging_dir(ws).join(format!(".batch-{}", std::process::id()));
        let _ = super::remove_tree(&tmp);
        let items: Vec<(ObjectInfo, PathBuf)> = missing
            .iter()
            .enumerate()
            .map(|(i, o)| ((*o).clone(), tmp.join(i.to_string())))
            .collect();
        if let Err(e) = s3.download_many(&items) {
            let _ = super::remove_tree(&tmp);
            return Err(error(e));
        }
        for (o, p) in &items {
            place_staged(ws, o, p)?;
        }
        let _ = super::remove_tree(&tmp);
    }
    let mut h = blake3::Hasher::new();
    for (rel, o) in &objects {
        h.update(rel.as_bytes());
        h.update(b"\0");
        h.update(staged_path(ws, o).as_os_str().as_encoded_bytes());
        h.update(b"\n");
    }
    let id = h.finalize().to_hex().to_string();
    let dir = staging_dir(ws).join("prefixes").join(&id);
    if dir.is_dir() {
        return Ok(dir);
    }
    let tmp = staging_dir(ws).join(format!(".prefix-{id}-{}", std::process::id()));
    let _ = super::remove_tree(&tmp);
    for (rel, o) in &objects {
        let to = tmp.join(rel);
        fs::create_dir_all(to.parent().expect("has a parent"))
            .map_err(|e| Error::io("create", &tmp, e))?;
        fs::hard_link(staged_path(ws, o), &to).map_err(|e| Error::io("stage", &to, e))?;
    }
    super::make_read_only(&tmp, true).map_err(|e| Error::io("make read-only", &tmp, e))?;
    fs::create_dir_all(dir.parent().expect("has a parent"))
        .map_err(|e| Error::io("create", &dir, e))?;
    // Renaming a directory needs it writable; sealed again just after.
    let _ = fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755));
    match fs::rename(&tmp, &dir) {
        Ok(()) => {}
        Err(_) if dir.is_dir() => {
            let _ = super::remove_tree(&tmp);
        }
        Err(e) => return Err(Error::io("stage", &dir, e)),
    }
    let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o555));
    Ok(dir)
}

/// Where [`stage_object`] keeps an object version.
fn staged_path(ws: &Workspace, o: &ObjectInfo) -> PathBuf {
    let id = blake3::hash(
        format!(
            "{}\u{0}{}\u{0}{}\u{0}{}",
            o.uri,
            o.etag.as_deref().unwrap_or(""),
            o.version_id.as_deref().unwrap_or(""),
            o.size
        )
        .as_bytes(),
    )
    .to_hex()
    .to_string();
    let name = o.uri.key.rsplit('/').next().unwrap_or("object");
    let name = if name.is_empty() || name == "." || name == ".." {
        "object"
    } else {
        name
    };
    staging_dir(ws).join(&id[..2]).join(&id).join(name)
}

/// Moves a downloaded object to where [`staged_path`] says, read-only.
fn place_staged(ws: &Workspace, o: &ObjectInfo, downloaded: &Path) -> Result<()> {
    let path = staged_path(ws, o);
    let dir = path.parent().expect("has a parent");
    if path.is_file() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o755));
    fs::set_permissions(downloaded, fs::Permissions::from_mode(0o444))
        .map_err(|e| Error::io("make read-only", downloaded, e))?;
    fs::rename(downloaded, &path).map_err(|e| Error::io("stage", &path, e))?;
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o555));
    Ok(())
}

// ---------------------------------------------------------------------------
// The shared store and cache

/// A manifest of a stored artifact.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: String,
    digest: String,
    entries: Vec<TreeEntry>,
}

const MANIFEST_FORMAT: &str = "pipeline-tree-v1";

/// The shared store and step cache of `--store s3://BUCKET/PREFIX`.
#[derive(Debug)]
pub struct Shared {
    s3: S3,
    root: S3Uri,
    url: String,
}

impl Shared {
    pub fn open(url: &str, _settings: &StoreSettings) -> Result<Shared> {
        Ok(Shared {
            s3: client()?,
            root: parse(url)?.as_prefix(),
            url: url.to_string(),
        })
    }

    /// The store's URI, as configured.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn blob(&self, digest: &str) -> S3Uri {
        self.root.join(&format!(
            "blobs/{}/{digest}",
            &digest[..2.min(digest.len())]
        ))
    }

    fn tree(&self, digest: &str) -> S3Uri {
        self.root.join(&format!("trees/{digest}.json"))
    }

    fn entry(&self, key: &str) -> S3Uri {
        self.root.join(&format!("cache/{key}.json"))
    }

    /// Whether the artifact `digest` is in the shared store.
    pub fn has(&self, digest: &str) -> Result<bool> {
        Ok(self.s3.head(&self.tree(digest)).map_err(error)?.is_some())
    }

    /// Puts a stored artifact (the local store's directory `dir`, whose
    /// digest is `digest`) into the shared store: the files it lacks, then
    /// the manifest.
    pub fn push(&self, digest: &str, dir: &Path) -> Result<()> {
        if self.has(digest)? {
            return Ok(());
        }
        let entries = tree_entries(dir).map_err(|e| Error::io("read", dir, e))?;
        if digest_entries(&entries) != digest {
            return Err(Error::failed(format!(
                "the stored artifact {} no longer has the content its digest says",
                dir.display()
            )));
        }
        self.push_entries(digest, dir, entries)
    }

    /// Puts the files of `dir`'s subdirectories `subdirs` (those that exist;
    /// symbolic links followed) into the shared store as one artifact, whose
    /// entries are paths under `dir`. Returns its digest.
    pub fn put_dirs(&self, dir: &Path, subdirs: &[&str]) -> Result<String> {
        self.put_tree(dir, dir_entries(dir, subdirs)?)
    }

    /// Stores the tree of `entries` (as [`dir_entries`] lists them, files
    /// under `dir`) unless the store has it; its digest.
    pub fn put_tree(&self, dir: &Path, entries: Vec<TreeEntry>) -> Result<String> {
        let digest = digest_entries(&entries);
        if !self.has(&digest)? {
            self.push_entries(&digest, dir, entries)?;
        }
        Ok(digest)
    }

    /// Uploads the blobs of `entries` (files under `dir`) that the store
    /// lacks, then their manifest.
    fn push_entries(&self, digest: &str, dir: &Path, entries: Vec<TreeEntry>) -> Result<()> {
        let mut uploads = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for e in &entries {
            if let TreeEntry::File(rel, d, _) = e
                && seen.insert(d.clone())
            {
                uploads.push((dir.join(rel), self.blob(d)));
            }
        }
        // Blobs another artifact already brought are not sent again.
        let present = self
            .s3
            .exists_many(&uploads.iter().map(|(_, u)| u.clone()).collect::<Vec<_>>())
            .map_err(error)?;
        let uploads: Vec<_> = uploads
            .into_iter()
            .zip(present)
            .filter(|(_, p)| !p)
            .map(|(u, _)| u)
            .collect();
        let put = PutOptions {
            if_none_match: true,
            ..PutOptions::default()
        };
        self.s3.upload_many(&uploads, &put).map_err(error)?;
        let manifest = Manifest {
            format: MANIFEST_FORMAT.into(),
            digest: digest.to_string(),
            entries,
        };
        self.s3
            .put_bytes(
                &self.tree(digest),
                serde_json::to_vec(&manifest).expect("json"),
                &put,
            )
            .map_err(error)?;
        Ok(())
    }

    /// The manifest of the artifact `digest`, checked against its digest.
    fn manifest(&self, digest: &str) -> Result<Manifest> {
        let uri = self.tree(digest);
        let bytes = self.s3.get_bytes(&uri).map_err(error)?.ok_or_else(|| {
            Error::failed(format!(
                "the artifact {digest} is in neither the local store nor the shared one ({uri})"
            ))
        })?;
        let m: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| Error::failed(format!("{uri}: not a manifest this engine reads: {e}")))?;
        if m.format != MANIFEST_FORMAT || digest_entries(&m.entries) != digest {
            return Err(Error::failed(format!(
                "{uri}: the manifest does not add up to the digest {digest}; the shared store has been changed by something other than this engine"
            )));
        }
        Ok(m)
    }

    /// Writes the artifact `digest`'s files into the directory `dest`
    /// (made when missing; files already there are replaced), every file
    /// checked against its digest.
    pub fn materialize(&self, digest: &str, dest: &Path) -> Result<()> {
        let m = self.manifest(digest)?;
        fs::create_dir_all(dest).map_err(|e| Error::io("create", dest, e))?;
        // Into a directory of its own first, every file checked, and only
        // then into place: a damaged blob never reaches `dest`.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let staging = dest.join(format!(".incoming-{}-{nanos}", std::process::id()));
        fs::create_dir(&staging).map_err(|e| Error::io("create", &staging, e))?;
        let moved = self.download_entries(&m, &staging).and_then(|()| {
            for e in &m.entries {
                match e {
                    TreeEntry::Dir(r) => {
                        let p = dest.join(r);
                        fs::create_dir_all(&p).map_err(|e| Error::io("create", &p, e))?;
                    }
                    TreeEntry::File(r, _, _) => {
                        let to = dest.join(r);
                        if let Some(parent) = to.parent() {
                            fs::create_dir_all(parent)
                                .map_err(|e| Error::io("create", parent, e))?;
                        }
                        fs::rename(staging.join(r), &to).map_err(|e| Error::io("place", &to, e))?;
                    }
                }
            }
            Ok(())
        });
        let _ = super::remove_tree(&staging);
        moved
    }

    /// The URI of `rel` under the store's root.
    pub fn uri(&self, rel: &str) -> String {
        self.root.join(rel).to_string()
    }

    /// Writes `bytes` at `rel` under the store's root unless something is
    /// there already (then `false`: what is stored is never replaced).
    pub fn put_once(&self, rel: &str, bytes: Vec<u8>) -> Result<bool> {
        let put = PutOptions {
            if_none_match: true,
            ..PutOptions::default()
        };
        match self
            .s3
            .put_bytes(&self.root.join(rel), bytes, &put)
            .map_err(error)?
        {
            PutOutcome::AlreadyThere => Ok(false),
            _ => Ok(true),
        }
    }

    /// The keys under `rel` (relative to the store's root), in key order.
    pub fn keys(&self, rel: &str) -> Result<Vec<String>> {
        let base = self.root.join("");
        let mut keys: Vec<String> = self
            .s3
            .list(&self.root.join(rel))
            .map_err(error)?
            .into_iter()
            .filter_map(|o| o.uri.key.strip_prefix(&base.key).map(str::to_string))
            .collect();
        keys.sort();
        Ok(keys)
    }

    /// The object at `rel` under the store's root, if there is one.
    pub fn get(&self, rel: &str) -> Result<Option<Vec<u8>>> {
        self.s3.get_bytes(&self.root.join(rel)).map_err(error)
    }

    /// Brings the artifact `digest` into the local store (checked file by
    /// file, and as a whole) and returns its local path.
    pub fn fetch(&self, digest: &str, store: &Store) -> Result<PathBuf> {
        let m = self.manifest(digest)?;
        let tmp = store
            .root
            .join(format!(".fetch-{digest}-{}", std::process::id()));
        let _ = super::remove_tree(&tmp);
        fs::create_dir_all(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
        let result = self.fetch_into(&m, &tmp, store);
        if result.is_err() {
            let _ = super::remove_tree(&tmp);
        }
        result
    }

    fn fetch_into(&self, m: &Manifest, tmp: &Path, store: &Store) -> Result<PathBuf> {
        self.download_entries(m, tmp)?;
        let (d, path) = store.ingest_local(tmp)?;
        if d != m.digest {
            return Err(Error::failed(format!(
                "the artifact fetched for {} has the digest {d}",
                m.digest
            )));
        }
        Ok(path)
    }

    /// Makes `m`'s directories and downloads its files under `tmp`, each checked.
    fn download_entries(&self, m: &Manifest, tmp: &Path) -> Result<()> {
        let mut items = Vec::new();
        for e in &m.entries {
            let rel = match e {
                TreeEntry::Dir(r) | TreeEntry::File(r, _, _) => r,
            };
            if rel.is_empty()
                || rel.starts_with('/')
                || rel
                    .split('/')
                    .any(|c| c.is_empty() || c == "." || c == "..")
            {
                return Err(Error::failed(format!(
                    "the manifest of {} has the path `{rel}`, which leaves the artifact",
                    m.digest
                )));
            }
            match e {
                TreeEntry::Dir(r) => {
                    let p = tmp.join(r);
                    fs::create_dir_all(&p).map_err(|e| Error::io("create", &p, e))?;
                }
                TreeEntry::File(r, d, size) => items.push((
                    ObjectInfo {
                        uri: self.blob(d),
                        size: *size,
                        etag: None,
                        last_modified: None,
                        version_id: None,
                        checksum: None,
                        kms_key_id: None,
                    },
                    tmp.join(r),
                )),
            }
        }
        self.s3.download_many(&items).map_err(error)?;
        for ((o, path), e) in items.iter().zip(m.entries.iter().filter_map(|e| match e {
            TreeEntry::File(_, d, _) => Some(d),
            _ => None,
        })) {
            let got = digest_file(path).map_err(|e| Error::io("hash", path, e))?;
            if &got != e {
                return Err(Error::failed(format!(
                    "{}: the blob's content does not match its digest (got {got}); the shared store's copy is damaged",
                    o.uri
                )));
            }
        }
        Ok(())
    }

    /// The shared cache's entry for `key`, when there is one whose
    /// artifacts are all in the shared store.
    pub fn cache_get(&self, key: &str) -> Result<Option<SharedEntry>> {
        let Some(bytes) = self.s3.get_bytes(&self.entry(key)).map_err(error)? else {
            return Ok(None);
        };
        let Ok(e) = serde_json::from_slice::<SharedEntry>(&bytes) else {
            return Ok(None);
        };
        if e.entry.key != key {
            return Ok(None);
        }
        Ok(Some(e))
    }

    /// Adds a step result to the shared cache (its artifacts must have been
    /// pushed). The first result for a key stays.
    pub fn cache_put(&self, entry: &CacheEntry) -> Result<()> {
        let shared = SharedEntry {
            entry: entry.clone(),
            host: host_name(),
        };
        self.s3
            .put_bytes(
                &self.entry(&entry.key),
                serde_json::to_vec(&shared).expect("json"),
                &PutOptions {
                    if_none_match: true,
                    ..PutOptions::default()
                },
            )
            .map_err(error)?;
        Ok(())
    }
}

fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it or truncates.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// What a step sees of an S3 channel in Pipe mode: its objects, streamed in key order.
#[derive(Debug)]
pub struct S3Stream {
    s3: S3,
    objects: Vec<(String, ObjectInfo)>,
}

impl S3Stream {
    pub fn new(uri: &str) -> Result<Arc<S3Stream>> {
        let s3 = client()?;
        let objects = input_objects(&s3, uri)?;
        Ok(Arc::new(S3Stream { s3, objects }))
    }
}

impl crate::exec::contract::StreamSource for S3Stream {
    fn parts(&self) -> Vec<String> {
        self.objects
            .iter()
            .map(|(_, o)| o.uri.to_string())
            .collect()
    }

    /// Streams the object with a few ranges read ahead (memory bounded),
    /// each asking for the ETag it was listed with.
    fn write_part(&self, i: usize, w: &mut dyn std::io::Write) -> std::io::Result<u64> {
        let (_, o) = &self.objects[i];
        self.s3.stream(o, w).map_err(|e| match e.kind {
            ErrorKind::Local => std::io::Error::new(std::io::ErrorKind::BrokenPipe, e.to_string()),
            _ => std::io::Error::other(e.to_string()),
        })
    }
}

/// Input identities of a pipeline's `s3://` inputs, by URI (for the schedule's `only_if_inputs_changed`).
pub fn identities(
    db: &RunsDb,
    ws: &Workspace,
    uris: &[String],
) -> Result<BTreeMap<String, String>> {
    uris.iter()
        .map(|u| Ok((u.clone(), input_identity(db, ws, u)?)))
        .collect()
}

/// Copies a local file or directory to S3: a file to `dest` (or to
/// `dest/NAME` when `dest` ends with `/`), a directory's files to
/// `dest/RELATIVE_PATH`. Returns the number of files sent.
pub fn upload_tree(src: &Path, dest: &str) -> Result<usize> {
    let d = parse(dest)?;
    let meta = fs::metadata(src)
        .map_err(|e| Error::invalid(Diagnostic::new(format!("{}: {e}", src.display()))))?;
    let mut items = Vec::new();
    if meta.is_file() {
        let to = if d.is_prefix() {
            d.join(&src.file_name().unwrap_or_default().to_string_lossy())
        } else {
            d
        };
        items.push((src.to_path_buf(), to));
    } else {
        let prefix = d.as_prefix();
        for rel in files_under(src)? {
            items.push((src.join(&rel), prefix.join(&rel)));
        }
    }
    let s3 = client()?;
    s3.upload_many(&items, &PutOptions::default())
        .map_err(error)?;
    Ok(items.len())
}

/// The files under `dir` (following symbolic links, as `tree_entries`
/// does), as relative paths with `/` between names, in path order. Unlike
/// `tree_entries` it reads no file: uploading them is the only pass.
fn files_under(dir: &Path) -> Result<Vec<String>> {
    fn walk(dir: &Path, rel: &str, depth: usize, out: &mut Vec<String>) -> Result<()> {
        if depth > 128 {
            return Err(Error::invalid(Diagnostic::new(format!(
                "{}: directories nested more than 128 deep (a symbolic link loop?)",
                dir.display()
            ))));
        }
        let mut entries: Vec<_> = fs::read_dir(dir)
            .and_then(|d| d.collect::<std::io::Result<Vec<_>>>())
            .map_err(|e| Error::io("read", dir, e))?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                return Err(Error::invalid(Diagnostic::new(format!(
                    "{}: the name is not UTF-8, so it cannot be an S3 key",
                    path.display()
                ))));
            };
            let relp = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let meta = fs::metadata(&path).map_err(|e| Error::io("read", &path, e))?;
            if meta.is_dir() {
                walk(&path, &relp, depth + 1, out)?;
            } else if meta.is_file() {
                out.push(relp);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, "", 0, &mut out)?;
    Ok(out)
}

/// Copies one object, or every object under a prefix (keeping the keys'
/// relative paths), into the local directory `dest`. Returns the number of files.
pub fn download_tree(src: &str, dest: &Path) -> Result<usize> {
    let s3 = client()?;
    let objects = input_objects(&s3, src)?;
    // A prefix's keys were checked by `input_objects`; one object's name is
    // the last segment of its key, which must be a name too.
    if let Some((rel, o)) = objects
        .iter()
        .find(|(rel, _)| matches!(rel.as_str(), "" | "." | ".."))
    {
        return Err(Error::invalid(Diagnostic::new(format!(
            "{}: `{rel}` cannot be made a local file name",
            o.uri
        ))));
    }
    let items: Vec<(ObjectInfo, PathBuf)> = objects
        .into_iter()
        .map(|(rel, o)| (o, dest.join(rel)))
        .collect();
    s3.download_many(&items).map_err(error)?;
    Ok(items.len())
}

/// The entries of `subdirs` of `dir` (those that exist), each under its
/// own name: the tree [`Shared::put_dirs`] stores.
pub fn dir_entries(dir: &Path, subdirs: &[&str]) -> Result<Vec<TreeEntry>> {
    let mut entries = Vec::new();
    for sub in subdirs {
        let p = dir.join(sub);
        if !p.is_dir() {
            continue;
        }
        entries.push(TreeEntry::Dir(sub.to_string()));
        for e in tree_entries(&p).map_err(|e| Error::io("read", &p, e))? {
            entries.push(match e {
                TreeEntry::Dir(r) => TreeEntry::Dir(format!("{sub}/{r}")),
                TreeEntry::File(r, d, n) => TreeEntry::File(format!("{sub}/{r}"), d, n),
            });
        }
    }
    Ok(entries)
}
