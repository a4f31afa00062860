//! Each optimizer's configuration, built from the parts of [`Hyper`] it reads: SGD from a
//! [`Step`] and its [`Momentum`], Adam from a [`Step`] and its [`Moments`], the K-FAC family
//! from a [`Step`], [`Momentum`], [`Damping`], [`Periods`], [`Factors`], SKFAC's [`Rows`] and a
//! [`Seed`]. Their `Default`s are the defaults each trains with; the parts' fields are
//! declared once, in [`Hyper`], which is their union (one flag and one sweep key each).

use crate::hyper::{Damping, Factors, Hyper, Moments, Momentum, Periods, Rows, Seed, Step};

/// SGD's settings. `Default`: lr 0.05, weight decay 5e-4 (an L2 term), momentum 0.9, no
/// Nesterov.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SgdConfig {
    /// Learning rate and weight decay.
    pub step: Step,
    /// Momentum μ (0: plain SGD, as `candle_nn::SGD`) and Nesterov's variant.
    pub momentum: Momentum,
}

/// Adam's settings. `Default`: lr 1e-3, weight decay 5e-4 as an L2 term
/// (`moments.decoupled_weight_decay` makes it AdamW's), β₁ 0.9, β₂ 0.999, ε 1e-8.
#[derive(Clone, Debug, PartialEq)]
pub struct AdamConfig {
    /// Learning rate and weight decay.
    pub step: Step,
    /// β₁, β₂, ε and whether weight decay is decoupled.
    pub moments: Moments,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            step: Step {
                lr: 1e-3,
                ..Step::default()
            },
            moments: Moments::default(),
        }
    }
}

/// The K-FAC family's settings (K-FAC, SUA, SKFAC-RS and SKFAC-SS; `rows` is SKFAC's).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KfacConfig {
    /// Learning rate and weight decay.
    pub step: Step,
    /// The momentum step the preconditioned gradient takes.
    pub momentum: Momentum,
    /// Damping λ, its split and decay, and KL clipping.
    pub damping: Damping,
    /// T_cov, T_inv and the statistics' moving average.
    pub periods: Periods,
    /// Fisher, initial factors, factorisation and its precision.
    pub factors: Factors,
    /// SKFAC's rows: s', their average, Woodbury.
    pub rows: Rows,
    /// Seeds the sampled labels and SKFAC-SS's spatial subsampling.
    pub seed: Seed,
}

impl SgdConfig {
    /// The [`Hyper`] of these settings, the fields SGD does not read at their defaults.
    pub fn hyper(&self) -> Hyper {
        Hyper::default()
            .with(self.step.clone())
            .with(self.momentum.clone())
    }
}

impl AdamConfig {
    /// The [`Hyper`] of these settings, the fields Adam does not read at their defaults.
    pub fn hyper(&self) -> Hyper {
        Hyper::default()
            .with(self.step.clone())
            .with(self.moments.clone())
    }
}

impl KfacConfig {
    /// The [`Hyper`] of these settings, the fields the K-FAC family does not read at their
    /// defaults.
    pub fn hyper(&self) -> Hyper {
        Hyper::default()
            .with(self.step.clone())
            .with(self.momentum.clone())
            .with(self.damping.clone())
            .with(self.periods.clone())
            .with(self.factors.clone())
            .with(self.rows.clone())
            .with(self.seed.clone())
    }
}

impl From<&Hyper> for SgdConfig {
    fn from(h: &Hyper) -> Self {
        SgdConfig {
            step: h.into(),
            momentum: h.into(),
        }
    }
}

impl From<&Hyper> for AdamConfig {
    fn from(h: &Hyper) -> Self {
        AdamConfig {
            step: h.into(),
            moments: h.into(),
        }
    }
}

impl From<&Hyper> for KfacConfig {
    fn from(h: &Hyper) -> Self {
        KfacConfig {
            step: h.into(),
            momentum: h.into(),
            damping: h.into(),
            periods: h.into(),
            factors: h.into(),
            rows: h.into(),
            seed: h.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OptimizerKind;

    #[test]
    fn defaults_are_the_crate_defaults_and_adam_has_its_own_rate() {
        assert_eq!(SgdConfig::default().hyper(), Hyper::default());
        assert_eq!(KfacConfig::default().hyper(), Hyper::default());
        assert_eq!(AdamConfig::default().step.lr, 1e-3);
        assert_eq!(Hyper::for_kind(OptimizerKind::Adam).lr, 1e-3);
        assert_eq!(Hyper::for_kind(OptimizerKind::SkfacSs).lr, 0.05);
    }

    #[test]
    fn every_field_of_hyper_is_in_the_kfac_config_or_a_first_order_one() {
        // A Hyper with no field at its default survives the trip through the configs that read
        // its fields: none is dropped between a part and the union.
        let odd = Hyper {
            lr: 0.3,
            weight_decay: 0.1,
            momentum: 0.5,
            nesterov: true,
            beta1: 0.8,
            beta2: 0.99,
            eps: 1e-6,
            decoupled_weight_decay: true,
            damping: 0.2,
            damping_split: crate::DampingSplit::Pi,
            damping_decay: 0.5,
            damping_decay_epochs: 3.0,
            kl_clip: 0.01,
            t_cov: 3,
            t_inv: 7,
            stat_decay: 0.5,
            fisher: crate::Fisher::Empirical,
            factor_init: crate::FactorInit::Identity,
            dense_method: crate::curvature::DenseMethod::Cholesky,
            inverse_dtype: crate::curvature::InverseDtype::F64,
            distribute_inverses: crate::curvature::shared::DistributeInverses::Off,
            samples: 4,
            row_average: crate::curvature::RowAverage::Ema,
            row_stack: 2,
            woodbury: crate::curvature::WoodburyMode::Formed,
            seed: 9,
        };
        let back = KfacConfig::from(&odd).hyper().with(Moments::from(&odd));
        assert_eq!(back, odd);
        assert_eq!(SgdConfig::from(&odd).hyper().momentum, 0.5);
        assert_eq!(AdamConfig::from(&odd).hyper().beta2, 0.99);
    }
}
