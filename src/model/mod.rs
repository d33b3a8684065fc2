//! The models of the system's parts. Each owns its own state and knows
//! nothing of the others: the simulation (`crate::sim`) connects them
//! through events.

pub mod backoff;
pub mod balancer;
pub mod cache;
pub mod database;
pub mod hashing;
pub mod least;
pub mod network;
pub mod relay;
pub mod room;
pub mod station;
