//! The application queue on SQS (`type: plugin.aws.sqs`), with the `APPLICATION` credential.
//!
//! Call parameters follow Sentinela's: receive with long polling and an invisibility of twice
//! `queue_visibility_time`, extend by the same amount while processing, delete after success.
//! We also ask for `ApproximateReceiveCount`, so a message that keeps coming back is bounded.
//!
//! Unlike Sentinela, an executor receives up to one message per free slot in one call, and
//! deletes go out in `DeleteMessageBatch` calls of whatever has finished meanwhile (up to 10):
//! the SDK's cost per request, not the monitor, dominates the host's CPU per message.

use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::timeout::TimeoutConfig;
use aws_sdk_sqs::config::{BehaviorVersion, Region, StalledStreamProtectionConfig};
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageAttributeValue, MessageSystemAttributeName,
};
use aws_smithy_runtime_api::client::interceptors::context::Input;
use tokio::sync::{mpsc, oneshot};

use super::{ApplicationQueueConfig, Received};
use crate::audit::SdkAudit;
use crate::aws::credentials::Credential;
use crate::aws::transport::endpoint_from_env;
use crate::config::values::CredentialName;

/// The application queue on SQS: a client signing with `APPLICATION`, the queue's URL, and a task
/// that batches deletes.
pub struct SqsQueue {
    client: Client,
    name: String,
    url: String,
    pub(super) wait_seconds: i32,
    visibility_seconds: i32,
    /// `application_queue.max_receive_count`: deliveries after which a message is dead-lettered.
    pub max_receive_count: u32,
    dead_letter_url: Option<String>,
    deletes: mpsc::UnboundedSender<PendingDelete>,
}

/// A receipt handle waiting for the next `DeleteMessageBatch`, and who waits for its outcome.
struct PendingDelete {
    receipt_handle: String,
    done: oneshot::Sender<Result<(), String>>,
}

/// SQS takes at most 10 entries per batch call.
const MAX_BATCH: usize = 10;
/// The message attribute that carries when a scheduled message's trigger was due.
const TRIGGERED_AT: &str = "sentinela_triggered_at";

/// How long a processed message's delete waits for others to share its batch call. The
/// message is already processed and stays hidden meanwhile, so only the call count changes.
const LINGER: Duration = Duration::from_millis(5);

/// An SDK error with its code and message, never its request (which may carry headers).
fn describe<E: ProvideErrorMetadata + std::error::Error + 'static>(
    e: &aws_sdk_sqs::error::SdkError<E>,
) -> String {
    let status = e
        .raw_response()
        .map(|r| format!("HTTP {}: ", r.status().as_u16()))
        .unwrap_or_default();
    let text = match e.as_service_error() {
        Some(service) if service.code().is_some() || service.message().is_some() => format!(
            "{}: {}",
            service.code().unwrap_or("error"),
            service.message().unwrap_or("")
        ),
        // No code and no message (a proxy's HTML page, an empty 5xx): the SDK's own words.
        _ => format!("{}", DisplayErrorContext(e)),
    };
    // Service text may be anything an endpoint sends back: escaped and bounded.
    format!("{status}{}", crate::guest_text::shortened(&text, 512))
}

impl SqsQueue {
    /// Connects with the `APPLICATION` credential and `AWS_ENDPOINT_URL` from the environment.
    pub async fn connect_from_env(config: &ApplicationQueueConfig) -> Result<SqsQueue> {
        let application =
            CredentialName::parse(CredentialName::APPLICATION).map_err(anyhow::Error::msg)?;
        let credential = Credential::from_env(&application).map_err(anyhow::Error::msg)?;
        Self::connect(config, &credential, endpoint_from_env().as_deref()).await
    }

    /// Builds the client and checks the queue exists, creating it when `create_queue` says so.
    pub async fn connect(
        config: &ApplicationQueueConfig,
        credential: &Credential,
        endpoint: Option<&str>,
    ) -> Result<SqsQueue> {
        let name = config
            .name
            .clone()
            .context("application_queue.name is required")?;
        let region = match &config.region {
            Some(region) => credential.region(Some(region)),
            None => credential.region(None),
        }
        .map_err(|e| anyhow::anyhow!("application_queue: {e}"))?;
        // A long poll waits up to `queue_wait_message_time`; an attempt still open well after
        // that is a dead connection, retried rather than waited on forever. That timeout
        // replaces the SDK's stalled-stream monitor, which costs CPU on every response.
        let attempt_timeout = Duration::from_secs(u64::from(config.queue_wait_message_time) + 10);
        let mut builder = aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(attempt_timeout)
                    .build(),
            )
            .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
            .interceptor(SdkAudit::new(
                CredentialName::APPLICATION,
                "sqs",
                queue_named_by as fn(&Input) -> Option<String>,
            ))
            .region(Region::new(region))
            .credentials_provider(
                credential
                    .static_keys()
                    .context("the APPLICATION credential comes from the environment")?
                    .clone(),
            );
        if let Some(endpoint) = endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        let client = Client::from_conf(builder.build());

        let url = match client.get_queue_url().queue_name(&name).send().await {
            Ok(found) => found.queue_url.unwrap_or_default(),
            Err(e) if is_missing(&e) => {
                if !config.create_queue {
                    bail!(
                        "the SQS application queue '{name}'{} does not exist; create it, or set \
                         application_queue.create_queue: true",
                        config
                            .url
                            .as_deref()
                            .map(|u| format!(" ({u})"))
                            .unwrap_or_default()
                    );
                }
                let created = client.create_queue().queue_name(&name).send().await;
                let url = created.map_err(|e| {
                    anyhow::anyhow!("cannot create SQS queue '{name}': {}", describe(&e))
                })?;
                tracing::info!(queue = %name, "created the SQS application queue");
                url.queue_url.unwrap_or_default()
            }
            Err(e) => bail!("cannot look up SQS queue '{name}': {}", describe(&e)),
        };
        if let Some(configured) = &config.url
            && configured != &url
        {
            bail!("application_queue.url {configured} is not the URL of queue '{name}' ({url})");
        }
        // `create_queue` creates the dead-letter queue too (and wires nothing else: the host
        // moves messages there itself).
        let dead_letter_url = match &config.dead_letter_queue {
            Some(dlq) => Some(match client.get_queue_url().queue_name(dlq).send().await {
                Ok(found) => found.queue_url.unwrap_or_default(),
                Err(e) if is_missing(&e) && config.create_queue => {
                    let created = client.create_queue().queue_name(dlq).send().await;
                    let created = created.map_err(|e| {
                        anyhow::anyhow!("cannot create SQS queue '{dlq}': {}", describe(&e))
                    })?;
                    tracing::info!(queue = %dlq, "created the dead-letter queue");
                    created.queue_url.unwrap_or_default()
                }
                Err(e) if is_missing(&e) => bail!(
                    "the dead-letter queue '{dlq}' (application_queue.dead_letter_queue) does not \
                     exist; create it, or set application_queue.create_queue: true"
                ),
                Err(e) => bail!("dead-letter queue '{dlq}': {}", describe(&e)),
            }),
            None => None,
        };
        let (deletes, pending) = mpsc::unbounded_channel();
        tokio::spawn(delete_in_batches(
            client.clone(),
            name.clone(),
            url.clone(),
            pending,
        ));
        Ok(SqsQueue {
            deletes,
            client,
            name,
            url,
            wait_seconds: config.queue_wait_message_time as i32,
            visibility_seconds: 2 * config.queue_visibility_time as i32,
            max_receive_count: config.max_receive_count,
            dead_letter_url,
        })
    }

    /// The queue's name (`application_queue.name`), for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sends one message, its trigger time as the `sentinela_triggered_at` attribute (epoch
    /// milliseconds; the body stays Sentinela's); returns the id SQS gave it.
    pub async fn send(
        &self,
        body: String,
        triggered_at: Option<SystemTime>,
    ) -> Result<Option<String>> {
        let triggered_at = triggered_at
            .and_then(|at| at.duration_since(SystemTime::UNIX_EPOCH).ok())
            .and_then(|since| {
                MessageAttributeValue::builder()
                    .data_type("Number")
                    .string_value(since.as_millis().to_string())
                    .build()
                    .ok()
            });
        let sent = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .set_message_attributes(
                triggered_at.map(|at| [(TRIGGERED_AT.to_owned(), at)].into_iter().collect()),
            )
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("SendMessage to {}: {}", self.name, describe(&e)))?;
        Ok(sent.message_id)
    }

    /// Long-polls for up to `max` messages.
    pub async fn receive(&self, max: i32) -> Result<Vec<Received>> {
        let output = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, 10))
            .wait_time_seconds(self.wait_seconds)
            .visibility_timeout(self.visibility_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            // Who sent a message, for the audit of the control actions it asks for.
            .message_system_attribute_names(MessageSystemAttributeName::SenderId)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .message_attribute_names(TRIGGERED_AT)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("ReceiveMessage from {}: {}", self.name, describe(&e)))?;
        Ok(output
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                let attribute = |name: MessageSystemAttributeName| {
                    m.attributes.as_ref().and_then(|a| a.get(&name)).cloned()
                };
                let receive_count = attribute(MessageSystemAttributeName::ApproximateReceiveCount)
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1);
                let sender_id = attribute(MessageSystemAttributeName::SenderId);
                let sent_at = attribute(MessageSystemAttributeName::SentTimestamp)
                    .and_then(|ms| ms.parse::<u64>().ok())
                    .and_then(|ms| SystemTime::UNIX_EPOCH.checked_add(Duration::from_millis(ms)));
                // Any producer may set it: a value that is not a time is no time.
                let triggered_at = m
                    .message_attributes
                    .as_ref()
                    .and_then(|a| a.get(TRIGGERED_AT))
                    .and_then(|v| v.string_value()?.parse::<u64>().ok())
                    .and_then(|ms| SystemTime::UNIX_EPOCH.checked_add(Duration::from_millis(ms)));
                Received {
                    triggered_at,
                    sender_id,
                    sent_at,
                    body: m.body.unwrap_or_default(),
                    message_id: m.message_id,
                    receipt_handle: m.receipt_handle,
                    receive_count,
                }
            })
            .collect())
    }

    /// Hides the message for another 2 × `queue_visibility_time`.
    pub async fn extend(&self, message: &Received) -> Result<()> {
        self.change_visibility(message, self.visibility_seconds)
            .await
    }

    /// Makes the message visible again now.
    pub async fn release(&self, message: &Received) -> Result<()> {
        self.change_visibility(message, 0).await
    }

    async fn change_visibility(&self, message: &Received, seconds: i32) -> Result<()> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(message.receipt_handle.as_deref().unwrap_or_default())
            .visibility_timeout(seconds)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!("ChangeMessageVisibility on {}: {}", self.name, describe(&e))
            })?;
        Ok(())
    }

    /// Deletes the message, in one batch with the other deletes asked for meanwhile.
    pub async fn delete(&self, message: &Received) -> Result<()> {
        let (done, outcome) = oneshot::channel();
        let pending = PendingDelete {
            receipt_handle: message.receipt_handle.clone().unwrap_or_default(),
            done,
        };
        self.deletes.send(pending).map_err(|_| {
            anyhow::anyhow!("DeleteMessage from {}: the queue is closed", self.name)
        })?;
        outcome
            .await
            .map_err(|_| anyhow::anyhow!("DeleteMessage from {}: the queue is closed", self.name))?
            .map_err(|e| anyhow::anyhow!("DeleteMessage from {}: {e}", self.name))
    }

    /// Moves a message that cannot be processed to the dead-letter queue, or drops it.
    pub async fn dead_letter(&self, message: &Received, reason: &str) -> Result<()> {
        match &self.dead_letter_url {
            Some(url) => {
                self.client
                    .send_message()
                    .queue_url(url)
                    .message_body(&message.body)
                    .send()
                    .await
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "moving a message to the dead-letter queue: {}",
                            describe(&e)
                        )
                    })?;
                tracing::error!(queue = %self.name, receive_count = message.receive_count, "moved a message to the dead-letter queue: {reason}");
            }
            None => tracing::error!(
                queue = %self.name,
                receive_count = message.receive_count,
                body = crate::guest_text::shortened(&message.body, 200).as_str(),
                "dropped a message that cannot be processed: {reason}"
            ),
        }
        self.delete(message).await
    }
}

/// Sends deletes as `DeleteMessageBatch` calls: the first delete waits at most [`LINGER`] for
/// company (the other messages of its receive usually finish within a millisecond), so a
/// batch of messages costs one call, not one each. Ends when the queue is dropped.
async fn delete_in_batches(
    client: Client,
    name: String,
    url: String,
    mut pending: mpsc::UnboundedReceiver<PendingDelete>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while pending.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let linger = tokio::time::sleep(LINGER);
        tokio::pin!(linger);
        while batch.len() < MAX_BATCH {
            let room = MAX_BATCH - batch.len();
            tokio::select! {
                _ = &mut linger => break,
                more = pending.recv_many(&mut batch, room) => if more == 0 { break },
            }
        }
        let entries = batch.iter().enumerate().map(|(i, p)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(&p.receipt_handle)
                .build()
        });
        let entries = match entries.collect::<Result<Vec<_>, _>>() {
            Ok(entries) => entries,
            Err(e) => {
                finish(&mut batch, |_| Err(e.to_string()));
                continue;
            }
        };
        let sent = client
            .delete_message_batch()
            .queue_url(&url)
            .set_entries(Some(entries))
            .send()
            .await;
        match sent {
            Ok(output) => {
                let failed: Vec<(usize, String)> = output
                    .failed
                    .iter()
                    .filter_map(|f| {
                        let index = f.id.parse().ok()?;
                        Some((
                            index,
                            format!("{}: {}", f.code, f.message.as_deref().unwrap_or("")),
                        ))
                    })
                    .collect();
                finish(&mut batch, |i| match failed.iter().find(|(f, _)| *f == i) {
                    Some((_, error)) => Err(error.clone()),
                    None => Ok(()),
                });
            }
            Err(e) => {
                let error = describe(&e);
                tracing::debug!(queue = %name, "DeleteMessageBatch failed: {error}");
                finish(&mut batch, |_| Err(error.clone()));
            }
        }
    }
}

/// Tells each waiter of `batch` its outcome, by its index in the batch.
fn finish(batch: &mut Vec<PendingDelete>, outcome: impl Fn(usize) -> Result<(), String>) {
    for (i, pending) in batch.drain(..).enumerate() {
        let _ = pending.done.send(outcome(i));
    }
}

fn is_missing<E: ProvideErrorMetadata>(e: &aws_sdk_sqs::error::SdkError<E>) -> bool {
    matches!(
        e.as_service_error().and_then(|s| s.code()),
        Some("QueueDoesNotExist" | "AWS.SimpleQueueService.NonExistentQueue")
    )
}

/// The queue URL or name an application-queue request names.
fn queue_named_by(input: &Input) -> Option<String> {
    use aws_sdk_sqs::operation as op;
    let url = input
        .downcast_ref::<op::send_message::SendMessageInput>()
        .and_then(|i| i.queue_url())
        .or_else(|| {
            input
                .downcast_ref::<op::receive_message::ReceiveMessageInput>()
                .and_then(|i| i.queue_url())
        })
        .or_else(|| {
            input
                .downcast_ref::<op::change_message_visibility::ChangeMessageVisibilityInput>()
                .and_then(|i| i.queue_url())
        })
        .or_else(|| {
            input
                .downcast_ref::<op::delete_message_batch::DeleteMessageBatchInput>()
                .and_then(|i| i.queue_url())
        })
        .or_else(|| {
            input
                .downcast_ref::<op::get_queue_url::GetQueueUrlInput>()
                .and_then(|i| i.queue_name())
        })
        .or_else(|| {
            input
                .downcast_ref::<op::create_queue::CreateQueueInput>()
                .and_then(|i| i.queue_name())
        });
    url.map(str::to_owned)
}
