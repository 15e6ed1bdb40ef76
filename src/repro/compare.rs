//! Comparing a reproduction's outputs with those of the run it reproduces.
//!
//! Outputs are compared by digest. An output that differs is compared file
//! by file (which files inside it changed, appeared or went), and for a step
//! that is not promised byte-identical ([`inexact_steps`]) the files that
//! differ are compared again within [`TOLERANCE`]: text number by number
//! (everything between the numbers equal), gzip and tar archives member by
//! member, anything else byte for byte.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde::Serialize;

use crate::dag::{EdgeKind, Plan};
use crate::runs::{OutputRecord, StepRecord, StepStatus};
use crate::schedule::StepSummary;
use crate::spec::model::StepKind;
use crate::store::{Store, TreeEntry, tree_entries};

/// How far apart two numbers of a step that is not promised byte-identical
/// may be: this much of the larger magnitude, or this much absolutely for
/// magnitudes below 1.
pub const TOLERANCE: f64 = 1e-6;

/// The algorithms whose training on several nodes adds each node's partial
/// sums in floating point, so that the total depends on how the rows are
/// shared out between the nodes. (gbdt rounds its gradients onto a grid on
/// which every sum is exact, and so trains the same trees on any number of
/// nodes.)
const INEXACT_ON_NODES: &[&str] = &["kmeans", "pca", "linear-learner"];

/// For each step of the plan (by index), why its outputs are promised only
/// within [`TOLERANCE`], or `None` when they are promised byte for byte.
pub fn inexact_steps(plan: &Plan) -> Vec<Option<String>> {
    let p = &plan.pipeline;
    let mut out: Vec<Option<String>> = vec![None; p.steps.len()];
    for &i in &plan.order {
        let step = &p.steps[i];
        if let StepKind::Train(t) = &step.kind
            && let Some(a) = t.algorithm.as_deref()
            && INEXACT_ON_NODES.contains(&a)
            && step.resources.nodes > 1
        {
            out[i] = Some(format!(
                "{a} on {} nodes adds the nodes' partial sums in floating point: its model is promised within {TOLERANCE:e} relative, not byte for byte",
                step.resources.nodes
            ));
            continue;
        }
        if let Some((j, _)) = plan
            .deps(i)
            .into_iter()
            .find(|(j, k)| *k == EdgeKind::Data && out[*j].is_some())
        {
            out[i] = Some(format!(
                "it reads the outputs of `{}`, which are promised within {TOLERANCE:e} relative, not byte for byte",
                p.steps[j].name()
            ));
        }
    }
    out
}

/// What a comparison found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Identical,
    /// Not byte for byte, but every number within [`TOLERANCE`] (only for
    /// steps not promised byte-identical).
    WithinTolerance,
    Different,
}

impl Verdict {
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Identical => "identical",
            Verdict::WithinTolerance => "within tolerance",
            Verdict::Different => "different",
        }
    }
}

/// One step of the reproduction against the recorded run.
#[derive(Debug, Clone, Serialize)]
pub struct StepComparison {
    pub verdict: Verdict,
    /// What the verdict rests on, when there is more to say than the digests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Why the step is compared within tolerance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, OutputComparison>,
}

/// One output of a step.
#[derive(Debug, Clone, Serialize)]
pub struct OutputComparison {
    pub verdict: Verdict,
    pub recorded: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reproduced: Option<String>,
    /// The files that differ inside the output (a directory).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileDifference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A file that differs between the recorded output and the reproduced one.
#[derive(Debug, Clone, Serialize)]
pub struct FileDifference {
    /// Its path inside the output.
    pub path: String,
    /// `changed`, `only in the run` or `only in the reproduction`.
    pub change: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reproduced: Option<String>,
    /// Compared within tolerance: whether every number agreed (`None`: not compared so).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub within_tolerance: Option<bool>,
}

/// Where the two runs' artifacts are.
pub struct Stores<'a> {
    /// The workspace's store: the recorded run's outputs.
    pub recorded: &'a Store,
    /// The scratch store: the reproduction's.
    pub reproduced: &'a Store,
}

/// Compares step `kind`'s reproduction with its record.
pub fn compare_step(
    kind: &StepKind,
    recorded: &StepRecord,
    reproduced: Option<&StepSummary>,
    tolerance: Option<&str>,
    stores: &Stores,
) -> StepComparison {
    let verdict_only = |verdict: Verdict, note: String| StepComparison {
        verdict,
        note: Some(note),
        tolerance: tolerance.map(str::to_string),
        outputs: BTreeMap::new(),
    };
    let Some(rep) = reproduced else {
        return verdict_only(Verdict::Different, "not in the reproduction".into());
    };
    match (recorded.status, rep.status) {
        (StepStatus::Skipped, StepStatus::Skipped) => {
            return verdict_only(Verdict::Identical, "skipped in both".into());
        }
        (StepStatus::Succeeded, StepStatus::Succeeded) => {}
        (a, b) => {
            let why = rep
                .failure
                .as_deref()
                .map(|f| format!(": {f}"))
                .unwrap_or_default();
            return verdict_only(
                Verdict::Different,
                format!(
                    "{} in the run, {} in the reproduction{why}",
                    a.as_str(),
                    b.as_str()
                ),
            );
        }
    }
    let mut outputs = BTreeMap::new();
    for (name, rec) in &recorded.outputs {
        let cmp = match rep.outputs.get(name) {
            None => OutputComparison {
                verdict: Verdict::Different,
                recorded: rec.digest.clone(),
                reproduced: None,
                files: vec![],
                note: Some("the reproduction has no such output".into()),
            },
            Some(new) if matches!(kind, StepKind::Register(_)) => {
                compare_registration(rec, new, tolerance.is_some(), stores)
            }
            // A search's wall-clock times are not the run's result.
            Some(new) if kind.search().is_some() && name == "leaderboard" => compare_output_except(
                rec,
                new,
                tolerance.is_some(),
                stores,
                crate::schedule::automl::TIMINGS_FILE,
            ),
            Some(new) => compare_output(rec, new, tolerance.is_some(), stores),
        };
        outputs.insert(name.clone(), cmp);
    }
    for (name, new) in rep
        .outputs
        .iter()
        .filter(|(n, _)| !recorded.outputs.contains_key(*n))
    {
        outputs.insert(
            name.clone(),
            OutputComparison {
                verdict: Verdict::Different,
                recorded: String::new(),
                reproduced: Some(new.digest.clone()),
                files: vec![],
                note: Some("the recorded run has no such output".into()),
            },
        );
    }
    let verdict = outputs
        .values()
        .map(|o| o.verdict)
        .max()
        .unwrap_or(Verdict::Identical);
    StepComparison {
        verdict,
        note: None,
        tolerance: tolerance.map(str::to_string),
        outputs,
    }
}

/// A register step's `version` output: what was registered (the group and
/// the model's artifact), not how the registry numbered it.
fn compare_registration(
    rec: &OutputRecord,
    new: &OutputRecord,
    tolerant: bool,
    stores: &Stores,
) -> OutputComparison {
    let read = |store: &Store, digest: &str| -> Option<serde_json::Value> {
        let text = std::fs::read(store.path_of(digest).join("version.json")).ok()?;
        serde_json::from_slice(&text).ok()
    };
    let base = OutputComparison {
        verdict: Verdict::Identical,
        recorded: rec.digest.clone(),
        reproduced: Some(new.digest.clone()),
        files: vec![],
        note: None,
    };
    let (Some(a), Some(b)) = (
        read(stores.recorded, &rec.digest),
        read(stores.reproduced, &new.digest),
    ) else {
        return OutputComparison {
            verdict: Verdict::Different,
            note: Some("version.json could not be read on one side".into()),
            ..base
        };
    };
    if a["group"] != b["group"] {
        return OutputComparison {
            verdict: Verdict::Different,
            note: Some(format!(
                "registered into group {} in the run, {} in the reproduction",
                a["group"], b["group"]
            )),
            ..base
        };
    }
    let artifact = |v: &serde_json::Value| v["artifact_digest"].as_str().unwrap_or("").to_string();
    if artifact(&a) == artifact(&b) {
        return OutputComparison {
            note: Some(format!(
                "the same model (artifact {}) registered, into a scratch copy of the registry; version numbers and statuses are the registry's",
                &artifact(&a)[..artifact(&a).len().min(12)]
            )),
            ..base
        };
    }
    if tolerant {
        return OutputComparison {
            verdict: Verdict::WithinTolerance,
            note: Some("the model it registered is compared at the step that trained it".into()),
            ..base
        };
    }
    OutputComparison {
        verdict: Verdict::Different,
        note: Some(format!(
            "registered artifact {} in the run, {} in the reproduction",
            artifact(&a),
            artifact(&b)
        )),
        ..base
    }
}

fn compare_output(
    rec: &OutputRecord,
    new: &OutputRecord,
    tolerant: bool,
    stores: &Stores,
) -> OutputComparison {
    compare_output_except(rec, new, tolerant, stores, "")
}

/// Like [`compare_output`], with the file `skip` of a directory left out
/// (said in the note when it differs).
fn compare_output_except(
    rec: &OutputRecord,
    new: &OutputRecord,
    tolerant: bool,
    stores: &Stores,
    skip: &str,
) -> OutputComparison {
    let mut cmp = OutputComparison {
        verdict: Verdict::Identical,
        recorded: rec.digest.clone(),
        reproduced: Some(new.digest.clone()),
        files: vec![],
        note: None,
    };
    if rec.digest == new.digest {
        return cmp;
    }
    cmp.verdict = Verdict::Different;
    let (old_dir, new_dir) = (
        stores.recorded.path_of(&rec.digest),
        stores.reproduced.path_of(&new.digest),
    );
    let (Ok(old), Ok(now)) = (files_of(&old_dir), files_of(&new_dir)) else {
        cmp.note = Some(format!(
            "the recorded artifact is no longer in this workspace's store ({}): its files cannot be compared",
            old_dir.display()
        ));
        return cmp;
    };
    let mut all_within = tolerant;
    let mut skipped = false;
    for (path, d) in &old {
        if !skip.is_empty() && path == skip {
            skipped |= now.get(path) != Some(d);
            continue;
        }
        match now.get(path) {
            Some(n) if n == d => {}
            Some(n) => {
                let within = tolerant
                    .then(|| files_within_tolerance(&old_dir.join(path), &new_dir.join(path)));
                all_within &= within == Some(true);
                cmp.files.push(FileDifference {
                    path: path.clone(),
                    change: "changed",
                    recorded: Some(d.clone()),
                    reproduced: Some(n.clone()),
                    within_tolerance: within,
                });
            }
            None => {
                all_within = false;
                cmp.files.push(FileDifference {
                    path: path.clone(),
                    change: "only in the run",
                    recorded: Some(d.clone()),
                    reproduced: None,
                    within_tolerance: None,
                });
            }
        }
    }
    for (path, n) in now
        .iter()
        .filter(|(p, _)| !old.contains_key(*p) && (skip.is_empty() || *p != skip))
    {
        all_within = false;
        cmp.files.push(FileDifference {
            path: path.clone(),
            change: "only in the reproduction",
            recorded: None,
            reproduced: Some(n.clone()),
            within_tolerance: None,
        });
    }
    if all_within {
        cmp.verdict = Verdict::WithinTolerance;
    }
    if cmp.files.is_empty() && skipped {
        // Only the skipped file differs: the rest is byte for byte the same.
        cmp.verdict = Verdict::Identical;
        cmp.note = Some(format!("{skip} holds wall-clock times and is not compared"));
    }
    cmp
}

/// The files of an artifact directory, by relative path, with their digests.
fn files_of(dir: &Path) -> std::io::Result<BTreeMap<String, String>> {
    Ok(tree_entries(dir)?
        .into_iter()
        .filter_map(|e| match e {
            TreeEntry::File(path, digest, _) => Some((path, digest)),
            TreeEntry::Dir(_) => None,
        })
        .collect())
}

/// Whether two files agree within [`TOLERANCE`] (see the module's doc).
pub fn files_within_tolerance(a: &Path, b: &Path) -> bool {
    match (std::fs::read(a), std::fs::read(b)) {
        (Ok(x), Ok(y)) => bytes_within_tolerance(&x, &y, 0),
        _ => false,
    }
}

/// Archives may nest (a `.tar.gz` is a tar in gzip); a few levels are enough.
const MAX_NESTING: usize = 4;

fn bytes_within_tolerance(a: &[u8], b: &[u8], depth: usize) -> bool {
    if a == b {
        return true;
    }
    if depth >= MAX_NESTING {
        return false;
    }
    if let (Some(x), Some(y)) = (gunzip(a), gunzip(b)) {
        return bytes_within_tolerance(&x, &y, depth + 1);
    }
    if let (Some(x), Some(y)) = (tar_members(a), tar_members(b)) {
        return x.len() == y.len()
            && x.iter()
                .zip(&y)
                .all(|((na, da), (nb, db))| na == nb && bytes_within_tolerance(da, db, depth + 1));
    }
    match (std::str::from_utf8(a), std::str::from_utf8(b)) {
        (Ok(x), Ok(y)) => text_within_tolerance(x, y),
        _ => false,
    }
}

fn gunzip(b: &[u8]) -> Option<Vec<u8>> {
    if !b.starts_with(&[0x1f, 0x8b]) {
        return None;
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b).read_to_end(&mut out).ok()?;
    Some(out)
}

/// The members of a tar archive, by name, in order.
fn tar_members(b: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    if b.len() < 512 || &b[257..262] != b"ustar" {
        return None;
    }
    let mut out = Vec::new();
    let mut archive = tar::Archive::new(b);
    for entry in archive.entries().ok()? {
        let mut entry = entry.ok()?;
        let name = entry.path().ok()?.display().to_string();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).ok()?;
        out.push((name, data));
    }
    Some(out)
}

/// A piece of text: a number, or what lies between numbers.
#[derive(Debug, PartialEq)]
enum Token<'a> {
    Text(&'a str),
    Number(f64),
}

/// Splits text into numbers (`-1.5e-3`, `42`, `.5`) and the text between them.
fn tokens(s: &str) -> Vec<Token<'_>> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let (mut i, mut text_start) = (0, 0);
    while i < b.len() {
        let starts_number = b[i].is_ascii_digit()
            || (b[i] == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit))
            || (b[i] == b'-'
                && (b.get(i + 1).is_some_and(u8::is_ascii_digit)
                    || (b.get(i + 1) == Some(&b'.')
                        && b.get(i + 2).is_some_and(u8::is_ascii_digit))));
        // A digit inside a word (`algo2`, a hex digest) belongs to the word.
        let in_word = i > 0 && (b[i - 1].is_ascii_alphabetic() || b[i - 1] == b'_');
        if !starts_number || in_word {
            i += 1;
            continue;
        }
        let start = i;
        if b[i] == b'-' {
            i += 1;
        }
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
        }
        if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
            let mut j = i + 1;
            if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
                j += 1;
            }
            if j < b.len() && b[j].is_ascii_digit() {
                while j < b.len() && b[j].is_ascii_digit() {
                    j += 1;
                }
                i = j;
            }
        }
        let Ok(x) = s[start..i].parse::<f64>() else {
            continue;
        };
        if text_start < start {
            out.push(Token::Text(&s[text_start..start]));
        }
        out.push(Token::Number(x));
        text_start = i;
    }
    if text_start < b.len() {
        out.push(Token::Text(&s[text_start..]));
    }
    out
}

/// Whether two numbers agree within [`TOLERANCE`].
pub fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= TOLERANCE * a.abs().max(b.abs()).max(1.0)
}

/// Two texts agree when they are the same between their numbers and every
/// number is [`close`] to its counterpart.
pub fn text_within_tolerance(a: &str, b: &str) -> bool {
    let (x, y) = (tokens(a), tokens(b));
    x.len() == y.len()
        && x.iter().zip(&y).all(|(p, q)| match (p, q) {
            (Token::Text(s), Token::Text(t)) => s == t,
            (Token::Number(u), Token::Number(v)) => close(*u, *v),
            _ => false,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_compared_within_the_tolerance_and_the_rest_exactly() {
        assert!(text_within_tolerance(
            r#"{"centres": [0.1234567, -2.5e3], "k": 3}"#,
            r#"{"centres": [0.12345671, -2.5000001e3], "k": 3}"#
        ));
        assert!(!text_within_tolerance(r#"{"a": 0.1}"#, r#"{"a": 0.2}"#));
        assert!(!text_within_tolerance(r#"{"a": 1}"#, r#"{"b": 1}"#));
        assert!(!text_within_tolerance("1,2,3", "1,2"));
        // Digits inside words are text: a changed digest is a difference.
        assert!(!text_within_tolerance("ab12cd", "ab13cd"));
        assert!(text_within_tolerance("algo-1 x", "algo-1 x"));
        assert_eq!(
            tokens("a=-1.5e-3,.5"),
            vec![
                Token::Text("a="),
                Token::Number(-1.5e-3),
                Token::Text(","),
                Token::Number(0.5)
            ]
        );
    }

    #[test]
    fn archives_are_compared_member_by_member() {
        let pack = |text: &str| {
            let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            let mut tar = tar::Builder::new(gz);
            let mut h = tar::Header::new_gnu();
            h.set_size(text.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            tar.append_data(&mut h, "model.json", text.as_bytes())
                .unwrap();
            tar.into_inner().unwrap().finish().unwrap()
        };
        let (a, b, c) = (pack("[1.0000000]"), pack("[1.0000001]"), pack("[1.1]"));
        assert_ne!(a, b);
        assert!(bytes_within_tolerance(&a, &b, 0));
        assert!(!bytes_within_tolerance(&a, &c, 0));
        assert!(!bytes_within_tolerance(&[0, 1, 2], &[0, 1, 3], 0));
    }
}
