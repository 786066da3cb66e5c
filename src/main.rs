//! The `inmem` command-line tool.

fn main() {}
