//! The benchmarks, in one place: a training step's stage times (`skfac bench-step`), the
//! wall-clock gains at the paper's periods (`skfac bench-gains`), K-FAC's inverses
//! (`skfac bench-inverse`) and the regression check between benchmark records
//! (`skfac regress`). Their command lines are in `commands/bench.rs`, their records in
//! `store/bench.rs`, their arithmetic in the `reports` crate.

pub mod gains;
pub mod inverse;
pub mod regress;
pub mod step;
