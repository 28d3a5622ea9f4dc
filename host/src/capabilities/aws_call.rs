//! The `aws-call` capability: checks a monitor's grants (deny by default, see
//! [`crate::grants`]), builds the request for the service's protocol and hands it to the AWS
//! transport, which signs it with the granted credential. Every call, allowed or not, is one
//! audit event on target `sentinela::audit` (refused ones counted per kind, see
//! [`crate::audit::RefusalSink`]).

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{HasData, Linker};

use super::guest_error::guest_error;
use super::log::GuestLog;
use crate::audit::{AuditEvent, shorten};
use crate::aws::AwsProvider;
use crate::aws::answers;
use crate::aws::credentials::Credential;
use crate::aws::services::{Protocol, Service};
use crate::aws::sns::SnsError;
use crate::aws::transport::{self, Answer, Destination, Outgoing, Transport};
use crate::bindings::sentinela::plugin::aws_call::{self, Request, Response};
use crate::bindings::sentinela::plugin::types::Error;
use crate::config::values::CredentialName;
use crate::grants::{self, AwsOperationGrant, RequestResources};
use request::Prepared;

pub mod request;

/// The interfaces this capability serves.
pub const INTERFACES: &[&str] = &["aws-call"];

/// Caps on the shape of one call's arguments, checked before anything is encoded, signed or
/// parsed (the request's bytes are capped by the transport's `max_request_bytes` too).
pub const MAX_QUERY_PARAMS: usize = 1000;
/// Headers a `signed` request may carry.
pub const MAX_HEADERS: usize = 64;
/// Bytes of all of a `signed` request's headers together.
pub const MAX_HEADER_BYTES: usize = 16 << 10;
/// Bytes of a `signed` request's path.
pub const MAX_PATH_BYTES: usize = 4096;

/// Links `aws-call` for store data `T`; `get` finds the instance's state in it.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> AwsCallCtx<'_>,
) -> wasmtime::Result<()> {
    aws_call::add_to_linker::<T, AwsCallCtx<'static>>(linker, get)
}

/// The store's view of this capability: its state, when the monitor has one.
pub struct AwsCallCtx<'a>(pub Option<&'a AwsCallInstance>);

impl HasData for AwsCallCtx<'static> {
    type Data<'a> = AwsCallCtx<'a>;
}

impl AwsCallCtx<'_> {
    /// The monitor's state; none when the `aws` host plugin is not enabled: then every
    /// call is denied, naming the variable to set.
    fn instance(&self) -> Result<&AwsCallInstance, Error> {
        self.0
            .ok_or_else(|| super::host_plugin_disabled(crate::providers::HostPlugin::Aws))
    }
}

/// What one monitor may do through `aws-call`.
#[derive(Debug, Default)]
pub struct AwsCallGrants {
    /// The credentials the monitor may sign with (`grants.credentials`).
    pub credentials: Vec<CredentialName>,
    /// The `grants.aws` entries; empty: no operation (deny by default).
    pub operations: Vec<AwsOperationGrant>,
}

impl From<&grants::Grants> for AwsCallGrants {
    fn from(grants: &grants::Grants) -> AwsCallGrants {
        AwsCallGrants {
            credentials: grants.credentials.clone(),
            operations: grants.aws.clone(),
        }
    }
}

/// The host's own queue (of `host_queues`) an SQS request names, if any: a queue name, URL
/// or ARN (a message-move task's source or destination) with one of its names as a segment,
/// so a URL the resource reader cannot parse does not slip past either.
fn host_queue_in<'q>(host_queues: &'q [String], input: &serde_json::Value) -> Option<&'q str> {
    let named = ["QueueUrl", "QueueName", "SourceArn", "DestinationArn"]
        .into_iter()
        .filter_map(|member| input.get(member)?.as_str());
    for text in named {
        for segment in text.split(['/', ':', '?', '&', '=', '#']) {
            if let Some(queue) = host_queues.iter().find(|q| *q == segment) {
                return Some(queue);
            }
        }
    }
    None
}

/// One invocation's `aws-call` state: the monitor's grants and the shared provider.
pub struct AwsCallInstance {
    /// The monitor, for refusals and audit events.
    pub monitor: Arc<str>,
    /// What the monitor may call.
    pub grants: Arc<AwsCallGrants>,
    /// Credentials and the transport, shared by the process.
    pub aws: Arc<AwsProvider>,
    /// The call's log budget: refusal lines are charged to it, refused calls counted in it.
    pub log: GuestLog,
}

/// Where an authorized call goes.
struct Target {
    credential: Arc<Credential>,
    service: &'static Service,
    region: String,
}

/// Sends `outgoing` with the target's current keys; the audit's status comes with the answer.
async fn send_to(
    transport: &Transport,
    target: &Target,
    outgoing: Outgoing,
) -> (Result<Answer, Error>, Option<u16>) {
    let result = async {
        let keys = target.credential.keys().await?;
        let to = Destination {
            service: target.service,
            region: &target.region,
            keys: &keys,
        };
        transport.send(to, outgoing).await
    }
    .await;
    let status = transport::status_of(&result, |a| a.status);
    (result.map_err(guest_error), status)
}

fn text(answer: Answer) -> Result<String, Error> {
    answer.text().map_err(guest_error)
}

/// Withholds an answer that carries a credential-shaped member (defence in depth: the models
/// said the operation's answer holds none): the call fails with `denied` and the audit event
/// names the member; nothing of the answer goes further.
fn withhold_credentials(
    log: &GuestLog,
    audit: &mut AuditEvent<'_>,
    service: &Service,
    operation: &str,
    answer: Result<Answer, Error>,
) -> Result<Answer, Error> {
    if let Ok(received) = &answer
        && let Some(member) = answers::credential_in(&received.body)
    {
        if log.allow_refusal_line() {
            tracing::warn!(
                withheld = member,
                "aws-call answer withheld: it holds a credential"
            );
        }
        audit.set_withheld(member);
        return Err(Error::Denied(format!(
            "the answer of {}:{} holds {member}; monitors never receive credentials, so none \
             of it was handed over",
            service.name,
            shorten(operation)
        )));
    }
    answer
}

impl AwsCallInstance {
    /// Checks the credential, service and operation names and returns where the call goes.
    /// Whether the operation is granted is decided by [`AwsCallInstance::check_grant`], once
    /// the request's resources are known.
    fn authorize(
        &self,
        credential: &str,
        service: &str,
        region: Option<&str>,
        protocol_matches: fn(&Service) -> bool,
    ) -> Result<Target, Error> {
        let name = CredentialName::parse(credential).map_err(|_| {
            Error::Invalid(format!("invalid credential name '{}'", shorten(credential)))
        })?;
        if name.as_str() == CredentialName::APPLICATION {
            if self.log.allow_refusal_line() {
                tracing::warn!("refused: a monitor asked for the APPLICATION credential");
            }
            return Err(Error::Denied(
                "the APPLICATION credential belongs to the host and is never available to monitors"
                    .into(),
            ));
        }
        if !self.grants.credentials.contains(&name) {
            if self.log.allow_refusal_line() {
                tracing::warn!(missing_grant = %name, "refused: credential not granted");
            }
            return Err(Error::Denied(format!(
                "credential {name} is not granted to monitor '{}'",
                self.monitor
            )));
        }
        let service =
            Service::find(service).ok_or_else(|| Error::Invalid(Service::unknown(service)))?;
        if !protocol_matches(service) {
            return Err(Error::Invalid(format!(
                "{} is called with aws-call.{}",
                service.name,
                service.protocol.function()
            )));
        }
        let credential = self
            .aws
            .credentials
            .get(&name)
            .map_err(|e| Error::Unavailable(e.to_string()))?;
        let region = credential
            .region(region)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        Ok(Target {
            credential: credential.clone(),
            service,
            region,
        })
    }

    /// Whether the monitor's `grants.aws` allow `operation` on `resources` (deny by default).
    fn check_grant(
        &self,
        target: &Target,
        operation: &str,
        input: Option<&serde_json::Value>,
        resources: &RequestResources,
    ) -> Result<(), Error> {
        let service = target.service.name;
        grants::authorize(
            &self.monitor,
            &self.grants.operations,
            target.service,
            operation,
            input,
            resources,
        )
        .map_err(|refusal| {
            if self.log.allow_refusal_line() {
                tracing::warn!(
                    missing_grant = format!("{service}:{operation}").as_str(),
                    resource = resources.first().map(shorten).unwrap_or_default().as_str(),
                    "refused: {}",
                    crate::guest_text::escape(&refusal.to_string())
                );
            }
            Error::Denied(refusal.to_string())
        })
    }

    /// Runs one request under its audit event: `send` authorizes, checks and sends, naming the
    /// resource on the event once it knows it and marking it sent before sending; refused,
    /// failed or answered, the event is written once with the outcome and AWS's status.
    async fn audited<T>(
        &self,
        credential: &str,
        service: &str,
        operation: &str,
        send: impl AsyncFnOnce(&mut AuditEvent<'_>) -> Result<(Result<T, Error>, Option<u16>), Error>,
    ) -> Result<T, Error> {
        let mut audit = self.log.audit(credential, service, operation);
        let (result, status) = send(&mut audit).await.unwrap_or_else(|e| (Err(e), None));
        audit.finish(&result, status);
        result
    }

    /// `aws-call.json`: a JSON-protocol operation (`X-Amz-Target`) with `input` as its body,
    /// checked against the grants as parsed, audited, retried when AWS says it may.
    pub async fn json(
        &self,
        credential: &str,
        service: &str,
        region: Option<&str>,
        operation: &str,
        input: &str,
    ) -> Result<String, Error> {
        self.audited(credential, service, operation, async |audit| {
            let target = self.authorize(credential, service, region, |s| {
                matches!(s.protocol, Protocol::Json { .. })
            })?;
            let limit = self.aws.transport.limits.request_bytes_for(target.service);
            let prepared =
                request::prepare_json(target.service, &target.region, operation, input, limit)?;
            audit.set_resource(prepared.resources.first());
            if target.service.name == "sqs"
                && let Some(input) = &prepared.input
                && let Some(queue) = host_queue_in(&self.aws.host_queues, input)
            {
                if self.log.allow_refusal_line() {
                    tracing::warn!(queue, "refused: a monitor named one of the host's queues");
                }
                return Err(Error::Denied(format!(
                    "SQS queue '{queue}' is the host's own (application or issue events queue); \
                     no monitor reaches it"
                )));
            }
            let input = prepared.input.as_ref();
            self.check_grant(&target, operation, input, &prepared.resources)?;
            self.log.take_aws_request()?;
            audit.mark_sent();
            let transport = &self.aws.transport;
            let (answer, status) = send_to(transport, &target, prepared.outgoing).await;
            let answer = withhold_credentials(&self.log, audit, target.service, operation, answer);
            Ok::<_, Error>((answer.and_then(text), status))
        })
        .await
    }

    /// `aws-call.query`: a query-protocol action (`Action=...&Version=...`) with `params`.
    pub async fn query(
        &self,
        credential: &str,
        service: &str,
        region: Option<&str>,
        action: &str,
        params: &[(String, String)],
    ) -> Result<String, Error> {
        self.audited(credential, service, action, async |audit| {
            let target = self.authorize(credential, service, region, |s| {
                matches!(s.protocol, Protocol::Query | Protocol::Ec2)
            })?;
            let limit = self.aws.transport.limits.request_bytes_for(target.service);
            let prepared =
                request::prepare_query(target.service, &target.region, action, params, limit)?;
            audit.set_resource(prepared.resources.first());
            self.check_grant(&target, action, None, &prepared.resources)?;
            self.log.take_aws_request()?;
            audit.mark_sent();
            let transport = &self.aws.transport;
            let (answer, status) = send_to(transport, &target, prepared.outgoing).await;
            let answer = withhold_credentials(&self.log, audit, target.service, action, answer);
            Ok::<_, Error>((answer.and_then(text), status))
        })
        .await
    }

    /// Whether the grants allow a REST call: the operation the model resolved it to
    /// (`s3:GetObject`), which a method entry (`s3:GET`) may stand for. `prefix` is
    /// `presign:` for a presigned URL, granted only as such.
    fn check_rest_grant(
        &self,
        target: &Target,
        call: &Prepared,
        prefix: &str,
    ) -> Result<(), Error> {
        let operation = format!("{prefix}{}", call.operation);
        self.check_grant(target, &operation, None, &call.resources)
    }

    /// `aws-call.signed`: a REST request (S3, Lambda, Route 53...) the host checks, signs and
    /// sends.
    pub async fn signed(
        &self,
        credential: &str,
        service: &str,
        region: Option<&str>,
        request: Request,
    ) -> Result<Response, Error> {
        let method = request.method.clone();
        self.audited(credential, service, &method, async |audit| {
            let target = self.authorize(credential, service, region, Service::is_rest)?;
            let limit = self.aws.transport.limits.request_bytes_for(target.service);
            let call = request::prepare_rest(target.service, &target.region, request, limit)?;
            audit.set_operation(call.operation);
            audit.set_resource(call.resources.first());
            self.check_rest_grant(&target, &call, "")?;
            self.log.take_aws_request()?;
            audit.mark_sent();
            let transport = &self.aws.transport;
            let (answer, status) = send_to(transport, &target, call.outgoing).await;
            let answer =
                withhold_credentials(&self.log, audit, target.service, call.operation, answer);
            let response = answer.map(|answer| Response {
                status: answer.status,
                headers: answer
                    .headers
                    .iter()
                    .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_owned())))
                    .collect(),
                body: answer.body.to_vec(),
            });
            Ok::<_, Error>((response, status))
        })
        .await
    }

    /// `aws-call.presign`: a presigned URL for a REST request, valid `expires_seconds` (at
    /// most `aws.presign_max_expiry`), granted as `service:presign:Operation`.
    pub async fn presign(
        &self,
        credential: &str,
        service: &str,
        region: Option<&str>,
        request: Request,
        expires_seconds: u32,
    ) -> Result<String, Error> {
        self.audited(credential, service, "presign", async |audit| {
            let target = self.authorize(credential, service, region, Service::is_rest)?;
            let limit = self.aws.transport.limits.request_bytes_for(target.service);
            let call = request::prepare_rest(target.service, &target.region, request, limit)?;
            audit.set_operation(&format!("presign:{}", call.operation));
            audit.set_resource(call.resources.first());
            let cap = self.aws.transport.limits.max_presign_expiry;
            let expires = Duration::from_secs(expires_seconds.into());
            if expires.is_zero() || expires > cap {
                return Err(Error::Limit(format!(
                    "expires-seconds {expires_seconds} is not between 1 and {} \
                     (aws.presign_max_expiry)",
                    cap.as_secs()
                )));
            }
            if !call.outgoing.body.is_empty() {
                return Err(Error::Invalid(
                    "a presigned request has no body: whoever uses the URL sends it".into(),
                ));
            }
            self.check_rest_grant(&target, &call, "presign:")?;
            self.log.take_aws_request()?;
            let keys = target.credential.keys().await.map_err(guest_error)?;
            let to = Destination {
                service: target.service,
                region: &target.region,
                keys: &keys,
            };
            let url = self.aws.transport.presign(to, call.outgoing, expires);
            Ok::<_, Error>((url.map_err(guest_error), None))
        })
        .await
    }
}

impl AwsCallInstance {
    /// `aws-call.verify-sns-message`: whether an SNS message's signature is SNS's. Needs no
    /// grant (no credential is used); each call counts as one request of the call's
    /// `aws_requests` allowance, as it may fetch a certificate.
    pub async fn verify_sns_message(&self, message: &str) -> Result<bool, Error> {
        self.log.take_aws_request()?;
        self.aws
            .sns
            .verify(&self.aws.transport, message)
            .await
            .map_err(|e| match e {
                SnsError::Invalid(why) => Error::Invalid(why),
                SnsError::Certificate(e) => match guest_error(e) {
                    Error::Unavailable(why) | Error::Invalid(why) => {
                        Error::Unavailable(format!("signing certificate: {why}"))
                    }
                    other => other,
                },
            })
    }
}

impl aws_call::Host for AwsCallCtx<'_> {
    #[tracing::instrument(
        name = "host_call",
        skip_all,
        fields(capability = "aws-call", function = "json")
    )]
    async fn json(
        &mut self,
        credential: String,
        service: String,
        region: Option<String>,
        operation: String,
        input: String,
    ) -> Result<String, Error> {
        self.instance()?
            .json(&credential, &service, region.as_deref(), &operation, &input)
            .await
    }

    #[tracing::instrument(
        name = "host_call",
        skip_all,
        fields(capability = "aws-call", function = "query")
    )]
    async fn query(
        &mut self,
        credential: String,
        service: String,
        region: Option<String>,
        action: String,
        params: Vec<(String, String)>,
    ) -> Result<String, Error> {
        self.instance()?
            .query(&credential, &service, region.as_deref(), &action, &params)
            .await
    }

    #[tracing::instrument(
        name = "host_call",
        skip_all,
        fields(capability = "aws-call", function = "verify-sns-message")
    )]
    async fn verify_sns_message(&mut self, message: String) -> Result<bool, Error> {
        self.instance()?.verify_sns_message(&message).await
    }

    #[tracing::instrument(
        name = "host_call",
        skip_all,
        fields(capability = "aws-call", function = "presign")
    )]
    async fn presign(
        &mut self,
        credential: String,
        service: String,
        region: Option<String>,
        request: Request,
        expires_seconds: u32,
    ) -> Result<String, Error> {
        self.instance()?
            .presign(
                &credential,
                &service,
                region.as_deref(),
                request,
                expires_seconds,
            )
            .await
    }

    #[tracing::instrument(
        name = "host_call",
        skip_all,
        fields(capability = "aws-call", function = "signed")
    )]
    async fn signed(
        &mut self,
        credential: String,
        service: String,
        region: Option<String>,
        request: Request,
    ) -> Result<Response, Error> {
        self.instance()?
            .signed(&credential, &service, region.as_deref(), request)
            .await
    }
}
