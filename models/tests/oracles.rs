//! Oracle tests for the instrumented layers: our im2col convolution against candle's built-in
//! `conv2d`, captured `A`/`G` against the weight gradient (`∇W = GᵀA/M`), and whole-network
//! gradients against finite differences.

use candle_core::{DType, Device, Result, Tensor, Var, D};
use models::layers::{BatchNorm, Conv2d, Linear};
use models::ops::{max_pool2d, Window};
use models::{Builder, Ctx, Module, Network};

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

fn max_abs(a: &Tensor) -> f64 {
    a.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

/// A single-layer network so the layer's statistics can be taken through `Network`.
struct One<M: Module>(M);
impl<M: Module> Module for One<M> {
    fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        self.0.forward(x, ctx)
    }
}

fn conv_net(
    dtype: DType,
    c_in: usize,
    c_out: usize,
    k: usize,
    stride: usize,
    pad: usize,
    bias: bool,
) -> Result<Network> {
    let mut b = Builder::with_dtype(3, &Device::Cpu, dtype);
    let conv = b.conv("conv", c_in, c_out, k, stride, pad, bias)?;
    Ok(Network::from_parts("conv", Box::new(One(conv)), b))
}

/// Conv geometries covering stride, padding, 1x1 and bias.
const CASES: [(usize, usize, usize, usize, usize, bool); 5] = [
    (3, 4, 3, 1, 1, true),
    (3, 5, 3, 2, 1, false),
    (4, 6, 1, 2, 0, true),
    (2, 3, 5, 1, 2, true),
    (4, 4, 1, 1, 0, false),
];

#[test]
fn conv_matches_candle_conv2d_forward_and_gradients() -> Result<()> {
    let dev = Device::Cpu;
    for (c_in, c_out, k, stride, pad, bias) in CASES {
        let net = conv_net(DType::F32, c_in, c_out, k, stride, pad, bias)?;
        let ps = net.param_set();
        let layer = &ps.layers[0];
        // 9x9 input: with stride 2 the windows tile it exactly. Candle 0.11's conv2d backward
        // (conv_transpose2d without output padding) returns a wrongly shaped dX otherwise; the
        // finite-difference test below covers the uneven geometries.
        let x = Var::from_tensor(&Tensor::randn(0f32, 1., (2, 9, 9, c_in), &dev)?)?;
        let ours = net.forward(x.as_tensor(), &Ctx::TRAIN)?;
        // Candle's reference on NCHW with an OIHW kernel.
        let w_oihw = layer.weight.as_tensor().permute((0, 3, 1, 2))?;
        let mut theirs = x.as_tensor().permute((0, 3, 1, 2))?.contiguous()?.conv2d(
            &w_oihw.contiguous()?,
            pad,
            stride,
            1,
            1,
        )?;
        if let Some(b) = &layer.bias {
            theirs = theirs.broadcast_add(&b.as_tensor().reshape((1, c_out, 1, 1))?)?;
        }
        let theirs = theirs.permute((0, 2, 3, 1))?;
        assert_eq!(ours.dims(), theirs.dims());
        let d = max_abs_diff(&ours, &theirs);
        assert!(
            d < 1e-4,
            "forward {c_in}->{c_out} k{k} s{stride} p{pad}: {d}"
        );

        // Same upstream gradient through both; compare dX, dW and db.
        let up = Tensor::randn(0f32, 1., ours.shape(), &dev)?;
        let g1 = (&ours * &up)?.sum_all()?.backward()?;
        let g2 = (&theirs * &up)?.sum_all()?.backward()?;
        let mut pairs = vec![(x.as_tensor(), "dX"), (layer.weight.as_tensor(), "dW")];
        if let Some(b) = &layer.bias {
            pairs.push((b.as_tensor(), "db"));
        }
        for (t, what) in pairs {
            let (a, b) = (
                g1.get(t).expect("our grad"),
                g2.get(t).expect("candle grad"),
            );
            let d = max_abs_diff(a, b) / max_abs(b).max(1.0);
            assert!(
                d < 1e-4,
                "{what} {c_in}->{c_out} k{k} s{stride} p{pad}: {d}"
            );
        }
    }
    Ok(())
}

#[test]
fn captured_a_and_g_reproduce_the_conv_weight_gradient() -> Result<()> {
    let dev = Device::Cpu;
    for (c_in, c_out, k, stride, pad, bias) in CASES {
        let net = conv_net(DType::F64, c_in, c_out, k, stride, pad, bias)?;
        let m = 3;
        let x = Tensor::randn(0f64, 1., (m, 7, 6, c_in), &dev)?;
        let out = net.forward(&x, &Ctx::CAPTURE)?;
        // A non-trivial loss: a weighted sum of squares, averaged over the batch like a mean loss.
        let target = Tensor::randn(0f64, 1., out.shape(), &dev)?;
        let loss = ((&out - &target)?.sqr()?.sum_all()? / m as f64)?;
        let grads = loss.backward()?;
        let stats = net.take_stats(&grads)?;
        let s = &stats[0];
        let (_, ho, wo, _) = out.dims4()?;
        assert_eq!((s.batch, s.positions), (m, ho * wo));
        assert_eq!(s.a.dims(), &[m * ho * wo, k * k * c_in]);
        assert_eq!(s.g.dims(), &[m * ho * wo, c_out]);
        // [∇W | ∇b] = Gᵀ A_aug / M, summed over positions by the row product.
        let gw = (s.g.t()?.matmul(&s.a_augmented()?)? / m as f64)?;
        let layer = &net.param_set().layers[0];
        let dw = grads
            .get(layer.weight.as_tensor())
            .unwrap()
            .reshape((c_out, k * k * c_in))?;
        let expected = match &layer.bias {
            Some(b) => Tensor::cat(&[&dw, &grads.get(b.as_tensor()).unwrap().unsqueeze(1)?], 1)?,
            None => dw,
        };
        let d = max_abs_diff(&gw, &expected) / max_abs(&expected);
        assert!(d < 1e-10, "case {c_in}->{c_out} k{k} s{stride} p{pad}: {d}");
    }
    Ok(())
}

#[test]
fn captured_a_and_g_reproduce_the_linear_weight_gradient() -> Result<()> {
    let dev = Device::Cpu;
    for bias in [true, false] {
        let mut b = Builder::with_dtype(5, &dev, DType::F64);
        let l1 = b.linear("l1", 6, 5, bias)?;
        let l2 = b.linear("l2", 5, 4, true)?;
        struct Two(Linear, Linear);
        impl Module for Two {
            fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
                self.1.forward(&self.0.forward(x, ctx)?.tanh()?, ctx)
            }
        }
        let net = Network::from_parts("two", Box::new(Two(l1, l2)), b);
        let m = 7;
        let x = Tensor::randn(0f64, 1., (m, 6), &dev)?;
        let y = Tensor::from_vec((0..m as u32).map(|i| i % 4).collect::<Vec<_>>(), m, &dev)?;
        let logits = net.forward(&x, &Ctx::CAPTURE)?;
        let grads = candle_nn::loss::cross_entropy(&logits, &y)?.backward()?;
        let stats = net.take_stats(&grads)?;
        for (spec, s) in net.param_set().layers.iter().zip(&stats) {
            let gw = (s.g.t()?.matmul(&s.a_augmented()?)? / m as f64)?;
            let mut parts = vec![grads.get(spec.weight.as_tensor()).unwrap().clone()];
            if let Some(b) = &spec.bias {
                parts.push(grads.get(b.as_tensor()).unwrap().unsqueeze(1)?);
            }
            let expected = Tensor::cat(&parts, 1)?;
            let d = max_abs_diff(&gw, &expected) / max_abs(&expected);
            assert!(d < 1e-12, "{}: {d}", spec.name);
            // G rows are per-example gradients: M times the batch-mean gradient rows.
            assert_eq!(s.g.dims(), &[m, spec.kind.outputs()]);
        }
    }
    Ok(())
}

#[test]
fn statistics_are_only_captured_when_asked() -> Result<()> {
    let net = conv_net(DType::F32, 2, 3, 3, 1, 1, false)?;
    let x = Tensor::randn(0f32, 1., (2, 5, 5, 2), &Device::Cpu)?;
    let grads = net.forward(&x, &Ctx::TRAIN)?.sum_all()?.backward()?;
    assert!(
        net.take_stats(&grads).is_err(),
        "no capture without Ctx::CAPTURE"
    );
    // Capturing does not change the output, up to rounding: capture multiplies the whole
    // im2col matrix, training may sum the same products in another order (here over the
    // classes of valid taps).
    let a = net.forward(&x, &Ctx::TRAIN)?;
    let b = net.forward(&x, &Ctx::CAPTURE)?;
    assert!(max_abs_diff(&a, &b) <= 1e-5 * max_abs(&a));
    net.clear_stats();
    Ok(())
}

/// A small network with every op kind (conv with stride, BatchNorm, max-pool, Linear),
/// whose gradient is checked against central finite differences in f64.
struct Tiny {
    conv: Conv2d,
    bn: BatchNorm,
    fc: Linear,
}

impl Module for Tiny {
    fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        let h = self.bn.forward(&self.conv.forward(x, ctx)?, ctx)?.tanh()?;
        let h = max_pool2d(&h, Window::POOL_2X2)?;
        self.fc.forward(&h.flatten_from(1)?, ctx)
    }
}

#[test]
fn network_gradients_match_finite_differences() -> Result<()> {
    let dev = Device::Cpu;
    let mut b = Builder::with_dtype(9, &dev, DType::F64);
    let conv = b.conv("conv", 2, 3, 3, 2, 1, true)?;
    let bn = b.batchnorm("bn", 3)?;
    let fc = b.linear("fc", 2 * 2 * 3, 4, true)?;
    let net = Network::from_parts("tiny", Box::new(Tiny { conv, bn, fc }), b);
    let x = Tensor::randn(0f64, 1., (3, 8, 8, 2), &dev)?;
    let y = Tensor::from_vec(vec![0u32, 3, 1], 3, &dev)?;
    let loss_of = |net: &Network| -> Result<f64> {
        candle_nn::loss::cross_entropy(&net.forward(&x, &Ctx::TRAIN)?, &y)?.to_scalar::<f64>()
    };
    let grads = candle_nn::loss::cross_entropy(&net.forward(&x, &Ctx::TRAIN)?, &y)?.backward()?;
    let eps = 1e-6;
    for p in net.param_set().all() {
        let g = grads
            .get(p.var.as_tensor())
            .expect("gradient")
            .flatten_all()?
            .to_vec1::<f64>()?;
        let w0 = p.var.as_tensor().flatten_all()?.to_vec1::<f64>()?;
        for i in (0..w0.len()).step_by((w0.len() / 5).max(1)) {
            let mut w = w0.clone();
            w[i] += eps;
            p.var
                .set(&Tensor::from_vec(w.clone(), p.var.shape(), &dev)?)?;
            let up = loss_of(&net)?;
            w[i] -= 2.0 * eps;
            p.var.set(&Tensor::from_vec(w, p.var.shape(), &dev)?)?;
            let down = loss_of(&net)?;
            p.var
                .set(&Tensor::from_vec(w0.clone(), p.var.shape(), &dev)?)?;
            let fd = (up - down) / (2.0 * eps);
            assert!(
                (fd - g[i]).abs() < 1e-6 * (1.0 + fd.abs()),
                "{}[{i}]: fd {fd} vs {}",
                p.name,
                g[i]
            );
        }
    }
    Ok(())
}

#[test]
fn batchnorm_matches_its_definition_and_tracks_running_statistics() -> Result<()> {
    let dev = Device::Cpu;
    let mut b = Builder::with_dtype(1, &dev, DType::F64);
    let bn = b.batchnorm("bn", 3)?;
    let net = Network::from_parts("bn", Box::new(One(bn)), b);
    let x = Tensor::randn(0f64, 1., (4, 2, 2, 3), &dev)?.affine(3.0, 1.0)?;
    let rows = x.reshape((16, 3))?;
    let y = net.forward(&x, &Ctx::TRAIN)?.reshape((16, 3))?;
    // Per channel: zero mean and unit biased variance (up to eps = 1e-5).
    assert!(max_abs(&y.mean(0)?) < 1e-12);
    assert!(max_abs(&(y.sqr()?.mean(0)? - 1.0)?) < 1e-4);
    // Running statistics moved 10% toward the batch mean and the unbiased batch variance.
    let mean = rows.mean(0)?;
    let unbiased = (rows.broadcast_sub(&mean)?.sqr()?.sum(0)? / 15.0)?;
    let buffers = net.buffers();
    assert_eq!(buffers[0].name, "bn.running_mean");
    assert!(max_abs_diff(buffers[0].var.as_tensor(), &(&mean * 0.1)?) < 1e-12);
    assert!(max_abs_diff(buffers[1].var.as_tensor(), &((unbiased * 0.1)? + 0.9)?) < 1e-12);
    // Evaluation normalises with the running statistics.
    let ev = net.forward(&x, &Ctx::EVAL)?.reshape((16, 3))?;
    let expected = rows
        .broadcast_sub(buffers[0].var.as_tensor())?
        .broadcast_div(&(buffers[1].var.as_tensor() + 1e-5)?.sqrt()?)?;
    assert!(max_abs_diff(&ev, &expected) < 1e-12);
    Ok(())
}

#[test]
fn every_model_builds_and_trains_one_step_shape() -> Result<()> {
    let dev = Device::Cpu;
    for (name, input, classes, batch) in [
        ("mlp", (28, 28, 1), 10, 4),
        ("resnet8", (32, 32, 3), 10, 2),
        ("resnet20", (32, 32, 3), 10, 2),
        ("vgg11", (32, 32, 3), 10, 2),
        ("resnet34", (32, 32, 3), 10, 2),
    ] {
        let net = models::build(
            name,
            &models::ModelConfig {
                input,
                classes,
                seed: 0,
            },
            &dev,
        )
        .unwrap();
        let x = Tensor::randn(0f32, 1., (batch, input.0, input.1, input.2), &dev)?;
        let logits = net.forward(&x, &Ctx::CAPTURE)?;
        assert_eq!(logits.dims(), &[batch, classes], "{name}");
        let grads = logits.log_sum_exp(D::Minus1)?.mean_all()?.backward()?;
        for p in net.param_set().all() {
            assert!(
                grads.get(p.var.as_tensor()).is_some(),
                "{name}: no gradient for {}",
                p.name
            );
        }
        let stats = net.take_stats(&grads)?;
        assert_eq!(stats.len(), net.param_set().layers.len());
    }
    assert!(models::build(
        "resnet9",
        &models::ModelConfig {
            input: (32, 32, 3),
            classes: 10,
            seed: 0
        },
        &dev
    )
    .err()
    .unwrap()
    .to_string()
    .contains("valid choices"));
    Ok(())
}

#[test]
fn resnet50_runs_forward_and_backward_at_imagenet_shape() -> Result<()> {
    let dev = Device::Cpu;
    let net = models::build(
        "resnet50",
        &models::ModelConfig {
            input: (224, 224, 3),
            classes: 1000,
            seed: 0,
        },
        &dev,
    )
    .unwrap();
    let ps = net.param_set();
    // torchvision's ResNet-50 has 25,557,032 parameters (BatchNorm included, running stats not).
    assert_eq!(ps.num_parameters(), 25_557_032);
    assert_eq!(ps.layers.len(), 54, "53 convolutions and the classifier");
    let x = Tensor::randn(0f32, 1., (1, 224, 224, 3), &dev)?;
    let logits = net.forward(&x, &Ctx::TRAIN)?;
    assert_eq!(logits.dims(), &[1, 1000]);
    let y = Tensor::new(&[7u32], &dev)?;
    let grads = candle_nn::loss::cross_entropy(&logits, &y)?.backward()?;
    assert!(grads.get(ps.layers[0].weight.as_tensor()).is_some());
    Ok(())
}

#[test]
fn parameter_counts_match_the_reference_architectures() {
    let dev = Device::Cpu;
    let count = |name: &str| {
        models::build(
            name,
            &models::ModelConfig {
                input: (32, 32, 3),
                classes: 10,
                seed: 0,
            },
            &dev,
        )
        .unwrap()
        .param_set()
        .num_parameters()
    };
    // He et al. 2016, Table 6: ResNet-20 has 0.27M parameters. By hand, with option A:
    // stem 432 + 32, stage 1 6x2304 + 6x32, stage 2 4608 + 5x9216 + 6x64,
    // stage 3 18432 + 5x36864 + 6x128, classifier 650.
    assert_eq!(count("resnet20"), 269_722);
    // ResNet-8 (n = 1): 432 + 32 + 2x2304 + 64 + 4608 + 9216 + 128 + 18432 + 36864 + 256 + 650.
    assert_eq!(count("resnet8"), 75_290);
    // kuangliu/pytorch-cifar ResNet34: 21,282,122 parameters.
    assert_eq!(count("resnet34"), 21_282_122);
}
