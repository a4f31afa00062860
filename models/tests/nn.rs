//! K-FAC-ready layers for a model written with candle-nn (`models::nn`): they are candle-nn's
//! layers (same forward, variable names, shapes; candle-nn checkpoints load), the statistics
//! they capture reproduce each layer's gradient (`[∇W | ∇b] = Gᵀ A_aug / M`), the optimizer
//! sees every variable of the map and its updates point downhill, and `KfacOptimizer` is
//! candle-nn's `Optimizer` for the K-FAC family.

use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::{Conv2dConfig, Optimizer as _, VarBuilder, VarMap};
use models::nn::{fisher_seed, Curvature, KfacOptimizer, KfacOptimizerConfig};
use optimizers::{build, Fisher, Hyper, KfacConfig, Optimizer as _, OptimizerKind, StatsRequest};

/// A user's candle-nn model: which functions make its layers is the only thing that differs
/// between its candle-nn and its K-FAC-ready version.
struct Net {
    conv: Box<dyn Module>,
    conv2: Box<dyn Module>,
    fc: Box<dyn Module>,
    /// Parameters of the user's own after the last layer, so the logits are not its output.
    scale: Option<(Tensor, Tensor)>,
}

const STRIDED: Conv2dConfig = Conv2dConfig {
    padding: 1,
    stride: 2,
    dilation: 1,
    groups: 1,
    cudnn_fwd_algo: None,
};

/// Input `[M, 2, 6, 6]`: a strided 3×3 convolution with a bias (to 3×3), a 2×2 one without
/// (to 2×2), a Linear layer, and a scale of the user's own.
fn net(curv: Option<&Curvature>, varmap: &VarMap, dtype: DType) -> Result<Net> {
    net_with(curv, varmap, dtype, true)
}

fn net_with(curv: Option<&Curvature>, varmap: &VarMap, dtype: DType, scaled: bool) -> Result<Net> {
    let vb = VarBuilder::from_varmap(varmap, dtype, &Device::Cpu);
    let plain = Conv2dConfig::default();
    let (conv, conv2, fc): (Box<dyn Module>, Box<dyn Module>, Box<dyn Module>) = match curv {
        Some(c) => (
            Box::new(c.conv2d(2, 3, 3, STRIDED, vb.pp("conv"))?),
            Box::new(c.conv2d_no_bias(3, 4, 2, plain, vb.pp("conv2"))?),
            Box::new(c.linear(4 * 2 * 2, 5, vb.pp("fc"))?),
        ),
        None => (
            Box::new(candle_nn::conv2d(2, 3, 3, STRIDED, vb.pp("conv"))?),
            Box::new(candle_nn::conv2d_no_bias(3, 4, 2, plain, vb.pp("conv2"))?),
            Box::new(candle_nn::linear(4 * 2 * 2, 5, vb.pp("fc"))?),
        ),
    };
    Ok(Net {
        conv,
        conv2,
        fc,
        scale: scaled
            .then(|| -> Result<_> {
                // Per class, the same shape, as a BatchNorm's scale and shift.
                let scale = vb.get_with_hints(5, "scale", candle_nn::Init::Const(1.0))?;
                let shift = vb.get_with_hints(5, "shift", candle_nn::Init::Const(0.0))?;
                Ok((scale, shift))
            })
            .transpose()?,
    })
}

impl Module for Net {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.conv.forward(x)?.relu()?;
        let h = self.conv2.forward(&h)?.relu()?.flatten_from(1)?;
        let logits = self.fc.forward(&h)?;
        match &self.scale {
            Some((scale, shift)) => logits.broadcast_mul(scale)?.broadcast_add(shift),
            None => Ok(logits),
        }
    }
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .and_then(|d| {
            d.abs()?
                .flatten_all()?
                .max(0)?
                .to_dtype(DType::F64)?
                .to_scalar::<f64>()
        })
        .expect("same shapes")
}

fn batch(m: usize, dtype: DType) -> Result<(Tensor, Tensor)> {
    let x = Tensor::randn(0f32, 1., (m, 2, 6, 6), &Device::Cpu)?.to_dtype(dtype)?;
    let y: Vec<u32> = (0..m as u32).map(|i| (i * 3) % 5).collect();
    Ok((x, Tensor::new(y, &Device::Cpu)?))
}

#[test]
fn the_layers_are_candle_nns_and_load_its_checkpoints() -> Result<()> {
    // A model built with candle-nn's own layers, saved as a safetensors checkpoint.
    let theirs_map = VarMap::new();
    let theirs = net(None, &theirs_map, DType::F32)?;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("model.safetensors");
    theirs_map.save(&path)?;

    // The same model from a Curvature, the checkpoint loaded into its map.
    let (mut ours_map, curv) = (VarMap::new(), Curvature::new());
    let ours = net(Some(&curv), &ours_map, DType::F32)?;
    let shapes = |m: &VarMap| {
        let mut v: Vec<(String, Vec<usize>)> = m
            .data()
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.dims().to_vec()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        shapes(&ours_map),
        shapes(&theirs_map),
        "candle-nn's names and shapes"
    );
    ours_map.load(&path)?;

    let (x, _) = batch(4, DType::F32)?;
    let want = theirs.forward(&x)?;
    for request in [StatsRequest::None, StatsRequest::Empirical] {
        curv.capture_next(request);
        let got = ours.forward(&x)?;
        assert_eq!(
            max_abs_diff(&got, &want),
            0.0,
            "{request:?}: candle-nn's forward"
        );
    }
    Ok(())
}

#[test]
fn captured_statistics_reproduce_every_layers_gradient() -> Result<()> {
    let (varmap, curv) = (VarMap::new(), Curvature::new());
    let model = net(Some(&curv), &varmap, DType::F64)?;
    let m = 5;
    let (x, y) = batch(m, DType::F64)?;
    curv.capture_next(StatsRequest::Empirical);
    let logits = model.forward(&x)?;
    let grads = candle_nn::loss::cross_entropy(&logits, &y)?.backward()?;
    let stats = curv
        .statistics(&logits, &grads, 0)?
        .expect("asked for statistics");
    let params = curv.param_set(&varmap);
    assert_eq!(stats.len(), 3);
    let positions: Vec<usize> = stats.iter().map(|s| s.positions).collect();
    assert_eq!(positions, [9, 4, 1], "T per layer");
    for (spec, s) in params.layers.iter().zip(&stats) {
        let from_stats = (s.g.t()?.matmul(&s.a_augmented()?)? / m as f64)?;
        let gw = grads.get(spec.weight.as_tensor()).expect("weight gradient");
        let gw = gw.reshape((gw.dim(0)?, ()))?;
        let want = match &spec.bias {
            Some(b) => {
                let gb = grads.get(b.as_tensor()).expect("bias gradient");
                Tensor::cat(&[&gw, &gb.unsqueeze(1)?], D::Minus1)?
            }
            None => gw,
        };
        let d = max_abs_diff(&from_stats, &want);
        assert!(d < 1e-12, "{}: {d}", spec.name);
    }
    // Steps that do not ask capture nothing.
    curv.capture_next(StatsRequest::None);
    let logits = model.forward(&x)?;
    let grads = candle_nn::loss::cross_entropy(&logits, &y)?.backward()?;
    assert!(curv.statistics(&logits, &grads, 0)?.is_none());
    Ok(())
}

#[test]
fn the_optimizer_updates_the_maps_variables_downhill_including_the_users_own() -> Result<()> {
    let (varmap, curv) = (VarMap::new(), Curvature::new());
    let model = net(Some(&curv), &varmap, DType::F32)?;
    let params = curv.param_set(&varmap);
    let layer_names: Vec<&str> = params.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(layer_names, ["conv", "conv2", "fc"]);
    let others: Vec<&str> = params.others.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(others, ["scale", "shift"]);

    // Without weight decay, each layer's update of [W | b] is −lr·P·∇ with P positive
    // definite (its damped Kronecker inverse), and the user's own variable's is −lr·∇: every
    // layer's update, and the variable's, points downhill, ⟨Δθ, ∇θ⟩ < 0 (a layer's bias alone
    // need not). A wrong sign, or a layer left alone, fails.
    for kind in [OptimizerKind::KfacSua, OptimizerKind::SkfacRs] {
        let hyper = Hyper {
            fisher: Fisher::Sampled,
            weight_decay: 0.0,
            ..Hyper::default()
        };
        let mut opt = build(kind, &params, &hyper).expect("valid");
        let (x, y) = batch(4, DType::F32)?;
        let flat = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
        let mut groups: Vec<(String, Vec<candle_core::Var>)> = params
            .layers
            .iter()
            .map(|l| {
                let mut vars = vec![l.weight.clone()];
                vars.extend(l.bias.clone());
                (l.name.clone(), vars)
            })
            .collect();
        groups.extend(
            params
                .others
                .iter()
                .map(|o| (o.name.clone(), vec![o.var.clone()])),
        );
        curv.capture_next(opt.stats_request());
        let logits = model.forward(&x)?;
        let grads = candle_nn::loss::cross_entropy(&logits, &y)?.backward()?;
        let stats = curv.statistics(&logits, &grads, 0)?;
        assert!(stats.is_some(), "statistics on the first step");
        let before: Vec<Vec<Vec<f32>>> = groups
            .iter()
            .map(|(_, vars)| vars.iter().map(|v| flat(v.as_tensor())).collect())
            .collect::<Result<_>>()?;
        opt.step(&grads, stats.as_deref()).expect("a step");
        for ((name, vars), b) in groups.iter().zip(&before) {
            let mut downhill = 0f64;
            for (v, b) in vars.iter().zip(b) {
                let g = flat(grads.get(v.as_tensor()).expect("a gradient"))?;
                let a = flat(v.as_tensor())?;
                assert_ne!(&a, b, "{kind}: {name} moves");
                downhill += a
                    .iter()
                    .zip(b)
                    .zip(&g)
                    .map(|((a, b), g)| ((a - b) * g) as f64)
                    .sum::<f64>();
            }
            assert!(downhill < 0.0, "{kind}: ⟨Δθ, ∇θ⟩ = {downhill} for {name}");
        }
    }
    Ok(())
}

/// How a training step is driven.
enum Driver<'a> {
    /// `KfacOptimizer::backward_step(&loss)`.
    BackwardStep,
    /// `KfacOptimizer::backward_step_with_logits(&loss, &logits)`.
    WithLogits,
    /// The explicit loop: `capture_next`, `statistics` with these per-step seeds, `step`.
    Explicit(&'a dyn Fn(usize) -> u64),
}

/// Parameters after 6 steps of `kind` on fixed batches from fixed weights, driven by `driver`;
/// `scaled` puts a variable of the user's own after the last layer.
fn train(
    kind: OptimizerKind,
    fisher: Fisher,
    scaled: bool,
    driver: Driver,
) -> Result<Vec<Vec<f32>>> {
    let (varmap, curv) = (VarMap::new(), Curvature::new());
    let model = net_with(Some(&curv), &varmap, DType::F32, scaled)?;
    for (i, var) in curv.param_set(&varmap).all().iter().enumerate() {
        let n = var.var.elem_count();
        let v: Vec<f32> = (0..n)
            .map(|j| (((j * 31 + i * 7) % 23) as f32 / 23.0 - 0.5) * 0.6)
            .collect();
        var.var
            .set(&Tensor::from_vec(v, var.var.shape(), &Device::Cpu)?)?;
    }
    let hyper = Hyper {
        fisher,
        t_cov: 2,
        t_inv: 4,
        ..Hyper::for_kind(kind)
    };
    let mut batches = Vec::new();
    for s in 0..6 {
        let x = Tensor::new(
            (0..4 * 2 * 36)
                .map(|i| ((i * 7 + s * 13) % 17) as f32 / 8.0 - 1.0)
                .collect::<Vec<_>>(),
            &Device::Cpu,
        )?
        .reshape((4, 2, 6, 6))?;
        let y = Tensor::new(&[0u32, 1, 2, (s % 5) as u32], &Device::Cpu)?;
        batches.push((x, y));
    }
    if let Driver::Explicit(seed) = driver {
        let mut opt = build(kind, &curv.param_set(&varmap), &hyper).expect("valid");
        for (step, (x, y)) in batches.iter().enumerate() {
            curv.capture_next(opt.stats_request());
            let logits = model.forward(x)?;
            let grads = candle_nn::loss::cross_entropy(&logits, y)?.backward()?;
            let stats = curv.statistics(&logits, &grads, seed(step))?;
            assert_eq!(stats.is_some(), step % 2 == 0, "t_cov = 2");
            opt.step(&grads, stats.as_deref()).expect("a step");
        }
    } else {
        let config = KfacOptimizerConfig {
            settings: KfacConfig::from(&hyper),
            ..KfacOptimizerConfig::new(kind, &curv)
        };
        let mut opt = KfacOptimizer::new(varmap.all_vars(), config)?;
        for (x, y) in &batches {
            let logits = model.forward(x)?;
            let loss = candle_nn::loss::cross_entropy(&logits, y)?;
            match driver {
                Driver::WithLogits => opt.backward_step_with_logits(&loss, &logits)?,
                _ => opt.backward_step(&loss)?,
            }
        }
        assert_eq!(opt.inner().steps(), 6);
    }
    curv.param_set(&varmap)
        .all()
        .iter()
        .map(|v| v.var.flatten_all().and_then(|t| t.to_vec1::<f32>()))
        .collect()
}

#[test]
fn backward_step_is_the_explicit_loop_in_one_call() -> Result<()> {
    use Driver::*;
    // Empirical Fisher: no seeds involved, so one backward_step a step must take exactly the
    // explicit loop's steps: statistics on the steps the optimizer asks for, capture on and off
    // at the right passes.
    for kind in [OptimizerKind::Kfac, OptimizerKind::SkfacSs] {
        let one_call = train(kind, Fisher::Empirical, true, BackwardStep)?;
        let explicit = train(kind, Fisher::Empirical, true, Explicit(&|_| 0))?;
        assert_eq!(one_call, explicit, "{kind}");
    }
    // Sampled Fisher: the wrapper draws new labels each statistics step, seeded from its own
    // step counter by `fisher_seed`, from the logits it is given or else from the last layer's
    // output; the explicit loop with one seed for every step draws the same labels each time,
    // and ends elsewhere.
    let rs = OptimizerKind::SkfacRs;
    let per_step = |step| fisher_seed(0, step);
    for scaled in [false, true] {
        let explicit = train(rs, Fisher::Sampled, scaled, Explicit(&per_step))?;
        let with_logits = train(rs, Fisher::Sampled, scaled, WithLogits)?;
        assert_eq!(with_logits, explicit, "seeded from the step counter");
        if !scaled {
            let one_call = train(rs, Fisher::Sampled, scaled, BackwardStep)?;
            assert_eq!(one_call, explicit, "the last layer's output is the logits");
        }
        let fixed = train(rs, Fisher::Sampled, scaled, Explicit(&|_| 7))?;
        assert_ne!(explicit, fixed, "labels drawn afresh each statistics step");
    }
    Ok(())
}

#[test]
fn a_resumed_kfac_optimizer_takes_the_uninterrupted_steps() -> Result<()> {
    // Statistics every 2 steps: saved after step 3, the next pass must not capture, and the
    // user's own variables (two of the same shape) keep their momentum buffers.
    let kind = OptimizerKind::SkfacSs;
    let hyper = Hyper {
        t_cov: 2,
        t_inv: 3,
        ..Hyper::for_kind(kind)
    };
    let (x, y) = batch(4, DType::F32)?;
    let fresh = || -> Result<(VarMap, Curvature, Net)> {
        let (varmap, curv) = (VarMap::new(), Curvature::new());
        let model = net(Some(&curv), &varmap, DType::F32)?;
        Ok((varmap, curv, model))
    };
    let values = |m: &VarMap| -> Result<Vec<(String, Vec<f32>)>> {
        let mut v: Vec<_> = m
            .data()
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| Ok((k.clone(), v.flatten_all()?.to_vec1::<f32>()?)))
            .collect::<Result<_>>()?;
        v.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(v)
    };
    let config = |curv: &Curvature| KfacOptimizerConfig {
        settings: KfacConfig::from(&hyper),
        ..KfacOptimizerConfig::new(kind, curv)
    };
    let step = |opt: &mut KfacOptimizer, model: &Net| -> Result<()> {
        opt.backward_step(&candle_nn::loss::cross_entropy(&model.forward(&x)?, &y)?)
    };

    let (straight_map, curv, model) = fresh()?;
    let start = values(&straight_map)?;
    let mut opt = KfacOptimizer::from_varmap(&straight_map, config(&curv))?;
    for _ in 0..6 {
        step(&mut opt, &model)?;
    }

    let (first_map, curv, model) = fresh()?;
    for (name, v) in &start {
        let var = first_map.data().lock().unwrap()[name].clone();
        var.set(&Tensor::from_vec(v.clone(), var.shape(), &Device::Cpu)?)?;
    }
    let mut opt = KfacOptimizer::from_varmap(&first_map, config(&curv))?;
    for _ in 0..3 {
        step(&mut opt, &model)?;
    }
    let (state, saved) = (opt.state()?, values(&first_map)?);

    let (resumed_map, curv, model) = fresh()?;
    for (name, v) in &saved {
        let var = resumed_map.data().lock().unwrap()[name].clone();
        var.set(&Tensor::from_vec(v.clone(), var.shape(), &Device::Cpu)?)?;
    }
    let mut opt = KfacOptimizer::from_varmap(&resumed_map, config(&curv))?;
    opt.load_state(&state)?;
    for _ in 3..6 {
        step(&mut opt, &model)?;
    }
    assert_eq!(values(&resumed_map)?, values(&straight_map)?);
    Ok(())
}

#[test]
fn a_failed_step_leaves_the_next_pass_capturing() -> Result<()> {
    // A decaying damping without the epoch length fails the first step; told it, the retry
    // must take that step's statistics and form its inverses.
    let (varmap, curv) = (VarMap::new(), Curvature::new());
    let model = net(Some(&curv), &varmap, DType::F32)?;
    let mut config = KfacOptimizerConfig::new(OptimizerKind::Kfac, &curv);
    config.settings.damping.damping_decay = 0.5;
    let mut opt = KfacOptimizer::from_varmap(&varmap, config)?;
    let (x, y) = batch(4, DType::F32)?;
    let loss = candle_nn::loss::cross_entropy(&model.forward(&x)?, &y)?;
    let e = opt.backward_step(&loss).expect_err("no epoch length");
    assert!(e.to_string().contains("set_steps_per_epoch"), "{e}");
    opt.set_steps_per_epoch(10);
    let logits = model.forward(&x)?;
    let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
    opt.backward_step_with_logits(&loss, &logits)?;
    assert!(opt.inner().blocks().iter().all(|b| b.has_inverse()));
    Ok(())
}

#[test]
fn the_wrapper_refuses_what_it_cannot_train() -> Result<()> {
    // A Curvature layer missing from the variables given.
    let (varmap, curv) = (VarMap::new(), Curvature::new());
    net(Some(&curv), &varmap, DType::F32)?;
    let e = KfacOptimizer::new(vec![], KfacOptimizerConfig::new(OptimizerKind::Kfac, &curv))
        .err()
        .expect("refused");
    assert!(e.to_string().contains("varmap.all_vars()"), "{e}");

    // The true Fisher when the last K-FAC-ready layer is a convolution: no [batch, classes]
    // logits to sample from unless the loop passes them.
    let (varmap, curv) = (VarMap::new(), Curvature::new());
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let conv = curv.conv2d(2, 5, 6, Conv2dConfig::default(), vb.pp("conv"))?;
    let mut opt = KfacOptimizer::new(
        varmap.all_vars(),
        KfacOptimizerConfig::new(OptimizerKind::Kfac, &curv),
    )?;
    let (x, y) = batch(4, DType::F32)?;
    let logits = conv.forward(&x)?.flatten_from(1)?;
    let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
    let e = opt.backward_step(&loss).expect_err("refused");
    assert!(e.to_string().contains("backward_step_with_logits"), "{e}");
    let logits = conv.forward(&x)?.flatten_from(1)?;
    let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
    opt.backward_step_with_logits(&loss, &logits)?;
    assert_eq!(opt.inner().steps(), 1);
    assert!(
        opt.inner().blocks()[0].has_inverse(),
        "the refused step's statistics taken on the retry"
    );
    Ok(())
}

#[test]
fn layers_k_fac_cannot_precondition_are_refused() {
    let (varmap, curv) = (VarMap::new(), Curvature::new());
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let grouped = Conv2dConfig {
        groups: 2,
        ..Default::default()
    };
    let e = curv
        .conv2d(4, 4, 3, grouped, vb.pp("dw"))
        .err()
        .expect("refused");
    assert!(e.to_string().contains("dw: K-FAC-ready Conv2d"), "{e}");
    let e = curv
        .linear(3, 2, VarBuilder::zeros(DType::F32, &Device::Cpu).pp("fc"))
        .err()
        .expect("refused");
    assert!(e.to_string().contains("VarBuilder::from_varmap"), "{e}");
}
