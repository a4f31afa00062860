//! The per-kernel wall-clock record (`ops::record_op_times`): what it lists is exactly the
//! kernels this test calls, at their shapes, as often as it calls them. Its own test binary:
//! the record is process-wide, so no other test may run kernels meanwhile.

use std::time::Instant;

use candle_core::{Device, Result, Tensor, Var};
use models::ops::{batch_norm, conv2d_tiled, max_pool2d, record_op_times, take_op_times, Window};

#[test]
fn lists_each_kernel_called_with_its_shape_and_calls() -> Result<()> {
    let dev = Device::Cpu;
    let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, 6, 5, 3), &dev)?)?;
    let w = Var::from_tensor(&Tensor::randn(0f32, 0.3, (4, 27), &dev)?)?;
    let win = Window {
        kh: 3,
        kw: 3,
        stride: 1,
        padding: 1,
    };
    let (gamma, beta) = (
        Tensor::ones(4, x.dtype(), &dev)?,
        Tensor::zeros(4, x.dtype(), &dev)?,
    );

    // Not recording: nothing is kept.
    conv2d_tiled(x.as_tensor(), w.as_tensor(), win)?;
    assert!(take_op_times().is_empty());

    record_op_times(true);
    let start = Instant::now();
    let y = conv2d_tiled(x.as_tensor(), w.as_tensor(), win)?;
    let y = conv2d_tiled(x.as_tensor(), w.as_tensor(), win)?.add(&y)?;
    let (z, _) = batch_norm(&y, &gamma, &beta, 1e-5)?;
    let pooled = max_pool2d(&z.reshape((2, 6, 5, 4))?, Window::POOL_2X2)?;
    pooled.sum_all()?.backward()?;
    let wall = start.elapsed().as_secs_f64();
    record_op_times(false);

    let times = take_op_times();
    let mut got: Vec<(&str, &str, u64)> = times
        .iter()
        .map(|t| (t.op, t.shape.as_str(), t.calls))
        .collect();
    got.sort();
    let conv = "2×6×5×3 → 4, 3×3/1";
    assert_eq!(
        got,
        [
            ("batch_norm", "60×4", 1),
            ("batch_norm backward", "60×4", 1),
            ("conv2d dW", conv, 2),
            ("conv2d dX", conv, 2),
            ("conv2d forward", conv, 2),
            ("max_pool2d", "2×6×5×4", 1),
            ("max_pool2d backward", "2×6×5×4", 1),
        ]
    );
    // Largest first, each took some time, and together no more than the calls around them.
    assert!(times.windows(2).all(|p| p[0].seconds >= p[1].seconds));
    assert!(times.iter().all(|t| t.seconds > 0.0));
    assert!(times.iter().map(|t| t.seconds).sum::<f64>() <= wall);
    // Taking clears the record.
    assert!(take_op_times().is_empty());
    Ok(())
}
