//! Progress on long transfers: a bar with bytes, rate and ETA when stderr is
//! a terminal, nothing otherwise (scripts get `--json` events instead).

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use indicatif::{ProgressBar, ProgressStyle};
use jet_core::ft_app::ProgressFn;

/// The bars on screen, so that a line printed while one is drawn
/// ([`eprint_line`]) first clears it and draws it again below the line:
/// no bar stays half-drawn among other output.
static SHOWN: Mutex<Vec<ProgressBar>> = Mutex::new(Vec::new());

/// Prints `line` on stderr, suspending the bar on screen (if any) around it.
pub fn eprint_line(line: &str) {
    let shown = SHOWN.lock().unwrap_or_else(|e| e.into_inner());
    match shown.iter().find(|b| !b.is_finished()) {
        Some(bar) => bar.suspend(|| eprintln!("{line}")),
        None => eprintln!("{line}"),
    }
}

/// A progress display for one transfer.
#[derive(Clone)]
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar for `total` bytes labelled `label`, hidden when stderr is not a TTY.
    pub fn new(total: u64, label: &str) -> Self {
        if !std::io::stderr().is_terminal() {
            return Progress { bar: None };
        }
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:>16} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        bar.set_message(label.to_string());
        let mut shown = SHOWN.lock().unwrap_or_else(|e| e.into_inner());
        shown.retain(|b| !b.is_finished());
        shown.push(bar.clone());
        Progress { bar: Some(bar) }
    }

    /// The callback the file-transfer applications call.
    pub fn callback(&self) -> ProgressFn {
        let bar = self.bar.clone();
        Arc::new(move |done, _total| {
            if let Some(b) = &bar {
                b.set_position(done);
            }
        })
    }

    /// Ends the display.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
            SHOWN
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|s| !s.is_finished());
        }
    }
}
