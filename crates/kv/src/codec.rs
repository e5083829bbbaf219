//! The stored form of items: a compact tagged binary encoding.
//!
//! `FORMAT`, then the item: a varint count of attributes, each a length-prefixed name and a
//! value. A value is a tag byte and its payload; numbers are stored as their canonical text.

use std::collections::BTreeSet;

use bytes::Bytes;

use crate::value::{AttributeValue, Item, Number};

const FORMAT: u8 = 1;

const TAG_S: u8 = 0;
const TAG_N: u8 = 1;
const TAG_B: u8 = 2;
const TAG_FALSE: u8 = 3;
const TAG_TRUE: u8 = 4;
const TAG_NULL: u8 = 5;
const TAG_L: u8 = 6;
const TAG_M: u8 = 7;
const TAG_SS: u8 = 8;
const TAG_NS: u8 = 9;
const TAG_BS: u8 = 10;

/// Encodes an item for storage.
pub(crate) fn encode_item(item: &Item) -> Bytes {
    let mut out = Vec::with_capacity(64 + crate::value::item_size(item));
    out.push(FORMAT);
    write_map(&mut out, item);
    out.into()
}

/// Decodes a stored item.
pub(crate) fn decode_item(bytes: &Bytes) -> Result<Item, String> {
    let mut reader = Reader { bytes, at: 0 };
    if reader.byte()? != FORMAT {
        return Err("unknown item format".to_owned());
    }
    let item = reader.map(0)?;
    if reader.at != bytes.len() {
        return Err("trailing bytes after an item".to_owned());
    }
    Ok(item)
}

fn write_varint(out: &mut Vec<u8>, mut value: usize) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn write_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    write_varint(out, bytes.len());
    out.extend_from_slice(bytes);
}

fn write_map(out: &mut Vec<u8>, map: &Item) {
    write_varint(out, map.len());
    for (name, value) in map {
        write_bytes(out, name.as_bytes());
        write_value(out, value);
    }
}

fn write_value(out: &mut Vec<u8>, value: &AttributeValue) {
    match value {
        AttributeValue::S(s) => {
            out.push(TAG_S);
            write_bytes(out, s.as_bytes());
        }
        AttributeValue::N(n) => {
            out.push(TAG_N);
            write_bytes(out, n.to_string().as_bytes());
        }
        AttributeValue::B(b) => {
            out.push(TAG_B);
            write_bytes(out, b);
        }
        AttributeValue::Bool(b) => out.push(if *b { TAG_TRUE } else { TAG_FALSE }),
        AttributeValue::Null => out.push(TAG_NULL),
        AttributeValue::L(list) => {
            out.push(TAG_L);
            write_varint(out, list.len());
            list.iter().for_each(|v| write_value(out, v));
        }
        AttributeValue::M(map) => {
            out.push(TAG_M);
            write_map(out, map);
        }
        AttributeValue::Ss(set) => {
            out.push(TAG_SS);
            write_varint(out, set.len());
            set.iter().for_each(|s| write_bytes(out, s.as_bytes()));
        }
        AttributeValue::Ns(set) => {
            out.push(TAG_NS);
            write_varint(out, set.len());
            set.iter()
                .for_each(|n| write_bytes(out, n.to_string().as_bytes()));
        }
        AttributeValue::Bs(set) => {
            out.push(TAG_BS);
            write_varint(out, set.len());
            set.iter().for_each(|b| write_bytes(out, b));
        }
    }
}

struct Reader<'a> {
    bytes: &'a Bytes,
    at: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, String> {
        let byte = *self.bytes.get(self.at).ok_or("an item is cut short")?;
        self.at += 1;
        Ok(byte)
    }

    fn varint(&mut self) -> Result<usize, String> {
        let mut value = 0usize;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            value |= usize::from(byte & 0x7F) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("a length is too long".to_owned())
    }

    fn slice(&mut self) -> Result<Bytes, String> {
        let len = self.varint()?;
        let end = self
            .at
            .checked_add(len)
            .filter(|&end| end <= self.bytes.len())
            .ok_or("an item is cut short")?;
        let slice = self.bytes.slice(self.at..end);
        self.at = end;
        Ok(slice)
    }

    fn string(&mut self) -> Result<String, String> {
        String::from_utf8(self.slice()?.to_vec()).map_err(|_| "a string is not UTF-8".to_owned())
    }

    fn number(&mut self) -> Result<Number, String> {
        let text = self.string()?;
        Number::parse(&text).map_err(|e| e.to_string())
    }

    /// A count, bounded by the bytes left so corrupt input cannot ask for a huge allocation.
    fn count(&mut self) -> Result<usize, String> {
        let count = self.varint()?;
        if count > self.bytes.len() - self.at {
            return Err("a count exceeds the record".to_owned());
        }
        Ok(count)
    }

    fn map(&mut self, depth: usize) -> Result<Item, String> {
        let count = self.count()?;
        let mut map = Item::new();
        for _ in 0..count {
            let name = self.string()?;
            let value = self.value(depth)?;
            map.insert(name, value);
        }
        Ok(map)
    }

    fn value(&mut self, depth: usize) -> Result<AttributeValue, String> {
        if depth > crate::value::MAX_NESTING_DEPTH + 1 {
            return Err("an item nests too deeply".to_owned());
        }
        Ok(match self.byte()? {
            TAG_S => AttributeValue::S(self.string()?),
            TAG_N => AttributeValue::N(self.number()?),
            TAG_B => AttributeValue::B(self.slice()?),
            TAG_FALSE => AttributeValue::Bool(false),
            TAG_TRUE => AttributeValue::Bool(true),
            TAG_NULL => AttributeValue::Null,
            TAG_L => {
                let count = self.count()?;
                let list = (0..count)
                    .map(|_| self.value(depth + 1))
                    .collect::<Result<Vec<_>, _>>()?;
                AttributeValue::L(list)
            }
            TAG_M => AttributeValue::M(self.map(depth + 1)?),
            TAG_SS => {
                let count = self.count()?;
                let set = (0..count)
                    .map(|_| self.string())
                    .collect::<Result<BTreeSet<_>, _>>()?;
                AttributeValue::Ss(set)
            }
            TAG_NS => {
                let count = self.count()?;
                let set = (0..count)
                    .map(|_| self.number())
                    .collect::<Result<BTreeSet<_>, _>>()?;
                AttributeValue::Ns(set)
            }
            TAG_BS => {
                let count = self.count()?;
                let set = (0..count)
                    .map(|_| self.slice())
                    .collect::<Result<BTreeSet<_>, _>>()?;
                AttributeValue::Bs(set)
            }
            _ => return Err("unknown value tag".to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_round_trip() {
        let item = crate::value::item([
            ("s", AttributeValue::s("text")),
            ("n", AttributeValue::n("-12.50").unwrap()),
            ("b", AttributeValue::b(vec![0u8, 1, 2])),
            ("t", true.into()),
            ("f", false.into()),
            ("null", AttributeValue::Null),
            (
                "l",
                AttributeValue::L(vec![1.into(), AttributeValue::m([("x", "y".into())])]),
            ),
            ("ss", AttributeValue::ss(["a", "b"])),
            ("ns", AttributeValue::ns([1, 2, 3])),
            ("bs", AttributeValue::Bs([Bytes::from_static(b"x")].into())),
        ]);
        let encoded = encode_item(&item);
        assert_eq!(decode_item(&encoded).unwrap(), item);
        for cut in 0..encoded.len() {
            assert!(decode_item(&encoded.slice(..cut)).is_err());
        }
    }
}
