//! SGD with momentum, weight decay and optional Nesterov momentum ([`crate::momentum`]).

use std::collections::BTreeMap;

use candle_core::backprop::GradStore;
use candle_core::Device;
use serde_json::json;

use crate::error::Result;
use crate::hyper::Hyper;
use crate::layer::{device_of, LayerStats, NamedVar};
use crate::momentum::MomentumBuffers;
use crate::optimizer::Optimizer;
use crate::state::OptimizerState;
use crate::timing::{StageTimes, Stopwatch};

/// Reads `lr`, `momentum`, `weight_decay` and `nesterov` of its [`Hyper`].
pub struct Sgd {
    params: Vec<NamedVar>,
    /// Where the parameters live, for the stopwatch.
    device: Device,
    /// Whether steps time their stages ([`Optimizer::set_timing`]).
    timing: bool,
    momentum: MomentumBuffers,
    hyper: Hyper,
    /// The learning rate of the next step: `hyper.lr` until a schedule sets another.
    lr: f64,
    steps: usize,
}

impl Sgd {
    /// SGD over `params`; fails if `hyper` does not pass [`Hyper::validate`].
    pub fn from_hyper(params: Vec<NamedVar>, hyper: Hyper) -> Result<Self> {
        hyper.validate()?;
        Ok(Sgd {
            device: device_of(&params),
            timing: false,
            momentum: MomentumBuffers::new(params.len()),
            params,
            lr: hyper.lr,
            hyper,
            steps: 0,
        })
    }
}

impl Optimizer for Sgd {
    fn name(&self) -> String {
        "sgd".into()
    }

    fn step(&mut self, grads: &GradStore, _stats: Option<&[LayerStats]>) -> Result<StageTimes> {
        let mut sw = Stopwatch::start_if(self.timing, &self.device);
        for (i, p) in self.params.iter().enumerate() {
            let Some(g) = grads.get(p.var.as_tensor()) else {
                continue;
            };
            let h = &self.hyper;
            self.momentum.step(i, self.lr, h, p.var.as_tensor(), g)?;
        }
        self.steps += 1;
        Ok(StageTimes {
            update: sw.lap(),
            ..StageTimes::default()
        })
    }

    fn set_timing(&mut self, on: bool) {
        self.timing = on;
    }

    fn learning_rate(&self) -> f64 {
        self.lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.lr = lr;
    }

    fn steps(&self) -> usize {
        self.steps
    }

    fn state(&self) -> Result<OptimizerState> {
        let mut tensors = BTreeMap::new();
        self.momentum.save("momentum", &mut tensors)?;
        let meta =
            json!({"name": "sgd", "steps": self.steps, "lr": self.lr, "params": self.params.len()});
        Ok(OptimizerState { meta, tensors })
    }

    fn load_state(&mut self, s: &OptimizerState) -> Result<()> {
        s.expect_name("sgd")?;
        s.expect_params(self.params.len())?;
        self.momentum.load("momentum", &s.tensors)?;
        self.steps = s.usize_field("steps")?;
        self.lr = s.f64_field("lr")?;
        Ok(())
    }
}
