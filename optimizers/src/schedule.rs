//! Learning-rate schedules of the paper's §4, as functions of the iteration.

use crate::error::{check, Result};
use kinds::choice;

choice! {
    /// Which [`LrSchedule`] a training loop uses.
    pub enum ScheduleKind as "schedule" {
        /// Linear warm-up, then cosine annealing to `min_lr` (the paper's CIFAR-10 protocol).
        WarmupCosine = "warmup-cosine",
        /// Inverse-polynomial decay with a half-life (the paper's ImageNet protocol).
        Poly = "poly",
        /// `lr` throughout.
        Constant = "constant",
    }
}

/// A learning rate as a function of the 0-based iteration ([`LrSchedule::at`]); every length
/// is in steps.
#[derive(Clone, Debug, PartialEq)]
pub enum LrSchedule {
    /// `lr` at every step.
    Constant {
        /// The rate.
        lr: f64,
    },
    /// Linear warm-up from `lr/warmup` to `lr` over `warmup` steps, then cosine annealing to
    /// `min_lr` at `total` steps (CIFAR-10 protocol, SGDR without restarts).
    WarmupCosine {
        /// Peak rate, reached at the end of the warm-up.
        lr: f64,
        /// Warm-up steps (0 for none).
        warmup: usize,
        /// Steps of the whole run, warm-up included; the rate stays at `min_lr` after.
        total: usize,
        /// The rate the cosine ends at.
        min_lr: f64,
    },
    /// Inverse-polynomial decay that halves the rate after `half_life` steps (ImageNet
    /// protocol: 0.025 with a half-life of 5 epochs):
    /// `lr(t) = lr · (1 + (2^{1/p} − 1)·t/h)^{−p}`, so `lr(h) = lr/2` for every power `p`.
    PolyHalfLife {
        /// Rate at step 0.
        lr: f64,
        /// Steps after which the rate has halved, `h`.
        half_life: f64,
        /// Power `p`; larger decays faster after the half-life.
        power: f64,
    },
}

impl LrSchedule {
    /// Rejects a schedule [`LrSchedule::at`] cannot follow (non-positive rates or lengths, a
    /// warm-up as long as the run), naming the field.
    pub fn validate(&self) -> Result<()> {
        match *self {
            LrSchedule::Constant { lr } => check("lr", lr, lr > 0.0, "must be positive"),
            LrSchedule::WarmupCosine {
                lr,
                warmup,
                total,
                min_lr,
            } => {
                check("lr", lr, lr > 0.0, "must be positive")?;
                check(
                    "min_lr",
                    min_lr,
                    (0.0..=lr).contains(&min_lr),
                    "must be in [0, lr]",
                )?;
                check(
                    "warmup",
                    warmup as f64,
                    warmup < total.max(1),
                    "must be shorter than the run",
                )
            }
            LrSchedule::PolyHalfLife {
                lr,
                half_life,
                power,
            } => {
                check("lr", lr, lr > 0.0, "must be positive")?;
                check("half_life", half_life, half_life > 0.0, "must be positive")?;
                check("power", power, power > 0.0, "must be positive")
            }
        }
    }

    /// The learning rate for iteration `step` (0-based).
    pub fn at(&self, step: usize) -> f64 {
        let t = step as f64;
        match *self {
            LrSchedule::Constant { lr } => lr,
            LrSchedule::WarmupCosine {
                lr,
                warmup,
                total,
                min_lr,
            } => {
                if step < warmup {
                    lr * (t + 1.0) / warmup as f64
                } else {
                    let span = (total.saturating_sub(warmup)).max(1) as f64;
                    let p = ((t - warmup as f64) / span).min(1.0);
                    min_lr + 0.5 * (lr - min_lr) * (1.0 + (std::f64::consts::PI * p).cos())
                }
            }
            LrSchedule::PolyHalfLife {
                lr,
                half_life,
                power,
            } => {
                let k = 2f64.powf(1.0 / power) - 1.0;
                lr * (1.0 + k * t / half_life).powf(-power)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_is_linear_then_cosine_reaches_min() {
        let s = LrSchedule::WarmupCosine {
            lr: 0.1,
            warmup: 10,
            total: 110,
            min_lr: 0.0,
        };
        s.validate().unwrap();
        assert!((s.at(0) - 0.01).abs() < 1e-12);
        assert!((s.at(4) - 0.05).abs() < 1e-12);
        assert!((s.at(10) - 0.1).abs() < 1e-12);
        // Half-way through the cosine phase the rate is half the peak.
        assert!((s.at(60) - 0.05).abs() < 1e-12);
        assert!(s.at(110).abs() < 1e-12);
        assert!(s.at(500).abs() < 1e-12);
        for t in 10..110 {
            assert!(s.at(t + 1) <= s.at(t));
        }
    }

    #[test]
    fn half_life_halves_for_every_power() {
        for power in [0.5, 1.0, 2.0] {
            let s = LrSchedule::PolyHalfLife {
                lr: 0.025,
                half_life: 500.0,
                power,
            };
            s.validate().unwrap();
            assert!((s.at(0) - 0.025).abs() < 1e-15);
            assert!((s.at(500) - 0.0125).abs() < 1e-12, "power {power}");
        }
        // With p = 1 it is lr / (1 + t/h): a third of the peak after two half-lives.
        let s = LrSchedule::PolyHalfLife {
            lr: 0.3,
            half_life: 10.0,
            power: 1.0,
        };
        assert!((s.at(20) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn invalid_schedules_are_rejected() {
        assert!(LrSchedule::Constant { lr: 0.0 }.validate().is_err());
        assert!(LrSchedule::WarmupCosine {
            lr: 0.1,
            warmup: 100,
            total: 50,
            min_lr: 0.0
        }
        .validate()
        .is_err());
        assert!(LrSchedule::PolyHalfLife {
            lr: 0.1,
            half_life: 0.0,
            power: 1.0
        }
        .validate()
        .is_err());
    }
}
