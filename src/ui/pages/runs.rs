//! The runs: the list, a run's page (its DAG, steps and log, live while it
//! runs), a step's page (outputs, metrics, reports, feature importance,
//! leaderboards) and the stored artifacts themselves.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use axum::extract::{Extension, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use serde::{Deserialize, Serialize};

use super::{Page, PageError, blocking, fmt_duration, fmt_value, render, seconds_between};
use crate::runs::{RunRecord, RunStatus, RunsDb, StepRecord, live_status};
use crate::ui::{App, Identity};

/// Runs a page of the list shows.
pub const PAGE: usize = 50;

pub(crate) fn open_db(app: &App) -> Result<Option<RunsDb>, PageError> {
    if !app.ws.db_path().exists() {
        return Ok(None);
    }
    Ok(Some(RunsDb::open(&app.ws.db_path())?))
}

fn find_run(db: &RunsDb, id: &str) -> Result<RunRecord, PageError> {
    db.get_run(id)?
        .ok_or_else(|| PageError::not_found(format!("there is no run {id} in this workspace")))
}

/// The run database and run `id` in it (not found when either is missing).
fn open_run(app: &App, id: &str) -> Result<(RunsDb, RunRecord), PageError> {
    let db = open_db(app)?.ok_or_else(|| PageError::not_found("no runs here yet"))?;
    let r = find_run(&db, id)?;
    Ok((db, r))
}

/// How long a run took (so far, while it runs; an interrupted run's is
/// until its last record), as the pages show it.
fn run_duration(r: &RunRecord, status: RunStatus) -> String {
    let end =
        (status != RunStatus::Running).then_some(r.finished_at.as_deref().unwrap_or(&r.started_at));
    seconds_between(&r.started_at, end)
        .map(fmt_duration)
        .unwrap_or_default()
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    page: Option<usize>,
}

/// A run as the list shows it.
#[derive(Serialize)]
struct RunRow {
    id: String,
    pipeline: String,
    status: String,
    started_at: String,
    duration: String,
    steps_done: usize,
    steps: usize,
    params: String,
    metrics: Vec<(String, String)>,
}

/// The metrics a run is known by: those of its last step (in the order they
/// ended) that reported any, at most four.
fn headline(steps: &[StepRecord]) -> Vec<(String, String)> {
    steps
        .iter()
        .filter(|s| !s.metrics.is_empty() && !s.name.contains('.'))
        .max_by(|a, b| a.finished_at.cmp(&b.finished_at))
        .map(|s| {
            s.metrics
                .iter()
                .filter(|(_, v)| v.is_number())
                .take(4)
                .map(|(k, v)| (format!("{}.{k}", s.name), fmt_value(v)))
                .collect()
        })
        .unwrap_or_default()
}

pub async fn list(
    State(app): State<Arc<App>>,
    Extension(who): Extension<Identity>,
    Query(q): Query<ListQuery>,
) -> Page {
    let page = q.page.unwrap_or(1).max(1);
    let (rows, total) = {
        let app = app.clone();
        let (text, status) = (q.q.clone(), q.status.clone());
        blocking(move || {
            let Some(db) = open_db(&app)? else {
                return Ok((vec![], 0));
            };
            // Running and interrupted are both recorded `running`; which is
            // which is told by the run's engine lock.
            let recorded = match status.as_str() {
                "" => None,
                "interrupted" => Some("running".to_string()),
                s => Some(s.to_string()),
            };
            let (runs, total) =
                db.search_runs(text.trim(), recorded.as_deref(), PAGE, (page - 1) * PAGE)?;
            let mut rows = Vec::with_capacity(runs.len());
            for r in runs {
                let live = live_status(&r, &app.ws.run_dir(&r.id));
                if !status.is_empty() && live.as_str() != status {
                    continue;
                }
                let steps = db.steps_of(&r.id)?;
                rows.push(RunRow {
                    duration: run_duration(&r, live),
                    steps_done: steps.iter().filter(|s| s.status.is_done()).count(),
                    steps: steps.len(),
                    params: r
                        .params
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(" "),
                    metrics: headline(&steps),
                    status: live.as_str().to_string(),
                    id: r.id,
                    pipeline: r.pipeline,
                    started_at: r.started_at,
                });
            }
            Ok((rows, total))
        })
        .await?
    };
    let pages = total.div_ceil(PAGE).max(1);
    render(
        &app,
        &who,
        "runs.html",
        minijinja::context! {
            title => "Runs",
            section => "runs",
            runs => minijinja::Value::from(minijinja::value::Serde(&rows)),
            total => total,
            q => q.q,
            status => q.status,
            page => page,
            pages => pages,
            statuses => minijinja::Value::from(minijinja::value::Serde(["running", "succeeded", "failed", "cancelled", "interrupted"])),
        },
    )
}

/// A step as the run page and its live state show it.
#[derive(Serialize, Clone)]
pub struct StepRow {
    pub name: String,
    pub status: String,
    pub cached: bool,
    pub attempts: u32,
    pub duration: String,
    pub failure: Option<String>,
    pub why: String,
    pub outputs: Vec<(String, String, String)>,
    pub metrics: Vec<(String, String)>,
}

/// Why a step is cached or ran, as far as its record tells (the step page
/// says more, from the cache index: [`explain`]).
fn why(s: &StepRecord) -> String {
    if s.cached {
        "cached: an earlier run made these outputs from the same cache key".into()
    } else if s.attempts > 1 {
        format!("ran {} attempts", s.attempts)
    } else {
        String::new()
    }
}

/// Why a step was cached (which run made its outputs) or ran (what changed
/// since the step's previous result), from the cache index; with the run
/// it refers to.
fn explain(
    db: &RunsDb,
    r: &RunRecord,
    s: &StepRecord,
) -> Result<(Vec<String>, Option<String>), PageError> {
    if r.options.no_cache && !s.cached {
        return Ok((
            vec!["ran: the run was started with --no-cache".into()],
            None,
        ));
    }
    let pipeline = &r.pipeline;
    let Some(key) = &s.cache_key else {
        return Ok((vec![], None));
    };
    let Some(entry) = db.cache_get(key)? else {
        return Ok((vec![], None));
    };
    if s.cached {
        return Ok((
            vec![format!(
                "cached: run {} made these outputs from the same cache key on {}",
                entry.run_id, entry.created_at
            )],
            Some(entry.run_id),
        ));
    }
    if entry.run_id != s.run_id {
        return Ok((vec![], None));
    }
    match db.cache_before(pipeline, &s.name, key, entry.created_unix)? {
        None => Ok((
            vec![
                "ran: the cache index holds no earlier result of this step to compare with".into(),
            ],
            None,
        )),
        Some(old) => {
            let mut lines = vec![format!(
                "ran: since run {} made its last result:",
                old.run_id
            )];
            let changes = entry.parts.changes_since(&old.parts);
            if changes.is_empty() {
                lines.push("its cache key differs (the engine changed)".into());
            }
            lines.extend(changes);
            Ok((lines, Some(old.run_id)))
        }
    }
}

pub fn step_row(s: &StepRecord) -> StepRow {
    StepRow {
        name: s.name.clone(),
        status: s.status.as_str().to_string(),
        cached: s.cached,
        attempts: s.attempts,
        duration: s.duration_s.map(fmt_duration).unwrap_or_default(),
        failure: s.failure.clone(),
        why: why(s),
        outputs: s
            .outputs
            .iter()
            .map(|(n, o)| {
                (
                    n.clone(),
                    o.digest.clone(),
                    o.digest.chars().take(12).collect(),
                )
            })
            .collect(),
        metrics: s
            .metrics
            .iter()
            .map(|(k, v)| (k.clone(), fmt_value(v)))
            .collect(),
    }
}

/// A run's steps in the order of its graph (file order), the ones it does not name last.
fn ordered_steps(graph: &Option<serde_json::Value>, mut steps: Vec<StepRecord>) -> Vec<StepRecord> {
    let order: Vec<String> = graph
        .as_ref()
        .and_then(|g| g["steps"].as_array())
        .map(|a| {
            a.iter()
                .filter_map(|s| s["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let pos: BTreeMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    steps.sort_by_key(|s| {
        (
            pos.get(s.name.as_str()).copied().unwrap_or(usize::MAX),
            s.name.clone(),
        )
    });
    steps
}

fn read_graph(app: &App, id: &str) -> Option<serde_json::Value> {
    let text = std::fs::read(app.ws.run_dir(id).join("graph.json")).ok()?;
    serde_json::from_slice(&text).ok()
}

pub async fn show(
    State(app): State<Arc<App>>,
    Extension(who): Extension<Identity>,
    Path(id): Path<String>,
) -> Page {
    let ctx = {
        let app = app.clone();
        blocking(move || {
            let (db, r) = open_run(&app, &id)?;
            let status = live_status(&r, &app.ws.run_dir(&r.id));
            let graph = read_graph(&app, &r.id);
            let steps = ordered_steps(&graph, db.steps_of(&r.id)?);
            let states: BTreeMap<String, String> = steps
                .iter()
                .map(|s| (s.name.clone(), s.status.as_str().to_string()))
                .collect();
            let svg = graph
                .as_ref()
                .map(|g| crate::ui::dag::svg(g, &states))
                .unwrap_or_default();
            let rows: Vec<StepRow> = steps.iter().map(step_row).collect();
            let first_log = steps
                .iter()
                .find(|s| s.status.as_str() == "running")
                .or_else(|| {
                    steps
                        .iter()
                        .find(|s| app.ws.log_path(&r.id, &s.name).is_file())
                })
                .map(|s| s.name.clone());
            let duration = run_duration(&r, status);
            Ok(minijinja::context! {
                title => format!("Run {}", r.id),
                section => "runs",
                run => minijinja::context! {
                    id => r.id,
                    pipeline => r.pipeline,
                    file => r.file,
                    started_at => r.started_at.clone(),
                    finished_at => r.finished_at.clone(),
                    engine => r.engine_version,
                    params => r.params,
                    duration => duration,
                },
                status => status.as_str(),
                live => status == RunStatus::Running,
                interrupted => status == RunStatus::Interrupted,
                dag => svg,
                steps => minijinja::Value::from(minijinja::value::Serde(&rows)),
                log_step => first_log,
            })
        })
        .await?
    };
    render(&app, &who, "run.html", ctx)
}

/// A run's state for the run page's script.
#[derive(Serialize)]
struct RunState {
    status: String,
    steps: Vec<StepRow>,
}

pub async fn state(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let st = blocking(move || {
        let (db, r) = open_run(&app, &id)?;
        let graph = read_graph(&app, &r.id);
        let steps = ordered_steps(&graph, db.steps_of(&r.id)?);
        Ok(RunState {
            status: live_status(&r, &app.ws.run_dir(&r.id)).as_str().to_string(),
            steps: steps.iter().map(step_row).collect(),
        })
    })
    .await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(st)).into_response())
}

#[derive(Deserialize)]
pub struct LogQuery {
    #[serde(default)]
    from: u64,
}

/// Bytes of a log one request returns at most.
const LOG_CHUNK: usize = 256 * 1024;

#[derive(Serialize)]
struct LogChunk {
    text: String,
    next: u64,
    /// The step has ended: nothing more will be written.
    done: bool,
}

pub async fn log(
    State(app): State<Arc<App>>,
    Path((id, step)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
) -> Result<Response, PageError> {
    let chunk = blocking(move || {
        let (db, r) = open_run(&app, &id)?;
        let steps = db.steps_of(&r.id)?;
        let s = steps
            .iter()
            .find(|s| s.name == step)
            .ok_or_else(|| PageError::not_found(format!("run {} has no step `{step}`", r.id)))?;
        let ended = s.status.is_done()
            || !matches!(s.status.as_str(), "running" | "pending")
            || live_status(&r, &app.ws.run_dir(&r.id)) != RunStatus::Running;
        let path = app.ws.log_path(&r.id, &step);
        let mut f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(_) => {
                return Ok(LogChunk {
                    text: String::new(),
                    next: 0,
                    done: ended,
                });
            }
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let from = q.from.min(len);
        f.seek(SeekFrom::Start(from))
            .map_err(|e| PageError::internal(format!("read {}: {e}", path.display())))?;
        let mut buf = Vec::with_capacity(LOG_CHUNK.min((len - from) as usize));
        f.take(LOG_CHUNK as u64)
            .read_to_end(&mut buf)
            .map_err(|e| PageError::internal(format!("read {}: {e}", path.display())))?;
        // Whole lines only while the step writes, so no character is cut.
        if !ended && let Some(end) = buf.iter().rposition(|&b| b == b'\n') {
            buf.truncate(end + 1);
        } else if !ended {
            buf.clear();
        }
        let next = from + buf.len() as u64;
        Ok(LogChunk {
            text: String::from_utf8_lossy(&buf).into_owned(),
            next,
            done: ended && next >= len,
        })
    })
    .await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(chunk)).into_response())
}

/// What a step's page shows of a table output (a leaderboard).
#[derive(Serialize)]
struct CsvTable {
    title: String,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    more: usize,
}

/// Rows of a table shown on a page; the file itself has them all.
const TABLE_ROWS: usize = 200;

fn read_csv(path: &std::path::Path, title: &str) -> Option<CsvTable> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines();
    let header = crate::schedule::tune::split_csv(lines.next()?);
    let all: Vec<&str> = lines.collect();
    let rows = all
        .iter()
        .take(TABLE_ROWS)
        .map(|l| crate::schedule::tune::split_csv(l))
        .collect();
    Some(CsvTable {
        title: title.to_string(),
        header,
        rows,
        more: all.len().saturating_sub(TABLE_ROWS),
    })
}

/// A gbdt model's feature importance (gain and cover), from its `model.json`.
#[derive(Serialize)]
struct Importance {
    /// Feature, total gain, gain, cover, weight, and the bar's width in
    /// percent of the largest total gain.
    rows: Vec<(String, String, String, String, String, f64)>,
}

fn importance(model_dir: &std::path::Path) -> Option<Importance> {
    let text = std::fs::read(model_dir.join("model.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
    let imp = v.get("feature_importance")?;
    // Each kind is a map from feature name to figure (features no split used are absent).
    let kind = |key: &str| -> BTreeMap<String, f64> {
        imp.get(key)
            .and_then(|g| g.as_object())
            .map(|m| {
                m.iter()
                    .filter_map(|(k, x)| Some((k.clone(), x.as_f64()?)))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (total_gain, gain, cover, weight) = (
        kind("total_gain"),
        kind("gain"),
        kind("cover"),
        kind("weight"),
    );
    if total_gain.is_empty() {
        return None;
    }
    let mut order: Vec<(&String, f64)> = total_gain.iter().map(|(k, v)| (k, *v)).collect();
    order.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    let fmt = |m: &BTreeMap<String, f64>, k: &str| {
        m.get(k)
            .map(|x| crate::report::fmt_num(*x))
            .unwrap_or_default()
    };
    let top = order.first().map_or(1.0, |(_, v)| v.max(f64::MIN_POSITIVE));
    let rows = order
        .iter()
        .map(|(k, tg)| {
            (
                (*k).clone(),
                crate::report::fmt_num(*tg),
                fmt(&gain, k),
                fmt(&cover, k),
                fmt(&weight, k),
                (tg / top * 100.0).clamp(0.0, 100.0),
            )
        })
        .collect();
    Some(Importance { rows })
}

pub async fn step(
    State(app): State<Arc<App>>,
    Extension(who): Extension<Identity>,
    Path((id, step)): Path<(String, String)>,
) -> Page {
    let ctx = {
        let app = app.clone();
        blocking(move || {
            let (db, r) = open_run(&app, &id)?;
            let steps = db.steps_of(&r.id)?;
            let s = steps.iter().find(|s| s.name == step).ok_or_else(|| {
                PageError::not_found(format!("run {} has no step `{step}`", r.id))
            })?;
            let store = app.ws.store();
            let mut reports = Vec::new();
            let mut tables = Vec::new();
            let mut importances = Vec::new();
            for (name, o) in &s.outputs {
                let dir = store.path_of(&o.digest);
                if dir.join("report.html").is_file() {
                    reports.push((name.clone(), format!("/artifacts/{}/report.html", o.digest)));
                }
                for (file, title) in [
                    ("leaderboard.csv", "Leaderboard"),
                    ("timings.csv", "Timings"),
                ] {
                    if let Some(t) = read_csv(&dir.join(file), &format!("{title} ({name}/{file})"))
                    {
                        tables.push(t);
                    }
                }
                if let Some(i) = importance(&dir) {
                    importances.push((name.clone(), i));
                }
            }
            let lock = crate::repro::lock::recorded(&app.ws, &r.id);
            let (reasons, reason_run) = explain(&db, &r, s)?;
            let spec = lock
                .as_ref()
                .and_then(|l| l.steps.get(&s.name))
                .map(|st| serde_json::to_string_pretty(&st.spec).unwrap_or_default());
            Ok(minijinja::context! {
                title => format!("{} · run {}", s.name, r.id),
                section => "runs",
                run_id => r.id.clone(),
                step => minijinja::Value::from(minijinja::value::Serde(&step_row(s))),
                cache_key => s.cache_key.clone(),
                inputs => minijinja::Value::from(minijinja::value::Serde(&s.inputs)),
                started_at => s.started_at.clone(),
                finished_at => s.finished_at.clone(),
                exit_code => s.exit_code,
                reports => minijinja::Value::from(minijinja::value::Serde(&reports)),
                tables => minijinja::Value::from(minijinja::value::Serde(&tables)),
                importances => minijinja::Value::from(minijinja::value::Serde(&importances)),
                spec => spec,
                has_log => app.ws.log_path(&r.id, &s.name).is_file(),
                reasons => reasons,
                reason_run => reason_run,
            })
        })
        .await?
    };
    render(&app, &who, "step.html", ctx)
}

pub async fn artifact_root(
    State(app): State<Arc<App>>,
    Extension(who): Extension<Identity>,
    Path(digest): Path<String>,
) -> Page {
    serve_artifact(app, who, digest, String::new()).await
}

pub async fn artifact(
    State(app): State<Arc<App>>,
    Extension(who): Extension<Identity>,
    Path((digest, path)): Path<(String, String)>,
) -> Page {
    serve_artifact(app, who, digest, path).await
}

/// Whether `path` names something inside an artifact: plain names one
/// after the other, no `..`, no `.`, nothing absolute (`//etc/passwd` would
/// make `join` leave the store).
fn plain_path(path: &str) -> bool {
    let inside = path.trim_end_matches('/');
    let plain = std::path::Path::new(inside)
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    plain && !path.contains('\0') && !path.starts_with('/') && !path.contains("//")
}

/// Stored files as they are, under a policy that lets none of them run a
/// script here (a step's own outputs are anyone's HTML); directories as a listing.
async fn serve_artifact(app: Arc<App>, who: Identity, digest: String, path: String) -> Page {
    if !digest.chars().all(|c| c.is_ascii_hexdigit()) || digest.len() < 16 {
        return Err(PageError::bad("an artifact is named by its digest"));
    }
    if !plain_path(&path) {
        return Err(PageError::bad(
            "a path inside an artifact is names separated by `/`, with no `.` or `..`",
        ));
    }
    let app2 = app.clone();
    let (digest2, path2) = (digest.clone(), path.clone());
    let found = blocking(move || {
        let root = app2.ws.store().path_of(&digest2);
        if !root.exists() {
            return Err(PageError::not_found(format!(
                "the store holds no artifact {digest2}"
            )));
        }
        let target = root.join(path2.trim_end_matches('/'));
        let meta = std::fs::symlink_metadata(&target)
            .map_err(|_| PageError::not_found("no such file in that artifact"))?;
        if meta.is_dir() {
            let mut entries: Vec<(String, bool, u64)> = std::fs::read_dir(&target)
                .map_err(|e| PageError::internal(format!("list {}: {e}", target.display())))?
                .filter_map(|e| e.ok())
                .map(|e| {
                    let m = e.metadata().ok();
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        m.as_ref().is_some_and(|m| m.is_dir()),
                        m.map(|m| m.len()).unwrap_or(0),
                    )
                })
                .collect();
            entries.sort();
            Ok(Err(entries))
        } else if meta.is_file() {
            let bytes = std::fs::read(&target)
                .map_err(|e| PageError::internal(format!("read {}: {e}", target.display())))?;
            Ok(Ok(bytes))
        } else {
            Err(PageError::not_found("no such file in that artifact"))
        }
    })
    .await?;
    match found {
        Ok(bytes) => {
            let kind = match path.rsplit('.').next().unwrap_or("") {
                "html" | "htm" => "text/html; charset=utf-8",
                "json" => "application/json",
                "csv" | "txt" | "log" | "yaml" | "yml" | "md" | "py" | "jsonl" => {
                    "text/plain; charset=utf-8"
                }
                "svg" => "image/svg+xml",
                "png" => "image/png",
                _ => "application/octet-stream",
            };
            Ok((
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, kind),
                    // No script, no form, no fetch: a stored page is looked at only.
                    (
                        header::CONTENT_SECURITY_POLICY,
                        "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'",
                    ),
                    // A report is shown inside its step's page.
                    (header::X_FRAME_OPTIONS, "SAMEORIGIN"),
                    (header::CACHE_CONTROL, "private, max-age=31536000, immutable"),
                ],
                bytes,
            )
                .into_response())
        }
        Err(entries) => {
            let base = if path.is_empty() {
                format!("/artifacts/{digest}/")
            } else {
                format!("/artifacts/{digest}/{}/", path.trim_end_matches('/'))
            };
            let entries: Vec<(String, String, bool, String)> = entries
                .into_iter()
                .map(|(n, d, len)| {
                    let href = format!("{base}{}", crate::ui::url_escape(&n));
                    (
                        n,
                        href,
                        d,
                        if d { String::new() } else { format!("{len} B") },
                    )
                })
                .collect();
            render(
                &app,
                &who,
                "listing.html",
                minijinja::context! {
                    title => format!("artifact {}", &digest[..16]),
                    section => "runs",
                    digest => digest,
                    path => path,
                    entries => minijinja::Value::from(minijinja::value::Serde(&entries)),
                },
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn a_plain_path_never_leaves_the_artifact(path in "[a-z./]{0,24}") {
            if plain_path(&path) {
                let root = std::path::Path::new("/store/abc");
                let joined = root.join(path.trim_end_matches('/'));
                proptest::prop_assert!(joined.starts_with(root));
                proptest::prop_assert!(!joined.components().any(|c| matches!(c, std::path::Component::ParentDir)));
            }
        }
    }

    #[test]
    fn plain_paths_are_told_from_escapes() {
        for ok in ["", "report.html", "a/b/c.json", "dir/"] {
            assert!(plain_path(ok), "{ok}");
        }
        for bad in [
            "/etc/passwd",
            "//etc/passwd",
            "../x",
            "a/../../x",
            "./a",
            "a//b",
            "a\0b",
        ] {
            assert!(!plain_path(bad), "{bad}");
        }
    }
}
