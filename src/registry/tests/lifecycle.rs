//! Registering, approval policies, reviews, references and queries.

use std::collections::BTreeMap;

use super::super::*;
use super::{manual, new_version};

on_both! {
fn versions_are_numbered_per_group_and_keep_their_lineage(db) {
    let mut reg = db.open();
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
}

on_both! {
fn registering_the_same_key_twice_returns_the_existing_version(db) {
    let mut reg = db.open();
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
}

on_both! {
fn without_a_key_run_step_and_digest_identify_a_registration(db) {
    let mut reg = db.open();
    let mut nv = new_version("churn", "x", &[]);
    nv.registration_key = None;
    let a = reg.register(&nv, &manual()).unwrap();
    assert_eq!(a.version.registration_key, "run-x/register/sha256:x");
    assert!(!reg.register(&nv, &manual()).unwrap().created);
    nv.artifact_digest = "sha256:other".into();
    assert_eq!(reg.register(&nv, &manual()).unwrap().version.version, 2);
}
}

on_both! {
fn manual_policy_leaves_the_version_pending_and_says_why(db) {
    let mut reg = db.open();
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
}

on_both! {
fn auto_approve_if_approves_and_records_the_reason(db) {
    let mut reg = db.open();
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
}

on_both! {
fn a_failed_registration_writes_nothing(db) {
    let mut reg = db.open();
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
}

on_both! {
fn invalid_registrations_are_refused(db) {
    let mut reg = db.open();
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
}

on_both! {
fn beat_champion_compares_with_the_newest_approved_version(db) {
    let mut reg = db.open();
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
}

on_both! {
fn approving_twice_is_a_reported_no_op(db) {
    let mut reg = db.open();
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
}

on_both! {
fn unknown_versions_and_groups_say_what_exists(db) {
    let mut reg = db.open();
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
}

on_both! {
fn references_resolve_to_the_right_version(db) {
    let mut reg = db.open();
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
}

on_both! {
fn groups_summarise_counts_and_champions(db) {
    let mut reg = db.open();
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
}

on_both! {
fn diff_marks_what_changed(db) {
    let mut reg = db.open();
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
}

on_both! {
fn hook_environment_describes_the_version(db) {
    let mut reg = db.open();
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
}

on_both! {
fn the_audit_trail_cannot_be_rewritten(db) {
    let mut reg = db.open();
    reg.register(&new_version("g", "a", &[]), &manual())
        .unwrap();
    let upd = reg.execute_raw("UPDATE audit_events SET actor = 'mallory'");
    assert!(upd.unwrap_err().to_string().contains("append-only"));
    let del = reg.execute_raw("DELETE FROM audit_events");
    assert!(del.unwrap_err().to_string().contains("append-only"));
    assert_eq!(reg.history("g").unwrap()[0].by, "pipeline run");
}
}
