//! Peak resident memory of one run, from Linux's `/proc/self`.
//!
//! Writing `5` to `/proc/self/clear_refs` resets the process's peak RSS (`VmHWM`) to its
//! current RSS (Linux 4.0 and later); `VmHWM` read after the run is then the run's peak.
//! Where the reset is refused, `VmHWM` is the peak of the whole process so far, and the
//! report says so; where `/proc` cannot be read at all, the peak is unknown. Nothing here
//! fails the benchmark.

use serde::Serialize;

/// What a reported peak RSS covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RssScope {
    /// The peak of this run alone: it was reset before the run began.
    Run,
    /// The peak of the whole process so far: the reset failed.
    Process,
    /// No figure: `/proc/self/status` cannot be read.
    Unavailable,
}

impl RssScope {
    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            RssScope::Run => "run",
            RssScope::Process => "process",
            RssScope::Unavailable => "unavailable",
        }
    }
}

/// Resets the peak RSS to the current RSS, if the kernel lets us.
///
/// Returns whether the peak read after this covers only what follows.
pub(crate) fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The peak RSS (`VmHWM`) and the current RSS (`VmRSS`) in bytes, if readable.
pub(crate) fn read() -> (Option<u64>, Option<u64>) {
    match std::fs::read_to_string("/proc/self/status") {
        Ok(status) => (status_field(&status, "VmHWM:"), status_field(&status, "VmRSS:")),
        Err(_) => (None, None),
    }
}

/// The value of a `kB` field of `/proc/self/status`, in bytes.
fn status_field(status: &str, name: &str) -> Option<u64> {
    let line = status.lines().find_map(|line| line.strip_prefix(name))?;
    let mut words = line.split_whitespace();
    let kib: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") => kib.checked_mul(1024),
        _ => None,
    }
}

/// Measures one run's peak RSS: created just before the run, finished just after.
#[derive(Debug)]
pub(crate) struct PeakRss {
    reset: bool,
    start_bytes: Option<u64>,
}

/// A finished [`PeakRss`] measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PeakRssReport {
    /// The peak, in bytes.
    pub(crate) peak_bytes: Option<u64>,
    /// What the peak covers.
    pub(crate) scope: RssScope,
    /// The RSS when the run began, in bytes.
    pub(crate) start_bytes: Option<u64>,
}

impl PeakRss {
    /// Resets the peak and notes the current RSS.
    pub(crate) fn start() -> PeakRss {
        let reset = reset_peak();
        let (_, start_bytes) = read();
        PeakRss { reset, start_bytes }
    }

    /// Reads the peak since [`PeakRss::start`] (or the process's, if the reset failed).
    pub(crate) fn finish(self) -> PeakRssReport {
        let (peak_bytes, _) = read();
        let scope = match (peak_bytes, self.reset) {
            (None, _) => RssScope::Unavailable,
            (Some(_), true) => RssScope::Run,
            (Some(_), false) => RssScope::Process,
        };
        PeakRssReport { peak_bytes, scope, start_bytes: self.start_bytes }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_are_read_in_bytes() {
        let status = "Name:\tinmem\nVmHWM:\t   13464 kB\nVmRSS:\t  1000 kB\nThreads:\t3\n";
        assert_eq!(status_field(status, "VmHWM:"), Some(13464 * 1024));
        assert_eq!(status_field(status, "VmRSS:"), Some(1000 * 1024));
        assert_eq!(status_field(status, "VmSwap:"), None);
        assert_eq!(status_field("Threads:\t3\n", "Threads:"), None, "only kB fields");
    }

    #[test]
    fn a_measurement_never_fails() {
        let report = PeakRss::start().finish();
        if cfg!(target_os = "linux") {
            assert!(report.peak_bytes.is_some_and(|peak| peak > 0));
            assert_ne!(report.scope, RssScope::Unavailable);
        } else {
            assert_eq!(report.scope, RssScope::Unavailable);
        }
    }
}
