//! The flow ring buffer: one writer, any number of readers, and readers never block the writer.
//!
//! Each slot is a seqlock over atomic words: the writer marks the slot busy, stores the record's
//! words, then publishes the record's sequence number. A reader copies the words and re-checks the
//! sequence; if the writer lapped it meanwhile, the reader learns the record was overwritten
//! (counted as lost) instead of seeing a torn record.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering, fence};

use tokio::sync::Notify;

use crate::record::{FlowRecord, RECORD_WORDS};

/// Hubble's default ring capacity.
pub const DEFAULT_CAPACITY: usize = 4095;
/// Upper bound on configurable capacity (~170 MiB of records at 1 Mi flows; this allows 16 Mi).
pub const MAX_CAPACITY: usize = 1 << 24;

struct Slot {
    /// 2 * (n + 1) once record n is complete; odd while being written.
    seq: AtomicU64,
    words: [AtomicU64; RECORD_WORDS],
}

impl Slot {
    fn new() -> Self {
        Self {
            seq: AtomicU64::new(0),
            words: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// Result of reading record number `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    Record(FlowRecord),
    /// The writer has not produced record `n` yet.
    NotYet,
    /// Record `n` was overwritten before it could be read.
    Overwritten,
}

pub struct Ring {
    slots: Box<[Slot]>,
    head: AtomicU64,
    notify: Notify,
}

#[derive(Debug, thiserror::Error)]
#[error("ring capacity must be between 1 and {MAX_CAPACITY}, got {0}")]
pub struct CapacityError(pub usize);

impl Ring {
    /// Creates a ring and its single writer.
    pub fn new(capacity: usize) -> Result<(Arc<Ring>, RingWriter), CapacityError> {
        if capacity == 0 || capacity > MAX_CAPACITY {
            return Err(CapacityError(capacity));
        }
        let slots = (0..capacity)
            .map(|_| Slot::new())
            .collect::<Vec<_>>()
            .into_boxed_slice();
        let ring = Arc::new(Ring {
            slots,
            head: AtomicU64::new(0),
            notify: Notify::new(),
        });
        Ok((ring.clone(), RingWriter { ring }))
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Number of records ever written (the next record's number).
    pub fn head(&self) -> u64 {
        self.head.load(Ordering::Acquire)
    }

    /// Number of the oldest record still held.
    pub fn oldest(&self) -> u64 {
        self.head().saturating_sub(self.slots.len() as u64)
    }

    /// Records currently held.
    pub fn len(&self) -> u64 {
        self.head().min(self.slots.len() as u64)
    }

    pub fn is_empty(&self) -> bool {
        self.head() == 0
    }

    pub fn read(&self, n: u64) -> Read {
        let slot = &self.slots[(n % self.slots.len() as u64) as usize];
        let want = 2 * (n + 1);
        let s1 = slot.seq.load(Ordering::Acquire);
        if s1 != want {
            return if s1 < want && n >= self.oldest() {
                Read::NotYet
            } else {
                Read::Overwritten
            };
        }
        let mut words = [0u64; RECORD_WORDS];
        for (w, a) in words.iter_mut().zip(slot.words.iter()) {
            *w = a.load(Ordering::Relaxed);
        }
        fence(Ordering::Acquire);
        if slot.seq.load(Ordering::Relaxed) != want {
            return Read::Overwritten;
        }
        Read::Record(FlowRecord::from_words(&words))
    }

    /// Waits until records beyond `n` exist (or `notify` fires for another reason).
    pub async fn wait_beyond(&self, n: u64) {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.head() > n {
            return;
        }
        notified.await;
    }

    /// Wakes followers without a write (e.g. on shutdown).
    pub fn wake_all(&self) {
        self.notify.notify_waiters();
    }
}

/// The one handle allowed to write; not `Clone`.
pub struct RingWriter {
    ring: Arc<Ring>,
}

impl RingWriter {
    /// Stores `rec` (setting its `seq`) without waking readers; call `publish` after a batch.
    pub fn push(&mut self, rec: &mut FlowRecord) {
        let ring = &*self.ring;
        let n = ring.head.load(Ordering::Relaxed);
        rec.seq = n;
        let slot = &ring.slots[(n % ring.slots.len() as u64) as usize];
        slot.seq.store(2 * n + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        for (a, w) in slot.words.iter().zip(rec.to_words()) {
            a.store(w, Ordering::Relaxed);
        }
        slot.seq.store(2 * (n + 1), Ordering::Release);
        ring.head.store(n + 1, Ordering::Release);
    }

    /// Wakes readers following the ring.
    pub fn publish(&self) {
        self.ring.notify.notify_waiters();
    }

    pub fn ring(&self) -> &Arc<Ring> {
        &self.ring
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::kind;

    fn rec(t: u64) -> FlowRecord {
        FlowRecord {
            kind: kind::FLOW,
            time_ns: t,
            src_port: t as u16,
            ..FlowRecord::EMPTY
        }
    }

    #[test]
    fn capacity_bounds() {
        assert!(Ring::new(0).is_err());
        assert!(Ring::new(MAX_CAPACITY + 1).is_err());
        assert_eq!(Ring::new(4095).expect("ok").0.capacity(), 4095);
    }

    #[test]
    fn overwrites_oldest_and_reports_it() {
        let (ring, mut w) = Ring::new(4).expect("ring");
        assert_eq!(ring.read(0), Read::NotYet);
        for t in 0..6 {
            w.push(&mut rec(t));
        }
        assert_eq!(ring.head(), 6);
        assert_eq!(ring.oldest(), 2);
        assert_eq!(ring.read(1), Read::Overwritten);
        match ring.read(5) {
            Read::Record(r) => assert_eq!((r.time_ns, r.seq), (5, 5)),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(ring.read(6), Read::NotYet);
    }

    #[test]
    fn concurrent_readers_never_see_torn_records() {
        // Each record's fields are derived from its number, so a torn read would mismatch.
        let (ring, mut w) = Ring::new(64).expect("ring");
        const N: u64 = 200_000;
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let ring = ring.clone();
                std::thread::spawn(move || {
                    let (mut ok, mut lost) = (0u64, 0u64);
                    let mut next = 0;
                    while next < N {
                        match ring.read(next) {
                            Read::Record(r) => {
                                assert_eq!(r.seq, next);
                                assert_eq!(r.time_ns, next * 3);
                                assert_eq!(r.lost_count, !next);
                                ok += 1;
                                next += 1;
                            }
                            Read::Overwritten => {
                                lost += 1;
                                next = next.max(ring.oldest());
                                if ring.read(next) == Read::Overwritten {
                                    next += 1;
                                }
                            }
                            Read::NotYet => std::hint::spin_loop(),
                        }
                    }
                    (ok, lost)
                })
            })
            .collect();
        for n in 0..N {
            let mut r = FlowRecord {
                kind: kind::FLOW,
                time_ns: n * 3,
                lost_count: !n,
                ..FlowRecord::EMPTY
            };
            w.push(&mut r);
        }
        for h in readers {
            let (ok, _lost) = h.join().expect("reader thread");
            assert!(ok > 0);
        }
    }

    #[tokio::test]
    async fn followers_wake_on_publish() {
        let (ring, mut w) = Ring::new(8).expect("ring");
        let r2 = ring.clone();
        let waiter = tokio::spawn(async move {
            r2.wait_beyond(0).await;
            r2.head()
        });
        tokio::task::yield_now().await;
        w.push(&mut rec(1));
        w.publish();
        assert_eq!(waiter.await.expect("join"), 1);
    }
}
