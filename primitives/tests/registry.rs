//! The extension point: a primitive defined here, outside the crate, keeps its entries under
//! its own tag and a derived in-memory count of them; after a reopen, registering it
//! rebuilds the count from what recovery restored, with no change to the log, checkpoints or
//! recovery.

#![allow(clippy::expect_used)]
#![allow(
    clippy::disallowed_types,
    reason = "a test harness outside the engine: no loom model to swap them in"
)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use inmem_engine::{Database, Options};
use inmem_primitives::registry::{Primitive, Registry};
use inmem_primitives::{tag_prefix, CustomTag, Error, KeyBuf, KeyTag, Result, RunId};

/// Named marks per run, and a count of them per run kept in memory.
struct Marks {
    db: Arc<Database>,
    counts: Mutex<BTreeMap<RunId, u64>>,
}

fn marks_tag() -> CustomTag {
    CustomTag::new(0x10).expect("a custom tag")
}

impl Marks {
    fn new(db: Arc<Database>) -> Marks {
        Marks { db, counts: Mutex::new(BTreeMap::new()) }
    }

    fn mark(&self, run: RunId, name: &str) -> Result<()> {
        let key = KeyBuf::new(run, marks_tag()).push_bytes(name.as_bytes());
        let fresh = self.db.transaction_typed(Default::default(), |txn| {
            let fresh = txn.get(&key)?.is_none();
            txn.put(&key, b"")?;
            Ok::<_, Error>(fresh)
        })?;
        if fresh.value {
            *self.counts.lock().expect("counts").entry(run).or_default() += 1;
        }
        Ok(())
    }

    fn count(&self, run: RunId) -> u64 {
        self.counts.lock().expect("counts").get(&run).copied().unwrap_or(0)
    }
}

impl Primitive for Marks {
    fn name(&self) -> &str {
        "marks"
    }

    fn tag(&self) -> CustomTag {
        marks_tag()
    }

    fn rebuild(&self, db: &Database) -> Result<()> {
        let mut counts = BTreeMap::new();
        for (key, _) in db.snapshot().range::<&[u8]>(..) {
            if key.get(16) == Some(&marks_tag().byte()) {
                let run = key.get(..16).and_then(|id| <[u8; 16]>::try_from(id).ok());
                let run = run.map(RunId::from_bytes).ok_or(Error::corrupt(&key, "short key"))?;
                *counts.entry(run).or_default() += 1;
            }
        }
        *self.counts.lock().expect("counts") = counts;
        Ok(())
    }
}

#[test]
fn a_registered_primitive_rebuilds_its_derived_state_after_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (first, second) = (RunId::random(), RunId::random());
    {
        let db = Arc::new(Database::open(dir.path(), Options::default()).expect("open"));
        let marks = Arc::new(Marks::new(Arc::clone(&db)));
        let mut registry = Registry::new(Arc::clone(&db));
        registry.register(Arc::clone(&marks) as Arc<dyn Primitive>).expect("register");
        for name in ["a", "b", "c", "a"] {
            marks.mark(first, name).expect("mark");
        }
        marks.mark(second, "a").expect("mark");
        // A key of the same run under a built-in tag is not the primitive's.
        db.put(KeyBuf::new(first, inmem_primitives::TypeTag::Kv).push_bytes(b"a"), b"x")
            .expect("put");
        assert_eq!((marks.count(first), marks.count(second)), (3, 1));
    }
    let db = Arc::new(Database::open(dir.path(), Options::default()).expect("reopen"));
    let marks = Arc::new(Marks::new(Arc::clone(&db)));
    assert_eq!(marks.count(first), 0, "nothing derived before the rebuild");
    let mut registry = Registry::new(Arc::clone(&db));
    registry.register(Arc::clone(&marks) as Arc<dyn Primitive>).expect("register");
    assert_eq!((marks.count(first), marks.count(second)), (3, 1), "rebuilt from the keyspace");
    assert_eq!(db.snapshot().prefix(tag_prefix(first, marks_tag())).count(), 3);
    assert_eq!(registry.get(marks_tag()).map(|primitive| primitive.name()), Some("marks"));
}

#[test]
fn a_second_primitive_with_the_same_tag_is_refused() {
    let db = Arc::new(Database::in_memory().expect("db"));
    let mut registry = Registry::new(Arc::clone(&db));
    registry.register(Arc::new(Marks::new(Arc::clone(&db)))).expect("first");
    let refused = registry.register(Arc::new(Marks::new(Arc::clone(&db))));
    assert!(matches!(refused, Err(Error::AlreadyExists { .. })), "{refused:?}");
    assert_eq!(registry.iter().count(), 1);
}

/// A primitive whose rebuild fails: its registration fails with the error, and it is not
/// registered.
struct Broken;

impl Primitive for Broken {
    fn name(&self) -> &str {
        "broken"
    }
    fn tag(&self) -> CustomTag {
        CustomTag::new(0x11).expect("a custom tag")
    }
    fn rebuild(&self, _db: &Database) -> Result<()> {
        Err(Error::corrupt(b"k", "derived state does not match"))
    }
}

#[test]
fn a_failed_rebuild_fails_the_registration() {
    let mut registry = Registry::new(Arc::new(Database::in_memory().expect("db")));
    let failed = registry.register(Arc::new(Broken));
    assert!(matches!(failed, Err(Error::Corrupt { .. })), "{failed:?}");
    assert!(registry.get(CustomTag::new(0x11).expect("tag")).is_none());
}
