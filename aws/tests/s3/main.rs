//! The S3 client against real servers: moto and s3s-fs (see
//! `.ci/s3-servers.sh`; without them these tests say SKIPPED, and under CI
//! they fail). One test binary keeps link time down.

mod faults;
mod proxy;
mod roundtrip;

use std::path::Path;
use std::time::{Duration, Instant};

use pipeline_aws::s3::{ClientOptions, S3, S3Uri};
use pipeline_aws::testing::{Kind, Server};

/// Seeded bytes that differ between seeds and along the data.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        out.extend_from_slice(&s.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Writes `bytes` to `dir/name` and returns the path.
pub fn file(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, bytes).unwrap();
    p
}

/// The smallest part size S3 allows, so that multipart tests stay small.
pub const PART: u64 = 5 << 20;

/// A client for `s` with small parts (and requests sent to `url`).
pub fn client_at(s: &Server, url: &str, f: impl FnOnce(&mut ClientOptions)) -> S3 {
    let mut o = s.options_at(url);
    o.part_size = PART;
    f(&mut o);
    S3::connect(o).expect("client")
}

pub fn client(s: &Server) -> S3 {
    client_at(s, &s.url, |_| {})
}

/// Fails the test when `f` takes longer than `limit`.
pub fn within<T>(limit: Duration, what: &str, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let r = f();
    let took = t.elapsed();
    assert!(took <= limit, "{what} took {took:?} (limit {limit:?})");
    r
}

/// No multipart upload is left under `bucket` (on moto: s3s-fs does not
/// implement ListMultipartUploads, so there this checks nothing).
pub fn assert_no_pending(s: &Server, s3: &S3, bucket: &S3Uri) {
    if s.kind == Kind::S3s {
        return;
    }
    let left = s3.pending_uploads(bucket).unwrap();
    assert!(left.is_empty(), "{:?}: uploads left: {left:?}", s.kind);
}
