//! Game rooms: who plays, whose turn it is, and who is connected where.
//!
//! A room's connected members (players and spectators) are grouped by the
//! server they are connected to. A server's fan-out of one move walks its
//! group: each member carries its own half-RTT so the walk reads memory in
//! order. Groups are never removed (their index is stable); members leave
//! by swap-remove and the caller fixes the moved member's slot.

use smallvec::SmallVec;

use crate::time::SimTime;

/// A connected member of a room on one server: 8 bytes, what a fan-out's
/// walk reads per recipient (a million of them per move in the 1M game).
/// A player's generation is mirrored in its room instead
/// ([`Room::player_generation`]): spectators never move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    pub client: u32,
    /// Server → client one-way latency (half the client's RTT), ns.
    pub half_rtt_ns: u32,
}

// A room's `size` is a u16.
const _: () = assert!(crate::scenario::limits::MAX_ROOM_SIZE <= u16::MAX as u32);

/// Players whose generations a room mirrors (chess has two; a bigger
/// room's further players are read from their clients).
const MIRRORED: usize = 2;

/// The members of a room on one server.
#[derive(Clone, Debug, Default)]
pub struct Group {
    pub server: u32,
    /// Inline for the common small case (the players of one game).
    pub members: SmallVec<[Member; 2]>,
}

/// Servers a room spans before its groups are indexed by server id.
const INDEX_FROM: usize = 8;

/// A big room's group index + 1 by server id (0: no group there).
#[derive(Clone, Debug, Default)]
struct ServerIndex(Vec<u32>);

/// One room and its current game.
#[derive(Clone, Debug, Default)]
pub struct Room {
    /// The room's hash key (`room`/`uri` balancing).
    pub key: u64,
    /// Matched players in turn order.
    pub players: SmallVec<[u32; 2]>,
    /// Inline for rooms on one or two servers.
    pub groups: SmallVec<[Group; 2]>,
    /// Group index + 1 by server id (0: none), once the room spans more
    /// than [`INDEX_FROM`] servers: a million spectators on 100 servers
    /// then find their group without scanning the others.
    /// Boxed: one pointer in every room, the table only in big ones.
    by_server: Option<Box<ServerIndex>>,
    /// Game counter: events of an earlier game are stale.
    pub game: u32,
    pub active: bool,
    pub moves_total: u32,
    pub moves_made: u32,
    /// Index into `players` of who moves next.
    pub turn: u32,
    /// When the current game started.
    pub started_at: SimTime,
    /// Players a game needs (at most `MAX_ROOM_SIZE`, 10 000).
    pub size: u16,
    /// A game should start as soon as every player is connected.
    pub want_game: bool,
    /// A player left for good: no more games here.
    pub closed: bool,
    /// Changes each time a move is scheduled: older moves in flight are
    /// stale (a move carries it; a room reschedules far fewer than 2^16
    /// times while one move is in flight).
    pub token: u16,
    /// The mover's generation when its move was scheduled: if it changed
    /// (disconnected), the move was not sent as scheduled.
    pub mover_generation: u32,
    /// When the move in flight was sent (its arrival minus its transit,
    /// which a network slowdown may lengthen).
    pub move_sent_at: SimTime,
    /// The generation of each of the first players while it is a member
    /// (kept equal to its client's), so that a fan-out schedules the next
    /// move without reading the client.
    mirrored: [u32; MIRRORED],
    /// The group + 1 of each of the first players while it is a member
    /// (0: not a member, or a group index beyond `u16`), so that a move's
    /// arrival knows its sender's server and connection without reading
    /// the client ([`Room::member_player`]).
    mirrored_group: [u16; MIRRORED],
}

impl Room {
    pub fn new(key: u64, size: u32) -> Self {
        Room {
            key,
            // The scenario's checks keep `room_size` ≤ `MAX_ROOM_SIZE`.
            size: size.min(u16::MAX as u32) as u16,
            ..Default::default()
        }
    }

    /// Index of the group for `server`, if it has one.
    #[inline]
    fn find_group(&self, server: u32) -> Option<usize> {
        match &self.by_server {
            Some(ix) => {
                ix.0.get(server as usize)
                    .and_then(|&g| g.checked_sub(1))
                    .map(|g| g as usize)
            }
            None => self.groups.iter().position(|g| g.server == server),
        }
    }

    /// Index of the group for `server`, creating it.
    pub fn group_of(&mut self, server: u32) -> usize {
        if let Some(i) = self.find_group(server) {
            return i;
        }
        self.groups.push(Group {
            server,
            members: SmallVec::new(),
        });
        let g = self.groups.len() - 1;
        if self.groups.len() > INDEX_FROM {
            let ix = &mut self.by_server.get_or_insert_with(Default::default).0;
            if ix.len() <= server as usize {
                // Rebuilt from the groups (rare: the first time, or a new
                // highest server id), long enough for every group's.
                let need = self.groups.iter().map(|gr| gr.server as usize + 1).max().unwrap_or(0);
                ix.clear();
                ix.resize(need.max(2 * ix.capacity()), 0);
                for (i, gr) in self.groups.iter().enumerate() {
                    ix[gr.server as usize] = i as u32 + 1;
                }
            } else {
                ix[server as usize] = g as u32 + 1;
            }
        }
        g
    }

    /// Adds a member on `server`, its client at `generation`; returns
    /// (group, slot).
    pub fn join(&mut self, server: u32, m: Member, generation: u32) -> (u32, u32) {
        let g = self.group_of(server);
        if let Some(i) = self.mirror_slot(m.client) {
            self.mirrored[i] = generation;
            self.mirrored_group[i] = u16::try_from(g + 1).unwrap_or(0);
        }
        let members = &mut self.groups[g].members;
        members.push(m);
        (g as u32, (members.len() - 1) as u32)
    }

    /// Removes the member at (group, slot); returns the client moved into
    /// that slot, whose slot the caller must update.
    pub fn leave(&mut self, group: u32, slot: u32) -> Option<u32> {
        let gone = self.groups[group as usize].members[slot as usize].client;
        if let Some(i) = self.mirror_slot(gone) {
            self.mirrored_group[i] = 0;
        }
        let members = &mut self.groups[group as usize].members;
        members.swap_remove(slot as usize);
        members.get(slot as usize).map(|m| m.client)
    }

    /// The member list on `server`, if any.
    pub fn members_on(&self, server: u32) -> &[Member] {
        self.find_group(server)
            .map(|g| &self.groups[g].members[..])
            .unwrap_or(&[])
    }

    /// Servers other than `except` with at least one member.
    pub fn remote_servers(&self, except: u32) -> impl Iterator<Item = u32> + '_ {
        self.groups
            .iter()
            .filter(move |g| g.server != except && !g.members.is_empty())
            .map(|g| g.server)
    }

    /// Where `client`'s generation is mirrored, if it is one of the first
    /// players.
    #[inline]
    fn mirror_slot(&self, client: u32) -> Option<usize> {
        self.players.iter().take(MIRRORED).position(|&p| p == client)
    }

    /// A member's client is now at `generation`: mirrored if it is one of
    /// the first players.
    #[inline]
    pub fn mirror_generation(&mut self, client: u32, generation: u32) {
        if let Some(i) = self.mirror_slot(client) {
            self.mirrored[i] = generation;
        }
    }

    /// The generation of `client`, a member, if it is one of the first
    /// players (whose generations are mirrored here).
    #[inline]
    pub fn player_generation(&self, client: u32) -> Option<u32> {
        self.mirror_slot(client).map(|i| self.mirrored[i])
    }

    /// Where `client`, one of the first players, is a member now: its
    /// server and its client's generation (members are exactly the
    /// connected clients, so it is connected). `None` when it is not a
    /// member, or not one of the first players: then only its client knows.
    #[inline]
    pub fn member_player(&self, client: u32) -> Option<(u32, u32)> {
        let i = self.mirror_slot(client)?;
        let g = self.mirrored_group[i].checked_sub(1)?;
        Some((self.groups[g as usize].server, self.mirrored[i]))
    }

    /// The player whose turn it is.
    pub fn to_move(&self) -> Option<u32> {
        self.players.get(self.turn as usize).copied()
    }

    pub fn is_player(&self, client: u32) -> bool {
        self.players.contains(&client)
    }

    pub fn connected_members(&self) -> usize {
        self.groups.iter().map(|g| g.members.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(client: u32) -> Member {
        Member { client, half_rtt_ns: 1 }
    }

    #[test]
    fn join_leave_keeps_slots_dense() {
        let mut r = Room::new(1, 2);
        assert_eq!(r.join(5, m(10), 0), (0, 0));
        assert_eq!(r.join(5, m(11), 0), (0, 1));
        assert_eq!(r.join(6, m(12), 0), (1, 0));
        assert_eq!(r.join(5, m(13), 0), (0, 2));
        assert_eq!(r.leave(0, 0), Some(13));
        assert_eq!(
            r.members_on(5).iter().map(|m| m.client).collect::<Vec<_>>(),
            vec![13, 11]
        );
        assert_eq!(r.remote_servers(5).collect::<Vec<_>>(), vec![6]);
        assert_eq!(r.leave(1, 0), None);
        assert_eq!(r.remote_servers(5).count(), 0);
        assert_eq!(r.connected_members(), 2);
    }

    /// Past `INDEX_FROM` servers the index finds the same groups as a
    /// scan: servers joined in a scrambled order, ids growing past the
    /// index's length, and servers never joined.
    #[test]
    fn the_server_index_agrees_with_a_scan() {
        let mut r = Room::new(1, 2);
        // High ids first, so the index is first built for a low one.
        let mut servers: Vec<u32> = vec![90, 80, 70, 60, 50, 40, 30, 20, 3, 2];
        servers.extend((0..400u32).map(|k| (k * 37) % 101 + if k > 200 { 300 } else { 0 }));
        for (k, &server) in servers.iter().enumerate() {
            let k = k as u32;
            let (g, _) = r.join(server, m(k), 0);
            let scan = r.groups.iter().position(|gr| gr.server == server).unwrap();
            assert_eq!(g as usize, scan, "server {server}");
        }
        assert!(r.by_server.is_some());
        for server in 0..500u32 {
            let scan: Vec<u32> = r
                .groups
                .iter()
                .find(|gr| gr.server == server)
                .map(|gr| gr.members.iter().map(|m| m.client).collect())
                .unwrap_or_default();
            let got: Vec<u32> = r.members_on(server).iter().map(|m| m.client).collect();
            assert_eq!(got, scan, "server {server}");
        }
    }

    /// The first two players' generations are mirrored while they are
    /// members; spectators' and later players' are not kept. A member is
    /// 8 bytes, and a room (176 bytes with 12-byte members) is 168.
    #[test]
    fn player_generations_are_mirrored() {
        let mut r = Room::new(1, 3);
        r.players.extend([10, 11, 12]);
        r.join(5, m(10), 7);
        r.join(6, m(11), 8);
        r.join(6, m(12), 9);
        r.join(5, m(20), 3);
        assert_eq!(r.player_generation(10), Some(7));
        assert_eq!(r.player_generation(11), Some(8));
        assert_eq!(r.player_generation(12), None, "a third player is read from its client");
        assert_eq!(r.player_generation(20), None, "a spectator's is not kept");
        r.mirror_generation(11, 9);
        r.mirror_generation(20, 4);
        assert_eq!(r.player_generation(11), Some(9));
        assert_eq!(r.player_generation(10), Some(7));
        assert_eq!(std::mem::size_of::<Member>(), 8);
        assert!(std::mem::size_of::<Room>() <= 168, "{}", std::mem::size_of::<Room>());
    }

    /// A first player's server is known while it is a member, and only
    /// then: leaving (its own slot, or another member's swapped into it)
    /// and joining again on another server are followed.
    #[test]
    fn member_players_are_located() {
        let mut r = Room::new(1, 3);
        r.players.extend([10, 11, 12]);
        assert_eq!(r.member_player(10), None, "not a member yet");
        let (g10, s10) = r.join(5, m(10), 7);
        r.join(5, m(20), 1);
        let (g11, s11) = r.join(6, m(11), 8);
        r.join(6, m(12), 9);
        assert_eq!(r.member_player(10), Some((5, 7)));
        assert_eq!(r.member_player(11), Some((6, 8)));
        assert_eq!(r.member_player(12), None, "a third player is read from its client");
        assert_eq!(r.member_player(20), None, "a spectator never moves");
        r.mirror_generation(11, 9);
        assert_eq!(r.member_player(11), Some((6, 9)));
        // 11 leaves; 12 is swapped into its slot and stays where it is.
        assert_eq!(r.leave(g11, s11), Some(12));
        assert_eq!(
            r.member_player(11),
            None,
            "gone, though its generation is still mirrored"
        );
        assert_eq!(r.player_generation(11), Some(9));
        // 10 leaves and comes back on the other server.
        assert_eq!(r.leave(g10, s10), Some(20));
        assert_eq!(r.member_player(10), None);
        r.join(6, m(10), 10);
        assert_eq!(r.member_player(10), Some((6, 10)));
    }
}
