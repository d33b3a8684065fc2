//! The balancer (one HAProxy node): which server a new connection goes to,
//! the per-server and backend queues, and the health-check state machine.
//!
//! It only keeps counts and ids; it knows nothing of clients' RTTs, of
//! servers' cores, or of the event queue. The simulation asks it for a
//! [`Choice`] and tells it when sessions open and close and checks finish.

use std::collections::VecDeque;

use rand::RngExt;

use super::hashing::{MapTable, Ring};
use crate::rng::SimRng;
use crate::scenario::{self, HashType, Strategy};
use crate::time::{SimDuration, SimTime};

/// A request waiting in a queue. It is live while the client's generation
/// still equals `generation`; stale entries are skipped when popped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Waiter {
    pub client: u32,
    pub generation: u32,
    pub since: SimTime,
}

/// A FIFO with lazy deletion: cancelling an entry only lowers `live`.
#[derive(Debug, Default)]
pub struct WaitQueue {
    q: VecDeque<Waiter>,
    live: u32,
}

impl WaitQueue {
    pub fn live(&self) -> u32 {
        self.live
    }
    fn push(&mut self, w: Waiter) {
        self.q.push_back(w);
        self.live += 1;
    }
    /// A live entry left the queue by other means (timeout, redispatch).
    pub fn cancel(&mut self) {
        debug_assert!(self.live > 0);
        self.live -= 1;
    }
    fn skip_stale(&mut self, is_live: &impl Fn(&Waiter) -> bool) {
        while let Some(w) = self.q.front() {
            if is_live(w) {
                break;
            }
            self.q.pop_front();
        }
    }
    fn front(&mut self, is_live: &impl Fn(&Waiter) -> bool) -> Option<Waiter> {
        self.skip_stale(is_live);
        self.q.front().copied()
    }
    fn pop(&mut self, is_live: &impl Fn(&Waiter) -> bool) -> Option<Waiter> {
        self.skip_stale(is_live);
        let w = self.q.pop_front()?;
        self.live -= 1;
        Some(w)
    }
    /// Takes every live entry out (used when a server is marked DOWN).
    fn drain_live(&mut self, is_live: &impl Fn(&Waiter) -> bool) -> Vec<Waiter> {
        let v: Vec<Waiter> = self.q.drain(..).filter(|w| is_live(w)).collect();
        self.live = 0;
        v
    }
    /// Drops stale entries once they outnumber live ones, so memory stays
    /// bounded by the live count.
    fn compact(&mut self, is_live: &impl Fn(&Waiter) -> bool) {
        if self.q.len() > 2 * self.live as usize + 1024 {
            self.q.retain(|w| is_live(w));
        }
    }
}

/// Where the balancer sends a new request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    Server(u32),
    /// Wait in this server's queue (hash strategies: the key is bound to it).
    QueueServer(u32),
    /// Wait in the backend queue for any server.
    QueueBackend,
    Refuse(Refusal),
}

/// Why a request got a 503.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No server is UP.
    NoServer,
    /// Every eligible server is at maxconn and the queue is full (or off).
    QueueFull,
    /// Waited `timeout_queue` in a queue.
    QueueTimeout,
    /// Connection attempts to the server failed `retries + 1` times.
    ServerFailed,
    /// The node is at its global `node_maxconn`.
    NodeFull,
    /// The client gave up waiting (SYNs to an unowned VIP, or a handshake
    /// queue longer than its connect timeout).
    ConnectTimeout,
}

/// A health-check state change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    MarkedDown,
    MarkedUp,
}

/// Administrative state of a server slot (HAProxy `set server state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admin {
    /// In the list, takes new connections when UP.
    Ready,
    /// Keeps its connections, takes no new ones (a deploy draining it).
    Drain,
    /// Not in the list: an unused server-template slot, or removed.
    Maint,
}

#[derive(Clone, Copy, Debug, Default)]
struct Health {
    fails: u32,
    rises: u32,
}

/// HAProxy keeps effective weights scaled by 16 (`BE_WEIGHT_SCALE`) so that
/// slowstart can ramp even a weight-1 server in steps.
pub const WEIGHT_SCALE: u32 = 16;

/// Salt for `source` keys and for `room` keys.
pub const KEY_SOURCE: u64 = 1;
pub const KEY_ROOM: u64 = 2;

pub struct Balancer {
    strategy: Strategy,
    hash_type: HashType,
    maxconn: u32,
    maxqueue: Option<u32>,
    weights: Vec<u32>,
    /// Effective weight (× `WEIGHT_SCALE`): 0 while DOWN, ramps up during slowstart.
    eweight: Vec<u32>,
    lb_up: Vec<bool>,
    admin: Vec<Admin>,
    conns: Vec<u32>,
    queues: Vec<WaitQueue>,
    backend: WaitQueue,
    health: Vec<Health>,
    up_since: Vec<SimTime>,
    rr_next: usize,
    swrr: Vec<i64>,
    lc: super::least::LeastHeap,
    lc_touch: u64,
    map: MapTable,
    ring: Ring,
}

impl Balancer {
    /// A node's view of `slots` server slots, of which the first
    /// `servers.count` are in its list; the rest wait for scale-outs.
    pub fn new(cfg: &scenario::Balancer, servers: &scenario::Servers, slots: u32) -> Self {
        let n = slots.max(servers.count) as usize;
        let mut weights = cfg.weights.clone().unwrap_or_default();
        weights.resize(n, 1);
        let mut b = Balancer {
            strategy: cfg.strategy,
            hash_type: cfg.hash_type,
            maxconn: cfg.maxconn.unwrap_or(servers.max_connections),
            // `Some(0)` here is a loss system (`queue = false`); HAProxy's
            // `maxqueue 0` is unlimited, as absent.
            maxqueue: if cfg.queue {
                cfg.maxqueue.filter(|&m| m > 0)
            } else {
                Some(0)
            },
            eweight: weights.iter().map(|w| w * WEIGHT_SCALE).collect(),
            weights,
            lb_up: vec![true; n],
            admin: (0..n)
                .map(|i| {
                    if i < servers.count as usize {
                        Admin::Ready
                    } else {
                        Admin::Maint
                    }
                })
                .collect(),
            conns: vec![0; n],
            queues: (0..n).map(|_| WaitQueue::default()).collect(),
            backend: WaitQueue::default(),
            health: vec![Health::default(); n],
            up_since: vec![SimTime::ZERO; n],
            rr_next: 0,
            swrr: vec![0; n],
            lc: super::least::LeastHeap::with_capacity(n),
            lc_touch: 0,
            map: MapTable::default(),
            ring: Ring::default(),
        };
        if b.hash_type == HashType::Consistent {
            b.ring = Ring::build(&b.weights);
        }
        b.rebuild();
        b
    }

    pub fn conns(&self, s: u32) -> u32 {
        self.conns[s as usize]
    }
    pub fn is_up(&self, s: u32) -> bool {
        self.lb_up[s as usize]
    }
    pub fn queued(&self, s: u32) -> u32 {
        self.queues[s as usize].live()
    }
    pub fn backend_queued(&self) -> u32 {
        self.backend.live()
    }
    pub fn eweight(&self, s: u32) -> u32 {
        self.eweight[s as usize]
    }
    pub fn admin(&self, s: u32) -> Admin {
        self.admin[s as usize]
    }
    /// Client connections this node holds: slots on servers plus queued.
    pub fn load(&self) -> u64 {
        let slots: u64 = self.conns.iter().map(|&c| c as u64).sum();
        let queued: u64 = self.queues.iter().map(|q| q.live() as u64).sum();
        slots + queued + self.backend.live() as u64
    }

    #[inline]
    fn usable(&self, s: usize) -> bool {
        self.lb_up[s] && self.eweight[s] > 0 && self.admin[s] == Admin::Ready
    }
    #[inline]
    fn available(&self, s: usize) -> bool {
        self.usable(s) && self.conns[s] < self.maxconn
    }
    fn usable_count(&self) -> u32 {
        (0..self.conns.len()).filter(|&s| self.usable(s)).count() as u32
    }

    #[inline]
    fn lc_key(&self, s: usize) -> u64 {
        // Equal weights (the default 1 × `WEIGHT_SCALE`, out of slow start)
        // are powers of two: a shift per connect and release.
        super::div_fast((self.conns[s] as u64 + 1) << 20, self.eweight[s].max(1) as u64)
    }

    fn lc_update(&mut self, s: usize) {
        if self.usable(s) {
            self.lc_touch += 1;
            let key = (self.lc_key(s), self.lc_touch);
            self.lc.set(s as u32, key);
        } else {
            self.lc.remove(s as u32);
        }
    }

    /// Rebuilds the structures that depend on the usable set and weights.
    fn rebuild(&mut self) {
        let usable: Vec<bool> = (0..self.conns.len()).map(|s| self.usable(s)).collect();
        if self.hash_type == HashType::MapBased {
            // Map-based hashing is static in HAProxy: configured weights.
            self.map = MapTable::build(&usable, &self.weights);
        }
        for s in 0..self.conns.len() {
            self.lc_update(s);
        }
    }

    /// Picks a server for a new request. `source` and `room` are the
    /// client's keys; `exclude` is a server that just failed (redispatch).
    pub fn choose(&mut self, source: u64, room: u64, exclude: Option<u32>, rng: &mut SimRng) -> Choice {
        match self.strategy {
            Strategy::Source | Strategy::Room => {
                let kind = if self.strategy == Strategy::Source {
                    KEY_SOURCE
                } else {
                    KEY_ROOM
                };
                let key = if kind == KEY_SOURCE { source } else { room };
                let h = super::hashing::key_hash(kind, key);
                let target = match self.hash_type {
                    HashType::MapBased => self.map.lookup(h),
                    HashType::Consistent => self.ring.lookup(h, |s| self.usable(s as usize)),
                };
                let Some(mut t) = target else {
                    return Choice::Refuse(Refusal::NoServer);
                };
                if Some(t) == exclude {
                    let n = self.conns.len();
                    match (1..n).map(|k| (t as usize + k) % n).find(|&s| self.usable(s)) {
                        Some(s) => t = s as u32,
                        None => return Choice::Refuse(Refusal::NoServer),
                    }
                }
                self.admit_to(t)
            }
            _ => match self.pick_available(exclude, rng) {
                Some(s) => Choice::Server(s),
                None => {
                    let usable = self.usable_count();
                    if usable == 0 {
                        Choice::Refuse(Refusal::NoServer)
                    } else if self
                        .maxqueue
                        .is_none_or(|m| (self.backend.live() as u64) < m as u64 * usable as u64)
                    {
                        Choice::QueueBackend
                    } else {
                        Choice::Refuse(Refusal::QueueFull)
                    }
                }
            },
        }
    }

    /// A request bound to server `s` (a hash key, or a retry on the same
    /// server, which HAProxy re-assigns): the server if it has a free slot,
    /// else its queue, else a 503.
    pub fn admit_to(&self, s: u32) -> Choice {
        if self.conns[s as usize] < self.maxconn {
            Choice::Server(s)
        } else if self.maxqueue.is_none_or(|m| self.queues[s as usize].live() < m) {
            Choice::QueueServer(s)
        } else {
            Choice::Refuse(Refusal::QueueFull)
        }
    }

    fn ok(&self, s: usize, exclude: Option<u32>) -> bool {
        self.available(s) && Some(s as u32) != exclude
    }

    /// Non-hash strategies: a server with a free slot, or None.
    fn pick_available(&mut self, exclude: Option<u32>, rng: &mut SimRng) -> Option<u32> {
        let n = self.conns.len();
        match self.strategy {
            Strategy::First => (0..n).find(|&s| self.ok(s, exclude)).map(|s| s as u32),
            Strategy::RoundRobin | Strategy::StaticRr => {
                let w: &[u32] = if self.strategy == Strategy::StaticRr {
                    &self.weights
                } else {
                    &self.eweight
                };
                let equal = w.iter().all(|&x| x == w[0]);
                if equal {
                    for k in 0..n {
                        let s = (self.rr_next + k) % n;
                        if self.ok(s, exclude) {
                            self.rr_next = (s + 1) % n;
                            return Some(s as u32);
                        }
                    }
                    None
                } else {
                    // Smooth weighted round robin (as nginx): exact proportions,
                    // well interleaved.
                    let mut total = 0i64;
                    let mut best: Option<usize> = None;
                    for s in 0..n {
                        if !self.ok(s, exclude) {
                            continue;
                        }
                        let ws = if self.strategy == Strategy::StaticRr {
                            self.weights[s]
                        } else {
                            self.eweight[s]
                        } as i64;
                        self.swrr[s] += ws;
                        total += ws;
                        if best.is_none_or(|b| self.swrr[s] > self.swrr[b]) {
                            best = Some(s);
                        }
                    }
                    let b = best?;
                    self.swrr[b] -= total;
                    Some(b as u32)
                }
            }
            Strategy::LeastConn => {
                if let Some(s) = self.lc.peek()
                    && self.ok(s as usize, exclude)
                {
                    return Some(s);
                }
                // The least-loaded one is full or excluded: scan.
                (0..n)
                    .filter(|&s| self.ok(s, exclude))
                    .min_by_key(|&s| (self.lc_key(s), s))
                    .map(|s| s as u32)
            }
            // HAProxy's `balance random` is `random(2)`.
            Strategy::Random => self.random_draws(2, exclude, rng),
            Strategy::RandomD(d) => self.random_draws(d, exclude, rng),
            Strategy::Source | Strategy::Room => unreachable!("hash strategies choose by key"),
        }
    }

    /// d independent draws (with replacement, as in HAProxy and in the
    /// supermarket model); the least loaded wins, first on ties. One draw
    /// (`random(1)`) is plain weighted random assignment.
    fn random_draws(&mut self, d: u32, exclude: Option<u32>, rng: &mut SimRng) -> Option<u32> {
        let mut best: Option<u32> = None;
        for _ in 0..d {
            let Some(s) = self.random_available(exclude, rng) else {
                break;
            };
            if best.is_none_or(|b| self.lc_key(s as usize) < self.lc_key(b as usize)) {
                best = Some(s);
            }
        }
        best
    }

    /// Weighted random server with a free slot.
    fn random_available(&mut self, exclude: Option<u32>, rng: &mut SimRng) -> Option<u32> {
        let n = self.conns.len();
        let equal = self.eweight.iter().all(|&x| x == self.eweight[0]);
        if equal {
            for _ in 0..2 * n {
                let s = rng.random_range(0..n);
                if self.ok(s, exclude) {
                    return Some(s as u32);
                }
            }
        }
        let total: u64 = (0..n)
            .filter(|&s| self.ok(s, exclude))
            .map(|s| self.eweight[s] as u64)
            .sum();
        if total == 0 {
            return None;
        }
        let mut r = rng.random_range(0..total);
        for s in 0..n {
            if self.ok(s, exclude) {
                let w = self.eweight[s] as u64;
                if r < w {
                    return Some(s as u32);
                }
                r -= w;
            }
        }
        None
    }

    /// A request was forwarded to server `s` (it now holds one of its slots).
    pub fn on_forward(&mut self, s: u32) {
        self.conns[s as usize] += 1;
        self.lc_update(s as usize);
    }

    /// A session or attempt on server `s` ended, freeing a slot.
    pub fn on_close(&mut self, s: u32) {
        let c = &mut self.conns[s as usize];
        debug_assert!(*c > 0, "closing a slot that was never opened");
        *c = c.saturating_sub(1);
        self.lc_update(s as usize);
    }

    /// Queues a request on server `s` or on the backend.
    pub fn enqueue(&mut self, server: Option<u32>, w: Waiter) {
        match server {
            Some(s) => self.queues[s as usize].push(w),
            None => self.backend.push(w),
        }
    }

    /// A live waiter left a queue other than by being served.
    pub fn cancel_waiter(&mut self, server: Option<u32>) {
        match server {
            Some(s) => self.queues[s as usize].cancel(),
            None => self.backend.cancel(),
        }
    }

    /// If server `s` can take a request, the oldest live waiter for it (from
    /// its own queue or the backend queue), with the queue it came from.
    pub fn next_waiter(&mut self, s: u32, is_live: impl Fn(&Waiter) -> bool) -> Option<(Waiter, Option<u32>)> {
        let si = s as usize;
        if !self.available(si) {
            return None;
        }
        let own = self.queues[si].front(&is_live);
        let back = self.backend.front(&is_live);
        let take_own = match (own, back) {
            (None, None) => return None,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(a), Some(b)) => a.since <= b.since,
        };
        let w = if take_own {
            self.queues[si].pop(&is_live)
        } else {
            self.backend.pop(&is_live)
        };
        self.queues[si].compact(&is_live);
        self.backend.compact(&is_live);
        w.map(|w| (w, take_own.then_some(s)))
    }

    /// Health-check interval for server `s` given its state.
    pub fn check_interval(&self, s: u32, hc: &scenario::HealthCheck) -> SimDuration {
        let h = self.health[s as usize];
        if self.lb_up[s as usize] {
            if h.fails > 0 { hc.fastinter() } else { hc.inter }
        } else if h.rises > 0 {
            hc.fastinter()
        } else {
            hc.downinter()
        }
    }

    /// Records a check result; returns a state change if `fall`/`rise` was reached.
    pub fn record_check(&mut self, s: u32, ok: bool, hc: &scenario::HealthCheck, now: SimTime) -> Option<Transition> {
        let si = s as usize;
        let h = &mut self.health[si];
        if self.lb_up[si] {
            if ok {
                h.fails = 0;
                None
            } else {
                h.fails += 1;
                (h.fails >= hc.fall).then(|| {
                    self.set_up(s, false, now);
                    Transition::MarkedDown
                })
            }
        } else if ok {
            h.rises += 1;
            (h.rises >= hc.rise).then(|| {
                self.set_up(s, true, now);
                Transition::MarkedUp
            })
        } else {
            h.rises = 0;
            None
        }
    }

    fn set_up(&mut self, s: u32, up: bool, now: SimTime) {
        let si = s as usize;
        self.lb_up[si] = up;
        self.health[si] = Health::default();
        self.up_since[si] = now;
        self.eweight[si] = if up { self.weights[si] * WEIGHT_SCALE } else { 0 };
        self.rebuild();
    }

    /// Slowstart: sets the effective weight for `elapsed` since the server
    /// came UP. Returns true while the ramp is still going.
    pub fn slowstart(&mut self, s: u32, now: SimTime, slowstart: SimDuration) -> bool {
        let si = s as usize;
        if !self.lb_up[si] || slowstart.0 == 0 {
            return false;
        }
        let elapsed = now.since(self.up_since[si]);
        let w = (self.weights[si] * WEIGHT_SCALE) as u64;
        let ew = if elapsed >= slowstart {
            w
        } else {
            // HAProxy: at least 1 while ramping.
            ((w * elapsed.0) / slowstart.0).max(1)
        } as u32;
        if ew != self.eweight[si] {
            self.eweight[si] = ew;
            self.rebuild();
        }
        elapsed < slowstart
    }

    /// Changes a server's administrative state. A server leaving `Maint`
    /// enters the list UP (as HAProxy does for a server-template slot the
    /// updater fills) with its health counters reset; returns true when it
    /// did, so the caller can start slowstart.
    pub fn set_admin(&mut self, s: u32, admin: Admin, now: SimTime) -> bool {
        let si = s as usize;
        let was = self.admin[si];
        if was == admin {
            return false;
        }
        self.admin[si] = admin;
        let entered = was == Admin::Maint;
        if entered {
            self.set_up(s, true, now);
        } else {
            self.rebuild();
        }
        entered
    }

    /// Takes every live waiter out of server `s`'s queue (it went DOWN).
    pub fn drain_server_queue(&mut self, s: u32, is_live: impl Fn(&Waiter) -> bool) -> Vec<Waiter> {
        self.queues[s as usize].drain_live(&is_live)
    }
}
