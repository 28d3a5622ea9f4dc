//! The audit log: one event on target `sentinela::audit` per use of a credential or secret,
//! by a monitor or by the host itself (its application queue, credential connectors, secret
//! fetches, issue events), allowed or refused. Fields: `actor` (`monitor` or `host`),
//! `monitor` (for monitors), `credential`, `service`, `operation`, `resource` when known,
//! `outcome`, `status` (HTTP, 0 when no answer) and `latency_ms`. Never a secret value.
//! Guest-chosen values are shortened and escaped, and recorded as string fields, which the
//! text log writes quoted: a value cannot pass for another field.

use std::time::Instant;

use crate::bindings::sentinela::plugin::types::Error;

pub const TARGET: &str = "sentinela::audit";

/// Where refused calls of one invocation are counted, to be audited once per kind at its end
/// (a guest looping on a denied call must not write one event per attempt).
pub trait RefusalSink: Send + Sync {
    fn count_refusal(
        &self,
        outcome: &'static str,
        credential: &str,
        service: &str,
        operation: &str,
        resource: &str,
    );
}

/// Who used the credential.
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    Monitor(&'a str),
    Host,
}

/// One use of a credential, from its start; [`AuditEvent::finish`] writes it.
#[derive(Clone)]
pub struct AuditEvent<'a> {
    actor: Actor<'a>,
    refusals: Option<&'a dyn RefusalSink>,
    /// Set once a request went out: such a use is written on its own, whatever its outcome.
    sent: bool,
    credential: String,
    service: String,
    operation: String,
    resource: Option<String>,
    started: Instant,
}

impl std::fmt::Debug for AuditEvent<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditEvent")
            .field("credential", &self.credential)
            .field("service", &self.service)
            .field("operation", &self.operation)
            .field("resource", &self.resource)
            .finish_non_exhaustive()
    }
}

impl<'a> AuditEvent<'a> {
    /// `credential`, `service` and `operation` may come from a guest: they are shortened and
    /// escaped here.
    pub fn start(
        actor: Actor<'a>,
        credential: &str,
        service: &str,
        operation: &str,
    ) -> AuditEvent<'a> {
        AuditEvent {
            actor,
            refusals: None,
            sent: false,
            credential: shorten(credential),
            service: shorten(service),
            operation: shorten(operation),
            resource: None,
            started: Instant::now(),
        }
    }

    /// Calls refused before any request was sent are counted here instead of written one by
    /// one.
    pub fn counting_refusals_in(mut self, sink: &'a dyn RefusalSink) -> Self {
        self.refusals = Some(sink);
        self
    }

    pub fn set_resource(&mut self, resource: Option<&str>) {
        self.resource = resource.map(shorten_resource);
    }

    /// The request is about to go out: from here the use is audited on its own.
    pub fn mark_sent(&mut self) {
        self.sent = true;
    }

    /// For an event recorded after the fact: when the use began.
    pub fn started_at(mut self, started: Instant) -> Self {
        self.started = started;
        self
    }

    pub fn with_resource(mut self, resource: &str) -> Self {
        self.set_resource(Some(resource));
        self
    }

    /// Writes the event for a call that ended with `result`.
    pub fn finish<T>(&self, result: &Result<T, Error>, status: Option<u16>) {
        self.finish_with(outcome(result), status);
    }

    /// Writes the event with an outcome of the caller's words (`ok`, `aws-error`, ...).
    pub fn finish_with(&self, outcome: &'static str, status: Option<u16>) {
        if let Some(sink) = self.refusals
            && !self.sent
            && matches!(outcome, "denied" | "invalid" | "limit")
        {
            sink.count_refusal(
                outcome,
                &self.credential,
                &self.service,
                &self.operation,
                self.resource.as_deref().unwrap_or(""),
            );
            return;
        }
        let latency_ms = self.started.elapsed().as_secs_f64() * 1e3;
        let resource = self.resource.as_deref().unwrap_or("");
        let status = status.unwrap_or(0);
        match self.actor {
            Actor::Monitor(monitor) => tracing::info!(
                target: TARGET,
                actor = "monitor",
                monitor,
                credential = self.credential.as_str(),
                service = self.service.as_str(),
                operation = self.operation.as_str(),
                resource,
                status,
                outcome,
                latency_ms,
                "aws-call"
            ),
            Actor::Host => tracing::info!(
                target: TARGET,
                actor = "host",
                credential = self.credential.as_str(),
                service = self.service.as_str(),
                operation = self.operation.as_str(),
                resource,
                status,
                outcome,
                latency_ms,
                "host aws request"
            ),
        }
    }
}

/// The audit word for a result.
pub fn outcome<T>(result: &Result<T, Error>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(Error::Denied(_)) => "denied",
        Err(Error::NotFound(_)) => "not-found",
        Err(Error::Invalid(_)) => "invalid",
        Err(Error::Aws(_)) => "aws-error",
        Err(Error::Limit(_)) => "limit",
        Err(Error::Unavailable(_)) => "unavailable",
    }
}

/// Guest-chosen text for a log field or an error: at most 64 characters, escaped.
pub fn shorten(text: &str) -> String {
    crate::guest_text::shortened(text, 64)
}

/// Resources (ARNs) are longer than names; keep more of them.
fn shorten_resource(text: &str) -> String {
    crate::guest_text::shortened(text, 256)
}
