//! Attribute values, numbers and items, with DynamoDB's limits and size rules.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use base64::Engine as _;
use bytes::Bytes;
use cloudlet_core::keys::Decimal;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// An item: attribute names to values. Keys are items too (the key attributes alone).
pub type Item = BTreeMap<String, AttributeValue>;

/// The most significant digits a number may have.
pub const MAX_NUMBER_DIGITS: usize = 38;
/// The largest item, attribute names included, in bytes.
pub const MAX_ITEM_SIZE: usize = 400 * 1024;
/// The deepest nesting of lists and maps.
pub const MAX_NESTING_DEPTH: usize = 32;

/// A DynamoDB number: exact decimal, up to 38 significant digits, magnitude from 1E-130 to
/// below 1E126. `1.50`, `1.5` and `15E-1` are the same number, displayed as `1.5`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Number(Decimal);

impl Number {
    /// Parses a number as DynamoDB accepts it.
    ///
    /// # Errors
    /// [`Error::Validation`] when the text is not a number, has more than 38 significant
    /// digits, or is outside DynamoDB's range.
    pub fn parse(text: &str) -> Result<Self> {
        let decimal = Decimal::parse(text.trim()).map_err(|_| {
            Error::validation(
                "N",
                format!("The parameter cannot be converted to a numeric value: {text}"),
            )
        })?;
        Self::checked(decimal)
    }

    fn checked(decimal: Decimal) -> Result<Self> {
        if decimal.significant_digits() > MAX_NUMBER_DIGITS {
            return Err(Error::validation(
                "N",
                "Attempting to store more than 38 significant digits in a Number",
            ));
        }
        if !decimal.is_zero() {
            if decimal.exponent() > 126 {
                return Err(Error::validation(
                    "N",
                    "Number overflow. Attempting to store a number with magnitude larger than supported range",
                ));
            }
            if decimal.exponent() < -129 {
                return Err(Error::validation(
                    "N",
                    "Number underflow. Attempting to store a number with magnitude smaller than supported range",
                ));
            }
        }
        Ok(Self(decimal))
    }

    /// The exact sum.
    ///
    /// # Errors
    /// [`Error::Validation`] when the sum needs more than 38 digits or leaves the range.
    pub fn checked_add(&self, other: &Self) -> Result<Self> {
        Self::checked(self.0.plus(&other.0))
    }

    /// The exact difference.
    ///
    /// # Errors
    /// As [`checked_add`](Self::checked_add).
    pub fn checked_sub(&self, other: &Self) -> Result<Self> {
        Self::checked(self.0.minus(&other.0))
    }

    /// The decimal value.
    pub fn as_decimal(&self) -> &Decimal {
        &self.0
    }

    /// The size DynamoDB charges: one byte, plus one per two significant digits of the integer
    /// part and of the fraction, plus one if negative. Zero costs one byte.
    pub fn size(&self) -> usize {
        let digits = self.0.significant_digits();
        if digits == 0 {
            return 1;
        }
        let integer = usize::try_from(self.0.exponent()).unwrap_or(0).min(digits);
        1 + integer.div_ceil(2) + (digits - integer).div_ceil(2) + usize::from(self.0.is_negative())
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Number({})", self.0)
    }
}

impl std::str::FromStr for Number {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        Self::parse(text)
    }
}

macro_rules! number_from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Number {
            fn from(value: $t) -> Self {
                // Every integer of these types has at most 20 digits: always valid.
                Self(Decimal::parse(&value.to_string()).unwrap_or_else(|_| Decimal::zero()))
            }
        }
        impl From<$t> for AttributeValue {
            fn from(value: $t) -> Self {
                Self::N(Number::from(value))
            }
        }
    )*};
}
number_from_int!(i8, i16, i32, i64, u8, u16, u32, u64, usize);

impl Serialize for Number {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The type of an attribute value, named as DynamoDB names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[allow(clippy::upper_case_acronyms)]
pub enum ValueType {
    /// String.
    S,
    /// Number.
    N,
    /// Binary.
    B,
    /// Boolean.
    BOOL,
    /// Null.
    NULL,
    /// List.
    L,
    /// Map.
    M,
    /// String set.
    SS,
    /// Number set.
    NS,
    /// Binary set.
    BS,
}

impl ValueType {
    /// The type's name: `S`, `N`, `B`, `BOOL`, `NULL`, `L`, `M`, `SS`, `NS`, `BS`.
    pub fn name(self) -> &'static str {
        match self {
            Self::S => "S",
            Self::N => "N",
            Self::B => "B",
            Self::BOOL => "BOOL",
            Self::NULL => "NULL",
            Self::L => "L",
            Self::M => "M",
            Self::SS => "SS",
            Self::NS => "NS",
            Self::BS => "BS",
        }
    }

    /// The type named `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "S" => Self::S,
            "N" => Self::N,
            "B" => Self::B,
            "BOOL" => Self::BOOL,
            "NULL" => Self::NULL,
            "L" => Self::L,
            "M" => Self::M,
            "SS" => Self::SS,
            "NS" => Self::NS,
            "BS" => Self::BS,
            _ => return None,
        })
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A DynamoDB attribute value. Serialized as DynamoDB's JSON (`{"S": "text"}`,
/// `{"N": "1.5"}`, `{"B": "<base64>"}`, ...). Sets are ordered sets: DynamoDB's sets have no
/// order and no duplicates.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "Wire", into = "Wire")]
pub enum AttributeValue {
    /// A string.
    S(String),
    /// A number.
    N(Number),
    /// Binary.
    B(Bytes),
    /// A boolean.
    Bool(bool),
    /// Null.
    Null,
    /// A list.
    L(Vec<AttributeValue>),
    /// A map.
    M(Item),
    /// A string set (never empty).
    Ss(BTreeSet<String>),
    /// A number set (never empty).
    Ns(BTreeSet<Number>),
    /// A binary set (never empty).
    Bs(BTreeSet<Bytes>),
}

impl AttributeValue {
    /// A string value.
    pub fn s(text: impl Into<String>) -> Self {
        Self::S(text.into())
    }

    /// A number value from its decimal text.
    ///
    /// # Errors
    /// As [`Number::parse`].
    pub fn n(text: &str) -> Result<Self> {
        Number::parse(text).map(Self::N)
    }

    /// A binary value.
    pub fn b(bytes: impl Into<Bytes>) -> Self {
        Self::B(bytes.into())
    }

    /// A string set.
    pub fn ss<S: Into<String>>(values: impl IntoIterator<Item = S>) -> Self {
        Self::Ss(values.into_iter().map(Into::into).collect())
    }

    /// A number set.
    pub fn ns<N: Into<Number>>(values: impl IntoIterator<Item = N>) -> Self {
        Self::Ns(values.into_iter().map(Into::into).collect())
    }

    /// A map.
    pub fn m<K: Into<String>>(entries: impl IntoIterator<Item = (K, AttributeValue)>) -> Self {
        Self::M(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// The value's type.
    pub fn value_type(&self) -> ValueType {
        match self {
            Self::S(_) => ValueType::S,
            Self::N(_) => ValueType::N,
            Self::B(_) => ValueType::B,
            Self::Bool(_) => ValueType::BOOL,
            Self::Null => ValueType::NULL,
            Self::L(_) => ValueType::L,
            Self::M(_) => ValueType::M,
            Self::Ss(_) => ValueType::SS,
            Self::Ns(_) => ValueType::NS,
            Self::Bs(_) => ValueType::BS,
        }
    }

    /// The string, if this is one.
    pub fn as_s(&self) -> Option<&str> {
        match self {
            Self::S(s) => Some(s),
            _ => None,
        }
    }

    /// The number, if this is one.
    pub fn as_n(&self) -> Option<&Number> {
        match self {
            Self::N(n) => Some(n),
            _ => None,
        }
    }

    /// The size DynamoDB charges for this value (without an attribute name).
    pub fn size(&self) -> usize {
        match self {
            Self::S(s) => s.len(),
            Self::N(n) => n.size(),
            Self::B(b) => b.len(),
            Self::Bool(_) | Self::Null => 1,
            Self::L(list) => 3 + list.iter().map(|v| v.size() + 1).sum::<usize>(),
            Self::M(map) => {
                3 + map
                    .iter()
                    .map(|(k, v)| k.len() + v.size() + 1)
                    .sum::<usize>()
            }
            Self::Ss(set) => set.iter().map(String::len).sum(),
            Self::Ns(set) => set.iter().map(Number::size).sum(),
            Self::Bs(set) => set.iter().map(Bytes::len).sum(),
        }
    }

    /// Checks what the type system cannot: sets are not empty, nesting is at most 32 deep.
    ///
    /// # Errors
    /// [`Error::Validation`] naming `field`.
    pub fn validate(&self, field: &'static str) -> Result<()> {
        self.validate_at(field, 0)
    }

    fn validate_at(&self, field: &'static str, depth: usize) -> Result<()> {
        let empty_set = |what: &str| {
            Err(Error::validation(
                field,
                format!("One or more parameter values were invalid: {what}"),
            ))
        };
        match self {
            Self::Ss(s) if s.is_empty() => empty_set("An string set  may not be empty"),
            Self::Ns(s) if s.is_empty() => empty_set("An number set  may not be empty"),
            Self::Bs(s) if s.is_empty() => empty_set("Binary sets should not be empty"),
            Self::L(_) | Self::M(_) if depth >= MAX_NESTING_DEPTH => Err(Error::validation(
                field,
                "Nesting Levels have exceeded supported limits: Attribute exceeds the maximum nesting depth of 32",
            )),
            Self::L(list) => list
                .iter()
                .try_for_each(|v| v.validate_at(field, depth + 1)),
            Self::M(map) => map
                .values()
                .try_for_each(|v| v.validate_at(field, depth + 1)),
            _ => Ok(()),
        }
    }
}

/// The size DynamoDB charges for an item: each attribute's name and value.
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + v.size()).sum()
}

impl fmt::Debug for AttributeValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::S(s) => write!(f, "S({s:?})"),
            Self::N(n) => write!(f, "N({n})"),
            Self::B(b) => write!(f, "B({b:?})"),
            Self::Bool(b) => write!(f, "BOOL({b})"),
            Self::Null => f.write_str("NULL"),
            Self::L(l) => f.debug_tuple("L").field(l).finish(),
            Self::M(m) => f.debug_tuple("M").field(m).finish(),
            Self::Ss(s) => f.debug_tuple("SS").field(s).finish(),
            Self::Ns(s) => f.debug_tuple("NS").field(s).finish(),
            Self::Bs(s) => f.debug_tuple("BS").field(s).finish(),
        }
    }
}

impl From<&str> for AttributeValue {
    fn from(value: &str) -> Self {
        Self::S(value.to_owned())
    }
}

impl From<String> for AttributeValue {
    fn from(value: String) -> Self {
        Self::S(value)
    }
}

impl From<bool> for AttributeValue {
    fn from(value: bool) -> Self {
        Self::Bool(value)
    }
}

impl From<Bytes> for AttributeValue {
    fn from(value: Bytes) -> Self {
        Self::B(value)
    }
}

impl From<Number> for AttributeValue {
    fn from(value: Number) -> Self {
        Self::N(value)
    }
}

impl From<Vec<AttributeValue>> for AttributeValue {
    fn from(value: Vec<AttributeValue>) -> Self {
        Self::L(value)
    }
}

impl From<Item> for AttributeValue {
    fn from(value: Item) -> Self {
        Self::M(value)
    }
}

/// Builds an [`Item`] from `(name, value)` pairs; values convert with `Into<AttributeValue>`.
///
/// ```
/// let item = cloudlet_kv::item([("pk", "user#1".into()), ("age", 42.into())]);
/// assert_eq!(item["age"], cloudlet_kv::AttributeValue::from(42));
/// ```
pub fn item<K: Into<String>>(entries: impl IntoIterator<Item = (K, AttributeValue)>) -> Item {
    entries.into_iter().map(|(k, v)| (k.into(), v)).collect()
}

/// DynamoDB's JSON shape, used by serde.
#[derive(Serialize, Deserialize)]
#[allow(clippy::upper_case_acronyms)]
enum Wire {
    S(String),
    N(String),
    B(String),
    BOOL(bool),
    NULL(bool),
    L(Vec<AttributeValue>),
    M(Item),
    SS(Vec<String>),
    NS(Vec<String>),
    BS(Vec<String>),
}

fn decode_base64(text: &str) -> Result<Bytes> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map(Bytes::from)
        .map_err(|_| Error::validation("B", "Invalid Base64 in a binary attribute value"))
}

fn unique<T: Ord>(values: impl IntoIterator<Item = T>, len: usize) -> Result<BTreeSet<T>> {
    let set: BTreeSet<T> = values.into_iter().collect();
    if set.len() != len {
        return Err(Error::validation(
            "set",
            "One or more parameter values were invalid: Input collection contains duplicates",
        ));
    }
    Ok(set)
}

impl TryFrom<Wire> for AttributeValue {
    type Error = Error;

    fn try_from(wire: Wire) -> Result<Self> {
        Ok(match wire {
            Wire::S(s) => Self::S(s),
            Wire::N(n) => Self::N(Number::parse(&n)?),
            Wire::B(b) => Self::B(decode_base64(&b)?),
            Wire::BOOL(b) => Self::Bool(b),
            Wire::NULL(true) => Self::Null,
            Wire::NULL(false) => {
                return Err(Error::validation(
                    "NULL",
                    "One or more parameter values were invalid: Null attribute value types must have the value of true",
                ));
            }
            Wire::L(l) => Self::L(l),
            Wire::M(m) => Self::M(m),
            Wire::SS(s) => {
                let len = s.len();
                Self::Ss(unique(s, len)?)
            }
            Wire::NS(s) => {
                let len = s.len();
                let numbers = s
                    .iter()
                    .map(|n| Number::parse(n))
                    .collect::<Result<Vec<_>>>()?;
                Self::Ns(unique(numbers, len)?)
            }
            Wire::BS(s) => {
                let len = s.len();
                let bytes = s
                    .iter()
                    .map(|b| decode_base64(b))
                    .collect::<Result<Vec<_>>>()?;
                Self::Bs(unique(bytes, len)?)
            }
        })
    }
}

impl From<AttributeValue> for Wire {
    fn from(value: AttributeValue) -> Self {
        let b64 = |b: &Bytes| base64::engine::general_purpose::STANDARD.encode(b);
        match value {
            AttributeValue::S(s) => Self::S(s),
            AttributeValue::N(n) => Self::N(n.to_string()),
            AttributeValue::B(b) => Self::B(b64(&b)),
            AttributeValue::Bool(b) => Self::BOOL(b),
            AttributeValue::Null => Self::NULL(true),
            AttributeValue::L(l) => Self::L(l),
            AttributeValue::M(m) => Self::M(m),
            AttributeValue::Ss(s) => Self::SS(s.into_iter().collect()),
            AttributeValue::Ns(s) => Self::NS(s.iter().map(ToString::to_string).collect()),
            AttributeValue::Bs(s) => Self::BS(s.iter().map(b64).collect()),
        }
    }
}
