//! Data-parallel communication as the optimizers need it, without tying the crate to MPI: a
//! training loop that runs on several processes hands its optimizer a [`Communicator`]
//! (the `skfac` harness implements one over MPI); a single process uses [`Local`].
//!
//! What each K-FAC-family variant exchanges (algorithms.md, "Distributed data parallel"):
//! K-FAC and SUA all-reduce (average) their factors' batch statistics; SKFAC all-gathers the
//! low-rank rows `Y` instead, so every process forms the same inverses from the global batch.
//! K-FAC and SUA may also spread their inverses over the processes and share them
//! ([`crate::curvature::shared`]).

use candle_core::{DType, Result, Tensor};

/// What a collective call carries, for accounting its time and bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// The gradient all-reduce of every step.
    Gradients,
    /// The K-FAC-family statistics exchange of a statistics step.
    Statistics,
    /// K-FAC's and SUA's inverses, each computed by one process, shared on a refresh.
    Inverses,
    /// Anything else (evaluation sums, process 0's decisions in a sweep).
    Other,
}

/// Seconds spent in collective calls and bytes this process contributed to them, per channel,
/// since the last [`Communicator::take_traffic`]. `*_seconds` is all the time in the calls;
/// `*_wait_seconds` the part spent waiting for the slowest process to arrive (load
/// imbalance, not transfer), where the communicator can tell them apart.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Traffic {
    /// [`Channel::Gradients`]: seconds in calls.
    pub gradient_seconds: f64,
    /// [`Channel::Gradients`]: seconds of those spent waiting.
    pub gradient_wait_seconds: f64,
    /// [`Channel::Gradients`]: bytes contributed.
    pub gradient_bytes: u64,
    /// [`Channel::Statistics`]: seconds in calls.
    pub statistics_seconds: f64,
    /// [`Channel::Statistics`]: seconds of those spent waiting.
    pub statistics_wait_seconds: f64,
    /// [`Channel::Statistics`]: bytes contributed.
    pub statistics_bytes: u64,
    /// [`Channel::Inverses`]: seconds in calls.
    pub inverse_seconds: f64,
    /// [`Channel::Inverses`]: seconds of those spent waiting (for the process with the most
    /// inverses to compute, most of all).
    pub inverse_wait_seconds: f64,
    /// [`Channel::Inverses`]: bytes contributed.
    pub inverse_bytes: u64,
    /// [`Channel::Other`]: seconds in calls (waiting not told apart).
    pub other_seconds: f64,
    /// [`Channel::Other`]: bytes contributed.
    pub other_bytes: u64,
}

impl Traffic {
    /// Adds one call's seconds (`wait` of them waiting) and bytes to its channel.
    pub fn record(&mut self, channel: Channel, seconds: f64, wait: f64, bytes: u64) {
        let (s, w, b) = match channel {
            Channel::Gradients => (
                &mut self.gradient_seconds,
                &mut self.gradient_wait_seconds,
                &mut self.gradient_bytes,
            ),
            Channel::Statistics => (
                &mut self.statistics_seconds,
                &mut self.statistics_wait_seconds,
                &mut self.statistics_bytes,
            ),
            Channel::Inverses => (
                &mut self.inverse_seconds,
                &mut self.inverse_wait_seconds,
                &mut self.inverse_bytes,
            ),
            Channel::Other => (&mut self.other_seconds, &mut 0.0, &mut self.other_bytes),
        };
        *s += seconds;
        *w += wait;
        *b += bytes;
    }
}

/// Collective operations over the processes of one data-parallel job. Every process must make
/// the same calls in the same order with buffers of the agreed sizes.
pub trait Communicator: Send + Sync {
    /// This process's index, `0..size`.
    fn rank(&self) -> usize;
    /// Number of processes.
    fn size(&self) -> usize;
    /// Element-wise sum over all processes, in place; every process passes the same length.
    fn all_reduce_sum_f32(&self, buf: &mut [f32], channel: Channel);
    /// [`Communicator::all_reduce_sum_f32`] in f64.
    fn all_reduce_sum_f64(&self, buf: &mut [f64], channel: Channel);
    /// Every process's buffer (lengths may differ), concatenated in rank order.
    fn all_gather_f32(&self, mine: &[f32], channel: Channel) -> Vec<f32>;
    /// [`Communicator::all_gather_f32`] in f64.
    fn all_gather_f64(&self, mine: &[f64], channel: Channel) -> Vec<f64>;
    /// The traffic since the last call, and resets it.
    fn take_traffic(&self) -> Traffic {
        Traffic::default()
    }

    /// Ends every process of the job: one process failing alone would leave the others
    /// waiting in a collective call forever.
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}

/// One process: every collective is the identity.
#[derive(Clone, Copy, Debug, Default)]
pub struct Local;

impl Communicator for Local {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn all_reduce_sum_f32(&self, _: &mut [f32], _: Channel) {}
    fn all_reduce_sum_f64(&self, _: &mut [f64], _: Channel) {}
    fn all_gather_f32(&self, mine: &[f32], _: Channel) -> Vec<f32> {
        mine.to_vec()
    }
    fn all_gather_f64(&self, mine: &[f64], _: Channel) -> Vec<f64> {
        mine.to_vec()
    }
}

/// The mean over all processes of a tensor of the same shape on each. Other dtypes than f64
/// travel as f32.
pub fn all_reduce_mean(comm: &dyn Communicator, t: &Tensor, channel: Channel) -> Result<Tensor> {
    let p = comm.size();
    if p == 1 {
        return Ok(t.clone());
    }
    let shape = t.shape().clone();
    match t.dtype() {
        DType::F64 => {
            let mut v = t.flatten_all()?.to_vec1::<f64>()?;
            comm.all_reduce_sum_f64(&mut v, channel);
            v.iter_mut().for_each(|x| *x /= p as f64);
            Tensor::from_vec(v, shape, t.device())
        }
        _ => {
            let mut v = t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
            comm.all_reduce_sum_f32(&mut v, channel);
            v.iter_mut().for_each(|x| *x /= p as f32);
            Tensor::from_vec(v, shape, t.device())?.to_dtype(t.dtype())
        }
    }
}

/// The rows `[n_i, d]` of every process stacked in rank order: `[Σ n_i, d]`. Other dtypes
/// than f64 travel as f32.
pub fn all_gather_rows(comm: &dyn Communicator, t: &Tensor, channel: Channel) -> Result<Tensor> {
    if comm.size() == 1 {
        return Ok(t.clone());
    }
    let d = t.dim(1)?;
    match t.dtype() {
        DType::F64 => {
            let v = comm.all_gather_f64(&t.flatten_all()?.to_vec1::<f64>()?, channel);
            let n = v.len() / d;
            Tensor::from_vec(v, (n, d), t.device())
        }
        _ => {
            let mine = t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
            let v = comm.all_gather_f32(&mine, channel);
            let n = v.len() / d;
            Tensor::from_vec(v, (n, d), t.device())?.to_dtype(t.dtype())
        }
    }
}
