//! A blocking S3 client for the engine: objects by URI, parallel multipart
//! uploads and ranged downloads, conditional writes, and errors that name
//! the `s3://` URI and say what to do.
//!
//! Every method blocks the calling thread until done and may be called from
//! any thread, a thread that drives another tokio runtime included: the
//! client runs its requests on a runtime of its own and waits on a channel,
//! never with `block_on`.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, ChecksumType, CompletedMultipartUpload, CompletedPart,
    ServerSideEncryption,
};
use aws_smithy_types::error::display::DisplayErrorContext;
use tokio::sync::Semaphore;

use crate::config::{self, Rt, short, timeouts};

/// `s3://bucket/key`: an object, or with an empty key or one ending in `/` a prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct S3Uri {
    pub bucket: String,
    pub key: String,
}

impl S3Uri {
    /// Parses `s3://bucket[/key]`, checking the bucket name as S3 does.
    pub fn parse(s: &str) -> Result<S3Uri, String> {
        let rest = s
            .strip_prefix("s3://")
            .ok_or_else(|| format!("`{s}` is not an S3 URI (they start with `s3://`)"))?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("`{s}` names no bucket (write `s3://BUCKET/KEY`)"));
        }
        let ok_chars = bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        let ends_ok =
            |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !(3..=63).contains(&bucket.len())
            || !ok_chars
            || !ends_ok(bucket.bytes().next())
            || !ends_ok(bucket.bytes().last())
            || bucket.contains("..")
        {
            return Err(format!(
                "`{bucket}` in `{s}` is not a valid bucket name (3 to 63 characters: lower-case letters, digits, `-` and `.`, starting and ending with a letter or digit)"
            ));
        }
        if key.contains("//") {
            return Err(format!("`{s}` has an empty path segment (`//`) in its key"));
        }
        Ok(S3Uri {
            bucket: bucket.to_string(),
            key: key.to_string(),
        })
    }

    /// Whether this names a prefix (a "directory") rather than one object.
    pub fn is_prefix(&self) -> bool {
        self.key.is_empty() || self.key.ends_with('/')
    }

    /// The URI of `rel` below this one (a `/` is put between them when needed).
    pub fn join(&self, rel: &str) -> S3Uri {
        let key = if self.key.is_empty() || self.key.ends_with('/') {
            format!("{}{rel}", self.key)
        } else {
            format!("{}/{rel}", self.key)
        };
        S3Uri {
            bucket: self.bucket.clone(),
            key,
        }
    }

    /// This URI as a prefix (ending in `/`, unless it is the whole bucket).
    pub fn as_prefix(&self) -> S3Uri {
        if self.is_prefix() {
            self.clone()
        } else {
            S3Uri {
                bucket: self.bucket.clone(),
                key: format!("{}/", self.key),
            }
        }
    }
}

impl fmt::Display for S3Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// A full-object checksum S3 holds for an object, base64 as S3 gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checksum {
    Sha256(String),
    Crc64Nvme(String),
}

/// What S3 says of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub uri: S3Uri,
    pub size: u64,
    /// Quotes included, as S3 sends it.
    pub etag: Option<String>,
    /// RFC 3339.
    pub last_modified: Option<String>,
    pub version_id: Option<String>,
    /// Only from `head` (listings carry no checksum values), and only a
    /// checksum of the whole object (not one of a multipart upload's parts).
    pub checksum: Option<Checksum>,
    /// The KMS key the object is encrypted with (SSE-KMS); only from `head`.
    pub kms_key_id: Option<String>,
}

/// How a write is made.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    /// Write only if no object has the key (`If-None-Match: *`).
    pub if_none_match: bool,
    /// A SHA-256 of the whole body (which S3 checks and keeps as the
    /// object's full-object checksum) instead of the CRC64NVME every write
    /// carries; for one-request writes only (a multipart upload keeps its
    /// CRC64NVME, S3 having no full-object SHA-256 of those).
    pub sha256: bool,
}

/// What a conditional write found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Written,
    /// `if_none_match` and an object already had the key.
    AlreadyThere,
}

/// How the client is set up; everything else comes from the standard AWS
/// chain (environment, profiles, SSO, instance roles).
#[derive(Clone)]
pub struct ClientOptions {
    pub region: Option<String>,
    /// An S3-compatible endpoint; else `AWS_ENDPOINT_URL_S3` or
    /// `AWS_ENDPOINT_URL`. With a custom endpoint, path-style addressing is used.
    pub endpoint_url: Option<String>,
    /// Server-side encryption with this KMS key for everything written.
    pub kms_key_id: Option<String>,
    /// An access key and secret key to use instead of the standard chain
    /// (`Debug` shows the access key only).
    pub static_credentials: Option<(String, String)>,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// The part size of multipart uploads and ranged downloads; objects up to
    /// this size are moved in one request.
    pub part_size: u64,
    /// How long one attempt of a request may wait for S3's answer (uploads
    /// get more, by their size), and how long a transfer may make no progress
    /// at all, before the attempt is given up and retried.
    pub request_timeout: Duration,
}

impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientOptions")
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field("kms_key_id", &self.kms_key_id)
            .field(
                "static_credentials",
                &self.static_credentials.as_ref().map(|(k, _)| (k, "…")),
            )
            .field("concurrency", &self.concurrency)
            .field("part_size", &self.part_size)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            region: None,
            endpoint_url: None,
            kms_key_id: None,
            static_credentials: None,
            concurrency: 16,
            part_size: 8 << 20,
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// What kind of failure, for what to tell the user and whether it is theirs to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NoSuchBucket,
    AccessDenied,
    NotFound,
    /// No credentials, or expired, invalid or refused ones.
    Credentials,
    /// Could not reach S3, or the connection broke (after retries).
    Network,
    /// The data did not match its checksum (after retries).
    Checksum,
    /// The object changed while it was being read.
    Changed,
    /// A local file could not be read or written.
    Local,
    Other,
}

/// An S3 failure: which URI, what happened, what to do. Never holds credentials.
#[derive(Debug, Clone)]
pub struct S3Error {
    pub kind: ErrorKind,
    pub uri: String,
    pub detail: String,
}

impl S3Error {
    fn new(kind: ErrorKind, uri: impl fmt::Display, detail: impl Into<String>) -> Self {
        S3Error {
            kind,
            uri: uri.to_string(),
            detail: detail.into(),
        }
    }

    /// Whether the user's configuration or data is at fault (not the network or S3).
    pub fn is_user_error(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::NoSuchBucket
                | ErrorKind::AccessDenied
                | ErrorKind::NotFound
                | ErrorKind::Credentials
        )
    }

    /// What to do about it.
    pub fn hint(&self) -> &'static str {
        match self.kind {
            ErrorKind::NoSuchBucket => {
                "check the bucket's name, and the region (AWS_REGION) and endpoint (AWS_ENDPOINT_URL) it is looked for in"
            }
            ErrorKind::AccessDenied => {
                "the credentials in use may not do this: check the IAM policy for this bucket and key (and the KMS key, with SSE-KMS)"
            }
            ErrorKind::NotFound => "check the key; `aws s3 ls` lists what is there",
            ErrorKind::Credentials => {
                "set credentials the standard way (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, `aws sso login`, or an instance role); expired ones must be renewed"
            }
            ErrorKind::Network => {
                "S3 could not be reached or the connection broke, after retries: check the network and the endpoint, then run again (`pipeline resume` keeps what finished)"
            }
            ErrorKind::Checksum => {
                "the data arrived different from its checksum, after retries: something between here and S3 changes data; run again, and check proxies"
            }
            ErrorKind::Changed => {
                "the object was replaced while it was read: run again once it is no longer being written"
            }
            ErrorKind::Local => "check the local path and the free disk space",
            ErrorKind::Other => "see the detail above",
        }
    }
}

impl fmt::Display for S3Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ErrorKind::NoSuchBucket => "the bucket does not exist",
            ErrorKind::AccessDenied => "access denied",
            ErrorKind::NotFound => "no such key",
            ErrorKind::Credentials => "the AWS credentials are missing or not valid",
            ErrorKind::Network => "network error",
            ErrorKind::Checksum => "checksum mismatch",
            ErrorKind::Changed => "the object changed while it was read",
            ErrorKind::Local => "local file error",
            ErrorKind::Other => "S3 error",
        };
        write!(f, "{}: {what}", self.uri)?;
        if !self.detail.is_empty() {
            write!(f, " ({})", self.detail)?;
        }
        write!(f, "; {}", self.hint())
    }
}

impl std::error::Error for S3Error {}

/// Classifies an SDK error about `uri`.
fn classify<E>(uri: &dyn fmt::Display, err: SdkError<E, HttpResponse>) -> S3Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = match &err {
        SdkError::ServiceError(s) => Some(status_of(s.raw())),
        SdkError::ResponseError(r) => Some(status_of(r.raw())),
        _ => None,
    };
    let code = err.code().map(str::to_string);
    let message = err.message().map(str::to_string);
    let chain = DisplayErrorContext(&err).to_string();
    let detail = match (&code, &message) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.clone(),
        _ => short(&chain),
    };
    let kind = match (code.as_deref(), status) {
        (Some("NoSuchBucket"), _) => ErrorKind::NoSuchBucket,
        (Some("NoSuchKey" | "NotFound"), _) => ErrorKind::NotFound,
        (
            Some(
                "ExpiredToken"
                | "InvalidAccessKeyId"
                | "SignatureDoesNotMatch"
                | "InvalidToken"
                | "TokenRefreshRequired"
                | "AuthorizationHeaderMalformed"
                | "NotSignedUp",
            ),
            _,
        ) => ErrorKind::Credentials,
        (Some("AccessDenied" | "AllAccessDisabled" | "KMS.AccessDeniedException"), _) => {
            ErrorKind::AccessDenied
        }
        (
            Some("BadDigest" | "InvalidDigest" | "XAmzContentSHA256Mismatch" | "InvalidChecksum"),
            _,
        ) => ErrorKind::Checksum,
        (Some("PreconditionFailed"), _) | (_, Some(412)) => ErrorKind::Changed,
        (_, Some(404)) => ErrorKind::NotFound,
        (_, Some(403)) => ErrorKind::AccessDenied,
        _ => match &err {
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
                if chain.contains("credential") {
                    ErrorKind::Credentials
                } else {
                    ErrorKind::Network
                }
            }
            SdkError::ConstructionFailure(_) if chain.contains("credential") => {
                ErrorKind::Credentials
            }
            SdkError::ResponseError(_) => ErrorKind::Network,
            _ if chain.contains("checksum") => ErrorKind::Checksum,
            _ => ErrorKind::Other,
        },
    };
    S3Error::new(kind, uri, detail)
}

fn status_of(r: &HttpResponse) -> u16 {
    r.status().as_u16()
}

struct Inner {
    rt: Rt,
    client: Client,
    opts: ClientOptions,
    limit: Arc<Semaphore>,
    /// Buckets known to exist.
    buckets: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// An S3 client. Cheap to clone.
#[derive(Clone)]
pub struct S3 {
    inner: Arc<Inner>,
}

impl fmt::Debug for S3 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3").finish_non_exhaustive()
    }
}

/// Attempts of a ranged read whose body broke off (the SDK retries requests,
/// not bodies), and of a write S3 refused for a checksum mismatch (which the
/// SDK does not retry).
const BODY_ATTEMPTS: u32 = 4;

/// The slowest an upload may go before its attempt is given up (on top of
/// the request timeout): 32 KiB/s, so that a slow link is not mistaken for
/// a dead one, while a server that takes the body and never answers is.
const SLOWEST_UPLOAD: f64 = 32.0 * 1024.0;

impl S3 {
    /// Sets up a client from the standard AWS chain. Makes no request.
    pub fn connect(opts: ClientOptions) -> Result<S3, S3Error> {
        let rt = Rt::start("s3").map_err(|e| S3Error::new(ErrorKind::Local, "s3://", e))?;
        let o = opts.clone();
        // On the client's runtime, and waited for on a channel: the caller's
        // thread may be driving a runtime of its own.
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        rt.handle().spawn(async move {
            let shared = config::load(
                o.region.as_deref(),
                o.endpoint_url.as_deref(),
                o.static_credentials
                    .as_ref()
                    .map(|(k, s)| (k.as_str(), s.as_str())),
                o.request_timeout,
            )
            .await;
            let custom_endpoint = o.endpoint_url.is_some()
                || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some()
                || std::env::var_os("AWS_ENDPOINT_URL").is_some();
            let mut b = aws_sdk_s3::config::Builder::from(&shared);
            if custom_endpoint {
                b = b.force_path_style(true);
            }
            let _ = tx.send(Client::from_conf(b.build()));
        });
        let client = rx.recv().map_err(|_| {
            S3Error::new(ErrorKind::Other, "s3://", "the S3 client's set-up failed")
        })?;
        let concurrency = opts.concurrency.max(1);
        Ok(S3 {
            inner: Arc::new(Inner {
                rt,
                client,
                limit: Arc::new(Semaphore::new(concurrency)),
                buckets: Default::default(),
                opts,
            }),
        })
    }

    /// Runs `fut` on the client's runtime and waits for it on this thread.
    fn wait<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = T> + Send + 'static,
    ) -> T {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.inner.rt.handle().spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().expect("the client's runtime ran the request")
    }

    /// What S3 holds under `uri`, or `None` when there is no such key.
    pub fn head(&self, uri: &S3Uri) -> Result<Option<ObjectInfo>, S3Error> {
        let inner = self.inner.clone();
        let u = uri.clone();
        self.wait(async move { head(&inner, &u).await })
    }

    /// Whether each of `uris` names an object, asked in parallel.
    pub fn exists_many(&self, uris: &[S3Uri]) -> Result<Vec<bool>, S3Error> {
        let inner = self.inner.clone();
        let uris = uris.to_vec();
        self.wait(async move {
            let mut tasks = tokio::task::JoinSet::new();
            for (i, u) in uris.into_iter().enumerate() {
                let inner = inner.clone();
                tasks.spawn(async move {
                    let _permit = inner.limit.clone().acquire_owned().await;
                    let r = inner
                        .client
                        .head_object()
                        .bucket(&u.bucket)
                        .key(&u.key)
                        .send()
                        .await;
                    match r {
                        Ok(_) => Ok((i, true)),
                        Err(e) => {
                            let e = classify(&u, e);
                            match e.kind {
                                ErrorKind::NotFound => Ok((i, false)),
                                ErrorKind::AccessDenied => {
                                    Err(explain_403(&inner.client, &u, e).await)
                                }
                                _ => Err(e),
                            }
                        }
                    }
                });
            }
            let mut out = Vec::new();
            while let Some(r) = tasks.join_next().await {
                match r {
                    Ok(Ok(v)) => out.push(v),
                    Ok(Err(e)) => return Err(e),
                    Err(e) => return Err(S3Error::new(ErrorKind::Other, "s3://", e.to_string())),
                }
            }
            out.sort_by_key(|(i, _)| *i);
            Ok(out.into_iter().map(|(_, b)| b).collect())
        })
    }

    /// Every object under the prefix `uri`, in key order.
    pub fn list(&self, uri: &S3Uri) -> Result<Vec<ObjectInfo>, S3Error> {
        let c = self.inner.client.clone();
        let u = uri.clone();
        self.wait(async move {
            let mut out = Vec::new();
            let mut pages = c
                .list_objects_v2()
                .bucket(&u.bucket)
                .prefix(&u.key)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| classify(&u, e))?;
                for o in page.contents() {
                    let Some(key) = o.key() else { continue };
                    out.push(ObjectInfo {
                        uri: S3Uri {
                            bucket: u.bucket.clone(),
                            key: key.to_string(),
                        },
                        size: o.size().unwrap_or(0).max(0) as u64,
                        etag: o.e_tag().map(str::to_string),
                        last_modified: o.last_modified().map(|t| t.to_string()),
                        version_id: None,
                        checksum: None,
                        kms_key_id: None,
                    });
                }
            }
            out.sort_by(|a, b| a.uri.key.cmp(&b.uri.key));
            Ok(out)
        })
    }

    /// The whole object, or `None` when there is no such key.
    pub fn get_bytes(&self, uri: &S3Uri) -> Result<Option<Vec<u8>>, S3Error> {
        let inner = self.inner.clone();
        let u = uri.clone();
        self.wait(async move {
            let c = &inner.client;
            for attempt in 1..=BODY_ATTEMPTS {
                let r = match c.get_object().bucket(&u.bucket).key(&u.key).send().await {
                    Ok(r) => r,
                    Err(e) => {
                        let e = classify(&u, e);
                        return if e.kind == ErrorKind::NotFound {
                            check_bucket(&inner, &u).await.map(|()| None)
                        } else {
                            Err(e)
                        };
                    }
                };
                match r.body.collect().await {
                    Ok(b) => return Ok(Some(b.into_bytes().to_vec())),
                    Err(e) if attempt < BODY_ATTEMPTS => {
                        let _ = e;
                        backoff(attempt).await;
                    }
                    Err(e) => {
                        return Err(S3Error::new(
                            ErrorKind::Network,
                            &u,
                            short(&DisplayErrorContext(&e).to_string()),
                        ));
                    }
                }
            }
            unreachable!("the loop returns")
        })
    }

    /// Downloads one object into `dest` (written beside it, then renamed), in
    /// parallel ranges when it is large. Every range asks for the ETag `obj`
    /// has, so an object replaced meanwhile is an error, not a mixture.
    pub fn download(&self, obj: &ObjectInfo, dest: &Path) -> Result<(), S3Error> {
        self.download_many(&[(obj.clone(), dest.to_path_buf())])
    }

    /// Downloads many objects, as many requests at once as the client allows.
    pub fn download_many(&self, items: &[(ObjectInfo, PathBuf)]) -> Result<(), S3Error> {
        let inner = self.inner.clone();
        let items = items.to_vec();
        self.wait(async move {
            let mut tasks = tokio::task::JoinSet::new();
            for (obj, dest) in items {
                let inner = inner.clone();
                tasks.spawn(async move { download_one(&inner, obj, dest).await });
            }
            let mut first_err = None;
            while let Some(r) = tasks.join_next().await {
                match r {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        if first_err.is_none() {
                            first_err = Some(e);
                            tasks.abort_all();
                        }
                    }
                    Err(e) if e.is_cancelled() => {}
                    Err(e) => {
                        first_err.get_or_insert(S3Error::new(
                            ErrorKind::Other,
                            "s3://",
                            e.to_string(),
                        ));
                    }
                }
            }
            first_err.map_or(Ok(()), Err)
        })
    }

    /// Writes the object's bytes to `w` in order, with a few ranges read
    /// ahead in parallel and memory bounded; returns the number of bytes.
    pub fn stream(&self, obj: &ObjectInfo, w: &mut dyn Write) -> Result<u64, S3Error> {
        let part = self.inner.opts.part_size.max(1 << 20);
        let ahead = 4usize;
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<bytes::Bytes>, S3Error>>(ahead);
        let inner = self.inner.clone();
        let o = obj.clone();
        let rt = self.inner.rt.handle();
        rt.spawn(async move {
            let ranges = ranges(o.size, part);
            let mut pending = std::collections::VecDeque::new();
            let mut next = 0;
            loop {
                while pending.len() < ahead && next < ranges.len() {
                    let (start, end) = ranges[next];
                    let inner = inner.clone();
                    let o = o.clone();
                    pending.push_back(tokio::spawn(async move {
                        let _permit = inner.limit.clone().acquire_owned().await;
                        let mut chunks = Vec::new();
                        get_range(&inner.client, &o, start, end, &mut |_, c| {
                            chunks.push(c);
                            Ok(())
                        })
                        .await
                        .map(|()| chunks)
                    }));
                    next += 1;
                }
                let Some(h) = pending.pop_front() else { break };
                let r = match h.await {
                    Ok(r) => r,
                    Err(e) => Err(S3Error::new(ErrorKind::Other, &o.uri, e.to_string())),
                };
                let stop = r.is_err();
                // The reader went away: stop reading ahead.
                if tx.send(r).is_err() || stop {
                    for h in pending {
                        h.abort();
                    }
                    break;
                }
            }
        });
        let mut n = 0u64;
        for chunks in rx {
            for chunk in chunks? {
                w.write_all(&chunk).map_err(|e| {
                    S3Error::new(ErrorKind::Local, &obj.uri, format!("write the stream: {e}"))
                })?;
                n += chunk.len() as u64;
            }
        }
        if n != obj.size {
            return Err(S3Error::new(
                ErrorKind::Network,
                &obj.uri,
                format!("read {n} of {} bytes", obj.size),
            ));
        }
        Ok(n)
    }

    /// Uploads a file: in one request up to the part size, else as a
    /// multipart upload with its parts in parallel (aborted on failure, so
    /// nothing half-written is ever visible). The SDK computes and S3
    /// verifies a checksum of every request body.
    pub fn put_file(
        &self,
        uri: &S3Uri,
        src: &Path,
        opts: &PutOptions,
    ) -> Result<PutOutcome, S3Error> {
        let inner = self.inner.clone();
        let (u, p, o) = (uri.clone(), src.to_path_buf(), opts.clone());
        self.wait(async move { put_file(&inner, &u, &p, &o).await })
    }

    /// Uploads many files, as many requests at once as the client allows;
    /// the outcomes are in the order given.
    pub fn upload_many(
        &self,
        items: &[(PathBuf, S3Uri)],
        opts: &PutOptions,
    ) -> Result<Vec<PutOutcome>, S3Error> {
        let inner = self.inner.clone();
        let items = items.to_vec();
        let o = opts.clone();
        self.wait(async move {
            let mut tasks = tokio::task::JoinSet::new();
            for (i, (p, u)) in items.into_iter().enumerate() {
                let inner = inner.clone();
                let o = o.clone();
                tasks.spawn(async move { (i, put_file(&inner, &u, &p, &o).await) });
            }
            let mut out = Vec::new();
            let mut first_err = None;
            while let Some(r) = tasks.join_next().await {
                match r {
                    Ok((i, Ok(v))) => out.push((i, v)),
                    Ok((_, Err(e))) => {
                        if first_err.is_none() {
                            first_err = Some(e);
                            tasks.abort_all();
                        }
                    }
                    Err(e) if e.is_cancelled() => {}
                    Err(e) => {
                        first_err.get_or_insert(S3Error::new(
                            ErrorKind::Other,
                            "s3://",
                            e.to_string(),
                        ));
                    }
                }
            }
            if let Some(e) = first_err {
                return Err(e);
            }
            out.sort_by_key(|(i, _)| *i);
            Ok(out.into_iter().map(|(_, v)| v).collect())
        })
    }

    /// Writes `bytes` as one object (with its CRC64NVME, which S3 checks and keeps).
    pub fn put_bytes(
        &self,
        uri: &S3Uri,
        bytes: Vec<u8>,
        opts: &PutOptions,
    ) -> Result<PutOutcome, S3Error> {
        let inner = self.inner.clone();
        let (u, o) = (uri.clone(), opts.clone());
        self.wait(async move {
            let _permit = inner.limit.clone().acquire_owned().await;
            put_object(&inner, &u, bytes::Bytes::from(bytes), &o).await
        })
    }

    /// Creates a bucket (in the client's region); one this account has already is fine.
    pub fn create_bucket(&self, bucket: &str) -> Result<(), S3Error> {
        let inner = self.inner.clone();
        let u = S3Uri {
            bucket: bucket.to_string(),
            key: String::new(),
        };
        self.wait(async move {
            let mut req = inner.client.create_bucket().bucket(&u.bucket);
            let region = inner.client.config().region().map(|r| r.to_string());
            if let Some(r) = region.filter(|r| r != "us-east-1") {
                req = req.create_bucket_configuration(
                    aws_sdk_s3::types::CreateBucketConfiguration::builder()
                        .location_constraint(r.as_str().into())
                        .build(),
                );
            }
            match req.send().await {
                Ok(_) => Ok(()),
                Err(e) if e.code() == Some("BucketAlreadyOwnedByYou") => Ok(()),
                Err(e) => Err(classify(&u, e)),
            }
        })
    }

    /// Deletes one object (no error when it is not there).
    pub fn delete(&self, uri: &S3Uri) -> Result<(), S3Error> {
        let c = self.inner.client.clone();
        let u = uri.clone();
        self.wait(async move {
            c.delete_object()
                .bucket(&u.bucket)
                .key(&u.key)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify(&u, e))
        })
    }

    /// Multipart uploads begun under `prefix` and never completed or aborted
    /// (what a killed writer leaves; S3 shows none of them as objects).
    pub fn pending_uploads(&self, prefix: &S3Uri) -> Result<Vec<(String, String)>, S3Error> {
        let c = self.inner.client.clone();
        let u = prefix.clone();
        self.wait(async move {
            let r = c
                .list_multipart_uploads()
                .bucket(&u.bucket)
                .prefix(&u.key)
                .send()
                .await
                .map_err(|e| classify(&u, e))?;
            Ok(r.uploads()
                .iter()
                .filter_map(|m| Some((m.key()?.to_string(), m.upload_id()?.to_string())))
                .collect())
        })
    }

    /// Aborts a multipart upload.
    pub fn abort_upload(&self, uri: &S3Uri, upload_id: &str) -> Result<(), S3Error> {
        let c = self.inner.client.clone();
        let (u, id) = (uri.clone(), upload_id.to_string());
        self.wait(async move {
            c.abort_multipart_upload()
                .bucket(&u.bucket)
                .key(&u.key)
                .upload_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify(&u, e))
        })
    }
}

/// A failed write is "already there" when it was conditional and the condition failed.
fn conditional(o: &PutOptions, e: S3Error) -> Result<PutOutcome, S3Error> {
    if o.if_none_match && e.kind == ErrorKind::Changed {
        Ok(PutOutcome::AlreadyThere)
    } else {
        Err(e)
    }
}

async fn backoff(attempt: u32) {
    tokio::time::sleep(Duration::from_millis(100 << attempt.min(6))).await;
}

async fn head(inner: &Inner, u: &S3Uri) -> Result<Option<ObjectInfo>, S3Error> {
    let c = &inner.client;
    let r = c
        .head_object()
        .bucket(&u.bucket)
        .key(&u.key)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await;
    let r = match r {
        Ok(r) => r,
        Err(e) => {
            let e = classify(u, e);
            if e.kind == ErrorKind::AccessDenied {
                return Err(explain_403(c, u, e).await);
            }
            if e.kind != ErrorKind::NotFound {
                return Err(e);
            }
            // A HEAD's 404 has no body: tell a missing bucket from a missing key.
            return match check_bucket(inner, u).await {
                Ok(()) => Ok(None),
                Err(e) => Err(e),
            };
        }
    };
    let full = !matches!(
        r.checksum_type(),
        Some(aws_sdk_s3::types::ChecksumType::Composite)
    );
    let checksum = if !full {
        None
    } else if let Some(s) = r.checksum_sha256() {
        Some(Checksum::Sha256(s.to_string()))
    } else {
        r.checksum_crc64_nvme()
            .map(|s| Checksum::Crc64Nvme(s.to_string()))
    };
    Ok(Some(ObjectInfo {
        uri: u.clone(),
        size: r.content_length().unwrap_or(0).max(0) as u64,
        etag: r.e_tag().map(str::to_string),
        last_modified: r.last_modified().map(|t| t.to_string()),
        version_id: r.version_id().filter(|v| *v != "null").map(str::to_string),
        checksum,
        kms_key_id: r.ssekms_key_id().map(str::to_string),
    }))
}

/// Whether `u`'s bucket exists (asked once a bucket and client): a missing
/// key and a missing bucket are the same 404 to a HEAD, and some servers
/// answer a GET in a missing bucket with NoSuchKey.
async fn check_bucket(inner: &Inner, u: &S3Uri) -> Result<(), S3Error> {
    if inner
        .buckets
        .lock()
        .expect("bucket set")
        .contains(&u.bucket)
    {
        return Ok(());
    }
    match inner.client.head_bucket().bucket(&u.bucket).send().await {
        Ok(_) => {
            inner
                .buckets
                .lock()
                .expect("bucket set")
                .insert(u.bucket.clone());
            Ok(())
        }
        Err(b) => {
            let b = classify(u, b);
            Err(if b.kind == ErrorKind::NotFound {
                S3Error::new(
                    ErrorKind::NoSuchBucket,
                    u,
                    format!("no bucket `{}`", u.bucket),
                )
            } else {
                b
            })
        }
    }
}

/// A missing object's error, or the missing bucket's.
async fn not_found(inner: &Inner, u: &S3Uri, e: S3Error) -> S3Error {
    match check_bucket(inner, u).await {
        Ok(()) => e,
        Err(b) => b,
    }
}

/// A HEAD's 403 has no body, so no error code: wrong credentials look like
/// a denied request. A GET of the first byte says which it is.
async fn explain_403(c: &Client, u: &S3Uri, denied: S3Error) -> S3Error {
    match c
        .get_object()
        .bucket(&u.bucket)
        .key(&u.key)
        .range("bytes=0-0")
        .send()
        .await
    {
        Ok(_) => denied,
        Err(e) => {
            let e = classify(u, e);
            match e.kind {
                ErrorKind::Credentials | ErrorKind::AccessDenied => e,
                _ => denied,
            }
        }
    }
}

/// `[start, end)` byte ranges of at most `part` bytes covering `size`.
fn ranges(size: u64, part: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut s = 0;
    while s < size {
        let e = (s + part).min(size);
        out.push((s, e));
        s = e;
    }
    out
}

/// The CRC64NVME of `b`: the checksum S3 keeps of a whole object however it
/// was uploaded, cheap to compute (several GB/s) and to combine from parts.
fn crc64(b: &[u8]) -> u64 {
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Nvme, b)
}

/// The CRC64NVME of `a` followed by `len_b` bytes whose CRC64NVME is `b`.
fn crc64_combine(a: u64, b: u64, len_b: u64) -> u64 {
    crc_fast::checksum_combine(crc_fast::CrcAlgorithm::Crc64Nvme, a, b, len_b)
}

/// A checksum as S3 writes it: base64 of the big-endian bytes.
fn crc64_base64(crc: u64) -> String {
    aws_smithy_types::base64::encode(crc.to_be_bytes())
}

/// An ETag without its quotes (and weak marker), for comparing what two
/// responses said.
fn bare_etag(t: &str) -> &str {
    t.trim_start_matches("W/").trim_matches('"')
}

/// Timeouts for an upload of `bytes`: more time the bigger it is.
fn upload_override(inner: &Inner, bytes: u64) -> aws_sdk_s3::config::Builder {
    let t = inner.opts.request_timeout + Duration::from_secs_f64(bytes as f64 / SLOWEST_UPLOAD);
    aws_sdk_s3::config::Builder::default().timeout_config(timeouts(t))
}

/// Reads bytes `[start, start + len)` of `file` and their CRC64NVME, off the runtime's threads.
async fn read_part(
    u: &S3Uri,
    p: &Path,
    file: &Arc<fs::File>,
    start: u64,
    len: u64,
) -> Result<(bytes::Bytes, u64), S3Error> {
    let f = file.clone();
    let r = tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; len as usize];
        f.read_exact_at(&mut buf, start)?;
        let crc = crc64(&buf);
        Ok::<_, io::Error>((bytes::Bytes::from(buf), crc))
    })
    .await;
    match r {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(S3Error::new(
            ErrorKind::Local,
            u,
            format!("{}: {e}", p.display()),
        )),
        Err(e) => Err(S3Error::new(ErrorKind::Other, u, e.to_string())),
    }
}

/// An in-memory request body handed to the connection in slices, as a
/// stream: so that the SDK's stalled-stream protection sees the bytes go
/// out as the socket takes them (one big buffer would count as sent at
/// once, and a connection that stops moving would never be noticed), and so
/// that the SDK sends it aws-chunked with a CRC64NVME trailer (signed chunk
/// by chunk over plain HTTP), which every server checks.
struct Slices {
    data: bytes::Bytes,
    sent: Sent,
}

const SLICE: usize = 64 * 1024;

impl http_body::Body for Slices {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        if self.data.is_empty() {
            return std::task::Poll::Ready(None);
        }
        let n = self.data.len().min(SLICE);
        let chunk = self.data.split_to(n);
        if self.data.is_empty() {
            self.sent.mark();
        }
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.data.len() as u64)
    }
}

/// When the current attempt of a request handed the last of its body to the
/// connection. The SDK's stalled-stream protection watches a body only
/// while it is read: a body that fits in the socket buffers is all read at
/// once, and a server that then never answers would be waited for as long
/// as the attempt timeout, which must allow for slow links.
#[derive(Clone, Default)]
struct Sent(Arc<std::sync::Mutex<Option<std::time::Instant>>>);

impl Sent {
    fn mark(&self) {
        *self.0.lock().expect("sent") = Some(std::time::Instant::now());
    }

    fn reset(&self) {
        *self.0.lock().expect("sent") = None;
    }

    /// Returns once the body has been sent for longer than `limit` (with no
    /// answer, or the caller would have stopped waiting).
    async fn unanswered(&self, limit: Duration) {
        loop {
            tokio::time::sleep(Duration::from_millis(100).min(limit)).await;
            let at = *self.0.lock().expect("sent");
            if at.is_some_and(|t| t.elapsed() >= limit) {
                return;
            }
        }
    }
}

fn sliced(data: &bytes::Bytes, sent: &Sent) -> ByteStream {
    let (data, sent) = (data.clone(), sent.clone());
    ByteStream::new(aws_smithy_types::body::SdkBody::retryable(move || {
        // A new attempt: its body is not sent yet.
        sent.reset();
        aws_smithy_types::body::SdkBody::from_body_1_x(Slices {
            data: data.clone(),
            sent: sent.clone(),
        })
    }))
}

/// Sends an upload request, giving it up when no answer comes `limit` after
/// its body went out.
async fn send_upload<T, E>(
    u: &S3Uri,
    sent: &Sent,
    limit: Duration,
    fut: impl std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
) -> Result<T, S3Error>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    tokio::select! {
        r = fut => r.map_err(|e| classify(u, e)),
        () = sent.unanswered(limit) => Err(S3Error::new(
            ErrorKind::Network,
            u,
            format!("no answer {limit:?} after the upload was sent"),
        )),
    }
}

/// Whether a failed upload is sent again (the SDK retries what it can;
/// these it does not: a body refused for its checksum, and no answer).
fn again(e: &S3Error) -> bool {
    e.kind == ErrorKind::Checksum
        || (e.kind == ErrorKind::Network && e.detail.starts_with("no answer"))
}

/// One PUT of `body` (S3 refuses the body when it arrives different from
/// its checksum; that is retried a few times, as the SDK does not).
async fn put_object(
    inner: &Arc<Inner>,
    u: &S3Uri,
    body: bytes::Bytes,
    o: &PutOptions,
) -> Result<PutOutcome, S3Error> {
    let mut attempt = 1;
    let sent = Sent::default();
    loop {
        let mut req = inner
            .client
            .put_object()
            .bucket(&u.bucket)
            .key(&u.key)
            .checksum_algorithm(if o.sha256 {
                ChecksumAlgorithm::Sha256
            } else {
                ChecksumAlgorithm::Crc64Nvme
            })
            .content_length(body.len() as i64)
            .body(sliced(&body, &sent));
        if o.if_none_match {
            req = req.if_none_match("*");
        }
        if let Some(k) = &inner.opts.kms_key_id {
            req = req
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(k);
        }
        let r = send_upload(
            u,
            &sent,
            inner.opts.request_timeout,
            req.customize()
                .config_override(upload_override(inner, body.len() as u64))
                .send(),
        )
        .await;
        match r {
            Ok(_) => return Ok(PutOutcome::Written),
            Err(e) => {
                if again(&e) && attempt < BODY_ATTEMPTS {
                    backoff(attempt).await;
                    attempt += 1;
                    continue;
                }
                return conditional(o, e);
            }
        }
    }
}

/// Reads the object's bytes `[start, end)` as `o` describes it, handing each
/// chunk to `sink` with its offset as it arrives. Every request asks for the
/// ETag `o` has (If-Match) and checks the one it gets (for servers that
/// ignore If-Match); a body that breaks off is asked for again from where it
/// stopped.
async fn get_range(
    c: &Client,
    o: &ObjectInfo,
    start: u64,
    end: u64,
    sink: &mut (dyn FnMut(u64, bytes::Bytes) -> Result<(), S3Error> + Send),
) -> Result<(), S3Error> {
    let mut pos = start;
    let mut last = String::new();
    for attempt in 1..=BODY_ATTEMPTS {
        let mut req = c
            .get_object()
            .bucket(&o.uri.bucket)
            .key(&o.uri.key)
            .range(format!("bytes={pos}-{}", end - 1));
        if let Some(t) = &o.etag {
            req = req.if_match(t);
        }
        if let Some(v) = &o.version_id {
            req = req.version_id(v);
        }
        let mut r = req.send().await.map_err(|e| classify(&o.uri, e))?;
        if let (Some(want), Some(got)) = (&o.etag, r.e_tag())
            && bare_etag(want) != bare_etag(got)
        {
            return Err(S3Error::new(
                ErrorKind::Changed,
                &o.uri,
                format!("its ETag was {want} and is now {got}"),
            ));
        }
        loop {
            match r.body.try_next().await {
                Ok(Some(chunk)) => {
                    let n = chunk.len() as u64;
                    if pos + n > end {
                        return Err(S3Error::new(
                            ErrorKind::Other,
                            &o.uri,
                            format!("asked for bytes {start}-{end}, got more"),
                        ));
                    }
                    sink(pos, chunk)?;
                    pos += n;
                }
                Ok(None) => break,
                Err(e) => {
                    last = DisplayErrorContext(&e).to_string();
                    break;
                }
            }
        }
        if pos == end {
            return Ok(());
        }
        if last.is_empty() {
            last = format!("the body ended at byte {pos} of {start}-{end}");
        }
        if attempt < BODY_ATTEMPTS {
            backoff(attempt).await;
        }
    }
    Err(S3Error::new(
        ErrorKind::Network,
        &o.uri,
        format!("after {BODY_ATTEMPTS} attempts: {}", short(&last)),
    ))
}

/// Writes to a file at offsets, coalescing the small chunks a body arrives
/// in so that there is one system call a megabyte, not one a chunk.
struct RangeWriter<'a> {
    file: &'a fs::File,
    buf: Vec<u8>,
    at: u64,
}

const WRITE_BUF: usize = 1 << 20;

impl RangeWriter<'_> {
    fn put(&mut self, pos: u64, chunk: &[u8]) -> io::Result<()> {
        if !self.buf.is_empty() && self.at + self.buf.len() as u64 != pos {
            self.flush()?;
        }
        if self.buf.is_empty() {
            self.at = pos;
            if chunk.len() >= WRITE_BUF {
                return self.file.write_all_at(chunk, pos);
            }
        }
        self.buf.extend_from_slice(chunk);
        if self.buf.len() >= WRITE_BUF {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.file.write_all_at(&self.buf, self.at)?;
            self.at += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }
}

async fn download_one(inner: &Arc<Inner>, obj: ObjectInfo, dest: PathBuf) -> Result<(), S3Error> {
    let local = |e: io::Error| {
        S3Error::new(
            ErrorKind::Local,
            &obj.uri,
            format!("{}: {e}", dest.display()),
        )
    };
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).map_err(local)?;
    }
    let tmp = dest.with_file_name(format!(
        ".{}.part-{}",
        dest.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("object"),
        std::process::id()
    ));
    let file = Arc::new(fs::File::create(&tmp).map_err(local)?);
    file.set_len(obj.size).map_err(local)?;
    let mut tasks = tokio::task::JoinSet::new();
    for (start, end) in ranges(obj.size, inner.opts.part_size.max(1 << 20)) {
        let inner = inner.clone();
        let obj = obj.clone();
        let file = file.clone();
        tasks.spawn(async move {
            let _permit = inner.limit.clone().acquire_owned().await;
            let mut w = RangeWriter {
                file: &file,
                buf: Vec::with_capacity(WRITE_BUF.min((end - start) as usize)),
                at: start,
            };
            let uri = obj.uri.clone();
            let werr = |e: io::Error| S3Error::new(ErrorKind::Local, &uri, e.to_string());
            get_range(&inner.client, &obj, start, end, &mut |pos, chunk| {
                w.put(pos, &chunk).map_err(werr)
            })
            .await?;
            w.flush().map_err(werr)
        });
    }
    let mut err = None;
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                if err.is_none() {
                    err = Some(e);
                    tasks.abort_all();
                }
            }
            Err(e) if e.is_cancelled() => {}
            Err(e) => {
                err.get_or_insert(S3Error::new(ErrorKind::Other, &obj.uri, e.to_string()));
            }
        }
    }
    if let Some(e) = err {
        let _ = fs::remove_file(&tmp);
        return Err(if e.kind == ErrorKind::NotFound {
            not_found(inner, &obj.uri, e).await
        } else {
            e
        });
    }
    drop(file);
    fs::rename(&tmp, &dest).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        local(e)
    })
}

async fn put_file(
    inner: &Arc<Inner>,
    u: &S3Uri,
    p: &Path,
    o: &PutOptions,
) -> Result<PutOutcome, S3Error> {
    let local = |e: io::Error| S3Error::new(ErrorKind::Local, u, format!("{}: {e}", p.display()));
    let file = Arc::new(fs::File::open(p).map_err(local)?);
    let size = file.metadata().map_err(local)?.len();
    let part = inner.opts.part_size.max(5 << 20);
    if size <= part {
        let _permit = inner.limit.clone().acquire_owned().await;
        let (body, _) = read_part(u, p, &file, 0, size).await?;
        return put_object(inner, u, body, o).await;
    }
    if o.if_none_match {
        // Not worth sending gigabytes for the condition to fail at the end
        // (where it is checked again: this only saves the work).
        let _permit = inner.limit.clone().acquire_owned().await;
        if head(inner, u).await?.is_some() {
            return Ok(PutOutcome::AlreadyThere);
        }
    }
    let kms = inner.opts.kms_key_id.clone();
    let mut create = inner
        .client
        .create_multipart_upload()
        .bucket(&u.bucket)
        .key(&u.key)
        .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
        .checksum_type(ChecksumType::FullObject);
    if let Some(k) = &kms {
        create = create
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(k);
    }
    let created = {
        let _permit = inner.limit.clone().acquire_owned().await;
        create.send().await.map_err(|e| classify(u, e))?
    };
    let upload_id = created
        .upload_id()
        .ok_or_else(|| S3Error::new(ErrorKind::Other, u, "S3 gave no upload ID"))?
        .to_string();
    let result = upload_parts(inner, u, p, &file, size, part, &upload_id, o).await;
    if result.is_err() {
        // Nothing half-written may stay: the parts go with the upload.
        let _ = inner
            .client
            .abort_multipart_upload()
            .bucket(&u.bucket)
            .key(&u.key)
            .upload_id(&upload_id)
            .send()
            .await;
    }
    result
}

#[allow(clippy::too_many_arguments)]
async fn upload_parts(
    inner: &Arc<Inner>,
    u: &S3Uri,
    p: &Path,
    file: &Arc<fs::File>,
    size: u64,
    part: u64,
    upload_id: &str,
    o: &PutOptions,
) -> Result<PutOutcome, S3Error> {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (start, end)) in ranges(size, part).into_iter().enumerate() {
        let inner = inner.clone();
        let (u, p, id, file) = (
            u.clone(),
            p.to_path_buf(),
            upload_id.to_string(),
            file.clone(),
        );
        tasks.spawn(async move {
            let _permit = inner.limit.clone().acquire_owned().await;
            let n = i as i32 + 1;
            let (body, crc) = read_part(&u, &p, &file, start, end - start).await?;
            let mut attempt = 1;
            let sent = Sent::default();
            let r = loop {
                let req = inner
                    .client
                    .upload_part()
                    .bucket(&u.bucket)
                    .key(&u.key)
                    .upload_id(&id)
                    .part_number(n)
                    .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
                    .content_length(body.len() as i64)
                    .body(sliced(&body, &sent))
                    .customize()
                    .config_override(upload_override(&inner, end - start))
                    .send();
                match send_upload(&u, &sent, inner.opts.request_timeout, req).await {
                    Ok(r) => break r,
                    Err(e) => {
                        if again(&e) && attempt < BODY_ATTEMPTS {
                            backoff(attempt).await;
                            attempt += 1;
                            continue;
                        }
                        return Err(e);
                    }
                }
            };
            let done = CompletedPart::builder()
                .part_number(n)
                .set_e_tag(r.e_tag().map(str::to_string))
                .checksum_crc64_nvme(crc64_base64(crc))
                .build();
            Ok::<_, S3Error>((done, crc, end - start))
        });
    }
    let mut parts = Vec::new();
    let mut err = None;
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(Ok(p)) => parts.push(p),
            Ok(Err(e)) => {
                if err.is_none() {
                    err = Some(e);
                    tasks.abort_all();
                }
            }
            Err(e) if e.is_cancelled() => {}
            Err(e) => {
                err.get_or_insert(S3Error::new(ErrorKind::Other, u, e.to_string()));
            }
        }
    }
    if let Some(e) = err {
        return Err(e);
    }
    parts.sort_by_key(|(p, _, _)| p.part_number());
    let mut full = None;
    for (_, crc, len) in &parts {
        full = Some(match full {
            None => *crc,
            Some(a) => crc64_combine(a, *crc, *len),
        });
    }
    let mut complete = inner
        .client
        .complete_multipart_upload()
        .bucket(&u.bucket)
        .key(&u.key)
        .upload_id(upload_id)
        .checksum_type(ChecksumType::FullObject)
        .checksum_crc64_nvme(crc64_base64(full.unwrap_or(0)))
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts.into_iter().map(|(p, _, _)| p).collect()))
                .build(),
        );
    if o.if_none_match {
        complete = complete.if_none_match("*");
    }
    let _permit = inner.limit.clone().acquire_owned().await;
    // S3 may take a while to put a big object together.
    let r = complete
        .customize()
        .config_override(upload_override(inner, size / 64))
        .send()
        .await;
    match r {
        Ok(_) => Ok(PutOutcome::Written),
        Err(e) => conditional(o, classify(u, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_parse_and_join() {
        let u = S3Uri::parse("s3://my-bucket/events/").unwrap();
        assert_eq!(
            (u.bucket.as_str(), u.key.as_str()),
            ("my-bucket", "events/")
        );
        assert!(u.is_prefix());
        assert_eq!(u.join("a.csv").to_string(), "s3://my-bucket/events/a.csv");
        let o = S3Uri::parse("s3://b.c-1/k/x.csv").unwrap();
        assert!(!o.is_prefix());
        assert_eq!(o.as_prefix().to_string(), "s3://b.c-1/k/x.csv/");
        assert!(S3Uri::parse("s3://bucket").unwrap().is_prefix());
        for bad in [
            "s3://",
            "s3:///k",
            "s3://Bad_Bucket/k",
            "s3://ab/k",
            "http://b/k",
            "s3://-ab/k",
            "s3://bkt/a//b",
        ] {
            assert!(S3Uri::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ranges_cover_the_object_exactly() {
        assert_eq!(ranges(0, 4), vec![]);
        assert_eq!(ranges(4, 4), vec![(0, 4)]);
        assert_eq!(ranges(9, 4), vec![(0, 4), (4, 8), (8, 9)]);
    }

    #[test]
    fn part_checksums_combine_into_the_whole_objects() {
        // The catalogue's check value of CRC-64/NVME.
        assert_eq!(crc64(b"123456789"), 0xae8b_1486_0a79_9888);
        let whole: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        let (a, b) = whole.split_at(65_537);
        assert_eq!(
            crc64_combine(crc64(a), crc64(b), b.len() as u64),
            crc64(&whole)
        );
        assert_eq!(crc64_base64(0xae8b_1486_0a79_9888), "rosUhgp5mIg=");
    }

    #[test]
    fn credentials_do_not_show_their_secret() {
        let o = ClientOptions {
            static_credentials: Some(("AKIDEXAMPLE".into(), "wJalrXUtnFEMI/K7MDENG".into())),
            ..ClientOptions::default()
        };
        let shown = format!("{o:?}");
        assert!(
            shown.contains("AKIDEXAMPLE") && !shown.contains("wJalr"),
            "{shown}"
        );
    }

    #[test]
    fn errors_name_the_uri_and_say_what_to_do() {
        let e = S3Error::new(ErrorKind::NoSuchBucket, "s3://nope/x", "");
        let s = e.to_string();
        assert!(
            s.starts_with("s3://nope/x: the bucket does not exist; check"),
            "{s}"
        );
        assert!(e.is_user_error());
        assert!(!S3Error::new(ErrorKind::Network, "s3://a/b", "").is_user_error());
    }
}
