//! The crash tests' workloads and checks, shared by the `inmem` binary's `crashtest`
//! (process kills) and this package's tests (`cli/tests/`: the power-loss images of a
//! simulated disk, the primitives' crash checks). They are not part of the `inmem`
//! library's API.
//!
//! - [`harness`]: the transfers between accounts and their check;
//! - [`primitives_harness`]: every primitive written in one transaction, and its check;
//! - [`large_deletes`]: runs larger than one transaction, filled and deleted over and over.

#![forbid(unsafe_code)]

pub mod harness;
pub mod large_deletes;
pub mod primitives_harness;
