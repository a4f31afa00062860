//! The training loop hands an optimizer the curvature statistics it asks for: `A`/`G` from
//! the real labels (empirical Fisher) or from labels sampled from the model (true Fisher).

use std::sync::{Arc, Mutex};

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, D};
use harness::data::{ImageSet, Normalisation, Splits};
use harness::train::{train, Learner, Progress, Silent, TrainConfig};
use models::ModelConfig;
use optimizers::{
    build, Hyper, LayerStats, Optimizer, OptimizerKind, ParamSet, StageTimes, StatsRequest,
};

/// Checks what each step receives, then steps with SGD.
struct Checker {
    request: StatsRequest,
    params: ParamSet,
    sgd: Box<dyn Optimizer>,
    /// Per step: the label each row of the last layer's G points at.
    labels: Arc<Mutex<Vec<Vec<u32>>>>,
    /// Per step: each row's predicted probabilities, recovered as G + e_label.
    probs: Arc<Mutex<Vec<Vec<Vec<f32>>>>>,
}

fn max_rel_diff(a: &Tensor, b: &Tensor) -> f32 {
    let d = (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    d / b
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
        .max(1e-6)
}

impl Optimizer for Checker {
    fn name(&self) -> String {
        "checker".into()
    }
    fn stats_request(&self) -> StatsRequest {
        self.request
    }
    fn step(
        &mut self,
        grads: &GradStore,
        stats: Option<&[LayerStats]>,
    ) -> optimizers::Result<StageTimes> {
        let stats = stats.expect("statistics were requested");
        assert_eq!(stats.len(), self.params.layers.len());
        for (spec, s) in self.params.layers.iter().zip(stats) {
            assert_eq!(s.a.dim(0).unwrap(), s.batch * s.positions);
            assert_eq!(s.g.dims(), &[s.batch * s.positions, spec.kind.outputs()]);
            if self.request == StatsRequest::Empirical {
                // The loss that defines G is the training loss: GᵀA/M is the weight gradient.
                let gw = (s.g.t().unwrap().matmul(&s.a.contiguous().unwrap()).unwrap()
                    / s.batch as f64)
                    .unwrap();
                let dw = grads
                    .get(spec.weight.as_tensor())
                    .unwrap()
                    .reshape(gw.shape())
                    .unwrap();
                assert!(max_rel_diff(&gw, &dw) < 1e-4, "{}", spec.name);
            }
        }
        // Last layer: G rows are softmax(logits) − onehot(label), so each row sums to zero and
        // its only negative entry sits at the label that defined the loss.
        let g = &stats.last().unwrap().g;
        let row_sums = g
            .sum(D::Minus1)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(row_sums < 1e-5, "rows of p − e_y sum to zero: {row_sums}");
        let picked = g.argmin(D::Minus1).unwrap().to_vec1::<u32>().unwrap();
        let mut rows = g.to_vec2::<f32>().unwrap();
        for (row, &y) in rows.iter_mut().zip(&picked) {
            row[y as usize] += 1.0;
        }
        self.probs.lock().unwrap().push(rows);
        self.labels.lock().unwrap().push(picked);
        self.sgd.step(grads, None)
    }
    fn learning_rate(&self) -> f64 {
        self.sgd.learning_rate()
    }
    fn set_learning_rate(&mut self, lr: f64) {
        self.sgd.set_learning_rate(lr)
    }
    fn steps(&self) -> usize {
        self.sgd.steps()
    }
    fn state(&self) -> optimizers::Result<optimizers::OptimizerState> {
        self.sgd.state()
    }
    fn load_state(&mut self, s: &optimizers::OptimizerState) -> optimizers::Result<()> {
        self.sgd.load_state(s)
    }
}

/// 64 synthetic images; `std` scales the inputs (a small one makes them large, and the
/// untrained model's predictions confident).
fn data(std: f32) -> Splits {
    let n = 64;
    let images: Vec<u8> = (0..n * 6 * 6 * 2).map(|i| ((i * 37) % 251) as u8).collect();
    let set = ImageSet {
        images,
        labels: (0..n).map(|i| (i % 10) as u8).collect(),
        height: 6,
        width: 6,
        channels: 2,
        classes: 10,
    };
    Splits {
        name: "synthetic",
        train: set.clone(),
        test: set,
        norm: Normalisation {
            mean: vec![0.5; 2],
            std: vec![std; 2],
        },
        augment: false,
    }
}

/// Labels the last layer's G points at, for each step, with the given request.
fn picked_labels(request: StatsRequest, model: &str) -> Vec<Vec<u32>> {
    let (labels, _) = picked_rows(request, model, 0.3, 1, 0.01);
    assert_eq!(labels.len(), 64 / 16);
    labels
}

/// Per step, the labels the last layer's G points at and each row's predicted probabilities,
/// over `epochs` epochs of SGD at `lr` on `data(std)`.
#[allow(clippy::type_complexity)]
fn picked_rows(
    request: StatsRequest,
    model: &str,
    std: f32,
    epochs: usize,
    lr: f64,
) -> (Vec<Vec<u32>>, Vec<Vec<Vec<f32>>>) {
    harness::threads::configure(Some(2)).unwrap();
    let data = data(std);
    let mut cfg = TrainConfig::new(model, OptimizerKind::Sgd);
    cfg.batch_size = 16;
    cfg.epochs = epochs;
    let net = models::build(
        model,
        &ModelConfig {
            input: (6, 6, 2),
            classes: 10,
            seed: 4,
        },
        &Device::Cpu,
    )
    .unwrap();
    let labels = Arc::new(Mutex::new(Vec::new()));
    let probs = Arc::new(Mutex::new(Vec::new()));
    let mut opt = Checker {
        request,
        params: net.param_set(),
        sgd: build(
            OptimizerKind::Sgd,
            &net.param_set(),
            &Hyper {
                lr,
                ..Hyper::default()
            },
        )
        .unwrap(),
        labels: labels.clone(),
        probs: probs.clone(),
    };
    let learner = Learner::alone(&net, &mut opt, &Device::Cpu);
    train(&cfg, &data, learner, &mut Silent, Progress::default()).unwrap();
    let picked = labels.lock().unwrap().clone();
    let p = probs.lock().unwrap().clone();
    (picked, p)
}

#[test]
fn empirical_statistics_come_from_the_true_labels_and_reproduce_the_gradient() {
    for model in ["mlp", "resnet8"] {
        let picked = picked_labels(StatsRequest::Empirical, model);
        // Each epoch visits every image once in shuffled batches of 16: if every row of G points
        // at its image's true label, the labels picked over the epoch are the data's labels.
        assert!(picked.iter().all(|p| p.len() == 16));
        let mut counts = [0usize; 10];
        picked
            .iter()
            .flatten()
            .for_each(|&l| counts[l as usize] += 1);
        // The data set has labels i % 10 over 64 images: 7 of classes 0-3, 6 of the others.
        assert_eq!(counts, [7, 7, 7, 7, 6, 6, 6, 6, 6, 6], "{model}");
    }
}

#[test]
fn sampled_labels_follow_the_models_predictive_distribution() {
    // A model held still (a learning rate of 1e-12) and confident (large inputs), so that a
    // draw from its predictions, its argmax and a uniform draw differ; 20 epochs draw afresh
    // for the same predictions.
    let (labels, probs) = picked_rows(StatsRequest::Sampled, "mlp", 0.02, 20, 1e-12);
    let rows: Vec<(&Vec<f32>, u32)> = probs
        .iter()
        .zip(&labels)
        .flat_map(|(p, l)| p.iter().zip(l.iter().copied()))
        .collect();
    assert_eq!(rows.len(), 20 * 64);
    // For y drawn from p: E[p_y] = Σ p_j², with variance Σ p_j³ − (Σ p_j²)² per row.
    let n = rows.len() as f64;
    let (mut drawn, mut expected, mut var, mut argmax) = (0.0, 0.0, 0.0, 0.0);
    for (p, y) in &rows {
        let p: Vec<f64> = p.iter().map(|&x| x as f64).collect();
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-4 && p.iter().all(|&x| x > -1e-6));
        let sq: f64 = p.iter().map(|x| x * x).sum();
        let cube: f64 = p.iter().map(|x| x * x * x).sum();
        drawn += p[*y as usize];
        expected += sq;
        var += cube - sq * sq;
        argmax += p.iter().cloned().fold(0.0, f64::max);
    }
    let (drawn, expected, argmax) = (drawn / n, expected / n, argmax / n);
    let sd = var.sqrt() / n;
    assert!(
        (drawn - expected).abs() < 4.0 * sd,
        "mean p of the drawn labels {drawn:.4}, expected {expected:.4} ± {sd:.4}"
    );
    // The test tells the sampler from the wrong ones: the argmax's mean p and a uniform
    // draw's (0.1) are both far off.
    assert!(
        argmax - expected > 8.0 * sd && expected - 0.1 > 8.0 * sd,
        "predictions not confident enough to tell samplers apart: argmax {argmax:.4}, Σp² {expected:.4}, sd {sd:.4}"
    );
}
