//! Errors of this crate: candle's own, and configuration mistakes a user can fix.

/// What can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed: mismatched shapes or dtypes, a tensor on an unsupported
    /// device, statistics for the wrong number of layers.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A name that is not one of a [`crate::Choice`]'s values.
    #[error(transparent)]
    UnknownChoice(#[from] kinds::UnknownChoice),
    /// A saved optimizer state that cannot be read, or that belongs to another optimizer or
    /// model.
    #[error("optimizer state: {0}")]
    State(String),
    /// A hyper-parameter outside its valid range ([`crate::Hyper::validate`]).
    #[error("invalid hyper-parameter `{field}` = {value}: {why}")]
    InvalidHyper {
        /// The field's name.
        field: &'static str,
        /// The rejected value (counts converted to `f64`).
        value: f64,
        /// The allowed range, in words.
        why: &'static str,
    },
    /// A setting this optimizer does not define.
    #[error("`{field}` = {value} is not defined for {optimizer}: {why}")]
    Unsupported {
        /// The field's name.
        field: &'static str,
        /// Its value, by name.
        value: &'static str,
        /// The optimizer.
        optimizer: &'static str,
        /// Why, and what to use instead.
        why: &'static str,
    },
}

/// `std::result::Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Rejects a setting outside its valid range (or not finite) with a message naming it: the
/// optimizers' [`crate::Hyper::validate`] and a training loop's own settings alike.
pub fn check(field: &'static str, value: f64, ok: bool, why: &'static str) -> Result<()> {
    if ok && value.is_finite() {
        Ok(())
    } else {
        Err(Error::InvalidHyper { field, value, why })
    }
}

/// For candle-nn's `Optimizer` trait, whose methods return candle's error: candle's own pass
/// through, the rest become a message.
impl From<Error> for candle_core::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Candle(c) => c,
            other => candle_core::Error::Msg(other.to_string()),
        }
    }
}
