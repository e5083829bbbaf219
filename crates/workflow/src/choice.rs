//! Choice rules of JSONPath states.

use serde_json::Value;

use crate::definition::{CompareKind, CompareOp, Operand, Rule, Test};
use crate::template::{Sources, read_path};
use crate::time::parse_timestamp;

/// Why a rule cannot be evaluated: a Variable or a `...Path` operand that selects nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MissingVariable(pub(crate) String);

/// Evaluates a JSONPath rule.
pub(crate) fn evaluate(rule: &Rule, sources: &dyn Sources) -> Result<bool, MissingVariable> {
    match rule {
        Rule::And(rules) => {
            for r in rules {
                if !evaluate(r, sources)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Rule::Or(rules) => {
            for r in rules {
                if evaluate(r, sources)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Rule::Not(r) => Ok(!evaluate(r, sources)?),
        Rule::Condition(_) => Ok(false),
        Rule::Test { variable, test } => {
            let value = read_path(variable, sources).ok();
            if let Test::IsPresent(expected) = test {
                return Ok(value.is_some() == *expected);
            }
            let Some(value) = value else {
                return Err(MissingVariable(variable.as_str().to_string()));
            };
            Ok(match test {
                Test::IsPresent(_) => unreachable!("handled above"),
                Test::IsNull(e) => value.is_null() == *e,
                Test::IsNumeric(e) => value.is_number() == *e,
                Test::IsString(e) => value.is_string() == *e,
                Test::IsBoolean(e) => value.is_boolean() == *e,
                Test::IsTimestamp(e) => {
                    value.as_str().is_some_and(|s| parse_timestamp(s).is_some()) == *e
                }
                Test::StringMatches(pattern) => {
                    value.as_str().is_some_and(|s| wildcard_match(pattern, s))
                }
                Test::Compare { kind, op, operand } => {
                    let other = match operand {
                        Operand::Literal(v) => v.clone(),
                        Operand::Path(p) => read_path(p, sources)
                            .map_err(|_| MissingVariable(p.as_str().to_string()))?,
                    };
                    compare(*kind, *op, &value, &other)
                }
            })
        }
    }
}

fn compare(kind: CompareKind, op: CompareOp, left: &Value, right: &Value) -> bool {
    let ordering = match kind {
        CompareKind::String => match (left.as_str(), right.as_str()) {
            (Some(a), Some(b)) => a.cmp(b),
            _ => return false,
        },
        CompareKind::Numeric => match (left, right) {
            (Value::Number(a), Value::Number(b)) => match (a.as_i64(), b.as_i64()) {
                (Some(a), Some(b)) => a.cmp(&b),
                _ => match (a.as_f64(), b.as_f64()) {
                    (Some(a), Some(b)) => match a.partial_cmp(&b) {
                        Some(o) => o,
                        None => return false,
                    },
                    _ => return false,
                },
            },
            _ => return false,
        },
        CompareKind::Timestamp => {
            match (
                left.as_str().and_then(parse_timestamp),
                right.as_str().and_then(parse_timestamp),
            ) {
                (Some(a), Some(b)) => a.cmp(&b),
                _ => return false,
            }
        }
        CompareKind::Boolean => {
            return match (left.as_bool(), right.as_bool()) {
                (Some(a), Some(b)) => op == CompareOp::Equals && a == b,
                _ => false,
            };
        }
    };
    match op {
        CompareOp::Equals => ordering.is_eq(),
        CompareOp::LessThan => ordering.is_lt(),
        CompareOp::GreaterThan => ordering.is_gt(),
        CompareOp::LessThanEquals => ordering.is_le(),
        CompareOp::GreaterThanEquals => ordering.is_ge(),
    }
}

/// StringMatches: `*` matches any run of characters; `\*` and `\\` are literal.
pub(crate) fn wildcard_match(pattern: &str, text: &str) -> bool {
    #[derive(PartialEq)]
    enum Token {
        Star,
        Char(char),
    }
    let mut tokens = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => tokens.push(Token::Char(chars.next().unwrap_or('\\'))),
            '*' => tokens.push(Token::Star),
            c => tokens.push(Token::Char(c)),
        }
    }
    let text: Vec<char> = text.chars().collect();
    // Greedy matching with backtracking to the last star.
    let (mut t, mut p) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match tokens.get(p) {
            Some(Token::Char(c)) if *c == text[t] => {
                t += 1;
                p += 1;
            }
            Some(Token::Star) => {
                star = Some((p, t));
                p += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    tokens[p..].iter().all(|t| *t == Token::Star)
}

#[cfg(test)]
mod tests {
    use super::wildcard_match;

    #[test]
    fn wildcards() {
        assert!(wildcard_match("log-*.txt", "log-2024.txt"));
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("a*b*c", "aXXbYYc"));
        assert!(!wildcard_match("a*b", "aXXc"));
        assert!(wildcard_match("a\\*", "a*"));
        assert!(!wildcard_match("a\\*", "ab"));
    }
}
