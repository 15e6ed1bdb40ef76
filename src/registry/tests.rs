//! Tests of the registry as the engine uses it: through [`Registry`] on a real
//! database file, including several connections at once and damaged files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};

use super::*;

fn temp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".pipeline").join("registry.db");
    (dir, path)
}

fn new_version(group: &str, key: &str, metrics: &[(&str, f64)]) -> NewVersion {
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
    }
}

fn manual() -> ApprovalPolicy {
    ApprovalPolicy::Manual
}

#[test]
fn open_creates_the_file_with_the_current_schema_in_wal_mode() {
    let (_dir, path) = temp();
    let reg = Registry::open(&path).unwrap();
    assert!(path.exists());
    assert_eq!(reg.path(), path.as_path());
    assert_eq!(
        reg.schema_version().unwrap(),
        schema::MIGRATIONS.len() as u32
    );
    let mode: String = reg
        .conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    drop(reg);
    // Reopening an up-to-date registry changes nothing.
    let reg = Registry::open(&path).unwrap();
    assert!(reg.groups().unwrap().is_empty());
}

#[test]
fn open_existing_does_not_create_a_registry() {
    let (_dir, path) = temp();
    let e = Registry::open_existing(&path).unwrap_err();
    assert!(e.is_invalid_input());
    assert!(e.to_string().contains("no registry at"), "{e}");
    assert!(!path.exists());
    drop(Registry::open(&path).unwrap());
    assert!(Registry::open_existing(&path).is_ok());
}

#[test]
fn versions_are_numbered_per_group_and_keep_their_lineage() {
    let (_dir, path) = temp();
    let mut reg = Registry::open(&path).unwrap();
    for (i, key) in ["a", "b", "c"].iter().enumerate() {
        let r = reg
            .register(&new_version("churn", key, &[("auc", 0.8)]), &manual())
            .unwrap();
        assert!(r.created);
        assert_eq!(r.version.version, i as u32 + 1);
        assert_eq!(r.version.status, Status::PendingManualApproval);
        assert!(!r.became_approved());
    }
    let other = reg
        .register(&new_version("fraud", "a", &[]), &manual())
        .unwrap();
    assert_eq!(other.version.version, 1);

    let v = reg.version("churn", 2).unwrap();
    let expected = new_version("churn", "b", &[("auc", 0.8)]);
    assert_eq!(v.group, "churn");
    assert_eq!(v.artifact_digest, expected.artifact_digest);
    assert_eq!(v.algorithm, expected.algorithm);
    assert_eq!(v.hyperparameters, expected.hyperparameters);
    assert_eq!(v.metrics, expected.metrics);
    assert_eq!(v.run_id, expected.run_id);
    assert_eq!(v.step, expected.step);
    assert_eq!(v.input_digests, expected.input_digests);
    assert_eq!(v.spec_hash, expected.spec_hash);
    assert_eq!(v.params, expected.params);
    assert_eq!(v.description, expected.description);
    assert_eq!(v.tags, expected.tags);
    assert_eq!(v.registration_key, "b");
    assert_eq!(v.registered_by, "pipeline run");
    assert!(
        v.created_at.parse::<jiff::Timestamp>().is_ok() && v.created_at.ends_with('Z'),
        "{}",
        v.created_at
    );
    assert_eq!(v.reference(), "registry://churn@2");

    let list = reg.versions("churn").unwrap();
    assert_eq!(
        list.iter().map(|v| v.version).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["status"], "PendingManualApproval");
    assert_eq!(json["params"]["seed"], 42);
}

#[test]
fn registering_the_same_key_twice_returns_the_existing_version() {
    let (_dir, path) = temp();
    let mut reg = Registry::open(&path).unwrap();
    let policy = ApprovalPolicy::auto_approve_if("auc >= 0.9").unwrap();
    let first = reg
        .register(&new_version("churn", "cache-1", &[("auc", 0.95)]), &policy)
        .unwrap();
    assert!(first.became_approved());
    let again = reg
        .register(&new_version("churn", "cache-1", &[("auc", 0.95)]), &policy)
        .unwrap();
    assert!(!again.created);
    assert!(again.decision.is_none());
    assert!(!again.became_approved(), "a hook must not run twice");
    assert_eq!(again.version, first.version);
    assert_eq!(reg.versions("churn").unwrap().len(), 1);
    assert_eq!(reg.history("churn").unwrap().len(), 2);

    // The same key in another group is another model.
    let other = reg
        .register(
            &new_version("fraud", "cache-1", &[("auc", 0.95)]),
            &manual(),
        )
        .unwrap();
    assert!(other.created);
}

#[test]
fn without_a_key_run_step_and_digest_identify_a_registration() {
    let (_dir, path) = temp();
    let mut reg = Registry::open(&path).unwrap();
    let mut nv = new_version("churn", "x", &[]);
    nv.registration_key = None;
    let a = reg.register(&nv, &manual()).unwrap();
    assert_eq!(a.version.registration_key, "run-x/register/sha256:x");
    assert!(!reg.register(&nv, &manual()).unwrap().created);
    nv.artifact_digest = "sha256:other".into();
    assert_eq!(reg.register(&nv, &manual()).unwrap().version.version, 2);
}

#[test]
fn manual_policy_leaves_the_version_pending_and_says_why() {
    let (_dir, path) = temp();
    let mut reg = Registry::open(&path).unwrap();
    let r = reg
        .register(&new_version("churn", "a", &[("auc", 0.99)]), &manual())
        .unwrap();
    assert!(!r.decision.as_ref().unwrap().approved);
    let h = reg.history("churn").unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].action, Action::Register);
    assert_eq!(h[0].from_status, None);
    assert_eq!(h[0].to_status, Status::PendingManualApproval);
    assert_eq!(h[0].by, "pipeline run");
    assert!(h[0].note.as_deref().unwrap().contains("manual"));
}

#[test]
fn auto_approve_if_approves_and_records_the_reason() {
    let (_dir, path) = temp();
    let mut reg = Registry::open(&path).unwrap();
    let policy = ApprovalPolicy::auto_approve_if("accuracy >= 0.97 and logloss < 0.3").unwrap();
    let good = reg
        .register(
            &new_version("p", "a", &[("accuracy", 0.98), ("logloss", 0.2)]),
            &policy,
        )
        .unwrap();
    assert!(good.became_approved());
    assert_eq!(good.version.status, Status::Approved);
    let bad = reg
        .register(
            &new_version("p", "b", &[("accuracy", 0.98), ("logloss", 0.5)]),
            &policy,
        )
        .unwrap();
    assert!(!bad.became_approved());
    assert_eq!(bad.version.status, Status::PendingManualApproval);

    let h = reg.history("p").unwrap();
    let actions: Vec<(u32, Action)> = h.iter().map(|e| (e.version, e.action)).collect();
    assert_eq!(
        actions,
        vec![
            (1, Action::Register),
            (1, Action::AutoApprove),
            (2, Action::Register)
        ]
    );
    assert_eq!(h[1].from_status, Some(Status::PendingManualApproval));
    assert_eq!(h[1].to_status, Status::Approved);
    assert!(
        h[1].note
            .as_deref()
            .unwrap()
            .contains("accuracy = 0.98 >= 0.97")
    );
    assert!(h[2].note.as_deref().unwrap().contains("does not hold"));
    assert_eq!(reg.version_history("p", 1).unwrap().len(), 2);
}

#[test]
fn a_failed_registration_writes_nothing() {
    let (_dir, path) = temp();
    let mut reg = Registry::open(&path).unwrap();
    let policy = ApprovalPolicy::auto_approve_if("auc >= 0.9").unwrap();
    // The group would be created first; the policy then fails on a missing metric.
    let err = reg
        .register(&new_version("churn", "a", &[("accuracy", 0.9)]), &policy)
        .unwrap_err();
    assert!(err.is_invalid_input());
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("unknown metric `auc`"), "{err}");
    assert!(reg.groups().unwrap().is_empty());
    // And the registry is still usable.
    let ok = reg
        .register(&new_version("churn", "a", &[("auc", 0.95)]), &policy)
        .unwrap();
    assert_eq!(ok.version.version, 1);
}

#[test]
fn invalid_registrations_are_refused() {
    let (_dir, path) = temp();
    let mut reg = Registry::open(&path).unwrap();
    let cases: Vec<(NewVersion, &str)> = vec![
        (new_version("bad name", "a", &[]), "contains ` `"),
        (new_version("ok", "a", &[("auc", f64::NAN)]), "metric `auc`"),
        (new_version("ok", "a", &[("auc", f64::INFINITY)]), "finite"),
        (
            NewVersion {
                artifact_digest: String::new(),
                ..new_version("ok", "a", &[])
            },
            "empty `artifact_digest`",
        ),
        (
            NewVersion {
                registration_key: Some(String::new()),
                ..new_version("ok", "a", &[])
            },
            "empty registration key",
        ),
    ];
    for (nv, needle) in cases {
        let e = reg.register(&nv, &manual()).unwrap_err();
        assert!(e.is_invalid_input(), "{e}");
        assert!(e.to_string().contains(needle), "{needle}: {e}");
    }
    let bad_policy = ApprovalPolicy::BeatChampion {
        metric: "auc".into(),
        by: -1.0,
        higher_is_better: true,
    };
    assert!(
        reg.register(&new_version("ok", "a", &[("auc", 1.0)]), &bad_policy)
            .is_err()
    );
    assert!(reg.groups().unwrap().is_empty());
}

#[test]
fn beat_champion_compares_with_the_newest_approved_version() {
    let (_dir, path) = temp();
    let mut reg = Registry::open(&path).unwrap();
    let policy = ApprovalPolicy::beat_champion("auc", 0.01, true).unwrap();
    let reg_auc = |reg: &mut Registry, key: &str, auc: f64| {
        reg.register(&new_version("g", key, &[("auc", auc)]), &policy)
            .unwrap()
    };
    let first = reg_auc(&mut reg, "1", 0.80);
    assert!(first.became_approved(), "no champion yet");
    assert!(!reg_auc(&mut reg, "2", 0.805).became_approved());
    let third = reg_auc(&mut reg, "3", 0.85);
    assert!(third.became_approved());
    assert!(
        third
            .decision
            .unwrap()
            .reason
            .contains("champion version 1"),
        "compared with version 1"
    );
    // Version 3 is now the champion: 0.855 is not 0.01 better than 0.85.
    assert!(!reg_auc(&mut reg, "4", 0.855).became_approved());
    // Withdrawing version 3 makes version 1 the champion again.
    reg.reject("g", 3, "alice", Some("leaks the label"))
        .unwrap();
    let fifth = reg_auc(&mut reg, "5", 0.83);
    assert!(fifth.became_approved());
}

#[test]
fn approving_twice_is_a_reported_no_op() {
    let (_dir, path) = temp();
    let mut reg = Registry::open(&path).unwrap();
    reg.register(&new_version("churn", "a", &[]), &manual())
        .unwrap();
    let t = reg
        .approve("churn", 1, "alice", Some("looks good"))
        .unwrap();
    assert!(t.changed && t.became_approved());
    assert_eq!(t.from_status, Status::PendingManualApproval);
    assert_eq!(t.version.status, Status::Approved);
    assert_eq!(
        t.summary(),
        "version 1 of `churn`: PendingManualApproval -> Approved"
    );

    let again = reg.approve("churn", 1, "bob", None).unwrap();
    assert!(!again.changed);
    assert!(!again.became_approved());
    assert_eq!(
        again.summary(),
        "version 1 of `churn` is already Approved; nothing changed"
    );

    let r = reg.reject("churn", 1, "carol", Some("drift")).unwrap();
    assert!(r.changed && !r.became_approved());
    let h = reg.history("churn").unwrap();
    assert_eq!(
        h.len(),
        3,
        "register, approve, reject; the no-op is not recorded"
    );
    assert_eq!(h[1].by, "alice");
    assert_eq!(h[1].note.as_deref(), Some("looks good"));
    assert_eq!(h[2].action, Action::Reject);
    assert_eq!(h[2].from_status, Some(Status::Approved));
    assert_eq!(reg.version("churn", 1).unwrap().status, Status::Rejected);
    assert!(
        reg.approve("churn", 1, " ", None)
            .unwrap_err()
            .is_invalid_input()
    );
}

#[test]
fn unknown_versions_and_groups_say_what_exists() {
    let (_dir, path) = temp();
    let mut reg = Registry::open(&path).unwrap();
    for key in ["a", "b"] {
        reg.register(&new_version("penguins-species", key, &[]), &manual())
            .unwrap();
    }
    let e = reg
        .approve("penguins-species", 7, "alice", None)
        .unwrap_err();
    assert!(matches!(&e, RegistryError::UnknownVersion { existing, .. } if existing == &[1, 2]));
    assert!(e.is_invalid_input());
    assert!(e.to_string().contains("existing versions: 1, 2"), "{e}");

    let e = reg
        .approve("penguin-species", 1, "alice", None)
        .unwrap_err();
    assert!(
        e.to_string().contains("did you mean `penguins-species`?"),
        "{e}"
    );
    let e = reg.versions("zzz").unwrap_err();
    assert!(
        e.to_string()
            .contains("existing groups: `penguins-species`"),
        "{e}"
    );
    assert!(e.is_invalid_input());
}

#[test]
fn references_resolve_to_the_right_version() {
    let (_dir, path) = temp();
    let mut reg = Registry::open(&path).unwrap();
    for key in ["a", "b", "c"] {
        reg.register(&new_version("churn", key, &[]), &manual())
            .unwrap();
    }
    let e = reg.resolve_str("registry://churn@approved").unwrap_err();
    assert!(e.is_invalid_input());
    let text = e.to_string();
    assert!(text.contains("has no approved version yet"), "{text}");
    assert!(text.contains("1 (PendingManualApproval)"), "{text}");
    assert!(
        text.contains("pipeline registry approve churn 3 --by NAME"),
        "{text}"
    );
    // A rejected version is not the one to suggest.
    reg.reject("churn", 3, "alice", None).unwrap();
    let text = reg
        .resolve_str("registry://churn@approved")
        .unwrap_err()
        .to_string();
    assert!(text.contains("3 (Rejected)"), "{text}");
    assert!(text.contains("approve churn 2 --by NAME"), "{text}");

    reg.approve("churn", 1, "alice", None).unwrap();
    reg.approve("churn", 2, "alice", None).unwrap();
    reg.reject("churn", 3, "alice", None).unwrap();
    assert_eq!(
        reg.resolve_str("registry://churn@approved")
            .unwrap()
            .version,
        2
    );
    assert_eq!(
        reg.resolve_str("registry://churn@latest").unwrap().version,
        3
    );
    assert_eq!(reg.resolve_str("registry://churn@1").unwrap().version, 1);
    assert!(matches!(
        reg.resolve_str("registry://churn@9"),
        Err(RegistryError::UnknownVersion { .. })
    ));
    assert!(matches!(
        reg.resolve_str("registry://chrn@latest"),
        Err(RegistryError::UnknownGroup { suggestion: Some(s), .. }) if s == "churn"
    ));
    assert!(matches!(
        reg.resolve_str("churn@1"),
        Err(RegistryError::BadReference { .. })
    ));
}

#[test]
fn groups_summarise_counts_and_champions() {
    let (_dir, path) = temp();
    let mut reg = Registry::open(&path).unwrap();
    for key in ["a", "b", "c"] {
        reg.register(&new_version("b-group", key, &[]), &manual())
            .unwrap();
    }
    reg.register(&new_version("a-group", "a", &[]), &manual())
        .unwrap();
    reg.approve("b-group", 2, "alice", None).unwrap();
    let groups = reg.groups().unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0].name, "a-group");
    assert_eq!(groups[0].version_count, 1);
    assert_eq!(groups[0].approved_version, None);
    assert_eq!(groups[1].version_count, 3);
    assert_eq!(groups[1].latest_version, Some(3));
    assert_eq!(groups[1].approved_version, Some(2));
}

#[test]
fn diff_marks_what_changed() {
    let (_dir, path) = temp();
    let mut reg = Registry::open(&path).unwrap();
    reg.register(
        &new_version("g", "a", &[("auc", 0.8), ("logloss", 0.4)]),
        &manual(),
    )
    .unwrap();
    let mut b = new_version("g", "b", &[("auc", 0.85), ("f1", 0.7)]);
    b.hyperparameters.insert("max_depth".into(), "6".into());
    b.hyperparameters.insert("num_round".into(), "200".into());
    b.params.insert("seed".into(), serde_json::json!(7));
    b.input_digests = [("penguins".to_string(), "sha256:data".to_string())].into();
    reg.register(&b, &manual()).unwrap();

    let d = reg.diff("g", 1, 2).unwrap();
    assert!(!d.is_empty());
    let hp: Vec<(&str, ChangeKind)> = d
        .hyperparameters
        .iter()
        .map(|c| (c.name.as_str(), c.kind))
        .collect();
    assert_eq!(
        hp,
        vec![
            ("eta", ChangeKind::Unchanged),
            ("max_depth", ChangeKind::Changed),
            ("num_round", ChangeKind::Added)
        ]
    );
    let auc = d.metrics.iter().find(|m| m.name == "auc").unwrap();
    assert_eq!(auc.kind, ChangeKind::Changed);
    assert!((auc.delta.unwrap() - 0.05).abs() < 1e-12);
    let kinds: BTreeMap<&str, ChangeKind> = d
        .metrics
        .iter()
        .map(|m| (m.name.as_str(), m.kind))
        .collect();
    assert_eq!(kinds["logloss"], ChangeKind::Removed);
    assert_eq!(kinds["f1"], ChangeKind::Added);
    assert_eq!(d.params[0].kind, ChangeKind::Changed);
    assert_eq!(d.inputs[0].kind, ChangeKind::Unchanged);
    let digest = d
        .fields
        .iter()
        .find(|f| f.name == "artifact_digest")
        .unwrap();
    assert_eq!(digest.kind, ChangeKind::Changed);
    let algo = d.fields.iter().find(|f| f.name == "algorithm").unwrap();
    assert_eq!(algo.kind, ChangeKind::Unchanged);
    assert!(reg.diff("g", 1, 1).unwrap().is_empty());
    assert!(reg.diff("g", 1, 3).is_err());
    serde_json::to_string(&d).unwrap();
}

#[test]
fn hook_environment_describes_the_version() {
    let (_dir, path) = temp();
    let mut reg = Registry::open(&path).unwrap();
    let policy = ApprovalPolicy::auto_approve_if("auc > 0.5").unwrap();
    let r = reg
        .register(&new_version("churn", "a", &[("auc", 0.75)]), &policy)
        .unwrap();
    let env = hook_env(&r.version);
    assert_eq!(env["PIPELINE_REGISTRY_GROUP"], "churn");
    assert_eq!(env["PIPELINE_REGISTRY_VERSION"], "1");
    assert_eq!(env["PIPELINE_REGISTRY_REF"], "registry://churn@1");
    assert_eq!(env["PIPELINE_REGISTRY_DIGEST"], "sha256:a");
    assert_eq!(env["PIPELINE_REGISTRY_STATUS"], "Approved");
    assert_eq!(env["PIPELINE_REGISTRY_RUN_ID"], "run-a");
    let metrics: BTreeMap<String, f64> =
        serde_json::from_str(&env["PIPELINE_REGISTRY_METRICS"]).unwrap();
    assert_eq!(metrics["auc"], 0.75);
    let params: serde_json::Value = serde_json::from_str(&env["PIPELINE_REGISTRY_PARAMS"]).unwrap();
    assert_eq!(params["seed"], 42);
    assert!(env.keys().all(|k| k.starts_with(hook::ENV_PREFIX)));
}

#[test]
fn the_audit_trail_cannot_be_rewritten() {
    let (_dir, path) = temp();
    let mut reg = Registry::open(&path).unwrap();
    reg.register(&new_version("g", "a", &[]), &manual())
        .unwrap();
    let upd = reg
        .conn
        .execute("UPDATE audit_events SET actor = 'mallory'", []);
    assert!(upd.unwrap_err().to_string().contains("append-only"));
    let del = reg.conn.execute("DELETE FROM audit_events", []);
    assert!(del.is_err());
    assert_eq!(reg.history("g").unwrap()[0].by, "pipeline run");
}

#[test]
fn a_file_that_is_not_a_database_is_reported_not_panicked_on() {
    let (_dir, path) = temp();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"this is a csv file, not a registry\n".repeat(200)).unwrap();
    let e = Registry::open(&path).unwrap_err();
    assert!(matches!(e, RegistryError::Corrupt { .. }), "{e:?}");
    assert!(!e.is_invalid_input());
    let text = e.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("move the file aside"), "{text}");

    // A short file cannot even hold the header.
    std::fs::write(&path, b"oops").unwrap();
    let e = Registry::open(&path).unwrap_err();
    assert!(matches!(e, RegistryError::Corrupt { .. }), "{e:?}");
}

#[test]
fn damaged_pages_are_reported_as_corruption() {
    let (_dir, path) = temp();
    {
        let mut reg = Registry::open(&path).unwrap();
        for i in 0..50 {
            reg.register(
                &new_version("g", &format!("k{i}"), &[("auc", 0.5)]),
                &manual(),
            )
            .unwrap();
        }
        // Move everything from the WAL into the main file before damaging it.
        reg.conn
            .pragma_update(None, "wal_checkpoint", "TRUNCATE")
            .unwrap();
    }
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 8192);
    // Keep the 100-byte header and the schema page, overwrite the table pages.
    let page = 4096;
    for b in &mut bytes[page..] {
        *b = 0xA5;
    }
    std::fs::write(&path, &bytes).unwrap();
    let result = Registry::open(&path).and_then(|reg| reg.versions("g"));
    let e = result.unwrap_err();
    assert!(
        matches!(e, RegistryError::Corrupt { .. }),
        "expected corruption, got {e:?}"
    );
    assert!(e.to_string().contains(&path.display().to_string()));
}

#[test]
fn another_programs_database_is_refused() {
    let (_dir, path) = temp();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);")
            .unwrap();
    }
    let e = Registry::open(&path).unwrap_err();
    assert!(matches!(e, RegistryError::Foreign { .. }), "{e:?}");
    let text = e.to_string();
    assert!(text.contains("customers"), "{text}");
    assert!(text.contains(&path.display().to_string()), "{text}");
    // The foreign file was not touched.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let v: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, 0);

    let other = path.with_file_name("other.db");
    {
        let conn = rusqlite::Connection::open(&other).unwrap();
        conn.pragma_update(None, "application_id", 1234).unwrap();
    }
    let e = Registry::open(&other).unwrap_err();
    assert!(matches!(e, RegistryError::Foreign { .. }), "{e:?}");
}

#[test]
fn a_directory_or_nothing_is_not_a_registry_path() {
    let dir = tempfile::tempdir().unwrap();
    let e = Registry::open(dir.path()).unwrap_err();
    assert!(e.is_invalid_input());
    assert!(e.to_string().contains("is a directory"), "{e}");
    let e = Registry::open("").unwrap_err();
    assert!(e.to_string().contains("path is empty"), "{e}");
}

const TEST_MIGRATION_2: &str = "ALTER TABLE model_versions ADD COLUMN signature TEXT;";

#[test]
fn an_older_schema_is_migrated_forward_keeping_its_data() {
    let (_dir, path) = temp();
    let v1 = &schema::MIGRATIONS[..1];
    {
        let mut reg = Registry::open_with_migrations(&path, v1).unwrap();
        assert_eq!(reg.schema_version().unwrap(), 1);
        reg.register(&new_version("g", "a", &[("auc", 0.9)]), &manual())
            .unwrap();
    }
    let v2 = [schema::MIGRATIONS[0], TEST_MIGRATION_2];
    let mut reg = Registry::open_with_migrations(&path, &v2).unwrap();
    assert_eq!(reg.schema_version().unwrap(), 2);
    let has_column: bool = reg
        .conn
        .query_row(
            "SELECT COUNT(*) FROM pragma_table_info('model_versions') WHERE name = 'signature'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n == 1)
        .unwrap();
    assert!(has_column);
    assert_eq!(reg.version("g", 1).unwrap().metrics["auc"], 0.9);
    reg.register(&new_version("g", "b", &[]), &manual())
        .unwrap();
    assert_eq!(reg.versions("g").unwrap().len(), 2);
}

#[test]
fn a_newer_schema_is_refused() {
    let (_dir, path) = temp();
    let v2 = [schema::MIGRATIONS[0], TEST_MIGRATION_2];
    drop(Registry::open_with_migrations(&path, &v2).unwrap());
    let e = Registry::open(&path).unwrap_err();
    assert!(
        matches!(
            e,
            RegistryError::TooNew {
                found: 2,
                supported: 1,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("upgrade `pipeline`"), "{e}");
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
pub(super) static CRASH_BEFORE_COMMIT: AtomicBool = AtomicBool::new(false);

/// Tells the test binary, re-run as a child process, what to do.
const CHILD_ENV: &str = "PIPELINE_REGISTRY_TEST_CHILD";
const CHILD_TEST: &str = "registry::tests::child_process_entry_point";

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
