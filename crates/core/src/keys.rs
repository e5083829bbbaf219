//! Order-preserving tuple encoding for keys.
//!
//! A key is a tuple of elements (`u64`, `i64`, strings, bytes, decimals) encoded so that byte
//! order equals tuple order: element by element, each by its natural order, a shorter tuple
//! before any longer tuple it is a prefix of. The encoding of a tuple is a byte prefix of the
//! encoding of every longer tuple that starts with it, so a prefix scan finds all of them.
//!
//! ```
//! use cloudlet_core::keys::{Decimal, Tuple};
//!
//! let a = Tuple::new().str("orders").decimal(&Decimal::parse("-2.5")?).build();
//! let b = Tuple::new().str("orders").decimal(&Decimal::parse("10")?).build();
//! assert!(a < b);
//! # Ok::<(), cloudlet_core::Error>(())
//! ```
//!
//! Elements of different types order by type: bytes, string, decimal, `i64`, `u64`. A key
//! schema mixes types only at fixed positions, so this order rarely matters.

use std::cmp::Ordering;
use std::fmt;

use bytes::Bytes;

use crate::{Error, Result};

const TAG_BYTES: u8 = 0x01;
const TAG_STRING: u8 = 0x02;
const TAG_DECIMAL: u8 = 0x03;
const TAG_I64: u8 = 0x04;
const TAG_U64: u8 = 0x05;

const DECIMAL_NEGATIVE: u8 = 0x01;
const DECIMAL_ZERO: u8 = 0x02;
const DECIMAL_POSITIVE: u8 = 0x03;

/// Builds an encoded key, element by element.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tuple {
    bytes: Vec<u8>,
}

impl Tuple {
    /// An empty tuple.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a `u64`.
    pub fn u64(mut self, value: u64) -> Self {
        self.bytes.push(TAG_U64);
        self.bytes.extend_from_slice(&value.to_be_bytes());
        self
    }

    /// Appends an `i64`.
    pub fn i64(mut self, value: i64) -> Self {
        self.bytes.push(TAG_I64);
        self.bytes
            .extend_from_slice(&((value as u64) ^ (1 << 63)).to_be_bytes());
        self
    }

    /// Appends a string.
    pub fn str(mut self, value: &str) -> Self {
        self.bytes.push(TAG_STRING);
        escape_into(&mut self.bytes, value.as_bytes());
        self.bytes.push(0x00);
        self
    }

    /// Appends a byte string.
    pub fn bytes(mut self, value: &[u8]) -> Self {
        self.bytes.push(TAG_BYTES);
        escape_into(&mut self.bytes, value);
        self.bytes.push(0x00);
        self
    }

    /// Appends a string *prefix*: the result is a prefix of every key whose next element is a
    /// string starting with `prefix`. Use it only as the last element, for prefix scans.
    pub fn str_prefix(mut self, prefix: &str) -> Self {
        self.bytes.push(TAG_STRING);
        escape_into(&mut self.bytes, prefix.as_bytes());
        self
    }

    /// Appends a byte-string prefix; see [`str_prefix`](Self::str_prefix).
    pub fn bytes_prefix(mut self, prefix: &[u8]) -> Self {
        self.bytes.push(TAG_BYTES);
        escape_into(&mut self.bytes, prefix);
        self
    }

    /// Appends a decimal number, ordered numerically.
    pub fn decimal(mut self, value: &Decimal) -> Self {
        self.bytes.push(TAG_DECIMAL);
        value.encode_into(&mut self.bytes);
        self
    }

    /// Appends any element.
    pub fn element(self, element: &Element) -> Self {
        match element {
            Element::Bytes(b) => self.bytes(b),
            Element::String(s) => self.str(s),
            Element::Decimal(d) => self.decimal(d),
            Element::I64(i) => self.i64(*i),
            Element::U64(u) => self.u64(*u),
        }
    }

    /// The encoded key.
    pub fn build(self) -> Bytes {
        Bytes::from(self.bytes)
    }

    /// The encoded key so far, borrowed.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

fn escape_into(out: &mut Vec<u8>, value: &[u8]) {
    for &b in value {
        out.push(b);
        if b == 0x00 {
            out.push(0xFF);
        }
    }
}

/// One decoded element of a key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Element {
    /// A byte string.
    Bytes(Bytes),
    /// A string.
    String(String),
    /// A decimal number.
    Decimal(Decimal),
    /// A signed integer.
    I64(i64),
    /// An unsigned integer.
    U64(u64),
}

impl Element {
    fn rank(&self) -> u8 {
        match self {
            Self::Bytes(_) => TAG_BYTES,
            Self::String(_) => TAG_STRING,
            Self::Decimal(_) => TAG_DECIMAL,
            Self::I64(_) => TAG_I64,
            Self::U64(_) => TAG_U64,
        }
    }
}

impl PartialOrd for Element {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The order the encoding preserves.
impl Ord for Element {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Self::Bytes(a), Self::Bytes(b)) => a.cmp(b),
            (Self::String(a), Self::String(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Self::Decimal(a), Self::Decimal(b)) => a.cmp(b),
            (Self::I64(a), Self::I64(b)) => a.cmp(b),
            (Self::U64(a), Self::U64(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

/// Reads the elements of an encoded key one at a time.
#[derive(Debug, Clone)]
pub struct TupleReader<'a> {
    rest: &'a [u8],
}

fn malformed(reason: &str) -> Error {
    Error::invalid("key", format!("malformed tuple encoding: {reason}"))
}

impl<'a> TupleReader<'a> {
    /// A reader over `key`.
    pub fn new(key: &'a [u8]) -> Self {
        Self { rest: key }
    }

    /// True when every element has been read.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The bytes not yet read.
    pub fn remaining(&self) -> &'a [u8] {
        self.rest
    }

    fn tag(&mut self, expected: u8, name: &str) -> Result<()> {
        match self.rest.split_first() {
            Some((&tag, rest)) if tag == expected => {
                self.rest = rest;
                Ok(())
            }
            Some(_) => Err(malformed(&format!("the next element is not a {name}"))),
            None => Err(malformed(&format!("expected a {name}, found the end"))),
        }
    }

    fn fixed8(&mut self) -> Result<[u8; 8]> {
        let (head, rest) = self
            .rest
            .split_first_chunk::<8>()
            .ok_or_else(|| malformed("a number is cut short"))?;
        self.rest = rest;
        Ok(*head)
    }

    fn escaped(&mut self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut i = 0;
        loop {
            match self.rest.get(i) {
                None => return Err(malformed("a string has no terminator")),
                Some(0x00) if self.rest.get(i + 1) == Some(&0xFF) => {
                    out.push(0x00);
                    i += 2;
                }
                Some(0x00) => {
                    self.rest = &self.rest[i + 1..];
                    return Ok(out);
                }
                Some(&b) => {
                    out.push(b);
                    i += 1;
                }
            }
        }
    }

    /// Reads a `u64`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the next element is not a `u64`.
    pub fn u64(&mut self) -> Result<u64> {
        self.tag(TAG_U64, "u64")?;
        Ok(u64::from_be_bytes(self.fixed8()?))
    }

    /// Reads an `i64`.
    ///
    /// # Errors
    /// As [`u64`](Self::u64).
    pub fn i64(&mut self) -> Result<i64> {
        self.tag(TAG_I64, "i64")?;
        Ok((u64::from_be_bytes(self.fixed8()?) ^ (1 << 63)) as i64)
    }

    /// Reads a string.
    ///
    /// # Errors
    /// As [`u64`](Self::u64), or when the string is not UTF-8.
    pub fn str(&mut self) -> Result<String> {
        self.tag(TAG_STRING, "string")?;
        String::from_utf8(self.escaped()?).map_err(|_| malformed("a string is not UTF-8"))
    }

    /// Reads a byte string.
    ///
    /// # Errors
    /// As [`u64`](Self::u64).
    pub fn bytes(&mut self) -> Result<Bytes> {
        self.tag(TAG_BYTES, "byte string")?;
        Ok(Bytes::from(self.escaped()?))
    }

    /// Reads a decimal.
    ///
    /// # Errors
    /// As [`u64`](Self::u64).
    pub fn decimal(&mut self) -> Result<Decimal> {
        self.tag(TAG_DECIMAL, "decimal")?;
        let (decimal, used) = Decimal::decode(self.rest)?;
        self.rest = &self.rest[used..];
        Ok(decimal)
    }

    /// Reads the next element, whatever its type.
    ///
    /// # Errors
    /// When the key is malformed.
    pub fn element(&mut self) -> Result<Element> {
        match self.rest.first() {
            Some(&TAG_BYTES) => self.bytes().map(Element::Bytes),
            Some(&TAG_STRING) => self.str().map(Element::String),
            Some(&TAG_DECIMAL) => self.decimal().map(Element::Decimal),
            Some(&TAG_I64) => self.i64().map(Element::I64),
            Some(&TAG_U64) => self.u64().map(Element::U64),
            Some(_) => Err(malformed("unknown element type")),
            None => Err(malformed("no more elements")),
        }
    }
}

/// Decodes every element of `key`.
///
/// # Errors
/// [`Error::InvalidArgument`] when `key` is not a valid tuple encoding.
pub fn decode(key: &[u8]) -> Result<Vec<Element>> {
    let mut reader = TupleReader::new(key);
    let mut elements = Vec::new();
    while !reader.is_empty() {
        elements.push(reader.element()?);
    }
    Ok(elements)
}

/// An exact decimal number, as DynamoDB's `N` type holds it: a sign, significant digits and an
/// exponent, with no rounding. `1.50`, `1.5` and `15E-1` are the same number.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Decimal {
    negative: bool,
    /// The value is `0.d1 d2 d3 ... × 10^exponent`.
    exponent: i32,
    /// Significant digits 0-9, no leading or trailing zeros; empty for zero.
    digits: Vec<u8>,
}

/// The exponent range the encoding supports (DynamoDB needs -129..=126).
const EXPONENT_LIMIT: i32 = i16::MAX as i32;

impl Decimal {
    /// Zero.
    pub fn zero() -> Self {
        Self {
            negative: false,
            exponent: 0,
            digits: Vec::new(),
        }
    }

    /// Parses decimal notation: an optional sign, digits with an optional point, and an
    /// optional exponent (`-12.5`, `.5`, `1e10`, `7E-3`).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `number` when the text is not a number or its
    /// magnitude is outside ±10^32767.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = || Error::invalid("number", format!("`{text}` is not a decimal number"));
        let (negative, unsigned) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let (mantissa, exp_text) = match unsigned.find(['e', 'E']) {
            Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
            None => (unsigned, None),
        };
        let explicit_exponent: i64 = match exp_text {
            Some(e) => {
                let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                // Saturate: absurd exponents are rejected below as out of range.
                e.parse::<i64>().unwrap_or(if e.starts_with('-') {
                    i64::MIN / 2
                } else {
                    i64::MAX / 2
                })
            }
            None => 0,
        };
        let (int_part, frac_part) = match mantissa.find('.') {
            Some(at) => (&mantissa[..at], &mantissa[at + 1..]),
            None => (mantissa, ""),
        };
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if (int_part.is_empty() && frac_part.is_empty())
            || !all_digits(int_part)
            || !all_digits(frac_part)
        {
            return Err(bad());
        }
        let mut digits: Vec<u8> = int_part
            .bytes()
            .chain(frac_part.bytes())
            .map(|b| b - b'0')
            .collect();
        // Position of the point relative to the start of `digits`.
        let mut point = int_part.len() as i64;
        let leading = digits.iter().take_while(|&&d| d == 0).count();
        digits.drain(..leading);
        point -= leading as i64;
        while digits.last() == Some(&0) {
            digits.pop();
        }
        if digits.is_empty() {
            return Ok(Self::zero());
        }
        let exponent = point.saturating_add(explicit_exponent);
        if exponent.abs() > i64::from(EXPONENT_LIMIT) {
            return Err(Error::invalid(
                "number",
                format!("`{text}` is outside the supported range of ±10^{EXPONENT_LIMIT}"),
            ));
        }
        Ok(Self {
            negative,
            exponent: exponent as i32,
            digits,
        })
    }

    /// True for zero.
    pub fn is_zero(&self) -> bool {
        self.digits.is_empty()
    }

    /// True for numbers below zero.
    pub fn is_negative(&self) -> bool {
        self.negative
    }

    /// The number of significant digits (DynamoDB allows 38).
    pub fn significant_digits(&self) -> usize {
        self.digits.len()
    }

    /// The power of ten of the most significant digit, plus one: the value is
    /// `0.d1 d2 ... × 10^exponent`. `1` has exponent 1, `0.05` has exponent -1.
    pub fn exponent(&self) -> i32 {
        self.exponent
    }

    /// The number with its sign flipped.
    pub fn negated(&self) -> Self {
        let mut out = self.clone();
        out.negative = !self.negative && !self.is_zero();
        out
    }

    /// The exact sum, with no rounding (the result may have more digits than either operand).
    pub fn plus(&self, other: &Self) -> Self {
        if self.is_zero() {
            return other.clone();
        }
        if other.is_zero() {
            return self.clone();
        }
        // Align both on a common grid of digit positions from `high` (exclusive) down to `low`.
        let low_of = |d: &Self| i64::from(d.exponent) - d.digits.len() as i64;
        let low = low_of(self).min(low_of(other));
        let high = i64::from(self.exponent.max(other.exponent));
        let width = (high - low) as usize;
        let aligned = |d: &Self| {
            let mut out = vec![0u8; width];
            let start = (high - i64::from(d.exponent)) as usize;
            out[start..start + d.digits.len()].copy_from_slice(&d.digits);
            out
        };
        let (a, b) = (aligned(self), aligned(other));
        let (negative, mut magnitude) = if self.negative == other.negative {
            (self.negative, add_digits(&a, &b))
        } else {
            match a.cmp(&b) {
                Ordering::Equal => return Self::zero(),
                Ordering::Greater => (self.negative, sub_digits(&a, &b)),
                Ordering::Less => (other.negative, sub_digits(&b, &a)),
            }
        };
        // `magnitude` has one more leading position than the grid: its top is at `high + 1`.
        let leading = magnitude.iter().take_while(|&&d| d == 0).count();
        magnitude.drain(..leading);
        while magnitude.last() == Some(&0) {
            magnitude.pop();
        }
        Self {
            negative,
            exponent: (high + 1 - leading as i64) as i32,
            digits: magnitude,
        }
    }

    /// The exact difference `self - other`.
    pub fn minus(&self, other: &Self) -> Self {
        self.plus(&other.negated())
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        if self.is_zero() {
            out.push(DECIMAL_ZERO);
            return;
        }
        let flip = if self.negative { 0xFF } else { 0x00 };
        out.push(if self.negative {
            DECIMAL_NEGATIVE
        } else {
            DECIMAL_POSITIVE
        });
        let biased = (self.exponent + 0x8000) as u16;
        out.extend(biased.to_be_bytes().iter().map(|b| b ^ flip));
        for pair in self.digits.chunks(2) {
            let high = pair[0] + 1;
            let low = pair.get(1).map_or(0, |d| d + 1);
            out.push(((high << 4) | low) ^ flip);
        }
        out.push(flip);
    }

    /// Decodes an encoded decimal, returning it and the number of bytes used.
    fn decode(bytes: &[u8]) -> Result<(Self, usize)> {
        let cut = || malformed("a decimal is cut short");
        let (&class, rest) = bytes.split_first().ok_or_else(cut)?;
        let negative = match class {
            DECIMAL_ZERO => return Ok((Self::zero(), 1)),
            DECIMAL_NEGATIVE => true,
            DECIMAL_POSITIVE => false,
            _ => return Err(malformed("bad decimal sign")),
        };
        let flip = if negative { 0xFF } else { 0x00 };
        let (exp, rest) = rest.split_first_chunk::<2>().ok_or_else(cut)?;
        let exponent = i32::from(u16::from_be_bytes([exp[0] ^ flip, exp[1] ^ flip])) - 0x8000;
        let mut digits = Vec::new();
        for (i, &raw) in rest.iter().enumerate() {
            let byte = raw ^ flip;
            if byte == 0 {
                if digits.is_empty() || digits.last() == Some(&0) {
                    return Err(malformed("a decimal has no significant digits"));
                }
                let decimal = Self {
                    negative,
                    exponent,
                    digits,
                };
                return Ok((decimal, 1 + 2 + i + 1));
            }
            let (high, low) = (byte >> 4, byte & 0x0F);
            if !(1..=10).contains(&high) || low > 10 || (i == 0 && high == 1) {
                // A leading zero digit would be a second, non-canonical form of a number.
                return Err(malformed("bad decimal digit"));
            }
            digits.push(high - 1);
            if low == 0 {
                // An odd digit count pads the last byte; the terminator must follow.
                if rest.get(i + 1).map(|b| b ^ flip) != Some(0) {
                    return Err(malformed("bad decimal padding"));
                }
            } else {
                digits.push(low - 1);
            }
        }
        Err(cut())
    }

    fn cmp_magnitude(&self, other: &Self) -> Ordering {
        match (self.is_zero(), other.is_zero()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            (false, false) => self
                .exponent
                .cmp(&other.exponent)
                .then_with(|| self.digits.cmp(&other.digits)),
        }
    }
}

/// Adds two equally long digit strings (most significant first); the result is one longer.
fn add_digits(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; a.len() + 1];
    let mut carry = 0;
    for i in (0..a.len()).rev() {
        let sum = a[i] + b[i] + carry;
        out[i + 1] = sum % 10;
        carry = sum / 10;
    }
    out[0] = carry;
    out
}

/// Subtracts `b` from `a` (equally long, `a >= b`); the result is one longer, led by zero.
fn sub_digits(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; a.len() + 1];
    let mut borrow = 0;
    for i in (0..a.len()).rev() {
        let (mut digit, subtrahend) = (a[i], b[i] + borrow);
        borrow = u8::from(digit < subtrahend);
        digit += borrow * 10;
        out[i + 1] = digit - subtrahend;
    }
    out
}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Numeric order.
impl Ord for Decimal {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.negative, other.negative) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => self.cmp_magnitude(other),
            (true, true) => other.cmp_magnitude(self),
        }
    }
}

/// The canonical form DynamoDB returns: plain notation, no exponent, no redundant zeros.
impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return f.write_str("0");
        }
        if self.negative {
            f.write_str("-")?;
        }
        let digit = |d: &u8| char::from(b'0' + d);
        let len = self.digits.len() as i64;
        let exponent = i64::from(self.exponent);
        if exponent <= 0 {
            f.write_str("0.")?;
            for _ in 0..-exponent {
                f.write_str("0")?;
            }
            self.digits
                .iter()
                .try_for_each(|d| f.write_fmt(format_args!("{}", digit(d))))
        } else if exponent >= len {
            self.digits
                .iter()
                .try_for_each(|d| f.write_fmt(format_args!("{}", digit(d))))?;
            (0..exponent - len).try_for_each(|_| f.write_str("0"))
        } else {
            let (int, frac) = self.digits.split_at(exponent as usize);
            int.iter()
                .try_for_each(|d| f.write_fmt(format_args!("{}", digit(d))))?;
            f.write_str(".")?;
            frac.iter()
                .try_for_each(|d| f.write_fmt(format_args!("{}", digit(d))))
        }
    }
}

impl fmt::Debug for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Decimal({self})")
    }
}

impl std::str::FromStr for Decimal {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        Self::parse(text)
    }
}

impl serde::Serialize for Decimal {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Decimal {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}
