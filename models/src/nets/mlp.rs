use candle_core::{Result, Tensor};

use crate::builder::Builder;
use crate::layers::Linear;
use crate::module::{Ctx, Module};
use crate::ops::relu;

/// Fully connected ReLU network on flattened inputs (SKFAC's fully connected case, §3.1).
pub struct Mlp {
    layers: Vec<Linear>,
}

impl Mlp {
    /// Linear layers `inputs → hidden[0] → … → classes`, named `fc1`, `fc2`, …, with ReLU
    /// between them. The input is flattened from its second axis, so `inputs` is `H·W·C`.
    ///
    /// # Errors
    ///
    /// When a parameter cannot be created.
    pub fn new(b: &mut Builder, inputs: usize, hidden: &[usize], classes: usize) -> Result<Self> {
        let mut dims = vec![inputs];
        dims.extend_from_slice(hidden);
        dims.push(classes);
        let layers = dims
            .windows(2)
            .enumerate()
            .map(|(i, d)| b.linear(&format!("fc{}", i + 1), d[0], d[1], true))
            .collect::<Result<_>>()?;
        Ok(Mlp { layers })
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        let mut h = x.flatten_from(1)?;
        for (i, l) in self.layers.iter().enumerate() {
            h = l.forward(&h, ctx)?;
            if i + 1 < self.layers.len() {
                h = relu(&h)?;
            }
        }
        Ok(h)
    }
}
