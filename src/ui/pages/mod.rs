//! The pages: one file a section of the UI, with what they share here (the
//! templates, rendering, errors, sign-in and the static files).

pub mod compare;
pub mod registry;
pub mod runs;
pub mod schedules;

use std::sync::Arc;

use axum::extract::{Extension, Form, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{App, Identity, refuse, session_cookie};

const TEMPLATES: &[(&str, &str)] = &[
    ("layout.html", include_str!("../templates/layout.html")),
    ("login.html", include_str!("../templates/login.html")),
    ("runs.html", include_str!("../templates/runs.html")),
    ("run.html", include_str!("../templates/run.html")),
    ("step.html", include_str!("../templates/step.html")),
    ("compare.html", include_str!("../templates/compare.html")),
    ("groups.html", include_str!("../templates/groups.html")),
    ("group.html", include_str!("../templates/group.html")),
    ("version.html", include_str!("../templates/version.html")),
    (
        "schedules.html",
        include_str!("../templates/schedules.html"),
    ),
    ("listing.html", include_str!("../templates/listing.html")),
];

/// The page templates; `.html` names are auto-escaped.
pub fn templates() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    // A figure as the pages show figures: integers whole, others to a few digits.
    env.add_filter("num", |v: minijinja::Value| -> String {
        match serde_json::to_value(&v) {
            Ok(j) => fmt_value(&j),
            Err(_) => v.to_string(),
        }
    });
    for (name, text) in TEMPLATES {
        env.add_template(name, text)
            .expect("the UI's templates parse");
    }
    env
}

/// A page that could not be made: its status and why.
#[derive(Debug)]
pub struct PageError {
    pub status: StatusCode,
    pub message: String,
}

impl PageError {
    pub fn not_found(what: impl Into<String>) -> PageError {
        PageError {
            status: StatusCode::NOT_FOUND,
            message: what.into(),
        }
    }
    pub fn bad(what: impl Into<String>) -> PageError {
        PageError {
            status: StatusCode::BAD_REQUEST,
            message: what.into(),
        }
    }
    pub fn internal(what: impl std::fmt::Display) -> PageError {
        PageError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: what.to_string(),
        }
    }
}

impl From<crate::error::Error> for PageError {
    fn from(e: crate::error::Error) -> PageError {
        PageError::internal(e.to_string().trim_start_matches("error: ").trim_end())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        refuse(self.status, &self.message)
    }
}

pub type Page = Result<Response, PageError>;

/// Renders `name` inside the layout, with who is signed in.
pub fn render(app: &App, who: &Identity, name: &str, ctx: minijinja::Value) -> Page {
    let ctx = minijinja::context! {
        user => who.user.clone(),
        signed_in => app.users.is_some(),
        csrf => who.csrf.clone().unwrap_or_default(),
        ..ctx
    };
    let html = app
        .templates
        .get_template(name)
        .and_then(|t| t.render(ctx))
        .map_err(|e| PageError::internal(format!("render {name}: {e:#}")))?;
    Ok(Html(html).into_response())
}

/// Runs blocking record reads off the server's thread.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, PageError> + Send + 'static,
) -> Result<T, PageError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| PageError::internal(format!("a page's worker failed: {e}")))?
}

/// The CSRF check of a form: its hidden field against the session's token.
pub fn check_csrf(who: &Identity, sent: &str) -> Result<(), PageError> {
    match &who.csrf {
        None => Ok(()), // bearer token: no browser sends it cross-site
        Some(ours) if super::auth::same_secret(ours, sent) => Ok(()),
        Some(_) => Err(PageError {
            status: StatusCode::FORBIDDEN,
            message:
                "refused: the form's CSRF token is missing or stale; reload the page and try again"
                    .into(),
        }),
    }
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// Only a path of this site is a place to go back to after signing in.
fn local_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/runs".into(),
    }
}

pub async fn login_form(State(app): State<Arc<App>>, Query(q): Query<NextQuery>) -> Page {
    let who = Identity {
        user: String::new(),
        csrf: None,
    };
    render(
        &app,
        &who,
        "login.html",
        minijinja::context! { next => local_next(q.next.as_deref()), failed => false },
    )
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
    next: Option<String>,
}

pub async fn login(State(app): State<Arc<App>>, Form(f): Form<LoginForm>) -> Page {
    let Some(users) = &app.users else {
        return Ok(Redirect::to(&local_next(f.next.as_deref())).into_response());
    };
    match users.user_of(f.token.trim()) {
        Some(user) => {
            let id = app.sessions.start(user);
            let mut resp = Redirect::to(&local_next(f.next.as_deref())).into_response();
            resp.headers_mut()
                .append(header::SET_COOKIE, session_cookie(&app.cookie, &id));
            Ok(resp)
        }
        None => {
            let who = Identity {
                user: String::new(),
                csrf: None,
            };
            let mut r = render(
                &app,
                &who,
                "login.html",
                minijinja::context! { next => local_next(f.next.as_deref()), failed => true },
            )?;
            *r.status_mut() = StatusCode::UNAUTHORIZED;
            Ok(r)
        }
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub async fn logout(
    State(app): State<Arc<App>>,
    Extension(who): Extension<Identity>,
    headers: axum::http::HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Page {
    check_csrf(&who, &f.csrf)?;
    if let Some(id) = headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|c| super::auth::cookie(c, &app.cookie))
    {
        app.sessions.end(id);
    }
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_str(&format!(
            "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
            app.cookie
        ))
        .expect("cookie"),
    );
    Ok(resp)
}

const APP_JS: &str = include_str!("../static/app.js");
const APP_CSS: &str = include_str!("../static/app.css");

pub async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        _ => return refuse(StatusCode::NOT_FOUND, "no such file"),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// A number for a page: few digits, no exponent for ordinary values.
pub fn fmt_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(x) if n.is_f64() && x.fract() == 0.0 && x.abs() < 1e15 => format!("{}", x as i64),
            Some(x) if n.is_f64() => crate::report::fmt_num(x),
            _ => n.to_string(),
        },
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Seconds as `1.2 s`, `3 min 4 s` or `1 h 2 min`.
pub fn fmt_duration(s: f64) -> String {
    if !s.is_finite() || s < 0.0 {
        return String::new();
    }
    if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        format!("{} min {} s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!(
            "{} h {} min",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        )
    }
}

/// Seconds between two RFC 3339 times (`end` now when still going).
pub fn seconds_between(start: &str, end: Option<&str>) -> Option<f64> {
    let a: jiff::Timestamp = start.parse().ok()?;
    let b: jiff::Timestamp = match end {
        Some(e) => e.parse().ok()?,
        None => jiff::Timestamp::now(),
    };
    Some((b - a).total(jiff::Unit::Second).ok()?.max(0.0))
}
