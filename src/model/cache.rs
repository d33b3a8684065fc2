//! Write-behind bookkeeping of the Redis cache and its flusher: which
//! rooms hold moves not yet flushed to the database, what a crash loses
//! under each `appendfsync`, whether Redis still holds a room's whole game
//! (for rehydration), and the flush batches on their way to the database.
//!
//! Pure state, no events: `sim::storage` drives it. A move is *stored*
//! when Redis has executed its write; it is *unflushed* until a flush takes
//! it into a batch, then *in a batch* until the database acknowledges the
//! batch's commit (*flushed*). Unflushed and in-batch moves are *at risk*.
//! A flush takes all of a room's unflushed moves at once, so those are
//! always the room's latest moves; with `appendfsync everysec` so are the
//! moves written since the last fsync, and a crash loses the overlap.

use slab::Slab;

use crate::scenario::AppendFsync;
use crate::time::SimTime;

const NONE: u32 = u32::MAX;

/// Redis's view of one room.
#[derive(Clone, Copy, Debug)]
pub struct RoomCache {
    /// The game whose moves Redis holds.
    pub game: u32,
    /// Redis holds every move of `game` (no write failed, nothing lost).
    pub complete: bool,
    pub unflushed: u32,
    /// Moves written since the fsync of epoch `fsync_epoch`.
    unfsynced: u32,
    fsync_epoch: u32,
    /// Index in `CacheBook::dirty`, or NONE.
    dirty_pos: u32,
    /// Lichess policy: when the last move was stored, and whether a flush
    /// timer is pending.
    pub last_move_at: SimTime,
    pub timer: bool,
}

impl Default for RoomCache {
    fn default() -> Self {
        RoomCache {
            game: 0,
            complete: false,
            unflushed: 0,
            unfsynced: 0,
            fsync_epoch: 0,
            dirty_pos: NONE,
            last_move_at: SimTime::ZERO,
            timer: false,
        }
    }
}

/// Per-room unflushed moves and what Redis holds.
#[derive(Debug, Default)]
pub struct CacheBook {
    rooms: Vec<RoomCache>,
    /// Rooms with unflushed moves.
    dirty: Vec<u32>,
    fsync_epoch: u32,
    /// Σ unflushed over rooms.
    pub unflushed: u64,
    /// Moves stored, taken into batches, and lost by crashes (whole run).
    pub stored: u64,
    pub taken: u64,
    pub lost: u64,
}

impl CacheBook {
    /// Room `r`'s entry, created on first use.
    pub fn room(&mut self, r: u32) -> &mut RoomCache {
        let i = r as usize;
        if i >= self.rooms.len() {
            self.rooms.resize(i + 1, RoomCache::default());
        }
        &mut self.rooms[i]
    }

    pub fn get(&self, r: u32) -> Option<&RoomCache> {
        self.rooms.get(r as usize)
    }

    /// Redis executed the write of move `seq` of `game` in room `r`.
    pub fn store(&mut self, r: u32, game: u32, seq: u32, now: SimTime) {
        let epoch = self.fsync_epoch;
        let n_dirty = self.dirty.len() as u32;
        let rc = self.room(r);
        if rc.game != game || seq == 0 {
            // A new game: Redis holds it whole if this is its first move.
            rc.game = game;
            rc.complete = seq == 0;
        }
        if rc.fsync_epoch != epoch {
            rc.fsync_epoch = epoch;
            rc.unfsynced = 0;
        }
        rc.unfsynced += 1;
        rc.unflushed += 1;
        rc.last_move_at = now;
        let newly_dirty = rc.dirty_pos == NONE;
        if newly_dirty {
            rc.dirty_pos = n_dirty;
        }
        if newly_dirty {
            self.dirty.push(r);
        }
        self.unflushed += 1;
        self.stored += 1;
    }

    /// The write of a move of `game` in room `r` failed: Redis's copy of
    /// that game is incomplete.
    pub fn write_failed(&mut self, r: u32, game: u32) {
        let rc = self.room(r);
        rc.game = game;
        rc.complete = false;
    }

    /// Redis holds every move of `game` in room `r`.
    pub fn holds(&self, r: u32, game: u32) -> bool {
        self.get(r).is_some_and(|rc| rc.game == game && rc.complete)
    }

    fn undirty(&mut self, r: u32) {
        let pos = self.rooms[r as usize].dirty_pos;
        if pos == NONE {
            return;
        }
        self.dirty.swap_remove(pos as usize);
        if let Some(&moved) = self.dirty.get(pos as usize) {
            self.rooms[moved as usize].dirty_pos = pos;
        }
        self.rooms[r as usize].dirty_pos = NONE;
    }

    /// A flush takes room `r`'s unflushed moves; returns how many.
    pub fn take_room(&mut self, r: u32) -> u32 {
        let Some(rc) = self.rooms.get_mut(r as usize) else {
            return 0;
        };
        let n = std::mem::take(&mut rc.unflushed);
        self.undirty(r);
        self.unflushed -= n as u64;
        self.taken += n as u64;
        n
    }

    /// A flush takes every unflushed move: (room, moves) in a fixed order.
    pub fn take_all(&mut self) -> Vec<(u32, u32)> {
        let mut rooms = std::mem::take(&mut self.dirty);
        rooms.sort_unstable();
        let out: Vec<(u32, u32)> = rooms
            .into_iter()
            .map(|r| {
                let rc = &mut self.rooms[r as usize];
                rc.dirty_pos = NONE;
                (r, std::mem::take(&mut rc.unflushed))
            })
            .collect();
        let n: u64 = out.iter().map(|&(_, m)| m as u64).sum();
        self.unflushed -= n;
        self.taken += n;
        out
    }

    /// Rooms with unflushed moves.
    pub fn dirty_rooms(&self) -> &[u32] {
        &self.dirty
    }

    /// Σ unflushed over the rooms, counted room by room (for checks:
    /// [`CacheBook::unflushed`] is kept alongside).
    pub fn rooms_unflushed(&self) -> u64 {
        self.rooms.iter().map(|rc| rc.unflushed as u64).sum()
    }

    /// The append-only file was fsynced: every move stored so far survives
    /// a crash.
    pub fn fsync(&mut self) {
        self.fsync_epoch = self.fsync_epoch.wrapping_add(1);
    }

    /// Unflushed moves a crash would lose now.
    pub fn would_lose(&self, mode: AppendFsync) -> u64 {
        match mode {
            AppendFsync::No => self.unflushed,
            AppendFsync::Everysec => self.dirty.iter().map(|&r| self.unsynced_unflushed(r) as u64).sum(),
        }
    }

    fn unsynced_unflushed(&self, r: u32) -> u32 {
        let rc = &self.rooms[r as usize];
        if rc.fsync_epoch == self.fsync_epoch {
            rc.unfsynced.min(rc.unflushed)
        } else {
            0
        }
    }

    /// Redis crashes: returns the moves lost. `No`: every unflushed move,
    /// and Redis comes back empty (no game is held whole). `Everysec`: the
    /// unflushed moves written since the last fsync; the rest is reloaded
    /// from the append-only file, and rooms that lost moves are incomplete.
    pub fn crash(&mut self, mode: AppendFsync) -> u64 {
        let lost = match mode {
            AppendFsync::No => {
                for r in std::mem::take(&mut self.dirty) {
                    let rc = &mut self.rooms[r as usize];
                    rc.dirty_pos = NONE;
                    rc.unflushed = 0;
                }
                for rc in &mut self.rooms {
                    rc.complete = false;
                    rc.unfsynced = 0;
                }
                std::mem::take(&mut self.unflushed)
            }
            AppendFsync::Everysec => {
                let mut lost = 0u64;
                for r in self.dirty.clone() {
                    let n = self.unsynced_unflushed(r);
                    if n == 0 {
                        continue;
                    }
                    lost += n as u64;
                    let rc = &mut self.rooms[r as usize];
                    rc.unflushed -= n;
                    rc.complete = false;
                    if rc.unflushed == 0 {
                        self.undirty(r);
                    }
                }
                self.unflushed -= lost;
                self.fsync();
                lost
            }
        };
        self.lost += lost;
        lost
    }
}

/// A flush batch: one commit on the database.
#[derive(Clone, Debug)]
pub struct Batch {
    /// (room, moves) in the batch.
    pub rooms: Vec<(u32, u32)>,
    pub moves: u32,
    /// Made by the write-behind flusher (a batch commit) rather than a
    /// single move written straight to the database.
    pub bulk: bool,
}

/// The flusher: batches on their way to the database, and those waiting
/// to be retried after a failed commit (primary down).
#[derive(Debug, Default)]
pub struct Flusher {
    batches: Slab<Batch>,
    retry: Vec<u32>,
    /// Moves in batches not yet acknowledged.
    pub in_batches: u64,
    /// Moves whose batch was acknowledged (whole run), and batches made.
    pub flushed: u64,
    pub made: u64,
    pub into_batches: u64,
}

impl Flusher {
    /// A new batch; returns its id.
    pub fn make(&mut self, rooms: Vec<(u32, u32)>, bulk: bool) -> u32 {
        let moves: u32 = rooms.iter().map(|r| r.1).sum();
        self.in_batches += moves as u64;
        self.into_batches += moves as u64;
        self.made += 1;
        self.batches.insert(Batch { rooms, moves, bulk }) as u32
    }

    pub fn get(&self, id: u32) -> &Batch {
        &self.batches[id as usize]
    }

    /// The batch's commit was acknowledged: its moves are flushed.
    pub fn committed(&mut self, id: u32) -> Batch {
        let b = self.batches.remove(id as usize);
        self.in_batches -= b.moves as u64;
        self.flushed += b.moves as u64;
        b
    }

    /// The batch's commit failed: retry it when a primary is available.
    pub fn failed(&mut self, id: u32) {
        self.retry.push(id);
    }

    /// The batches to send again, oldest first.
    pub fn take_retries(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.retry)
    }

    pub fn waiting_retry(&self) -> usize {
        self.retry.len()
    }

    /// Batches made but not yet acknowledged.
    pub fn pending(&self) -> usize {
        self.batches.len()
    }

    /// Moves in the batches held, counted batch by batch (for checks:
    /// [`Flusher::in_batches`] is kept alongside).
    pub fn moves_held(&self) -> u64 {
        self.batches.iter().map(|(_, b)| b.moves as u64).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book_with(moves: &[(u32, u32)]) -> CacheBook {
        let mut b = CacheBook::default();
        for &(r, n) in moves {
            for k in 0..n {
                b.store(r, 1, k, SimTime(k as u64));
            }
        }
        b
    }

    #[test]
    fn flush_takes_rooms_and_all() {
        let mut b = book_with(&[(3, 2), (1, 4), (7, 1)]);
        assert_eq!(b.unflushed, 7);
        assert_eq!(b.take_room(1), 4);
        assert_eq!(b.take_room(1), 0);
        assert_eq!(b.take_all(), vec![(3, 2), (7, 1)]);
        assert_eq!((b.unflushed, b.taken, b.stored), (0, 7, 7));
        assert!(b.dirty_rooms().is_empty());
        assert!(b.holds(3, 1) && !b.holds(3, 2));
    }

    #[test]
    fn crash_without_persistence_loses_all_unflushed() {
        let mut b = book_with(&[(0, 3), (1, 2)]);
        b.take_room(0);
        b.store(0, 1, 3, SimTime(9));
        assert_eq!(b.would_lose(AppendFsync::No), 3);
        assert_eq!(b.crash(AppendFsync::No), 3);
        assert_eq!((b.unflushed, b.lost), (0, 3));
        assert!(!b.holds(0, 1) && !b.holds(1, 1), "Redis comes back empty");
        assert_eq!(b.stored, b.taken + b.unflushed + b.lost);
    }

    #[test]
    fn everysec_loses_only_moves_since_the_fsync() {
        let mut b = book_with(&[(0, 3), (1, 2)]);
        b.fsync();
        b.store(0, 1, 3, SimTime(10));
        b.store(2, 1, 0, SimTime(10));
        // Room 1 flushed after the fsync: nothing of it at risk.
        b.take_room(1);
        assert_eq!(b.would_lose(AppendFsync::Everysec), 2);
        assert_eq!(b.crash(AppendFsync::Everysec), 2);
        assert_eq!(b.unflushed, 3, "room 0's three fsynced moves are reloaded");
        assert!(!b.holds(0, 1) && !b.holds(2, 1));
        // A room whose unsynced moves were flushed loses nothing.
        b.fsync();
        b.store(4, 1, 0, SimTime(20));
        b.take_room(4);
        assert_eq!(b.crash(AppendFsync::Everysec), 0);
        assert!(b.holds(4, 1));
        assert_eq!(b.stored, b.taken + b.unflushed + b.lost);
    }

    #[test]
    fn flusher_counts_and_retries() {
        let mut f = Flusher::default();
        let a = f.make(vec![(1, 2), (2, 3)], true);
        let b = f.make(vec![(4, 1)], false);
        assert_eq!((f.in_batches, f.get(a).moves), (6, 5));
        f.failed(b);
        assert_eq!(f.committed(a).moves, 5);
        assert_eq!(f.take_retries(), vec![b]);
        assert_eq!((f.in_batches, f.flushed, f.into_batches), (1, 5, 6));
        assert_eq!(f.pending(), 1);
    }
}
