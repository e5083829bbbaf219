//! Amazon States Language definitions: parsed into a typed model and validated, every problem
//! reported with the JSON path of the offending field, as statelint does.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::path::Path;
use crate::template::Template;

/// A problem with a definition: where (a JSON path into the definition) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// JSON path of the offending field, such as `$.States.Start.Next`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// The query language of a machine or a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryLanguage {
    /// JSONPath with InputPath, Parameters, ResultSelector, ResultPath, OutputPath (default).
    JsonPath,
    /// JSONata with Arguments and Output.
    Jsonata,
}

/// A state machine (or a Parallel branch, or a Map's item processor).
#[derive(Debug)]
pub(crate) struct Machine {
    pub(crate) start_at: String,
    pub(crate) states: HashMap<String, Arc<State>>,
    pub(crate) timeout_seconds: Option<u64>,
}

/// Where a JSONPath field reads: the default (`$`), `null`, or a path.
#[derive(Debug, Clone)]
pub(crate) enum PathField {
    Default,
    Null,
    Path(Path),
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) name: String,
    pub(crate) language: QueryLanguage,
    pub(crate) kind: Kind,
    /// None for terminal states (End, Succeed, Fail) and Choice.
    pub(crate) next: Option<String>,
    pub(crate) input_path: PathField,
    pub(crate) output_path: PathField,
    pub(crate) result_path: PathField,
    pub(crate) parameters: Option<Template>,
    pub(crate) result_selector: Option<Template>,
    /// JSONPath Assign is a template; JSONata Assign is a value with `{% %}` strings.
    pub(crate) assign: Option<Assign>,
    pub(crate) arguments: Option<Value>,
    pub(crate) output: Option<Value>,
    pub(crate) retry: Vec<Retrier>,
    pub(crate) catch: Vec<Catcher>,
}

#[derive(Debug, Clone)]
pub(crate) enum Assign {
    JsonPath(Template),
    Jsonata(Value),
}

#[derive(Debug)]
pub(crate) enum Kind {
    Pass {
        result: Option<Value>,
    },
    Task(Task),
    Choice {
        choices: Vec<ChoiceBranch>,
        default: Option<String>,
    },
    Wait(WaitFor),
    Succeed,
    Fail(FailFields),
    Parallel {
        branches: Vec<Arc<Machine>>,
    },
    Map(Box<MapFields>),
}

impl Kind {
    pub(crate) fn entered_event(&self) -> &'static str {
        match self {
            Kind::Pass { .. } => "PassStateEntered",
            Kind::Task(_) => "TaskStateEntered",
            Kind::Choice { .. } => "ChoiceStateEntered",
            Kind::Wait(_) => "WaitStateEntered",
            Kind::Succeed => "SucceedStateEntered",
            Kind::Fail(_) => "FailStateEntered",
            Kind::Parallel { .. } => "ParallelStateEntered",
            Kind::Map(_) => "MapStateEntered",
        }
    }

    pub(crate) fn exited_event(&self) -> &'static str {
        match self {
            Kind::Pass { .. } => "PassStateExited",
            Kind::Task(_) => "TaskStateExited",
            Kind::Choice { .. } => "ChoiceStateExited",
            Kind::Wait(_) => "WaitStateExited",
            Kind::Succeed => "SucceedStateExited",
            Kind::Fail(_) => "FailStateExited",
            Kind::Parallel { .. } => "ParallelStateExited",
            Kind::Map(_) => "MapStateExited",
        }
    }
}

#[derive(Debug)]
pub(crate) struct Task {
    pub(crate) resource: String,
    pub(crate) timeout: Option<Dynamic>,
    pub(crate) heartbeat: Option<Dynamic>,
}

/// A number given literally, by a JSONPath, or by a JSONata expression.
#[derive(Debug, Clone)]
pub(crate) enum Dynamic {
    Literal(Value),
    Path(Path),
    /// An intrinsic function in a `...Path` field (ErrorPath and CausePath allow them).
    Intrinsic(crate::intrinsics::Call),
    Jsonata(String),
}

#[derive(Debug)]
pub(crate) enum WaitFor {
    Seconds(Dynamic),
    Timestamp(Dynamic),
}

#[derive(Debug, Default)]
pub(crate) struct FailFields {
    pub(crate) error: Option<Dynamic>,
    pub(crate) cause: Option<Dynamic>,
}

#[derive(Debug)]
pub(crate) struct MapFields {
    pub(crate) items_path: PathField,
    pub(crate) items: Option<Value>,
    pub(crate) item_selector: Option<Template>,
    pub(crate) item_selector_jsonata: Option<Value>,
    pub(crate) processor: Arc<Machine>,
    pub(crate) max_concurrency: Option<Dynamic>,
    pub(crate) tolerated_count: Option<Dynamic>,
    pub(crate) tolerated_percentage: Option<Dynamic>,
}

#[derive(Debug, Clone)]
pub(crate) struct Retrier {
    pub(crate) error_equals: Vec<String>,
    pub(crate) interval_seconds: f64,
    pub(crate) max_attempts: u32,
    pub(crate) backoff_rate: f64,
    pub(crate) max_delay_seconds: Option<f64>,
    pub(crate) full_jitter: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Catcher {
    pub(crate) error_equals: Vec<String>,
    pub(crate) next: String,
    pub(crate) result_path: PathField,
    pub(crate) assign: Option<Assign>,
    pub(crate) output: Option<Value>,
}

#[derive(Debug)]
pub(crate) struct ChoiceBranch {
    pub(crate) rule: Rule,
    pub(crate) next: String,
    pub(crate) assign: Option<Assign>,
    pub(crate) output: Option<Value>,
}

#[derive(Debug)]
pub(crate) enum Rule {
    And(Vec<Rule>),
    Or(Vec<Rule>),
    Not(Box<Rule>),
    Test { variable: Path, test: Test },
    Condition(Value),
}

#[derive(Debug)]
pub(crate) enum Test {
    Compare {
        kind: CompareKind,
        op: CompareOp,
        operand: Operand,
    },
    StringMatches(String),
    IsNull(bool),
    IsPresent(bool),
    IsNumeric(bool),
    IsString(bool),
    IsBoolean(bool),
    IsTimestamp(bool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CompareKind {
    String,
    Numeric,
    Timestamp,
    Boolean,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CompareOp {
    Equals,
    LessThan,
    GreaterThan,
    LessThanEquals,
    GreaterThanEquals,
}

#[derive(Debug)]
pub(crate) enum Operand {
    Literal(Value),
    Path(Path),
}

/// The error names Step Functions defines.
pub(crate) const KNOWN_ERRORS: &[&str] = &[
    "States.ALL",
    "States.DataLimitExceeded",
    "States.ExceedToleratedFailureThreshold",
    "States.HeartbeatTimeout",
    "States.Http.Socket",
    "States.IntrinsicFailure",
    "States.ItemReaderFailed",
    "States.NoChoiceMatched",
    "States.ParameterPathFailure",
    "States.Permissions",
    "States.QueryEvaluationError",
    "States.ResultPathMatchFailure",
    "States.ResultWriterFailed",
    "States.Runtime",
    "States.TaskFailed",
    "States.Timeout",
    "States.BranchFailed",
];

struct Checker {
    problems: Vec<Problem>,
    /// Every state name so far: names are unique across the whole machine, branches included.
    names: std::collections::HashSet<String>,
}

impl Checker {
    fn problem(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }
}

/// Parses and validates a whole definition.
pub(crate) fn parse(definition: &Value) -> Result<Arc<Machine>, Vec<Problem>> {
    let mut checker = Checker {
        problems: Vec::new(),
        names: Default::default(),
    };
    let machine = parse_machine(definition, "$", QueryLanguage::JsonPath, true, &mut checker);
    match machine {
        Some(m) if checker.problems.is_empty() => Ok(Arc::new(m)),
        _ => {
            if checker.problems.is_empty() {
                checker.problem("$", "the definition is not a state machine");
            }
            Err(checker.problems)
        }
    }
}

fn parse_language(value: Option<&Value>, at: &str, checker: &mut Checker) -> Option<QueryLanguage> {
    match value {
        None => None,
        Some(Value::String(s)) if s == "JSONPath" => Some(QueryLanguage::JsonPath),
        Some(Value::String(s)) if s == "JSONata" => Some(QueryLanguage::Jsonata),
        Some(_) => {
            checker.problem(at, "QueryLanguage must be \"JSONPath\" or \"JSONata\"");
            None
        }
    }
}

fn parse_machine(
    value: &Value,
    at: &str,
    inherited: QueryLanguage,
    top: bool,
    checker: &mut Checker,
) -> Option<Machine> {
    let Value::Object(map) = value else {
        checker.problem(at, "a state machine must be a JSON object");
        return None;
    };
    let mut allowed = vec!["StartAt", "States", "Comment"];
    if top {
        allowed.extend(["Version", "TimeoutSeconds", "QueryLanguage"]);
    } else {
        allowed.push("ProcessorConfig");
    }
    for key in map.keys() {
        if !allowed.contains(&key.as_str()) {
            checker.problem(
                format!("{at}.{key}"),
                format!("field '{key}' is not allowed here"),
            );
        }
    }
    let language = if top {
        parse_language(
            map.get("QueryLanguage"),
            &format!("{at}.QueryLanguage"),
            checker,
        )
        .unwrap_or(QueryLanguage::JsonPath)
    } else {
        inherited
    };
    let timeout_seconds = match map.get("TimeoutSeconds") {
        None => None,
        Some(v) => match v.as_u64() {
            Some(n) if n > 0 && n <= 99_999_999 => Some(n),
            _ => {
                checker.problem(
                    format!("{at}.TimeoutSeconds"),
                    "TimeoutSeconds must be a positive integer up to 99999999",
                );
                None
            }
        },
    };
    if let Some(v) = map.get("Version")
        && !v.is_string()
    {
        checker.problem(format!("{at}.Version"), "Version must be a string");
    }
    let start_at = match map.get("StartAt") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            checker.problem(format!("{at}.StartAt"), "StartAt must be a string");
            String::new()
        }
        None => {
            checker.problem(at, "missing required field 'StartAt'");
            String::new()
        }
    };
    let Some(Value::Object(states_map)) = map.get("States") else {
        checker.problem(at, "missing required field 'States' (an object)");
        return None;
    };
    if states_map.is_empty() {
        checker.problem(
            format!("{at}.States"),
            "States must hold at least one state",
        );
    }
    let mut states = HashMap::with_capacity(states_map.len());
    for (name, state) in states_map {
        let here = format!("{at}.States.{name}");
        if name.is_empty() || name.chars().count() > 80 {
            checker.problem(&here, "state names are 1 to 80 characters");
        }
        if !checker.names.insert(name.clone()) {
            checker.problem(&here, format!("the state name '{name}' is used twice"));
        }
        if let Some(s) = parse_state(name, state, &here, language, checker) {
            states.insert(name.clone(), Arc::new(s));
        }
    }
    if !start_at.is_empty() && !states_map.contains_key(&start_at) {
        checker.problem(
            format!("{at}.StartAt"),
            format!("StartAt names '{start_at}', which is not a state"),
        );
    }
    // Transitions and reachability.
    let mut reachable = HashSet::new();
    let mut stack = vec![start_at.clone()];
    while let Some(name) = stack.pop() {
        if !reachable.insert(name.clone()) {
            continue;
        }
        let Some(state) = states.get(&name) else {
            continue;
        };
        for (field, target) in transitions(state) {
            if states.contains_key(target) {
                stack.push(target.to_string());
            } else {
                checker.problem(
                    format!("{at}.States.{name}.{field}"),
                    format!("'{target}' is not a state in this machine"),
                );
            }
        }
    }
    for name in states_map.keys() {
        if !reachable.contains(name) && states.contains_key(name) {
            checker.problem(
                format!("{at}.States.{name}"),
                "state is not reachable from StartAt",
            );
        }
    }
    Some(Machine {
        start_at,
        states,
        timeout_seconds,
    })
}

fn transitions(state: &State) -> Vec<(String, &str)> {
    let mut out = Vec::new();
    if let Some(next) = &state.next {
        out.push(("Next".to_string(), next.as_str()));
    }
    if let Kind::Choice { choices, default } = &state.kind {
        for (i, c) in choices.iter().enumerate() {
            out.push((format!("Choices[{i}].Next"), c.next.as_str()));
        }
        if let Some(d) = default {
            out.push(("Default".to_string(), d.as_str()));
        }
    }
    for (i, c) in state.catch.iter().enumerate() {
        out.push((format!("Catch[{i}].Next"), c.next.as_str()));
    }
    out
}

const COMMON: &[&str] = &["Type", "Comment", "QueryLanguage"];
const JSONPATH_ONLY: &[&str] = &[
    "InputPath",
    "OutputPath",
    "Parameters",
    "ResultSelector",
    "ResultPath",
    "ItemsPath",
];
const JSONATA_ONLY: &[&str] = &["Arguments", "Output", "Items"];

fn allowed_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "Pass" => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "Parameters",
            "ResultPath",
            "Result",
            "Assign",
            "Output",
        ],
        "Task" => &[
            "Next",
            "End",
            "Resource",
            "InputPath",
            "OutputPath",
            "Parameters",
            "ResultSelector",
            "ResultPath",
            "Retry",
            "Catch",
            "TimeoutSeconds",
            "TimeoutSecondsPath",
            "HeartbeatSeconds",
            "HeartbeatSecondsPath",
            "Credentials",
            "Arguments",
            "Output",
            "Assign",
        ],
        "Choice" => &[
            "Choices",
            "Default",
            "InputPath",
            "OutputPath",
            "Assign",
            "Output",
        ],
        "Wait" => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "Seconds",
            "Timestamp",
            "SecondsPath",
            "TimestampPath",
            "Assign",
            "Output",
        ],
        "Succeed" => &["InputPath", "OutputPath", "Output"],
        "Fail" => &["Error", "Cause", "ErrorPath", "CausePath"],
        "Parallel" => &[
            "Next",
            "End",
            "Branches",
            "InputPath",
            "OutputPath",
            "Parameters",
            "ResultSelector",
            "ResultPath",
            "Retry",
            "Catch",
            "Arguments",
            "Output",
            "Assign",
        ],
        "Map" => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "ItemsPath",
            "Items",
            "ItemSelector",
            "Parameters",
            "ItemProcessor",
            "Iterator",
            "MaxConcurrency",
            "MaxConcurrencyPath",
            "ResultSelector",
            "ResultPath",
            "Retry",
            "Catch",
            "ToleratedFailureCount",
            "ToleratedFailureCountPath",
            "ToleratedFailurePercentage",
            "ToleratedFailurePercentagePath",
            "Label",
            "ItemReader",
            "ItemBatcher",
            "ResultWriter",
            "Output",
            "Assign",
        ],
        _ => &[],
    }
}

fn parse_path_field(
    map: &Map<String, Value>,
    key: &str,
    at: &str,
    checker: &mut Checker,
) -> PathField {
    match map.get(key) {
        None => PathField::Default,
        Some(Value::Null) => PathField::Null,
        Some(Value::String(s)) => match Path::parse(s) {
            Ok(p) => {
                if key == "ResultPath" && *p.root() != crate::path::Root::Input {
                    checker.problem(
                        format!("{at}.{key}"),
                        format!("'{s}' must start with '$.' or be '$': a result goes into the state's input"),
                    );
                }
                if key == "ResultPath" && !p.is_reference() {
                    checker.problem(
                        format!("{at}.{key}"),
                        format!("'{s}' is not a reference path"),
                    );
                }
                PathField::Path(p)
            }
            Err(e) => {
                checker.problem(
                    format!("{at}.{key}"),
                    format!("invalid JSONPath '{s}': {}", e.0),
                );
                PathField::Default
            }
        },
        Some(_) => {
            checker.problem(
                format!("{at}.{key}"),
                format!("{key} must be a string or null"),
            );
            PathField::Default
        }
    }
}

fn template(
    map: &Map<String, Value>,
    key: &str,
    at: &str,
    checker: &mut Checker,
) -> Option<Template> {
    let value = map.get(key)?;
    let mut problems = Vec::new();
    let t = Template::compile(value, &format!("{at}.{key}"), &mut problems);
    for (path, message) in problems {
        checker.problem(path, message);
    }
    Some(t)
}

fn is_jsonata_expr(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.starts_with("{%") && s.ends_with("%}"))
}

fn dynamic(
    map: &Map<String, Value>,
    key: &str,
    language: QueryLanguage,
    at: &str,
    checker: &mut Checker,
) -> Option<Dynamic> {
    let path_key = format!("{key}Path");
    match (map.get(key), map.get(&path_key)) {
        (Some(_), Some(_)) => {
            checker.problem(at, format!("{key} and {path_key} are mutually exclusive"));
            None
        }
        (Some(v), None) => {
            if language == QueryLanguage::Jsonata && is_jsonata_expr(v) {
                Some(Dynamic::Jsonata(v.as_str().unwrap_or_default().to_string()))
            } else {
                Some(Dynamic::Literal(v.clone()))
            }
        }
        (None, Some(Value::String(s))) if crate::intrinsics::looks_like_call(s) => {
            match crate::intrinsics::Call::parse(s) {
                Ok(call) => Some(Dynamic::Intrinsic(call)),
                Err(e) => {
                    checker.problem(
                        format!("{at}.{path_key}"),
                        format!("invalid intrinsic function: {e}"),
                    );
                    None
                }
            }
        }
        (None, Some(v)) => match v.as_str().map(Path::parse) {
            Some(Ok(p)) => Some(Dynamic::Path(p)),
            _ => {
                checker.problem(
                    format!("{at}.{path_key}"),
                    format!("{path_key} must be a valid JSONPath"),
                );
                None
            }
        },
        (None, None) => None,
    }
}

fn error_names(value: Option<&Value>, at: &str, checker: &mut Checker) -> Vec<String> {
    let Some(Value::Array(items)) = value else {
        checker.problem(at, "ErrorEquals must be a non-empty array of strings");
        return Vec::new();
    };
    if items.is_empty() {
        checker.problem(at, "ErrorEquals must be a non-empty array of strings");
    }
    let mut names = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match item.as_str() {
            Some(name) => {
                if name.starts_with("States.") && !KNOWN_ERRORS.contains(&name) {
                    checker.problem(
                        format!("{at}[{i}]"),
                        format!("'{name}' is not a predefined error name"),
                    );
                }
                names.push(name.to_string());
            }
            None => checker.problem(format!("{at}[{i}]"), "error names are strings"),
        }
    }
    if names.iter().any(|n| n == "States.ALL") && names.len() > 1 {
        checker.problem(at, "States.ALL must appear alone in ErrorEquals");
    }
    names
}

fn parse_assign(
    map: &Map<String, Value>,
    language: QueryLanguage,
    at: &str,
    checker: &mut Checker,
) -> Option<Assign> {
    let value = map.get("Assign")?;
    if !value.is_object() {
        checker.problem(format!("{at}.Assign"), "Assign must be an object");
        return None;
    }
    Some(match language {
        QueryLanguage::JsonPath => {
            let mut problems = Vec::new();
            let t = Template::compile(value, &format!("{at}.Assign"), &mut problems);
            for (p, m) in problems {
                checker.problem(p, m);
            }
            Assign::JsonPath(t)
        }
        QueryLanguage::Jsonata => Assign::Jsonata(value.clone()),
    })
}

fn parse_state(
    name: &str,
    value: &Value,
    at: &str,
    machine_language: QueryLanguage,
    checker: &mut Checker,
) -> Option<State> {
    let Value::Object(map) = value else {
        checker.problem(at, "a state must be a JSON object");
        return None;
    };
    let Some(type_name) = map.get("Type").and_then(Value::as_str) else {
        checker.problem(at, "missing required field 'Type'");
        return None;
    };
    let allowed = allowed_fields(type_name);
    if allowed.is_empty() {
        checker.problem(
            format!("{at}.Type"),
            format!("'{type_name}' is not a state type"),
        );
        return None;
    }
    let language = parse_language(
        map.get("QueryLanguage"),
        &format!("{at}.QueryLanguage"),
        checker,
    )
    .unwrap_or(machine_language);
    if machine_language == QueryLanguage::Jsonata && language == QueryLanguage::JsonPath {
        checker.problem(
            format!("{at}.QueryLanguage"),
            "a state of a JSONata state machine cannot use JSONPath",
        );
    }
    for key in map.keys() {
        let k = key.as_str();
        if COMMON.contains(&k) {
            continue;
        }
        if !allowed.contains(&k) {
            checker.problem(
                format!("{at}.{key}"),
                format!("field '{key}' is not allowed in a {type_name} state"),
            );
            continue;
        }
        let wrong_language = match language {
            QueryLanguage::Jsonata => JSONPATH_ONLY.contains(&k) || k.ends_with("Path"),
            QueryLanguage::JsonPath => JSONATA_ONLY.contains(&k),
        };
        if wrong_language {
            let lang = if language == QueryLanguage::Jsonata {
                "JSONata"
            } else {
                "JSONPath"
            };
            checker.problem(
                format!("{at}.{key}"),
                format!("field '{key}' is not allowed in a {lang} state"),
            );
        }
    }
    if language == QueryLanguage::Jsonata {
        for (key, v) in map {
            if !matches!(key.as_str(), "ItemProcessor" | "Iterator" | "Branches") {
                check_expressions(v, &format!("{at}.{key}"), checker);
            }
        }
    }
    // Transitions.
    let terminal = matches!(type_name, "Succeed" | "Fail" | "Choice");
    let next = match (map.get("Next"), map.get("End")) {
        _ if terminal => None,
        (Some(Value::String(n)), None) => Some(n.clone()),
        (Some(Value::String(n)), Some(Value::Bool(false))) => Some(n.clone()),
        (None, Some(Value::Bool(true))) => None,
        (Some(_), Some(_)) => {
            checker.problem(at, "a state has either Next or End, not both");
            None
        }
        (Some(_), None) => {
            checker.problem(format!("{at}.Next"), "Next must be a string");
            None
        }
        _ => {
            checker.problem(at, "a non-terminal state needs Next or End: true");
            None
        }
    };
    let retry = match map.get("Retry") {
        None => Vec::new(),
        Some(Value::Array(items)) => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let here = format!("{at}.Retry[{i}]");
                let Value::Object(r) = item else {
                    checker.problem(&here, "a retrier must be an object");
                    continue;
                };
                for key in r.keys() {
                    if ![
                        "ErrorEquals",
                        "IntervalSeconds",
                        "MaxAttempts",
                        "BackoffRate",
                        "MaxDelaySeconds",
                        "JitterStrategy",
                        "Comment",
                    ]
                    .contains(&key.as_str())
                    {
                        checker.problem(
                            format!("{here}.{key}"),
                            format!("field '{key}' is not allowed in a retrier"),
                        );
                    }
                }
                let error_equals = error_names(
                    r.get("ErrorEquals"),
                    &format!("{here}.ErrorEquals"),
                    checker,
                );
                let interval_seconds = match r.get("IntervalSeconds") {
                    None => 1.0,
                    Some(v) => match v.as_u64() {
                        Some(n) if (1..=99_999_999).contains(&n) => n as f64,
                        _ => {
                            checker.problem(
                                format!("{here}.IntervalSeconds"),
                                "IntervalSeconds must be an integer from 1 to 99999999",
                            );
                            1.0
                        }
                    },
                };
                let max_attempts = match r.get("MaxAttempts") {
                    None => 3,
                    Some(v) => match v.as_u64() {
                        Some(n) if n <= 99_999_999 => n as u32,
                        _ => {
                            checker.problem(
                                format!("{here}.MaxAttempts"),
                                "MaxAttempts must be a non-negative integer up to 99999999",
                            );
                            3
                        }
                    },
                };
                let backoff_rate = match r.get("BackoffRate") {
                    None => 2.0,
                    Some(v) => match v.as_f64() {
                        Some(f) if f >= 1.0 => f,
                        _ => {
                            checker.problem(
                                format!("{here}.BackoffRate"),
                                "BackoffRate must be a number of at least 1.0",
                            );
                            2.0
                        }
                    },
                };
                let max_delay_seconds = match r.get("MaxDelaySeconds") {
                    None => None,
                    Some(v) => match v.as_u64() {
                        Some(n) if (1..=31_622_400).contains(&n) => Some(n as f64),
                        _ => {
                            checker.problem(
                                format!("{here}.MaxDelaySeconds"),
                                "MaxDelaySeconds must be an integer from 1 to 31622400",
                            );
                            None
                        }
                    },
                };
                let full_jitter = match r.get("JitterStrategy").map(|v| v.as_str()) {
                    None | Some(Some("NONE")) => false,
                    Some(Some("FULL")) => true,
                    _ => {
                        checker.problem(
                            format!("{here}.JitterStrategy"),
                            "JitterStrategy must be FULL or NONE",
                        );
                        false
                    }
                };
                if error_equals.iter().any(|e| e == "States.ALL") && i + 1 != items.len() {
                    checker.problem(
                        format!("{here}.ErrorEquals"),
                        "a retrier with States.ALL must be the last",
                    );
                }
                out.push(Retrier {
                    error_equals,
                    interval_seconds,
                    max_attempts,
                    backoff_rate,
                    max_delay_seconds,
                    full_jitter,
                });
            }
            out
        }
        Some(_) => {
            checker.problem(format!("{at}.Retry"), "Retry must be an array");
            Vec::new()
        }
    };
    let catch = match map.get("Catch") {
        None => Vec::new(),
        Some(Value::Array(items)) => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let here = format!("{at}.Catch[{i}]");
                let Value::Object(c) = item else {
                    checker.problem(&here, "a catcher must be an object");
                    continue;
                };
                for key in c.keys() {
                    let allowed = match language {
                        QueryLanguage::JsonPath => {
                            ["ErrorEquals", "Next", "ResultPath", "Comment", "Assign"].as_slice()
                        }
                        QueryLanguage::Jsonata => {
                            ["ErrorEquals", "Next", "Output", "Comment", "Assign"].as_slice()
                        }
                    };
                    if !allowed.contains(&key.as_str()) {
                        checker.problem(
                            format!("{here}.{key}"),
                            format!("field '{key}' is not allowed in a catcher here"),
                        );
                    }
                }
                let error_equals = error_names(
                    c.get("ErrorEquals"),
                    &format!("{here}.ErrorEquals"),
                    checker,
                );
                if error_equals.iter().any(|e| e == "States.ALL") && i + 1 != items.len() {
                    checker.problem(
                        format!("{here}.ErrorEquals"),
                        "a catcher with States.ALL must be the last",
                    );
                }
                let next = match c.get("Next").and_then(Value::as_str) {
                    Some(n) => n.to_string(),
                    None => {
                        checker.problem(format!("{here}.Next"), "a catcher needs Next");
                        String::new()
                    }
                };
                let result_path = parse_path_field(c, "ResultPath", &here, checker);
                let assign = parse_assign(c, language, &here, checker);
                out.push(Catcher {
                    error_equals,
                    next,
                    result_path,
                    assign,
                    output: c.get("Output").cloned(),
                });
            }
            out
        }
        Some(_) => {
            checker.problem(format!("{at}.Catch"), "Catch must be an array");
            Vec::new()
        }
    };
    let kind = match type_name {
        "Pass" => Kind::Pass {
            result: map.get("Result").cloned(),
        },
        "Succeed" => Kind::Succeed,
        "Fail" => {
            let mut f = FailFields::default();
            for key in ["Error", "Cause"] {
                let d = dynamic(map, key, language, at, checker);
                if let Some(Dynamic::Literal(v)) = &d
                    && !v.is_string()
                {
                    checker.problem(format!("{at}.{key}"), format!("{key} must be a string"));
                }
                if key == "Error" {
                    f.error = d
                } else {
                    f.cause = d
                }
            }
            Kind::Fail(f)
        }
        "Wait" => {
            let seconds = dynamic(map, "Seconds", language, at, checker);
            let timestamp = dynamic(map, "Timestamp", language, at, checker);
            match (seconds, timestamp) {
                (Some(s), None) => {
                    if let Dynamic::Literal(v) = &s
                        && v.as_u64().is_none_or(|n| n > 99_999_999)
                    {
                        checker.problem(
                            format!("{at}.Seconds"),
                            "Seconds must be a non-negative integer up to 99999999",
                        );
                    }
                    Kind::Wait(WaitFor::Seconds(s))
                }
                (None, Some(t)) => {
                    if let Dynamic::Literal(v) = &t
                        && v.as_str().and_then(crate::time::parse_timestamp).is_none()
                    {
                        checker.problem(
                            format!("{at}.Timestamp"),
                            "Timestamp must be an ISO-8601 date-time",
                        );
                    }
                    Kind::Wait(WaitFor::Timestamp(t))
                }
                _ => {
                    checker.problem(at, "a Wait state needs exactly one of Seconds, Timestamp, SecondsPath, TimestampPath");
                    return None;
                }
            }
        }
        "Task" => {
            let resource = match map.get("Resource").and_then(Value::as_str) {
                Some(r) => r.to_string(),
                None => {
                    checker.problem(
                        format!("{at}.Resource"),
                        "a Task needs a Resource (a string)",
                    );
                    String::new()
                }
            };
            let timeout = dynamic(map, "TimeoutSeconds", language, at, checker);
            let heartbeat = dynamic(map, "HeartbeatSeconds", language, at, checker);
            for (key, value) in [
                ("TimeoutSeconds", &timeout),
                ("HeartbeatSeconds", &heartbeat),
            ] {
                if let Some(Dynamic::Literal(v)) = value
                    && !v.as_u64().is_some_and(|n| (1..=99_999_999).contains(&n))
                {
                    checker.problem(
                        format!("{at}.{key}"),
                        format!("{key} must be an integer from 1 to 99999999"),
                    );
                }
            }
            if let (Some(Dynamic::Literal(t)), Some(Dynamic::Literal(h))) = (&timeout, &heartbeat)
                && let (Some(t), Some(h)) = (t.as_u64(), h.as_u64())
                && h >= t
            {
                checker.problem(
                    format!("{at}.HeartbeatSeconds"),
                    "HeartbeatSeconds must be smaller than TimeoutSeconds",
                );
            }
            Kind::Task(Task {
                resource,
                timeout,
                heartbeat,
            })
        }
        "Choice" => {
            let choices = match map.get("Choices") {
                Some(Value::Array(items)) if !items.is_empty() => items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, c)| {
                        parse_branch(c, &format!("{at}.Choices[{i}]"), language, checker)
                    })
                    .collect(),
                _ => {
                    checker.problem(
                        format!("{at}.Choices"),
                        "a Choice state needs a non-empty Choices array",
                    );
                    Vec::new()
                }
            };
            let default = match map.get("Default") {
                None => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(_) => {
                    checker.problem(format!("{at}.Default"), "Default must be a state name");
                    None
                }
            };
            Kind::Choice { choices, default }
        }
        "Parallel" => {
            let branches = match map.get("Branches") {
                Some(Value::Array(items)) if !items.is_empty() => items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, b)| {
                        parse_machine(b, &format!("{at}.Branches[{i}]"), language, false, checker)
                    })
                    .map(Arc::new)
                    .collect(),
                _ => {
                    checker.problem(
                        format!("{at}.Branches"),
                        "a Parallel state needs a non-empty Branches array",
                    );
                    Vec::new()
                }
            };
            Kind::Parallel { branches }
        }
        "Map" => {
            let (processor_key, processor) = match (map.get("ItemProcessor"), map.get("Iterator")) {
                (Some(p), None) => ("ItemProcessor", p),
                (None, Some(p)) => ("Iterator", p),
                _ => {
                    checker.problem(
                        at,
                        "a Map state needs exactly one of ItemProcessor and Iterator",
                    );
                    return None;
                }
            };
            if let Some(mode) = processor.get("ProcessorConfig").and_then(|c| c.get("Mode"))
                && mode != "INLINE"
            {
                checker.problem(
                    format!("{at}.{processor_key}.ProcessorConfig.Mode"),
                    "only INLINE Map states run here (a distributed Map needs a Map Run)",
                );
            }
            for key in ["ItemReader", "ItemBatcher", "ResultWriter"] {
                if map.contains_key(key) {
                    checker.problem(
                        format!("{at}.{key}"),
                        format!("{key} belongs to a distributed Map, which does not run here"),
                    );
                }
            }
            let processor = parse_machine(
                processor,
                &format!("{at}.{processor_key}"),
                language,
                false,
                checker,
            )?;
            if map.contains_key("ItemSelector") && map.contains_key("Parameters") {
                checker.problem(at, "ItemSelector and Parameters are mutually exclusive");
            }
            let selector_key = if map.contains_key("ItemSelector") {
                "ItemSelector"
            } else {
                "Parameters"
            };
            let (item_selector, item_selector_jsonata) = match language {
                QueryLanguage::JsonPath => (template(map, selector_key, at, checker), None),
                QueryLanguage::Jsonata => (None, map.get("ItemSelector").cloned()),
            };
            let max_concurrency = dynamic(map, "MaxConcurrency", language, at, checker);
            let tolerated_count = dynamic(map, "ToleratedFailureCount", language, at, checker);
            let tolerated_percentage =
                dynamic(map, "ToleratedFailurePercentage", language, at, checker);
            for (key, value) in [
                ("MaxConcurrency", &max_concurrency),
                ("ToleratedFailureCount", &tolerated_count),
            ] {
                if let Some(Dynamic::Literal(v)) = value
                    && v.as_u64().is_none()
                {
                    checker.problem(
                        format!("{at}.{key}"),
                        format!("{key} must be a non-negative integer"),
                    );
                }
            }
            if let Some(Dynamic::Literal(v)) = &tolerated_percentage
                && !v.as_f64().is_some_and(|p| (0.0..=100.0).contains(&p))
            {
                checker.problem(
                    format!("{at}.ToleratedFailurePercentage"),
                    "ToleratedFailurePercentage must be a number from 0 to 100",
                );
            }
            Kind::Map(Box::new(MapFields {
                items_path: parse_path_field(map, "ItemsPath", at, checker),
                items: map.get("Items").cloned(),
                item_selector,
                item_selector_jsonata,
                processor: Arc::new(processor),
                max_concurrency,
                tolerated_count,
                tolerated_percentage,
            }))
        }
        _ => return None,
    };
    let parameters = if matches!(kind, Kind::Map(_)) {
        None
    } else {
        template(map, "Parameters", at, checker)
    };
    Some(State {
        name: name.to_string(),
        language,
        next,
        input_path: parse_path_field(map, "InputPath", at, checker),
        output_path: parse_path_field(map, "OutputPath", at, checker),
        result_path: parse_path_field(map, "ResultPath", at, checker),
        parameters,
        result_selector: template(map, "ResultSelector", at, checker),
        assign: parse_assign(map, language, at, checker),
        arguments: map.get("Arguments").cloned(),
        output: map.get("Output").cloned(),
        retry,
        catch,
        kind,
    })
}

/// Every `{% %}` string under `value` must parse as JSONata.
fn check_expressions(value: &Value, at: &str, checker: &mut Checker) {
    match value {
        Value::String(s) => {
            if let Some(expr) = crate::jsonata::expression(s)
                && let Err(e) = crate::jsonata::check(expr)
            {
                checker.problem(at, format!("invalid JSONata expression '{expr}': {e}"));
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                check_expressions(v, &format!("{at}[{i}]"), checker);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                check_expressions(v, &format!("{at}.{k}"), checker);
            }
        }
        _ => {}
    }
}

fn parse_branch(
    value: &Value,
    at: &str,
    language: QueryLanguage,
    checker: &mut Checker,
) -> Option<ChoiceBranch> {
    let Value::Object(map) = value else {
        checker.problem(at, "a choice rule must be an object");
        return None;
    };
    let next = match map.get("Next").and_then(Value::as_str) {
        Some(n) => n.to_string(),
        None => {
            checker.problem(format!("{at}.Next"), "a top-level choice rule needs Next");
            String::new()
        }
    };
    let rule = if language == QueryLanguage::Jsonata {
        match map.get("Condition") {
            Some(c) => Rule::Condition(c.clone()),
            None => {
                checker.problem(at, "a JSONata choice rule needs Condition");
                return None;
            }
        }
    } else {
        parse_rule(map, at, true, checker)?
    };
    let assign = parse_assign(map, language, at, checker);
    Some(ChoiceBranch {
        rule,
        next,
        assign,
        output: map.get("Output").cloned(),
    })
}

const COMPARISONS: &[(&str, CompareKind, CompareOp)] = &[
    ("StringEquals", CompareKind::String, CompareOp::Equals),
    ("StringLessThan", CompareKind::String, CompareOp::LessThan),
    (
        "StringGreaterThan",
        CompareKind::String,
        CompareOp::GreaterThan,
    ),
    (
        "StringLessThanEquals",
        CompareKind::String,
        CompareOp::LessThanEquals,
    ),
    (
        "StringGreaterThanEquals",
        CompareKind::String,
        CompareOp::GreaterThanEquals,
    ),
    ("NumericEquals", CompareKind::Numeric, CompareOp::Equals),
    ("NumericLessThan", CompareKind::Numeric, CompareOp::LessThan),
    (
        "NumericGreaterThan",
        CompareKind::Numeric,
        CompareOp::GreaterThan,
    ),
    (
        "NumericLessThanEquals",
        CompareKind::Numeric,
        CompareOp::LessThanEquals,
    ),
    (
        "NumericGreaterThanEquals",
        CompareKind::Numeric,
        CompareOp::GreaterThanEquals,
    ),
    ("TimestampEquals", CompareKind::Timestamp, CompareOp::Equals),
    (
        "TimestampLessThan",
        CompareKind::Timestamp,
        CompareOp::LessThan,
    ),
    (
        "TimestampGreaterThan",
        CompareKind::Timestamp,
        CompareOp::GreaterThan,
    ),
    (
        "TimestampLessThanEquals",
        CompareKind::Timestamp,
        CompareOp::LessThanEquals,
    ),
    (
        "TimestampGreaterThanEquals",
        CompareKind::Timestamp,
        CompareOp::GreaterThanEquals,
    ),
    ("BooleanEquals", CompareKind::Boolean, CompareOp::Equals),
];

fn parse_rule(
    map: &Map<String, Value>,
    at: &str,
    top: bool,
    checker: &mut Checker,
) -> Option<Rule> {
    let _ = top;
    let mut operators = map.keys().filter(|k| {
        !matches!(
            k.as_str(),
            "Variable" | "Next" | "Comment" | "Assign" | "Output"
        )
    });
    let Some(op) = operators.next() else {
        checker.problem(
            at,
            "a choice rule needs a comparison operator, And, Or or Not",
        );
        return None;
    };
    if let Some(extra) = operators.next() {
        checker.problem(
            format!("{at}.{extra}"),
            "a choice rule holds exactly one operator",
        );
        return None;
    }
    let operand = &map[op];
    let nested = |v: &Value, here: String, checker: &mut Checker| -> Option<Rule> {
        match v {
            Value::Object(m) => {
                if m.contains_key("Next") {
                    checker.problem(
                        format!("{here}.Next"),
                        "a nested choice rule cannot have Next",
                    );
                }
                parse_rule(m, &here, false, checker)
            }
            _ => {
                checker.problem(here, "a choice rule must be an object");
                None
            }
        }
    };
    match op.as_str() {
        "And" | "Or" => {
            let Value::Array(items) = operand else {
                checker.problem(
                    format!("{at}.{op}"),
                    format!("{op} takes a non-empty array of rules"),
                );
                return None;
            };
            if items.is_empty() {
                checker.problem(
                    format!("{at}.{op}"),
                    format!("{op} takes a non-empty array of rules"),
                );
            }
            let rules: Vec<Rule> = items
                .iter()
                .enumerate()
                .filter_map(|(i, r)| nested(r, format!("{at}.{op}[{i}]"), checker))
                .collect();
            Some(if op == "And" {
                Rule::And(rules)
            } else {
                Rule::Or(rules)
            })
        }
        "Not" => nested(operand, format!("{at}.Not"), checker).map(|r| Rule::Not(Box::new(r))),
        name => {
            let variable = match map.get("Variable").and_then(Value::as_str).map(Path::parse) {
                Some(Ok(p)) => p,
                Some(Err(e)) => {
                    checker.problem(
                        format!("{at}.Variable"),
                        format!("invalid JSONPath: {}", e.0),
                    );
                    return None;
                }
                None => {
                    checker.problem(format!("{at}.Variable"), "a comparison needs Variable");
                    return None;
                }
            };
            let flag = |checker: &mut Checker| -> Option<bool> {
                let b = operand.as_bool();
                if b.is_none() {
                    checker.problem(
                        format!("{at}.{name}"),
                        format!("{name} takes true or false"),
                    );
                }
                b
            };
            let test = match name {
                "IsNull" => Test::IsNull(flag(checker)?),
                "IsPresent" => Test::IsPresent(flag(checker)?),
                "IsNumeric" => Test::IsNumeric(flag(checker)?),
                "IsString" => Test::IsString(flag(checker)?),
                "IsBoolean" => Test::IsBoolean(flag(checker)?),
                "IsTimestamp" => Test::IsTimestamp(flag(checker)?),
                "StringMatches" => match operand.as_str() {
                    Some(s) => Test::StringMatches(s.to_string()),
                    None => {
                        checker.problem(format!("{at}.{name}"), "StringMatches takes a string");
                        return None;
                    }
                },
                _ => {
                    let (base, is_path) = match name.strip_suffix("Path") {
                        Some(b) => (b, true),
                        None => (name, false),
                    };
                    let Some(&(_, kind, cmp)) = COMPARISONS.iter().find(|(n, _, _)| *n == base)
                    else {
                        checker.problem(
                            format!("{at}.{name}"),
                            format!("'{name}' is not a choice operator"),
                        );
                        return None;
                    };
                    let operand = if is_path {
                        match operand.as_str().map(Path::parse) {
                            Some(Ok(p)) => Operand::Path(p),
                            _ => {
                                checker.problem(
                                    format!("{at}.{name}"),
                                    format!("{name} takes a JSONPath"),
                                );
                                return None;
                            }
                        }
                    } else {
                        let ok = match kind {
                            CompareKind::String => operand.is_string(),
                            CompareKind::Numeric => operand.is_number(),
                            CompareKind::Boolean => operand.is_boolean(),
                            CompareKind::Timestamp => operand
                                .as_str()
                                .is_some_and(|s| crate::time::parse_timestamp(s).is_some()),
                        };
                        if !ok {
                            checker.problem(
                                format!("{at}.{name}"),
                                format!("{name} takes a {kind:?} value"),
                            );
                            return None;
                        }
                        Operand::Literal(operand.clone())
                    };
                    Test::Compare {
                        kind,
                        op: cmp,
                        operand,
                    }
                }
            };
            Some(Rule::Test { variable, test })
        }
    }
}
