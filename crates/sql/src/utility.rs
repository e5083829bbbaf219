//! Athena's `SHOW` statements, which answer in Athena's own shape (`tab_name`,
//! `database_name`, `field`) rather than DataFusion's: recognised from their words before
//! the statement reaches DataFusion's planner.

/// A `SHOW` statement Athena has and this crate answers itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Show {
    /// `SHOW TABLES [IN database] ['pattern']`: one column, `tab_name`.
    Tables {
        database: Option<String>,
        pattern: Option<String>,
    },
    /// `SHOW DATABASES | SCHEMAS [LIKE 'pattern']`: one column, `database_name`.
    Databases { pattern: Option<String> },
    /// `SHOW COLUMNS IN | FROM table [IN | FROM database]`: one column, `field`.
    Columns {
        database: Option<String>,
        table: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// A word or identifier, lowercased unless it was quoted.
    Word(String),
    /// A `'string'`.
    Text(String),
}

/// The statement's tokens: words (an unquoted one lowercased; `` `x` `` and `"x"` kept as
/// written), `'strings'` (with `''` as a quote), and `.` joined into the word around it.
/// `None` when a quote is not closed.
fn tokens(sql: &str) -> Option<Vec<Token>> {
    let mut out = Vec::new();
    let mut chars = sql.trim().trim_end_matches(';').chars().peekable();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut Vec<Token>| {
        if !word.is_empty() {
            out.push(Token::Word(std::mem::take(word)));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => flush(&mut word, &mut out),
            '\'' => {
                flush(&mut word, &mut out);
                let mut text = String::new();
                loop {
                    match chars.next()? {
                        '\'' if chars.peek() == Some(&'\'') => {
                            chars.next();
                            text.push('\'');
                        }
                        '\'' => break,
                        c => text.push(c),
                    }
                }
                out.push(Token::Text(text));
            }
            '`' | '"' => loop {
                match chars.next()? {
                    end if end == c => break,
                    c => word.push(c),
                }
            },
            c => word.push(c.to_ascii_lowercase()),
        }
    }
    flush(&mut word, &mut out);
    Some(out)
}

/// Recognises the `SHOW` statements of [`Show`]; `None` for anything else (which goes to
/// DataFusion's planner).
pub(crate) fn parse(sql: &str) -> Option<Show> {
    use Token::{Text, Word};
    let tokens = tokens(sql)?;
    let words: Vec<Option<&str>> = tokens
        .iter()
        .map(|t| match t {
            Word(w) => Some(w.as_str()),
            Text(_) => None,
        })
        .collect();
    let text = |i: usize| match tokens.get(i) {
        Some(Text(t)) => Some(t.clone()),
        _ => None,
    };
    match words.as_slice() {
        [Some("show"), Some("tables")] => Some(Show::Tables {
            database: None,
            pattern: None,
        }),
        [Some("show"), Some("tables"), None] => Some(Show::Tables {
            database: None,
            pattern: text(2),
        }),
        [Some("show"), Some("tables"), Some("in" | "from"), Some(db)] => Some(Show::Tables {
            database: Some((*db).to_owned()),
            pattern: None,
        }),
        [
            Some("show"),
            Some("tables"),
            Some("in" | "from"),
            Some(db),
            None,
        ] => Some(Show::Tables {
            database: Some((*db).to_owned()),
            pattern: text(4),
        }),
        [Some("show"), Some("databases" | "schemas")] => Some(Show::Databases { pattern: None }),
        [
            Some("show"),
            Some("databases" | "schemas"),
            Some("like"),
            None,
        ] => Some(Show::Databases { pattern: text(3) }),
        [
            Some("show"),
            Some("columns"),
            Some("in" | "from"),
            Some(table),
        ] => {
            let (database, table) = match table.split_once('.') {
                Some((db, table)) => (Some(db.to_owned()), table.to_owned()),
                None => (None, (*table).to_owned()),
            };
            Some(Show::Columns { database, table })
        }
        [
            Some("show"),
            Some("columns"),
            Some("in" | "from"),
            Some(table),
            Some("in" | "from"),
            Some(db),
        ] => Some(Show::Columns {
            database: Some((*db).to_owned()),
            table: (*table).to_owned(),
        }),
        _ => None,
    }
}

/// Whether `name` matches an Athena `SHOW` pattern: alternatives separated by `|`, each
/// matching the whole name, where `*` and `.*` match any run of characters; case is ignored.
pub(crate) fn matches(pattern: &str, name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    pattern.split('|').any(|alternative| {
        let alternative = alternative.trim().to_ascii_lowercase().replace(".*", "*");
        glob(alternative.as_bytes(), name.as_bytes())
    })
}

/// `*`-only glob matching, iterative with one backtrack point.
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, n));
            p += 1;
        } else if p < pattern.len() && pattern[p] == name[n] {
            p += 1;
            n += 1;
        } else if let Some((star_p, star_n)) = star {
            p = star_p + 1;
            n = star_n + 1;
            star = Some((star_p, star_n + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_statements_are_recognised_with_their_parts() {
        assert_eq!(
            parse("show tables"),
            Some(Show::Tables {
                database: None,
                pattern: None
            })
        );
        assert_eq!(
            parse("SHOW TABLES IN `Sales` '*logs|flights*';"),
            Some(Show::Tables {
                database: Some("Sales".into()),
                pattern: Some("*logs|flights*".into())
            })
        );
        assert_eq!(
            parse("SHOW SCHEMAS LIKE 'a''b'"),
            Some(Show::Databases {
                pattern: Some("a'b".into())
            })
        );
        assert_eq!(
            parse("SHOW COLUMNS FROM sales.orders"),
            Some(Show::Columns {
                database: Some("sales".into()),
                table: "orders".into()
            })
        );
        assert_eq!(
            parse("SHOW COLUMNS IN orders IN sales"),
            Some(Show::Columns {
                database: Some("sales".into()),
                table: "orders".into()
            })
        );
        assert_eq!(parse("SELECT 1"), None);
        assert_eq!(parse("SHOW TABLES IN"), None);
        assert_eq!(parse("SHOW TABLES 'open"), None);
        assert_eq!(parse("SHOW ALL"), None);
    }

    #[test]
    fn patterns_are_athenas_wildcards() {
        assert!(matches("*flights*", "view_2016_flights_dfw"));
        assert!(matches("*logs", "alb_logs"));
        assert!(!matches("*logs", "logs_old"));
        assert!(matches("a.*|b*", "abc"));
        assert!(matches("x|B*", "bee"));
        assert!(matches("exact", "EXACT"));
        assert!(!matches("exact", "exactly"));
        assert!(matches("*", ""));
        assert!(matches("a*b*c", "aXXbYYc"));
        assert!(!matches("a*b*c", "aXXbYY"));
    }
}
