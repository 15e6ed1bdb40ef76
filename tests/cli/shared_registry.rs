//! A registry in PostgreSQL shared by two workspaces: two engines, each in a
//! temporary directory of its own, register into one database and approve
//! at the same time, and both see the same versions and audit trail.
//!
//! The server is `PIPELINE_TEST_POSTGRES_URL` (`. .ci/postgres-server.sh`
//! starts one); without it the tests that need it say `SKIPPED`, and under
//! CI they fail instead. The URL checks need no server.

use std::io::Write;
use std::sync::{Arc, Barrier};

use serde_json::Value;

use crate::harness::Test;

const ENV: &str = "PIPELINE_TEST_POSTGRES_URL";

/// A model made by a command step (its content names the workspace and the
/// param, so each registration is another artifact), registered into `shared`.
const PIPELINE: &str = r#"
name: shared
params:
  n: {type: int, default: 0}
  who: {type: string, default: a}
steps:
  train:
    kind: command
    run: echo "{{ params.who }}-{{ params.n }}" > {{ outputs.model }}/model.txt
    outputs: [model]
  register:
    kind: register
    model: train.model
    group: shared
"#;

/// A database of its own on the test server, dropped at the end.
struct Database {
    admin: String,
    name: String,
    url: String,
}

impl Database {
    fn create(test: &str) -> Option<Database> {
        let admin = match std::env::var(ENV) {
            Ok(v) if !v.is_empty() => v,
            _ => {
                if std::env::var_os("CI").is_some() {
                    panic!(
                        "{test} needs PostgreSQL ({ENV}); CI must start it (.ci/postgres-server.sh)"
                    );
                }
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED: needs PostgreSQL ({ENV}, see .ci/postgres-server.sh)"
                );
                return None;
            }
        };
        let name = format!("cli_{test}_{}", std::process::id());
        let mut client = postgres::Client::connect(&admin, postgres::NoTls)
            .unwrap_or_else(|e| panic!("{test}: connect to {ENV}: {e}"));
        // Two statements: neither may run inside a transaction block.
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .unwrap();
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        let (base, _) = admin
            .rsplit_once('/')
            .expect("a postgres:// URL with a database");
        let url = format!("{base}/{name}");
        Some(Database { admin, name, url })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.admin, postgres::NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

fn workspace(url: &str, who: &str) -> Test {
    Test::new()
        .file(
            "p.yaml",
            &PIPELINE.replace("default: a", &format!("default: {who}")),
        )
        .env("PIPELINE_REGISTRY", url)
}

fn json(t: &Test, args: &[&str]) -> Value {
    let out = t.exec(args.iter().copied()).success();
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn two_workspaces_share_one_postgres_registry_without_lost_updates() {
    let Some(db) = Database::create("two_workspaces") else {
        return;
    };
    const RUNS: usize = 4;
    let a = Arc::new(workspace(&db.url, "a"));
    let b = Arc::new(workspace(&db.url, "b"));

    // Both engines register at once, each from its own workspace.
    let barrier = Arc::new(Barrier::new(2));
    let runners: Vec<_> = [Arc::clone(&a), Arc::clone(&b)]
        .into_iter()
        .map(|t| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                for n in 0..RUNS {
                    t.exec(["run", "p.yaml", "--param", &format!("n={n}")])
                        .success();
                }
            })
        })
        .collect();
    for r in runners {
        r.join().unwrap();
    }

    let list = json(&a, &["registry", "list", "shared", "--json"]);
    let numbers: Vec<u64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, (1..=2 * RUNS as u64).collect::<Vec<_>>(), "{list}");

    // Both workspaces approve every version at the same moment: each
    // version changes once, by whichever came first, and the other is told
    // it is already approved.
    let barrier = Arc::new(Barrier::new(2));
    let reviewers: Vec<_> = [("alice", Arc::clone(&a)), ("bob", Arc::clone(&b))]
        .into_iter()
        .map(|(who, t)| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let mut changed = 0;
                for v in 1..=2 * RUNS {
                    barrier.wait();
                    let out = t
                        .exec(["registry", "approve", "shared", &v.to_string(), "--by", who])
                        .success();
                    if !out.stdout.contains("already Approved") {
                        changed += 1;
                    }
                }
                changed
            })
        })
        .collect();
    let changed: usize = reviewers.into_iter().map(|r| r.join().unwrap()).sum();
    assert_eq!(changed, 2 * RUNS, "every version was approved exactly once");

    // Both see the same registry.
    for args in [
        &["registry", "list", "shared", "--json"][..],
        &["registry", "history", "shared", "--json"][..],
        &["registry", "groups", "--json"][..],
    ] {
        assert_eq!(json(&a, args), json(&b, args), "{args:?}");
    }
    let history = json(&b, &["registry", "history", "shared", "--json"]);
    let history = history.as_array().unwrap();
    assert_eq!(
        history.len(),
        2 * (2 * RUNS),
        "a register and an approve line per version"
    );
    let approvals: Vec<&Value> = history
        .iter()
        .filter(|e| e["action"] == "approve")
        .collect();
    assert_eq!(approvals.len(), 2 * RUNS);
    for e in approvals {
        assert_eq!(e["from_status"], "PendingManualApproval", "{e}");
    }
    let groups = json(&a, &["registry", "groups", "--json"]);
    assert_eq!(groups[0]["approved_version"], 2 * RUNS as u64, "{groups}");

    // A version the other workspace registered: its artifact is in that
    // workspace's store only, and the error says how to share artifacts.
    let theirs = list
        .as_array()
        .unwrap()
        .iter()
        .find(|v| {
            let digest = v["artifact_digest"].as_str().unwrap();
            // The store's layout: store/<first two characters>/<digest>.
            !b.workspace()
                .join("store")
                .join(&digest[..2])
                .join(digest)
                .is_dir()
        })
        .map(|v| v["version"].as_u64().unwrap())
        .expect("a version registered by workspace a");
    // A pipeline in the workspace that stored the version reads it through
    // the shared registry; in the other, the step says what is missing.
    let reader = format!(
        "name: use\nsteps:\n  peek:\n    kind: command\n    run: [sh, -c, \"cat $SM_CHANNEL_MODEL/model.txt\"]\n    inputs: {{model: \"registry://shared@{theirs}\"}}\n"
    );
    a.write("use.yaml", &reader);
    a.exec(["run", "use.yaml"]).success();
    b.write("use.yaml", &reader);
    let out = b.exec(["run", "use.yaml"]);
    assert_ne!(out.code, Some(0), "{out}");
    assert!(format!("{out}").contains("--store s3://"), "{out}");
    b.write("d.csv", "x\n1\n");
    b.exec([
        "predict",
        "--model",
        &format!("registry://shared@{theirs}"),
        "--data",
        "d.csv",
        "--out",
        "p.csv",
    ])
    .code(1)
    .stderr_contains("not in this workspace's store")
    .stderr_contains("--store s3://");
}

#[test]
fn a_bad_registry_url_is_exit_code_2_and_an_unreachable_server_exit_code_1() {
    let t = Test::new();
    t.exec([
        "registry",
        "groups",
        "--registry",
        "postgres://ml@db:notaport/reg",
    ])
    .code(2)
    .stderr_contains("postgres://USER@HOST:PORT/DATABASE");
    t.exec([
        "registry",
        "groups",
        "--registry",
        "postgres://ml@db/reg?sslmode=require",
    ])
    .code(2)
    .stderr_contains("TLS");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://ml:hunter2@127.0.0.1:{port}/reg");
    let out = t
        .command(["registry", "list", "g"])
        .env("PIPELINE_REGISTRY", &url)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("running and reachable"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
