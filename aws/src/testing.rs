//! The S3 servers tests run against, found through the environment that
//! `.ci/s3-servers.sh` sets up: moto (`PIPELINE_TEST_MOTO_URL`; any signature
//! passes, no checksum is checked) and s3s-fs (`PIPELINE_TEST_S3S_URL`,
//! `PIPELINE_TEST_S3S_ACCESS_KEY`, `PIPELINE_TEST_S3S_SECRET_KEY`; checks
//! signatures and checksums).
//!
//! A test asks for a server and skips when it is not configured, saying so on
//! stderr; under CI (`CI` set) a missing server fails the test instead.
//! Used by this crate's tests and by the engine's integration tests.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::s3::{ClientOptions, S3, S3Error, S3Uri};

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Moto,
    S3s,
}

/// A configured test server.
#[derive(Debug, Clone)]
pub struct Server {
    pub kind: Kind,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub access_key: String,
    pub secret_key: String,
}

/// moto, or `None` (the test skips) when `PIPELINE_TEST_MOTO_URL` is not set.
/// `test` names the test in the message.
pub fn moto(test: &str) -> Option<Server> {
    let url = var(test, "moto", "PIPELINE_TEST_MOTO_URL")?;
    Some(Server {
        kind: Kind::Moto,
        url,
        // moto takes any credentials; these are moto's documented defaults.
        access_key: "testing".into(),
        secret_key: "testing".into(),
    })
}

/// s3s-fs, or `None` (the test skips) when its variables are not set.
pub fn s3s(test: &str) -> Option<Server> {
    let url = var(test, "s3s-fs", "PIPELINE_TEST_S3S_URL")?;
    let access_key = var(test, "s3s-fs", "PIPELINE_TEST_S3S_ACCESS_KEY")?;
    let secret_key = var(test, "s3s-fs", "PIPELINE_TEST_S3S_SECRET_KEY")?;
    Some(Server {
        kind: Kind::S3s,
        url,
        access_key,
        secret_key,
    })
}

/// Both servers that are configured (none, under CI, is a failure).
pub fn all(test: &str) -> Vec<Server> {
    moto(test).into_iter().chain(s3s(test)).collect()
}

fn var(test: &str, what: &str, name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            if std::env::var_os("CI").is_some() {
                panic!("{test} needs {what} ({name}); CI must start it (.ci/s3-servers.sh)");
            }
            // Straight to the stderr handle: the test harness hides `eprintln!` of passing tests.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: needs {what} ({name}; `bash .ci/s3-servers.sh` starts one)"
            );
            None
        }
    }
}

impl Server {
    /// Client options for this server: its endpoint and credentials, and
    /// timeouts short enough for tests.
    pub fn options(&self) -> ClientOptions {
        self.options_at(&self.url)
    }

    /// The same, with requests sent to `url` (a proxy in front of the server).
    pub fn options_at(&self, url: &str) -> ClientOptions {
        ClientOptions {
            region: Some("us-east-1".into()),
            endpoint_url: Some(url.to_string()),
            static_credentials: Some((self.access_key.clone(), self.secret_key.clone())),
            request_timeout: Duration::from_secs(5),
            ..ClientOptions::default()
        }
    }

    pub fn client(&self) -> S3 {
        S3::connect(self.options()).expect("set up an S3 client")
    }

    /// A new, empty bucket of its own for one test, as an `s3://BUCKET/` prefix.
    pub fn bucket(&self) -> S3Uri {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "t-{}-{}-{:x}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            nanos
        );
        self.client()
            .create_bucket(&name)
            .unwrap_or_else(|e: S3Error| panic!("create the bucket {name} on {}: {e}", self.url));
        S3Uri {
            bucket: name,
            key: String::new(),
        }
    }

    /// The environment a program (the `pipeline` binary, `aws`) needs to use
    /// this server through the standard AWS chain, and nothing else of the
    /// machine's AWS set-up.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.url.clone()),
            ("AWS_ACCESS_KEY_ID", self.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_key.clone()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_DEFAULT_REGION", "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("AWS_CONFIG_FILE", "/dev/null".into()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".into()),
        ]
    }
}
