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

use super::{Component, Ctx, Tier};
use crate::metrics::summary::{MetricSink, max_ms, mean_after_warmup, mean_ms, ms};
use crate::metrics_defs::MetricKey as K;
use rand::RngExt;
use slab::Slab;

use super::cluster::NO_NODE;
use super::storage::{DbCaller, profile_key};
use super::{Event, NONE, World};
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

/// The web tier's state (empty without `[web]`).
pub struct WebTier {
    nginx: Vec<Station<u32>>,
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

impl World<'_> {
    /// A `web` client arrives: its session starts with a request.
    pub(super) fn web_arrive(&mut self, pop: usize, s: &mut Scheduler<Event>) {
        let now = s.now();
        let p = &self.ctx.sc.populations[pop];
        let rtt = p.rtt.sample(&mut self.clients.rng);
        let session = p.session.sample(&mut self.clients.rng);
        let vip = self.pick_vip();
        let id = self.web.sessions.insert(Session {
            pop: pop as u16,
            rtt,
            depart_at: now + session,
            vip,
            tls_node: NO_NODE,
        }) as u32;
        self.web.tally.sessions += 1;
        self.ctx.rec.count(now, |c| c.clients_arrived += 1);
        self.web_request(id, s);
    }

    pub(super) fn web_request(&mut self, session: u32, s: &mut Scheduler<Event>) {
        let now = s.now();
        let ss = &self.web.sessions[session as usize];
        let ratio = self.ctx.sc.populations[ss.pop as usize].browsing.static_ratio;
        let half = SimDuration(ss.rtt.0 / 2);
        let is_static: bool = self.web.rng.random::<f64>() < ratio;
        let req = self.web.reqs.insert(Request {
            session,
            sent_at: now,
            is_static,
            node: NO_NODE,
            nginx: NONE,
            app: NONE,
            worker: NONE,
            at_app: now,
            reads_left: 0,
            writes_left: 0,
            failed: false,
        }) as u32;
        self.web.tally.requests += 1;
        if now > self.web.warmup {
            self.web.requests += 1;
        }
        self.web.interval_requests += 1;
        s.after(half, Event::Web(WebEvent::AtNode { req }));
    }

    pub(super) fn web_event(&mut self, e: WebEvent, s: &mut Scheduler<Event>) {
        match e {
            WebEvent::Request { session } => self.web_request(session, s),
            WebEvent::AtNode { req } => self.web_at_node(req, s),
            WebEvent::AfterTls { req } => self.web_to_nginx(req, s),
            WebEvent::AtNginx { req } => self.web_at_nginx(req, s),
            WebEvent::NginxDone { server, id } => self.web_nginx_done(server, id, s),
            WebEvent::AtApp { req } => self.web_at_app(req, s),
            WebEvent::Computed { req } => self.web_next_db_call(req, s),
            WebEvent::Response { req } => self.web_response(req, s),
        }
    }

    pub(super) fn web_at_node(&mut self, req: u32, s: &mut Scheduler<Event>) {
        let now = s.now();
        let r = &self.web.reqs[req as usize];
        let ss = &self.web.sessions[r.session as usize];
        let owner = self.cluster.vip_owner[ss.vip as usize];
        if owner == NONE {
            // Nobody answers the VIP: the browser shows an error.
            if now > self.web.warmup {
                self.web.unreachable += 1;
            }
            let half = SimDuration(ss.rtt.0 / 2);
            self.web_fail(req, half, s);
            return;
        }
        self.web.reqs[req as usize].node = owner as u8;
        let needs_tls = self.ctx.sc.balancer.tls.is_some() && ss.tls_node != owner as u8;
        if !needs_tls {
            self.web_to_nginx(req, s);
            return;
        }
        let node = owner as usize;
        self.cluster.nodes[node].full_handshakes += 1;
        match self.cluster.nodes[node].tls.arrive(now, (req, WEB_HANDSHAKE)) {
            Admit::Started(id) => self.schedule_handshake(node, id, (req, WEB_HANDSHAKE), s),
            Admit::Queued => {}
            Admit::Rejected(_) => unreachable!("an up node's handshake queue is unbounded"),
        }
    }

    /// A web request's handshake finished on `node`.
    pub(super) fn web_tls_done(&mut self, node: usize, req: u32, s: &mut Scheduler<Event>) {
        let Some(r) = self.web.reqs.get(req as usize) else {
            return;
        };
        let session = r.session;
        let ss = &mut self.web.sessions[session as usize];
        ss.tls_node = node as u8;
        let rtt = ss.rtt;
        s.after(rtt, Event::Web(WebEvent::AfterTls { req }));
    }

    /// A node crashed under a web request waiting for its handshake.
    pub(super) fn web_handshake_lost(&mut self, req: u32, s: &mut Scheduler<Event>) {
        if self.web.reqs.contains(req as usize) {
            let rtt = self.web.sessions[self.web.reqs[req as usize].session as usize].rtt;
            self.web_fail(req, SimDuration(rtt.0 / 2), s);
        }
    }

    pub(super) fn web_to_nginx(&mut self, req: u32, s: &mut Scheduler<Event>) {
        let w = self.ctx.sc.web.as_ref().expect("web requests need [web]");
        let n = self.web.nginx.len();
        let server = self.web.rr_nginx % n;
        self.web.rr_nginx = (server + 1) % n;
        self.web.reqs[req as usize].nginx = server as u32;
        s.after(w.backend_latency, Event::Web(WebEvent::AtNginx { req }));
    }

    pub(super) fn web_at_nginx(&mut self, req: u32, s: &mut Scheduler<Event>) {
        let now = s.now();
        let server = self.web.reqs[req as usize].nginx;
        match self.web.nginx[server as usize].arrive(now, req) {
            Admit::Started(id) => self.schedule_nginx(server, id, req, s),
            Admit::Queued => {}
            Admit::Rejected(_) => unreachable!("nginx queues are unbounded"),
        }
    }

    pub(super) fn schedule_nginx(&mut self, server: u32, id: u32, req: u32, s: &mut Scheduler<Event>) {
        let w = self.ctx.sc.web.as_ref().expect("[web]");
        let cost = if self.web.reqs[req as usize].is_static {
            let hit = self.web.rng.random::<f64>() < w.nginx.cache_hit_ratio;
            if hit {
                w.nginx.static_cost.sample(&mut self.web.rng)
            } else {
                w.nginx.static_miss_cost.sample(&mut self.web.rng)
            }
        } else {
            w.nginx.proxy_cost.sample(&mut self.web.rng)
        };
        s.after(cost, Event::Web(WebEvent::NginxDone { server, id }));
    }

    pub(super) fn web_nginx_done(&mut self, server: u32, id: u32, s: &mut Scheduler<Event>) {
        let now = s.now();
        let st = &mut self.web.nginx[server as usize];
        let epoch = st.epoch();
        let Some(req) = st.complete(now, epoch, id) else { return };
        if let Some((next, &nreq)) = self.web.nginx[server as usize].next(now) {
            self.schedule_nginx(server, next, nreq, s);
        }
        let w = self.ctx.sc.web.as_ref().expect("[web]");
        if self.web.reqs[req as usize].is_static {
            self.web_respond(req, SimDuration::ZERO, s);
            return;
        }
        let n = self.web.apps.len();
        let app = self.web.rr_app % n;
        self.web.rr_app = (app + 1) % n;
        self.web.reqs[req as usize].app = app as u32;
        s.after(w.backend_latency, Event::Web(WebEvent::AtApp { req }));
    }

    pub(super) fn web_at_app(&mut self, req: u32, s: &mut Scheduler<Event>) {
        let now = s.now();
        let app = self.web.reqs[req as usize].app;
        self.web.reqs[req as usize].at_app = now;
        match self.web.apps[app as usize].arrive(now, req) {
            Admit::Started(id) => self.start_worker(id, req, s),
            Admit::Queued => {}
            Admit::Rejected(_) => {
                // The backlog is full: nginx answers 502 Bad Gateway.
                if now > self.web.warmup {
                    self.web.rejected_502 += 1;
                }
                let back = self.ctx.sc.web.as_ref().expect("[web]").backend_latency;
                self.web_fail(req, back, s);
            }
        }
    }

    pub(super) fn start_worker(&mut self, id: u32, req: u32, s: &mut Scheduler<Event>) {
        let now = s.now();
        let w = self.ctx.sc.web.as_ref().expect("[web]");
        let r = &mut self.web.reqs[req as usize];
        r.worker = id;
        let db = self.ctx.sc.database.is_some();
        r.reads_left = if db { w.app.reads } else { 0 };
        r.writes_left = if db { w.app.writes } else { 0 };
        let waited = now.since(r.at_app).0;
        if now > self.web.warmup {
            self.web.app_wait.saturating_record((waited / 1000).max(1));
            self.web.app_wait_sum_ns += waited as u128;
            self.web.app_waits += 1;
        }
        let service = w.app.service.sample(&mut self.web.rng);
        s.after(service, Event::Web(WebEvent::Computed { req }));
    }

    /// The worker issues the request's next database call, or finishes.
    pub(super) fn web_next_db_call(&mut self, req: u32, s: &mut Scheduler<Event>) {
        let r = &self.web.reqs[req as usize];
        if r.reads_left > 0 || r.writes_left > 0 {
            let keys = self.ctx.sc.web.as_ref().expect("[web]").app.keys;
            let key = self.web.rng.random_range(0..keys);
            self.web_db_call(req, key, s);
            return;
        }
        self.web_app_finish(req, s);
    }

    /// One database call of the worker: reads first, then writes; the
    /// worker waits for each (sync workers).
    pub(super) fn web_db_call(&mut self, req: u32, key: u32, s: &mut Scheduler<Event>) {
        let r = &mut self.web.reqs[req as usize];
        let key = profile_key(key);
        if r.reads_left > 0 {
            r.reads_left -= 1;
            self.db_read(key, 1, DbCaller::Web { req }, s);
        } else {
            r.writes_left -= 1;
            self.db_write(vec![key], 1, DbCaller::Web { req }, s);
        }
    }

    /// A database call came back: a failed one fails the request (the app
    /// answers 500), else the worker goes on.
    pub(super) fn web_db_done(&mut self, req: u32, ok: bool, s: &mut Scheduler<Event>) {
        if !self.web.reqs.contains(req as usize) {
            return;
        }
        if ok {
            self.web_next_db_call(req, s);
            return;
        }
        let r = &mut self.web.reqs[req as usize];
        r.reads_left = 0;
        r.writes_left = 0;
        r.failed = true;
        self.web.db_errors += 1;
        self.web_app_finish(req, s);
    }

    /// The worker is free: the response heads back through nginx.
    pub(super) fn web_app_finish(&mut self, req: u32, s: &mut Scheduler<Event>) {
        let now = s.now();
        let (app, worker) = {
            let r = &self.web.reqs[req as usize];
            (r.app, r.worker)
        };
        let st = &mut self.web.apps[app as usize];
        let epoch = st.epoch();
        st.complete(now, epoch, worker);
        if let Some((next, &nreq)) = self.web.apps[app as usize].next(now) {
            self.start_worker(next, nreq, s);
        }
        let back = self.ctx.sc.web.as_ref().expect("[web]").backend_latency;
        self.web_respond(req, back, s);
    }

    /// Sends the response from nginx (`extra` earlier hops included).
    pub(super) fn web_respond(&mut self, req: u32, extra: SimDuration, s: &mut Scheduler<Event>) {
        let w = self.ctx.sc.web.as_ref().expect("[web]");
        let r = &self.web.reqs[req as usize];
        let half = SimDuration(self.web.sessions[r.session as usize].rtt.0 / 2);
        s.after(extra + w.backend_latency + half, Event::Web(WebEvent::Response { req }));
    }

    pub(super) fn web_fail(&mut self, req: u32, delay: SimDuration, s: &mut Scheduler<Event>) {
        self.web.reqs[req as usize].failed = true;
        s.after(delay, Event::Web(WebEvent::Response { req }));
    }

    pub(super) fn web_response(&mut self, req: u32, s: &mut Scheduler<Event>) {
        let now = s.now();
        let r = self.web.reqs.remove(req as usize);
        let counting = r.sent_at > self.web.warmup;
        if r.failed {
            self.web.tally.failed += 1;
            self.web.interval_failed += 1;
            if counting {
                self.web.failed += 1;
            }
        } else {
            self.web.tally.completed += 1;
            let us = (now.since(r.sent_at).0 / 1000).max(1);
            self.web.interval.saturating_record(us);
            if counting {
                self.web.all.saturating_record(us);
                if r.is_static {
                    self.web.static_.saturating_record(us);
                } else {
                    self.web.dynamic.saturating_record(us);
                }
            }
        }
        let ss = &self.web.sessions[r.session as usize];
        let think = self.ctx.sc.populations[ss.pop as usize]
            .browsing
            .think_time
            .sample(&mut self.web.rng);
        if now + think < ss.depart_at {
            s.after(think, Event::Web(WebEvent::Request { session: r.session }));
        } else {
            self.web.sessions.remove(r.session as usize);
        }
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
            kind: "nginx",
            index: i,
            name: format!("nginx-{i}"),
        });
        let apps = (0..self.apps.len() as u32).map(|i| Component {
            tier: "web",
            kind: "app-server",
            index: i,
            name: format!("app-{i}"),
        });
        nginx.chain(apps).collect()
    }
}
