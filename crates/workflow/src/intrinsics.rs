//! The 18 intrinsic functions of JSONPath states (`States.Format(...)` and friends): a parser
//! for their call syntax and an evaluator. Misuse raises `States.IntrinsicFailure`.

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::path::{Path, Root};

/// Deepest nesting AWS accepts.
const MAX_DEPTH: usize = 10;
/// ArrayRange's and the string functions' limits.
const MAX_RANGE_ITEMS: usize = 1000;
const MAX_STRING_CHARS: usize = 10_000;

/// A parsed intrinsic call.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Call {
    function: Function,
    args: Vec<Arg>,
}

#[derive(Debug, Clone, PartialEq)]
enum Arg {
    Literal(Value),
    Path(Path),
    Call(Call),
}

macro_rules! functions {
    ($($variant:ident = $name:literal,)*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum Function { $($variant,)* }
        impl Function {
            fn from_name(name: &str) -> Option<Self> {
                match name { $($name => Some(Function::$variant),)* _ => None }
            }
            fn name(self) -> &'static str {
                match self { $(Function::$variant => $name,)* }
            }
        }
    };
}

functions! {
    Format = "States.Format",
    StringToJson = "States.StringToJson",
    JsonToString = "States.JsonToString",
    Array = "States.Array",
    ArrayPartition = "States.ArrayPartition",
    ArrayContains = "States.ArrayContains",
    ArrayRange = "States.ArrayRange",
    ArrayGetItem = "States.ArrayGetItem",
    ArrayLength = "States.ArrayLength",
    ArrayUnique = "States.ArrayUnique",
    Base64Encode = "States.Base64Encode",
    Base64Decode = "States.Base64Decode",
    Hash = "States.Hash",
    JsonMerge = "States.JsonMerge",
    MathRandom = "States.MathRandom",
    MathAdd = "States.MathAdd",
    StringSplit = "States.StringSplit",
    Uuid = "States.UUID",
}

/// Where intrinsic arguments read their paths from.
pub(crate) trait Resolver {
    /// The value at `path` (input, context object or a variable), or a message on failure.
    fn resolve(&self, path: &Path) -> Result<Value, String>;
}

/// Whether `text` looks like an intrinsic call (a `.$` value that is not a path).
pub(crate) fn looks_like_call(text: &str) -> bool {
    text.trim_start().starts_with("States.")
}

impl Call {
    /// Parses `States.Name(arg, ...)`.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mut parser = CallParser { text, at: 0 };
        let call = parser.call(0)?;
        parser.spaces();
        if parser.at != text.len() {
            return Err(format!(
                "unexpected text after the call: '{}'",
                &text[parser.at..]
            ));
        }
        Ok(call)
    }

    /// The paths the call reads (for validation).
    pub(crate) fn paths(&self) -> Vec<&Path> {
        let mut out = Vec::new();
        for arg in &self.args {
            match arg {
                Arg::Path(p) => out.push(p),
                Arg::Call(c) => out.extend(c.paths()),
                Arg::Literal(_) => {}
            }
        }
        out
    }

    /// Evaluates the call. The error is the cause of a `States.IntrinsicFailure`.
    pub(crate) fn eval(&self, resolver: &dyn Resolver) -> Result<Value, String> {
        let mut args = Vec::with_capacity(self.args.len());
        for arg in &self.args {
            args.push(match arg {
                Arg::Literal(v) => v.clone(),
                Arg::Path(p) => resolver.resolve(p)?,
                Arg::Call(c) => c.eval(resolver)?,
            });
        }
        apply(self.function, args)
    }
}

struct CallParser<'a> {
    text: &'a str,
    at: usize,
}

impl CallParser<'_> {
    fn rest(&self) -> &str {
        &self.text[self.at..]
    }

    fn spaces(&mut self) {
        while self.rest().starts_with([' ', '\t', '\n']) {
            self.at += 1;
        }
    }

    fn call(&mut self, depth: usize) -> Result<Call, String> {
        if depth >= MAX_DEPTH {
            return Err(format!("intrinsic functions nest at most {MAX_DEPTH} deep"));
        }
        self.spaces();
        let open = self
            .rest()
            .find('(')
            .ok_or("expected '(' after the function name")?;
        let name = self.rest()[..open].trim();
        let function = Function::from_name(name)
            .ok_or_else(|| format!("unknown intrinsic function '{name}'"))?;
        self.at += open + 1;
        let mut args = Vec::new();
        self.spaces();
        if self.rest().starts_with(')') {
            self.at += 1;
            return Ok(Call { function, args });
        }
        loop {
            args.push(self.arg(depth)?);
            self.spaces();
            if self.rest().starts_with(',') {
                self.at += 1;
            } else if self.rest().starts_with(')') {
                self.at += 1;
                return Ok(Call { function, args });
            } else {
                return Err(format!(
                    "expected ',' or ')' in the arguments of {}",
                    function.name()
                ));
            }
        }
    }

    fn arg(&mut self, depth: usize) -> Result<Arg, String> {
        self.spaces();
        let text = self.text;
        let rest = &text[self.at..];
        if rest.starts_with('\'') {
            return self.string().map(|s| Arg::Literal(Value::String(s)));
        }
        if rest.starts_with("States.") {
            return self.call(depth + 1).map(Arg::Call);
        }
        // A path or a bare literal runs to the next ',' or ')' outside brackets and quotes.
        let mut end = 0;
        let mut brackets = 0usize;
        let mut quote: Option<char> = None;
        for (i, c) in rest.char_indices() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '\'' | '"') => quote = Some(c),
                (None, '[' | '(') => brackets += 1,
                (None, ']') => brackets = brackets.saturating_sub(1),
                (None, ')') if brackets > 0 => brackets -= 1,
                (None, ',' | ')') if brackets == 0 => break,
                _ => {}
            }
            end = i + c.len_utf8();
        }
        let token = rest[..end].trim();
        self.at += end;
        if token.starts_with('$') {
            return Path::parse(token).map(Arg::Path).map_err(|e| e.0);
        }
        match serde_json::from_str::<Value>(token) {
            Ok(v @ (Value::Number(_) | Value::Bool(_) | Value::Null)) => Ok(Arg::Literal(v)),
            _ => Err(format!("invalid argument '{token}'")),
        }
    }

    /// A single-quoted string; `\` escapes the next character.
    fn string(&mut self) -> Result<String, String> {
        self.at += 1;
        let mut out = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\'' => {
                    self.at += i + 1;
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    // `\{` and `\}` stay escaped for States.Format to read.
                    Some((_, escaped @ ('{' | '}'))) => {
                        out.push('\\');
                        out.push(escaped);
                    }
                    Some((_, escaped)) => out.push(escaped),
                    None => break,
                },
                c => out.push(c),
            }
        }
        Err("unterminated string literal".to_string())
    }
}

fn arity(function: Function, args: &[Value], min: usize, max: usize) -> Result<(), String> {
    if args.len() < min || args.len() > max {
        let expected = if min == max {
            format!("{min}")
        } else {
            format!("{min} to {max}")
        };
        return Err(format!(
            "{} takes {expected} argument(s), got {}",
            function.name(),
            args.len()
        ));
    }
    Ok(())
}

fn string_arg<'v>(function: Function, v: &'v Value, what: &str) -> Result<&'v str, String> {
    v.as_str()
        .ok_or_else(|| format!("{} expects {what} to be a string", function.name()))
}

fn array_arg(function: Function, v: &Value) -> Result<&Vec<Value>, String> {
    v.as_array()
        .ok_or_else(|| format!("{} expects an array", function.name()))
}

/// A number rounded as Java's Math.round does (half up), as MathAdd and MathRandom take them.
fn rounded_arg(function: Function, v: &Value, what: &str) -> Result<i64, String> {
    if let Some(i) = v.as_i64() {
        return Ok(i);
    }
    match v.as_f64() {
        Some(f) if f.is_finite() && f.abs() < 9.0e15 => Ok((f + 0.5).floor() as i64),
        _ => Err(format!("{} expects {what} to be a number", function.name())),
    }
}

fn integer_arg(function: Function, v: &Value, what: &str) -> Result<i64, String> {
    if let Some(i) = v.as_i64() {
        return Ok(i);
    }
    if let Some(f) = v.as_f64()
        && f.fract() == 0.0
        && f.abs() < 9.0e15
    {
        return Ok(f as i64);
    }
    Err(format!(
        "{} expects {what} to be an integer",
        function.name()
    ))
}

/// How States.Format prints an argument: strings bare, objects and arrays as Java's
/// `Map.toString` and `List.toString` print them (`{a=1, b=[x, y]}`).
fn java_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            format!(
                "[{}]",
                items.iter().map(java_text).collect::<Vec<_>>().join(", ")
            )
        }
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{k}={}", java_text(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

/// How a value prints inside States.Format and in string contexts.
pub(crate) fn to_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn apply(function: Function, args: Vec<Value>) -> Result<Value, String> {
    use Function::*;
    match function {
        Format => {
            if args.is_empty() {
                return Err("States.Format needs a format string".into());
            }
            let template = string_arg(function, &args[0], "the format string")?;
            let mut values = args[1..].iter();
            let mut out = String::new();
            let mut chars = template.chars().peekable();
            while let Some(c) = chars.next() {
                match c {
                    '\\' if matches!(chars.peek(), Some('{' | '}')) => {
                        out.extend(chars.next());
                    }
                    '{' if chars.peek() == Some(&'}') => {
                        chars.next();
                        let value = values.next().ok_or(
                            "States.Format has more placeholders than arguments".to_string(),
                        )?;
                        out.push_str(&java_text(value));
                    }
                    c => out.push(c),
                }
            }
            if values.next().is_some() {
                return Err("States.Format has more arguments than placeholders".into());
            }
            Ok(Value::String(out))
        }
        StringToJson => {
            arity(function, &args, 1, 1)?;
            let text = string_arg(function, &args[0], "its argument")?;
            if text.trim().is_empty() {
                return Ok(Value::Null);
            }
            let mut value: Value =
                serde_json::from_str(text).map_err(|e| format!("States.StringToJson: {e}"))?;
            positive_zero(&mut value);
            Ok(value)
        }
        JsonToString => {
            arity(function, &args, 1, 1)?;
            Ok(Value::String(args[0].to_string()))
        }
        Array => Ok(Value::Array(args)),
        ArrayPartition => {
            arity(function, &args, 2, 2)?;
            let items = array_arg(function, &args[0])?;
            let size = integer_arg(function, &args[1], "the chunk size")?;
            if size <= 0 {
                return Err("States.ArrayPartition expects a chunk size above 0".into());
            }
            Ok(Value::Array(
                items
                    .chunks(size as usize)
                    .map(|c| Value::Array(c.to_vec()))
                    .collect(),
            ))
        }
        ArrayContains => {
            arity(function, &args, 2, 2)?;
            let items = array_arg(function, &args[0])?;
            Ok(Value::Bool(items.iter().any(|v| json_equal(v, &args[1]))))
        }
        ArrayRange => {
            arity(function, &args, 3, 3)?;
            let start = integer_arg(function, &args[0], "the start")?;
            let end = integer_arg(function, &args[1], "the end")?;
            let step = integer_arg(function, &args[2], "the step")?;
            if step == 0 {
                return Err("States.ArrayRange expects a step other than 0".into());
            }
            let mut out = Vec::new();
            let mut i = start;
            while (step > 0 && i <= end) || (step < 0 && i >= end) {
                if out.len() == MAX_RANGE_ITEMS {
                    return Err(format!(
                        "States.ArrayRange produces at most {MAX_RANGE_ITEMS} items"
                    ));
                }
                out.push(Value::from(i));
                match i.checked_add(step) {
                    Some(next) => i = next,
                    None => break,
                }
            }
            Ok(Value::Array(out))
        }
        ArrayGetItem => {
            arity(function, &args, 2, 2)?;
            let items = array_arg(function, &args[0])?;
            let index = integer_arg(function, &args[1], "the index")?;
            usize::try_from(index)
                .ok()
                .and_then(|i| items.get(i))
                .cloned()
                .ok_or_else(|| format!("States.ArrayGetItem: index {index} is out of bounds"))
        }
        ArrayLength => {
            arity(function, &args, 1, 1)?;
            Ok(Value::from(array_arg(function, &args[0])?.len()))
        }
        ArrayUnique => {
            arity(function, &args, 1, 1)?;
            let mut out: Vec<Value> = Vec::new();
            for v in array_arg(function, &args[0])? {
                if !out.iter().any(|o| json_equal(o, v)) {
                    out.push(v.clone());
                }
            }
            Ok(Value::Array(out))
        }
        Base64Encode => {
            arity(function, &args, 1, 1)?;
            let text = string_arg(function, &args[0], "its argument")?;
            limit(function, text)?;
            Ok(Value::String(
                base64::engine::general_purpose::STANDARD.encode(text),
            ))
        }
        Base64Decode => {
            arity(function, &args, 1, 1)?;
            let text = string_arg(function, &args[0], "its argument")?;
            limit(function, text)?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| format!("States.Base64Decode: {e}"))?;
            String::from_utf8(bytes)
                .map(Value::String)
                .map_err(|_| "States.Base64Decode: the decoded bytes are not UTF-8".into())
        }
        Hash => {
            arity(function, &args, 2, 2)?;
            let data = to_text(&args[0]);
            limit(function, &data)?;
            let algorithm = string_arg(function, &args[1], "the algorithm")?;
            let hex = hash_hex(algorithm, data.as_bytes()).ok_or_else(|| {
                format!(
                    "States.Hash: unsupported algorithm '{algorithm}' (MD5, SHA-1, SHA-256, SHA-384, SHA-512)"
                )
            })?;
            Ok(Value::String(hex))
        }
        JsonMerge => {
            arity(function, &args, 3, 3)?;
            let (Value::Object(a), Value::Object(b)) = (&args[0], &args[1]) else {
                return Err("States.JsonMerge expects two objects".into());
            };
            match args[2] {
                Value::Bool(false) => {}
                Value::Bool(true) => {
                    return Err("States.JsonMerge supports only a shallow merge (false)".into());
                }
                _ => return Err("States.JsonMerge expects a boolean deep-merge flag".into()),
            }
            let mut merged: Map<String, Value> = a.clone();
            for (k, v) in b {
                merged.insert(k.clone(), v.clone());
            }
            Ok(Value::Object(merged))
        }
        MathRandom => {
            arity(function, &args, 2, 3)?;
            let start = rounded_arg(function, &args[0], "the start")?;
            let end = rounded_arg(function, &args[1], "the end")?;
            if end <= start {
                return Err("States.MathRandom expects the end above the start".into());
            }
            let seed = match args.get(2) {
                Some(v) => rounded_arg(function, v, "the seed")?,
                None => rand_seed(),
            };
            let span = (i128::from(end) - i128::from(start)) as u128;
            let offset = (u128::from(splitmix(seed as u64)) % span) as i128;
            Ok(Value::from((i128::from(start) + offset) as i64))
        }
        MathAdd => {
            arity(function, &args, 2, 2)?;
            let a = rounded_arg(function, &args[0], "its first argument")?;
            let b = rounded_arg(function, &args[1], "its second argument")?;
            a.checked_add(b)
                .map(Value::from)
                .ok_or_else(|| "States.MathAdd overflows".into())
        }
        StringSplit => {
            arity(function, &args, 2, 2)?;
            let text = string_arg(function, &args[0], "the string")?;
            let delimiters = string_arg(function, &args[1], "the delimiter")?;
            Ok(Value::Array(
                text.split(|c| delimiters.contains(c))
                    .filter(|s| !s.is_empty())
                    .map(|s| Value::String(s.to_string()))
                    .collect(),
            ))
        }
        Uuid => {
            arity(function, &args, 0, 0)?;
            Ok(Value::String(uuid::Uuid::new_v4().to_string()))
        }
    }
}

/// `-0` parses as the integer 0, as Jackson parses it.
fn positive_zero(v: &mut Value) {
    match v {
        Value::Number(n)
            if n.as_f64() == Some(0.0)
                && n.is_f64()
                && n.as_f64().is_some_and(|f| f.is_sign_negative()) =>
        {
            *v = Value::from(0);
        }
        Value::Array(items) => items.iter_mut().for_each(positive_zero),
        Value::Object(map) => map.values_mut().for_each(positive_zero),
        _ => {}
    }
}

fn limit(function: Function, text: &str) -> Result<(), String> {
    if text.chars().count() > MAX_STRING_CHARS {
        return Err(format!(
            "{} accepts at most {MAX_STRING_CHARS} characters",
            function.name()
        ));
    }
    Ok(())
}

/// Lowercase hex digest for States.Hash's algorithm names.
pub(crate) fn hash_hex(algorithm: &str, data: &[u8]) -> Option<String> {
    use sha2::Digest as _;
    let bytes: Vec<u8> = match algorithm {
        "MD5" => md5::Md5::digest(data).to_vec(),
        "SHA-1" => sha1::Sha1::digest(data).to_vec(),
        "SHA-256" => sha2::Sha256::digest(data).to_vec(),
        "SHA-384" => sha2::Sha384::digest(data).to_vec(),
        "SHA-512" => sha2::Sha512::digest(data).to_vec(),
        _ => return None,
    };
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Numbers compare by value (1 equals 1.0), everything else structurally.
pub(crate) fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

fn rand_seed() -> i64 {
    let id = uuid::Uuid::new_v4();
    id.as_u64_pair().0 as i64
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Whether a path argument names a variable root (used by validation).
#[allow(dead_code)]
pub(crate) fn reads_variables(call: &Call) -> bool {
    call.paths()
        .iter()
        .any(|p| matches!(p.root(), Root::Variable(_)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    struct Doc(Value);
    impl Resolver for Doc {
        fn resolve(&self, path: &Path) -> Result<Value, String> {
            path.select(&self.0)
                .map_err(|m| format!("missing {}", m.normalized))
        }
    }

    fn eval(text: &str, input: Value) -> Result<Value, String> {
        Call::parse(text)?.eval(&Doc(input))
    }

    #[test]
    fn functions_evaluate() {
        let input = json!({"a": [1, 2, 2, 3], "s": "a,b,,c", "o": {"x": 1}});
        assert_eq!(
            eval("States.Format('x={} y={}', 1, $.s)", json!({"s": "q"})).unwrap(),
            json!("x=1 y=q")
        );
        assert_eq!(
            eval("States.ArrayUnique($.a)", input.clone()).unwrap(),
            json!([1, 2, 3])
        );
        assert_eq!(
            eval("States.ArrayPartition($.a, 3)", input.clone()).unwrap(),
            json!([[1, 2, 2], [3]])
        );
        assert_eq!(
            eval("States.ArrayRange(1, 9, 2)", json!({})).unwrap(),
            json!([1, 3, 5, 7, 9])
        );
        assert_eq!(
            eval("States.StringSplit($.s, ',')", input.clone()).unwrap(),
            json!(["a", "b", "c"])
        );
        assert_eq!(
            eval(
                "States.ArrayGetItem(States.StringSplit($.s, ','), States.MathAdd(1, -1))",
                input.clone()
            )
            .unwrap(),
            json!("a")
        );
        assert_eq!(
            eval("States.JsonToString($.o)", input.clone()).unwrap(),
            json!("{\"x\":1}")
        );
        assert_eq!(
            eval("States.Base64Encode('hi')", json!({})).unwrap(),
            json!("aGk=")
        );
        assert_eq!(
            eval("States.Hash('abc', 'SHA-256')", json!({})).unwrap(),
            json!("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert_eq!(
            eval("States.Format('a\\{\\}b')", json!({})).unwrap(),
            json!("a{}b")
        );
    }

    #[test]
    fn misuse_is_an_error() {
        assert!(eval("States.ArrayRange(1, 5000, 1)", json!({})).is_err());
        assert!(eval("States.MathAdd('a', 1)", json!({})).is_err());
        assert!(eval("States.Nope()", json!({})).is_err());
        assert!(eval("States.Format('{}')", json!({})).is_err());
    }
}
