//! Subscription filter policies: AWS's JSON syntax, validated as SNS validates it, matched
//! against message attributes (`MessageAttributes` scope) or a JSON body (`MessageBody`).
//!
//! Semantics: every key of a policy must match (AND); a key matches when any of its
//! conditions matches any of the key's values (OR); `$or` holds alternative sub-policies. A
//! `String.Array` attribute, and an array in a body, give the key each of their elements as a
//! value. Numbers are compared as numbers, to five decimal places; a string never equals a
//! number. `exists: false` matches a key with no value.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::str::FromStr;

use cloudlet_core::{AttributeValue, MessageAttribute};
use serde_json::Value;

use crate::{Error, Result};

/// The most keys a policy may name.
pub const MAX_KEYS: usize = 5;
/// The most value combinations a policy may have.
pub const MAX_COMBINATIONS: usize = 150;
/// The longest policy text, in bytes.
pub const MAX_POLICY_BYTES: usize = 256 * 1024;

/// What a policy is matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FilterPolicyScope {
    /// The message attributes (the default); nested policies are not allowed.
    #[default]
    MessageAttributes,
    /// The message body, parsed as JSON; policies may nest.
    MessageBody,
}

impl FromStr for FilterPolicyScope {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "MessageAttributes" => Ok(Self::MessageAttributes),
            "MessageBody" => Ok(Self::MessageBody),
            other => Err(Error::InvalidParameter {
                field: "FilterPolicyScope",
                message: format!(
                    "Invalid parameter: FilterPolicyScope: Invalid value [{other}]. Please use either MessageBody or MessageAttributes"
                ),
            }),
        }
    }
}

/// A number as policies compare them: to five decimal places, as SNS documents, so
/// `100.1234567` equals `100.123456789`.
type Fixed = i128;

fn fixed(number: f64) -> Fixed {
    if !number.is_finite() {
        // NaN and infinities compare as nothing real: far outside any policy's range.
        return Fixed::MIN;
    }
    (number * 100_000.0).round() as Fixed
}

/// One condition on a key's values.
#[derive(Debug, Clone, PartialEq)]
enum Condition {
    String(String),
    Number(Fixed),
    Bool(bool),
    Null,
    Prefix(String),
    Suffix(String),
    EqualsIgnoreCase(String),
    /// Matches a value equal to none of these.
    AnythingBut(Vec<Literal>),
    AnythingButPrefix(String),
    Numeric {
        lower: Option<(Fixed, bool)>,
        upper: Option<(Fixed, bool)>,
    },
    Exists(bool),
    Cidr {
        network: IpAddr,
        bits: u8,
    },
}

/// A literal of `anything-but`.
#[derive(Debug, Clone, PartialEq)]
enum Literal {
    String(String),
    Number(Fixed),
}

/// A value a key has in a message.
#[derive(Debug, Clone, PartialEq)]
enum Found<'a> {
    String(Cow<'a, str>),
    Number(Fixed),
    Bool(bool),
    Null,
}

/// A compiled policy (or a branch of `$or`): conditions per key path, nested policies
/// flattened into paths, and alternatives.
#[derive(Debug, Clone, PartialEq)]
struct Node {
    keys: Vec<(Vec<String>, Vec<Condition>)>,
    /// Each `$or`: a list of branches, one of which must match.
    alternatives: Vec<Vec<Node>>,
}

/// A validated filter policy, ready to match messages.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterPolicy {
    scope: FilterPolicyScope,
    root: Node,
}

impl FilterPolicy {
    /// Parses and validates `json` as SNS does for `scope`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] with SNS's reason: not JSON, a key that is neither an
    /// object nor an array, empty arrays, unknown or malformed operators, more than 5 keys,
    /// more than 150 combinations, a nested policy in the `MessageAttributes` scope.
    pub fn parse(json: &str, scope: FilterPolicyScope) -> Result<Self> {
        if json.len() > MAX_POLICY_BYTES {
            return Err(Error::filter_policy("Filter policy is too long"));
        }
        let value: Value = serde_json::from_str(json)
            .map_err(|e| Error::filter_policy(format!("failed to parse JSON. {e}")))?;
        let Value::Object(object) = &value else {
            return Err(Error::filter_policy("Filter policy must be a JSON object"));
        };
        // Shape, nesting and size first, as SNS checks them before the conditions.
        if object.len() > MAX_KEYS {
            return Err(Error::filter_policy(format!(
                "Filter policy can not have more than {MAX_KEYS} keys"
            )));
        }
        if combinations(object, 1, 1, scope)? > MAX_COMBINATIONS {
            return Err(Error::filter_policy("Filter policy is too complex"));
        }
        let root = compile(object, &mut Vec::new())?;
        Ok(Self { scope, root })
    }

    /// The scope the policy was validated for.
    pub fn scope(&self) -> FilterPolicyScope {
        self.scope
    }

    /// True when the message's attributes satisfy the policy.
    pub fn matches_attributes(&self, attributes: &BTreeMap<String, MessageAttribute>) -> bool {
        // SNS: a message without attributes matches no attribute-scope policy.
        if attributes.is_empty() {
            return false;
        }
        self.root.matches(&|path: &[String]| {
            let attribute = path.first().and_then(|name| attributes.get(name))?;
            Some(attribute_values(attribute))
        })
    }

    /// True when the message body (JSON) satisfies the policy; a body that is not a JSON
    /// object matches nothing.
    pub fn matches_body(&self, body: &str) -> bool {
        let parsed = serde_json::from_str::<Value>(body).ok();
        self.matches_parsed(parsed.as_ref(), &BTreeMap::new())
    }

    /// True when the message matches in the policy's scope.
    pub fn matches(&self, body: &str, attributes: &BTreeMap<String, MessageAttribute>) -> bool {
        match self.scope {
            FilterPolicyScope::MessageAttributes => self.matches_attributes(attributes),
            FilterPolicyScope::MessageBody => self.matches_body(body),
        }
    }

    /// `matches` with the body already parsed (`None`: not JSON).
    fn matches_parsed(
        &self,
        body: Option<&Value>,
        attributes: &BTreeMap<String, MessageAttribute>,
    ) -> bool {
        match (self.scope, body) {
            (FilterPolicyScope::MessageAttributes, _) => self.matches_attributes(attributes),
            (FilterPolicyScope::MessageBody, Some(root @ Value::Object(_))) => {
                self.root.matches(&|path: &[String]| {
                    let segments: Vec<&str> = path.iter().flat_map(|key| key.split('.')).collect();
                    let mut found = Vec::new();
                    collect(root, &segments, &mut found);
                    Some(found)
                })
            }
            (FilterPolicyScope::MessageBody, _) => false,
        }
    }
}

/// The values of an attribute: a string, a number, or each element of a `String.Array`.
fn attribute_values(attribute: &MessageAttribute) -> Vec<Found<'_>> {
    match &attribute.value {
        AttributeValue::String(text) if attribute.custom_type.as_deref() == Some("Array") => {
            let Ok(Value::Array(items)) = serde_json::from_str::<Value>(text) else {
                return Vec::new();
            };
            items
                .iter()
                .filter_map(|item| found(item).map(into_owned))
                .collect()
        }
        AttributeValue::String(text) => vec![Found::String(Cow::Borrowed(text))],
        AttributeValue::Number(text) => text
            .trim()
            .parse::<f64>()
            .map(|n| vec![Found::Number(fixed(n))])
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn into_owned(value: Found<'_>) -> Found<'static> {
    match value {
        Found::String(s) => Found::String(Cow::Owned(s.into_owned())),
        Found::Number(n) => Found::Number(n),
        Found::Bool(b) => Found::Bool(b),
        Found::Null => Found::Null,
    }
}

fn found(value: &Value) -> Option<Found<'_>> {
    Some(match value {
        Value::String(s) => Found::String(Cow::Borrowed(s)),
        Value::Number(n) => Found::Number(fixed(n.as_f64()?)),
        Value::Bool(b) => Found::Bool(*b),
        Value::Null => Found::Null,
        _ => return None,
    })
}

/// The leaf values at `path` in a JSON body, arrays flattened. A policy key with dots names
/// any split of it into nested keys (`a.b` is `{"a": {"b"}}` or the key `"a.b"`), as SNS
/// matches it.
fn collect<'a>(value: &'a Value, path: &[&str], out: &mut Vec<Found<'a>>) {
    match value {
        Value::Array(items) => items.iter().for_each(|item| collect(item, path, out)),
        Value::Object(object) => {
            for take in 1..=path.len() {
                if let Some(next) = object.get(&path[..take].join(".")) {
                    collect(next, &path[take..], out);
                }
            }
        }
        leaf if path.is_empty() => out.extend(found(leaf)),
        _ => {}
    }
}

impl Node {
    fn matches<'m>(&self, values: &dyn Fn(&[String]) -> Option<Vec<Found<'m>>>) -> bool {
        self.keys.iter().all(|(path, conditions)| {
            let found = values(path).unwrap_or_default();
            conditions.iter().any(|c| c.matches(&found))
        }) && self
            .alternatives
            .iter()
            .all(|branches| branches.iter().any(|b| b.matches(values)))
    }
}

impl Condition {
    fn matches(&self, values: &[Found<'_>]) -> bool {
        match self {
            Self::Exists(expected) => values.is_empty() != *expected,
            _ => values.iter().any(|v| self.matches_one(v)),
        }
    }

    fn matches_one(&self, value: &Found<'_>) -> bool {
        match (self, value) {
            (Self::String(s), Found::String(v)) => s == v.as_ref(),
            (Self::Number(n), Found::Number(v)) => n == v,
            (Self::Bool(b), Found::Bool(v)) => b == v,
            (Self::Null, Found::Null) => true,
            (Self::Prefix(p), Found::String(v)) => v.starts_with(p.as_str()),
            (Self::Suffix(s), Found::String(v)) => v.ends_with(s.as_str()),
            (Self::EqualsIgnoreCase(s), Found::String(v)) => s.to_lowercase() == v.to_lowercase(),
            (Self::AnythingBut(literals), v) => !literals.iter().any(|l| match (l, v) {
                (Literal::String(s), Found::String(v)) => s == v.as_ref(),
                (Literal::Number(n), Found::Number(v)) => n == v,
                _ => false,
            }),
            (Self::AnythingButPrefix(p), Found::String(v)) => !v.starts_with(p.as_str()),
            (Self::AnythingButPrefix(_), _) => true,
            (Self::Numeric { lower, upper }, Found::Number(v)) => {
                lower.is_none_or(|(bound, inclusive)| *v > bound || (inclusive && *v == bound))
                    && upper
                        .is_none_or(|(bound, inclusive)| *v < bound || (inclusive && *v == bound))
            }
            (Self::Cidr { network, bits }, Found::String(v)) => {
                IpAddr::from_str(v.as_ref()).is_ok_and(|ip| in_network(ip, *network, *bits))
            }
            _ => false,
        }
    }
}

fn in_network(ip: IpAddr, network: IpAddr, bits: u8) -> bool {
    match (ip, network) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// Compiles an object of the policy found at `path`.
fn compile(object: &serde_json::Map<String, Value>, path: &mut Vec<String>) -> Result<Node> {
    let mut node = Node {
        keys: Vec::new(),
        alternatives: Vec::new(),
    };
    for (key, value) in object {
        if key == "$or" {
            let Value::Array(branches) = value else {
                return Err(Error::filter_policy(format!(
                    "\"{key}\" must be an object or an array"
                )));
            };
            let mut compiled = Vec::new();
            for branch in branches {
                let Value::Object(branch) = branch else {
                    return Err(Error::filter_policy(
                        "Match value must be String, number, true, false, or null",
                    ));
                };
                compiled.push(compile(branch, path)?);
            }
            if compiled.is_empty() {
                return Err(Error::filter_policy("Empty arrays are not allowed"));
            }
            node.alternatives.push(compiled);
            continue;
        }
        path.push(key.clone());
        match value {
            Value::Array(conditions) => {
                if conditions.is_empty() {
                    return Err(Error::filter_policy("Empty arrays are not allowed"));
                }
                let conditions = conditions.iter().map(condition).collect::<Result<_>>()?;
                node.keys.push((path.clone(), conditions));
            }
            Value::Object(inner) => {
                let inner = compile(inner, path)?;
                node.keys.extend(inner.keys);
                node.alternatives.extend(inner.alternatives);
            }
            _ => {
                return Err(Error::filter_policy(format!(
                    "\"{key}\" must be an object or an array"
                )));
            }
        }
        path.pop();
    }
    Ok(node)
}

/// Checks the policy's shape and counts its value combinations as SNS does: a running
/// product, in document order, of each key's number of conditions times the key's depth;
/// each `$or` replaces it with the sum of its branches, each branch starting from it.
fn combinations(
    object: &serde_json::Map<String, Value>,
    depth: usize,
    running: usize,
    scope: FilterPolicyScope,
) -> Result<usize> {
    let mut running = running;
    for (key, value) in object {
        match value {
            Value::Object(inner) => {
                running = combinations(inner, depth + 1, running, scope)?;
            }
            Value::Array(branches) if key == "$or" => {
                let mut sum = 0usize;
                for branch in branches {
                    let Value::Object(branch) = branch else {
                        return Err(Error::filter_policy(
                            "Match value must be String, number, true, false, or null",
                        ));
                    };
                    sum = sum.saturating_add(combinations(branch, depth, running, scope)?);
                }
                running = sum;
            }
            Value::Array(conditions) => {
                running = running
                    .saturating_mul(conditions.len())
                    .saturating_mul(depth);
            }
            _ => {
                return Err(Error::filter_policy(format!(
                    "\"{key}\" must be an object or an array"
                )));
            }
        }
    }
    if scope == FilterPolicyScope::MessageAttributes && depth > 1 {
        return Err(Error::InvalidParameter {
            field: "FilterPolicy",
            message: "Invalid parameter: Filter policy scope MessageAttributes does not support nested filter policy".to_owned(),
        });
    }
    Ok(running)
}

fn json_text(value: &Value) -> String {
    value.to_string()
}

fn condition(value: &Value) -> Result<Condition> {
    Ok(match value {
        Value::String(s) => Condition::String(s.clone()),
        Value::Number(n) => Condition::Number(number(n)?),
        Value::Bool(b) => Condition::Bool(*b),
        Value::Null => Condition::Null,
        Value::Array(_) => {
            return Err(Error::filter_policy(
                "Match value must be String, number, true, false, or null",
            ));
        }
        Value::Object(operator) => {
            let mut entries = operator.iter();
            let (Some((name, argument)), None) = (entries.next(), entries.next()) else {
                return Err(Error::filter_policy(if operator.is_empty() {
                    "Empty objects are not allowed"
                } else {
                    "Only one key allowed in match expression"
                }));
            };
            operator_condition(name, argument)?
        }
    })
}

/// The largest magnitude a number in a policy may have.
const MAX_NUMBER: f64 = 1e9;

fn number(n: &serde_json::Number) -> Result<Fixed> {
    let value = n.as_f64().unwrap_or(f64::INFINITY);
    if value.abs() >= MAX_NUMBER {
        return Err(Error::filter_policy(format!(
            "Match value {n} must be smaller than 1E9"
        )));
    }
    Ok(fixed(value))
}

fn pattern(name: &str, argument: &Value) -> Result<String> {
    match argument {
        Value::String(s) => Ok(s.clone()),
        _ => Err(Error::filter_policy(format!(
            "{name} match pattern must be a string"
        ))),
    }
}

fn operator_condition(name: &str, argument: &Value) -> Result<Condition> {
    Ok(match name {
        "prefix" => Condition::Prefix(pattern(name, argument)?),
        "suffix" => Condition::Suffix(pattern(name, argument)?),
        "equals-ignore-case" => Condition::EqualsIgnoreCase(pattern(name, argument)?),
        "exists" => match argument {
            Value::Bool(b) => Condition::Exists(*b),
            _ => {
                return Err(Error::filter_policy(
                    "exists match pattern must be either true or false.",
                ));
            }
        },
        // SNS names `prefix` in this message; so do we.
        "cidr" => cidr(&pattern("prefix", argument)?)?,
        "numeric" => numeric(argument)?,
        "anything-but" => anything_but(argument)?,
        other => {
            return Err(Error::filter_policy(format!(
                "Unrecognized match type {other}"
            )));
        }
    })
}

fn anything_but(argument: &Value) -> Result<Condition> {
    let literal = |value: &Value| -> Result<Literal> {
        match value {
            Value::String(s) => Ok(Literal::String(s.clone())),
            Value::Number(n) => Ok(Literal::Number(number(n)?)),
            _ => Err(Error::filter_policy(
                "Inside anything but list, start|null|boolean is not supported.",
            )),
        }
    };
    Ok(match argument {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(Error::filter_policy("Empty arrays are not allowed"));
            }
            Condition::AnythingBut(items.iter().map(literal).collect::<Result<_>>()?)
        }
        Value::Object(operator) => {
            let mut entries = operator.iter();
            match (entries.next(), entries.next()) {
                (Some((name, value)), None) if name == "prefix" => {
                    Condition::AnythingButPrefix(pattern("prefix", value)?)
                }
                (Some((name, _)), None) => {
                    return Err(Error::filter_policy(format!(
                        "Unsupported anything-but pattern: {name}"
                    )));
                }
                _ => {
                    return Err(Error::filter_policy(
                        "Only one key allowed in match expression",
                    ));
                }
            }
        }
        other => Condition::AnythingBut(vec![literal(other)?]),
    })
}

fn cidr(text: &str) -> Result<Condition> {
    let Some((address, bits)) = text.split_once('/') else {
        return Err(Error::filter_policy("Malformed CIDR, one '/' required"));
    };
    let bits: u8 = bits
        .parse()
        .map_err(|_| Error::filter_policy("Malformed CIDR, mask bits must be an integer"))?;
    let network = IpAddr::from_str(address)
        .map_err(|_| Error::filter_policy(format!("Nonstandard IP address: {address}")))?;
    let max = if network.is_ipv4() { 32 } else { 128 };
    if bits > max {
        return Err(Error::filter_policy(format!(
            "Malformed CIDR, mask bits must be between 0 and {max}"
        )));
    }
    Ok(Condition::Cidr { network, bits })
}

fn numeric(argument: &Value) -> Result<Condition> {
    let Value::Array(items) = argument else {
        return Err(Error::filter_policy(format!(
            "Invalid member in numeric match: {}",
            json_text(argument)
        )));
    };
    let Some(first) = items.first() else {
        return Err(Error::filter_policy("Invalid member in numeric match: ]"));
    };
    let Value::String(op) = first else {
        return Err(Error::filter_policy(format!(
            "Invalid member in numeric match: {}",
            json_text(first)
        )));
    };
    let value = |at: usize, op: &str| -> Result<Fixed> {
        match items.get(at) {
            Some(Value::Number(n)) => number(n),
            _ => Err(Error::filter_policy(format!(
                "Value of {} must be numeric",
                if op == "=" { "equals" } else { op }
            ))),
        }
    };
    let bound = |op: &str, v: Fixed| (v, op.ends_with('='));
    match op.as_str() {
        "=" => {
            let v = value(1, op)?;
            if items.len() > 2 {
                return Err(Error::filter_policy(
                    "Too many elements in numeric expression",
                ));
            }
            Ok(Condition::Numeric {
                lower: Some((v, true)),
                upper: Some((v, true)),
            })
        }
        "<" | "<=" => {
            let v = value(1, op)?;
            if items.len() > 2 {
                return Err(Error::filter_policy(
                    "Too many elements in numeric expression",
                ));
            }
            Ok(Condition::Numeric {
                lower: None,
                upper: Some(bound(op, v)),
            })
        }
        ">" | ">=" => {
            let low = value(1, op)?;
            let lower = Some(bound(op, low));
            let Some(second) = items.get(2) else {
                return Ok(Condition::Numeric { lower, upper: None });
            };
            let op2 = match second {
                Value::String(op2) if op2 == "<" || op2 == "<=" => op2.as_str(),
                Value::String(op2) => {
                    return Err(Error::filter_policy(format!(
                        "Bad numeric range operator: {op2}"
                    )));
                }
                other => {
                    return Err(Error::filter_policy(format!(
                        "Bad value in numeric range: {}",
                        json_text(other)
                    )));
                }
            };
            let high = value(3, op2)?;
            if items.len() > 4 {
                return Err(Error::filter_policy(
                    "Too many terms in numeric range expression",
                ));
            }
            if low >= high {
                return Err(Error::filter_policy("Bottom must be less than top"));
            }
            Ok(Condition::Numeric {
                lower,
                upper: Some(bound(op2, high)),
            })
        }
        other => Err(Error::filter_policy(format!(
            "Unrecognized numeric range operator: {other}"
        ))),
    }
}

/// The filter policies of a topic's subscriptions, indexed so that a message is evaluated only
/// against the policies it can match: a policy with an exact-match key (say
/// `"store": ["a", "b"]`) is looked up by the message's value for that key, so 1,000
/// subscriptions with distinct exact-match policies cost a few lookups per message, not 1,000
/// evaluations. Policies without such a key, and subscriptions without a policy, are checked
/// for every message.
#[derive(Debug, Clone)]
pub struct PolicySet<K> {
    entries: Vec<(K, Option<FilterPolicy>)>,
    /// `(key path, exact value)` to the entries anchored on it.
    anchored: std::collections::HashMap<(Vec<String>, String), Vec<usize>>,
    /// The key paths anchors use, each once.
    anchor_paths: Vec<Vec<String>>,
    /// Entries every message is checked against.
    unanchored: Vec<usize>,
}

impl<K> Default for PolicySet<K> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            anchored: std::collections::HashMap::new(),
            anchor_paths: Vec::new(),
            unanchored: Vec::new(),
        }
    }
}

impl FilterPolicy {
    /// A root key all of whose conditions are exact strings: the values a message must have
    /// there to match.
    fn anchor(&self) -> Option<(&Vec<String>, Vec<&str>)> {
        self.root.keys.iter().find_map(|(path, conditions)| {
            let values: Option<Vec<&str>> = conditions
                .iter()
                .map(|c| match c {
                    Condition::String(s) => Some(s.as_str()),
                    _ => None,
                })
                .collect();
            values.map(|v| (path, v))
        })
    }
}

impl<K: Clone> PolicySet<K> {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds the set from `(key, policy)` pairs; `None` accepts every message.
    pub fn from_entries(entries: impl IntoIterator<Item = (K, Option<FilterPolicy>)>) -> Self {
        let mut set = Self::default();
        for (key, policy) in entries {
            set.push(key, policy);
        }
        set
    }

    fn push(&mut self, key: K, policy: Option<FilterPolicy>) {
        let at = self.entries.len();
        match policy.as_ref().and_then(FilterPolicy::anchor) {
            Some((path, values)) => {
                if !self.anchor_paths.contains(path) {
                    self.anchor_paths.push(path.clone());
                }
                for value in values {
                    self.anchored
                        .entry((path.clone(), value.to_owned()))
                        .or_default()
                        .push(at);
                }
            }
            None => self.unanchored.push(at),
        }
        self.entries.push((key, policy));
    }

    /// How many entries the set holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the set is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The keys whose policies the message satisfies (each policy in its own scope), in the
    /// order they were added.
    pub fn matching(&self, body: &str, attributes: &BTreeMap<String, MessageAttribute>) -> Vec<K> {
        let parsed_body: Option<Value> = serde_json::from_str(body).ok();
        let mut candidates = self.unanchored.clone();
        for path in &self.anchor_paths {
            let mut values: Vec<String> = Vec::new();
            if let Some(attribute) = path.first().and_then(|name| attributes.get(name))
                && path.len() == 1
            {
                values.extend(
                    attribute_values(attribute)
                        .into_iter()
                        .filter_map(|f| match f {
                            Found::String(s) => Some(s.into_owned()),
                            _ => None,
                        }),
                );
            }
            if let Some(Value::Object(_)) = &parsed_body {
                let segments: Vec<&str> = path.iter().flat_map(|key| key.split('.')).collect();
                let mut found = Vec::new();
                collect(
                    parsed_body.as_ref().unwrap_or(&Value::Null),
                    &segments,
                    &mut found,
                );
                values.extend(found.into_iter().filter_map(|f| match f {
                    Found::String(s) => Some(s.into_owned()),
                    _ => None,
                }));
            }
            for value in values {
                if let Some(entries) = self.anchored.get(&(path.clone(), value)) {
                    candidates.extend(entries);
                }
            }
        }
        candidates.sort_unstable();
        candidates.dedup();
        candidates
            .into_iter()
            .filter(|&at| {
                self.entries[at]
                    .1
                    .as_ref()
                    .is_none_or(|policy| policy.matches_parsed(parsed_body.as_ref(), attributes))
            })
            .map(|at| self.entries[at].0.clone())
            .collect()
    }
}
