//! The HTTP listener (`fjord.http.listener`, HTTPS with `https://` and `fjord.http.ssl.*`):
//! `GET /metrics` (Prometheus text), `GET /health` (the process is up), `GET /ready` (logs loaded,
//! listeners bound, and in a metadata quorum caught up) and the web console at `/` with its JSON
//! API under `/api/` ([`console`], its login in [`login`]). Bounded: a connection limit, a
//! deadline on reading a request's headers (and on the TLS handshake) and on a connection's life.
//! Never on the Kafka request path; a scrape reads the broker on a blocking thread.

pub mod collect;
pub mod console;
pub mod login;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::broker::Broker;
use crate::config::{self, HttpConfig};
use crate::server::tls::ListenerTls;

/// hyper's smallest read buffer, which bounds a request's headers (hyper refuses less).
const HTTP_REQUEST_HEAD_MAX_BYTES: usize = 8192;

/// The Prometheus text format's content type.
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Reads the metadata quorum for a scrape (a voter's Raft state and applied image).
pub type QuorumSource = Arc<dyn Fn() -> crate::metrics::QuorumView + Send + Sync>;

/// What the endpoints answer from: the broker once it is assembled, the quorum on a voter, and
/// whether the node is ready. Made before the logs load, so `/health` and `/ready` answer during
/// startup. A controller-only node has a quorum and no broker: its `/metrics` shows the quorum
/// and the process, and it serves no console.
#[derive(Default)]
pub struct HttpState {
    broker: OnceLock<Arc<Broker>>,
    quorum: OnceLock<QuorumSource>,
    ready: AtomicBool,
    /// The console's throughput chart: the last minutes of samples.
    throughput: console::Throughput,
}

impl HttpState {
    pub fn set_broker(&self, broker: Arc<Broker>) {
        let _ = self.broker.set(broker);
    }

    /// A voter of the metadata quorum: `/metrics` shows the quorum too.
    pub fn set_quorum(&self, source: QuorumSource) {
        let _ = self.quorum.set(source);
    }

    /// The node serves clients: `/ready` answers 200 from now on.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

/// The HTTP listener bound to its port.
pub struct BoundHttp {
    socket: TcpListener,
    pub local_addr: SocketAddr,
    /// `https://`: the TLS built from `fjord.http.ssl.*` (reloaded when its store files change,
    /// as an SSL listener's are).
    tls: Option<Arc<ListenerTls>>,
    /// `fjord.ssl.reload.check.interval.ms`: how often the store files are looked at; 0 = never.
    reload_check_interval_ms: u64,
}

impl BoundHttp {
    /// Whether the listener serves HTTPS.
    pub fn is_https(&self) -> bool {
        self.tls.is_some()
    }
}

/// Binds `fjord.http.listener` (with its certificate, for `https://`); an error stops startup, as
/// a Kafka listener's would. `reload_check_interval_ms`: `fjord.ssl.reload.check.interval.ms`.
pub async fn bind(config: &HttpConfig, reload_check_interval_ms: u64) -> std::io::Result<Option<BoundHttp>> {
    let Some(endpoint) = &config.listener else { return Ok(None) };
    let tls = match &config.tls {
        Some(settings) => {
            let tls = ListenerTls::new(config::HTTP_SSL_PREFIX.trim_end_matches('.'), settings)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{}{}: {}", config::HTTP_SSL_PREFIX, e.property, e.reason)))?;
            Some(Arc::new(tls))
        }
        None => None,
    };
    let socket = TcpListener::bind((endpoint.host.as_str(), endpoint.port)).await?;
    let local_addr = socket.local_addr()?;
    Ok(Some(BoundHttp { socket, local_addr, tls, reload_check_interval_ms }))
}

/// Reloads the HTTPS listener's stores when their files' content changed, every `interval_ms`
/// (a renewed certificate is served to new connections; a refused one is logged once).
async fn check_store_files(tls: Arc<ListenerTls>, interval_ms: u64) {
    loop {
        tokio::time::sleep(Duration::from_millis(interval_ms)).await;
        let tls = tls.clone();
        // Reads and parses files: off the async workers.
        let _ = tokio::task::spawn_blocking(move || tls.reload_changed_files()).await;
    }
}

/// Serves until `stop` turns true; then drops every open HTTP connection.
pub async fn serve(bound: BoundHttp, state: Arc<HttpState>, config: HttpConfig, mut stop: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(config.connections_max));
    let mut connections = JoinSet::new();
    let sampler = tokio::spawn(console::sample_throughput(state.clone()));
    let sessions = Arc::new(login::Sessions::new(config.console_sessions_max, Duration::from_millis(config.console_session_lifetime_ms)));
    let reloader = bound.tls.clone().filter(|_| bound.reload_check_interval_ms > 0).map(|tls| tokio::spawn(check_store_files(tls, bound.reload_check_interval_ms)));
    loop {
        tokio::select! {
            accepted = bound.socket.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Ok(permit) = slots.clone().try_acquire_owned() else {
                        tracing::debug!(%peer, max = config.connections_max, "fjord.http.connections.max reached; closing new HTTP connection");
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let (state, config, tls) = (state.clone(), config.clone(), bound.tls.as_ref().map(|t| t.acceptor()));
                    let console = console::Context { readonly: config.console_readonly, https: tls.is_some(), peer, sessions: sessions.clone() };
                    connections.spawn(async move {
                        match tls {
                            None => serve_connection(stream, state, console, &config).await,
                            Some(acceptor) => {
                                // The handshake is bounded as a request's headers are.
                                match tokio::time::timeout(Duration::from_millis(config.request_timeout_ms), acceptor.accept(stream)).await {
                                    Ok(Ok(tls)) => serve_connection(tls, state, console, &config).await,
                                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "HTTPS handshake failed"),
                                    Err(_) => tracing::debug!(%peer, "HTTPS handshake timed out"),
                                }
                            }
                        }
                        drop(permit);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = stop.changed() => break,
        }
    }
    sampler.abort();
    if let Some(r) = reloader {
        r.abort();
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}

async fn serve_connection<S>(stream: S, state: Arc<HttpState>, console: console::Context, config: &HttpConfig)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let console = Arc::new(console);
    let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let (state, console) = (state.clone(), console.clone());
        async move {
            if console::is_console_path(req.uri().path()) && (state.broker.get().is_some() || state.quorum.get().is_none()) {
                return Ok::<_, Infallible>(console::handle(&state, &console, req).await);
            }
            Ok::<_, Infallible>(route(&state, req.method(), req.uri().path()).await)
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(config.request_timeout_ms))
        .max_buf_size(HTTP_REQUEST_HEAD_MAX_BYTES)
        .serve_connection(TokioIo::new(stream), service);
    // A client slower than the header deadline is cut by hyper; one that keeps a connection
    // busy or idle forever, by the connection's life limit.
    let _ = tokio::time::timeout(Duration::from_millis(config.connection_max_ms), connection).await;
}

async fn route(state: &Arc<HttpState>, method: &Method, path: &str) -> Response<Full<Bytes>> {
    let known = matches!(path, "/metrics" | "/health" | "/ready");
    if !known {
        return text(StatusCode::NOT_FOUND, "not found\n");
    }
    if method != Method::GET {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
        r.headers_mut().insert(hyper::header::ALLOW, hyper::header::HeaderValue::from_static("GET"));
        return r;
    }
    match path {
        "/health" => text(StatusCode::OK, "ok\n"),
        "/ready" if state.is_ready() => text(StatusCode::OK, "ready\n"),
        "/ready" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        _ => metrics(state).await,
    }
}

async fn metrics(state: &Arc<HttpState>) -> Response<Full<Bytes>> {
    let quorum = state.quorum.get().cloned();
    let render: Box<dyn FnOnce() -> String + Send> = match (state.broker.get().cloned(), quorum) {
        (Some(broker), quorum) => Box::new(move || {
            let mut snapshot = collect::snapshot(&broker);
            snapshot.quorum = quorum.map(|q| q());
            crate::metrics::render(broker.metrics.clone(), snapshot)
        }),
        (None, Some(quorum)) if state.is_ready() => Box::new(move || crate::metrics::render_controller(quorum(), crate::metrics::process::read())),
        _ => return text(StatusCode::SERVICE_UNAVAILABLE, "starting\n"),
    };
    // The walk takes each log's lock, which an append may hold while it writes: off the async
    // workers.
    match tokio::task::spawn_blocking(render).await {
        Ok(body) => {
            let mut r = Response::new(Full::new(Bytes::from(body)));
            r.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(METRICS_CONTENT_TYPE));
            r
        }
        Err(e) => {
            tracing::error!(error = %e, "collecting metrics failed");
            text(StatusCode::INTERNAL_SERVER_ERROR, "collecting metrics failed\n")
        }
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn status(state: &Arc<HttpState>, method: Method, path: &str) -> StatusCode {
        route(state, &method, path).await.status()
    }

    #[tokio::test]
    async fn paths_methods_and_readiness_answer_as_documented() {
        let state = Arc::new(HttpState::default());
        assert_eq!(status(&state, Method::GET, "/health").await, StatusCode::OK);
        assert_eq!(status(&state, Method::GET, "/ready").await, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(status(&state, Method::GET, "/metrics").await, StatusCode::SERVICE_UNAVAILABLE, "no broker yet");
        assert_eq!(status(&state, Method::GET, "/favicon.ico").await, StatusCode::NOT_FOUND);
        assert_eq!(status(&state, Method::GET, "/metricsx").await, StatusCode::NOT_FOUND);
        assert_eq!(status(&state, Method::POST, "/metrics").await, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(status(&state, Method::DELETE, "/health").await, StatusCode::METHOD_NOT_ALLOWED);
        state.set_ready();
        assert_eq!(status(&state, Method::GET, "/ready").await, StatusCode::OK);
    }
}
