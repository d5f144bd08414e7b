//! Counters over a sliding window of whole seconds: flows/s, drops/s, top talkers and top drop
//! reasons over the last minute. Each second has its own bucket and the window keeps running
//! totals, so adding a flow and expiring a second are both O(entries touched), never a rescan.

use std::collections::{HashMap, VecDeque};

use periscope_proto::flow::{DropReason, Flow, Verdict};

/// Seconds the top lists cover.
pub const WINDOW_SECS: u64 = 60;
/// Seconds the flows/s and drops/s rates average over.
pub const RATE_SECS: u64 = 5;
/// Distinct talkers tracked per window; more are counted under [`OTHER`].
pub const MAX_TALKERS: usize = 4096;
/// The bucket for talkers beyond [`MAX_TALKERS`].
pub const OTHER: &str = "(other)";

#[derive(Debug, Default)]
struct Bucket {
    second: u64,
    flows: u64,
    drops: u64,
    talkers: HashMap<Box<str>, u64>,
    reasons: HashMap<i32, u64>,
}

/// Sliding-window statistics. Time is passed in as whole seconds from any fixed origin, so
/// tests need no clock.
#[derive(Debug, Default)]
pub struct Stats {
    buckets: VecDeque<Bucket>,
    talkers: HashMap<Box<str>, u64>,
    reasons: HashMap<i32, u64>,
    /// Reused to build talker names without allocating per flow.
    scratch: String,
}

impl Stats {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one flow seen at `second`.
    pub fn add(&mut self, f: &Flow, second: u64) {
        self.advance(second);
        talker_name(f, &mut self.scratch);
        let bucket = current(&mut self.buckets, second);
        bucket.flows += 1;
        let dropped = f.verdict == Verdict::Dropped as i32;
        if dropped {
            bucket.drops += 1;
        }
        // One lookup in the totals for the common case of a known talker.
        let known = match self.talkers.get_mut(self.scratch.as_str()) {
            Some(n) => {
                *n += 1;
                true
            }
            None => false,
        };
        let key = if known || self.talkers.len() < MAX_TALKERS {
            self.scratch.as_str()
        } else {
            OTHER
        };
        if !known {
            bump(&mut self.talkers, key);
        }
        bump(&mut bucket.talkers, key);
        if dropped {
            *bucket.reasons.entry(f.drop_reason_desc).or_default() += 1;
            *self.reasons.entry(f.drop_reason_desc).or_default() += 1;
        }
    }

    /// Expires the seconds that left the window at `second`.
    pub fn advance(&mut self, second: u64) {
        let oldest_kept = second.saturating_sub(WINDOW_SECS - 1);
        while let Some(b) = self.buckets.front() {
            if b.second >= oldest_kept {
                break;
            }
            let Some(b) = self.buckets.pop_front() else {
                break;
            };
            for (k, n) in b.talkers {
                subtract(&mut self.talkers, k, n);
            }
            for (k, n) in b.reasons {
                subtract(&mut self.reasons, k, n);
            }
        }
    }

    /// `(flows/s, drops/s)` averaged over the last [`RATE_SECS`] complete seconds before `now`.
    pub fn rates(&self, now: u64) -> (f64, f64) {
        let from = now.saturating_sub(RATE_SECS);
        let span = now.clamp(1, RATE_SECS);
        let (flows, drops) = self
            .buckets
            .iter()
            .filter(|b| b.second >= from && b.second < now)
            .fold((0, 0), |(f, d), b| (f + b.flows, d + b.drops));
        (flows as f64 / span as f64, drops as f64 / span as f64)
    }

    /// Flows counted in the window.
    pub fn window_flows(&self) -> u64 {
        self.buckets.iter().map(|b| b.flows).sum()
    }

    /// The `n` busiest sources, most flows first (ties by name).
    pub fn top_talkers(&self, n: usize) -> Vec<(String, u64)> {
        top(self.talkers.iter().map(|(k, v)| (k.to_string(), *v)), n)
    }

    /// The `n` most frequent drop reasons, most drops first.
    pub fn top_drop_reasons(&self, n: usize) -> Vec<(String, u64)> {
        top(
            self.reasons.iter().map(|(k, v)| (drop_reason_name(*k), *v)),
            n,
        )
    }
}

fn current(buckets: &mut VecDeque<Bucket>, second: u64) -> &mut Bucket {
    // A flow stamped in an older second than the newest bucket (clock going back) joins the
    // newest bucket rather than reordering the window.
    if buckets.back().is_none_or(|b| b.second < second) {
        buckets.push_back(Bucket {
            second,
            ..Bucket::default()
        });
    }
    let idx = buckets.len() - 1;
    &mut buckets[idx]
}

fn bump(map: &mut HashMap<Box<str>, u64>, key: &str) {
    match map.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            map.insert(key.into(), 1);
        }
    }
}

fn subtract<K: std::hash::Hash + Eq>(map: &mut HashMap<K, u64>, key: K, n: u64) {
    if let Some(total) = map.get_mut(&key) {
        *total = total.saturating_sub(n);
        if *total == 0 {
            map.remove(&key);
        }
    }
}

fn top(items: impl Iterator<Item = (String, u64)>, n: usize) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = items.collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(n);
    v
}

/// `POLICY_DENIED`, or the number when the code is not one we know.
pub fn drop_reason_name(code: i32) -> String {
    DropReason::try_from(code).map_or_else(|_| code.to_string(), |r| r.as_str_name().to_string())
}

/// The source as the table names it (`namespace/pod`, else the source IP), written into `out`.
fn talker_name(f: &Flow, out: &mut String) {
    out.clear();
    if let Some(ep) = f.source.as_ref().filter(|e| !e.pod_name.is_empty()) {
        if !ep.namespace.is_empty() {
            out.push_str(&ep.namespace);
            out.push('/');
        }
        out.push_str(&ep.pod_name);
    } else if let Some(ip) = f.ip.as_ref() {
        out.push_str(&ip.source);
    } else {
        out.push_str("(unknown)");
    }
    if out.chars().any(char::is_control) {
        let clean = crate::output::color::sanitize(out);
        *out = clean;
    }
}

#[cfg(test)]
mod tests {
    use periscope_proto::flow::Endpoint;

    use super::*;

    fn flow(pod: &str, verdict: Verdict, reason: DropReason) -> Flow {
        Flow {
            verdict: verdict as i32,
            drop_reason_desc: reason as i32,
            source: Some(Endpoint {
                namespace: "default".into(),
                pod_name: pod.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn rates_average_complete_seconds() {
        let mut s = Stats::new();
        for sec in 10..15 {
            for _ in 0..100 {
                s.add(&flow("a", Verdict::Forwarded, DropReason::Unknown), sec);
            }
            for _ in 0..10 {
                s.add(&flow("a", Verdict::Dropped, DropReason::PolicyDenied), sec);
            }
        }
        let (f, d) = s.rates(15);
        assert!((f - 110.0).abs() < 1e-9, "{f}");
        assert!((d - 10.0).abs() < 1e-9, "{d}");
        // Nothing arrived for a while: the rate falls to zero.
        assert_eq!(s.rates(30), (0.0, 0.0));
    }

    #[test]
    fn top_lists_cover_the_last_minute_only() {
        let mut s = Stats::new();
        for _ in 0..5 {
            s.add(
                &flow("old", Verdict::Dropped, DropReason::StaleOrUnroutableIp),
                0,
            );
        }
        for _ in 0..3 {
            s.add(
                &flow("xwing", Verdict::Dropped, DropReason::PolicyDenied),
                30,
            );
        }
        s.add(
            &flow("tiefighter", Verdict::Forwarded, DropReason::Unknown),
            31,
        );
        assert_eq!(s.top_talkers(1), vec![("default/old".to_string(), 5)]);
        s.advance(61);
        assert_eq!(
            s.top_talkers(5),
            vec![
                ("default/xwing".to_string(), 3),
                ("default/tiefighter".to_string(), 1)
            ]
        );
        assert_eq!(
            s.top_drop_reasons(5),
            vec![("POLICY_DENIED".to_string(), 3)]
        );
        assert_eq!(s.window_flows(), 4);
        s.advance(200);
        assert!(s.top_talkers(5).is_empty());
        assert!(s.top_drop_reasons(5).is_empty());
    }

    #[test]
    fn talker_cardinality_is_bounded() {
        let mut s = Stats::new();
        for i in 0..(MAX_TALKERS + 10) {
            s.add(
                &flow(&format!("p{i}"), Verdict::Forwarded, DropReason::Unknown),
                1,
            );
        }
        assert_eq!(s.talkers.len(), MAX_TALKERS + 1);
        assert_eq!(s.talkers.get(OTHER).copied(), Some(10));
    }
}
