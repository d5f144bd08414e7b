//! The replay event source: recorded raw notifications read back from a file.
//!
//! For tests and benchmarks only — it is named "replay" everywhere and never stands in for the
//! datapath in an end-to-end test. Format (little endian): the magic `PSCPRPL1`, then records of
//! `kind u8` (1 sample, 2 lost), `cpu u32`, `timestamp_ns u64`, then for samples `len u32` and
//! `len` bytes, for losses `count u64`.

use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use periscope_probes::source::{EventSink, EventSource, RawEvent, SourceError};

pub const MAGIC: &[u8; 8] = b"PSCPRPL1";
const KIND_SAMPLE: u8 = 1;
const KIND_LOST: u8 = 2;
/// Larger than any notification the datapath writes; guards against garbage lengths.
const MAX_SAMPLE_LEN: u32 = 64 * 1024;
const BATCH: usize = 256;

/// Writes a replay file.
pub struct ReplayWriter<W: Write> {
    out: W,
}

impl ReplayWriter<BufWriter<std::fs::File>> {
    pub fn create(path: &Path) -> io::Result<Self> {
        Self::new(BufWriter::new(std::fs::File::create(path)?))
    }
}

impl<W: Write> ReplayWriter<W> {
    pub fn new(mut out: W) -> io::Result<Self> {
        out.write_all(MAGIC)?;
        Ok(Self { out })
    }

    pub fn write(&mut self, event: &RawEvent<'_>) -> io::Result<()> {
        match *event {
            RawEvent::Sample {
                cpu,
                timestamp_ns,
                data,
            } => {
                let len =
                    u32::try_from(data.len()).map_err(|_| io::Error::other("sample too large"))?;
                self.out.write_all(&[KIND_SAMPLE])?;
                self.out.write_all(&cpu.to_le_bytes())?;
                self.out.write_all(&timestamp_ns.to_le_bytes())?;
                self.out.write_all(&len.to_le_bytes())?;
                self.out.write_all(data)
            }
            RawEvent::Lost {
                cpu,
                count,
                timestamp_ns,
            } => {
                self.out.write_all(&[KIND_LOST])?;
                self.out.write_all(&cpu.to_le_bytes())?;
                self.out.write_all(&timestamp_ns.to_le_bytes())?;
                self.out.write_all(&count.to_le_bytes())
            }
        }
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// How a replay source paces itself.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// As fast as possible.
    Unpaced,
    /// A fixed number of events per second.
    Rate(f64),
}

/// Replays a file once (or `loops` times), optionally rewriting timestamps to "now".
pub struct ReplaySource {
    path: PathBuf,
    pub pacing: Pacing,
    pub loops: u32,
    /// Stamp events with the wall clock at replay time instead of the recorded time.
    pub restamp: bool,
    /// After the file ends, keep running (idle) until stopped, like a live source.
    pub linger: bool,
}

impl ReplaySource {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            pacing: Pacing::Unpaced,
            loops: 1,
            restamp: false,
            linger: false,
        }
    }
}

fn io_err(context: String) -> impl FnOnce(io::Error) -> SourceError {
    move |source| SourceError::Io { context, source }
}

pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Reads one record; `Ok(None)` at a clean end of file.
fn read_record(
    r: &mut impl Read,
    buf: &mut Vec<u8>,
    offset: u64,
) -> Result<Option<Record>, SourceError> {
    let mut head = [0u8; 13];
    match r.read(&mut head[..1]) {
        Ok(0) => return Ok(None),
        Ok(_) => {}
        Err(e) => return Err(io_err(format!("reading record at byte {offset}"))(e)),
    }
    r.read_exact(&mut head[1..])
        .map_err(|_| SourceError::Format(format!("truncated record header at byte {offset}")))?;
    let cpu = u32::from_le_bytes([head[1], head[2], head[3], head[4]]);
    let ts = u64::from_le_bytes(head[5..13].try_into().unwrap_or([0; 8]));
    let mut tail = [0u8; 8];
    match head[0] {
        KIND_SAMPLE => {
            r.read_exact(&mut tail[..4]).map_err(|_| {
                SourceError::Format(format!("truncated sample length at byte {offset}"))
            })?;
            let len = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
            if len > MAX_SAMPLE_LEN {
                return Err(SourceError::Format(format!(
                    "sample length {len} at byte {offset} exceeds {MAX_SAMPLE_LEN}"
                )));
            }
            buf.resize(len as usize, 0);
            r.read_exact(buf).map_err(|_| {
                SourceError::Format(format!("truncated sample body at byte {offset}"))
            })?;
            Ok(Some(Record::Sample {
                cpu,
                ts,
                len: 17 + u64::from(len),
            }))
        }
        KIND_LOST => {
            r.read_exact(&mut tail).map_err(|_| {
                SourceError::Format(format!("truncated loss record at byte {offset}"))
            })?;
            Ok(Some(Record::Lost {
                cpu,
                ts,
                count: u64::from_le_bytes(tail),
            }))
        }
        k => Err(SourceError::Format(format!(
            "unknown record kind {k} at byte {offset}"
        ))),
    }
}

enum Record {
    Sample { cpu: u32, ts: u64, len: u64 },
    Lost { cpu: u32, ts: u64, count: u64 },
}

impl EventSource for ReplaySource {
    fn name(&self) -> &str {
        "replay"
    }

    fn run(&mut self, sink: &mut dyn EventSink, stop: &AtomicBool) -> Result<(), SourceError> {
        let start = std::time::Instant::now();
        let mut sent: u64 = 0;
        let mut buf = Vec::with_capacity(256);
        for _ in 0..self.loops.max(1) {
            let file = std::fs::File::open(&self.path)
                .map_err(io_err(format!("opening {}", self.path.display())))?;
            let mut r = BufReader::new(file);
            let mut magic = [0u8; 8];
            r.read_exact(&mut magic).map_err(|_| {
                SourceError::Format(format!(
                    "{}: not a replay file (too short)",
                    self.path.display()
                ))
            })?;
            if &magic != MAGIC {
                return Err(SourceError::Format(format!(
                    "{}: not a replay file (bad magic)",
                    self.path.display()
                )));
            }
            let mut offset = 8u64;
            let mut in_batch = 0;
            loop {
                if stop.load(Ordering::Relaxed) {
                    sink.flush();
                    return Ok(());
                }
                let Some(rec) =
                    read_record(&mut r, &mut buf, offset).inspect_err(|_| sink.flush())?
                else {
                    break;
                };
                let stamp = |ts: u64| if self.restamp { now_ns() } else { ts };
                match rec {
                    Record::Sample { cpu, ts, len } => {
                        offset += len;
                        sink.push(RawEvent::Sample {
                            cpu,
                            timestamp_ns: stamp(ts),
                            data: &buf,
                        });
                    }
                    Record::Lost { cpu, ts, count } => {
                        offset += 21;
                        sink.push(RawEvent::Lost {
                            cpu,
                            count,
                            timestamp_ns: stamp(ts),
                        });
                    }
                }
                sent += 1;
                in_batch += 1;
                if in_batch == BATCH {
                    in_batch = 0;
                    sink.flush();
                }
                if let Pacing::Rate(rate) = self.pacing {
                    let due = Duration::from_secs_f64(sent as f64 / rate);
                    let elapsed = start.elapsed();
                    if due > elapsed {
                        sink.flush();
                        in_batch = 0;
                        std::thread::sleep(due - elapsed);
                    }
                }
            }
            sink.flush();
        }
        while self.linger && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Collect {
        samples: Vec<(u32, u64, Vec<u8>)>,
        lost: Vec<(u32, u64)>,
        flushes: usize,
    }

    impl EventSink for Collect {
        fn push(&mut self, e: RawEvent<'_>) {
            match e {
                RawEvent::Sample {
                    cpu,
                    timestamp_ns,
                    data,
                } => self.samples.push((cpu, timestamp_ns, data.to_vec())),
                RawEvent::Lost { cpu, count, .. } => self.lost.push((cpu, count)),
            }
        }
        fn flush(&mut self) {
            self.flushes += 1;
        }
    }

    fn write_file(dir: &Path, events: &[RawEvent<'_>]) -> PathBuf {
        let path = dir.join(format!("t-{}.rplay", now_ns()));
        let mut w = ReplayWriter::create(&path).expect("create");
        for e in events {
            w.write(e).expect("write");
        }
        w.finish().expect("finish");
        path
    }

    #[test]
    fn round_trip() {
        let dir = std::env::temp_dir();
        let path = write_file(
            &dir,
            &[
                RawEvent::Sample {
                    cpu: 1,
                    timestamp_ns: 10,
                    data: &[4, 0, 1],
                },
                RawEvent::Lost {
                    cpu: 0,
                    count: 7,
                    timestamp_ns: 11,
                },
                RawEvent::Sample {
                    cpu: 0,
                    timestamp_ns: 12,
                    data: &[1; 40],
                },
            ],
        );
        let mut c = Collect::default();
        ReplaySource::new(&path)
            .run(&mut c, &AtomicBool::new(false))
            .expect("replay");
        assert_eq!(
            c.samples,
            vec![(1, 10, vec![4, 0, 1]), (0, 12, vec![1; 40])]
        );
        assert_eq!(c.lost, vec![(0, 7)]);
        assert!(c.flushes >= 1);
        std::fs::remove_file(path).ok();
    }

    #[test]
    fn truncated_and_garbage_files_are_errors() {
        let dir = std::env::temp_dir();
        let path = write_file(
            &dir,
            &[RawEvent::Sample {
                cpu: 1,
                timestamp_ns: 10,
                data: &[4; 64],
            }],
        );
        let full = std::fs::read(&path).expect("read");
        for cut in [full.len() - 1, 8 + 5, 8 + 15] {
            std::fs::write(&path, &full[..cut]).expect("write");
            let mut c = Collect::default();
            let err = ReplaySource::new(&path)
                .run(&mut c, &AtomicBool::new(false))
                .expect_err("truncated");
            assert!(err.to_string().contains("truncated"), "{err}");
        }
        std::fs::write(&path, b"NOTAFILE").expect("write");
        let err = ReplaySource::new(&path)
            .run(&mut Collect::default(), &AtomicBool::new(false))
            .expect_err("magic");
        assert!(err.to_string().contains("bad magic"));
        let mut huge = MAGIC.to_vec();
        huge.extend_from_slice(&[
            1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff,
        ]);
        std::fs::write(&path, &huge).expect("write");
        let err = ReplaySource::new(&path)
            .run(&mut Collect::default(), &AtomicBool::new(false))
            .expect_err("len");
        assert!(err.to_string().contains("exceeds"));
        std::fs::remove_file(path).ok();
    }
}
