//! Oracles shared by the K-FAC-family tests, independent of the crate's own linear algebra.
#![allow(dead_code)]

use candle_core::{DType, Device, Result, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// A `[r, c]` tensor of standard-ish normal entries (Box-Muller), scaled.
pub fn randn(r: usize, c: usize, scale: f64, dtype: DType, rng: &mut ChaCha8Rng) -> Result<Tensor> {
    let v: Vec<f64> = (0..r * c)
        .map(|_| {
            let (u1, u2): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
            scale * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
        })
        .collect();
    Tensor::from_vec(v, (r, c), &Device::Cpu)?.to_dtype(dtype)
}

pub fn mat(t: &Tensor) -> Vec<Vec<f64>> {
    t.to_dtype(DType::F64).unwrap().to_vec2::<f64>().unwrap()
}

pub fn from_rows(m: &[Vec<f64>]) -> Tensor {
    let (r, c) = (m.len(), m[0].len());
    Tensor::from_vec(m.concat(), (r, c), &Device::Cpu).unwrap()
}

/// Gauss-Jordan inverse with partial pivoting, in f64.
pub fn inverse(m: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let n = m.len();
    let mut a: Vec<Vec<f64>> = m
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let mut r = row.clone();
            r.extend((0..n).map(|j| if i == j { 1.0 } else { 0.0 }));
            r
        })
        .collect();
    for col in 0..n {
        let p = (col..n)
            .max_by(|&x, &y| a[x][col].abs().total_cmp(&a[y][col].abs()))
            .unwrap();
        a.swap(col, p);
        let d = a[col][col];
        a[col].iter_mut().for_each(|x| *x /= d);
        for r in 0..n {
            if r != col {
                let f = a[r][col];
                if f != 0.0 {
                    let pivot = a[col].clone();
                    a[r].iter_mut().zip(&pivot).for_each(|(x, p)| *x -= f * p);
                }
            }
        }
    }
    a.into_iter().map(|r| r[n..].to_vec()).collect()
}

pub fn matmul(a: &[Vec<f64>], b: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let (n, k, m) = (a.len(), b.len(), b[0].len());
    (0..n)
        .map(|i| {
            (0..m)
                .map(|j| (0..k).map(|l| a[i][l] * b[l][j]).sum())
                .collect()
        })
        .collect()
}

pub fn transpose(a: &[Vec<f64>]) -> Vec<Vec<f64>> {
    (0..a[0].len())
        .map(|j| a.iter().map(|r| r[j]).collect())
        .collect()
}

/// `YᵀY/N + λI`.
pub fn damped_gram(y: &[Vec<f64>], damping: f64) -> Vec<Vec<f64>> {
    let n = y.len() as f64;
    let mut g = matmul(&transpose(y), y);
    for (i, row) in g.iter_mut().enumerate() {
        row.iter_mut().for_each(|x| *x /= n);
        row[i] += damping;
    }
    g
}

/// `‖a − b‖_F / ‖b‖_F`.
pub fn rel_err(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    let (mut num, mut den) = (0.0, 0.0);
    for (ra, rb) in a.iter().zip(b) {
        for (x, y) in ra.iter().zip(rb) {
            num += (x - y) * (x - y);
            den += y * y;
        }
    }
    (num / den).sqrt()
}
