//! The sort buffer that merges per-node flow streams into one stream in time order.
//!
//! Each node streams its flows in (nearly) time order, so an item can be emitted once every
//! other live node has either got something queued, already sent something at least as new, or
//! ended. Waiting for that makes the merge exact; two bounds keep it from stalling:
//! - a node that has sent nothing for `drain` no longer holds the others back (the drain
//!   timeout: a quiet node cannot stall the stream) once an item has waited `window` (the
//!   reorder window, which sorts flows that quiet nodes send at about the same time), and
//! - at most `capacity` items are held; past that the oldest is emitted regardless.
//!
//! Pure: the caller passes `now` and sleeps until [`SortBuffer::next_deadline`].

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// A node stream feeding the buffer, valid until [`SortBuffer::end_source`] and its items drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SourceId(usize);

#[derive(Debug)]
struct Source {
    live: bool,
    queued: usize,
    /// Newest event time seen from this source.
    last_time: Option<i128>,
    last_activity: Instant,
}

struct Entry<T> {
    time: i128,
    seq: u64,
    source: usize,
    arrived: Instant,
    item: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}
impl<T> Eq for Entry<T> {}
impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Entry<T> {
    // Reversed: BinaryHeap is a max-heap and we want the oldest first (ties in arrival order).
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time, other.seq).cmp(&(self.time, self.seq))
    }
}

pub struct SortBuffer<T> {
    heap: BinaryHeap<Entry<T>>,
    sources: Vec<Option<Source>>,
    free: Vec<usize>,
    seq: u64,
    capacity: usize,
    drain: Duration,
    window: Duration,
}

impl<T> SortBuffer<T> {
    pub fn new(capacity: usize, drain: Duration, window: Duration) -> Self {
        Self {
            heap: BinaryHeap::with_capacity(capacity.min(1 << 16) + 1),
            sources: Vec::new(),
            free: Vec::new(),
            seq: 0,
            capacity: capacity.max(1),
            drain,
            window: window.min(drain),
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Sources not yet ended.
    pub fn live_sources(&self) -> usize {
        self.sources.iter().flatten().filter(|s| s.live).count()
    }

    pub fn add_source(&mut self, now: Instant) -> SourceId {
        let s = Source {
            live: true,
            queued: 0,
            last_time: None,
            last_activity: now,
        };
        match self.free.pop() {
            Some(i) => {
                self.sources[i] = Some(s);
                SourceId(i)
            }
            None => {
                self.sources.push(Some(s));
                SourceId(self.sources.len() - 1)
            }
        }
    }

    /// The source will send nothing more; its queued items still drain in order.
    pub fn end_source(&mut self, id: SourceId) {
        if let Some(s) = self.sources.get_mut(id.0).and_then(Option::as_mut) {
            s.live = false;
            if s.queued == 0 {
                self.release(id.0);
            }
        }
    }

    fn release(&mut self, i: usize) {
        self.sources[i] = None;
        self.free.push(i);
    }

    /// Queues an item from `id`. `time` is its event time; items without one sort as the newest
    /// thing their source has sent so far.
    pub fn push(&mut self, id: SourceId, time: Option<i128>, item: T, now: Instant) {
        let Some(s) = self.sources.get_mut(id.0).and_then(Option::as_mut) else {
            return;
        };
        let time = time.or(s.last_time).unwrap_or(i128::MIN);
        s.last_time = Some(s.last_time.map_or(time, |t| t.max(time)));
        s.last_activity = now;
        s.queued += 1;
        self.seq += 1;
        self.heap.push(Entry {
            time,
            seq: self.seq,
            source: id.0,
            arrived: now,
            item,
        });
    }

    /// Until when source `s` holds back `e` (it may still send something older), if it does.
    fn holds_back_until(&self, s: &Source, e: &Entry<T>, now: Instant) -> Option<Instant> {
        let until = (s.last_activity + self.drain).max(e.arrived + self.window);
        (s.live && s.queued == 0 && s.last_time.is_none_or(|t| t < e.time) && now < until)
            .then_some(until)
    }

    /// The oldest item, if it can be emitted now.
    pub fn pop_ready(&mut self, now: Instant) -> Option<T> {
        let min = self.heap.peek()?;
        if self.heap.len() <= self.capacity
            && self
                .sources
                .iter()
                .flatten()
                .any(|s| self.holds_back_until(s, min, now).is_some())
        {
            return None;
        }
        self.pop_oldest()
    }

    /// The oldest item regardless of what may still arrive (for shedding load).
    pub fn pop_oldest(&mut self) -> Option<T> {
        let e = self.heap.pop()?;
        if let Some(s) = self.sources.get_mut(e.source).and_then(Option::as_mut) {
            s.queued -= 1;
            if !s.live && s.queued == 0 {
                self.release(e.source);
            }
        }
        Some(e.item)
    }

    /// When the items held now become emittable without new input (a holding source times
    /// out); `None` if nothing is held back.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let min = self.heap.peek()?;
        self.sources
            .iter()
            .flatten()
            .filter_map(|s| self.holds_back_until(s, min, now))
            .max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DRAIN: Duration = Duration::from_secs(1);
    const WINDOW: Duration = Duration::from_millis(100);

    fn drain_ready(b: &mut SortBuffer<i128>, now: Instant) -> Vec<i128> {
        std::iter::from_fn(|| b.pop_ready(now)).collect()
    }

    #[test]
    fn merges_sorted_streams_exactly() {
        let t0 = Instant::now();
        let mut b = SortBuffer::new(1000, DRAIN, WINDOW);
        let a = b.add_source(t0);
        let c = b.add_source(t0);
        let mut out = Vec::new();
        // Interleaved arrivals in batches, each source sorted.
        for (src, times) in [
            (a, vec![1, 4, 9]),
            (c, vec![2, 3]),
            (a, vec![10, 12]),
            (c, vec![5, 11, 13]),
        ] {
            for t in times {
                b.push(src, Some(t), t, t0);
            }
            out.extend(drain_ready(&mut b, t0));
        }
        // 12 goes too: `c` has already sent 13, so it cannot send anything older.
        assert_eq!(out, vec![1, 2, 3, 4, 5, 9, 10, 11, 12]);
        b.end_source(a);
        b.end_source(c);
        out.extend(drain_ready(&mut b, t0));
        assert_eq!(out, vec![1, 2, 3, 4, 5, 9, 10, 11, 12, 13]);
        assert!(b.is_empty());
        assert_eq!(b.live_sources(), 0);
    }

    #[test]
    fn a_quiet_source_stops_holding_back_after_the_drain_timeout() {
        let t0 = Instant::now();
        let mut b = SortBuffer::new(1000, DRAIN, WINDOW);
        let busy = b.add_source(t0);
        let _quiet = b.add_source(t0);
        b.push(busy, Some(5), 5, t0);
        assert_eq!(
            b.pop_ready(t0),
            None,
            "quiet source may still send older flows"
        );
        assert_eq!(b.next_deadline(t0), Some(t0 + DRAIN));
        let later = t0 + DRAIN;
        assert_eq!(drain_ready(&mut b, later), vec![5]);
        assert_eq!(b.next_deadline(later), None);
    }

    #[test]
    fn a_source_holds_back_only_items_newer_than_what_it_sent() {
        let t0 = Instant::now();
        let mut b = SortBuffer::new(1000, DRAIN, WINDOW);
        let a = b.add_source(t0);
        let c = b.add_source(t0);
        b.push(c, Some(10), 10, t0);
        b.push(a, Some(7), 7, t0);
        assert_eq!(drain_ready(&mut b, t0), vec![7], "a may still send 8..10");
        b.push(a, Some(8), 8, t0);
        assert_eq!(drain_ready(&mut b, t0), vec![8]);
        // Once `a` has sent something newer than 10, 10 goes; 20 then waits for `c`.
        b.push(a, Some(20), 20, t0);
        assert_eq!(drain_ready(&mut b, t0), vec![10]);
        assert_eq!(b.pop_ready(t0), None, "c has only sent up to 10");
    }

    #[test]
    fn flows_from_quiet_sources_are_sorted_within_the_reorder_window() {
        let t0 = Instant::now();
        let mut b = SortBuffer::new(1000, DRAIN, WINDOW);
        let a = b.add_source(t0);
        let c = b.add_source(t0);
        // Both quiet for longer than the drain timeout.
        let t1 = t0 + DRAIN * 5;
        b.push(c, Some(11), 11, t1);
        assert_eq!(b.pop_ready(t1), None, "held for the reorder window");
        assert_eq!(b.next_deadline(t1), Some(t1 + WINDOW));
        // `a`'s older flow arrives a little later and still goes first.
        let t2 = t1 + WINDOW / 2;
        b.push(a, Some(10), 10, t2);
        assert_eq!(drain_ready(&mut b, t2), vec![10]);
        assert_eq!(b.pop_ready(t2), None, "a was just active: it holds back 11");
        assert_eq!(drain_ready(&mut b, t2 + DRAIN), vec![11]);
    }

    #[test]
    fn capacity_bounds_what_is_held() {
        let t0 = Instant::now();
        let mut b = SortBuffer::new(3, DRAIN, WINDOW);
        let a = b.add_source(t0);
        let _stalled = b.add_source(t0);
        for t in [4, 1, 3, 2, 5] {
            b.push(a, Some(t), t, t0);
        }
        assert_eq!(drain_ready(&mut b, t0), vec![1, 2]);
        assert_eq!(b.len(), 3);
    }

    #[test]
    fn timeless_items_follow_their_source_and_slots_are_reused() {
        let t0 = Instant::now();
        let mut b = SortBuffer::new(10, DRAIN, WINDOW);
        let a = b.add_source(t0);
        b.push(a, Some(3), 3, t0);
        b.push(a, None, 99, t0);
        b.end_source(a);
        assert_eq!(drain_ready(&mut b, t0), vec![3, 99]);
        let again = b.add_source(t0);
        assert_eq!(again, a, "slot reused after the source drained");
        // Pushing to an unknown source is ignored, not a panic.
        b.push(SourceId(77), Some(1), 1, t0);
        b.end_source(SourceId(77));
        assert_eq!(b.len(), 0);
    }
}
