//! The `own_model` example keeps working: a user's candle-nn convnet, its layers from a
//! `Curvature` and its optimizer `KfacOptimizer`, trains on real Fashion-MNIST with SKFAC-RS.

#[path = "../examples/own_model.rs"]
mod own_model;

#[test]
fn the_own_model_example_learns_fashion_mnist() {
    harness::threads::configure(Some(2)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let history = own_model::train(&own_model::Options {
        epochs: 1,
        train_images: 1280,
        test_images: 1000,
        data_dir: dir.path().into(),
    })
    .unwrap();
    let (loss, accuracy) = history[0];
    // 40 steps with 4 statistics and 1 inverse refresh; chance is 10%.
    assert!(loss.is_finite() && loss < 2.0, "loss {loss}");
    assert!(accuracy > 0.5, "test accuracy {accuracy}");
}
