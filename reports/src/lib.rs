//! Reports from the results store: convergence plots, the time-to-target table, stage-time
//! shares and regression tracking. Filled in by the reports issue; the crate exists now so the
//! workspace layout is final.
