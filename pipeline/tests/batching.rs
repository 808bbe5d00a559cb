//! The batcher on its own: requests in flight together share one batched call
//! up to the batch size, a lone request runs after the maximum wait, a full
//! queue refuses the extra input, an input whose request has gone is left
//! out, and faults (error, panic, hang) reach every
//! request of the batch while the pipeline keeps its deadline per request.

mod pipeline_support;

use hdrtrace_pipeline::{
    BatchConfig, BatchEmbeddings, BatchFuture, BatchPlan, BatchedModel, EmbeddingModel,
    EmbeddingPipeline, ModelFuture, ModelId, PipelineConfig, PreparedInput,
};
use pipeline_support::faults::{quiet_injected_panics, Fault, FaultPlan};
use pipeline_support::{fast_models, faults, names, Fast};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A fast model that records the size of every batched call.
struct Sizes {
    inner: Fast,
    sizes: Arc<Mutex<Vec<usize>>>,
}

impl EmbeddingModel for Sizes {
    fn model_id(&self) -> &ModelId {
        self.inner.model_id()
    }

    fn embed<'a>(&'a self, input: &'a PreparedInput) -> ModelFuture<'a> {
        self.inner.embed(input)
    }

    fn embed_batch<'a>(&'a self, inputs: &'a [PreparedInput]) -> BatchFuture<'a> {
        self.sizes.lock().unwrap().push(inputs.len());
        Box::pin(async move {
            let mut embeddings = Vec::new();
            for input in inputs {
                embeddings.push(self.inner.embed(input).await?);
            }
            Ok(BatchEmbeddings {
                embeddings,
                device_ns: None,
            })
        })
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn input(i: u32) -> PreparedInput {
    PreparedInput::new(vec![1, i, i + 7], 12)
}

fn sizes_model(config: BatchConfig) -> (Arc<BatchedModel>, Arc<Mutex<Vec<usize>>>) {
    let sizes = Arc::new(Mutex::new(Vec::new()));
    let model = Sizes {
        inner: Fast::new("Causal"),
        sizes: sizes.clone(),
    };
    (Arc::new(BatchedModel::new(Arc::new(model), config)), sizes)
}

#[test]
fn requests_in_flight_together_share_batches_up_to_the_size() {
    let (model, sizes) = sizes_model(BatchConfig::new(4, Duration::from_secs(5)).unwrap());
    let outputs = rt().block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..8 {
            let model = model.clone();
            set.spawn(async move { (i, model.embed(&input(i)).await.unwrap()) });
        }
        set.join_all().await
    });
    // Eight inputs, batches of four: two full batches, long before the wait.
    assert_eq!(*sizes.lock().unwrap(), [4, 4]);
    let direct = Fast::new("Causal");
    let rt = rt();
    for (i, got) in outputs {
        assert_eq!(
            got,
            rt.block_on(direct.embed(&input(i))).unwrap(),
            "input {i}"
        );
    }
}

#[test]
fn a_lone_request_runs_after_the_maximum_wait() {
    const WAIT: Duration = Duration::from_millis(60);
    let (model, sizes) = sizes_model(BatchConfig::new(32, WAIT).unwrap());
    let started = Instant::now();
    rt().block_on(model.embed(&input(1))).unwrap();
    let took = started.elapsed();
    assert!(took >= WAIT, "answered after {took:?}, before the wait");
    assert_eq!(*sizes.lock().unwrap(), [1]);
}

#[test]
fn an_input_whose_request_has_gone_is_left_out_of_its_batch() {
    let (model, sizes) = sizes_model(BatchConfig::new(8, Duration::from_millis(200)).unwrap());
    let answered = rt().block_on(async {
        let gone = tokio::spawn({
            let model = model.clone();
            async move { model.embed(&input(1)).await }
        });
        tokio::time::sleep(Duration::from_millis(30)).await;
        gone.abort();
        model.embed(&input(2)).await
    });
    assert!(answered.is_ok());
    // One batch, formed while the first request was still there, run with
    // the second input only.
    assert_eq!(*sizes.lock().unwrap(), [1]);
}

#[test]
fn a_full_queue_refuses_the_extra_input() {
    // A model that never answers holds the first batch; the queue holds two.
    let config = BatchConfig::new(1, Duration::ZERO)
        .unwrap()
        .with_queue_capacity(1)
        .unwrap();
    let hung = faults(&[("Code", Fault::Hang)]).apply(vec![Arc::new(Fast::new("Code"))]);
    let model = Arc::new(BatchedModel::new(hung[0].clone(), config));
    let err = rt().block_on(async {
        let running = tokio::spawn({
            let model = model.clone();
            async move { model.embed(&input(1)).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let queued = tokio::spawn({
            let model = model.clone();
            async move { model.embed(&input(2)).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let err = model.embed(&input(3)).await.unwrap_err().to_string();
        running.abort();
        queued.abort();
        err
    });
    assert!(
        err.contains("batch queue is full (1 inputs waiting)"),
        "{err}"
    );
}

fn batched_pipeline(plan: FaultPlan, deadline: Duration) -> Arc<EmbeddingPipeline> {
    let config = PipelineConfig {
        deadline,
        batching: BatchPlan::all(BatchConfig::new(8, Duration::from_millis(20)).unwrap()),
        ..PipelineConfig::default()
    };
    Arc::new(EmbeddingPipeline::with_config(plan.apply(fast_models()), config).unwrap())
}

/// Runs `n` requests at once on `rt`; returns their results.
fn concurrently(
    rt: &tokio::runtime::Runtime,
    p: &Arc<EmbeddingPipeline>,
    n: usize,
) -> Vec<hdrtrace_pipeline::EmbeddingResult<hdrtrace_pipeline::FusedEmbedding>> {
    rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..n {
            let p = p.clone();
            set.spawn(async move { p.embed(&format!("batched request {i}")).await });
        }
        set.join_all().await
    })
}

#[test]
fn errors_and_panics_fail_every_request_of_the_batch() {
    quiet_injected_panics();
    let plan = faults(&[("Code", Fault::Error), ("Sparse", Fault::Panic)]);
    let results = concurrently(&rt(), &batched_pipeline(plan, Duration::from_secs(5)), 6);
    for r in results {
        let fused = r.unwrap();
        assert_eq!(fused.models.len(), 10);
        assert_eq!(
            fused.failed,
            names(&["Code", "Sparse"]),
            "timed out: {:?}",
            fused.timed_out
        );
    }
}

#[test]
fn a_hung_batch_times_out_each_request_and_the_next_batch_still_runs() {
    let deadline = Duration::from_millis(150);
    let p = batched_pipeline(faults(&[("Semantic", Fault::Hang)]), deadline);
    // Twice on one runtime: the first hung batch is given up once its
    // requests are gone, so the second round's batch runs (and hangs) instead
    // of queueing behind it forever.
    let rt = rt();
    for _ in 0..2 {
        let started = Instant::now();
        for r in concurrently(&rt, &p, 4) {
            let fused = r.unwrap();
            assert_eq!(fused.models.len(), 11);
            assert_eq!(fused.timed_out, names(&["Semantic"]));
        }
        assert!(started.elapsed() < deadline * 10, "{:?}", started.elapsed());
    }
}
