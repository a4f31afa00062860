//! K-FAC-ready layers for a user's own model (`models::nn`): built from a `VarBuilder` over a
//! `VarMap`, they capture `A`/`G` only when asked, the captured statistics reproduce each
//! layer's gradient (`[∇W | ∇b] = Gᵀ A_aug / M`), the optimizer sees every variable of the
//! map, and its updates land in the map's variables.

use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::{VarBuilder, VarMap};
use models::nn::{Conv2d, Conv2dConfig, Curvature, Linear};
use optimizers::{build, Hyper, OptimizerKind, StatsRequest};

struct Net {
    conv: Conv2d,
    fc: Linear,
    scale: Tensor,
}

fn net(curv: &Curvature, varmap: &VarMap, dtype: DType) -> Result<Net> {
    let vb = VarBuilder::from_varmap(varmap, dtype, &Device::Cpu);
    let cfg = Conv2dConfig {
        padding: 1,
        stride: 2,
    };
    Ok(Net {
        conv: curv.conv2d(2, 3, 3, cfg, vb.pp("conv"))?,
        fc: curv.linear(3 * 3 * 3, 4, vb.pp("fc"))?,
        // A parameter of the user's own, not a preconditioned layer.
        scale: vb.get_with_hints(1, "scale", candle_nn::Init::Const(1.0))?,
    })
}

impl Module for Net {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.conv.forward(x)?.relu()?.flatten_from(1)?;
        self.fc.forward(&h)?.broadcast_mul(&self.scale)
    }
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .and_then(|d| d.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>())
        .expect("same shapes")
}

#[test]
fn captured_statistics_reproduce_every_layers_gradient() -> Result<()> {
    let (varmap, curv) = (VarMap::new(), Curvature::new());
    let model = net(&curv, &varmap, DType::F64)?;
    let m = 5;
    let x = Tensor::randn(0f64, 1., (m, 6, 6, 2), &Device::Cpu)?;
    let y = Tensor::new(&[0u32, 1, 2, 3, 1], &Device::Cpu)?;
    curv.capture_next(StatsRequest::Empirical);
    let logits = model.forward(&x)?;
    let grads = candle_nn::loss::cross_entropy(&logits, &y)?.backward()?;
    let stats = curv
        .statistics(&logits, &grads, 0)?
        .expect("asked for statistics");
    let params = curv.param_set(&varmap);
    assert_eq!(stats.len(), 2);
    for (spec, s) in params.layers.iter().zip(&stats) {
        let ones = Tensor::ones((s.a.dim(0)?, 1), DType::F64, &Device::Cpu)?;
        let a_aug = Tensor::cat(&[&s.a, &ones], D::Minus1)?;
        let from_stats = (s.g.t()?.matmul(&a_aug)? / m as f64)?;
        let gw = grads.get(spec.weight.as_tensor()).expect("weight gradient");
        let gw = gw.reshape((gw.dim(0)?, ()))?;
        let gb = grads
            .get(spec.bias.as_ref().expect("bias").as_tensor())
            .expect("bias gradient");
        let want = Tensor::cat(&[&gw, &gb.unsqueeze(1)?], D::Minus1)?;
        let d = max_abs_diff(&from_stats, &want);
        assert!(d < 1e-10, "{}: {d}", spec.name);
    }
    // Steps that do not ask capture nothing.
    curv.capture_next(StatsRequest::None);
    let logits = model.forward(&x)?;
    let grads = candle_nn::loss::cross_entropy(&logits, &y)?.backward()?;
    assert!(curv.statistics(&logits, &grads, 0)?.is_none());
    Ok(())
}

#[test]
fn the_optimizer_updates_the_maps_variables_including_the_users_own() -> Result<()> {
    let (varmap, curv) = (VarMap::new(), Curvature::new());
    let model = net(&curv, &varmap, DType::F32)?;
    let params = curv.param_set(&varmap);
    let layer_names: Vec<&str> = params.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(layer_names, ["conv", "fc"]);
    let others: Vec<&str> = params.others.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(others, ["scale"]);
    let (cw, kw) = (
        params.layers[0].weight.as_tensor().dims().to_vec(),
        params.layers[0].kind,
    );
    assert_eq!(cw, [3, 3, 3, 2], "[c_out, k, k, c_in]");
    assert_eq!(kw.inputs(), 3 * 3 * 2);

    // Without weight decay, each layer's update of [W | b] is −lr·P·∇ with P positive
    // definite (its damped Kronecker inverse), and the user's own variable's is −lr·∇: every
    // layer's update, and the variable's, points downhill, ⟨Δθ, ∇θ⟩ < 0 (a layer's bias alone
    // need not). A wrong sign, or a layer left alone, fails.
    let hyper = Hyper {
        fisher: optimizers::Fisher::Sampled,
        weight_decay: 0.0,
        ..Hyper::default()
    };
    let mut opt = build(OptimizerKind::SkfacRs, &params, &hyper).expect("valid");
    let x = Tensor::randn(0f32, 1., (4, 6, 6, 2), &Device::Cpu)?;
    let y = Tensor::new(&[0u32, 1, 2, 3], &Device::Cpu)?;
    let flat = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
    // The variables of each layer, then the user's own.
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
    for step in 0..3 {
        curv.capture_next(opt.stats_request());
        let logits = model.forward(&x)?;
        let grads = candle_nn::loss::cross_entropy(&logits, &y)?.backward()?;
        let stats = curv.statistics(&logits, &grads, step)?;
        assert_eq!(
            stats.is_some(),
            step == 0,
            "statistics every t_cov = 20 steps"
        );
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
                assert_ne!(&a, b, "step {step}: {name} moves");
                downhill += a
                    .iter()
                    .zip(b)
                    .zip(&g)
                    .map(|((a, b), g)| ((a - b) * g) as f64)
                    .sum::<f64>();
            }
            if step == 0 {
                // Momentum joins from the second step on.
                assert!(
                    downhill < 0.0,
                    "step {step}: ⟨Δθ, ∇θ⟩ = {downhill} for {name}"
                );
            }
        }
    }
    Ok(())
}

#[test]
fn a_layer_from_a_builder_without_variables_is_refused() {
    let vb = VarBuilder::zeros(DType::F32, &Device::Cpu);
    let e = Curvature::new()
        .linear(3, 2, vb.pp("fc"))
        .err()
        .expect("refused");
    assert!(e.to_string().contains("VarBuilder::from_varmap"), "{e}");
}
