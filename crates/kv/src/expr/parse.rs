//! The lexer and recursive-descent parser for DynamoDB's expression syntax.
//!
//! Precedence, loosest first: `OR`, `AND`, `NOT`, then comparisons, `BETWEEN`, `IN` and
//! functions; parentheses group. Keywords are case-insensitive, function names are not.

use super::ast::{
    Comparator, Condition, Name, Operand, Path, PathElement, SetOperand, SetValue, Update,
};
use super::reserved::is_reserved;
use crate::{Error, Result};

/// The longest expression DynamoDB accepts, in bytes.
pub const MAX_EXPRESSION_LENGTH: usize = 4096;
/// The deepest nesting of parentheses and `NOT` the parser follows.
const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    NamePlaceholder(String),
    ValuePlaceholder(String),
    Integer(String),
    Symbol(&'static str),
    Eof,
}

#[derive(Debug, Clone)]
struct Lexed {
    token: Token,
    start: usize,
    end: usize,
}

fn lex(expression: &'static str, text: &str) -> Result<Vec<Lexed>> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut at = 0;
    let word_end = |from: usize| {
        let mut end = from;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        end
    };
    while at < bytes.len() {
        let c = bytes[at];
        if c.is_ascii_whitespace() {
            at += 1;
            continue;
        }
        let start = at;
        let token = match c {
            b'#' | b':' => {
                let end = word_end(at + 1);
                if end == at + 1 {
                    return Err(lex_error(expression, text, &tokens, start, start + 1));
                }
                at = end;
                let name = text[start..end].to_owned();
                if c == b'#' {
                    Token::NamePlaceholder(name)
                } else {
                    Token::ValuePlaceholder(name)
                }
            }
            b'0'..=b'9' => {
                let mut end = at;
                while end < bytes.len() && bytes[end].is_ascii_digit() {
                    end += 1;
                }
                at = end;
                Token::Integer(text[start..end].to_owned())
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                at = word_end(at);
                Token::Ident(text[start..at].to_owned())
            }
            _ => {
                let two = text.get(at..at + 2);
                let symbol = match two {
                    Some("<>") => "<>",
                    Some("<=") => "<=",
                    Some(">=") => ">=",
                    _ => match c {
                        b'=' => "=",
                        b'<' => "<",
                        b'>' => ">",
                        b'(' => "(",
                        b')' => ")",
                        b'[' => "[",
                        b']' => "]",
                        b',' => ",",
                        b'.' => ".",
                        b'+' => "+",
                        b'-' => "-",
                        _ => {
                            let len = text[at..].chars().next().map_or(1, char::len_utf8);
                            return Err(lex_error(expression, text, &tokens, start, start + len));
                        }
                    },
                };
                at += symbol.len();
                Token::Symbol(symbol)
            }
        };
        tokens.push(Lexed {
            token,
            start,
            end: at,
        });
    }
    tokens.push(Lexed {
        token: Token::Eof,
        start: bytes.len(),
        end: bytes.len(),
    });
    Ok(tokens)
}

/// A syntax error at `start..end`; DynamoDB quotes `near` from the token before the offending
/// one to the token after it.
fn syntax_error(
    expression: &'static str,
    text: &str,
    (start, end): (usize, usize),
    (near_start, near_end): (usize, usize),
) -> Error {
    let token = if start >= text.len() {
        "<EOF>".to_owned()
    } else {
        text[start..end].to_owned()
    };
    Error::Syntax {
        expression,
        token,
        near: text
            .get(near_start..near_end)
            .unwrap_or_default()
            .trim()
            .to_owned(),
        position: start,
    }
}

/// A lexing error at `start..end`: near runs from the previous token to the next word.
fn lex_error(
    expression: &'static str,
    text: &str,
    tokens: &[Lexed],
    start: usize,
    end: usize,
) -> Error {
    let near_start = tokens.last().map_or(start, |t| t.start);
    let rest = &text[end..];
    let skipped = rest.len() - rest.trim_start().len();
    let word = rest
        .trim_start()
        .find(char::is_whitespace)
        .unwrap_or(rest.trim_start().len());
    syntax_error(
        expression,
        text,
        (start, end),
        (near_start, end + skipped + word),
    )
}

struct Parser<'t> {
    expression: &'static str,
    text: &'t str,
    tokens: Vec<Lexed>,
    at: usize,
    depth: usize,
}

impl<'t> Parser<'t> {
    fn new(expression: &'static str, text: &'t str) -> Result<Self> {
        if text.len() > MAX_EXPRESSION_LENGTH {
            return Err(Error::validation(
                expression,
                format!(
                    "Invalid {expression}: Expression size has exceeded the maximum allowed size; expression size: {}",
                    text.len()
                ),
            ));
        }
        if text.trim().is_empty() {
            return Err(Error::validation(
                expression,
                format!("Invalid {expression}: The expression can not be empty;"),
            ));
        }
        Ok(Self {
            expression,
            text,
            tokens: lex(expression, text)?,
            at: 0,
            depth: 0,
        })
    }

    fn peek(&self) -> &Token {
        &self.tokens[self.at].token
    }

    fn peek_at(&self, offset: usize) -> &Token {
        let i = (self.at + offset).min(self.tokens.len() - 1);
        &self.tokens[i].token
    }

    fn advance(&mut self) -> Token {
        let token = self.tokens[self.at].token.clone();
        if self.at + 1 < self.tokens.len() {
            self.at += 1;
        }
        token
    }

    fn error(&self) -> Error {
        let lexed = &self.tokens[self.at];
        let near_start = match self.at {
            0 => lexed.start,
            at => self.tokens[at - 1].start,
        };
        let near_end = match self.tokens.get(self.at + 1) {
            Some(next) if next.token != Token::Eof => next.end,
            _ => lexed.end,
        };
        syntax_error(
            self.expression,
            self.text,
            (lexed.start, lexed.end),
            (near_start, near_end),
        )
    }

    fn invalid(&self, message: impl std::fmt::Display) -> Error {
        Error::validation(
            self.expression,
            format!("Invalid {}: {message}", self.expression),
        )
    }

    fn is_symbol(&self, symbol: &str) -> bool {
        matches!(self.peek(), Token::Symbol(s) if *s == symbol)
    }

    fn is_keyword(&self, keyword: &str) -> bool {
        matches!(self.peek(), Token::Ident(w) if w.eq_ignore_ascii_case(keyword))
    }

    fn expect_symbol(&mut self, symbol: &str) -> Result<()> {
        if self.is_symbol(symbol) {
            self.advance();
            Ok(())
        } else {
            Err(self.error())
        }
    }

    fn expect_end(&self) -> Result<()> {
        if *self.peek() == Token::Eof {
            Ok(())
        } else {
            Err(self.error())
        }
    }

    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.invalid("The expression nests too deeply"));
        }
        Ok(())
    }

    /// A bare attribute name (not a reserved word) or an `#placeholder`.
    fn attribute_name(&mut self) -> Result<Name> {
        let name = match self.peek().clone() {
            Token::Ident(name) if is_reserved(&name) => {
                return Err(self.invalid(format!(
                    "Attribute name is a reserved keyword; reserved keyword: {name}"
                )));
            }
            Token::Ident(name) => Name::Plain(name),
            Token::NamePlaceholder(name) => Name::Placeholder(name),
            _ => return Err(self.error()),
        };
        self.advance();
        Ok(name)
    }

    fn path(&mut self) -> Result<Path> {
        let mut elements = vec![PathElement::Attribute(self.attribute_name()?)];
        loop {
            if self.is_symbol(".") {
                self.advance();
                let name = self.attribute_name()?;
                elements.push(PathElement::Attribute(name));
            } else if self.is_symbol("[") {
                self.advance();
                let Token::Integer(digits) = self.peek().clone() else {
                    return Err(self.error());
                };
                let index = digits.parse::<u32>().map_err(|_| self.error())?;
                self.advance();
                self.expect_symbol("]")?;
                elements.push(PathElement::Index(index));
            } else {
                return Ok(Path(elements));
            }
        }
    }

    /// A function name: an identifier directly followed by `(`.
    fn function_name(&self) -> Option<String> {
        match (self.peek(), self.peek_at(1)) {
            (Token::Ident(name), Token::Symbol("(")) => Some(name.clone()),
            _ => None,
        }
    }

    fn operand(&mut self) -> Result<Operand> {
        if let Some(name) = self.function_name() {
            if name != "size" {
                return Err(self.invalid(format!("Invalid function name; function: {name}")));
            }
            self.advance();
            self.advance();
            let path = self.path_argument("size")?;
            self.expect_symbol(")")?;
            return Ok(Operand::Size(path));
        }
        match self.peek().clone() {
            Token::ValuePlaceholder(value) => {
                self.advance();
                Ok(Operand::Value(value))
            }
            Token::Ident(_) | Token::NamePlaceholder(_) => Ok(Operand::Path(self.path()?)),
            _ => Err(self.error()),
        }
    }

    fn path_argument(&mut self, function: &str) -> Result<Path> {
        match self.peek() {
            Token::Ident(_) | Token::NamePlaceholder(_) => self.path(),
            Token::ValuePlaceholder(_) => Err(self.invalid(format!(
                "Operator or function requires a document path; operator or function: {function}"
            ))),
            _ => Err(self.error()),
        }
    }

    fn or(&mut self) -> Result<Condition> {
        let mut left = self.and()?;
        while self.is_keyword("OR") {
            self.advance();
            let right = self.and()?;
            left = Condition::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Condition> {
        let mut left = self.not()?;
        while self.is_keyword("AND") {
            self.advance();
            let right = self.not()?;
            left = Condition::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Condition> {
        if self.is_keyword("NOT") {
            self.advance();
            self.enter()?;
            let inner = self.not()?;
            self.depth -= 1;
            return Ok(Condition::Not(Box::new(inner)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Condition> {
        if self.is_symbol("(") {
            self.advance();
            self.enter()?;
            let inner = self.or()?;
            self.depth -= 1;
            self.expect_symbol(")")?;
            return Ok(inner);
        }
        if let Some(function) = self.function_name()
            && function != "size"
        {
            self.advance();
            self.advance();
            let condition = match function.as_str() {
                "attribute_exists" => Condition::AttributeExists(self.path_argument(&function)?),
                "attribute_not_exists" => {
                    Condition::AttributeNotExists(self.path_argument(&function)?)
                }
                "attribute_type" => {
                    let path = self.path_argument(&function)?;
                    self.expect_symbol(",")?;
                    Condition::AttributeType(path, self.operand()?)
                }
                "begins_with" => {
                    let a = self.operand()?;
                    self.expect_symbol(",")?;
                    Condition::BeginsWith(a, self.operand()?)
                }
                "contains" => {
                    let a = self.operand()?;
                    self.expect_symbol(",")?;
                    Condition::Contains(a, self.operand()?)
                }
                _ => {
                    return Err(
                        self.invalid(format!("Invalid function name; function: {function}"))
                    );
                }
            };
            self.expect_symbol(")")?;
            return Ok(condition);
        }
        let left = self.operand()?;
        if self.is_keyword("BETWEEN") {
            self.advance();
            let low = self.operand()?;
            if !self.is_keyword("AND") {
                return Err(self.error());
            }
            self.advance();
            let high = self.operand()?;
            return Ok(Condition::Between(left, low, high));
        }
        if self.is_keyword("IN") {
            self.advance();
            self.expect_symbol("(")?;
            let mut list = vec![self.operand()?];
            while self.is_symbol(",") {
                self.advance();
                list.push(self.operand()?);
            }
            self.expect_symbol(")")?;
            return Ok(Condition::In(left, list));
        }
        let comparator = match self.peek() {
            Token::Symbol("=") => Comparator::Eq,
            Token::Symbol("<>") => Comparator::Ne,
            Token::Symbol("<") => Comparator::Lt,
            Token::Symbol("<=") => Comparator::Le,
            Token::Symbol(">") => Comparator::Gt,
            Token::Symbol(">=") => Comparator::Ge,
            _ => return Err(self.error()),
        };
        self.advance();
        let right = self.operand()?;
        Ok(Condition::Compare(left, comparator, right))
    }

    fn set_operand(&mut self) -> Result<SetOperand> {
        if let Some(name) = self.function_name() {
            self.advance();
            self.advance();
            self.enter()?;
            let operand = match name.as_str() {
                "if_not_exists" => {
                    let path = self.path_argument("if_not_exists")?;
                    self.expect_symbol(",")?;
                    SetOperand::IfNotExists(path, Box::new(self.set_operand()?))
                }
                "list_append" => {
                    let a = self.set_operand()?;
                    self.expect_symbol(",")?;
                    SetOperand::ListAppend(Box::new(a), Box::new(self.set_operand()?))
                }
                _ => return Err(self.invalid(format!("Invalid function name; function: {name}"))),
            };
            self.depth -= 1;
            self.expect_symbol(")")?;
            return Ok(operand);
        }
        match self.peek().clone() {
            Token::ValuePlaceholder(value) => {
                self.advance();
                Ok(SetOperand::Value(value))
            }
            Token::Ident(_) | Token::NamePlaceholder(_) => Ok(SetOperand::Path(self.path()?)),
            _ => Err(self.error()),
        }
    }

    fn set_value(&mut self) -> Result<SetValue> {
        let first = self.set_operand()?;
        if self.is_symbol("+") {
            self.advance();
            return Ok(SetValue::Plus(first, self.set_operand()?));
        }
        if self.is_symbol("-") {
            self.advance();
            return Ok(SetValue::Minus(first, self.set_operand()?));
        }
        Ok(SetValue::Operand(first))
    }

    fn value_placeholder(&mut self) -> Result<String> {
        match self.peek().clone() {
            Token::ValuePlaceholder(value) => {
                self.advance();
                Ok(value)
            }
            _ => Err(self.error()),
        }
    }

    fn update(&mut self) -> Result<Update> {
        let mut update = Update::default();
        let mut seen = [false; 4];
        loop {
            let clause = match self.peek() {
                Token::Eof if seen.iter().any(|s| *s) => return Ok(update),
                Token::Ident(w) if w.eq_ignore_ascii_case("SET") => 0,
                Token::Ident(w) if w.eq_ignore_ascii_case("REMOVE") => 1,
                Token::Ident(w) if w.eq_ignore_ascii_case("ADD") => 2,
                Token::Ident(w) if w.eq_ignore_ascii_case("DELETE") => 3,
                _ => return Err(self.error()),
            };
            if seen[clause] {
                let name = ["SET", "REMOVE", "ADD", "DELETE"][clause];
                return Err(self.invalid(format!(
                    "The \"{name}\" section can only be used once in an update expression;"
                )));
            }
            seen[clause] = true;
            self.advance();
            loop {
                match clause {
                    0 => {
                        let path = self.path()?;
                        self.expect_symbol("=")?;
                        update.set.push((path, self.set_value()?));
                    }
                    1 => update.remove.push(self.path()?),
                    2 => {
                        let path = self.path()?;
                        update.add.push((path, self.value_placeholder()?));
                    }
                    _ => {
                        let path = self.path()?;
                        update.delete.push((path, self.value_placeholder()?));
                    }
                }
                if !self.is_symbol(",") {
                    break;
                }
                self.advance();
            }
        }
    }
}

/// Parses a condition, filter or key condition expression.
///
/// # Errors
/// [`Error::Syntax`] pointing at the offending token, or [`Error::Validation`] for a reserved
/// word, an unknown function or an over-long expression.
pub fn parse_condition(expression: &'static str, text: &str) -> Result<Condition> {
    let mut parser = Parser::new(expression, text)?;
    let condition = parser.or()?;
    parser.expect_end()?;
    Ok(condition)
}

/// Parses an update expression.
///
/// # Errors
/// As [`parse_condition`], and a clause used twice.
pub fn parse_update(text: &str) -> Result<Update> {
    let mut parser = Parser::new("UpdateExpression", text)?;
    parser.update()
}

/// Parses a projection expression: document paths separated by commas.
///
/// # Errors
/// As [`parse_condition`].
pub fn parse_projection(text: &str) -> Result<Vec<Path>> {
    let mut parser = Parser::new("ProjectionExpression", text)?;
    let mut paths = vec![parser.path()?];
    while parser.is_symbol(",") {
        parser.advance();
        paths.push(parser.path()?);
    }
    parser.expect_end()?;
    Ok(paths)
}
