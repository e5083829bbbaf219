//! The parsed form of DynamoDB expressions, placeholders unresolved, and its printer.
//!
//! `Display` prints an expression back in DynamoDB's syntax; parsing the printed text gives the
//! same tree (a property test holds this).

use std::fmt;

/// An attribute name in a document path: written out, or an `#placeholder`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Name {
    /// A bare name, as written (`status` is rejected: reserved).
    Plain(String),
    /// An expression attribute name, `#` included.
    Placeholder(String),
}

/// One step of a document path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathElement {
    /// A map key (or, first, a top-level attribute).
    Attribute(Name),
    /// A list index.
    Index(u32),
}

/// A document path such as `a.#b[2].c`; the first element is always an attribute.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Path(pub Vec<PathElement>);

/// An operand of a comparison or function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operand {
    /// The value at a document path.
    Path(Path),
    /// An expression attribute value, `:` included.
    Value(String),
    /// `size(path)`.
    Size(Path),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparator {
    /// `=`
    Eq,
    /// `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl Comparator {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            Self::Eq => "=",
            Self::Ne => "<>",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
        }
    }
}

/// A condition, filter or key condition expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// `a <op> b`
    Compare(Operand, Comparator, Operand),
    /// `a BETWEEN low AND high`
    Between(Operand, Operand, Operand),
    /// `a IN (b, c, ...)`
    In(Operand, Vec<Operand>),
    /// `attribute_exists(path)`
    AttributeExists(Path),
    /// `attribute_not_exists(path)`
    AttributeNotExists(Path),
    /// `attribute_type(path, :type)`
    AttributeType(Path, Operand),
    /// `begins_with(a, b)`
    BeginsWith(Operand, Operand),
    /// `contains(a, b)`
    Contains(Operand, Operand),
    /// `NOT c`
    Not(Box<Condition>),
    /// `a AND b`
    And(Box<Condition>, Box<Condition>),
    /// `a OR b`
    Or(Box<Condition>, Box<Condition>),
}

/// An operand on the right of `SET path =`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetOperand {
    /// The value at a document path (of the item before the update).
    Path(Path),
    /// An expression attribute value.
    Value(String),
    /// `if_not_exists(path, operand)`
    IfNotExists(Path, Box<SetOperand>),
    /// `list_append(a, b)`
    ListAppend(Box<SetOperand>, Box<SetOperand>),
}

/// The right-hand side of a SET action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetValue {
    /// A single operand.
    Operand(SetOperand),
    /// `a + b`
    Plus(SetOperand, SetOperand),
    /// `a - b`
    Minus(SetOperand, SetOperand),
}

/// An update expression: its four clauses, each at most once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Update {
    /// `SET path = value, ...`
    pub set: Vec<(Path, SetValue)>,
    /// `REMOVE path, ...`
    pub remove: Vec<Path>,
    /// `ADD path :value, ...`
    pub add: Vec<(Path, String)>,
    /// `DELETE path :value, ...`
    pub delete: Vec<(Path, String)>,
}

impl Update {
    /// Every path the update writes, in clause order.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.set
            .iter()
            .map(|(p, _)| p)
            .chain(&self.remove)
            .chain(self.add.iter().map(|(p, _)| p))
            .chain(self.delete.iter().map(|(p, _)| p))
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Plain(n) | Self::Placeholder(n) => f.write_str(n),
        }
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, element) in self.0.iter().enumerate() {
            match element {
                PathElement::Attribute(name) if i == 0 => write!(f, "{name}")?,
                PathElement::Attribute(name) => write!(f, ".{name}")?,
                PathElement::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Path(p) => write!(f, "{p}"),
            Self::Value(v) => f.write_str(v),
            Self::Size(p) => write!(f, "size({p})"),
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Compare(a, op, b) => write!(f, "{a} {} {b}", op.symbol()),
            Self::Between(a, low, high) => write!(f, "{a} BETWEEN {low} AND {high}"),
            Self::In(a, list) => {
                write!(f, "{a} IN (")?;
                for (i, item) in list.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str(")")
            }
            Self::AttributeExists(p) => write!(f, "attribute_exists({p})"),
            Self::AttributeNotExists(p) => write!(f, "attribute_not_exists({p})"),
            Self::AttributeType(p, t) => write!(f, "attribute_type({p}, {t})"),
            Self::BeginsWith(a, b) => write!(f, "begins_with({a}, {b})"),
            Self::Contains(a, b) => write!(f, "contains({a}, {b})"),
            Self::Not(c) => {
                f.write_str("NOT ")?;
                c.write_within(f, self.precedence(), false)
            }
            Self::And(a, b) | Self::Or(a, b) => {
                a.write_within(f, self.precedence(), false)?;
                f.write_str(if matches!(self, Self::And(..)) {
                    " AND "
                } else {
                    " OR "
                })?;
                b.write_within(f, self.precedence(), true)
            }
        }
    }
}

impl Condition {
    /// How tightly the condition binds: OR, then AND, then NOT, then everything else.
    fn precedence(&self) -> u8 {
        match self {
            Self::Or(..) => 1,
            Self::And(..) => 2,
            Self::Not(..) => 3,
            _ => 4,
        }
    }

    /// Writes `self` as an operand of an operator of precedence `outer`, in parentheses only
    /// where needed: looser binding, or the right operand of the same operator (AND and OR
    /// group to the left). So long chains print flat and parse back to the same tree.
    fn write_within(&self, f: &mut fmt::Formatter<'_>, outer: u8, right: bool) -> fmt::Result {
        let inner = self.precedence();
        if inner < outer || (right && inner == outer && inner < 3) {
            write!(f, "({self})")
        } else {
            write!(f, "{self}")
        }
    }
}

impl fmt::Display for SetOperand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Path(p) => write!(f, "{p}"),
            Self::Value(v) => f.write_str(v),
            Self::IfNotExists(p, v) => write!(f, "if_not_exists({p}, {v})"),
            Self::ListAppend(a, b) => write!(f, "list_append({a}, {b})"),
        }
    }
}

impl fmt::Display for SetValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Operand(o) => write!(f, "{o}"),
            Self::Plus(a, b) => write!(f, "{a} + {b}"),
            Self::Minus(a, b) => write!(f, "{a} - {b}"),
        }
    }
}

impl fmt::Display for Update {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut clauses = Vec::new();
        if !self.set.is_empty() {
            let actions: Vec<String> = self.set.iter().map(|(p, v)| format!("{p} = {v}")).collect();
            clauses.push(format!("SET {}", actions.join(", ")));
        }
        if !self.remove.is_empty() {
            let paths: Vec<String> = self.remove.iter().map(ToString::to_string).collect();
            clauses.push(format!("REMOVE {}", paths.join(", ")));
        }
        for (keyword, actions) in [("ADD", &self.add), ("DELETE", &self.delete)] {
            if !actions.is_empty() {
                let actions: Vec<String> =
                    actions.iter().map(|(p, v)| format!("{p} {v}")).collect();
                clauses.push(format!("{keyword} {}", actions.join(", ")));
            }
        }
        f.write_str(&clauses.join(" "))
    }
}
