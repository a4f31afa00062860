//! SKFAC in your own candle model: a small convnet written with candle-nn (NCHW, candle-nn's
//! layers, `candle_nn::Optimizer`), trained on real Fashion-MNIST with SKFAC-RS. Against the
//! plain candle-nn version only two things change: the layers come from a `Curvature`
//! (`curv.conv2d(..)` for `candle_nn::conv2d(..)`, `curv.linear(..)` for
//! `candle_nn::linear(..)`, same arguments, variables and checkpoints), and the optimizer is
//! `KfacOptimizer` instead of `candle_nn::SGD`.
//!
//! `cargo run --release --example own_model [-- --epochs 3 --train 12000 --data data]`
//! (the data comes from Debian's `dataset-fashion-mnist`: `bash scripts/setup.sh`).

use std::path::PathBuf;

use anyhow::Result;
use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{loss::cross_entropy, Conv2dConfig, Optimizer, VarBuilder, VarMap};
use harness::data::{self, ImageSet};
use models::nn::{Conv2d, Curvature, KfacOptimizer, KfacOptimizerConfig, Linear};
use optimizers::{OptimizerKind, Periods};
use rand::{seq::SliceRandom, SeedableRng};

/// Two 3×3 convolutions with 2×2 max-pooling, then one Linear layer; NCHW, as candle-nn.
struct ConvNet {
    c1: Conv2d,
    c2: Conv2d,
    fc: Linear,
}

impl ConvNet {
    fn new(curv: &Curvature, vb: VarBuilder) -> Result<Self> {
        let same = Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        Ok(ConvNet {
            c1: curv.conv2d(1, 16, 3, same, vb.pp("c1"))?,
            c2: curv.conv2d(16, 32, 3, same, vb.pp("c2"))?,
            fc: curv.linear(7 * 7 * 32, 10, vb.pp("fc"))?,
        })
    }
}

impl Module for ConvNet {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let x = self.c1.forward(x)?.relu()?.max_pool2d(2)?;
        let x = self.c2.forward(&x)?.relu()?.max_pool2d(2)?;
        self.fc.forward(&x.flatten_from(1)?)
    }
}

/// Images `idx` of `set` as an NCHW batch scaled to [0, 1], with their labels.
fn batch(set: &ImageSet, idx: &[usize], dev: &Device) -> Result<(Tensor, Tensor)> {
    let px: Vec<f32> = idx
        .iter()
        .flat_map(|&i| set.image(i))
        .map(|&p| p as f32 / 255.0)
        .collect();
    let y: Vec<u32> = idx.iter().map(|&i| set.labels[i] as u32).collect();
    let x = Tensor::from_vec(px, (idx.len(), set.height, set.width, set.channels), dev)?
        .permute((0, 3, 1, 2))?
        .contiguous()?;
    Ok((x, Tensor::new(y, dev)?))
}

/// What to train: epochs, training images, and where Fashion-MNIST goes.
pub struct Options {
    pub epochs: usize,
    pub train_images: usize,
    pub test_images: usize,
    pub data_dir: PathBuf,
}

/// Trains and returns, per epoch, the mean training loss and the test accuracy.
pub fn train(o: &Options) -> Result<Vec<(f64, f64)>> {
    data::fashion_mnist::obtain(&o.data_dir, None)?;
    let splits = data::load("fashion-mnist", &o.data_dir)?;
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let curv = Curvature::new();
    let net = ConvNet::new(&curv, VarBuilder::from_varmap(&varmap, DType::F32, &dev))?;
    // SKFAC-RS, statistics every 10 steps and inverses every 50; λ = 0.3 trains this problem.
    let mut config = KfacOptimizerConfig::new(OptimizerKind::SkfacRs, &curv);
    config.settings.step.lr = 0.05;
    config.settings.damping.damping = 0.3;
    config.settings.periods = Periods {
        t_cov: 10,
        t_inv: 50,
        ..Periods::default()
    };
    let mut opt = KfacOptimizer::new(varmap.all_vars(), config)?;
    let mut order: Vec<usize> = (0..o.train_images.min(splits.train.len())).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut history = Vec::new();
    for epoch in 1..=o.epochs {
        order.shuffle(&mut rng);
        let (mut loss_sum, mut steps) = (0.0, 0);
        for idx in order.chunks_exact(32) {
            let (x, y) = batch(&splits.train, idx, &dev)?;
            let loss = cross_entropy(&net.forward(&x)?, &y)?;
            opt.backward_step(&loss)?;
            loss_sum += loss.to_scalar::<f32>()? as f64;
            steps += 1;
        }
        let test: Vec<usize> = (0..o.test_images.min(splits.test.len())).collect();
        let mut correct = 0;
        for idx in test.chunks(500) {
            let (x, y) = batch(&splits.test, idx, &dev)?;
            let pred = net.forward(&x)?.argmax(D::Minus1)?;
            correct += pred
                .eq(&y)?
                .to_dtype(DType::U32)?
                .sum_all()?
                .to_scalar::<u32>()? as usize;
        }
        let (loss, acc) = (loss_sum / steps as f64, correct as f64 / test.len() as f64);
        println!(
            "epoch {epoch}: train loss {loss:.4}, test accuracy {:.2}%",
            100.0 * acc
        );
        history.push((loss, acc));
    }
    Ok(history)
}

#[allow(dead_code)] // the test includes this file for `train`
fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |flag: &str, default: &str| {
        let at = args.iter().position(|a| a == flag);
        at.and_then(|i| args.get(i + 1))
            .map_or(default.to_string(), |v| v.clone())
    };
    train(&Options {
        epochs: arg("--epochs", "3").parse()?,
        train_images: arg("--train", "12000").parse()?,
        test_images: 10_000,
        data_dir: arg("--data", "data").into(),
    })?;
    Ok(())
}
