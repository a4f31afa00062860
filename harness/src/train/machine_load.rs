//! How busy the machine was while a run trained: the 1-minute load average and the process's
//! CPU seconds. Another job on a shared machine slows a run's steps without any sign in its
//! own numbers; these let the report tell such times from comparable ones.

use std::time::{Duration, Instant};

/// Logical CPUs of this machine (1 where unknown).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The 1-minute load average from `/proc/loadavg`; `None` where there is none (not Linux).
pub fn load_average() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Seconds this process has run on any CPU, user and system, over all of its threads.
pub fn cpu_seconds() -> f64 {
    // SAFETY: getrusage(2) fills the zeroed struct we own; RUSAGE_SELF cannot fail.
    let u = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    secs(u.ru_utime) + secs(u.ru_stime)
}

/// Times a fixed CPU workload on one thread (arithmetic on 16 KiB, in the core's cache) and
/// returns its seconds, the fastest of [`PROBE_REPEATS`] timings (about 13 ms each, 65 ms in
/// all, on a 2-core AMD EPYC (Zen 3) VM): a short interruption, such as the training's worker
/// threads winding down, lengthens one timing, while a slowed machine lengthens all of them.
/// On a machine slowed by what the load average cannot see (other guests of a shared host,
/// frequency throttling), it takes longer; the report compares it with the median over a
/// workload's epochs ([`reports::busy::slowdown`]).
pub fn speed_probe() -> f64 {
    let mut times = [0.0; PROBE_REPEATS];
    for t in &mut times {
        let mut v = [1.0f32; 4096];
        let started = Instant::now();
        for _ in 0..PROBE_ROUNDS {
            for x in v.iter_mut() {
                *x = x.mul_add(0.999_9, 1e-4);
            }
            std::hint::black_box(&mut v);
        }
        *t = started.elapsed().as_secs_f64();
    }
    times.iter().copied().fold(f64::INFINITY, f64::min)
}

/// Timings the probe takes the fastest of, and rounds over its array in each.
pub const PROBE_REPEATS: usize = 5;
const PROBE_ROUNDS: usize = 1_000;

/// `, machine busy (load 3.9 on 2 cores)` when an epoch's mean load average makes the machine
/// busy by the report's rule, else nothing: for the end of a console line.
pub fn busy_note(load_average: Option<f64>, cores: usize) -> String {
    match load_average {
        Some(l) if reports::busy::is_busy(l, cores) => {
            let s = if cores == 1 { "" } else { "s" };
            format!(", machine busy (load {l:.1} on {cores} core{s})")
        }
        _ => String::new(),
    }
}

/// Reads the load average at step boundaries, at most once a second (it changes no faster:
/// the kernel updates it every 5 s), but at least once in every epoch.
#[derive(Debug, Default)]
pub struct LoadSampler {
    last: Option<Instant>,
}

impl LoadSampler {
    /// Adds a reading to an epoch's `sum` and `samples` when it has none yet or a second has
    /// passed since the last.
    pub fn sample(&mut self, sum: &mut f64, samples: &mut usize) {
        if *samples > 0
            && self
                .last
                .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        self.last = Some(Instant::now());
        if let Some(l) = load_average() {
            *sum += l;
            *samples += 1;
        }
    }
}

/// The mean of an epoch's readings; `None` without any.
pub fn mean_load(sum: f64, samples: usize) -> Option<f64> {
    (samples > 0).then(|| sum / samples as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_seconds_grow_with_work_and_the_sampler_reads_once_a_second() {
        let before = cpu_seconds();
        let mut x = 0u64;
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        assert!(cpu_seconds() - before > 0.01, "{x}");

        let (mut sum, mut n) = (0.0, 0);
        let mut s = LoadSampler::default();
        for _ in 0..100 {
            s.sample(&mut sum, &mut n);
        }
        if cfg!(target_os = "linux") {
            assert_eq!(n, 1, "a hundred step boundaries within a second read once");
            assert!(mean_load(sum, n).is_some_and(|l| l >= 0.0));
            // A new epoch (its count reset) reads again at once.
            let (mut sum2, mut n2) = (0.0, 0);
            s.sample(&mut sum2, &mut n2);
            assert_eq!(n2, 1);
        }
    }

    #[test]
    fn the_console_note_follows_the_report_rule() {
        assert_eq!(busy_note(None, 2), "");
        assert_eq!(busy_note(Some(2.5), 2), "");
        assert_eq!(
            busy_note(Some(3.94), 2),
            ", machine busy (load 3.9 on 2 cores)"
        );
    }
}
