//! loom models of the engine's lock-free protocols, run with
//! `RUSTFLAGS="--cfg loom" cargo test -p inmem-engine --release loom`.
//!
//! Each model states the property it checks in its name and asserts it in every
//! interleaving loom explores. Under loom the engine's atomics, fences, locks and epoch
//! types are loom's (`sync.rs`) and the key index is a `Mutex<BTreeMap>` (`index.rs`), so
//! the whole-database models run the real commit and read paths.
//!
//! Every model runs through [`model`], which bounds loom's search at three preemptions per
//! execution unless `LOOM_MAX_PREEMPTIONS` says otherwise: unbounded, the three-finisher and
//! whole-database models run for hours on two cores, while the bugs these protocols can
//! have (a publish before an install, a prune past a registered reader) need one or two.
//! `LOOM_MAX_PREEMPTIONS=N` searches deeper.

#![allow(clippy::expect_used, reason = "a failed expectation fails the model, as it should")]

use std::sync::Arc;

use loom::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use loom::thread;

use crate::bytes::Bytes;
use crate::chain::{Retired, VersionChain};
use crate::sync::epoch::{self, Owned};
use crate::version::{CommitVersion, VersionNode, NEVER_EXPIRES};
use crate::visible::VisibleVersion;
use crate::watermark::SnapshotRegistry;
use crate::Database;
use inmem_wal::LogPosition;

/// Runs `f` under loom with the preemption bound the module documents.
fn model<F: Fn() + Sync + Send + 'static>(f: F) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(f);
}

fn node(version: u64, value: &str) -> Owned<VersionNode> {
    let mut node = VersionNode::put(Bytes::from(value), NEVER_EXPIRES);
    node.set_version(CommitVersion::new(version));
    Owned::new(node)
}

fn value_at(chain: &VersionChain, version: u64) -> Option<Bytes> {
    let guard = epoch::pin();
    chain.read_at(version, &guard).and_then(|node| node.value().cloned())
}

/// Finishers of versions `first..first+count`, each raising an "installed" flag before it
/// finishes, racing a reader that checks every version it sees visible was installed.
fn finish_out_of_order(first: u64, count: u64) {
    model(move || {
        let visible = Arc::new(VisibleVersion::new(CommitVersion::new(first - 1)));
        let installed: Arc<Vec<AtomicBool>> =
            Arc::new((0..count).map(|_| AtomicBool::new(false)).collect());
        let finishers: Vec<_> = (0..count)
            .map(|offset| {
                let (visible, installed) = (Arc::clone(&visible), Arc::clone(&installed));
                thread::spawn(move || {
                    installed[offset as usize].store(true, Ordering::Relaxed);
                    visible.finish(CommitVersion::new(first + offset));
                })
            })
            .collect();
        // Without a yield, loom never runs the finishers before the reader's first load.
        thread::yield_now();
        let seen = visible.load().get();
        for version in first..=seen {
            // Relaxed on purpose: only the visible version's Acquire/Release chain may
            // make the flag visible here.
            assert!(
                installed[(version - first) as usize].load(Ordering::Relaxed),
                "{version} visible before installed"
            );
        }
        for finisher in finishers {
            finisher.join().expect("finisher");
        }
        assert_eq!(visible.load().get(), first + count - 1, "every finished commit became visible");
    });
}

#[test]
fn loom_visible_version_never_passes_an_unfinished_commit() {
    finish_out_of_order(1, 2);
}

#[test]
fn loom_visible_version_advances_over_three_out_of_order_finishes() {
    finish_out_of_order(1, 3);
}

#[test]
fn loom_visible_version_advances_across_the_ring_wrap() {
    let ring = crate::visible::COMMITS_IN_FLIGHT_MAX;
    finish_out_of_order(ring - 1, 2);
}

/// Two `Sync` commits parked with the log positions their records need, the records
/// reaching the log in the opposite order of their versions: commit 2's record is durable
/// already (an earlier sync), commit 1's committer syncs the log through its own record
/// (a plain store of the durable position, as the log's writer publishes it). Each
/// announces once its record is durable. A reader never sees a version visible before it
/// was installed and durable, and both end visible, whichever committer runs first.
#[test]
fn loom_a_parked_commit_is_visible_only_once_durable_and_none_is_left_behind() {
    model(|| {
        const NEEDS: [u64; 2] = [20, 10];
        let visible = Arc::new(VisibleVersion::new(CommitVersion::ZERO));
        let durable = Arc::new(AtomicU64::new(NEEDS[1]));
        let installed: Arc<Vec<AtomicBool>> =
            Arc::new(vec![AtomicBool::new(false), AtomicBool::new(false)]);
        let committers: Vec<_> = (0..2)
            .map(|index| {
                let (visible, durable, installed) =
                    (Arc::clone(&visible), Arc::clone(&durable), Arc::clone(&installed));
                thread::spawn(move || {
                    installed[index].store(true, Ordering::Relaxed);
                    visible
                        .park(CommitVersion::new(index as u64 + 1), LogPosition::new(NEEDS[index]));
                    if durable.load(Ordering::Acquire) < NEEDS[index] {
                        durable.store(NEEDS[index], Ordering::Release);
                    }
                    visible.announce(|| LogPosition::new(durable.load(Ordering::Acquire)));
                })
            })
            .collect();
        // Without a yield, loom never runs the committers before the reader's first load.
        thread::yield_now();
        let seen = visible.load().get();
        let durable_now = durable.load(Ordering::Acquire);
        for version in 1..=seen {
            let index = (version - 1) as usize;
            // Relaxed on purpose: only the visible version's chain may publish the flag.
            assert!(installed[index].load(Ordering::Relaxed), "{version} visible before installed");
            assert!(durable_now >= NEEDS[index], "{version} visible before durable");
        }
        for committer in committers {
            committer.join().expect("committer");
        }
        assert_eq!(visible.load(), CommitVersion::new(2), "every durable commit became visible");
    });
}

/// A reader registers at the visible version and reads a chain while a writer installs and
/// publishes a newer version and the collector publishes a horizon and prunes: the reader
/// always reads exactly the value of the version it registered at.
#[test]
fn loom_a_registered_reader_never_loses_its_version_to_pruning() {
    model(|| {
        let visible = Arc::new(VisibleVersion::new(CommitVersion::ZERO));
        let registry = Arc::new(SnapshotRegistry::new());
        let chain = Arc::new(VersionChain::new());
        {
            let guard = epoch::pin();
            chain.install(node(1, "a"), &guard);
        }
        visible.finish(CommitVersion::new(1));

        let writer = {
            let (visible, chain) = (Arc::clone(&visible), Arc::clone(&chain));
            thread::spawn(move || {
                chain.install(node(2, "b"), &epoch::pin());
                visible.finish(CommitVersion::new(2));
            })
        };
        let collector = {
            let (visible, registry, chain) =
                (Arc::clone(&visible), Arc::clone(&registry), Arc::clone(&chain));
            thread::spawn(move || {
                let horizon = registry.publish_horizon(visible.load().get());
                // What is detached is leaked under loom: the twin of the epoch frees nothing.
                chain.prune(horizon, 1, 0, &epoch::pin(), &mut Retired::default());
            })
        };

        // Without a yield, loom never runs the writer before the reader registers.
        thread::yield_now();
        let reader =
            registry.register(&visible, None, 0).expect("a reader of now is never too old");
        let expected = if reader.version() == 1 { "a" } else { "b" };
        assert_eq!(value_at(&chain, reader.version()), Some(Bytes::from(expected)));
        registry.release(&reader);

        writer.join().expect("writer");
        collector.join().expect("collector");
        assert_eq!(value_at(&chain, 2), Some(Bytes::from("b")));
    });
}

/// A reader of a fixed old version either is refused (the collector got there first) or
/// reads that version intact, however the collector's pass interleaves.
#[test]
fn loom_a_snapshot_at_an_old_version_is_refused_or_intact() {
    model(|| {
        let visible = Arc::new(VisibleVersion::new(CommitVersion::ZERO));
        let registry = Arc::new(SnapshotRegistry::new());
        let chain = Arc::new(VersionChain::new());
        {
            let guard = epoch::pin();
            chain.install(node(1, "a"), &guard);
            chain.install(node(2, "b"), &guard);
        }
        visible.finish(CommitVersion::new(1));
        visible.finish(CommitVersion::new(2));

        let collector = {
            let (registry, chain) = (Arc::clone(&registry), Arc::clone(&chain));
            thread::spawn(move || {
                let horizon = registry.publish_horizon(2);
                // What is detached is leaked under loom: the twin of the epoch frees nothing.
                chain.prune(horizon, 1, 0, &epoch::pin(), &mut Retired::default());
            })
        };
        match registry.register(&visible, Some(1), 0) {
            Ok(reader) => {
                assert_eq!(value_at(&chain, 1), Some(Bytes::from("a")));
                registry.release(&reader);
            }
            Err(too_old) => assert_eq!(too_old.horizon, 2),
        }
        collector.join().expect("collector");
    });
}

/// Through the public API: a transaction writing two keys races a snapshot reader and a
/// collection pass; the reader sees both writes or neither, never one.
#[test]
fn loom_database_commits_are_atomic_to_concurrent_snapshots() {
    model(|| {
        let db = Arc::new(Database::in_memory().expect("opens"));
        db.transaction(|txn| {
            txn.put(b"x", b"0")?;
            txn.put(b"y", b"0")
        })
        .expect("seed");

        let writer = {
            let db = Arc::clone(&db);
            thread::spawn(move || {
                db.transaction(|txn| {
                    txn.put(b"x", b"1")?;
                    txn.put(b"y", b"1")
                })
                .expect("commit");
            })
        };
        let collector = {
            let db = Arc::clone(&db);
            thread::spawn(move || {
                db.collect_garbage();
            })
        };
        let snapshot = db.snapshot();
        let x = snapshot.get(b"x").expect("read");
        let y = snapshot.get(b"y").expect("read");
        assert_eq!(x, y, "a snapshot sees a commit whole or not at all");
        drop(snapshot);

        writer.join().expect("writer");
        collector.join().expect("collector");
        assert_eq!(db.get(b"x").expect("read"), Some(Bytes::from("1")));
    });
}

/// Through the public API: a range delete races a reader while the purge replaces the key
/// by a tombstone, the collector runs and the range delete retires; a reader at the delete's
/// version or later never sees the key, one before it always does.
#[test]
fn loom_a_range_delete_hides_its_keys_from_every_reader_at_or_after_it() {
    model(|| {
        let db = Arc::new(Database::in_memory().expect("opens"));
        let seeded = db.put(b"r/a", b"0").expect("seed").get();
        let deleter = {
            let db = Arc::clone(&db);
            thread::spawn(move || db.delete_prefix(b"r/").expect("range delete").get())
        };
        let purger = {
            let db = Arc::clone(&db);
            thread::spawn(move || {
                db.purge_range_deletes(1);
                db.collect_garbage();
                db.purge_range_deletes(1);
            })
        };
        let snapshot = db.snapshot();
        let read = snapshot.get(b"r/a").expect("read");
        let scanned = snapshot.prefix(b"r/").count();
        let at = snapshot.version().get();
        drop(snapshot);
        let deleted_at = deleter.join().expect("deleter");
        purger.join().expect("purger");
        assert!(at >= seeded);
        if at >= deleted_at {
            assert_eq!(
                (read, scanned),
                (None, 0),
                "a reader at {at} saw a key deleted at {deleted_at}"
            );
        } else {
            assert_eq!(
                (read.is_some(), scanned),
                (true, 1),
                "a reader at {at} lost a key deleted later"
            );
        }
        assert_eq!(db.get(b"r/a").expect("read"), None);
    });
}

/// Through the public API: two transactions write the same key from the same snapshot
/// version; exactly one commits (first committer wins), and the loser's write is invisible.
#[test]
fn loom_database_first_committer_wins() {
    model(|| {
        let db = Arc::new(Database::in_memory().expect("opens"));
        db.put(b"k", b"0").expect("seed");
        let racers: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|value| {
                let db = Arc::clone(&db);
                thread::spawn(move || {
                    let mut txn = db.begin();
                    let seen = txn.get(b"k").expect("read");
                    txn.put(b"k", value).expect("buffer");
                    (seen, txn.commit().is_ok())
                })
            })
            .collect();
        let outcomes: Vec<_> =
            racers.into_iter().map(|racer| racer.join().expect("racer")).collect();
        let winners = outcomes.iter().filter(|(_, committed)| *committed).count();
        let both_read_the_seed =
            outcomes.iter().all(|(seen, _)| seen.as_deref() == Some(&b"0"[..]));
        if both_read_the_seed {
            assert_eq!(winners, 1, "two transactions from one snapshot cannot both commit a write");
        } else {
            assert_eq!(winners, 2, "the second began after the first committed");
        }
    });
}

/// Through the public API: a put of a deleted key races the collection pass that forgets
/// the key's dead chain. The put finds the chain before the sequencer's lock and the
/// removal may come before the put reaches the lock; the put must then go into a new chain
/// (the check under the lock), not the forgotten one, where no read would find it.
#[test]
fn loom_a_put_racing_the_removal_of_its_dead_key_is_kept() {
    model(|| {
        let db = Arc::new(Database::in_memory().expect("opens"));
        db.put(b"k", b"0").expect("seed");
        db.delete(b"k").expect("delete");
        let collector = {
            let db = Arc::clone(&db);
            thread::spawn(move || {
                db.collect_garbage();
            })
        };
        db.put(b"k", b"1").expect("put");
        assert_eq!(db.get(b"k").expect("read"), Some(Bytes::from("1")), "the put is visible");
        collector.join().expect("collector");
        db.collect_garbage();
        assert_eq!(db.get(b"k").expect("read"), Some(Bytes::from("1")), "and stays");
    });
}

/// Through the public API: the reaper's hint (`expiry.rs`) lets a reap with nothing pushed
/// and nothing due return without a lock; a reap racing a commit of an expired value may
/// miss it, but a reap that begins after the commit returned never does, and the value is
/// reaped exactly once.
#[test]
fn loom_a_reap_after_a_commit_with_an_expiry_reaps_it() {
    model(|| {
        let db = Arc::new(Database::in_memory().expect("opens"));
        let racing = {
            let db = Arc::clone(&db);
            thread::spawn(move || db.reap_expired())
        };
        // Under loom the clock stands still: a TTL of zero is due at once.
        db.put_with_ttl(b"k", b"v", std::time::Duration::ZERO).expect("put");
        let after = db.reap_expired();
        let raced = racing.join().expect("reaper");
        assert_eq!(raced + after, 1, "reaped once, by the race or by the reap after it");
        assert_eq!(db.stats().expirations_reaped, 1);
        assert_eq!(db.reap_expired(), 0, "nothing left");
    });
}
