//! A trace with its descendants: [`TraceTree`], bounded by [`TreeLimits`].

use super::record::TraceView;
use crate::error::{Error, Result};

/// The deepest [`TreeLimits::depth_max`] a tree may ask for: a tree is built without
/// recursion, but dropping one recurses once per level, so its depth stays small.
pub const TREE_DEPTH_MAX: usize = 1024;

/// The largest [`TreeLimits::nodes_max`] a tree may ask for.
pub const TREE_NODES_MAX: usize = 100_000;

/// How large a tree [`crate::trace::TraceStore::tree`] builds before it gives up with
/// [`Error::LimitExceeded`] (rather than returning a partial tree).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeLimits {
    /// The most levels below the root: 0 is the root alone, 1 the root and its children.
    /// Default 64; at most [`TREE_DEPTH_MAX`].
    pub depth_max: usize,
    /// The most traces in the tree, the root included. Default 10,000; at most
    /// [`TREE_NODES_MAX`].
    pub nodes_max: usize,
}

impl Default for TreeLimits {
    fn default() -> TreeLimits {
        TreeLimits { depth_max: 64, nodes_max: 10_000 }
    }
}

impl TreeLimits {
    /// Checks the limits against [`TREE_DEPTH_MAX`] and [`TREE_NODES_MAX`].
    pub(crate) fn check(&self) -> Result<()> {
        if self.depth_max > TREE_DEPTH_MAX {
            return Err(Error::LimitExceeded {
                what: "trace tree depth limit",
                actual: self.depth_max as u64,
                max: TREE_DEPTH_MAX as u64,
            });
        }
        if self.nodes_max > TREE_NODES_MAX {
            return Err(Error::LimitExceeded {
                what: "trace tree nodes limit",
                actual: self.nodes_max as u64,
                max: TREE_NODES_MAX as u64,
            });
        }
        Ok(())
    }

    /// The error for a tree with a trace `depth` levels below its root.
    pub(crate) fn too_deep(&self, depth: usize) -> Error {
        Error::LimitExceeded {
            what: "trace tree depth",
            actual: depth as u64,
            max: self.depth_max as u64,
        }
    }

    /// The error for a tree of at least `nodes` traces.
    pub(crate) fn too_large(&self, nodes: usize) -> Error {
        Error::LimitExceeded {
            what: "trace tree nodes",
            actual: nodes as u64,
            max: self.nodes_max as u64,
        }
    }
}

/// A trace and, recursively, its children, each level in the order of
/// [`crate::trace::TraceStore::children`] (creation time, then id).
#[derive(Clone, PartialEq)]
pub struct TraceTree {
    trace: TraceView,
    children: Vec<TraceTree>,
}

impl TraceTree {
    /// The trace at the root of this (sub)tree.
    pub fn trace(&self) -> &TraceView {
        &self.trace
    }

    /// The subtrees of the root's children.
    pub fn children(&self) -> &[TraceTree] {
        &self.children
    }

    /// The number of traces in the tree, the root included.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Always false: a tree has at least its root.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The number of levels below the root (0 for the root alone).
    pub fn depth(&self) -> usize {
        let mut deepest = 0;
        let mut pending = vec![(self, 0)];
        while let Some((tree, depth)) = pending.pop() {
            deepest = deepest.max(depth);
            pending.extend(tree.children.iter().map(|child| (child, depth + 1)));
        }
        deepest
    }

    /// Every trace of the tree, depth first, each parent before its children.
    pub fn iter(&self) -> impl Iterator<Item = &TraceView> + '_ {
        let mut pending = vec![self];
        std::iter::from_fn(move || {
            let tree = pending.pop()?;
            pending.extend(tree.children.iter().rev());
            Some(&tree.trace)
        })
    }
}

impl std::fmt::Debug for TraceTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceTree")
            .field("trace", self.trace.id())
            .field("children", &self.children)
            .finish()
    }
}

/// A trace met while walking a tree breadth first.
pub(crate) struct Node {
    pub trace: TraceView,
    /// The index of the parent's node; `None` for the root.
    pub parent: Option<usize>,
    pub depth: usize,
}

/// The tree of `nodes`, in breadth-first order: the root first, then each node after its
/// parent, children of one parent in order. Built without recursion.
pub(crate) fn assemble(nodes: Vec<Node>) -> Option<TraceTree> {
    let mut parents = Vec::with_capacity(nodes.len());
    let mut trees: Vec<Option<TraceTree>> = Vec::with_capacity(nodes.len());
    for node in nodes {
        debug_assert!(node.parent.is_none_or(|parent| parent < trees.len()));
        parents.push(node.parent);
        trees.push(Some(TraceTree { trace: node.trace, children: Vec::new() }));
    }
    // From the last node back: every child comes after its parent, so when a node is
    // reached all its children have been added to it (in reverse order).
    for index in (1..trees.len()).rev() {
        let Some(mut tree) = trees.get_mut(index).and_then(Option::take) else { continue };
        tree.children.reverse();
        let parent = parents.get(index).copied().flatten();
        if let Some(Some(parent)) = parent.and_then(|parent| trees.get_mut(parent)) {
            parent.children.push(tree);
        }
    }
    let mut root = trees.into_iter().next().flatten()?;
    root.children.reverse();
    Some(root)
}
