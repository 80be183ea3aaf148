//! Progress reporting, kept apart from the training loop: the loop calls a [`Progress`], the binary
//! passes an indicatif one, tests pass [`Silent`].

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Hooks the training loop calls.
pub trait Progress {
    /// A training run starts: `epochs` epochs of `batches` batches at most.
    fn start(&mut self, _label: &str, _epochs: usize, _batches: usize) {}
    /// The run resumes from a checkpoint with `epochs_done` epochs already trained (called after
    /// `start`).
    fn resumed(&mut self, _epochs_done: usize) {}
    /// One training batch done.
    fn batch(&mut self, _loss: f64, _lr: f64) {}
    /// Epoch `epoch` done; `summary` says how it went (`train 0.41 val mse 0.39 …`).
    fn epoch(&mut self, _epoch: usize, _summary: &str) {}
    /// Training over (early stop or last epoch).
    fn finish(&mut self) {}
}

/// Reports nothing.
pub struct Silent;

impl Progress for Silent {}

/// indicatif bars for epochs and batches (loss, lr, ETA) while stdout is a terminal; otherwise
/// (a run under `nohup`, a CI log) one plain line on stderr per epoch, so a long run still shows
/// where it is.
pub struct Bars {
    multi: MultiProgress,
    epochs: Option<ProgressBar>,
    batches: Option<ProgressBar>,
    loss_sum: f64,
    loss_count: usize,
    /// `(label, epochs)` of the run, when reporting in plain lines.
    lines: Option<(String, usize)>,
    plain: bool,
}

impl Bars {
    /// Bars drawn on stderr while stdout is a terminal, plain epoch lines otherwise.
    pub fn new() -> Self {
        let terminal = std::io::stdout().is_terminal();
        let target = if terminal {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Self {
            multi: MultiProgress::with_draw_target(target),
            epochs: None,
            batches: None,
            loss_sum: 0.0,
            loss_count: 0,
            lines: None,
            plain: !terminal,
        }
    }
}

impl Default for Bars {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for Bars {
    fn start(&mut self, label: &str, epochs: usize, batches: usize) {
        let epoch_bar = self.multi.add(ProgressBar::new(epochs as u64));
        epoch_bar.set_style(
            ProgressStyle::with_template("{prefix} epoch {pos}/{len} {wide_bar} {msg}")
                .expect("valid template"),
        );
        epoch_bar.set_prefix(label.to_string());
        let batch_bar = self.multi.add(ProgressBar::new(batches as u64));
        batch_bar.set_style(
            ProgressStyle::with_template("  batch {pos}/{len} {bar:30} {msg} ETA {eta}")
                .expect("valid template"),
        );
        batch_bar.enable_steady_tick(Duration::from_millis(200));
        self.epochs = Some(epoch_bar);
        self.batches = Some(batch_bar);
        if self.plain {
            self.lines = Some((label.to_string(), epochs));
        }
    }

    fn resumed(&mut self, epochs_done: usize) {
        if let Some(bar) = &self.epochs {
            bar.set_position(epochs_done as u64);
        }
        if let Some((label, epochs)) = &self.lines {
            let _ = writeln!(
                std::io::stderr().lock(),
                "{label}: resumed from the checkpoint after epoch {epochs_done}/{epochs}"
            );
        }
    }

    fn batch(&mut self, loss: f64, lr: f64) {
        self.loss_sum += loss;
        self.loss_count += 1;
        if let Some(bar) = &self.batches {
            bar.inc(1);
            if self.loss_count % 16 == 1 {
                bar.set_message(format!(
                    "loss {:.4} lr {lr:.2e}",
                    self.loss_sum / self.loss_count as f64
                ));
            }
        }
    }

    fn epoch(&mut self, epoch: usize, summary: &str) {
        self.loss_sum = 0.0;
        self.loss_count = 0;
        if let Some(bar) = &self.epochs {
            bar.inc(1);
            bar.set_message(summary.to_string());
        }
        if let Some(bar) = &self.batches {
            bar.reset();
        }
        if let Some((label, epochs)) = &self.lines {
            // Best effort, as the bars: a closed stderr does not stop the run.
            let _ = writeln!(
                std::io::stderr().lock(),
                "{label} epoch {epoch}/{epochs}: {summary}"
            );
        }
    }

    fn finish(&mut self) {
        self.lines = None;
        for bar in [self.batches.take(), self.epochs.take()]
            .into_iter()
            .flatten()
        {
            bar.finish_and_clear();
        }
    }
}
