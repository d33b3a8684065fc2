//! Game rooms: who plays, whose turn it is, and who is connected where.
//!
//! A room's connected members (players and spectators) are grouped by the
//! server they are connected to. A server's fan-out of one move walks its
//! group: each member carries its own half-RTT so the walk reads memory in
//! order. Groups are never removed (their index is stable); members leave
//! by swap-remove and the caller fixes the moved member's slot.

use smallvec::SmallVec;

use crate::time::SimTime;

/// A connected member of a room on one server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    pub client: u32,
    /// Server → client one-way latency (half the client's RTT), ns.
    pub half_rtt_ns: u32,
    /// The client's generation (kept equal to it while it is a member),
    /// so that a fan-out can schedule the next move without reading the
    /// client.
    pub generation: u32,
}

/// The members of a room on one server.
#[derive(Clone, Debug, Default)]
pub struct Group {
    pub server: u32,
    /// Inline for the common small case (the players of one game).
    pub members: SmallVec<[Member; 2]>,
}

/// One room and its current game.
#[derive(Clone, Debug, Default)]
pub struct Room {
    /// The room's hash key (`room`/`uri` balancing).
    pub key: u64,
    /// Matched players in turn order.
    pub players: SmallVec<[u32; 2]>,
    /// Inline for rooms on one or two servers.
    pub groups: SmallVec<[Group; 2]>,
    /// Game counter: events of an earlier game are stale.
    pub game: u32,
    pub active: bool,
    pub moves_total: u32,
    pub moves_made: u32,
    /// Index into `players` of who moves next.
    pub turn: u32,
    /// When the current game started.
    pub started_at: SimTime,
    /// Players a game needs.
    pub size: u32,
    /// A game should start as soon as every player is connected.
    pub want_game: bool,
    /// A player left for good: no more games here.
    pub closed: bool,
    /// Changes each time a move is scheduled: older moves in flight are stale.
    pub token: u32,
    /// The mover's generation when its move was scheduled: if it changed
    /// (disconnected), the move was not sent as scheduled.
    pub mover_generation: u32,
    /// When the move in flight was sent (its arrival minus its transit,
    /// which a network slowdown may lengthen).
    pub move_sent_at: SimTime,
}

impl Room {
    pub fn new(key: u64, size: u32) -> Self {
        Room {
            key,
            size,
            ..Default::default()
        }
    }

    /// Index of the group for `server`, creating it.
    pub fn group_of(&mut self, server: u32) -> usize {
        match self.groups.iter().position(|g| g.server == server) {
            Some(i) => i,
            None => {
                self.groups.push(Group {
                    server,
                    members: SmallVec::new(),
                });
                self.groups.len() - 1
            }
        }
    }

    /// Adds a member on `server`; returns (group, slot).
    pub fn join(&mut self, server: u32, m: Member) -> (u32, u32) {
        let g = self.group_of(server);
        let members = &mut self.groups[g].members;
        members.push(m);
        (g as u32, (members.len() - 1) as u32)
    }

    /// Removes the member at (group, slot); returns the client moved into
    /// that slot, whose slot the caller must update.
    pub fn leave(&mut self, group: u32, slot: u32) -> Option<u32> {
        let members = &mut self.groups[group as usize].members;
        members.swap_remove(slot as usize);
        members.get(slot as usize).map(|m| m.client)
    }

    /// The member list on `server`, if any.
    pub fn members_on(&self, server: u32) -> &[Member] {
        self.groups
            .iter()
            .find(|g| g.server == server)
            .map(|g| &g.members[..])
            .unwrap_or(&[])
    }

    /// Servers other than `except` with at least one member.
    pub fn remote_servers(&self, except: u32) -> impl Iterator<Item = u32> + '_ {
        self.groups
            .iter()
            .filter(move |g| g.server != except && !g.members.is_empty())
            .map(|g| g.server)
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

    #[test]
    fn join_leave_keeps_slots_dense() {
        let mut r = Room::new(1, 2);
        let m = |c| Member {
            client: c,
            half_rtt_ns: 1,
            generation: 0,
        };
        assert_eq!(r.join(5, m(10)), (0, 0));
        assert_eq!(r.join(5, m(11)), (0, 1));
        assert_eq!(r.join(6, m(12)), (1, 0));
        assert_eq!(r.join(5, m(13)), (0, 2));
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
}
