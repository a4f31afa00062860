//! What a run records about the code and hardware that produced it.

fn git(args: &[&str]) -> Option<String> {
    std::process::Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// Tags pointing at `commit` (a `-dirty` suffix is ignored), as git knows them now; `None`
/// when git cannot answer (no repository, unknown commit).
pub fn tags_of(commit: &str) -> Option<Vec<String>> {
    let commit = commit.trim_end_matches("-dirty");
    git(&["tag", "--points-at", commit]).map(|s| s.lines().map(str::to_string).collect())
}

/// Tags pointing at the working tree's commit.
pub fn git_tags() -> Vec<String> {
    tags_of("HEAD").unwrap_or_default()
}

/// The git commit of the working tree (`-dirty` when it has changes), or `unknown`.
pub fn git_commit() -> String {
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
