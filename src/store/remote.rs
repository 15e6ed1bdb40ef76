//! Where data lives beyond this machine: `s3://` inputs, and the shared
//! artifact store and step cache (`--store s3://BUCKET/PREFIX`).
//!
//! The one seam the rest of the engine sees: [`is_remote`] and
//! [`check_uri`] for the front end, [`configure`] for the command line, and
//! [`shared`] for the store. The S3 work itself is in `s3.rs`, built with the
//! `aws` feature; without it, every `s3://` path is refused as invalid input.

use std::sync::{Arc, OnceLock};

use crate::error::{Error, Result};
use crate::spec::source::Diagnostic;
use crate::store::Workspace;

#[cfg(feature = "aws")]
pub use super::s3::Shared;

/// Whether a path names remote data.
pub fn is_remote(path: &str) -> bool {
    path.starts_with("s3://")
}

/// Checks an `s3://` URI's syntax (no request is made).
pub fn check_uri(uri: &str) -> std::result::Result<(), String> {
    #[cfg(feature = "aws")]
    {
        pipeline_aws::s3::S3Uri::parse(uri).map(|_| ())
    }
    #[cfg(not(feature = "aws"))]
    {
        let _ = uri;
        Err(NO_S3.to_string())
    }
}

#[cfg(not(feature = "aws"))]
const NO_S3: &str =
    "this build of pipeline has no S3 support (it was built without the `aws` feature)";

/// Where the store and cache are shared, and how objects are written there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreSettings {
    /// `s3://BUCKET/PREFIX`; `None`: the workspace's local store only.
    pub url: Option<String>,
    /// SSE-KMS key for everything written to S3.
    pub kms_key_id: Option<String>,
    /// Where the setting came from, for messages.
    pub origin: String,
}

static SETTINGS: OnceLock<StoreSettings> = OnceLock::new();

/// The workspace's config file: `store:` and `kms_key_id:` lines.
pub fn config_path(ws: &Workspace) -> std::path::PathBuf {
    ws.root.join("config.yaml")
}

/// Settles this process's store: `--store`, else `PIPELINE_STORE`, else the
/// workspace's `config.yaml`; checks the URI (exit 2 when it is not usable).
pub fn configure(ws: &Workspace, flag: Option<&str>) -> Result<()> {
    let mut s = read_config(ws)?;
    if let Ok(k) = std::env::var("PIPELINE_STORE_KMS_KEY_ID")
        && !k.is_empty()
    {
        s.kms_key_id = Some(k);
    }
    if let Some(f) = flag.filter(|f| !f.is_empty()) {
        s.url = Some(f.to_string());
        s.origin = "--store".into();
    } else if let Ok(e) = std::env::var("PIPELINE_STORE")
        && !e.is_empty()
    {
        s.url = Some(e);
        s.origin = "PIPELINE_STORE".into();
    }
    if let Some(url) = &s.url {
        let url = url.trim_end_matches('/').to_string();
        if !is_remote(&url) {
            return Err(Error::invalid(
                Diagnostic::new(format!("the store `{url}` (from {}) is not an `s3://` URI", s.origin))
                    .help("give `s3://BUCKET/PREFIX`; the local store in `.pipeline/store` is used when no store is given"),
            ));
        }
        check_uri(&url).map_err(|why| {
            Error::invalid(
                Diagnostic::new(format!(
                    "the store `{url}` (from {}) is not usable: {why}",
                    s.origin
                ))
                .help("give `s3://BUCKET/PREFIX`"),
            )
        })?;
        s.url = Some(url);
    }
    let _ = SETTINGS.set(s);
    Ok(())
}

/// This process's store settings (none configured: local only).
pub fn settings() -> StoreSettings {
    SETTINGS.get().cloned().unwrap_or_default()
}

fn read_config(ws: &Workspace) -> Result<StoreSettings> {
    let path = config_path(ws);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(StoreSettings::default()),
        Err(e) => return Err(Error::io("read", &path, e)),
    };
    let mut s = StoreSettings {
        origin: path.display().to_string(),
        ..StoreSettings::default()
    };
    for (i, line) in text.lines().enumerate() {
        let l = line.split('#').next().unwrap_or("").trim();
        if l.is_empty() {
            continue;
        }
        let bad = |what: String| {
            Error::invalid(
                Diagnostic::new(format!("{}:{}:1: {what}", path.display(), i + 1))
                    .help("the workspace config holds `store: s3://BUCKET/PREFIX` and `kms_key_id: KEY`, one a line"),
            )
        };
        let Some((k, v)) = l.split_once(':') else {
            return Err(bad(format!("`{l}` is not `key: value`")));
        };
        let v = v.trim().trim_matches('"').trim_matches('\'').to_string();
        match k.trim() {
            "store" => s.url = Some(v),
            "kms_key_id" => s.kms_key_id = Some(v),
            other => return Err(bad(format!("unknown setting `{other}`"))),
        }
    }
    Ok(s)
}

/// The shared store of this process, when one is configured.
#[cfg(feature = "aws")]
pub fn shared() -> Result<Option<Arc<Shared>>> {
    static SHARED: OnceLock<std::result::Result<Option<Arc<Shared>>, String>> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            let s = settings();
            match &s.url {
                None => Ok(None),
                Some(url) => Shared::open(url, &s)
                    .map(|x| Some(Arc::new(x)))
                    .map_err(|e| e.to_string()),
            }
        })
        .clone()
        .map_err(Error::failed)
}

/// No shared store without S3 support.
#[cfg(not(feature = "aws"))]
pub fn shared() -> Result<Option<Arc<Shared>>> {
    match settings().url {
        None => Ok(None),
        Some(_) => Err(Error::failed(NO_S3)),
    }
}

/// Stands for the shared store in a build without S3; never made.
#[cfg(not(feature = "aws"))]
#[derive(Debug)]
pub enum Shared {}

#[cfg(not(feature = "aws"))]
impl Shared {
    pub fn url(&self) -> &str {
        match *self {}
    }
    pub fn has(&self, _digest: &str) -> Result<bool> {
        match *self {}
    }
    pub fn push(&self, _digest: &str, _dir: &std::path::Path) -> Result<()> {
        match *self {}
    }
    pub fn fetch(&self, _digest: &str, _store: &super::Store) -> Result<std::path::PathBuf> {
        match *self {}
    }
    pub fn cache_get(&self, _key: &str) -> Result<Option<SharedEntry>> {
        match *self {}
    }
    pub fn cache_put(&self, _entry: &crate::runs::CacheEntry) -> Result<()> {
        match *self {}
    }
}

/// A cache entry in the shared cache, with who made it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SharedEntry {
    pub entry: crate::runs::CacheEntry,
    /// The host name of the machine whose run made it.
    pub host: String,
}

/// The identity of an `s3://` input for cache keys (see `s3.rs`).
pub fn input_identity(db: &crate::runs::RunsDb, ws: &Workspace, uri: &str) -> Result<String> {
    #[cfg(feature = "aws")]
    {
        super::s3::input_identity(db, ws, uri)
    }
    #[cfg(not(feature = "aws"))]
    {
        let _ = (db, ws, uri);
        Err(Error::failed(NO_S3))
    }
}

/// An `s3://` input on this machine: the local path a step reads (see `s3.rs`).
pub fn stage_input(ws: &Workspace, uri: &str) -> Result<std::path::PathBuf> {
    #[cfg(feature = "aws")]
    {
        super::s3::stage_input(ws, uri)
    }
    #[cfg(not(feature = "aws"))]
    {
        let _ = (ws, uri);
        Err(Error::failed(NO_S3))
    }
}

/// Where a cached result was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// This workspace's cache.
    Local,
    /// The shared cache, from a run on `host`.
    Shared { host: String, url: String },
}

impl Origin {
    /// How `plan` says where the result came from.
    pub fn describe(&self, run_id: &str) -> String {
        match self {
            Origin::Local => format!("unchanged since run {run_id}"),
            Origin::Shared { host, url } => {
                format!("in the shared cache {url}, from run {run_id} on {host}")
            }
        }
    }
}

/// The cached result for `key`: this workspace's, else the shared cache's
/// (`shared_ok`: steps whose effect is local, such as registering a model,
/// take only their own workspace's). Either way only when every output is
/// still stored.
pub fn cached(
    db: &crate::runs::RunsDb,
    store: &super::Store,
    key: &str,
    shared_ok: bool,
) -> Result<Option<(crate::runs::CacheEntry, Origin)>> {
    if let Some(e) = db.cache_get(key)? {
        let mut all = true;
        for o in e.outputs.values() {
            all &= store.contains(&o.digest)?;
        }
        if all {
            return Ok(Some((e, Origin::Local)));
        }
    }
    if !shared_ok {
        return Ok(None);
    }
    let Some(shared) = shared()? else {
        return Ok(None);
    };
    let Some(se) = shared.cache_get(key)? else {
        return Ok(None);
    };
    for o in se.entry.outputs.values() {
        if !shared.has(&o.digest)? {
            return Ok(None);
        }
    }
    Ok(Some((
        se.entry,
        Origin::Shared {
            host: se.host,
            url: shared.url().to_string(),
        },
    )))
}

/// Copies a local file or directory to an `s3://` URI (see `s3.rs`); the number of files.
pub fn upload_tree(src: &std::path::Path, dest: &str) -> Result<usize> {
    #[cfg(feature = "aws")]
    {
        super::s3::upload_tree(src, dest)
    }
    #[cfg(not(feature = "aws"))]
    {
        let _ = (src, dest);
        Err(Error::invalid(Diagnostic::new(NO_S3)))
    }
}

/// Copies an object or a prefix's objects into a local directory (see `s3.rs`); the number of files.
pub fn download_tree(src: &str, dest: &std::path::Path) -> Result<usize> {
    #[cfg(feature = "aws")]
    {
        super::s3::download_tree(src, dest)
    }
    #[cfg(not(feature = "aws"))]
    {
        let _ = (src, dest);
        Err(Error::invalid(Diagnostic::new(NO_S3)))
    }
}

/// An `s3://` input streamed from S3 (a pipe-mode channel), never staged on disk.
pub fn stream_input(uri: &str) -> Result<Arc<dyn crate::exec::contract::StreamSource>> {
    #[cfg(feature = "aws")]
    {
        Ok(super::s3::S3Stream::new(uri)?)
    }
    #[cfg(not(feature = "aws"))]
    {
        let _ = uri;
        Err(Error::failed(NO_S3))
    }
}
