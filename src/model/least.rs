//! An indexed binary min-heap over server slots, for leastconn: the
//! least-loaded usable server at the top, each server's key updated in
//! place in O(log n) without hashing.

/// Servers `0..n`, each in the heap at most once, ordered by key (smallest
/// first). Keys must be distinct (leastconn makes them so with a touch
/// counter), so the top is a pure function of the keys.
#[derive(Clone, Debug, Default)]
pub struct LeastHeap {
    heap: Vec<u32>,
    /// `pos[s]`: index of server `s` in `heap`, or `ABSENT`.
    pos: Vec<u32>,
    key: Vec<(u64, u64)>,
}

const ABSENT: u32 = u32::MAX;

impl LeastHeap {
    pub fn with_capacity(n: usize) -> Self {
        LeastHeap {
            heap: Vec::with_capacity(n),
            pos: vec![ABSENT; n],
            key: vec![(0, 0); n],
        }
    }

    /// The server with the smallest key.
    #[inline]
    pub fn peek(&self) -> Option<u32> {
        self.heap.first().copied()
    }

    /// Inserts `s` or changes its key.
    pub fn set(&mut self, s: u32, key: (u64, u64)) {
        let si = s as usize;
        if si >= self.pos.len() {
            self.pos.resize(si + 1, ABSENT);
            self.key.resize(si + 1, (0, 0));
        }
        let old = self.key[si];
        self.key[si] = key;
        match self.pos[si] {
            ABSENT => {
                self.heap.push(s);
                self.pos[si] = (self.heap.len() - 1) as u32;
                self.up(self.heap.len() - 1);
            }
            i if key < old => self.up(i as usize),
            i => self.down(i as usize),
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
            self.pos[self.heap[i] as usize] = i as u32;
            self.down(i);
            self.up(i);
        }
    }

    #[inline]
    fn less(&self, a: usize, b: usize) -> bool {
        self.key[self.heap[a] as usize] < self.key[self.heap[b] as usize]
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        self.pos[self.heap[a] as usize] = a as u32;
        self.pos[self.heap[b] as usize] = b as u32;
    }

    fn up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if !self.less(i, parent) {
                break;
            }
            self.swap(i, parent);
            i = parent;
        }
    }

    fn down(&mut self, mut i: usize) {
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut m = i;
            if l < self.heap.len() && self.less(l, m) {
                m = l;
            }
            if r < self.heap.len() && self.less(r, m) {
                m = r;
            }
            if m == i {
                return;
            }
            self.swap(i, m);
            i = m;
        }
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
