//! The MD5 digests SQS returns with each message, computed exactly as SQS computes them: the
//! official SDKs recompute and compare them.

use std::collections::BTreeMap;

use cloudlet_core::{AttributeValue, MessageAttribute};
use md5::{Digest, Md5};

/// The byte before a String or Number value in the attribute digest.
const STRING_TRANSPORT: u8 = 1;
/// The byte before a Binary value.
const BINARY_TRANSPORT: u8 = 2;

/// `MD5OfMessageBody`: the lowercase hex MD5 of the body's bytes.
pub fn md5_of_body(body: &[u8]) -> String {
    hex(&Md5::digest(body))
}

/// `MD5OfMessageAttributes`: for each attribute in name order, the name and the data type,
/// each as a 4-byte big-endian length and its bytes, then a transport byte (1 for String and
/// Number, 2 for Binary) and the value, length-prefixed the same way. `None` when there are no
/// attributes.
pub fn md5_of_attributes(attributes: &BTreeMap<String, MessageAttribute>) -> Option<String> {
    if attributes.is_empty() {
        return None;
    }
    fn field(md5: &mut Md5, bytes: &[u8]) {
        md5.update((bytes.len() as u32).to_be_bytes());
        md5.update(bytes);
    }
    let mut md5 = Md5::new();
    for (name, attribute) in attributes {
        field(&mut md5, name.as_bytes());
        field(&mut md5, attribute.data_type().as_bytes());
        let (transport, value): (u8, &[u8]) = match &attribute.value {
            AttributeValue::Binary(value) => (BINARY_TRANSPORT, value),
            AttributeValue::String(value) | AttributeValue::Number(value) => {
                (STRING_TRANSPORT, value.as_bytes())
            }
            _ => continue,
        };
        md5.update([transport]);
        field(&mut md5, value);
    }
    Some(hex(&md5.finalize()))
}

/// The bytes that `text`, hex of even length, spells; `None` for anything else.
pub(crate) fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    text.as_bytes()
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect()
}

/// Lowercase hex, without a formatter per byte (this runs for every message sent).
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0F)]));
    }
    out
}
