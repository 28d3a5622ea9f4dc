//! Defence in depth on what AWS answers: whatever the grants and the models say, an answer
//! that carries a credential-shaped member — an AWS secret access key or session token (as a
//! JSON key or an XML element, in AWS's spellings), or a PEM private key — is never handed to
//! a monitor. The call fails with `denied` and its audit event names the member; nothing of
//! the answer reaches the guest or the log.

use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

/// The members looked for, as the answer spells them (ASCII case ignored), and what each is.
const MEMBERS: &[(&str, &str)] = &[
    ("\"secretaccesskey\"", "SecretAccessKey"),
    ("<secretaccesskey>", "SecretAccessKey"),
    ("\"secret_access_key\"", "SecretAccessKey"),
    ("\"secretkey\"", "SecretKey"),
    ("<secretkey>", "SecretKey"),
    ("\"sessiontoken\"", "SessionToken"),
    ("<sessiontoken>", "SessionToken"),
    ("\"session_token\"", "SessionToken"),
    ("private key-----", "a PEM private key"),
];

static SCANNER: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::LeftmostFirst)
        .build(MEMBERS.iter().map(|(pattern, _)| pattern))
        .expect("fixed patterns build")
});

/// The credential-shaped member `body` holds, if any. Linear in the body, which the transport
/// already capped (`max_response_bytes`).
pub fn credential_in(body: &[u8]) -> Option<&'static str> {
    SCANNER
        .find(body)
        .map(|m| MEMBERS[m.pattern().as_usize()].1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_shaped_members_are_found() {
        for body in [
            r#"{"Credentials": {"AccessKeyId": "A", "SecretAccessKey": "s"}}"#,
            r#"{"credentials":{"secretAccessKey":"s"}}"#,
            "<Credentials><SessionToken>t</SessionToken></Credentials>",
            r#"{"Credentials":{"SecretKey":"s"}}"#,
            "-----BEGIN RSA PRIVATE KEY-----\nMIIE...",
            "-----BEGIN OPENSSH PRIVATE KEY-----",
            r#"{"session_token": "x"}"#,
        ] {
            assert!(credential_in(body.as_bytes()).is_some(), "{body}");
        }
        for body in [
            r#"{"QueueUrls": ["https://q"]}"#,
            "<ListMetricsResult/>",
            r#"{"NextToken": "abc", "AccessKeyId": "AKIA..."}"#,
            "-----BEGIN CERTIFICATE-----",
        ] {
            assert_eq!(credential_in(body.as_bytes()), None, "{body}");
        }
    }
}
