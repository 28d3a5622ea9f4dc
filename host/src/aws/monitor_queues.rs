//! The `queue` interface: monitors send, receive, delete and hide messages on the SQS queues
//! of the config's `queues:` section that they are granted. Each queue has its own credential
//! (never `APPLICATION`); requests go through the same signing clients as `aws-call`, and each
//! is audited like one.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::bindings::sentinela::plugin::queue::{self, Message};
use crate::bindings::sentinela::plugin::types::Error;
use crate::sandbox::InstanceState;

use super::call::{AwsInstance, json_call};
use super::client::AwsClient;
use super::resources;
use super::services::Service;
use crate::audit::shorten;
use crate::audit::{Actor, AuditEvent};

/// SQS's own cap on a message body.
pub const MAX_BODY_BYTES: usize = 256 << 10;
const MAX_RECEIVE: u32 = 10;
const MAX_WAIT_SECONDS: u32 = 20;
const MAX_VISIBILITY_SECONDS: u32 = 43_200;

impl super::AwsPlugin {
    /// The URL of a queue of the `queues:` section and a client signing with its credential.
    fn queue_client(&self, name: &str) -> Result<(String, Arc<AwsClient>), Error> {
        let declared = self
            .queues
            .get(name)
            .ok_or_else(|| Error::NotFound(format!("queue '{name}' is not declared")))?;
        let credential = self
            .credentials
            .get(&declared.credential)
            .map_err(Error::Unavailable)?;
        let region = credential
            .region(declared.region.as_deref())
            .map_err(Error::Unavailable)?;
        let sqs =
            Service::find("sqs").ok_or_else(|| Error::Unavailable("no sqs service".into()))?;
        Ok((declared.url.clone(), self.client(credential, sqs, region)))
    }

    /// Sends a message of the host's own (an issue event) to a queue of the `queues:`
    /// section, with the queue's credential.
    pub async fn send_to_queue(&self, name: &str, body: String) -> Result<(), String> {
        let credential = self.queues.get(name).map(|q| q.credential.to_string());
        let mut audit = AuditEvent::start(
            Actor::Host,
            credential.as_deref().unwrap_or(""),
            "sqs",
            "SendMessage",
        );
        let (result, status) = match self.queue_client(name) {
            Ok((url, client)) => {
                audit.set_resource(resources::sqs_queue_arn(&url, &client.region).as_deref());
                let input = json!({ "QueueUrl": url, "MessageBody": body }).to_string();
                json_call(self, &client, "SendMessage", &input).await
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

impl AwsInstance {
    /// The queue's URL and client, if the monitor is granted the queue.
    fn granted_queue(&self, name: &str) -> Result<(String, Arc<AwsClient>), Error> {
        if !self.grants.queues.iter().any(|q| q == name) {
            if self.log.allow_refusal_line() {
                tracing::warn!(monitor = %self.monitor, missing_grant = shorten(name).as_str(), "refused: queue not granted");
            }
            return Err(Error::Denied(format!(
                "queue '{}' is not granted to monitor '{}'",
                shorten(name),
                self.monitor
            )));
        }
        self.plugin.queue_client(name)
    }

    /// One SQS operation on a granted queue, audited whatever its outcome: `checked` is the
    /// verdict on the guest's arguments, refused calls are audited too.
    async fn on_queue(
        &self,
        name: &str,
        operation: &str,
        checked: Result<(), Error>,
        input: impl FnOnce(String) -> Value,
    ) -> Result<Value, Error> {
        let credential = self
            .plugin
            .queues
            .get(name)
            .map(|q| q.credential.to_string())
            .unwrap_or_default();
        let mut audit = self.audit(&credential, "sqs", operation);
        let granted = checked
            .and_then(|()| self.granted_queue(name))
            .and_then(|granted| self.take_request().map(|()| granted));
        let (result, status) = match granted {
            Ok((url, client)) => {
                audit.set_resource(resources::sqs_queue_arn(&url, &client.region).as_deref());
                audit.mark_sent();
                let (result, status) =
                    json_call(&self.plugin, &client, operation, &input(url).to_string()).await;
                let parsed = result.and_then(|body| {
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

    pub async fn queue_send(&self, name: &str, body: String) -> Result<String, Error> {
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

    pub async fn queue_receive(
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

    pub async fn queue_delete(&self, name: &str, receipt: String) -> Result<(), Error> {
        self.on_queue(
            name,
            "DeleteMessage",
            Ok(()),
            |url| json!({ "QueueUrl": url, "ReceiptHandle": receipt }),
        )
        .await?;
        Ok(())
    }

    pub async fn queue_change_visibility(
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

impl queue::Host for InstanceState {
    async fn send(&mut self, queue: String, body: String) -> Result<String, Error> {
        self.aws()?.queue_send(&queue, body).await
    }

    async fn receive(
        &mut self,
        queue: String,
        max: u32,
        wait_seconds: u32,
    ) -> Result<Vec<Message>, Error> {
        self.aws()?.queue_receive(&queue, max, wait_seconds).await
    }

    async fn delete(&mut self, queue: String, receipt: String) -> Result<(), Error> {
        self.aws()?.queue_delete(&queue, receipt).await
    }

    async fn change_visibility(
        &mut self,
        queue: String,
        receipt: String,
        seconds: u32,
    ) -> Result<(), Error> {
        self.aws()?
            .queue_change_visibility(&queue, receipt, seconds)
            .await
    }
}
