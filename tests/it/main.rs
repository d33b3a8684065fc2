//! The integration-test binary: one crate so that the library is linked once.

mod cli;
mod cluster;
mod game;
mod storage;
mod strategies;
mod validation;
mod web;
