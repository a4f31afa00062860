//! What kind of value each hyper-parameter takes, so that a command line or a configuration
//! file can offer, parse and check every field of the optimizers' `Hyper` without naming it.

/// The kind of value of one hyper-parameter.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// A real number.
    Real,
    /// A whole number `>= 0`.
    Count,
    /// On or off; on the command line a flag without a value.
    Flag,
    /// One of a list of names ([`crate::choice::Choice::names`]).
    Choice(fn() -> Vec<&'static str>),
}

/// Types a hyper-parameter may have.
pub trait ParamValue {
    /// How values of the type are offered and parsed.
    const KIND: Kind;
}

impl ParamValue for f64 {
    const KIND: Kind = Kind::Real;
}

impl ParamValue for usize {
    const KIND: Kind = Kind::Count;
}

impl ParamValue for u64 {
    const KIND: Kind = Kind::Count;
}

impl ParamValue for bool {
    const KIND: Kind = Kind::Flag;
}

/// One hyper-parameter as the optimizers' `Hyper::PARAMS` lists it.
#[derive(Clone, Copy, Debug)]
pub struct Param {
    /// The field's name, which is also the sweep-file key (`t_cov`).
    pub name: &'static str,
    /// The field's documentation.
    pub doc: &'static str,
    /// The kind of value it takes.
    pub kind: Kind,
}

impl Param {
    /// The command-line flag without its dashes: `t-cov`.
    pub fn flag(&self) -> String {
        self.name.replace('_', "-")
    }

    /// The documentation as one line.
    pub fn help(&self) -> String {
        self.doc.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}
