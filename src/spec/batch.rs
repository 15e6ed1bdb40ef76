//! The `batch:` settings (under `defaults:` or a step): where a step runs on
//! AWS Batch. Every one of them may also come from the environment
//! (`PIPELINE_BATCH_*`, read by the batch executor, see docs/aws.md), so that
//! no account-specific value has to be written in a pipeline file.
//!
//! A step's `batch:` is laid over the defaults' key by key;
//! `job_environment` is merged name by name.

use std::collections::BTreeMap;

use super::decode::{Ctx, DResult};
use super::model::BatchSettings;
use super::yaml::Node;

const KEYS: &[&str] = &[
    "job_queue",
    "region",
    "job_role_arn",
    "execution_role_arn",
    "job_environment",
    "runtime_image",
    "image_repository",
    "runnable_timeout",
];

/// Names the job environment may not set: the engine sets them for the job's
/// own use, or they would change the contract the step runs under.
const RESERVED_PREFIXES: &[&str] = &["SM_", "PIPELINE_", "AWS_BATCH_", "SAGEMAKER_"];

/// Decodes `node` laid over `base`.
pub fn decode(ctx: &Ctx, node: &Node, base: &BatchSettings) -> DResult<BatchSettings> {
    let f = ctx.fields(node, "batch", KEYS)?;
    let mut b = base.clone();
    let text = |key: &str| -> DResult<Option<String>> {
        f.get(key)
            .map(|n| {
                let s = ctx.string(n, key)?;
                if s.value.trim().is_empty() {
                    return Err(ctx.err(n, format!("`{key}` is empty")).help(format!(
                        "give a value, or leave `{key}` out to take it from the environment"
                    )));
                }
                Ok(s.value)
            })
            .transpose()
    };
    if let Some(v) = text("job_queue")? {
        b.job_queue = Some(v);
    }
    if let Some(v) = text("region")? {
        b.region = Some(v);
    }
    for (key, slot) in [
        ("job_role_arn", &mut b.job_role_arn),
        ("execution_role_arn", &mut b.execution_role_arn),
    ] {
        if let Some(v) = text(key)? {
            if !v.starts_with("arn:") {
                let n = f.get(key).expect("present");
                return Err(ctx
                    .err(n, format!("`{key}` must be an IAM role's ARN, not `{v}`"))
                    .help("for example `arn:aws:iam::123456789012:role/pipeline-job`"));
            }
            *slot = Some(v);
        }
    }
    if let Some(v) = text("runtime_image")? {
        b.runtime_image = Some(v);
    }
    if let Some(v) = text("image_repository")? {
        if v.contains(':') && !v.rsplit_once(':').is_some_and(|(_, p)| p.contains('/')) {
            let n = f.get("image_repository").expect("present");
            return Err(ctx
                .err(n, format!("`image_repository` is a repository without a tag, not `{v}`"))
                .help("for example `123456789012.dkr.ecr.eu-west-1.amazonaws.com/pipeline-staged`; the engine chooses the tags"));
        }
        b.image_repository = Some(v);
    }
    if let Some(n) = f.get("runnable_timeout") {
        b.runnable_timeout = Some(super::load::decode_duration(ctx, n, "runnable_timeout")?);
    }
    if let Some(n) = f.get("job_environment") {
        for (k, v) in ctx.entries(n, "job_environment")? {
            let valid = !k.value.is_empty()
                && !k.value.starts_with(|c: char| c.is_ascii_digit())
                && k.value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(ctx
                    .err(
                        v,
                        format!("`{}` is not an environment variable's name", k.value),
                    )
                    .help("use letters, digits and `_`, not starting with a digit"));
            }
            if let Some(p) = RESERVED_PREFIXES.iter().find(|p| k.value.starts_with(**p)) {
                return Err(ctx
                    .err(
                        v,
                        format!(
                            "`{}` is set by the engine for every job (names starting `{p}` are the container contract's)",
                            k.value
                        ),
                    )
                    .help("choose another name"));
            }
            let value = ctx.scalar_string(v, &k.value)?;
            b.job_environment.insert(k.value.clone(), value.value);
        }
    }
    Ok(b)
}

/// Parses `PIPELINE_BATCH_JOB_ENVIRONMENT`: `NAME=VALUE` pairs, one a line
/// or separated by commas.
pub fn parse_env_list(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for item in text
        .split(['\n', ','])
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let Some((k, v)) = item.split_once('=') else {
            return Err(format!("`{item}` is not NAME=VALUE"));
        };
        out.insert(k.trim().to_string(), v.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_lists_split_on_commas_and_lines() {
        let m = parse_env_list("A=1, B=x=y\nC=").unwrap();
        assert_eq!(m["A"], "1");
        assert_eq!(m["B"], "x=y");
        assert_eq!(m["C"], "");
        assert!(parse_env_list("A").is_err());
    }
}
