//! Merging ordered layers of writes over a base: how transactions and the durable engine's
//! unflushed commits are read.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::iter::Peekable;

use bytes::Bytes;

use super::{Direction, Entries, KeyRange};
use crate::Result;

/// Drops deleted keys from a merged layer, leaving plain entries.
pub(crate) fn without_deletes(layer: Layer<'_>) -> Entries<'_> {
    Box::new(layer.filter_map(|entry| match entry {
        Ok((key, Some(value))) => Some(Ok((key, value))),
        Ok((_, None)) => None,
        Err(e) => Some(Err(e)),
    }))
}

/// A base's entries as a layer with no deletes.
pub(crate) fn base_layer(entries: Entries<'_>) -> Layer<'_> {
    Box::new(entries.map(|entry| entry.map(|(k, v)| (k, Some(v)))))
}

/// Entries with deletes still in them, as `None` values.
pub(crate) type Layer<'a> = Box<dyn Iterator<Item = Result<(Bytes, Option<Bytes>)>> + Send + 'a>;

pub(crate) fn overlay_range<'a>(
    writes: Option<&'a BTreeMap<Bytes, Option<Bytes>>>,
    range: &KeyRange,
    direction: Direction,
) -> Layer<'a> {
    let Some(writes) = writes.filter(|_| !range.is_empty()) else {
        return Box::new(std::iter::empty());
    };
    let entries = writes.range::<[u8], _>(range.as_slices());
    let own = |(k, v): (&Bytes, &Option<Bytes>)| Ok((k.clone(), v.clone()));
    match direction {
        Direction::Forward => Box::new(entries.map(own)),
        Direction::Reverse => Box::new(entries.rev().map(own)),
    }
}

/// Merges two ordered layers; where both hold a key, the top one wins.
pub(crate) struct Shadow<'a> {
    top: Peekable<Layer<'a>>,
    bottom: Peekable<Layer<'a>>,
    direction: Direction,
}

impl<'a> Shadow<'a> {
    pub(crate) fn new(top: Layer<'a>, bottom: Layer<'a>, direction: Direction) -> Self {
        Self {
            top: top.peekable(),
            bottom: bottom.peekable(),
            direction,
        }
    }
}

impl Iterator for Shadow<'_> {
    type Item = Result<(Bytes, Option<Bytes>)>;

    fn next(&mut self) -> Option<Self::Item> {
        let order = match (self.top.peek(), self.bottom.peek()) {
            (None, None) => return None,
            (Some(_), None) | (Some(Err(_)), _) => Ordering::Less,
            (None, Some(_)) | (_, Some(Err(_))) => Ordering::Greater,
            (Some(Ok((top, _))), Some(Ok((bottom, _)))) => match self.direction {
                Direction::Forward => top.cmp(bottom),
                Direction::Reverse => bottom.cmp(top),
            },
        };
        match order {
            Ordering::Less => self.top.next(),
            Ordering::Greater => self.bottom.next(),
            Ordering::Equal => {
                self.bottom.next();
                self.top.next()
            }
        }
    }
}
