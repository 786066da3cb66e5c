//! The group-commit hand-off between appenders, the log writer and waiters.
//!
//! No I/O happens here: a [`Worker`] (the real one is `writer.rs`'s) does it, between taking
//! a [`Work`] and handing back its [`Done`], with no lock held.
//!
//! # Protocol
//!
//! One mutex guards the [`State`]. The worker, which owns the open segment, lives in it as
//! the *writer token*: `state.writer` is `Some` while nobody writes, and whoever takes it
//! out under the lock is the one writer until it puts it back. Two kinds of thread take it:
//! - a **waiter** ([`GroupCommit::wait_registered`]) whose position is not durable and who
//!   finds the token free leads: it takes everything queued as one batch, writes and
//!   syncs it on its own thread, puts the token back and wakes the others. A lone committer
//!   so does its own write and fdatasync with no thread hand-off at all; a waiter that
//!   finds the token taken sleeps until the holder is done, then looks again. Under
//!   `Durability::Sync` a batch first fills, for a little while, with the committers a
//!   steady load brings back ([`GroupCommit::still_gathering`]): its waiters yield and
//!   look again, and the one that completes it, or finds the wait over, leads;
//! - a caller that waits for its record to be *written* ([`GroupCommit::wait_written`]:
//!   the engine's maintenance, a run of records at a time) leads the same way, but writes
//!   without a sync under `Buffered`, leaving that to the interval (or syncing first, if
//!   the unsynced bytes would pass one batch's worth);
//! - the **background writer** thread does what no waiter asked for: appends nobody waits
//!   on, `Buffered` writes and interval syncs, a queue full of records whose appender has
//!   yet to wait for them (an appender waits for room), and the final flush when the log
//!   closes;
//! - under `Buffered`, the background writer does not sync with the token: it asks the
//!   worker for a **detached sync** ([`Worker::detach_sync`], under the lock, with the
//!   token in place, so that the sync covers everything written so far and the frontier
//!   slot pending then) and hands it to the **syncer** thread
//!   ([`GroupCommit::run_syncer`]), which runs it with no lock and no token while the
//!   writes go on. One is in flight at a time (`sync_in_flight`, its end); when it
//!   completes the syncer raises `durable` to that end under the lock and gives the sync
//!   back to the worker, at once if the token is in place, else through `sync_unapplied`,
//!   which the holder applies when it hands the token back. A waiter whose position the
//!   sync in flight covers waits for it rather than sync again; a failed one fails the log,
//!   and the worker undoes its unsynced writes ([`Worker::abandon`]) wherever it is.
//!
//! An appender encodes its frame into `pending` under the lock and takes the next position;
//! it waits on `space` while `pending` is full. It wakes the background writer when the
//! frame is one that nobody will wait for.
//!
//! A waiter sleeps on `durable_changed` without the lock: it reads the signal's epoch, then
//! `durable` and `failed`, then (under the lock) whether the token is free, and sleeps only
//! if none lets it go, on the epoch it read. Before it sleeps it yields its CPU, looking
//! for the epoch to move, for up to two writes' time (at most `wait_spin`): see
//! [`GroupCommit::spin_until_moved`]. That changes when it sleeps, never whether it
//! returns. The holder stores `durable` (or `failed`) and puts the token back under the
//! lock, and bumps the epoch after letting the lock go; so a
//! waiter that saw the old state read the epoch before the bump, and its sleep returns at
//! once: no wake-up is lost, and the woken waiters need no lock to return.
//!
//! After a failed write or sync the state keeps the failure: waiters beyond the durable
//! end, and every later append, get [`Error::Failed`]. Nothing is acknowledged that the
//! log could not make durable.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::format::{encode_unsealed, frame_len, FrameKind};
use crate::sync::{AtomicBool, AtomicU64, Condvar, Mutex, MutexGuard, Ordering, Signal};
use crate::LogPosition;

/// What a waiter's attempt to lead came to.
enum Lead {
    /// It wrote or synced, or found nothing left to wait for: look again.
    Done,
    /// Another thread holds the token: wait for it to come back.
    Busy,
    /// The batch is still filling: yield, then look again.
    Gathering,
}

/// What does the log's I/O for the thread that holds the writer token.
pub(crate) trait Worker: Send {
    /// A sync that runs without the token ([`Worker::detach_sync`]).
    type Detached: Send + std::fmt::Debug;

    /// Performs `work`; says what is written and durable after it.
    ///
    /// # Errors
    /// The failed write or sync; the log then fails.
    fn perform(&mut self, work: Work) -> Result<Done>;

    /// A sync of everything written, up to `end`, that the syncer thread runs without the
    /// token while writes go on; `None` if this worker has no means to (the sync then runs
    /// with the token).
    fn detach_sync(&mut self, end: LogPosition) -> Option<Self::Detached> {
        let _ = end;
        None
    }

    /// Runs `sync`, on the syncer's thread.
    ///
    /// # Errors
    /// The failed sync; the log then fails.
    fn run_detached(sync: &Self::Detached) -> Result<()> {
        let _ = sync;
        Ok(())
    }

    /// `sync`, detached from this worker, completed.
    fn detached_synced(&mut self, sync: &Self::Detached) {
        let _ = sync;
    }

    /// A detached sync failed and the log with it: undo what was written unsynced, as a
    /// failed [`Worker::perform`] does.
    fn abandon(&mut self) {}

    /// Whether something written waits for a sync before the worker may write much more
    /// (a frontier slot, `writer.rs`): a detached sync is worth starting now.
    fn sync_wanted(&self) -> bool {
        false
    }
}

/// How the writer paces its work.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Pacing {
    /// `Durability::Sync`: every batch is synced as it is written. Otherwise batches are
    /// written once per `buffered_round` (at once when someone waits) and synced when
    /// someone waits, when closing, or every `interval`.
    pub(crate) sync_every_batch: bool,
    /// The longest a written batch stays unsynced when not `sync_every_batch`.
    pub(crate) interval: Duration,
    /// Under `sync_every_batch`, the longest a batch waits for the committers it expects
    /// to join it (never longer than the last write took, either). Zero: never wait.
    pub(crate) gather_max: Duration,
    /// The longest a waiter yields its CPU before it sleeps (never longer than two writes
    /// take, either). Zero: sleep at once.
    #[cfg_attr(loom, allow(dead_code, reason = "loom models never spin: they yield"))]
    pub(crate) wait_spin: Duration,
    /// Not `sync_every_batch`: the background writer writes at most once per round of this
    /// long, gathering what is appended meanwhile ([`GroupCommit::round_left`]). Zero: it
    /// writes as soon as anything is queued.
    pub(crate) buffered_round: Duration,
    /// Not `sync_every_batch`: the background writer's syncs run on the syncer thread
    /// ([`GroupCommit::run_syncer`]), detached from the writer, which goes on writing.
    pub(crate) detached_syncs: bool,
}

/// The shared state of appenders, the writer and waiters.
#[derive(Debug)]
pub(crate) struct GroupCommit<W: Worker> {
    state: Mutex<State<W>>,
    /// Wakes the background writer: something for it to do, the token back, or closing.
    background_wake: Condvar,
    /// Wakes appenders waiting for room in `pending`.
    space: Condvar,
    /// Wakes the syncer thread: a detached sync to run, or closing.
    syncer_wake: Condvar,
    /// Wakes waiters: the durable end moved, the token came back, or the log failed.
    durable_changed: Signal,
    /// The durable end, which waiters read without the lock; written only under the lock.
    durable: AtomicU64,
    /// Set (under the lock) once `State::failure` is.
    failed: AtomicBool,
    /// `State::last_write` in nanoseconds, which waiters read without the lock to bound
    /// their spin; written only under the lock.
    last_write_nanos: AtomicU64,
    /// `pending` accepts a frame while it holds less than this (or is empty).
    max_queued_bytes: u64,
    pacing: Pacing,
}

#[derive(Debug)]
struct State<W: Worker> {
    /// The writer token: `None` while some thread writes.
    writer: Option<W>,
    /// Unsealed frames not yet taken by a writer, in position order from `pending_start`.
    pending: Vec<u8>,
    pending_start: u64,
    pending_records: u64,
    /// Whether some frame in `pending` was appended by a caller that did not say it would
    /// wait for it: only those give the background writer work under `Sync`.
    pending_unwaited: bool,
    /// A cleared buffer to swap in for the next batch.
    spare: Vec<u8>,
    /// The position the next append gets.
    next: u64,
    /// The end of what has been written (durable or not).
    written: u64,
    /// The end of what is durable.
    durable: u64,
    /// The failure that stopped the log, if any.
    failure: Option<Error>,
    closing: bool,
    /// Appenders waiting on `space`.
    space_waiters: u32,
    /// While the background writer sleeps: how many queued records make an append wake it
    /// (1 when it is idle; the batch it gathers for when it waits for committers).
    background_wakes_at: Option<u64>,
    /// While the background writer sleeps: whether on a timer, after which it looks at
    /// the state again (and so finds an unsynced write without being woken for it).
    background_timed: bool,
    /// Records expected in the next batch: those of the last one and those queued while it
    /// was written, which is how many committers a steady load brings back.
    expected_records: u64,
    /// How long the last write took, the longest worth waiting for a batch to fill.
    last_write: Duration,
    last_sync: Instant,
    /// While a batch gathers under `Sync`: when it is written even if not full.
    gather_until: Option<Instant>,
    /// When the last write (of any writer) ended.
    last_written_at: Option<Instant>,
    /// A detached sync asked for and not yet taken by the syncer thread.
    sync_request: Option<W::Detached>,
    /// While a detached sync is asked for or running: the end it makes durable.
    sync_in_flight: Option<u64>,
    /// A detached sync that completed while the token was out: its holder applies it
    /// when it hands the token back.
    sync_unapplied: Option<W::Detached>,
}

/// What the writer is to do next.
#[derive(Debug)]
pub(crate) enum Work {
    /// Write this batch, and sync it if `sync`.
    Write { batch: Batch, sync: bool },
    /// Nothing new to write, but written data up to `end` waits for a sync.
    Sync { end: LogPosition },
}

/// What a piece of work left behind.
#[derive(Debug)]
pub(crate) struct Done {
    /// Everything before it is written.
    pub(crate) written: LogPosition,
    /// Everything before it is durable, if the work synced.
    pub(crate) durable: Option<LogPosition>,
    /// The batch's buffer, for reuse.
    pub(crate) buffer: Option<Vec<u8>>,
}

/// Frames the writer takes in one go.
#[derive(Debug)]
pub(crate) struct Batch {
    /// The position of the first frame.
    pub(crate) start: LogPosition,
    /// Unsealed frames, back to back.
    pub(crate) bytes: Vec<u8>,
    /// How many.
    pub(crate) records: u64,
}

/// A fake disk's view of a piece of work (`group.rs`'s tests, the loom models).
#[cfg(any(test, loom))]
impl Work {
    /// The end it reaches, whether it syncs, and the batch's buffer to hand back.
    pub(crate) fn into_parts(self) -> (LogPosition, bool, Option<Vec<u8>>) {
        match self {
            Work::Write { batch, sync } => (batch.end(), sync, Some(batch.bytes)),
            Work::Sync { end } => (end, true, None),
        }
    }
}

impl Batch {
    /// The position after the last frame.
    pub(crate) fn end(&self) -> LogPosition {
        LogPosition::new(self.start.get() + self.bytes.len() as u64)
    }
}

/// What the background writer decided under the lock.
enum Plan {
    Work(Work),
    /// Sleep for at most `timeout`, unless `wake_at` records are queued first.
    Sleep {
        timeout: Option<Duration>,
        wake_at: u64,
    },
    Stop,
}

impl Plan {
    const IDLE: Plan = Plan::Sleep { timeout: None, wake_at: 1 };
}

/// The message a panic carried, if it was a string.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

impl<W: Worker> GroupCommit<W> {
    /// An empty hand-off for a log whose next position is `end`, with no writer yet: see
    /// [`GroupCommit::install`].
    pub(crate) fn new(end: LogPosition, max_queued_bytes: u64, pacing: Pacing) -> GroupCommit<W> {
        GroupCommit {
            state: Mutex::new(State {
                writer: None,
                pending: Vec::new(),
                pending_start: end.get(),
                pending_records: 0,
                pending_unwaited: false,
                spare: Vec::new(),
                next: end.get(),
                written: end.get(),
                durable: end.get(),
                failure: None,
                closing: false,
                space_waiters: 0,
                background_wakes_at: None,
                background_timed: false,
                expected_records: 1,
                gather_until: None,
                last_written_at: None,
                last_write: Duration::ZERO,
                last_sync: Instant::now(),
                sync_request: None,
                sync_in_flight: None,
                sync_unapplied: None,
            }),
            background_wake: Condvar::new(),
            space: Condvar::new(),
            syncer_wake: Condvar::new(),
            durable_changed: Signal::new(),
            durable: AtomicU64::new(end.get()),
            failed: AtomicBool::new(false),
            last_write_nanos: AtomicU64::new(0),
            max_queued_bytes,
            pacing,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<W>> {
        // A poisoned lock means a thread panicked while holding it; every critical section
        // here leaves the state consistent at each step, so going on is sound.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn wait<'a>(
        &self,
        condvar: &Condvar,
        guard: MutexGuard<'a, State<W>>,
    ) -> MutexGuard<'a, State<W>> {
        condvar.wait(guard).unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sleeps on `condvar` for at most `timeout` (forever if `None`).
    fn wait_for<'a>(
        &self,
        condvar: &Condvar,
        guard: MutexGuard<'a, State<W>>,
        timeout: Option<Duration>,
    ) -> MutexGuard<'a, State<W>> {
        match timeout {
            // loom has no timed waits; its models run without gathering or intervals.
            #[cfg(not(loom))]
            Some(timeout) => {
                condvar
                    .wait_timeout(guard, timeout)
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0
            }
            _ => self.wait(condvar, guard),
        }
    }

    /// The end of what is durable.
    pub(crate) fn durable(&self) -> LogPosition {
        LogPosition::new(self.durable.load(Ordering::Acquire))
    }

    /// The position the next append gets.
    pub(crate) fn end(&self) -> LogPosition {
        LogPosition::new(self.lock().next)
    }

    /// Queues a frame; returns its position. Waits while the queue is full. `then_wait`
    /// says the caller goes on to [`GroupCommit::wait_registered`] for it, and so writes it
    /// itself if nobody else does: the background writer need not be woken for it.
    pub(crate) fn append(
        &self,
        kind: FrameKind,
        payload: &[u8],
        then_wait: bool,
    ) -> Result<LogPosition> {
        let len = frame_len(payload.len()) as u64;
        let mut state = self.lock();
        loop {
            if let Some(failure) = &state.failure {
                return Err(Error::Failed { cause: Box::new(failure.clone()) });
            }
            if state.closing {
                return Err(Error::Closed);
            }
            if state.pending.is_empty() || state.pending.len() as u64 + len <= self.max_queued_bytes
            {
                break;
            }
            // A background writer gathering its round writes at once for a waiting appender
            // (`round_left`): wake it.
            if state.background_wakes_at.take().is_some() {
                self.background_wake.notify_one();
            }
            state.space_waiters += 1;
            state = self.wait(&self.space, state);
            state.space_waiters -= 1;
        }
        let position = LogPosition::new(state.next);
        let Some(next) = state.next.checked_add(len) else {
            return Err(Error::Exhausted { what: "positions" });
        };
        encode_unsealed(&mut state.pending, kind, position, payload);
        state.next = next;
        state.pending_records += 1;
        state.pending_unwaited |= !then_wait;
        debug_assert_eq!(state.pending_start + state.pending.len() as u64, state.next);
        // The background writer, when it gathers, is woken once, by the append that completes
        // its batch (or by its timeout), not by every append on the way there. The waiters
        // of a filling batch need no wake-up: they yield their CPU and look again.
        if !then_wait
            && state.writer.is_some()
            && state.background_wakes_at.is_some_and(|at| state.pending_records >= at)
        {
            state.background_wakes_at = None;
            self.background_wake.notify_one();
        }
        Ok(position)
    }

    /// Returns once the frame at `position` is durable.
    pub(crate) fn wait_durable(&self, position: LogPosition) -> Result<()> {
        if self.durable.load(Ordering::Acquire) > position.get() {
            return Ok(());
        }
        let next = self.lock().next;
        if position.get() >= next {
            return Err(Error::OutOfRange {
                position,
                first: LogPosition::ZERO,
                end: LogPosition::new(next),
            });
        }
        self.wait_registered(position)
    }

    /// Returns once the frame at `position`, which has been appended, is durable: writes it
    /// itself when nobody else is writing.
    pub(crate) fn wait_registered(&self, position: LogPosition) -> Result<()> {
        let needed = position.get();
        loop {
            let seen = self.durable_changed.epoch();
            if self.durable.load(Ordering::SeqCst) > needed {
                return Ok(());
            }
            if self.failed.load(Ordering::SeqCst) {
                return Err(self.failed_error());
            }
            // After a spin that saw the epoch move, the sleep would return at once: look
            // again instead, sparing the system call.
            match self.lead(needed) {
                Lead::Done => {}
                Lead::Gathering => std::thread::yield_now(),
                Lead::Busy => {
                    if !self.spin_until_moved(seen) {
                        self.durable_changed.wait(seen);
                    }
                }
            }
        }
    }

    /// Returns once the frame at `position`, which has been appended (to be waited for:
    /// `then_wait`), is written, synced or not: the caller writes it itself when nobody
    /// else is writing, so the background writer is not woken for it. Under `Sync` that
    /// write is synced, as every batch is; otherwise it is synced with the next interval,
    /// or first, if the unsynced bytes would exceed one batch's worth.
    ///
    /// For a caller with a stream of commits that must not wake a third thread: the TTL
    /// reaper, whose records a background writer woken for each would take a core from
    /// a reader every time.
    pub(crate) fn wait_written(&self, position: LogPosition) -> Result<()> {
        let needed = position.get();
        loop {
            let seen = self.durable_changed.epoch();
            let mut state = self.lock();
            if let Some(failure) = &state.failure {
                return Err(Error::Failed { cause: Box::new(failure.clone()) });
            }
            if state.written > needed {
                return Ok(());
            }
            if needed >= state.next {
                return Err(Error::OutOfRange {
                    position,
                    first: LogPosition::ZERO,
                    end: LogPosition::new(state.next),
                });
            }
            let must_sync = self.must_sync_before_writing(&state);
            // A sync that must come first and is already in flight is waited for.
            let may_lead = !must_sync || state.sync_in_flight.is_none();
            let Some(writer) = state.writer.take().filter(|_| may_lead) else {
                // Its holder wakes the waiters when it hands the token back, as the syncer
                // does when the detached sync completes.
                drop(state);
                if !self.spin_until_moved(seen) {
                    self.durable_changed.wait(seen);
                }
                continue;
            };
            let work = if must_sync {
                Work::Sync { end: LogPosition::new(state.written) }
            } else {
                Work::Write {
                    batch: self.take_batch(&mut state),
                    sync: self.pacing.sync_every_batch,
                }
            };
            drop(state);
            self.perform(writer, work);
        }
    }

    /// Yields the CPU until the durable end moves past epoch `seen` (or the log fails, or
    /// the token comes back), for no longer than two writes' time nor `wait_spin`. Says
    /// whether the epoch moved.
    ///
    /// The write a waiter waits for is in flight, or is the next one, which starts when the
    /// one in flight ends: it is due within two writes' time. Sleeping on the futex at once
    /// would make every release a wake-up of each waiter; on a virtual machine that is also
    /// a wake-up of an idle, halted vCPU, which costs about as much as the fdatasync (the
    /// runs that chose the budget: docs/benchmarks.md, "The log's figures"). A yield gives
    /// the CPU to whatever else is runnable (the leader, once its I/O completes, and the
    /// committers just released), so the spin takes only CPU time nothing else wants.
    #[cfg(not(loom))]
    fn spin_until_moved(&self, seen: u32) -> bool {
        let last_write = Duration::from_nanos(self.last_write_nanos.load(Ordering::Relaxed));
        let budget = last_write.saturating_mul(2).min(self.pacing.wait_spin);
        if budget.is_zero() {
            return false;
        }
        let deadline = Instant::now() + budget;
        loop {
            if self.durable_changed.epoch() != seen {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::yield_now();
        }
    }

    /// loom has no clock: its models check the sleep, which the spin only defers.
    #[cfg(loom)]
    fn spin_until_moved(&self, _seen: u32) -> bool {
        false
    }

    #[cold]
    fn failed_error(&self) -> Error {
        match &self.lock().failure {
            Some(failure) => Error::Failed { cause: Box::new(failure.clone()) },
            None => Error::Closed,
        }
    }

    /// Makes the frame at `needed` durable if the writer token is free and the batch is
    /// not still filling ([`GroupCommit::still_gathering`]): one write (and sync) of
    /// everything queued, or one sync of what is written. Does nothing if another thread
    /// holds the token (whose release wakes the caller) or the batch fills.
    fn lead(&self, needed: u64) -> Lead {
        let mut state = self.lock();
        if state.failure.is_some() || state.durable > needed {
            return Lead::Done;
        }
        if state.writer.is_some() && needed >= state.written && self.still_gathering(&mut state) {
            return Lead::Gathering;
        }
        // A detached sync in flight makes it durable: its completion wakes the caller.
        if state.sync_in_flight.is_some_and(|end| end > needed) {
            return Lead::Busy;
        }
        let Some(writer) = state.writer.take() else {
            return Lead::Busy;
        };
        let work = if needed < state.written {
            Work::Sync { end: LogPosition::new(state.written) }
        } else {
            Work::Write { batch: self.take_batch(&mut state), sync: true }
        };
        drop(state);
        self.perform(writer, work);
        Lead::Done
    }

    /// Whether the batch queued in `pending` is still to wait for more committers: under
    /// `Sync`, while it has fewer records than a steady load brings back, for no longer
    /// than the last write took (nor `gather_max`) since a waiter first found it filling.
    /// So a steady set of committers shares one sync instead of splitting into two
    /// alternating halves.
    ///
    /// Nobody holds the token while a batch fills: every waiter of the batch yields its
    /// CPU and asks again, and the one whose append completes the batch (or who finds the
    /// window over) writes it at once. A leader that took the token and waited for the
    /// batch would write it only on its next turn on a CPU after the last append, which
    /// leaves a longer gap between the end of one fdatasync and the next write. Waiting by
    /// yielding, not sleeping: the committers it waits for are the ones just released,
    /// runnable and queued for the CPUs, and a sleep would add a wake-up to every batch.
    /// (The runs behind both choices: docs/benchmarks.md, "The log's figures".)
    fn still_gathering(&self, state: &mut State<W>) -> bool {
        if !self.pacing.sync_every_batch || state.closing {
            return false;
        }
        if state.pending_records >= state.expected_records {
            return false;
        }
        let window = state.last_write.min(self.pacing.gather_max);
        if window.is_zero() {
            return false;
        }
        let now = Instant::now();
        let until = *state.gather_until.get_or_insert(now + window);
        now < until
    }

    /// Does `work` with the token, then hands the token back and publishes the outcome.
    fn perform(&self, mut writer: W, work: Work) {
        let (records, synced) = match &work {
            Work::Write { batch, sync } => (batch.records, *sync),
            Work::Sync { .. } => (0, true),
        };
        let started = Instant::now();
        // A panic in the worker is a bug; on a committer's thread it must not unwind into
        // the caller with the token lost, leaving every other waiter asleep: it fails the
        // log instead, and the caller gets the error.
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| writer.perform(work)))
                .unwrap_or_else(|panic| {
                    Err(Error::WriterPanicked { message: panic_message(panic.as_ref()) })
                });
        let took = started.elapsed();
        let mut state = self.lock();
        let done = match outcome {
            Ok(done) => done,
            Err(error) => {
                // The writer is dropped with the failure: nothing more is written.
                drop(state);
                self.fail(error);
                return;
            }
        };
        debug_assert!(done.written.get() >= state.written);
        debug_assert!(done.written.get() <= state.pending_start);
        state.written = done.written.get();
        if let Some(durable) = done.durable {
            debug_assert!(durable <= done.written);
            // A detached sync may have completed meanwhile, never past what this work synced.
            self.publish_durable(&mut state, durable.get());
        }
        if synced {
            state.last_sync = Instant::now();
        }
        if records > 0 {
            state.last_written_at = Some(started + took);
            state.expected_records = (records + state.pending_records).max(1);
            state.last_write = took;
            let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
            self.last_write_nanos.store(nanos, Ordering::Relaxed);
        }
        if let Some(mut buffer) = done.buffer {
            buffer.clear();
            if state.spare.capacity() < buffer.capacity() {
                state.spare = buffer;
            }
        }
        if let Some(sync) = state.sync_unapplied.take() {
            writer.detached_synced(&sync);
        }
        if state.failure.is_some() {
            // A detached sync failed meanwhile: the log failed, and this writer undoes what
            // it wrote unsynced, as after a failure of its own.
            drop(state);
            writer.abandon();
            drop(writer);
            self.wake_everyone();
            return;
        }
        state.writer = Some(writer);
        // A write left unsynced (`wait_written`) is the background writer's to sync with
        // the interval: a timed sleep finds it; an untimed one must be woken.
        let wake_background = state.background_wakes_at.is_some()
            && (Self::background_has_work_now(&state)
                || (state.written > state.durable && !state.background_timed));
        if wake_background {
            state.background_wakes_at = None;
        }
        drop(state);
        self.durable_changed.wake_all();
        if wake_background {
            self.background_wake.notify_one();
        }
    }

    /// Whether the background writer has something to do now or on a timer: appends nobody
    /// waits for, syncs of written data, closing; and a full queue that an appender waits
    /// for room in, whoever appended what it holds. (Appends whose callers wait are written
    /// by those callers, but a caller may append a run of them before it waits, and then
    /// itself wait for room: see [`GroupCommit::wait_written`].)
    fn background_has_work(state: &State<W>) -> bool {
        Self::background_has_work_now(state) || state.written > state.durable
    }

    /// [`GroupCommit::background_has_work`] but the sync of written data, which can wait
    /// for the interval.
    fn background_has_work_now(state: &State<W>) -> bool {
        state.closing
            || (!state.pending.is_empty() && (state.pending_unwaited || state.space_waiters > 0))
    }

    /// Runs the background writer until the log closes or fails.
    pub(crate) fn run_background(&self) {
        let mut state = self.lock();
        let mut gathering_since: Option<Instant> = None;
        loop {
            match self.plan(&mut state, &mut gathering_since) {
                Plan::Stop => return,
                Plan::Sleep { timeout, wake_at } => {
                    state.background_wakes_at = Some(wake_at);
                    state.background_timed = timeout.is_some();
                    state = self.wait_for(&self.background_wake, state, timeout);
                    state.background_wakes_at = None;
                }
                Plan::Work(work) => {
                    gathering_since = None;
                    // `plan` gives work only while the token is here.
                    let Some(writer) = state.writer.take() else { continue };
                    drop(state);
                    self.perform(writer, work);
                    state = self.lock();
                }
            }
        }
    }

    /// The background writer's next move.
    fn plan(&self, state: &mut State<W>, gathering_since: &mut Option<Instant>) -> Plan {
        if state.failure.is_some() {
            return Plan::Stop;
        }
        if !Self::background_has_work(state) || state.writer.is_none() {
            // Nothing to do, or a leader writes: it wakes this thread when it hands the token
            // back and something is left for it.
            return Plan::IDLE;
        }
        let sync_every_batch = self.pacing.sync_every_batch;
        if self.pacing.detached_syncs && !state.closing {
            self.detach_sync_if_due(state);
        }
        if !state.pending.is_empty() {
            if self.must_sync_before_writing(state) {
                if state.sync_in_flight.is_some() {
                    // No append wakes it: the detached sync's completion does.
                    return Plan::Sleep { timeout: None, wake_at: u64::MAX };
                }
                return Plan::Work(Work::Sync { end: LogPosition::new(state.written) });
            }
            if let Some(left) = self.round_left(state) {
                // No append wakes it: the round's end, a waiting appender or closing does.
                return Plan::Sleep { timeout: Some(left), wake_at: u64::MAX };
            }
            // An appender waiting for room is not kept waiting for a batch to fill.
            if !sync_every_batch || state.closing || state.space_waiters > 0 {
                let sync = sync_every_batch || state.closing;
                return Plan::Work(Work::Write { batch: self.take_batch(state), sync });
            }
            let since = *gathering_since.get_or_insert_with(Instant::now);
            let window = state.last_write.min(self.pacing.gather_max);
            if state.pending_records < state.expected_records {
                if let Some(left) = window.checked_sub(since.elapsed()).filter(|d| !d.is_zero()) {
                    return Plan::Sleep { timeout: Some(left), wake_at: state.expected_records };
                }
            }
            return Plan::Work(Work::Write { batch: self.take_batch(state), sync: true });
        }
        if state.written > state.durable {
            if state.sync_in_flight.is_some() {
                // Its completion, or an append nobody waits for, wakes it.
                return Plan::IDLE;
            }
            let due = self.pacing.interval.checked_sub(state.last_sync.elapsed());
            return match due {
                Some(due) if !state.closing && !due.is_zero() => {
                    Plan::Sleep { timeout: Some(due), wake_at: 1 }
                }
                _ => Plan::Work(Work::Sync { end: LogPosition::new(state.written) }),
            };
        }
        // Closing, with everything written and synced.
        Plan::Stop
    }

    /// Asks the syncer thread for a sync of everything written, if none is in flight and
    /// one is due: the interval is over, the unsynced bytes reach half of what may be
    /// unsynced ([`GroupCommit::must_sync_before_writing`]), or the worker waits on one
    /// before it may write much more ([`Worker::sync_wanted`]). Started early so that it
    /// completes while the writer goes on writing, not when the writer must stop for it.
    fn detach_sync_if_due(&self, state: &mut State<W>) {
        if state.sync_in_flight.is_some() || state.written <= state.durable {
            return;
        }
        let unsynced = state.written - state.durable;
        let due = unsynced >= self.max_queued_bytes / 2
            || state.last_sync.elapsed() >= self.pacing.interval;
        let end = state.written;
        let Some(writer) = state.writer.as_mut() else { return };
        if !due && !writer.sync_wanted() {
            return;
        }
        if let Some(sync) = writer.detach_sync(LogPosition::new(end)) {
            state.sync_request = Some(sync);
            state.sync_in_flight = Some(end);
            self.syncer_wake.notify_one();
        }
    }

    /// Whether what is written and unsynced must be synced before `pending` is written
    /// unsynced after it: never more than one batch's worth unsynced, so that what a crash
    /// can tear stays inside the window recovery may cut, whatever the durability.
    fn must_sync_before_writing(&self, state: &State<W>) -> bool {
        let unsynced = state.written - state.durable;
        !self.pacing.sync_every_batch
            && unsynced > 0
            && unsynced + state.pending.len() as u64 > self.max_queued_bytes
    }

    /// Under `Buffered`, while the background writer's round is not over: how long it still
    /// gathers appends before it writes them. Nobody waits for those appends (a caller that
    /// waits for one writes it itself, `lead`), so writing them at once buys nothing but a
    /// wake-up of this thread per append; with a stream of small commits (the TTL reaper's)
    /// that was thousands a second, each taking a core from a reader for the write. `None`
    /// (write now): no round configured, closing, an appender waiting for room, the round
    /// over, or the interval's sync due first.
    fn round_left(&self, state: &State<W>) -> Option<Duration> {
        if self.pacing.sync_every_batch || state.closing || state.space_waiters > 0 {
            return None;
        }
        let since_write = state.last_written_at?.elapsed();
        let mut left = self.pacing.buffered_round.checked_sub(since_write)?;
        if state.written > state.durable {
            left = left.min(self.pacing.interval.checked_sub(state.last_sync.elapsed())?);
        }
        Some(left).filter(|left| !left.is_zero())
    }

    fn take_batch(&self, state: &mut State<W>) -> Batch {
        let spare = std::mem::take(&mut state.spare);
        let bytes = std::mem::replace(&mut state.pending, spare);
        let batch = Batch {
            start: LogPosition::new(state.pending_start),
            bytes,
            records: std::mem::take(&mut state.pending_records),
        };
        state.pending_unwaited = false;
        state.gather_until = None;
        state.pending_start = state.next;
        if state.space_waiters > 0 {
            self.space.notify_all();
        }
        batch
    }

    /// Stops the log: every waiter beyond the durable end and every later append fails.
    pub(crate) fn fail(&self, error: Error) {
        let mut state = self.lock();
        if state.failure.is_none() {
            state.failure = Some(error);
        }
        self.failed.store(true, Ordering::SeqCst);
        state.sync_in_flight = None;
        let writer = state.writer.take();
        drop(state);
        // A writer in hand failed nothing itself (a detached sync did, or a thread panicked):
        // it undoes its unsynced writes here. One out in a holder's hands does so when the
        // holder finds the failure (`perform`).
        if let Some(mut writer) = writer {
            writer.abandon();
        }
        self.wake_everyone();
    }

    /// Wakes every thread that sleeps on the state: it has failed or is closing.
    fn wake_everyone(&self) {
        self.durable_changed.wake_all();
        self.space.notify_all();
        self.background_wake.notify_all();
        self.syncer_wake.notify_all();
    }

    /// Raises the durable end to `durable` (never lowers it: a detached sync and the
    /// token's holder each publish what they made durable).
    fn publish_durable(&self, state: &mut State<W>, durable: u64) {
        if durable > state.durable {
            state.durable = durable;
            self.durable.store(durable, Ordering::SeqCst);
        }
    }

    /// Runs the syncer thread until the log closes or fails: the detached syncs the
    /// background writer asks for ([`Worker::detach_sync`]), each without the token, so
    /// that a slow fdatasync (80-150 ms seen on a busy virtual disk) never stops the writes
    /// behind it. Only `Buffered` logs detach their syncs: under `Sync` every batch's
    /// committers wait for its sync anyway.
    pub(crate) fn run_syncer(&self) {
        let mut state = self.lock();
        loop {
            if state.failure.is_some() {
                return;
            }
            let Some(sync) = state.sync_request.take() else {
                if state.closing {
                    return;
                }
                state = self.wait(&self.syncer_wake, state);
                continue;
            };
            let end = state.sync_in_flight.unwrap_or(0);
            drop(state);
            let run = std::panic::AssertUnwindSafe(|| W::run_detached(&sync));
            let outcome = std::panic::catch_unwind(run).unwrap_or_else(|panic| {
                Err(Error::WriterPanicked { message: panic_message(panic.as_ref()) })
            });
            if let Err(error) = outcome {
                self.fail(error);
                return;
            }
            state = self.lock();
            if state.failure.is_some() {
                return;
            }
            state.sync_in_flight = None;
            self.publish_durable(&mut state, end);
            state.last_sync = Instant::now();
            match state.writer.as_mut() {
                Some(writer) => writer.detached_synced(&sync),
                None => state.sync_unapplied = Some(sync),
            }
            let wake_background = state.background_wakes_at.take().is_some();
            drop(state);
            self.durable_changed.wake_all();
            if wake_background {
                self.background_wake.notify_one();
            }
            state = self.lock();
        }
    }

    /// The failure that stopped the log, if any.
    pub(crate) fn failure(&self) -> Option<Error> {
        self.lock().failure.clone()
    }

    /// Asks the writer to write and sync everything queued, then stop; refuses appends.
    pub(crate) fn close(&self) {
        self.lock().closing = true;
        self.background_wake.notify_all();
        self.space.notify_all();
        self.syncer_wake.notify_all();
    }

    /// Hands the token to `writer`, before anyone appends.
    pub(crate) fn install(&self, writer: W) {
        self.lock().writer = Some(writer);
    }

    /// Takes the worker out for good, once the background writer has stopped (the log
    /// then has it write its close trailer).
    pub(crate) fn retire(&self) -> Option<W> {
        self.lock().writer.take()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::*;

    /// A fake disk that counts the batches written to it.
    struct CountingDisk(Arc<AtomicU64>);

    impl Worker for CountingDisk {
        type Detached = ();

        fn perform(&mut self, work: Work) -> Result<Done> {
            match work {
                Work::Write { batch, sync } => {
                    self.0.fetch_add(1, Ordering::SeqCst);
                    let end = batch.end();
                    Ok(Done {
                        written: end,
                        durable: sync.then_some(end),
                        buffer: Some(batch.bytes),
                    })
                }
                Work::Sync { end } => Ok(Done { written: end, durable: Some(end), buffer: None }),
            }
        }
    }

    /// `Buffered` with a round and an interval far longer than any test.
    const LONG_ROUNDS: Pacing = Pacing {
        sync_every_batch: false,
        interval: Duration::from_secs(600),
        gather_max: Duration::ZERO,
        wait_spin: Duration::ZERO,
        buffered_round: Duration::from_secs(300),
        detached_syncs: false,
    };

    /// A group commit over a counting disk, its background writer running.
    fn buffered(
        max_queued_bytes: u64,
    ) -> (Arc<GroupCommit<CountingDisk>>, Arc<AtomicU64>, std::thread::JoinHandle<()>) {
        let group = Arc::new(GroupCommit::new(LogPosition::ZERO, max_queued_bytes, LONG_ROUNDS));
        let batches = Arc::new(AtomicU64::new(0));
        group.install(CountingDisk(Arc::clone(&batches)));
        let background = {
            let group = Arc::clone(&group);
            std::thread::spawn(move || group.run_background())
        };
        (group, batches, background)
    }

    /// Waits until `counter` reaches `at_least`, for at most a minute; else fails, saying
    /// `never`.
    fn wait_until_at_least(counter: &AtomicU64, at_least: u64, never: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while counter.load(Ordering::SeqCst) < at_least {
            assert!(Instant::now() < deadline, "{never}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Waits until `batches` reaches `at_least`, for at most a minute.
    fn wait_for_batches(batches: &AtomicU64, at_least: u64) {
        wait_until_at_least(batches, at_least, "the writer never wrote");
    }

    /// Waits until `written` reaches `at_least`, for at most a minute.
    fn wait_for_written(written: &AtomicU64, at_least: u64) {
        wait_until_at_least(written, at_least, "the writes waited for the sync in flight");
    }

    /// A fake disk that keeps what a crash could tear (written, not synced) and checks,
    /// at every write, that it stays within `bound`.
    struct Ledger {
        bound: u64,
        unsynced: u64,
        batches: Arc<AtomicU64>,
    }

    impl Worker for Ledger {
        type Detached = ();

        fn perform(&mut self, work: Work) -> Result<Done> {
            match work {
                Work::Write { batch, sync } => {
                    self.batches.fetch_add(1, Ordering::SeqCst);
                    self.unsynced = if sync { 0 } else { self.unsynced + batch.bytes.len() as u64 };
                    assert!(self.unsynced <= self.bound, "{} bytes unsynced", self.unsynced);
                    let end = batch.end();
                    Ok(Done {
                        written: end,
                        durable: sync.then_some(end),
                        buffer: Some(batch.bytes),
                    })
                }
                Work::Sync { end } => {
                    self.unsynced = 0;
                    Ok(Done { written: end, durable: Some(end), buffer: None })
                }
            }
        }
    }

    #[test]
    fn a_caller_that_waits_for_its_write_writes_it_itself_unsynced() {
        // No background writer runs: only the caller can write.
        let group = GroupCommit::new(LogPosition::ZERO, 1 << 20, LONG_ROUNDS);
        let batches = Arc::new(AtomicU64::new(0));
        group.install(Ledger { bound: 1 << 20, unsynced: 0, batches: Arc::clone(&batches) });
        for round in 1..=3 {
            let position = group.append(FrameKind::RECORD, b"tombstones", true).expect("append");
            group.wait_written(position).expect("written");
            assert_eq!(batches.load(Ordering::SeqCst), round);
        }
        assert_eq!(group.durable(), LogPosition::ZERO, "a Buffered write waits for its sync");
    }

    #[test]
    fn a_caller_writing_itself_keeps_the_unsynced_bytes_within_one_batch() {
        // Room for a few records: those written unsynced soon reach the bound, and the
        // caller syncs them before it writes more (the `Ledger` checks every write).
        let bound = 256;
        let group = GroupCommit::new(LogPosition::ZERO, bound, LONG_ROUNDS);
        let batches = Arc::new(AtomicU64::new(0));
        group.install(Ledger { bound, unsynced: 0, batches: Arc::clone(&batches) });
        for _ in 0..100 {
            let position = group.append(FrameKind::RECORD, &[7; 40], true).expect("append");
            group.wait_written(position).expect("written");
        }
        assert_eq!(batches.load(Ordering::SeqCst), 100);
        assert!(group.durable() > LogPosition::ZERO, "nothing was synced");
    }

    #[test]
    fn what_a_caller_wrote_itself_is_synced_with_the_interval() {
        let pacing = Pacing { interval: Duration::from_millis(5), ..LONG_ROUNDS };
        let group = Arc::new(GroupCommit::new(LogPosition::ZERO, 1 << 20, pacing));
        let batches = Arc::new(AtomicU64::new(0));
        group.install(Ledger { bound: 1 << 20, unsynced: 0, batches: Arc::clone(&batches) });
        let background = {
            let group = Arc::clone(&group);
            std::thread::spawn(move || group.run_background())
        };
        // The background writer sleeps with nothing to do, and is woken by the write it
        // must sync: none of these appends wakes it.
        std::thread::sleep(Duration::from_millis(20));
        for _ in 0..3 {
            let position = group.append(FrameKind::RECORD, b"tombstones", true).expect("append");
            group.wait_written(position).expect("written");
            let deadline = Instant::now() + Duration::from_secs(60);
            while group.durable() <= position {
                assert!(Instant::now() < deadline, "a written record was never synced");
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        group.close();
        background.join().expect("background writer");
    }

    #[test]
    fn a_queue_full_of_records_their_appender_has_yet_to_wait_for_is_written_for_room() {
        for sync_every_batch in [true, false] {
            // Room for a few records. One caller appends a run of records it means to wait
            // for, all at once, later (as the reaper does): the queue fills with them while
            // it still appends, and nobody else is there to write them.
            let pacing = Pacing { sync_every_batch, ..LONG_ROUNDS };
            let group = Arc::new(GroupCommit::new(LogPosition::ZERO, 256, pacing));
            let batches = Arc::new(AtomicU64::new(0));
            group.install(CountingDisk(Arc::clone(&batches)));
            let background = {
                let group = Arc::clone(&group);
                std::thread::spawn(move || group.run_background())
            };
            let (done, finished) = std::sync::mpsc::channel();
            let appender = {
                let group = Arc::clone(&group);
                std::thread::spawn(move || {
                    let mut last = LogPosition::ZERO;
                    for _ in 0..100 {
                        last = group.append(FrameKind::RECORD, &[7; 40], true).expect("append");
                    }
                    group.wait_written(last).expect("written");
                    done.send(()).expect("the test waits");
                })
            };
            let waited = finished.recv_timeout(Duration::from_secs(60));
            assert!(waited.is_ok(), "the appender waited for room forever");
            appender.join().expect("appender");
            assert!(batches.load(Ordering::SeqCst) > 1, "the queue never filled");
            group.close();
            background.join().expect("background writer");
        }
    }

    #[test]
    fn a_buffered_writer_writes_the_appends_of_one_round_together() {
        let (group, batches, background) = buffered(1 << 20);
        // The first append after a quiet spell is written at once...
        group.append(FrameKind::RECORD, b"first", false).expect("append");
        wait_for_batches(&batches, 1);
        // ...and those that follow within the round wait for its end, all together.
        for _ in 0..100 {
            group.append(FrameKind::RECORD, b"later", false).expect("append");
        }
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(batches.load(Ordering::SeqCst), 1, "an append of the round was written alone");
        // Closing ends the round: everything is written.
        group.close();
        background.join().expect("background writer");
        assert_eq!(batches.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn no_caller_waits_for_a_buffered_round() {
        // Room for a few records only: the appends below outrun it.
        let (group, batches, background) = buffered(256);
        group.append(FrameKind::RECORD, b"first", false).expect("append");
        wait_for_batches(&batches, 1);
        // The writer wakes for this one, finds the round under way, and sleeps through it.
        group.append(FrameKind::RECORD, b"second", false).expect("append");
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(batches.load(Ordering::SeqCst), 1);
        let started = Instant::now();
        // An appender waiting for room has the round's batch written at once...
        for _ in 0..100 {
            group.append(FrameKind::RECORD, &[7; 40], false).expect("append");
        }
        // ...and so does a caller waiting for its record to be durable (it writes it).
        let position = group.append(FrameKind::RECORD, b"waited for", false).expect("append");
        group.wait_durable(position).expect("durable");
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "a caller waited for the round of 300 s"
        );
        group.close();
        background.join().expect("background writer");
    }

    /// A gate a detached sync waits at until the test opens it.
    #[derive(Debug, Default)]
    struct Gate(AtomicBool);

    impl Gate {
        fn open(&self) {
            self.0.store(true, Ordering::SeqCst);
        }

        fn pass(&self) {
            while !self.0.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    /// A fake disk whose detached syncs wait at a gate, then succeed or fail; it counts
    /// the bytes written and whether it was told to undo its unsynced writes.
    struct GatedDisk {
        gate: Arc<Gate>,
        fail: bool,
        written: Arc<AtomicU64>,
        abandoned: Arc<AtomicBool>,
    }

    #[derive(Debug)]
    struct GatedSync {
        gate: Arc<Gate>,
        fail: bool,
    }

    impl Worker for GatedDisk {
        type Detached = GatedSync;

        fn perform(&mut self, work: Work) -> Result<Done> {
            let (end, sync, buffer) = work.into_parts();
            self.written.store(end.get(), Ordering::SeqCst);
            Ok(Done { written: end, durable: sync.then_some(end), buffer })
        }

        fn detach_sync(&mut self, _end: LogPosition) -> Option<GatedSync> {
            Some(GatedSync { gate: Arc::clone(&self.gate), fail: self.fail })
        }

        fn run_detached(sync: &GatedSync) -> Result<()> {
            sync.gate.pass();
            if sync.fail {
                return Err(Error::Closed);
            }
            Ok(())
        }

        fn abandon(&mut self) {
            self.abandoned.store(true, Ordering::SeqCst);
        }
    }

    /// A `Buffered` group over a gated disk whose syncs are detached and always due, with
    /// its background writer and syncer running.
    #[allow(clippy::type_complexity, reason = "a test's parts, used once each")]
    fn gated(
        fail: bool,
    ) -> (
        Arc<GroupCommit<GatedDisk>>,
        Arc<Gate>,
        Arc<AtomicU64>,
        Arc<AtomicBool>,
        [std::thread::JoinHandle<()>; 2],
    ) {
        let pacing = Pacing {
            interval: Duration::ZERO,
            buffered_round: Duration::ZERO,
            detached_syncs: true,
            ..LONG_ROUNDS
        };
        let group = Arc::new(GroupCommit::new(LogPosition::ZERO, 64 << 10, pacing));
        let gate = Arc::new(Gate::default());
        let written = Arc::new(AtomicU64::new(0));
        let abandoned = Arc::new(AtomicBool::new(false));
        group.install(GatedDisk {
            gate: Arc::clone(&gate),
            fail,
            written: Arc::clone(&written),
            abandoned: Arc::clone(&abandoned),
        });
        let background = {
            let group = Arc::clone(&group);
            std::thread::spawn(move || group.run_background())
        };
        let syncer = {
            let group = Arc::clone(&group);
            std::thread::spawn(move || group.run_syncer())
        };
        (group, gate, written, abandoned, [background, syncer])
    }

    #[test]
    fn writes_go_on_while_a_detached_sync_is_in_flight_and_its_waiters_wait_for_it() {
        let (group, gate, written, _, threads) = gated(false);
        // The first write starts a sync, which stays in flight at the gate...
        let first = group.append(FrameKind::RECORD, b"first", false).expect("append");
        wait_for_written(&written, group.end().get());
        // ...while the records after it are written all the same, none of them durable.
        let mut last = first;
        for _ in 0..50 {
            last = group.append(FrameKind::RECORD, &[5; 200], false).expect("append");
        }
        wait_for_written(&written, group.end().get());
        assert_eq!(group.durable(), LogPosition::ZERO, "durable before its sync completed");
        // A waiter for the first record, which the sync in flight covers, waits for it
        // rather than sync again; one for a later record syncs with the token.
        let waiter = {
            let group = Arc::clone(&group);
            std::thread::spawn(move || group.wait_durable(first))
        };
        std::thread::sleep(Duration::from_millis(20));
        assert!(!waiter.is_finished(), "released before its sync completed");
        gate.open();
        waiter.join().expect("waiter").expect("durable");
        group.wait_durable(last).expect("durable");
        assert!(group.durable() > last);
        group.close();
        for thread in threads {
            thread.join().expect("a log thread");
        }
    }

    #[test]
    fn a_failed_detached_sync_fails_the_log_and_the_writer_undoes_its_unsynced_writes() {
        let (group, gate, written, abandoned, threads) = gated(true);
        let position = group.append(FrameKind::RECORD, b"lost", false).expect("append");
        wait_for_written(&written, group.end().get());
        let waiter = {
            let group = Arc::clone(&group);
            std::thread::spawn(move || group.wait_durable(position))
        };
        gate.open();
        let outcome = waiter.join().expect("waiter");
        assert!(matches!(outcome, Err(Error::Failed { .. })), "{outcome:?}");
        assert!(abandoned.load(Ordering::SeqCst), "the unsynced write was left in place");
        assert!(group.append(FrameKind::RECORD, b"more", false).is_err());
        assert_eq!(group.durable(), LogPosition::ZERO);
        group.close();
        for thread in threads {
            thread.join().expect("a log thread");
        }
    }
}
