//! The classic web tier: `web` clients browse with HTTP requests through
//! the balancer cluster to nginx servers, which serve static files
//! themselves and proxy dynamic requests to gunicorn-style app servers.
//!
//! A request's path: half an RTT to the client's VIP (a dead VIP fails the
//! request), a TLS handshake on the node's cores for a session's first
//! request to that node (keep-alive afterwards), a backend hop to an nginx
//! server (round robin), a core of it (a static file from the cache, a
//! slower miss, or the proxying cost), and for a dynamic request a hop to
//! an app server (round robin, as nginx's `upstream` does). There it waits
//! in the listen backlog (`backlog`; beyond it nginx answers 502) for one
//! of the `workers` sync workers, which runs the request's own service time
//! and then its database reads and writes one after another, holding the
//! worker throughout. The response goes back the same way.
//!
//! Every queue is a [`Station`]. Requests live in a slab (at most one per
//! session at a time); sessions end when their length has passed.

use super::{Component, ComponentKind, Ctx, Tier};
use crate::metrics::summary::{MetricSink, max_ms, mean_after_warmup, mean_ms, ms};
use crate::metrics_defs::MetricKey as K;
use crate::model::network::{Link, Packet};
use rand::RngExt;
use slab::Slab;

use super::cluster::NO_NODE;
use super::storage::profile_key;
use super::{Event, NONE};
use crate::engine::Scheduler;
use crate::metrics::{WebSample, new_hist as hist};
use crate::model::station::{Admit, Station};
use crate::rng::{self, SimRng, streams};
use crate::scenario::Scenario;
use crate::time::{SimDuration, SimTime};

/// The generation a handshake item carries when it is a web request's.
pub(super) const WEB_HANDSHAKE: u32 = u32::MAX;

/// The web tier's events (one variant of [`Event`]).
#[derive(Clone, Copy, Debug)]
pub enum WebEvent {
    /// A session sends its next request.
    Request {
        session: u32,
    },
    /// The request reaches the client's VIP.
    AtNode {
        req: u32,
    },
    /// The request follows its TLS handshake (one round trip later).
    AfterTls {
        req: u32,
    },
    AtNginx {
        req: u32,
    },
    NginxDone {
        server: u32,
        id: u32,
    },
    AtApp {
        req: u32,
    },
    /// The worker finished its own work; the database calls follow.
    Computed {
        req: u32,
    },
    /// The response reaches the client.
    Response {
        req: u32,
    },
    /// A crashed nginx server is back (`nginx-crash` with `restart_after`).
    NginxRestart {
        server: u32,
    },
    /// A crashed app server is back (`app-crash` with `restart_after`).
    AppRestart {
        server: u32,
    },
}

struct Session {
    pop: u16,
    rtt: SimDuration,
    depart_at: SimTime,
    vip: u8,
    /// The node holding the session's TLS connection (keep-alive).
    tls_node: u8,
}

struct Request {
    session: u32,
    sent_at: SimTime,
    is_static: bool,
    node: u8,
    nginx: u32,
    app: u32,
    /// The app station's id of the worker serving it.
    worker: u32,
    /// The app station's epoch when the worker took it (a crash since
    /// then killed the worker).
    app_epoch: u32,
    at_app: SimTime,
    /// Database reads and writes still to do.
    reads_left: u32,
    writes_left: u32,
    failed: bool,
}

/// Counts over the whole run, for conservation checks.
#[derive(Clone, Copy, Debug, Default)]
pub struct WebTally {
    pub sessions: u64,
    pub requests: u64,
    pub completed: u64,
    pub failed: u64,
}

/// A database call of an app worker (`seams::web_next_db_call` sends it).
#[derive(Clone, Copy, Debug)]
pub(super) enum WebDbCall {
    Read(u64),
    Write(u64),
}

/// The web tier's state (empty without `[web]`).
pub struct WebTier {
    pub(crate) nginx: Vec<Station<u32>>,
    apps: Vec<Station<u32>>,
    sessions: Slab<Session>,
    reqs: Slab<Request>,
    rr_nginx: usize,
    rr_app: usize,
    rng: SimRng,
    pub tally: WebTally,
    /// Response times after the warm-up (µs): all, static, dynamic, and the
    /// wait for an app worker.
    pub all: hdrhistogram::Histogram<u64>,
    pub static_: hdrhistogram::Histogram<u64>,
    pub dynamic: hdrhistogram::Histogram<u64>,
    pub app_wait: hdrhistogram::Histogram<u64>,
    interval: hdrhistogram::Histogram<u64>,
    interval_requests: u64,
    interval_failed: u64,
    /// Counted after the warm-up.
    pub requests: u64,
    pub failed: u64,
    pub rejected_502: u64,
    /// Requests failed by a database error (500).
    pub db_errors: u64,
    pub unreachable: u64,
    app_wait_sum_ns: u128,
    app_waits: u64,
    warmup: SimTime,
}

impl WebTier {
    pub fn new(sc: &Scenario, replication: u32) -> Self {
        let (nginx, apps) = match &sc.web {
            Some(w) => (
                (0..w.nginx.count)
                    .map(|_| Station::new(w.nginx.cores, usize::MAX))
                    .collect(),
                (0..w.app.count)
                    .map(|_| Station::new(w.app.workers, w.app.backlog as usize))
                    .collect(),
            ),
            None => (vec![], vec![]),
        };
        WebTier {
            nginx,
            apps,
            sessions: Slab::new(),
            reqs: Slab::new(),
            rr_nginx: 0,
            rr_app: 0,
            rng: rng::stream(sc.seed, replication as u64, streams::WEB),
            tally: WebTally::default(),
            all: hist(),
            static_: hist(),
            dynamic: hist(),
            app_wait: hist(),
            interval: hist(),
            interval_requests: 0,
            interval_failed: 0,
            requests: 0,
            failed: 0,
            rejected_502: 0,
            db_errors: 0,
            unreachable: 0,
            app_wait_sum_ns: 0,
            app_waits: 0,
            warmup: SimTime::ZERO + sc.warmup,
        }
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.reqs.len()
    }

    /// Mean wait for an app worker after the warm-up (ms), NaN if none.
    pub fn app_wait_ms_mean(&self) -> f64 {
        if self.app_waits == 0 {
            f64::NAN
        } else {
            self.app_wait_sum_ns as f64 / self.app_waits as f64 / 1e6
        }
    }

    /// Every station conserves its items.
    pub fn conserved(&self) -> bool {
        self.nginx.iter().chain(&self.apps).all(|s| s.conserved())
    }

    /// Closes an interval.
    pub fn sample(&mut self, now: SimTime, since: SimTime) -> Option<WebSample> {
        if self.nginx.is_empty() {
            return None;
        }
        let util = |st: &mut [Station<u32>]| {
            let n = st.len().max(1) as f64;
            st.iter_mut().map(|s| s.utilisation_since_last(now, since)).sum::<f64>() / n
        };
        let h = &self.interval;
        let p = |q: f64| (!h.is_empty()).then(|| h.value_at_quantile(q) as f64 / 1000.0);
        let sample = WebSample {
            requests: self.interval_requests,
            failed: self.interval_failed,
            ms_p50: p(0.5),
            ms_p99: p(0.99),
            nginx_util: util(&mut self.nginx),
            app_util: util(&mut self.apps),
            app_waiting: self.apps.iter().map(|a| a.queued() as u64).sum(),
        };
        self.interval.reset();
        self.interval_requests = 0;
        self.interval_failed = 0;
        Some(sample)
    }
}

impl WebTier {
    /// A `web` client arrives: its session starts with a request.
    /// (`rtt`, `session` and `vip` are drawn by the clients and cluster
    /// tiers: `seams::web_session_arrives`.)
    pub(super) fn arrive(
        &mut self,
        ctx: &mut Ctx,
        pop: usize,
        rtt: SimDuration,
        session: SimDuration,
        vip: u8,
        s: &mut Scheduler<Event>,
    ) {
        let now = s.now();
        let id = self.sessions.insert(Session {
            pop: pop as u16,
            rtt,
            depart_at: now + session,
            vip,
            tls_node: NO_NODE,
        }) as u32;
        self.tally.sessions += 1;
        ctx.rec.count(now, |c| c.clients_arrived += 1);
        self.request(ctx, id, s);
    }

    pub(super) fn request(&mut self, ctx: &mut Ctx, session: u32, s: &mut Scheduler<Event>) {
        let now = s.now();
        let ss = &self.sessions[session as usize];
        let ratio = ctx.sc.populations[ss.pop as usize].browsing.static_ratio;
        let half = SimDuration(ss.rtt.0 / 2);
        let is_static: bool = self.rng.random::<f64>() < ratio;
        let req = self.reqs.insert(Request {
            session,
            sent_at: now,
            is_static,
            node: NO_NODE,
            nginx: NONE,
            app: NONE,
            worker: NONE,
            app_epoch: 0,
            at_app: now,
            reads_left: 0,
            writes_left: 0,
            failed: false,
        }) as u32;
        self.tally.requests += 1;
        if now > self.warmup {
            self.requests += 1;
        }
        self.interval_requests += 1;
        let half = ctx.net.delay(Link::Clients, now, half, Packet::Data);
        s.after(half, Event::Web(WebEvent::AtNode { req }));
    }

    /// A web request's handshake finished on `node`.
    /// Handles the web tier's own events (`AtNode` and `Computed` cross
    /// into other tiers: `seams::web_request_at_node`,
    /// `seams::web_next_db_call`).
    #[inline]
    pub(super) fn handle(&mut self, ctx: &mut Ctx, e: WebEvent, s: &mut Scheduler<Event>) {
        match e {
            WebEvent::Request { session } => self.request(ctx, session, s),
            WebEvent::AfterTls { req } => self.forward_to_nginx(ctx, req, s),
            WebEvent::AtNginx { req } => self.at_nginx(ctx, req, s),
            WebEvent::NginxDone { server, id } => self.nginx_done(ctx, server, id, s),
            WebEvent::AtApp { req } => self.at_app(ctx, req, s),
            WebEvent::Response { req } => self.response(ctx, req, s),
            WebEvent::NginxRestart { server } => self.restart(ctx, true, server, s),
            WebEvent::AppRestart { server } => self.restart(ctx, false, server, s),
            WebEvent::AtNode { .. } | WebEvent::Computed { .. } => {
                unreachable!("the router sends these through seams")
            }
        }
    }

    /// The worker's next database call (reads first, then writes; the
    /// worker waits for each: sync workers), or `None` when it has made
    /// them all and finished.
    pub(super) fn next_db_call(&mut self, ctx: &mut Ctx, req: u32, s: &mut Scheduler<Event>) -> Option<WebDbCall> {
        if self.worker_died(ctx, req, s) {
            return None;
        }
        let r = &self.reqs[req as usize];
        if r.reads_left > 0 || r.writes_left > 0 {
            let keys = ctx.sc.web.as_ref().expect("[web]").app.keys;
            let key = profile_key(self.rng.random_range(0..keys));
            let r = &mut self.reqs[req as usize];
            return Some(if r.reads_left > 0 {
                r.reads_left -= 1;
                WebDbCall::Read(key)
            } else {
                r.writes_left -= 1;
                WebDbCall::Write(key)
            });
        }
        self.app_finish(ctx, req, s);
        None
    }

    /// A database call came back. `true`: the worker goes on with its next
    /// call; a failed call fails the request (the app answers 500).
    pub(super) fn db_done(&mut self, ctx: &mut Ctx, req: u32, ok: bool, s: &mut Scheduler<Event>) -> bool {
        if !self.reqs.contains(req as usize) || self.worker_died(ctx, req, s) {
            return false;
        }
        if ok {
            return true;
        }
        let r = &mut self.reqs[req as usize];
        r.reads_left = 0;
        r.writes_left = 0;
        r.failed = true;
        self.db_errors += 1;
        self.app_finish(ctx, req, s);
        false
    }

    /// The request reached its VIP, answered by `owner` (`NONE`: nobody).
    /// Returns the node whose cores must run its TLS handshake, if any.
    pub(super) fn at_node(&mut self, ctx: &mut Ctx, req: u32, owner: u32, s: &mut Scheduler<Event>) -> Option<usize> {
        let now = s.now();
        let r = &self.reqs[req as usize];
        let ss = &self.sessions[r.session as usize];
        if owner == NONE {
            // Nobody answers the VIP: the browser shows an error.
            if now > self.warmup {
                self.unreachable += 1;
            }
            let half = SimDuration(ss.rtt.0 / 2);
            self.fail(req, half, s);
            return None;
        }
        let needs_tls = ctx.sc.balancer.tls.is_some() && ss.tls_node != owner as u8;
        self.reqs[req as usize].node = owner as u8;
        if !needs_tls {
            self.forward_to_nginx(ctx, req, s);
            return None;
        }
        Some(owner as usize)
    }

    /// The VIP the session resolved.
    #[inline]
    pub(super) fn vip(&self, req: u32) -> u8 {
        self.sessions[self.reqs[req as usize].session as usize].vip
    }

    pub(super) fn tls_done(&mut self, ctx: &mut Ctx, node: usize, req: u32, s: &mut Scheduler<Event>) {
        let Some(r) = self.reqs.get(req as usize) else {
            return;
        };
        let session = r.session;
        let ss = &mut self.sessions[session as usize];
        ss.tls_node = node as u8;
        let rtt = ctx.net.delay(Link::Clients, s.now(), ss.rtt, Packet::Data);
        s.after(rtt, Event::Web(WebEvent::AfterTls { req }));
    }

    /// A node crashed under a web request waiting for its handshake.
    pub(super) fn handshake_lost(&mut self, req: u32, s: &mut Scheduler<Event>) {
        if self.reqs.contains(req as usize) {
            let rtt = self.sessions[self.reqs[req as usize].session as usize].rtt;
            self.fail(req, SimDuration(rtt.0 / 2), s);
        }
    }

    pub(super) fn forward_to_nginx(&mut self, ctx: &mut Ctx, req: u32, s: &mut Scheduler<Event>) {
        let w = ctx.sc.web.as_ref().expect("web requests need [web]");
        let n = self.nginx.len();
        let Some(server) = next_up(&self.nginx, self.rr_nginx) else {
            // Every nginx server is down: the balancer answers 503.
            self.unavailable(ctx, req, s);
            return;
        };
        self.rr_nginx = (server + 1) % n;
        self.reqs[req as usize].nginx = server as u32;
        let hop = ctx.net.delay(Link::Web, s.now(), w.backend_latency, Packet::Data);
        s.after(hop, Event::Web(WebEvent::AtNginx { req }));
    }

    pub(super) fn at_nginx(&mut self, ctx: &mut Ctx, req: u32, s: &mut Scheduler<Event>) {
        let now = s.now();
        let server = self.reqs[req as usize].nginx;
        match self.nginx[server as usize].arrive(now, req) {
            Admit::Started(id) => self.schedule_nginx(ctx, server, id, req, s),
            Admit::Queued => {}
            // It crashed while the request was on its way: refused.
            Admit::Rejected(_) => self.unavailable(ctx, req, s),
        }
    }

    pub(super) fn schedule_nginx(&mut self, ctx: &mut Ctx, server: u32, id: u32, req: u32, s: &mut Scheduler<Event>) {
        let w = ctx.sc.web.as_ref().expect("[web]");
        let cost = if self.reqs[req as usize].is_static {
            let hit = self.rng.random::<f64>() < w.nginx.cache_hit_ratio;
            if hit {
                w.nginx.static_cost.sample(&mut self.rng)
            } else {
                w.nginx.static_miss_cost.sample(&mut self.rng)
            }
        } else {
            w.nginx.proxy_cost.sample(&mut self.rng)
        };
        s.after(cost, Event::Web(WebEvent::NginxDone { server, id }));
    }

    pub(super) fn nginx_done(&mut self, ctx: &mut Ctx, server: u32, id: u32, s: &mut Scheduler<Event>) {
        let now = s.now();
        let st = &mut self.nginx[server as usize];
        let epoch = st.epoch();
        let Some(req) = st.complete(now, epoch, id) else { return };
        if let Some((next, &nreq)) = self.nginx[server as usize].next(now) {
            self.schedule_nginx(ctx, server, next, nreq, s);
        }
        let w = ctx.sc.web.as_ref().expect("[web]");
        if self.reqs[req as usize].is_static {
            self.respond(ctx, req, SimDuration::ZERO, s);
            return;
        }
        let n = self.apps.len();
        let Some(app) = next_up(&self.apps, self.rr_app) else {
            // Every app server is down: nginx answers 502.
            let half = SimDuration(self.sessions[self.reqs[req as usize].session as usize].rtt.0 / 2);
            self.fail(req, w.backend_latency + half, s);
            return;
        };
        self.rr_app = (app + 1) % n;
        self.reqs[req as usize].app = app as u32;
        let hop = ctx.net.delay(Link::Web, s.now(), w.backend_latency, Packet::Data);
        s.after(hop, Event::Web(WebEvent::AtApp { req }));
    }

    pub(super) fn at_app(&mut self, ctx: &mut Ctx, req: u32, s: &mut Scheduler<Event>) {
        let now = s.now();
        let app = self.reqs[req as usize].app;
        self.reqs[req as usize].at_app = now;
        match self.apps[app as usize].arrive(now, req) {
            Admit::Started(id) => self.start_worker(ctx, id, req, s),
            Admit::Queued => {}
            Admit::Rejected(_) => {
                // The backlog is full (or the server crashed while the
                // request was on its way): nginx answers 502 Bad Gateway.
                if now > self.warmup && self.apps[app as usize].is_up() {
                    self.rejected_502 += 1;
                }
                let back = ctx.sc.web.as_ref().expect("[web]").backend_latency;
                self.fail(req, back, s);
            }
        }
    }

    pub(super) fn start_worker(&mut self, ctx: &mut Ctx, id: u32, req: u32, s: &mut Scheduler<Event>) {
        let now = s.now();
        let w = ctx.sc.web.as_ref().expect("[web]");
        let epoch = self.apps[self.reqs[req as usize].app as usize].epoch();
        let r = &mut self.reqs[req as usize];
        r.worker = id;
        r.app_epoch = epoch;
        let db = ctx.sc.database.is_some();
        r.reads_left = if db { w.app.reads } else { 0 };
        r.writes_left = if db { w.app.writes } else { 0 };
        let waited = now.since(r.at_app).0;
        if now > self.warmup {
            self.app_wait.saturating_record((waited / 1000).max(1));
            self.app_wait_sum_ns += waited as u128;
            self.app_waits += 1;
        }
        let service = w.app.service.sample(&mut self.rng);
        s.after(service, Event::Web(WebEvent::Computed { req }));
    }

    /// The worker is free: the response heads back through nginx.
    pub(super) fn app_finish(&mut self, ctx: &mut Ctx, req: u32, s: &mut Scheduler<Event>) {
        let now = s.now();
        let (app, worker) = {
            let r = &self.reqs[req as usize];
            (r.app, r.worker)
        };
        let st = &mut self.apps[app as usize];
        let epoch = st.epoch();
        st.complete(now, epoch, worker);
        if let Some((next, &nreq)) = self.apps[app as usize].next(now) {
            self.start_worker(ctx, next, nreq, s);
        }
        let back = ctx.sc.web.as_ref().expect("[web]").backend_latency;
        let back = ctx.net.delay(Link::Web, now, back, Packet::Data);
        self.respond(ctx, req, back, s);
    }

    /// Sends the response from nginx (`extra` earlier hops included).
    pub(super) fn respond(&mut self, ctx: &mut Ctx, req: u32, extra: SimDuration, s: &mut Scheduler<Event>) {
        let w = ctx.sc.web.as_ref().expect("[web]");
        let r = &self.reqs[req as usize];
        let half = SimDuration(self.sessions[r.session as usize].rtt.0 / 2);
        let at = s.now() + extra;
        let hop = ctx.net.delay(Link::Web, at, w.backend_latency, Packet::Data);
        let half = ctx.net.delay(Link::Clients, at + hop, half, Packet::Data);
        s.after(extra + hop + half, Event::Web(WebEvent::Response { req }));
    }

    pub(super) fn fail(&mut self, req: u32, delay: SimDuration, s: &mut Scheduler<Event>) {
        self.reqs[req as usize].failed = true;
        s.after(delay, Event::Web(WebEvent::Response { req }));
    }

    pub(super) fn response(&mut self, ctx: &mut Ctx, req: u32, s: &mut Scheduler<Event>) {
        let now = s.now();
        let r = self.reqs.remove(req as usize);
        let counting = r.sent_at > self.warmup;
        if r.failed {
            self.tally.failed += 1;
            self.interval_failed += 1;
            if counting {
                self.failed += 1;
            }
        } else {
            self.tally.completed += 1;
            let us = (now.since(r.sent_at).0 / 1000).max(1);
            self.interval.saturating_record(us);
            if counting {
                self.all.saturating_record(us);
                if r.is_static {
                    self.static_.saturating_record(us);
                } else {
                    self.dynamic.saturating_record(us);
                }
            }
        }
        let ss = &self.sessions[r.session as usize];
        let think = ctx.sc.populations[ss.pop as usize]
            .browsing
            .think_time
            .sample(&mut self.rng);
        if now + think < ss.depart_at {
            s.after(think, Event::Web(WebEvent::Request { session: r.session }));
        } else {
            self.sessions.remove(r.session as usize);
        }
    }
}

/// The first server at or after `from` (round robin) that is up.
fn next_up(stations: &[Station<u32>], from: usize) -> Option<usize> {
    let n = stations.len();
    (0..n).map(|k| (from + k) % n).find(|&i| stations[i].is_up())
}

/// nginx and app server crashes (`nginx-crash`, `app-crash` faults): the
/// web tier owns these components, so it owns their faults.
impl WebTier {
    /// An `nginx-crash` or `app-crash` fault strikes.
    pub(super) fn fault(&mut self, ctx: &mut Ctx, index: usize, s: &mut Scheduler<Event>) {
        use crate::scenario::Fault;
        let now = s.now();
        let (nginx, server, restart_after) = match ctx.sc.faults[index] {
            Fault::NginxCrash {
                node, restart_after, ..
            } => (true, node, restart_after),
            Fault::AppCrash {
                server, restart_after, ..
            } => (false, server, restart_after),
            _ => unreachable!("not a web fault"),
        };
        let back = ctx.sc.web.as_ref().expect("validated: [web]").backend_latency;
        let st = if nginx {
            &mut self.nginx[server as usize]
        } else {
            &mut self.apps[server as usize]
        };
        if !st.is_up() {
            return;
        }
        // An app worker's request has an event on its way (its service or
        // a database call); it fails when that event finds the worker dead
        // (`worker_died`). Everything else the server holds fails now.
        let queued = st.queued();
        let lost = st.crash(now);
        let fail_now = if nginx { lost.len() } else { queued };
        for &req in &lost[..fail_now] {
            let r = &self.reqs[req as usize];
            let half = SimDuration(self.sessions[r.session as usize].rtt.0 / 2);
            let delay = if nginx { half } else { back + half };
            self.fail(req, delay, s);
        }
        let (name, restart) = if nginx {
            (format!("nginx-{server}"), WebEvent::NginxRestart { server })
        } else {
            (format!("app-{server}"), WebEvent::AppRestart { server })
        };
        ctx.rec.event(
            now,
            name,
            crate::metrics::Happening::Crash,
            format!("process crash, {} request(s) in it fail", lost.len()),
        );
        if let Some(d) = restart_after {
            s.after(d, Event::Web(restart));
        }
    }

    fn restart(&mut self, ctx: &mut Ctx, nginx: bool, server: u32, s: &mut Scheduler<Event>) {
        let now = s.now();
        let (st, name) = if nginx {
            (&mut self.nginx[server as usize], format!("nginx-{server}"))
        } else {
            (&mut self.apps[server as usize], format!("app-{server}"))
        };
        st.restart(now);
        ctx.rec.event(
            now,
            name,
            crate::metrics::Happening::Restarted,
            "accepting requests again".into(),
        );
    }

    /// The request's app worker crashed since it took the request: nginx
    /// answers 502.
    fn worker_died(&mut self, ctx: &Ctx, req: u32, s: &mut Scheduler<Event>) -> bool {
        let r = &self.reqs[req as usize];
        if self.apps[r.app as usize].epoch() == r.app_epoch {
            return false;
        }
        let half = SimDuration(self.sessions[r.session as usize].rtt.0 / 2);
        let back = ctx.sc.web.as_ref().expect("[web]").backend_latency;
        self.fail(req, back + back + half, s);
        true
    }

    /// No nginx server answers: the balancer answers 503.
    fn unavailable(&mut self, ctx: &Ctx, req: u32, s: &mut Scheduler<Event>) {
        let r = &self.reqs[req as usize];
        let half = SimDuration(self.sessions[r.session as usize].rtt.0 / 2);
        let back = ctx.sc.web.as_ref().expect("[web]").backend_latency;
        self.fail(req, back + half, s);
    }
}

impl Tier for WebTier {
    fn name(&self) -> &'static str {
        "web"
    }

    /// Web requests are answered, failed or in flight; every nginx and app
    /// station keeps track of its requests.
    fn check(&self, _ctx: &Ctx) -> Vec<String> {
        let mut bad = Vec::new();
        let t = &self.tally;
        let in_flight = self.in_flight() as u64;
        if t.requests != t.completed + t.failed + in_flight {
            bad.push(format!(
                "web requests not conserved: {} sent != {} answered + {} failed + {in_flight} in flight",
                t.requests, t.completed, t.failed
            ));
        }
        if !self.conserved() {
            bad.push("an nginx or app server lost track of a request".into());
        }
        bad
    }

    fn metrics(&self, ctx: &Ctx, out: &mut MetricSink) {
        let (sc, rec) = (ctx.sc, &ctx.rec);
        out.set(K::WebRequests, self.requests as f64);
        out.set(K::WebFailed, self.failed as f64);
        out.set(
            K::WebFailedRatio,
            if self.requests == 0 {
                f64::NAN
            } else {
                self.failed as f64 / self.requests as f64
            },
        );
        out.set(K::Web502, self.rejected_502 as f64);
        out.set(K::WebDbErrors, self.db_errors as f64);
        out.set(K::WebMsMean, mean_ms(&self.all));
        out.set(K::WebMsP50, ms(&self.all, 0.5));
        out.set(K::WebMsP90, ms(&self.all, 0.9));
        out.set(K::WebMsP99, ms(&self.all, 0.99));
        out.set(K::WebMsMax, max_ms(&self.all));
        out.set(K::WebStaticMsP50, ms(&self.static_, 0.5));
        out.set(K::WebStaticMsP99, ms(&self.static_, 0.99));
        out.set(K::WebDynamicMsP50, ms(&self.dynamic, 0.5));
        out.set(K::WebDynamicMsP99, ms(&self.dynamic, 0.99));
        out.set(K::AppWaitMsMean, self.app_wait_ms_mean());
        out.set(K::AppWaitMsP99, ms(&self.app_wait, 0.99));
        out.set(
            K::AppUtilMean,
            mean_after_warmup(&rec.samples, sc, |s| s.web.map(|x| x.app_util)),
        );
        out.set(
            K::NginxUtilMean,
            mean_after_warmup(&rec.samples, sc, |s| s.web.map(|x| x.nginx_util)),
        );
    }

    /// Each nginx and each app server.
    fn components(&self, _ctx: &Ctx) -> Vec<Component> {
        let nginx = (0..self.nginx.len() as u32).map(|i| Component {
            tier: "web",
            kind: ComponentKind::Nginx,
            index: i,
            name: format!("nginx-{i}"),
        });
        let apps = (0..self.apps.len() as u32).map(|i| Component {
            tier: "web",
            kind: ComponentKind::AppServer,
            index: i,
            name: format!("app-{i}"),
        });
        nginx.chain(apps).collect()
    }
}
