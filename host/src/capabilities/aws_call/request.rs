//! What a guest's `aws-call` request may carry, checked before anything is signed or sent,
//! and the request built from it: operation names of the model, inputs against their shapes,
//! REST paths that stay on the endpoint, headers the host leaves to the guest, and a REST
//! request's query keys, headers and JSON body against its operation's input shape.
//!
//! [`prepare_json`], [`prepare_query`] and [`prepare_rest`] need no credential, grant or
//! budget: they say what the grant check reads (the resources, the parsed input) and build
//! what is signed and sent. The `aws_call_request` fuzz target reads the built request back
//! and checks that it says the same.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};
use serde_json::Value;

use crate::audit::shorten;
use crate::aws::resources::{self, Resources};
use crate::aws::services::{Protocol, Service, valid_operation};
use crate::aws::shapes::{self, Location};
use crate::aws::transport::{self, Outgoing};
use crate::bindings::sentinela::plugin::aws_call::Request;
use crate::bindings::sentinela::plugin::types::Error;
use crate::grants::{self, RequestResources};

use super::super::guest_error::guest_error;
use super::{MAX_HEADER_BYTES, MAX_HEADERS, MAX_PATH_BYTES, MAX_QUERY_PARAMS};

/// An operation or action name as AWS's API references write them.
fn checked_operation(operation: &str) -> Result<(), Error> {
    if valid_operation(operation) {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "invalid operation name '{}'",
            shorten(operation)
        )))
    }
}

fn invalid_input(service: &Service, operation: &str, why: String) -> Error {
    Error::Invalid(format!(
        "{}:{operation}: {why}; nothing was sent",
        service.name
    ))
}

/// A request checked and built for one service and region, before any grant, credential or
/// budget is consulted.
pub struct Prepared {
    /// The operation of the service's model the request is.
    pub operation: &'static str,
    /// Every resource the request names, as the grant check reads them.
    pub resources: RequestResources,
    /// A JSON-protocol request's input as parsed (the grant check reads some secret reads
    /// from it); the body sent is this value encoded again.
    pub input: Option<Value>,
    /// What is signed and sent.
    pub outgoing: Outgoing,
}

/// The bytes of a list of pairs, summed without copying.
fn pair_bytes(pairs: &[(String, String)]) -> usize {
    pairs.iter().map(|(k, v)| k.len() + v.len() + 2).sum()
}

/// The model's own name of `operation` (checked to be one of the model's).
fn model_operation(service: &Service, operation: &str) -> Result<&'static str, Error> {
    checked_operation(operation)?;
    service
        .operation(operation)
        .ok_or_else(|| Error::Invalid(service.unknown_operation(operation)))
}

/// The keys of `pairs`, sorted, or the first key given more than once. AWS reads one value
/// per key: a repeated key could show the grant check one resource and AWS another.
fn sorted_unique_keys(pairs: &[(String, String)]) -> Result<Vec<&str>, &str> {
    let mut keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    keys.sort_unstable();
    match keys.windows(2).find(|pair| pair[0] == pair[1]) {
        Some(pair) => Err(pair[0]),
        None => Ok(keys),
    }
}

/// `aws-call.json`: `input` read as AWS reads it (one value per key, a repeated key refused;
/// every member and type as the operation's input shape has them), its resources, and the
/// request whose body is the parsed input encoded again: what is checked is what is sent.
/// `max_body` is the transport's cap for the service.
pub fn prepare_json(
    service: &'static Service,
    region: &str,
    operation: &str,
    input: &str,
    max_body: usize,
) -> Result<Prepared, Error> {
    let operation = model_operation(service, operation)?;
    if input.len() > max_body {
        return Err(Error::Limit(format!(
            "request body of {} bytes is over the {max_body} byte cap",
            input.len()
        )));
    }
    let parsed = shapes::parse_json_strict(input).map_err(Error::Invalid)?;
    let model = service.input_model();
    let mut resources = Resources::new(service.name, region);
    shapes::check_json(model, model.input(operation), &parsed, &mut |s| {
        resources.see(s)
    })
    .map_err(|e| invalid_input(service, operation, e))?;
    let outgoing =
        transport::json_request(service, operation, &parsed.to_string()).map_err(guest_error)?;
    Ok(Prepared {
        operation,
        resources: resources.finish(),
        input: Some(parsed),
        outgoing,
    })
}

/// `aws-call.query`: `params` checked against the action's input shape (each key once;
/// `Action` and `Version` are the host's), its resources, and the form body sent.
pub fn prepare_query(
    service: &'static Service,
    region: &str,
    action: &str,
    params: &[(String, String)],
    max_body: usize,
) -> Result<Prepared, Error> {
    let operation = model_operation(service, action)?;
    if params.len() > MAX_QUERY_PARAMS || pair_bytes(params) > max_body {
        return Err(Error::Limit(format!(
            "{} query parameters of {} bytes: at most {MAX_QUERY_PARAMS} parameters and \
             {max_body} bytes",
            params.len(),
            pair_bytes(params)
        )));
    }
    if let Some((key, _)) = params.iter().find(|(k, _)| k == "Action" || k == "Version") {
        return Err(Error::Invalid(format!(
            "parameter '{key}' is set by the host"
        )));
    }
    // Query APIs never repeat a key (lists are `Name.member.N`).
    if let Err(key) = sorted_unique_keys(params) {
        return Err(Error::Invalid(format!(
            "parameter '{}' is given more than once",
            shorten(key)
        )));
    }
    let model = service.input_model();
    let mut resources = Resources::new(service.name, region);
    let members = model.input(operation);
    shapes::check_query(model, service.protocol, members, params, &mut |s| {
        resources.see(s)
    })
    .map_err(|e| invalid_input(service, operation, e))?;
    let outgoing = transport::query_request(service, operation, params).map_err(guest_error)?;
    Ok(Prepared {
        operation,
        resources: resources.finish(),
        input: None,
        outgoing,
    })
}

/// `aws-call.signed` and `presign`: a REST request's method, caps, path and headers checked,
/// the operation the service's model maps it to, its input checked against that operation's
/// shape, the resources it names, and the request with its query encoded.
pub fn prepare_rest(
    service: &'static Service,
    region: &str,
    request: Request,
    max_body: usize,
) -> Result<Prepared, Error> {
    let upper = request.method.to_ascii_uppercase();
    if !grants::REST_METHODS.contains(&upper.as_str()) {
        return Err(Error::Invalid(format!(
            "unsupported method '{}'",
            shorten(&upper)
        )));
    }
    let method = Method::from_bytes(upper.as_bytes()).map_err(|e| Error::Invalid(e.to_string()))?;
    let too_big = request.headers.len() > MAX_HEADERS
        || pair_bytes(&request.headers) > MAX_HEADER_BYTES
        || request.query.len() > MAX_QUERY_PARAMS
        || pair_bytes(&request.query) > max_body
        || request.path.len() > MAX_PATH_BYTES
        || request.body.len() > max_body;
    if too_big {
        return Err(Error::Limit(format!(
            "request over the caps: at most {MAX_HEADERS} headers of {MAX_HEADER_BYTES} \
             bytes, {MAX_QUERY_PARAMS} query parameters, a {MAX_PATH_BYTES} byte path and \
             a {max_body} byte body"
        )));
    }
    let mut path_and_query = checked_path(&request.path)?;
    let headers = checked_headers(&request.headers)?;
    let resources = resources::of_rest(service.name, region, &path_and_query, &headers);
    let query: Vec<(&str, &str)> = request
        .query
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let header_names: Vec<&str> = headers.iter().map(|(name, _)| name.as_str()).collect();
    let operation = service
        .rest_operation(method.as_str(), &path_and_query, &query, &header_names)
        .ok_or_else(|| {
            Error::Invalid(format!(
                "{} {} is no operation of {}'s model (or could be two of them); nothing was \
                 sent",
                method,
                shorten(&path_and_query),
                service.name
            ))
        })?;
    check_rest_input(service, operation, &request.query, &headers, &request.body)?;
    for (i, (key, value)) in request.query.iter().enumerate() {
        path_and_query.push(if i == 0 { '?' } else { '&' });
        path_and_query.push_str(&transport::encode(key));
        if !value.is_empty() {
            path_and_query.push('=');
            path_and_query.push_str(&transport::encode(value));
        }
    }
    Ok(Prepared {
        operation,
        resources,
        input: None,
        outgoing: Outgoing {
            method,
            path_and_query,
            headers,
            body: Bytes::from(request.body),
        },
    })
}

/// Headers a REST request may carry beyond its operation's header members: how the body is
/// encoded and what answer is wanted.
const GENERIC_HEADERS: &[&str] = &["content-type", "accept"];

/// Checks a REST request's query keys, headers and (JSON) body against its operation's input
/// shape: a key, header or member the operation does not have is refused, as is a query
/// parameter SigV4 itself uses (`X-Amz-Expires`, `X-Amz-Date`...), which only the host sets.
fn check_rest_input(
    service: &Service,
    operation: &str,
    query: &[(String, String)],
    headers: &[(HeaderName, HeaderValue)],
    body: &[u8],
) -> Result<(), Error> {
    let model = service.input_model();
    let members = model.input(operation);
    let invalid = |why: String| Err(invalid_input(service, operation, why));
    let keys = match sorted_unique_keys(query) {
        Ok(keys) => keys,
        Err(key) => {
            return invalid(format!(
                "query parameter '{}' is given more than once",
                shorten(key)
            ));
        }
    };
    let route_keys = service.route_query_keys(operation);
    // A map in the query takes any parameter (API Gateway's, S3's none).
    let free_query = members
        .iter()
        .any(|m| m.location == Location::Query && model_is_map(model, m));
    for key in keys {
        // Bytes, not a `str` slice: a guest's key may hold a multi-byte character there.
        if key
            .as_bytes()
            .get(..6)
            .is_some_and(|k| k.eq_ignore_ascii_case(b"x-amz-"))
        {
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

fn checked_headers(headers: &[(String, String)]) -> Result<Vec<(HeaderName, HeaderValue)>, Error> {
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
fn checked_path(path: &str) -> Result<String, Error> {
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
