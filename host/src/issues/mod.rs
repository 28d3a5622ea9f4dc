//! The issues each monitor has found, kept in a database: SQLite (default, one file) or
//! PostgreSQL (shared by every executor of a scaled-out deployment).
//!
//! An issue is unique per (monitor, id) among active issues — a partial unique index, so two
//! executors racing on the same monitor can never create the same issue twice. `search`
//! creates issues or refreshes the active one with the same id; `update` refreshes active
//! issues; `is-solved` closes them. Each change is one SQL statement whose affected-row count
//! says whether this process made it, so only the process that made a change reports it.
//!
//! Issue writes are batched: every task's changes go to one writer task per store, which
//! takes what has queued up while it wrote the previous batch (at most [`MAX_BATCH`]) and
//! commits it in one transaction, in queue order, so a write waits at most for the batch
//! before it and its own. A task's write is *acknowledged* when its batch has committed:
//! only then does `record_found` / `record_updated` return and the task count as done (and,
//! on a shared application queue, its message get deleted). A crash before that loses the
//! uncommitted batch as a whole — no change and no event of it — and the task runs again
//! (its trigger comes again; an SQS message is delivered again), finding the same issues.
//!
//! Reads of each monitor's *version* (see [`known`]), one or two per task, are batched the
//! same way: one `IN (…)` query answers every task that asked while the previous one ran.
//!
//! Events are at least once, through an outbox: the event of a change (`created`, `updated`,
//! `solved`, with a stable `event_id`) is written in the same transaction as the change, then
//! published — a structured log event on the `sentinela::issues` target and, when
//! `store.events_queue` names a queue, a JSON message on it — and then deleted. An event a
//! crash or a failed send left behind is published again at start and by a sweep every
//! [`SWEEP_EVERY`], in `event_id` order, with its original id and time: a consumer drops
//! the ids it has seen.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use sqlx::{Connection, Executor, Row};

use crate::bindings::sentinela::plugin::types::Issue;
use crate::capabilities::queue::MonitorQueues;
use crate::config::values::ConfigPath;

mod known;
mod monitor_state;

pub use known::{KEPT_TEXT_BYTES, OverActiveLimit};
use known::{Known, KnownData};
pub use monitor_state::LastRun;

/// The tracing target of issue events (`created`, `updated`, `solved`).
pub const TARGET: &str = "sentinela::issues";

/// Largest `data` a monitor may attach to one issue.
pub const MAX_DATA_BYTES: usize = 256 << 10;
/// Longest issue id.
pub const MAX_ID_BYTES: usize = 256;
/// How long an SQLite connection waits for another process's write lock.
const SQLITE_BUSY_TIMEOUT_MS: u64 = 10_000;
/// The schema this build creates and understands.
const SCHEMA_VERSION: i64 = 1;

/// An issue's state, as stored in its `status` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Open: seen by `update` and `is-solved`; at most one per (monitor, id).
    Active,
    /// Closed by `is-solved`; kept for listings and never reopened (the same id found again is a
    /// new issue).
    Solved,
    /// Closed by an `issue_drop` request; kept for listings like a solved issue.
    Dropped,
}

impl Status {
    /// The stored and displayed name: `active` or `solved`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Solved => "solved",
            Status::Dropped => "dropped",
        }
    }
}

/// An issue as stored, for listings (`sentinela issues`, which can print it as JSON); times
/// serialize as fractional Unix seconds.
#[derive(Debug, Clone, Serialize)]
pub struct StoredIssue {
    /// The issue's stable integer key in the store: what an `issue_drop` request names.
    pub key: i64,
    /// The name of the monitor that found it.
    pub monitor: String,
    /// The id the monitor gave it; unique among the monitor's active issues.
    pub id: String,
    /// Whether it is still active.
    pub status: Status,
    /// The monitor's data for it: a JSON object (a string if the stored text is not JSON).
    pub data: Value,
    /// When it was first recorded.
    #[serde(with = "unix_seconds")]
    pub created_at: SystemTime,
    /// When its data last changed or it was solved; its creation time until then.
    #[serde(with = "unix_seconds")]
    pub updated_at: SystemTime,
    /// When it was solved; `None` (JSON `null`) while it is active.
    #[serde(with = "unix_seconds::option")]
    pub solved_at: Option<SystemTime>,
}

/// What happened to one issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// This process inserted a new active issue.
    Created,
    /// This process changed an active issue's data.
    Updated,
    /// Nothing was written: the data was already the same, or (for `update`) the issue is not
    /// active.
    Unchanged,
    /// This process closed an active issue.
    Solved,
    /// This process dropped an active issue (`issue_drop`).
    Dropped,
}

impl Change {
    fn event(self) -> &'static str {
        match self {
            Change::Created => "created",
            Change::Updated => "updated",
            Change::Unchanged => "unchanged",
            Change::Solved => "solved",
            Change::Dropped => "dropped",
        }
    }
}

/// Where issue events go besides the log: a queue of the config's `queues:` section.
#[derive(Clone)]
pub struct EventQueue {
    /// The `queues:` section's queues, which send the message.
    pub queues: Arc<MonitorQueues>,
    /// The queue's name (`store.events_queue`), declared under `queues:`.
    pub queue: String,
}

/// A connection pool on the issue database, opened with [`IssueStore::open`]. Every change it
/// makes commits with its event, which is then logged (and sent to the events queue, if any):
/// at least once, see the module docs.
pub struct IssueStore {
    pool: AnyPool,
    /// SQLite or PostgreSQL: the one place their SQL differs is an issue's integer key.
    kind: StoreKind,
    /// Shown in errors and `check`: the file, or the URL without its password.
    location: String,
    /// The connection URL, for explaining a pool timeout; never shown (it may hold a
    /// password).
    url: zeroize::Zeroizing<String>,
    events: Option<EventQueue>,
    /// What this process knows of each monitor's active issues.
    known: Arc<Known>,
    /// The queue of the batch writer task ([`Writer`]).
    writes: tokio::sync::mpsc::UnboundedSender<PendingWrite>,
    /// The queue of the version reader task ([`VersionReader`]).
    version_reads: tokio::sync::mpsc::UnboundedSender<VersionRead>,
}

/// How often events left unpublished are published again, and how old they must be (younger
/// ones may still be on their way).
pub const SWEEP_EVERY: Duration = Duration::from_secs(30);

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS sentinela_schema (version BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS sentinela_issues (
        monitor TEXT NOT NULL,
        issue_id TEXT NOT NULL,
        status TEXT NOT NULL,
        data TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        solved_at BIGINT
    )",
    "CREATE UNIQUE INDEX IF NOT EXISTS sentinela_issues_active
        ON sentinela_issues (monitor, issue_id) WHERE status = 'active'",
    "CREATE INDEX IF NOT EXISTS sentinela_issues_by_monitor
        ON sentinela_issues (monitor, status)",
    // Monitors switched off by `monitor_disable`; a monitor without a row is enabled.
    "CREATE TABLE IF NOT EXISTS sentinela_monitor_state (
        monitor TEXT PRIMARY KEY,
        enabled BIGINT NOT NULL,
        changed_at BIGINT NOT NULL
    )",
    // How each monitor's last task ended, written in batches (`sentinela monitors`).
    // Bumped by every change to a monitor's issues, in the change's transaction: one read
    // tells a process whether what it knows of the monitor's issues still holds.
    "CREATE TABLE IF NOT EXISTS sentinela_issue_versions (
        monitor TEXT PRIMARY KEY,
        version BIGINT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS sentinela_monitor_runs (
        monitor TEXT PRIMARY KEY,
        task TEXT NOT NULL,
        outcome TEXT NOT NULL,
        finished_at BIGINT NOT NULL
    )",
    // How each monitor's export calls went, written when it changes (`sentinela monitors`).
    "CREATE TABLE IF NOT EXISTS sentinela_monitor_calls (
        monitor TEXT PRIMARY KEY,
        last_outcomes TEXT NOT NULL,
        failed_in_a_row BIGINT NOT NULL,
        last_error TEXT,
        updated_at BIGINT NOT NULL
    )",
];

/// The outbox: events committed with their change and not yet published. The id column is
/// the one thing SQLite and PostgreSQL spell differently.
fn outbox_table(kind: StoreKind) -> String {
    let id = match kind {
        StoreKind::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
        StoreKind::Postgres => "BIGSERIAL PRIMARY KEY",
    };
    format!(
        "CREATE TABLE IF NOT EXISTS sentinela_events (
            event_id {id},
            monitor TEXT NOT NULL,
            issue_id TEXT NOT NULL,
            event TEXT NOT NULL,
            data TEXT,
            at BIGINT NOT NULL
        )"
    )
}

/// An issue event as the outbox holds it.
#[derive(Debug, Clone)]
struct IssueEvent {
    event_id: i64,
    monitor: String,
    issue_id: String,
    event: String,
    /// The issue's data as stored (JSON text); `None` for `solved`.
    data: Option<String>,
    /// When the change was made, in Unix milliseconds.
    at: i64,
}

impl IssueStore {
    /// Connects (creating the SQLite file if needed) and creates or checks the schema.
    pub async fn open(config: &StoreConfig, events: Option<EventQueue>) -> Result<IssueStore> {
        sqlx::any::install_default_drivers();
        let (url, location, connections) = match config.kind {
            StoreKind::Sqlite => {
                let path = &config.path;
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).with_context(|| {
                        format!("store: cannot create the directory of {}", path.display())
                    })?;
                }
                let url = format!("sqlite://{}?mode=rwc", sqlite_url_path(path)?);
                (url, path.display().to_string(), config.pool_size.min(4))
            }
            StoreKind::Postgres => {
                let url = config.postgres_url()?;
                let location = redact_url(&url);
                (url, location, config.pool_size)
            }
        };
        let cannot_open =
            |e: sqlx::Error| anyhow::anyhow!("store: cannot open {location}: {}", describe(&e));
        // One connection first: its error says why (refused, unknown database, bad password);
        // the pool's would only say that it timed out.
        sqlx::AnyConnection::connect(&url)
            .await
            .map_err(cannot_open)?
            .close()
            .await
            .map_err(cannot_open)?;
        let sqlite = config.kind == StoreKind::Sqlite;
        let pool = AnyPoolOptions::new()
            .max_connections(connections + HELD_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(10))
            // A ping before each use is a network check for a server; for an SQLite file it
            // is one more round trip to the connection's thread per query, and finds nothing.
            .test_before_acquire(!sqlite)
            // Every connection waits the same for a writer of another process.
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    if sqlite {
                        connection
                            .execute(
                                format!("PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}").as_str(),
                            )
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(cannot_open)?;
        let known: Arc<Known> = Arc::default();
        let (writes, queued) = tokio::sync::mpsc::unbounded_channel();
        let writer = Writer {
            connection: HeldConnection::new(pool.clone()),
            pool: pool.clone(),
            events: events.clone(),
            known: known.clone(),
        };
        tokio::spawn(writer.run(queued));
        let (version_reads, asked) = tokio::sync::mpsc::unbounded_channel();
        let version_reader = VersionReader {
            connection: HeldConnection::new(pool.clone()),
        };
        tokio::spawn(version_reader.run(asked));
        let store = IssueStore {
            pool,
            kind: config.kind,
            location,
            url: zeroize::Zeroizing::new(url),
            events,
            known,
            writes,
            version_reads,
        };
        // Processes sharing one SQLite file (a controller and executors started together)
        // can find it locked while another one creates the schema or switches it to WAL,
        // which SQLite reports at once rather than through the busy timeout: try again for a
        // while.
        let started = std::time::Instant::now();
        loop {
            match store.migrate(config.kind).await {
                Err(e)
                    if config.kind == StoreKind::Sqlite
                        && format!("{e:#}").contains("database is locked")
                        && started.elapsed() < Duration::from_secs(15) =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                result => {
                    result.with_context(|| {
                        format!("store: preparing the schema in {}", store.location)
                    })?;
                    break;
                }
            }
        }
        Ok(store)
    }

    /// A pool timeout says only that no connection came in time; one direct connection
    /// attempt says why (refused, bad password, unknown database). Other errors as they are.
    pub async fn explain(&self, error: anyhow::Error) -> anyhow::Error {
        let timed_out = error
            .downcast_ref::<sqlx::Error>()
            .is_some_and(|e| matches!(e, sqlx::Error::PoolTimedOut));
        if !timed_out {
            return error;
        }
        let attempt = tokio::time::timeout(
            Duration::from_secs(5),
            sqlx::AnyConnection::connect(self.url.as_str()),
        )
        .await;
        match attempt {
            Ok(Err(why)) => anyhow::anyhow!(
                "{error:#}: {} cannot be reached: {}",
                self.location,
                describe(&why)
            ),
            Ok(Ok(connection)) => {
                let _ = connection.close().await;
                anyhow::anyhow!("{error:#}: every connection of the pool is busy")
            }
            Err(_) => anyhow::anyhow!("{error:#}: {} does not answer", self.location),
        }
    }

    /// Whether the database answers (`/readyz`).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// The database, for messages: a file path or a URL without its password.
    pub fn location(&self) -> &str {
        &self.location
    }

    async fn migrate(&self, kind: StoreKind) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        match kind {
            // Executors starting together would race on CREATE TABLE; one at a time.
            StoreKind::Postgres => {
                tx.execute("SELECT pg_advisory_xact_lock(7301594114)")
                    .await?;
                // `IF NOT EXISTS` on an existing table is a NOTICE each start; not news.
                tx.execute("SET LOCAL client_min_messages = warning")
                    .await?;
            }
            StoreKind::Sqlite => {}
        }
        for statement in SCHEMA {
            tx.execute(*statement).await?;
        }
        tx.execute(outbox_table(kind).as_str()).await?;
        if kind == StoreKind::Postgres {
            // SQLite's rowid is the key there; PostgreSQL numbers existing rows as it adds it.
            tx.execute("ALTER TABLE sentinela_issues ADD COLUMN IF NOT EXISTS issue_key BIGSERIAL")
                .await?;
        }
        let version: Option<i64> = sqlx::query("SELECT MAX(version) FROM sentinela_schema")
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        match version {
            None => {
                sqlx::query("INSERT INTO sentinela_schema (version) VALUES ($1)")
                    .bind(SCHEMA_VERSION)
                    .execute(&mut *tx)
                    .await?;
            }
            Some(v) if v > SCHEMA_VERSION => bail!(
                "the database has schema version {v}, newer than this sentinela's \
                 ({SCHEMA_VERSION}): upgrade sentinela"
            ),
            Some(_) => {}
        }
        tx.commit().await?;
        if kind == StoreKind::Sqlite {
            // Readers (`sentinela issues`) never block the writer.
            sqlx::query("PRAGMA journal_mode = WAL")
                .fetch_all(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// Makes what this process knows of the monitor's active issues current: one read of its
    /// version, and, when another process changed them since, one read of the issues, which
    /// are returned (in id order) so a caller that wants them does not read them again.
    async fn refresh_known(&self, monitor: &str) -> Result<Option<Vec<Issue>>> {
        let (reply, version) = tokio::sync::oneshot::channel();
        let stopped = || anyhow::anyhow!("store: the version reader has stopped");
        self.version_reads
            .send(VersionRead {
                monitor: monitor.to_owned(),
                reply,
            })
            .map_err(|_| stopped())?;
        let version = version
            .await
            .map_err(|_| stopped())?
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if self.known.is_current(monitor, version) {
            return Ok(None);
        }
        // Read after the version: a change in between makes the issues newer than the
        // version says, and the next refresh reads them again. Never the other way round.
        let issues = self.read_active(monitor).await?;
        self.known.replace(monitor, version, &issues);
        Ok(Some(issues))
    }

    /// Records issues `search` found: new ids are created, active ids get the new data. A
    /// result that would take the monitor over `active_limit` active issues is refused whole
    /// ([`OverActiveLimit`]). Returns one change per valid issue; a result with any read the
    /// monitor's version first, so what this process knows of it is current after.
    pub async fn record_found(
        &self,
        monitor: &str,
        found: Vec<Issue>,
        active_limit: usize,
    ) -> Result<Vec<Change>> {
        let found = validate(monitor, "search", found);
        if found.is_empty() {
            return Ok(Vec::new());
        }
        self.refresh_known(monitor).await?;
        self.known.check_active_limit(
            monitor,
            found.iter().map(|(id, _)| id.as_str()),
            active_limit,
        )?;
        self.record(monitor, found, true).await
    }

    /// Applies data `update` returned; ids that are not active are ignored with a warning.
    pub async fn record_updated(&self, monitor: &str, updated: Vec<Issue>) -> Result<Vec<Change>> {
        let updated = validate(monitor, "update", updated);
        if updated.is_empty() {
            return Ok(Vec::new());
        }
        self.refresh_known(monitor).await?;
        self.record(monitor, updated, false).await
    }

    /// Writes each issue whose data the store does not already hold (as far as this process
    /// knows, just refreshed): found again unchanged, nothing is written.
    async fn record(
        &self,
        monitor: &str,
        issues: Vec<(String, Value)>,
        create: bool,
    ) -> Result<Vec<Change>> {
        let count = |result: &str| {
            crate::telemetry::METRICS
                .issue_records
                .get_or_create(&vec![("result", result.to_owned())])
                .inc();
        };
        // Every write of the call is queued at once (so they can share a batch), then waited
        // for in order; `None`: known to be stored already, not queued.
        let mut changes = Vec::with_capacity(issues.len());
        for (id, data) in issues {
            let text = data.to_string();
            if self.known.holds(monitor, &id, &text) {
                count("skipped");
                changes.push(None);
                continue;
            }
            let (done, acknowledged) = tokio::sync::oneshot::channel();
            let write = PendingWrite {
                monitor: monitor.to_owned(),
                id,
                text,
                create,
                done,
            };
            self.writes
                .send(write)
                .map_err(|_| anyhow::anyhow!("store: the issue writer has stopped"))?;
            changes.push(Some(acknowledged));
        }
        let mut recorded = Vec::with_capacity(changes.len());
        for change in changes {
            recorded.push(match change {
                None => Change::Unchanged,
                Some(acknowledged) => {
                    let change = acknowledged
                        .await
                        .map_err(|_| anyhow::anyhow!("store: the issue writer has stopped"))?
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                    count(if change == Change::Unchanged {
                        "unchanged"
                    } else {
                        "written"
                    });
                    change
                }
            });
        }
        Ok(recorded)
    }

    /// In `tx`: updates the active issue `id` when its data differs, else creates it (when
    /// `create`), with its event. Each step is one statement; the unique index settles races
    /// between processes. Returns the change and, for a change, its event and the monitor's
    /// new version.
    async fn write_one(
        tx: &mut sqlx::AnyConnection,
        write: &PendingWrite,
        now: i64,
    ) -> Result<(Change, Option<(IssueEvent, i64)>)> {
        let PendingWrite {
            monitor,
            id,
            text,
            create,
            ..
        } = write;
        let update = async |tx: &mut sqlx::AnyConnection| {
            let updated = sqlx::query(
                "UPDATE sentinela_issues SET data = $1, updated_at = $2
                 WHERE monitor = $3 AND issue_id = $4 AND status = 'active' AND data <> $1",
            )
            .bind(text)
            .bind(now)
            .bind(monitor)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            anyhow::Ok(updated.rows_affected() == 1)
        };
        let change = if update(tx).await? {
            Change::Updated
        } else if !create {
            if !Self::is_active(tx, monitor, id).await? {
                tracing::warn!(
                    monitor,
                    issue_id = crate::guest_text::shortened(id, 64).as_str(),
                    "update returned an issue that is not active; ignored"
                );
            }
            Change::Unchanged
        } else {
            let inserted = sqlx::query(
                "INSERT INTO sentinela_issues
                    (monitor, issue_id, status, data, created_at, updated_at)
                 VALUES ($1, $2, 'active', $3, $4, $4)
                 ON CONFLICT (monitor, issue_id) WHERE status = 'active' DO NOTHING",
            )
            .bind(monitor)
            .bind(id)
            .bind(text)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if inserted.rows_affected() == 1 {
                Change::Created
            } else if update(tx).await? {
                // Another process created it between our two statements, with other data.
                Change::Updated
            } else {
                Change::Unchanged
            }
        };
        if change == Change::Unchanged {
            return Ok((change, None));
        }
        let event = Self::add_event(tx, monitor, id, change, Some(text.clone()), now).await?;
        Ok((change, Some(event)))
    }

    /// Writes a change's event into the outbox and bumps the monitor's version, in the
    /// change's transaction; returns the event and the monitor's new version.
    async fn add_event(
        tx: &mut sqlx::AnyConnection,
        monitor: &str,
        id: &str,
        change: Change,
        data: Option<String>,
        at: i64,
    ) -> Result<(IssueEvent, i64)> {
        let version: i64 = sqlx::query(
            "INSERT INTO sentinela_issue_versions (monitor, version) VALUES ($1, 1)
             ON CONFLICT (monitor) DO UPDATE SET version = sentinela_issue_versions.version + 1
             RETURNING version",
        )
        .bind(monitor)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        let row = sqlx::query(
            "INSERT INTO sentinela_events (monitor, issue_id, event, data, at)
             VALUES ($1, $2, $3, $4, $5) RETURNING event_id",
        )
        .bind(monitor)
        .bind(id)
        .bind(change.event())
        .bind(data.as_deref())
        .bind(at)
        .fetch_one(&mut *tx)
        .await?;
        let event = IssueEvent {
            event_id: row.try_get(0)?,
            monitor: monitor.to_owned(),
            issue_id: id.to_owned(),
            event: change.event().to_owned(),
            data,
            at,
        };
        Ok((event, version))
    }

    async fn is_active(tx: &mut sqlx::AnyConnection, monitor: &str, id: &str) -> Result<bool> {
        let row = sqlx::query(
            "SELECT COUNT(*) FROM sentinela_issues
             WHERE monitor = $1 AND issue_id = $2 AND status = 'active'",
        )
        .bind(monitor)
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        Ok(row.try_get::<i64, _>(0)? > 0)
    }

    /// Marks an active issue solved; `false` when it was not active (e.g. another executor
    /// solved it first).
    pub async fn solve(&self, monitor: &str, id: &str) -> Result<bool> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let solved = sqlx::query(
            "UPDATE sentinela_issues SET status = 'solved', solved_at = $1, updated_at = $1
             WHERE monitor = $2 AND issue_id = $3 AND status = 'active'",
        )
        .bind(now)
        .bind(monitor)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !solved {
            tx.commit().await?;
            return Ok(false);
        }
        let (event, version) =
            Self::add_event(&mut tx, monitor, id, Change::Solved, None, now).await?;
        tx.commit().await?;
        self.known.note_change(monitor, id, None, version);
        self.publish(event).await;
        Ok(true)
    }

    /// The column holding an issue's integer key.
    fn key_column(&self) -> &'static str {
        match self.kind {
            StoreKind::Sqlite => "rowid",
            StoreKind::Postgres => "issue_key",
        }
    }

    /// Drops the active issue with this key (`issue_drop`): its monitor and id, or `None`
    /// when no active issue has it. The change and its event commit together.
    pub async fn drop_issue(&self, key: i64) -> Result<Option<(String, String)>> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let dropped = sqlx::query(&format!(
            "UPDATE sentinela_issues SET status = 'dropped', solved_at = $1, updated_at = $1
             WHERE {} = $2 AND status = 'active' RETURNING monitor, issue_id",
            self.key_column()
        ))
        .bind(now)
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = dropped else {
            tx.commit().await?;
            return Ok(None);
        };
        let (monitor, id): (String, String) = (row.try_get(0)?, row.try_get(1)?);
        let (event, version) =
            Self::add_event(&mut tx, &monitor, &id, Change::Dropped, None, now).await?;
        tx.commit().await?;
        self.known.note_change(&monitor, &id, None, version);
        self.publish(event).await;
        Ok(Some((monitor, id)))
    }

    /// The monitor's active issues, as the guest sees them, in id order (bytewise, whatever
    /// the database's collation): from memory when this process knows them all as they are
    /// stored (after one batched read of the monitor's version), else read.
    pub async fn active(&self, monitor: &str) -> Result<Vec<Issue>> {
        if let Some(read) = self.refresh_known(monitor).await? {
            return Ok(read);
        }
        self.active_as_known(monitor).await
    }

    /// The monitor's active issues as this process knows them, without reading the version:
    /// for a task that read them a moment ago ([`IssueStore::active`]), they are what it read
    /// with its own changes since (a change by another process in between is seen at its next
    /// read). Read from the store when memory holds only digests or forgot the monitor.
    pub async fn active_as_known(&self, monitor: &str) -> Result<Vec<Issue>> {
        match self.known.active(monitor) {
            Some(issues) => Ok(issues),
            None => self.read_active(monitor).await,
        }
    }

    /// Reads the monitor's active issues from the store, in id order.
    async fn read_active(&self, monitor: &str) -> Result<Vec<Issue>> {
        let rows = sqlx::query(
            "SELECT issue_id, data FROM sentinela_issues WHERE monitor = $1 AND status = 'active'",
        )
        .bind(monitor)
        .fetch_all(&self.pool)
        .await?;
        let mut issues = rows
            .iter()
            .map(|row| {
                Ok(Issue {
                    id: row.try_get(0)?,
                    data: row.try_get(1)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        issues.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        Ok(issues)
    }

    /// Issues for listings, optionally of one monitor and one status: by monitor, active
    /// first, then by id and creation.
    pub async fn list(
        &self,
        monitor: Option<&str>,
        status: Option<Status>,
    ) -> Result<Vec<StoredIssue>> {
        let query = format!(
            "SELECT monitor, issue_id, status, data, created_at, updated_at, solved_at, {}
             FROM sentinela_issues
             WHERE ($1 = '' OR monitor = $1) AND ($2 = '' OR status = $2)
             ORDER BY monitor, status, issue_id, created_at",
            self.key_column()
        );
        let rows = sqlx::query(&query)
            .bind(monitor.unwrap_or(""))
            .bind(status.map(Status::as_str).unwrap_or(""))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(stored_issue).collect()
    }

    async fn publish(&self, event: IssueEvent) {
        publish(&self.pool, self.events.as_ref(), event).await;
    }
    /// Publishes the events of the outbox older than `min_age`, oldest first: those a crash
    /// or a failed send left behind. Returns how many.
    pub async fn publish_pending(&self, min_age: Duration) -> Result<usize> {
        let before = now_ms() - min_age.as_millis() as i64;
        let mut published = 0;
        let mut after = 0i64;
        loop {
            let rows = sqlx::query(
                "SELECT event_id, monitor, issue_id, event, data, at FROM sentinela_events
                 WHERE at < $1 AND event_id > $2 ORDER BY event_id LIMIT 500",
            )
            .bind(before)
            .bind(after)
            .fetch_all(&self.pool)
            .await?;
            if rows.is_empty() {
                return Ok(published);
            }
            for row in &rows {
                let event = IssueEvent {
                    event_id: row.try_get(0)?,
                    monitor: row.try_get(1)?,
                    issue_id: row.try_get(2)?,
                    event: row.try_get(3)?,
                    data: row.try_get(4)?,
                    at: row.try_get(5)?,
                };
                after = event.event_id;
                self.publish(event).await;
                published += 1;
            }
        }
    }

    /// Events in the outbox older than `age`.
    async fn outbox_older_than(&self, age: Duration) -> Result<i64> {
        let before = now_ms() - age.as_millis() as i64;
        Ok(
            sqlx::query("SELECT COUNT(*) FROM sentinela_events WHERE at < $1")
                .bind(before)
                .fetch_one(&self.pool)
                .await?
                .try_get(0)?,
        )
    }

    /// Publishes what is left in the outbox now, then every [`SWEEP_EVERY`]; runs until
    /// dropped.
    pub async fn sweep_outbox(&self) {
        let mut min_age = Duration::ZERO;
        loop {
            match self.publish_pending(min_age).await {
                Ok(0) => {}
                Ok(count) => tracing::info!(count, "published issue events left unpublished"),
                Err(e) => tracing::warn!("cannot read the issue event outbox: {e:#}"),
            }
            // What even this sweep could not publish: an alert's signal (the events queue
            // refuses them), not the events of the last moments on their way.
            match self.outbox_older_than(SWEEP_EVERY).await {
                Ok(stuck) => {
                    crate::telemetry::METRICS.outbox_stuck_events.set(stuck);
                }
                Err(e) => tracing::warn!("cannot count the issue event outbox: {e:#}"),
            }
            min_age = SWEEP_EVERY;
            tokio::time::sleep(SWEEP_EVERY).await;
        }
    }
}

/// Publishes a committed event: in the log, on the events queue when configured, then out of
/// the outbox. A failed send leaves it there for the next sweep.
async fn publish(pool: &AnyPool, events: Option<&EventQueue>, event: IssueEvent) {
    test_fault("abort-after-commit");
    let IssueEvent {
        event_id,
        ref monitor,
        ref issue_id,
        ref event,
        ref data,
        at,
    } = event;
    let (monitor, issue_id, kind) = (monitor.as_str(), issue_id.as_str(), event.as_str());
    match data {
        Some(data) => tracing::info!(
            target: TARGET,
            monitor,
            issue_id,
            event = kind,
            event_id,
            data = data.as_str(),
            "issue {kind}"
        ),
        None => {
            tracing::info!(target: TARGET, monitor, issue_id, event = kind, event_id, "issue {kind}")
        }
    }
    if let Some(events) = events {
        let data: Option<Value> = data
            .as_deref()
            .map(|d| serde_json::from_str(d).unwrap_or_else(|_| Value::String(d.to_owned())));
        let body = serde_json::json!({
            "type": "issue",
            "event": kind,
            "event_id": event_id,
            "monitor": monitor,
            "issue_id": issue_id,
            "data": data,
            "at": at as f64 / 1000.0,
        });
        if let Err(e) = events
            .queues
            .send_host_message(&events.queue, body.to_string())
            .await
        {
            tracing::error!(monitor, issue_id, event = kind, event_id, queue = %events.queue, "cannot send the issue event; it is sent again by the next sweep: {}", crate::guest_text::escape(&e));
            return;
        }
    }
    if let Err(e) = sqlx::query("DELETE FROM sentinela_events WHERE event_id = $1")
        .bind(event_id)
        .execute(pool)
        .await
    {
        tracing::warn!(
            event_id,
            "cannot take a published event out of the outbox; it is published again by the next sweep: {}",
            describe(&e)
        );
    }
}

/// The next batch of a batching task: waits for one item, then takes what else is already
/// queued, at most `max` in all (no timer: what queued up while the previous batch ran).
/// `None` once every sender is gone.
async fn next_batch<T>(
    queue: &mut tokio::sync::mpsc::UnboundedReceiver<T>,
    max: usize,
) -> Option<Vec<T>> {
    let mut batch = vec![queue.recv().await?];
    while batch.len() < max {
        match queue.try_recv() {
            Ok(item) => batch.push(item),
            Err(_) => break,
        }
    }
    Some(batch)
}

/// The most writes one transaction takes.
pub const MAX_BATCH: usize = 256;

/// One issue write waiting for its batch.
struct PendingWrite {
    monitor: String,
    id: String,
    /// The data, as stored.
    text: String,
    /// `search` creates a missing issue; `update` does not.
    create: bool,
    /// Told the change once its batch has committed, or why it failed.
    done: tokio::sync::oneshot::Sender<Result<Change, String>>,
}

/// The store's batch writer: one task, so a batch's writes commit together and in order.
struct Writer {
    connection: HeldConnection,
    /// For publishing the events (out of the outbox).
    pool: AnyPool,
    events: Option<EventQueue>,
    known: Arc<Known>,
}

impl Writer {
    /// Writes what is queued, a batch at a time, until the store is dropped.
    async fn run(mut self, mut queued: tokio::sync::mpsc::UnboundedReceiver<PendingWrite>) {
        while let Some(batch) = next_batch(&mut queued, MAX_BATCH).await {
            self.write(batch).await;
        }
    }

    /// Commits `batch` in one transaction; if that fails, each write in its own, so one bad
    /// write fails alone. Then tells each writer, and publishes the events in order.
    async fn write(&mut self, batch: Vec<PendingWrite>) {
        let outcomes = match self.commit(&batch).await {
            Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
            Err(e) if batch.len() == 1 => vec![Err(format!("{e:#}"))],
            Err(_) => {
                let mut outcomes = Vec::with_capacity(batch.len());
                for write in &batch {
                    outcomes.push(
                        self.commit(std::slice::from_ref(write))
                            .await
                            .map(|mut one| one.remove(0))
                            .map_err(|e| format!("{e:#}")),
                    );
                }
                outcomes
            }
        };
        let mut events = Vec::new();
        for (write, outcome) in batch.into_iter().zip(outcomes) {
            let outcome = outcome.map(|(change, event)| {
                if let Some((event, version)) = event {
                    self.known.note_change(
                        &write.monitor,
                        &write.id,
                        Some(KnownData::of(&write.text)),
                        version,
                    );
                    events.push(event);
                }
                change
            });
            // A task that stopped waiting (its deadline) is not told; its change stands.
            let _ = write.done.send(outcome);
        }
        for event in events {
            publish(&self.pool, self.events.as_ref(), event).await;
        }
    }

    /// One transaction for `writes`, in order.
    async fn commit(
        &mut self,
        writes: &[PendingWrite],
    ) -> Result<Vec<(Change, Option<(IssueEvent, i64)>)>> {
        let now = now_ms();
        loop {
            let (connection, kept) = self.connection.get().await?;
            match Self::commit_on(connection, writes, now).await {
                Ok(outcomes) => return Ok(outcomes),
                Err(e) => {
                    self.connection.failed();
                    if !kept {
                        return Err(e);
                    }
                }
            }
        }
    }

    async fn commit_on(
        connection: &mut sqlx::AnyConnection,
        writes: &[PendingWrite],
        now: i64,
    ) -> Result<Vec<(Change, Option<(IssueEvent, i64)>)>> {
        let mut tx = connection.begin().await?;
        let mut outcomes = Vec::with_capacity(writes.len());
        for write in writes {
            outcomes.push(IssueStore::write_one(&mut tx, write, now).await?);
            if writes.len() > 1 {
                test_fault("kill-mid-batch");
            }
        }
        tx.commit().await?;
        Ok(outcomes)
    }
}

/// The most monitors one version read asks for (SQLite allows 32766 parameters).
pub const MAX_VERSION_READS: usize = 512;

/// A task's question: the monitor's version in the store (0 before its first change).
struct VersionRead {
    monitor: String,
    reply: tokio::sync::oneshot::Sender<Result<i64, String>>,
}

/// The store's version reader: every task's first read (is what this process knows of the
/// monitor's issues still current?) is one small query, and at thousands of tasks a second
/// one round trip each is most of the store's cost. One task answers what queued up while it
/// answered the previous ones with one `IN (…)` query.
struct VersionReader {
    connection: HeldConnection,
}

impl VersionReader {
    async fn run(mut self, mut asked: tokio::sync::mpsc::UnboundedReceiver<VersionRead>) {
        while let Some(batch) = next_batch(&mut asked, MAX_VERSION_READS).await {
            let versions = self.read(&batch).await.map_err(|e| format!("{e:#}"));
            for read in batch {
                let answer = match &versions {
                    Ok(versions) => Ok(versions.get(&read.monitor).copied().unwrap_or(0)),
                    Err(e) => Err(e.clone()),
                };
                let _ = read.reply.send(answer);
            }
        }
    }

    async fn read(&mut self, batch: &[VersionRead]) -> Result<HashMap<String, i64>> {
        let mut monitors: Vec<&str> = batch.iter().map(|r| r.monitor.as_str()).collect();
        monitors.sort_unstable();
        monitors.dedup();
        let placeholders: Vec<String> = (1..=monitors.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT monitor, version FROM sentinela_issue_versions WHERE monitor IN ({})",
            placeholders.join(", ")
        );
        let rows = loop {
            let (connection, kept) = self.connection.get().await?;
            let mut query = sqlx::query(&sql);
            for monitor in &monitors {
                query = query.bind(*monitor);
            }
            match query.fetch_all(connection).await {
                Ok(rows) => break rows,
                Err(e) => {
                    self.connection.failed();
                    if !kept {
                        return Err(e.into());
                    }
                }
            }
        };
        let mut versions = HashMap::with_capacity(monitors.len());
        for row in rows {
            versions.insert(row.try_get::<String, _>(0)?, row.try_get::<i64, _>(1)?);
        }
        Ok(versions)
    }
}

/// How many connections the batching tasks (the writer and the version reader) keep, on
/// top of `store.pool_size`.
pub const HELD_CONNECTIONS: u32 = 2;

/// A connection a batching task keeps for itself: every return of a connection to sqlx's
/// pool pings it (one more round trip, through a task spawned for it), which at thousands of
/// queries a second was a tenth of the host's CPU. A kept connection that fails goes back to
/// the pool (which closes it if it is broken) and the work is tried once more on one taken
/// fresh from the pool (which checks a PostgreSQL connection before handing it out): a
/// server or proxy that closed an idle connection costs no task.
struct HeldConnection {
    pool: AnyPool,
    held: Option<sqlx::pool::PoolConnection<sqlx::Any>>,
}

impl HeldConnection {
    fn new(pool: AnyPool) -> HeldConnection {
        HeldConnection { pool, held: None }
    }

    /// The kept connection, or one taken from the pool; `true` when it was kept from before
    /// (a failure on it is worth one more try, on a fresh one).
    async fn get(&mut self) -> Result<(&mut sqlx::AnyConnection, bool)> {
        match &mut self.held {
            Some(kept) => Ok((kept, true)),
            held @ None => Ok((held.insert(self.pool.acquire().await?), false)),
        }
    }

    /// After a failure: the connection goes back to the pool, which closes it if it is broken.
    fn failed(&mut self) {
        self.held = None;
    }
}

/// A crash at a named point, for the tests of what survives one; only in debug builds, when
/// `SENTINELA_TEST_FAULT` names the point: `abort-…` aborts, `kill-…` sends the process a
/// SIGKILL (`kill -9`: nothing runs after it).
fn test_fault(point: &str) {
    if cfg!(debug_assertions)
        && std::env::var("SENTINELA_TEST_FAULT").is_ok_and(|fault| fault == point)
    {
        eprintln!("SENTINELA_TEST_FAULT: crashing at {point}");
        if point.starts_with("kill-") {
            let me = rustix::process::getpid();
            let _ = rustix::process::kill_process(me, rustix::process::Signal::KILL);
        }
        std::process::abort();
    }
}

fn stored_issue(row: &sqlx::any::AnyRow) -> Result<StoredIssue> {
    let status: String = row.try_get(2)?;
    let data: String = row.try_get(3)?;
    let solved_at: Option<i64> = row.try_get(6)?;
    Ok(StoredIssue {
        monitor: row.try_get(0)?,
        id: row.try_get(1)?,
        status: match status.as_str() {
            "solved" => Status::Solved,
            "dropped" => Status::Dropped,
            _ => Status::Active,
        },
        key: row.try_get(7)?,
        data: serde_json::from_str(&data).unwrap_or(Value::String(data)),
        created_at: from_ms(row.try_get(4)?),
        updated_at: from_ms(row.try_get(5)?),
        solved_at: solved_at.map(from_ms),
    })
}

/// The path part of an SQLite URL: sqlx percent-decodes it, so `%`, `?` and `#` in a file
/// name are encoded.
fn sqlite_url_path(path: &std::path::Path) -> Result<String> {
    let Some(text) = path.to_str() else {
        bail!("store.path {} is not valid UTF-8", path.display());
    };
    Ok(text
        .replace('%', "%25")
        .replace('?', "%3F")
        .replace('#', "%23"))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn from_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

/// A database error without the statement or connection string it may carry.
fn describe(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Configuration(e) => format!("bad connection URL: {e}"),
        other => other.to_string(),
    }
}

/// `scheme://user:password@host/db` → `scheme://user:***@host/db`: connection URLs are shown
/// in errors, their passwords never.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(unparseable URL)".to_owned();
    };
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            if userinfo.contains(':') {
                format!("{user}:***@{host}")
            } else {
                format!("{user}@{host}")
            }
        }
        None => authority.to_owned(),
    };
    // Query parameters may hold a password too (`?password=`): drop them.
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    format!("{scheme}://{authority}/{path}")
}

/// Refuses a whole result of more than `limit` issues (`limits.issues_per_call`): never a
/// partial write, never a line per dropped issue.
pub fn check_issue_count(
    monitor: &str,
    function: &str,
    count: usize,
    limit: u32,
) -> Result<(), String> {
    if count > limit as usize {
        return Err(format!(
            "monitor '{monitor}': {function} returned {count} issues, over its limit of {limit} \
             (limits.issues_per_call); the whole result was refused"
        ));
    }
    Ok(())
}

/// Invalid issues logged one by one per result; the rest are counted in one line.
const INVALID_ISSUES_SHOWN: usize = 10;

/// Keeps the issues whose id and data are acceptable; logs the others by monitor and id (the
/// first few, then a count).
fn validate(monitor: &str, function: &str, issues: Vec<Issue>) -> Vec<(String, Value)> {
    let mut seen = std::collections::HashSet::new();
    let mut valid = Vec::with_capacity(issues.len());
    let mut invalid = 0usize;
    let mut report = |id: &str, problem: &str| {
        invalid += 1;
        if invalid <= INVALID_ISSUES_SHOWN {
            // Guest-chosen: shortened and escaped here, quoted by the log's field formatting.
            let shown = crate::guest_text::shortened(id, 64);
            tracing::warn!(
                monitor,
                function,
                issue_id = shown.as_str(),
                "dropping issue: {problem}"
            );
        }
    };
    for Issue { id, data } in issues {
        let problem = if id.is_empty()
            || id.len() > MAX_ID_BYTES
            || id.chars().any(crate::guest_text::is_unsafe)
        {
            Some(format!(
                "invalid issue id (1 to {MAX_ID_BYTES} bytes, no control, separator or \
                     invisible format characters)"
            ))
        } else if data.len() > MAX_DATA_BYTES {
            Some(format!(
                "issue data is {} bytes, over the {MAX_DATA_BYTES} byte limit",
                data.len()
            ))
        } else if !seen.insert(id.clone()) {
            Some("the same id appears twice in one result".to_owned())
        } else {
            None
        };
        if let Some(problem) = problem {
            report(&id, &problem);
            continue;
        }
        match serde_json::from_str::<Value>(&data) {
            Ok(value @ Value::Object(_)) => valid.push((id, value)),
            Ok(_) => report(&id, "data is not a JSON object"),
            Err(e) => report(&id, &format!("data is not JSON: {e}")),
        }
    }
    if invalid > INVALID_ISSUES_SHOWN {
        tracing::warn!(
            monitor,
            function,
            dropped = invalid,
            "dropped {invalid} invalid issues in all ({} more than shown)",
            invalid - INVALID_ISSUES_SHOWN
        );
    }
    valid
}

mod unix_seconds {
    use std::time::{SystemTime, UNIX_EPOCH};

    use serde::Serializer;

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(
            t.duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
        )
    }

    pub mod option {
        use super::*;
        pub fn serialize<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => super::serialize(t, s),
                None => s.serialize_none(),
            }
        }
    }
}

/// Where issues are kept (`store:`).
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `store.type`: `sqlite` (the default) or `postgres`.
    pub kind: StoreKind,
    /// SQLite: the database file; by default `<config file name>.db` next to the config.
    pub path: PathBuf,
    /// PostgreSQL: the connection URL. Prefer `url_env`: the URL may hold a password.
    pub url: Option<String>,
    /// PostgreSQL: the environment variable holding the URL when `url` is not set.
    pub url_env: String,
    /// PostgreSQL: connections in the pool (SQLite uses at most 4).
    pub pool_size: u32,
    /// A queue of the `queues:` section that receives every issue event as a JSON message.
    pub events_queue: Option<String>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            kind: StoreKind::Sqlite,
            path: PathBuf::from("sentinela.db"),
            url: None,
            url_env: StoreConfig::DEFAULT_URL_ENV.to_owned(),
            pool_size: 5,
            events_queue: None,
        }
    }
}

impl StoreConfig {
    /// The default `store.url_env`: the variable that holds the PostgreSQL URL.
    pub const DEFAULT_URL_ENV: &'static str = "SENTINELA_DATABASE_URL";

    /// The PostgreSQL URL, from `url` or the `url_env` variable.
    pub fn postgres_url(&self) -> Result<String> {
        if let Some(url) = &self.url {
            return Ok(url.clone());
        }
        match std::env::var(&self.url_env) {
            Ok(url) if !url.is_empty() => Ok(url),
            _ => bail!(
                "store: type postgres needs a connection URL: set store.url, or the {} variable",
                self.url_env
            ),
        }
    }
}

/// Which database keeps issues (`store.type`; `postgresql` is accepted too).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StoreKind {
    /// One SQLite file: enough for one `sentinela run` process.
    #[default]
    Sqlite,
    /// A PostgreSQL database shared by every executor.
    Postgres,
}

impl<'de> Deserialize<'de> for StoreKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        match name.as_str() {
            "sqlite" => Ok(StoreKind::Sqlite),
            "postgres" | "postgresql" => Ok(StoreKind::Postgres),
            other => Err(de::Error::custom(format!(
                "unknown store type '{other}' (expected sqlite or postgres)"
            ))),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStore {
    #[serde(rename = "type", default)]
    kind: StoreKind,
    #[serde(default)]
    path: Option<ConfigPath>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    url_env: Option<String>,
    #[serde(default)]
    pool_size: Option<u32>,
    #[serde(default)]
    events_queue: Option<String>,
}

impl RawStore {
    /// Checks the keys that depend on the type; `config` is the config file's path.
    pub(crate) fn into_config(self, config: &Path) -> Result<StoreConfig, String> {
        let defaults = StoreConfig::default();
        let postgres_only = [
            ("url", self.url.is_some()),
            ("url_env", self.url_env.is_some()),
            ("pool_size", self.pool_size.is_some()),
        ];
        match self.kind {
            StoreKind::Sqlite => {
                if let Some((key, _)) = postgres_only.iter().find(|(_, set)| *set) {
                    return Err(format!(
                        "store.{key} applies to PostgreSQL stores only (type: postgres)"
                    ));
                }
            }
            StoreKind::Postgres => {
                if self.path.is_some() {
                    return Err("store.path applies to SQLite stores only (type: sqlite)".into());
                }
                if let Some(url) = &self.url
                    && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
                {
                    return Err("store.url must start with postgres:// or postgresql://".into());
                }
            }
        }
        let pool_size = self.pool_size.unwrap_or(defaults.pool_size);
        if !(1..=100).contains(&pool_size) {
            return Err("store.pool_size must be between 1 and 100".into());
        }
        let path = match self.path {
            Some(path) => path.0,
            None => {
                let stem = config.file_stem().unwrap_or_default().to_string_lossy();
                let dir = config.parent().filter(|d| !d.as_os_str().is_empty());
                dir.unwrap_or(Path::new(".")).join(format!("{stem}.db"))
            }
        };
        // What `run` would open: an existing path must be a database file, not a directory
        // or a device.
        if self.kind == StoreKind::Sqlite
            && let Ok(meta) = std::fs::metadata(&path)
            && !meta.is_file()
        {
            return Err(format!(
                "store.path: {} is not a regular file",
                path.display()
            ));
        }
        Ok(StoreConfig {
            kind: self.kind,
            path,
            url: self.url,
            url_env: self.url_env.unwrap_or(defaults.url_env),
            pool_size,
            events_queue: self.events_queue,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No `limits.active_issues` to speak of.
    const NO_LIMIT: usize = usize::MAX;

    fn issue(id: &str, data: &str) -> Issue {
        Issue {
            id: id.into(),
            data: data.into(),
        }
    }

    async fn store() -> (IssueStore, std::path::PathBuf) {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sentinela-issues-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let config = StoreConfig {
            kind: StoreKind::Sqlite,
            path: dir.join("issues.db"),
            ..StoreConfig::default()
        };
        (IssueStore::open(&config, None).await.unwrap(), dir)
    }

    #[tokio::test]
    async fn search_dedupes_by_id_and_solve_closes() {
        let (store, dir) = store().await;
        let found = |data: &str| vec![issue("a", data)];
        assert_eq!(
            store
                .record_found("m", found(r#"{"n":1}"#), NO_LIMIT)
                .await
                .unwrap(),
            vec![Change::Created]
        );
        assert_eq!(
            store
                .record_found("m", found(r#"{"n":1}"#), NO_LIMIT)
                .await
                .unwrap(),
            vec![Change::Unchanged]
        );
        assert_eq!(
            store
                .record_found("m", found(r#"{"n":2}"#), NO_LIMIT)
                .await
                .unwrap(),
            vec![Change::Updated]
        );
        let active = store.active("m").await.unwrap();
        assert_eq!((active[0].id.as_str(), active.len()), ("a", 1));
        assert!(store.active("other").await.unwrap().is_empty());
        // One active issue and a limit of two: a result opening one more passes, two more
        // are refused whole.
        let over = store
            .record_found("m", vec![issue("b", "{}"), issue("c", "{}")], 2)
            .await
            .unwrap_err();
        assert!(over.is::<OverActiveLimit>(), "{over:#}");
        assert_eq!(store.active("m").await.unwrap().len(), 1);
        assert!(store.solve("m", "a").await.unwrap());
        assert!(!store.solve("m", "a").await.unwrap(), "solved twice");
        assert!(store.active("m").await.unwrap().is_empty());
        // The same problem found again is a new issue; the solved one stays solved.
        assert_eq!(
            store
                .record_found("m", found(r#"{"n":3}"#), NO_LIMIT)
                .await
                .unwrap(),
            vec![Change::Created]
        );
        let all = store.list(Some("m"), None).await.unwrap();
        let statuses: Vec<_> = all.iter().map(|i| i.status).collect();
        assert_eq!(statuses, vec![Status::Active, Status::Solved]);
        assert_eq!(all[1].data, serde_json::json!({"n": 2}));
        assert!(all[1].solved_at.is_some());
        let solved = store.list(None, Some(Status::Solved)).await.unwrap();
        assert_eq!(solved.len(), 1);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Two stores on one file stand for two processes sharing it: what one knows in memory
    /// follows what the other changes (data, solves), short data or long.
    #[tokio::test]
    async fn what_a_process_knows_follows_changes_made_by_another() {
        let (one, dir) = store().await;
        let other = IssueStore::open(
            &StoreConfig {
                kind: StoreKind::Sqlite,
                path: dir.join("issues.db"),
                ..StoreConfig::default()
            },
            None,
        )
        .await
        .unwrap();
        let long = format!(r#"{{"text":"{}"}}"#, "x".repeat(KEPT_TEXT_BYTES));
        let found = vec![issue("a", r#"{"n":1}"#), issue("b", &long)];
        one.record_found("m", found.clone(), NO_LIMIT)
            .await
            .unwrap();
        let data = |issues: Vec<Issue>| issues.into_iter().map(|i| i.data).collect::<Vec<_>>();
        assert_eq!(data(one.active("m").await.unwrap()), data(found));
        let changed = vec![
            issue("a", r#"{"n":2}"#),
            issue("b", &long.replace('x', "y")),
        ];
        assert_eq!(
            other.record_updated("m", changed.clone()).await.unwrap(),
            vec![Change::Updated, Change::Updated]
        );
        assert_eq!(data(one.active("m").await.unwrap()), data(changed.clone()));
        // Found again by the first, unchanged: known as the other wrote it, nothing written.
        assert_eq!(
            one.record_found("m", changed, NO_LIMIT).await.unwrap(),
            vec![Change::Unchanged, Change::Unchanged]
        );
        assert!(other.solve("m", "a").await.unwrap());
        let active = one.active("m").await.unwrap();
        assert_eq!(
            active.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
            ["b"]
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn invalid_issues_are_dropped() {
        let (store, dir) = store().await;
        let changes = store
            .record_found(
                "m",
                vec![
                    issue("", "{}"),
                    issue("x", "[1]"),
                    issue("y", "nope"),
                    issue("z", "{}"),
                    issue("z", "{}"),
                ],
                NO_LIMIT,
            )
            .await
            .unwrap();
        assert_eq!(changes, vec![Change::Created]);
        assert_eq!(
            store
                .record_updated("m", vec![issue("unknown", "{}")])
                .await
                .unwrap(),
            vec![Change::Unchanged]
        );
        assert!(store.list(Some("m"), None).await.unwrap().len() == 1);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn racing_writers_create_an_issue_once() {
        let (store, dir) = store().await;
        let store = Arc::new(store);
        let racers: Vec<_> = (0..8)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .record_found(
                            "m",
                            vec![issue("same", &format!(r#"{{"racer":{i}}}"#))],
                            NO_LIMIT,
                        )
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut created = 0;
        for racer in racers {
            created += racer
                .await
                .unwrap()
                .iter()
                .filter(|c| **c == Change::Created)
                .count();
        }
        assert_eq!(created, 1);
        assert_eq!(store.active("m").await.unwrap().len(), 1);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn odd_file_names_are_opened_as_given() {
        let dir = std::env::temp_dir().join(format!("sentinela-odd-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("is?this #100%.db");
        let config = StoreConfig {
            kind: StoreKind::Sqlite,
            path: path.clone(),
            ..StoreConfig::default()
        };
        let store = IssueStore::open(&config, None).await.unwrap();
        store
            .record_found("m", vec![issue("a", "{}")], NO_LIMIT)
            .await
            .unwrap();
        assert!(
            path.is_file(),
            "{:?}",
            std::fs::read_dir(&dir).unwrap().collect::<Vec<_>>()
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn passwords_never_show_in_urls() {
        assert_eq!(
            redact_url(
                "postgres://sentinela:s3cret@db.example:5432/issues?sslmode=require&password=x"
            ),
            "postgres://sentinela:***@db.example:5432/issues"
        );
        assert_eq!(
            redact_url("postgres://db.example/issues"),
            "postgres://db.example/issues"
        );
        assert_eq!(redact_url("not a url s3cret"), "(unparseable URL)");
    }
}
