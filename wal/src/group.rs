//! The group-commit hand-off between appenders, the log writer and waiters.
//!
//! No I/O happens here; `writer.rs` does it between [`GroupCommit::next_work`] and
//! [`GroupCommit::finish`], holding no lock.
//!
//! # Protocol
//!
//! One mutex guards the [`State`]; three condition variables hang off it:
//! - an appender encodes its frame into `pending` under the lock, takes the next position,
//!   and wakes the writer if it sleeps; it waits on `space` while `pending` is full;
//! - the writer takes the whole of `pending` as one batch (swapping in a spare buffer), lets
//!   the lock go, writes and syncs the batch, then retakes the lock to publish the new
//!   durable end, and wakes every waiter through [`Signal`] (`durable_changed`);
//! - a waiter returns as soon as the atomic `durable` is past its position. It sleeps on
//!   `durable_changed` without the lock: it reads the signal's epoch, then `durable` and
//!   `failed`, and sleeps only if neither lets it go, on the epoch it read; the writer stores
//!   `durable` (or `failed`) before it bumps the epoch, all `SeqCst`, so a waiter that read
//!   the old value sleeps on an old epoch and returns at once: no wake-up is lost. The woken
//!   waiters need no lock to return, so they do not queue on the mutex.
//!
//! After a failed write or sync the state keeps the failure: waiters beyond the durable
//! end, and every later append, get [`Error::Failed`]. Nothing is acknowledged that the
//! log could not make durable.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::format::{encode_unsealed, frame_len, FrameKind};
use crate::sync::{AtomicBool, AtomicU64, Condvar, Mutex, MutexGuard, Ordering, Signal};
use crate::LogPosition;

/// The shared state of appenders, the writer and waiters.
#[derive(Debug)]
pub(crate) struct GroupCommit {
    state: Mutex<State>,
    /// Wakes the writer: something to write or sync, or closing.
    writer_wake: Condvar,
    /// Wakes appenders waiting for room in `pending`.
    space: Condvar,
    /// Wakes waiters: the durable end moved, or the log failed.
    durable_changed: Signal,
    /// The durable end, which waiters read without the lock; written only under the lock.
    durable: AtomicU64,
    /// Set (under the lock) once `State::failure` is.
    failed: AtomicBool,
    /// `pending` accepts a frame while it holds less than this (or is empty).
    max_queued_bytes: u64,
}

#[derive(Debug)]
struct State {
    /// Unsealed frames not yet taken by the writer, in position order from `pending_start`.
    pending: Vec<u8>,
    pending_start: u64,
    pending_records: u64,
    /// A cleared buffer to swap in for the next batch.
    spare: Vec<u8>,
    /// The position the next append gets.
    next: u64,
    /// The end of what the writer has written (durable or not).
    written: u64,
    /// The end of what is durable.
    durable: u64,
    /// The highest end some waiter needs durable.
    wanted: u64,
    /// The failure that stopped the log, if any.
    failure: Option<Error>,
    closing: bool,
    writer_sleeping: bool,
    /// While the writer sleeps: how many queued records make an append wake it (1 when it
    /// is idle; the batch it gathers for when it waits for committers to join one).
    writer_wakes_at: u64,
}

/// What the writer is to do next.
#[derive(Debug)]
pub(crate) enum Work {
    /// Write (and, if asked, sync) this batch.
    Write(Batch),
    /// Nothing new to write, but written data waits for a sync.
    Sync { end: LogPosition },
    /// Closing, with everything written and synced; or failed.
    Stop,
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

impl Batch {
    /// The position after the last frame.
    pub(crate) fn end(&self) -> LogPosition {
        LogPosition::new(self.start.get() + self.bytes.len() as u64)
    }
}

/// What the writer considers when deciding to go.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Policy {
    /// `Durability::Sync`: every batch is synced as it is written. Otherwise batches are
    /// written at once and synced when someone waits, when closing, or every `interval`.
    pub(crate) sync_every_batch: bool,
    /// The longest a written batch stays unsynced when not `sync_every_batch`.
    pub(crate) interval: Duration,
    /// When the writer last synced.
    pub(crate) last_sync: Instant,
    /// Under `sync_every_batch`, wait for this many records before writing a batch...
    pub(crate) gather_records: u64,
    /// ...but no longer than this after the first one is queued.
    pub(crate) gather: Duration,
}

impl GroupCommit {
    /// An empty hand-off for a log whose next position is `end`.
    pub(crate) fn new(end: LogPosition, max_queued_bytes: u64) -> GroupCommit {
        GroupCommit {
            state: Mutex::new(State {
                pending: Vec::new(),
                pending_start: end.get(),
                pending_records: 0,
                spare: Vec::new(),
                next: end.get(),
                written: end.get(),
                durable: end.get(),
                wanted: end.get(),
                failure: None,
                closing: false,
                writer_sleeping: false,
                writer_wakes_at: 1,
            }),
            writer_wake: Condvar::new(),
            space: Condvar::new(),
            durable_changed: Signal::new(),
            durable: AtomicU64::new(end.get()),
            failed: AtomicBool::new(false),
            max_queued_bytes,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means a thread panicked while holding it; every critical section
        // here leaves the state consistent at each step, so going on is sound.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn wait<'a>(&self, condvar: &Condvar, guard: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        condvar.wait(guard).unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The end of what is durable.
    pub(crate) fn durable(&self) -> LogPosition {
        LogPosition::new(self.durable.load(Ordering::Acquire))
    }

    /// The position the next append gets.
    pub(crate) fn end(&self) -> LogPosition {
        LogPosition::new(self.lock().next)
    }

    /// Queues a frame; returns its position. Waits while the queue is full. With
    /// `then_wait`, registers in the same critical section that the caller will wait for
    /// it to be durable, so that [`GroupCommit::wait_registered`] needs no lock.
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
            state = self.wait(&self.space, state);
        }
        let position = LogPosition::new(state.next);
        let Some(next) = state.next.checked_add(len) else {
            return Err(Error::Exhausted { what: "positions" });
        };
        encode_unsealed(&mut state.pending, kind, position, payload);
        state.next = next;
        state.pending_records += 1;
        if then_wait {
            // The frame is queued, so no wake-up of the writer is needed for it (see
            // `want_durable`).
            state.wanted = state.wanted.max(position.get() + 1);
        }
        debug_assert_eq!(state.pending_start + state.pending.len() as u64, state.next);
        // A gathering writer is woken once, by the append that completes its batch (or by its
        // timeout), not by every append on the way there.
        if state.writer_sleeping && state.pending_records >= state.writer_wakes_at {
            self.writer_wake.notify_one();
        }
        Ok(position)
    }

    /// Returns once the frame at `position` is durable.
    pub(crate) fn wait_durable(&self, position: LogPosition) -> Result<()> {
        let needed = position.get();
        if self.durable.load(Ordering::Acquire) > needed {
            return Ok(());
        }
        let mut state = self.lock();
        if needed >= state.next {
            return Err(Error::OutOfRange {
                position,
                first: LogPosition::ZERO,
                end: LogPosition::new(state.next),
            });
        }
        self.want_durable(&mut state, needed);
        drop(state);
        self.wait_registered(position)
    }

    /// Records that the frame at `needed` is waited for, and wakes the writer if that gives
    /// it a sync to do. Only written data waits on the writer for a sync: a frame still
    /// queued is written (and, under `Sync`, synced) by a batch the writer is due to take,
    /// and under `Buffered` the writer checks `wanted` after each write.
    fn want_durable(&self, state: &mut State, needed: u64) {
        if state.wanted <= needed {
            state.wanted = needed + 1;
            if state.writer_sleeping && needed < state.written {
                self.writer_wake.notify_one();
            }
        }
    }

    /// Returns once the frame at `position`, registered as waited for, is durable; takes no
    /// lock unless the log failed.
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
            self.durable_changed.wait(seen);
        }
    }

    #[cold]
    fn failed_error(&self) -> Error {
        match &self.lock().failure {
            Some(failure) => Error::Failed { cause: Box::new(failure.clone()) },
            None => Error::Closed,
        }
    }

    /// Waits for the writer's next piece of work.
    pub(crate) fn next_work(&self, policy: Policy) -> Work {
        let mut state = self.lock();
        let mut gathering_since: Option<Instant> = None;
        loop {
            if state.failure.is_some() {
                return Work::Stop;
            }
            let mut timeout = None;
            state.writer_wakes_at = 1;
            if !state.pending.is_empty() {
                let unsynced = state.written - state.durable;
                if !policy.sync_every_batch
                    && unsynced > 0
                    && unsynced + state.pending.len() as u64 > self.max_queued_bytes
                {
                    // Never more than one batch's worth unsynced: what a crash can tear stays
                    // inside the window recovery may cut, whatever the durability.
                    return Work::Sync { end: LogPosition::new(state.written) };
                }
                if !policy.sync_every_batch
                    || state.closing
                    || state.pending_records >= policy.gather_records
                {
                    return Work::Write(self.take_batch(&mut state));
                }
                let since = *gathering_since.get_or_insert_with(Instant::now);
                match policy.gather.checked_sub(since.elapsed()) {
                    Some(left) if !left.is_zero() => {
                        timeout = Some(left);
                        state.writer_wakes_at = policy.gather_records;
                    }
                    _ => return Work::Write(self.take_batch(&mut state)),
                }
            } else if state.written > state.durable {
                let due = policy.interval.checked_sub(policy.last_sync.elapsed());
                if state.wanted > state.durable || state.closing || due.is_none() {
                    return Work::Sync { end: LogPosition::new(state.written) };
                }
                timeout = due;
            } else if state.closing {
                return Work::Stop;
            }
            state = self.sleep(state, timeout);
        }
    }

    fn sleep<'a>(
        &self,
        mut state: MutexGuard<'a, State>,
        timeout: Option<Duration>,
    ) -> MutexGuard<'a, State> {
        state.writer_sleeping = true;
        let mut state = match timeout {
            // loom has no timed waits; its models run without gathering or intervals.
            #[cfg(not(loom))]
            Some(timeout) => {
                self.writer_wake
                    .wait_timeout(state, timeout)
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0
            }
            _ => self.wait(&self.writer_wake, state),
        };
        state.writer_sleeping = false;
        state
    }

    fn take_batch(&self, state: &mut State) -> Batch {
        let spare = std::mem::take(&mut state.spare);
        let bytes = std::mem::replace(&mut state.pending, spare);
        let batch = Batch {
            start: LogPosition::new(state.pending_start),
            bytes,
            records: std::mem::take(&mut state.pending_records),
        };
        state.pending_start = state.next;
        self.space.notify_all();
        batch
    }

    /// Publishes that the writer wrote everything before `written`, and that everything
    /// before `durable` is durable; takes back a batch's buffer for reuse. Returns how many
    /// records were queued meanwhile.
    pub(crate) fn finish(
        &self,
        written: LogPosition,
        durable: LogPosition,
        buffer: Option<Vec<u8>>,
    ) -> u64 {
        let mut state = self.lock();
        debug_assert!(written.get() >= state.written && durable.get() >= state.durable);
        debug_assert!(durable <= written && written.get() <= state.pending_start);
        state.written = written.get();
        state.durable = durable.get();
        self.durable.store(durable.get(), Ordering::SeqCst);
        if let Some(mut buffer) = buffer {
            buffer.clear();
            if state.spare.capacity() < buffer.capacity() {
                state.spare = buffer;
            }
        }
        let queued = state.pending_records;
        drop(state);
        self.durable_changed.wake_all();
        queued
    }

    /// Stops the log: every waiter beyond the durable end and every later append fails.
    pub(crate) fn fail(&self, error: Error) {
        let mut state = self.lock();
        if state.failure.is_none() {
            state.failure = Some(error);
        }
        self.failed.store(true, Ordering::SeqCst);
        drop(state);
        self.durable_changed.wake_all();
        self.space.notify_all();
        self.writer_wake.notify_all();
    }

    /// The failure that stopped the log, if any.
    pub(crate) fn failure(&self) -> Option<Error> {
        self.lock().failure.clone()
    }

    /// Asks the writer to write and sync everything queued, then stop; refuses appends.
    pub(crate) fn close(&self) {
        self.lock().closing = true;
        self.writer_wake.notify_all();
        self.space.notify_all();
    }
}
