//! Queueing one call of a [`GpuModel`](super::GpuModel) on its stream:
//! the tokens staged in page-locked memory and copied, the kernels between
//! the call's `Launch` and `Done` marks with nothing of ours between them,
//! the outputs copied back, then the call handed to the resolver. Nothing
//! here waits for the device.

use super::error::GpuError;
use super::marks::Mark;
use super::model::{KernelProbe, Shared};
use super::resolver::{DevicePhases, Pending};
use super::workspace::{Held, Workspace};
use crate::reference::Pooling;
use cudarc::driver::{LaunchConfig, PushKernelArg};
use std::sync::PoisonError;
use std::time::Instant;
use tokio::sync::OwnedMutexGuard;

/// A queued call: its answer, and how long it waited for the device's
/// queueing lock.
pub(crate) struct Queued {
    pub(crate) pending: Pending<Held>,
    pub(crate) lock_ns: u64,
}

impl Shared {
    /// Queues the forward pass of `inputs` (already clipped to
    /// `max_tokens`, at least one token in all) with the model's buffers
    /// (`work`, held until the device is done with them); `span` gets the
    /// device time late if the caller stops waiting. If queueing fails, the
    /// stream is drained before the buffers are released, so no copy already
    /// queued outlives them.
    pub(crate) fn enqueue(
        &self,
        mut work: OwnedMutexGuard<Workspace>,
        inputs: &[&[u32]],
        span: &tracing::Span,
    ) -> Result<Queued, GpuError> {
        let mut marks = self.backend.resolver().source().take()?;
        match self.queue_call(&mut work, inputs, &mut marks) {
            Ok(lock_ns) => Ok(Queued {
                pending: self
                    .backend
                    .resolver()
                    .submit(marks, Some(work), span.clone()),
                lock_ns,
            }),
            Err(e) => {
                let _ = self.stream.synchronize();
                Err(e)
            }
        }
    }

    /// The copies, marks and launches of one call; returns the time spent
    /// waiting for the device's queueing lock.
    fn queue_call(
        &self,
        work: &mut Workspace,
        inputs: &[&[u32]],
        marks: &mut super::marks::Marks,
    ) -> Result<u64, GpuError> {
        let p = &self.weights.profile;
        let stream = &self.stream;
        let total: usize = inputs.iter().map(|t| t.len()).sum();
        let outputs = inputs.len() * p.out;
        work.reserve(self.backend.context(), stream, total, outputs, p.out)?;
        let staged = work
            .upload
            .as_mut_slice()
            .map_err(GpuError::driver("token staging"))?;
        let mut at = 0;
        for tokens in inputs {
            staged[at..at + tokens.len()].copy_from_slice(tokens);
            at += tokens.len();
        }
        // Every mark and operation of the call is queued under the device's
        // queueing lock, so no thread stalls between two of its marks while
        // the other models' threads contend for the driver (the stall would
        // be timed as upload, device or download time).
        let locking = Instant::now();
        let queueing = self.backend.queueing();
        let lock_ns = locking.elapsed().as_nanos() as u64;
        marks.record(Mark::Start, stream)?;
        // The slice is page-locked memory, so the copy runs after this call
        // returns: the buffer stays untouched until the resolver hands the
        // workspace back, after the `Copied` mark (see `Workspace`).
        stream
            .memcpy_htod(&staged[..total], &mut work.tokens.slice_mut(..total))
            .map_err(GpuError::driver("token upload"))?;

        let width = p.out as i32;
        let pool_max = i32::from(p.pooling == Pooling::Max);
        let top_k = p.top_k.map_or(-1, |k| i32::try_from(k).unwrap_or(i32::MAX));
        let bs = self.options.block_size;
        let pool_cfg = LaunchConfig {
            grid_dim: (1, 1, 1),
            block_dim: ((p.out as u32).next_multiple_of(32), 1, 1),
            shared_mem_bytes: 0,
        };

        if let Some([outer, _, _]) = &work.probe {
            outer.start(stream)?;
        }
        marks.record(Mark::Launch, stream)?;
        if let Some([_, k1, _]) = &work.probe {
            k1.start(stream)?;
        }
        let mut first = 0;
        for tokens in inputs {
            let rows = tokens.len();
            if rows > 0 {
                let rows_i32 = rows as i32; // rows <= max_tokens, far below i32::MAX
                let rows_cfg = LaunchConfig {
                    grid_dim: ((rows as u32).div_ceil(bs), 1, 1),
                    block_dim: (bs, 1, 1),
                    shared_mem_bytes: 0,
                };
                let own_tokens = work.tokens.slice(first..first + rows);
                let mut own_rows = work
                    .rows_out
                    .slice_mut(first * p.out..(first + rows) * p.out);
                let mut rows_launch = stream.launch_builder(self.backend.rows_kernel());
                rows_launch
                    .arg(&own_tokens)
                    .arg(&rows_i32)
                    .arg(&self.table)
                    .arg(&self.params)
                    .arg(&self.shape)
                    .arg(&mut own_rows);
                // SAFETY: the arguments match `embed_rows` in kernels.cu in
                // order and type (u32*, int, float*, float*, ModelShape by
                // value, float*). The kernel reads this input's `rows` tokens
                // (its part of the upload above: `tokens` holds `total`),
                // table rows below `buckets` (the hash is taken modulo
                // `buckets`, and the table is buckets x dim), the packed
                // layers whose widths `shape` gives (uploaded from the same
                // weights), and writes rows x out floats into its own part of
                // `rows_out` (which holds total x out).
                unsafe { rows_launch.launch(rows_cfg) }
                    .map_err(GpuError::driver("kernel launch"))?;
            }
            first += rows;
        }
        if let Some([_, k1, k2]) = &work.probe {
            k1.stop(stream)?;
            k2.start(stream)?;
        }
        let mut first = 0;
        for (i, tokens) in inputs.iter().enumerate() {
            let rows = tokens.len();
            if rows > 0 {
                let rows_i32 = rows as i32;
                let own_rows = work.rows_out.slice(first * p.out..(first + rows) * p.out);
                let mut own_out = work.out.slice_mut(i * p.out..(i + 1) * p.out);
                let mut pool_launch = stream.launch_builder(self.backend.pool_kernel());
                pool_launch
                    .arg(&own_rows)
                    .arg(&rows_i32)
                    .arg(&width)
                    .arg(&pool_max)
                    .arg(&top_k)
                    .arg(&mut own_out);
                // SAFETY: the arguments match `pool_finish` (float*, int,
                // int, int, int, float*); it reads this input's rows x out
                // floats of `rows_out`, written by its row kernel before it
                // on the same stream, and writes `out` floats into this
                // input's part of `out` (which holds inputs x out); the block
                // has at least `out` threads and `out` <= MAX_WIDTH (checked
                // by `KernelShape::of`).
                unsafe { pool_launch.launch(pool_cfg) }
                    .map_err(GpuError::driver("kernel launch"))?;
            }
            first += rows;
        }
        if let Some([_, _, k2]) = &work.probe {
            k2.stop(stream)?;
        }
        marks.record(Mark::Done, stream)?;
        if let Some([outer, _, _]) = &work.probe {
            outer.stop(stream)?;
        }
        let landing = work
            .download
            .as_mut_slice()
            .map_err(GpuError::driver("result download"))?;
        // Page-locked too: the copy lands after this returns, and is read
        // only once the resolver has seen the `Copied` mark.
        stream
            .memcpy_dtoh(&work.out.slice(..outputs), &mut landing[..outputs])
            .map_err(GpuError::driver("result download"))?;
        marks.record(Mark::Copied, stream)?;
        drop(queueing);
        Ok(lock_ns)
    }

    /// The outputs of a call the device has finished, from the page-locked
    /// download buffer; with probes on, the call's probe is kept.
    pub(crate) fn collect(
        &self,
        work: &Workspace,
        inputs: &[&[u32]],
        phases: DevicePhases,
    ) -> Result<Vec<Vec<f32>>, GpuError> {
        let out = self.weights.profile.out;
        let host = work
            .download
            .as_slice()
            .map_err(GpuError::driver("result download"))?;
        let vectors = inputs
            .iter()
            .zip(host.chunks(out))
            .map(|(tokens, row)| {
                // Empty inputs ran no kernel: their vector stays zero.
                if tokens.is_empty() {
                    vec![0.0; out]
                } else {
                    row.to_vec()
                }
            })
            .collect();
        if let Some([outer, k1, k2]) = &work.probe {
            let probe = KernelProbe {
                gpu_ns: phases.device_ns,
                outer_ns: outer.elapsed_ns()?,
                kernels_ns: [k1.elapsed_ns()?, k2.elapsed_ns()?],
            };
            self.probes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(probe);
        }
        Ok(vectors)
    }
}
