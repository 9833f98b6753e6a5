//! The operator console, `/metrics` and the health checks: served by `run` on
//! `[console] listen`, over HTTPS when a certificate is configured (the same rustls
//! settings and connection limits as `serve`).
//!
//! In: the configuration, the console's [`worker::Worker`] (the deployment) and the
//! Prometheus handle. Out: server-rendered pages (NHS.UK frontend styles, no JavaScript)
//! that read the state and call the same operations as the CLI verbs.
//!
//! Contracts:
//! - Every page but sign-in, the stylesheet, `/healthz`, `/readyz` and `/metrics` needs a
//!   live session; without one a GET is sent to sign in and a POST refused (401).
//! - Every form is a POST carrying the session's CSRF token (the sign-in form carries a
//!   nonce also set as a cookie); one without it, or with another, is refused (403) and
//!   nothing is done. No GET changes anything.
//! - Pages carry `Content-Security-Policy: default-src 'self'` (no script at all),
//!   `X-Frame-Options: DENY`, `Cache-Control: no-store`; cookies are HttpOnly,
//!   SameSite=Strict, Secure over HTTPS.
//! - Nothing shown holds a password, a token or an initial password: pages show the
//!   journal's changes and accounts' addresses, never the password file.

pub mod auth;
pub mod config;
pub mod metrics;
pub mod oidc;
pub mod pages;
pub mod worker;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Extension, Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use minijinja::Environment;
use serde_json::{Value, json};

use crate::serve::listen::Peer;
use auth::{Auth, Session, SignInRefused};
use worker::Worker;

/// The session cookie's name.
const SESSION_COOKIE: &str = "pc_session";
/// The sign-in form's nonce cookie.
const SIGNIN_COOKIE: &str = "pc_signin";

/// What every request handler shares.
pub struct Console {
    worker: Worker,
    auth: Auth,
    templates: Environment<'static>,
    https: bool,
    metrics: Option<metrics::Metrics>,
    metrics_token: Option<String>,
    /// Wakes the service for a pass after an action (its result e-mails go out at once).
    nudge: Option<Arc<tokio::sync::Notify>>,
    /// Sign-in with OpenID Connect, when configured.
    oidc: Option<oidc::Oidc>,
}

/// The page templates, compiled into the binary.
const TEMPLATES: &[(&str, &str)] = &[
    (
        "layout.html",
        include_str!("../../templates/console/layout.html"),
    ),
    (
        "signin.html",
        include_str!("../../templates/console/signin.html"),
    ),
    (
        "organisations.html",
        include_str!("../../templates/console/organisations.html"),
    ),
    (
        "submissions.html",
        include_str!("../../templates/console/submissions.html"),
    ),
    (
        "submission.html",
        include_str!("../../templates/console/submission.html"),
    ),
    (
        "runs.html",
        include_str!("../../templates/console/runs.html"),
    ),
    ("run.html", include_str!("../../templates/console/run.html")),
    (
        "revert.html",
        include_str!("../../templates/console/revert.html"),
    ),
    (
        "account.html",
        include_str!("../../templates/console/account.html"),
    ),
    (
        "outbox.html",
        include_str!("../../templates/console/outbox.html"),
    ),
    (
        "sources.html",
        include_str!("../../templates/console/sources.html"),
    ),
    (
        "audit.html",
        include_str!("../../templates/console/audit.html"),
    ),
    (
        "message.html",
        include_str!("../../templates/console/message.html"),
    ),
];

/// The NHS.UK frontend's stylesheet and icons (see `templates/console/assets/NOTICE.md`).
pub const STYLESHEET: &str = include_str!("../../templates/console/assets/nhsuk-frontend.min.css");
const ICONS: &[(&str, &str)] = &[
    (
        "nhsuk-icon-arrow-down.svg",
        include_str!("../../templates/console/assets/images/nhsuk-icon-arrow-down.svg"),
    ),
    (
        "nhsuk-icon-arrow-up-down.svg",
        include_str!("../../templates/console/assets/images/nhsuk-icon-arrow-up-down.svg"),
    ),
    (
        "nhsuk-icon-arrow-up.svg",
        include_str!("../../templates/console/assets/images/nhsuk-icon-arrow-up.svg"),
    ),
    (
        "nhsuk-icon-cross.svg",
        include_str!("../../templates/console/assets/images/nhsuk-icon-cross.svg"),
    ),
];

/// The templates, ready to render; an error names the template that does not compile.
pub fn templates() -> Result<Environment<'static>, minijinja::Error> {
    let mut env = Environment::new();
    for (name, source) in TEMPLATES {
        env.add_template(name, source)?;
    }
    Ok(env)
}

impl Console {
    pub fn new(
        config: &crate::config::Config,
        worker: Worker,
        metrics: Option<metrics::Metrics>,
        nudge: Option<Arc<tokio::sync::Notify>>,
    ) -> Result<Console, String> {
        use secrecy::ExposeSecret as _;
        let oidc = match &config.console.oidc {
            Some(c) => Some(oidc::Oidc::new(c.clone())?),
            None => None,
        };
        Ok(Console {
            oidc,
            worker,
            auth: Auth::new(&config.console),
            templates: templates().map_err(|e| e.to_string())?,
            https: config.console.tls_cert.is_some(),
            metrics,
            metrics_token: config
                .console
                .metrics_token
                .as_ref()
                .map(|s| s.0.expose_secret().to_owned()),
            nudge,
        })
    }
}

/// The console's routes.
pub fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/signin", get(signin_page).post(signin))
        .route("/signin/oidc", get(oidc_start))
        .route("/signin/oidc/callback", get(oidc_callback))
        .route("/signout", post(signout))
        .route("/", get(organisations))
        .route("/submissions", get(submissions))
        .route("/submissions/{no}", get(submission))
        .route("/runs", get(runs))
        .route("/runs/{id}", get(run))
        .route("/runs/{id}/decide", post(decide))
        .route("/runs/{id}/revert", get(revert_preview).post(revert))
        .route("/accounts", get(account))
        .route("/outbox", get(outbox))
        .route("/outbox/{id}/retry", post(retry_mail))
        .route("/outbox/{id}/drop", post(drop_mail))
        .route("/sources", get(sources))
        .route("/audit", get(audit))
        .route("/assets/nhsuk-frontend.min.css", get(stylesheet))
        .route("/assets/images/{name}", get(icon))
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .layer(axum::middleware::map_response(secure_headers))
        .with_state(console)
}

/// Headers every answer carries.
async fn secure_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; script-src 'none'; img-src 'self' data:; \
             font-src 'self' https://assets.nhs.uk; form-action 'self'; frame-ancestors 'none'; \
             base-uri 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    r
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn peer_of(peer: Option<Extension<Peer>>) -> Option<IpAddr> {
    peer.map(|Extension(p)| p.0.ip())
}

impl Console {
    fn session(&self, headers: &HeaderMap) -> Option<(String, Session)> {
        let token = cookie(headers, SESSION_COOKIE)?;
        let s = self.auth.session(&token, Instant::now())?;
        Some((token, s))
    }

    fn cookie_attrs(&self) -> &'static str {
        if self.https {
            "; Path=/; HttpOnly; SameSite=Strict; Secure"
        } else {
            "; Path=/; HttpOnly; SameSite=Strict"
        }
    }

    /// A page of `name` for a signed-in operator (or sign-in, with no session).
    fn render(&self, name: &str, nav: &str, session: Option<&Session>, mut ctx: Value) -> Response {
        if let Value::Object(map) = &mut ctx {
            map.insert("nav".into(), json!(nav));
            map.insert("version".into(), json!(env!("CARGO_PKG_VERSION")));
            if let Some(s) = session {
                map.insert("operator".into(), json!(s.operator));
                map.insert("csrf".into(), json!(s.csrf));
            }
        }
        match self
            .templates
            .get_template(name)
            .and_then(|t| t.render(minijinja::Value::from(minijinja::value::Serde(&ctx))))
        {
            Ok(html) => {
                ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
            }
            Err(e) => {
                tracing::error!(template = name, error = %e, "a console page failed to render");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the page could not be shown; it has been logged",
                )
                    .into_response()
            }
        }
    }

    /// A page of words only: a refusal, or what an action did.
    fn message(
        &self,
        status: StatusCode,
        session: Option<&Session>,
        heading: &str,
        back: Option<&str>,
    ) -> Response {
        let mut r = self.render(
            "message.html",
            "",
            session,
            json!({"heading": heading, "back": back}),
        );
        *r.status_mut() = status;
        r
    }

    /// The data of a page, computed on the worker; an error is shown on the page.
    async fn page<F, Fut>(&self, headers: &HeaderMap, name: &str, nav: &str, f: F) -> Response
    where
        F: FnOnce(std::rc::Rc<crate::deployment::Deployment<'static>>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<Value, String>> + 'static,
    {
        let Some((_, session)) = self.session(headers) else {
            return Redirect::to("/signin").into_response();
        };
        match self.worker.call(f).await {
            Ok(Ok(mut ctx)) => {
                if let Some(flash) = cookie(headers, "pc_flash") {
                    if let Value::Object(map) = &mut ctx {
                        map.insert("flash".into(), json!(flash_text(&flash)));
                    }
                    let mut r = self.render(name, nav, Some(&session), ctx);
                    clear_flash(&mut r);
                    return r;
                }
                self.render(name, nav, Some(&session), ctx)
            }
            Ok(Err(e)) => self.message(StatusCode::NOT_FOUND, Some(&session), &e, Some(nav)),
            Err(e) => self.message(
                StatusCode::SERVICE_UNAVAILABLE,
                Some(&session),
                &e.to_string(),
                None,
            ),
        }
    }

    /// Checks a form's session and CSRF token; the session when both hold.
    fn form_session(
        &self,
        headers: &HeaderMap,
        form: &HashMap<String, String>,
    ) -> Result<Session, Box<Response>> {
        let Some((_, session)) = self.session(headers) else {
            return Err(Box::new(self.message(
                StatusCode::UNAUTHORIZED,
                None,
                "Your session has ended: sign in again.",
                Some("/signin"),
            )));
        };
        let sent = form.get("csrf").map(String::as_str).unwrap_or("");
        if !auth::same_token(sent, &session.csrf) {
            tracing::warn!(operator = %session.operator, "a console form came without its CSRF token; refused");
            return Err(Box::new(self.message(
                StatusCode::FORBIDDEN,
                Some(&session),
                "This form was not sent from this console (its security token is missing or wrong): nothing was done. Go back, reload the page and try again.",
                None,
            )));
        }
        Ok(session)
    }
}

/// Who asked for an action, and why.
struct Asked {
    operator: String,
    reason: String,
    peer: Option<String>,
}

impl Console {
    /// Carries out a form's action on the worker once its session and CSRF token hold: the
    /// action's outcome, or the refusal to answer with.
    async fn act<F, Fut>(
        &self,
        headers: &HeaderMap,
        peer: Option<Extension<Peer>>,
        form: &HashMap<String, String>,
        f: F,
    ) -> Result<pages::Outcome, Box<Response>>
    where
        F: FnOnce(std::rc::Rc<crate::deployment::Deployment<'static>>, Asked) -> Fut
            + Send
            + 'static,
        Fut: std::future::Future<Output = pages::Outcome> + 'static,
    {
        let session = self.form_session(headers, form)?;
        let asked = Asked {
            operator: session.operator,
            reason: form.get("reason").cloned().unwrap_or_default(),
            peer: peer_of(peer).map(|p| p.to_string()),
        };
        Ok(self
            .worker
            .call(move |d| f(d, asked))
            .await
            .unwrap_or_else(|e| Err(e.to_string())))
    }
}

/// The outcome of an action, carried to the next page in a short-lived cookie; after one
/// that did something, the service is woken for a pass.
fn after_action(c: &Console, to: &str, outcome: pages::Outcome) -> Response {
    if outcome.is_ok()
        && let Some(n) = &c.nudge
    {
        n.notify_one();
    }
    let (kind, text) = match outcome {
        Ok(t) => ("ok", t),
        Err(t) => ("error", t),
    };
    let encoded: String =
        form_urlencoded::byte_serialize(format!("{kind}:{text}").as_bytes()).collect();
    let mut r = Redirect::to(to).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "pc_flash={encoded}; Path=/; HttpOnly; SameSite=Strict; Max-Age=60"
    )) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

fn flash_text(cookie: &str) -> String {
    let decoded: String = form_urlencoded::parse(format!("x={cookie}").as_bytes())
        .map(|(_, v)| v.into_owned())
        .next()
        .unwrap_or_default();
    decoded
        .split_once(':')
        .map_or(decoded.clone(), |(_, t)| t.to_owned())
}

fn clear_flash(r: &mut Response) {
    r.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static("pc_flash=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
}

async fn signin_page(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    if c.session(&headers).is_some() {
        return Redirect::to("/").into_response();
    }
    signin_form(&c, StatusCode::OK, None, None)
}

fn signin_form(
    c: &Console,
    status: StatusCode,
    name: Option<&str>,
    error: Option<&str>,
) -> Response {
    let nonce = auth::random_token();
    let mut r = c.render(
        "signin.html",
        "/signin",
        None,
        json!({"signin_nonce": nonce, "name": name, "error": error,
               "oidc": c.oidc.as_ref().map(oidc::Oidc::label)}),
    );
    *r.status_mut() = status;
    let attrs = if c.https {
        "; Path=/signin; HttpOnly; SameSite=Strict; Secure; Max-Age=900"
    } else {
        "; Path=/signin; HttpOnly; SameSite=Strict; Max-Age=900"
    };
    if let Ok(v) = HeaderValue::from_str(&format!("{SIGNIN_COOKIE}={nonce}{attrs}")) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

async fn signin(
    State(c): State<Arc<Console>>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let peer = peer_of(peer);
    let nonce = cookie(&headers, SIGNIN_COOKIE).unwrap_or_default();
    let sent = form.get("csrf").map(String::as_str).unwrap_or("");
    if nonce.is_empty() || !auth::same_token(sent, &nonce) {
        return signin_form(
            &c,
            StatusCode::FORBIDDEN,
            None,
            Some("The sign-in form had expired: try again."),
        );
    }
    let name = form.get("name").map(|n| n.trim()).unwrap_or("").to_owned();
    let password = form.get("password").cloned().unwrap_or_default();
    // The argon2 check takes tens of milliseconds of CPU: off the async threads.
    let checked = {
        let c = c.clone();
        let name = name.clone();
        tokio::task::spawn_blocking(move || c.auth.sign_in(&name, &password, peer, Instant::now()))
            .await
    };
    let peer_text = peer.map(|p| p.to_string());
    match checked {
        Ok(Ok((token, session))) => {
            let op = session.operator.clone();
            let _ = c
                .worker
                .call(move |d| async move {
                    pages::record(&d, &op, "sign-in", peer_text.as_deref()).await
                })
                .await;
            tracing::info!(operator = %session.operator, "operator signed in to the console");
            let mut r = Redirect::to("/").into_response();
            if let Ok(v) =
                HeaderValue::from_str(&format!("{SESSION_COOKIE}={token}{}", c.cookie_attrs()))
            {
                r.headers_mut().append(header::SET_COOKIE, v);
            }
            r
        }
        Ok(Err(refused)) => {
            let shown: String = name.chars().take(64).collect();
            let logged = shown.clone();
            let _ = c
                .worker
                .call(move |d| async move {
                    pages::record(&d, &logged, "sign-in refused", peer_text.as_deref()).await
                })
                .await;
            tracing::warn!(operator = %shown, "console sign-in refused");
            match refused {
                SignInRefused::Wrong => signin_form(
                    &c,
                    StatusCode::UNAUTHORIZED,
                    Some(&shown),
                    Some("The operator name or password is not right."),
                ),
                SignInRefused::Throttled(wait) => {
                    let mut r = signin_form(
                        &c,
                        StatusCode::TOO_MANY_REQUESTS,
                        Some(&shown),
                        Some(&format!(
                            "Too many failed sign-ins: try again in {} seconds.",
                            wait.as_secs().max(1)
                        )),
                    );
                    if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
                        r.headers_mut().insert(header::RETRY_AFTER, v);
                    }
                    r
                }
            }
        }
        Err(_) => c.message(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "Sign-in failed inside the service; it has been logged.",
            Some("/signin"),
        ),
    }
}

/// The cookie that ties a browser to the sign-in it started at the identity provider:
/// SameSite=Lax, so the provider's redirect back (a top-level GET from its site) carries it.
const OIDC_COOKIE: &str = "pc_oidc";

/// `GET /signin/oidc`: off to the identity provider.
async fn oidc_start(State(c): State<Arc<Console>>) -> Response {
    let Some(o) = &c.oidc else {
        return c.message(
            StatusCode::NOT_FOUND,
            None,
            "There is no such page.",
            Some("/signin"),
        );
    };
    match o.start().await {
        Ok((state, to)) => {
            let mut r = Redirect::to(&to).into_response();
            let secure = if c.https { "; Secure" } else { "" };
            if let Ok(v) = HeaderValue::from_str(&format!(
                "{OIDC_COOKIE}={state}; Path=/signin/oidc; HttpOnly; SameSite=Lax; Max-Age=600{secure}"
            )) {
                r.headers_mut().append(header::SET_COOKIE, v);
            }
            r
        }
        Err(e) => {
            tracing::error!(error = %e, "OpenID Connect sign-in could not start");
            signin_form(
                &c,
                StatusCode::BAD_GATEWAY,
                None,
                Some(&format!(
                    "Sign-in with the identity provider is not available now: {e}"
                )),
            )
        }
    }
}

/// `GET /signin/oidc/callback?code&state`: back from the identity provider.
async fn oidc_callback(
    State(c): State<Arc<Console>>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(o) = &c.oidc else {
        return c.message(
            StatusCode::NOT_FOUND,
            None,
            "There is no such page.",
            Some("/signin"),
        );
    };
    let peer = peer_of(peer).map(|p| p.to_string());
    if let Some(e) = q.get("error") {
        let why = q.get("error_description").unwrap_or(e);
        return signin_form(
            &c,
            StatusCode::UNAUTHORIZED,
            None,
            Some(&format!("The identity provider did not sign you in: {why}")),
        );
    }
    let cookie_state = cookie(&headers, OIDC_COOKIE).unwrap_or_default();
    let (state, code) = (
        q.get("state").cloned().unwrap_or_default(),
        q.get("code").cloned().unwrap_or_default(),
    );
    let who = match o.finish(&cookie_state, &state, &code).await {
        Ok(who) => who,
        Err(e) => {
            tracing::warn!(error = %e, "OpenID Connect sign-in refused");
            return signin_form(
                &c,
                StatusCode::UNAUTHORIZED,
                None,
                Some(&format!("Sign-in failed: {e}")),
            );
        }
    };
    let Some(name) = c.auth.operator_named(&who).map(str::to_owned) else {
        let shown: String = who.chars().take(128).collect();
        let logged = shown.clone();
        let _ = c
            .worker
            .call(move |d| async move {
                pages::record(
                    &d,
                    &logged,
                    "sign-in refused (OpenID Connect: not an operator)",
                    peer.as_deref(),
                )
                .await
            })
            .await;
        tracing::warn!(who = %shown, "OpenID Connect sign-in of someone who is not an operator");
        return signin_form(
            &c,
            StatusCode::FORBIDDEN,
            None,
            Some(&format!("{shown} is not an operator of this console.")),
        );
    };
    let (token, _) = c.auth.open(&name, Instant::now());
    let op = name.clone();
    let _ = c
        .worker
        .call(move |d| async move {
            pages::record(&d, &op, "sign-in (OpenID Connect)", peer.as_deref()).await
        })
        .await;
    tracing::info!(operator = %name, "operator signed in to the console with OpenID Connect");
    // A page of this site goes on to the console, so the SameSite=Strict session cookie is
    // sent (a redirect straight from the provider's navigation would not carry it).
    let mut r = (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        "<!DOCTYPE html><html lang=\"en-GB\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"0;url=/\"><title>Signed in</title></head>\
         <body><main><p>Signed in. <a href=\"/\">Continue to the console</a>.</p></main></body></html>",
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("{SESSION_COOKIE}={token}{}", c.cookie_attrs())) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("{OIDC_COOKIE}=; Path=/signin/oidc; Max-Age=0")) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

async fn signout(
    State(c): State<Arc<Console>>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let session = match c.form_session(&headers, &form) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        c.auth.sign_out(&token);
    }
    let peer = peer_of(peer).map(|p| p.to_string());
    let op = session.operator.clone();
    let _ = c
        .worker
        .call(move |d| async move { pages::record(&d, &op, "sign-out", peer.as_deref()).await })
        .await;
    let mut r = Redirect::to("/signin").into_response();
    if let Ok(v) =
        HeaderValue::from_str(&format!("{SESSION_COOKIE}=; Max-Age=0{}", c.cookie_attrs()))
    {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

async fn organisations(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    c.page(&headers, "organisations.html", "/", |d| async move {
        pages::organisations(&d, chrono::Utc::now()).await
    })
    .await
}

async fn submissions(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    c.page(
        &headers,
        "submissions.html",
        "/submissions",
        |d| async move { pages::submissions(&d).await },
    )
    .await
}

async fn submission(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Path(no): Path<i64>,
) -> Response {
    c.page(
        &headers,
        "submission.html",
        "/submissions",
        move |d| async move { pages::submission(&d, no).await },
    )
    .await
}

async fn runs(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    c.page(&headers, "runs.html", "/runs", |d| async move {
        pages::runs(&d).await
    })
    .await
}

async fn run(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let show = match q.get("show").map(String::as_str) {
        Some(s @ ("updates" | "creates" | "refusals")) => s.to_owned(),
        _ => "all".to_owned(),
    };
    c.page(&headers, "run.html", "/runs", move |d| async move {
        pages::run(&d, &id, &show).await
    })
    .await
}

async fn decide(
    State(c): State<Arc<Console>>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let approve = form.get("decision").map(String::as_str) == Some("approve");
    let to = format!("/runs/{id}");
    let done = c
        .act(&headers, peer, &form, move |d, a| async move {
            let peer = a.peer.as_deref();
            if approve {
                pages::approve(&d, &id, &a.operator, &a.reason, peer).await
            } else {
                pages::reject(&d, &id, &a.operator, &a.reason, peer).await
            }
        })
        .await;
    match done {
        Ok(outcome) => after_action(&c, &to, outcome),
        Err(refused) => *refused,
    }
}

async fn revert_preview(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    c.page(&headers, "revert.html", "/runs", move |d| async move {
        pages::revert_preview(&d, &id).await
    })
    .await
}

async fn revert(
    State(c): State<Arc<Console>>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let run = id.clone();
    let done = c
        .act(&headers, peer, &form, move |d, a| async move {
            pages::revert(&d, &run, &a.operator, &a.reason, a.peer.as_deref()).await
        })
        .await;
    match done {
        Ok(outcome) => {
            let to = if outcome.is_ok() {
                format!("/runs/{id}")
            } else {
                format!("/runs/{id}/revert")
            };
            after_action(&c, &to, outcome)
        }
        Err(refused) => *refused,
    }
}

async fn account(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let key = q.get("q").map(|k| k.trim().to_owned()).unwrap_or_default();
    let org = q
        .get("organisation")
        .map(|o| o.trim().to_owned())
        .filter(|o| !o.is_empty());
    if key.is_empty() {
        return c
            .page(&headers, "account.html", "/accounts", |_| async {
                Ok(json!({}))
            })
            .await;
    }
    let Some((_, session)) = c.session(&headers) else {
        return Redirect::to("/signin").into_response();
    };
    let (k, o) = (key.clone(), org.clone());
    let found = c
        .worker
        .call(move |d| async move { pages::account(&d, &k, o.as_deref()).await })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
    let mut ctx = match found {
        Ok(ctx) => ctx,
        Err(e) => json!({"error": e}),
    };
    if let Value::Object(map) = &mut ctx {
        map.insert("q".into(), json!(key));
        map.insert("organisation".into(), json!(org));
    }
    c.render("account.html", "/accounts", Some(&session), ctx)
}

async fn outbox(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let all = q.contains_key("all");
    c.page(&headers, "outbox.html", "/outbox", move |d| async move {
        pages::outbox(&d, all).await
    })
    .await
}

async fn retry_mail(
    State(c): State<Arc<Console>>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let done = c
        .act(&headers, peer, &form, move |d, a| async move {
            pages::retry_mail(&d, id, &a.operator, a.peer.as_deref()).await
        })
        .await;
    match done {
        Ok(outcome) => after_action(&c, "/outbox", outcome),
        Err(refused) => *refused,
    }
}

async fn drop_mail(
    State(c): State<Arc<Console>>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let done = c
        .act(&headers, peer, &form, move |d, a| async move {
            pages::drop_mail(&d, id, &a.operator, &a.reason, a.peer.as_deref()).await
        })
        .await;
    match done {
        Ok(outcome) => after_action(&c, "/outbox", outcome),
        Err(refused) => *refused,
    }
}

async fn sources(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    c.page(&headers, "sources.html", "/sources", |d| async move {
        pages::sources(&d, chrono::Utc::now()).await
    })
    .await
}

async fn audit(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    c.page(&headers, "audit.html", "/audit", |d| async move {
        pages::audit_trail(&d).await
    })
    .await
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        STYLESHEET,
    )
        .into_response()
}

async fn icon(Path(name): Path<String>) -> Response {
    match ICONS.iter().find(|(n, _)| *n == name) {
        Some((_, svg)) => (
            [
                (header::CONTENT_TYPE, "image/svg+xml"),
                (header::CACHE_CONTROL, "public, max-age=86400"),
            ],
            *svg,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn not_found(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let session = c.session(&headers).map(|(_, s)| s);
    c.message(
        StatusCode::NOT_FOUND,
        session.as_ref(),
        "There is no such page.",
        Some("/"),
    )
}

async fn metrics_page(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    if let Some(token) = &c.metrics_token {
        let sent = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !auth::same_token(sent, token) {
            return (StatusCode::UNAUTHORIZED, "a bearer token is needed").into_response();
        }
    }
    let Some(m) = &c.metrics else {
        return (
            StatusCode::NOT_FOUND,
            "metrics are not recorded by this process",
        )
            .into_response();
    };
    match c
        .worker
        .call(|d| async move { metrics::gather(&d).await })
        .await
    {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "metrics: the state database did not answer; counts are from the last scrape")
        }
        Err(e) => tracing::warn!(error = %e, "metrics: the console's worker did not answer"),
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        m.render(),
    )
        .into_response()
}

async fn healthz() -> Response {
    (StatusCode::OK, "alive\n").into_response()
}

/// Ready when the state database, the directory and the mailbox answer.
async fn readyz(State(c): State<Arc<Console>>) -> Response {
    match c
        .worker
        .call(|d| async move { metrics::ready(&d).await })
        .await
    {
        Ok(checks) => {
            let ok = checks.iter().all(|(_, r)| r.is_ok());
            let body: String = checks
                .iter()
                .map(|(what, r)| match r {
                    Ok(()) => format!("{what}: ok\n"),
                    Err(e) => format!("{what}: {e}\n"),
                })
                .collect();
            let status = if ok {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            (status, body).into_response()
        }
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    }
}
