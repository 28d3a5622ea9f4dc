//! What a guest's `aws-call` request may carry, checked before anything is encoded, signed
//! or sent: operation names of the model, REST paths that stay on the endpoint, headers the
//! host leaves to the guest, and a REST request's query keys, headers and JSON body against
//! its operation's input shape.

use http::{HeaderName, HeaderValue};

use crate::audit::shorten;
use crate::aws::services::{Protocol, Service, valid_operation};
use crate::aws::shapes::{self, Location};
use crate::aws::transport;
use crate::bindings::sentinela::plugin::types::Error;

use super::super::guest_error::guest_error;

/// An operation or action name as AWS's API references write them.
pub(super) fn checked_operation(operation: &str) -> Result<(), Error> {
    if valid_operation(operation) {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "invalid operation name '{}'",
            shorten(operation)
        )))
    }
}

/// An operation of the service's model, by its exact name: nothing else is sent or checked.
pub(super) fn modelled_operation(service: &Service, operation: &str) -> Result<(), Error> {
    checked_operation(operation)?;
    if service.has_operation(operation) {
        Ok(())
    } else {
        Err(Error::Invalid(service.unknown_operation(operation)))
    }
}

pub(super) fn invalid_input(service: &Service, operation: &str, why: String) -> Error {
    Error::Invalid(format!(
        "{}:{operation}: {why}; nothing was sent",
        service.name
    ))
}

/// Headers a REST request may carry beyond its operation's header members: how the body is
/// encoded and what answer is wanted.
const GENERIC_HEADERS: &[&str] = &["content-type", "accept"];

/// Checks a REST request's query keys, headers and (JSON) body against its operation's input
/// shape: a key, header or member the operation does not have is refused, as is a query
/// parameter SigV4 itself uses (`X-Amz-Expires`, `X-Amz-Date`...), which only the host sets.
pub(super) fn check_rest_input(
    service: &Service,
    operation: &str,
    query: &[(String, String)],
    headers: &[(HeaderName, HeaderValue)],
    body: &[u8],
) -> Result<(), Error> {
    let model = service.input_model();
    let members = model.input(operation);
    let invalid = |why: String| Err(invalid_input(service, operation, why));
    let mut keys: Vec<&str> = query.iter().map(|(k, _)| k.as_str()).collect();
    keys.sort_unstable();
    if let Some(pair) = keys.windows(2).find(|pair| pair[0] == pair[1]) {
        return invalid(format!(
            "query parameter '{}' is given more than once",
            shorten(pair[0])
        ));
    }
    let route_keys = service.route_query_keys(operation);
    // A map in the query takes any parameter (API Gateway's, S3's none).
    let free_query = members
        .iter()
        .any(|m| m.location == Location::Query && model_is_map(model, m));
    for key in keys {
        if key.len() >= 6 && key[..6].eq_ignore_ascii_case("x-amz-") {
            return Err(Error::Denied(format!(
                "query parameter '{}' belongs to the host's signature",
                shorten(key)
            )));
        }
        let known = route_keys.contains(&key)
            || members
                .iter()
                .any(|m| m.location == Location::Query && m.wire == key);
        if !known && !free_query {
            return invalid(format!(
                "query parameter '{}' is not a member of the operation's input",
                shorten(key)
            ));
        }
    }
    for (name, _) in headers {
        let name = name.as_str();
        let known = GENERIC_HEADERS.contains(&name)
            || members.iter().any(|m| match m.location {
                Location::Header => m.wire.eq_ignore_ascii_case(name),
                Location::HeaderPrefix => {
                    name.len() >= m.wire.len() && name[..m.wire.len()].eq_ignore_ascii_case(m.wire)
                }
                _ => false,
            });
        if !known {
            return invalid(format!(
                "header '{}' is not a member of the operation's input",
                shorten(name)
            ));
        }
    }
    if body.is_empty() || service.protocol != Protocol::RestJson {
        return Ok(());
    }
    // A JSON body: the payload member's structure, or the members that travel in the body.
    let payload = members.iter().find(|m| m.location == Location::Payload);
    let body_members: Vec<shapes::Member> = match payload {
        Some(m) => match m.shape {
            shapes::ShapeRef::Named(name) => model.structure(name).to_vec(),
            shapes::ShapeRef::Scalar(..) => return Ok(()), // bytes or a document: as sent
        },
        None => members
            .iter()
            .filter(|m| m.location == Location::Body)
            .copied()
            .collect(),
    };
    let text = std::str::from_utf8(body)
        .map_err(|_| invalid_input(service, operation, "the JSON body is not UTF-8".into()))?;
    let parsed =
        shapes::parse_json_strict(text).map_err(|e| invalid_input(service, operation, e))?;
    shapes::check_json(model, &body_members, &parsed, &mut |_| {})
        .map_err(|e| invalid_input(service, operation, e))
}

fn model_is_map(model: &shapes::InputModel, member: &shapes::Member) -> bool {
    matches!(member.shape, shapes::ShapeRef::Named(name) if model.is_map(name))
}

/// Headers only the host sets, and hop-by-hop headers (RFC 9110 §7.6.1) that belong to one
/// connection, not to the request: a guest's are dropped.
const HOST_HEADERS: &[&str] = &[
    "host",
    "authorization",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
    "content-length",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "proxy-authenticate",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "expect",
];
/// Headers that would send the request elsewhere: refused.
const REFUSED_HEADERS: &[&str] = &[
    "forwarded",
    "x-forwarded-host",
    "x-forwarded-for",
    "x-host",
    "x-original-host",
    "via",
];

pub(super) fn checked_headers(
    headers: &[(String, String)],
) -> Result<Vec<(HeaderName, HeaderValue)>, Error> {
    let mut checked = Vec::new();
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        if HOST_HEADERS.contains(&lower.as_str()) {
            continue;
        }
        if REFUSED_HEADERS.contains(&lower.as_str()) {
            return Err(Error::Denied(format!(
                "header '{}' may not be set by a monitor",
                shorten(name)
            )));
        }
        let name = HeaderName::from_bytes(lower.as_bytes())
            .map_err(|_| Error::Invalid(format!("invalid header name '{}'", shorten(name))))?;
        // One value per name: a repeated header (a second x-amz-copy-source) could show the
        // grant check one resource and AWS another.
        if checked.iter().any(|(seen, _)| *seen == name) {
            return Err(Error::Invalid(format!(
                "header '{}' is given more than once",
                shorten(name.as_str())
            )));
        }
        checked.push((name, transport::header_value(value).map_err(guest_error)?));
    }
    Ok(checked)
}

/// An absolute path on the service's endpoint. Anything that could name another host
/// (`//host`, a scheme, `@`, backslashes) or smuggle a query or fragment is refused.
pub(super) fn checked_path(path: &str) -> Result<String, Error> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-._~/%!$&'()*+,;=:@".contains(c);
    let refuse = |why: &str| {
        Err(Error::Invalid(format!(
            "invalid path '{}': {why}",
            shorten(path)
        )))
    };
    if !path.starts_with('/') {
        return refuse("it must start with '/'");
    }
    if path.starts_with("//") || path.contains("://") || path.contains('@') || path.contains('\\') {
        return refuse("it may not name a host");
    }
    if !path.chars().all(allowed) {
        return refuse(
            "percent-encode characters outside RFC 3986's path set; queries go in `query`",
        );
    }
    Ok(path.to_owned())
}

// Each host call runs in a `host_call` span inside the invocation's `call` span: its events
// (refusals, audit) carry the capability and function without naming them.

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_cannot_leave_the_endpoint() {
        assert!(checked_path("/bucket/key%20with%20space").is_ok());
        for bad in [
            "bucket",
            "//evil.example/x",
            "/x/http://evil",
            "/@evil.example",
            "/a\\b",
            "/a?b=c",
            "/a#b",
            "/a b",
        ] {
            assert!(checked_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn headers_are_filtered() {
        let headers = [
            ("Host", "evil.example"),
            ("Authorization", "x"),
            ("X-Amz-Meta-A", "1"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let checked = checked_headers(&headers).unwrap();
        assert_eq!(checked.len(), 1);
        assert!(checked_headers(&[("X-Forwarded-Host".into(), "evil".into())]).is_err());
        assert!(checked_headers(&[("X-A".into(), "a\r\nHost: evil".into())]).is_err());
        let hop_by_hop = ["Transfer-Encoding", "Connection", "Expect", "TE", "Upgrade"]
            .map(|k| (k.to_owned(), "chunked".to_owned()));
        assert!(checked_headers(&hop_by_hop).unwrap().is_empty());
        let twice = [("x-amz-copy-source", "/a/b"), ("X-Amz-Copy-Source", "/c/d")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()));
        assert!(checked_headers(&twice).is_err());
    }
}
