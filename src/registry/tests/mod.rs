//! Tests of the registry as the engine uses it: through [`Registry`] on a real
//! database, each on both backends: an SQLite file, and a PostgreSQL database
//! of its own on the server `PIPELINE_TEST_POSTGRES_URL` names (started by
//! `.ci/postgres-server.sh`). `lifecycle` covers registering, policies,
//! reviews and queries; `files` opening, damaged and foreign databases and
//! migrations; `concurrency` several threads and processes sharing one
//! database.
//!
//! [`on_both!`] makes a test `NAME` into `NAME::sqlite` and `NAME::postgres`.
//! Without a server the PostgreSQL variants say SKIPPED and pass; with `CI`
//! set they fail instead.

/// `on_both! { fn NAME(db) { BODY } }`: the body once on each backend, `db`
/// being the test's [`TestDb`].
macro_rules! on_both {
    ($(#[$meta:meta])* fn $name:ident($db:ident) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn body($db: &$crate::registry::tests::TestDb) $body

            #[test]
            fn sqlite() {
                body(&$crate::registry::tests::TestDb::sqlite());
            }

            #[test]
            fn postgres() {
                if let Some(db) = $crate::registry::tests::TestDb::postgres(module_path!()) {
                    body(&db);
                }
            }
        }
    };
}

mod concurrency;
mod files;
mod lifecycle;

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

pub(super) use concurrency::CRASH_BEFORE_COMMIT;

/// Called by a write transaction just before it commits: a child process
/// told to crash dies there, with the version written but not committed.
pub(super) fn maybe_crash() {
    if CRASH_BEFORE_COMMIT.load(Ordering::SeqCst) {
        std::process::abort();
    }
}

/// The variable naming the test server (an administrator's URL).
pub(super) const POSTGRES_ENV: &str = "PIPELINE_TEST_POSTGRES_URL";

/// One test's registry database: a file in a temporary directory, or a
/// PostgreSQL database created for the test and dropped after it.
pub(super) enum TestDb {
    File {
        _dir: tempfile::TempDir,
        path: PathBuf,
    },
    Postgres {
        admin: String,
        name: String,
        url: String,
    },
}

impl TestDb {
    pub(super) fn sqlite() -> TestDb {
        let (dir, path) = temp();
        TestDb::File { _dir: dir, path }
    }

    /// A fresh database on the test server, or `None` (and SKIPPED on
    /// stderr) without one. Under CI a missing server fails the test.
    pub(super) fn postgres(test: &str) -> Option<TestDb> {
        let admin = match std::env::var(POSTGRES_ENV) {
            Ok(v) if !v.is_empty() => v,
            _ => {
                if std::env::var_os("CI").is_some() {
                    panic!(
                        "{test} needs PostgreSQL ({POSTGRES_ENV}); CI must start it (.ci/postgres-server.sh)"
                    );
                }
                // Straight to the stderr handle: the harness hides `eprintln!` of passing tests.
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED: needs PostgreSQL ({POSTGRES_ENV}, see .ci/postgres-server.sh)"
                );
                return None;
            }
        };
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!(
            "registry_test_{}_{}_{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let mut client = postgres::Client::connect(&admin, postgres::NoTls)
            .unwrap_or_else(|e| panic!("{test}: connect to {POSTGRES_ENV}: {e}"));
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        let url = database_url(&admin, &name);
        Some(TestDb::Postgres { admin, name, url })
    }

    pub(super) fn location(&self) -> Location {
        match self {
            TestDb::File { path, .. } => Location::File(path.clone()),
            TestDb::Postgres { url, .. } => Location::parse(url).unwrap(),
        }
    }

    pub(super) fn open(&self) -> Registry {
        Registry::open(self.location()).unwrap()
    }

    pub(super) fn is_postgres(&self) -> bool {
        matches!(self, TestDb::Postgres { .. })
    }

    /// A plain client on the test's PostgreSQL database.
    pub(super) fn client(&self) -> postgres::Client {
        match self {
            TestDb::Postgres { url, .. } => {
                postgres::Client::connect(url, postgres::NoTls).unwrap()
            }
            TestDb::File { .. } => panic!("an SQLite test has no PostgreSQL client"),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres { admin, name, .. } = self
            && let Ok(mut client) = postgres::Client::connect(admin, postgres::NoTls)
        {
            let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

/// `admin` with its database replaced by `name`.
pub(super) fn database_url(admin: &str, name: &str) -> String {
    let (base, query) = match admin.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (admin, None),
    };
    let (scheme, rest) = base.split_once("://").expect("a postgres:// URL");
    let authority = rest.split('/').next().unwrap_or(rest);
    match query {
        Some(q) => format!("{scheme}://{authority}/{name}?{q}"),
        None => format!("{scheme}://{authority}/{name}"),
    }
}

impl Registry {
    /// Runs a statement outside the registry's API, as someone with direct
    /// access to the database would.
    pub(super) fn execute_raw(&mut self, sql: &str) -> Result<u64, RegistryError> {
        let db: &mut dyn db::Sql = match &mut self.backend {
            Backend::Sqlite(conn) => {
                return conn
                    .execute(sql, [])
                    .map(|n| n as u64)
                    .map_err(|e| error::db_error(&self.location, "run a statement", e));
            }
            Backend::Postgres(pg) => pg.get_mut(),
        };
        db.execute("run a statement", sql, db::params![])
    }
}

pub(super) fn temp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".pipeline").join("registry.db");
    (dir, path)
}

pub(super) fn new_version(group: &str, key: &str, metrics: &[(&str, f64)]) -> NewVersion {
    NewVersion {
        group: group.to_string(),
        registration_key: Some(key.to_string()),
        artifact_digest: format!("sha256:{key}"),
        algorithm: "gbdt".to_string(),
        hyperparameters: [("max_depth", "4"), ("eta", "0.3")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        run_id: format!("run-{key}"),
        step: "register".to_string(),
        input_digests: [("penguins".to_string(), "sha256:data".to_string())].into(),
        spec_hash: "sha256:spec".to_string(),
        params: [("seed".to_string(), serde_json::json!(42))].into(),
        description: Some("nightly".to_string()),
        tags: [("team".to_string(), "ml".to_string())].into(),
        registered_by: "pipeline run".to_string(),
        on_approved: vec![],
    }
}

pub(super) fn manual() -> ApprovalPolicy {
    ApprovalPolicy::Manual
}
