//! The `schedule:` section: when `pipeline schedule` starts a pipeline.
//!
//! Everything a schedule says is checked here, before a scheduler starts:
//! cron expressions and the time zone, the policies, and that `on_change`
//! names inputs of the pipeline.

use std::collections::BTreeMap;
use std::time::Duration;

use super::decode::{Ctx, DResult};
use super::load::decode_duration;
use super::model::{CatchUp, Concurrency, InputDef, Schedule};
use super::source::Diagnostic;
use super::yaml::{Node, NodeKind};

const KEYS: &[&str] = &[
    "cron",
    "timezone",
    "only_if_inputs_changed",
    "concurrency",
    "catch_up",
    "max_catch_up",
    "starting_deadline",
    "suspend",
    "on_change",
    "poll_interval",
];

/// How often `on_change` inputs are looked at unless `poll_interval` says.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(60);

/// The most missed firings `catch_up: all` may run.
pub const MAX_CATCH_UP: i64 = 1000;

pub fn decode(ctx: &Ctx, node: &Node, inputs: &BTreeMap<String, InputDef>) -> DResult<Schedule> {
    let f = ctx.fields(node, "schedule", KEYS)?;
    let mut cron = Vec::new();
    if let Some(cron_node) = f.get("cron") {
        let items: Vec<&Node> = match &cron_node.kind {
            NodeKind::Seq(items) => items.iter().collect(),
            _ => vec![cron_node],
        };
        if items.is_empty() {
            return Err(ctx
                .err(cron_node, "`cron` lists no expression")
                .help("give one expression, e.g. \"0 3 * * 1\", or a list of them"));
        }
        for n in items {
            let c = ctx.string(n, "cron")?;
            if let Err(e) = crate::schedule::cron::parse_cron(&c.value) {
                return Err(ctx.err(n, e).help(
                    "write five fields: minute hour day-of-month month day-of-week, e.g. \"0 3 * * 1\"",
                ));
            }
            cron.push(c.value);
        }
    }
    let tz_node = f.get("timezone");
    let tz = tz_node.map(|n| ctx.string(n, "timezone")).transpose()?;
    if let (Some(n), Some(t)) = (tz_node, &tz)
        && let Err(e) = crate::schedule::cron::parse_timezone(t)
    {
        return Err(ctx
            .err(n, e)
            .help("use an IANA time zone name such as Europe/Berlin or America/New_York"));
    }
    let flag = |key: &str| -> DResult<bool> {
        Ok(f.get(key)
            .map(|n| ctx.bool(n, key))
            .transpose()?
            .is_some_and(|b| b.value))
    };
    let choice = |key: &str, names: &[&str]| -> DResult<Option<String>> {
        let Some(n) = f.get(key) else { return Ok(None) };
        let v = ctx.string(n, key)?;
        if !names.contains(&v.value.as_str()) {
            return Err(ctx
                .err(
                    n,
                    format!(
                        "`{key}` must be one of {}, found `{}`",
                        names.join(", "),
                        v.value
                    ),
                )
                .suggest(&v.value, names.iter().copied()));
        }
        Ok(Some(v.value))
    };
    let concurrency = choice("concurrency", Concurrency::NAMES)?
        .and_then(|s| Concurrency::parse(&s))
        .unwrap_or_default();
    let catch_up = choice("catch_up", CatchUp::NAMES)?
        .and_then(|s| CatchUp::parse(&s))
        .unwrap_or_default();
    let max_catch_up = match f.get("max_catch_up") {
        Some(n) if catch_up != CatchUp::All => {
            return Err(ctx
                .err(n, "`max_catch_up` bounds `catch_up: all`, and this schedule does not catch up all")
                .help("write `catch_up: all`, or remove `max_catch_up`"));
        }
        Some(n) => Some(
            ctx.int_in(
                n,
                "max_catch_up",
                1,
                MAX_CATCH_UP,
                "the number of missed firings to run after downtime",
            )?
            .value as u32,
        ),
        None if catch_up == CatchUp::All => {
            let at = f.get("catch_up").unwrap_or(node);
            return Err(ctx
                .err(at, "`catch_up: all` needs a bound: after a long downtime it would start every missed firing")
                .help("add `max_catch_up: 10` (at most that many of the latest missed firings run)"));
        }
        None => None,
    };
    let starting_deadline = f
        .get("starting_deadline")
        .map(|n| decode_duration(ctx, n, "starting_deadline"))
        .transpose()?;
    let mut on_change = Vec::new();
    if let Some(n) = f.get("on_change") {
        for r in ctx.string_list(n, "on_change")? {
            let name = r.value.strip_prefix("inputs.").unwrap_or(&r.value);
            if !inputs.contains_key(name) {
                return Err(Diagnostic::at(
                    &ctx.source,
                    r.span,
                    format!(
                        "`on_change` names `{}`, which is not an input of this pipeline",
                        r.value
                    ),
                )
                .suggest(name, inputs.keys().map(String::as_str))
                .help(
                    "write `on_change: [inputs.NAME]` with NAME one of the pipeline's `inputs:`",
                ));
            }
            if !r.value.starts_with("inputs.") {
                return Err(Diagnostic::at(
                    &ctx.source,
                    r.span,
                    format!("`on_change` takes input references, found `{}`", r.value),
                )
                .help(format!("write `inputs.{name}`")));
            }
            on_change.push(name.to_string());
        }
        if on_change.is_empty() {
            return Err(ctx
                .err(n, "`on_change` lists no input")
                .help("write `on_change: [inputs.NAME]`, or remove it"));
        }
    }
    let poll_interval = match f.get("poll_interval") {
        Some(n) if on_change.is_empty() => {
            return Err(ctx
                .err(n, "`poll_interval` says how often `on_change` inputs are looked at, and this schedule has no `on_change`")
                .help("add `on_change: [inputs.NAME]`, or remove `poll_interval`"));
        }
        Some(n) => {
            let d = decode_duration(ctx, n, "poll_interval")?;
            if d < Duration::from_secs(1) {
                return Err(ctx
                    .err(n, "`poll_interval` must be at least 1s")
                    .help("inputs are digested at each look; poll every minute or so"));
            }
            d
        }
        None => DEFAULT_POLL_INTERVAL,
    };
    if cron.is_empty() && on_change.is_empty() {
        return Err(ctx
            .err(
                node,
                "the schedule says neither when (`cron`) nor on what (`on_change`) to run",
            )
            .help("add `cron: \"0 3 * * 1\"` or `on_change: [inputs.NAME]`"));
    }
    Ok(Schedule {
        cron,
        timezone: tz.map(|s| s.value),
        only_if_inputs_changed: flag("only_if_inputs_changed")?,
        concurrency,
        catch_up,
        max_catch_up,
        starting_deadline,
        suspend: flag("suspend")?,
        on_change,
        poll_interval,
    })
}
