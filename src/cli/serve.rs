//! `serve`: the SCIM 2.0 service over the embedded directory, until Ctrl-C or SIGTERM.
//!
//! In: `[serve] listen` (or `--listen`), the bearer token (`[serve] token`, from
//! `PUSH_CONNECTOR__SERVE__TOKEN` or `…_FILE`), the directory file, the state database
//! (writes are validated and journalled as runs, like a file's), the rules, and
//! `[serve] tls_cert` / `tls_key` for HTTPS, `[serve] clients` for the OAuth2 token endpoint,
//! the organisations each credential may act for, and the request and connection limits.
//! Out: one line on stdout naming the base URL
//! (`serve: listening on http(s)://ADDR/v2`, so a caller that asked for port 0 learns the
//! port), then requests until stopped. Exit 0, 2 on an error.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use secrecy::ExposeSecret as _;

use push_connector::config::Config;
use push_connector::config::ServeConfig;
use push_connector::directory::local::LocalDirectory;
use push_connector::scim::filter;
use push_connector::scim::schema::CodeLists;
use push_connector::serve::oauth::{Client, Issuer};
use push_connector::serve::rules::Pipeline;
use push_connector::serve::scope::Scope;
use push_connector::serve::throttle::Throttle;
use push_connector::serve::{self as server, RequestLimits, ServerState, listen, tls};
use push_connector::store::StateDb;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on, instead of `[serve] listen` (port 0 picks a free port).
    #[arg(long)]
    listen: Option<String>,
}

pub fn run(config: &Config, args: Args) -> anyhow::Result<ExitCode> {
    let scope = config.serve_scope_problems();
    if !scope.is_empty() {
        bail!("serve cannot start:\n  - {}", scope.join("\n  - "));
    }
    let token = config
        .serve
        .token
        .as_ref()
        .map(|t| t.0.expose_secret().to_owned());
    if token.is_none() && config.serve.clients.is_empty() {
        bail!(
            "serve needs a bearer token or OAuth2 clients: set [serve] token, or \
             PUSH_CONNECTOR__SERVE__TOKEN (or PUSH_CONNECTOR__SERVE__TOKEN_FILE), or [serve] clients"
        );
    }
    if token.as_ref().is_some_and(|t| t.trim().is_empty()) {
        bail!("the serve token is empty");
    }
    let oauth = issuer(config)?;
    let codes = CodeLists::from_config(&config.validation).context("reading the code lists")?;
    let listen = args.listen.unwrap_or_else(|| config.serve.listen.clone());
    let tls = match (&config.serve.tls_cert, &config.serve.tls_key) {
        (Some(cert), Some(key)) => Some(tls::server_config(cert, key)?),
        _ => None,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    if let Some(parent) = config.directory.path.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    rt.block_on(async {
        let directory = LocalDirectory::open(&config.directory.path)
            .await
            .with_context(|| {
                format!("opening the directory {}", config.directory.path.display())
            })?;
        let state_db = StateDb::open(&config.service.state_dir)
            .await
            .with_context(|| {
                format!(
                    "opening the state database in {}",
                    config.service.state_dir.display()
                )
            })?;
        let pipeline = Pipeline {
            rules: push_connector::deployment::rules(config, None).await?,
            config: config.clone(),
            state: state_db,
        };
        resume(&directory, &pipeline).await?;
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        let addr = listener.local_addr()?;
        let token_scope = Scope::from_codes(&config.serve.token_organisations);
        let mut state = ServerState::new(directory, token, token_scope, codes, pipeline);
        state.https = tls.is_some();
        state.oauth = oauth;
        state.set_limits(request_limits(&config.serve));
        state.metrics = match push_connector::console::metrics::Metrics::install() {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!(error = %e, "metrics recorder not installed: /metrics is off");
                None
            }
        };
        state.metrics_token = config.console.metrics_token.as_ref().map(|t| {
            use secrecy::ExposeSecret as _;
            t.0.expose_secret().to_owned()
        });
        let scheme = if state.https { "https" } else { "http" };
        println!("serve: listening on {scheme}://{addr}/v2");
        std::io::stdout().flush()?;
        tracing::info!(%addr, scheme, "SCIM service started");
        let acceptor = tls.map(tls::acceptor);
        server::serve(
            listener,
            acceptor,
            state,
            connection_limits(&config.serve),
            shutdown(),
        )
        .await
        .context("serving")?;
        tracing::info!("SCIM service stopped");
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Finishes the runs a stopped process left behind (a Bulk request killed mid-commit among
/// them) before the first request is served, so a client that asks again finds the
/// directory as the whole run leaves it, and its retry creates no duplicate.
async fn resume(directory: &LocalDirectory, pipeline: &Pipeline) -> anyhow::Result<()> {
    let progress = |_: u64, _: u64| {};
    let ctx = push_connector::apply::Context {
        directory,
        state: &pipeline.state,
        passwords: push_connector::deployment::password_file(&pipeline.config),
        progress: &progress,
    };
    let done = push_connector::pipeline::resume_unfinished(
        &ctx,
        &mut push_connector::apply::RandomMinter,
        chrono::Utc::now(),
    )
    .await
    .context("finishing interrupted runs")?;
    for run in done {
        tracing::info!(run = %run, "finished a run left behind");
    }
    Ok(())
}

/// The token endpoint of `[serve] clients`, their secrets read now; none without clients.
fn issuer(config: &Config) -> anyhow::Result<Option<Issuer>> {
    if config.serve.clients.is_empty() {
        return Ok(None);
    }
    let mut clients = Vec::new();
    for c in &config.serve.clients {
        let secret = match (&c.secret, &c.secret_env) {
            (Some(s), _) => s.0.expose_secret().to_owned(),
            (None, Some(var)) => std::env::var(var).with_context(|| {
                format!(
                    "the secret of OAuth2 client {}: environment variable {var}",
                    c.id
                )
            })?,
            (None, None) => bail!("OAuth2 client {} has no secret", c.id),
        };
        if secret.trim().is_empty() {
            bail!("the secret of OAuth2 client {} is empty", c.id);
        }
        clients.push(Client {
            id: c.id.clone(),
            secret,
            scope: Scope::from_codes(&c.organisations),
        });
    }
    let s = &config.serve;
    Ok(Some(Issuer::new(
        clients,
        Duration::from_secs(s.token_seconds),
        Throttle::new(
            s.token_failures,
            Duration::from_secs(s.token_failure_window_seconds),
        ),
    )))
}

fn request_limits(s: &ServeConfig) -> RequestLimits {
    RequestLimits {
        filter: filter::Limits {
            length: s.filter_max_length,
            depth: s.filter_max_depth,
            terms: s.filter_max_terms,
        },
        scan: s.scan_limit,
        parallel_scans: s.parallel_scans,
        body_bytes: s.max_body_bytes,
        body_timeout: Duration::from_secs(s.body_timeout_seconds),
    }
}

fn connection_limits(s: &ServeConfig) -> listen::Limits {
    listen::Limits {
        header_timeout: Duration::from_secs(s.header_timeout_seconds),
        idle_timeout: Duration::from_secs(s.idle_timeout_seconds),
        max_connections: s.max_connections,
    }
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
