//! The simulation of one replication, split into tiers.
//!
//! [`World`] is a router: it holds the tiers and a context ([`Ctx`]: the
//! scenario, the clock, the recorder) and hands each [`Event`] to the tier
//! that owns it. Each tier is a struct in its own module that owns its
//! state, its event enum and its handlers:
//!
//! | module | tier | events |
//! |---|---|---|
//! | `clients` | [`Clients`]: the client arena, populations, client states | [`ClientEvent`] |
//! | `servers` | [`Servers`]: socket-server processes, their cores and connection lists | [`ServerEvent`] |
//! | `cluster` | [`Cluster`]: balancer nodes, VIPs, TLS, deployments | [`ClusterEvent`] |
//! | `game` | [`Game`]: rooms, moves, the relay, fan-out | [`GameEvent`] |
//! | `web` | [`web::WebTier`]: web sessions, nginx, app workers | [`web::WebEvent`] |
//! | `storage` | [`storage::Storage`]: Redis and the database | [`storage::StorageEvent`] |
//!
//! Where a handler needs a second tier it goes through a named function of
//! `seams` (the list of every cross-tier call). Stale timers are discarded
//! by a generation check: every client carries a generation that changes
//! with each state change, and every event about a client carries the
//! generation it was scheduled under.
//!
//! No I/O, no wall clock, no global RNG: a replication is a pure function of
//! the scenario and `(seed, replication index)`.

mod clients;
mod cluster;
mod game;
pub mod seams;
mod servers;
mod tier;
pub mod web;

pub mod storage;

pub use clients::{Client, ClientEvent, ClientState, Clients, MAX_CLIENTS, N_STATES, Part, STATE_NAMES};
pub use cluster::{Cluster, ClusterEvent, Node};
pub use game::{Game, GameEvent, Msg, Tally};
pub use servers::{Job, Server, ServerEvent, Servers};
pub use tier::{Component, ComponentKind, Tier};

use crate::engine::{self, LoopStats, Model, Scheduler};
use crate::metrics::Happening;
use crate::metrics::{NodeSample, Recorder, ServerSample};
use crate::model::balancer::Admin;
use crate::model::network::{Network, Slowdown};
use crate::scenario::{Fault, Scenario};
use crate::time::SimTime;

pub(crate) const NONE: u32 = u32::MAX;
pub(crate) const BACKEND: u32 = u32::MAX - 1;

/// The closed set of events: one variant per tier, each carrying that
/// tier's own event enum, plus the two the router handles itself. Small
/// and `Copy` (16 bytes): the heap moves them often.
#[derive(Clone, Copy, Debug)]
pub enum Event {
    Clients(ClientEvent),
    Servers(ServerEvent),
    Cluster(ClusterEvent),
    Game(GameEvent),
    /// The web tier (`sim::web`).
    Web(web::WebEvent),
    /// The cache and database (`sim::storage`).
    Storage(storage::StorageEvent),
    /// Every tier closes its interval.
    Sample,
    /// A scheduled fault of the scenario (`sc.faults[index]`).
    Fault {
        index: u16,
    },
}

// Events stay small: the heap moves them often (16 bytes before and after
// the split into tiers).
const _: () = assert!(std::mem::size_of::<Event>() <= 16);

/// What every tier shares: the scenario, the clock and the recorder.
pub struct Ctx<'a> {
    pub sc: &'a Scenario,
    /// The simulated time of the event being handled.
    pub now: SimTime,
    pub end: SimTime,
    pub rec: Recorder,
    /// The links between tiers, slowed during `slowdown` faults.
    pub net: Network,
}

/// One replication's world: the tiers and their context.
pub struct World<'a> {
    pub ctx: Ctx<'a>,
    pub clients: Clients,
    pub servers: Servers,
    /// The balancer nodes, VIPs and the deployment's administrative state.
    pub cluster: Cluster,
    /// Rooms, moves and the relay (idle without `[game]`).
    pub game: Game,
    /// nginx and app servers (idle without `[web]`).
    pub web: web::WebTier,
    /// The cache and the database (idle without `[cache]`/`[database]`).
    pub storage: storage::Storage,
}

impl<'a> World<'a> {
    pub fn new(sc: &'a Scenario, replication: u32) -> Self {
        let n = sc.max_servers() as usize;
        World {
            ctx: Ctx {
                sc,
                now: SimTime::ZERO,
                end: SimTime::ZERO + sc.duration,
                rec: Recorder::new(n, SimTime::ZERO + sc.warmup, &crate::metrics::fault_starts(sc)),
                net: Network::new(
                    slowdowns(sc),
                    crate::rng::stream(sc.seed, replication as u64, crate::rng::streams::NETWORK),
                ),
            },
            clients: Clients::new(sc, replication),
            servers: Servers::new(sc, replication),
            cluster: Cluster::new(sc, replication),
            game: Game::new(sc, replication),
            web: web::WebTier::new(sc, replication),
            storage: storage::Storage::new(sc, replication),
        }
    }

    /// The tiers, in a fixed order: clients, servers, cluster, game, web,
    /// storage.
    pub fn tiers(&self) -> [&dyn Tier; 6] {
        [
            &self.clients,
            &self.servers,
            &self.cluster,
            &self.game,
            &self.web,
            &self.storage,
        ]
    }

    /// Every tier's invariants, then the invariants between tiers
    /// (`seams`).
    pub fn check(&self) -> Vec<String> {
        let mut bad: Vec<String> = self.tiers().iter().flat_map(|t| t.check(&self.ctx)).collect();
        bad.extend(seams::clients_are_listed(
            &self.clients,
            &self.cluster,
            &self.servers,
            &self.game,
            self.ctx.sc,
        ));
        bad.extend(seams::rehydrations_wait_for_connecting_clients(
            &self.clients,
            &self.storage,
        ));
        bad
    }

    /// Every component that can fail, tier by tier.
    pub fn components(&self) -> Vec<Component> {
        self.tiers().iter().flat_map(|t| t.components(&self.ctx)).collect()
    }

    /// The scenario of this replication.
    #[inline]
    pub fn sc(&self) -> &'a Scenario {
        self.ctx.sc
    }

    /// Schedules the first events: arrivals, health checks, faults, samples.
    pub fn prime(&mut self, s: &mut Scheduler<Event>) {
        for i in 0..self.ctx.sc.populations.len() {
            if let Some(t) = self.next_arrival_time(i, SimTime::ZERO) {
                s.at(t, Event::Clients(ClientEvent::Arrival { pop: i as u16 }));
            }
        }
        // Spread the first checks over one interval (spread-checks).
        for node in 0..self.cluster.nodes.len() {
            self.prime_checks(node, s);
        }
        for (i, f) in self.ctx.sc.faults.iter().enumerate() {
            if matches!(f, Fault::CacheCrash { .. } | Fault::DbCrash { .. }) {
                continue; // `storage_prime` schedules them
            }
            let t = SimTime::ZERO + f.at();
            s.at(t, Event::Fault { index: i as u16 });
            if let Fault::Crash { server, .. } = f {
                let sv = &mut self.servers.list[*server as usize];
                sv.next_crash = sv.next_crash.min(t);
            }
        }
        s.at(SimTime::ZERO + self.ctx.sc.sample_interval, Event::Sample);
        self.storage_prime(s);
    }

    /// Runs to the end of the scenario.
    pub fn run(&mut self) -> Result<LoopStats, engine::EngineError> {
        self.run_observed(|_| {})
    }

    /// [`World::run`], reporting the simulated clock to `observe` every
    /// [`engine::OBSERVE_EVERY`] events (progress bars).
    pub fn run_observed(&mut self, observe: impl FnMut(SimTime)) -> Result<LoopStats, engine::EngineError> {
        let mut sched = Scheduler::new();
        sched.discard_after(self.ctx.end);
        self.prime(&mut sched);
        engine::run_observed(self, &mut sched, self.ctx.end, self.ctx.sc.max_events, observe)
    }

    pub(super) fn sample(&mut self, s: &mut Scheduler<Event>) {
        let now = s.now();
        let interval = self.ctx.sc.sample_interval;
        let servers: Vec<ServerSample> = (0..self.servers.list.len())
            .map(|i| {
                let sv = &mut self.servers.list[i];
                let live = self.cluster.nodes.iter().filter(|n| n.up);
                let queued = live.clone().map(|n| n.lb.queued(i as u32)).sum();
                let lb_up = live
                    .clone()
                    .next()
                    .is_some_and(|n| n.lb.is_up(i as u32) && n.lb.admin(i as u32) == Admin::Ready);
                ServerSample {
                    connections: sv.conns.len() as u32,
                    queued,
                    cpu_util: sv.cores.utilisation_since_last(now, now - interval),
                    jobs_waiting: sv.cores.queued() as u32,
                    process_up: sv.up,
                    lb_up,
                }
            })
            .collect();
        let queued = self.clients.state_counts[ClientState::Queued as usize];
        let backlog = self.game.relay.as_mut().map(|r| r.backlog_peak(now)).unwrap_or(0);
        let since = now - interval;
        let nodes = self
            .cluster
            .nodes
            .iter_mut()
            .map(|n| NodeSample {
                up: n.up,
                connections: if n.up { n.lb.load() } else { 0 },
                handshakes_waiting: n.tls.queued() as u32,
                cpu_util: n.tls.utilisation_since_last(now, since),
            })
            .collect();
        let web = self.web.sample(now, since);
        self.ctx.rec.sample(now, queued, backlog, servers, nodes, web);
        self.ctx.rec.judge_windows(now, &self.ctx.sc.faults);
        let next = now + self.ctx.sc.sample_interval;
        if next <= self.ctx.end {
            s.at(next, Event::Sample);
        }
    }
}

impl Model for World<'_> {
    type Event = Event;

    /// Brings the next event's room, message, server or client into cache
    /// while this event is handled: at the headline scale these structs
    /// are touched again only seconds later and have left the caches.
    #[inline]
    fn prefetch(&self, ev: &Event) {
        match *ev {
            // A connected chess player's move reads its room alone
            // (`Room::member_player`), not its client.
            Event::Game(GameEvent::MoveAtServer { room, .. }) => {
                if let Some(r) = self.game.rooms.get(room as usize) {
                    crate::engine::prefetch_all(r);
                }
            }
            Event::Game(GameEvent::RelayDeliver { msg, server }) => {
                if let Some(m) = self.game.msgs.get(msg as usize) {
                    crate::engine::prefetch(m);
                }
                if let Some(sv) = self.servers.list.get(server as usize) {
                    crate::engine::prefetch(sv);
                }
            }
            Event::Servers(servers::ServerEvent::CoreDone { server, .. }) => {
                if let Some(sv) = self.servers.list.get(server as usize) {
                    crate::engine::prefetch(sv);
                }
            }
            Event::Clients(e) => {
                if let Some(c) = e.client().and_then(|c| self.clients.list.get(c as usize)) {
                    crate::engine::prefetch_all(c);
                }
            }
            _ => {}
        }
    }

    // Inlined into the run loop, with the clients' and servers' handlers
    // (the connection path): no call layers per event. Measured with
    // `scripts/instructions`: mmc −5 %, 150k −2.9 %, 1M −2.4 % instructions.
    #[inline(always)]
    fn handle(&mut self, ev: Event, s: &mut Scheduler<Event>) {
        let now = s.now();
        self.ctx.now = now;
        match ev {
            Event::Clients(e) => self.client_event(e, s),
            Event::Servers(e) => self.server_event(e, s),
            Event::Cluster(e) => self.cluster_event(e, s),
            Event::Game(e) => match e {
                GameEvent::GameStart { room, game } => {
                    self.game.game_start(&mut self.ctx, &self.clients, room, game, s)
                }
                GameEvent::MoveAtServer { room, token, .. } => seams::move_at_server(
                    &mut self.game,
                    &mut self.servers,
                    &self.clients,
                    &mut self.ctx,
                    room,
                    token,
                    s,
                ),
                GameEvent::BatchClose { batch } => self.game.batch_close(&mut self.ctx, &self.clients, batch, s),
                GameEvent::RelayDeliver { msg, server } => seams::relay_deliver(
                    &mut self.game,
                    &mut self.servers,
                    &self.clients,
                    &mut self.ctx,
                    msg,
                    server,
                    s,
                ),
            },
            Event::Web(e) => match e {
                web::WebEvent::AtNode { req } => {
                    seams::web_request_at_node(&mut self.web, &mut self.cluster, &mut self.ctx, req, s)
                }
                web::WebEvent::Computed { req } => {
                    seams::web_next_db_call(&mut self.web, &mut self.storage, &mut self.ctx, req, s)
                }
                e => self.web.handle(&mut self.ctx, e, s),
            },
            Event::Storage(e) => self.storage_event(e, s),
            Event::Sample => self.sample(s),
            Event::Fault { index } => match self.ctx.sc.faults[index as usize] {
                Fault::Crash {
                    server,
                    mode,
                    restart_after,
                    ..
                } => {
                    if self.cluster.provisioned[server as usize] {
                        self.crash(server, mode, restart_after, Happening::Crash, s);
                    }
                    self.servers.list[server as usize].next_crash = self.next_scheduled_crash(server, now);
                }
                Fault::BalancerCrash {
                    node,
                    mode,
                    restart_after,
                    ..
                } => self.node_crash(node as usize, mode, restart_after, s),
                // Storage faults have their own events (`storage_prime`).
                Fault::CacheCrash { .. } | Fault::DbCrash { .. } => {}
                Fault::ScaleOut { .. } | Fault::ScaleIn { .. } | Fault::RollingRestart { .. } => {
                    self.deploy_fault(index as usize, s)
                }
                Fault::NginxCrash { .. } | Fault::AppCrash { .. } => self.web.fault(&mut self.ctx, index as usize, s),
                Fault::Slowdown { .. } => slowdown_fault(&mut self.ctx, index as usize, s),
            },
        }
    }
}

/// The scenario's `slowdown` faults as windows on the network.
fn slowdowns(sc: &Scenario) -> Vec<Slowdown> {
    sc.faults
        .iter()
        .filter_map(|f| match *f {
            Fault::Slowdown {
                tier,
                at,
                for_,
                latency,
                loss,
            } => Some(Slowdown {
                link: tier,
                from: SimTime::ZERO + at,
                until: SimTime::ZERO + at + for_,
                extra: latency,
                loss,
            }),
            _ => None,
        })
        .collect()
}

/// A `slowdown` fault's event fires twice: at its start and at its end.
/// The network already knows the window (`Ctx::net`); this puts both ends
/// on the timeline.
fn slowdown_fault(ctx: &mut Ctx, index: usize, s: &mut Scheduler<Event>) {
    let Fault::Slowdown { tier, at, for_, .. } = ctx.sc.faults[index] else {
        unreachable!("not a slowdown")
    };
    let now = s.now();
    let component = tier.component();
    if now == SimTime::ZERO + at {
        ctx.rec
            .event(now, component, Happening::Slowdown, ctx.sc.faults[index].describe());
        s.at(now + for_, Event::Fault { index: index as u16 });
    } else {
        let i = tier as usize;
        let detail = format!(
            "{} hops slowed, {} packets retransmitted on these links so far",
            ctx.net.slowed_hops[i], ctx.net.retransmits[i]
        );
        ctx.rec.event(now, component, Happening::SlowdownOver, detail);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::scenario;

    #[test]
    fn events_stay_sixteen_bytes() {
        assert_eq!(std::mem::size_of::<Event>(), 16);
    }

    /// Every tier lists what can fail in it: the web-tier scenario has one
    /// socket server, two balancer nodes behind one VIP, two nginx, four
    /// app servers, a primary and one replica.
    #[test]
    fn tiers_list_their_components() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/web-tier.toml");
        let src = std::fs::read_to_string(path).unwrap();
        let sc = scenario::parse(&src, Path::new("web-tier.toml"), "web-tier", Path::new(".")).unwrap();
        let w = World::new(&sc, 0);
        let names: Vec<&str> = w.tiers().iter().map(|t| t.name()).collect();
        assert_eq!(names, ["clients", "servers", "cluster", "game", "web", "storage"]);
        let kinds: Vec<(&str, &str, String)> = w
            .components()
            .into_iter()
            .map(|c| (c.tier, c.kind.as_str(), c.name))
            .collect();
        let count = |kind: &str| kinds.iter().filter(|k| k.1 == kind).count();
        assert_eq!(count("socket-server"), 1, "{kinds:?}");
        assert_eq!(count("balancer-node"), 2, "{kinds:?}");
        assert_eq!(count("vip"), 1, "{kinds:?}");
        assert_eq!(count("nginx"), 2, "{kinds:?}");
        assert_eq!(count("app-server"), 4, "{kinds:?}");
        assert_eq!(count("db-primary"), 1, "{kinds:?}");
        assert_eq!(count("db-replica"), 1, "{kinds:?}");
        assert!(kinds.contains(&("storage", "db-replica", "db-replica-0".into())));
        assert!(w.check().is_empty(), "a fresh world holds its invariants");
    }
}
