//! Which backend a log uses, and why: [`BackendChoice`] in, [`BackendInUse`] out.
//!
//! - `Sync` is always available.
//! - `Uring` is an explicit request: where the kernel refuses io_uring it is an error naming
//!   the backend and the kernel's error, never silently another backend.
//! - `Auto` takes the backend measured faster for the log's writer ([`AUTO_PREFERS`]; the
//!   figures are in `docs/benchmarks.md`). Where that is io_uring and the kernel refuses it
//!   ([`is_uring_refusal`]), it falls back to pwritev + fdatasync and says so.
//!
//! [`URING_SWITCH`] makes every io_uring setup of the process fail as a refusing kernel's
//! does, so that the fallback and the tests' skips can be seen on a machine that allows
//! io_uring.

use std::fmt;
use std::io;
use std::sync::Arc;

use super::sync::SyncIo;
use super::Io;

/// Which backend a log uses.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// The backend measured faster for the log's writer ([`AUTO_PREFERS`]: today pwritev +
    /// fdatasync, see [`AUTO_REASON`]); if that were io_uring and the kernel refused it,
    /// pwritev + fdatasync instead. Never fails for want of io_uring.
    #[default]
    Auto,
    /// io_uring, or an error where the kernel refuses it (never another backend).
    Uring,
    /// pwritev + fdatasync.
    Sync,
}

/// Why a log uses its backend, as [`crate::Wal::backend`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendReason {
    /// [`BackendChoice::Uring`] or [`BackendChoice::Sync`] asked for it.
    Requested,
    /// [`BackendChoice::Auto`] took it: the backend measured faster for the log's writer
    /// ([`AUTO_REASON`]).
    ChosenByAuto,
    /// [`BackendChoice::Auto`] preferred io_uring, but the kernel refused it: this is the
    /// pwritev + fdatasync fallback.
    UringRefused {
        /// The kernel's error, as it displays.
        error: String,
    },
    /// [`crate::WalOptions::io`] gave the backend itself.
    Given,
}

impl fmt::Display for BackendReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendReason::Requested => f.write_str("requested"),
            BackendReason::ChosenByAuto => f.write_str("chosen by Auto"),
            BackendReason::UringRefused { error } => {
                write!(f, "io_uring refused by the kernel: {error}")
            }
            BackendReason::Given => f.write_str("given by WalOptions::io"),
        }
    }
}

/// The backend a log uses, by name, and why; displays as `sync: requested`,
/// `io_uring: chosen by Auto`, `sync: io_uring refused by the kernel: ..`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendInUse {
    /// [`Io::name`] of the backend: `"io_uring"`, `"sync"`, or a wrapper's.
    pub name: String,
    /// Why it is that one.
    pub reason: BackendReason,
}

impl fmt::Display for BackendInUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.reason)
    }
}

/// The backend [`BackendChoice::Auto`] takes where both are available: the one measured
/// faster for the log's writer on the development machine ([`AUTO_REASON`]).
pub const AUTO_PREFERS: Preferred = Preferred::Sync;

/// The backends [`BackendChoice::Auto`] can prefer.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Preferred {
    /// io_uring where the kernel allows it, else pwritev + fdatasync.
    Uring,
    /// pwritev + fdatasync.
    Sync,
}

/// Why [`BackendChoice::Auto`] prefers the backend it does ([`AUTO_PREFERS`]).
pub const AUTO_REASON: &str = "Auto takes pwritev + fdatasync: the log writes one batch at a \
    time, and io_uring runs every fdatasync on a kernel worker thread (it has no inline \
    fsync: one io-wq hand-off and wake-up per batch), which left io_uring at a median 0.87x \
    of pwritev + fdatasync's commits/s at 1 committer, 0.84x at 4 and 0.88x at 32, ahead in \
    no undisturbed run (inmem bench --workload wal --backend uring,sync; docs/benchmarks.md)";

/// The environment variable that, set to [`URING_SWITCH_REFUSE`], makes every io_uring
/// setup in the process fail as a kernel that refuses io_uring makes it fail (`EPERM` from
/// `io_uring_setup`, as with `kernel.io_uring_disabled=2` or a seccomp filter), through the
/// same error path: for testing the fallback and the tests' skips on a machine that allows
/// io_uring (`INMEM_IO_URING=refuse cargo test --workspace`).
pub const URING_SWITCH: &str = "INMEM_IO_URING";

/// The value of [`URING_SWITCH`] that refuses io_uring.
pub const URING_SWITCH_REFUSE: &str = "refuse";

/// Whether [`URING_SWITCH`] asks this process to refuse io_uring.
pub fn uring_refused_by_switch() -> bool {
    std::env::var_os(URING_SWITCH).is_some_and(|value| value == URING_SWITCH_REFUSE)
}

/// Whether `error`, from setting up io_uring ([`super::uring::UringIo::new`]), says the
/// kernel or a sandbox refuses io_uring, as opposed to a failure of this process (out of
/// file descriptors, say): `ENOSYS` (not built in), `EPERM` or `EACCES` (disabled by
/// `kernel.io_uring_disabled` or a seccomp filter), `ENOMEM` (no locked memory for a ring),
/// or a probe that found an opcode missing (`Unsupported`).
pub fn is_uring_refusal(error: &io::Error) -> bool {
    const REFUSALS: [rustix::io::Errno; 4] = [
        rustix::io::Errno::NOSYS,
        rustix::io::Errno::PERM,
        rustix::io::Errno::ACCESS,
        rustix::io::Errno::NOMEM,
    ];
    match error.raw_os_error() {
        Some(raw) => REFUSALS.iter().any(|errno| errno.raw_os_error() == raw),
        None => error.kind() == io::ErrorKind::Unsupported,
    }
}

/// The backend `choice` asks for, and why it is that one.
///
/// # Errors
/// `Uring` where io_uring cannot be set up (the kernel's error, or `Unsupported` off Linux);
/// `Auto` only where it prefers io_uring and setting it up fails for another reason than a
/// refusal ([`is_uring_refusal`]).
pub fn backend_in_use(choice: BackendChoice) -> io::Result<(Arc<dyn Io>, BackendReason)> {
    match choice {
        BackendChoice::Sync => Ok((Arc::new(SyncIo::new()), BackendReason::Requested)),
        BackendChoice::Uring => Ok((uring()?, BackendReason::Requested)),
        BackendChoice::Auto => auto(AUTO_PREFERS, uring),
    }
}

/// The backend `choice` asks for (see [`backend_in_use`], which also says why).
///
/// # Errors
/// As [`backend_in_use`].
pub fn backend(choice: BackendChoice) -> io::Result<Arc<dyn Io>> {
    backend_in_use(choice).map(|(io, _)| io)
}

/// [`BackendChoice::Auto`] preferring `prefers`, with `uring` setting io_uring up.
fn auto(
    prefers: Preferred,
    uring: impl FnOnce() -> io::Result<Arc<dyn Io>>,
) -> io::Result<(Arc<dyn Io>, BackendReason)> {
    match prefers {
        Preferred::Sync => Ok((Arc::new(SyncIo::new()), BackendReason::ChosenByAuto)),
        Preferred::Uring => match uring() {
            Ok(io) => Ok((io, BackendReason::ChosenByAuto)),
            Err(error) if is_uring_refusal(&error) => Ok((
                Arc::new(SyncIo::new()),
                BackendReason::UringRefused { error: error.to_string() },
            )),
            Err(error) => Err(error),
        },
    }
}

/// Sets up and probes an io_uring backend.
#[cfg(target_os = "linux")]
fn uring() -> io::Result<Arc<dyn Io>> {
    Ok(Arc::new(super::uring::UringIo::new()?))
}

/// io_uring is Linux only.
#[cfg(not(target_os = "linux"))]
fn uring() -> io::Result<Arc<dyn Io>> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "io_uring is Linux only"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(errno: rustix::io::Errno) -> impl FnOnce() -> io::Result<Arc<dyn Io>> {
        move || Err(io::Error::from_raw_os_error(errno.raw_os_error()))
    }

    #[test]
    fn auto_preferring_io_uring_falls_back_to_sync_where_the_kernel_refuses_it() {
        for errno in [
            rustix::io::Errno::NOSYS,
            rustix::io::Errno::PERM,
            rustix::io::Errno::ACCESS,
            rustix::io::Errno::NOMEM,
        ] {
            let (io, reason) = auto(Preferred::Uring, refused(errno)).expect("falls back");
            assert_eq!(io.name(), "sync");
            let error = io::Error::from_raw_os_error(errno.raw_os_error()).to_string();
            assert_eq!(reason, BackendReason::UringRefused { error });
        }
        let missing_opcode =
            || Err(io::Error::new(io::ErrorKind::Unsupported, "no IORING_OP_FSYNC here"));
        let (io, reason) = auto(Preferred::Uring, missing_opcode).expect("falls back");
        assert_eq!(io.name(), "sync");
        assert_eq!(
            BackendInUse { name: io.name(), reason }.to_string(),
            "sync: io_uring refused by the kernel: no IORING_OP_FSYNC here"
        );
    }

    #[test]
    fn auto_preferring_io_uring_fails_on_an_error_that_is_no_refusal() {
        let error = auto(Preferred::Uring, refused(rustix::io::Errno::MFILE)).map(drop);
        let error = error.expect_err("EMFILE is this process's, not the kernel's refusal");
        assert_eq!(error.raw_os_error(), Some(rustix::io::Errno::MFILE.raw_os_error()));
    }

    #[test]
    fn auto_preferring_io_uring_takes_it_where_the_kernel_allows_it() {
        let available = || Ok(Arc::new(SyncIo::new()) as Arc<dyn Io>);
        let (_, reason) = auto(Preferred::Uring, available).expect("auto");
        assert_eq!(reason, BackendReason::ChosenByAuto);
        // And on this machine, through the real setup: io_uring, or the fallback when it is
        // refused (as `INMEM_IO_URING=refuse` makes it).
        let (io, reason) = auto(Preferred::Uring, uring).expect("auto");
        if uring_refused_by_switch() {
            assert!(matches!(reason, BackendReason::UringRefused { .. }), "{reason}");
        }
        match reason {
            BackendReason::ChosenByAuto => assert_eq!(io.name(), "io_uring"),
            BackendReason::UringRefused { error } => {
                eprintln!("io_uring refused here ({error}): Auto fell back to sync");
                assert_eq!(io.name(), "sync");
            }
            other => panic!("unexpected reason {other}"),
        }
    }

    #[test]
    fn auto_preferring_sync_never_sets_io_uring_up() {
        let never = || -> io::Result<Arc<dyn Io>> { panic!("Auto set io_uring up") };
        let (io, reason) = auto(Preferred::Sync, never).expect("auto");
        assert_eq!((io.name().as_str(), reason), ("sync", BackendReason::ChosenByAuto));
    }
}
