//! Write a Sentinela monitor in Rust: implement [`Monitor`], call [`export_monitor!`], build
//! for `wasm32-wasip2` (`cargo build --release --target wasm32-wasip2`) and run the `.wasm`
//! with the `sentinela` host.
//!
//! ```
//! use sentinela_monitor::{Issue, Monitor, Result, export_monitor, json};
//!
//! struct DiskFull;
//!
//! impl Monitor for DiskFull {
//!     fn search() -> Result<Vec<Issue>> {
//!         Ok(vec![Issue::new("disk-1", json!({ "used_percent": 97 }))])
//!     }
//!     fn is_solved(issue: &Issue) -> Result<bool> {
//!         Ok(issue.data["used_percent"].as_u64() < Some(90))
//!     }
//! }
//!
//! export_monitor!(DiskFull);
//!
//! // The logic is plain Rust: test it without a host.
//! let found = DiskFull::search().unwrap();
//! assert_eq!(found[0].id, "disk-1");
//! assert!(!DiskFull::is_solved(&found[0]).unwrap());
//! ```
//!
//! Every call runs in a fresh instance: a monitor keeps no state between calls. Everything it
//! needs to decide whether an issue is solved must be in the issue's `data`.
//!
//! The host's capabilities are modules here: [`settings`], [`log`], [`aws`] (and [`ses`] on
//! it), [`secrets`], [`queue`]. They call the host, so they work only inside it (`sentinela invoke` runs one
//! call). The WIT this crate binds is in its `wit/` directory.
#![warn(missing_docs)]

use std::marker::PhantomData;

pub use serde_json::{self, Value, json};

/// Guest bindings of `wit/sentinela.wit`.
#[doc(hidden)]
#[allow(missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "monitor",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "sentinela_monitor::bindings",
        generate_all,
    });
}

use bindings::exports::sentinela::plugin::checks as wit;
pub use wit::MessageKind;

/// A problem the monitor tracks. `id` must be unique within the monitor and stable across
/// calls; `data` must be a JSON object.
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    /// Unique within the monitor (at most 256 bytes) and stable across calls.
    pub id: String,
    /// What the monitor knows about the problem: a JSON object (at most 256 KiB).
    pub data: Value,
}

impl Issue {
    /// An issue with this id and data.
    pub fn new(id: impl Into<String>, data: Value) -> Issue {
        Issue {
            id: id.into(),
            data,
        }
    }
}

/// The error a monitor returns; the host logs it with the monitor's name. Anything that is a
/// `std::error::Error`, a `&str` or a `String` converts into it, so `?` works.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// What every monitor function and SDK call returns.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A monitor: Sentinela's search / update / is-solved cycle.
pub trait Monitor {
    /// Look for problems now.
    fn search() -> Result<Vec<Issue>>;

    /// Refresh active issues; return those whose data changed. By default nothing changes.
    fn update(issues: Vec<Issue>) -> Result<Vec<Issue>> {
        let _ = issues;
        Ok(Vec::new())
    }

    /// Whether the problem is gone.
    fn is_solved(issue: &Issue) -> Result<bool>;

    /// React to an `event` or `request` message. By default messages are ignored.
    fn handle(kind: MessageKind, payload: Value) -> Result<()> {
        let _ = (kind, payload);
        Ok(())
    }
}

/// Logging into the host's log, tagged with the monitor's name.
pub mod log {
    use crate::bindings::sentinela::plugin::log::{Level, log};

    /// A line at level `trace`.
    pub fn trace(message: impl AsRef<str>) {
        log(Level::Trace, message.as_ref());
    }
    /// A line at level `debug`.
    pub fn debug(message: impl AsRef<str>) {
        log(Level::Debug, message.as_ref());
    }
    /// A line at level `info`.
    pub fn info(message: impl AsRef<str>) {
        log(Level::Info, message.as_ref());
    }
    /// A line at level `warn`.
    pub fn warn(message: impl AsRef<str>) {
        log(Level::Warn, message.as_ref());
    }
    /// A line at level `error`.
    pub fn error(message: impl AsRef<str>) {
        log(Level::Error, message.as_ref());
    }
}

/// AWS through the host. The host signs every request with the named credential — which this
/// monitor must be granted — and picks the endpoint; the monitor never sees a key.
///
/// ```ignore
/// let aws = Aws::new("MONITORING");
/// let queues = aws.sqs().list_queues(None)?;
/// let depth = aws.sqs().approximate_number_of_messages(&queues[0])?;
/// ```
pub mod aws {
    use std::collections::HashMap;

    use serde_json::{Value, json};

    use crate::Result;
    use crate::bindings::sentinela::plugin::aws_call;
    pub use crate::bindings::sentinela::plugin::aws_call::{Request, Response};
    pub use crate::bindings::sentinela::plugin::types::{AwsError, Error as HostError};

    /// Turns a host error into a readable message.
    pub fn describe(error: &HostError) -> String {
        match error {
            HostError::Denied(m) => format!("denied: {m}"),
            HostError::NotFound(m) => format!("not found: {m}"),
            HostError::Invalid(m) => format!("invalid: {m}"),
            HostError::Limit(m) => format!("limit: {m}"),
            HostError::Unavailable(m) => format!("unavailable: {m}"),
            HostError::Aws(e) => format!("{} (HTTP {}): {}", e.code, e.status, e.message),
        }
    }

    /// Whether `message` (the JSON an SNS topic delivers to HTTP or SQS subscribers) is
    /// signed by SNS. The host checks SignatureVersion 1 and 2 with the certificate at its
    /// `SigningCertURL` (fetched only from `https://sns.<region>.amazonaws.com`). Needs no
    /// grant.
    pub fn verify_sns_message(message: &str) -> Result<bool> {
        Ok(aws_call::verify_sns_message(message).map_err(|e| describe(&e))?)
    }

    /// The text of the first `<element>` of an XML answer (a pagination token), unescaped.
    pub fn xml_text(xml: &str, element: &str) -> Option<String> {
        use quick_xml::events::Event;
        let mut reader = quick_xml::Reader::from_str(xml);
        let mut inside = false;
        let mut text = String::new();
        loop {
            match reader.read_event().ok()? {
                Event::Start(e) if e.local_name().as_ref() == element.as_bytes() => inside = true,
                Event::Text(t) if inside => text.push_str(&t.unescape().ok()?),
                Event::End(_) if inside => return Some(text),
                Event::Eof => return None,
                _ => {}
            }
        }
    }

    /// Calls made with one credential, in its region unless [`Aws::region`] says otherwise.
    #[derive(Debug, Clone)]
    pub struct Aws {
        credential: String,
        region: Option<String>,
    }

    impl Aws {
        /// Calls signed with `credential` (which the monitor's config must grant), in its
        /// region.
        pub fn new(credential: &str) -> Aws {
            Aws {
                credential: credential.to_owned(),
                region: None,
            }
        }

        /// The same credential in another region.
        pub fn region(mut self, region: &str) -> Aws {
            self.region = Some(region.to_owned());
            self
        }

        /// A JSON-protocol operation (sqs, dynamodb, secretsmanager, ssm, logs, ...).
        pub fn json(&self, service: &str, operation: &str, input: &Value) -> Result<Value> {
            let output = aws_call::json(
                &self.credential,
                service,
                self.region.as_deref(),
                operation,
                &input.to_string(),
            )
            .map_err(|e| describe(&e))?;
            Ok(if output.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&output)?
            })
        }

        /// A query-protocol action (sts, sns, iam, cloudwatch, ...); returns the XML body.
        pub fn query(
            &self,
            service: &str,
            action: &str,
            params: &[(&str, &str)],
        ) -> Result<String> {
            let params: Vec<(String, String)> = params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            Ok(aws_call::query(
                &self.credential,
                service,
                self.region.as_deref(),
                action,
                &params,
            )
            .map_err(|e| describe(&e))?)
        }

        /// A signed request to a REST service (s3, lambda, route53, apigateway, ...).
        pub fn signed(&self, service: &str, request: &Request) -> Result<Response> {
            Ok(
                aws_call::signed(&self.credential, service, self.region.as_deref(), request)
                    .map_err(|e| describe(&e))?,
            )
        }

        /// A presigned URL for a REST request with no body (an S3 `GET` or `PUT` of an
        /// object), valid `expires_seconds`; granted as `service:presign:Operation`.
        ///
        /// ```no_run
        /// # fn main() -> sentinela_monitor::Result<()> {
        /// use sentinela_monitor::aws::{Aws, Request};
        /// let request = Request {
        ///     method: "GET".into(),
        ///     path: "/reports/today.csv".into(),
        ///     query: vec![],
        ///     headers: vec![],
        ///     body: vec![],
        /// };
        /// let url = Aws::new("MONITORING").presign("s3", &request, 900)?;
        /// # Ok(()) }
        /// ```
        pub fn presign(
            &self,
            service: &str,
            request: &Request,
            expires_seconds: u32,
        ) -> Result<String> {
            Ok(aws_call::presign(
                &self.credential,
                service,
                self.region.as_deref(),
                request,
                expires_seconds,
            )
            .map_err(|e| describe(&e))?)
        }

        /// Every page of a JSON-protocol list operation, one call per page: the first with
        /// `input`, each next one with the last answer's `output_token` (`NextToken`,
        /// `nextToken`, `NextMarker`...) set as `input_token`, until an answer has none.
        ///
        /// ```no_run
        /// # fn main() -> sentinela_monitor::Result<()> {
        /// use sentinela_monitor::{aws::Aws, json};
        /// let aws = Aws::new("MONITORING");
        /// for page in aws.json_pages("sqs", "ListQueues", json!({}), "NextToken", "NextToken") {
        ///     for url in page?["QueueUrls"].as_array().into_iter().flatten() {
        ///         // ...
        ///     }
        /// }
        /// # Ok(()) }
        /// ```
        pub fn json_pages<'a>(
            &'a self,
            service: &'a str,
            operation: &'a str,
            input: Value,
            input_token: &'a str,
            output_token: &'a str,
        ) -> impl Iterator<Item = Result<Value>> + 'a {
            let mut input = Some(input);
            let mut seen = Vec::new();
            std::iter::from_fn(move || {
                let this = input.take()?;
                let page = match self.json(service, operation, &this) {
                    Ok(page) => page,
                    Err(e) => return Some(Err(e)),
                };
                if let Some(token) = page[output_token].as_str().filter(|t| !t.is_empty())
                    && !seen.iter().any(|s: &String| s == token)
                {
                    seen.push(token.to_owned());
                    let mut next = this;
                    next[input_token] = Value::String(token.to_owned());
                    input = Some(next);
                }
                Some(Ok(page))
            })
        }

        /// Every page of a query-protocol list action (XML answers): the first with `params`,
        /// each next one with the text of the last answer's `output_token` element
        /// (`NextToken`, `Marker`) as parameter `input_token`, until an answer has none.
        pub fn query_pages<'a>(
            &'a self,
            service: &'a str,
            action: &'a str,
            params: &'a [(&'a str, &'a str)],
            input_token: &'a str,
            output_token: &'a str,
        ) -> impl Iterator<Item = Result<String>> + 'a {
            let mut token: Option<Option<String>> = Some(None);
            let mut seen = Vec::new();
            std::iter::from_fn(move || {
                let current = token.take()?;
                let mut all: Vec<(&str, &str)> = params.to_vec();
                if let Some(current) = &current {
                    all.push((input_token, current));
                }
                let page = match self.query(service, action, &all) {
                    Ok(page) => page,
                    Err(e) => return Some(Err(e)),
                };
                if let Some(next) = xml_text(&page, output_token).filter(|t| !t.is_empty())
                    && !seen.contains(&next)
                {
                    seen.push(next.clone());
                    token = Some(Some(next));
                }
                Some(Ok(page))
            })
        }

        /// Typed SQS helpers with this credential and region.
        pub fn sqs(&self) -> Sqs<'_> {
            Sqs(self)
        }
    }

    /// Typed SQS helpers.
    pub struct Sqs<'a>(&'a Aws);

    impl Sqs<'_> {
        /// Queue URLs, optionally only those whose name starts with `prefix`.
        pub fn list_queues(&self, prefix: Option<&str>) -> Result<Vec<String>> {
            let input = match prefix {
                Some(prefix) => json!({ "QueueNamePrefix": prefix }),
                None => json!({}),
            };
            let output = self.0.json("sqs", "ListQueues", &input)?;
            Ok(output["QueueUrls"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|u| u.as_str().map(str::to_owned))
                .collect())
        }

        /// The named attributes of a queue (`ApproximateNumberOfMessages`, `QueueArn`, ...).
        pub fn get_queue_attributes(
            &self,
            queue_url: &str,
            names: &[&str],
        ) -> Result<HashMap<String, String>> {
            let output = self.0.json(
                "sqs",
                "GetQueueAttributes",
                &json!({ "QueueUrl": queue_url, "AttributeNames": names }),
            )?;
            Ok(serde_json::from_value(output["Attributes"].clone()).unwrap_or_default())
        }

        /// `ApproximateNumberOfMessages` of a queue.
        pub fn approximate_number_of_messages(&self, queue_url: &str) -> Result<u64> {
            let attributes =
                self.get_queue_attributes(queue_url, &["ApproximateNumberOfMessages"])?;
            let count = attributes
                .get("ApproximateNumberOfMessages")
                .ok_or("no ApproximateNumberOfMessages in the answer")?;
            Ok(count.parse()?)
        }
    }
}

/// Secrets declared for this monitor in its config (`secrets:`), fetched by the host.
pub mod secrets {
    use crate::Result;
    use crate::aws::describe;
    use crate::bindings::sentinela::plugin::secrets as wit;

    /// The value of the secret declared as `name`.
    pub fn get(name: &str) -> Result<String> {
        Ok(wit::get(name).map_err(|e| describe(&e))?)
    }
}

/// The monitor's `settings:` from its config entry, read through the standard
/// `wasi:config/store` interface. Values are strings: YAML scalars as written (`10`, `true`),
/// lists and maps as JSON (read those with [`settings::json`]). Errors name the key; the host
/// adds the monitor's name when it logs them.
///
/// ```ignore
/// let queue = settings::require("queue")?;                 // must be set
/// let threshold: u64 = settings::parse_or("threshold", 5)?; // 5 when not set
/// let regions = settings::json("regions")?;                // a YAML list, as JSON
/// ```
pub mod settings {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde_json::Value;

    use crate::Result;
    use crate::bindings::wasi::config::store;

    fn host_error(key: &str, error: store::Error) -> crate::Error {
        match error {
            store::Error::Upstream(m) | store::Error::Io(m) => {
                format!("setting '{key}': the host could not read it: {m}").into()
            }
        }
    }

    /// The setting `key`, or `None` when the monitor's config does not set it.
    pub fn get(key: &str) -> Result<Option<String>> {
        store::get(key).map_err(|e| host_error(key, e))
    }

    /// The setting `key`; an error naming it when the config does not set it.
    pub fn require(key: &str) -> Result<String> {
        get(key)?.ok_or_else(|| {
            format!("setting '{key}' is not set (add it under the monitor's settings:)").into()
        })
    }

    /// The setting `key` parsed as `T` (`u64`, `f64`, `bool`, ...); an error naming the key and
    /// the value when it is not set or does not parse.
    pub fn parse<T>(key: &str) -> Result<T>
    where
        T: FromStr,
        T::Err: Display,
    {
        parse_text(key, &require(key)?)
    }

    /// Like [`parse`], but `default` when the config does not set `key`.
    pub fn parse_or<T>(key: &str, default: T) -> Result<T>
    where
        T: FromStr,
        T::Err: Display,
    {
        match get(key)? {
            Some(text) => parse_text(key, &text),
            None => Ok(default),
        }
    }

    /// The setting `key` as JSON: a YAML list or map in the config arrives as JSON text.
    pub fn json(key: &str) -> Result<Value> {
        let text = require(key)?;
        serde_json::from_str(&text)
            .map_err(|e| format!("setting '{key}': {text:?} is not JSON: {e}").into())
    }

    /// Every setting, as (key, value) pairs.
    pub fn all() -> Result<Vec<(String, String)>> {
        store::get_all().map_err(|e| host_error("*", e))
    }

    fn parse_text<T>(key: &str, text: &str) -> Result<T>
    where
        T: FromStr,
        T::Err: Display,
    {
        text.trim().parse().map_err(|e| {
            format!(
                "setting '{key}': {text:?} is not a valid {}: {e}",
                std::any::type_name::<T>()
            )
            .into()
        })
    }
}

/// Email through SES: a MIME message with text and HTML parts and attachments, built here
/// (with `mail-builder`) and sent with `SendRawEmail` (grant `ses:SendRawEmail`; SES takes
/// messages up to 10 MB).
pub mod ses {
    use base64::Engine as _;
    use mail_builder::MessageBuilder;

    use crate::Result;
    use crate::aws::{Aws, xml_text};

    /// One email: build it with the methods, then [`Email::send`] it.
    ///
    /// ```
    /// use sentinela_monitor::ses::Email;
    /// let email = Email::new("alerts@example.com", "3 queues are backing up")
    ///     .to("ops@example.com")
    ///     .text("orders: 1200 messages")
    ///     .html("<p>orders: <b>1200</b> messages</p>")
    ///     .attach("queues.csv", "text/csv", b"queue,messages\norders,1200\n".to_vec());
    /// let mime = String::from_utf8(email.to_mime().unwrap()).unwrap();
    /// assert!(mime.contains("filename=\"queues.csv\""));
    /// // In a monitor: email.send(&Aws::new("MONITORING"))?
    /// ```
    #[derive(Debug, Clone, Default)]
    pub struct Email {
        from: String,
        to: Vec<String>,
        cc: Vec<String>,
        subject: String,
        text: Option<String>,
        html: Option<String>,
        attachments: Vec<(String, String, Vec<u8>)>,
    }

    impl Email {
        /// An email from `from` (an address SES lets the credential send from).
        pub fn new(from: &str, subject: &str) -> Email {
            Email {
                from: from.to_owned(),
                subject: subject.to_owned(),
                ..Email::default()
            }
        }

        /// Adds a recipient.
        pub fn to(mut self, address: &str) -> Email {
            self.to.push(address.to_owned());
            self
        }

        /// Adds a copy recipient.
        pub fn cc(mut self, address: &str) -> Email {
            self.cc.push(address.to_owned());
            self
        }

        /// The plain-text part.
        pub fn text(mut self, body: &str) -> Email {
            self.text = Some(body.to_owned());
            self
        }

        /// The HTML part.
        pub fn html(mut self, body: &str) -> Email {
            self.html = Some(body.to_owned());
            self
        }

        /// Adds an attachment.
        pub fn attach(mut self, filename: &str, content_type: &str, content: Vec<u8>) -> Email {
            self.attachments
                .push((filename.to_owned(), content_type.to_owned(), content));
            self
        }

        /// The message as MIME (RFC 5322) bytes.
        pub fn to_mime(&self) -> Result<Vec<u8>> {
            if self.to.is_empty() && self.cc.is_empty() {
                return Err("an email needs a recipient".into());
            }
            let mut message = MessageBuilder::new()
                .from(self.from.as_str())
                .subject(self.subject.as_str());
            if !self.to.is_empty() {
                message = message.to(self.to.iter().map(String::as_str).collect::<Vec<_>>());
            }
            if !self.cc.is_empty() {
                message = message.cc(self.cc.iter().map(String::as_str).collect::<Vec<_>>());
            }
            if let Some(text) = &self.text {
                message = message.text_body(text.as_str());
            }
            if let Some(html) = &self.html {
                message = message.html_body(html.as_str());
            }
            for (filename, content_type, content) in &self.attachments {
                message = message.attachment(
                    content_type.as_str(),
                    filename.as_str(),
                    content.as_slice(),
                );
            }
            Ok(message.write_to_vec()?)
        }

        /// Sends it with SES `SendRawEmail`; returns SES's message id.
        pub fn send(&self, aws: &Aws) -> Result<String> {
            let data = base64::engine::general_purpose::STANDARD.encode(self.to_mime()?);
            let answer = aws.query("ses", "SendRawEmail", &[("RawMessage.Data", &data)])?;
            xml_text(&answer, "MessageId").ok_or_else(|| "SES answered without a MessageId".into())
        }
    }
}

/// Messages on the SQS queues of the config's `queues:` section granted to this monitor.
pub mod queue {
    use crate::Result;
    use crate::aws::describe;
    use crate::bindings::sentinela::plugin::queue as wit;
    pub use wit::Message;

    /// Sends `body`; returns the message id.
    pub fn send(queue: &str, body: &str) -> Result<String> {
        Ok(wit::send(queue, body).map_err(|e| describe(&e))?)
    }

    /// Receives up to `max` (1–10) messages, waiting up to `wait_seconds` (0–20).
    pub fn receive(queue: &str, max: u32, wait_seconds: u32) -> Result<Vec<Message>> {
        Ok(wit::receive(queue, max, wait_seconds).map_err(|e| describe(&e))?)
    }

    /// Deletes a received message.
    pub fn delete(queue: &str, message: &Message) -> Result<()> {
        Ok(wit::delete(queue, &message.receipt).map_err(|e| describe(&e))?)
    }

    /// Hides a received message for `seconds` more; 0 makes it visible again now.
    pub fn change_visibility(queue: &str, message: &Message, seconds: u32) -> Result<()> {
        Ok(wit::change_visibility(queue, &message.receipt, seconds).map_err(|e| describe(&e))?)
    }
}

/// Exports `T` as the component's monitor. Use [`export_monitor!`].
#[doc(hidden)]
pub struct Export<T>(PhantomData<T>);

type WitIssue = bindings::sentinela::plugin::types::Issue;

fn to_wit(issues: Vec<Issue>) -> Vec<WitIssue> {
    issues
        .into_iter()
        .map(|i| WitIssue {
            id: i.id,
            data: i.data.to_string(),
        })
        .collect()
}

fn from_wit(issue: WitIssue) -> Result<Issue, String> {
    let data = serde_json::from_str(&issue.data)
        .map_err(|e| format!("issue '{}' has invalid data: {e}", issue.id))?;
    Ok(Issue { id: issue.id, data })
}

impl<T: Monitor> wit::Guest for Export<T> {
    fn search() -> Result<Vec<WitIssue>, String> {
        T::search().map(to_wit).map_err(|e| e.to_string())
    }

    fn update(issues: Vec<WitIssue>) -> Result<Vec<WitIssue>, String> {
        let issues = issues
            .into_iter()
            .map(from_wit)
            .collect::<Result<Vec<_>, _>>()?;
        T::update(issues).map(to_wit).map_err(|e| e.to_string())
    }

    fn is_solved(issue: WitIssue) -> Result<bool, String> {
        T::is_solved(&from_wit(issue)?).map_err(|e| e.to_string())
    }

    fn handle(kind: MessageKind, payload: String) -> Result<(), String> {
        let payload =
            serde_json::from_str(&payload).map_err(|e| format!("invalid payload: {e}"))?;
        T::handle(kind, payload).map_err(|e| e.to_string())
    }
}

/// Makes `$monitor` (a type implementing [`Monitor`]) this component's monitor export.
#[macro_export]
macro_rules! export_monitor {
    ($monitor:ty) => {
        type __SentinelaMonitorExport = $crate::Export<$monitor>;
        $crate::bindings::export!(__SentinelaMonitorExport with_types_in $crate::bindings);
    };
}
