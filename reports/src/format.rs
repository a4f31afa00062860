//! Number formats shared by the tables, and how figure titles name the hardware.

/// `37` for whole numbers, `36.5` otherwise.
pub fn epochs(e: f64) -> String {
    if (e - e.round()).abs() < 1e-9 {
        format!("{}", e.round() as i64)
    } else {
        format!("{e:.1}")
    }
}

/// `+18.76%`, `0%`, `-23.00%`, as the paper's Table 1 writes the time gap.
pub fn gap(g: f64) -> String {
    if g.abs() < 5e-5 {
        "0%".into()
    } else {
        format!("{:+.2}%", 100.0 * g)
    }
}

/// A fraction as a percentage with two decimals.
pub fn percent(f: f64) -> String {
    format!("{:.2}%", 100.0 * f)
}

/// Seconds as milliseconds with enough digits for small stages.
pub fn millis(s: f64) -> String {
    let ms = 1e3 * s;
    if ms == 0.0 {
        "0".into()
    } else if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 1.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.3}")
    }
}

/// The hardware in a figure title: the GPU (`cuda:0 (NVIDIA H200)`) when `device` is one, else
/// `CPU model, N thread(s)`.
pub fn hardware(device: &str, cpu: &str, threads: &str) -> String {
    if device != "cpu" {
        return device.to_string();
    }
    let plural = if threads == "1" { "" } else { "s" };
    format!("{cpu}, {threads} thread{plural}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hardware_names_the_gpu_or_the_cpu_and_its_threads() {
        assert_eq!(
            hardware("cuda:0 (NVIDIA H200)", "AMD EPYC", "2"),
            "cuda:0 (NVIDIA H200)"
        );
        assert_eq!(hardware("cpu", "AMD EPYC", "2"), "AMD EPYC, 2 threads");
        assert_eq!(hardware("cpu", "AMD EPYC", "1"), "AMD EPYC, 1 thread");
    }
}
