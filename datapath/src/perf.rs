//! The perf reader: per-CPU `PERF_COUNT_SW_BPF_OUTPUT` ring buffers opened by hand, stored in the
//! probes' `events` array, and drained by one thread.
//!
//! aya's stock reader asks for a wakeup on every event, which costs ~3 µs per packet. Here each
//! ring wakes the reader only once it holds `wakeup_bytes` (a quarter of the ring by default),
//! and `poll` returns after `flush_interval` anyway, so low rates still arrive within one tick
//! and `stop` is honoured. Records are handed to the sink straight from the ring; only a record
//! that wraps around the ring end is copied (into a reusable scratch buffer). Lost samples and
//! malformed records are counted per CPU, never a panic.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use periscope_probes::source::{EventSink, EventSource, RawEvent, SourceError};

/// Ring size and wakeup tuning.
#[derive(Debug, Clone)]
pub struct PerfConfig {
    /// Data pages per CPU; a power of two (Cilium's default is 64).
    pub pages_per_cpu: usize,
    /// Bytes a ring must hold before the kernel wakes the reader; default a quarter of the ring.
    pub wakeup_bytes: Option<u32>,
    /// Longest time a record waits when the watermark is not reached (the poll timeout).
    pub flush_interval: Duration,
}

impl Default for PerfConfig {
    fn default() -> Self {
        Self {
            pages_per_cpu: 64,
            wakeup_bytes: None,
            flush_interval: Duration::from_millis(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PerfError {
    #[error("invalid perf configuration: {0}")]
    Config(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> PerfError {
    let context = context.into();
    move |source| PerfError::Io { context, source }
}

/// Counters of one CPU's ring.
#[derive(Debug, Default)]
pub struct CpuCounters {
    pub cpu: u32,
    /// Samples handed to the sink.
    pub samples: AtomicU64,
    /// Samples the kernel could not write because the ring was full (PERF_RECORD_LOST).
    pub lost: AtomicU64,
    /// Records that were truncated or inconsistent and skipped.
    pub malformed: AtomicU64,
}

/// Per-CPU counters, shared with whoever reports them (status, metrics).
#[derive(Debug, Default)]
pub struct PerfStats {
    cpus: Vec<CpuCounters>,
}

impl PerfStats {
    pub fn cpus(&self) -> &[CpuCounters] {
        &self.cpus
    }

    pub fn samples(&self) -> u64 {
        self.cpus
            .iter()
            .map(|c| c.samples.load(Ordering::Relaxed))
            .sum()
    }

    pub fn lost(&self) -> u64 {
        self.cpus
            .iter()
            .map(|c| c.lost.load(Ordering::Relaxed))
            .sum()
    }

    pub fn malformed(&self) -> u64 {
        self.cpus
            .iter()
            .map(|c| c.malformed.load(Ordering::Relaxed))
            .sum()
    }
}

// perf_event ABI constants (linux/perf_event.h).
const PERF_TYPE_SOFTWARE: u32 = 1;
const PERF_COUNT_SW_BPF_OUTPUT: u64 = 10;
const PERF_SAMPLE_RAW: u64 = 1 << 10;
const PERF_ATTR_FLAG_WATERMARK: u64 = 1 << 14;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 1 << 3;
const PERF_EVENT_IOC_ENABLE: libc::c_ulong = 0x2400;
const PERF_RECORD_LOST: u32 = 2;
const PERF_RECORD_SAMPLE: u32 = 9;
// Offsets in struct perf_event_mmap_page.
const MMAP_DATA_HEAD: usize = 1024;
const MMAP_DATA_TAIL: usize = 1032;
const MMAP_DATA_OFFSET: usize = 1040;
const MMAP_DATA_SIZE: usize = 1048;

/// `struct perf_event_attr` up to PERF_ATTR_SIZE_VER0 (64 bytes), all we need.
#[repr(C)]
#[derive(Default)]
struct PerfEventAttr {
    type_: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_watermark: u32,
    bp_type: u32,
    config1: u64,
}

// bpf(2) map commands for storing ring fds in the perf event array.
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;

#[repr(C)]
struct MapElemAttr {
    map_fd: u32,
    pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

fn bpf_map_elem(
    cmd: libc::c_long,
    map: BorrowedFd<'_>,
    key: u32,
    value: Option<u32>,
) -> io::Result<()> {
    let value_ptr = value.as_ref().map_or(0, |v| v as *const u32 as u64);
    let mut attr = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        pad: 0,
        key: &key as *const u32 as u64,
        value: value_ptr,
        flags: 0, // BPF_ANY
    };
    // SAFETY: attr is a valid bpf_attr prefix for map element commands; key/value outlive the call.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, &raw mut attr, size_of::<MapElemAttr>()) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// One CPU's mmapped ring.
struct CpuRing {
    cpu: u32,
    fd: OwnedFd,
    base: *mut u8,
    mmap_len: usize,
    data_offset: usize,
    data_size: usize,
}

impl CpuRing {
    fn open(cpu: u32, pages: usize, wakeup_bytes: u32) -> Result<Self, PerfError> {
        let attr = PerfEventAttr {
            type_: PERF_TYPE_SOFTWARE,
            size: size_of::<PerfEventAttr>() as u32,
            config: PERF_COUNT_SW_BPF_OUTPUT,
            sample_period: 1,
            sample_type: PERF_SAMPLE_RAW,
            flags: PERF_ATTR_FLAG_WATERMARK,
            wakeup_watermark: wakeup_bytes,
            ..Default::default()
        };
        // SAFETY: attr is a valid perf_event_attr of the declared size; pid -1 + cpu = all tasks on cpu.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_perf_event_open,
                &raw const attr,
                -1 as libc::pid_t,
                cpu as libc::c_int,
                -1 as libc::c_int,
                PERF_FLAG_FD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io_err(format!("perf_event_open on cpu {cpu}"))(
                io::Error::last_os_error(),
            ));
        }
        let fd = i32::try_from(fd).map_err(|_| PerfError::Config("perf fd out of range".into()))?;
        // SAFETY: the kernel just returned this fd; we are its only owner.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };

        let page = page_size();
        let mmap_len = (pages + 1) * page;
        // SAFETY: mapping a perf fd; length = metadata page + 2^n data pages, as the ABI requires.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                mmap_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io_err(format!(
                "mmap of the cpu {cpu} perf ring ({pages} pages)"
            ))(io::Error::last_os_error()));
        }
        let base = base.cast::<u8>();
        // The kernel fills data_offset/data_size (4.1+); older kernels leave them zero.
        // SAFETY: both fields lie inside the metadata page we just mapped.
        let (off, size) = unsafe {
            (
                base.add(MMAP_DATA_OFFSET).cast::<u64>().read_volatile(),
                base.add(MMAP_DATA_SIZE).cast::<u64>().read_volatile(),
            )
        };
        let (data_offset, data_size) = if size == 0 {
            (page, pages * page)
        } else {
            (off as usize, size as usize)
        };
        let ring = Self {
            cpu,
            fd,
            base,
            mmap_len,
            data_offset,
            data_size,
        };
        if !data_size.is_power_of_two() || data_offset + data_size > mmap_len {
            return Err(PerfError::Config(format!(
                "unexpected perf ring layout: offset {data_offset}, size {data_size}"
            )));
        }
        // SAFETY: valid perf fd; ENABLE takes no argument.
        if unsafe { libc::ioctl(ring.fd.as_raw_fd(), PERF_EVENT_IOC_ENABLE, 0) } != 0 {
            return Err(io_err(format!("enabling the cpu {cpu} perf event"))(
                io::Error::last_os_error(),
            ));
        }
        Ok(ring)
    }

    fn head(&self) -> &AtomicU64 {
        // SAFETY: data_head is an aligned u64 in the mapped metadata page, written by the kernel;
        // accessing it atomically is how the perf ABI is meant to be used.
        unsafe { AtomicU64::from_ptr(self.base.add(MMAP_DATA_HEAD).cast()) }
    }

    fn tail(&self) -> &AtomicU64 {
        // SAFETY: as for head; data_tail is written only by us and read by the kernel.
        unsafe { AtomicU64::from_ptr(self.base.add(MMAP_DATA_TAIL).cast()) }
    }

    /// Hands every complete record to `on_record`, freeing ring space as it goes.
    fn drain(&self, scratch: &mut Vec<u8>, on_record: &mut dyn FnMut(Record<'_>)) -> usize {
        // Acquire pairs with the kernel's release of data_head: record bytes before head are visible.
        let head = self.head().load(Ordering::Acquire);
        let tail = self.tail().load(Ordering::Relaxed);
        let ring = RingView {
            // SAFETY: data area inside the mapping (checked at open).
            data: unsafe { self.base.add(self.data_offset) },
            size: self.data_size,
        };
        let tail_atomic = self.tail();
        // SAFETY: [tail, head) holds records the kernel finished and will not touch until we
        // move data_tail past them; read_records only reads inside that window.
        unsafe {
            read_records(&ring, tail, head, scratch, &mut |rec, new_tail| {
                on_record(rec);
                // Release: our reads of the record happen before the kernel may reuse its space.
                tail_atomic.store(new_tail, Ordering::Release);
            })
        }
    }
}

impl Drop for CpuRing {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what open() mapped.
        unsafe {
            libc::munmap(self.base.cast(), self.mmap_len);
        }
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).ok().filter(|&n| n > 0).unwrap_or(4096)
}

/// What one ring record turned out to be.
#[derive(Debug, PartialEq, Eq)]
enum Record<'a> {
    /// PERF_SAMPLE_RAW payload (the notification, padded to 8-byte alignment by the kernel).
    Sample(&'a [u8]),
    Lost(u64),
    /// Truncated or inconsistent record, skipped.
    Malformed,
    /// Another record type (throttle, …), ignored.
    Other,
}

/// The data area of a ring: `size` bytes (a power of two) at `data`.
struct RingView {
    data: *const u8,
    size: usize,
}

impl RingView {
    /// Copies `dst.len()` bytes starting at ring position `pos` (wrapping).
    ///
    /// # Safety
    /// `dst.len() <= size` and the bytes must be inside the reader's [tail, head) window.
    unsafe fn copy_out(&self, pos: u64, dst: &mut [u8]) {
        let off = (pos as usize) & (self.size - 1);
        let first = dst.len().min(self.size - off);
        // SAFETY: caller guarantees the window; both ranges lie inside the data area.
        unsafe {
            std::ptr::copy_nonoverlapping(self.data.add(off), dst.as_mut_ptr(), first);
            std::ptr::copy_nonoverlapping(
                self.data,
                dst.as_mut_ptr().add(first),
                dst.len() - first,
            );
        }
    }
}

/// Parses the records in [tail, head) of `ring`, calling `on_record` with each record and the
/// tail position after it. A record that wraps the ring end is assembled in `scratch`.
/// Returns the number of records seen. An inconsistent stream is skipped up to `head`.
///
/// # Safety
/// `ring` must describe readable memory, and the bytes in [tail, head) must not change during
/// the call (the kernel only writes outside the reader's window).
unsafe fn read_records(
    ring: &RingView,
    mut tail: u64,
    head: u64,
    scratch: &mut Vec<u8>,
    on_record: &mut dyn FnMut(Record<'_>, u64),
) -> usize {
    let mut count = 0;
    if head.wrapping_sub(tail) > ring.size as u64 {
        // The kernel never runs ahead by more than the ring; treat it as corruption.
        on_record(Record::Malformed, head);
        return 1;
    }
    while tail < head {
        let avail = head - tail;
        let mut hdr = [0u8; 8];
        if avail < 8 {
            on_record(Record::Malformed, head);
            return count + 1;
        }
        // SAFETY: 8 bytes inside the window.
        unsafe { ring.copy_out(tail, &mut hdr) };
        let kind = u32::from_ne_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
        let size = u64::from(u16::from_ne_bytes([hdr[6], hdr[7]]));
        if size < 8 || size > avail {
            // Without a trustworthy size we cannot find the next record.
            on_record(Record::Malformed, head);
            return count + 1;
        }
        let size_usize = size as usize;
        let off = (tail as usize) & (ring.size - 1);
        let bytes: &[u8] = if off + size_usize <= ring.size {
            // SAFETY: contiguous and inside the window, stable until we advance the tail.
            unsafe { std::slice::from_raw_parts(ring.data.add(off), size_usize) }
        } else {
            scratch.resize(size_usize, 0);
            // SAFETY: inside the window; size <= avail <= ring size.
            unsafe { ring.copy_out(tail, scratch) };
            scratch
        };
        let body = &bytes[8..];
        let record = match kind {
            PERF_RECORD_SAMPLE => match body.get(..4) {
                Some(len) => {
                    let len = u32::from_ne_bytes([len[0], len[1], len[2], len[3]]) as usize;
                    body.get(4..4 + len)
                        .map_or(Record::Malformed, Record::Sample)
                }
                None => Record::Malformed,
            },
            // { u64 id; u64 lost; }
            PERF_RECORD_LOST => match body.get(8..16) {
                Some(n) => Record::Lost(u64::from_ne_bytes([
                    n[0], n[1], n[2], n[3], n[4], n[5], n[6], n[7],
                ])),
                None => Record::Malformed,
            },
            _ => Record::Other,
        };
        tail += size;
        count += 1;
        on_record(record, tail);
    }
    count
}

/// Reads the probes' perf event array: one ring per online CPU, one reader thread.
pub struct PerfReader {
    rings: Vec<CpuRing>,
    pollfds: Vec<libc::pollfd>,
    events_map: OwnedFd,
    scratch: Vec<u8>,
    stats: Arc<PerfStats>,
    flush_interval: Duration,
    /// Released after Drop has cleared the map slots (fields drop after `drop`).
    _slot: Option<ReaderSlot>,
}

/// Marks an events map as having a reader. Two readers on one map would overwrite each other's
/// slots, and the first to go would unhook the second, so the loader hands out one at a time.
#[derive(Debug)]
pub(crate) struct ReaderSlot(Arc<AtomicBool>);

impl ReaderSlot {
    /// Claims `flag`; `None` if a reader already holds it.
    pub(crate) fn claim(flag: &Arc<AtomicBool>) -> Option<Self> {
        (!flag.swap(true, Ordering::AcqRel)).then(|| Self(Arc::clone(flag)))
    }
}

impl Drop for ReaderSlot {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

// SAFETY: the raw pointers are private mmaps owned by this reader; nothing else aliases them in
// userspace, so moving the reader to another thread is sound. It is not Sync.
unsafe impl Send for PerfReader {}

impl PerfReader {
    /// Opens a ring for each online CPU and stores its fd in `events_map` at the CPU's index.
    /// Only one reader may serve a map at a time (prefer [`Datapath::perf_reader`], which
    /// enforces that).
    ///
    /// [`Datapath::perf_reader`]: crate::loader::Datapath::perf_reader
    pub fn open(events_map: BorrowedFd<'_>, config: &PerfConfig) -> Result<Self, PerfError> {
        let pages = config.pages_per_cpu;
        if pages == 0 || !pages.is_power_of_two() {
            return Err(PerfError::Config(format!(
                "pages_per_cpu must be a power of two, got {pages}"
            )));
        }
        let ring_bytes = pages.saturating_mul(page_size());
        let wakeup = config.wakeup_bytes.map_or(ring_bytes / 4, |w| w as usize);
        if wakeup == 0 || wakeup >= ring_bytes {
            return Err(PerfError::Config(format!(
                "wakeup_bytes must be in 1..{ring_bytes}, got {wakeup}"
            )));
        }
        let wakeup = u32::try_from(wakeup)
            .map_err(|_| PerfError::Config("wakeup_bytes too large".into()))?;
        let cpus =
            aya::util::online_cpus().map_err(|(path, e)| io_err(format!("reading {path}"))(e))?;
        let events_map = events_map
            .try_clone_to_owned()
            .map_err(io_err("duplicating the events map fd"))?;

        let mut reader = Self {
            rings: Vec::with_capacity(cpus.len()),
            pollfds: Vec::with_capacity(cpus.len()),
            events_map,
            scratch: Vec::new(),
            stats: Arc::new(PerfStats::default()),
            flush_interval: config.flush_interval,
            _slot: None,
        };
        let mut counters = Vec::with_capacity(cpus.len());
        for cpu in cpus {
            let ring = CpuRing::open(cpu, pages, wakeup)?;
            // On error, Drop clears the slots stored so far.
            bpf_map_elem(
                BPF_MAP_UPDATE_ELEM,
                reader.events_map.as_fd(),
                cpu,
                Some(ring.fd.as_raw_fd() as u32),
            )
            .map_err(io_err(format!(
                "storing the cpu {cpu} perf fd in the events map"
            )))?;
            reader.pollfds.push(libc::pollfd {
                fd: ring.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
            reader.rings.push(ring);
            counters.push(CpuCounters {
                cpu,
                ..Default::default()
            });
        }
        reader.stats = Arc::new(PerfStats { cpus: counters });
        Ok(reader)
    }

    pub(crate) fn with_slot(mut self, slot: ReaderSlot) -> Self {
        self._slot = Some(slot);
        self
    }

    /// Live per-CPU counters.
    pub fn stats(&self) -> Arc<PerfStats> {
        Arc::clone(&self.stats)
    }

    /// Drains every ring once into `sink` without waiting. Returns the records read.
    pub fn drain(&mut self, sink: &mut dyn EventSink) -> usize {
        let mut total = 0;
        for (ring, counters) in self.rings.iter().zip(&self.stats.cpus) {
            let cpu = ring.cpu;
            total += ring.drain(&mut self.scratch, &mut |rec| {
                let timestamp_ns = now_ns();
                match rec {
                    Record::Sample(data) => {
                        counters.samples.fetch_add(1, Ordering::Relaxed);
                        sink.push(RawEvent::Sample {
                            cpu,
                            timestamp_ns,
                            data,
                        });
                    }
                    Record::Lost(count) => {
                        counters.lost.fetch_add(count, Ordering::Relaxed);
                        sink.push(RawEvent::Lost {
                            cpu,
                            count,
                            timestamp_ns,
                        });
                    }
                    Record::Malformed => {
                        counters.malformed.fetch_add(1, Ordering::Relaxed);
                    }
                    Record::Other => {}
                }
            });
        }
        total
    }

    /// Waits up to `timeout` for a ring to reach its watermark, then drains all rings and
    /// flushes the sink if anything was read. Returns the records read.
    pub fn read_once(&mut self, sink: &mut dyn EventSink, timeout: Duration) -> io::Result<usize> {
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: pollfds is a valid array of nfds entries.
        let rc = unsafe {
            libc::poll(
                self.pollfds.as_mut_ptr(),
                self.pollfds.len() as libc::nfds_t,
                ms,
            )
        };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
        let n = self.drain(sink);
        if n > 0 {
            sink.flush();
        }
        Ok(n)
    }
}

impl Drop for PerfReader {
    fn drop(&mut self) {
        // Unhook our rings so the probes stop writing into buffers nobody reads.
        for ring in &self.rings {
            let _ = bpf_map_elem(BPF_MAP_DELETE_ELEM, self.events_map.as_fd(), ring.cpu, None);
        }
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl EventSource for PerfReader {
    fn name(&self) -> &str {
        "perf"
    }

    fn run(&mut self, sink: &mut dyn EventSink, stop: &AtomicBool) -> Result<(), SourceError> {
        let tick = self.flush_interval;
        while !stop.load(Ordering::Relaxed) {
            self.read_once(sink, tick)
                .map_err(|source| SourceError::Io {
                    context: "polling perf rings".into(),
                    source,
                })?;
        }
        // Whatever arrived before the stop request still goes out.
        if self.drain(sink) > 0 {
            sink.flush();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a ring of `size` bytes with `records` written starting at `start` (wrapping).
    fn ring_with(size: usize, start: u64, records: &[Vec<u8>]) -> (Vec<u8>, u64) {
        let mut ring = vec![0xAAu8; size];
        let mut pos = start;
        for rec in records {
            for &b in rec {
                ring[(pos as usize) & (size - 1)] = b;
                pos += 1;
            }
        }
        (ring, pos)
    }

    fn sample(payload: &[u8]) -> Vec<u8> {
        let raw_len = (4 + payload.len()).next_multiple_of(8) - 4;
        let mut raw = payload.to_vec();
        raw.resize(raw_len, 0);
        let size = 8 + 4 + raw_len;
        let mut rec = Vec::new();
        rec.extend_from_slice(&PERF_RECORD_SAMPLE.to_ne_bytes());
        rec.extend_from_slice(&0u16.to_ne_bytes());
        rec.extend_from_slice(&(size as u16).to_ne_bytes());
        rec.extend_from_slice(&(raw_len as u32).to_ne_bytes());
        rec.extend_from_slice(&raw);
        rec
    }

    fn lost(n: u64) -> Vec<u8> {
        let mut rec = Vec::new();
        rec.extend_from_slice(&PERF_RECORD_LOST.to_ne_bytes());
        rec.extend_from_slice(&0u16.to_ne_bytes());
        rec.extend_from_slice(&24u16.to_ne_bytes());
        rec.extend_from_slice(&7u64.to_ne_bytes());
        rec.extend_from_slice(&n.to_ne_bytes());
        rec
    }

    #[derive(Debug, PartialEq)]
    enum Got {
        Sample(Vec<u8>),
        Lost(u64),
        Malformed,
        Other,
    }

    fn parse(ring: &[u8], tail: u64, head: u64) -> (Vec<Got>, u64) {
        let view = RingView {
            data: ring.as_ptr(),
            size: ring.len(),
        };
        let mut scratch = Vec::new();
        let mut got = Vec::new();
        let mut last_tail = tail;
        // SAFETY: the test owns the whole ring and nothing writes to it during the call.
        unsafe {
            read_records(&view, tail, head, &mut scratch, &mut |rec, t| {
                last_tail = t;
                got.push(match rec {
                    Record::Sample(d) => Got::Sample(d.to_vec()),
                    Record::Lost(n) => Got::Lost(n),
                    Record::Malformed => Got::Malformed,
                    Record::Other => Got::Other,
                });
            });
        }
        (got, last_tail)
    }

    fn padded(payload: &[u8]) -> Vec<u8> {
        let mut v = payload.to_vec();
        v.resize((4 + payload.len()).next_multiple_of(8) - 4, 0);
        v
    }

    #[test]
    fn reads_samples_and_lost_records_in_order() {
        let a: Vec<u8> = (0..50).collect();
        let b: Vec<u8> = (100..176).collect();
        let (ring, head) = ring_with(256, 0, &[sample(&a), lost(3), sample(&b)]);
        let (got, tail) = parse(&ring, 0, head);
        assert_eq!(
            got,
            vec![
                Got::Sample(padded(&a)),
                Got::Lost(3),
                Got::Sample(padded(&b))
            ]
        );
        assert_eq!(tail, head);
    }

    #[test]
    fn a_record_wrapping_the_ring_end_is_reassembled() {
        let payload: Vec<u8> = (0..60).collect();
        // Start 24 bytes before the end so header and payload straddle the boundary.
        for start in [256 - 24, 256 - 4, 256 - 8 + 1024] {
            let (ring, head) = ring_with(256, start, &[sample(&payload), sample(&payload)]);
            let (got, tail) = parse(&ring, start, head);
            assert_eq!(
                got,
                vec![Got::Sample(padded(&payload)), Got::Sample(padded(&payload))],
                "start {start}"
            );
            assert_eq!(tail, head);
        }
    }

    #[test]
    fn truncated_and_garbage_records_are_counted_not_fatal() {
        // A record claiming more bytes than were written.
        let mut rec = sample(&[1, 2, 3, 4]);
        rec[6..8].copy_from_slice(&200u16.to_ne_bytes());
        let (ring, head) = ring_with(256, 0, &[rec]);
        let (got, tail) = parse(&ring, 0, head);
        assert_eq!(got, vec![Got::Malformed]);
        assert_eq!(tail, head, "skips to head");

        // Sample whose raw length runs past its record.
        let mut rec = sample(&[9; 12]);
        rec[8..12].copy_from_slice(&1000u32.to_ne_bytes());
        let good = sample(&[5; 8]);
        let (ring, head) = ring_with(256, 0, &[rec, good]);
        let (got, _) = parse(&ring, 0, head);
        assert_eq!(got, vec![Got::Malformed, Got::Sample(padded(&[5; 8]))]);

        // Zero-size header, fewer than 8 bytes available, head far beyond the ring.
        let (ring, _) = ring_with(256, 0, &[vec![0u8; 8]]);
        assert_eq!(parse(&ring, 0, 8).0, vec![Got::Malformed]);
        assert_eq!(parse(&ring, 0, 5).0, vec![Got::Malformed]);
        assert_eq!(parse(&ring, 0, 10_000).0, vec![Got::Malformed]);

        // Unknown record types are skipped by size.
        let mut other = lost(1);
        other[..4].copy_from_slice(&5u32.to_ne_bytes());
        let (ring, head) = ring_with(256, 0, &[other, lost(2)]);
        assert_eq!(parse(&ring, 0, head).0, vec![Got::Other, Got::Lost(2)]);

        // A lost record too short for its counter.
        let mut short = lost(1);
        short[6..8].copy_from_slice(&16u16.to_ne_bytes());
        let (ring, _) = ring_with(256, 0, &[short[..16].to_vec()]);
        assert_eq!(parse(&ring, 0, 16).0, vec![Got::Malformed]);
    }

    #[test]
    fn empty_window_reads_nothing() {
        let ring = vec![0u8; 64];
        assert_eq!(parse(&ring, 40, 40), (vec![], 40));
    }

    #[test]
    fn config_is_validated() {
        let fd = std::fs::File::open("/dev/null").expect("open /dev/null");
        let bad = PerfConfig {
            pages_per_cpu: 3,
            ..Default::default()
        };
        let err = PerfReader::open(fd.as_fd(), &bad).err().expect("rejected");
        assert!(matches!(err, PerfError::Config(_)), "{err}");
        let bad = PerfConfig {
            wakeup_bytes: Some(u32::MAX),
            ..Default::default()
        };
        assert!(matches!(
            PerfReader::open(fd.as_fd(), &bad),
            Err(PerfError::Config(_))
        ));
        assert_eq!(size_of::<PerfEventAttr>(), 64);
        assert_eq!(size_of::<MapElemAttr>(), 32);
    }
}
