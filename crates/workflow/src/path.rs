//! JSONPath as Step Functions evaluates it (the Jayway dialect): `$` the state input, `$$` the
//! context object, `$name` a variable; `.field`, `['field']`, `[n]`, `[-n]`, `[a,b]`,
//! `[start:end]`, `[*]`, `.*`, `..field`, filters `[?(@.x < 3)]` and `.length()`.
//!
//! A definite path (fields and indexes only) selects one value and fails when it is missing;
//! any other path selects a list of matches, possibly empty. Reference paths (ResultPath, a
//! Choice rule's Variable, ...) must be definite.

use std::fmt;

use serde_json::Value;

/// What a path starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Root {
    /// `$`: the state's input (or whatever document the field reads).
    Input,
    /// `$$`: the context object.
    Context,
    /// `$name`: a workflow variable.
    Variable(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Field(String),
    Fields(Vec<String>),
    Index(i64),
    Indexes(Vec<i64>),
    Slice(Option<i64>, Option<i64>, Option<i64>),
    Wildcard,
    /// `..name`, `..*` (None) or `..[...]` (the boxed segment).
    Descend(Box<Segment>),
    Filter(Filter),
    Length,
}

#[derive(Debug, Clone, PartialEq)]
enum Filter {
    Exists(Vec<Segment>),
    /// `@.name =~ /pattern/i`.
    Matches(Operand, Pattern),
    Compare(Operand, CmpOp, Operand),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Current(Vec<Segment>),
    Root(Vec<Segment>),
    Literal(Value),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Nin,
    SubsetOf,
    AnyOf,
    NoneOf,
    Size,
    Empty,
}

/// A compiled `=~` pattern, compared by its text.
#[derive(Debug, Clone)]
struct Pattern(regex::Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

/// A parsed JSONPath.
#[derive(Clone, PartialEq)]
pub(crate) struct Path {
    text: String,
    root: Root,
    segments: Vec<Segment>,
}

impl fmt::Debug for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Why a path does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PathSyntaxError(pub(crate) String);

/// A definite path that selects nothing: `$['a'][0]` names the path as Jayway prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Missing {
    pub(crate) normalized: String,
}

impl Path {
    /// Parses `text`.
    pub(crate) fn parse(text: &str) -> Result<Self, PathSyntaxError> {
        let mut parser = Parser {
            s: text.as_bytes(),
            text,
            at: 0,
            depth: 0,
        };
        let root = parser.root()?;
        let segments = parser.segments(false)?;
        if parser.at != parser.s.len() {
            return Err(parser.error("unexpected character"));
        }
        Ok(Self {
            text: text.to_string(),
            root,
            segments,
        })
    }

    /// The path as written.
    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// What the path starts from.
    pub(crate) fn root(&self) -> &Root {
        &self.root
    }

    /// Whether the path selects at most one value (fields and indexes only).
    pub(crate) fn is_definite(&self) -> bool {
        self.segments
            .iter()
            .all(|s| matches!(s, Segment::Field(_) | Segment::Index(_) | Segment::Length))
    }

    /// Whether the path is a reference path: definite, without functions.
    pub(crate) fn is_reference(&self) -> bool {
        self.segments
            .iter()
            .all(|s| matches!(s, Segment::Field(_) | Segment::Index(_)))
    }

    /// Selects from `doc`: the value for a definite path, an array of matches otherwise.
    pub(crate) fn select(&self, doc: &Value) -> Result<Value, Missing> {
        // Jayway: several properties selected at the end of a definite path give an object of
        // those present.
        if let Some((Segment::Fields(names), prefix)) = self.segments.split_last()
            && prefix
                .iter()
                .all(|s| matches!(s, Segment::Field(_) | Segment::Index(_)))
        {
            let base = Path {
                text: self.text.clone(),
                root: self.root.clone(),
                segments: prefix.to_vec(),
            };
            let parent = base.select(doc)?;
            let mut out = serde_json::Map::new();
            if let Value::Object(map) = &parent {
                for name in names {
                    if let Some(v) = map.get(name) {
                        out.insert(name.clone(), v.clone());
                    }
                }
            }
            return Ok(Value::Object(out));
        }
        if self.is_definite() {
            let mut current = doc;
            for (i, segment) in self.segments.iter().enumerate() {
                let next = match segment {
                    Segment::Field(name) => match current {
                        Value::Object(map) => map.get(name),
                        _ => None,
                    },
                    Segment::Index(index) => match current {
                        Value::Array(items) => {
                            resolve_index(*index, items.len()).map(|at| &items[at])
                        }
                        _ => None,
                    },
                    Segment::Length => {
                        return match current {
                            Value::Array(items) => Ok(Value::from(items.len())),
                            Value::Object(map) => Ok(Value::from(map.len())),
                            Value::String(s) => Ok(Value::from(s.chars().count())),
                            _ => Err(self.missing(i + 1)),
                        };
                    }
                    _ => None,
                };
                current = next.ok_or_else(|| self.missing(i + 1))?;
            }
            return Ok(current.clone());
        }
        let mut matches = vec![doc];
        for segment in &self.segments {
            if let Segment::Length = segment {
                let counted: Vec<Value> = matches
                    .iter()
                    .filter_map(|v| match v {
                        Value::Array(items) => Some(Value::from(items.len())),
                        _ => None,
                    })
                    .collect();
                return Ok(Value::Array(counted));
            }
            let mut next = Vec::new();
            for value in matches {
                apply(segment, value, doc, &mut next);
            }
            matches = next;
        }
        Ok(Value::Array(matches.into_iter().cloned().collect()))
    }

    /// The first `upto` segments as Jayway prints a path that selects nothing: `$['a'][0]`.
    fn missing(&self, upto: usize) -> Missing {
        let mut normalized = String::from("$");
        for segment in &self.segments[..upto.min(self.segments.len())] {
            match segment {
                Segment::Field(name) => normalized.push_str(&format!("['{name}']")),
                Segment::Index(i) => normalized.push_str(&format!("[{i}]")),
                Segment::Length => normalized.push_str(".length()"),
                _ => {}
            }
        }
        Missing { normalized }
    }

    /// Writes `value` at this reference path inside `doc`, creating objects on the way, as
    /// ResultPath does. Fails when the way passes through a value that is not an object
    /// (or an array, for an index that exists).
    pub(crate) fn assign(&self, doc: &mut Value, value: Value) -> Result<(), ()> {
        if self.segments.is_empty() {
            *doc = value;
            return Ok(());
        }
        let mut current = doc;
        for (i, segment) in self.segments.iter().enumerate() {
            let last = i + 1 == self.segments.len();
            match segment {
                Segment::Field(name) => {
                    let Value::Object(map) = current else {
                        return Err(());
                    };
                    if last {
                        map.insert(name.clone(), value);
                        return Ok(());
                    }
                    current = map
                        .entry(name.clone())
                        .or_insert_with(|| Value::Object(Default::default()));
                }
                Segment::Index(index) => {
                    let Value::Array(items) = current else {
                        return Err(());
                    };
                    let Some(at) = resolve_index(*index, items.len()) else {
                        return Err(());
                    };
                    if last {
                        items[at] = value;
                        return Ok(());
                    }
                    current = &mut items[at];
                }
                _ => return Err(()),
            }
        }
        Ok(())
    }
}

fn resolve_index(index: i64, len: usize) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    let at = if index < 0 { len + index } else { index };
    (0..len).contains(&at).then_some(at as usize)
}

fn apply<'a>(segment: &Segment, value: &'a Value, root: &'a Value, out: &mut Vec<&'a Value>) {
    match segment {
        Segment::Field(name) => {
            if let Value::Object(map) = value
                && let Some(v) = map.get(name)
            {
                out.push(v);
            }
        }
        Segment::Fields(names) => {
            if let Value::Object(map) = value {
                out.extend(names.iter().filter_map(|n| map.get(n)));
            }
        }
        Segment::Index(i) => {
            if let Value::Array(items) = value
                && let Some(at) = resolve_index(*i, items.len())
            {
                out.push(&items[at]);
            }
        }
        Segment::Indexes(indexes) => {
            if let Value::Array(items) = value {
                for i in indexes {
                    if let Some(at) = resolve_index(*i, items.len()) {
                        out.push(&items[at]);
                    }
                }
            }
        }
        Segment::Slice(start, end, step) => {
            if let Value::Array(items) = value {
                let len = items.len() as i64;
                let norm = |v: i64| if v < 0 { (len + v).max(0) } else { v.min(len) };
                let start = start.map_or(0, norm);
                let end = end.map_or(len, norm);
                let step = step.unwrap_or(1).max(1);
                let mut i = start;
                while i < end {
                    out.push(&items[i as usize]);
                    match i.checked_add(step) {
                        Some(next) => i = next,
                        None => break,
                    }
                }
            }
        }
        Segment::Wildcard => match value {
            Value::Object(map) => out.extend(map.values()),
            Value::Array(items) => out.extend(items.iter()),
            _ => {}
        },
        Segment::Descend(inner) => descend(inner, value, root, out),
        Segment::Filter(filter) => {
            let candidates: Vec<&Value> = match value {
                Value::Array(items) => items.iter().collect(),
                Value::Object(_) => vec![value],
                _ => Vec::new(),
            };
            out.extend(candidates.into_iter().filter(|c| filter.test(c, root)));
        }
        Segment::Length => {}
    }
}

fn descend<'a>(inner: &Segment, value: &'a Value, root: &'a Value, out: &mut Vec<&'a Value>) {
    apply(inner, value, root, out);
    match value {
        Value::Object(map) => map.values().for_each(|v| descend(inner, v, root, out)),
        Value::Array(items) => items.iter().for_each(|v| descend(inner, v, root, out)),
        _ => {}
    }
}

fn walk(segments: &[Segment], start: &Value, root: &Value) -> Option<Value> {
    let mut current = vec![start];
    for (i, segment) in segments.iter().enumerate() {
        if let Segment::Length = segment {
            // `length()` ends the path: the size of what it reached.
            let _ = i;
            return current.first().and_then(|v| match v {
                Value::Array(items) => Some(Value::from(items.len())),
                Value::Object(map) => Some(Value::from(map.len())),
                Value::String(s) => Some(Value::from(s.chars().count())),
                _ => None,
            });
        }
        let mut next = Vec::new();
        for v in current {
            apply(segment, v, root, &mut next);
        }
        current = next;
    }
    current.first().map(|v| (*v).clone())
}

impl Filter {
    fn test(&self, current: &Value, root: &Value) -> bool {
        match self {
            Filter::Exists(path) => walk(path, current, root).is_some(),
            Filter::And(a, b) => a.test(current, root) && b.test(current, root),
            Filter::Or(a, b) => a.test(current, root) || b.test(current, root),
            Filter::Not(a) => !a.test(current, root),
            Filter::Matches(operand, pattern) => {
                let value = match operand {
                    Operand::Current(p) => walk(p, current, root),
                    Operand::Root(p) => walk(p, root, root),
                    Operand::Literal(v) => Some(v.clone()),
                };
                value
                    .as_ref()
                    .and_then(Value::as_str)
                    .is_some_and(|s| pattern.0.is_match(s))
            }
            Filter::Compare(left, op, right) => {
                let resolve = |o: &Operand| -> Option<Value> {
                    match o {
                        Operand::Current(p) => walk(p, current, root),
                        Operand::Root(p) => walk(p, root, root),
                        Operand::Literal(v) => Some(v.clone()),
                    }
                };
                let (Some(l), Some(r)) = (resolve(left), resolve(right)) else {
                    return false;
                };
                compare(&l, *op, &r)
            }
        }
    }
}

fn compare(l: &Value, op: CmpOp, r: &Value) -> bool {
    let contains = |items: &Value, v: &Value| {
        items
            .as_array()
            .is_some_and(|items| items.iter().any(|i| crate::intrinsics::json_equal(i, v)))
    };
    match op {
        CmpOp::In => return contains(r, l),
        CmpOp::Nin => return r.is_array() && !contains(r, l),
        CmpOp::SubsetOf => {
            return l
                .as_array()
                .is_some_and(|items| items.iter().all(|v| contains(r, v)));
        }
        CmpOp::AnyOf => {
            return l
                .as_array()
                .is_some_and(|items| items.iter().any(|v| contains(r, v)));
        }
        CmpOp::NoneOf => {
            return l
                .as_array()
                .is_some_and(|items| !items.iter().any(|v| contains(r, v)));
        }
        CmpOp::Size => {
            let size = match l {
                Value::Array(items) => items.len(),
                Value::String(s) => s.chars().count(),
                _ => return false,
            };
            return r.as_u64() == Some(size as u64);
        }
        CmpOp::Empty => {
            let empty = match l {
                Value::Array(items) => items.is_empty(),
                Value::String(s) => s.is_empty(),
                Value::Object(map) => map.is_empty(),
                _ => return false,
            };
            return r.as_bool() == Some(empty);
        }
        _ => {}
    }
    let ordering = match (l, r) {
        (Value::Number(a), Value::Number(b)) => {
            let (a, b) = (
                a.as_f64().unwrap_or(f64::NAN),
                b.as_f64().unwrap_or(f64::NAN),
            );
            a.partial_cmp(&b)
        }
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        _ => {
            return match op {
                CmpOp::Eq => l == r,
                CmpOp::Ne => l != r,
                _ => false,
            };
        }
    };
    let Some(ordering) = ordering else {
        return false;
    };
    match op {
        CmpOp::Eq => ordering.is_eq(),
        CmpOp::Ne => !ordering.is_eq(),
        CmpOp::Lt => ordering.is_lt(),
        CmpOp::Le => ordering.is_le(),
        CmpOp::Gt => ordering.is_gt(),
        CmpOp::Ge => ordering.is_ge(),
        // Answered above.
        CmpOp::In
        | CmpOp::Nin
        | CmpOp::SubsetOf
        | CmpOp::AnyOf
        | CmpOp::NoneOf
        | CmpOp::Size
        | CmpOp::Empty => false,
    }
}

/// How deep filters may nest (`!`, parentheses): deeper is refused, not a stack overflow.
const MAX_FILTER_DEPTH: usize = 64;

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    at: usize,
    depth: usize,
}

impl Parser<'_> {
    fn error(&self, what: &str) -> PathSyntaxError {
        PathSyntaxError(format!("{what} at position {} of '{}'", self.at, self.text))
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.at += 1;
        }
    }

    fn root(&mut self) -> Result<Root, PathSyntaxError> {
        if !self.eat(b'$') {
            return Err(self.error("a path starts with '$'"));
        }
        if self.eat(b'$') {
            return Ok(Root::Context);
        }
        let start = self.at;
        while let Some(c) = self.peek() {
            if c == b'.' || c == b'[' {
                break;
            }
            if !(c.is_ascii_alphanumeric() || c == b'_') {
                return Err(self.error("unexpected character in variable name"));
            }
            self.at += 1;
        }
        if self.at == start {
            Ok(Root::Input)
        } else {
            Ok(Root::Variable(self.text[start..self.at].to_string()))
        }
    }

    /// Segments until the end (or, inside a filter, until a character that ends an operand).
    fn segments(&mut self, in_filter: bool) -> Result<Vec<Segment>, PathSyntaxError> {
        let mut segments = Vec::new();
        loop {
            match self.peek() {
                None => break,
                Some(b'.') => {
                    self.at += 1;
                    if self.eat(b'.') {
                        let inner = if self.eat(b'*') {
                            Segment::Wildcard
                        } else if self.peek() == Some(b'[') {
                            self.bracket()?
                        } else {
                            Segment::Field(self.name(in_filter)?)
                        };
                        segments.push(Segment::Descend(Box::new(inner)));
                    } else if self.eat(b'*') {
                        segments.push(Segment::Wildcard);
                    } else {
                        let name = self.name(in_filter)?;
                        if name == "length()" {
                            segments.push(Segment::Length);
                        } else {
                            segments.push(Segment::Field(name));
                        }
                    }
                }
                Some(b'[') => {
                    let segment = self.bracket()?;
                    segments.push(segment);
                }
                Some(_) if in_filter => break,
                Some(_) => return Err(self.error("unexpected character")),
            }
        }
        Ok(segments)
    }

    fn name(&mut self, in_filter: bool) -> Result<String, PathSyntaxError> {
        let start = self.at;
        while let Some(c) = self.peek() {
            if in_filter && self.at == start && self.s[self.at..].starts_with(b"length()") {
                self.at += "length()".len();
                return Ok("length()".to_string());
            }
            let stop = c == b'.'
                || c == b'['
                || (in_filter
                    && matches!(c, b' ' | b')' | b'=' | b'!' | b'<' | b'>' | b'&' | b'|'));
            if stop {
                break;
            }
            self.at += 1;
        }
        if self.at == start {
            return Err(self.error("expected a field name"));
        }
        Ok(self.text[start..self.at].to_string())
    }

    fn quoted(&mut self) -> Result<String, PathSyntaxError> {
        let quote = self.peek().ok_or_else(|| self.error("expected a quote"))?;
        self.at += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.text[self.at..].chars().next() else {
                return Err(self.error("unterminated string"));
            };
            self.at += c.len_utf8();
            if c as u32 == u32::from(quote) {
                return Ok(out);
            }
            // Only the quote itself is escaped; any other backslash is literal.
            if c == '\\' && self.text[self.at..].starts_with(quote as char) {
                self.at += 1;
                out.push(quote as char);
            } else {
                out.push(c);
            }
        }
    }

    fn integer(&mut self) -> Result<Option<i64>, PathSyntaxError> {
        self.skip_spaces();
        let start = self.at;
        self.eat(b'-');
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.at += 1;
        }
        let digits = &self.text[start..self.at];
        self.skip_spaces();
        if digits.is_empty() {
            return Ok(None);
        }
        digits
            .parse()
            .map(Some)
            .map_err(|_| self.error("expected an integer"))
    }

    fn bracket(&mut self) -> Result<Segment, PathSyntaxError> {
        self.at += 1; // '['
        self.skip_spaces();
        let segment = match self.peek() {
            Some(b'*') => {
                self.at += 1;
                Segment::Wildcard
            }
            Some(b'\'' | b'"') => {
                let mut names = vec![self.quoted()?];
                self.skip_spaces();
                while self.eat(b',') {
                    self.skip_spaces();
                    names.push(self.quoted()?);
                    self.skip_spaces();
                }
                if names.len() == 1 {
                    Segment::Field(names.remove(0))
                } else {
                    Segment::Fields(names)
                }
            }
            Some(b'?') => {
                self.at += 1;
                self.skip_spaces();
                if !self.eat(b'(') {
                    return Err(self.error("expected '(' after '?'"));
                }
                let filter = self.filter_or()?;
                self.skip_spaces();
                if !self.eat(b')') {
                    return Err(self.error("expected ')'"));
                }
                Segment::Filter(filter)
            }
            _ => {
                let first = self.integer()?;
                if self.eat(b':') {
                    let end = self.integer()?;
                    let step = if self.eat(b':') {
                        self.integer()?
                    } else {
                        None
                    };
                    Segment::Slice(first, end, step)
                } else {
                    let first = first.ok_or_else(|| self.error("expected an index"))?;
                    let mut indexes = vec![first];
                    while self.eat(b',') {
                        indexes.push(
                            self.integer()?
                                .ok_or_else(|| self.error("expected an index"))?,
                        );
                    }
                    if indexes.len() == 1 {
                        Segment::Index(first)
                    } else {
                        Segment::Indexes(indexes)
                    }
                }
            }
        };
        self.skip_spaces();
        if !self.eat(b']') {
            return Err(self.error("expected ']'"));
        }
        Ok(segment)
    }

    fn filter_or(&mut self) -> Result<Filter, PathSyntaxError> {
        let mut left = self.filter_and()?;
        loop {
            self.skip_spaces();
            if self.s[self.at..].starts_with(b"||") {
                self.at += 2;
                let right = self.filter_and()?;
                left = Filter::Or(Box::new(left), Box::new(right));
            } else {
                return Ok(left);
            }
        }
    }

    fn filter_and(&mut self) -> Result<Filter, PathSyntaxError> {
        let mut left = self.filter_atom()?;
        loop {
            self.skip_spaces();
            if self.s[self.at..].starts_with(b"&&") {
                self.at += 2;
                let right = self.filter_atom()?;
                left = Filter::And(Box::new(left), Box::new(right));
            } else {
                return Ok(left);
            }
        }
    }

    fn filter_atom(&mut self) -> Result<Filter, PathSyntaxError> {
        self.depth += 1;
        if self.depth > MAX_FILTER_DEPTH {
            return Err(self.error("filter nests too deep"));
        }
        let atom = self.filter_atom_inner();
        self.depth -= 1;
        atom
    }

    fn filter_atom_inner(&mut self) -> Result<Filter, PathSyntaxError> {
        self.skip_spaces();
        if self.eat(b'!') {
            return Ok(Filter::Not(Box::new(self.filter_atom()?)));
        }
        if self.eat(b'(') {
            let inner = self.filter_or()?;
            self.skip_spaces();
            if !self.eat(b')') {
                return Err(self.error("expected ')'"));
            }
            return Ok(inner);
        }
        let left = self.operand()?;
        self.skip_spaces();
        if self.s[self.at..].starts_with(b"=~") {
            self.at += 2;
            self.skip_spaces();
            return Ok(Filter::Matches(left, self.regex()?));
        }
        for (word, op) in [
            ("subsetof", CmpOp::SubsetOf),
            ("noneof", CmpOp::NoneOf),
            ("anyof", CmpOp::AnyOf),
            ("empty", CmpOp::Empty),
            ("size", CmpOp::Size),
            ("nin", CmpOp::Nin),
            ("in", CmpOp::In),
        ] {
            let rest = &self.s[self.at..];
            if rest.starts_with(word.as_bytes()) && rest.get(word.len()).is_some_and(|c| *c == b' ')
            {
                self.at += word.len();
                let right = self.operand()?;
                return Ok(Filter::Compare(left, op, right));
            }
        }
        let op = if self.s[self.at..].starts_with(b"==") {
            Some((CmpOp::Eq, 2))
        } else if self.s[self.at..].starts_with(b"!=") {
            Some((CmpOp::Ne, 2))
        } else if self.s[self.at..].starts_with(b"<=") {
            Some((CmpOp::Le, 2))
        } else if self.s[self.at..].starts_with(b">=") {
            Some((CmpOp::Ge, 2))
        } else if self.s[self.at..].starts_with(b"<") {
            Some((CmpOp::Lt, 1))
        } else if self.s[self.at..].starts_with(b">") {
            Some((CmpOp::Gt, 1))
        } else {
            None
        };
        match op {
            Some((op, width)) => {
                self.at += width;
                let right = self.operand()?;
                Ok(Filter::Compare(left, op, right))
            }
            None => match left {
                Operand::Current(path) => Ok(Filter::Exists(path)),
                _ => Err(self.error("expected a comparison")),
            },
        }
    }

    /// `/pattern/flags` (`i` makes it case-insensitive).
    fn regex(&mut self) -> Result<Pattern, PathSyntaxError> {
        if !self.eat(b'/') {
            return Err(self.error("expected a /pattern/"));
        }
        let start = self.at;
        let mut escaped = false;
        loop {
            match self.peek() {
                None => return Err(self.error("unterminated /pattern/")),
                Some(b'\\') if !escaped => escaped = true,
                Some(b'/') if !escaped => break,
                Some(_) => escaped = false,
            }
            self.at += 1;
        }
        let pattern = self.text[start..self.at].to_string();
        self.at += 1;
        let mut insensitive = false;
        while let Some(c) = self.peek().filter(u8::is_ascii_alphabetic) {
            insensitive |= c == b'i';
            self.at += 1;
        }
        let source = if insensitive {
            format!("(?i){pattern}")
        } else {
            pattern
        };
        regex::RegexBuilder::new(&source)
            .size_limit(1 << 20)
            .build()
            .map(Pattern)
            .map_err(|e| self.error(&format!("invalid pattern: {e}")))
    }

    fn operand(&mut self) -> Result<Operand, PathSyntaxError> {
        self.skip_spaces();
        match self.peek() {
            Some(b'@') => {
                self.at += 1;
                Ok(Operand::Current(self.segments(true)?))
            }
            Some(b'$') => {
                self.at += 1;
                Ok(Operand::Root(self.segments(true)?))
            }
            Some(b'\'' | b'"') => Ok(Operand::Literal(Value::String(self.quoted()?))),
            Some(b'[') => {
                self.at += 1;
                self.depth += 1;
                if self.depth > MAX_FILTER_DEPTH {
                    return Err(self.error("filter nests too deep"));
                }
                let mut items = Vec::new();
                loop {
                    self.skip_spaces();
                    if self.eat(b']') {
                        break;
                    }
                    match self.operand()? {
                        Operand::Literal(v) => items.push(v),
                        _ => return Err(self.error("an array in a filter holds literals only")),
                    }
                    self.skip_spaces();
                    if !self.eat(b',') {
                        self.skip_spaces();
                        if !self.eat(b']') {
                            return Err(self.error("expected ',' or ']'"));
                        }
                        break;
                    }
                }
                self.depth -= 1;
                Ok(Operand::Literal(Value::Array(items)))
            }
            _ => {
                let start = self.at;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'+' | b'.'))
                {
                    self.at += 1;
                }
                let word = &self.text[start..self.at];
                serde_json::from_str::<Value>(word)
                    .map(Operand::Literal)
                    .map_err(|_| self.error("expected a literal"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn select(path: &str, doc: &Value) -> Result<Value, Missing> {
        Path::parse(path).expect("parses").select(doc)
    }

    #[test]
    fn definite_paths_select_one_value_or_name_the_missing_part() {
        let doc = json!({"a": {"b": [1, 2, {"c": 3}]}, "x y": 1});
        assert_eq!(select("$", &doc).unwrap(), doc);
        assert_eq!(select("$.a.b[2].c", &doc).unwrap(), json!(3));
        assert_eq!(select("$.a.b[-1].c", &doc).unwrap(), json!(3));
        assert_eq!(select("$['x y']", &doc).unwrap(), json!(1));
        assert_eq!(select("$.a.b.length()", &doc).unwrap(), json!(3));
        assert_eq!(
            select("$.a.nope", &doc).unwrap_err().normalized,
            "$['a']['nope']".to_string()
        );
        assert_eq!(
            select("$.a.b[7]", &doc).unwrap_err().normalized,
            "$['a']['b'][7]"
        );
    }

    #[test]
    fn indefinite_paths_select_lists() {
        let doc = json!({"items": [{"p": 1, "n": "a"}, {"p": 5, "n": "b"}, {"n": "c"}]});
        assert_eq!(
            select("$.items[*].n", &doc).unwrap(),
            json!(["a", "b", "c"])
        );
        assert_eq!(select("$..p", &doc).unwrap(), json!([1, 5]));
        assert_eq!(select("$.items[?(@.p > 2)].n", &doc).unwrap(), json!(["b"]));
        assert_eq!(
            select("$.items[?(@.p)].n", &doc).unwrap(),
            json!(["a", "b"])
        );
        assert_eq!(select("$.items[0:2].n", &doc).unwrap(), json!(["a", "b"]));
        assert_eq!(
            select("$.items[?(@.n == 'c')].n", &doc).unwrap(),
            json!(["c"])
        );
        assert_eq!(select("$.nope[*]", &doc).unwrap(), json!([]));
        assert_eq!(
            select("$.items[?(@.n in ['a','c'])].n", &doc).unwrap(),
            json!(["a", "c"])
        );
        assert_eq!(
            select("$.items[?(@.n nin ['a','c'])].n", &doc).unwrap(),
            json!(["b"])
        );
        assert_eq!(
            select("$.items[?(@.n =~ /B/i)].n", &doc).unwrap(),
            json!(["b"])
        );
        assert_eq!(
            select("$.items[?(@.n size 1)].n", &doc).unwrap(),
            json!(["a", "b", "c"])
        );
        let tags = json!({"xs": [{"t": ["a", "b"]}, {"t": []}, {"t": ["z"]}]});
        assert_eq!(
            select("$.xs[?(@.t empty true)]", &tags).unwrap(),
            json!([{"t": []}])
        );
        assert_eq!(
            select("$.xs[?(@.t subsetof ['a','b','c'])].t", &tags).unwrap(),
            json!([["a", "b"], []])
        );
        assert_eq!(
            select("$.xs[?(@.t anyof ['z'])].t", &tags).unwrap(),
            json!([["z"]])
        );
        assert_eq!(
            select("$.xs[?(@.t noneof ['a'])].t", &tags).unwrap(),
            json!([[], ["z"]])
        );
        let doc = json!({"o": {"a": 1, "b": 2, "c": 3}});
        assert_eq!(
            select("$.o['a','c','z']", &doc).unwrap(),
            json!({"a": 1, "c": 3})
        );
    }

    #[test]
    fn roots() {
        assert_eq!(
            Path::parse("$$.Execution.Id").unwrap().root(),
            &Root::Context
        );
        assert_eq!(
            Path::parse("$var.a").unwrap().root(),
            &Root::Variable("var".into())
        );
        assert!(Path::parse("a.b").is_err());
        assert!(Path::parse("$.a[").is_err());
    }

    #[test]
    fn assignment_creates_objects_and_refuses_to_pass_through_scalars() {
        let mut doc = json!({"a": 1});
        Path::parse("$.b.c")
            .unwrap()
            .assign(&mut doc, json!(2))
            .unwrap();
        assert_eq!(doc, json!({"a": 1, "b": {"c": 2}}));
        assert!(
            Path::parse("$.a.c")
                .unwrap()
                .assign(&mut doc, json!(2))
                .is_err()
        );
    }
}
