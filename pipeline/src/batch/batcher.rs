//! [`BatchedModel`]: a dynamic batcher in front of one model. Each request's
//! input joins the model's queue; one runner task per model takes the queued
//! inputs as a batch when `max_size` are there or the oldest has waited
//! `max_wait`, runs them in one [`EmbeddingModel::embed_batch`] call, and
//! hands each request its own result. Batches of one model run one after
//! another, so a request can also wait behind the batch before it.
//!
//! Each batch is a span of its own, belonging to no request, with its
//! internals as children at `TRACE` (recorded at `TracingLevel::Verbose`):
//!
//! ```text
//! batch{model_id, batch_size}   INFO, parent: None
//!   batch_wait{oldest_wait_us}  TRACE, taking the inputs off the queue
//!   forward                     TRACE, the model's one batched call
//!   scatter                     TRACE, handing each request its result
//! ```
//!
//! The batch span and the `model` span of every request it serves follow from
//! each other (`follows_from`, both ways), linked while both are open, before
//! the batch runs. A fault in the batched call (an error, a panic) becomes
//! every served request's error, logged in its own model span as an unbatched
//! model's is; a batch that never answers is given up when every request it
//! serves has gone (each past its deadline, with its own timeout warning),
//! and an input whose request has gone before its batch runs is left out.

use super::config::{BatchConfig, BatchPlan};
use crate::error::{EmbeddingResult, Error};
use crate::model::{
    BatchEmbeddings, EmbeddingModel, ModelEmbedding, ModelFuture, ModelId, PreparedInput,
};
use crate::orchestrator::{panic_message, CatchPanic};
use crate::span_ctx::DEVICE_TIME_FIELD;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{Instrument, Span};

/// A model whose calls are batched (see the module docs). The pipeline wraps
/// each model its [`BatchPlan`] batches in one; wrap a model yourself to batch
/// it outside a pipeline.
///
/// Its runner task starts on the current tokio runtime at the first call, and
/// again on a later call if that runtime has gone.
pub struct BatchedModel {
    inner: Arc<dyn EmbeddingModel>,
    config: BatchConfig,
    queue: Mutex<Option<mpsc::Sender<Job>>>,
}

/// One request's input waiting for its batch.
struct Job {
    input: PreparedInput,
    /// The request's `model` span, to link the batch with.
    span: Option<tracing::Id>,
    queued: Instant,
    reply: oneshot::Sender<EmbeddingResult<Served>>,
}

/// One request's share of a batch's result.
struct Served {
    embedding: ModelEmbedding,
    device_ns: Option<u64>,
}

impl BatchedModel {
    /// Batches `inner`'s calls as `config` says.
    pub fn new(inner: Arc<dyn EmbeddingModel>, config: BatchConfig) -> Self {
        Self {
            inner,
            config,
            queue: Mutex::new(None),
        }
    }

    /// How it batches.
    pub fn config(&self) -> BatchConfig {
        self.config
    }

    fn error(&self, reason: impl Into<std::borrow::Cow<'static, str>>) -> Error {
        Error::Model {
            model: self.inner.model_id().clone(),
            reason: reason.into(),
        }
    }

    /// The queue's sending end, starting the runner when there is none (or
    /// its runtime has gone).
    fn sender(&self) -> EmbeddingResult<mpsc::Sender<Job>> {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(tx) = queue.as_ref().filter(|tx| !tx.is_closed()) {
            return Ok(tx.clone());
        }
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| self.error("batching needs a tokio runtime"))?;
        let (tx, rx) = mpsc::channel(self.config.queue_capacity());
        let runner = run(self.inner.clone(), self.config, rx);
        // Spawned with no subscriber: the runner outlives the request whose
        // call started it, so its task span (tokio's, with `tokio_unstable`)
        // must not become a child of that request's model span. Its batch
        // spans are made later, under the worker thread's subscriber.
        tracing::dispatcher::with_default(&tracing::Dispatch::none(), || runtime.spawn(runner));
        *queue = Some(tx.clone());
        Ok(tx)
    }

    /// Queues `input` for the next batch; the answer comes on the receiver.
    fn submit(
        &self,
        input: PreparedInput,
        span: Option<tracing::Id>,
    ) -> EmbeddingResult<oneshot::Receiver<EmbeddingResult<Served>>> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            input,
            span,
            queued: Instant::now(),
            reply,
        };
        match self.sender()?.try_send(job) {
            Ok(()) => Ok(answer),
            Err(mpsc::error::TrySendError::Full(_)) => Err(self.error(format!(
                "its batch queue is full ({} inputs waiting)",
                self.config.queue_capacity()
            ))),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                Err(self.error("its batcher stopped before taking the input"))
            }
        }
    }
}

impl std::fmt::Debug for BatchedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchedModel")
            .field("model", &self.inner.model_id())
            .field("config", &self.config)
            .finish()
    }
}

impl EmbeddingModel for BatchedModel {
    fn model_id(&self) -> &ModelId {
        self.inner.model_id()
    }

    /// Waits for the batch that serves `input`; records the batch's device
    /// time (if any) as `gpu_ns` on the current (model) span.
    fn embed<'a>(&'a self, input: &'a PreparedInput) -> ModelFuture<'a> {
        Box::pin(async move {
            let span = Span::current();
            let answer = self.submit(input.clone(), span.id())?;
            let served = answer
                .await
                .map_err(|_| self.error("its batch ended without an answer"))??;
            if let Some(ns) = served.device_ns {
                span.record(DEVICE_TIME_FIELD, ns);
            }
            Ok(served.embedding)
        })
    }
}

impl BatchPlan {
    /// Wraps each model the plan batches in a [`BatchedModel`]; the others
    /// are returned as they are.
    pub(crate) fn apply(
        &self,
        models: Vec<Arc<dyn EmbeddingModel>>,
    ) -> Vec<Arc<dyn EmbeddingModel>> {
        models
            .into_iter()
            .map(|m| match self.get(m.model_id().as_str()) {
                Some(config) => Arc::new(BatchedModel::new(m, config)) as Arc<dyn EmbeddingModel>,
                None => m,
            })
            .collect()
    }
}

/// The runner: forms batches from the queue and runs them, one at a time,
/// until every sender is gone.
async fn run(model: Arc<dyn EmbeddingModel>, config: BatchConfig, mut queue: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(config.max_size());
    loop {
        // The oldest input whose request still waits.
        let first = loop {
            match queue.recv().await {
                None => return,
                Some(job) if job.reply.is_closed() => {}
                Some(job) => break job,
            }
        };
        let due = tokio::time::sleep_until(first.queued + config.max_wait());
        tokio::pin!(due);
        batch.push(first);
        while batch.len() < config.max_size() {
            tokio::select! {
                // Inputs already queued join before the wait is checked.
                biased;
                job = queue.recv() => match job {
                    Some(job) if job.reply.is_closed() => {}
                    Some(job) => batch.push(job),
                    None => break,
                },
                () = &mut due => break,
            }
        }
        // Requests gone while their batch formed (past their deadline) are
        // left out: nothing to compute for them, no span to link.
        batch.retain(|job| !job.reply.is_closed());
        if !batch.is_empty() {
            run_batch(&*model, &mut batch).await;
        }
    }
}

/// Runs one batch (non-empty) and answers each of its requests; leaves
/// `jobs` empty.
async fn run_batch(model: &dyn EmbeddingModel, jobs: &mut Vec<Job>) {
    let id = model.model_id();
    let oldest_wait = jobs.first().map_or(0, |j| j.queued.elapsed().as_micros()) as u64;
    let batch = tracing::info_span!(
        parent: None,
        "batch",
        model_id = id.as_str(),
        batch_size = jobs.len() as u64
    );
    let inputs = tracing::trace_span!(parent: &batch, "batch_wait", oldest_wait_us = oldest_wait)
        .in_scope(|| {
            link(&batch, jobs);
            jobs.iter().map(|j| j.input.clone()).collect::<Vec<_>>()
        });
    let outcome = forward(model, &inputs, jobs)
        .instrument(tracing::trace_span!(parent: &batch, "forward"))
        .instrument(batch.clone())
        .await;
    tracing::trace_span!(parent: &batch, "scatter").in_scope(|| scatter(id, &batch, outcome, jobs));
}

/// Links the batch span and each request's model span, both ways.
fn link(batch: &Span, jobs: &[Job]) {
    for model_span in jobs.iter().filter_map(|j| j.span.as_ref()) {
        batch.follows_from(model_span.clone());
        batch.with_subscriber(|(batch_id, dispatch)| {
            dispatch.record_follows_from(model_span, batch_id);
        });
    }
}

/// How a batch's call ended.
enum Outcome {
    /// It answered (a panic is an error).
    Done(EmbeddingResult<BatchEmbeddings>),
    /// Every request it served went away first.
    Abandoned,
}

/// The batched call, given up when no request waits for it any more.
async fn forward(
    model: &dyn EmbeddingModel,
    inputs: &[PreparedInput],
    jobs: &mut [Job],
) -> Outcome {
    let call = CatchPanic {
        inner: model.embed_batch(inputs),
    };
    tokio::select! {
        biased;
        answer = call => Outcome::Done(answer.unwrap_or_else(|payload| {
            Err(Error::Model {
                model: model.model_id().clone(),
                reason: format!("panicked: {}", panic_message(&*payload)).into(),
            })
        })),
        () = AllClosed(jobs) => Outcome::Abandoned,
    }
}

/// Hands each request its embedding, or the batch's error.
fn scatter(id: &ModelId, batch: &Span, outcome: Outcome, jobs: &mut Vec<Job>) {
    let out = match outcome {
        Outcome::Abandoned => {
            tracing::warn!(parent: batch, "batch abandoned: every request it served has gone");
            jobs.clear();
            return;
        }
        Outcome::Done(Ok(out)) if out.embeddings.len() == jobs.len() => out,
        Outcome::Done(Ok(out)) => {
            let reason = format!(
                "its batched call returned {} embeddings for {} inputs",
                out.embeddings.len(),
                jobs.len()
            );
            let e = Error::Model {
                model: id.clone(),
                reason: reason.into(),
            };
            return fail(batch, &e, jobs);
        }
        Outcome::Done(Err(e)) => return fail(batch, &e, jobs),
    };
    for (job, embedding) in jobs.drain(..).zip(out.embeddings) {
        // A request gone past its deadline no longer listens.
        let _ = job.reply.send(Ok(Served {
            embedding,
            device_ns: out.device_ns,
        }));
    }
}

/// Logs `e` in the batch span and sends it to every request of the batch.
fn fail(batch: &Span, e: &Error, jobs: &mut Vec<Job>) {
    tracing::error!(parent: batch, "{e}");
    for job in jobs.drain(..) {
        let _ = job.reply.send(Err(e.clone()));
    }
}

/// Ready when every job's request has stopped waiting for its answer.
struct AllClosed<'a>(&'a mut [Job]);

impl Future for AllClosed<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut open = false;
        for job in self.0.iter_mut() {
            open |= job.reply.poll_closed(cx).is_pending();
        }
        if open {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    }
}
