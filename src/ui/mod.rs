//! `pipeline ui`: the workspace's runs, comparisons, reports, registry and
//! schedules in the browser (docs/ui.md).
//!
//! A read side over the same records the command line reads (the run
//! database, run directories, the store, the registry); the one thing it
//! changes is a registry version's status, through the same function as
//! `pipeline registry approve` (`exec::hooks::review`: same audit, same
//! hooks). Pages are server-rendered minijinja templates (auto-escaped); one
//! small script of our own follows a running run. Nothing is fetched from
//! anywhere else.

pub mod auth;
mod curves;
mod dag;
mod pages;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::error::{Error, Result};
use crate::registry::Location;
use crate::spec::source::Diagnostic;
use crate::store::Workspace;
use auth::{Sessions, Users};

/// What `pipeline ui` was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    pub bind: IpAddr,
    pub port: u16,
    pub users: Option<PathBuf>,
    pub registry: Location,
}

/// Everything a request handler may read.
pub(crate) struct App {
    pub ws: Workspace,
    pub registry: Location,
    pub users: Option<Users>,
    pub sessions: Sessions,
    /// Bound to loopback: the `Host` values answered.
    pub hosts: Option<Vec<String>>,
    /// Decisions are made in this name when nobody signs in (loopback, no users file).
    pub local_user: String,
    pub cookie: String,
    pub templates: minijinja::Environment<'static>,
}

/// Who a request comes from.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub user: String,
    /// The CSRF token its forms carry; `None` for a bearer-token request
    /// (a browser never adds that header to a cross-site request).
    pub csrf: Option<String>,
}

/// Serves until Ctrl-C or SIGTERM.
pub fn serve(opts: Options) -> Result<i32> {
    let loopback = opts.bind.is_loopback();
    let users = match &opts.users {
        Some(p) => Some(Users::load(p)?),
        None if !loopback => {
            return Err(Error::invalid(
                Diagnostic::new(format!(
                    "--bind {} is not a loopback address, and anyone who can reach it could approve models",
                    opts.bind
                ))
                .help("give --users FILE (one `NAME TOKEN` line a reviewer, see docs/ui.md), or leave --bind out to serve 127.0.0.1 only"),
            ));
        }
        None => None,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::failed(format!("start the UI's runtime: {e}")))?;
    rt.block_on(async move {
        let addr = SocketAddr::new(opts.bind, opts.port);
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            let help = if e.kind() == std::io::ErrorKind::AddrInUse {
                "another program serves that port: pick another with --port (0 lets the system choose)"
            } else {
                "check --bind and --port"
            };
            Error::failed(format!("listen on {addr}: {e}; {help}"))
        })?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::failed(format!("listen on {addr}: {e}")))?;
        let app = Arc::new(App {
            ws: Workspace::locate(),
            registry: opts.registry.clone(),
            users,
            sessions: Sessions::default(),
            hosts: loopback.then(|| auth::loopback_hosts(addr)),
            local_user: crate::cli::registry::os_user(),
            cookie: format!("pipeline_ui_{}", addr.port()),
            templates: pages::templates(),
        });
        let shown = if loopback {
            format!("http://127.0.0.1:{}/", addr.port())
        } else {
            format!("http://{addr}/")
        };
        crate::cli::out::write(
            format_args!("pipeline ui: serving {} on {shown} (Ctrl-C stops it)", app.ws.root.display()),
            true,
        );
        axum::serve(listener, router(app))
            .with_graceful_shutdown(stopped())
            .await
            .map_err(|e| Error::failed(format!("serve on {addr}: {e}")))?;
        Ok(0)
    })
}

async fn stopped() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/runs") }))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/static/{file}", get(pages::asset))
        .route("/runs", get(pages::runs::list))
        .route("/runs/{id}", get(pages::runs::show))
        .route("/runs/{id}/steps/{step}", get(pages::runs::step))
        .route("/api/runs/{id}", get(pages::runs::state))
        .route("/api/runs/{id}/log/{step}", get(pages::runs::log))
        .route("/artifacts/{digest}", get(pages::runs::artifact_root))
        .route("/artifacts/{digest}/{*path}", get(pages::runs::artifact))
        .route("/compare", get(pages::compare::show))
        .route("/registry", get(pages::registry::groups))
        .route("/registry/{group}", get(pages::registry::group))
        .route("/registry/{group}/{version}", get(pages::registry::version))
        .route(
            "/registry/{group}/{version}/review",
            post(pages::registry::review),
        )
        .route("/schedules", get(pages::schedules::list))
        .layer(axum::middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

/// Every request passes here first: the Host check, who is asking, and the
/// cross-site check of anything that changes state.
async fn guard(State(app): State<Arc<App>>, mut req: Request, next: Next) -> Response {
    let headers = req.headers().clone();
    let host = header_str(&headers, header::HOST)
        .unwrap_or_default()
        .to_string();
    if let Some(hosts) = &app.hosts
        && !hosts.iter().any(|h| h.eq_ignore_ascii_case(&host))
    {
        return refuse(
            StatusCode::MISDIRECTED_REQUEST,
            &format!("this UI answers to {} only, not to Host `{host}`", hosts[0]),
        );
    }
    let path = req.uri().path().to_string();
    let public = path == "/login" || path.starts_with("/static/");
    let changes = !matches!(*req.method(), Method::GET | Method::HEAD);

    let session_id = header_str(&headers, header::COOKIE)
        .and_then(|c| auth::cookie(c, &app.cookie))
        .map(str::to_string);
    let session = session_id.as_deref().and_then(|id| app.sessions.get(id));
    let bearer = header_str(&headers, header::AUTHORIZATION)
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);

    let mut set_cookie = None;
    let identity = if let Some(s) = session {
        Some(Identity {
            user: s.user,
            csrf: Some(s.csrf),
        })
    } else if let (Some(token), Some(users)) = (bearer, &app.users) {
        match users.user_of(token) {
            Some(u) => Some(Identity {
                user: u.to_string(),
                csrf: None,
            }),
            None => return refuse(StatusCode::UNAUTHORIZED, "that token belongs to no user"),
        }
    } else if app.users.is_none() {
        // Loopback and open: a session in the local user's name, for the CSRF token.
        let id = app.sessions.start(&app.local_user);
        let s = app.sessions.get(&id).expect("just started");
        set_cookie = Some(session_cookie(&app.cookie, &id));
        Some(Identity {
            user: s.user,
            csrf: Some(s.csrf),
        })
    } else {
        None
    };

    if changes && identity.as_ref().is_none_or(|i| i.csrf.is_some()) {
        let origin = header_str(&headers, header::ORIGIN);
        let site = header_str(&headers, "sec-fetch-site");
        if let Some(why) = auth::cross_site(origin, site, &host) {
            return refuse(
                StatusCode::FORBIDDEN,
                &format!("refused {why}: changes are made from this UI's own pages only"),
            );
        }
    }
    match identity {
        Some(i) => {
            req.extensions_mut().insert(i);
        }
        None if public => {}
        None if changes => {
            return refuse(StatusCode::UNAUTHORIZED, "sign in first (/login)");
        }
        None => {
            let next = req
                .uri()
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| "/".into());
            return Redirect::to(&format!("/login?next={}", url_escape(&next))).into_response();
        }
    }
    let began = std::time::Instant::now();
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    // How long the page took to make (bench/ui.py reads it).
    if let Ok(v) = HeaderValue::from_str(&format!(
        "app;dur={:.3}",
        began.elapsed().as_secs_f64() * 1000.0
    )) {
        h.insert("server-timing", v);
    }
    if let Some(c) = set_cookie {
        h.append(header::SET_COOKIE, c);
    }
    if !h.contains_key(header::X_FRAME_OPTIONS) {
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        );
    }
    resp
}

pub(crate) fn session_cookie(name: &str, id: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("{name}={id}; Path=/; HttpOnly; SameSite=Strict"))
        .expect("hex cookie")
}

fn header_str<K: header::AsHeaderName>(h: &HeaderMap, k: K) -> Option<&str> {
    h.get(k).and_then(|v| v.to_str().ok())
}

/// A refusal as a short page (and its status code).
pub(crate) fn refuse(status: StatusCode, why: &str) -> Response {
    let body = format!(
        "<!doctype html><meta charset=utf-8><title>{code}</title><p>{}</p>",
        html_escape(why),
        code = status.as_u16()
    );
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        Body::from(body),
    )
        .into_response()
}

pub(crate) fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub(crate) fn url_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
