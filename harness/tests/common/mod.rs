//! What several test files share.

use std::process::Command;

/// Runs the `skfac` binary; returns whether it succeeded and its stdout and stderr together.
/// Whatever the input, it must never panic.
pub fn skfac(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_skfac"))
        .args(args)
        .output()
        .expect("skfac runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("panicked"), "{text}");
    (out.status.success(), text)
}
