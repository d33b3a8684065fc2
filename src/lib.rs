//! wscap: a discrete-event capacity simulator for real-time WebSocket
//! backends.
//!
//! The library is layered: [`time`], [`engine`] and [`rng`] are the kernel
//! and know nothing of WebSockets; [`model`] holds the parts of the system
//! (balancer, backoff, hashing); [`sim`] wires them into one replication
//! through events; [`experiment`] runs replications in parallel; [`scenario`]
//! reads scenario files and [`report`] writes results; [`import`] turns an
//! HAProxy configuration into a scenario. Only `scenario`, `report` and
//! `import` touch the filesystem, and [`cluster`], which runs a study's
//! tasks through a work folder (Slurm job arrays, `wscap task`/`merge`).

pub mod check;
pub mod cluster;
pub mod dist;
pub mod engine;
pub mod experiment;
pub mod explain;
pub mod import;
pub mod metrics;
pub mod metrics_defs;
pub mod model;
pub mod names;
pub mod report;
pub mod rng;
pub mod scenario;
pub mod sim;
pub mod stats;
pub mod study;
pub mod time;
pub mod units;
