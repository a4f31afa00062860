//! How the damping λ reaches the two Kronecker factors, and how a factor's moving average
//! starts (docs/algorithms.md, "Damping and failed factorisations").

use kinds::choice;

choice! {
    /// How λ is shared between a layer's two factors `Ω` and `Γ`.
    pub enum DampingSplit as "damping split" {
        /// λ added to each factor (the paper's eqs. 13-14).
        Each = "each",
        /// √λ added to each factor (the paper's official code).
        Sqrt = "sqrt",
        /// `r·π` to `Ω` and `r/π` to `Γ`, with `r = √λ` and `π² = (tr Ω / dim Ω) / (tr Γ / dim Γ)`
        /// (Martens & Grosse 2015, §6.3).
        Pi = "pi",
    }
}

choice! {
    /// Where a factor's moving average starts.
    pub enum FactorInit as "factor init" {
        /// At the first batch's statistic, taken as it is.
        First = "first",
        /// At the identity: the first batch gives `β·I + (1−β)·batch`.
        Identity = "identity",
    }
}

impl DampingSplit {
    /// `(λ_Ω, λ_Γ)` for damping `lambda`, given each factor's mean diagonal `tr F / dim F`.
    /// The π split falls back to π = 1 where a trace is zero or not finite.
    pub fn split(self, lambda: f64, omega_mean_diag: f64, gamma_mean_diag: f64) -> (f64, f64) {
        match self {
            DampingSplit::Each => (lambda, lambda),
            DampingSplit::Sqrt => (lambda.sqrt(), lambda.sqrt()),
            DampingSplit::Pi => {
                let r = lambda.sqrt();
                let pi = (omega_mean_diag / gamma_mean_diag).sqrt();
                let pi = if pi.is_finite() && pi > 0.0 { pi } else { 1.0 };
                (r * pi, r / pi)
            }
        }
    }
}
