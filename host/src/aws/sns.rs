//! SNS message signature verification (`aws-call.verify-sns-message`): a monitor that reads
//! SNS messages (from an SQS subscription, or relayed from an HTTP endpoint) can tell a
//! message SNS signed from a forged one, without network access of its own.
//!
//! The signature is checked as AWS documents it: the message's fields in a fixed order make
//! the string to sign; `SignatureVersion` 1 is SHA1withRSA, 2 is SHA256withRSA; the key is
//! the certificate at `SigningCertURL`, which must be an `https://sns.<region>.<partition
//! suffix>/….pem` URL of a known region (TLS to that host vouches for it). Certificates are
//! fetched once and kept, at most [`MAX_CERTIFICATES`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_lc_rs::signature::{self, UnparsedPublicKey};
use http::Uri;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::Value;

use super::services::{Service, Variant};
use super::transport::{Transport, TransportError};

/// The largest message accepted (SNS messages are at most 256 KiB, plus the envelope).
pub const MAX_MESSAGE_BYTES: usize = 512 << 10;
/// The largest certificate read.
pub const MAX_CERTIFICATE_BYTES: usize = 64 << 10;
/// Certificates kept; past it the cache starts again (SNS uses a handful).
pub const MAX_CERTIFICATES: usize = 64;

/// Why a message could not be checked (a signature that does not match is `Ok(false)`).
#[derive(Debug, thiserror::Error)]
pub enum SnsError {
    /// The message, or its certificate URL, is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// The certificate could not be fetched or read.
    #[error("signing certificate: {0}")]
    Certificate(TransportError),
}

/// Signing certificates' public keys, by URL.
#[derive(Default)]
pub struct SnsVerifier {
    keys: Mutex<HashMap<String, Arc<[u8]>>>,
}

/// What an SNS message says of its signature, read without the network: checked against the
/// certificate's key by [`SnsVerifier::verify`].
pub struct SignedMessage {
    algorithm: &'static dyn signature::VerificationAlgorithm,
    /// The message's fields SNS signed, in AWS's order.
    pub string_to_sign: String,
    /// The decoded `Signature`.
    pub signature: Vec<u8>,
    /// `SigningCertURL` as written (the key cache's key).
    pub certificate_url: String,
    /// The same URL, checked to be one of SNS's.
    pub certificate: Uri,
}

impl SignedMessage {
    /// Reads `message` (SNS's JSON): size, signature version, the string to sign, the
    /// signature and the certificate URL.
    pub fn parse(message: &str) -> Result<SignedMessage, SnsError> {
        let invalid = |why: &str| SnsError::Invalid(why.to_owned());
        if message.len() > MAX_MESSAGE_BYTES {
            return Err(SnsError::Invalid(format!(
                "message of {} bytes is over the {MAX_MESSAGE_BYTES} byte cap",
                message.len()
            )));
        }
        let fields: Value =
            serde_json::from_str(message).map_err(|_| invalid("the message is not JSON"))?;
        let field = |name: &str| fields.get(name).and_then(Value::as_str);
        let algorithm: &'static dyn signature::VerificationAlgorithm =
            match field("SignatureVersion") {
                Some("1") => &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
                Some("2") => &signature::RSA_PKCS1_2048_8192_SHA256,
                _ => return Err(invalid("SignatureVersion must be \"1\" or \"2\"")),
            };
        let string_to_sign = string_to_sign(&fields)?;
        let signature = field("Signature")
            .and_then(|s| aws_smithy_types::base64::decode(s).ok())
            .ok_or_else(|| invalid("Signature is missing or not base64"))?;
        let url = field("SigningCertURL")
            .or_else(|| field("SigningCertUrl"))
            .ok_or_else(|| invalid("SigningCertURL is missing"))?;
        Ok(SignedMessage {
            algorithm,
            string_to_sign,
            signature,
            certificate: certificate_url(url)?,
            certificate_url: url.to_owned(),
        })
    }
}

impl SnsVerifier {
    /// Whether `message` (SNS's JSON) carries a valid SNS signature.
    pub async fn verify(&self, transport: &Transport, message: &str) -> Result<bool, SnsError> {
        let message = SignedMessage::parse(message)?;
        let key = self.public_key(transport, &message).await?;
        Ok(UnparsedPublicKey::new(message.algorithm, &*key)
            .verify(message.string_to_sign.as_bytes(), &message.signature)
            .is_ok())
    }

    async fn public_key(
        &self,
        transport: &Transport,
        message: &SignedMessage,
    ) -> Result<Arc<[u8]>, SnsError> {
        let (url, uri) = (&message.certificate_url, &message.certificate);
        if let Some(key) = self.keys.lock().unwrap().get(url) {
            return Ok(key.clone());
        }
        let pem = transport
            .get_unsigned(uri, MAX_CERTIFICATE_BYTES)
            .await
            .map_err(SnsError::Certificate)?;
        let unreadable = |what: &str| {
            SnsError::Certificate(TransportError::Invalid(format!("{url} is not {what}")))
        };
        let der =
            CertificateDer::from_pem_slice(&pem).map_err(|_| unreadable("a PEM certificate"))?;
        let cert = webpki::EndEntityCert::try_from(&der)
            .map_err(|_| unreadable("an X.509 certificate"))?;
        let key: Arc<[u8]> = cert.subject_public_key_info().as_ref().into();
        let mut keys = self.keys.lock().unwrap();
        if keys.len() >= MAX_CERTIFICATES {
            keys.clear();
        }
        keys.insert(url.clone(), key.clone());
        Ok(key)
    }
}

/// The fields SNS signs, in order, as `Name\nvalue\n` (AWS's "Verifying the signatures of
/// Amazon SNS messages").
fn string_to_sign(fields: &Value) -> Result<String, SnsError> {
    let kind = fields.get("Type").and_then(Value::as_str);
    let names: &[&str] = match kind {
        Some("Notification") => &[
            "Message",
            "MessageId",
            "Subject",
            "Timestamp",
            "TopicArn",
            "Type",
        ],
        Some("SubscriptionConfirmation" | "UnsubscribeConfirmation") => &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ],
        _ => {
            return Err(SnsError::Invalid(
                "Type must be Notification, SubscriptionConfirmation or UnsubscribeConfirmation"
                    .into(),
            ));
        }
    };
    let mut signed = String::new();
    for name in names {
        match fields.get(*name).and_then(Value::as_str) {
            Some(value) => {
                signed.push_str(name);
                signed.push('\n');
                signed.push_str(value);
                signed.push('\n');
            }
            // A notification's subject is optional; every other field is signed.
            None if *name == "Subject" => {}
            None => return Err(SnsError::Invalid(format!("{name} is missing"))),
        }
    }
    Ok(signed)
}

/// `url`, if it is an SNS signing certificate's: `https://sns.<region>.<suffix>/….pem`, the
/// host being SNS's endpoint in that region's partition, no port, user or query.
pub fn certificate_url(url: &str) -> Result<Uri, SnsError> {
    let refused = || {
        SnsError::Invalid(format!(
            "SigningCertURL '{}' is not an https://sns.<region>.amazonaws.com/….pem URL",
            crate::audit::shorten(url)
        ))
    };
    let uri: Uri = url.parse().map_err(|_| refused())?;
    let authority = uri.authority().ok_or_else(refused)?;
    let path = uri.path();
    if uri.scheme_str() != Some("https")
        || authority.port().is_some()
        || authority.as_str().contains('@')
        || uri.query().is_some()
        || !path.ends_with(".pem")
        || path.contains("..")
    {
        return Err(refused());
    }
    let host = authority.host();
    let region = host
        .strip_prefix("sns.")
        .and_then(|rest| rest.split('.').next())
        .ok_or_else(refused)?;
    let sns = Service::find("sns").ok_or_else(refused)?;
    match sns.endpoint(region, Variant::Plain) {
        Ok(endpoint) if endpoint.url == format!("https://{host}") => Ok(uri),
        _ => Err(refused()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sns_certificate_urls_are_fetched() {
        for ok in [
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem",
            "https://sns.us-gov-west-1.amazonaws.com/x.pem",
        ] {
            assert!(certificate_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com.evil.example/x.pem",
            "https://evil.example/sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.evil-1.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com:8443/x.pem",
            "https://user@sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com/x.pem?y=1",
            "https://sns.us-east-1.amazonaws.com/x.txt",
            "https://sqs.us-east-1.amazonaws.com/x.pem",
            "https://sns.cn-north-1.amazonaws.com/x.pem",
            "not a url",
        ] {
            assert!(certificate_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_string_to_sign_follows_aws_order() {
        let message: Value = serde_json::from_str(
            r#"{"Type":"Notification","MessageId":"m","TopicArn":"t","Message":"hi",
                "Timestamp":"ts","SignatureVersion":"1"}"#,
        )
        .unwrap();
        assert_eq!(
            string_to_sign(&message).unwrap(),
            "Message\nhi\nMessageId\nm\nTimestamp\nts\nTopicArn\nt\nType\nNotification\n"
        );
        let unsigned: Value = serde_json::from_str(r#"{"Type":"Notification"}"#).unwrap();
        assert!(string_to_sign(&unsigned).is_err());
    }
}
