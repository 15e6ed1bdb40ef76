//! Training curves from a built-in training step's log: the figure each
//! round or epoch printed, by name.
//!
//! - gbdt prints XGBoost's line a round, `[R]<TAB>validation-auc:0.91`
//!   (R counted from 0; more `NAME-METRIC:VALUE` fields when there are more).
//! - linear-learner prints its training objective an iteration (`newton`,
//!   `lbfgs`, `proximal iteration N, objective V`) or its mean mini-batch
//!   loss an epoch (`epoch N, mean mini-batch loss V`).
//!
//! The series are keyed `validation:auc`, `train:objective`, `train:loss`.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;

static XGB: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\[(\d+)\]((?:\t[A-Za-z0-9_]+-[A-Za-z0-9_@.]+:[-+0-9.eEinfa]+)+)\s*$")
        .expect("regex")
});
static XGB_FIELD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\t([A-Za-z0-9_]+)-([A-Za-z0-9_@.]+):([-+0-9.eEinfa]+)").expect("regex")
});
static LINEAR_ITER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"linear-learner: (?:newton|lbfgs|proximal) iteration (\d+), objective ([-+0-9.eE]+)",
    )
    .expect("regex")
});
static LINEAR_EPOCH: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"linear-learner: epoch (\d+), mean mini-batch loss ([-+0-9.eE]+)").expect("regex")
});

/// Most points a series keeps (a longer log is sampled evenly by the plot).
const MAX_POINTS: usize = 100_000;

/// Every series the log shows, by name, as (round or epoch, value).
pub fn from_log(text: &str) -> BTreeMap<String, Vec<(f64, f64)>> {
    let mut out: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    let mut push = |name: String, x: f64, y: f64| {
        let s = out.entry(name).or_default();
        if s.len() < MAX_POINTS && y.is_finite() {
            s.push((x, y));
        }
    };
    for line in text.lines() {
        // A multi-node step's lines may carry the node's name first.
        let line = line.trim_end();
        if let Some(c) = XGB.captures(line) {
            let round: f64 = c[1].parse().unwrap_or(0.0);
            for f in XGB_FIELD.captures_iter(&c[2]) {
                if let Ok(v) = f[3].parse::<f64>() {
                    push(format!("{}:{}", &f[1], &f[2]), round + 1.0, v);
                }
            }
        } else if let Some(c) = LINEAR_ITER.captures(line) {
            if let (Ok(x), Ok(y)) = (c[1].parse::<f64>(), c[2].parse::<f64>()) {
                push("train:objective".into(), x, y);
            }
        } else if let Some(c) = LINEAR_EPOCH.captures(line)
            && let (Ok(x), Ok(y)) = (c[1].parse::<f64>(), c[2].parse::<f64>())
        {
            push("train:loss".into(), x, y);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gbdt_and_linear_learner_lines_become_series() {
        let log = "reading\n[0]\tvalidation-auc:0.90000\n[1]\tvalidation-auc:0.92500\n\
                   [algo-1] [2]\ttrain-logloss:0.3\tvalidation-logloss:0.40000\n\
                   linear-learner: lbfgs iteration 1, objective 6.9e-1\n\
                   linear-learner: epoch 2, mean mini-batch loss 3.5e-01\n[10] trained 10 trees\n";
        let c = from_log(log);
        assert_eq!(c["validation:auc"], vec![(1.0, 0.9), (2.0, 0.925)]);
        assert_eq!(c["train:logloss"], vec![(3.0, 0.3)]);
        assert_eq!(c["validation:logloss"], vec![(3.0, 0.4)]);
        assert_eq!(c["train:objective"], vec![(1.0, 0.69)]);
        assert_eq!(c["train:loss"], vec![(2.0, 0.35)]);
        assert_eq!(c.len(), 5);
    }
}
