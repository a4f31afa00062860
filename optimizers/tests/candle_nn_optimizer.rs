//! SGD and Adam as candle-nn optimizers: one `backward_step(&loss)` a step, checked against
//! candle-nn's own SGD and AdamW and against heavy-ball momentum worked out by hand.

use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::Optimizer;
use optimizers::{Adam, AdamConfig, Moments, Momentum, Sgd, SgdConfig, Step};

/// Least squares on fixed data: the loss of weights `w` ([3, 1]).
fn loss(w: &Var) -> Result<Tensor> {
    let dev = Device::Cpu;
    let x = Tensor::new(
        &[
            [1.0f32, 2.0, -1.0],
            [0.5, -1.0, 2.0],
            [-2.0, 0.3, 1.0],
            [1.5, 1.0, 0.2],
        ],
        &dev,
    )?;
    let y = Tensor::new(&[[1.0f32], [-2.0], [0.5], [3.0]], &dev)?;
    x.matmul(w.as_tensor())?.sub(&y)?.sqr()?.mean_all()
}

fn start() -> Result<Var> {
    Var::from_tensor(&Tensor::new(&[[0.2f32], [-0.1], [0.4]], &Device::Cpu)?)
}

fn max_diff(a: &Var, b: &Var) -> Result<f32> {
    (a.as_tensor() - b.as_tensor())?
        .abs()?
        .max_all()?
        .to_scalar::<f32>()
}

#[test]
fn sgd_without_momentum_steps_as_candle_nns_sgd() -> Result<()> {
    let (a, b) = (start()?, start()?);
    let cfg = SgdConfig {
        step: Step {
            lr: 0.05,
            weight_decay: 0.0,
        },
        momentum: Momentum {
            momentum: 0.0,
            nesterov: false,
        },
    };
    let mut ours = Sgd::new(vec![a.clone()], cfg)?;
    let mut theirs = candle_nn::SGD::new(vec![b.clone()], 0.05)?;
    let first = loss(&a)?.to_scalar::<f32>()?;
    for _ in 0..10 {
        ours.backward_step(&loss(&a)?)?;
        theirs.backward_step(&loss(&b)?)?;
    }
    assert!(max_diff(&a, &b)? < 1e-6);
    assert!(loss(&a)?.to_scalar::<f32>()? < 0.5 * first);
    Ok(())
}

#[test]
fn sgd_with_momentum_is_heavy_ball_worked_out_by_hand() -> Result<()> {
    // f(w) = (w − 3)², ∇ = 2(w − 3); b ← μb + ∇ + wd·w, w ← w − lr·b.
    let w = Var::from_tensor(&Tensor::new(&[0.0f64], &Device::Cpu)?)?;
    let cfg = SgdConfig {
        step: Step {
            lr: 0.1,
            weight_decay: 0.01,
        },
        momentum: Momentum {
            momentum: 0.9,
            nesterov: false,
        },
    };
    let mut opt = Sgd::new(vec![w.clone()], cfg)?;
    let (mut want, mut buf) = (0.0f64, 0.0f64);
    for _ in 0..6 {
        let l = w.as_tensor().affine(1.0, -3.0)?.sqr()?.sum_all()?;
        opt.backward_step(&l)?;
        buf = 0.9 * buf + 2.0 * (want - 3.0) + 0.01 * want;
        want -= 0.1 * buf;
    }
    let got = w.as_tensor().to_vec1::<f64>()?[0];
    assert!((got - want).abs() < 1e-12, "{got} vs {want}");
    Ok(())
}

#[test]
fn adam_with_decoupled_decay_steps_as_candle_nns_adamw() -> Result<()> {
    let (a, b) = (start()?, start()?);
    let cfg = AdamConfig {
        step: Step {
            lr: 0.01,
            weight_decay: 0.01,
        },
        moments: Moments {
            decoupled_weight_decay: true,
            ..Moments::default()
        },
    };
    let mut ours = Adam::new(vec![a.clone()], cfg)?;
    let params = candle_nn::ParamsAdamW {
        lr: 0.01,
        weight_decay: 0.01,
        ..Default::default()
    };
    let mut theirs = candle_nn::AdamW::new(vec![b.clone()], params)?;
    for _ in 0..10 {
        ours.backward_step(&loss(&a)?)?;
        theirs.backward_step(&loss(&b)?)?;
    }
    assert!(max_diff(&a, &b)? < 1e-6, "{}", max_diff(&a, &b)?);
    // And the learning rate is candle-nn's to set, as a scheduler would.
    ours.set_learning_rate(0.001);
    assert_eq!(ours.learning_rate(), 0.001);
    Ok(())
}

#[test]
fn integer_variables_are_skipped_and_defaults_are_the_crates() -> Result<()> {
    let ints = Var::from_tensor(&Tensor::zeros(3, DType::U32, &Device::Cpu)?)?;
    let opt = Sgd::new(vec![ints, start()?], SgdConfig::default())?;
    assert_eq!(opt.learning_rate(), 0.05);
    assert_eq!(AdamConfig::default().step.lr, 1e-3);
    Ok(())
}
