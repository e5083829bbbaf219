//! Evaluating checked expressions against items: conditions, updates and projections.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BTreeMap;

use super::ast::{
    Comparator, Condition, Name, Operand, Path, PathElement, SetOperand, SetValue, Update,
};
use crate::value::{AttributeValue, Item, ValueType};
use crate::{Error, Result};

/// One step of a resolved document path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Step {
    /// A map key or top-level attribute.
    Key(String),
    /// A list index.
    Index(usize),
}

/// The value at `steps` in `item`, if there is one.
pub(crate) fn resolved_path<'i>(item: &'i Item, steps: &[Step]) -> Option<&'i AttributeValue> {
    let (Step::Key(first), rest) = steps.split_first()? else {
        return None;
    };
    let mut value = item.get(first)?;
    for step in rest {
        value = match (value, step) {
            (AttributeValue::M(map), Step::Key(k)) => map.get(k)?,
            (AttributeValue::L(list), Step::Index(i)) => list.get(*i)?,
            _ => return None,
        };
    }
    Some(value)
}

/// Orders two values of the same scalar type (S, N, B); `None` for anything else.
pub(crate) fn compare(a: &AttributeValue, b: &AttributeValue) -> Option<Ordering> {
    match (a, b) {
        (AttributeValue::S(x), AttributeValue::S(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (AttributeValue::N(x), AttributeValue::N(y)) => Some(x.cmp(y)),
        (AttributeValue::B(x), AttributeValue::B(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// Evaluates checked expressions with a request's placeholder maps.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context<'a> {
    names: &'a BTreeMap<String, String>,
    values: &'a Item,
}

fn invalid_path() -> Error {
    Error::validation(
        "UpdateExpression",
        "The document path provided in the update expression is invalid for update",
    )
}

fn wrong_type() -> Error {
    Error::validation(
        "UpdateExpression",
        "An operand in the update expression has an incorrect data type",
    )
}

impl<'a> Context<'a> {
    pub(crate) fn new(names: &'a BTreeMap<String, String>, values: &'a Item) -> Self {
        Self { names, values }
    }

    fn name<'n>(&'n self, name: &'n Name) -> &'n str {
        match name {
            Name::Plain(n) => n,
            // Checked by `Scope`: every placeholder is defined.
            Name::Placeholder(p) => self.names.get(p).map_or(p.as_str(), String::as_str),
        }
    }

    /// The path with its names resolved.
    pub(crate) fn steps(&self, path: &Path) -> Vec<Step> {
        path.0
            .iter()
            .map(|e| match e {
                PathElement::Attribute(n) => Step::Key(self.name(n).to_owned()),
                PathElement::Index(i) => Step::Index(*i as usize),
            })
            .collect()
    }

    /// The value at `path` in `item`.
    pub(crate) fn get<'i>(&self, item: &'i Item, path: &Path) -> Option<&'i AttributeValue> {
        let (PathElement::Attribute(first), rest) = path.0.split_first()? else {
            return None;
        };
        let mut value = item.get(self.name(first))?;
        for element in rest {
            value = match (value, element) {
                (AttributeValue::M(map), PathElement::Attribute(n)) => map.get(self.name(n))?,
                (AttributeValue::L(list), PathElement::Index(i)) => list.get(*i as usize)?,
                _ => return None,
            };
        }
        Some(value)
    }

    /// The expression attribute value `placeholder` (checked to exist).
    pub(crate) fn value(&self, placeholder: &str) -> Option<&'a AttributeValue> {
        self.values.get(placeholder)
    }

    fn operand<'x>(&'x self, item: &'x Item, operand: &Operand) -> Option<Cow<'x, AttributeValue>> {
        match operand {
            Operand::Path(p) => self.get(item, p).map(Cow::Borrowed),
            Operand::Value(v) => self.value(v).map(Cow::Borrowed),
            Operand::Size(p) => {
                let size = match self.get(item, p)? {
                    // DynamoDB counts UTF-16 code units.
                    AttributeValue::S(s) => s.encode_utf16().count(),
                    AttributeValue::B(b) => b.len(),
                    AttributeValue::L(l) => l.len(),
                    AttributeValue::M(m) => m.len(),
                    AttributeValue::Ss(s) => s.len(),
                    AttributeValue::Ns(s) => s.len(),
                    AttributeValue::Bs(s) => s.len(),
                    _ => return None,
                };
                Some(Cow::Owned(AttributeValue::from(size)))
            }
        }
    }

    /// True when `item` (empty if there is none) satisfies `condition`.
    pub(crate) fn matches(&self, item: &Item, condition: &Condition) -> bool {
        match condition {
            Condition::Compare(a, op, b) => {
                let (a, b) = (self.operand(item, a), self.operand(item, b));
                match op {
                    Comparator::Eq => matches!((a, b), (Some(a), Some(b)) if a == b),
                    Comparator::Ne => !matches!((a, b), (Some(a), Some(b)) if a == b),
                    _ => {
                        let Some(order) = a.zip(b).and_then(|(a, b)| compare(&a, &b)) else {
                            return false;
                        };
                        match op {
                            Comparator::Lt => order.is_lt(),
                            Comparator::Le => order.is_le(),
                            Comparator::Gt => order.is_gt(),
                            _ => order.is_ge(),
                        }
                    }
                }
            }
            Condition::Between(a, low, high) => {
                let (Some(a), Some(low), Some(high)) = (
                    self.operand(item, a),
                    self.operand(item, low),
                    self.operand(item, high),
                ) else {
                    return false;
                };
                compare(&a, &low).is_some_and(Ordering::is_ge)
                    && compare(&a, &high).is_some_and(Ordering::is_le)
            }
            Condition::In(a, list) => {
                let Some(a) = self.operand(item, a) else {
                    return false;
                };
                list.iter()
                    .any(|o| self.operand(item, o).is_some_and(|v| v == a))
            }
            Condition::AttributeExists(p) => self.get(item, p).is_some(),
            Condition::AttributeNotExists(p) => self.get(item, p).is_none(),
            Condition::AttributeType(p, t) => {
                let (Some(value), Some(t)) = (self.get(item, p), self.operand(item, t)) else {
                    return false;
                };
                let AttributeValue::S(name) = t.as_ref() else {
                    return false;
                };
                ValueType::from_name(name) == Some(value.value_type())
            }
            Condition::BeginsWith(a, b) => {
                match (
                    self.operand(item, a).as_deref(),
                    self.operand(item, b).as_deref(),
                ) {
                    (Some(AttributeValue::S(x)), Some(AttributeValue::S(y))) => {
                        x.starts_with(y.as_str())
                    }
                    (Some(AttributeValue::B(x)), Some(AttributeValue::B(y))) => x.starts_with(y),
                    _ => false,
                }
            }
            Condition::Contains(a, b) => {
                let (Some(a), Some(b)) = (self.operand(item, a), self.operand(item, b)) else {
                    return false;
                };
                match (a.as_ref(), b.as_ref()) {
                    (AttributeValue::S(x), AttributeValue::S(y)) => x.contains(y.as_str()),
                    (AttributeValue::Ss(set), AttributeValue::S(y)) => set.contains(y),
                    (AttributeValue::Ns(set), AttributeValue::N(y)) => set.contains(y),
                    (AttributeValue::Bs(set), AttributeValue::B(y)) => set.contains(y),
                    (AttributeValue::L(list), y) => list.contains(y),
                    _ => false,
                }
            }
            Condition::Not(c) => !self.matches(item, c),
            Condition::And(a, b) => self.matches(item, a) && self.matches(item, b),
            Condition::Or(a, b) => self.matches(item, a) || self.matches(item, b),
        }
    }

    fn set_operand(&self, item: &Item, operand: &SetOperand) -> Result<AttributeValue> {
        let missing = || {
            Error::validation(
                "UpdateExpression",
                "The provided expression refers to an attribute that does not exist in the item",
            )
        };
        match operand {
            SetOperand::Path(p) => self.get(item, p).cloned().ok_or_else(missing),
            SetOperand::Value(v) => self.value(v).cloned().ok_or_else(missing),
            SetOperand::IfNotExists(p, fallback) => match self.get(item, p) {
                Some(v) => Ok(v.clone()),
                None => self.set_operand(item, fallback),
            },
            SetOperand::ListAppend(a, b) => {
                match (self.set_operand(item, a)?, self.set_operand(item, b)?) {
                    (AttributeValue::L(mut x), AttributeValue::L(y)) => {
                        x.extend(y);
                        Ok(AttributeValue::L(x))
                    }
                    _ => Err(wrong_type()),
                }
            }
        }
    }

    fn set_value(&self, item: &Item, value: &SetValue) -> Result<AttributeValue> {
        match value {
            SetValue::Operand(o) => self.set_operand(item, o),
            SetValue::Plus(a, b) | SetValue::Minus(a, b) => {
                let (AttributeValue::N(x), AttributeValue::N(y)) =
                    (self.set_operand(item, a)?, self.set_operand(item, b)?)
                else {
                    return Err(wrong_type());
                };
                let result = if matches!(value, SetValue::Plus(..)) {
                    x.checked_add(&y)?
                } else {
                    x.checked_sub(&y)?
                };
                Ok(AttributeValue::N(result))
            }
        }
    }

    /// Applies a checked update to `old` (empty if there is no item): every operand is read
    /// from `old`, then SET, REMOVE, ADD and DELETE apply in turn.
    ///
    /// # Errors
    /// [`Error::Validation`] when the item's data does not fit the update: an operand that is
    /// missing or of the wrong type, or a path whose parent does not exist.
    pub(crate) fn apply(&self, old: &Item, update: &Update) -> Result<Item> {
        let mut sets = update
            .set
            .iter()
            .map(|(path, value)| Ok((self.steps(path), self.set_value(old, value)?)))
            .collect::<Result<Vec<_>>>()?;
        // Paths do not overlap, so order matters only for appends past a list's end, which
        // DynamoDB makes in index order.
        sets.sort_by(|a, b| a.0.cmp(&b.0));
        let mut new = old.clone();
        for (steps, value) in sets {
            set_at(&mut new, &steps, value)?;
        }
        // Indexes name positions in the list before the update: remove from the back.
        let mut removes: Vec<Vec<Step>> = update.remove.iter().map(|p| self.steps(p)).collect();
        removes.sort_by(|a, b| b.cmp(a));
        for steps in removes {
            remove_at(&mut new, &steps)?;
        }
        for (path, placeholder) in &update.add {
            let steps = self.steps(path);
            let addend = self.value(placeholder).ok_or_else(wrong_type)?;
            let sum = match (resolved_path(&new, &steps), addend) {
                (None, v) => v.clone(),
                (Some(AttributeValue::N(x)), AttributeValue::N(y)) => {
                    AttributeValue::N(x.checked_add(y)?)
                }
                (Some(AttributeValue::Ss(x)), AttributeValue::Ss(y)) => {
                    AttributeValue::Ss(x.union(y).cloned().collect())
                }
                (Some(AttributeValue::Ns(x)), AttributeValue::Ns(y)) => {
                    AttributeValue::Ns(x.union(y).cloned().collect())
                }
                (Some(AttributeValue::Bs(x)), AttributeValue::Bs(y)) => {
                    AttributeValue::Bs(x.union(y).cloned().collect())
                }
                _ => return Err(wrong_type()),
            };
            set_at(&mut new, &steps, sum)?;
        }
        for (path, placeholder) in &update.delete {
            let steps = self.steps(path);
            let removed = self.value(placeholder).ok_or_else(wrong_type)?;
            let remaining = match (resolved_path(&new, &steps), removed) {
                (None, _) => continue,
                (Some(AttributeValue::Ss(x)), AttributeValue::Ss(y)) => {
                    let rest: std::collections::BTreeSet<_> = x.difference(y).cloned().collect();
                    (!rest.is_empty()).then_some(AttributeValue::Ss(rest))
                }
                (Some(AttributeValue::Ns(x)), AttributeValue::Ns(y)) => {
                    let rest: std::collections::BTreeSet<_> = x.difference(y).cloned().collect();
                    (!rest.is_empty()).then_some(AttributeValue::Ns(rest))
                }
                (Some(AttributeValue::Bs(x)), AttributeValue::Bs(y)) => {
                    let rest: std::collections::BTreeSet<_> = x.difference(y).cloned().collect();
                    (!rest.is_empty()).then_some(AttributeValue::Bs(rest))
                }
                _ => return Err(wrong_type()),
            };
            match remaining {
                Some(value) => set_at(&mut new, &steps, value)?,
                None => remove_at(&mut new, &steps)?,
            }
        }
        Ok(new)
    }
}

/// The container holding the last step of a path.
enum Parent<'i> {
    Map(&'i mut Item),
    List(&'i mut Vec<AttributeValue>),
}

fn parent<'i>(item: &'i mut Item, steps: &[Step]) -> Option<Parent<'i>> {
    let mut parent = Parent::Map(item);
    for step in &steps[..steps.len().saturating_sub(1)] {
        let value = match (parent, step) {
            (Parent::Map(m), Step::Key(k)) => m.get_mut(k)?,
            (Parent::List(l), Step::Index(i)) => l.get_mut(*i)?,
            _ => return None,
        };
        parent = match value {
            AttributeValue::M(m) => Parent::Map(m),
            AttributeValue::L(l) => Parent::List(l),
            _ => return None,
        };
    }
    Some(parent)
}

fn set_at(item: &mut Item, steps: &[Step], value: AttributeValue) -> Result<()> {
    match (parent(item, steps).ok_or_else(invalid_path)?, steps.last()) {
        (Parent::Map(m), Some(Step::Key(k))) => {
            m.insert(k.clone(), value);
        }
        (Parent::List(l), Some(Step::Index(i))) => match l.get_mut(*i) {
            Some(slot) => *slot = value,
            None => l.push(value),
        },
        _ => return Err(invalid_path()),
    }
    Ok(())
}

fn remove_at(item: &mut Item, steps: &[Step]) -> Result<()> {
    match (parent(item, steps).ok_or_else(invalid_path)?, steps.last()) {
        (Parent::Map(m), Some(Step::Key(k))) => {
            m.remove(k);
        }
        (Parent::List(l), Some(Step::Index(i))) => {
            if *i < l.len() {
                l.remove(*i);
            }
        }
        _ => return Err(invalid_path()),
    }
    Ok(())
}

/// A projection under construction: list elements keyed by their index, compacted at the end.
enum Projected {
    Leaf(AttributeValue),
    Map(BTreeMap<String, Projected>),
    List(BTreeMap<usize, Projected>),
}

impl Projected {
    fn finish(self) -> AttributeValue {
        match self {
            Self::Leaf(v) => v,
            Self::Map(m) => {
                AttributeValue::M(m.into_iter().map(|(k, v)| (k, v.finish())).collect())
            }
            Self::List(l) => AttributeValue::L(l.into_values().map(Self::finish).collect()),
        }
    }
}

/// The parts of `item` the (checked, non-overlapping) paths name, nested as in the item;
/// list elements keep their order and close up.
pub(crate) fn project(item: &Item, paths: &[Vec<Step>]) -> Item {
    let mut root: BTreeMap<String, Projected> = BTreeMap::new();
    for steps in paths {
        let Some(value) = resolved_path(item, steps) else {
            continue;
        };
        let Some((Step::Key(first), rest)) = steps.split_first() else {
            continue;
        };
        let node = root
            .entry(first.clone())
            .or_insert_with(|| fresh_node(rest));
        insert_projected(node, rest, value.clone());
    }
    root.into_iter().map(|(k, v)| (k, v.finish())).collect()
}

fn fresh_node(rest: &[Step]) -> Projected {
    match rest.first() {
        Some(Step::Index(_)) => Projected::List(BTreeMap::new()),
        _ => Projected::Map(BTreeMap::new()),
    }
}

fn insert_projected(node: &mut Projected, rest: &[Step], value: AttributeValue) {
    let Some((step, tail)) = rest.split_first() else {
        *node = Projected::Leaf(value);
        return;
    };
    match (node, step) {
        (Projected::Map(m), Step::Key(k)) => {
            insert_projected(
                m.entry(k.clone()).or_insert_with(|| fresh_node(tail)),
                tail,
                value,
            );
        }
        (Projected::List(l), Step::Index(i)) => {
            insert_projected(l.entry(*i).or_insert_with(|| fresh_node(tail)), tail, value);
        }
        // Overlapping or conflicting paths were rejected when checked.
        _ => {}
    }
}
