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
//!   durable end and wake every waiter (`durable_wake`);
//! - a waiter returns as soon as `durable > position`, checked first without the lock on
//!   [`GroupCommit::durable`] and then under it before each wait. The writer publishes the
//!   durable end under the lock, so a waiter that found it too small is already waiting
//!   when the writer notifies: no wake-up is lost. The atomic is stored before the lock is
//!   released (Release) and loaded with Acquire, so a waiter that returns on the fast path
//!   sees everything the writer did before publishing.
//!
//! After a failed write or sync the state keeps the failure: waiters beyond the durable
//! end, and every later append, get [`Error::Failed`]. Nothing is acknowledged that the
//! log could not make durable.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::format::{encode_unsealed, frame_len, FrameKind};
use crate::sync::{AtomicU64, Condvar, Mutex, MutexGuard, Ordering};
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
    durable_wake: Condvar,
    /// The durable end, for the waiters' lock-free fast path; written only under the lock.
    durable: AtomicU64,
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
            }),
            writer_wake: Condvar::new(),
            space: Condvar::new(),
            durable_wake: Condvar::new(),
            durable: AtomicU64::new(end.get()),
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

    /// Queues a frame; returns its position. Waits while the queue is full.
    pub(crate) fn append(&self, kind: FrameKind, payload: &[u8]) -> Result<LogPosition> {
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
        encode_unsealed(&mut state.pending, kind, position, payload);
        state.next += len;
        state.pending_records += 1;
        debug_assert_eq!(state.pending_start + state.pending.len() as u64, state.next);
        if state.writer_sleeping {
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
        if state.wanted <= needed {
            state.wanted = needed + 1;
            if state.writer_sleeping {
                self.writer_wake.notify_one();
            }
        }
        loop {
            if state.durable > needed {
                return Ok(());
            }
            if let Some(failure) = &state.failure {
                return Err(Error::Failed { cause: Box::new(failure.clone()) });
            }
            state = self.wait(&self.durable_wake, state);
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
            if !state.pending.is_empty() {
                if !policy.sync_every_batch
                    || state.closing
                    || state.pending_records >= policy.gather_records
                {
                    return Work::Write(self.take_batch(&mut state));
                }
                let since = *gathering_since.get_or_insert_with(Instant::now);
                match policy.gather.checked_sub(since.elapsed()) {
                    Some(left) if !left.is_zero() => timeout = Some(left),
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
        self.durable.store(durable.get(), Ordering::Release);
        if let Some(mut buffer) = buffer {
            buffer.clear();
            if state.spare.capacity() < buffer.capacity() {
                state.spare = buffer;
            }
        }
        let queued = state.pending_records;
        drop(state);
        self.durable_wake.notify_all();
        queued
    }

    /// Stops the log: every waiter beyond the durable end and every later append fails.
    pub(crate) fn fail(&self, error: Error) {
        let mut state = self.lock();
        if state.failure.is_none() {
            state.failure = Some(error);
        }
        drop(state);
        self.durable_wake.notify_all();
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
