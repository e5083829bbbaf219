//! DynamoDB expressions: parsing, checking against the request's placeholders, evaluation.
//!
//! A request's expressions are parsed, then checked once against its
//! `ExpressionAttributeNames` and `ExpressionAttributeValues` (`Scope`): every placeholder
//! defined, every definition used, operand types that can never work rejected up front. After
//! that, evaluation (`Context`) cannot fail for conditions and fails for updates only on the
//! item's data (adding to a string, say).

pub mod ast;
pub mod builder;
mod eval;
mod parse;
mod reserved;

use std::collections::{BTreeMap, BTreeSet};

pub use ast::{
    Comparator, Condition, Name, Operand, Path, PathElement, SetOperand, SetValue, Update,
};
pub(crate) use eval::{Context, Step, project};
pub use parse::{MAX_EXPRESSION_LENGTH, parse_condition, parse_projection, parse_update};

use crate::value::{AttributeValue, Item, ValueType};
use crate::{Error, Result};

/// The most operands `IN` accepts.
pub const MAX_IN_OPERANDS: usize = 100;

/// Checks expressions against a request's placeholder maps and records which were used.
#[derive(Debug)]
pub(crate) struct Scope<'a> {
    names: &'a BTreeMap<String, String>,
    values: &'a Item,
    used_names: BTreeSet<&'a str>,
    used_values: BTreeSet<&'a str>,
    expression: &'static str,
}

impl<'a> Scope<'a> {
    pub(crate) fn new(names: &'a BTreeMap<String, String>, values: &'a Item) -> Result<Self> {
        for (key, value) in values {
            if !key.starts_with(':') || key.len() < 2 {
                return Err(Error::validation(
                    "ExpressionAttributeValues",
                    format!(
                        "ExpressionAttributeValues contains invalid key: Syntax error; key: \"{key}\""
                    ),
                ));
            }
            value.validate("ExpressionAttributeValues").map_err(|e| match e {
                Error::Validation { message, .. } => Error::validation(
                    "ExpressionAttributeValues",
                    format!("ExpressionAttributeValues contains invalid value: {message} for key {key}"),
                ),
                other => other,
            })?;
        }
        for key in names.keys() {
            if !key.starts_with('#') || key.len() < 2 {
                return Err(Error::validation(
                    "ExpressionAttributeNames",
                    format!(
                        "ExpressionAttributeNames contains invalid key: Syntax error; key: \"{key}\""
                    ),
                ));
            }
        }
        Ok(Self {
            names,
            values,
            used_names: BTreeSet::new(),
            used_values: BTreeSet::new(),
            expression: "",
        })
    }

    fn invalid(&self, message: impl std::fmt::Display) -> Error {
        Error::validation(
            self.expression,
            format!("Invalid {}: {message}", self.expression),
        )
    }

    fn name(&mut self, name: &'a Name) -> Result<&'a str> {
        match name {
            Name::Plain(n) => Ok(n),
            Name::Placeholder(p) => match self.names.get_key_value(p) {
                Some((key, value)) => {
                    self.used_names.insert(key);
                    Ok(value)
                }
                None => Err(self.invalid(format!(
                    "An expression attribute name used in the document path is not defined; attribute name: {p}"
                ))),
            },
        }
    }

    /// Checks a path's placeholders; returns it resolved.
    pub(crate) fn path(&mut self, path: &'a Path) -> Result<Vec<Step>> {
        path.0
            .iter()
            .map(|element| {
                Ok(match element {
                    PathElement::Attribute(name) => Step::Key(self.name(name)?.to_owned()),
                    PathElement::Index(i) => Step::Index(*i as usize),
                })
            })
            .collect()
    }

    fn value(&mut self, value: &'a str) -> Result<&'a AttributeValue> {
        match self.values.get_key_value(value) {
            Some((key, v)) => {
                self.used_values.insert(key);
                Ok(v)
            }
            None => Err(self.invalid(format!(
                "An expression attribute value used in expression is not defined; attribute value: {value}"
            ))),
        }
    }

    /// The operand's static type, when it is a value or `size()`.
    fn operand(&mut self, operand: &'a Operand) -> Result<Option<&'a AttributeValue>> {
        match operand {
            Operand::Path(p) | Operand::Size(p) => self.path(p).map(|_| None),
            Operand::Value(v) => self.value(v).map(Some),
        }
    }

    fn operand_type(&mut self, operand: &'a Operand) -> Result<Option<ValueType>> {
        Ok(match operand {
            Operand::Size(_) => {
                self.operand(operand)?;
                Some(ValueType::N)
            }
            _ => self.operand(operand)?.map(AttributeValue::value_type),
        })
    }

    fn require_types(
        &self,
        function: &str,
        found: Option<ValueType>,
        allowed: &[ValueType],
    ) -> Result<()> {
        match found {
            Some(t) if !allowed.contains(&t) => Err(self.invalid(format!(
                "Incorrect operand type for operator or function; operator or function: {function}, operand type: {}",
                t.name()
            ))),
            _ => Ok(()),
        }
    }

    /// Checks a condition (`expression` names it in errors: `ConditionExpression`, ...).
    pub(crate) fn condition(
        &mut self,
        expression: &'static str,
        condition: &'a Condition,
    ) -> Result<()> {
        self.expression = expression;
        self.check_condition(condition)
    }

    fn check_condition(&mut self, condition: &'a Condition) -> Result<()> {
        const SCALAR: &[ValueType] = &[ValueType::S, ValueType::N, ValueType::B];
        match condition {
            Condition::Compare(a, op, b) => {
                if let (Operand::Path(x), Operand::Path(y)) = (a, b)
                    && x == y
                {
                    return Err(self.invalid(format!(
                        "The first operand must be distinct from the remaining operands for this operator or function; operator: {}, first operand: {x}",
                        op.symbol()
                    )));
                }
                let (ta, tb) = (self.operand_type(a)?, self.operand_type(b)?);
                if !matches!(op, Comparator::Eq | Comparator::Ne) {
                    self.require_types(op.symbol(), ta, SCALAR)?;
                    self.require_types(op.symbol(), tb, SCALAR)?;
                }
                Ok(())
            }
            Condition::Between(a, low, high) => {
                let ta = self.operand_type(a)?;
                self.require_types("BETWEEN", ta, SCALAR)?;
                let (lv, hv) = (self.operand(low)?, self.operand(high)?);
                for v in [lv, hv].into_iter().flatten() {
                    self.require_types("BETWEEN", Some(v.value_type()), SCALAR)?;
                }
                if let (Some(l), Some(h)) = (lv, hv) {
                    if l.value_type() != h.value_type() {
                        return Err(self.invalid(format!(
                            "The BETWEEN operator requires same data type for lower and upper bounds; lower bound operand: AttributeValue: {{{}}}, upper bound operand: AttributeValue: {{{}}}",
                            describe(l),
                            describe(h)
                        )));
                    }
                    if eval::compare(l, h) == Some(std::cmp::Ordering::Greater) {
                        return Err(self.invalid(format!(
                            "The BETWEEN operator requires upper bound to be greater than or equal to lower bound; lower bound operand: AttributeValue: {{{}}}, upper bound operand: AttributeValue: {{{}}}",
                            describe(l),
                            describe(h)
                        )));
                    }
                }
                Ok(())
            }
            Condition::In(a, list) => {
                if list.len() > MAX_IN_OPERANDS {
                    return Err(self.invalid(format!(
                        "The IN operator is provided with too many operands; number of operands: {}",
                        list.len()
                    )));
                }
                self.operand(a)?;
                list.iter().try_for_each(|o| self.operand(o).map(|_| ()))
            }
            Condition::AttributeExists(p) | Condition::AttributeNotExists(p) => {
                self.path(p).map(|_| ())
            }
            Condition::AttributeType(p, t) => {
                self.path(p)?;
                match self.operand(t)? {
                    Some(AttributeValue::S(name)) if ValueType::from_name(name).is_some() => Ok(()),
                    Some(AttributeValue::S(name)) => Err(self.invalid(format!(
                        "Invalid attribute type name found; type: {name}, valid types: {{ B,NULL,SS,BOOL,L,BS,N,NS,S,M }}"
                    ))),
                    Some(other) => Err(self.invalid(format!(
                        "Incorrect operand type for operator or function; operator or function: attribute_type, operand type: {}",
                        other.value_type().name()
                    ))),
                    None => Err(self.invalid(
                        "Incorrect operand type for operator or function; operator or function: attribute_type, operand type: path",
                    )),
                }
            }
            Condition::BeginsWith(a, b) => {
                let (ta, tb) = (self.operand_type(a)?, self.operand_type(b)?);
                self.require_types("begins_with", ta, &[ValueType::S, ValueType::B])?;
                self.require_types("begins_with", tb, &[ValueType::S, ValueType::B])
            }
            Condition::Contains(a, b) => {
                self.operand(a)?;
                self.operand(b).map(|_| ())
            }
            Condition::Not(c) => self.check_condition(c),
            Condition::And(a, b) | Condition::Or(a, b) => {
                self.check_condition(a)?;
                self.check_condition(b)
            }
        }
    }

    fn set_operand(&mut self, operand: &'a SetOperand) -> Result<()> {
        match operand {
            SetOperand::Path(p) => self.path(p).map(|_| ()),
            SetOperand::Value(v) => self.value(v).map(|_| ()),
            SetOperand::IfNotExists(p, v) => {
                self.path(p)?;
                self.set_operand(v)
            }
            SetOperand::ListAppend(a, b) => {
                for o in [a, b] {
                    if let SetOperand::Value(v) = o.as_ref()
                        && let AttributeValue::L(_) = self.value(v)?
                    {
                        continue;
                    }
                    if let SetOperand::Value(v) = o.as_ref() {
                        let t = self.value(v)?.value_type();
                        return Err(self.invalid(format!(
                            "Incorrect operand type for operator or function; operator or function: list_append, operand type: {}",
                            t.name()
                        )));
                    }
                    self.set_operand(o)?;
                }
                Ok(())
            }
        }
    }

    /// Checks an update expression; `keys` are the table's key attributes, which no action may
    /// touch. Returns the resolved paths the update writes.
    pub(crate) fn update(&mut self, update: &'a Update, keys: &[&str]) -> Result<Vec<Vec<Step>>> {
        self.expression = "UpdateExpression";
        for (_, value) in &update.set {
            match value {
                SetValue::Operand(o) => self.set_operand(o)?,
                SetValue::Plus(a, b) | SetValue::Minus(a, b) => {
                    let symbol = if matches!(value, SetValue::Plus(..)) {
                        "+"
                    } else {
                        "-"
                    };
                    for o in [a, b] {
                        if let SetOperand::Value(v) = o {
                            let t = self.value(v)?.value_type();
                            if t != ValueType::N {
                                return Err(self.invalid(format!(
                                    "Incorrect operand type for operator or function; operator or function: {symbol}, operand type: {}",
                                    t.name()
                                )));
                            }
                        }
                        self.set_operand(o)?;
                    }
                }
            }
        }
        for (keyword, actions, allowed) in [
            (
                "ADD",
                &update.add,
                &[ValueType::N, ValueType::SS, ValueType::NS, ValueType::BS][..],
            ),
            (
                "DELETE",
                &update.delete,
                &[ValueType::SS, ValueType::NS, ValueType::BS][..],
            ),
        ] {
            for (_, v) in actions {
                let t = self.value(v)?.value_type();
                if !allowed.contains(&t) {
                    return Err(self.invalid(format!(
                        "Incorrect operand type for operator or function; operator: {keyword}, operand type: {}",
                        long_type_name(t)
                    )));
                }
            }
        }
        let paths = update
            .paths()
            .map(|p| self.path(p))
            .collect::<Result<Vec<_>>>()?;
        for path in &paths {
            if let Some(Step::Key(first)) = path.first()
                && keys.contains(&first.as_str())
            {
                return Err(Error::validation(
                    "UpdateExpression",
                    format!(
                        "One or more parameter values were invalid: Cannot update attribute {first}. This attribute is part of the key"
                    ),
                ));
            }
        }
        self.no_overlaps(&paths)?;
        Ok(paths)
    }

    /// Checks a projection expression; returns its resolved paths.
    pub(crate) fn projection(&mut self, paths: &'a [Path]) -> Result<Vec<Vec<Step>>> {
        self.expression = "ProjectionExpression";
        let resolved = paths
            .iter()
            .map(|p| self.path(p))
            .collect::<Result<Vec<_>>>()?;
        self.no_overlaps(&resolved)?;
        Ok(resolved)
    }

    fn no_overlaps(&self, paths: &[Vec<Step>]) -> Result<()> {
        for (i, a) in paths.iter().enumerate() {
            for b in &paths[..i] {
                let shared = a.iter().zip(b).take_while(|(x, y)| x == y).count();
                if shared == a.len().min(b.len()) {
                    return Err(self.invalid(format!(
                        "Two document paths overlap with each other; must remove or rewrite one of these paths; path one: {}, path two: {}",
                        steps_text(b),
                        steps_text(a)
                    )));
                }
                let diverge = (&a[shared], &b[shared]);
                if matches!(
                    diverge,
                    (Step::Key(_), Step::Index(_)) | (Step::Index(_), Step::Key(_))
                ) {
                    return Err(self.invalid(format!(
                        "Two document paths conflict with each other; must remove or rewrite one of these paths; path one: {}, path two: {}",
                        steps_text(b),
                        steps_text(a)
                    )));
                }
            }
        }
        Ok(())
    }

    /// Fails if a name or value placeholder was defined and never used.
    pub(crate) fn finish(self) -> Result<()> {
        let unused_values: Vec<&str> = self
            .values
            .keys()
            .map(String::as_str)
            .filter(|k| !self.used_values.contains(k))
            .collect();
        if !unused_values.is_empty() {
            return Err(Error::validation(
                "ExpressionAttributeValues",
                format!(
                    "Value provided in ExpressionAttributeValues unused in expressions: keys: {{{}}}",
                    unused_values.join(", ")
                ),
            ));
        }
        let unused_names: Vec<&str> = self
            .names
            .keys()
            .map(String::as_str)
            .filter(|k| !self.used_names.contains(k))
            .collect();
        if !unused_names.is_empty() {
            return Err(Error::validation(
                "ExpressionAttributeNames",
                format!(
                    "Value provided in ExpressionAttributeNames unused in expressions: keys: {{{}}}",
                    unused_names.join(", ")
                ),
            ));
        }
        Ok(())
    }
}

/// The type names DynamoDB uses in ADD and DELETE errors.
fn long_type_name(t: ValueType) -> &'static str {
    match t {
        ValueType::S => "STRING",
        ValueType::N => "NUMBER",
        ValueType::B => "BINARY",
        ValueType::BOOL => "BOOLEAN",
        ValueType::NULL => "NULL",
        ValueType::L => "LIST",
        ValueType::M => "MAP",
        ValueType::SS => "STRING_SET",
        ValueType::NS => "NUMBER_SET",
        ValueType::BS => "BINARY_SET",
    }
}

fn describe(value: &AttributeValue) -> String {
    match value {
        AttributeValue::S(s) => format!("S:{s}"),
        AttributeValue::N(n) => format!("N:{n}"),
        other => format!("{}:{other:?}", other.value_type()),
    }
}

fn steps_text(steps: &[Step]) -> String {
    let parts: Vec<String> = steps
        .iter()
        .map(|s| match s {
            Step::Key(k) => k.clone(),
            Step::Index(i) => format!("[{i}]"),
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

/// The expression texts of one request.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Texts<'t> {
    /// A condition (`ConditionExpression`) or filter (`FilterExpression`), with its name.
    pub condition: Option<(&'static str, &'t str)>,
    /// `KeyConditionExpression`.
    pub key_condition: Option<&'t str>,
    /// `UpdateExpression`, with the key attributes no action may touch.
    pub update: Option<(&'t str, &'t [&'t str])>,
    /// `ProjectionExpression`.
    pub projection: Option<&'t str>,
    /// How DynamoDB names the missing expressions when values come without any (`ConditionExpression
    /// is null`); `None` where it reports such values as unused.
    pub absent: Option<&'static str>,
}

/// A request's expressions, parsed and checked, with its placeholders: ready to evaluate any
/// number of times.
#[derive(Debug, Clone, Default)]
pub(crate) struct Prepared {
    pub condition: Option<Condition>,
    pub key_condition: Option<Condition>,
    pub update: Option<Update>,
    /// The resolved paths the update writes (for `UPDATED_OLD` and `UPDATED_NEW`).
    pub update_paths: Vec<Vec<Step>>,
    pub projection: Option<Vec<Vec<Step>>>,
    pub names: BTreeMap<String, String>,
    pub values: Item,
}

impl Prepared {
    /// Parses and checks `texts` against the placeholders.
    ///
    /// # Errors
    /// The first syntax or validation error; an unused placeholder.
    pub(crate) fn new(
        texts: Texts<'_>,
        names: BTreeMap<String, String>,
        values: Item,
    ) -> Result<Self> {
        let any = texts.condition.is_some()
            || texts.key_condition.is_some()
            || texts.update.is_some()
            || texts.projection.is_some();
        if !any && !names.is_empty() {
            return Err(Error::validation(
                "ExpressionAttributeNames",
                "ExpressionAttributeNames can only be specified when using expressions",
            ));
        }
        if let (false, false, Some(absent)) = (any, values.is_empty(), texts.absent) {
            return Err(Error::validation(
                "ExpressionAttributeValues",
                format!(
                    "ExpressionAttributeValues can only be specified when using expressions: {absent}"
                ),
            ));
        }
        let condition = texts
            .condition
            .map(|(kind, text)| parse_condition(kind, text))
            .transpose()?;
        let key_condition = texts
            .key_condition
            .map(|text| parse_condition("KeyConditionExpression", text))
            .transpose()?;
        let update = texts
            .update
            .map(|(text, _)| parse_update(text))
            .transpose()?;
        let projection = texts.projection.map(parse_projection).transpose()?;
        let (update_paths, projection_steps) = {
            let mut scope = Scope::new(&names, &values)?;
            if let (Some((kind, _)), Some(c)) = (texts.condition, &condition) {
                scope.condition(kind, c)?;
            }
            if let Some(c) = &key_condition {
                scope.condition("KeyConditionExpression", c)?;
            }
            let update_paths = match (&update, texts.update) {
                (Some(u), Some((_, keys))) => scope.update(u, keys)?,
                _ => Vec::new(),
            };
            let projection_steps = projection
                .as_deref()
                .map(|p| scope.projection(p))
                .transpose()?;
            scope.finish()?;
            (update_paths, projection_steps)
        };
        Ok(Self {
            condition,
            key_condition,
            update,
            update_paths,
            projection: projection_steps,
            names,
            values,
        })
    }

    /// The evaluation context.
    pub(crate) fn context(&self) -> Context<'_> {
        Context::new(&self.names, &self.values)
    }

    /// True when there is no condition or `item` satisfies it.
    pub(crate) fn condition_holds(&self, item: Option<&Item>) -> bool {
        let empty = Item::new();
        self.condition
            .as_ref()
            .is_none_or(|c| self.context().matches(item.unwrap_or(&empty), c))
    }

    /// `item`, projected if there is a projection.
    pub(crate) fn project(&self, item: Item) -> Item {
        match &self.projection {
            Some(paths) => project(&item, paths),
            None => item,
        }
    }
}
