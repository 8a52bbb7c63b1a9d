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

    /// The kinds registered.
    pub fn kinds(&self) -> Vec<String> {
        self.handlers.keys().cloned().collect()
    }

    pub(crate) fn get(&self, kind: &str) -> Option<Arc<dyn ErasedHandler>> {
        self.handlers.get(kind).cloned()
    }
}

impl Default for Workers {
    fn default() -> Self {
        Self::new()
    }
}
