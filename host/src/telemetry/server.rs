//! The HTTP listener of `http.listen`: `/healthz` (the process answers), `/readyz` (plugins
//! loaded, store and application queue reachable; 503 with the reasons otherwise) and
//! `/metrics`. GET only, HTTP/1.1, no bodies read.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::{METRICS, QUEUE_REACHABLE};
use crate::issues::IssueStore;

/// What `/readyz` looks at.
pub struct ProbeState {
    /// The store, pinged at each probe.
    pub issues: Arc<IssueStore>,
}

/// How long `/readyz` waits for the store.
const STORE_PROBE: Duration = Duration::from_secs(2);
/// Connections served at once; more are closed at once, so a flood of clients costs the
/// host a bounded number of tasks.
const MAX_CONNECTIONS: usize = 32;

/// Serves until `stop` turns true.
pub async fn serve(listener: TcpListener, state: Arc<ProbeState>, mut stop: watch::Receiver<bool>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, _) = tokio::select! {
            _ = stop.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!("http: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service = service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(respond(&request, &state).await) }
            });
            // A client that stalls holds only its own connection.
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(5))
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(Duration::from_secs(30), connection).await;
        });
    }
}

async fn respond(request: &Request<Incoming>, state: &ProbeState) -> Response<Full<Bytes>> {
    if request.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into());
    }
    match request.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" => {
            let problems = not_ready(state).await;
            if problems.is_empty() {
                text(StatusCode::OK, "ready\n".into())
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("not ready: {}\n", problems.join("; ")),
                )
            }
        }
        "/metrics" => {
            let mut response = text(StatusCode::OK, METRICS.encode());
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            response
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

/// Why the host is not ready; empty when it is.
async fn not_ready(state: &ProbeState) -> Vec<String> {
    let mut problems = Vec::new();
    let not_loaded = super::not_loaded();
    if !not_loaded.is_empty() {
        problems.push(format!("plugins not loaded: {}", not_loaded.join(", ")));
    }
    let loading = super::loading();
    if !loading.is_empty() {
        problems.push(format!("plugins still compiling: {}", loading.join(", ")));
    }
    match tokio::time::timeout(STORE_PROBE, state.issues.ping()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => problems.push(format!("issue store: {e:#}")),
        Err(_) => problems.push(format!("issue store: no answer within {STORE_PROBE:?}")),
    }
    if !QUEUE_REACHABLE.load(Ordering::Relaxed) {
        problems.push("application queue unreachable".into());
    }
    problems
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
