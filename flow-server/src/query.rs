//! GetFlows semantics over the ring, independent of gRPC: where a request starts (`--last N`,
//! `--first N`, `--since`), what it emits, and when it stops. Scans run in batches with the
//! metadata tables locked once per batch, never across an await.

use crate::filter::{EvalCtx, FilterSet};
use crate::record::{FlowRecord, kind};
use crate::ring::{Read, Ring};

#[derive(Debug, Clone, Default)]
pub struct FlowQuery {
    pub filters: FilterSet,
    /// 0 = no limit.
    pub number: u64,
    pub first: bool,
    pub follow: bool,
    pub since_ns: Option<u64>,
    pub until_ns: Option<u64>,
}

/// One thing to send to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    Flow(FlowRecord),
    /// A perf-buffer loss stored in the ring.
    PerfLost(FlowRecord),
    /// This reader fell behind the writer and `count` records were overwritten unread.
    RingLost {
        count: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// More may be available right away.
    More,
    /// Reached the writer; a follower should wait for new records.
    CaughtUp,
    /// The request is complete.
    Done,
}

#[derive(Debug, Clone, Copy)]
pub struct Cursor {
    pub next: u64,
    /// Exclusive end for non-follow requests (the head when the request started).
    end: u64,
    emitted: u64,
}

impl FlowQuery {
    fn in_time(&self, t: u64) -> bool {
        self.since_ns.is_none_or(|s| t >= s) && self.until_ns.is_none_or(|u| t <= u)
    }

    /// Finds where to start. For `--last N` this scans backwards counting matches.
    pub fn start(&self, ring: &Ring, ctx: &EvalCtx<'_>) -> Cursor {
        let head = ring.head();
        let oldest = ring.oldest();
        let end = if self.follow { u64::MAX } else { head };
        // From the oldest flow: `--first`, or no count unless it is a plain follow.
        if self.first || (self.number == 0 && (!self.follow || self.since_ns.is_some())) {
            return Cursor {
                next: oldest,
                end,
                emitted: 0,
            };
        }
        if self.number == 0 {
            // Plain follow: only new flows.
            return Cursor {
                next: head,
                end,
                emitted: 0,
            };
        }
        let mut found = 0;
        let mut start = head;
        let mut n = head;
        while n > oldest {
            n -= 1;
            match ring.read(n) {
                Read::Record(r) => {
                    if self.since_ns.is_some_and(|s| r.time_ns < s) {
                        break;
                    }
                    start = n;
                    if r.kind == kind::FLOW
                        && self.in_time(r.time_ns)
                        && self.filters.matches(&r, ctx)
                    {
                        found += 1;
                        if found == self.number {
                            break;
                        }
                    }
                }
                Read::NotYet | Read::Overwritten => break,
            }
        }
        Cursor {
            next: start,
            end,
            emitted: 0,
        }
    }

    /// Appends up to `max` items to `out`, advancing `cur`.
    pub fn next_batch(
        &self,
        ring: &Ring,
        cur: &mut Cursor,
        ctx: &EvalCtx<'_>,
        out: &mut Vec<Item>,
        max: usize,
    ) -> Progress {
        let (start_len, mut scanned) = (out.len(), 0);
        while out.len() - start_len < max && scanned < max * 16 {
            if cur.next >= cur.end {
                return Progress::Done;
            }
            if self.number > 0 && cur.emitted >= self.number && (self.first || !self.follow) {
                return Progress::Done;
            }
            match ring.read(cur.next) {
                Read::NotYet => {
                    return if self.follow {
                        Progress::CaughtUp
                    } else {
                        Progress::Done
                    };
                }
                Read::Overwritten => {
                    let oldest = ring.oldest();
                    let count = oldest.saturating_sub(cur.next).max(1);
                    out.push(Item::RingLost { count });
                    cur.next += count;
                }
                Read::Record(r) => {
                    cur.next += 1;
                    scanned += 1;
                    if self.until_ns.is_some_and(|u| r.time_ns > u) {
                        return Progress::Done;
                    }
                    if !self.in_time(r.time_ns) {
                        continue;
                    }
                    match r.kind {
                        kind::LOST => out.push(Item::PerfLost(r)),
                        kind::FLOW if self.filters.matches(&r, ctx) => {
                            cur.emitted += 1;
                            out.push(Item::Flow(r));
                        }
                        _ => {}
                    }
                }
            }
        }
        Progress::More
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::Metadata;
    use crate::record::verdict;
    use periscope_proto::flow::FlowFilter;

    fn fill(n: u64, cap: usize) -> std::sync::Arc<Ring> {
        let (ring, mut w) = Ring::new(cap).expect("ring");
        for i in 0..n {
            let v = if i % 3 == 0 {
                verdict::DROPPED
            } else {
                verdict::FORWARDED
            };
            let mut r = FlowRecord {
                kind: kind::FLOW,
                time_ns: 1000 + i,
                verdict: v,
                ..FlowRecord::EMPTY
            };
            w.push(&mut r);
        }
        ring
    }

    fn run(q: &FlowQuery, ring: &Ring) -> Vec<Item> {
        let md = Metadata::new();
        let ctx = EvalCtx {
            endpoints: &[],
            services: &[],
            metadata: &md,
            node_name: "n1",
            uuid_prefix: "",
        };
        let mut cur = q.start(ring, &ctx);
        let mut out = Vec::new();
        while q.next_batch(ring, &mut cur, &ctx, &mut out, 7) == Progress::More {}
        out
    }

    fn times(items: &[Item]) -> Vec<u64> {
        items
            .iter()
            .filter_map(|i| {
                if let Item::Flow(r) = i {
                    Some(r.time_ns)
                } else {
                    None
                }
            })
            .collect()
    }

    fn dropped() -> FilterSet {
        FilterSet::compile(
            &[FlowFilter {
                verdict: vec![2],
                ..Default::default()
            }],
            &[],
        )
        .expect("valid")
    }

    #[test]
    fn last_n_returns_the_newest_matches_in_order() {
        let ring = fill(100, 64);
        let q = FlowQuery {
            number: 3,
            ..Default::default()
        };
        assert_eq!(times(&run(&q, &ring)), vec![1097, 1098, 1099]);
        let q = FlowQuery {
            number: 3,
            filters: dropped(),
            ..Default::default()
        };
        assert_eq!(times(&run(&q, &ring)), vec![1093, 1096, 1099]);
    }

    #[test]
    fn first_n_and_all() {
        let ring = fill(100, 64);
        let q = FlowQuery {
            number: 2,
            first: true,
            ..Default::default()
        };
        assert_eq!(times(&run(&q, &ring)), vec![1036, 1037]);
        let q = FlowQuery::default();
        assert_eq!(run(&q, &ring).len(), 64);
    }

    #[test]
    fn since_and_until_bound_the_window() {
        let ring = fill(100, 64);
        let q = FlowQuery {
            since_ns: Some(1090),
            until_ns: Some(1092),
            ..Default::default()
        };
        assert_eq!(times(&run(&q, &ring)), vec![1090, 1091, 1092]);
        let q = FlowQuery {
            number: 100,
            since_ns: Some(1095),
            ..Default::default()
        };
        assert_eq!(times(&run(&q, &ring)), vec![1095, 1096, 1097, 1098, 1099]);
    }

    #[test]
    fn blacklist_excludes() {
        let ring = fill(10, 64);
        let bl = FilterSet::compile(
            &[],
            &[FlowFilter {
                verdict: vec![2],
                ..Default::default()
            }],
        )
        .expect("valid");
        let q = FlowQuery {
            filters: bl,
            ..Default::default()
        };
        assert!(times(&run(&q, &ring)).iter().all(|t| (t - 1000) % 3 != 0));
    }

    #[test]
    fn a_reader_that_falls_behind_gets_a_lost_count() {
        let (ring, mut w) = Ring::new(8).expect("ring");
        for i in 0..4 {
            w.push(&mut FlowRecord {
                kind: kind::FLOW,
                time_ns: i,
                ..FlowRecord::EMPTY
            });
        }
        let md = Metadata::new();
        let ctx = EvalCtx {
            endpoints: &[],
            services: &[],
            metadata: &md,
            node_name: "n1",
            uuid_prefix: "",
        };
        let q = FlowQuery {
            follow: true,
            number: 1,
            ..Default::default()
        };
        let mut cur = q.start(&ring, &ctx);
        let mut out = Vec::new();
        assert_eq!(
            q.next_batch(&ring, &mut cur, &ctx, &mut out, 100),
            Progress::CaughtUp
        );
        assert_eq!(times(&out), vec![3]);
        // The writer laps the reader.
        for i in 4..30 {
            w.push(&mut FlowRecord {
                kind: kind::FLOW,
                time_ns: i,
                ..FlowRecord::EMPTY
            });
        }
        out.clear();
        q.next_batch(&ring, &mut cur, &ctx, &mut out, 100);
        assert_eq!(out[0], Item::RingLost { count: 18 });
        assert_eq!(times(&out[1..]), (22..30).collect::<Vec<_>>());
    }
}
