//! The progress bar of a run: drawn to stderr while a run is under way, only when stderr is
//! a terminal and the report is not JSON, and cleared before the run's row is printed.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

const TEMPLATE: &str = "{msg} [{wide_bar}] {human_pos}/{human_len} ops, eta {eta}";
const WINDOW_TEMPLATE: &str = "{msg} [{wide_bar}] {pos}/{len} ms";

/// Whether runs draw a progress bar.
pub(crate) fn wanted(json: bool) -> bool {
    !json && std::io::stderr().is_terminal()
}

/// A bar for `ops` operations, labelled `label`; hidden unless `visible`.
pub(crate) fn bar(visible: bool, ops: u64, label: String) -> ProgressBar {
    styled(visible, ops, TEMPLATE, label)
}

/// A bar for a timed run of `window`, in milliseconds, labelled `label`; hidden unless
/// `visible`.
pub(crate) fn window_bar(visible: bool, window: Duration, label: String) -> ProgressBar {
    let ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
    styled(visible, ms, WINDOW_TEMPLATE, label)
}

/// A bar of length `len` drawn with `template`, labelled `label`; hidden unless `visible`.
fn styled(visible: bool, len: u64, template: &str, label: String) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    // A template that does not parse leaves the default style: a cosmetic loss only.
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(label);
    bar
}
