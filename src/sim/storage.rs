//! The storage tier: the Redis cache that moves are written behind to, and
//! the database primary with replicas that apply its binlog.
//!
//! A move's path to durability: the socket server that validated it sends
//! one write op to Redis (`network` later it queues on Redis's single
//! thread); once executed the move is *stored*, and *at risk* until the
//! database acknowledges the flush batch holding it. The flusher takes
//! unflushed moves every `flush.interval` (or per game, Lichess-style) and
//! commits each batch on the primary (cost `batch_base + batch_per_row ×
//! rows`); a commit gets a binlog position, is shipped to each replica
//! (`ship_delay`) and applied there at `apply_rate` rows/s per applier
//! thread. Without a `[cache]`, each validated move is a single-row commit
//! (write-through). Every queue is a [`Station`]: Redis (one server), the
//! primary's cores, each replica's read cores and its applier threads.
//!
//! Faults: a Redis crash loses what `appendfsync` did not persist; a
//! primary crash loses the acknowledged commits the most caught-up replica
//! had not received, which is promoted after `failover_detection` (and
//! after applying its relay log). Flush batches that fail are retried when
//! a primary is available again, so their moves stay at risk meanwhile.
//!
//! Rehydration: a member accepted on a server that holds no member of its
//! room (so no in-memory state) while the room's game has moves waits for
//! the room's history, read from Redis if it holds the whole game, else
//! from the database; `sim::accept` calls [`World::rehydration_pending`]
//! and is called again when the read is back.
//!
//! # API for other tiers (the web tier)
//!
//! ```text
//! fn db_read(&mut self, key: u64, rows: u32, caller: DbCaller, s: &mut Scheduler<Event>)
//! fn db_write(&mut self, keys: Vec<u64>, rows: u32, caller: DbCaller, s: &mut Scheduler<Event>)
//! ```
//!
//! Keys come from [`room_key`] and [`profile_key`] (one key space each).
//! A read goes to a replica (round-robin over running ones) or the primary
//! per `reads_from`, costs `read_cost + read_per_row × rows` and is counted
//! stale if that node had not applied the key's latest commit. A write is
//! one commit costing `write_cost`. `network` later the answer reaches
//! `World::db_done(caller, ok, stale, s)`, which dispatches on the
//! [`DbCaller`]: add a variant (e.g. `Web { request }`) and its arm there.
//! Failures (no primary, node crashed under the op) come back with
//! `ok = false`; `stale` says a replica answered without the key's latest
//! commit. Counters (`db_reads`, `stale_reads`, `db_writes_failed`, …) are
//! kept here, whoever the caller.

use super::Servers;
use super::{Component, ComponentKind, Ctx, Tier};
use crate::metrics::Recorder;
use crate::metrics::summary::{MetricSink, lag_trend, max_ms, ms};
use crate::metrics_defs::MetricKey as K;
use crate::model::network::{Link, Packet};
use crate::stats;
use std::collections::{HashMap, VecDeque};

use slab::Slab;

use super::{ClientEvent, Event, NONE, World};
use crate::engine::Scheduler;
use crate::metrics::Happening;
use crate::metrics::{CacheSample, DbNodeSample, StorageSample, db_node_name};
use crate::model::cache::{CacheBook, Flusher};
use crate::model::database::{Binlog, BinlogEntry, KeySeqs, Progress, lag_s};
use crate::model::station::{Admit, Station};
use crate::rng::{self, SimRng, streams};
use crate::scenario::{AppendFsync, DbTarget, Fault, Flush, ReadsFrom, Scenario};
use crate::time::{SimDuration, SimTime};

/// The database key of a room's game history.
pub const fn room_key(room: u32) -> u64 {
    room as u64
}

/// The database key of a player profile (web tier).
pub const fn profile_key(id: u32) -> u64 {
    (1 << 32) | id as u64
}

/// Who waits for a database operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbCaller {
    /// A flush batch (or a move written straight through).
    Flush { batch: u32 },
    /// A member's accept waits for its room's history.
    Rehydrate { client: u32, generation: u32 },
    /// An app worker waits for one of its request's reads or writes.
    Web { req: u32 },
}

/// The storage tier's events (one variant of [`Event`]). Small and `Copy`:
/// operations live in slabs and events carry their ids.
#[derive(Clone, Copy, Debug)]
pub enum StorageEvent {
    /// A cache op reaches Redis.
    CacheArrive {
        op: u32,
    },
    /// Redis's thread finished an op.
    CacheDone {
        epoch: u32,
        id: u32,
    },
    /// A rehydration read's answer is back on its socket server.
    CacheReply {
        op: u32,
    },
    FlushTick,
    /// Lichess policy: a room's flush timer.
    FlushRoom {
        room: u32,
    },
    /// `appendfsync everysec`.
    FsyncTick,
    CacheCrash {
        fault: u16,
    },
    CacheRestart,
    /// A database op reaches the database.
    DbArrive {
        op: u32,
    },
    /// A database station finished an item.
    DbDone {
        node: u16,
        station: u8,
        epoch: u32,
        id: u32,
    },
    /// A database answer reaches its caller.
    DbReply {
        op: u32,
    },
    /// Commits shipped `ship_delay` ago reach the replicas (of primary
    /// term `term`: a crash since then lost them in flight).
    BinlogArrive {
        term: u32,
    },
    SemiSyncAck {
        term: u32,
    },
    SemiSyncTimeout {
        term: u32,
    },
    DbCrash {
        fault: u16,
    },
    DbRestart {
        node: u16,
    },
    /// Failure detection is over: promote the most caught-up replica.
    Failover {
        term: u32,
    },
    /// A replica fetches the binlog it missed (after a restart or a
    /// failover).
    ReplicaPull {
        node: u16,
    },
    Sample,
    /// A socket server crashed (scheduled with its fault): record the
    /// moves at risk and fail rehydrations waiting on it.
    ServerCrashed {
        server: u32,
    },
}

const CPU: u8 = 0;
const READS: u8 = 1;
const APPLY: u8 = 2;

/// A Redis op in flight.
#[derive(Clone, Copy, Debug)]
enum CacheOp {
    Write {
        room: u32,
        game: u32,
        seq: u32,
        ends: bool,
    },
    /// A rehydration read; `hit` once Redis answered.
    Read {
        client: u32,
        generation: u32,
        hit: bool,
    },
}

#[derive(Clone, Debug)]
enum DbKind {
    Read {
        key: u64,
        rows: u32,
    },
    Write {
        keys: Vec<u64>,
        rows: u32,
        moves: u32,
        bulk: bool,
    },
}

/// A database op in flight.
#[derive(Clone, Debug)]
struct DbOp {
    caller: DbCaller,
    kind: DbKind,
    ok: bool,
    stale: bool,
}

/// A member's accept waiting for its room's history.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rehydration {
    pub(crate) generation: u32,
    pub(crate) server: u32,
    /// The server's epoch when the read started (a crash changes it).
    pub(crate) epoch: u32,
    pub(crate) started: SimTime,
    /// The read is back: the next `accept` proceeds.
    pub(crate) done: bool,
}

/// Redis.
pub struct CacheTier {
    pub station: Station<u32>,
    pub book: CacheBook,
}

/// A database node's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Primary,
    Replica,
    /// A former primary that was replaced (down until it rejoins).
    Failed,
}

/// One database node.
pub struct DbNode {
    pub role: Role,
    pub up: bool,
    /// The primary's cores: commits (and reads with `reads_from = "primary"`).
    pub cpu: Station<u32>,
    /// A replica's read cores.
    pub reads: Station<u32>,
    /// A replica's applier threads: (binlog position, rows).
    pub apply: Station<(u64, u32)>,
    pub progress: Progress,
    /// Restarted or re-pointed: ignores shipped commits until it has
    /// fetched what it missed.
    catching_up: bool,
}

/// The primary, its replicas and the binlog.
pub struct DbTier {
    pub nodes: Vec<DbNode>,
    pub primary: Option<usize>,
    /// Changes at each primary crash, restart and promotion.
    term: u32,
    pub binlog: Binlog,
    pub keys: KeySeqs,
    semi_sync_on: bool,
    /// Commits waiting for a semi-sync ack, in commit order.
    waiting_ack: VecDeque<u64>,
    promoting: Option<usize>,
    crashed_at: SimTime,
    next_read: usize,
    interval_commits: u64,
    interval_rows: u64,
    /// Time from each primary crash to the promotion that ended it (s).
    pub failovers_s: Vec<f64>,
}

/// Whole-run tallies for the conservation checks.
#[derive(Clone, Copy, Debug, Default)]
pub struct StorageTally {
    pub cache_writes: u64,
    pub cache_writes_failed: u64,
    /// Write ops sent to Redis and not yet executed or failed.
    pub cache_writes_pending: u64,
    pub commits_lost: u64,
    pub moves_lost_db: u64,
}

/// The storage tier of one replication.
pub struct Storage {
    pub cache: Option<CacheTier>,
    pub db: Option<DbTier>,
    pub flusher: Flusher,
    cache_ops: Slab<CacheOp>,
    db_ops: Slab<DbOp>,
    pub(crate) rehydrating: HashMap<u32, Rehydration>,
    pub tally: StorageTally,
    /// Most moves at risk at a crash of a socket server or Redis, and at
    /// any sample or crash (after the warm-up).
    pub at_risk_at_crash_max: u64,
    pub at_risk_max: u64,
    rng: SimRng,
    last_sample: SimTime,
}

impl Storage {
    pub fn new(sc: &Scenario, replication: u32) -> Self {
        let cache = sc.cache.as_ref().map(|_| CacheTier {
            station: Station::new(1, usize::MAX),
            book: CacheBook::default(),
        });
        let db = sc.database.as_ref().map(|d| {
            let nodes = (0..=d.replicas as usize)
                .map(|i| DbNode {
                    role: if i == 0 { Role::Primary } else { Role::Replica },
                    up: true,
                    cpu: Station::new(d.cores, usize::MAX),
                    reads: Station::new(d.read_cores, usize::MAX),
                    apply: Station::new(d.applier_threads, usize::MAX),
                    progress: Progress::default(),
                    catching_up: false,
                })
                .collect();
            DbTier {
                nodes,
                primary: Some(0),
                term: 0,
                binlog: Binlog::default(),
                keys: KeySeqs::default(),
                semi_sync_on: d.semi_sync,
                waiting_ack: VecDeque::new(),
                promoting: None,
                crashed_at: SimTime::ZERO,
                next_read: 0,
                interval_commits: 0,
                interval_rows: 0,
                failovers_s: Vec::new(),
            }
        });
        Storage {
            cache,
            db,
            flusher: Flusher::default(),
            cache_ops: Slab::new(),
            db_ops: Slab::new(),
            rehydrating: HashMap::new(),
            tally: StorageTally::default(),
            at_risk_at_crash_max: 0,
            at_risk_max: 0,
            rng: rng::stream(sc.seed, replication as u64, streams::STORAGE),
            last_sample: SimTime::ZERO,
        }
    }

    /// A cache or a database is configured.
    #[inline]
    pub fn is_on(&self) -> bool {
        self.cache.is_some() || self.db.is_some()
    }

    /// Moves validated and not yet durable in the database.
    pub fn moves_at_risk(&self) -> u64 {
        self.cache.as_ref().map_or(0, |c| c.book.unflushed) + self.flusher.in_batches
    }

    /// Rehydrations waiting for a read: (client, generation, server, done).
    pub fn rehydrations(&self) -> impl Iterator<Item = (u32, u32, u32, bool)> + '_ {
        self.rehydrating
            .iter()
            .map(|(&c, r)| (c, r.generation, r.server, r.done))
    }

    /// Database ops in flight.
    pub fn db_ops_in_flight(&self) -> usize {
        self.db_ops.len()
    }
}

/// The database API the other tiers call (through `seams` or the
/// storage tier's own handlers): an op is put in flight and its answer
/// comes back through `World::db_done`.
impl Storage {
    /// Whether socket server `srv` holds a Redis connection pool: with
    /// `maxclients` smaller than pools × servers, the later servers get none.
    pub(super) fn cache_usable(sc: &Scenario, servers: &Servers, srv: u32) -> bool {
        let Some(k) = &sc.cache else { return false };
        let pools = (k.maxclients / k.pool_size.max(1)) as usize;
        if servers.list.len() <= pools {
            return true;
        }
        let rank = servers.list[..srv as usize].iter().filter(|v| v.up).count();
        rank < pools
    }

    /// A move could not be written to Redis.
    pub(super) fn cache_write_failed(&mut self, rec: &mut Recorder, room: u32, game: u32, now: SimTime) {
        self.tally.cache_writes_failed += 1;
        rec.count(now, |c| c.cache_writes_failed += 1);
        if let Some(c) = &mut self.cache {
            c.book.write_failed(room, game);
        }
    }

    /// A validated move goes to Redis (write-behind), or without a cache
    /// straight to the database as a one-row commit (`seams::move_to_storage`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn write_move(
        &mut self,
        ctx: &mut Ctx,
        usable: bool,
        (room, game, seq, ends): (u32, u32, u32, bool),
        s: &mut Scheduler<Event>,
    ) {
        let now = s.now();
        let rec = &mut ctx.rec;
        if let Some(k) = &ctx.sc.cache {
            self.tally.cache_writes += 1;
            rec.count(now, |c| c.cache_writes += 1);
            if !usable {
                self.cache_write_failed(rec, room, game, now);
                return;
            }
            self.tally.cache_writes_pending += 1;
            let op = self.cache_ops.insert(CacheOp::Write { room, game, seq, ends }) as u32;
            let net = ctx.net.delay(Link::Cache, now, k.network, Packet::Data);
            s.after(net, Event::Storage(StorageEvent::CacheArrive { op }));
        } else {
            // Write-through: one single-row commit per move.
            let batch = self.flusher.make(vec![(room, 1)], false);
            self.db_write_op(ctx, vec![room_key(room)], 1, 1, false, DbCaller::Flush { batch }, s);
        }
    }
    /// Reads `rows` rows of `key` (see the module docs); the answer goes to
    /// `caller` through `World::db_done`.
    pub(super) fn db_read(&mut self, ctx: &mut Ctx, key: u64, rows: u32, caller: DbCaller, s: &mut Scheduler<Event>) {
        let op = self.db_ops.insert(DbOp {
            caller,
            kind: DbKind::Read { key, rows },
            ok: false,
            stale: false,
        }) as u32;
        let net = ctx.sc.database.as_ref().map_or(SimDuration::ZERO, |d| d.network);
        let net = ctx.net.delay(Link::Database, s.now(), net, Packet::Data);
        s.after(net, Event::Storage(StorageEvent::DbArrive { op }));
    }

    /// One commit of `rows` rows writing `keys` (cost `write_cost`); the
    /// answer goes to `caller` through `World::db_done`.
    pub(super) fn db_write(
        &mut self,
        ctx: &mut Ctx,
        keys: Vec<u64>,
        rows: u32,
        caller: DbCaller,
        s: &mut Scheduler<Event>,
    ) {
        self.db_write_op(ctx, keys, rows, 0, false, caller, s);
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn db_write_op(
        &mut self,
        ctx: &mut Ctx,
        keys: Vec<u64>,
        rows: u32,
        moves: u32,
        bulk: bool,
        caller: DbCaller,
        s: &mut Scheduler<Event>,
    ) {
        let op = self.db_ops.insert(DbOp {
            caller,
            kind: DbKind::Write {
                keys,
                rows,
                moves,
                bulk,
            },
            ok: false,
            stale: false,
        }) as u32;
        let net = ctx.sc.database.as_ref().map_or(SimDuration::ZERO, |d| d.network);
        let net = ctx.net.delay(Link::Database, s.now(), net, Packet::Data);
        s.after(net, Event::Storage(StorageEvent::DbArrive { op }));
    }
}

impl DbTier {
    pub(super) fn replica_nodes(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.nodes.len()).filter(|&i| self.nodes[i].role == Role::Replica)
    }

    /// The running primary, if any.
    pub(super) fn live_primary(&self) -> Option<usize> {
        self.primary.filter(|&p| self.nodes[p].up)
    }

    /// Drops binlog entries every replica has received (keeping those
    /// still waiting for a semi-sync ack).
    pub(super) fn purge(&mut self) {
        let mut keep_after = self
            .replica_nodes()
            .map(|i| self.nodes[i].progress.received_seq)
            .min()
            .unwrap_or(u64::MAX);
        if let Some(&w) = self.waiting_ack.front() {
            keep_after = keep_after.min(w - 1);
        }
        self.binlog.purge_through(keep_after.min(self.binlog.head()));
    }
}

impl World<'_> {
    // -----------------------------------------------------------------
    // Hooks called from the rest of the simulation

    /// Schedules the storage tier's first events: flush and fsync ticks,
    /// its faults, samples, and a marker at each socket-server crash.
    pub(super) fn storage_prime(&mut self, s: &mut Scheduler<Event>) {
        let sc = self.ctx.sc;
        if !self.storage.is_on() {
            return;
        }
        if let Some(k) = &sc.cache {
            if let Flush::Interval { interval } = k.flush {
                s.at(SimTime::ZERO + interval, Event::Storage(StorageEvent::FlushTick));
            }
            if k.appendfsync == AppendFsync::Everysec {
                s.at(
                    SimTime::ZERO + SimDuration::from_secs(1),
                    Event::Storage(StorageEvent::FsyncTick),
                );
            }
        }
        for (i, f) in sc.faults.iter().enumerate() {
            let fault = i as u16;
            // Socket-server crashes and stops call `storage_server_crashed`
            // themselves (`sim::crash`).
            match f {
                Fault::CacheCrash { at, .. } => {
                    s.at(SimTime::ZERO + *at, Event::Storage(StorageEvent::CacheCrash { fault }))
                }
                Fault::DbCrash { at, .. } => s.at(SimTime::ZERO + *at, Event::Storage(StorageEvent::DbCrash { fault })),
                _ => {}
            }
        }
        s.at(SimTime::ZERO + sc.sample_interval, Event::Storage(StorageEvent::Sample));
    }

    pub(super) fn storage_event(&mut self, e: StorageEvent, s: &mut Scheduler<Event>) {
        match e {
            StorageEvent::CacheArrive { op } => self.cache_arrive(op, s),
            StorageEvent::CacheDone { epoch, id } => self.cache_done(epoch, id, s),
            StorageEvent::CacheReply { op } => self.cache_reply(op, s),
            StorageEvent::FlushTick => self.storage.flush_tick(&mut self.ctx, s),
            StorageEvent::FlushRoom { room } => self.storage.flush_room_timer(&mut self.ctx, room, s),
            StorageEvent::FsyncTick => {
                if let Some(c) = &mut self.storage.cache
                    && c.station.is_up()
                {
                    c.book.fsync();
                }
                let next = s.now() + SimDuration::from_secs(1);
                if next <= self.ctx.end {
                    s.at(next, Event::Storage(StorageEvent::FsyncTick));
                }
            }
            StorageEvent::CacheCrash { fault } => self.storage.cache_crash(&mut self.ctx, fault, s),
            StorageEvent::CacheRestart => self.storage.cache_restart(&mut self.ctx, s),
            StorageEvent::DbArrive { op } => self.storage.db_arrive(&mut self.ctx, op, s),
            StorageEvent::DbDone {
                node,
                station,
                epoch,
                id,
            } => self
                .storage
                .db_station_done(&mut self.ctx, node as usize, station, epoch, id, s),
            StorageEvent::DbReply { op } => self.db_reply(op, s),
            StorageEvent::BinlogArrive { term } => self.storage.binlog_arrive(&mut self.ctx, term, s),
            StorageEvent::SemiSyncAck { term } => self.storage.semi_sync_ack(&mut self.ctx, term, s),
            StorageEvent::SemiSyncTimeout { term } => self.storage.semi_sync_timeout(&mut self.ctx, term, s),
            StorageEvent::DbCrash { fault } => self.storage.db_crash(&mut self.ctx, fault, s),
            StorageEvent::DbRestart { node } => self.storage.db_restart(&mut self.ctx, node as usize, s),
            StorageEvent::Failover { term } => self.storage.failover(&mut self.ctx, term, s),
            StorageEvent::ReplicaPull { node } => {
                let n = node as usize;
                let Some(db) = &mut self.storage.db else { return };
                if db.nodes[n].up && db.nodes[n].role == Role::Replica {
                    db.nodes[n].catching_up = false;
                    self.storage.replica_pull(&mut self.ctx, n, s);
                }
            }
            StorageEvent::Sample => self.storage.storage_sample(&mut self.ctx, s),
            StorageEvent::ServerCrashed { server } => self.storage_server_crashed(server, s),
        }
    }

    /// Called by `accept` before a member joins its room on `srv`: returns
    /// true if the accept must first wait for the room's history (it is
    /// then called again when the history is back).
    pub(super) fn rehydration_pending(&mut self, c: u32, srv: u32, s: &mut Scheduler<Event>) -> bool {
        let sc = self.ctx.sc;
        if !self.storage.is_on() {
            return false;
        }
        let generation = self.clients.list[c as usize].generation;
        if let Some(r) = self.storage.rehydrating.get(&c)
            && r.generation == generation
            && r.done
        {
            self.storage.rehydrating.remove(&c);
            return false;
        }
        let ri = self.clients.list[c as usize].room_idx;
        if ri == NONE {
            return false;
        }
        let room = &self.game.rooms[ri as usize];
        if !room.active || room.moves_made == 0 || !room.members_on(srv).is_empty() {
            return false;
        }
        let moves = room.moves_made;
        let now = s.now();
        let from_cache = match &self.storage.cache {
            Some(k) => k.station.is_up() && Storage::cache_usable(self.ctx.sc, &self.servers, srv),
            None => false,
        };
        if !from_cache && self.storage.db.is_none() {
            return false;
        }
        self.storage.rehydrating.insert(
            c,
            Rehydration {
                generation,
                server: srv,
                epoch: self.servers.list[srv as usize].epoch(),
                started: now,
                done: false,
            },
        );
        if from_cache {
            let op = self.storage.cache_ops.insert(CacheOp::Read {
                client: c,
                generation,
                hit: false,
            }) as u32;
            let net = sc.cache.as_ref().map_or(SimDuration::ZERO, |k| k.network);
            s.after(
                self.ctx.net.delay(Link::Cache, s.now(), net, Packet::Data),
                Event::Storage(StorageEvent::CacheArrive { op }),
            );
        } else {
            self.storage.db_read(
                &mut self.ctx,
                room_key(ri),
                moves,
                DbCaller::Rehydrate { client: c, generation },
                s,
            );
        }
        true
    }

    /// A socket server crashed: record the moves at risk, and fail the
    /// accepts waiting there for a room's history as the crash failed the
    /// accepts on its cores.
    pub(super) fn storage_server_crashed(&mut self, srv: u32, s: &mut Scheduler<Event>) {
        let now = s.now();
        self.storage.note_at_risk(&mut self.ctx, now, format!("server-{srv}"));
        let waiting: Vec<(u32, u32)> = self
            .storage
            .rehydrating
            .iter()
            .filter(|(_, r)| r.server == srv && !r.done)
            .map(|(&c, r)| (c, r.generation))
            .collect();
        let mut waiting = waiting;
        waiting.sort_unstable();
        for (client, generation) in waiting {
            self.storage.rehydrating.remove(&client);
            if self.live(client, generation) {
                let delay = self.failure_delay(srv);
                s.after(delay, Event::Clients(ClientEvent::BackendFailed { client, generation }));
            }
        }
    }

    // -----------------------------------------------------------------
    // Redis

    pub(super) fn cache_cost(&mut self, op: u32) -> SimDuration {
        let sc = self.ctx.sc;
        let Some(k) = &sc.cache else {
            return SimDuration::ZERO;
        };
        let base = k.op_cost.sample(&mut self.storage.rng);
        match self.storage.cache_ops[op as usize] {
            CacheOp::Write { .. } => base,
            CacheOp::Read { client, .. } => {
                let r = self.clients.list[client as usize].room_idx;
                let moves = if r == NONE {
                    0
                } else {
                    self.game.rooms[r as usize].moves_made
                };
                base + k.per_move_cost.saturating_mul(moves as u64)
            }
        }
    }

    pub(super) fn cache_arrive(&mut self, op: u32, s: &mut Scheduler<Event>) {
        let now = s.now();
        let Some(c) = &mut self.storage.cache else { return };
        match c.station.arrive(now, op) {
            Admit::Started(id) => {
                let epoch = c.station.epoch();
                let d = self.cache_cost(op);
                s.after(d, Event::Storage(StorageEvent::CacheDone { epoch, id }));
            }
            Admit::Queued => {}
            Admit::Rejected(op) => self.storage.cache_op_failed(&mut self.ctx, op, s),
        }
    }

    pub(super) fn cache_done(&mut self, epoch: u32, id: u32, s: &mut Scheduler<Event>) {
        let sc = self.ctx.sc;
        let now = s.now();
        let Some(c) = &mut self.storage.cache else { return };
        let Some(op) = c.station.complete(now, epoch, id) else {
            return;
        };
        if let Some((id, &next)) = c.station.next(now) {
            let epoch = c.station.epoch();
            let d = self.cache_cost(next);
            s.after(d, Event::Storage(StorageEvent::CacheDone { epoch, id }));
        }
        match self.storage.cache_ops[op as usize] {
            CacheOp::Write { room, game, seq, ends } => {
                self.storage.cache_ops.remove(op as usize);
                self.storage.tally.cache_writes_pending -= 1;
                let Some(c) = &mut self.storage.cache else { return };
                c.book.store(room, game, seq, now);
                if let Some(Flush::Lichess { after_last_move }) = sc.cache.as_ref().map(|k| &k.flush) {
                    let after = *after_last_move;
                    if ends {
                        self.storage.flush_room(&mut self.ctx, room, s);
                    } else {
                        let rc = c.book.room(room);
                        if !rc.timer {
                            rc.timer = true;
                            s.after(after, Event::Storage(StorageEvent::FlushRoom { room }));
                        }
                    }
                }
            }
            CacheOp::Read { client, generation, .. } => {
                let r = self.clients.list[client as usize].room_idx;
                let Some(c) = &self.storage.cache else { return };
                let hit = r != NONE && c.book.holds(r, self.game.rooms[r as usize].game);
                self.storage.cache_ops[op as usize] = CacheOp::Read {
                    client,
                    generation,
                    hit,
                };
                let net = sc.cache.as_ref().map_or(SimDuration::ZERO, |k| k.network);
                s.after(
                    self.ctx.net.delay(Link::Cache, s.now(), net, Packet::Data),
                    Event::Storage(StorageEvent::CacheReply { op }),
                );
            }
        }
    }

    /// A rehydration read's answer is back: a hit resumes the accept, a
    /// miss asks the database.
    pub(super) fn cache_reply(&mut self, op: u32, s: &mut Scheduler<Event>) {
        let CacheOp::Read {
            client,
            generation,
            hit,
        } = self.storage.cache_ops.remove(op as usize)
        else {
            return;
        };
        if !self.storage.rehydration_live(client, generation) {
            return;
        }
        if hit {
            self.rehydrated(client, Source::Cache, s);
            return;
        }
        let r = self.clients.list[client as usize].room_idx;
        if self.storage.db.is_some() && r != NONE {
            let moves = self.game.rooms[r as usize].moves_made;
            self.storage.db_read(
                &mut self.ctx,
                room_key(r),
                moves,
                DbCaller::Rehydrate { client, generation },
                s,
            );
        } else {
            self.rehydrated(client, Source::Failed, s);
        }
    }

    // -----------------------------------------------------------------
    // Rehydration

    /// The room's history is back (or could not be read): the accept goes
    /// on, unless the server died meanwhile.
    fn rehydrated(&mut self, client: u32, source: Source, s: &mut Scheduler<Event>) {
        let now = s.now();
        let Some(r) = self.storage.rehydrating.get_mut(&client) else {
            return;
        };
        r.done = true;
        let (generation, srv, epoch, started) = (r.generation, r.server, r.epoch, r.started);
        self.ctx.rec.latency(now, |r| &mut r.rehydration, now.since(started).0);
        self.ctx.rec.count(now, |k| match source {
            Source::Cache => k.rehydrations_cache += 1,
            Source::Db => k.rehydrations_db += 1,
            Source::Failed => k.rehydrations_failed += 1,
        });
        if !self.live(client, generation) {
            self.storage.rehydrating.remove(&client);
            return;
        }
        let sv = &self.servers.list[srv as usize];
        if !sv.up || sv.epoch() != epoch {
            self.storage.rehydrating.remove(&client);
            let delay = self.failure_delay(srv);
            s.after(delay, Event::Clients(ClientEvent::BackendFailed { client, generation }));
            return;
        }
        self.accept(client, srv, s);
    }

    // -----------------------------------------------------------------
    // Database: the API

    /// A database answer reached its caller.
    /// `ok`: the op succeeded; `stale`: a read served by a replica that had
    /// not applied the key's latest commit.
    pub(super) fn db_done(&mut self, caller: DbCaller, ok: bool, stale: bool, s: &mut Scheduler<Event>) {
        let now = s.now();
        match caller {
            DbCaller::Flush { batch } => {
                if ok {
                    let b = self.storage.flusher.committed(batch);
                    let n = b.moves as u64;
                    self.ctx.rec.count(now, |k| k.moves_flushed += n);
                } else {
                    self.storage.flusher.failed(batch);
                    if self.storage.db.as_ref().is_some_and(|d| d.live_primary().is_some()) {
                        self.storage.retry_batches(&mut self.ctx, s);
                    }
                }
            }
            DbCaller::Rehydrate { client, generation } => {
                // A stale history is still used (and counted when read).
                let _ = stale;
                if self.storage.rehydration_live(client, generation) {
                    let source = if ok { Source::Db } else { Source::Failed };
                    self.rehydrated(client, source, s);
                }
            }
            DbCaller::Web { req } => {
                super::seams::web_db_done(&mut self.web, &mut self.storage, &mut self.ctx, req, ok, s)
            }
        }
    }
}

impl Storage {
    /// Sends the failed flush batches again (a primary is available).
    pub(super) fn retry_batches(&mut self, ctx: &mut Ctx, s: &mut Scheduler<Event>) {
        for batch in self.flusher.take_retries() {
            let b = self.flusher.get(batch);
            let keys: Vec<u64> = b.rooms.iter().map(|&(r, _)| room_key(r)).collect();
            let (moves, bulk) = (b.moves, b.bulk);
            self.db_write_op(ctx, keys, moves, moves, bulk, DbCaller::Flush { batch }, s);
        }
    }

    // -----------------------------------------------------------------
    // Database: nodes

    pub(super) fn db_fail(&mut self, ctx: &mut Ctx, op: u32, s: &mut Scheduler<Event>) {
        let sc = ctx.sc;
        let now = s.now();
        let o = &mut self.db_ops[op as usize];
        o.ok = false;
        let read = matches!(o.kind, DbKind::Read { .. });
        ctx.rec.count(now, |k| {
            if read {
                k.db_reads_failed += 1
            } else {
                k.db_writes_failed += 1
            }
        });
        let net = sc.database.as_ref().map_or(SimDuration::ZERO, |d| d.network);
        s.after(
            ctx.net.delay(Link::Database, s.now(), net, Packet::Data),
            Event::Storage(StorageEvent::DbReply { op }),
        );
    }

    pub(super) fn db_arrive(&mut self, ctx: &mut Ctx, op: u32, s: &mut Scheduler<Event>) {
        let sc = ctx.sc;
        let Some(d) = &sc.database else { return };
        let Some(db) = &mut self.db else { return };
        let target = match self.db_ops[op as usize].kind {
            DbKind::Write { .. } => db.live_primary().map(|p| (p, CPU)),
            DbKind::Read { .. } => {
                let replica = match d.reads_from {
                    ReadsFrom::Primary => None,
                    ReadsFrom::Replicas => {
                        let n = db.nodes.len();
                        let pick = (0..n)
                            .map(|k| (db.next_read + k) % n)
                            .find(|&i| db.nodes[i].role == Role::Replica && db.nodes[i].up);
                        if let Some(i) = pick {
                            db.next_read = (i + 1) % n;
                        }
                        pick
                    }
                };
                replica
                    .map(|i| (i, READS))
                    .or_else(|| db.live_primary().map(|p| (p, CPU)))
            }
        };
        match target {
            Some((node, which)) => self.db_enqueue(ctx, node, which, op, s),
            None => self.db_fail(ctx, op, s),
        }
    }

    pub(super) fn db_enqueue(&mut self, ctx: &mut Ctx, node: usize, which: u8, op: u32, s: &mut Scheduler<Event>) {
        let now = s.now();
        let Some(db) = &mut self.db else { return };
        let n = &mut db.nodes[node];
        let st = if which == CPU { &mut n.cpu } else { &mut n.reads };
        match st.arrive(now, op) {
            Admit::Started(id) => {
                let epoch = st.epoch();
                let d = self.db_op_cost(ctx, op);
                s.after(d, db_done_event(node, which, epoch, id));
            }
            Admit::Queued => {}
            Admit::Rejected(op) => self.db_fail(ctx, op, s),
        }
    }

    pub(super) fn db_op_cost(&mut self, ctx: &mut Ctx, op: u32) -> SimDuration {
        let sc = ctx.sc;
        let Some(d) = &sc.database else {
            return SimDuration::ZERO;
        };
        let rng = &mut self.rng;
        match &self.db_ops[op as usize].kind {
            DbKind::Read { rows, .. } => d.read_cost.sample(rng) + d.read_per_row.saturating_mul(*rows as u64),
            DbKind::Write { rows, bulk: true, .. } => {
                d.batch_base.sample(rng) + d.batch_per_row.saturating_mul(*rows as u64)
            }
            DbKind::Write { bulk: false, .. } => d.write_cost.sample(rng),
        }
    }

    pub(super) fn apply_cost(&self, ctx: &Ctx, rows: u32) -> SimDuration {
        let sc = ctx.sc;
        let rate = sc.database.as_ref().map_or(1.0, |d| d.apply_rate.per_s);
        SimDuration::from_secs_f64(rows as f64 / rate)
    }

    pub(super) fn db_station_done(
        &mut self,
        ctx: &mut Ctx,
        node: usize,
        which: u8,
        epoch: u32,
        id: u32,
        s: &mut Scheduler<Event>,
    ) {
        let sc = ctx.sc;
        let now = s.now();
        let Some(db) = &mut self.db else { return };
        let n = &mut db.nodes[node];
        if which == APPLY {
            let Some((seq, _rows)) = n.apply.complete(now, epoch, id) else {
                return;
            };
            n.progress.applied(seq);
            if let Some((id, &(_, rows))) = n.apply.next(now) {
                let epoch = n.apply.epoch();
                let d = self.apply_cost(ctx, rows);
                s.after(d, db_done_event(node, APPLY, epoch, id));
            }
            let Some(db) = &mut self.db else { return };
            if db.promoting == Some(node) && db.nodes[node].progress.caught_up() {
                self.promote(ctx, node, s);
            }
            return;
        }
        let st = if which == CPU { &mut n.cpu } else { &mut n.reads };
        let Some(op) = st.complete(now, epoch, id) else {
            return;
        };
        if let Some((id, &next)) = st.next(now) {
            let epoch = st.epoch();
            let d = self.db_op_cost(ctx, next);
            s.after(d, db_done_event(node, which, epoch, id));
        }
        let net = sc.database.as_ref().map_or(SimDuration::ZERO, |d| d.network);
        let Some(db) = &mut self.db else { return };
        let o = &mut self.db_ops[op as usize];
        match &mut o.kind {
            DbKind::Read { key, .. } => {
                let stale = which == READS && db.keys.is_stale(*key, db.nodes[node].progress.applied_seq);
                o.ok = true;
                o.stale = stale;
                ctx.rec.count(now, |k| {
                    k.db_reads += 1;
                    k.stale_reads += stale as u64;
                });
                s.after(
                    ctx.net.delay(Link::Database, s.now(), net, Packet::Data),
                    Event::Storage(StorageEvent::DbReply { op }),
                );
            }
            DbKind::Write { .. } => self.commit(ctx, op, s),
        }
    }

    /// A write finished on the primary: it is committed, gets a binlog
    /// position, and is shipped to the replicas.
    pub(super) fn commit(&mut self, ctx: &mut Ctx, op: u32, s: &mut Scheduler<Event>) {
        let sc = ctx.sc;
        let now = s.now();
        let Some(d) = &sc.database else { return };
        let Some(db) = &mut self.db else { return };
        let DbKind::Write { keys, rows, moves, .. } = &mut self.db_ops[op as usize].kind else {
            return;
        };
        let (rows, moves) = (*rows, *moves);
        let keys = std::mem::take(keys);
        let has_replicas = db.replica_nodes().next().is_some();
        let wait_ack = db.semi_sync_on && has_replicas;
        let seq = db.binlog.append(now, rows, moves, !wait_ack, keys);
        if let Some(e) = db.binlog.get_mut(seq) {
            for &k in &e.keys {
                db.keys.write(k, seq);
            }
            if wait_ack {
                e.waiting_op = op;
            }
        }
        db.interval_commits += 1;
        db.interval_rows += rows as u64;
        ctx.rec.count(now, |k| {
            k.db_commits += 1;
            k.db_commit_rows += rows as u64;
        });
        let term = db.term;
        if has_replicas {
            s.after(
                ctx.net.delay(Link::Database, now, d.ship_delay, Packet::Data),
                Event::Storage(StorageEvent::BinlogArrive { term }),
            );
        }
        if wait_ack {
            db.waiting_ack.push_back(seq);
            s.after(
                d.semi_sync_timeout,
                Event::Storage(StorageEvent::SemiSyncTimeout { term }),
            );
        } else {
            if !has_replicas {
                db.binlog.purge_through(seq);
            }
            self.db_ops[op as usize].ok = true;
            s.after(
                ctx.net.delay(Link::Database, s.now(), d.network, Packet::Data),
                Event::Storage(StorageEvent::DbReply { op }),
            );
        }
    }

    pub(super) fn binlog_arrive(&mut self, ctx: &mut Ctx, term: u32, s: &mut Scheduler<Event>) {
        let sc = ctx.sc;
        let Some(db) = &self.db else { return };
        if term != db.term {
            // Shipped by a primary that crashed since: lost on the way.
            return;
        }
        let nodes: Vec<usize> = db
            .replica_nodes()
            .filter(|&i| db.nodes[i].up && !db.nodes[i].catching_up)
            .collect();
        for n in nodes {
            self.replica_pull(ctx, n, s);
        }
        let Some(d) = &sc.database else { return };
        let Some(db) = &self.db else { return };
        if !db.waiting_ack.is_empty() {
            s.after(
                ctx.net.delay(Link::Database, s.now(), d.ship_delay, Packet::Data),
                Event::Storage(StorageEvent::SemiSyncAck { term }),
            );
        }
    }

    /// Replica `n` receives every commit that has had time to reach it
    /// since its last one, and queues them on its applier threads.
    pub(super) fn replica_pull(&mut self, ctx: &mut Ctx, n: usize, s: &mut Scheduler<Event>) {
        let sc = ctx.sc;
        let now = s.now();
        let Some(d) = &sc.database else { return };
        let (ship, configured) = (d.ship_delay, d.semi_sync);
        let Some(db) = &mut self.db else { return };
        let from = db.nodes[n].progress.received_seq;
        let new: Vec<(u64, u32)> = db
            .binlog
            .after(from)
            .take_while(|e| e.committed_at + ship <= now)
            .map(|e| (e.seq, e.rows))
            .collect();
        for (seq, rows) in new {
            let node = &mut db.nodes[n];
            node.progress.receive(seq, rows);
            if let Admit::Started(id) = node.apply.arrive(now, (seq, rows)) {
                let epoch = node.apply.epoch();
                let rate = d.apply_rate.per_s;
                s.after(
                    SimDuration::from_secs_f64(rows as f64 / rate),
                    db_done_event(n, APPLY, epoch, id),
                );
            }
        }
        if configured
            && !db.semi_sync_on
            && db.primary.is_some()
            && db.nodes[n].progress.received_seq >= db.binlog.head()
        {
            db.semi_sync_on = true;
            ctx.rec.event(
                now,
                db_node_name(n),
                Happening::SemiSyncOn,
                "a replica caught up: commits wait for its ack again".into(),
            );
        }
        if let Some(db) = &mut self.db {
            db.purge();
        }
    }

    /// Acks of replicas that received commits `ship_delay` ago.
    pub(super) fn semi_sync_ack(&mut self, ctx: &mut Ctx, term: u32, s: &mut Scheduler<Event>) {
        let sc = ctx.sc;
        let now = s.now();
        let Some(d) = &sc.database else { return };
        let Some(db) = &mut self.db else { return };
        if term != db.term || db.live_primary().is_none() {
            return;
        }
        let received = db
            .replica_nodes()
            .filter(|&i| db.nodes[i].up)
            .map(|i| db.nodes[i].progress.received_seq)
            .max()
            .unwrap_or(0);
        let round_trip = SimDuration(2 * d.ship_delay.0);
        while let Some(&seq) = db.waiting_ack.front() {
            let Some(e) = db.binlog.get_mut(seq) else {
                db.waiting_ack.pop_front();
                continue;
            };
            if seq > received || e.committed_at + round_trip > now {
                break;
            }
            db.waiting_ack.pop_front();
            if !e.acked {
                e.acked = true;
                let op = std::mem::replace(&mut e.waiting_op, u32::MAX);
                if op != u32::MAX {
                    self.db_ops[op as usize].ok = true;
                    s.after(
                        ctx.net.delay(Link::Database, s.now(), d.network, Packet::Data),
                        Event::Storage(StorageEvent::DbReply { op }),
                    );
                }
            }
        }
        db.purge();
    }

    /// No ack within `semi_sync_timeout`: fall back to asynchronous
    /// replication and release every waiting commit.
    pub(super) fn semi_sync_timeout(&mut self, ctx: &mut Ctx, term: u32, s: &mut Scheduler<Event>) {
        let sc = ctx.sc;
        let now = s.now();
        let Some(d) = &sc.database else { return };
        let Some(db) = &mut self.db else { return };
        if term != db.term || db.live_primary().is_none() {
            return;
        }
        let Some(&seq) = db.waiting_ack.front() else { return };
        let Some(e) = db.binlog.get_mut(seq) else { return };
        if e.committed_at + d.semi_sync_timeout > now {
            return;
        }
        db.semi_sync_on = false;
        let n = db.waiting_ack.len();
        for seq in std::mem::take(&mut db.waiting_ack) {
            if let Some(e) = db.binlog.get_mut(seq) {
                e.acked = true;
                let op = std::mem::replace(&mut e.waiting_op, u32::MAX);
                if op != u32::MAX {
                    self.db_ops[op as usize].ok = true;
                    s.after(
                        ctx.net.delay(Link::Database, s.now(), d.network, Packet::Data),
                        Event::Storage(StorageEvent::DbReply { op }),
                    );
                }
            }
        }
        db.purge();
        let p = db.primary.unwrap_or(0);
        ctx.rec.event(
            now,
            db_node_name(p),
            Happening::SemiSyncOff,
            format!(
                "no replica ack within {}: asynchronous replication, {n} waiting commits released",
                d.semi_sync_timeout
            ),
        );
    }

    pub(super) fn db_crash(&mut self, ctx: &mut Ctx, fault: u16, s: &mut Scheduler<Event>) {
        let sc = ctx.sc;
        let now = s.now();
        let Fault::DbCrash {
            target, restart_after, ..
        } = sc.faults[fault as usize]
        else {
            return;
        };
        let Some(d) = &sc.database else { return };
        let Some(db) = &mut self.db else { return };
        let node = match target {
            DbTarget::Primary => match db.primary {
                Some(p) => p,
                None => {
                    ctx.rec.event(
                        now,
                        "db".into(),
                        Happening::NoPrimary,
                        "a primary crash was scheduled but there is no primary".into(),
                    );
                    return;
                }
            },
            DbTarget::Replica(i) => i as usize + 1,
        };
        if !db.nodes[node].up {
            return;
        }
        let n = &mut db.nodes[node];
        n.up = false;
        let mut failed = n.cpu.crash(now);
        failed.extend(n.reads.crash(now));
        // The relay log survives: unapplied commits are queued again at
        // the restart from `progress`.
        n.apply.crash(now);
        let was_primary = db.primary == Some(node);
        let mut detail = String::new();
        if was_primary {
            db.term = db.term.wrapping_add(1);
            db.crashed_at = now;
            // Commits waiting for a semi-sync ack are never acknowledged.
            for seq in std::mem::take(&mut db.waiting_ack) {
                if let Some(e) = db.binlog.get_mut(seq) {
                    let op = std::mem::replace(&mut e.waiting_op, u32::MAX);
                    if op != u32::MAX {
                        failed.push(op);
                    }
                }
            }
            let shipped = db
                .replica_nodes()
                .filter(|&i| db.nodes[i].up)
                .map(|i| db.nodes[i].progress.received_seq)
                .max();
            let unshipped = match shipped {
                Some(r) => db.binlog.after(r).count(),
                None => 0,
            };
            detail = format!(
                "primary crash: {unshipped} commits not yet on any running replica; failover in {}",
                d.failover_detection
            );
            if db.replica_nodes().next().is_some() {
                let term = db.term;
                s.after(d.failover_detection, Event::Storage(StorageEvent::Failover { term }));
            } else {
                detail = "primary crash: no replica to promote, writes fail until it restarts".into();
            }
        } else if db.promoting == Some(node) {
            db.promoting = None;
        }
        if !was_primary {
            detail = format!("replica crash: {} commits in its relay log", n_backlog(db, node));
        }
        failed.sort_unstable();
        for op in failed {
            self.db_fail(ctx, op, s);
        }
        ctx.rec.event(now, db_node_name(node), Happening::Crash, detail);
        if let Some(d) = restart_after {
            s.after(d, Event::Storage(StorageEvent::DbRestart { node: node as u16 }));
        }
        // A replica that was about to be promoted died: pick another.
        if let Some(db) = &self.db
            && db.primary.is_some_and(|p| !db.nodes[p].up)
            && db.promoting.is_none()
            && !was_primary
            && now >= db.crashed_at + sc.database.as_ref().map_or(SimDuration::ZERO, |d| d.failover_detection)
        {
            let term = db.term;
            self.failover(ctx, term, s);
        }
    }

    /// Failure detection is over: choose the running replica that received
    /// the most binlog; it is promoted once it has applied its relay log.
    pub(super) fn failover(&mut self, ctx: &mut Ctx, term: u32, s: &mut Scheduler<Event>) {
        let now = s.now();
        let Some(db) = &mut self.db else { return };
        if term != db.term || db.live_primary().is_some() || db.promoting.is_some() {
            return;
        }
        let best = db
            .replica_nodes()
            .filter(|&i| db.nodes[i].up)
            .max_by_key(|&i| (db.nodes[i].progress.received_seq, std::cmp::Reverse(i)));
        let Some(c) = best else {
            ctx.rec.event(
                now,
                "db".into(),
                Happening::FailoverFailed,
                "no running replica to promote: writes fail until a node restarts".into(),
            );
            return;
        };
        db.promoting = Some(c);
        if db.nodes[c].progress.caught_up() {
            self.promote(ctx, c, s);
        }
    }

    /// Replica `c` becomes the primary. Commits it never received are lost.
    pub(super) fn promote(&mut self, ctx: &mut Ctx, c: usize, s: &mut Scheduler<Event>) {
        let sc = ctx.sc;
        let now = s.now();
        let Some(d) = &sc.database else { return };
        let Some(db) = &mut self.db else { return };
        let survivor = db.nodes[c].progress.received_seq;
        let lost: Vec<BinlogEntry> = db.binlog.truncate_after(survivor);
        db.keys.rewind(&lost, survivor);
        let acked: Vec<&BinlogEntry> = lost.iter().filter(|e| e.acked).collect();
        let (commits, moves) = (acked.len() as u64, acked.iter().map(|e| e.moves as u64).sum::<u64>());
        let unacked = lost.len() as u64 - commits;
        self.tally.commits_lost += commits;
        self.tally.moves_lost_db += moves;
        ctx.rec.count(now, |k| {
            k.commits_lost += commits;
            k.moves_lost_db += moves;
        });
        // The old primary, and any (stopped) replica that had received
        // commits now lost, hold transactions the new primary lacks: they
        // rejoin only re-cloned, when they restart.
        for n in &mut db.nodes {
            if n.role == Role::Primary || (n.role == Role::Replica && n.progress.received_seq > survivor) {
                n.role = Role::Failed;
            }
        }
        db.nodes[c].role = Role::Primary;
        db.primary = Some(c);
        db.promoting = None;
        db.term = db.term.wrapping_add(1);
        db.semi_sync_on = d.semi_sync;
        let took = now.since(db.crashed_at);
        db.failovers_s.push(took.as_secs_f64());
        let others: Vec<usize> = db.replica_nodes().filter(|&i| db.nodes[i].up).collect();
        for i in others {
            db.nodes[i].catching_up = true;
            s.after(
                d.ship_delay,
                Event::Storage(StorageEvent::ReplicaPull { node: i as u16 }),
            );
        }
        db.purge();
        ctx.rec.event(
            now,
            db_node_name(c),
            Happening::Promoted,
            format!(
                "promoted to primary {:.3} s after the crash: {commits} acknowledged commits ({moves} moves) lost{}",
                took.as_secs_f64(),
                if unacked > 0 {
                    format!(", {unacked} unacknowledged ones rolled back")
                } else {
                    String::new()
                }
            ),
        );
        self.retry_batches(ctx, s);
    }

    pub(super) fn db_restart(&mut self, ctx: &mut Ctx, node: usize, s: &mut Scheduler<Event>) {
        let sc = ctx.sc;
        let now = s.now();
        let Some(d) = &sc.database else { return };
        let Some(db) = &mut self.db else { return };
        if db.nodes[node].up {
            return;
        }
        let n = &mut db.nodes[node];
        n.up = true;
        n.cpu.restart(now);
        n.reads.restart(now);
        n.apply.restart(now);
        let detail = match n.role {
            Role::Primary => {
                // Back before any promotion: crash recovery keeps every
                // commit (the binlog is durable); replicas fetch what they
                // missed.
                db.term = db.term.wrapping_add(1);
                db.promoting = None;
                db.semi_sync_on = d.semi_sync;
                let replicas: Vec<usize> = db.replica_nodes().filter(|&i| db.nodes[i].up).collect();
                for i in replicas {
                    db.nodes[i].catching_up = true;
                    s.after(
                        d.ship_delay,
                        Event::Storage(StorageEvent::ReplicaPull { node: i as u16 }),
                    );
                }
                "primary back after crash recovery, before any failover: no commit lost"
            }
            Role::Failed => {
                // Replaced while down: rejoins as a fresh replica (re-cloned
                // from the new primary).
                n.role = Role::Replica;
                n.progress = Progress::at(db.binlog.head(), db.binlog.committed_rows);
                n.catching_up = false;
                "rejoined as a replica (re-cloned from the new primary)"
            }
            Role::Replica => {
                let todo: Vec<(u64, u32)> = n.progress.unapplied().collect();
                for item in todo {
                    if let Admit::Started(id) = n.apply.arrive(now, item) {
                        let epoch = n.apply.epoch();
                        s.after(
                            SimDuration::from_secs_f64(item.1 as f64 / d.apply_rate.per_s),
                            db_done_event(node, APPLY, epoch, id),
                        );
                    }
                }
                n.catching_up = true;
                s.after(
                    d.ship_delay,
                    Event::Storage(StorageEvent::ReplicaPull { node: node as u16 }),
                );
                "replica back: applies its relay log and fetches the binlog it missed"
            }
        };
        ctx.rec
            .event(now, db_node_name(node), Happening::Restarted, detail.into());
        let Some(db) = &self.db else { return };
        if db.live_primary().is_some() {
            self.retry_batches(ctx, s);
        } else if db.promoting.is_none() && now >= db.crashed_at + d.failover_detection {
            // The failover found no replica then: try again.
            let term = db.term;
            self.failover(ctx, term, s);
        }
    }

    // -----------------------------------------------------------------
    // Samples

    pub(super) fn storage_sample(&mut self, ctx: &mut Ctx, s: &mut Scheduler<Event>) {
        let sc = ctx.sc;
        let now = s.now();
        let since = self.last_sample;
        self.last_sample = now;
        let cache = self.cache.as_mut().map(|c| CacheSample {
            up: c.station.is_up(),
            backlog: c.station.len() as u64,
            unflushed: c.book.unflushed,
            util: c.station.utilisation_since_last(now, since),
        });
        let at_risk = self.moves_at_risk();
        if now >= SimTime::ZERO + sc.warmup {
            self.at_risk_max = self.at_risk_max.max(at_risk);
        }
        let mut sample = StorageSample {
            time: now,
            cache,
            moves_at_risk: at_risk,
            ..Default::default()
        };
        if let (Some(d), Some(db)) = (&sc.database, &mut self.db) {
            let capacity = d.applier_threads as f64 * d.apply_rate.per_s;
            let committed = db.binlog.committed_rows;
            sample.db_commits = std::mem::take(&mut db.interval_commits);
            sample.db_rows = std::mem::take(&mut db.interval_rows);
            sample.db_nodes = db
                .nodes
                .iter_mut()
                .map(|n| {
                    let util_cpu = n.cpu.utilisation_since_last(now, since);
                    let util_apply = n.apply.utilisation_since_last(now, since);
                    let read_util = n.reads.utilisation_since_last(now, since);
                    match (n.up, n.role) {
                        (false, _) | (_, Role::Failed) => DbNodeSample {
                            role: "down",
                            lag_s: (n.role == Role::Replica)
                                .then(|| lag_s(committed.saturating_sub(n.progress.applied_rows), capacity)),
                            apply_backlog: n.progress.backlog(),
                            util: 0.0,
                            read_util: 0.0,
                        },
                        (true, Role::Primary) => DbNodeSample {
                            role: "primary",
                            lag_s: None,
                            apply_backlog: 0,
                            util: util_cpu,
                            read_util: 0.0,
                        },
                        (true, Role::Replica) => DbNodeSample {
                            role: "replica",
                            lag_s: Some(lag_s(committed.saturating_sub(n.progress.applied_rows), capacity)),
                            apply_backlog: n.progress.backlog(),
                            util: util_apply,
                            read_util,
                        },
                    }
                })
                .collect();
        }
        ctx.rec.storage_samples.push(sample);
        let next = now + sc.sample_interval;
        if next <= ctx.end {
            s.at(next, Event::Storage(StorageEvent::Sample));
        }
    }
}

impl World<'_> {
    pub(super) fn db_reply(&mut self, op: u32, s: &mut Scheduler<Event>) {
        let o = self.storage.db_ops.remove(op as usize);
        self.db_done(o.caller, o.ok, o.stale, s);
    }
}

impl Storage {
    pub(super) fn note_at_risk(&mut self, ctx: &mut Ctx, now: SimTime, component: String) {
        let sc = ctx.sc;
        let n = self.moves_at_risk();
        ctx.rec.at_risk_at_fault(now, n);
        if now >= SimTime::ZERO + sc.warmup {
            self.at_risk_at_crash_max = self.at_risk_at_crash_max.max(n);
            self.at_risk_max = self.at_risk_max.max(n);
        }
        if self.cache.is_some() || self.flusher.in_batches > 0 {
            ctx.rec.event(
                now,
                component,
                Happening::MovesAtRisk,
                format!("{n} moves at risk (stored in Redis or in flush batches, not yet committed)"),
            );
        }
    }

    /// A cache op failed (Redis down or crashed under it).
    pub(super) fn cache_op_failed(&mut self, ctx: &mut Ctx, op: u32, s: &mut Scheduler<Event>) {
        let sc = ctx.sc;
        let now = s.now();
        match self.cache_ops[op as usize] {
            CacheOp::Write { room, game, .. } => {
                self.cache_ops.remove(op as usize);
                self.tally.cache_writes_pending -= 1;
                self.cache_write_failed(&mut ctx.rec, room, game, now);
            }
            CacheOp::Read { .. } => {
                // The server hears of it one trip later and asks the database.
                let net = sc.cache.as_ref().map_or(SimDuration::ZERO, |k| k.network);
                s.after(
                    ctx.net.delay(Link::Cache, s.now(), net, Packet::Data),
                    Event::Storage(StorageEvent::CacheReply { op }),
                );
            }
        }
    }

    pub(super) fn flush_tick(&mut self, ctx: &mut Ctx, s: &mut Scheduler<Event>) {
        let sc = ctx.sc;
        let Some(Flush::Interval { interval }) = sc.cache.as_ref().map(|k| &k.flush) else {
            return;
        };
        let next = s.now() + *interval;
        if let Some(c) = &mut self.cache
            && c.station.is_up()
        {
            let rooms = c.book.take_all();
            if !rooms.is_empty() {
                self.send_batch(ctx, rooms, s);
            }
        }
        if next <= ctx.end {
            s.at(next, Event::Storage(StorageEvent::FlushTick));
        }
    }

    /// Lichess policy: flush a room once `after_last_move` has passed since
    /// its last move.
    pub(super) fn flush_room_timer(&mut self, ctx: &mut Ctx, room: u32, s: &mut Scheduler<Event>) {
        let sc = ctx.sc;
        let now = s.now();
        let Some(Flush::Lichess { after_last_move }) = sc.cache.as_ref().map(|k| &k.flush) else {
            return;
        };
        let after = *after_last_move;
        let Some(c) = &mut self.cache else { return };
        let up = c.station.is_up();
        let rc = c.book.room(room);
        rc.timer = false;
        if !up {
            // Re-armed at the restart.
            return;
        }
        let due = rc.last_move_at + after;
        if now < due {
            rc.timer = true;
            s.at(due, Event::Storage(StorageEvent::FlushRoom { room }));
        } else {
            self.flush_room(ctx, room, s);
        }
    }

    pub(super) fn flush_room(&mut self, ctx: &mut Ctx, room: u32, s: &mut Scheduler<Event>) {
        let Some(c) = &mut self.cache else { return };
        let n = c.book.take_room(room);
        if n > 0 {
            self.send_batch(ctx, vec![(room, n)], s);
        }
    }

    /// A flush batch goes to the primary as one commit.
    pub(super) fn send_batch(&mut self, ctx: &mut Ctx, rooms: Vec<(u32, u32)>, s: &mut Scheduler<Event>) {
        let keys: Vec<u64> = rooms.iter().map(|&(r, _)| room_key(r)).collect();
        let batch = self.flusher.make(rooms, true);
        let moves = self.flusher.get(batch).moves;
        let now = s.now();
        ctx.rec.count(now, |c| c.flush_batches += 1);
        self.db_write_op(ctx, keys, moves, moves, true, DbCaller::Flush { batch }, s);
    }

    pub(super) fn cache_crash(&mut self, ctx: &mut Ctx, fault: u16, s: &mut Scheduler<Event>) {
        let sc = ctx.sc;
        let now = s.now();
        let Fault::CacheCrash { restart_after, .. } = sc.faults[fault as usize] else {
            return;
        };
        let Some(k) = &sc.cache else { return };
        let mode = k.appendfsync;
        if !self.cache.as_ref().is_some_and(|c| c.station.is_up()) {
            return;
        }
        self.note_at_risk(ctx, now, "cache".into());
        let Some(c) = &mut self.cache else { return };
        let at_risk = c.book.unflushed + self.flusher.in_batches;
        let lost = c.book.crash(mode);
        let ops = c.station.crash(now);
        let failed = ops.len();
        for op in ops {
            self.cache_op_failed(ctx, op, s);
        }
        ctx.rec.count(now, |k| k.moves_lost_cache += lost);
        let persist = match mode {
            AppendFsync::No => "appendfsync no: every unflushed move",
            AppendFsync::Everysec => "appendfsync everysec: the moves written since the last fsync",
        };
        ctx.rec.event(
            now,
            "cache".into(),
            Happening::Crash,
            format!("Redis crash: {lost} moves lost ({persist}) of {at_risk} at risk; {failed} queued ops failed"),
        );
        if let Some(d) = restart_after {
            s.after(d, Event::Storage(StorageEvent::CacheRestart));
        }
    }

    pub(super) fn cache_restart(&mut self, ctx: &mut Ctx, s: &mut Scheduler<Event>) {
        let sc = ctx.sc;
        let now = s.now();
        let Some(c) = &mut self.cache else { return };
        if c.station.is_up() {
            return;
        }
        c.station.restart(now);
        // Lichess: flush timers that lapsed while Redis was down run again.
        if matches!(sc.cache.as_ref().map(|k| &k.flush), Some(Flush::Lichess { .. })) {
            let mut rooms = c.book.dirty_rooms().to_vec();
            rooms.sort_unstable();
            for room in rooms {
                let rc = c.book.room(room);
                if !rc.timer {
                    rc.timer = true;
                    s.at(now, Event::Storage(StorageEvent::FlushRoom { room }));
                }
            }
        }
        ctx.rec.event(
            now,
            "cache".into(),
            Happening::Restarted,
            "Redis accepting again".into(),
        );
    }

    pub(super) fn rehydration_live(&self, client: u32, generation: u32) -> bool {
        self.rehydrating
            .get(&client)
            .is_some_and(|r| r.generation == generation && !r.done)
    }
}

fn n_backlog(db: &DbTier, node: usize) -> u64 {
    db.nodes[node].progress.backlog()
}

/// Where a rehydration's history came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Cache,
    Db,
    Failed,
}

fn db_done_event(node: usize, station: u8, epoch: u32, id: u32) -> Event {
    Event::Storage(StorageEvent::DbDone {
        node: node as u16,
        station,
        epoch,
        id,
    })
}

impl Tier for Storage {
    fn name(&self) -> &'static str {
        "storage"
    }

    /// Cache writes, cached and flushed moves are conserved; every station
    /// keeps track of its items; replicas apply what they received.
    fn check(&self, _ctx: &Ctx) -> Vec<String> {
        let mut bad = Vec::new();
        let st = self;
        let t = &st.tally;
        if let Some(c) = &st.cache {
            let b = &c.book;
            // Writes in flight are the write ops held, not the tally's own
            // count of them (checked next).
            let writes_in_flight = st
                .cache_ops
                .iter()
                .filter(|(_, op)| matches!(op, CacheOp::Write { .. }))
                .count() as u64;
            if t.cache_writes != t.cache_writes_failed + writes_in_flight + b.stored {
                bad.push(format!(
                    "cache writes not conserved: {} sent != {} failed + {writes_in_flight} in flight + {} stored",
                    t.cache_writes, t.cache_writes_failed, b.stored
                ));
            }
            if t.cache_writes_pending != writes_in_flight {
                bad.push(format!(
                    "{} cache writes counted pending but {writes_in_flight} write ops in flight",
                    t.cache_writes_pending
                ));
            }
            // Unflushed moves counted room by room, not the book's running
            // total (checked next): `stored`, `taken`, `unflushed` and
            // `lost` change together in `CacheBook`.
            let unflushed = b.rooms_unflushed();
            if b.stored != b.taken + unflushed + b.lost {
                bad.push(format!(
                    "cached moves not conserved: {} stored != {} flushed or flushing + {unflushed} unflushed + {} lost",
                    b.stored, b.taken, b.lost
                ));
            }
            if b.unflushed != unflushed {
                bad.push(format!(
                    "the Redis book counts {} unflushed moves but its rooms hold {unflushed}",
                    b.unflushed
                ));
            }
            if b.taken != st.flusher.into_batches {
                bad.push(format!(
                    "{} moves taken from Redis but {} put in batches",
                    b.taken, st.flusher.into_batches
                ));
            }
            if !c.station.conserved() {
                bad.push("the Redis station lost track of its ops".into());
            }
        }
        // Moves in batches counted batch by batch, not the flusher's running
        // total (checked next): the three counters change together.
        let f = &st.flusher;
        let held = f.moves_held();
        if f.into_batches != f.flushed + held {
            bad.push(format!(
                "flushed moves not conserved: {} batched != {} acknowledged + {held} in batches",
                f.into_batches, f.flushed
            ));
        }
        if f.in_batches != held {
            bad.push(format!(
                "the flusher counts {} moves in batches but its batches hold {held}",
                f.in_batches
            ));
        }
        if let Some(db) = &st.db {
            for (i, n) in db.nodes.iter().enumerate() {
                if !(n.cpu.conserved() && n.reads.conserved() && n.apply.conserved()) {
                    bad.push(format!("{}: a station lost track of its items", db_node_name(i)));
                }
                // The counters against the window of received commits.
                let p = &n.progress;
                let unapplied = p.unapplied().count() as u64;
                let unapplied_rows: u64 = p.unapplied().map(|(_, rows)| rows as u64).sum();
                if p.received.checked_sub(p.applied) != Some(unapplied) {
                    bad.push(format!(
                        "{}: {} commits received - {} applied != {unapplied} unapplied in its window",
                        db_node_name(i),
                        p.received,
                        p.applied
                    ));
                }
                if p.received_rows.checked_sub(p.applied_rows) != Some(unapplied_rows) {
                    bad.push(format!(
                        "{}: {} rows received - {} applied != {unapplied_rows} unapplied rows in its window",
                        db_node_name(i),
                        p.received_rows,
                        p.applied_rows
                    ));
                }
                if n.role == Role::Replica && n.up && n.apply.len() as u64 != p.backlog() {
                    bad.push(format!(
                        "{}: {} commits queued to apply but {} received and not applied",
                        db_node_name(i),
                        n.apply.len(),
                        p.backlog()
                    ));
                }
                if p.received_seq > db.binlog.head() && n.role == Role::Replica {
                    bad.push(format!("{} received past the primary's binlog", db_node_name(i)));
                }
            }
            if t.commits_lost > db.binlog.commits {
                bad.push("more commits lost than made".into());
            }
        }
        bad
    }

    fn metrics(&self, ctx: &Ctx, out: &mut MetricSink) {
        let sc = ctx.sc;
        let nan = f64::NAN;
        let st = self;
        let c = &ctx.rec.counters;
        let warm = SimTime::ZERO + sc.warmup;
        let samples: Vec<&StorageSample> = ctx.rec.storage_samples.iter().filter(|s| s.time > warm).collect();
        let on = st.is_on();
        let cache = sc.cache.is_some();
        let db = sc.database.as_ref();
        let either = |v: f64| if on { v } else { nan };
        let if_cache = |v: f64| if cache { v } else { nan };
        let if_db = |v: f64| if db.is_some() { v } else { nan };
        let max_of =
            |f: &dyn Fn(&StorageSample) -> Option<f64>| samples.iter().filter_map(|s| f(s)).fold(f64::NAN, f64::max);
        let mean_of = |f: &dyn Fn(&StorageSample) -> Option<f64>| {
            let v: Vec<f64> = samples.iter().filter_map(|s| f(s)).collect();
            stats::mean(&v)
        };
        let lag_max = max_of(&|s| s.db_nodes.iter().filter_map(|n| n.lag_s).reduce(f64::max));
        let lag_end = ctx
            .rec
            .storage_samples
            .last()
            .and_then(|s| s.db_nodes.iter().filter_map(|n| n.lag_s).reduce(f64::max))
            .unwrap_or(nan);
        let capacity = db.map_or(nan, |d| d.applier_threads as f64 * d.apply_rate.per_s);
        let trend = lag_trend(&ctx.rec.storage_samples, warm, capacity);
        let has_replicas = db.is_some_and(|d| d.replicas > 0);
        let if_replicas = |v: f64| if has_replicas { v } else { nan };
        let failovers = st.db.as_ref().map(|d| stats::mean(&d.failovers_s)).unwrap_or(nan);
        let h = &ctx.rec.rehydration;
        let fallbacks = ctx
            .rec
            .timeline
            .iter()
            .filter(|e| e.event == crate::metrics::Happening::SemiSyncOff)
            .count() as f64;
        out.set(K::CacheWrites, if_cache(c.cache_writes as f64));
        out.set(K::CacheWritesFailed, if_cache(c.cache_writes_failed as f64));
        out.set(K::MovesFlushed, either(c.moves_flushed as f64));
        out.set(K::FlushBatches, if_cache(c.flush_batches as f64));
        out.set(K::MovesLostCache, if_cache(c.moves_lost_cache as f64));
        out.set(K::MovesAtRiskMax, either(st.at_risk_max as f64));
        out.set(K::MovesAtRiskAtCrash, either(st.at_risk_at_crash_max as f64));
        out.set(K::CacheUtilMean, if_cache(mean_of(&|s| s.cache.map(|k| k.util))));
        out.set(K::CacheUtilMax, if_cache(max_of(&|s| s.cache.map(|k| k.util))));
        out.set(
            K::CacheBacklogMax,
            if_cache(max_of(&|s| s.cache.map(|k| k.backlog as f64))),
        );
        out.set(K::DbCommits, if_db(c.db_commits as f64));
        out.set(K::DbCommitRows, if_db(c.db_commit_rows as f64));
        out.set(K::CommitsLost, if_db(c.commits_lost as f64));
        out.set(K::MovesLostDb, if_db(c.moves_lost_db as f64));
        out.set(K::DbWritesFailed, if_db(c.db_writes_failed as f64));
        out.set(K::DbReads, if_db(c.db_reads as f64));
        out.set(K::DbReadsFailed, if_db(c.db_reads_failed as f64));
        out.set(K::StaleReads, if_db(c.stale_reads as f64));
        out.set(
            K::StaleReadRatio,
            if c.db_reads == 0 {
                nan
            } else {
                c.stale_reads as f64 / c.db_reads as f64
            },
        );
        out.set(K::ReplicaLagMaxS, if_replicas(lag_max));
        out.set(K::ReplicaLagEndS, if_replicas(lag_end));
        out.set(K::ReplicaLagSlope, if_replicas(trend.slope));
        out.set(
            K::ReplicaLagUnbounded,
            if_replicas(if trend.unbounded { 1.0 } else { 0.0 }),
        );
        out.set(K::DbWriteRowsPerS, if_db(trend.write_rows_per_s));
        out.set(K::ReplicaApplyCapacityRowsPerS, if_replicas(capacity));
        out.set(
            K::DbUtilMean,
            if_db(mean_of(&|s| {
                s.db_nodes.iter().find(|n| n.role == "primary").map(|n| n.util)
            })),
        );
        out.set(
            K::DbUtilMax,
            if_db(max_of(&|s| {
                s.db_nodes.iter().find(|n| n.role == "primary").map(|n| n.util)
            })),
        );
        out.set(
            K::ReplicaApplyUtilMean,
            if_replicas(mean_of(&|s| {
                let u: Vec<f64> = s
                    .db_nodes
                    .iter()
                    .filter(|n| n.role == "replica")
                    .map(|n| n.util)
                    .collect();
                (!u.is_empty()).then(|| stats::mean(&u))
            })),
        );
        out.set(K::FailoverS, if_db(failovers));
        out.set(K::RehydrationsCache, if_cache(c.rehydrations_cache as f64));
        out.set(K::RehydrationsDb, if_db(c.rehydrations_db as f64));
        out.set(K::RehydrationsFailed, either(c.rehydrations_failed as f64));
        out.set(K::RehydrationMsP50, ms(h, 0.5));
        out.set(K::RehydrationMsP99, ms(h, 0.99));
        out.set(K::RehydrationMsMax, max_ms(h));
        out.set(K::MovesAtRiskEnd, either(st.moves_at_risk() as f64));
        out.set(K::SemiSyncFallbacks, if_db(fallbacks));
    }

    /// Redis, the database primary and each replica.
    fn components(&self, _ctx: &Ctx) -> Vec<Component> {
        let mut v = Vec::new();
        if self.cache.is_some() {
            v.push(Component {
                tier: "storage",
                kind: ComponentKind::Redis,
                index: 0,
                name: "cache".into(),
            });
        }
        if let Some(db) = &self.db {
            for i in 0..db.nodes.len() {
                v.push(Component {
                    tier: "storage",
                    kind: if i == 0 {
                        ComponentKind::DbPrimary
                    } else {
                        ComponentKind::DbReplica
                    },
                    index: if i == 0 { 0 } else { i as u32 - 1 },
                    name: db_node_name(i),
                });
            }
        }
        v
    }
}
