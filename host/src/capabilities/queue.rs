//! The `queue` capability: monitors send, receive, delete and hide messages on the SQS queues
//! of the config's `queues:` section that they are granted. Each queue has its own credential
//! (never `APPLICATION`); requests go through the AWS transport like `aws-call`'s, and each is
//! audited like one. The host sends its own messages (issue events) to these queues too.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};
use wasmtime::component::{HasData, Linker};

use super::guest_error::guest_error;
use super::log::GuestLog;
use crate::audit::{Actor, AuditEvent, shorten};
use crate::aws::AwsProvider;
use crate::aws::resources;
use crate::aws::services::Service;
use crate::aws::transport::{self, Destination, TransportError};
use crate::bindings::sentinela::plugin::queue::{self, Message};
use crate::bindings::sentinela::plugin::types::Error;
use crate::config::values::CredentialName;

/// The interfaces this capability serves.
pub const INTERFACES: &[&str] = &["queue"];

/// SQS's own cap on a message body.
pub const MAX_BODY_BYTES: usize = 256 << 10;
const MAX_RECEIVE: u32 = 10;
const MAX_WAIT_SECONDS: u32 = 20;
const MAX_VISIBILITY_SECONDS: u32 = 43_200;

/// Links `queue` for store data `T`; `get` finds the instance's state in it.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> QueueCtx<'_>,
) -> wasmtime::Result<()> {
    queue::add_to_linker::<T, QueueCtx<'static>>(linker, get)
}

/// The store's view of this capability: its state, when the monitor has one.
pub struct QueueCtx<'a>(pub Option<&'a QueueInstance>);

impl HasData for QueueCtx<'static> {
    type Data<'a> = QueueCtx<'a>;
}

impl QueueCtx<'_> {
    fn instance(&self) -> Result<&QueueInstance, Error> {
        self.0
            .ok_or_else(|| super::host_plugin_disabled(crate::providers::HostPlugin::Aws))
    }
}

/// The `queues:` section with the provider that signs for it; shared by every monitor.
pub struct MonitorQueues {
    /// The config's `queues:`, by name.
    pub declared: BTreeMap<String, QueueDeclaration>,
    /// Credentials and the transport the queues are reached with.
    pub aws: Arc<AwsProvider>,
}

/// A declared queue, ready to send to.
struct QueueTarget<'a> {
    url: &'a str,
    credential: &'a CredentialName,
    region: String,
}

impl MonitorQueues {
    fn target(&self, name: &str) -> Result<QueueTarget<'_>, Error> {
        let declared = self
            .declared
            .get(name)
            .ok_or_else(|| Error::NotFound(format!("queue '{name}' is not declared")))?;
        let region = self
            .aws
            .credentials
            .get(&declared.credential)
            .and_then(|credential| credential.region(declared.region.as_deref()))
            .map_err(|e| Error::Unavailable(e.to_string()))?;
        Ok(QueueTarget {
            url: &declared.url,
            credential: &declared.credential,
            region,
        })
    }

    /// One SQS JSON request on a declared queue; returns the answer and its status.
    async fn request(
        &self,
        target: &QueueTarget<'_>,
        operation: &str,
        input: &str,
    ) -> (Result<String, TransportError>, Option<u16>) {
        let result = async {
            let sqs = Service::find("sqs")
                .ok_or_else(|| TransportError::Invalid("no sqs service".into()))?;
            // The region is the target's: the declaration's, else the credential's.
            let credential = self.aws.credentials.get(target.credential)?;
            let keys = credential.keys().await?;
            let to = Destination {
                service: sqs,
                region: &target.region,
                keys: &keys,
            };
            self.aws.transport.json(to, operation, input).await
        }
        .await;
        let status = transport::status_of(&result, |a| a.status);
        (result.and_then(|answer| answer.text()), status)
    }

    /// Sends a message of the host's own (an issue event) to a declared queue, with the
    /// queue's credential; audited with `actor = host`.
    pub async fn send_host_message(&self, name: &str, body: String) -> Result<(), String> {
        let credential = self.declared.get(name).map(|q| q.credential.to_string());
        let mut audit = AuditEvent::start(
            Actor::Host,
            credential.as_deref().unwrap_or(""),
            "sqs",
            "SendMessage",
        );
        let (result, status) = match self.target(name) {
            Ok(target) => {
                audit.set_resource(resources::sqs_queue_arn(target.url, &target.region).as_deref());
                let input = json!({ "QueueUrl": target.url, "MessageBody": body }).to_string();
                let (result, status) = self.request(&target, "SendMessage", &input).await;
                (result.map_err(guest_error), status)
            }
            Err(e) => (Err(e), None),
        };
        audit.finish(&result, status);
        result.map(|_| ()).map_err(|e| describe(&e))
    }
}

/// A host error as one line of text.
fn describe(error: &Error) -> String {
    match error {
        Error::Denied(m) => format!("denied: {m}"),
        Error::NotFound(m) => format!("not found: {m}"),
        Error::Invalid(m) => format!("invalid: {m}"),
        Error::Limit(m) => format!("limit: {m}"),
        Error::Unavailable(m) => format!("unavailable: {m}"),
        Error::Aws(e) => format!("{} (HTTP {}): {}", e.code, e.status, e.message),
    }
}

/// One invocation's `queue` state: the queues the monitor is granted.
pub struct QueueInstance {
    /// The monitor, for refusals and audit events.
    pub monitor: Arc<str>,
    /// Names from the `queues:` section (`grants.queues`).
    pub granted: Arc<Vec<String>>,
    /// The declared queues, shared by the process.
    pub queues: Arc<MonitorQueues>,
    /// The call's log budget: refusal lines are charged to it, refused calls counted in it.
    pub log: GuestLog,
}

impl QueueInstance {
    /// The queue, if the monitor is granted it.
    fn granted_queue(&self, name: &str) -> Result<QueueTarget<'_>, Error> {
        if !self.granted.iter().any(|q| q == name) {
            if self.log.allow_refusal_line() {
                tracing::warn!(
                    missing_grant = shorten(name).as_str(),
                    "refused: queue not granted"
                );
            }
            return Err(Error::Denied(format!(
                "queue '{}' is not granted to monitor '{}'",
                shorten(name),
                self.monitor
            )));
        }
        self.queues.target(name)
    }

    /// One SQS operation on a granted queue, audited whatever its outcome: `checked` is the
    /// verdict on the guest's arguments, refused calls are audited too.
    async fn on_queue(
        &self,
        name: &str,
        operation: &str,
        checked: Result<(), Error>,
        input: impl FnOnce(&str) -> Value,
    ) -> Result<Value, Error> {
        let credential = self
            .queues
            .declared
            .get(name)
            .map(|q| q.credential.to_string())
            .unwrap_or_default();
        let mut audit = self.log.audit(&credential, "sqs", operation);
        let granted = checked
            .and_then(|()| self.granted_queue(name))
            .and_then(|granted| self.log.take_aws_request().map(|()| granted));
        let (result, status) = match granted {
            Ok(target) => {
                audit.set_resource(resources::sqs_queue_arn(target.url, &target.region).as_deref());
                audit.mark_sent();
                let input = input(target.url).to_string();
                let (result, status) = self.queues.request(&target, operation, &input).await;
                let parsed = result.map_err(guest_error).and_then(|body| {
                    if body.is_empty() {
                        Ok(Value::Null)
                    } else {
                        serde_json::from_str(&body)
                            .map_err(|e| Error::Invalid(format!("unreadable SQS answer: {e}")))
                    }
                });
                (parsed, status)
            }
            Err(e) => (Err(e), None),
        };
        audit.finish(&result, status);
        result
    }

    /// `queue.send`: sends `body` to a granted queue; returns the message id.
    pub async fn send(&self, name: &str, body: String) -> Result<String, Error> {
        let checked = if body.len() > MAX_BODY_BYTES {
            Err(Error::Limit(format!(
                "message body of {} bytes is over SQS's {MAX_BODY_BYTES} byte cap",
                body.len()
            )))
        } else {
            Ok(())
        };
        let out = self
            .on_queue(
                name,
                "SendMessage",
                checked,
                |url| json!({ "QueueUrl": url, "MessageBody": body }),
            )
            .await?;
        Ok(out["MessageId"].as_str().unwrap_or_default().to_owned())
    }

    /// `queue.receive`: up to `max` messages (at most 10), waiting at most `wait_seconds` (at
    /// most 20) for the first.
    pub async fn receive(
        &self,
        name: &str,
        max: u32,
        wait_seconds: u32,
    ) -> Result<Vec<Message>, Error> {
        let checked = if !(1..=MAX_RECEIVE).contains(&max) || wait_seconds > MAX_WAIT_SECONDS {
            Err(Error::Invalid(format!(
                "max must be 1–{MAX_RECEIVE} and wait-seconds 0–{MAX_WAIT_SECONDS}"
            )))
        } else {
            Ok(())
        };
        let out = self
            .on_queue(name, "ReceiveMessage", checked, |url| {
                json!({
                    "QueueUrl": url,
                    "MaxNumberOfMessages": max,
                    "WaitTimeSeconds": wait_seconds,
                    "MessageSystemAttributeNames": ["ApproximateReceiveCount", "SentTimestamp"],
                })
            })
            .await?;
        let number = |m: &Value, key: &str| {
            m["Attributes"][key]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok(out["Messages"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| Message {
                id: m["MessageId"].as_str().unwrap_or_default().to_owned(),
                receipt: m["ReceiptHandle"].as_str().unwrap_or_default().to_owned(),
                body: m["Body"].as_str().unwrap_or_default().to_owned(),
                receive_count: number(m, "ApproximateReceiveCount") as u32,
                sent_at_ms: number(m, "SentTimestamp"),
            })
            .collect())
    }

    /// `queue.delete`: deletes a received message by its receipt handle.
    pub async fn delete(&self, name: &str, receipt: String) -> Result<(), Error> {
        self.on_queue(
            name,
            "DeleteMessage",
            Ok(()),
            |url| json!({ "QueueUrl": url, "ReceiptHandle": receipt }),
        )
        .await?;
        Ok(())
    }

    /// `queue.change-visibility`: hides a received message for `seconds` more.
    pub async fn change_visibility(
        &self,
        name: &str,
        receipt: String,
        seconds: u32,
    ) -> Result<(), Error> {
        let checked = if seconds > MAX_VISIBILITY_SECONDS {
            Err(Error::Invalid(format!(
                "visibility must be 0–{MAX_VISIBILITY_SECONDS} seconds"
            )))
        } else {
            Ok(())
        };
        self.on_queue(name, "ChangeMessageVisibility", checked, |url| {
            json!({ "QueueUrl": url, "ReceiptHandle": receipt, "VisibilityTimeout": seconds })
        })
        .await?;
        Ok(())
    }
}

impl queue::Host for QueueCtx<'_> {
    #[tracing::instrument(
        name = "host_call",
        skip_all,
        fields(capability = "queue", function = "send")
    )]
    async fn send(&mut self, queue: String, body: String) -> Result<String, Error> {
        self.instance()?.send(&queue, body).await
    }

    #[tracing::instrument(
        name = "host_call",
        skip_all,
        fields(capability = "queue", function = "receive")
    )]
    async fn receive(
        &mut self,
        queue: String,
        max: u32,
        wait_seconds: u32,
    ) -> Result<Vec<Message>, Error> {
        self.instance()?.receive(&queue, max, wait_seconds).await
    }

    #[tracing::instrument(
        name = "host_call",
        skip_all,
        fields(capability = "queue", function = "delete")
    )]
    async fn delete(&mut self, queue: String, receipt: String) -> Result<(), Error> {
        self.instance()?.delete(&queue, receipt).await
    }

    #[tracing::instrument(
        name = "host_call",
        skip_all,
        fields(capability = "queue", function = "change-visibility")
    )]
    async fn change_visibility(
        &mut self,
        queue: String,
        receipt: String,
        seconds: u32,
    ) -> Result<(), Error> {
        self.instance()?
            .change_visibility(&queue, receipt, seconds)
            .await
    }
}

/// An SQS queue monitors may use through the `queue` interface, with its own credential.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueDeclaration {
    /// The queue URL.
    pub url: String,
    /// The credential the host signs with (never `APPLICATION`).
    pub credential: CredentialName,
    /// The region, else `AWS_{credential}_REGION`.
    #[serde(default)]
    pub region: Option<String>,
}
