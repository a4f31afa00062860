//! Number formats shared by the tables.

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
