//! Operations' input shapes, from AWS's models, and the check of a request against them: a
//! request is read the way AWS reads it, so every value the host decides on (a flag, a table
//! name, a log group) is the value AWS acts on.
//!
//! The generator (`scripts/gen-aws-models.py`) writes each service's input shapes as text,
//! one shape per line, parsed on a service's first call:
//!
//! ```text
//! @Operation InputShape                      an operation and its input
//! Name S member:Type[:loc[:wire]] ...        a structure; loc: h header, H header prefix,
//!                                            q query, p path label, c status, P payload
//! Name L Type memberName|- f|-               a list (its member's wire name, flattened)
//! Name M KeyType ValueType keyName valueName f|-   a map
//! ```
//!
//! A scalar type is `$` and a letter (`s` string, `b` boolean, `i` integer, `f` float, `t`
//! timestamp, `B` blob, `d` document) followed by the model's shape name (`$sTableArn`).

use std::collections::HashMap;
use std::sync::{LazyLock, OnceLock};

use serde_json::Value;

use super::services::{Protocol, SERVICES, Service};
use crate::audit::shorten;

/// A scalar type of the models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar {
    /// Text (enums included).
    String,
    /// `true` or `false`.
    Boolean,
    /// A whole number (`integer` and `long`).
    Integer,
    /// A number (`float` and `double`).
    Float,
    /// A point in time.
    Timestamp,
    /// Bytes, base64 in JSON and query requests.
    Blob,
    /// Any JSON.
    Document,
}

/// What a member or element is: a scalar (with its shape's name) or a named shape.
#[derive(Debug, Clone, Copy)]
pub enum ShapeRef {
    /// A scalar, and the model's name for it (`TableArn`).
    Scalar(Scalar, &'static str),
    /// A structure, list or map of the service's model.
    Named(&'static str),
}

/// Where a member of a REST input travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// In the body (or, for the query protocols, a parameter).
    Body,
    /// One header.
    Header,
    /// Every header with this prefix (`x-amz-meta-`).
    HeaderPrefix,
    /// A query parameter (a map: any parameter).
    Query,
    /// A label of the path.
    Path,
    /// The response's status (output only).
    Status,
    /// The whole body.
    Payload,
}

/// A member of a structure.
#[derive(Debug, Clone, Copy)]
pub struct Member {
    /// The model's name.
    pub name: &'static str,
    /// Its type.
    pub shape: ShapeRef,
    /// Where it travels.
    pub location: Location,
    /// Its name on the wire (a header's or a query parameter's name, a query key's part).
    pub wire: &'static str,
}

/// A structure, list or map.
#[derive(Debug)]
pub enum Shape {
    /// Named members.
    Structure(Vec<Member>),
    /// Elements of one type.
    List {
        /// The element type.
        member: ShapeRef,
        /// The element's name in query keys (`member` unless the model names it).
        wire: Option<&'static str>,
        /// A flattened list: `Name.N`, not `Name.member.N`.
        flat: bool,
    },
    /// Keys and values.
    Map {
        /// The key type (a string).
        key: ShapeRef,
        /// The value type.
        value: ShapeRef,
        /// The key's name in query keys.
        key_name: &'static str,
        /// The value's name in query keys.
        value_name: &'static str,
        /// A flattened map: `Name.N.key`, not `Name.entry.N.key`.
        flat: bool,
    },
}

/// One service's input shapes and the input of each operation.
#[derive(Debug, Default)]
pub struct InputModel {
    shapes: HashMap<&'static str, Shape>,
    inputs: HashMap<&'static str, &'static str>,
}

static MODELS: LazyLock<Box<[OnceLock<InputModel>]>> =
    LazyLock::new(|| SERVICES.iter().map(|_| OnceLock::new()).collect());

impl Service {
    /// The service's input shapes, parsed on first use.
    pub fn input_model(&self) -> &'static InputModel {
        let index = SERVICES
            .binary_search_by(|s| s.name.cmp(self.name))
            .expect("a service of the table");
        MODELS[index].get_or_init(|| InputModel::parse(SERVICES[index].inputs))
    }
}

fn shape_ref(text: &'static str) -> ShapeRef {
    let Some(rest) = text.strip_prefix('$') else {
        return ShapeRef::Named(text);
    };
    let mut chars = rest.chars();
    let scalar = match chars.next() {
        Some('b') => Scalar::Boolean,
        Some('i') => Scalar::Integer,
        Some('f') => Scalar::Float,
        Some('t') => Scalar::Timestamp,
        Some('B') => Scalar::Blob,
        Some('d') => Scalar::Document,
        _ => Scalar::String,
    };
    ShapeRef::Scalar(scalar, chars.as_str())
}

impl InputModel {
    fn parse(text: &'static str) -> InputModel {
        let mut model = InputModel::default();
        for line in text.lines() {
            let mut words = line.split(' ');
            let Some(name) = words.next() else { continue };
            if let Some(operation) = name.strip_prefix('@') {
                if let Some(input) = words.next() {
                    model.inputs.insert(operation, input);
                }
                continue;
            }
            let shape = match words.next() {
                Some("S") => Shape::Structure(words.map(member).collect()),
                Some("L") => {
                    let member = shape_ref(words.next().unwrap_or("$s"));
                    let wire = words.next().filter(|w| *w != "-");
                    Shape::List {
                        member,
                        wire,
                        flat: words.next() == Some("f"),
                    }
                }
                Some("M") => Shape::Map {
                    key: shape_ref(words.next().unwrap_or("$s")),
                    value: shape_ref(words.next().unwrap_or("$s")),
                    key_name: words.next().unwrap_or("key"),
                    value_name: words.next().unwrap_or("value"),
                    flat: words.next() == Some("f"),
                },
                _ => continue,
            };
            model.shapes.insert(name, shape);
        }
        model
    }

    /// The input structure of `operation`: its members; none for an operation without input.
    pub fn input(&self, operation: &str) -> &[Member] {
        match self.inputs.get(operation).map(|name| self.shape(name)) {
            Some(Some(Shape::Structure(members))) => members,
            _ => &[],
        }
    }

    /// The members of structure `name` (none if it is not one).
    pub fn structure(&self, name: &str) -> &[Member] {
        match self.shape(name) {
            Some(Shape::Structure(members)) => members,
            _ => &[],
        }
    }

    /// Whether `name` is a map.
    pub fn is_map(&self, name: &str) -> bool {
        matches!(self.shape(name), Some(Shape::Map { .. }))
    }

    fn shape(&self, name: &str) -> Option<&Shape> {
        self.shapes.get(name)
    }
}

fn member(field: &'static str) -> Member {
    let mut parts = field.split(':');
    let name = parts.next().unwrap_or_default();
    let shape = shape_ref(parts.next().unwrap_or("$s"));
    let location = match parts.next() {
        Some("h") => Location::Header,
        Some("H") => Location::HeaderPrefix,
        Some("q") => Location::Query,
        Some("p") => Location::Path,
        Some("c") => Location::Status,
        Some("P") => Location::Payload,
        _ => Location::Body,
    };
    Member {
        name,
        shape,
        location,
        wire: parts.next().unwrap_or(name),
    }
}

/// A scalar value of a request, as the check meets it: the resource readers look at these.
#[derive(Debug, Clone, Copy)]
pub struct Scalars<'a> {
    /// The member's name (for a map key, the map member's).
    pub member: &'static str,
    /// The model's name for the scalar's shape (`TableArn`, `LogGroupName`).
    pub shape: &'static str,
    /// The value, when it is text.
    pub text: Option<&'a str>,
}

/// Why a request does not fit its operation's input.
pub type ShapeError = String;

/// The deepest nesting a request is checked to (AWS's own inputs are far shallower).
const MAX_DEPTH: usize = 64;

/// Where a value sits in a JSON input, written out only for an error (`RequestItems.t.Keys[0]`).
#[derive(Clone, Copy)]
enum At<'a> {
    Root,
    Member(&'a At<'a>, &'a str),
    Index(&'a At<'a>, usize),
}

impl At<'_> {
    /// The path for an error text: each name shortened, the whole at most 256 characters.
    fn shown(&self) -> String {
        crate::guest_text::shortened(&self.to_string(), 256)
    }
}

impl std::fmt::Display for At<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            At::Root => Ok(()),
            At::Member(At::Root, name) => f.write_str(&shorten(name)),
            At::Member(parent, name) => write!(f, "{parent}.{}", shorten(name)),
            At::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

/// Checks a JSON input (of a JSON-protocol operation, or a REST JSON body's members) against
/// `members`, calling `seen` with every scalar on the way.
pub fn check_json<'v>(
    model: &InputModel,
    members: &[Member],
    input: &'v Value,
    seen: &mut dyn FnMut(Scalars<'v>),
) -> Result<(), ShapeError> {
    let Value::Object(fields) = input else {
        return Err("the input is not a JSON object".into());
    };
    check_fields(model, members, fields, &At::Root, 0, seen)
}

fn check_fields<'v>(
    model: &InputModel,
    members: &[Member],
    fields: &'v serde_json::Map<String, Value>,
    at: &At<'_>,
    depth: usize,
    seen: &mut dyn FnMut(Scalars<'v>),
) -> Result<(), ShapeError> {
    for (key, value) in fields {
        let found = members
            .iter()
            .find(|m| m.wire == key && m.location == Location::Body);
        let Some(member) = found else {
            return Err(unknown_member(members, at, key));
        };
        let inner = At::Member(at, key);
        check_value(
            model,
            member.shape,
            member.name,
            value,
            &inner,
            depth + 1,
            seen,
        )?;
    }
    Ok(())
}

fn unknown_member(members: &[Member], at: &At<'_>, key: &str) -> ShapeError {
    let names = members
        .iter()
        .filter(|m| m.location == Location::Body)
        .map(|m| m.wire);
    let near: Vec<&str> = if key.len() > 128 {
        Vec::new()
    } else {
        names
            .filter(|n| n.eq_ignore_ascii_case(key) || strsim::levenshtein(n, key) <= 2)
            .take(3)
            .collect()
    };
    let path = At::Member(at, key).shown();
    match near.as_slice() {
        [] => format!("'{path}' is not a member of the operation's input"),
        near => format!(
            "'{path}' is not a member of the operation's input; did you mean {}?",
            near.join(", ")
        ),
    }
}

fn check_value<'v>(
    model: &InputModel,
    shape: ShapeRef,
    member: &'static str,
    value: &'v Value,
    at: &At<'_>,
    depth: usize,
    seen: &mut dyn FnMut(Scalars<'v>),
) -> Result<(), ShapeError> {
    if depth > MAX_DEPTH {
        return Err(format!("'{}' is nested too deeply", at.shown()));
    }
    if value.is_null() {
        // AWS's JSON readers take null as "not given".
        return Ok(());
    }
    let wrong = |expected: &str| {
        Err(format!(
            "'{}' must be {expected}, not {}",
            at.shown(),
            json_kind(value)
        ))
    };
    let (scalar, name) = match shape {
        ShapeRef::Scalar(scalar, name) => (scalar, name),
        ShapeRef::Named(name) => {
            return match (model.shape(name), value) {
                (Some(Shape::Structure(members)), Value::Object(fields)) => {
                    check_fields(model, members, fields, at, depth, seen)
                }
                (Some(Shape::Structure(_)), _) => wrong("an object"),
                (Some(Shape::List { member: inner, .. }), Value::Array(items)) => {
                    for (i, item) in items.iter().enumerate() {
                        let at = At::Index(at, i);
                        check_value(model, *inner, member, item, &at, depth + 1, seen)?;
                    }
                    Ok(())
                }
                (Some(Shape::List { .. }), _) => wrong("a list"),
                (
                    Some(Shape::Map {
                        key, value: inner, ..
                    }),
                    Value::Object(entries),
                ) => {
                    for (k, v) in entries {
                        if let ShapeRef::Scalar(_, key_shape) = key {
                            seen(Scalars {
                                member,
                                shape: key_shape,
                                text: Some(k),
                            });
                        }
                        let at = At::Member(at, k);
                        check_value(model, *inner, member, v, &at, depth + 1, seen)?;
                    }
                    Ok(())
                }
                (Some(Shape::Map { .. }), _) => wrong("an object"),
                (None, _) => Err(format!("'{}' has no shape in the model", at.shown())),
            };
        }
    };
    let fits = match (scalar, value) {
        (Scalar::Document, _) => true,
        (Scalar::String | Scalar::Blob, Value::String(_)) => true,
        (Scalar::Boolean, Value::Bool(_)) => true,
        (Scalar::Integer, Value::Number(n)) => n.is_i64() || n.is_u64(),
        (Scalar::Float, Value::Number(_)) => true,
        (Scalar::Float, Value::String(s)) => ["NaN", "Infinity", "-Infinity"].contains(&s.as_str()),
        (Scalar::Timestamp, Value::Number(_) | Value::String(_)) => true,
        _ => false,
    };
    if !fits {
        return wrong(match scalar {
            Scalar::String => "a string",
            Scalar::Blob => "a base64 string",
            Scalar::Boolean => "a JSON boolean",
            Scalar::Integer => "a whole number",
            Scalar::Float => "a number",
            Scalar::Timestamp => "a timestamp",
            Scalar::Document => "a document",
        });
    }
    seen(Scalars {
        member,
        shape: name,
        text: value.as_str(),
    });
    Ok(())
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Checks query-protocol parameters (`Name.member.1`, EC2's `Name.1`) against `members`,
/// calling `seen` with every scalar.
pub fn check_query<'v>(
    model: &InputModel,
    protocol: Protocol,
    members: &[Member],
    params: &'v [(String, String)],
    seen: &mut dyn FnMut(Scalars<'v>),
) -> Result<(), ShapeError> {
    let ec2 = protocol == Protocol::Ec2;
    for (key, value) in params {
        let mut parts = key.split('.');
        let first = parts.next().unwrap_or_default();
        let Some(member) = members
            .iter()
            .find(|m| m.wire == first && m.location == Location::Body)
        else {
            return Err(unknown_member(members, &At::Root, first));
        };
        let mut shape = member.shape;
        loop {
            match shape {
                ShapeRef::Scalar(scalar, name) => {
                    if parts.next().is_some() {
                        return Err(format!("'{}' goes past a value", shorten(key)));
                    }
                    check_query_scalar(scalar, key, value)?;
                    seen(Scalars {
                        member: member.name,
                        shape: name,
                        text: Some(value),
                    });
                    break;
                }
                ShapeRef::Named(name) => {
                    let Some(part) = parts.next() else {
                        // `Name=` with nothing under it: an empty list or structure.
                        if value.is_empty() {
                            break;
                        }
                        return Err(format!("'{}' needs a member or an index", shorten(key)));
                    };
                    shape = match model.shape(name) {
                        Some(Shape::Structure(inner)) => {
                            let found = inner.iter().find(|m| m.wire == part);
                            match found {
                                Some(m) => m.shape,
                                None => return Err(unknown_member(inner, &At::Root, part)),
                            }
                        }
                        Some(Shape::List { member, wire, flat }) => {
                            let index = if ec2 || *flat {
                                part
                            } else if Some(part) == *wire || part == "member" {
                                parts.next().unwrap_or_default()
                            } else {
                                return Err(format!(
                                    "'{}': a list's items are '.member.N'",
                                    shorten(key)
                                ));
                            };
                            check_index(key, index)?;
                            *member
                        }
                        Some(Shape::Map {
                            key: key_shape,
                            value: value_shape,
                            key_name,
                            value_name,
                            flat,
                        }) => {
                            let index = if *flat || part != "entry" {
                                part
                            } else {
                                parts.next().unwrap_or_default()
                            };
                            check_index(key, index)?;
                            match parts.next() {
                                Some(p) if p == *key_name => *key_shape,
                                Some(p) if p == *value_name => *value_shape,
                                _ => {
                                    return Err(format!(
                                        "'{}': a map's entries are '.entry.N.{key_name}' and \
                                         '.entry.N.{value_name}'",
                                        shorten(key)
                                    ));
                                }
                            }
                        }
                        None => return Err(format!("'{}' has no shape", shorten(key))),
                    };
                }
            }
        }
    }
    Ok(())
}

fn check_index(key: &str, index: &str) -> Result<(), ShapeError> {
    let ok = !index.is_empty()
        && index.len() <= 6
        && !index.starts_with('0')
        && index.bytes().all(|b| b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(format!("'{}': expected an index from 1", shorten(key)))
    }
}

fn check_query_scalar(scalar: Scalar, key: &str, value: &str) -> Result<(), ShapeError> {
    let fits = match scalar {
        Scalar::Boolean => value == "true" || value == "false",
        Scalar::Integer => value.parse::<i64>().is_ok(),
        Scalar::Float => value.parse::<f64>().is_ok(),
        _ => true,
    };
    if fits {
        Ok(())
    } else {
        Err(format!(
            "'{}' must be {}, not '{}'",
            shorten(key),
            match scalar {
                Scalar::Boolean => "true or false",
                Scalar::Integer => "a whole number",
                _ => "a number",
            },
            shorten(value)
        ))
    }
}

/// Parses JSON text, refusing an object that names a key twice (AWS and the host could each
/// read a different one).
pub fn parse_json_strict(text: &str) -> Result<Value, String> {
    use serde::Deserialize as _;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = StrictValue::deserialize(&mut deserializer)
        .map_err(|e| format!("input is not JSON: {e}"))?;
    deserializer
        .end()
        .map_err(|e| format!("input is not JSON: {e}"))?;
    Ok(value.0)
}

struct StrictValue(Value);

impl<'de> serde::Deserialize<'de> for StrictValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut fields = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if fields.contains_key(&key) {
                return Err(serde::de::Error::custom(format!(
                    "key '{}' is given more than once",
                    shorten(&key)
                )));
            }
            let StrictValue(value) = map.next_value()?;
            fields.insert(key, value);
        }
        Ok(Value::Object(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn json_check(service: &str, operation: &str, input: Value) -> Result<Vec<String>, String> {
        let service = Service::find(service).unwrap();
        let model = service.input_model();
        let mut seen = Vec::new();
        check_json(model, model.input(operation), &input, &mut |s| {
            seen.push(format!("{}={}", s.shape, s.text.unwrap_or("")))
        })?;
        Ok(seen)
    }

    #[test]
    fn json_inputs_are_read_as_aws_reads_them() {
        let ok = json_check(
            "ssm",
            "GetParameter",
            json!({"Name": "x", "WithDecryption": false}),
        );
        assert!(ok.is_ok(), "{ok:?}");
        for bad in [
            json!({"Name": "x", "WithDecryption": 1}),
            json!({"Name": "x", "WithDecryption": "true"}),
            json!({"Name": "x", "withDecryption": true}),
            json!({"Name": ["x"]}),
            json!(["Name"]),
        ] {
            assert!(
                json_check("ssm", "GetParameter", bad.clone()).is_err(),
                "{bad}"
            );
        }
        let typo = json_check("ssm", "GetParameter", json!({"withDecryption": true}));
        assert!(typo.unwrap_err().contains("did you mean WithDecryption"));
        // Map keys and nested members are seen: every table a BatchGetItem names.
        let seen = json_check(
            "dynamodb",
            "BatchGetItem",
            json!({"RequestItems": {"other": {"Keys": [{"id": {"S": "1"}}]}}}),
        )
        .unwrap();
        assert!(seen.iter().any(|s| s.ends_with("=other")), "{seen:?}");
        assert!(
            json_check(
                "dynamodb",
                "BatchGetItem",
                json!({"TableName": "orders", "RequestItems": {}})
            )
            .is_err()
        );
    }

    #[test]
    fn duplicate_keys_are_refused() {
        assert!(parse_json_strict(r#"{"a": 1, "a": 2}"#).is_err());
        assert!(parse_json_strict(r#"{"a": {"b": 1, "b": 1}}"#).is_err());
        assert_eq!(
            parse_json_strict(r#"{"a": [1, 2.5]}"#).unwrap(),
            json!({"a": [1, 2.5]})
        );
        assert!(parse_json_strict("{} x").is_err());
    }

    #[test]
    fn query_parameters_follow_the_shapes() {
        let check = |service: &str, action: &str, params: &[(&str, &str)]| {
            let service = Service::find(service).unwrap();
            let model = service.input_model();
            let params: Vec<(String, String)> = params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            check_query(
                model,
                service.protocol,
                model.input(action),
                &params,
                &mut |_| {},
            )
        };
        assert!(
            check(
                "cloudwatch",
                "GetMetricStatistics",
                &[
                    ("Namespace", "AWS/SQS"),
                    ("MetricName", "x"),
                    ("Dimensions.member.1.Name", "QueueName"),
                    ("Dimensions.member.1.Value", "q"),
                    ("Statistics.member.1", "Sum"),
                    ("Period", "60"),
                ]
            )
            .is_ok()
        );
        assert!(check("cloudwatch", "GetMetricStatistics", &[("Period", "sixty")]).is_err());
        assert!(check("cloudwatch", "GetMetricStatistics", &[("Bogus", "1")]).is_err());
        assert!(
            check(
                "cloudwatch",
                "GetMetricStatistics",
                &[("Dimensions.member.0.Name", "a")]
            )
            .is_err()
        );
        assert!(
            check(
                "ec2",
                "DescribeInstances",
                &[
                    ("InstanceId.1", "i-1"),
                    ("Filter.1.Name", "x"),
                    ("Filter.1.Value.1", "y")
                ]
            )
            .is_ok()
        );
        assert!(
            check(
                "sns",
                "Publish",
                &[
                    ("TopicArn", "arn:aws:sns:us-east-1:1:t"),
                    ("Message", "m"),
                    ("MessageAttributes.entry.1.Name", "a"),
                    ("MessageAttributes.entry.1.Value.DataType", "String")
                ]
            )
            .is_ok()
        );
    }
}
