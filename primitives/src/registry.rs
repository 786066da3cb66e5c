//! The extension point: primitives added outside this crate.
//!
//! A primitive is a way of laying out keys and values, nothing more: its state lives in the
//! keyspace under its own type tag, so the log, checkpoints and recovery carry it without
//! knowing it exists. A new primitive takes a [`CustomTag`] (0x10 and up) and implements
//! [`Primitive`]; if it keeps derived in-memory structures (a cache, an index, a counter),
//! its [`Primitive::rebuild`] recomputes them from the keyspace, and [`Registry::register`]
//! runs it once the database is open, so they start out matching what was recovered.
//!
//! ```
//! use std::sync::Arc;
//! use inmem_engine::Database;
//! use inmem_primitives::registry::{Primitive, Registry};
//! use inmem_primitives::{CustomTag, Result};
//!
//! struct Notes;
//!
//! impl Primitive for Notes {
//!     fn name(&self) -> &str {
//!         "notes"
//!     }
//!     fn tag(&self) -> CustomTag {
//!         CustomTag::new(0x10).expect("0x10 is a custom tag")
//!     }
//! }
//!
//! let mut registry = Registry::new(Arc::new(Database::in_memory()?));
//! registry.register(Arc::new(Notes))?;
//! assert!(registry.register(Arc::new(Notes)).is_err(), "one primitive per tag");
//! # Ok::<(), inmem_primitives::Error>(())
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use inmem_engine::Database;

use crate::error::{Error, Result};
use crate::tag::{CustomTag, KeyTag};

/// A primitive defined outside this crate, keyed under its own [`CustomTag`].
pub trait Primitive: Send + Sync {
    /// A short name, for reports and errors.
    fn name(&self) -> &str;

    /// The tag its keys carry after the run id; one primitive per tag in a registry.
    fn tag(&self) -> CustomTag;

    /// Recomputes the primitive's derived in-memory structures from `db`, which holds
    /// everything recovered. Run by [`Registry::register`]; by default there is nothing to
    /// rebuild.
    ///
    /// # Errors
    /// Whatever the primitive reports: the registration fails with it.
    fn rebuild(&self, db: &Database) -> Result<()> {
        let _ = db;
        Ok(())
    }
}

/// The primitives added to one database, by tag.
pub struct Registry {
    db: Arc<Database>,
    primitives: BTreeMap<u8, Arc<dyn Primitive>>,
}

impl Registry {
    /// An empty registry over `db`.
    pub fn new(db: Arc<Database>) -> Registry {
        Registry { db, primitives: BTreeMap::new() }
    }

    /// Adds `primitive` and runs its [`Primitive::rebuild`] over the database.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`] if a primitive with the same tag is registered (nothing
    /// changes); the rebuild's error (the primitive is not added).
    pub fn register(&mut self, primitive: Arc<dyn Primitive>) -> Result<()> {
        let byte = primitive.tag().byte();
        if self.primitives.contains_key(&byte) {
            return Err(Error::AlreadyExists { what: "primitive with this type tag" });
        }
        primitive.rebuild(&self.db)?;
        self.primitives.insert(byte, primitive);
        Ok(())
    }

    /// The primitive registered under `tag`.
    pub fn get(&self, tag: CustomTag) -> Option<&Arc<dyn Primitive>> {
        self.primitives.get(&tag.byte())
    }

    /// The registered primitives, in tag order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Primitive>> {
        self.primitives.values()
    }

    /// The database the primitives live in.
    pub fn database(&self) -> &Arc<Database> {
        &self.db
    }
}
