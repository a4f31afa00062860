//! The hyper-parameters of every optimizer, declared once: name, type, default and
//! documentation here, the allowed ranges in [`Hyper::validate`]. Each optimizer reads the
//! fields it uses; [`Hyper::PARAMS`] lists them for command lines and configuration files, so
//! a new field becomes a flag (`--t-cov`) and a sweep key (`t_cov`) without further code.

use crate::config::{AdamConfig, KfacConfig, SgdConfig};
use crate::curvature::shared::DistributeInverses;
use crate::curvature::{BlockOptions, DenseMethod, InverseDtype, RowAverage, WoodburyMode};
use crate::damping::{DampingSplit, FactorInit};
use crate::error::{check, Result};
use crate::fisher::Fisher;
use kinds::OptimizerKind;

kinds::settings! {
    /// Hyper-parameters of every optimizer: the union of the parts each one's config is built
    /// from ([`crate::SgdConfig`], [`crate::AdamConfig`], [`crate::KfacConfig`]), flat, so
    /// that each field is one flag and one sweep key. Each optimizer reads the fields it uses;
    /// [`Hyper::for_kind`] gives the defaults a kind trains with. The training loop's own
    /// settings (learning-rate schedule, warm-up, label smoothing) are the loop's, not these.
    pub struct Hyper {
        /// The step every optimizer takes: its rate and weight decay.
        part Step {
            /// Learning rate; a schedule's peak (Adam's default is 0.001).
            lr: f64 = 0.05;
            /// Weight decay (an L2 term in the gradient; decoupled for Adam with
            /// `decoupled_weight_decay`).
            weight_decay: f64 = 5e-4;
        }
        /// Momentum of SGD and the K-FAC family (PyTorch's convention).
        part Momentum {
            /// Momentum μ of SGD and the K-FAC family.
            momentum: f64 = 0.9;
            /// Nesterov momentum.
            nesterov: bool = false;
        }
        /// Adam's moment estimates.
        part Moments {
            /// Adam: decay of the first moment.
            beta1: f64 = 0.9;
            /// Adam: decay of the second moment.
            beta2: f64 = 0.999;
            /// Adam: added to the root of the second moment.
            eps: f64 = 1e-8;
            /// Adam: decoupled weight decay (AdamW) instead of an L2 term in the gradient.
            decoupled_weight_decay: bool = false;
        }
        /// How far the K-FAC family trusts its curvature: damping and KL clipping.
        part Damping {
            /// K-FAC family: damping λ, shared between each layer's two factors as
            /// `damping_split` says.
            damping: f64 = 1e-3;
            /// K-FAC family: λ on each factor (`each`), √λ on each (`sqrt`, the paper's code),
            /// or split by the factors' traces (`pi`).
            damping_split: DampingSplit = DampingSplit::Sqrt;
            /// K-FAC family: λ decays per step as λ·R^(epoch/E) with this R (1 = no decay).
            damping_decay: f64 = 1.0;
            /// K-FAC family: the E of `damping_decay`, in epochs.
            damping_decay_epochs: f64 = 10.0;
            /// K-FAC family: KL-clip κ (0 = off).
            kl_clip: f64 = 1e-3;
        }
        /// When the K-FAC family refreshes its statistics and inverses.
        part Periods {
            /// K-FAC family: steps between curvature-statistics refreshes (T_cov).
            t_cov: usize = 20;
            /// K-FAC family: steps between inverse refreshes (T_inv).
            t_inv: usize = 200;
            /// K-FAC family: moving-average decay β of the statistics (0 = latest batch only).
            stat_decay: f64 = 0.95;
        }
        /// How the K-FAC family forms and factorises its curvature.
        part Factors {
            /// K-FAC family: where the output-gradient rows G come from.
            fisher: Fisher = Fisher::Sampled;
            /// K-FAC and SUA: the factors' moving average starts at the first batch (`first`)
            /// or at the identity (`identity`).
            factor_init: FactorInit = FactorInit::First;
            /// K-FAC: eigendecomposition or Cholesky for the dense factors.
            dense_method: DenseMethod = DenseMethod::Eigen;
            /// K-FAC family: the precision every factorisation runs in (K-FAC's and SUA's
            /// factors, SKFAC's Woodbury systems): `f32` as kfac-pytorch, ASDL and kfac-jax
            /// invert, a failure retried in `f64` before more damping; or `f64` throughout.
            inverse_dtype: InverseDtype = InverseDtype::F32;
            /// K-FAC and SUA in a data-parallel job: each layer's inverses computed by one
            /// process (assigned greedily by cost) and shared (`on`), or by every process
            /// (`off`). A run on one process computes them all either way.
            distribute_inverses: DistributeInverses = DistributeInverses::On;
        }
        /// SKFAC's low-rank factors: which rows they hold and how they are inverted.
        part Rows {
            /// skfac-ss: spatial positions sampled per example, s'.
            samples: usize = 1;
            /// SKFAC: the factor's rows: their moving average (`ema`, the paper's eqs. 26-27),
            /// the current batch's (`batch`), or the last `row_stack` batches' stacked with
            /// moving-average weights (`stack`: K-FAC's moving average, truncated, so SKFAC
            /// trains at K-FAC's λ).
            row_average: RowAverage = RowAverage::Stack;
            /// SKFAC with `row_average = stack`: how many batches are stacked.
            row_stack: usize = 4;
            /// SKFAC: apply the Woodbury inverse without forming it, or form the n×n matrix.
            woodbury: WoodburyMode = WoodburyMode::Applied;
        }
        /// The run's seed.
        part Seed {
            /// Seeds the run: initialisation, data order, sampled labels, spatial
            /// subsampling.
            seed: u64 = 0;
        }
    }
}

impl Hyper {
    /// The defaults `kind` trains with: its config's `Default` ([`crate::SgdConfig`],
    /// [`crate::AdamConfig`], [`crate::KfacConfig`]), the other fields at theirs.
    pub fn for_kind(kind: OptimizerKind) -> Self {
        match kind {
            OptimizerKind::Sgd => SgdConfig::default().hyper(),
            OptimizerKind::Adam => AdamConfig::default().hyper(),
            OptimizerKind::Kfac
            | OptimizerKind::KfacSua
            | OptimizerKind::SkfacRs
            | OptimizerKind::SkfacSs => KfacConfig::default().hyper(),
        }
    }

    /// Rejects a value no optimizer can use, naming the field and its allowed range.
    pub fn validate(&self) -> Result<()> {
        let unit = |x: f64| (0.0..1.0).contains(&x);
        check("lr", self.lr, self.lr > 0.0, "must be > 0")?;
        check(
            "momentum",
            self.momentum,
            unit(self.momentum),
            "must be in [0, 1)",
        )?;
        check(
            "weight_decay",
            self.weight_decay,
            self.weight_decay >= 0.0,
            "must be >= 0",
        )?;
        check(
            "momentum",
            self.momentum,
            !self.nesterov || self.momentum > 0.0,
            "Nesterov momentum needs momentum > 0",
        )?;
        check("beta1", self.beta1, unit(self.beta1), "must be in [0, 1)")?;
        check("beta2", self.beta2, unit(self.beta2), "must be in [0, 1)")?;
        check("eps", self.eps, self.eps > 0.0, "must be > 0")?;
        check("damping", self.damping, self.damping > 0.0, "must be > 0")?;
        check(
            "damping_decay",
            self.damping_decay,
            self.damping_decay > 0.0,
            "must be > 0 (1 = no decay)",
        )?;
        check(
            "damping_decay_epochs",
            self.damping_decay_epochs,
            self.damping_decay_epochs > 0.0,
            "must be > 0",
        )?;
        check(
            "t_cov",
            self.t_cov as f64,
            self.t_cov >= 1,
            "must be at least 1",
        )?;
        check(
            "t_inv",
            self.t_inv as f64,
            self.t_inv >= 1,
            "must be at least 1",
        )?;
        check(
            "stat_decay",
            self.stat_decay,
            unit(self.stat_decay),
            "must be in [0, 1)",
        )?;
        check(
            "kl_clip",
            self.kl_clip,
            self.kl_clip >= 0.0,
            "must be >= 0 (0 turns it off)",
        )?;
        check(
            "row_stack",
            self.row_stack as f64,
            self.row_stack >= 1,
            "must be at least 1",
        )?;
        check(
            "samples",
            self.samples as f64,
            self.samples >= 1,
            "must be at least 1",
        )
    }

    /// How the K-FAC family inverts its factors.
    pub fn block_options(&self) -> BlockOptions {
        BlockOptions {
            dense: self.dense_method,
            precision: self.inverse_dtype,
            woodbury: self.woodbury,
            init: self.factor_init,
            split: self.damping_split,
            rows: self.row_average,
            stack: self.row_stack,
        }
    }

    /// The damping at `step` (0-based) of a run of `steps_per_epoch` steps per epoch:
    /// `λ·R^(epoch/E)` with the epoch fractional, so it decays step by step.
    pub fn damping_at(&self, step: usize, steps_per_epoch: usize) -> f64 {
        let epoch = step as f64 / steps_per_epoch.max(1) as f64;
        self.damping * self.damping_decay.powf(epoch / self.damping_decay_epochs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kinds::param::Kind;

    #[test]
    fn params_list_every_field_with_its_kind_and_doc() {
        let fields = serde_json::to_value(Hyper::default()).unwrap();
        let fields = fields.as_object().unwrap();
        assert_eq!(Hyper::PARAMS.len(), fields.len());
        for p in Hyper::PARAMS {
            assert!(fields.contains_key(p.name), "{}", p.name);
            assert!(!p.help().is_empty());
        }
        let t_cov = Hyper::PARAMS.iter().find(|p| p.name == "t_cov").unwrap();
        assert!(matches!(t_cov.kind, Kind::Count));
        assert_eq!(t_cov.flag(), "t-cov");
        let fisher = Hyper::PARAMS.iter().find(|p| p.name == "fisher").unwrap();
        assert!(matches!(fisher.kind, Kind::Choice(names) if names() == ["sampled", "empirical"]));
    }

    #[test]
    fn defaults_are_valid_and_each_bad_value_names_its_field() {
        Hyper::default().validate().unwrap();
        Hyper::for_kind(OptimizerKind::Adam).validate().unwrap();
        type Break = fn(&mut Hyper);
        let cases: [(Break, &str); 5] = [
            (|h| h.lr = 0.0, "`lr`"),
            (|h| h.stat_decay = 1.0, "`stat_decay`"),
            (|h| h.t_inv = 0, "`t_inv`"),
            (|h| h.damping = f64::NAN, "`damping`"),
            (|h| h.samples = 0, "`samples`"),
        ];
        for (break_it, field) in cases {
            let mut h = Hyper::default();
            break_it(&mut h);
            let e = h.validate().unwrap_err().to_string();
            assert!(e.contains(field), "{e}");
        }
    }

    #[test]
    fn the_decayed_damping_follows_its_closed_form() {
        let h = Hyper {
            damping: 0.03,
            damping_decay: 0.87,
            damping_decay_epochs: 10.0,
            ..Hyper::default()
        };
        // The official code's schedule, 0.03·0.87^(epoch/10), at step 550 of 100 per epoch.
        let want = 0.03 * 0.87f64.powf(5.5 / 10.0);
        assert!((h.damping_at(550, 100) - want).abs() < 1e-15);
        assert_eq!(h.damping_at(0, 100), 0.03);
        let d = Hyper::default();
        assert_eq!(d.damping_at(12_345, 7), d.damping);
    }

    #[test]
    fn a_partial_description_fills_in_the_defaults() {
        let h: Hyper = serde_json::from_str(r#"{"t_cov": 5, "fisher": "empirical"}"#).unwrap();
        assert_eq!(h.t_cov, 5);
        assert_eq!(h.fisher, Fisher::Empirical);
        assert_eq!(h.t_inv, Hyper::default().t_inv);
        assert!(serde_json::from_str::<Hyper>(r#"{"t_covv": 5}"#).is_err());
    }
}
