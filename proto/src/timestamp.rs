//! `google.protobuf.Timestamp` with proto3-canonical JSON.
//!
//! pbjson-types formats timestamps with a `+00:00` offset; the proto3 JSON mapping (and Hubble's
//! own output) is Z-normalised with 0, 3, 6 or 9 fractional digits, e.g.
//! `"2024-05-01T12:00:00.123Z"`. This type keeps the wire layout of the well-known type (so it
//! is binary-identical) and owns its serde impls.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, SecondsFormat, Utc};

/// Seconds of 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the range proto3 JSON allows.
const MIN_SECONDS: i64 = -62_135_596_800;
const MAX_SECONDS: i64 = 253_402_300_799;
const NANOS_PER_SECOND: i32 = 1_000_000_000;

/// A point in time as seconds and nanoseconds since the Unix epoch (UTC).
///
/// Field order makes the derived `Ord` chronological for normalised values (`0 <= nanos < 1e9`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// Why a [`Timestamp`] cannot be converted or formatted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    #[error(
        "timestamp {seconds}s {nanos}ns is outside 0001-01-01..=9999-12-31 or nanos is not in 0..1e9"
    )]
    OutOfRange { seconds: i64, nanos: i32 },
}

impl Timestamp {
    /// Builds a timestamp, rejecting values that proto3 JSON cannot represent.
    pub fn new(seconds: i64, nanos: i32) -> Result<Self, TimestampError> {
        let ts = Self { seconds, nanos };
        ts.check()?;
        Ok(ts)
    }

    /// Nanoseconds since the Unix epoch (any `seconds`/`nanos` pair fits in `i128`).
    pub fn as_unix_nanos(&self) -> i128 {
        i128::from(self.seconds) * i128::from(NANOS_PER_SECOND) + i128::from(self.nanos)
    }

    fn check(&self) -> Result<(), TimestampError> {
        if (MIN_SECONDS..=MAX_SECONDS).contains(&self.seconds)
            && (0..NANOS_PER_SECOND).contains(&self.nanos)
        {
            Ok(())
        } else {
            Err(TimestampError::OutOfRange {
                seconds: self.seconds,
                nanos: self.nanos,
            })
        }
    }

    /// RFC 3339, UTC, `Z` suffix, 0/3/6/9 fractional digits (the proto3 JSON form).
    pub fn to_rfc3339(&self) -> Result<String, TimestampError> {
        let dt = DateTime::<Utc>::try_from(*self)?;
        Ok(dt.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    }

    /// Parses any RFC 3339 timestamp (any offset); the result is normalised to UTC.
    pub fn parse_rfc3339(s: &str) -> Result<Self, chrono::ParseError> {
        DateTime::parse_from_rfc3339(s).map(|d| Self::from(d.with_timezone(&Utc)))
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(d: DateTime<Utc>) -> Self {
        // chrono encodes leap seconds as nanos >= 1e9; fold them into the last second.
        let nanos = d.timestamp_subsec_nanos().min(999_999_999);
        Self {
            seconds: d.timestamp(),
            nanos: nanos as i32,
        }
    }
}

impl TryFrom<Timestamp> for DateTime<Utc> {
    type Error = TimestampError;
    fn try_from(ts: Timestamp) -> Result<Self, Self::Error> {
        ts.check()?;
        DateTime::from_timestamp(ts.seconds, ts.nanos as u32).ok_or(TimestampError::OutOfRange {
            seconds: ts.seconds,
            nanos: ts.nanos,
        })
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Self {
                seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                nanos: d.subsec_nanos() as i32,
            },
            Err(e) => {
                // Before the epoch: borrow one second so nanos stays non-negative.
                let d = e.duration();
                let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                match d.subsec_nanos() {
                    0 => Self {
                        seconds: -secs,
                        nanos: 0,
                    },
                    n => Self {
                        seconds: -secs - 1,
                        nanos: NANOS_PER_SECOND - n as i32,
                    },
                }
            }
        }
    }
}

impl TryFrom<Timestamp> for SystemTime {
    type Error = TimestampError;
    fn try_from(ts: Timestamp) -> Result<Self, Self::Error> {
        ts.check()?;
        let nanos = Duration::from_nanos(ts.nanos as u64);
        let t = if ts.seconds >= 0 {
            UNIX_EPOCH.checked_add(Duration::from_secs(ts.seconds as u64))
        } else {
            UNIX_EPOCH.checked_sub(Duration::from_secs(ts.seconds.unsigned_abs()))
        };
        t.and_then(|t| t.checked_add(nanos))
            .ok_or(TimestampError::OutOfRange {
                seconds: ts.seconds,
                nanos: ts.nanos,
            })
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let s = self.to_rfc3339().map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(&s)
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Timestamp;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an RFC 3339 timestamp string")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Timestamp, E> {
                let ts = Timestamp::parse_rfc3339(s).map_err(E::custom)?;
                ts.check().map_err(E::custom)?;
                Ok(ts)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_z_normalised_with_minimal_fraction_groups() {
        let cases = [
            (
                Timestamp {
                    seconds: 0,
                    nanos: 0,
                },
                "1970-01-01T00:00:00Z",
            ),
            (
                Timestamp {
                    seconds: 1_714_564_800,
                    nanos: 123_000_000,
                },
                "2024-05-01T12:00:00.123Z",
            ),
            (
                Timestamp {
                    seconds: 1_714_564_800,
                    nanos: 123_400_000,
                },
                "2024-05-01T12:00:00.123400Z",
            ),
            (
                Timestamp {
                    seconds: 1_714_564_800,
                    nanos: 1,
                },
                "2024-05-01T12:00:00.000000001Z",
            ),
            (
                Timestamp {
                    seconds: -1,
                    nanos: 500_000_000,
                },
                "1969-12-31T23:59:59.500Z",
            ),
        ];
        for (ts, want) in cases {
            assert_eq!(ts.to_rfc3339().as_deref(), Ok(want));
            let back: Timestamp = Timestamp::parse_rfc3339(want).expect("parses");
            assert_eq!(back, ts);
        }
    }

    #[test]
    fn offsets_are_normalised_on_parse() {
        let ts = Timestamp::parse_rfc3339("2024-05-01T14:00:00.5+02:00").expect("parses");
        assert_eq!(
            ts,
            Timestamp {
                seconds: 1_714_564_800,
                nanos: 500_000_000
            }
        );
    }

    #[test]
    fn out_of_range_is_an_error_not_a_panic() {
        assert!(Timestamp::new(MAX_SECONDS + 1, 0).is_err());
        assert!(Timestamp::new(0, -1).is_err());
        assert!(Timestamp::new(0, NANOS_PER_SECOND).is_err());
        assert!(
            Timestamp {
                seconds: i64::MIN,
                nanos: 0
            }
            .to_rfc3339()
            .is_err()
        );
        assert!(
            SystemTime::try_from(Timestamp {
                seconds: 0,
                nanos: -5
            })
            .is_err()
        );
    }

    #[test]
    fn system_time_round_trips_on_both_sides_of_the_epoch() {
        for t in [
            UNIX_EPOCH + Duration::new(1_714_564_800, 42),
            UNIX_EPOCH - Duration::new(3, 250_000_000),
            UNIX_EPOCH,
        ] {
            let ts = Timestamp::from(t);
            assert!((0..NANOS_PER_SECOND).contains(&ts.nanos));
            assert_eq!(SystemTime::try_from(ts), Ok(t));
        }
        assert_eq!(
            Timestamp::from(UNIX_EPOCH - Duration::new(3, 250_000_000)),
            Timestamp {
                seconds: -4,
                nanos: 750_000_000
            }
        );
    }

    #[test]
    fn ordering_is_chronological() {
        let a = Timestamp {
            seconds: 10,
            nanos: 999_999_999,
        };
        let b = Timestamp {
            seconds: 11,
            nanos: 0,
        };
        assert!(a < b);
        assert!(a.as_unix_nanos() < b.as_unix_nanos());
    }
}
