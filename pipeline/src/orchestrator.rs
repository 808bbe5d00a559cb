//! Runs every model in parallel in a tokio `JoinSet` under a per-request
//! deadline, and turns errors, panics and timeouts into records instead of
//! failures: whatever answered in time is returned.

use crate::error::{EmbeddingResult, Error};
use crate::model::{EmbeddingModel, ModelEmbedding, ModelId, PreparedInput};
use crate::span_ctx::model_span;
use std::any::Any;
use std::collections::BTreeSet;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tracing::Instrument;

/// The default per-request deadline for the models.
pub(crate) const DEFAULT_DEADLINE: Duration = Duration::from_millis(150);

/// What the models produced for one request.
#[derive(Debug, Clone, Default)]
pub(crate) struct ModelOutputs {
    /// The embeddings that arrived before the deadline, in arrival order.
    pub(crate) embeddings: Vec<ModelEmbedding>,
    /// The models that returned an error, an unusable embedding, or panicked.
    pub(crate) failed: BTreeSet<ModelId>,
    /// The models still running at the deadline (their tasks were aborted).
    pub(crate) timed_out: BTreeSet<ModelId>,
}

/// Runs a fixed set of models (at most one per [`ModelId`]) in parallel.
#[derive(Clone)]
pub(crate) struct AsyncOrchestrator {
    models: Vec<Arc<dyn EmbeddingModel>>,
    deadline: Duration,
}

impl std::fmt::Debug for AsyncOrchestrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncOrchestrator")
            .field("models", &self.model_ids().collect::<Vec<_>>())
            .field("deadline", &self.deadline)
            .finish()
    }
}

impl AsyncOrchestrator {
    /// An orchestrator over `models` with a deadline (longer than zero).
    /// Refuses an empty list, a model with an empty name and two models with
    /// the same name.
    pub(crate) fn with_deadline(
        models: Vec<Arc<dyn EmbeddingModel>>,
        deadline: Duration,
    ) -> EmbeddingResult<Self> {
        if models.is_empty() {
            return Err(Error::Pipeline("no models to run".into()));
        }
        let mut seen = BTreeSet::new();
        for m in &models {
            let id = m.model_id();
            if id.as_str().is_empty() {
                return Err(Error::Pipeline("a model has an empty name".into()));
            }
            if !seen.insert(id) {
                return Err(Error::Pipeline(format!("model {id} is given twice").into()));
            }
        }
        if deadline.is_zero() {
            return Err(Error::Pipeline(
                "the deadline must be longer than zero".into(),
            ));
        }
        Ok(Self { models, deadline })
    }

    /// The per-request deadline.
    pub(crate) fn deadline(&self) -> Duration {
        self.deadline
    }

    /// The models it runs, in the order given.
    pub(crate) fn model_ids(&self) -> impl Iterator<Item = &ModelId> + '_ {
        self.models.iter().map(|m| m.model_id())
    }

    /// Runs every model on `input` as its own `JoinSet` task, each in a `model`
    /// span (fields `model_id`, `input_tokens`) whose parent is this call's
    /// `model_execution` span (field `model_count`), and collects what arrives
    /// before the deadline.
    ///
    /// A model that errs or panics records an `ERROR` event in its span and is
    /// listed in `ModelOutputs::failed`. A model still running at the deadline
    /// gets a `WARN` event with `timeout = true` and `after_ms` in its span
    /// (the subscriber marks the span timed out) while the request is still
    /// open; then its task is aborted. Must be called within a tokio runtime.
    pub(crate) async fn execute_all_models(
        &self,
        input: &PreparedInput,
    ) -> EmbeddingResult<ModelOutputs> {
        let span = tracing::info_span!("model_execution", model_count = self.models.len() as u64);
        self.run(input, &span).instrument(span.clone()).await
    }

    async fn run(
        &self,
        input: &PreparedInput,
        parent: &tracing::Span,
    ) -> EmbeddingResult<ModelOutputs> {
        let started = Instant::now();
        let deadline = tokio::time::Instant::from_std(started + self.deadline);
        let mut set = JoinSet::new();
        // Per model (by position in `self.models`): its task, and its span's
        // ID. The ID, not a handle, so the span closes when the task ends (its
        // wall time is the model's, not the time this loop took to notice); a
        // stale ID is harmless, the subscriber checks generations.
        let mut tasks: Vec<Task> = Vec::with_capacity(self.models.len());
        for model in &self.models {
            let id = model.model_id();
            let span = model_span(parent, id, input.token_count());
            let span_id = span.id();
            let task = run_model(model.clone(), input.clone()).instrument(span);
            // Named after its model for tokio-console, where task names exist
            // (`--cfg tokio_unstable` with tokio's `tracing` feature, which the
            // `tokio-console` feature turns on). Naming cannot fail on a live
            // runtime.
            #[cfg(all(tokio_unstable, feature = "tokio-console"))]
            let handle = set
                .build_task()
                .name(id.as_str())
                .spawn(task)
                .map_err(|e| {
                    Error::Pipeline(format!("cannot spawn the {} task: {e}", id.as_str()).into())
                })?;
            #[cfg(not(all(tokio_unstable, feature = "tokio-console")))]
            let handle = set.spawn(task);
            tasks.push(Some((handle.id(), span_id)));
        }
        let mut out = ModelOutputs {
            embeddings: Vec::with_capacity(self.models.len()),
            ..ModelOutputs::default()
        };
        let sleep = tokio::time::sleep_until(deadline);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                biased;
                joined = set.join_next_with_id() => {
                    let Some(joined) = joined else { break };
                    let (task, outcome) = match joined {
                        Ok((task, result)) => (task, Ok(result.ok())),
                        Err(e) => (e.id(), Err(e)),
                    };
                    let Some((i, span_id)) = take_task(&mut tasks, task) else { continue };
                    let model = self.models[i].model_id();
                    match outcome {
                        Ok(Some(embedding)) => {
                            out.embeddings.push(embedding);
                        }
                        // The task recorded its error in its span already.
                        Ok(None) => {
                            out.failed.insert(model.clone());
                        }
                        // Ended outside `run_model`'s guard: record it here (an
                        // already closed span ignores the event).
                        Err(e) => {
                            tracing::error!(parent: span_id, model = model.as_str(), "model task failed: {e}");
                            out.failed.insert(model.clone());
                        }
                    }
                }
                () = &mut sleep => {
                    let after_ms = started.elapsed().as_secs_f64() * 1e3;
                    for (model, task) in self.models.iter().zip(&mut tasks) {
                        let Some((_, span_id)) = task.take() else {
                            continue;
                        };
                        let model = model.model_id();
                        tracing::warn!(
                            parent: span_id,
                            timeout = true,
                            after_ms,
                            model = model.as_str(),
                            "model timed out"
                        );
                        out.timed_out.insert(model.clone());
                    }
                    set.abort_all();
                    break;
                }
            }
        }
        Ok(out)
    }
}

/// A model's task while it runs, and its span's ID; `None` once it is done.
type Task = Option<(tokio::task::Id, Option<tracing::Id>)>;

/// Finds and forgets the finished task: the position of the model it ran,
/// with its span's ID.
fn take_task(tasks: &mut [Task], task: tokio::task::Id) -> Option<(usize, Option<tracing::Id>)> {
    let i = tasks
        .iter()
        .position(|t| t.as_ref().is_some_and(|(id, _)| *id == task))?;
    let (_, span_id) = tasks[i].take()?;
    Some((i, span_id))
}

/// One model call inside its span: panics are caught (so the span records the
/// failure before it closes), bad outputs refused, failures logged at `ERROR`.
async fn run_model(
    model: Arc<dyn EmbeddingModel>,
    input: PreparedInput,
) -> EmbeddingResult<ModelEmbedding> {
    let id = model.model_id();
    let result = match (CatchPanic {
        inner: model.embed(&input),
    })
    .await
    {
        Ok(result) => result.and_then(|e| check(id, e)),
        Err(payload) => Err(Error::Model {
            model: id.clone(),
            reason: format!("panicked: {}", panic_message(&*payload)).into(),
        }),
    };
    if let Err(e) = &result {
        tracing::error!("{e}");
    }
    result
}

/// Refuses an embedding the fusion could not use.
fn check(id: &ModelId, e: ModelEmbedding) -> EmbeddingResult<ModelEmbedding> {
    let reason = if e.model_id != *id {
        format!("returned an embedding labelled {}", e.model_id)
    } else if e.vector.is_empty() {
        "returned an empty vector".to_string()
    } else if !e.vector.iter().all(|v| v.is_finite()) {
        "returned a vector with NaN or infinite values".to_string()
    } else {
        return Ok(e);
    };
    Err(Error::Model {
        model: id.clone(),
        reason: reason.into(),
    })
}

pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&'static str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a non-string panic payload")
}

/// Polls a boxed future, turning a panic into an `Err` with its payload.
pub(crate) struct CatchPanic<F> {
    pub(crate) inner: F,
}

impl<F: Future + Unpin> Future for CatchPanic<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.inner;
        match catch_unwind(AssertUnwindSafe(|| Pin::new(inner).poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}
