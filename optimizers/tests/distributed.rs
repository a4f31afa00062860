//! Distributed K-FAC's shared inverses against one process: two "processes" (threads with a
//! communicator over shared memory) spreading K-FAC's and SUA's inverses must train a
//! convolution net exactly as one process that computes them all, and every inverse must be
//! computed and sent by one process only.

mod common;

use std::sync::{Arc, Barrier, Mutex};

use candle_core::{DType, Device, Result, Tensor, Var};
use common::*;
use optimizers::curvature::shared::DistributeInverses;
use optimizers::{
    build, Channel, Communicator, ConvLayout, Hyper, LayerKind, LayerSpec, LayerStats,
    OptimizerKind, ParamSet,
};

/// `size` threads' collectives over shared memory, in f64 (exact for f32 values too).
struct Threads {
    rank: usize,
    size: usize,
    barrier: Arc<Barrier>,
    slots: Arc<Mutex<Vec<Vec<f64>>>>,
    /// Per rank, the lengths this rank contributed to each all-gather.
    gathered: Arc<Mutex<Vec<Vec<usize>>>>,
}

impl Threads {
    fn group(size: usize) -> Vec<Threads> {
        let barrier = Arc::new(Barrier::new(size));
        let slots = Arc::new(Mutex::new(vec![Vec::new(); size]));
        let gathered = Arc::new(Mutex::new(vec![Vec::new(); size]));
        (0..size)
            .map(|rank| Threads {
                rank,
                size,
                barrier: barrier.clone(),
                slots: slots.clone(),
                gathered: gathered.clone(),
            })
            .collect()
    }

    /// Every rank's `mine`, in rank order.
    fn exchange(&self, mine: Vec<f64>) -> Vec<Vec<f64>> {
        self.slots.lock().unwrap()[self.rank] = mine;
        self.barrier.wait();
        let all = self.slots.lock().unwrap().clone();
        self.barrier.wait();
        all
    }

    fn sum(&self, buf: &[f64]) -> Vec<f64> {
        let all = self.exchange(buf.to_vec());
        (0..buf.len())
            .map(|i| all.iter().map(|v| v[i]).sum())
            .collect()
    }
}

impl Communicator for Threads {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn all_reduce_sum_f32(&self, buf: &mut [f32], _: Channel) {
        let wide: Vec<f64> = buf.iter().map(|&x| f64::from(x)).collect();
        for (b, s) in buf.iter_mut().zip(self.sum(&wide)) {
            *b = s as f32;
        }
    }
    fn all_reduce_sum_f64(&self, buf: &mut [f64], _: Channel) {
        let s = self.sum(buf);
        buf.copy_from_slice(&s);
    }
    fn all_gather_f32(&self, mine: &[f32], c: Channel) -> Vec<f32> {
        let wide: Vec<f64> = mine.iter().map(|&x| f64::from(x)).collect();
        self.all_gather_f64(&wide, c)
            .into_iter()
            .map(|x| x as f32)
            .collect()
    }
    fn all_gather_f64(&self, mine: &[f64], _: Channel) -> Vec<f64> {
        self.gathered.lock().unwrap()[self.rank].push(mine.len());
        self.exchange(mine.to_vec()).concat()
    }
}

fn conv(name: &str, c_in: usize, c_out: usize, bias: bool) -> Result<LayerSpec> {
    let mut r = rng(c_in as u64 * 31 + c_out as u64);
    Ok(LayerSpec {
        name: name.into(),
        kind: LayerKind::Conv2d {
            c_in,
            c_out,
            kh: 3,
            kw: 3,
            stride: 1,
            padding: 1,
            layout: ConvLayout::ChannelsLast,
        },
        weight: Var::from_tensor(
            &randn(c_out, 9 * c_in, 0.1, DType::F32, &mut r)?.reshape((c_out, 3, 3, c_in))?,
        )?,
        bias: if bias {
            Some(Var::zeros(c_out, DType::F32, &Device::Cpu)?)
        } else {
            None
        },
    })
}

/// A BatchNorm-free net of three layers (two convolutions, one Linear), built afresh with the
/// same values on every call.
fn net() -> Result<ParamSet> {
    let mut r = rng(5);
    Ok(ParamSet {
        layers: vec![
            conv("conv1", 3, 8, true)?,
            conv("conv2", 8, 6, false)?,
            LayerSpec {
                name: "fc".into(),
                kind: LayerKind::Linear {
                    inputs: 24,
                    outputs: 5,
                },
                weight: Var::from_tensor(&randn(5, 24, 0.1, DType::F32, &mut r)?)?,
                bias: Some(Var::zeros(5, DType::F32, &Device::Cpu)?),
            },
        ],
        others: vec![],
    })
}

/// Step `step`'s statistics (M = 4 examples of T = 9 positions for the convolutions) and the
/// loss `Σ ⟨W, C⟩` whose gradient the step preconditions.
fn batch(params: &ParamSet, step: u64) -> Result<(Vec<LayerStats>, Tensor)> {
    let mut r = rng(100 + step);
    let (m, t) = (4, 9);
    let mut stats = Vec::new();
    let mut loss = Tensor::new(0f32, &Device::Cpu)?;
    for l in &params.layers {
        let (inputs, outputs, positions) = match l.kind {
            LayerKind::Conv2d { c_in, c_out, .. } => (9 * c_in, c_out, t),
            LayerKind::Linear { inputs, outputs } => (inputs, outputs, 1),
        };
        stats.push(LayerStats {
            a: randn(m * positions, inputs, 1.0, DType::F32, &mut r)?,
            g: randn(m * positions, outputs, 0.3, DType::F32, &mut r)?,
            batch: m,
            positions,
            has_bias: l.bias.is_some(),
        });
        let c = randn(1, l.weight.elem_count(), 1.0, DType::F32, &mut r)?;
        let w = l.weight.as_tensor().flatten_all()?.unsqueeze(0)?;
        loss = (loss + (w * c)?.sum_all()?)?;
        if let Some(b) = &l.bias {
            let c = randn(1, outputs, 1.0, DType::F32, &mut r)?.squeeze(0)?;
            loss = (loss + (b.as_tensor() * c)?.sum_all()?)?;
        }
    }
    Ok((stats, loss))
}

/// Every parameter after `steps` steps of `kind`, with `comm` when given.
fn train(kind: OptimizerKind, steps: u64, comm: Option<Threads>) -> Result<Vec<Vec<f32>>> {
    let params = net()?;
    let h = Hyper {
        t_cov: 1,
        t_inv: 2,
        damping: 0.01,
        distribute_inverses: DistributeInverses::On,
        ..Hyper::default()
    };
    let mut opt = build(kind, &params, &h).unwrap();
    if let Some(c) = comm {
        opt.set_communicator(Arc::new(c));
    }
    for step in 0..steps {
        let (stats, loss) = batch(&params, step)?;
        opt.step(&loss.backward()?, Some(&stats)).unwrap();
    }
    params
        .layers
        .iter()
        .flat_map(|l| std::iter::once(&l.weight).chain(&l.bias))
        .map(|v| v.as_tensor().flatten_all()?.to_vec1::<f32>())
        .collect()
}

#[test]
fn spread_inverses_train_exactly_as_one_process() -> Result<()> {
    for kind in [OptimizerKind::Kfac, OptimizerKind::KfacSua] {
        let alone = train(kind, 5, None)?;
        let group = Threads::group(2);
        let gathered = group[0].gathered.clone();
        let together: Vec<Vec<Vec<f32>>> = std::thread::scope(|s| {
            let runs: Vec<_> = group
                .into_iter()
                .map(|c| s.spawn(move || train(kind, 5, Some(c)).unwrap()))
                .collect();
            runs.into_iter().map(|r| r.join().unwrap()).collect()
        });
        for (rank, params) in together.iter().enumerate() {
            assert_eq!(
                params, &alone,
                "{kind:?}: process {rank} differs from one process"
            );
        }
        // Three refreshes (steps 0, 2, 4), each an all-gather of the inverses: every one of the
        // layers' inverses sent once, by one process, and each process sent some.
        let gathered = gathered.lock().unwrap().clone();
        let inverse_entries: usize = match kind {
            // (A: 27+1, 72, 24+1; G: 8, 6, 5), n² each.
            OptimizerKind::Kfac => [28, 72, 25, 8, 6, 5].iter().map(|n| n * n).sum(),
            // SUA's convolution input factors are the channel covariances (3, 8).
            _ => [3, 8, 25, 8, 6, 5].iter().map(|n| n * n).sum(),
        };
        // The statistics all-gathers are SKFAC's only: here every all-gather is an exchange
        // of inverses.
        for refresh in 0..3 {
            let sent: Vec<usize> = gathered.iter().map(|g| g[refresh]).collect();
            assert!(sent.iter().all(|&n| n > 0), "{kind:?}: {sent:?}");
            assert_eq!(sent.iter().sum::<usize>(), inverse_entries, "{kind:?}");
        }
    }
    Ok(())
}
