//! Database replication state: the primary's binlog, each replica's
//! received and applied positions, and the last committed write of every
//! key (for stale reads).
//!
//! Pure bookkeeping, no events: `sim::storage` drives it. Positions are
//! binlog sequence numbers (`seq`), strictly increasing along the binlog;
//! a failover may leave a gap (the lost commits' numbers are not reused).
//! Lag is measured in work: rows committed on the primary that a replica
//! has not applied, divided by its apply capacity (rows/s), i.e. the time
//! a commit made now would wait for the backlog ahead of it.

use std::collections::{HashMap, VecDeque};

use crate::time::SimTime;

/// One commit in the binlog.
#[derive(Clone, Debug, PartialEq)]
pub struct BinlogEntry {
    pub seq: u64,
    pub rows: u32,
    /// Moves this commit persists (rows of a flush batch), for counting
    /// moves lost with it.
    pub moves: u32,
    pub committed_at: SimTime,
    /// The client has been told it committed (async: at once; semi-sync:
    /// when a replica acknowledged, or after the fallback).
    pub acked: bool,
    /// The operation waiting for a semi-sync ack (`u32::MAX`: none).
    pub waiting_op: u32,
    /// Keys written (their last-write position is this commit).
    pub keys: Vec<u64>,
}

/// The primary's binlog from the oldest position some replica still needs.
#[derive(Debug, Default)]
pub struct Binlog {
    entries: VecDeque<BinlogEntry>,
    /// The last sequence number handed out (0: none yet).
    last_seq: u64,
    /// The newest commit of the current history (below `last_seq` after a
    /// failover lost commits).
    head: u64,
    /// Rows committed since the start, on the current primary's history
    /// (lost commits are taken out at failover).
    pub committed_rows: u64,
    /// Commits appended since the start (lost ones included).
    pub commits: u64,
}

impl Binlog {
    /// Appends a commit; returns its sequence number.
    pub fn append(&mut self, now: SimTime, rows: u32, moves: u32, acked: bool, keys: Vec<u64>) -> u64 {
        self.last_seq += 1;
        self.head = self.last_seq;
        self.committed_rows += rows as u64;
        self.commits += 1;
        self.entries.push_back(BinlogEntry {
            seq: self.last_seq,
            rows,
            moves,
            committed_at: now,
            acked,
            waiting_op: u32::MAX,
            keys,
        });
        self.last_seq
    }

    /// The position of the newest commit in the current history.
    pub fn head(&self) -> u64 {
        self.head
    }

    /// Index of the first entry after position `seq`.
    fn index_after(&self, seq: u64) -> usize {
        self.entries.partition_point(|e| e.seq <= seq)
    }

    /// Entries after position `seq`, oldest first.
    pub fn after(&self, seq: u64) -> impl Iterator<Item = &BinlogEntry> {
        self.entries.range(self.index_after(seq)..)
    }

    pub fn get_mut(&mut self, seq: u64) -> Option<&mut BinlogEntry> {
        let i = self.entries.partition_point(|e| e.seq < seq);
        self.entries.get_mut(i).filter(|e| e.seq == seq)
    }

    /// Forgets entries at or before `seq` (every replica has them).
    pub fn purge_through(&mut self, seq: u64) {
        let n = self.index_after(seq);
        self.entries.drain(..n);
    }

    /// A failover to a replica that received up to `seq`: later entries
    /// are lost. Returns them (oldest first) and takes their rows out of
    /// `committed_rows`. Sequence numbers go on from the old head, so the
    /// lost ones are never reused.
    pub fn truncate_after(&mut self, seq: u64) -> Vec<BinlogEntry> {
        let n = self.index_after(seq);
        let lost: Vec<BinlogEntry> = self.entries.drain(n..).collect();
        self.head = self.head.min(seq);
        self.committed_rows -= lost.iter().map(|e| e.rows as u64).sum::<u64>();
        lost
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// How far a replica has received and applied the binlog.
///
/// Commits are received in binlog order and start applying in that order;
/// with several applier threads they may finish out of order. The applied
/// position is the low watermark: every commit at or before it is applied
/// (MySQL's `replica_preserve_commit_order`). `window` holds the received
/// commits after the watermark with whether each is done.
#[derive(Debug, Default, Clone)]
pub struct Progress {
    pub received_seq: u64,
    pub received_rows: u64,
    pub received: u64,
    pub applied_seq: u64,
    /// Rows of commits applied (including ones done out of order).
    pub applied_rows: u64,
    /// Commits applied (including ones done out of order).
    pub applied: u64,
    window: VecDeque<(u64, u32, bool)>,
}

impl Progress {
    /// Starts at position `seq` with `rows` rows behind it (a fresh clone).
    pub fn at(seq: u64, rows: u64) -> Self {
        Progress {
            received_seq: seq,
            received_rows: rows,
            applied_seq: seq,
            applied_rows: rows,
            ..Default::default()
        }
    }

    /// The next commit of the binlog arrives (in order).
    pub fn receive(&mut self, seq: u64, rows: u32) {
        debug_assert!(seq > self.received_seq, "binlog received out of order");
        self.received_seq = seq;
        self.received_rows += rows as u64;
        self.received += 1;
        self.window.push_back((seq, rows, false));
    }

    /// Commit `seq` is applied; returns false if it was not waiting.
    pub fn applied(&mut self, seq: u64) -> bool {
        let i = self.window.partition_point(|w| w.0 < seq);
        match self.window.get_mut(i) {
            Some(w) if w.0 == seq && !w.2 => {
                w.2 = true;
                self.applied_rows += w.1 as u64;
                self.applied += 1;
            }
            _ => return false,
        }
        while let Some(&(s, _, true)) = self.window.front() {
            self.applied_seq = s;
            self.window.pop_front();
        }
        true
    }

    /// Received commits not yet applied, oldest first (to queue again
    /// after a crash: the relay log survives it).
    pub fn unapplied(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        self.window.iter().filter(|w| !w.2).map(|w| (w.0, w.1))
    }

    /// Commits received but not applied.
    pub fn backlog(&self) -> u64 {
        self.received - self.applied
    }

    /// Everything received is applied.
    pub fn caught_up(&self) -> bool {
        self.applied_seq == self.received_seq
    }
}

/// Seconds a commit made now would wait behind `backlog_rows` at
/// `capacity_rows_per_s` (threads × apply rate).
pub fn lag_s(backlog_rows: u64, capacity_rows_per_s: f64) -> f64 {
    backlog_rows as f64 / capacity_rows_per_s
}

/// The position of the latest committed write of each key.
#[derive(Debug, Default)]
pub struct KeySeqs {
    last: HashMap<u64, u64>,
}

impl KeySeqs {
    pub fn write(&mut self, key: u64, seq: u64) {
        self.last.insert(key, seq);
    }
    /// 0 when never written.
    pub fn latest(&self, key: u64) -> u64 {
        self.last.get(&key).copied().unwrap_or(0)
    }
    /// A read of `key` on a node that applied up to `applied_seq` misses
    /// its latest committed write.
    pub fn is_stale(&self, key: u64, applied_seq: u64) -> bool {
        applied_seq < self.latest(key)
    }
    /// The commits of `lost` did not survive a failover to a node at
    /// `survivor`: keys whose latest write was one of them are treated as
    /// last written at `survivor` (their earlier write is not remembered;
    /// this can only overstate staleness, until the next write).
    pub fn rewind(&mut self, lost: &[BinlogEntry], survivor: u64) {
        for e in lost {
            for k in &e.keys {
                if let Some(s) = self.last.get_mut(k)
                    && *s == e.seq
                {
                    *s = survivor;
                }
            }
        }
    }
}

/// Least-squares slope of `y` over `x` (NaN with fewer than two distinct x).
pub fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return f64::NAN;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if sxx <= 0.0 { f64::NAN } else { sxy / sxx }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binlog_appends_purges_and_truncates() {
        let mut b = Binlog::default();
        for i in 0..5u64 {
            let s = b.append(SimTime(i), 10, 10, true, vec![i]);
            assert_eq!(s, i + 1);
        }
        assert_eq!((b.head(), b.committed_rows), (5, 50));
        assert_eq!(b.after(3).map(|e| e.seq).collect::<Vec<_>>(), vec![4, 5]);
        b.purge_through(2);
        assert_eq!(b.len(), 3);
        assert_eq!(b.after(0).next().unwrap().seq, 3);
        let lost = b.truncate_after(3);
        assert_eq!(lost.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![4, 5]);
        assert_eq!((b.committed_rows, b.head()), (30, 3));
        // Numbers go on after the lost ones.
        assert_eq!(b.append(SimTime(9), 1, 0, true, vec![]), 6);
        assert_eq!(b.after(3).map(|e| e.seq).collect::<Vec<_>>(), vec![6]);
        assert!(b.get_mut(4).is_none() && b.get_mut(6).is_some());
    }

    #[test]
    fn watermark_waits_for_out_of_order_commits() {
        let mut p = Progress::default();
        for s in [1, 2, 3, 5] {
            p.receive(s, 2);
        }
        assert!(p.applied(2));
        assert_eq!(p.applied_seq, 0, "1 is not applied yet");
        assert!(!p.applied(2), "twice");
        assert!(p.applied(1));
        assert_eq!(p.applied_seq, 2);
        assert!(p.applied(5));
        assert_eq!((p.applied_seq, p.backlog(), p.applied_rows), (2, 1, 6));
        assert_eq!(p.unapplied().collect::<Vec<_>>(), vec![(3, 2)]);
        assert!(p.applied(3));
        assert!(p.caught_up() && p.applied_seq == 5);
    }

    #[test]
    fn stale_reads_and_rewind() {
        let mut k = KeySeqs::default();
        assert!(!k.is_stale(7, 0), "never written: never stale");
        k.write(7, 4);
        assert!(k.is_stale(7, 3) && !k.is_stale(7, 4));
        let lost = vec![BinlogEntry {
            seq: 4,
            rows: 1,
            moves: 0,
            committed_at: SimTime::ZERO,
            acked: true,
            waiting_op: u32::MAX,
            keys: vec![7],
        }];
        k.rewind(&lost, 2);
        assert_eq!(k.latest(7), 2);
    }

    #[test]
    fn slope_of_a_line() {
        let pts: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, 3.0 + 0.5 * i as f64)).collect();
        assert!((slope(&pts) - 0.5).abs() < 1e-12);
        assert!(slope(&pts[..1]).is_nan());
        assert!((lag_s(1000, 500.0) - 2.0).abs() < 1e-12);
    }
}
