//! Turns: the order in which transactions that lost a key commit it, so that retries on a
//! hot key hold ([`crate::Database::transaction`]'s retry loop, in `db.rs`, is their only
//! user).
//!
//! Optimistic retries alone are unfair under contention on one key (a counter, an event
//! log's head record): whoever is running when the key is free commits, and a retrier that
//! is descheduled, or parks on the sequencer's lock, between its read and its commit loses
//! again and again until its attempts run out, while newcomers win. Turns let the losers
//! commit before the newcomers:
//!
//! - **A loser takes the key's turn.** A transaction whose commit conflicted on key `K`
//!   waits for `K`'s turn, one of [`STRIPES`] mutexes chosen by a hash of `K`, and runs
//!   again at once holding it, until the call returns (committed or failed). Its
//!   competitors now are the losers' queue behind it (waiting) and newcomers, which
//!   take no turn. A conflict on another key trades the turn for that key's: it never
//!   holds two.
//! - **A loser that loses again starves the turn.** Holding `K`'s turn and losing `K`
//!   again, it marks the turn starving and retries at once; from then until it passes the
//!   turn on, newcomers that write `K` let it commit first. Losing once more (to a writer
//!   that does not look at turns: a one-shot put, a nested transaction, a newcomer that
//!   checked just before), it retries after the policy's backoff.
//! - **A newcomer lets a starving turn pass.** A transaction that has not conflicted takes
//!   no lock. Before it commits it loads one counter, the starving turns of this database,
//!   zero almost always; only when it is not does it hash the keys it wrote, and if another
//!   thread starves on the turn of one of them it waits until the turn comes to it, passes
//!   it on at once, and then commits. That commit most likely loses the key (the loser
//!   has committed it meanwhile), and the newcomer queues for the turn as a loser; its
//!   closure runs again only after that conflict, as without turns. It does not hold the
//!   turn while it waits to commit, and newcomers wait only for a starving turn: the queue
//!   stays the losers', and a key whose losers win at their first retry stays optimistic
//!   for everyone else, without a lock hand-over per commit.
//! - **A turn passes straight to the next waiter** (a fair unlock, after clearing
//!   starving), so it never looks free while threads wait for it, and waiters are served
//!   in the order they came.
//!
//! So once a loser starves, its only competitors are the transactions that checked before
//! it marked the turn (each can beat it once: after that it is a loser behind it in the
//! queue) and writers that never look at turns; its retry bound holds however many
//! threads write the key.
//!
//! **Turns never decide what commits.** Validation alone does (first committer wins); a
//! turn only orders attempts. A starving turn that a newcomer misses (the counter or the
//! flag read a moment before a loser set it: they are `Relaxed`, nothing is published
//! through them), two keys sharing a stripe, or a waiter giving up costs a wait or a retry,
//! never an anomaly. So the counter, the flags and the stripe's key hash are hints, and no
//! ordering beyond `Relaxed` is needed for them; the turns themselves are `parking_lot` mutexes,
//! and there is no lock-free protocol here to model-check.
//!
//! **No deadlock through turns.** A thread waits for a turn only while it holds none (a
//! thread-local says whether it holds one; a transaction run inside the closure of a
//! transaction that holds a turn retries without turns), and while it waits it holds
//! nothing of the engine that another thread waits for: a loser's transaction is gone (its
//! commit failed), and a newcomer's registered snapshot only keeps old versions from the
//! collector for the wait. The
//! one cycle turns cannot rule out is outside the engine: a closure that blocks on
//! something a waiting caller holds (a lock taken around `transaction`). For that, a wait
//! gives up after [`TURN_WAIT_MAX`], and the call then retries without turns, with the
//! jittered backoff of its [`crate::RetryPolicy`].

#[cfg(not(loom))]
pub(crate) use real::{Turn, Turns};

#[cfg(loom)]
pub(crate) use model::{Turn, Turns};

/// How many turns a database has; keys are spread over them by hash. Two hot keys of one
/// stripe take turns together (a wait, never a wrong result); a newcomer compares the full
/// 64-bit hash of the held key before it yields, so keys that only share the stripe do not
/// queue behind it.
#[cfg_attr(loom, allow(dead_code, reason = "loom models have no turns"))]
pub(crate) const STRIPES: usize = 256;

/// The longest a transaction waits for a turn; then it retries without turns.
#[cfg_attr(loom, allow(dead_code, reason = "loom models have no turns"))]
pub(crate) const TURN_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(1);

#[cfg(not(loom))]
mod real {
    use std::cell::Cell;
    use xxhash_rust::xxh3::xxh3_64;

    use super::{STRIPES, TURN_WAIT_MAX};
    // Outside loom these are parking_lot's mutex (timed and fair) and std's atomics.
    use crate::sync::{AtomicBool, AtomicU64, AtomicUsize, Mutex, MutexGuard, Ordering};

    thread_local! {
        /// Whether this thread holds a turn (of any database): it must not wait for another.
        static HOLDING: Cell<bool> = const { Cell::new(false) };
    }

    /// A database's turns.
    pub(crate) struct Turns {
        /// Turns whose holder lost its key again while holding it: zero almost always, and
        /// then a newcomer hashes nothing.
        starving: AtomicUsize,
        stripes: Box<[Stripe]>,
    }

    #[derive(Default)]
    struct Stripe {
        turn: Mutex<()>,
        /// The hash of the key whose turn this is, written by each holder once it has it.
        key_hash: AtomicU64,
        /// Set by a holder that lost its key again (newcomers then let the turn pass);
        /// cleared before the turn passes on.
        starving: AtomicBool,
    }

    /// A held turn; dropping it passes it to the next waiter.
    pub(crate) struct Turn<'t> {
        turns: &'t Turns,
        stripe: &'t Stripe,
        /// `Some` until dropped.
        guard: Option<MutexGuard<'t, ()>>,
        key_hash: u64,
    }

    impl Turns {
        pub(crate) fn new() -> Turns {
            let stripes = (0..STRIPES).map(|_| Stripe::default()).collect();
            Turns { starving: AtomicUsize::new(0), stripes }
        }

        /// Whether some turn's holder is starving: the newcomer's one load.
        #[inline]
        pub(crate) fn starving(&self) -> bool {
            // Relaxed: a hint (see the module doc); a stale zero costs fairness once.
            self.starving.load(Ordering::Relaxed) != 0
        }

        /// The hash of the first of `keys` whose turn another thread holds and starves on,
        /// if any; `None` on a thread that holds a turn itself (it must not wait).
        pub(crate) fn starving_on<'k>(
            &self,
            mut keys: impl Iterator<Item = &'k [u8]>,
        ) -> Option<u64> {
            if HOLDING.get() {
                return None;
            }
            keys.find_map(|key| {
                let key_hash = xxh3_64(key);
                let stripe = self.stripe(key_hash);
                let starving = stripe.starving.load(Ordering::Relaxed)
                    && stripe.key_hash.load(Ordering::Relaxed) == key_hash;
                starving.then_some(key_hash)
            })
        }

        /// Waits for the turn of the key hashed `key_hash` (see [`Turns::turn_of`]); `None`
        /// if this thread holds a turn already, or after waiting [`TURN_WAIT_MAX`].
        #[cold]
        pub(crate) fn wait(&self, key_hash: u64) -> Option<Turn<'_>> {
            if HOLDING.get() {
                return None;
            }
            let stripe = self.stripe(key_hash);
            let guard = stripe.turn.try_lock_for(TURN_WAIT_MAX)?;
            stripe.key_hash.store(key_hash, Ordering::Relaxed);
            HOLDING.set(true);
            Some(Turn { turns: self, stripe, guard: Some(guard), key_hash })
        }

        /// Waits until the turn of the key hashed `key_hash` comes to this thread, and
        /// passes it on at once (to the next waiter, if any): a newcomer's wait behind the
        /// transactions that queued for the turn before it. False if this thread holds a
        /// turn (it must not wait), or after waiting [`TURN_WAIT_MAX`].
        #[cold]
        pub(crate) fn wait_passed(&self, key_hash: u64) -> bool {
            if HOLDING.get() {
                return false;
            }
            let guard = self.stripe(key_hash).turn.try_lock_for(TURN_WAIT_MAX);
            guard.map(MutexGuard::unlock_fair).is_some()
        }

        /// The hash that names `key`'s turn.
        pub(crate) fn turn_of(key: &[u8]) -> u64 {
            xxh3_64(key)
        }

        fn stripe(&self, key_hash: u64) -> &Stripe {
            // The remainder is below STRIPES, so it fits and indexes the slice.
            &self.stripes[(key_hash % STRIPES as u64) as usize]
        }
    }

    impl Turn<'_> {
        /// Whether this is the turn of the key hashed `key_hash`.
        pub(crate) fn is_for(&self, key_hash: u64) -> bool {
            self.key_hash == key_hash
        }

        /// Marks the turn starving (its holder lost the key again): from now until it is
        /// passed on, newcomers that write the key let it pass before they commit. False if
        /// it was already.
        pub(crate) fn starve(&self) -> bool {
            let newly = !self.stripe.starving.swap(true, Ordering::Relaxed);
            if newly {
                self.turns.starving.fetch_add(1, Ordering::Relaxed);
            }
            newly
        }
    }

    impl Drop for Turn<'_> {
        fn drop(&mut self) {
            HOLDING.set(false);
            if self.stripe.starving.swap(false, Ordering::Relaxed) {
                self.turns.starving.fetch_sub(1, Ordering::Relaxed);
            }
            if let Some(guard) = self.guard.take() {
                // Straight to the next waiter, if any: the turn never looks free meanwhile.
                MutexGuard::unlock_fair(guard);
            }
        }
    }
}

/// Under loom there are no turns: the models check validation and visibility, which turns
/// do not change, and loom has no timed or fair lock. The retry loop runs as without
/// contention.
#[cfg(loom)]
mod model {
    pub(crate) struct Turns;

    pub(crate) struct Turn<'t>(std::marker::PhantomData<&'t ()>);

    impl Turns {
        pub(crate) fn new() -> Turns {
            Turns
        }

        pub(crate) fn starving(&self) -> bool {
            false
        }

        pub(crate) fn starving_on<'k>(&self, _keys: impl Iterator<Item = &'k [u8]>) -> Option<u64> {
            None
        }

        pub(crate) fn wait(&self, _key_hash: u64) -> Option<Turn<'_>> {
            None
        }

        pub(crate) fn wait_passed(&self, _key_hash: u64) -> bool {
            false
        }

        pub(crate) fn turn_of(_key: &[u8]) -> u64 {
            0
        }
    }

    impl Turn<'_> {
        pub(crate) fn is_for(&self, _key_hash: u64) -> bool {
            false
        }

        pub(crate) fn starve(&self) -> bool {
            false
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Long enough, almost always, for a spawned thread to reach its wait; the tests hold
    /// whether it does or not.
    const SETTLE: Duration = Duration::from_millis(20);

    #[test]
    fn newcomers_see_a_turn_only_once_it_starves_and_only_for_its_key() {
        let turns = Turns::new();
        let key_hash = Turns::turn_of(b"hot");
        let turn = turns.wait(key_hash).expect("a free turn");
        assert!(turn.is_for(key_hash));
        let keys = [&b"cold"[..], b"hot"];
        let from_another_thread = |keys: &[&[u8]]| {
            std::thread::scope(|scope| {
                let seen = scope.spawn(|| turns.starving_on(keys.iter().copied()));
                seen.join().expect("the other thread")
            })
        };
        assert!(!turns.starving());
        assert_eq!(from_another_thread(&keys), None, "held, not starving");
        assert!(turn.starve());
        assert!(!turn.starve(), "once");
        assert!(turns.starving());
        assert_eq!(from_another_thread(&keys), Some(key_hash));
        assert_eq!(from_another_thread(&[b"cold"]), None);
        // Its holder does not wait, for this turn or another one.
        assert_eq!(turns.starving_on(keys.into_iter()), None);
        assert!(turns.wait(Turns::turn_of(b"other")).is_none());
        drop(turn);
        assert!(!turns.starving(), "passing the turn ends the starving");
        assert_eq!(from_another_thread(&keys), None);
        assert!(turns.wait(key_hash).is_some(), "released, and the thread may wait again");
    }

    #[test]
    fn a_released_turn_goes_to_the_thread_waiting_for_it() {
        let turns = Turns::new();
        let key_hash = Turns::turn_of(b"hot");
        let turn = turns.wait(key_hash).expect("a free turn");
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| turns.wait(key_hash).map(|turn| turn.is_for(key_hash)));
            std::thread::sleep(SETTLE);
            drop(turn);
            assert_eq!(waiter.join().expect("the waiter"), Some(true));
        });
    }

    #[test]
    fn a_newcomer_waits_for_the_turn_to_pass_without_keeping_it() {
        let turns = Turns::new();
        let key_hash = Turns::turn_of(b"hot");
        let turn = turns.wait(key_hash).expect("a free turn");
        std::thread::scope(|scope| {
            let newcomer = scope.spawn(|| turns.wait_passed(key_hash));
            std::thread::sleep(SETTLE);
            drop(turn);
            assert!(newcomer.join().expect("the newcomer"), "the turn passed");
        });
        assert!(turns.wait(key_hash).is_some(), "nobody holds it now");
    }
}
