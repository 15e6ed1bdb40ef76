//! The model registry: groups, versions with their metrics, a version's
//! lineage and audit trail, and the approve and reject buttons, which record
//! a decision exactly as `pipeline registry approve`/`reject` do.

use std::sync::Arc;

use axum::extract::{Extension, Form, Path, State};
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;

use super::{Page, PageError, blocking, check_csrf, render};
use crate::registry::{Location, Registry};
use crate::ui::{App, Identity, url_escape};

pub(crate) fn open(app: &App) -> Result<Registry, PageError> {
    if let Location::File(p) = &app.registry
        && !p.exists()
    {
        return Err(PageError::not_found(
            "there is no model registry yet: a pipeline's `kind: register` step creates it",
        ));
    }
    Registry::open_existing(app.registry.clone()).map_err(|e| PageError::internal(e.to_string()))
}

/// The registry or, when there is none yet, `None`.
fn open_if_any(app: &App) -> Result<Option<Registry>, PageError> {
    match &app.registry {
        Location::File(p) if !p.exists() => Ok(None),
        _ => open(app).map(Some),
    }
}

pub async fn groups(State(app): State<Arc<App>>, Extension(who): Extension<Identity>) -> Page {
    let ctx = {
        let app = app.clone();
        blocking(move || {
            let groups = match open_if_any(&app)? {
                Some(reg) => reg
                    .groups()
                    .map_err(|e| PageError::internal(e.to_string()))?,
                None => vec![],
            };
            Ok(minijinja::context! {
                title => "Registry",
                section => "registry",
                groups => minijinja::Value::from(minijinja::value::Serde(&groups)),
                location => app.registry.to_string(),
            })
        })
        .await?
    };
    render(&app, &who, "groups.html", ctx)
}

pub async fn group(
    State(app): State<Arc<App>>,
    Extension(who): Extension<Identity>,
    Path(group): Path<String>,
) -> Page {
    let ctx = {
        let app = app.clone();
        blocking(move || {
            let reg = open(&app)?;
            let versions = reg
                .versions(&group)
                .map_err(|e| PageError::not_found(e.to_string()))?;
            let metric_names: std::collections::BTreeSet<String> = versions
                .iter()
                .flat_map(|v| v.metrics.keys().cloned())
                .collect();
            let history = reg
                .history(&group)
                .map_err(|e| PageError::internal(e.to_string()))?;
            Ok(minijinja::context! {
                title => format!("Registry · {group}"),
                section => "registry",
                group_href => url_escape(&group),
                group => group,
                versions => minijinja::Value::from(minijinja::value::Serde(&versions)),
                metric_names => minijinja::Value::from(minijinja::value::Serde(&metric_names)),
                history => minijinja::Value::from(minijinja::value::Serde(&history)),
            })
        })
        .await?
    };
    render(&app, &who, "group.html", ctx)
}

pub async fn version(
    State(app): State<Arc<App>>,
    Extension(who): Extension<Identity>,
    Path((group, version)): Path<(String, u32)>,
) -> Page {
    let ctx = {
        let app = app.clone();
        blocking(move || {
            let reg = open(&app)?;
            let v = reg
                .version(&group, version)
                .map_err(|e| PageError::not_found(e.to_string()))?;
            let audit = reg
                .version_history(&group, version)
                .map_err(|e| PageError::internal(e.to_string()))?;
            let in_workspace = app.ws.store().path_of(&v.artifact_digest).exists();
            let run_here = super::runs::open_db(&app)?
                .map(|db| db.get_run(&v.run_id).map(|r| r.is_some()))
                .transpose()?
                .unwrap_or(false);
            Ok(minijinja::context! {
                title => format!("{group}@{version}"),
                section => "registry",
                group_href => url_escape(&group),
                v => minijinja::Value::from(minijinja::value::Serde(&v)),
                audit => minijinja::Value::from(minijinja::value::Serde(&audit)),
                artifact_here => in_workspace,
                run_here => run_here,
            })
        })
        .await?
    };
    render(&app, &who, "version.html", ctx)
}

#[derive(Deserialize)]
pub struct ReviewForm {
    #[serde(default)]
    csrf: String,
    decision: String,
    #[serde(default)]
    note: String,
}

/// Longest note a reviewer may write.
const MAX_NOTE: usize = 4000;

pub async fn review(
    State(app): State<Arc<App>>,
    Extension(who): Extension<Identity>,
    Path((group, version)): Path<(String, u32)>,
    Form(f): Form<ReviewForm>,
) -> Page {
    check_csrf(&who, &f.csrf)?;
    let approve = match f.decision.as_str() {
        "approve" => true,
        "reject" => false,
        other => {
            return Err(PageError::bad(format!(
                "`{other}` is not a decision: approve or reject"
            )));
        }
    };
    if f.note.len() > MAX_NOTE {
        return Err(PageError::bad(format!(
            "a note is at most {MAX_NOTE} bytes"
        )));
    }
    let (g, user) = (group.clone(), who.user.clone());
    blocking(move || {
        let mut reg = open(&app)?;
        let note = f.note.trim();
        // The reviewer is who signed in, never a field of the form.
        crate::exec::hooks::review(
            &mut reg,
            approve,
            &g,
            version,
            &user,
            (!note.is_empty()).then_some(note),
            |_| {},
        )
        .map_err(|e| {
            if e.is_invalid_input() {
                PageError::bad(e.to_string())
            } else {
                PageError::internal(e.to_string())
            }
        })
    })
    .await?;
    Ok(Redirect::to(&format!("/registry/{}/{version}", url_escape(&group))).into_response())
}
