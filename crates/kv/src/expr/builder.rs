//! A typed builder for DynamoDB expressions: write conditions and updates as Rust, get the
//! expression text with its names and values, placeholders assigned (so reserved words and
//! odd characters need no care).
//!
//! ```
//! use cloudlet_kv::expr::builder::{Expressions, Update, attr, value};
//!
//! let built = Expressions::new()
//!     .condition(attr("status").eq(value("active")).and(attr("version").eq(value(3))))
//!     .update(Update::new().set(attr("version"), attr("version").plus(value(1))).remove(attr("draft")))
//!     .build();
//! assert_eq!(built.condition.as_deref(), Some("#n0 = :v0 AND #n1 = :v1"));
//! assert_eq!(built.update.as_deref(), Some("SET #n1 = #n1 + :v2 REMOVE #n2"));
//! assert_eq!(built.placeholders.names["#n0"], "status");
//! ```

use std::collections::BTreeMap;

use super::ast;
use crate::api::Placeholders;
use crate::value::AttributeValue;

/// A document path: `attr("a").field("b").index(2)` is `a.b[2]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Path(Vec<Segment>);

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Name(String),
    Index(u32),
}

/// The top-level attribute `name`.
pub fn attr(name: impl Into<String>) -> Path {
    Path(vec![Segment::Name(name.into())])
}

/// A value operand.
pub fn value(value: impl Into<AttributeValue>) -> Operand {
    Operand::Value(value.into())
}

/// An operand of a condition: a path, a value, or `size(path)`.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// The value at a path.
    Path(Path),
    /// A literal value.
    Value(AttributeValue),
    /// `size(path)`.
    Size(Path),
}

impl From<Path> for Operand {
    fn from(path: Path) -> Self {
        Self::Path(path)
    }
}

/// A condition, built with [`Path`]'s and [`Operand`]'s methods.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// A comparison.
    Compare(Operand, ast::Comparator, Operand),
    /// `BETWEEN`.
    Between(Operand, Operand, Operand),
    /// `IN`.
    In(Operand, Vec<Operand>),
    /// `attribute_exists`.
    Exists(Path),
    /// `attribute_not_exists`.
    NotExists(Path),
    /// `attribute_type`.
    Type(Path, crate::value::ValueType),
    /// `begins_with`.
    BeginsWith(Path, Operand),
    /// `contains`.
    Contains(Path, Operand),
    /// `NOT`.
    Not(Box<Condition>),
    /// `AND`.
    And(Box<Condition>, Box<Condition>),
    /// `OR`.
    Or(Box<Condition>, Box<Condition>),
}

impl Condition {
    /// `self AND other`.
    #[must_use]
    pub fn and(self, other: Condition) -> Self {
        Self::And(Box::new(self), Box::new(other))
    }

    /// `self OR other`.
    #[must_use]
    pub fn or(self, other: Condition) -> Self {
        Self::Or(Box::new(self), Box::new(other))
    }

    /// `NOT self`.
    #[must_use]
    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> Self {
        Self::Not(Box::new(self))
    }
}

macro_rules! comparisons {
    ($($name:ident => $op:ident),*) => {$(
        #[doc = concat!("`self ", stringify!($op), " other`.")]
        pub fn $name(self, other: impl Into<Operand>) -> Condition {
            Condition::Compare(self.into(), ast::Comparator::$op, other.into())
        }
    )*};
}

impl Operand {
    comparisons!(eq => Eq, ne => Ne, lt => Lt, le => Le, gt => Gt, ge => Ge);

    /// `self BETWEEN low AND high`.
    pub fn between(self, low: impl Into<Operand>, high: impl Into<Operand>) -> Condition {
        Condition::Between(self, low.into(), high.into())
    }

    /// `self IN (...)`.
    pub fn is_in(self, list: impl IntoIterator<Item = Operand>) -> Condition {
        Condition::In(self, list.into_iter().collect())
    }
}

impl Path {
    /// The map key `name` under this path.
    #[must_use]
    pub fn field(mut self, name: impl Into<String>) -> Self {
        self.0.push(Segment::Name(name.into()));
        self
    }

    /// The list element `index` under this path.
    #[must_use]
    pub fn index(mut self, index: u32) -> Self {
        self.0.push(Segment::Index(index));
        self
    }

    /// `size(self)`.
    pub fn size(self) -> Operand {
        Operand::Size(self)
    }

    /// `self = other`.
    pub fn eq(self, other: impl Into<Operand>) -> Condition {
        Operand::from(self).eq(other)
    }

    /// `self <> other`.
    pub fn ne(self, other: impl Into<Operand>) -> Condition {
        Operand::from(self).ne(other)
    }

    /// `self < other`.
    pub fn lt(self, other: impl Into<Operand>) -> Condition {
        Operand::from(self).lt(other)
    }

    /// `self <= other`.
    pub fn le(self, other: impl Into<Operand>) -> Condition {
        Operand::from(self).le(other)
    }

    /// `self > other`.
    pub fn gt(self, other: impl Into<Operand>) -> Condition {
        Operand::from(self).gt(other)
    }

    /// `self >= other`.
    pub fn ge(self, other: impl Into<Operand>) -> Condition {
        Operand::from(self).ge(other)
    }

    /// `self BETWEEN low AND high`.
    pub fn between(self, low: impl Into<Operand>, high: impl Into<Operand>) -> Condition {
        Operand::from(self).between(low, high)
    }

    /// `self IN (...)`.
    pub fn is_in(self, list: impl IntoIterator<Item = Operand>) -> Condition {
        Operand::from(self).is_in(list)
    }

    /// `attribute_exists(self)`.
    pub fn exists(self) -> Condition {
        Condition::Exists(self)
    }

    /// `attribute_not_exists(self)`.
    pub fn not_exists(self) -> Condition {
        Condition::NotExists(self)
    }

    /// `attribute_type(self, t)`.
    pub fn has_type(self, t: crate::value::ValueType) -> Condition {
        Condition::Type(self, t)
    }

    /// `begins_with(self, prefix)`.
    pub fn begins_with(self, prefix: impl Into<Operand>) -> Condition {
        Condition::BeginsWith(self, prefix.into())
    }

    /// `contains(self, operand)`.
    pub fn contains(self, operand: impl Into<Operand>) -> Condition {
        Condition::Contains(self, operand.into())
    }

    /// `self + operand`, for SET.
    pub fn plus(self, operand: impl Into<SetOperand>) -> SetValue {
        SetValue::Plus(SetOperand::Path(self), operand.into())
    }

    /// `self - operand`, for SET.
    pub fn minus(self, operand: impl Into<SetOperand>) -> SetValue {
        SetValue::Minus(SetOperand::Path(self), operand.into())
    }

    /// `if_not_exists(self, fallback)`, for SET.
    pub fn if_not_exists(self, fallback: impl Into<SetOperand>) -> SetOperand {
        SetOperand::IfNotExists(self, Box::new(fallback.into()))
    }
}

/// An operand of a SET action.
#[derive(Debug, Clone, PartialEq)]
pub enum SetOperand {
    /// The value at a path, before the update.
    Path(Path),
    /// A literal value.
    Value(AttributeValue),
    /// `if_not_exists(path, fallback)`.
    IfNotExists(Path, Box<SetOperand>),
    /// `list_append(a, b)`.
    ListAppend(Box<SetOperand>, Box<SetOperand>),
}

impl From<Path> for SetOperand {
    fn from(path: Path) -> Self {
        Self::Path(path)
    }
}

impl From<Operand> for SetOperand {
    fn from(operand: Operand) -> Self {
        match operand {
            Operand::Path(p) | Operand::Size(p) => Self::Path(p),
            Operand::Value(v) => Self::Value(v),
        }
    }
}

impl SetOperand {
    /// `list_append(self, tail)`.
    pub fn list_append(self, tail: impl Into<SetOperand>) -> Self {
        Self::ListAppend(Box::new(self), Box::new(tail.into()))
    }

    /// `self + operand`.
    pub fn plus(self, operand: impl Into<SetOperand>) -> SetValue {
        SetValue::Plus(self, operand.into())
    }
}

/// The right-hand side of a SET action.
#[derive(Debug, Clone, PartialEq)]
pub enum SetValue {
    /// One operand.
    Operand(SetOperand),
    /// `a + b`.
    Plus(SetOperand, SetOperand),
    /// `a - b`.
    Minus(SetOperand, SetOperand),
}

impl<T: Into<SetOperand>> From<T> for SetValue {
    fn from(operand: T) -> Self {
        Self::Operand(operand.into())
    }
}

/// An update expression under construction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Update {
    set: Vec<(Path, SetValue)>,
    remove: Vec<Path>,
    add: Vec<(Path, AttributeValue)>,
    delete: Vec<(Path, AttributeValue)>,
}

impl Update {
    /// An empty update.
    pub fn new() -> Self {
        Self::default()
    }

    /// `SET path = value`.
    #[must_use]
    pub fn set(mut self, path: Path, value: impl Into<SetValue>) -> Self {
        self.set.push((path, value.into()));
        self
    }

    /// `REMOVE path`.
    #[must_use]
    pub fn remove(mut self, path: Path) -> Self {
        self.remove.push(path);
        self
    }

    /// `ADD path value` (a number or a set).
    #[must_use]
    pub fn add(mut self, path: Path, value: impl Into<AttributeValue>) -> Self {
        self.add.push((path, value.into()));
        self
    }

    /// `DELETE path value` (a set).
    #[must_use]
    pub fn delete(mut self, path: Path, value: impl Into<AttributeValue>) -> Self {
        self.delete.push((path, value.into()));
        self
    }
}

/// The expressions of one request, built together so they share placeholders.
#[derive(Debug, Clone, Default)]
pub struct Expressions {
    condition: Option<Condition>,
    filter: Option<Condition>,
    key_condition: Option<Condition>,
    update: Option<Update>,
    projection: Vec<Path>,
}

/// Built expressions: texts and the placeholders they use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Built {
    /// `ConditionExpression`.
    pub condition: Option<String>,
    /// `FilterExpression`.
    pub filter: Option<String>,
    /// `KeyConditionExpression`.
    pub key_condition: Option<String>,
    /// `UpdateExpression`.
    pub update: Option<String>,
    /// `ProjectionExpression`.
    pub projection: Option<String>,
    /// Expression attribute names and values.
    pub placeholders: Placeholders,
}

impl Expressions {
    /// Nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// With a condition expression.
    #[must_use]
    pub fn condition(mut self, condition: Condition) -> Self {
        self.condition = Some(condition);
        self
    }

    /// With a filter expression.
    #[must_use]
    pub fn filter(mut self, filter: Condition) -> Self {
        self.filter = Some(filter);
        self
    }

    /// With a key condition expression.
    #[must_use]
    pub fn key_condition(mut self, condition: Condition) -> Self {
        self.key_condition = Some(condition);
        self
    }

    /// With an update expression.
    #[must_use]
    pub fn update(mut self, update: Update) -> Self {
        self.update = Some(update);
        self
    }

    /// With a projection of these paths.
    #[must_use]
    pub fn projection(mut self, paths: impl IntoIterator<Item = Path>) -> Self {
        self.projection.extend(paths);
        self
    }

    /// The texts, names `#n0, #n1, ...` and values `:v0, :v1, ...`.
    pub fn build(self) -> Built {
        let mut namer = Namer::default();
        let condition = self.condition.map(|c| namer.condition(c).to_string());
        let filter = self.filter.map(|c| namer.condition(c).to_string());
        let key_condition = self.key_condition.map(|c| namer.condition(c).to_string());
        let update = self.update.map(|u| namer.update(u).to_string());
        let projection = (!self.projection.is_empty()).then(|| {
            self.projection
                .into_iter()
                .map(|p| namer.path(p).to_string())
                .collect::<Vec<_>>()
                .join(", ")
        });
        Built {
            condition,
            filter,
            key_condition,
            update,
            projection,
            placeholders: Placeholders {
                names: namer
                    .names
                    .into_iter()
                    .map(|(name, placeholder)| (placeholder, name))
                    .collect(),
                values: namer.values,
            },
        }
    }
}

/// Assigns placeholders: one per distinct name, one per value.
#[derive(Default)]
struct Namer {
    names: BTreeMap<String, String>,
    values: crate::value::Item,
}

impl Namer {
    fn name(&mut self, name: String) -> ast::Name {
        let next = self.names.len();
        let placeholder = self
            .names
            .entry(name)
            .or_insert_with(|| format!("#n{next}"))
            .clone();
        ast::Name::Placeholder(placeholder)
    }

    fn value(&mut self, value: AttributeValue) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.insert(placeholder.clone(), value);
        placeholder
    }

    fn path(&mut self, path: Path) -> ast::Path {
        ast::Path(
            path.0
                .into_iter()
                .map(|s| match s {
                    Segment::Name(n) => ast::PathElement::Attribute(self.name(n)),
                    Segment::Index(i) => ast::PathElement::Index(i),
                })
                .collect(),
        )
    }

    fn operand(&mut self, operand: Operand) -> ast::Operand {
        match operand {
            Operand::Path(p) => ast::Operand::Path(self.path(p)),
            Operand::Value(v) => ast::Operand::Value(self.value(v)),
            Operand::Size(p) => ast::Operand::Size(self.path(p)),
        }
    }

    fn condition(&mut self, condition: Condition) -> ast::Condition {
        match condition {
            Condition::Compare(a, op, b) => {
                let a = self.operand(a);
                ast::Condition::Compare(a, op, self.operand(b))
            }
            Condition::Between(a, low, high) => {
                let (a, low) = (self.operand(a), self.operand(low));
                ast::Condition::Between(a, low, self.operand(high))
            }
            Condition::In(a, list) => {
                let a = self.operand(a);
                ast::Condition::In(a, list.into_iter().map(|o| self.operand(o)).collect())
            }
            Condition::Exists(p) => ast::Condition::AttributeExists(self.path(p)),
            Condition::NotExists(p) => ast::Condition::AttributeNotExists(self.path(p)),
            Condition::Type(p, t) => {
                let p = self.path(p);
                ast::Condition::AttributeType(
                    p,
                    ast::Operand::Value(self.value(AttributeValue::s(t.name()))),
                )
            }
            Condition::BeginsWith(p, o) => {
                let p = ast::Operand::Path(self.path(p));
                ast::Condition::BeginsWith(p, self.operand(o))
            }
            Condition::Contains(p, o) => {
                let p = ast::Operand::Path(self.path(p));
                ast::Condition::Contains(p, self.operand(o))
            }
            Condition::Not(c) => ast::Condition::Not(Box::new(self.condition(*c))),
            Condition::And(a, b) => {
                let a = self.condition(*a);
                ast::Condition::And(Box::new(a), Box::new(self.condition(*b)))
            }
            Condition::Or(a, b) => {
                let a = self.condition(*a);
                ast::Condition::Or(Box::new(a), Box::new(self.condition(*b)))
            }
        }
    }

    fn set_operand(&mut self, operand: SetOperand) -> ast::SetOperand {
        match operand {
            SetOperand::Path(p) => ast::SetOperand::Path(self.path(p)),
            SetOperand::Value(v) => ast::SetOperand::Value(self.value(v)),
            SetOperand::IfNotExists(p, fallback) => {
                let p = self.path(p);
                ast::SetOperand::IfNotExists(p, Box::new(self.set_operand(*fallback)))
            }
            SetOperand::ListAppend(a, b) => {
                let a = self.set_operand(*a);
                ast::SetOperand::ListAppend(Box::new(a), Box::new(self.set_operand(*b)))
            }
        }
    }

    fn update(&mut self, update: Update) -> ast::Update {
        let mut out = ast::Update::default();
        for (path, value) in update.set {
            let path = self.path(path);
            let value = match value {
                SetValue::Operand(o) => ast::SetValue::Operand(self.set_operand(o)),
                SetValue::Plus(a, b) => {
                    let a = self.set_operand(a);
                    ast::SetValue::Plus(a, self.set_operand(b))
                }
                SetValue::Minus(a, b) => {
                    let a = self.set_operand(a);
                    ast::SetValue::Minus(a, self.set_operand(b))
                }
            };
            out.set.push((path, value));
        }
        for path in update.remove {
            out.remove.push(self.path(path));
        }
        for (path, value) in update.add {
            let path = self.path(path);
            out.add.push((path, self.value(value)));
        }
        for (path, value) in update.delete {
            let path = self.path(path);
            out.delete.push((path, self.value(value)));
        }
        out
    }
}
