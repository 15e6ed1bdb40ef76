//! Approval policies: what happens to a version right after it is registered.
//!
//! A policy only ever approves or leaves the version pending; it never rejects,
//! because "not good enough to ship automatically" is a question for a person,
//! as with SageMaker's `PendingManualApproval`. The verdict and its reason go
//! into the audit trail so `pipeline registry history` shows why a version was
//! or was not approved.

use std::collections::BTreeMap;

use serde::Serialize;

use super::error::RegistryError;
use super::expr::Condition;
use super::model::{Decision, ModelVersion};

/// How a new version is approved.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub enum ApprovalPolicy {
    /// Always wait for a person (the default).
    #[default]
    Manual,
    /// Approve when the condition over the version's metrics holds.
    AutoApproveIf(#[serde(serialize_with = "condition_source")] Condition),
    /// Approve when the version beats the champion (the newest Approved
    /// version) on `metric` by at least `by`, or when there is no champion.
    BeatChampion {
        metric: String,
        /// The least improvement that counts, `>= 0`; with `0` any strict improvement does.
        by: f64,
        higher_is_better: bool,
    },
}

fn condition_source<S: serde::Serializer>(c: &Condition, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(c.source())
}

impl std::fmt::Display for ApprovalPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApprovalPolicy::Manual => f.write_str("manual approval"),
            ApprovalPolicy::AutoApproveIf(c) => write!(f, "auto-approve if `{c}`"),
            ApprovalPolicy::BeatChampion {
                metric,
                by,
                higher_is_better,
            } => {
                let direction = if *higher_is_better { "higher" } else { "lower" };
                write!(
                    f,
                    "auto-approve if {metric} beats the approved champion by {by} ({direction} is better)"
                )
            }
        }
    }
}

impl ApprovalPolicy {
    /// `AutoApproveIf` from the condition text, checked now so a typo is caught
    /// when the pipeline is validated rather than when it registers.
    pub fn auto_approve_if(condition: &str) -> Result<ApprovalPolicy, RegistryError> {
        Ok(ApprovalPolicy::AutoApproveIf(Condition::parse(condition)?))
    }

    /// `BeatChampion` with its margin checked.
    pub fn beat_champion(
        metric: impl Into<String>,
        by: f64,
        higher_is_better: bool,
    ) -> Result<ApprovalPolicy, RegistryError> {
        let policy = ApprovalPolicy::BeatChampion {
            metric: metric.into(),
            by,
            higher_is_better,
        };
        policy.check()?;
        Ok(policy)
    }

    /// The metrics the policy reads, so the caller can check them against what
    /// the evaluate step produces before running anything.
    pub fn metric_names(&self) -> Vec<String> {
        match self {
            ApprovalPolicy::Manual => Vec::new(),
            ApprovalPolicy::AutoApproveIf(c) => c.metric_names(),
            ApprovalPolicy::BeatChampion { metric, .. } => vec![metric.clone()],
        }
    }

    pub(crate) fn check(&self) -> Result<(), RegistryError> {
        if let ApprovalPolicy::BeatChampion { metric, by, .. } = self {
            if metric.trim().is_empty() {
                return Err(RegistryError::invalid_with_hint(
                    "the beat-champion policy names no metric",
                    "set `metric`, e.g. `metric: auc`",
                ));
            }
            if !by.is_finite() || *by < 0.0 {
                return Err(RegistryError::invalid_with_hint(
                    format!("the beat-champion margin `by` is {by}"),
                    "set `by` to a finite number >= 0, e.g. `by: 0.01`",
                ));
            }
        }
        Ok(())
    }

    /// Decides on a new version with `metrics`, given the current champion.
    pub(crate) fn decide(
        &self,
        metrics: &BTreeMap<String, f64>,
        champion: Option<&ModelVersion>,
    ) -> Result<Decision, RegistryError> {
        self.check()?;
        match self {
            ApprovalPolicy::Manual => Ok(Decision {
                approved: false,
                reason: "approval policy is manual; waiting for a reviewer".to_string(),
            }),
            ApprovalPolicy::AutoApproveIf(condition) => {
                let eval = condition.evaluate(metrics)?;
                let verdict = if eval.holds { "holds" } else { "does not hold" };
                Ok(Decision {
                    approved: eval.holds,
                    reason: format!(
                        "auto_approve_if `{}` {verdict}: {}",
                        condition.source(),
                        eval.explanation
                    ),
                })
            }
            ApprovalPolicy::BeatChampion {
                metric,
                by,
                higher_is_better,
            } => {
                let Some(&ours) = metrics.get(metric) else {
                    let known: Vec<&str> = metrics.keys().map(String::as_str).collect();
                    return Err(RegistryError::invalid_with_hint(
                        format!(
                            "the beat-champion policy compares metric `{metric}`, which the new version does not have"
                        ),
                        if known.is_empty() {
                            "pass `metrics: evaluate.metrics` to the register step".to_string()
                        } else {
                            format!("use one of its metrics: {}", known.join(", "))
                        },
                    ));
                };
                let Some(champ) = champion else {
                    return Ok(Decision {
                        approved: true,
                        reason: format!(
                            "no approved version yet; {metric} = {ours} becomes the champion"
                        ),
                    });
                };
                let Some(&theirs) = champ.metrics.get(metric) else {
                    return Ok(Decision {
                        approved: false,
                        reason: format!(
                            "champion version {} has no metric `{metric}` to compare with; \
                             waiting for a reviewer",
                            champ.version
                        ),
                    });
                };
                let gain = if *higher_is_better {
                    ours - theirs
                } else {
                    theirs - ours
                };
                let approved = gain > 0.0 && gain >= *by;
                let direction = if *higher_is_better { "higher" } else { "lower" };
                let verdict = if approved { "beats" } else { "does not beat" };
                Ok(Decision {
                    approved,
                    reason: format!(
                        "{metric} = {ours} {verdict} champion version {} ({metric} = {theirs}) \
                         by the required {by} ({direction} is better, improvement {gain})",
                        champ.version
                    ),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    fn champion(auc: f64) -> ModelVersion {
        ModelVersion {
            group: "g".into(),
            version: 4,
            status: super::super::Status::Approved,
            artifact_digest: "d".into(),
            algorithm: "gbdt".into(),
            hyperparameters: BTreeMap::new(),
            metrics: metrics(&[("auc", auc)]),
            run_id: "r".into(),
            step: "s".into(),
            input_digests: BTreeMap::new(),
            spec_hash: "h".into(),
            params: BTreeMap::new(),
            created_at: "2026-01-01T00:00:00Z".into(),
            description: None,
            tags: BTreeMap::new(),
            registration_key: "k".into(),
            registered_by: "me".into(),
        }
    }

    #[test]
    fn manual_never_approves() {
        let d = ApprovalPolicy::Manual
            .decide(&metrics(&[("auc", 1.0)]), None)
            .unwrap();
        assert!(!d.approved);
    }

    #[test]
    fn auto_approve_if_reports_values() {
        let p = ApprovalPolicy::auto_approve_if("auc >= 0.9").unwrap();
        let yes = p.decide(&metrics(&[("auc", 0.95)]), None).unwrap();
        assert!(yes.approved);
        assert!(yes.reason.contains("auc = 0.95 >= 0.9"), "{}", yes.reason);
        let no = p.decide(&metrics(&[("auc", 0.85)]), None).unwrap();
        assert!(!no.approved);
        assert!(no.reason.contains("does not hold"));
        assert!(p.decide(&metrics(&[("acc", 0.85)]), None).is_err());
    }

    #[test]
    fn beat_champion_margins_and_direction() {
        let higher = ApprovalPolicy::beat_champion("auc", 0.01, true).unwrap();
        let champ = champion(0.90);
        assert!(
            higher
                .decide(&metrics(&[("auc", 0.5)]), None)
                .unwrap()
                .approved
        );
        assert!(
            higher
                .decide(&metrics(&[("auc", 0.92)]), Some(&champ))
                .unwrap()
                .approved
        );
        assert!(
            !higher
                .decide(&metrics(&[("auc", 0.905)]), Some(&champ))
                .unwrap()
                .approved
        );
        assert!(
            !higher
                .decide(&metrics(&[("auc", 0.80)]), Some(&champ))
                .unwrap()
                .approved
        );

        let zero = ApprovalPolicy::beat_champion("auc", 0.0, true).unwrap();
        assert!(
            !zero
                .decide(&metrics(&[("auc", 0.90)]), Some(&champ))
                .unwrap()
                .approved
        );
        assert!(
            zero.decide(&metrics(&[("auc", 0.9001)]), Some(&champ))
                .unwrap()
                .approved
        );

        let lower = ApprovalPolicy::beat_champion("auc", 0.05, false).unwrap();
        assert!(
            lower
                .decide(&metrics(&[("auc", 0.80)]), Some(&champ))
                .unwrap()
                .approved
        );
        assert!(
            !lower
                .decide(&metrics(&[("auc", 0.88)]), Some(&champ))
                .unwrap()
                .approved
        );
    }

    #[test]
    fn beat_champion_without_the_metric() {
        let p = ApprovalPolicy::beat_champion("logloss", 0.0, false).unwrap();
        let err = p.decide(&metrics(&[("auc", 0.9)]), None).unwrap_err();
        assert!(err.is_invalid_input());
        assert!(
            err.to_string().contains("use one of its metrics: auc"),
            "{err}"
        );
        // The champion lacks it: leave the decision to a person.
        let d = p
            .decide(&metrics(&[("logloss", 0.1)]), Some(&champion(0.9)))
            .unwrap();
        assert!(!d.approved);
    }

    #[test]
    fn policies_describe_themselves() {
        assert_eq!(ApprovalPolicy::Manual.to_string(), "manual approval");
        assert_eq!(
            ApprovalPolicy::auto_approve_if("auc > 0.9")
                .unwrap()
                .to_string(),
            "auto-approve if `auc > 0.9`"
        );
        assert_eq!(
            ApprovalPolicy::beat_champion("rmse", 0.5, false)
                .unwrap()
                .to_string(),
            "auto-approve if rmse beats the approved champion by 0.5 (lower is better)"
        );
    }

    #[test]
    fn bad_margins_are_refused() {
        assert!(ApprovalPolicy::beat_champion("auc", -0.1, true).is_err());
        assert!(ApprovalPolicy::beat_champion("auc", f64::NAN, true).is_err());
        assert!(ApprovalPolicy::beat_champion(" ", 0.0, true).is_err());
    }
}
