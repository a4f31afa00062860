//! The observer that logs a run into the store and checkpoints it.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;
use indicatif::ProgressBar;

use crate::checkpoint::Checkpoints;
use crate::console::{duration, remaining, say, validation_note, Output};
use crate::store::{EpochRow, IterationRow, Store};
use crate::train::machine_load::busy_note;
use crate::train::{EpochMetrics, Observer, RunState, StepRecord};

/// Iteration rows per transaction: one commit every few hundred steps keeps logging far below
/// 1% of the step time.
const FLUSH_ROWS: usize = 256;

pub(super) struct Recorder<'a> {
    pub store: &'a Store,
    pub run: i64,
    pub checkpoints: &'a Checkpoints,
    pub stop: &'a AtomicBool,
    /// Set when another process has taken this run's lease over.
    pub lost: &'a AtomicBool,
    pub bar: &'a ProgressBar,
    pub buffer: Vec<IterationRow>,
    pub output: Output,
    /// The run as lines name it: `run 3/9 resnet8 kfac seed 0`.
    pub label: &'a str,
    pub epochs: usize,
    /// Logical CPUs, against which an epoch's load average makes the machine busy.
    pub cores: usize,
    /// Hand the CPU to the sweep's next run after each epoch ([`super::spec::RunOrder`]).
    pub take_turns: bool,
}

/// The observer of processes other than 0 in a data-parallel sweep: they record nothing, but
/// their Ctrl-C stops the job too (the training loop shares the flag in its all-reduce).
pub(super) struct Follower<'a> {
    pub stop: &'a AtomicBool,
}

impl Observer for Follower<'_> {
    fn should_stop(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

impl Recorder<'_> {
    pub fn flush(&mut self) -> Result<()> {
        self.store.write_iterations(self.run, &self.buffer)?;
        self.buffer.clear();
        Ok(())
    }
}

impl Observer for Recorder<'_> {
    fn epoch_started(&mut self, _epoch: usize, steps: usize) {
        self.bar.set_length(steps as u64);
        self.bar.set_position(0);
        self.bar.reset_eta();
    }

    fn step_done(&mut self, step_in_epoch: usize, rec: &StepRecord) -> Result<()> {
        self.buffer.push(IterationRow {
            step: rec.step,
            epoch: rec.epoch,
            loss: rec.loss,
            lr: rec.lr,
            times: rec.times,
            traffic: rec.traffic,
        });
        if self.buffer.len() >= FLUSH_ROWS {
            self.flush()?;
        }
        self.bar.set_position(step_in_epoch as u64 + 1);
        Ok(())
    }

    fn epoch_done(&mut self, m: &EpochMetrics, state: &RunState<'_>) -> Result<()> {
        // Rows first, then the checkpoint: a kill in between leaves rows past the previous
        // checkpoint, which the resume deletes.
        self.flush()?;
        self.store.write_epoch(
            self.run,
            &EpochRow {
                epoch: m.epoch,
                train_loss: m.train_loss,
                train_accuracy: m.train_accuracy,
                test_loss: m.test_loss,
                test_accuracy: m.test_accuracy,
                wall_seconds: m.train_seconds,
                learning_rate: m.learning_rate,
                epoch_seconds: Some(m.epoch_seconds),
                cpu_seconds: Some(m.cpu_seconds),
                load_average: m.load_average,
                validation_loss: m.validation_loss,
                validation_accuracy: m.validation_accuracy,
                probe_seconds: m.probe_seconds,
            },
        )?;
        self.checkpoints.save(state)?;
        let busy = busy_note(m.load_average, self.cores);
        let val = validation_note(m);
        match self.output {
            Output::Bars => self.bar.println(format!(
                "  epoch {:>3}  train loss {:.4}  {val}test acc {:5.2}%  {:.0} s{busy}",
                m.epoch,
                m.train_loss,
                100.0 * m.test_accuracy,
                m.train_seconds
            )),
            Output::Lines => say!(
                "{}: epoch {}/{}, {val}test acc {:.2}%, train loss {:.4}, {:.0} img/s, {} elapsed, ~{} left{busy}",
                self.label,
                m.epoch,
                self.epochs,
                100.0 * m.test_accuracy,
                m.train_loss,
                m.images_per_second,
                duration(m.train_seconds),
                duration(remaining(m.train_seconds, m.epoch, self.epochs))
            ),
            Output::Quiet | Output::Silent => {}
        }
        Ok(())
    }

    fn should_stop(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.lost.load(Ordering::Relaxed)
    }

    fn interrupted(&mut self, state: &RunState<'_>) -> Result<()> {
        self.flush()?;
        self.checkpoints.save(state)
    }

    fn pause_after_epoch(&self) -> bool {
        self.take_turns
    }
}
