//! JSONata states: `{% expression %}` strings evaluated with `$states` and the workflow's
//! variables bound, plus the functions Step Functions adds ($partition, $range, $hash,
//! $random, $uuid, $parse). Expressions run on `jsonata-core`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use jsonata_core::evaluator::{Context, Evaluator, EvaluatorError};
use jsonata_core::parser::parse;
use jsonata_core::value::JValue;
use serde_json::Value;

type Ast = jsonata_core::ast::AstNode;

/// What a JSONata expression sees.
#[derive(Debug)]
pub(crate) struct Env<'a> {
    /// `$states`: input, result, errorOutput and context.
    pub(crate) states: Value,
    /// Visible variables, inner scopes shadowing outer ones.
    pub(crate) variables: &'a [(String, Value)],
    /// `$now()` and `$millis()`: the workflow's clock, fixed for one evaluation as in jsonata-js.
    pub(crate) now: cloudlet_core::Timestamp,
}

/// Why an evaluation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EvalError {
    /// The expression gave nothing.
    Undefined,
    /// The expression gave a function or another value that is not JSON.
    NotJson,
    /// The expression failed to parse or evaluate.
    Failed(String),
}

/// If `text` is a `{% ... %}` string, the expression inside.
pub(crate) fn expression(text: &str) -> Option<&str> {
    let inner = text.strip_prefix("{%")?.strip_suffix("%}")?;
    Some(inner.trim())
}

fn cache() -> &'static Mutex<HashMap<String, Arc<Ast>>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Ast>>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

fn compiled(expr: &str) -> Result<Arc<Ast>, EvalError> {
    let mut cache = cache().lock().unwrap_or_else(|p| p.into_inner());
    if let Some(ast) = cache.get(expr) {
        return Ok(ast.clone());
    }
    let ast = Arc::new(parse(expr).map_err(|e| EvalError::Failed(e.to_string()))?);
    if cache.len() < 10_000 {
        cache.insert(expr.to_string(), ast.clone());
    }
    Ok(ast)
}

/// Whether `expr` parses.
pub(crate) fn check(expr: &str) -> Result<(), String> {
    compiled(expr).map(|_| ()).map_err(|e| match e {
        EvalError::Failed(m) => m,
        _ => "invalid expression".into(),
    })
}

/// Evaluates one expression.
pub(crate) fn eval(expr: &str, env: &Env<'_>) -> Result<Value, EvalError> {
    let ast = compiled(expr)?;
    let mut context = Context::new();
    for (name, value) in env.variables {
        context.bind(name.clone(), JValue::from(value.clone()));
    }
    context.bind("states".to_string(), JValue::from(env.states.clone()));
    let mut evaluator = Evaluator::with_context(context);
    register(&mut evaluator);
    // The clock is the workflow's, never the system's.
    let now = env.now;
    let _ = evaluator.register_fn_override("now", move |_args: &[JValue]| {
        Ok(JValue::from(Value::String(now.iso8601())))
    });
    let _ = evaluator.register_fn_override("millis", move |_args: &[JValue]| {
        Ok(JValue::from_f64(now.as_millis() as f64))
    });
    let out = evaluator
        .evaluate(&ast, &JValue::Null)
        .map_err(|e| EvalError::Failed(message(e)))?;
    to_json(&out)
}

/// The error as jsonata-js words it: `T1006: Attempted to invoke a non-function`.
fn message(e: EvaluatorError) -> String {
    let text = match &e {
        EvaluatorError::TypeError(m)
        | EvaluatorError::ReferenceError(m)
        | EvaluatorError::EvaluationError(m) => m.clone(),
        #[allow(unreachable_patterns)]
        _ => e.to_string(),
    };
    match text.strip_prefix("T1006: Attempted to invoke a non-function") {
        Some(_) => "T1006: Attempted to invoke a non-function".to_string(),
        None => text,
    }
}

fn to_json(v: &JValue) -> Result<Value, EvalError> {
    Ok(match v {
        JValue::Undefined => return Err(EvalError::Undefined),
        JValue::Null => Value::Null,
        JValue::Bool(b) => Value::Bool(*b),
        JValue::Number(n) => number(*n),
        JValue::String(s) => Value::String(s.to_string()),
        JValue::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items.iter() {
                match to_json(item) {
                    Ok(v) => out.push(v),
                    Err(EvalError::Undefined) => {}
                    Err(e) => return Err(e),
                }
            }
            Value::Array(out)
        }
        JValue::Object(map) => {
            let mut out = serde_json::Map::with_capacity(map.len());
            for (k, v) in map.iter() {
                match to_json(v) {
                    Ok(v) => {
                        out.insert(k.to_string(), v);
                    }
                    Err(EvalError::Undefined) => {}
                    Err(e) => return Err(e),
                }
            }
            Value::Object(out)
        }
        _ => return Err(EvalError::NotJson),
    })
}

/// A JSONata number as JSON: integral values print as integers, as jsonata-js prints them.
pub(crate) fn number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9.007_199_254_740_992e15 {
        Value::from(n as i64)
    } else {
        serde_json::Number::from_f64(n)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

fn fail(message: impl Into<String>) -> EvaluatorError {
    EvaluatorError::EvaluationError(message.into())
}

fn json_arg(args: &[JValue], i: usize) -> Option<Value> {
    args.get(i).and_then(|v| to_json(v).ok())
}

fn register(evaluator: &mut Evaluator) {
    let _ = evaluator.register_fn("partition", |args: &[JValue]| {
        let items = match json_arg(args, 0) {
            Some(Value::Array(items)) => items,
            _ => return Err(fail("$partition expects an array")),
        };
        let size = args.get(1).and_then(JValue::as_f64).unwrap_or(0.0);
        if size < 1.0 || size.fract() != 0.0 {
            return Err(fail("$partition expects a positive integer size"));
        }
        let chunks: Vec<Value> = items
            .chunks(size as usize)
            .map(|c| Value::Array(c.to_vec()))
            .collect();
        Ok(JValue::from(Value::Array(chunks)))
    });
    let _ = evaluator.register_fn("range", |args: &[JValue]| {
        let get = |i: usize| args.get(i).and_then(JValue::as_f64);
        let (Some(start), Some(end), Some(step)) = (get(0), get(1), get(2)) else {
            return Err(fail("$range expects start, end and step"));
        };
        if step == 0.0 || [start, end, step].iter().any(|v| v.fract() != 0.0) {
            return Err(fail("$range expects integers and a step other than 0"));
        }
        let mut out = Vec::new();
        let mut i = start;
        while (step > 0.0 && i <= end) || (step < 0.0 && i >= end) {
            if out.len() == 1000 {
                return Err(fail("$range produces at most 1000 items"));
            }
            out.push(number(i));
            i += step;
        }
        // A sequence of one is its item, as JSONata collapses singleton sequences.
        if out.len() == 1 {
            return Ok(JValue::from(out.remove(0)));
        }
        Ok(JValue::from(Value::Array(out)))
    });
    let _ = evaluator.register_fn("hash", |args: &[JValue]| {
        let (Some(Value::String(data)), Some(Value::String(algorithm))) =
            (json_arg(args, 0), json_arg(args, 1))
        else {
            return Err(fail("$hash expects a string and an algorithm name"));
        };
        crate::intrinsics::hash_hex(&algorithm, data.as_bytes())
            .map(|h| JValue::from(Value::String(h)))
            .ok_or_else(|| fail(format!("$hash: unsupported algorithm '{algorithm}'")))
    });
    let _ = evaluator.register_fn("uuid", |_args: &[JValue]| {
        Ok(JValue::from(Value::String(
            uuid::Uuid::new_v4().to_string(),
        )))
    });
    let _ = evaluator.register_fn("parse", |args: &[JValue]| {
        let Some(Value::String(text)) = json_arg(args, 0) else {
            return Err(fail("$parse expects a string"));
        };
        serde_json::from_str::<Value>(&text)
            .map(JValue::from)
            .map_err(|e| fail(format!("$parse: {e}")))
    });
    let _ = evaluator.register_fn_override("random", |args: &[JValue]| {
        let value = match args.first().and_then(JValue::as_f64) {
            Some(seed) => JavaRandom::new(seed as i64).next_double(),
            None => {
                let bits = uuid::Uuid::new_v4().as_u64_pair().0 >> 11;
                bits as f64 / (1u64 << 53) as f64
            }
        };
        Ok(JValue::from_f64(value))
    });
}

/// java.util.Random, which AWS's `$random(seed)` follows.
struct JavaRandom(i64);

impl JavaRandom {
    fn new(seed: i64) -> Self {
        Self((seed ^ 0x5_DEEC_E66D) & ((1 << 48) - 1))
    }

    fn next(&mut self, bits: u32) -> i64 {
        self.0 = (self.0.wrapping_mul(0x5_DEEC_E66D).wrapping_add(0xB)) & ((1 << 48) - 1);
        self.0 >> (48 - bits)
    }

    fn next_double(&mut self) -> f64 {
        let high = self.next(26) << 27;
        let low = self.next(27);
        (high + low) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}
