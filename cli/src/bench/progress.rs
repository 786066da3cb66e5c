//! The progress bar of a run: drawn to stderr while a run is under way, only when stderr is
//! a terminal and the report is not JSON, and cleared before the run's row is printed.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

const TEMPLATE: &str = "{msg} [{wide_bar}] {human_pos}/{human_len} ops, eta {eta}";

/// Whether runs draw a progress bar.
pub(crate) fn wanted(json: bool) -> bool {
    !json && std::io::stderr().is_terminal()
}

/// A bar for `ops` operations, labelled `label`; hidden unless `visible`.
pub(crate) fn bar(visible: bool, ops: u64, label: String) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(ops), ProgressDrawTarget::stderr());
    // A template that does not parse leaves the default style: a cosmetic loss only.
    if let Ok(style) = ProgressStyle::with_template(TEMPLATE) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(label);
    bar
}
