//! Scenario types of the classic web tier: HTTP requests through the
//! balancer to nginx servers (static files, proxying) and gunicorn-style
//! app servers whose workers bound concurrency, reading and writing the
//! database.

use serde::{Deserialize, Serialize};

use super::Checker;
use crate::dist::Dist;
use crate::time::SimDuration;

/// `[web]`: nginx in front of app servers.
#[derive(Clone, Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Web {
    pub nginx: Nginx,
    pub app: App,
    /// One-way latency balancer ↔ nginx and nginx ↔ app.
    #[serde(default = "d_backend")]
    pub backend_latency: SimDuration,
}

/// nginx servers (the balancer spreads requests over them round robin).
#[derive(Clone, Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Nginx {
    pub count: u32,
    /// Worker processes (one per core).
    #[serde(default = "d_cores")]
    pub cores: u32,
    /// Core time to serve a static file from its cache.
    #[serde(default = "d_static")]
    pub static_cost: Dist,
    /// Core time (and disk) to serve a static file that missed the cache.
    #[serde(default = "d_static_miss")]
    pub static_miss_cost: Dist,
    /// Fraction of static requests served from the cache.
    #[serde(default = "d_hit")]
    pub cache_hit_ratio: f64,
    /// Core time to proxy a dynamic request to an app server.
    #[serde(default = "d_proxy")]
    pub proxy_cost: Dist,
}

/// gunicorn-style app servers with sync workers: one request per worker.
#[derive(Clone, Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct App {
    pub count: u32,
    /// Sync workers per server: at most this many requests at once
    /// (gunicorn's advice: 2 × cores + 1).
    pub workers: u32,
    /// Requests that may wait for a worker (gunicorn `backlog`, 2048);
    /// beyond it nginx answers 502.
    #[serde(default = "d_backlog")]
    pub backlog: u32,
    /// A worker's own time per request (Python, templates), database
    /// waits excluded.
    pub service: Dist,
    /// Database reads per dynamic request (replicas or primary, per the
    /// database's `reads_from`), one after another.
    #[serde(default)]
    pub reads: u32,
    /// Database writes (commits on the primary) per dynamic request.
    #[serde(default)]
    pub writes: u32,
    /// Distinct profile keys the requests read and write, uniformly.
    #[serde(default = "d_keys")]
    pub keys: u32,
}

/// What a `web` population's clients do.
#[derive(Clone, Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Browsing {
    /// Pause between a response and the next request of the session.
    pub think_time: Dist,
    /// Fraction of requests for static files (served by nginx alone).
    pub static_ratio: f64,
}

impl Default for Browsing {
    fn default() -> Self {
        Browsing {
            think_time: Dist::Exponential {
                mean: SimDuration::from_secs(5),
            },
            static_ratio: 0.5,
        }
    }
}

fn d_backend() -> SimDuration {
    SimDuration::from_micros(250)
}
fn d_cores() -> u32 {
    1
}
fn d_static() -> Dist {
    Dist::constant(SimDuration::from_micros(50))
}
fn d_static_miss() -> Dist {
    Dist::constant(SimDuration::from_millis(2))
}
fn d_hit() -> f64 {
    0.9
}
fn d_proxy() -> Dist {
    Dist::constant(SimDuration::from_micros(30))
}
fn d_backlog() -> u32 {
    2048
}
fn d_keys() -> u32 {
    100_000
}

impl Web {
    /// Semantic checks of `[web]`.
    pub(super) fn validate(&self, c: &mut Checker) {
        c.positive("web.nginx.count", self.nginx.count as u64, "count");
        c.positive("web.nginx.cores", self.nginx.cores as u64, "cores");
        if !(0.0..=1.0).contains(&self.nginx.cache_hit_ratio) {
            c.fail("web.nginx.cache_hit_ratio", "must be between 0 and 1");
        }
        c.positive("web.app.count", self.app.count as u64, "count");
        c.positive("web.app.workers", self.app.workers as u64, "workers");
        c.positive("web.app.keys", self.app.keys as u64, "keys");
        if self.nginx.count > 10_000 || self.app.count > 10_000 {
            c.fail("web", "at most 10000 nginx and 10000 app servers");
        }
        if self.app.reads > 100 || self.app.writes > 100 {
            c.fail("web.app", "at most 100 reads and 100 writes per request");
        }
    }
}
