//! Payload templates (Parameters, ResultSelector, ItemSelector, Assign in JSONPath states):
//! JSON whose keys ending in `.$` hold a path or an intrinsic call, compiled once.

use serde_json::{Map, Value};

use crate::intrinsics::{self, Call, Resolver};
use crate::path::{Path, Root};

/// A compiled payload template.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Template {
    /// A value copied as it is.
    Literal(Value),
    /// An object some of whose fields are computed.
    Object(Vec<(String, Field)>),
    /// An array holding computed objects.
    Array(Vec<Template>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Field {
    Template(Template),
    /// `"key.$": "$.path"`: the field is named without the `.$`; `text` is the path as written.
    Path(Path),
    Call(Call, String),
}

/// Why a dynamic field fails, with what AWS reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TemplateError {
    /// A path selected nothing: `States.Runtime`.
    PathMissing { field: String, path: String },
    /// An intrinsic failed: `States.IntrinsicFailure`.
    Intrinsic { field: String, message: String },
}

/// Where template paths read from.
pub(crate) trait Sources {
    /// `$`-rooted paths.
    fn input(&self) -> &Value;
    /// `$$`-rooted paths.
    fn context(&self) -> Value;
    /// `$name` paths: the variable's value, if it is defined.
    fn variable(&self, name: &str) -> Option<Value>;
}

impl Template {
    /// Compiles `value`; `at` is the JSON path of the field, for messages.
    pub(crate) fn compile(value: &Value, at: &str, problems: &mut Vec<(String, String)>) -> Self {
        match value {
            Value::Object(map) if has_dynamic(value) => {
                let mut fields = Vec::with_capacity(map.len());
                for (key, v) in map {
                    let here = format!("{at}.{key}");
                    if let Some(name) = key.strip_suffix(".$") {
                        let Some(text) = v.as_str() else {
                            problems.push((here, format!("the value of '{key}' must be a path or an intrinsic function string")));
                            continue;
                        };
                        if intrinsics::looks_like_call(text) {
                            match Call::parse(text) {
                                Ok(call) => {
                                    fields.push((name.to_string(), Field::Call(call, key.clone())))
                                }
                                Err(e) => problems
                                    .push((here, format!("invalid intrinsic function: {e}"))),
                            }
                        } else {
                            match Path::parse(text) {
                                Ok(path) => fields.push((name.to_string(), Field::Path(path))),
                                Err(e) => problems
                                    .push((here, format!("invalid JSONPath '{text}': {}", e.0))),
                            }
                        }
                    } else {
                        fields.push((
                            key.clone(),
                            Field::Template(Template::compile(v, &here, problems)),
                        ));
                    }
                }
                Template::Object(fields)
            }
            Value::Array(items) if has_dynamic(value) => Template::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| Template::compile(v, &format!("{at}[{i}]"), problems))
                    .collect(),
            ),
            other => Template::Literal(other.clone()),
        }
    }

    /// Evaluates the template.
    pub(crate) fn eval(&self, sources: &dyn Sources) -> Result<Value, TemplateError> {
        match self {
            Template::Literal(v) => Ok(v.clone()),
            Template::Array(items) => items
                .iter()
                .map(|t| t.eval(sources))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            Template::Object(fields) => {
                let mut out = Map::with_capacity(fields.len());
                for (name, field) in fields {
                    let value = match field {
                        Field::Template(t) => t.eval(sources)?,
                        Field::Path(path) => {
                            read_path(path, sources).map_err(|_| TemplateError::PathMissing {
                                field: format!("{name}.$"),
                                path: path.as_str().to_string(),
                            })?
                        }
                        Field::Call(call, key) => {
                            call.eval(&SourceResolver(sources)).map_err(|message| {
                                TemplateError::Intrinsic {
                                    field: key.clone(),
                                    message,
                                }
                            })?
                        }
                    };
                    out.insert(name.clone(), value);
                }
                Ok(Value::Object(out))
            }
        }
    }
}

fn has_dynamic(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.iter().any(|(k, v)| k.ends_with(".$") || has_dynamic(v)),
        Value::Array(items) => items.iter().any(has_dynamic),
        _ => false,
    }
}

/// Reads a path against the input, the context object or a variable.
pub(crate) fn read_path(path: &Path, sources: &dyn Sources) -> Result<Value, ()> {
    match path.root() {
        Root::Input => path.select(sources.input()).map_err(|_| ()),
        Root::Context => path.select(&sources.context()).map_err(|_| ()),
        Root::Variable(name) => {
            let value = sources.variable(name).ok_or(())?;
            path.select(&value).map_err(|_| ())
        }
    }
}

struct SourceResolver<'a>(&'a dyn Sources);

impl Resolver for SourceResolver<'_> {
    fn resolve(&self, path: &Path) -> Result<Value, String> {
        read_path(path, self.0).map_err(|_| format!("the JSONPath '{path}' could not be found"))
    }
}
