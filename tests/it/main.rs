//! The integration-test binary: one crate so that the library is linked once.

mod answers;
mod cli;
mod cluster;
mod executors;
mod game;
mod import;
mod inputs;
mod limits;
mod messages;
mod replay;
mod report;
mod schema;
mod signals;
mod slowdown;
mod slurm;
mod spof;
mod storage;
mod strategies;
mod study;
mod swarm;
mod validation;
mod web;
