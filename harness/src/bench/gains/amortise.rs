//! Composing the per-iteration stage times of a run at periods `T_cov` and `T_inv` (the
//! paper's Fig. 3) from a few timed steps of each kind, instead of running `T_inv` steps.
//!
//! A K-FAC-family step is one of: a plain step (precondition with the current inverses), a
//! statistics step (also captures `A`, `G` and folds them into the factors: dearer forward,
//! backward and statistics stages) and an inverse refresh (whose inverse stage is the rest).
//! Over a long run a fraction `1/T_cov` of the steps gather statistics and `1/T_inv` refresh
//! the inverses, so the mean step is `P + (S − P)/T_cov + I/T_inv` per stage, with `P` the
//! plain step, `S` the statistics step without its inverse stage, and `I` the inverse stage
//! of a refresh. That holds for any pair of periods, multiples of each other or not.

use crate::train::StepTimes;

/// Index of the inverse stage in [`StepTimes::values`].
const INVERSE: usize = 3;

/// Which kind a step of the measuring schedule is: the optimizer runs with `t_cov` =
/// [`MEASURE_T_COV`] and `t_inv` = [`MEASURE_T_INV`], so every cycle of four steps holds one
/// refresh (with statistics), one statistics step and two plain steps.
pub const MEASURE_T_COV: usize = 2;
pub const MEASURE_T_INV: usize = 4;

/// The kind of the step with global index `k` under the measuring schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepKind {
    Plain,
    Statistics,
    Refresh,
}

impl StepKind {
    pub fn of(k: usize) -> StepKind {
        if k.is_multiple_of(MEASURE_T_INV) {
            StepKind::Refresh
        } else if k.is_multiple_of(MEASURE_T_COV) {
            StepKind::Statistics
        } else {
            StepKind::Plain
        }
    }
}

/// Sums of the timed steps of one optimizer, by kind.
#[derive(Clone, Debug, Default)]
pub struct KindTimes {
    plain: [f64; 7],
    plain_n: usize,
    /// Statistics and refresh steps, their inverse stage left out.
    stats: [f64; 7],
    stats_n: usize,
    inverse: f64,
    inverse_n: usize,
}

fn mean(sum: &[f64; 7], n: usize) -> [f64; 7] {
    sum.map(|v| v / n.max(1) as f64)
}

impl KindTimes {
    /// Adds a timed step of `kind`. A first-order optimizer's steps are all plain whatever
    /// their index (`second_order` false).
    pub fn add(&mut self, kind: StepKind, second_order: bool, t: &StepTimes) {
        let v = t.values();
        let add = |sum: &mut [f64; 7], n: &mut usize, skip_inverse: bool| {
            for (i, (s, x)) in sum.iter_mut().zip(v).enumerate() {
                if !(skip_inverse && i == INVERSE) {
                    *s += x;
                }
            }
            *n += 1;
        };
        match (second_order, kind) {
            (false, _) | (true, StepKind::Plain) => add(&mut self.plain, &mut self.plain_n, false),
            (true, StepKind::Statistics) => add(&mut self.stats, &mut self.stats_n, true),
            (true, StepKind::Refresh) => {
                add(&mut self.stats, &mut self.stats_n, true);
                self.inverse += v[INVERSE];
                self.inverse_n += 1;
            }
        }
    }

    /// Mean seconds of a plain step, per stage.
    pub fn plain(&self) -> [f64; 7] {
        mean(&self.plain, self.plain_n)
    }

    /// Mean seconds of a statistics step (its inverse stage excluded); a plain step's when
    /// none was timed (first-order optimizers).
    pub fn statistics(&self) -> [f64; 7] {
        if self.stats_n == 0 {
            self.plain()
        } else {
            mean(&self.stats, self.stats_n)
        }
    }

    /// Mean seconds of one inverse refresh.
    pub fn inverse(&self) -> f64 {
        self.inverse / self.inverse_n.max(1) as f64
    }

    /// Steps timed in all.
    pub fn steps(&self) -> usize {
        self.plain_n + self.stats_n
    }

    /// Mean seconds per step of each stage in a run with statistics every `t_cov` steps and
    /// inverses every `t_inv` steps.
    pub fn amortised(&self, t_cov: usize, t_inv: usize) -> [f64; 7] {
        let (p, s) = (self.plain(), self.statistics());
        let mut out: [f64; 7] = std::array::from_fn(|i| p[i] + (s[i] - p[i]) / t_cov as f64);
        out[INVERSE] += self.inverse() / t_inv as f64;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn times(v: [f64; 7]) -> StepTimes {
        StepTimes::from_values(v)
    }

    const P: [f64; 7] = [1.0, 2.0, 0.0, 0.0, 0.5, 0.0, 0.1];
    const S: [f64; 7] = [1.5, 3.0, 0.7, 0.0, 0.5, 0.0, 0.1];
    const INV: f64 = 40.0;

    fn timed() -> KindTimes {
        let mut k = KindTimes::default();
        for step in 1..=8 {
            let kind = StepKind::of(step);
            let mut v = if kind == StepKind::Plain { P } else { S };
            if kind == StepKind::Refresh {
                v[INVERSE] = INV;
            }
            k.add(kind, true, &times(v));
        }
        k
    }

    /// The oracle: the mean over one whole period of a real schedule, step by step (a step
    /// gathers statistics when `k % t_cov == 0` and refreshes when `k % t_inv == 0`).
    fn enumerated(t_cov: usize, t_inv: usize) -> [f64; 7] {
        let period = (1..).map(|m| m * t_cov).find(|m| m % t_inv == 0).unwrap();
        let mut sum = [0.0; 7];
        for k in 0..period {
            let mut v = if k % t_cov == 0 { S } else { P };
            if k % t_inv == 0 {
                v[INVERSE] += INV;
            }
            for (s, x) in sum.iter_mut().zip(v) {
                *s += x;
            }
        }
        sum.map(|s| s / period as f64)
    }

    #[test]
    fn the_composition_equals_the_mean_over_a_whole_period() {
        let k = timed();
        assert_eq!(k.steps(), 8);
        for (t_cov, t_inv) in [(20, 200), (2, 4), (10, 50), (3, 7), (5, 1), (1, 1)] {
            let got = k.amortised(t_cov, t_inv);
            let want = enumerated(t_cov, t_inv);
            for (g, w) in got.iter().zip(want) {
                assert!(
                    (g - w).abs() < 1e-12,
                    "{t_cov}/{t_inv}: {got:?} vs {want:?}"
                );
            }
        }
        // By hand at the paper's periods: 190 plain steps, 10 with statistics, one refresh.
        let a = k.amortised(20, 200);
        assert!((a[0] - (190.0 * 1.0 + 10.0 * 1.5) / 200.0).abs() < 1e-12);
        assert!((a[INVERSE] - 0.2).abs() < 1e-12);
    }

    #[test]
    fn a_first_order_optimizer_is_its_plain_step() {
        let mut k = KindTimes::default();
        for step in 1..=8 {
            k.add(StepKind::of(step), false, &times(P));
        }
        let got = k.amortised(20, 200);
        assert!(
            got.iter().zip(P).all(|(g, p)| (g - p).abs() < 1e-12),
            "{got:?}"
        );
    }
}
