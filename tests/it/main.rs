//! The integration-test binary: one crate so that the library is linked once.

mod cli;
mod game;
mod report;
mod strategies;
mod study;
mod validation;
