//! `skfac bench-step --op-times`: the kernel table lists the network's own layers.

mod common;
use common::skfac;

#[test]
fn op_times_lists_each_layer_of_the_mlp_once_a_step() {
    let args = [
        "bench-step",
        "mlp",
        "4",
        "1",
        "--steps",
        "2",
        "--warmup",
        "1",
        "--op-times",
    ];
    let (ok, text) = skfac(&args);
    assert!(ok, "{text}");
    // The MLP's three Linear layers (784 → 512 → 256 → 10) and its two ReLUs, forward and
    // backward, each once per step.
    for (kernel, shape) in [
        ("matmul_t", "4×784 · (512×784)ᵀ"),
        ("matmul_t", "4×512 · (256×512)ᵀ"),
        ("matmul_t", "4×256 · (10×256)ᵀ"),
        ("matmul_t backward", "4×784 · (512×784)ᵀ"),
        ("relu", "4×512"),
        ("relu backward", "4×256"),
    ] {
        let row = text
            .lines()
            .find(|l| l.ends_with(&format!("  {kernel:<24}  {shape}")))
            .unwrap_or_else(|| panic!("no row for {kernel} {shape} in\n{text}"));
        let calls = row.split_whitespace().nth(2);
        assert_eq!(calls, Some("1"), "{row}");
    }
    assert!(text.contains("the rest: candle's own ops"), "{text}");
}
