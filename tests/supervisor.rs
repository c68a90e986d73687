//! Supervisor integration tests.
