//! The audit log: one event on target `sentinela::audit` per use of a credential or secret,
//! by a monitor or by the host itself (its application queue, credential connectors, secret
//! fetches, issue events), allowed or refused. Fields: `actor` (`monitor` or `host`),
//! `monitor` (for monitors), `credential`, `service`, `operation`, `resource` when known,
//! `outcome`, `status` (HTTP, 0 when no answer) and `latency_ms`. Never a secret value.
//! Guest-chosen values are shortened and escaped, and recorded as string fields, which the
//! text log writes quoted: a value cannot pass for another field.

use std::time::Instant;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef, Input,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

use crate::bindings::sentinela::plugin::types::Error;

/// The tracing target every audit event is written on.
pub const TARGET: &str = "sentinela::audit";

/// Where refused calls of one invocation are counted, to be audited once per kind at its end
/// (a guest looping on a denied call must not write one event per attempt).
pub trait RefusalSink: Send + Sync {
    /// Counts one call refused before any request went out: `outcome` is `denied`, `invalid` or
    /// `limit`; the other arguments name the call.
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
    /// A monitor, by name, using a credential granted to it.
    Monitor(&'a str),
    /// The host itself: application queue, credential connectors, secret fetches, issue events.
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
    withheld: Option<&'static str>,
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
            withheld: None,
        }
    }

    /// The answer held a credential-shaped member (`SecretAccessKey`, a PEM private key) and
    /// was withheld from the monitor: the event names it.
    pub fn set_withheld(&mut self, member: &'static str) {
        self.withheld = Some(member);
    }

    /// Calls refused before any request was sent are counted here instead of written one by
    /// one.
    pub fn counting_refusals_in(mut self, sink: &'a dyn RefusalSink) -> Self {
        self.refusals = Some(sink);
        self
    }

    /// Records the resource (usually an ARN) the call names, shortened to 256 characters and
    /// escaped; `None` clears it.
    pub fn set_resource(&mut self, resource: Option<&str>) {
        self.resource = resource.map(shorten_resource);
    }

    /// Names the operation once it is known (a REST request's, from the service's model);
    /// shortened and escaped like the rest.
    pub fn set_operation(&mut self, operation: &str) {
        self.operation = shorten(operation);
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

    /// [`AuditEvent::set_resource`] as a builder step.
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
        let actor = match self.actor {
            Actor::Monitor(_) => "monitor",
            Actor::Host => "host",
        };
        crate::telemetry::METRICS.host_calls(actor, &self.service, &self.operation, outcome, 1);
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
                // Recorded only when set: the member an answer was withheld for.
                withheld = self.withheld,
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

/// Where a message of the application queue came from, as the queue says.
pub struct MessageOrigin<'a> {
    /// The queue's message id.
    pub message_id: Option<&'a str>,
    /// Who sent it (SQS's `SenderId`).
    pub sender_id: Option<&'a str>,
    /// When the queue received it.
    pub sent_at: Option<std::time::SystemTime>,
}

/// Audits a control action a message of the application queue asked for (drop an issue,
/// switch a monitor off or on, refresh it): what (`action`), on what (`subject`: the monitor,
/// or the issue key), which message and whose, and how it went; counted in `sentinela_control_actions_total{action, outcome}`. The queue is
/// shared with whoever may send to it: this is the trail of who did what.
pub fn control_action(
    action: &'static str,
    subject: &str,
    origin: &MessageOrigin<'_>,
    outcome: &'static str,
) {
    crate::telemetry::METRICS.control_action(action, outcome);
    let sent_at = origin
        .sent_at
        .map(|at| chrono::DateTime::<chrono::Utc>::from(at).to_rfc3339())
        .unwrap_or_default();
    tracing::info!(
        target: TARGET,
        actor = "queue message",
        action,
        subject = crate::guest_text::shortened(subject, 64).as_str(),
        message_id = shorten(origin.message_id.unwrap_or("")).as_str(),
        sender_id = shorten(origin.sender_id.unwrap_or("")).as_str(),
        sent_at = sent_at.as_str(),
        outcome,
        "control action"
    );
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

/// Reads the resource an SDK request names from its input.
type ResourceReader = Box<dyn Fn(&Input) -> Option<String> + Send + Sync>;

/// Audits every request an AWS SDK client makes with one of the host's credentials (the
/// application queue's `APPLICATION`, a connector's source): one event per operation, after
/// the SDK's retries, with the resource it names.
pub struct SdkAudit {
    credential: String,
    service: &'static str,
    resource: ResourceReader,
}

impl SdkAudit {
    /// `resource` reads what a request names (a queue URL) from its input.
    pub fn new(
        credential: &str,
        service: &'static str,
        resource: impl SdkResource + 'static,
    ) -> SdkAudit {
        SdkAudit {
            credential: credential.to_owned(),
            service,
            resource: resource.into_reader(),
        }
    }
}

/// What an audited SDK request names: read from its input, or always the same.
pub trait SdkResource {
    /// The function the interceptor applies to each request's input.
    fn into_reader(self) -> ResourceReader;
}

impl SdkResource for fn(&Input) -> Option<String> {
    fn into_reader(self) -> ResourceReader {
        Box::new(self)
    }
}

impl SdkResource for String {
    fn into_reader(self) -> ResourceReader {
        Box::new(move |_| Some(self.clone()))
    }
}

impl std::fmt::Debug for SdkAudit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SdkAudit")
            .field("credential", &self.credential)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

/// When the operation started and the resource it names, kept in the operation's config bag.
#[derive(Debug, Clone)]
struct SdkAuditStart(Instant, Option<String>);

impl aws_smithy_types::config_bag::Storable for SdkAuditStart {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

impl Intercept for SdkAudit {
    fn name(&self) -> &'static str {
        "sentinela-audit"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let resource = (self.resource)(context.input());
        cfg.interceptor_state()
            .store_put(SdkAuditStart(Instant::now(), resource));
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg
            .load::<Metadata>()
            .map(|m| m.name())
            .unwrap_or("unknown");
        let mut audit = AuditEvent::start(Actor::Host, &self.credential, self.service, operation);
        if let Some(SdkAuditStart(started, resource)) = cfg.load::<SdkAuditStart>() {
            audit = audit.started_at(*started);
            audit.set_resource(resource.as_deref());
        }
        let status = context.response().map(|r| r.status().as_u16());
        let outcome = match context.output_or_error() {
            Some(Ok(_)) => "ok",
            Some(Err(e)) if e.is_operation_error() => "aws-error",
            _ => "unavailable",
        };
        audit.finish_with(outcome, status);
        Ok(())
    }
}
