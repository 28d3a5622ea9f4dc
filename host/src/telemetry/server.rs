//! The HTTP listener of `http.listen`: `/healthz` (the process answers), `/readyz` (plugins
//! loaded, store and application queue reachable; 503 with the reasons otherwise) and
//! `/metrics`. GET only, HTTP/1.1, no bodies read.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

use super::{METRICS, QUEUE_REACHABLE};
use crate::issues::IssueStore;

/// What `/readyz` looks at.
pub struct ProbeState {
    /// The store, pinged at each probe.
    pub issues: Arc<IssueStore>,
}

/// How long `/readyz` waits for the store.
const STORE_PROBE: Duration = Duration::from_secs(2);
/// Connections served at once, so a flood of clients costs the host a bounded number of
/// tasks. At the cap, the connection idle the longest is closed for the new one (a client
/// holding idle keep-alive connections cannot starve `/healthz`); if none is idle, the new
/// one waits [`SLOT_WAIT`] for a slot, then is closed.
const MAX_CONNECTIONS: usize = 32;
/// How long a new connection waits for a slot at the cap.
const SLOT_WAIT: Duration = Duration::from_secs(1);
/// How long one connection may stay open, whatever it does.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);

/// One open connection, as the accept loop sees it.
struct Connection {
    /// No request is being answered on it.
    idle: AtomicBool,
    /// When it last started or finished a request (or opened), for "idle the longest".
    last_active: std::sync::Mutex<Instant>,
    /// Asks it to close once the response in progress, if any, is written.
    close: Notify,
}

impl Connection {
    fn touch(&self, idle: bool) {
        self.idle.store(idle, Ordering::Relaxed);
        *self.last_active.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }
}

/// The open connections, by number.
#[derive(Default)]
struct Connections {
    open: std::sync::Mutex<HashMap<u64, Arc<Connection>>>,
}

impl Connections {
    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Connection>>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks the connection idle the longest, if any is idle, to close.
    fn close_longest_idle(&self) {
        let open = self.open();
        let longest = open
            .values()
            .filter(|c| c.idle.load(Ordering::Relaxed))
            .min_by_key(|c| *c.last_active.lock().unwrap_or_else(|e| e.into_inner()));
        if let Some(connection) = longest {
            connection.idle.store(false, Ordering::Relaxed); // not chosen twice
            connection.close.notify_one();
        }
    }
}

/// Serves until `stop` turns true.
pub async fn serve(listener: TcpListener, state: Arc<ProbeState>, mut stop: watch::Receiver<bool>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let connections = Arc::new(Connections::default());
    let mut next_id = 0u64;
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
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                // At the cap: the connection idle the longest closes (its task ends and
                // frees its slot a moment later); with none idle, a busy one may end within
                // the wait. Otherwise this one is closed.
                connections.close_longest_idle();
                match tokio::time::timeout(SLOT_WAIT, slots.clone().acquire_owned()).await {
                    Ok(Ok(slot)) => slot,
                    _ => continue,
                }
            }
        };
        next_id += 1;
        let id = next_id;
        let connection = Arc::new(Connection {
            idle: AtomicBool::new(true),
            last_active: std::sync::Mutex::new(Instant::now()),
            close: Notify::new(),
        });
        connections.open().insert(id, connection.clone());
        let (state, connections) = (state.clone(), connections.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let tracked = connection.clone();
            let service = service_fn(move |request| {
                let (state, tracked) = (state.clone(), tracked.clone());
                async move {
                    tracked.touch(false);
                    let response = respond(&request, &state).await;
                    tracked.touch(true);
                    Ok::<_, Infallible>(response)
                }
            });
            // A client that stalls holds only its own connection, for a bounded time.
            let served = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(5))
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(served);
            let lifetime = tokio::time::sleep(CONNECTION_LIFETIME);
            tokio::pin!(lifetime);
            let mut closing = false;
            loop {
                tokio::select! {
                    _ = served.as_mut() => break,
                    _ = &mut lifetime => break,
                    _ = connection.close.notified(), if !closing => {
                        closing = true;
                        served.as_mut().graceful_shutdown();
                    }
                }
            }
            connections.open().remove(&id);
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
