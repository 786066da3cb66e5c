//! The model's own rules on small cases, where a harness failure would not say whether the
//! engine or the model is wrong.

use std::collections::BTreeSet;
use std::ops::Bound;

use inmem_engine::{Options, Retention};

use crate::model::Model;
use crate::span::{Overlap, Span};
use crate::txn::TxnModel;
use crate::verdict::Verdict;
use crate::Write;

fn keep_last() -> Model {
    Model::new(&Options::default())
}

#[test]
fn a_delete_links_a_tombstone_only_into_a_chain_that_exists() {
    let mut model = keep_last();
    assert_eq!(model.one_shot(b"k", Write::delete()), Ok(1));
    assert_eq!((model.chain_count(), model.linked_versions()), (0, 0), "nothing to hide");
    assert_eq!(model.one_shot(b"k", Write::put(b"v".to_vec())), Ok(2));
    assert_eq!(model.one_shot(b"k", Write::delete()), Ok(3));
    assert_eq!((model.chain_count(), model.linked_versions()), (1, 2), "put, then tombstone");
    assert_eq!(model.linked_bytes(), 2, "the key once, and the value");
}

#[test]
fn a_pass_forgets_a_chain_once_its_tombstone_is_at_or_below_the_horizon() {
    let mut model = keep_last();
    assert_eq!(model.one_shot(b"k", Write::put(b"v".to_vec())), Ok(1));
    assert_eq!(model.one_shot(b"k", Write::delete()), Ok(2));
    model.collect(model.collection_horizon(Some(1)));
    assert_eq!(model.chain_count(), 1, "a reader at 1 still reads the put");
    assert_eq!(model.snapshot_at(0).map(|v| v.get()).ok(), None, "below the horizon");
    model.collect(model.collection_horizon(None));
    assert_eq!(model.chain_count(), 0);
    assert!(!model.changed_since(b"k", 0), "a forgotten key changes nothing");
}

#[test]
fn keep_all_never_forgets() {
    let mut model = Model::new(&Options::default().retention(Retention::KeepAll));
    assert_eq!(model.one_shot(b"k", Write::put(b"v".to_vec())), Ok(1));
    assert_eq!(model.one_shot(b"k", Write::delete()), Ok(2));
    assert_eq!(model.collection_horizon(None), 0);
    model.collect(0);
    assert_eq!(model.chain_count(), 1);
}

#[test]
fn the_first_changed_written_key_is_the_conflict() {
    let mut model = keep_last();
    let mut txn = TxnModel::new(model.visible(), false);
    for key in [b"a", b"b", b"c"] {
        assert_eq!(model.txn_write(&mut txn, key, Write::put(key.to_vec())), Ok(()));
    }
    assert_eq!(model.one_shot(b"c", Write::put(b"x".to_vec())), Ok(1));
    assert_eq!(model.one_shot(b"b", Write::put(b"x".to_vec())), Ok(2));
    assert_eq!(model.verdict(&txn), Verdict::Conflicts(BTreeSet::from([b"b".to_vec()])));
}

#[test]
fn a_range_between_a_key_and_its_successor_holds_no_key_but_the_engine_cannot_tell() {
    let between = Span::Range(Bound::Excluded(b"k".to_vec()), Bound::Excluded(b"k\0".to_vec()));
    assert_eq!(between.overlaps_prefix(b"k"), Overlap::EngineOnly);
    assert_eq!(between.overlaps_prefix(b"k\0"), Overlap::No);
    assert_eq!(Span::Prefix(b"k".to_vec()).overlaps_prefix(b"k\0"), Overlap::Yes);
}
