//! The training loop's own settings: the learning-rate schedule and the loss's label
//! smoothing. They are flags and sweep keys like the optimizers' [`optimizers::Hyper`], by the
//! same mechanism ([`LoopSettings::PARAMS`]), but no optimizer reads them.

use optimizers::error::check;
use optimizers::{LrSchedule, Result, ScheduleKind};

kinds::settings! {
    /// How the loop around the optimizer trains.
    pub struct LoopSettings {
        /// Learning-rate schedule.
        schedule: ScheduleKind = ScheduleKind::WarmupCosine;
        /// warmup-cosine: linear warm-up length in epochs (may be fractional).
        warmup_epochs: f64 = 0.0;
        /// warmup-cosine: the rate the cosine anneals to.
        min_lr: f64 = 0.0;
        /// poly: epochs after which the rate has halved.
        half_life_epochs: f64 = 5.0;
        /// Label smoothing ε of the training loss (0 = none).
        label_smoothing: f64 = 0.0;
    }
}

impl LoopSettings {
    /// Rejects a value no run can use, naming the field and its allowed range.
    pub fn validate(&self) -> Result<()> {
        let (w, m, h) = (self.warmup_epochs, self.min_lr, self.half_life_epochs);
        check("warmup_epochs", w, w >= 0.0, "must be >= 0")?;
        check("min_lr", m, m >= 0.0, "must be >= 0")?;
        check("half_life_epochs", h, h > 0.0, "must be > 0")?;
        let s = self.label_smoothing;
        check(
            "label_smoothing",
            s,
            (0.0..1.0).contains(&s),
            "must be in [0, 1)",
        )
    }

    /// The schedule of a run of `epochs` epochs of `steps_per_epoch` steps that peaks at `lr`.
    pub fn lr_schedule(&self, lr: f64, epochs: usize, steps_per_epoch: usize) -> LrSchedule {
        let per = steps_per_epoch as f64;
        match self.schedule {
            ScheduleKind::Constant => LrSchedule::Constant { lr },
            ScheduleKind::WarmupCosine => LrSchedule::WarmupCosine {
                lr,
                warmup: (self.warmup_epochs * per).round() as usize,
                total: epochs * steps_per_epoch,
                min_lr: self.min_lr,
            },
            ScheduleKind::Poly => LrSchedule::PolyHalfLife {
                lr,
                half_life: self.half_life_epochs * per,
                power: 1.0,
            },
        }
    }
}
