//! The log writer thread.
