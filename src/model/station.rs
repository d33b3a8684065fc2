//! A service station: `c` identical servers in front of one FIFO queue
//! (an M/G/c queue when arrivals are Poisson), with an optional bound on
//! the queue, crashes, and a busy-time integral for utilisation.
//!
//! It knows nothing of the event queue or of what its items are: the
//! simulation samples a service time for each item the station starts,
//! schedules a completion event carrying the item's id and the station's
//! epoch, and hands that back to [`Station::complete`]. Completions of an
//! earlier life (before a crash) are recognised by the epoch and ignored.
//!
//! Used for TLS handshakes on a balancer node's cores, the single-threaded
//! Redis, the database primary's cores, replica appliers and read cores,
//! nginx cores and gunicorn workers.

use std::collections::VecDeque;

use crate::time::SimTime;

/// What happened to an arriving item.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit<T> {
    /// A server was free: the item is in service with this id; the caller
    /// schedules its completion.
    Started(u32),
    /// Every server is busy: the item waits.
    Queued,
    /// The queue is full (or the station is down): the item is handed back.
    Rejected(T),
}

/// `c` servers and one FIFO.
#[derive(Debug)]
pub struct Station<T> {
    servers: u32,
    /// Most items that may wait (not counting those in service).
    max_queue: usize,
    queue: VecDeque<T>,
    in_service: Vec<(u32, T)>,
    next_id: u32,
    epoch: u32,
    up: bool,
    busy_area: u128,
    busy_since: SimTime,
    busy_sampled: u128,
    /// Items that arrived, started, completed and were lost (for checks).
    pub arrived: u64,
    pub completed: u64,
    pub lost: u64,
    pub rejected: u64,
}

impl<T> Station<T> {
    /// A station with `servers` (≥ 1) servers and at most `max_queue` waiting
    /// items (`usize::MAX`: unbounded but for the caller's own bounds).
    pub fn new(servers: u32, max_queue: usize) -> Self {
        assert!(servers >= 1, "a station needs at least one server");
        Station {
            servers,
            max_queue,
            queue: VecDeque::new(),
            in_service: Vec::with_capacity(servers as usize),
            next_id: 0,
            epoch: 0,
            up: true,
            busy_area: 0,
            busy_since: SimTime::ZERO,
            busy_sampled: 0,
            arrived: 0,
            completed: 0,
            lost: 0,
            rejected: 0,
        }
    }

    pub fn servers(&self) -> u32 {
        self.servers
    }
    pub fn epoch(&self) -> u32 {
        self.epoch
    }
    pub fn is_up(&self) -> bool {
        self.up
    }
    /// Items waiting (not in service).
    pub fn queued(&self) -> usize {
        self.queue.len()
    }
    pub fn busy(&self) -> usize {
        self.in_service.len()
    }
    /// Items waiting or in service.
    pub fn len(&self) -> usize {
        self.queue.len() + self.in_service.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The items waiting, oldest first.
    pub fn waiting(&self) -> impl Iterator<Item = &T> {
        self.queue.iter()
    }
    /// The items in service.
    pub fn serving(&self) -> impl Iterator<Item = &T> {
        self.in_service.iter().map(|(_, t)| t)
    }

    fn account(&mut self, now: SimTime) {
        let dt = now.0.saturating_sub(self.busy_since.0) as u128;
        self.busy_area += self.in_service.len() as u128 * dt;
        self.busy_since = now;
    }

    fn start(&mut self, item: T) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        self.in_service.push((id, item));
        id
    }

    /// An item arrives at `now`.
    pub fn arrive(&mut self, now: SimTime, item: T) -> Admit<T> {
        if !self.up {
            self.rejected += 1;
            return Admit::Rejected(item);
        }
        if (self.in_service.len() as u32) < self.servers {
            self.arrived += 1;
            self.account(now);
            return Admit::Started(self.start(item));
        }
        if self.queue.len() >= self.max_queue {
            self.rejected += 1;
            return Admit::Rejected(item);
        }
        self.arrived += 1;
        self.queue.push_back(item);
        Admit::Queued
    }

    /// The item `id` of life `epoch` finished at `now`. Returns it, or `None`
    /// for a completion from before a crash. Call [`Station::next`] after it
    /// to start waiting items.
    pub fn complete(&mut self, now: SimTime, epoch: u32, id: u32) -> Option<T> {
        if epoch != self.epoch {
            return None;
        }
        let i = self.in_service.iter().position(|&(j, _)| j == id)?;
        self.account(now);
        self.completed += 1;
        Some(self.in_service.swap_remove(i).1)
    }

    /// Starts the next waiting item if a server is free: returns its id and
    /// a reference to it so the caller can sample its service time.
    pub fn next(&mut self, now: SimTime) -> Option<(u32, &T)> {
        if !self.up || self.in_service.len() as u32 >= self.servers {
            return None;
        }
        let item = self.queue.pop_front()?;
        self.account(now);
        let id = self.start(item);
        self.in_service.last().map(|(_, t)| (id, t))
    }

    /// The station fails: every item in it is lost and returned (waiting
    /// ones first, then those in service); arrivals are rejected until
    /// [`Station::restart`].
    pub fn crash(&mut self, now: SimTime) -> Vec<T> {
        self.account(now);
        self.up = false;
        self.epoch = self.epoch.wrapping_add(1);
        let lost: Vec<T> = self
            .queue
            .drain(..)
            .chain(self.in_service.drain(..).map(|(_, t)| t))
            .collect();
        self.lost += lost.len() as u64;
        lost
    }

    pub fn restart(&mut self, now: SimTime) {
        self.account(now);
        self.up = true;
    }

    /// Mean busy servers ÷ servers since the previous call.
    pub fn utilisation_since_last(&mut self, now: SimTime, since: SimTime) -> f64 {
        self.account(now);
        let d = self.busy_area - self.busy_sampled;
        self.busy_sampled = self.busy_area;
        let span = now.0.saturating_sub(since.0).max(1) as f64;
        d as f64 / (self.servers as f64 * span)
    }

    /// Conservation: arrived = completed + lost + in the station.
    pub fn conserved(&self) -> bool {
        self.arrived == self.completed + self.lost + self.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_with_c_servers() {
        let mut st: Station<&str> = Station::new(2, 1);
        let t = SimTime::ZERO;
        assert_eq!(st.arrive(t, "a"), Admit::Started(0));
        assert_eq!(st.arrive(t, "b"), Admit::Started(1));
        assert_eq!(st.arrive(t, "c"), Admit::Queued);
        assert_eq!(st.arrive(t, "d"), Admit::Rejected("d"));
        assert_eq!(st.complete(SimTime(10), 0, 1), Some("b"));
        assert_eq!(st.next(SimTime(10)).map(|(id, t)| (id, *t)), Some((2, "c")));
        assert_eq!(st.next(SimTime(10)), None);
        // Busy: 2 servers for 10 ns of 20 → 0.5 over [0, 20].
        let u = st.utilisation_since_last(SimTime(20), SimTime::ZERO);
        assert!((u - 1.0).abs() < 1e-9, "both busy throughout: {u}");
        assert!(st.conserved());
        assert_eq!((st.arrived, st.rejected), (3, 1));
    }

    #[test]
    fn crash_loses_everything_and_ignores_old_completions() {
        let mut st: Station<u32> = Station::new(1, usize::MAX);
        let t = SimTime::ZERO;
        assert_eq!(st.arrive(t, 1), Admit::Started(0));
        assert_eq!(st.arrive(t, 2), Admit::Queued);
        assert_eq!(st.crash(SimTime(5)), vec![2, 1]);
        assert_eq!(st.complete(SimTime(6), 0, 0), None, "stale epoch");
        assert_eq!(st.arrive(SimTime(7), 3), Admit::Rejected(3));
        st.restart(SimTime(8));
        assert_eq!(st.arrive(SimTime(9), 4), Admit::Started(1));
        assert_eq!(st.complete(SimTime(10), st.epoch(), 1), Some(4));
        assert!(st.conserved());
        assert_eq!(st.lost, 2);
    }
}
