//! The K-FAC family's inverse and precondition stages on the layer shapes of ResNet-34 (CIFAR)
//! at batch 32: `just bench` (or `RAYON_NUM_THREADS=2 cargo bench -p harness --bench curvature`).
//!
//! The statistics are real: one capturing forward/backward pass of ResNet-34 on a random batch
//! gives every layer's `A` and `G`. Layers of the same shape cost the same, so each distinct
//! shape is timed once (median of several runs; one run for K-FAC's large eigendecompositions)
//! and weighted by how many layers have it. Ratios are of totals measured in this one run.

use std::collections::BTreeMap;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::loss::cross_entropy;
use models::{Ctx, ModelConfig};
use optimizers::curvature::{Approx, Block, BlockOptions, DenseMethod, WoodburyMode};
use optimizers::{LayerSpec, LayerStats, Local};
use rand::SeedableRng;

const BATCH: usize = 32;

struct Shape {
    spec: LayerSpec,
    stats: LayerStats,
    count: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Seconds for `f`, the median of `runs`.
fn time(runs: usize, mut f: impl FnMut()) -> f64 {
    median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

fn shapes() -> Vec<Shape> {
    let dev = Device::Cpu;
    let cfg = ModelConfig {
        input: (32, 32, 3),
        classes: 10,
        seed: 0,
    };
    let net = models::build("resnet34", &cfg, &dev).expect("resnet34 builds");
    let x = Tensor::randn(0f32, 1.0, (BATCH, 32, 32, 3), &dev).unwrap();
    let y = Tensor::from_vec(
        (0..BATCH as u32).map(|i| i % 10).collect::<Vec<_>>(),
        BATCH,
        &dev,
    )
    .unwrap();
    let logits = net.forward(&x, &Ctx::CAPTURE).unwrap();
    let grads = cross_entropy(&logits, &y).unwrap().backward().unwrap();
    let stats = net.take_stats(&grads).unwrap();
    let mut by_shape: BTreeMap<(Vec<usize>, Vec<usize>, bool), Shape> = BTreeMap::new();
    for (spec, st) in net.param_set().layers.into_iter().zip(stats) {
        let key = (st.a.dims().to_vec(), st.g.dims().to_vec(), st.has_bias);
        by_shape
            .entry(key)
            .and_modify(|s| s.count += 1)
            .or_insert(Shape {
                spec,
                stats: st,
                count: 1,
            });
    }
    by_shape.into_values().collect()
}

struct Variant {
    label: &'static str,
    approx: Approx,
    woodbury: WoodburyMode,
}

fn main() {
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all".into());
    println!("ResNet-34 (CIFAR) layer shapes, batch {BATCH}, {threads} thread(s)");
    let shapes = shapes();
    let layers: usize = shapes.iter().map(|s| s.count).sum();
    println!(
        "{layers} preconditioned layers in {} distinct shapes\n",
        shapes.len()
    );

    let variants = [
        Variant {
            label: "kfac",
            approx: Approx::Kfac,
            woodbury: WoodburyMode::Applied,
        },
        Variant {
            label: "skfac-rs",
            approx: Approx::ReduceSum,
            woodbury: WoodburyMode::Applied,
        },
        Variant {
            label: "skfac-rs formed",
            approx: Approx::ReduceSum,
            woodbury: WoodburyMode::Formed,
        },
        Variant {
            label: "skfac-ss s'=1",
            approx: Approx::Subsample(1),
            woodbury: WoodburyMode::Applied,
        },
        Variant {
            label: "skfac-ss s'=1 formed",
            approx: Approx::Subsample(1),
            woodbury: WoodburyMode::Formed,
        },
        Variant {
            label: "skfac-ss s'=8",
            approx: Approx::Subsample(8),
            woodbury: WoodburyMode::Applied,
        },
        Variant {
            label: "skfac-ss s'=8 formed",
            approx: Approx::Subsample(8),
            woodbury: WoodburyMode::Formed,
        },
    ];
    println!(
        "{:<28} {:>6} {:>14} {:>16}",
        "layer shape (A rows x cols)", "count", "variant", "inverse / precond ms"
    );
    let mut inverse = vec![0.0; variants.len()];
    let mut precondition = vec![0.0; variants.len()];
    for s in &shapes {
        let v = Tensor::randn(0f32, 1.0, s.stats.g.dim(1).unwrap(), &Device::Cpu)
            .and_then(|_| {
                let cols = s.stats.a.dim(1).unwrap() + usize::from(s.stats.has_bias);
                Tensor::randn(0f32, 1.0, (s.stats.g.dim(1).unwrap(), cols), &Device::Cpu)
            })
            .unwrap();
        for (i, var) in variants.iter().enumerate() {
            let opts = BlockOptions {
                dense: DenseMethod::Eigen,
                woodbury: var.woodbury,
                ..optimizers::Hyper::default().block_options()
            };
            let mut b = Block::new(s.spec.clone(), var.approx, opts);
            let rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
            b.observe(&s.stats, 0.0, &rng, &Local).unwrap();
            let n = s.stats.a.dim(1).unwrap();
            let runs = if var.approx == Approx::Kfac && n > 1000 {
                1
            } else {
                5
            };
            let inv = time(runs, || {
                b.refresh(1e-3).expect("refresh");
            });
            let pre = time(5, || {
                b.precondition(&v).unwrap().unwrap();
            });
            inverse[i] += inv * s.count as f64;
            precondition[i] += pre * s.count as f64;
            println!(
                "{:<28} {:>6} {:>22} {:>9.2} / {:>7.2}",
                format!("{:?} x {:?}", s.stats.a.dims(), s.stats.g.dims()[1]),
                s.count,
                var.label,
                inv * 1e3,
                pre * 1e3
            );
        }
    }
    println!("\ntotals over all {layers} layers (one refresh, one preconditioning):");
    for (i, var) in variants.iter().enumerate() {
        println!(
            "  {:<22} inverse {:>10.1} ms   precondition {:>8.1} ms",
            var.label,
            inverse[i] * 1e3,
            precondition[i] * 1e3
        );
    }
    let k = inverse[0];
    println!("\ninverse-stage speed-up over kfac (eigendecomposition):");
    for (i, var) in variants.iter().enumerate().skip(1) {
        if var.woodbury == WoodburyMode::Applied {
            println!("  {:<22} {:>8.1}x", var.label, k / inverse[i]);
        }
    }
    println!("precondition, formed / applied (time with the n x n inverse over time without):");
    for i in (1..variants.len()).step_by(2) {
        println!(
            "  {:<22} {:>8.2}x   (refresh incl. forming: {:.1} ms vs {:.1} ms)",
            variants[i].label,
            precondition[i + 1] / precondition[i],
            inverse[i + 1] * 1e3,
            inverse[i] * 1e3
        );
    }
    let _ = DType::F32;
}
