//! The viewer's bounded flow buffer: the newest `capacity` flows, each with a sequence number and
//! its table row rendered lazily (once, the first time the flow is on screen). At high rates
//! most flows scroll past between two frames; those are never rendered, only counted.

use std::collections::VecDeque;

use periscope_proto::flow::Flow;

use super::row::{RowOptions, RowText};

/// One buffered flow.
#[derive(Debug)]
pub struct Entry {
    pub seq: u64,
    pub flow: Flow,
    row: Option<Box<RowText>>,
}

/// The newest flows, oldest first.
#[derive(Debug)]
pub struct FlowBuffer {
    entries: VecDeque<Entry>,
    capacity: usize,
    next_seq: u64,
    /// Flows whose row was ever drawn.
    shown: u64,
    /// Flows that left the buffer without ever being drawn.
    not_shown: u64,
    /// Flows that left the buffer (drawn or not).
    evicted: u64,
}

impl FlowBuffer {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            entries: VecDeque::with_capacity(capacity.min(1 << 16)),
            capacity,
            next_seq: 0,
            shown: 0,
            not_shown: 0,
            evicted: 0,
        }
    }

    pub fn push(&mut self, flow: Flow) {
        if self.entries.len() == self.capacity
            && let Some(old) = self.entries.pop_front()
        {
            self.evicted += 1;
            if old.row.is_none() {
                self.not_shown += 1;
            }
        }
        self.entries.push_back(Entry {
            seq: self.next_seq,
            flow,
            row: None,
        });
        self.next_seq += 1;
    }

    /// Forgets every flow (a new query replaces them, so they do not count as scrolled past
    /// unseen); counters keep running.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Sequence number of the oldest and newest buffered flow.
    pub fn seq_range(&self) -> Option<(u64, u64)> {
        Some((self.entries.front()?.seq, self.entries.back()?.seq))
    }

    /// The flow with sequence number `seq`, if still buffered.
    pub fn get(&self, seq: u64) -> Option<&Entry> {
        let first = self.entries.front()?.seq;
        let idx = usize::try_from(seq.checked_sub(first)?).ok()?;
        self.entries.get(idx)
    }

    /// Rows `from..=to` (sequence numbers, clamped to what is buffered), rendering the ones never
    /// drawn before.
    pub fn rows(&mut self, from: u64, to: u64, opts: RowOptions) -> Vec<(u64, &RowText)> {
        let Some((first, last)) = self.seq_range() else {
            return Vec::new();
        };
        let (from, to) = (from.max(first), to.min(last));
        if from > to {
            return Vec::new();
        }
        let (start, end) = (
            usize::try_from(from - first).unwrap_or(usize::MAX),
            usize::try_from(to - first).unwrap_or(usize::MAX),
        );
        let mut out = Vec::with_capacity(end.saturating_sub(start) + 1);
        for e in self
            .entries
            .range_mut(start..=end.min(self.entries.len() - 1))
        {
            if e.row.is_none() {
                self.shown += 1;
            }
            let row = e
                .row
                .get_or_insert_with(|| Box::new(RowText::new(&e.flow, opts)));
            out.push((e.seq, &**row));
        }
        out
    }

    /// Drops every rendered row (e.g. after a change of display options).
    pub fn forget_rows(&mut self) {
        for e in &mut self.entries {
            e.row = None;
        }
    }

    pub fn shown(&self) -> u64 {
        self.shown
    }

    pub fn not_shown(&self) -> u64 {
        self.not_shown
    }

    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Flows ever pushed.
    pub fn total(&self) -> u64 {
        self.next_seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(node: &str) -> Flow {
        Flow {
            node_name: node.into(),
            ..Default::default()
        }
    }

    #[test]
    fn keeps_the_newest_and_counts_what_was_never_drawn() {
        let mut b = FlowBuffer::new(3);
        for i in 0..5 {
            b.push(flow(&format!("n{i}")));
        }
        assert_eq!(b.len(), 3);
        assert_eq!(b.seq_range(), Some((2, 4)));
        assert_eq!(b.get(1).map(|e| e.seq), None);
        assert_eq!(b.get(3).map(|e| e.flow.node_name.as_str()), Some("n3"));
        assert_eq!((b.evicted(), b.not_shown()), (2, 2));

        let rows = b.rows(0, 3, RowOptions::default());
        let seqs: Vec<u64> = rows.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, vec![2, 3]);
        assert_eq!(b.shown(), 2);
        // Drawing again renders nothing new.
        let _ = b.rows(2, 4, RowOptions::default());
        assert_eq!(b.shown(), 3);
        b.push(flow("n5"));
        b.push(flow("n6"));
        // Both evicted flows had been drawn.
        assert_eq!((b.evicted(), b.not_shown()), (4, 2));
        assert_eq!(b.total(), 7);
        b.clear();
        assert!(b.is_empty());
        assert_eq!(b.not_shown(), 2);
    }
}
