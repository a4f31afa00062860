//! What a run records about the code and hardware that produced it.

/// The git commit of the working tree (`-dirty` when it has changes), or `unknown`.
pub fn git_commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(c) if !c.is_empty() => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{c}-dirty")
            } else {
                c
            }
        }
        _ => "unknown".into(),
    }
}

/// Versions of this harness and of the crates that do the arithmetic, as JSON.
pub fn crate_versions() -> String {
    serde_json::json!({
        "skfac": env!("CARGO_PKG_VERSION"),
        // Vendored with one patch to its backward pass (third_party/README.md).
        "candle-core": "0.11.1+skfac-backprop",
        "faer": "0.23",
    })
    .to_string()
}

/// The CPU's model name from /proc/cpuinfo, or `unknown`.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}
