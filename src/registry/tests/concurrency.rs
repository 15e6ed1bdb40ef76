//! Several connections on one file: threads with their own connections, and
//! separate processes (this test binary started again as a child), including
//! one that dies in the middle of a registration.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};

use super::super::*;
use super::{manual, new_version, temp};

#[test]
fn a_writer_that_waits_too_long_fails_cleanly() {
    let (_dir, path) = temp();
    let mut holder = Registry::open(&path).unwrap();
    let mut waiter = Registry::open(&path).unwrap();
    waiter
        .set_lock_timeout(std::time::Duration::from_millis(50))
        .unwrap();
    let tx = holder
        .conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .unwrap();
    let e = waiter
        .register(&new_version("g", "a", &[]), &manual())
        .unwrap_err();
    assert!(matches!(e, RegistryError::Database { .. }), "{e:?}");
    assert!(!e.is_invalid_input());
    assert!(e.to_string().contains("try again"), "{e}");
    // Readers are not blocked by the writer.
    assert!(waiter.groups().unwrap().is_empty());
    drop(tx);
    let r = waiter
        .register(&new_version("g", "a", &[]), &manual())
        .unwrap();
    assert_eq!(r.version.version, 1);
}

fn open_all(path: &Path, n: usize) -> Vec<Registry> {
    (0..n).map(|_| Registry::open(path).unwrap()).collect()
}

#[test]
fn concurrent_writers_lose_no_update_and_leave_no_gaps() {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 6;
    let (_dir, path) = temp();
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let path = path.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                // Each thread opens its own connection, as a separate process
                // would, racing on creating and migrating the file as well.
                let mut reg = Registry::open(&path).unwrap();
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

    let reg = Registry::open(&path).unwrap();
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

#[test]
fn concurrent_approvals_of_one_version_change_it_once() {
    const THREADS: usize = 8;
    let (_dir, path) = temp();
    Registry::open(&path)
        .unwrap()
        .register(&new_version("g", "a", &[]), &ApprovalPolicy::Manual)
        .unwrap();
    let regs = open_all(&path, THREADS);
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
    let reg = Registry::open(&path).unwrap();
    assert_eq!(reg.history("g").unwrap().len(), 2);
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
    let mut reg = Registry::open(parts[1]).unwrap();
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

#[test]
fn a_crash_mid_registration_leaves_no_half_written_version() {
    let (_dir, path) = temp();
    let status = spawn_child(&format!("crash|{}", path.display()))
        .wait()
        .unwrap();
    assert!(
        !status.success(),
        "the child should have died mid-registration"
    );

    let mut reg = Registry::open(&path).unwrap();
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

#[test]
fn separate_processes_share_the_registry_safely() {
    const PROCESSES: usize = 4;
    const PER_PROCESS: usize = 10;
    let (_dir, path) = temp();
    let children: Vec<_> = (0..PROCESSES)
        .map(|p| spawn_child(&format!("register|{}|p{p}|{PER_PROCESS}", path.display())))
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success(), "a child process failed");
    }
    let reg = Registry::open(&path).unwrap();
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
