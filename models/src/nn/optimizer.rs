//! candle-nn's `Optimizer` for the K-FAC family over the layers a [`Curvature`] made: one
//! `backward_step(&loss)` a step, with the capture, the statistics, the true Fisher's label
//! sampling (seeded from its own step counter) and the inverses on their periods inside.

use std::sync::Arc;

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use candle_nn::VarMap;
use optimizers::{
    Communicator, Kfac, KfacConfig, NamedVar, Optimizer as _, OptimizerKind, OptimizerState,
    ParamSet, StatsRequest,
};

use super::Curvature;
use crate::label_sampling::fisher_seed;

/// What a [`KfacOptimizer`] is: its kind (`kfac`, `kfac-sua`, `skfac-rs`, `skfac-ss`), the
/// [`Curvature`] whose layers it preconditions, and its settings.
#[derive(Clone)]
pub struct KfacOptimizerConfig {
    /// Which member of the family.
    pub kind: OptimizerKind,
    /// The layers to precondition; the model must have been built from it.
    pub curvature: Curvature,
    /// Learning rate, momentum, damping, periods, factors, SKFAC's rows, seed;
    /// [`KfacOptimizerConfig::new`] gives the defaults.
    pub settings: KfacConfig,
}

impl KfacOptimizerConfig {
    /// `kind` over `curvature`'s layers with the defaults it trains with.
    pub fn new(kind: OptimizerKind, curvature: &Curvature) -> Self {
        KfacOptimizerConfig {
            kind,
            curvature: curvature.clone(),
            settings: KfacConfig::default(),
        }
    }
}

/// A K-FAC-family optimizer as candle-nn's `Optimizer`: `backward_step(&loss)` after each
/// forward pass of the model built from the config's [`Curvature`]. It tells the `Curvature`
/// before every forward pass whether to capture (so construct it before the first training
/// pass; an evaluation pass in between captures too, at some cost, and changes nothing), and
/// for the true Fisher samples labels from the logits, which it takes to be the last
/// K-FAC-ready layer's output (a classifier ending in `linear`); a model whose logits come
/// later passes them, [`KfacOptimizer::backward_step_with_logits`].
///
/// To save and restore its state ([`KfacOptimizer::state`], [`KfacOptimizer::load_state`]),
/// build it with [`KfacOptimizer::from_varmap`], which knows the variables by name: candle-nn's
/// `new` gets them in `varmap.all_vars()`'s order, which changes from one map to the next.
pub struct KfacOptimizer {
    inner: Kfac,
    curvature: Curvature,
    /// This process's rank in a data-parallel job (0 alone).
    shard: usize,
}

impl KfacOptimizer {
    /// One step on the gradients of `loss`, sampling the true Fisher's labels from `logits`.
    ///
    /// # Errors
    ///
    /// As candle-nn's `backward_step`, and when a layer captured nothing.
    pub fn backward_step_with_logits(&mut self, loss: &Tensor, logits: &Tensor) -> Result<()> {
        self.step_with(&loss.backward()?, Some(logits))
    }

    fn step_with(&mut self, grads: &GradStore, logits: Option<&Tensor>) -> Result<()> {
        let result = self.take_step(grads, logits);
        // Arm the next pass as the optimizer now asks, also after a failure, so that a retry
        // captures what the step needs.
        self.curvature.capture_next(self.inner.stats_request());
        result
    }

    fn take_step(&mut self, grads: &GradStore, logits: Option<&Tensor>) -> Result<()> {
        let stats = if self.inner.stats_request() == StatsRequest::None {
            // Whatever a pass captured is not this step's to fold in.
            self.curvature.capture_next(StatsRequest::None);
            None
        } else {
            let seed = fisher_seed(self.inner.hyper().seed, self.inner.steps());
            self.curvature.collect(logits, grads, seed, self.shard)?
        };
        self.inner.step(grads, stats.as_deref())?;
        Ok(())
    }

    /// The optimizer over `varmap`'s variables, known by name: the [`Curvature`]'s layers are
    /// preconditioned, every other variable takes momentum SGD steps. Its state can be saved
    /// and restored into an optimizer built the same way over another map of the same model.
    ///
    /// # Errors
    ///
    /// As [`candle_nn::Optimizer::new`].
    pub fn from_varmap(varmap: &VarMap, config: KfacOptimizerConfig) -> Result<Self> {
        let params = config.curvature.param_set(varmap);
        Self::over(params, config)
    }

    fn over(params: ParamSet, config: KfacOptimizerConfig) -> Result<Self> {
        let inner = Kfac::new(&params, config.kind, config.settings.hyper())?;
        config.curvature.capture_next(inner.stats_request());
        Ok(KfacOptimizer {
            inner,
            curvature: config.curvature,
            shard: 0,
        })
    }

    /// Everything needed to continue bit-exactly from this step boundary.
    ///
    /// # Errors
    ///
    /// When a tensor cannot be copied.
    pub fn state(&self) -> Result<OptimizerState> {
        Ok(self.inner.state()?)
    }

    /// Restores a [`KfacOptimizer::state`] of an optimizer over the same model, and captures
    /// on the next pass as the restored step asks.
    ///
    /// # Errors
    ///
    /// When the state belongs to another optimizer or model.
    pub fn load_state(&mut self, state: &OptimizerState) -> Result<()> {
        self.inner.load_state(state)?;
        self.curvature.capture_next(self.inner.stats_request());
        Ok(())
    }

    /// The steps in an epoch, which a decaying damping (`damping_decay` ≠ 1) counts its epochs
    /// in; needed before the first step when it decays.
    pub fn set_steps_per_epoch(&mut self, steps: usize) {
        self.inner.set_steps_per_epoch(steps);
    }

    /// The K-FAC-family optimizer inside: its state to save and load, its step count, its
    /// blocks.
    pub fn inner(&self) -> &Kfac {
        &self.inner
    }

    /// The optimizer inside, to change (setting the damping, say; restore a state with
    /// [`KfacOptimizer::load_state`], which also arms the capture).
    pub fn inner_mut(&mut self) -> &mut Kfac {
        &mut self.inner
    }

    /// For data-parallel training over equal shards: the other processes, with which the
    /// statistics are exchanged (averaging the gradients stays the loop's job, as with any
    /// candle-nn optimizer).
    pub fn set_communicator(&mut self, comm: Arc<dyn Communicator>) {
        self.shard = comm.rank();
        self.inner.set_communicator(comm);
    }
}

impl candle_nn::Optimizer for KfacOptimizer {
    type Config = KfacOptimizerConfig;

    /// The optimizer over `vars`: the [`Curvature`]'s layers among them are preconditioned,
    /// the rest (BatchNorm scales, embeddings) take momentum SGD steps, in the order given.
    /// Every layer of the `Curvature` must be among `vars`.
    fn new(vars: Vec<Var>, config: KfacOptimizerConfig) -> Result<Self> {
        let vars: Vec<NamedVar> = vars
            .into_iter()
            .filter(|v| v.dtype().is_float())
            .enumerate()
            .map(|(i, var)| NamedVar {
                name: format!("param{i}"),
                var,
            })
            .collect();
        let ids: std::collections::HashSet<_> = vars.iter().map(|v| v.var.id()).collect();
        let params = config.curvature.params_from(vars);
        for layer in &params.layers {
            let mut own = std::iter::once(&layer.weight).chain(layer.bias.as_ref());
            if !own.all(|v| ids.contains(&v.id())) {
                candle_core::bail!(
                    "layer {} of the Curvature is not among the variables given: pass \
                     varmap.all_vars() of the map the model was built from",
                    layer.name
                );
            }
        }
        Self::over(params, config)
    }

    fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step_with(grads, None)
    }

    fn learning_rate(&self) -> f64 {
        self.inner.learning_rate()
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.inner.set_learning_rate(lr)
    }
}
