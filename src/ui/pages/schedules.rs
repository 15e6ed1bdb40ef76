//! What is scheduled in this workspace: each pipeline's timing, its
//! scheduler, its last and next firing and its recent firings' runs.

use std::sync::Arc;

use axum::extract::{Extension, State};

use super::{Page, blocking, render};
use crate::ui::{App, Identity};

pub async fn list(State(app): State<Arc<App>>, Extension(who): Extension<Identity>) -> Page {
    let ctx = {
        let app = app.clone();
        blocking(move || {
            let lines = crate::cli::schedule::status_lines(&app.ws, jiff::Timestamp::now())?;
            Ok(minijinja::context! {
                title => "Schedules",
                section => "schedules",
                schedules => minijinja::Value::from(minijinja::value::Serde(&lines)),
            })
        })
        .await?
    };
    render(&app, &who, "schedules.html", ctx)
}
