//! What a monitor may do through `aws-call`, and what no grant can ever allow.
//!
//! Deny by default: an AWS operation is allowed only by a `grants.aws` entry naming it
//! (`service:Operation`), its service (`service:*`) or, for a REST service, its HTTP method
//! (`s3:GET`), optionally scoped to resource ARN patterns. The operation checked is always
//! the one the request is, resolved from AWS's models before any grant is looked at. What an
//! operation answers decides the rest, read from the models' output shapes
//! ([`crate::aws::services::Holds`]):
//!
//! - operations whose answer holds AWS keys or another credential handed out (a private key,
//!   password, bearer token, client secret, API key value, plaintext data key) are never
//!   grantable: a monitor would hold credentials the host can no longer scope or audit.
//!   `check` refuses them naming the member; a call is `denied`.
//! - operations whose answer holds other members the models mark `sensitive` (`kms:Decrypt`'s
//!   Plaintext) are allowed only by an entry that names them, never by `*` or a method entry.
//! - reads of secret values ([`SECRET_READS`]): secrets have one path, the `secrets`
//!   interface, where they are declared per monitor, cached and audited.
//!
//! The host knows which resource a request names only for some services
//! ([`crate::aws::resources`] says which); an entry with `resources:` allows a request only
//! when every resource the request names matches one of its patterns, and never a request
//! whose resource the host cannot read.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer};
use serde_json::Value;

use crate::aws::services::{Holds, Service};
use crate::config::values::CredentialName;
use crate::providers::HostPlugin;

/// When a secret-reading operation reads a secret value.
#[derive(Debug, Clone, Copy)]
pub enum Reads {
    /// Always.
    Always,
    /// When this input field is `true`.
    WhenTrue(&'static str),
    /// Unless this input field is `true`.
    UnlessTrue(&'static str),
}

/// Operations that read secret values: through `aws-call` they would skip the monitor's
/// `secrets:` declarations, their cache and their audit. (service, operation, when).
pub const SECRET_READS: &[(&str, &str, Reads)] = &[
    ("secretsmanager", "GetSecretValue", Reads::Always),
    ("secretsmanager", "BatchGetSecretValue", Reads::Always),
    ("ssm", "GetParameter", Reads::WhenTrue("WithDecryption")),
    ("ssm", "GetParameters", Reads::WhenTrue("WithDecryption")),
    (
        "ssm",
        "GetParametersByPath",
        Reads::WhenTrue("WithDecryption"),
    ),
    (
        "ssm",
        "GetParameterHistory",
        Reads::WhenTrue("WithDecryption"),
    ),
    // Connection passwords, unless the caller asks for them hidden.
    ("glue", "GetConnection", Reads::UnlessTrue("HidePassword")),
    ("glue", "GetConnections", Reads::UnlessTrue("HidePassword")),
];

/// What the answer of `service:operation` holds, if it is key material or a bearer token,
/// and the member of the answer that holds it: read from AWS's models (the operation's
/// output shape), never from a list of ours.
pub fn mints_credentials(service: &str, operation: &str) -> Option<(&'static str, &'static str)> {
    match Service::find(service)?.answer(operation)? {
        (Holds::AwsKey, member) => Some(("AWS keys", member)),
        (Holds::Credential, member) => Some(("a credential", member)),
        (Holds::Sensitive, _) => None,
    }
}

/// The member of `service:operation`'s answer that AWS's models mark sensitive, if any (and
/// the operation is grantable): such an operation is granted by name only.
pub fn sensitive_answer(service: &str, operation: &str) -> Option<&'static str> {
    match Service::find(service)?.answer(operation)? {
        (Holds::Sensitive, member) => Some(member),
        _ => None,
    }
}

/// Whether `service:operation` with this JSON input reads a secret value.
pub fn reads_secret(service: &str, operation: &str, input: Option<&Value>) -> bool {
    let flag = |field: &str| input.and_then(|i| i.get(field)) == Some(&Value::Bool(true));
    SECRET_READS
        .iter()
        .find(|(s, op, _)| *s == service && *op == operation)
        .is_some_and(|(_, _, when)| match when {
            Reads::Always => true,
            Reads::WhenTrue(field) => flag(field),
            Reads::UnlessTrue(field) => !flag(field),
        })
}

/// Whether a grant entry for `service:operation` would be refused by `check`, and why.
fn refused_grant(service: &str, operation: &str) -> Option<String> {
    if SECRET_READS
        .iter()
        .any(|(s, op, when)| *s == service && *op == operation && matches!(when, Reads::Always))
    {
        return Some(format!(
            "{service}:{operation} reads secret values, which monitors get only through the \
             secrets interface: declare the secret under the monitor's 'secrets:' instead"
        ));
    }
    if let Some((what, member)) = mints_credentials(service, operation) {
        return Some(format!(
            "{service}:{operation} answers with {what} (its answer's {member}, per AWS's model) \
             and can never be granted to a monitor"
        ));
    }
    None
}

/// A resource ARN pattern: `*` matches any run of characters (`:` and `/` included) and `?`
/// one character, as in IAM policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePattern(String);

impl ResourcePattern {
    /// Accepts `*` or an ARN pattern (at least six `:`-separated parts), up to 2048 bytes, without
    /// control characters.
    pub fn parse(raw: &str) -> Result<ResourcePattern, String> {
        let parts = raw.split(':').count();
        if raw != "*" && !(raw.starts_with("arn:") && parts >= 6) {
            return Err(format!(
                "invalid resource pattern '{raw}': expected an ARN such as \
                 'arn:aws:sqs:*:*:orders-*' (arn:partition:service:region:account:resource)"
            ));
        }
        if raw.len() > 2048 || raw.chars().any(char::is_control) {
            return Err(format!("invalid resource pattern '{raw}'"));
        }
        Ok(ResourcePattern(raw.to_owned()))
    }

    /// IAM's wildcard match, in time linear in `pattern × text` at worst (no backtracking
    /// explosion on `*a*a*a…`).
    pub fn matches(&self, text: &str) -> bool {
        let (p, t): (Vec<char>, Vec<char>) = (self.0.chars().collect(), text.chars().collect());
        let (mut pi, mut ti) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while ti < t.len() {
            // A `*` of the pattern is always a wildcard, even facing a `*` of the text.
            if pi < p.len() && p[pi] == '*' {
                star = Some((pi, ti));
                pi += 1;
            } else if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
                pi += 1;
                ti += 1;
            } else if let Some((sp, st)) = star {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            } else {
                return false;
            }
        }
        p[pi..].iter().all(|&c| c == '*')
    }
}

impl fmt::Display for ResourcePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The HTTP methods a REST grant may name instead of an operation (`s3:GET`).
pub const REST_METHODS: &[&str] = &["GET", "HEAD", "PUT", "POST", "DELETE", "PATCH"];

/// One `grants.aws` entry: `"service:Operation"`, `"service:*"`, or
/// `{op: "service:Operation", resources: ["arn:…", …]}`.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsOperationGrant {
    /// The service name, lower-cased (`sqs`, `cloudwatch`, ...).
    pub service: String,
    /// `None` grants every operation of the service (never a credential-minting one).
    pub operation: Option<String>,
    /// Empty: every resource, and requests whose resource the host cannot read.
    pub resources: Vec<ResourcePattern>,
}

impl AwsOperationGrant {
    /// Parses the string form (`service:Operation`, `service:*`, or for a REST service
    /// `service:METHOD` and `service:presign:Operation`), with no resources. Refuses services
    /// and operations AWS's models do not have, naming the closest ones, and operations that
    /// may never be granted (they mint credentials or read secrets).
    pub fn parse(raw: &str) -> Result<AwsOperationGrant, String> {
        let invalid = || {
            format!(
                "invalid aws grant '{}', expected 'service:Operation' or 'service:*'",
                crate::audit::shorten(raw)
            )
        };
        let (service, operation) = raw.split_once(':').ok_or_else(invalid)?;
        let word =
            |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        let (presign, name) = match operation.strip_prefix("presign:") {
            Some(name) => (true, name),
            None => (false, operation),
        };
        if !word(service) || !(name == "*" || word(name)) {
            return Err(invalid());
        }
        let service = service.to_ascii_lowercase();
        let modelled = Service::find(&service)
            .ok_or_else(|| format!("invalid aws grant '{raw}': {}", Service::unknown(&service)))?;
        if presign && !modelled.is_rest() {
            return Err(format!(
                "invalid aws grant '{raw}': only REST services' requests are presigned, and \
                 {service} is called with aws-call.{}",
                modelled.protocol.function()
            ));
        }
        if let Some(why) = refused_grant(&service, name) {
            return Err(format!("invalid aws grant '{raw}': {why}"));
        }
        let is_method = modelled.is_rest() && REST_METHODS.contains(&name);
        if name != "*" && !is_method && modelled.operation(name).is_none() {
            return Err(format!(
                "invalid aws grant '{raw}': {}",
                modelled.unknown_operation(name)
            ));
        }
        Ok(AwsOperationGrant {
            service,
            operation: (operation != "*").then(|| operation.to_owned()),
            resources: Vec::new(),
        })
    }

    /// Whether this entry allows `operation` of `service` (an operation of its model,
    /// `presign:` before it for a presigned URL). An entry that names the operation allows
    /// it; `*` and a method entry (`s3:GET`) stand for the operations they expand to, never
    /// one whose answer holds credentials or members the model marks sensitive; presigned
    /// URLs are allowed only by `presign:` entries.
    pub fn covers(&self, service: &Service, operation: &str) -> bool {
        if self.service != service.name {
            return false;
        }
        let (presign, name) = match operation.strip_prefix("presign:") {
            Some(name) => (true, name),
            None => (false, operation),
        };
        let (entry_presign, entry) = match self.operation.as_deref() {
            None => (false, "*"),
            Some(op) => match op.strip_prefix("presign:") {
                Some(op) => (true, op),
                None => (false, op),
            },
        };
        if presign != entry_presign {
            return false;
        }
        if entry == name {
            return true;
        }
        let expands = entry == "*"
            || (REST_METHODS.contains(&entry) && service.method_of(name) == Some(entry));
        expands && service.answer(name).is_none()
    }
}

impl AwsOperationGrant {
    /// For an entry that names an operation whose answer holds a member AWS's model marks
    /// sensitive: what the operator grants with it (`check` prints it).
    pub fn sensitive_note(&self) -> Option<String> {
        let operation = self.operation.as_deref()?;
        let name = operation.strip_prefix("presign:").unwrap_or(operation);
        let member = sensitive_answer(&self.service, name)?;
        Some(format!(
            "{}:{operation} returns {member}, which AWS's model marks sensitive: the monitor \
             receives it",
            self.service
        ))
    }
}

impl<'de> Deserialize<'de> for AwsOperationGrant {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Scoped(Scoped),
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Scoped {
            op: String,
            #[serde(default)]
            resources: Option<Vec<String>>,
        }
        let raw = Raw::deserialize(deserializer).map_err(|_| {
            de::Error::custom(
                "invalid aws grant: expected 'service:Operation', 'service:*' or \
                 {op: 'service:Operation', resources: ['arn:…']}",
            )
        })?;
        match raw {
            Raw::Text(text) => AwsOperationGrant::parse(&text).map_err(de::Error::custom),
            Raw::Scoped(scoped) => {
                let mut grant = AwsOperationGrant::parse(&scoped.op).map_err(de::Error::custom)?;
                let resources = scoped.resources.unwrap_or_default();
                if resources.is_empty() {
                    return Err(de::Error::custom(format!(
                        "aws grant '{}' has an empty 'resources' list, which would allow \
                         nothing; omit 'resources' to grant every resource",
                        scoped.op
                    )));
                }
                grant.resources = resources
                    .iter()
                    .map(|r| ResourcePattern::parse(r))
                    .collect::<Result<_, _>>()
                    .map_err(de::Error::custom)?;
                Ok(grant)
            }
        }
    }
}

impl fmt::Display for AwsOperationGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}",
            self.service,
            self.operation.as_deref().unwrap_or("*")
        )?;
        if !self.resources.is_empty() {
            let patterns: Vec<String> = self.resources.iter().map(|r| r.to_string()).collect();
            write!(f, " on [{}]", patterns.join(", "))?;
        }
        Ok(())
    }
}

/// The resources one request acts on, as far as the host can read them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestResources {
    /// The host cannot tell (no resource in the request, or one it does not read).
    Unknown,
    /// Every resource the request names, as ARNs (fields the host cannot know, such as the
    /// account of a DynamoDB table given by name, are empty).
    Known(Vec<String>),
}

impl RequestResources {
    /// For the audit log: the first resource, if known.
    pub fn first(&self) -> Option<&str> {
        match self {
            RequestResources::Known(list) => list.first().map(String::as_str),
            RequestResources::Unknown => None,
        }
    }
}

/// Why a request is not allowed; the text goes to the guest and the host log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Key material or a bearer token: no grant allows it.
    MintsCredentials(String),
    /// A secret read: use `secrets`.
    SecretRead(String),
    /// No entry names the operation; the grant to add.
    NotGranted(String),
    /// Entries name it, but for other resources.
    OutsideResources(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::MintsCredentials(m)
            | Refusal::SecretRead(m)
            | Refusal::NotGranted(m)
            | Refusal::OutsideResources(m) => f.write_str(m),
        }
    }
}

/// Decides whether `monitor`'s `grants.aws` allow `service:operation` on `resources`.
/// `input` is the JSON input, when the protocol has one (it decides some secret reads).
pub fn authorize(
    monitor: &str,
    grants: &[AwsOperationGrant],
    modelled: &Service,
    operation: &str,
    input: Option<&Value>,
    resources: &RequestResources,
) -> Result<(), Refusal> {
    let service = modelled.name;
    let name = operation.strip_prefix("presign:").unwrap_or(operation);
    if reads_secret(service, name, input) {
        return Err(Refusal::SecretRead(format!(
            "{service}:{operation} reads a secret value; declare the secret in the 'secrets:' \
             of monitor '{monitor}' and read it with secrets.get"
        )));
    }
    if let Some((what, _)) = mints_credentials(service, name) {
        return Err(Refusal::MintsCredentials(format!(
            "{service}:{operation} answers with {what}; no grant allows it, because monitors \
             never hold key material or bearer tokens"
        )));
    }
    let entries: Vec<&AwsOperationGrant> = grants
        .iter()
        .filter(|g| g.covers(modelled, operation))
        .collect();
    if entries.is_empty() {
        let by_name = match sensitive_answer(service, name) {
            Some(member) => format!(
                " (its answer's {member} is marked sensitive in AWS's model, so only an entry \
                 naming the operation allows it)"
            ),
            None => String::new(),
        };
        return Err(Refusal::NotGranted(format!(
            "{service}:{operation} is not granted to monitor '{monitor}': add \
             \"{service}:{operation}\" to its grants.aws{by_name}"
        )));
    }
    if entries.iter().any(|g| g.resources.is_empty()) {
        return Ok(());
    }
    let RequestResources::Known(named) = resources else {
        return Err(Refusal::OutsideResources(format!(
            "{service}:{operation} is granted to monitor '{monitor}' for some resources only, \
             and the host cannot tell which resource this request acts on; such a request \
             needs a grants.aws entry without 'resources'"
        )));
    };
    for resource in named {
        let allowed = entries
            .iter()
            .any(|g| g.resources.iter().any(|p| p.matches(resource)));
        if !allowed {
            return Err(Refusal::OutsideResources(format!(
                "{service}:{operation} on '{resource}' is outside the resources granted to \
                 monitor '{monitor}'"
            )));
        }
    }
    Ok(())
}

/// Environment variables an `env:` secret may never name: the host reads credentials or its
/// database URL from them. `store_url_env` is the configured `store.url_env`.
pub fn host_secret_variable(var: &str, store_url_env: &str) -> Option<&'static str> {
    let upper = var.to_ascii_uppercase();
    let credential_suffixes = [
        "ACCESS_KEY_ID",
        "SECRET_ACCESS_KEY",
        "SESSION_TOKEN",
        "SECURITY_TOKEN",
    ];
    if upper.starts_with("AWS_") && credential_suffixes.iter().any(|s| upper.ends_with(s)) {
        return Some("the host reads AWS credentials from it");
    }
    if upper.starts_with("AWS_CONTAINER_") || upper == "AWS_WEB_IDENTITY_TOKEN_FILE" {
        return Some("the AWS SDK reads credentials through it");
    }
    if upper == "SENTINELA_DATABASE_URL" || var == store_url_env {
        return Some("the host reads its database URL (with its password) from it");
    }
    None
}

/// What a monitor may use beyond `log`. Everything not listed is denied.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// Credential names for `aws-call` (host plugin `aws`). Never `APPLICATION`.
    #[serde(default)]
    pub credentials: Vec<CredentialName>,
    /// The `aws-call` operations allowed: `service:Operation`, `service:*`, or
    /// `{op, resources}`. Empty: none (deny by default).
    #[serde(default)]
    pub aws: Vec<AwsOperationGrant>,
    /// Names from the `queues:` section this monitor may use through the `queue` interface.
    #[serde(default)]
    pub queues: Vec<String>,
}

impl Grants {
    /// The host plugin these grants need, if any.
    pub fn required_host_plugin(&self) -> Option<HostPlugin> {
        (!self.credentials.is_empty() || !self.aws.is_empty() || !self.queues.is_empty())
            .then_some(HostPlugin::Aws)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(raw: &str) -> AwsOperationGrant {
        AwsOperationGrant::parse(raw).unwrap()
    }

    fn scoped(op: &str, resources: &[&str]) -> AwsOperationGrant {
        AwsOperationGrant {
            resources: resources
                .iter()
                .map(|r| ResourcePattern::parse(r).unwrap())
                .collect(),
            ..grant(op)
        }
    }

    fn service(name: &str) -> &'static Service {
        Service::find(name).unwrap()
    }

    #[test]
    fn deny_by_default() {
        let none = authorize(
            "m",
            &[],
            service("sqs"),
            "ListQueues",
            None,
            &RequestResources::Unknown,
        );
        assert!(
            matches!(&none, Err(Refusal::NotGranted(m)) if m.contains("add \"sqs:ListQueues\"")),
            "{none:?}"
        );
        let ok = authorize(
            "m",
            &[grant("sqs:*")],
            service("sqs"),
            "ListQueues",
            None,
            &RequestResources::Unknown,
        );
        assert_eq!(ok, Ok(()));
    }

    /// Every operation whose answer the models say holds an AWS secret key or session token
    /// (or another credential handed out) is refused by name, by `*`, by a method entry and at
    /// call time.
    #[test]
    fn credential_answers_are_never_granted() {
        let mut aws_keys = 0;
        for modelled in Service::all() {
            for (op, holds, member) in modelled.answers {
                if *holds == Holds::Sensitive {
                    continue;
                }
                if *holds == Holds::AwsKey
                    && !["states", "elasticloadbalancing"].contains(&modelled.name)
                {
                    aws_keys += 1;
                }
                let name = modelled.name;
                let refused = AwsOperationGrant::parse(&format!("{name}:{op}")).unwrap_err();
                assert!(
                    refused.contains(member) || refused.contains("secrets"),
                    "{refused}"
                );
                let star = grant(&format!("{name}:*"));
                assert!(!star.covers(modelled, op), "{name}:* covered {op}");
                if let Some(method) = modelled.method_of(op) {
                    let by_method = grant(&format!("{name}:{method}"));
                    assert!(
                        !by_method.covers(modelled, op),
                        "{name}:{method} covered {op}"
                    );
                }
                let at_call =
                    authorize("m", &[star], modelled, op, None, &RequestResources::Unknown);
                assert!(
                    matches!(
                        at_call,
                        Err(Refusal::MintsCredentials(_) | Refusal::SecretRead(_))
                    ),
                    "{name}:{op}: {at_call:?}"
                );
            }
        }
        // botocore 1.44.8: 40 operations of the generated services answer with an AWS
        // secret key or session token (see docs/security.md).
        assert!(aws_keys >= 37, "{aws_keys}");
        for (service, op) in [
            ("sts", "AssumeRole"),
            ("sts", "GetSessionToken"),
            ("s3", "CreateSession"),
            ("codeartifact", "GetAuthorizationToken"),
            ("ecr", "GetAuthorizationToken"),
            ("iot", "CreateKeysAndCertificate"),
            ("kms", "GenerateDataKey"),
            ("kms", "GenerateDataKeyPair"),
            ("ec2", "GetPasswordData"),
            ("ec2", "CreateKeyPair"),
            ("ssm", "StartSession"),
            ("ssm", "GetAccessToken"),
            ("sso", "GetRoleCredentials"),
            ("sso-oidc", "CreateToken"),
            ("quicksight", "GenerateEmbedUrlForAnonymousUser"),
            ("apigateway", "GetApiKey"),
            ("cognito-idp", "DescribeUserPoolClient"),
        ] {
            assert!(mints_credentials(service, op).is_some(), "{service}:{op}");
        }
        assert!(AwsOperationGrant::parse("sts:GetCallerIdentity").is_ok());
    }

    #[test]
    fn sensitive_answers_are_granted_by_name_only() {
        let kms = service("kms");
        assert_eq!(sensitive_answer("kms", "Decrypt"), Some("Plaintext"));
        assert!(!grant("kms:*").covers(kms, "Decrypt"));
        assert!(grant("kms:Decrypt").covers(kms, "Decrypt"));
        assert!(grant("kms:*").covers(kms, "ListKeys"));
        let refused = authorize(
            "m",
            &[grant("kms:*")],
            kms,
            "Decrypt",
            None,
            &RequestResources::Unknown,
        );
        assert!(
            matches!(&refused, Err(Refusal::NotGranted(m)) if m.contains("sensitive")),
            "{refused:?}"
        );
        let s3 = service("s3");
        assert!(grant("s3:GET").covers(s3, "ListObjectsV2"));
        assert!(!grant("s3:GET").covers(s3, "DeleteObject"));
        // GetObject's answer holds SSEKMSKeyId, which the model marks sensitive.
        assert_eq!(sensitive_answer("s3", "GetObject"), Some("SSEKMSKeyId"));
        assert!(!grant("s3:GET").covers(s3, "GetObject"));
        assert!(grant("s3:GetObject").covers(s3, "GetObject"));
        assert!(!grant("s3:GET").covers(s3, "presign:ListObjectsV2"));
        assert!(grant("s3:presign:GET").covers(s3, "presign:ListObjectsV2"));
        assert!(grant("s3:presign:*").covers(s3, "presign:ListObjectsV2"));
        assert!(!grant("s3:presign:*").covers(s3, "presign:GetObject"));
        assert!(grant("s3:presign:GetObject").covers(s3, "presign:GetObject"));
        assert!(!grant("s3:presign:*").covers(s3, "ListObjectsV2"));
    }

    #[test]
    fn secret_reads_go_through_secrets() {
        assert!(AwsOperationGrant::parse("secretsmanager:GetSecretValue").is_err());
        let grants = [grant("ssm:GetParameter"), grant("secretsmanager:*")];
        let decrypt = serde_json::json!({"Name": "x", "WithDecryption": true});
        let plain = serde_json::json!({"Name": "x"});
        let unknown = &RequestResources::Unknown;
        let ssm = service("ssm");
        let read = |op: &str, input: &Value| authorize("m", &grants, ssm, op, Some(input), unknown);
        assert!(matches!(
            read("GetParameter", &decrypt),
            Err(Refusal::SecretRead(_))
        ));
        assert!(matches!(
            read("GetParameters", &decrypt),
            Err(Refusal::SecretRead(_))
        ));
        assert_eq!(read("GetParameter", &plain), Ok(()));
        let secret = authorize(
            "m",
            &grants,
            service("secretsmanager"),
            "GetSecretValue",
            Some(&plain),
            unknown,
        );
        assert!(matches!(secret, Err(Refusal::SecretRead(_))));
    }

    #[test]
    fn resource_scoped_grants() {
        let grants = [scoped(
            "sqs:GetQueueAttributes",
            &["arn:aws:sqs:*:*:orders-*"],
        )];
        let check = |resources: RequestResources| {
            authorize(
                "m",
                &grants,
                service("sqs"),
                "GetQueueAttributes",
                None,
                &resources,
            )
        };
        let known = |arn: &str| RequestResources::Known(vec![arn.to_owned()]);
        assert_eq!(
            check(known("arn:aws:sqs:us-east-1:123456789012:orders-eu")),
            Ok(())
        );
        assert!(matches!(
            check(known("arn:aws:sqs:us-east-1:123456789012:payments")),
            Err(Refusal::OutsideResources(_))
        ));
        assert!(matches!(
            check(RequestResources::Unknown),
            Err(Refusal::OutsideResources(_))
        ));
        let two = RequestResources::Known(vec![
            "arn:aws:sqs:us-east-1:1:orders-a".into(),
            "arn:aws:sqs:us-east-1:1:payments".into(),
        ]);
        assert!(check(two).is_err(), "every named resource must be granted");
    }

    #[test]
    fn wildcards_match_like_iam() {
        let p = |s: &str| ResourcePattern::parse(s).unwrap();
        assert!(p("arn:aws:s3:::bucket/*").matches("arn:aws:s3:::bucket/a/b"));
        assert!(!p("arn:aws:s3:::bucket/*").matches("arn:aws:s3:::bucket2/a"));
        assert!(p("arn:aws:sqs:us-east-?:*:q").matches("arn:aws:sqs:us-east-1:1:q"));
        assert!(p("*").matches(""));
        // A `*` of the pattern facing a `*` of the resource is still a wildcard (found by the
        // arn_pattern fuzz target: the pattern `*` did not match `*X`).
        assert!(p("*").matches("*X"));
        assert!(p("arn:aws:s3:::b/*").matches("arn:aws:s3:::b/*secret"));
        assert!(!p("arn:aws:sqs:*:*:q").matches("arn:aws:sqs:*:*:q2"));
        let long = format!("arn:aws:s3:::{}", "a".repeat(2000));
        assert!(!p("arn:aws:s3:::*a*a*a*a*a*a*a*a*b").matches(&long));
        assert!(ResourcePattern::parse("orders").is_err());
        assert!(ResourcePattern::parse("arn:aws:sqs").is_err());
    }

    #[test]
    fn host_variables_are_not_env_secrets() {
        for var in [
            "AWS_APPLICATION_SECRET_ACCESS_KEY",
            "AWS_MONITORING_ACCESS_KEY_ID",
            "AWS_X_SESSION_TOKEN",
            "AWS_SECRET_ACCESS_KEY",
            "aws_monitoring_secret_access_key",
            "SENTINELA_DATABASE_URL",
            "MY_DB_URL",
        ] {
            assert!(host_secret_variable(var, "MY_DB_URL").is_some(), "{var}");
        }
        assert!(host_secret_variable("SLACK_TOKEN", "SENTINELA_DATABASE_URL").is_none());
        assert!(host_secret_variable("AWS_MONITORING_REGION", "X").is_none());
    }
}
