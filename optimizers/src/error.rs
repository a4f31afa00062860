//! Errors of this crate: candle's own, and configuration mistakes a user can fix.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error("unknown {what} `{name}`; valid choices: {valid}")]
    UnknownChoice {
        what: &'static str,
        name: String,
        valid: String,
    },
    #[error("optimizer state: {0}")]
    State(String),
    #[error("invalid hyper-parameter `{field}` = {value}: {why}")]
    InvalidHyper {
        field: &'static str,
        value: f64,
        why: &'static str,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

/// Rejects a hyper-parameter outside its valid range with a message naming it.
pub(crate) fn check(field: &'static str, value: f64, ok: bool, why: &'static str) -> Result<()> {
    if ok && value.is_finite() {
        Ok(())
    } else {
        Err(Error::InvalidHyper { field, value, why })
    }
}
