//! An indexed binary min-heap over server slots, for leastconn: the
//! least-loaded usable server at the top, each server's key updated in
//! place in O(log n) without hashing.

/// Servers `0..n`, each in the heap at most once, ordered by key (smallest
/// first). Keys must be distinct (leastconn makes them so with a touch
/// counter), so the top is a pure function of the keys. Each heap entry
/// carries its key (one 128-bit compare, no lookup through the server), and
/// `pos` finds a server's entry.
#[derive(Clone, Debug, Default)]
pub struct LeastHeap {
    heap: Vec<Entry>,
    /// `pos[s]`: index of server `s` in `heap`, or `ABSENT`.
    pos: Vec<u32>,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    /// The key `(hi, lo)` as `hi << 64 | lo`: ordered as the pair.
    key: u128,
    server: u32,
}

const ABSENT: u32 = u32::MAX;

#[inline]
fn pack((hi, lo): (u64, u64)) -> u128 {
    ((hi as u128) << 64) | lo as u128
}

impl LeastHeap {
    pub fn with_capacity(n: usize) -> Self {
        LeastHeap {
            heap: Vec::with_capacity(n),
            pos: vec![ABSENT; n],
        }
    }

    /// The server with the smallest key.
    #[inline]
    pub fn peek(&self) -> Option<u32> {
        self.heap.first().map(|e| e.server)
    }

    /// Inserts `s` or changes its key.
    pub fn set(&mut self, s: u32, key: (u64, u64)) {
        let si = s as usize;
        if si >= self.pos.len() {
            self.pos.resize(si + 1, ABSENT);
        }
        let key = pack(key);
        match self.pos[si] {
            ABSENT => {
                self.heap.push(Entry { key, server: s });
                self.pos[si] = (self.heap.len() - 1) as u32;
                self.up(self.heap.len() - 1);
            }
            i => {
                let i = i as usize;
                let old = self.heap[i].key;
                self.heap[i].key = key;
                if key < old { self.up(i) } else { self.down(i) }
            }
        }
    }

    /// Takes `s` out, if it is in.
    pub fn remove(&mut self, s: u32) {
        let Some(&i) = self.pos.get(s as usize) else { return };
        if i == ABSENT {
            return;
        }
        let i = i as usize;
        let last = self.heap.len() - 1;
        self.heap.swap(i, last);
        self.heap.pop();
        self.pos[s as usize] = ABSENT;
        if i < self.heap.len() {
            self.pos[self.heap[i].server as usize] = i as u32;
            self.down(i);
            self.up(i);
        }
    }

    /// Moves the entry at `i` up to its place, shifting parents down
    /// (one write per level, the entry written once at the end).
    fn up(&mut self, mut i: usize) {
        let e = self.heap[i];
        while i > 0 {
            let parent = (i - 1) / 2;
            let p = self.heap[parent];
            if e.key >= p.key {
                break;
            }
            self.place(i, p);
            i = parent;
        }
        self.place(i, e);
    }

    /// Moves the entry at `i` down to its place, shifting the smaller
    /// child up at each level.
    fn down(&mut self, mut i: usize) {
        let e = self.heap[i];
        let n = self.heap.len();
        loop {
            let l = 2 * i + 1;
            if l >= n {
                break;
            }
            let r = l + 1;
            let c = if r < n && self.heap[r].key < self.heap[l].key {
                r
            } else {
                l
            };
            let ce = self.heap[c];
            if ce.key >= e.key {
                break;
            }
            self.place(i, ce);
            i = c;
        }
        self.place(i, e);
    }

    /// Writes `e` at index `i` and records where its server is.
    #[inline(always)]
    fn place(&mut self, i: usize, e: Entry) {
        self.heap[i] = e;
        self.pos[e.server as usize] = i as u32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};

    /// Random sets and removes against a scan of the live keys.
    #[test]
    fn top_is_the_smallest_live_key() {
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(3);
        let n = 37;
        let mut h = LeastHeap::with_capacity(n);
        let mut live: Vec<Option<(u64, u64)>> = vec![None; n];
        for touch in 0..20_000u64 {
            let s = rng.random_range(0..n);
            if rng.random_bool(0.15) {
                h.remove(s as u32);
                live[s] = None;
            } else {
                let k = (rng.random_range(0..8u64), touch);
                h.set(s as u32, k);
                live[s] = Some(k);
            }
            let want = (0..n)
                .filter_map(|s| live[s].map(|k| (k, s as u32)))
                .min()
                .map(|(_, s)| s);
            assert_eq!(h.peek(), want, "after step {touch}");
        }
    }
}
