//! Construction by kind: the one place that knows every optimizer type.

use crate::adam::Adam;
use crate::error::Result;
use crate::hyper::Hyper;
use crate::kfac::Kfac;
use crate::layer::ParamSet;
use crate::optimizer::Optimizer;
use crate::sgd::Sgd;
use kinds::OptimizerKind;

/// Builds the optimizer `kind` over `params`, after checking `h` ([`Hyper::validate`]).
pub fn build(kind: OptimizerKind, params: &ParamSet, h: &Hyper) -> Result<Box<dyn Optimizer>> {
    Ok(match kind {
        OptimizerKind::Sgd => Box::new(Sgd::from_hyper(params.all(), h.clone())?),
        OptimizerKind::Adam => Box::new(Adam::from_hyper(params.all(), h.clone())?),
        OptimizerKind::Kfac
        | OptimizerKind::KfacSua
        | OptimizerKind::SkfacRs
        | OptimizerKind::SkfacSs => Box::new(Kfac::new(params, kind, h.clone())?),
    })
}
