//! Handlers: the code that runs one kind of job, and the registry of them.
//!
//! A handler is typed (serde args in, serializable output out); the registry
//! erases the types once, so the executor calls every handler the same way and
//! never sees a backend type.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use capstan_core::NewJob;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{JobContext, JobError, RuntimeError};

/// The code that runs jobs of one kind.
///
/// ```ignore
/// struct SendEmail;
/// impl Handler for SendEmail {
///     const KIND: &'static str = "email.send";
///     type Args = Email;
///     type Output = ();
///     async fn run(&self, ctx: JobContext, email: Email) -> Result<(), JobError> { … }
/// }
/// ```
pub trait Handler: Send + Sync + 'static {
    /// The kind this handler runs.
    const KIND: &'static str;
    /// The job's args, decoded from JSON (a decode failure fails the job permanently).
    type Args: DeserializeOwned + Send + 'static;
    /// What the handler returns; stored as the job's result.
    type Output: Serialize + Send + 'static;

    /// Run one attempt.
    fn run(
        &self,
        ctx: JobContext,
        args: Self::Args,
    ) -> impl Future<Output = Result<Self::Output, JobError>> + Send;

    /// A new job for this handler: kind [`Handler::KIND`], `args` as its
    /// JSON args, so the kind and the args' shape cannot drift from the
    /// handler's (`SendEmail::job(&email)?.with_queue("mail")`).
    ///
    /// # Errors
    /// [`RuntimeError::Args`] when `args` cannot be encoded as JSON (a map
    /// whose keys are not strings, say).
    fn job(args: &Self::Args) -> Result<NewJob, RuntimeError>
    where
        Self: Sized,
        Self::Args: Serialize,
    {
        let value = serde_json::to_value(args).map_err(|source| RuntimeError::Args {
            kind: Self::KIND,
            source,
        })?;
        Ok(NewJob::new(Self::KIND, value))
    }
}

pub(crate) type HandlerFuture = Pin<Box<dyn Future<Output = Result<Value, JobError>> + Send>>;

pub(crate) trait ErasedHandler: Send + Sync {
    fn call(self: Arc<Self>, ctx: JobContext, args: Value) -> HandlerFuture;
}

struct Typed<H>(H);

impl<H: Handler> ErasedHandler for Typed<H> {
    fn call(self: Arc<Self>, ctx: JobContext, args: Value) -> HandlerFuture {
        Box::pin(async move {
            let args: H::Args = serde_json::from_value(args).map_err(|e| {
                JobError::permanent(format!("invalid args for kind {}: {e}", H::KIND))
            })?;
            let out = self.0.run(ctx, args).await?;
            serde_json::to_value(out).map_err(|e| {
                JobError::permanent(format!("result of kind {} is not JSON: {e}", H::KIND))
            })
        })
    }
}

struct FnHandler<F>(F);

impl<F, Fut> ErasedHandler for FnHandler<F>
where
    F: Fn(JobContext, Value) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, JobError>> + Send + 'static,
{
    fn call(self: Arc<Self>, ctx: JobContext, args: Value) -> HandlerFuture {
        Box::pin((self.0)(ctx, args))
    }
}

/// The handlers a node runs, by kind. A node claims only the kinds it has
/// handlers for; jobs of other kinds wait for a node that has them.
#[derive(Clone)]
pub struct Workers {
    handlers: BTreeMap<String, Arc<dyn ErasedHandler>>,
    /// Queues whose every job, whatever its kind, one handler runs (push queues).
    queues: BTreeMap<String, Arc<dyn ErasedHandler>>,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("kinds", &self.handlers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Workers {
    /// A registry with the built-in diagnostic kinds (`capstan.noop`,
    /// `capstan.sleep`, `capstan.fail`).
    pub fn new() -> Self {
        let mut w = Self::empty();
        crate::builtin::register(&mut w);
        w
    }

    /// A registry with no handlers at all.
    pub fn empty() -> Self {
        Workers {
            handlers: BTreeMap::new(),
            queues: BTreeMap::new(),
        }
    }

    /// Add a typed handler.
    ///
    /// # Errors
    /// [`RuntimeError::DuplicateKind`] when its kind already has one.
    pub fn register<H: Handler>(&mut self, handler: H) -> Result<&mut Self, RuntimeError> {
        self.insert(H::KIND, Arc::new(Typed(handler)))
    }

    /// Add a handler for `kind` from a closure over raw JSON args.
    ///
    /// # Errors
    /// [`RuntimeError::DuplicateKind`] when the kind already has one.
    pub fn register_fn<F, Fut>(&mut self, kind: &str, f: F) -> Result<&mut Self, RuntimeError>
    where
        F: Fn(JobContext, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, JobError>> + Send + 'static,
    {
        self.insert(kind, Arc::new(FnHandler(f)))
    }

    fn insert(
        &mut self,
        kind: &str,
        handler: Arc<dyn ErasedHandler>,
    ) -> Result<&mut Self, RuntimeError> {
        if self.handlers.contains_key(kind) {
            return Err(RuntimeError::DuplicateKind(kind.to_owned()));
        }
        self.handlers.insert(kind.to_owned(), handler);
        Ok(self)
    }

    /// Make `queue` a push queue: every job of it, whatever its kind, is
    /// POSTed to `config.push_url` (see [`crate::push`]). The node must
    /// serve the queue.
    ///
    /// # Errors
    /// [`RuntimeError::Config`] for a bad setting, or a queue that already
    /// pushes.
    pub fn push(
        &mut self,
        queue: &str,
        config: crate::push::PushConfig,
    ) -> Result<&mut Self, RuntimeError> {
        if self.queues.contains_key(queue) {
            return Err(RuntimeError::Config(format!(
                "queue {queue} already pushes to a URL"
            )));
        }
        let target = crate::push::Target::new(queue, config)?;
        self.queues.insert(queue.to_owned(), target);
        Ok(self)
    }

    /// The kinds registered; `*` (any kind) too when a queue pushes.
    pub fn kinds(&self) -> Vec<String> {
        let mut kinds: Vec<String> = self.handlers.keys().cloned().collect();
        if !self.queues.is_empty() {
            kinds.push(capstan_core::ANY_KIND.to_owned());
        }
        kinds
    }

    /// The kinds a claim from `queue` takes: `None` (any) for a push queue.
    pub(crate) fn claim_kinds(&self, queue: &str) -> Option<Vec<String>> {
        if self.queues.contains_key(queue) {
            None
        } else {
            Some(self.handlers.keys().cloned().collect())
        }
    }

    /// The handler of a job of `kind` in `queue`.
    pub(crate) fn get(&self, queue: &str, kind: &str) -> Option<Arc<dyn ErasedHandler>> {
        self.queues
            .get(queue)
            .or_else(|| self.handlers.get(kind))
            .cloned()
    }

    /// The push queues.
    pub fn push_queues(&self) -> Vec<String> {
        self.queues.keys().cloned().collect()
    }
}

impl Default for Workers {
    fn default() -> Self {
        Self::new()
    }
}
