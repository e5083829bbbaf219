//! Task resources: user handlers registered under resource names, and the callback tokens of
//! `.waitForTaskToken` tasks.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

/// What a task handler receives.
#[derive(Debug, Clone)]
pub struct TaskRequest {
    /// The Resource as the state names it (with any `.sync` / `.waitForTaskToken` suffix).
    pub resource: String,
    /// The effective input: after InputPath and Parameters (or JSONata Arguments).
    pub input: Value,
    /// For `.waitForTaskToken` resources: the token to hand to send_task_success/failure.
    pub task_token: Option<String>,
    /// The context object (`$$`) as the state sees it, except `Execution.Input` (Parameters
    /// can pass it as `"input.$": "$$.Execution.Input"`).
    pub context: Value,
}

/// A task's failure: an error name and an optional cause, matched by Retry and Catch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFailure {
    /// Error name, such as `Lambda.ServiceException` or a user's own.
    pub error: String,
    /// Human-readable cause.
    pub cause: Option<String>,
}

impl TaskFailure {
    /// A failure with `error` and `cause`.
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            cause: Some(cause.into()),
        }
    }
}

/// Runs a Task state's work.
#[async_trait]
pub trait TaskHandler: Send + Sync + 'static {
    /// Does the work and returns the task's result. For a `.waitForTaskToken` resource the
    /// result is ignored: the task ends when its token is resolved.
    async fn invoke(&self, request: TaskRequest) -> Result<Value, TaskFailure>;
}

type BoxedFn = dyn Fn(TaskRequest) -> Pin<Box<dyn Future<Output = Result<Value, TaskFailure>> + Send>>
    + Send
    + Sync;

struct FnHandler(Box<BoxedFn>);

#[async_trait]
impl TaskHandler for FnHandler {
    async fn invoke(&self, request: TaskRequest) -> Result<Value, TaskFailure> {
        (self.0)(request).await
    }
}

/// Resource name → handler.
#[derive(Default)]
pub struct TaskRegistry {
    handlers: RwLock<HashMap<String, Arc<dyn TaskHandler>>>,
}

impl fmt::Debug for TaskRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let handlers = self.handlers.read().unwrap_or_else(|p| p.into_inner());
        f.debug_struct("TaskRegistry")
            .field("resources", &handlers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl TaskRegistry {
    /// Registers `handler` under `resource` (an ARN-like string, without any
    /// `.sync` / `.waitForTaskToken` suffix), replacing any previous one.
    pub fn register(&self, resource: impl Into<String>, handler: impl TaskHandler) {
        let mut handlers = self.handlers.write().unwrap_or_else(|p| p.into_inner());
        handlers.insert(resource.into(), Arc::new(handler));
    }

    /// Registers an async closure.
    pub fn register_fn<F, Fut>(&self, resource: impl Into<String>, f: F)
    where
        F: Fn(TaskRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, TaskFailure>> + Send + 'static,
    {
        self.register(resource, FnHandler(Box::new(move |r| Box::pin(f(r)))));
    }

    /// The handler for a resource and how it completes.
    pub(crate) fn resolve(&self, resource: &str) -> Option<(Arc<dyn TaskHandler>, Pattern)> {
        let (base, pattern) = if let Some(b) = resource.strip_suffix(".waitForTaskToken") {
            (b, Pattern::Callback)
        } else if let Some(b) = resource.strip_suffix(".sync") {
            (b, Pattern::RequestResponse)
        } else {
            (resource, Pattern::RequestResponse)
        };
        let handlers = self.handlers.read().unwrap_or_else(|p| p.into_inner());
        handlers
            .get(base)
            .or_else(|| handlers.get(resource))
            .map(|h| (h.clone(), pattern))
    }
}

/// How a task completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pattern {
    RequestResponse,
    Callback,
}

/// A callback token's outcome or a heartbeat.
#[derive(Debug)]
pub(crate) enum Signal {
    Heartbeat,
}

pub(crate) struct Waiting {
    pub(crate) done: oneshot::Sender<Result<Value, TaskFailure>>,
    pub(crate) heartbeat: mpsc::UnboundedSender<Signal>,
}

/// Outstanding task tokens.
#[derive(Default)]
pub(crate) struct Callbacks {
    waiting: Mutex<HashMap<String, Waiting>>,
}

impl fmt::Debug for Callbacks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Callbacks").finish_non_exhaustive()
    }
}

impl Callbacks {
    pub(crate) fn insert(&self, token: String, waiting: Waiting) {
        self.lock().insert(token, waiting);
    }

    pub(crate) fn remove(&self, token: &str) -> Option<Waiting> {
        self.lock().remove(token)
    }

    pub(crate) fn heartbeat(&self, token: &str) -> bool {
        match self.lock().get(token) {
            Some(w) => w.heartbeat.send(Signal::Heartbeat).is_ok(),
            None => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Waiting>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }
}
