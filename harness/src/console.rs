//! What `skfac train` and `skfac sweep` print: progress bars on a terminal, one plain line per
//! epoch and per run elsewhere (a log file, `| tee`, CI), the mean stage times and, in a
//! data-parallel job, the communication per step.

use std::io::IsTerminal;

use crate::train::StepTimes;
use indicatif::{ProgressBar, ProgressStyle};

use crate::train::machine_load::{busy_note, cores};
use crate::train::{EpochMetrics, Observer, RunState, StepRecord};

/// `println!` that ignores a closed stdout (e.g. `skfac train ... | head`) instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}
pub(crate) use say;

/// How much a command prints while it trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Progress bars, with the epoch lines above them (standard output is a terminal).
    Bars,
    /// One plain line per epoch and per run (standard output is a file or a pipe).
    Lines,
    /// One line per run only (`--quiet`).
    Quiet,
    /// Nothing (the other processes of a data-parallel job).
    Silent,
}

impl Output {
    /// Bars where standard output and standard error are terminals, else plain lines;
    /// `quiet` keeps only the per-run lines.
    pub fn detect(quiet: bool) -> Output {
        if quiet {
            Output::Quiet
        } else if std::io::stdout().is_terminal() && std::io::stderr().is_terminal() {
            Output::Bars
        } else {
            Output::Lines
        }
    }

    /// Whether epoch lines are printed.
    pub fn epochs(self) -> bool {
        matches!(self, Output::Bars | Output::Lines)
    }
}

/// `1h02m`, `3m05s`, `42s`.
pub fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match (s / 3600, (s / 60) % 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}

/// Training seconds left after `done` of `total` epochs took `elapsed`.
pub fn remaining(elapsed: f64, done: usize, total: usize) -> f64 {
    elapsed / done.max(1) as f64 * total.saturating_sub(done) as f64
}

/// Totals of one kind of collective call: the steps that made one, seconds, seconds waiting
/// for the slowest process, bytes.
#[derive(Clone, Copy, Debug, Default)]
struct Calls {
    steps: usize,
    seconds: f64,
    waiting: f64,
    bytes: u64,
}

impl Calls {
    fn add(&mut self, seconds: f64, waiting: f64, bytes: u64) {
        if bytes > 0 {
            self.steps += 1;
            self.seconds += seconds;
            self.waiting += waiting;
            self.bytes += bytes;
        }
    }

    fn per_call(&self) -> String {
        let n = self.steps.max(1) as f64;
        format!(
            "{:.2} ms ({:.2} ms of it waiting for the slowest process), {:.3} MB",
            1e3 * self.seconds / n,
            1e3 * self.waiting / n,
            self.bytes as f64 / n / 1e6
        )
    }
}

/// Prints epochs and drives a progress bar, as `output` says; in a data-parallel job only
/// process 0 prints ([`Output::Silent`] on the others).
pub struct Console {
    bar: Option<ProgressBar>,
    epochs: usize,
    output: Output,
    /// Logical CPUs, against which an epoch's load average makes the machine busy.
    cores: usize,
    gradients: Calls,
    statistics: Calls,
    inverses: Calls,
}

impl Console {
    pub fn new(epochs: usize, output: Output) -> Self {
        Console {
            bar: None,
            epochs,
            output,
            cores: cores(),
            gradients: Calls::default(),
            statistics: Calls::default(),
            inverses: Calls::default(),
        }
    }

    /// The communication per process, for a data-parallel run of `steps` steps.
    pub fn communication(&self, strategy: &str, steps: usize) -> String {
        let mut s = format!(
            "communication per process: gradient all-reduce {} per step; statistics exchange ({strategy}) {} per statistics step ({} of {steps} steps)",
            self.gradients.per_call(),
            self.statistics.per_call(),
            self.statistics.steps,
        );
        if self.inverses.steps > 0 {
            s.push_str(&format!(
                "; inverses shared {} per refresh ({} refreshes)",
                self.inverses.per_call(),
                self.inverses.steps
            ));
        }
        s
    }
}

/// `mean per step: forward 1.23 ms, ... (step 9.87 ms)`.
/// `val acc 48.20%, ` when the epoch was evaluated on a validation split, else nothing: for
/// an epoch line, before its test accuracy.
pub fn validation_note(m: &EpochMetrics) -> String {
    m.validation_accuracy
        .map_or_else(String::new, |a| format!("val acc {:.2}%, ", 100.0 * a))
}

pub fn stage_line(t: &StepTimes) -> String {
    format!("mean per step: {}", t.describe(true))
}

impl Observer for Console {
    fn epoch_started(&mut self, epoch: usize, steps: usize) {
        if self.output != Output::Bars {
            return;
        }
        let bar = ProgressBar::new(steps as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "epoch {prefix} [{bar:30}] {pos}/{len} steps, loss {msg} ({per_sec}, eta {eta})",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(format!("{}/{}", epoch + 1, self.epochs));
        self.bar = Some(bar);
    }

    fn step_done(&mut self, _step: usize, rec: &StepRecord) -> anyhow::Result<()> {
        let t = &rec.traffic;
        self.gradients.add(
            t.gradient_seconds,
            t.gradient_wait_seconds,
            t.gradient_bytes,
        );
        self.statistics.add(
            t.statistics_seconds,
            t.statistics_wait_seconds,
            t.statistics_bytes,
        );
        self.inverses
            .add(t.inverse_seconds, t.inverse_wait_seconds, t.inverse_bytes);
        if let Some(b) = &self.bar {
            b.set_message(format!("{:.4}", rec.loss));
            b.inc(1);
        }
        Ok(())
    }

    fn epoch_done(&mut self, m: &EpochMetrics, _state: &RunState<'_>) -> anyhow::Result<()> {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        if !self.output.epochs() {
            return Ok(());
        }
        say!(
            "epoch {:>3}/{}  train loss {:.4} acc {:5.2}%  |  {}test loss {:.4} acc {:5.2}%  |  {:.1} img/s, {} training, ~{} left, lr {:.2e}{}",
            m.epoch,
            self.epochs,
            m.train_loss,
            100.0 * m.train_accuracy,
            m.validation_loss.zip(m.validation_accuracy).map_or_else(String::new, |(l, a)| {
                format!("val loss {l:.4} acc {:5.2}%  |  ", 100.0 * a)
            }),
            m.test_loss,
            100.0 * m.test_accuracy,
            m.images_per_second,
            duration(m.train_seconds),
            duration(remaining(m.train_seconds, m.epoch, self.epochs)),
            m.learning_rate,
            busy_note(m.load_average, self.cores)
        );
        Ok(())
    }
}
