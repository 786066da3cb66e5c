//! A backend that injects faults, for tests.
