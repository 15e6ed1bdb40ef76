//! Several connections on one database: threads with their own connections,
//! and separate processes (this test binary started again as a child),
//! including one that dies in the middle of a registration.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};

use super::super::*;
use super::{manual, new_version};

on_both! {
fn a_writer_that_waits_too_long_fails_cleanly(db) {
    let mut holder = db.open();
    let mut waiter = db.open();
    waiter
        .set_lock_timeout(std::time::Duration::from_millis(50))
        .unwrap();
    // Someone holds what a registration into `g` needs: SQLite's write
    // lock, PostgreSQL's row of the group.
    let mut pg_holder = None;
    let tx = match &mut holder.backend {
        Backend::Sqlite(conn) => Some(
            conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .unwrap(),
        ),
        Backend::Postgres(_) => {
            waiter.register(&new_version("g", "first", &[]), &manual()).unwrap();
            let mut client = db.client();
            client
                .batch_execute("BEGIN; SELECT id FROM model_groups WHERE name = 'g' FOR UPDATE")
                .unwrap();
            pg_holder = Some(client);
            None
        }
    };
    let e = waiter
        .register(&new_version("g", "a", &[]), &manual())
        .unwrap_err();
    assert!(matches!(e, RegistryError::Database { .. }), "{e:?}");
    assert!(!e.is_invalid_input());
    assert!(e.to_string().contains("try again"), "{e}");
    // Readers are not blocked by the writer.
    assert_eq!(waiter.groups().unwrap().len(), usize::from(db.is_postgres()));
    drop(tx);
    if let Some(mut client) = pg_holder {
        client.batch_execute("ROLLBACK").unwrap();
    }
    let r = waiter
        .register(&new_version("g", "a", &[]), &manual())
        .unwrap();
    assert_eq!(r.version.version, 1 + u32::from(db.is_postgres()));
}
}

fn open_all(location: &Location, n: usize) -> Vec<Registry> {
    (0..n)
        .map(|_| Registry::open(location.clone()).unwrap())
        .collect()
}

on_both! {
fn concurrent_writers_lose_no_update_and_leave_no_gaps(db) {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 6;
    let location = db.location();
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let location = location.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                // Each thread opens its own connection, as a separate process
                // would, racing on creating and migrating the database as well.
                let mut reg = Registry::open(location).unwrap();
                let mut mine = Vec::new();
                for i in 0..PER_THREAD {
                    let nv = new_version("shared", &format!("t{t}-{i}"), &[("auc", 0.5)]);
                    let r = reg.register(&nv, &ApprovalPolicy::Manual).unwrap();
                    assert!(r.created);
                    mine.push(r.version.version);
                    // Every thread also registers one key that all threads share.
                    let dup = new_version("shared", "same-cache-key", &[("auc", 0.5)]);
                    reg.register(&dup, &ApprovalPolicy::Manual).unwrap();
                    if i % 2 == 0 {
                        let v = r.version.version;
                        assert!(
                            reg.approve("shared", v, &format!("t{t}"), None)
                                .unwrap()
                                .changed
                        );
                    }
                }
                mine
            })
        })
        .collect();
    let mut allocated: Vec<u32> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    allocated.sort_unstable();
    allocated.dedup();
    assert_eq!(
        allocated.len(),
        THREADS * PER_THREAD,
        "a version was handed out twice"
    );

    let reg = db.open();
    let versions = reg.versions("shared").unwrap();
    let numbers: Vec<u32> = versions.iter().map(|v| v.version).collect();
    let total = THREADS * PER_THREAD + 1;
    assert_eq!(
        numbers,
        (1..=total as u32).collect::<Vec<_>>(),
        "gaps or duplicates"
    );
    let approved = versions
        .iter()
        .filter(|v| v.status == Status::Approved)
        .count();
    assert_eq!(approved, THREADS * PER_THREAD.div_ceil(2));
    let history = reg.history("shared").unwrap();
    assert_eq!(history.len(), total + approved);
}
}

on_both! {
fn concurrent_approvals_of_one_version_change_it_once(db) {
    const THREADS: usize = 8;
    db.open()
        .register(&new_version("g", "a", &[]), &ApprovalPolicy::Manual)
        .unwrap();
    let regs = open_all(&db.location(), THREADS);
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = regs
        .into_iter()
        .enumerate()
        .map(|(t, mut reg)| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                reg.approve("g", 1, &format!("reviewer-{t}"), None)
                    .unwrap()
                    .became_approved()
            })
        })
        .collect();
    let hooks = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|&b| b)
        .count();
    assert_eq!(hooks, 1, "exactly one caller runs the on_approved hook");
    let reg = db.open();
    assert_eq!(reg.history("g").unwrap().len(), 2);
}
}

on_both! {
fn concurrent_approvals_and_rejections_keep_the_trail_consistent(db) {
    // Reviewers race on one version, half approving and half rejecting:
    // whatever order they run in, every change is on the trail with the
    // status it really changed from, and the last one is the status.
    const THREADS: usize = 8;
    db.open()
        .register(&new_version("g", "a", &[]), &ApprovalPolicy::Manual)
        .unwrap();
    let regs = open_all(&db.location(), THREADS);
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = regs
        .into_iter()
        .enumerate()
        .map(|(t, mut reg)| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                for _ in 0..3 {
                    if t % 2 == 0 {
                        reg.approve("g", 1, &format!("r{t}"), None).unwrap();
                    } else {
                        reg.reject("g", 1, &format!("r{t}"), None).unwrap();
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let reg = db.open();
    let trail = reg.history("g").unwrap();
    for pair in trail.windows(2) {
        assert_eq!(pair[1].from_status, Some(pair[0].to_status), "{trail:#?}");
    }
    assert_eq!(reg.version("g", 1).unwrap().status, trail.last().unwrap().to_status);
}
}

/// Set by a child process to die inside `register` just before the commit.
pub(in crate::registry) static CRASH_BEFORE_COMMIT: AtomicBool = AtomicBool::new(false);

/// Tells the test binary, re-run as a child process, what to do.
const CHILD_ENV: &str = "PIPELINE_REGISTRY_TEST_CHILD";
const CHILD_TEST: &str = "registry::tests::concurrency::child_process_entry_point";

/// Not a test of its own: the entry point of the child processes the tests
/// below start (by running this test binary again with [`CHILD_ENV`] set), so
/// that separate processes, not just threads, share the database file.
#[test]
fn child_process_entry_point() {
    let Ok(task) = std::env::var(CHILD_ENV) else {
        return;
    };
    let parts: Vec<&str> = task.split('|').collect();
    let mut reg = Registry::open(Location::parse(parts[1]).unwrap()).unwrap();
    match parts[0] {
        "crash" => {
            reg.register(&new_version("g", "committed", &[]), &manual())
                .unwrap();
            CRASH_BEFORE_COMMIT.store(true, Ordering::SeqCst);
            let _ = reg.register(&new_version("g", "half-written", &[]), &manual());
            unreachable!("the registration should have aborted the process");
        }
        "register" => {
            let tag = parts[2];
            let count: usize = parts[3].parse().unwrap();
            for i in 0..count {
                let r = reg
                    .register(
                        &new_version("shared", &format!("{tag}-{i}"), &[]),
                        &manual(),
                    )
                    .unwrap();
                if i % 2 == 1 {
                    reg.approve("shared", r.version.version, tag, None).unwrap();
                }
            }
        }
        other => panic!("unknown child task {other}"),
    }
}

fn spawn_child(task: &str) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", CHILD_TEST, "--test-threads=1", "--nocapture"])
        .env(CHILD_ENV, task)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

on_both! {
fn a_crash_mid_registration_leaves_no_half_written_version(db) {
    let status = spawn_child(&format!("crash|{}", db.location().to_arg()))
        .wait()
        .unwrap();
    assert!(
        !status.success(),
        "the child should have died mid-registration"
    );

    let mut reg = db.open();
    let versions = reg.versions("g").unwrap();
    assert_eq!(versions.len(), 1, "only the committed version survives");
    assert_eq!(reg.history("g").unwrap().len(), 1);
    // The dead process's lock is gone and numbering continues without a gap.
    let next = reg
        .register(&new_version("g", "half-written", &[]), &manual())
        .unwrap();
    assert!(next.created);
    assert_eq!(next.version.version, 2);
}
}

on_both! {
fn separate_processes_share_the_registry_safely(db) {
    const PROCESSES: usize = 4;
    const PER_PROCESS: usize = 10;
    let location = db.location().to_arg();
    let children: Vec<_> = (0..PROCESSES)
        .map(|p| spawn_child(&format!("register|{location}|p{p}|{PER_PROCESS}")))
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success(), "a child process failed");
    }
    let reg = db.open();
    let versions = reg.versions("shared").unwrap();
    let total = (PROCESSES * PER_PROCESS) as u32;
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        (1..=total).collect::<Vec<_>>()
    );
    let approved = versions
        .iter()
        .filter(|v| v.status == Status::Approved)
        .count();
    assert_eq!(approved, PROCESSES * PER_PROCESS / 2);
    assert_eq!(
        reg.history("shared").unwrap().len(),
        PROCESSES * PER_PROCESS + approved
    );
}
}

#[test]
fn a_stricter_default_isolation_on_the_server_changes_nothing() {
    // Writers set their own isolation: a server whose sessions default to
    // serializable (or repeatable read, whose snapshot would hide the
    // version committed while this writer waited for the group's lock)
    // numbers versions the same way.
    for level in ["serializable", "repeatable read"] {
        let Some(db) = super::TestDb::postgres("a_stricter_default_isolation") else {
            return;
        };
        let TestDbName(name) = TestDbName::of(&db);
        db.client()
            .batch_execute(&format!(
                "ALTER DATABASE {name} SET default_transaction_isolation = '{level}'"
            ))
            .unwrap();
        const THREADS: usize = 6;
        const PER_THREAD: usize = 5;
        let barrier = Arc::new(Barrier::new(THREADS));
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let location = db.location();
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    let mut reg = Registry::open(location).unwrap();
                    barrier.wait();
                    for i in 0..PER_THREAD {
                        let r = reg
                            .register(&new_version("g", &format!("t{t}-{i}"), &[]), &manual())
                            .unwrap();
                        reg.approve("g", r.version.version, "r", None).unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let reg = db.open();
        let numbers: Vec<u32> = reg
            .versions("g")
            .unwrap()
            .iter()
            .map(|v| v.version)
            .collect();
        assert_eq!(
            numbers,
            (1..=(THREADS * PER_THREAD) as u32).collect::<Vec<_>>(),
            "{level}"
        );
        assert_eq!(
            reg.history("g").unwrap().len(),
            2 * THREADS * PER_THREAD,
            "{level}"
        );
    }
}

/// The name of a PostgreSQL test database.
struct TestDbName(String);

impl TestDbName {
    fn of(db: &super::TestDb) -> TestDbName {
        match db {
            super::TestDb::Postgres { name, .. } => TestDbName(name.clone()),
            super::TestDb::File { .. } => panic!("not a PostgreSQL test database"),
        }
    }
}
