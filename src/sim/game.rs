//! Game traffic: matching players into rooms, turns, moves, the relay and
//! the fan-out to every member of a room.
//!
//! A move's path: the player thinks, sends, and half an RTT and a backend hop
//! later the move reaches its server (`MoveAtServer`, one event for both),
//! queues for a core and is validated (`Job::Receive`). The server then fans it out to its own members
//! of the room (`Job::FanOut`) and, if other servers host members, publishes
//! it once to the relay, which hands one copy to each of those servers
//! (`RelayDeliver`), where it is fanned out again. A fan-out is one job: when
//! it starts, it walks the member list and computes each member's exact
//! delivery time (the sends before it, the backend hop, that member's half
//! RTT), recording each straight into the latency histograms.

use super::{Component, Ctx, Tier};
use crate::metrics::Deliveries;
use crate::metrics::summary::{MetricSink, max_ms, mean_ms, ms, samples_max, split};
use crate::metrics_defs::MetricKey as K;
use crate::model::network::{Link, Packet};
use std::collections::HashMap;
use std::collections::hash_map::Entry;

use slab::Slab;
use smallvec::SmallVec;

use super::{ClientState, Clients, Event, NONE};
use crate::engine::Scheduler;
use crate::model::relay::Relay;
use crate::model::room::{Member, Room};
use crate::rng::{self, SimRng, streams};
use crate::scenario::{Role, Scenario};
use crate::time::{SimDuration, SimTime};

/// Members from which a fan-out takes the fast walk (see `Game::fan_out`):
/// a chess game's one-member walk is cheaper without its setup.
const FAST_WALK: usize = 16;

/// When a move was sent, reached its server, was validated there, and
/// (`relayed`) reached the server now fanning it out.
#[derive(Clone, Copy)]
struct MoveTimes {
    sent: SimTime,
    arrived: SimTime,
    validated: SimTime,
    ready: SimTime,
    relayed: bool,
}

impl MoveTimes {
    /// Records its delivery to a player, sent at `t` and there at `at`.
    #[inline(always)]
    fn record_player(&self, rec: &mut Deliveries<'_>, t: SimTime, at: SimTime) {
        // Network both ways, the sender's server, the relay, and this
        // server's queue and walk up to this send.
        let relay = if self.relayed {
            self.ready.since(self.validated).0
        } else {
            0
        };
        rec.to_player(
            at.since(self.sent).0,
            [
                self.arrived.since(self.sent).0 + at.since(t).0,
                self.validated.since(self.arrived).0,
                relay,
                t.since(self.ready).0,
            ],
        );
    }
}

/// The game tier's events (one variant of [`Event`]).
#[derive(Clone, Copy, Debug)]
pub enum GameEvent {
    /// A room's players start a game (after matching or a rematch pause).
    GameStart { room: u32, game: u32 },
    /// The move of the player to move reaches its server (sent after the
    /// think time, half an RTT and a backend hop earlier); `token` is the
    /// room's token then.
    MoveAtServer { room: u32, token: u16 },
    /// A Kafka producer batch's linger expired.
    BatchClose { batch: u32 },
    /// A relayed copy of a message reaches a subscribing server.
    RelayDeliver { msg: u32, server: u32 },
}

/// The game tier: rooms, the messages in flight and the relay.
pub struct Game {
    /// Rooms (only with a `[game]`), and their index by hash key.
    pub rooms: Vec<Room>,
    pub(super) room_index: HashMap<u64, u32>,
    /// Messages in flight (moves and their copies).
    pub msgs: Slab<Msg>,
    pub relay: Option<Relay>,
    /// All-run message tallies for the conservation check.
    pub tally: Tally,
    pub(super) rng: SimRng,
    pub(super) rng_relay: SimRng,
}

impl Game {
    pub fn new(sc: &Scenario, replication: u32) -> Self {
        let r = replication as u64;
        Game {
            rooms: Vec::new(),
            room_index: HashMap::new(),
            msgs: Slab::new(),
            relay: sc.relay.as_ref().map(|c| Relay::new(c, sc.max_servers())),
            tally: Tally::default(),
            rng: rng::stream(sc.seed, r, streams::GAME),
            rng_relay: rng::stream(sc.seed, r, streams::RELAY),
        }
    }
}

/// A move in flight: sent by a player, validated on its server, fanned out
/// locally and through the relay.
#[derive(Clone, Debug)]
pub struct Msg {
    pub room: u32,
    pub game: u32,
    /// Move number within the game (0-based).
    pub seq: u32,
    pub sender: u32,
    pub sender_generation: u32,
    pub server: u32,
    pub sent_at: SimTime,
    /// When it reached its server.
    pub arrived_at: SimTime,
    pub validated_at: SimTime,
    pub validated: bool,
    /// Server copies not yet fanned out (local + relayed).
    pub pending: u32,
    pub spectators: u32,
    pub last_spectator: SimTime,
    /// The next player to move has received it.
    pub next_delivered: bool,
    /// Waiting in a Kafka producer batch (counts as one `pending`).
    pub in_batch: bool,
    /// Server copies fanned out (sent to at least their server's members).
    pub fanned_out: u32,
}

/// Counts over the whole run (warm-up included) for conservation checks.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tally {
    pub moves_sent: u64,
    pub moves_validated: u64,
    pub moves_lost: u64,
    /// Server copies of validated moves (local fan-outs and relayed copies).
    pub copies_created: u64,
    pub copies_fanned_out: u64,
    pub copies_lost: u64,
}

impl Game {
    /// The room a new client belongs to, created on first use; players are
    /// added to its turn order.
    pub(super) fn room_for(&mut self, sc: &Scenario, client: u32, key: u64, role: Role) -> u32 {
        let size = sc.populations[pops_host_size(sc, key)].room_size;
        let idx = match self.room_index.entry(key) {
            Entry::Occupied(e) => *e.get(),
            Entry::Vacant(e) => {
                self.rooms.push(Room::new(key, size));
                *e.insert((self.rooms.len() - 1) as u32)
            }
        };
        if role == Role::Player {
            let room = &mut self.rooms[idx as usize];
            room.players.push(client);
            if room.players.len() == room.size as usize {
                room.want_game = true;
            }
        }
        idx
    }

    /// Core time to send a (re)joining member of room `r` the room's state.
    pub(super) fn sync_cost(&self, sc: &Scenario, r: u32) -> SimDuration {
        if r == NONE {
            return SimDuration::ZERO;
        }
        let room = &self.rooms[r as usize];
        if room.active {
            sc.servers.sync_cost_per_move.saturating_mul(room.moves_made as u64)
        } else {
            SimDuration::ZERO
        }
    }

    /// Client `c` of room `r` left for good: a player's departure ends the
    /// room's games.
    pub(super) fn client_gone(&mut self, ctx: &mut Ctx, r: u32, c: u32, now: SimTime) {
        let room = &mut self.rooms[r as usize];
        if !room.is_player(c) || room.closed {
            return;
        }
        room.closed = true;
        room.want_game = false;
        if room.active {
            room.active = false;
            ctx.rec.count(now, |k| k.games_abandoned += 1);
        }
    }

    /// Starts a game if one is wanted and every player is connected.
    pub(super) fn maybe_start(&mut self, ctx: &mut Ctx, clients: &Clients, r: u32, s: &mut Scheduler<Event>) {
        let now = s.now();
        let Some(game) = &ctx.sc.game else { return };
        let room = &self.rooms[r as usize];
        if room.active || !room.want_game || room.closed {
            return;
        }
        if !room
            .players
            .iter()
            .all(|&p| clients.list[p as usize].state == ClientState::Connected)
        {
            return;
        }
        let total = game.moves.sample(&mut self.rng);
        let room = &mut self.rooms[r as usize];
        room.game += 1;
        room.active = true;
        room.want_game = false;
        room.moves_total = total;
        room.moves_made = 0;
        room.turn = 0;
        room.started_at = now;
        ctx.rec.count(now, |k| k.games_started += 1);
        self.schedule_move(ctx, clients, r, now, s);
    }

    /// The player to move thinks, then sends (replacing any earlier
    /// schedule); the move reaches its server half an RTT and a backend hop
    /// after it is sent.
    pub(super) fn schedule_move(
        &mut self,
        ctx: &mut Ctx,
        clients: &Clients,
        r: u32,
        from: SimTime,
        s: &mut Scheduler<Event>,
    ) {
        self.schedule_move_of(ctx, clients, r, from, None, s)
    }

    /// [`schedule_move`](Self::schedule_move), given the mover's room
    /// entry when the caller has it at hand (a fan-out that just reached
    /// it): then the client itself is not read.
    pub(super) fn schedule_move_of(
        &mut self,
        ctx: &mut Ctx,
        clients: &Clients,
        r: u32,
        from: SimTime,
        mover: Option<Member>,
        s: &mut Scheduler<Event>,
    ) {
        let think = ctx
            .sc
            .game
            .as_ref()
            .map(|g| g.think_time.sample(&mut self.rng))
            .unwrap_or_default();
        let room = &mut self.rooms[r as usize];
        room.token = room.token.wrapping_add(1);
        let Some(p) = room.to_move() else { return };
        // The entry's half RTT is the client's unless it was clipped; a
        // member player's generation is mirrored in the room.
        let mirrored = match mover {
            Some(m) if m.client == p && m.half_rtt_ns < u32::MAX => {
                room.player_generation(p).map(|g| (g, m.half_rtt_ns as u64))
            }
            _ => None,
        };
        let (generation, half) = mirrored.unwrap_or_else(|| {
            let cl = &clients.list[p as usize];
            (cl.generation, cl.rtt.0 / 2)
        });
        room.mover_generation = generation;
        let sent = from + think;
        let half = ctx.net.delay(Link::Clients, sent, SimDuration(half), Packet::Data);
        let hop = ctx
            .net
            .delay(Link::Servers, sent, ctx.sc.servers.backend_latency, Packet::Data);
        room.move_sent_at = sent;
        s.at(
            sent + half + hop,
            Event::Game(GameEvent::MoveAtServer {
                room: r,
                token: room.token,
            }),
        );
    }

    /// `GameEvent::GameStart`: a rematch pause is over.
    pub(super) fn game_start(&mut self, ctx: &mut Ctx, clients: &Clients, r: u32, game: u32, s: &mut Scheduler<Event>) {
        let room = &mut self.rooms[r as usize];
        if room.game != game || room.closed {
            return;
        }
        room.want_game = true;
        self.maybe_start(ctx, clients, r, s);
    }

    /// `GameEvent::MoveAtServer`: the move reaches its server. Returns the
    /// server and the new message when the sender is still connected (the
    /// caller queues its `Job::Receive`).
    #[inline]
    pub(super) fn move_at_server(
        &mut self,
        ctx: &mut Ctx,
        clients: &Clients,
        r: u32,
        token: u16,
        now: SimTime,
    ) -> Option<(u32, u32)> {
        let room = &mut self.rooms[r as usize];
        if room.token != token || !room.active {
            return None;
        }
        let p = room.to_move()?;
        let sent_at = room.move_sent_at;
        // A chess player's server and generation are in its room while it
        // is connected (a member): no read of a client slot touched seconds
        // ago. Otherwise its client says whether it is connected.
        let (server, generation) = match room.member_player(p) {
            Some(at) => {
                debug_assert!({
                    let cl = &clients.list[p as usize];
                    cl.state == ClientState::Connected && at == (cl.server, cl.generation)
                });
                at
            }
            None => {
                let cl = &clients.list[p as usize];
                if cl.state != ClientState::Connected {
                    // It plays when it is back: joining its room reschedules it.
                    if cl.state == ClientState::Orphaned {
                        // Its server died under it and it has not noticed:
                        // the move went into a dead connection.
                        self.tally.moves_sent += 1;
                        self.tally.moves_lost += 1;
                        ctx.rec.move_sent(sent_at, true);
                    }
                    return None;
                }
                (cl.server, cl.generation)
            }
        };
        if generation != room.mover_generation {
            // Its connection changed since the move was scheduled: that
            // move was never sent (rejoining its room reschedules it).
            return None;
        }
        let m = Msg {
            room: r,
            game: room.game,
            seq: room.moves_made,
            sender: p,
            sender_generation: generation,
            server,
            sent_at,
            arrived_at: now,
            validated_at: SimTime::ZERO,
            validated: false,
            pending: 0,
            spectators: 0,
            last_spectator: SimTime::ZERO,
            next_delivered: false,
            in_batch: false,
            fanned_out: 0,
        };
        let id = self.msgs.insert(m) as u32;
        self.tally.moves_sent += 1;
        ctx.rec.move_sent(sent_at, false);
        Some((server, id))
    }

    /// A move that never got validated (sender or its server gone).
    pub(super) fn move_lost(&mut self, ctx: &mut Ctx, msg: u32) {
        let m = self.msgs.remove(msg as usize);
        self.tally.moves_lost += 1;
        ctx.rec.move_lost(m.sent_at);
        // If it is still this player's turn, they resend when they rejoin
        // (joining a room whose turn is theirs schedules their move).
    }

    /// The sender's server validated the move: advance the game (the first
    /// part of `seams::move_validated`).
    pub(super) fn validate(&mut self, ctx: &mut Ctx, msg: u32, s: &mut Scheduler<Event>) {
        let now = s.now();
        self.tally.moves_validated += 1;
        let (r, game, seq, sent) = {
            let m = &mut self.msgs[msg as usize];
            m.validated = true;
            m.validated_at = now;
            (m.room, m.game, m.seq, m.sent_at)
        };
        ctx.rec.count_from(sent, |k| k.moves_validated += 1);
        let rematch = ctx.sc.game.as_ref().map(|g| g.rematch_delay).unwrap_or_default();
        let room = &mut self.rooms[r as usize];
        if room.active && room.game == game && room.moves_made == seq {
            room.moves_made += 1;
            room.turn = crate::model::rem_fast(room.turn as u64 + 1, room.players.len().max(1) as u64) as u32;
            if room.moves_made >= room.moves_total {
                room.active = false;
                let started = room.started_at;
                ctx.rec.count_from(started, |k| k.games_completed += 1);
                s.after(rematch, Event::Game(GameEvent::GameStart { room: r, game }));
            }
        }
    }

    /// Where a validated move goes from `srv`: whether `srv` has members
    /// to send it to besides its sender (then it counts one more copy),
    /// and whether other servers host members of its room.
    pub(super) fn copies(&mut self, msg: u32, srv: u32) -> (bool, bool) {
        let m = &self.msgs[msg as usize];
        let room = &self.rooms[m.room as usize];
        let local = room.members_on(srv).iter().any(|mm| mm.client != m.sender);
        let remote = room.remote_servers(srv).next().is_some();
        if local {
            self.msgs[msg as usize].pending += 1;
            self.tally.copies_created += 1;
        }
        (local, remote)
    }

    /// A validated move is published for the other servers of its room
    /// (if `remote`: there are some), then finalized if no copy is
    /// pending. The room's members are as when `copies` looked: the local
    /// fan-out started in between moves no one.
    pub(super) fn publish(
        &mut self,
        ctx: &mut Ctx,
        clients: &Clients,
        msg: u32,
        srv: u32,
        remote: bool,
        s: &mut Scheduler<Event>,
    ) {
        let now = s.now();
        if remote {
            let (sent, r) = {
                let m = &self.msgs[msg as usize];
                (m.sent_at, m.room)
            };
            let key = self.rooms[r as usize].key;
            ctx.rec.count_from(sent, |k| k.moves_relayed += 1);
            match &mut self.relay {
                Some(Relay::Kafka(k)) => {
                    let m = &mut self.msgs[msg as usize];
                    m.pending += 1;
                    m.in_batch = true;
                    if let Some((batch, close)) = k.publish(now, srv, key, msg) {
                        s.at(close, Event::Game(GameEvent::BatchClose { batch }));
                    }
                }
                Some(Relay::Redis(rd)) => {
                    let remote: SmallVec<[u32; 4]> = self.rooms[r as usize].remote_servers(srv).collect();
                    let times = rd.publish(now, remote.len(), &mut self.rng_relay);
                    let n = remote.len() as u64;
                    self.msgs[msg as usize].pending += n as u32;
                    self.tally.copies_created += n;
                    ctx.rec.count(now, |k| k.relay_copies += n);
                    for (server, t) in remote.into_iter().zip(times) {
                        s.at(t, Event::Game(GameEvent::RelayDeliver { msg, server }));
                    }
                }
                // Validation requires a relay when rooms can span servers.
                None => {}
            }
        }
        if self.msgs[msg as usize].pending == 0 {
            self.finalize(ctx, clients, msg);
        }
    }

    /// `GameEvent::BatchClose` (Kafka): a producer batch goes to the
    /// broker; its messages reach every server subscribed to their rooms
    /// when fetched.
    pub(super) fn batch_close(&mut self, ctx: &mut Ctx, clients: &Clients, batch: u32, s: &mut Scheduler<Event>) {
        let now = s.now();
        let Game {
            rooms,
            msgs,
            relay,
            rng_relay,
            tally,
            ..
        } = self;
        let Some(Relay::Kafka(k)) = relay else {
            return;
        };
        // A batch whose producer crashed was dropped then.
        let Some((ids, committed)) = k.close(now, batch, rng_relay) else {
            return;
        };
        // One fetch per consumer server for the whole batch.
        let mut fetched: SmallVec<[(u32, SimTime); 4]> = SmallVec::new();
        let mut done: SmallVec<[u32; 4]> = SmallVec::new();
        for &msg in ids.iter() {
            let m = &mut msgs[msg as usize];
            let mut n = 0u32;
            for server in rooms[m.room as usize].remote_servers(m.server) {
                let t = match fetched.iter().find(|(sv, _)| *sv == server) {
                    Some(&(_, t)) => t,
                    None => {
                        let t = k.fetched(committed, rng_relay);
                        fetched.push((server, t));
                        t
                    }
                };
                s.at(t, Event::Game(GameEvent::RelayDeliver { msg, server }));
                n += 1;
            }
            m.in_batch = false;
            m.pending = m.pending - 1 + n;
            let n = n as u64;
            tally.copies_created += n;
            ctx.rec.count(now, |k| k.relay_copies += n);
            if m.pending == 0 {
                done.push(msg);
            }
        }
        for msg in done {
            self.finalize(ctx, clients, msg);
        }
    }

    /// Walks `srv`'s members of the message's room, computing and recording
    /// each delivery; returns the core time of the whole walk. `rng` is the
    /// servers' stream (send costs), `cut` the server's next crash.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(super) fn fan_out(
        &mut self,
        ctx: &mut Ctx,
        clients: &Clients,
        rng: &mut SimRng,
        cut: SimTime,
        srv: u32,
        msg: u32,
        relayed: bool,
        ready: SimTime,
        s: &mut Scheduler<Event>,
    ) -> SimDuration {
        let now = s.now();
        let sv = &ctx.sc.servers;
        let mut t = now;
        if relayed {
            t += sv.consume_cost.sample(rng);
        }
        let m = &self.msgs[msg as usize];
        let (sender, sent_at, arrived, validated) = (m.sender, m.sent_at, m.arrived_at, m.validated_at);
        let room = &self.rooms[m.room as usize];
        let latest = room.active && room.game == m.game && room.moves_made == m.seq + 1;
        let next = if latest { room.to_move() } else { None };
        let (send, hop) = (&sv.send_cost, sv.backend_latency);
        // Hoisted out of the walk, which may visit a million members: a
        // constant send cost, and the players (a handful) to tell apart.
        let send_const = match send {
            crate::dist::Dist::Constant { value } => Some(*value),
            _ => None,
        };
        // The players to tell apart from spectators: two in chess, checked
        // with two compares (client ids stay below `MAX_CLIENTS`, so
        // `u32::MAX` matches nobody); a bigger room's go through `contains`.
        let players = &room.players[..];
        let p0 = players.first().copied().unwrap_or(u32::MAX);
        let p1 = players.get(1).copied().unwrap_or(u32::MAX);
        let many = players.len() > 2;
        let net = &mut ctx.net;
        // Without slowdown windows every hop takes its base latency (and a
        // walk cannot add a window), so the walk skips the network model.
        let healthy = net.is_healthy();
        let members = room.members_on(srv);
        let mut rec = ctx.rec.deliveries(sent_at);
        let (mut last, mut next_at) = (SimTime::ZERO, None);
        let times = MoveTimes {
            sent: sent_at,
            arrived,
            validated,
            ready,
            relayed,
        };
        // The common long walk (no slowdown windows, a constant send cost,
        // at most two players) in plain integer arithmetic. It is exactly the
        // general walk below: nothing in it can saturate (the last send
        // plus the hop and the longest half-RTT fits in a u64, checked
        // here once) and every send is after the move was sent.
        let fast = match send_const {
            Some(c) if members.len() >= FAST_WALK && healthy && !many && t >= sent_at => (members.len() as u64)
                .checked_mul(c.0)
                .and_then(|w| w.checked_add(t.0))
                .and_then(|x| x.checked_add(hop.0))
                .and_then(|x| x.checked_add(u32::MAX as u64))
                .map(|_| c.0),
            _ => None,
        };
        // A crash scheduled during the walk cuts it: later sends never happen.
        if let Some(c) = fast {
            let (mut tt, cut, hop, sent) = (t.0, cut.0, hop.0, sent_at.0);
            let mut hi = 0u64;
            for mm in members {
                let id = mm.client;
                // The sender or a player: one predictable branch.
                let player = (id == p0) | (id == p1) | (id == sender);
                if player && id == sender {
                    continue;
                }
                tt += c;
                if tt > cut {
                    break;
                }
                let at = tt + hop + mm.half_rtt_ns as u64;
                if player {
                    times.record_player(&mut rec, SimTime(tt), SimTime(at));
                    if Some(id) == next {
                        next_at = Some((SimTime(at), *mm));
                    }
                } else {
                    rec.to_spectator(at - sent);
                    hi = hi.max(at);
                }
            }
            t = SimTime(tt);
            last = SimTime(hi);
        } else {
            for mm in members {
                let c = mm.client;
                // Maybe the sender or a player (in a room of more than two
                // players, any member: `contains` decides).
                let special = c == p0 || c == p1 || c == sender || many;
                if special && c == sender {
                    continue;
                }
                t += match send_const {
                    Some(c) => c,
                    None => send.sample(rng),
                };
                if t > cut {
                    break;
                }
                let half = SimDuration(mm.half_rtt_ns as u64);
                let at = if healthy {
                    t + hop + half
                } else {
                    t + net.delay(Link::Servers, t, hop, Packet::Data) + net.delay(Link::Clients, t, half, Packet::Data)
                };
                if special && players.contains(&c) {
                    times.record_player(&mut rec, t, at);
                    if Some(c) == next {
                        next_at = Some((at, *mm));
                    }
                } else {
                    rec.to_spectator(at.since(sent_at).0);
                    last = last.max(at);
                }
            }
        }
        // A server lists at most `max_connections` (< 2^32) members.
        let spectators = rec.spectators() as u32;
        drop(rec);
        let r = m.room;
        let m = &mut self.msgs[msg as usize];
        m.spectators += spectators;
        m.last_spectator = m.last_spectator.max(last);
        if let Some((at, mover)) = next_at {
            m.next_delivered = true;
            self.schedule_move_of(ctx, clients, r, at, Some(mover), s);
        }
        t.since(now)
    }

    /// Kafka producer batches live in the server process: a crash loses the
    /// ones still lingering (their messages never reach the broker).
    pub(super) fn drop_producer_batches(&mut self, ctx: &mut Ctx, clients: &Clients, srv: u32) {
        let Some(Relay::Kafka(k)) = &mut self.relay else {
            return;
        };
        let lost = k.drop_producer(srv);
        let now = ctx.now;
        for msg in lost {
            ctx.rec.count(now, |k| k.relay_copies_lost += 1);
            let m = &mut self.msgs[msg as usize];
            m.in_batch = false;
            m.pending -= 1;
            if m.pending == 0 {
                self.finalize(ctx, clients, msg);
            }
        }
    }

    /// One server copy of a message is done (fanned out, or lost).
    pub(super) fn copy_done(&mut self, ctx: &mut Ctx, clients: &Clients, msg: u32, lost: bool) {
        if lost {
            self.tally.copies_lost += 1;
        } else {
            self.tally.copies_fanned_out += 1;
        }
        let m = &mut self.msgs[msg as usize];
        m.pending -= 1;
        m.fanned_out += (!lost) as u32;
        if m.pending == 0 {
            self.finalize(ctx, clients, msg);
        }
    }

    /// Every copy is done: record when the last spectator had it.
    pub(super) fn finalize(&mut self, ctx: &mut Ctx, clients: &Clients, msg: u32) {
        let m = self.msgs.remove(msg as usize);
        if m.spectators > 0 {
            ctx.rec.latency(
                m.sent_at,
                |r| &mut r.move_last_spectator,
                m.last_spectator.since(m.sent_at).0,
            );
        }
        let room = &mut self.rooms[m.room as usize];
        if !m.next_delivered && room.active && room.game == m.game && room.moves_made == m.seq + 1 {
            let sender_gone = || clients.list[m.sender as usize].generation != m.sender_generation;
            if m.fanned_out == 0 && sender_gone() {
                // No server but the sender's (now dead) ever had this move:
                // it is lost with that process. The sender plays it again
                // when it reconnects and is sent the state.
                room.moves_made -= 1;
                let n = room.players.len().max(1) as u32;
                room.turn = (room.turn + n - 1) % n;
            }
            // Otherwise the player to move never got it (disconnected):
            // they resume with the room's state when they reconnect.
        }
    }
}

/// The population whose rooms a key names (its upper 32 bits).
fn pops_host_size(sc: &Scenario, key: u64) -> usize {
    ((key >> 32) as usize).min(sc.populations.len() - 1)
}

impl Tier for Game {
    fn name(&self) -> &'static str {
        "game"
    }

    /// Every move sent is validated, lost, or still on its way; every
    /// server copy is fanned out, lost, or still on its way.
    fn check(&self, _ctx: &Ctx) -> Vec<String> {
        let mut bad = Vec::new();
        let t = &self.tally;
        let unvalidated = self.msgs.iter().filter(|(_, m)| !m.validated).count() as u64;
        if t.moves_sent != t.moves_validated + t.moves_lost + unvalidated {
            bad.push(format!(
                "moves not conserved: {} sent != {} validated + {} lost + {} in flight",
                t.moves_sent, t.moves_validated, t.moves_lost, unvalidated
            ));
        }
        let copies_in_flight: u64 = self
            .msgs
            .iter()
            .map(|(_, m)| (m.pending - m.in_batch as u32) as u64)
            .sum();
        if t.copies_created != t.copies_fanned_out + t.copies_lost + copies_in_flight {
            bad.push(format!(
                "server copies not conserved: {} created != {} fanned out + {} lost + {} in flight",
                t.copies_created, t.copies_fanned_out, t.copies_lost, copies_in_flight
            ));
        }
        bad
    }

    fn metrics(&self, ctx: &Ctx, out: &mut MetricSink) {
        let (sc, rec) = (ctx.sc, &ctx.rec);
        let c = rec.counters;
        let (steady, faults) = split(&rec.window_stats);
        let has_faults = !sc.faults.is_empty();
        let if_faults = |v: f64| if has_faults { v } else { f64::NAN };
        let p99_us = |h: &hdrhistogram::Histogram<u64>| h.value_at_quantile(0.99);
        let move_shares = rec.move_tail.shares_above(p99_us(&rec.move_player));
        out.set(K::MovesSent, c.moves_sent as f64);
        out.set(K::MovesValidated, c.moves_validated as f64);
        out.set(K::MovesLost, c.moves_lost as f64);
        out.set(
            K::RelayShare,
            if c.moves_validated == 0 {
                f64::NAN
            } else {
                c.moves_relayed as f64 / c.moves_validated as f64
            },
        );
        out.set(K::MoveMsMean, mean_ms(&rec.move_player));
        out.set(K::MoveMsP50, ms(&rec.move_player, 0.5));
        out.set(K::MoveMsP90, ms(&rec.move_player, 0.9));
        out.set(K::MoveMsP99, ms(&rec.move_player, 0.99));
        out.set(K::MoveMsP999, ms(&rec.move_player, 0.999));
        out.set(K::MoveMsMax, max_ms(&rec.move_player));
        out.set(K::MoveMsP99Steady, ms(&steady.moves, 0.99));
        out.set(K::MoveMsP99Faults, if_faults(ms(&faults.moves, 0.99)));
        out.set(K::MoveP99ShareNetwork, move_shares[0]);
        out.set(K::MoveP99ShareServer, move_shares[1]);
        out.set(K::MoveP99ShareRelay, move_shares[2]);
        out.set(K::MoveP99ShareFanout, move_shares[3]);
        out.set(K::SpectatorMsMean, mean_ms(&rec.move_spectator));
        out.set(K::SpectatorMsP50, ms(&rec.move_spectator, 0.5));
        out.set(K::SpectatorMsP90, ms(&rec.move_spectator, 0.9));
        out.set(K::SpectatorMsP99, ms(&rec.move_spectator, 0.99));
        out.set(K::SpectatorMsP999, ms(&rec.move_spectator, 0.999));
        out.set(K::SpectatorMsMax, max_ms(&rec.move_spectator));
        out.set(K::SpectatorMsP99Steady, ms(&steady.spectators, 0.99));
        out.set(K::SpectatorMsP99Faults, if_faults(ms(&faults.spectators, 0.99)));
        out.set(K::LastSpectatorMsP50, ms(&rec.move_last_spectator, 0.5));
        out.set(K::LastSpectatorMsP99, ms(&rec.move_last_spectator, 0.99));
        out.set(K::LastSpectatorMsMax, max_ms(&rec.move_last_spectator));
        out.set(K::RelayMsP50, ms(&rec.relay, 0.5));
        out.set(K::RelayMsP99, ms(&rec.relay, 0.99));
        out.set(K::RelayCopies, c.relay_copies as f64);
        out.set(K::RelayCopiesLost, c.relay_copies_lost as f64);
        out.set(
            K::RelayBacklogMax,
            samples_max(&rec.samples, sc, |s| s.relay_backlog as f64),
        );
        out.set(K::Deliveries, (c.deliveries_player + c.deliveries_spectator) as f64);
        out.set(K::StateSyncs, c.state_syncs as f64);
        out.set(K::GamesStarted, c.games_started as f64);
        out.set(K::GamesCompleted, c.games_completed as f64);
        out.set(K::GamesAbandoned, c.games_abandoned as f64);
    }

    /// The relay is not modelled as failing on its own.
    fn components(&self, _ctx: &Ctx) -> Vec<Component> {
        Vec::new()
    }
}
