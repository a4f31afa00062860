//! The device-generic path (the ops composed from candle's own, which a CUDA device runs)
//! against the CPU kernels, on the CPU: every op's values and gradients, whole networks'
//! logits, parameter gradients and captured `A` and `G`, and the optimizers' fused updates.

use candle_core::{backprop::GradStore, DType, Device, Result, Tensor, Var};
use models::ops::{
    add_relu, batch_norm, batch_norm_relu, composed_ops, conv2d_tiled, im2col, max_pool2d, relu,
    Window,
};
use models::{Ctx, ModelConfig};
use optimizers::{Hyper, OptimizerKind, StatsRequest};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Largest |a − b| relative to the largest |b| (or absolute below 1).
fn rel_diff(a: &Tensor, b: &Tensor) -> f64 {
    let f = |t: Tensor| t.to_dtype(DType::F64).unwrap().flatten_all().unwrap();
    let (a, b) = (f(a.clone()), f(b.clone()));
    assert_eq!(a.dims(), b.dims());
    let scalar = |t: Tensor| t.max(0).unwrap().to_scalar::<f64>().unwrap();
    let diff = scalar((&a - &b).unwrap().abs().unwrap());
    diff / scalar(b.abs().unwrap()).max(1.0)
}

/// `f`'s output and the gradients of a fixed random projection of it with respect to
/// `inputs`, once with the CPU kernels and once composed.
fn both_paths(
    inputs: &[Var],
    f: impl Fn(&[Tensor]) -> Result<Tensor>,
) -> [(Tensor, Vec<Tensor>); 2] {
    let run = || {
        let xs: Vec<Tensor> = inputs.iter().map(|v| v.as_tensor().clone()).collect();
        let y = f(&xs).unwrap();
        let w = Tensor::randn(0f64, 1.0, y.shape(), &Device::Cpu)
            .unwrap()
            .to_dtype(y.dtype())
            .unwrap();
        (y, w)
    };
    let grads = |y: &Tensor, w: &Tensor| {
        let g = (y * w).unwrap().sum_all().unwrap().backward().unwrap();
        inputs
            .iter()
            .map(|v| {
                g.get(v.as_tensor())
                    .expect("every input gets a gradient")
                    .clone()
            })
            .collect::<Vec<_>>()
    };
    let (y, w) = run();
    let native = (y.detach(), grads(&y, &w));
    let _composed = composed_ops();
    let xs: Vec<Tensor> = inputs.iter().map(|v| v.as_tensor().clone()).collect();
    let y = f(&xs).unwrap();
    let composed = (y.detach(), grads(&y, &w));
    [native, composed]
}

fn assert_paths_agree(what: &str, [native, composed]: [(Tensor, Vec<Tensor>); 2], tol: f64) {
    let d = rel_diff(&composed.0, &native.0);
    assert!(d <= tol, "{what}: outputs differ by {d:e}");
    for (i, (c, n)) in composed.1.iter().zip(&native.1).enumerate() {
        let d = rel_diff(c, n);
        assert!(d <= tol, "{what}: gradient of input {i} differs by {d:e}");
    }
}

/// A variable of `shape` with values uniform in [−1, 1), the same for the same `seed`.
fn var(shape: &[usize], seed: u64) -> Var {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
    Var::from_tensor(&Tensor::from_vec(v, shape, &Device::Cpu).unwrap()).unwrap()
}

const WINDOWS: [Window; 5] = [
    Window {
        kh: 3,
        kw: 3,
        stride: 1,
        padding: 1,
    },
    Window {
        kh: 3,
        kw: 3,
        stride: 2,
        padding: 1,
    },
    Window {
        kh: 1,
        kw: 1,
        stride: 2,
        padding: 0,
    },
    Window {
        kh: 7,
        kw: 7,
        stride: 2,
        padding: 3,
    },
    Window::POOL_2X2,
];

#[test]
fn im2col_and_convolution_agree() {
    for (i, win) in WINDOWS.into_iter().enumerate() {
        let x = var(&[2, 9, 8, 3], i as u64);
        let k = win.kh * win.kw * 3;
        let w = var(&[5, k], 100 + i as u64);
        let out = both_paths(std::slice::from_ref(&x), |t| im2col(&t[0], win));
        assert_paths_agree(&format!("im2col {win:?}"), out, 1e-12);
        let out = both_paths(&[x.clone(), w], |t| conv2d_tiled(&t[0], &t[1], win));
        assert_paths_agree(&format!("conv2d {win:?}"), out, 1e-12);
    }
}

#[test]
fn max_pooling_agrees_including_ties_and_padding() {
    for (i, win) in WINDOWS.into_iter().enumerate() {
        let x = var(&[2, 9, 8, 3], 10 + i as u64);
        let out = both_paths(std::slice::from_ref(&x), |t| max_pool2d(&t[0], win));
        assert_paths_agree(&format!("max_pool2d {win:?}"), out, 1e-12);
        // After a ReLU most windows hold several zeros: the gradient goes to the first.
        let out = both_paths(&[x], |t| max_pool2d(&relu(&(&t[0] - 0.7)?)?, win));
        assert_paths_agree(&format!("max_pool2d of zeros {win:?}"), out, 1e-12);
    }
}

#[test]
fn relu_and_batch_norm_agree() {
    let (a, b) = (var(&[6, 4], 1), var(&[6, 4], 2));
    // The outer ReLU sees exact zeros: the gradient there is 0 on both paths.
    assert_paths_agree(
        "relu",
        both_paths(std::slice::from_ref(&a), |t| relu(&relu(&t[0])?)),
        1e-12,
    );
    assert_paths_agree(
        "add_relu",
        both_paths(&[a.clone(), b], |t| add_relu(&t[0], &t[1])),
        1e-12,
    );
    let (x, gamma, beta) = (var(&[40, 3], 3), var(&[3], 4), var(&[3], 5));
    let x = Var::from_tensor(&x.as_tensor().affine(3.0, 2.0).unwrap()).unwrap();
    assert_paths_agree(
        "batch_norm",
        both_paths(&[x.clone(), gamma.clone(), beta.clone()], |t| {
            Ok(batch_norm(&t[0], &t[1], &t[2], 1e-5)?.0)
        }),
        1e-10,
    );
    assert_paths_agree(
        "batch_norm_relu",
        both_paths(&[x.clone(), gamma.clone(), beta.clone()], |t| {
            Ok(batch_norm_relu(&t[0], &t[1], &t[2], 1e-5)?.0)
        }),
        1e-10,
    );
    let moments = |composed: bool| {
        let _guard = composed.then(composed_ops);
        let (_, m) = batch_norm(x.as_tensor(), gamma.as_tensor(), beta.as_tensor(), 1e-5).unwrap();
        (m.mean, m.var, m.rows)
    };
    let (native, composed) = (moments(false), moments(true));
    assert_eq!((native.2, composed.2), (40, 40));
    assert!(rel_diff(&composed.0, &native.0) < 1e-12);
    assert!(rel_diff(&composed.1, &native.1) < 1e-12);
}

/// One capturing training step of `name` in f64: logits, every parameter's gradient and
/// every layer's `A` and `G`. (In f32 the two paths' round-off moves the odd ReLU input
/// across zero, and its gradient with it: a real difference of a few percent in some
/// gradients, which says nothing about either path.)
fn capturing_step(name: &str, input: (usize, usize, usize)) -> Vec<(String, Tensor)> {
    let cfg = ModelConfig {
        input,
        classes: 10,
        seed: 7,
    };
    let dev = Device::Cpu;
    let net = models::build_with_dtype(name, &cfg, &dev, DType::F64).unwrap();
    let (h, w, c) = input;
    let x = var(&[4, h, w, c], 11).as_tensor().clone();
    let y = Tensor::new(&[3u32, 1, 4, 1], &dev).unwrap();
    let logits = net.forward(&x, &Ctx::CAPTURE).unwrap();
    let grads: GradStore = candle_nn::loss::cross_entropy(&logits, &y)
        .unwrap()
        .backward()
        .unwrap();
    let mut out = vec![("logits".to_string(), logits.detach())];
    for p in net.param_set().all() {
        out.push((
            p.name.clone(),
            grads.get(p.var.as_tensor()).unwrap().clone(),
        ));
    }
    for (i, s) in net.take_stats(&grads).unwrap().into_iter().enumerate() {
        out.push((format!("A of layer {i}"), s.a));
        out.push((format!("G of layer {i}"), s.g));
    }
    out
}

#[test]
fn networks_agree_on_logits_gradients_and_statistics() {
    // ResNet-50 on 32x32 inputs still takes its stem's padded max pooling.
    let nets = [
        ("mlp", (8, 8, 1)),
        ("resnet8", (16, 16, 3)),
        ("resnet34", (16, 16, 3)),
        ("vgg11", (32, 32, 3)),
        ("resnet50", (32, 32, 3)),
    ];
    for (name, input) in nets {
        // The same seeds give the same parameters and input on both paths.
        let native = capturing_step(name, input);
        let composed = {
            let _guard = composed_ops();
            capturing_step(name, input)
        };
        assert_eq!(native.len(), composed.len());
        for ((what, n), (_, c)) in native.iter().zip(&composed) {
            let d = rel_diff(c, n);
            // f32 sums in another order: batch norm's statistics above all.
            assert!(d < 1e-9, "{name}: {what} differs by {d:e}");
        }
    }
}

/// Every parameter of ResNet-8 (f64) after three steps of `kind` (statistics and inverses on
/// the first), from the same start.
fn after_steps(kind: OptimizerKind, h: &Hyper) -> Vec<(String, Tensor)> {
    let cfg = ModelConfig {
        input: (16, 16, 3),
        classes: 10,
        seed: 3,
    };
    let net = models::build_with_dtype("resnet8", &cfg, &Device::Cpu, DType::F64).unwrap();
    let mut opt = optimizers::build(kind, &net.param_set(), h).unwrap();
    let x = var(&[4, 16, 16, 3], 21).as_tensor().clone();
    let y = Tensor::new(&[3u32, 1, 4, 1], &Device::Cpu).unwrap();
    for _ in 0..3 {
        let request = opt.stats_request();
        let ctx = if request == StatsRequest::None {
            Ctx::TRAIN
        } else {
            Ctx::CAPTURE
        };
        let logits = net.forward(&x, &ctx).unwrap();
        let grads = candle_nn::loss::cross_entropy(&logits, &y)
            .unwrap()
            .backward()
            .unwrap();
        let stats = (request != StatsRequest::None).then(|| net.take_stats(&grads).unwrap());
        opt.step(&grads, stats.as_deref()).unwrap();
    }
    net.param_set()
        .all()
        .into_iter()
        .map(|p| (p.name, p.var.as_tensor().copy().unwrap()))
        .collect()
}

#[test]
fn optimizer_steps_agree_with_the_fused_kernels() {
    let base = Hyper {
        lr: 0.05,
        weight_decay: 5e-4,
        t_cov: 1,
        t_inv: 2,
        ..Hyper::default()
    };
    let cases = [
        (
            OptimizerKind::Sgd,
            Hyper {
                momentum: 0.0,
                ..base.clone()
            },
        ),
        (OptimizerKind::Sgd, base.clone()),
        (
            OptimizerKind::Sgd,
            Hyper {
                nesterov: true,
                ..base.clone()
            },
        ),
        (
            OptimizerKind::Adam,
            Hyper {
                lr: 1e-3,
                ..base.clone()
            },
        ),
        (
            OptimizerKind::Adam,
            Hyper {
                lr: 1e-3,
                decoupled_weight_decay: true,
                ..base.clone()
            },
        ),
        (OptimizerKind::Kfac, base.clone()),
        (OptimizerKind::SkfacRs, base.clone()),
    ];
    for (kind, h) in cases {
        let native = after_steps(kind, &h);
        let composed = {
            let _guard = composed_ops();
            after_steps(kind, &h)
        };
        for ((name, n), (_, c)) in native.iter().zip(&composed) {
            let d = rel_diff(c, n);
            assert!(
                d < 1e-9,
                "{kind:?}: {name} differs by {d:e} after three steps"
            );
        }
    }
}
