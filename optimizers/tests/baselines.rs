//! SGD and Adam against their defining recursions, evaluated independently in scalar f64.

use candle_core::{DType, Device, Result, Tensor, Var};
use optimizers::{build, Hyper, NamedVar, Optimizer, OptimizerKind, ParamSet};

fn params(w0: &[f64]) -> (Var, ParamSet) {
    let var = Var::from_tensor(&Tensor::new(w0, &Device::Cpu).unwrap()).unwrap();
    let set = ParamSet {
        layers: vec![],
        others: vec![NamedVar {
            name: "w".into(),
            var: var.clone(),
        }],
    };
    (var, set)
}

/// One step on the loss Σ cᵢ wᵢ² / 2, whose gradient is cᵢ wᵢ.
fn step(opt: &mut dyn Optimizer, w: &Var, c: &Tensor) -> Result<()> {
    let loss = ((w.as_tensor().sqr()? * c)?.sum_all()? * 0.5)?;
    opt.step(&loss.backward()?, None).unwrap();
    Ok(())
}

fn values(w: &Var) -> Vec<f64> {
    w.as_tensor().to_vec1::<f64>().unwrap()
}

fn close(a: &[f64], b: &[f64], tol: f64) {
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{a:?} vs {b:?}");
    }
}

/// Reference SGD in scalars (PyTorch's convention).
fn sgd_reference(w0: f64, c: f64, lr: f64, mu: f64, wd: f64, nesterov: bool, steps: usize) -> f64 {
    let (mut w, mut b) = (w0, None::<f64>);
    for _ in 0..steps {
        let d = c * w + wd * w;
        let nb = match b {
            Some(b) => mu * b + d,
            None => d,
        };
        b = Some(nb);
        w -= lr * if nesterov { d + mu * nb } else { nb };
    }
    w
}

#[test]
fn sgd_follows_the_momentum_recursion() -> Result<()> {
    for (nesterov, wd) in [(false, 0.0), (false, 0.1), (true, 0.0), (true, 0.05)] {
        let (w, set) = params(&[1.0, -2.0, 0.5]);
        let h = Hyper {
            lr: 0.1,
            momentum: 0.9,
            weight_decay: wd,
            nesterov,
            ..Hyper::default()
        };
        let mut opt = build(OptimizerKind::Sgd, &set, &h).unwrap();
        let c = Tensor::new(&[1.0f64, 3.0, 0.5], &Device::Cpu)?;
        for _ in 0..5 {
            step(opt.as_mut(), &w, &c)?;
        }
        let expected: Vec<f64> = [(1.0, 1.0), (-2.0, 3.0), (0.5, 0.5)]
            .iter()
            .map(|&(w0, ci)| sgd_reference(w0, ci, 0.1, 0.9, wd, nesterov, 5))
            .collect();
        close(&values(&w), &expected, 1e-12);
        assert_eq!(opt.steps(), 5);
    }
    // Two steps by hand: w = 1, g = w, lr 0.1, μ 0.9: 1 → 0.9 → 0.9 − 0.1·(0.9 + 0.9) = 0.72.
    let (w, set) = params(&[1.0]);
    let mut opt = build(
        OptimizerKind::Sgd,
        &set,
        &Hyper {
            lr: 0.1,
            weight_decay: 0.0,
            ..Hyper::default()
        },
    )
    .unwrap();
    let one = Tensor::new(&[1.0f64], &Device::Cpu)?;
    step(opt.as_mut(), &w, &one)?;
    step(opt.as_mut(), &w, &one)?;
    close(&values(&w), &[0.72], 1e-15);
    Ok(())
}

#[test]
fn adam_follows_its_definition() -> Result<()> {
    for decoupled in [false, true] {
        let (w, set) = params(&[1.0, -3.0]);
        let h = Hyper {
            lr: 0.01,
            weight_decay: 0.1,
            decoupled_weight_decay: decoupled,
            ..Hyper::default()
        };
        let mut opt = build(OptimizerKind::Adam, &set, &h).unwrap();
        let c = Tensor::new(&[2.0f64, 0.5], &Device::Cpu)?;
        for _ in 0..4 {
            step(opt.as_mut(), &w, &c)?;
        }
        let expected: Vec<f64> = [(1.0, 2.0), (-3.0, 0.5)]
            .iter()
            .map(|&(w0, ci)| {
                let (mut w, mut m, mut v) = (w0, 0.0, 0.0);
                for t in 1..=4 {
                    let mut g = ci * w;
                    if !decoupled {
                        g += 0.1 * w;
                    }
                    m = 0.9 * m + 0.1 * g;
                    v = 0.999 * v + 0.001 * g * g;
                    let upd = (m / (1.0 - 0.9f64.powi(t)))
                        / ((v / (1.0 - 0.999f64.powi(t))).sqrt() + 1e-8);
                    if decoupled {
                        w *= 1.0 - 0.01 * 0.1;
                    }
                    w -= 0.01 * upd;
                }
                w
            })
            .collect();
        close(&values(&w), &expected, 1e-12);
    }
    // The first Adam step has length lr whatever the gradient's scale.
    let (w, set) = params(&[5.0]);
    let mut opt = build(
        OptimizerKind::Adam,
        &set,
        &Hyper {
            lr: 0.01,
            weight_decay: 0.0,
            ..Hyper::default()
        },
    )
    .unwrap();
    step(opt.as_mut(), &w, &Tensor::new(&[1000.0f64], &Device::Cpu)?)?;
    close(&values(&w), &[4.99], 1e-9);
    Ok(())
}

#[test]
fn learning_rate_changes_apply_to_the_next_step() -> Result<()> {
    let (w, set) = params(&[1.0]);
    let mut opt = build(
        OptimizerKind::Sgd,
        &set,
        &Hyper {
            lr: 0.1,
            momentum: 0.0,
            weight_decay: 0.0,
            ..Hyper::default()
        },
    )
    .unwrap();
    opt.set_learning_rate(0.5);
    assert_eq!(opt.learning_rate(), 0.5);
    step(opt.as_mut(), &w, &Tensor::new(&[1.0f64], &Device::Cpu)?)?;
    close(&values(&w), &[0.5], 1e-15);
    Ok(())
}

#[test]
fn parameters_without_gradients_are_left_alone() -> Result<()> {
    let (w, mut set) = params(&[1.0]);
    let frozen = Var::ones(2, DType::F64, &Device::Cpu)?;
    set.others.push(NamedVar {
        name: "frozen".into(),
        var: frozen.clone(),
    });
    let mut opt = build(OptimizerKind::Adam, &set, &Hyper::default()).unwrap();
    step(opt.as_mut(), &w, &Tensor::new(&[1.0f64], &Device::Cpu)?)?;
    assert_eq!(frozen.as_tensor().to_vec1::<f64>()?, vec![1.0, 1.0]);
    Ok(())
}

#[test]
fn bad_names_and_hyper_parameters_are_rejected_with_the_field() {
    let e = OptimizerKind::parse("sdg").unwrap_err().to_string();
    assert!(e.contains("sgd") && e.contains("adam"), "{e}");
    let (_, set) = params(&[1.0]);
    for (h, field) in [
        (
            Hyper {
                lr: -1.0,
                ..Hyper::default()
            },
            "lr",
        ),
        (
            Hyper {
                momentum: 1.5,
                ..Hyper::default()
            },
            "momentum",
        ),
        (
            Hyper {
                weight_decay: f64::NAN,
                ..Hyper::default()
            },
            "weight_decay",
        ),
        (
            Hyper {
                momentum: 0.0,
                nesterov: true,
                ..Hyper::default()
            },
            "Nesterov",
        ),
    ] {
        let e = build(OptimizerKind::Sgd, &set, &h)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains(field), "{e}");
    }
    let e = build(
        OptimizerKind::Adam,
        &set,
        &Hyper {
            beta2: 1.0,
            ..Hyper::default()
        },
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("beta2"), "{e}");
}
