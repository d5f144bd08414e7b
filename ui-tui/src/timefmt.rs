//! Time parsing and formatting with Hubble's conventions: Go-style durations (`5m`, `1h30m`),
//! `--since`/`--until` specs, and the `--time-format` layouts (`StampMilli`, `RFC3339`, …).
//! Pure functions: "now" and the time zone are always passed in.

use std::time::{Duration, SystemTime};

use chrono::{DateTime, Datelike, FixedOffset, Local, NaiveDate, TimeZone, Timelike, Utc};
use periscope_proto::Timestamp;

/// Why a duration or time spec was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("invalid duration {0:?} (expected e.g. 300ms, 5s, 5m, 1h30m)")]
    Duration(String),
    #[error(
        "invalid time {0:?} (expected a duration like 5m or 1h30m, or a time like 2006-01-02T15:04:05Z)"
    )]
    Time(String),
}

/// Parses a Go `time.ParseDuration` string: an optional sign, then one or more decimal numbers
/// each with a unit (`ns`, `us`/`µs`, `ms`, `s`, `m`, `h`). Returns signed nanoseconds.
pub fn parse_go_duration_nanos(s: &str) -> Result<i128, TimeError> {
    let err = || TimeError::Duration(s.to_string());
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(err());
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        let (num, tail) = rest.split_at(num_len);
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(err());
        }
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale: i128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(err()),
        };
        let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
        let int: i128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| err())?
        };
        let mut value = int.checked_mul(scale).ok_or_else(err)?;
        // Fractions are exact down to the nanosecond; further digits are dropped.
        let mut place = scale;
        for d in frac_part.bytes() {
            place /= 10;
            if place == 0 {
                break;
            }
            value += i128::from(d - b'0') * place;
        }
        total = total.checked_add(value).ok_or_else(err)?;
        if total > i128::from(i64::MAX) {
            return Err(err());
        }
        rest = tail;
    }
    Ok(if neg { -total } else { total })
}

/// A non-negative Go-style duration, for flags like `--timeout 5s`.
pub fn parse_go_duration(s: &str) -> Result<Duration, TimeError> {
    let nanos = parse_go_duration_nanos(s)?;
    u64::try_from(nanos)
        .map(Duration::from_nanos)
        .map_err(|_| TimeError::Duration(s.to_string()))
}

/// Parses a `--since`/`--until` value like Hubble: a duration means "that long before `now`",
/// otherwise one of the accepted absolute layouts (RFC 3339 with or without fraction, RFC 1123Z,
/// `2006-01-02`, `2006-01-02T15Z07:00`, `2006-01-02T15:04Z07:00`).
pub fn parse_time_spec(s: &str, now: SystemTime) -> Result<Timestamp, TimeError> {
    let bad = || TimeError::Time(s.to_string());
    if let Ok(nanos) = parse_go_duration_nanos(s) {
        let now = Timestamp::from(now).as_unix_nanos();
        return timestamp_from_nanos(now - nanos).ok_or_else(bad);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(Timestamp::from(t.with_timezone(&Utc)));
    }
    if let Ok(t) = DateTime::parse_from_str(s, "%a, %d %b %Y %H:%M:%S %z") {
        return Ok(Timestamp::from(t.with_timezone(&Utc)));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let dt = d.and_hms_opt(0, 0, 0).ok_or_else(bad)?;
        return Ok(Timestamp::from(Utc.from_utc_datetime(&dt)));
    }
    // Hour or minute precision: complete the seconds and reuse the RFC 3339 parser.
    if let Some((date, time)) = s.split_once('T') {
        let tz_at = time.find(['Z', 'z', '+', '-']).ok_or_else(bad)?;
        let (clock, tz) = time.split_at(tz_at);
        let full = match clock.split(':').count() {
            1 => format!("{date}T{clock}:00:00{tz}"),
            2 => format!("{date}T{clock}:00{tz}"),
            _ => return Err(bad()),
        };
        if let Ok(t) = DateTime::parse_from_rfc3339(&full) {
            return Ok(Timestamp::from(t.with_timezone(&Utc)));
        }
    }
    Err(bad())
}

fn timestamp_from_nanos(n: i128) -> Option<Timestamp> {
    let seconds = i64::try_from(n.div_euclid(1_000_000_000)).ok()?;
    let nanos = i32::try_from(n.rem_euclid(1_000_000_000)).ok()?;
    Timestamp::new(seconds, nanos).ok()
}

/// The `--time-format` layouts Hubble knows (names match case-insensitively).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum TimeFormat {
    #[default]
    #[value(name = "StampMilli")]
    StampMilli,
    #[value(name = "RFC3339")]
    Rfc3339,
    #[value(name = "RFC3339Milli")]
    Rfc3339Milli,
    #[value(name = "RFC3339Micro")]
    Rfc3339Micro,
    #[value(name = "RFC3339Nano")]
    Rfc3339Nano,
    #[value(name = "RFC1123Z")]
    Rfc1123Z,
    #[value(name = "YearMonthDay")]
    YearMonthDay,
    #[value(name = "YearMonthDayHour")]
    YearMonthDayHour,
    #[value(name = "YearMonthDayHourMinute")]
    YearMonthDayHourMinute,
}

/// Which zone printed times are in. Hubble prints local time; tests pin UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Zone {
    #[default]
    Local,
    Utc,
}

/// Formats a timestamp the way Go's `time.Format` renders Hubble's layouts; `N/A` when the
/// timestamp is absent or out of range (as Hubble does for invalid timestamps).
pub fn format_timestamp(ts: Option<&Timestamp>, format: TimeFormat, zone: Zone) -> String {
    let Some(ts) = ts else {
        return "N/A".to_string();
    };
    let Ok(utc) = DateTime::<Utc>::try_from(*ts) else {
        return "N/A".to_string();
    };
    let dt: DateTime<FixedOffset> = match zone {
        Zone::Utc => utc.fixed_offset(),
        Zone::Local => Local.from_utc_datetime(&utc.naive_utc()).fixed_offset(),
    };
    format_datetime(&dt, format)
}

fn format_datetime(dt: &DateTime<FixedOffset>, format: TimeFormat) -> String {
    let date = format!("{:04}-{:02}-{:02}", dt.year(), dt.month(), dt.day());
    let zone = go_zone(dt.offset());
    let nanos = dt.nanosecond().min(999_999_999);
    match format {
        TimeFormat::StampMilli => format!(
            "{} {:>2} {:02}:{:02}:{:02}.{:03}",
            dt.format("%b"),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second(),
            nanos / 1_000_000
        ),
        TimeFormat::Rfc3339 => format!("{date}T{}{zone}", dt.format("%H:%M:%S")),
        TimeFormat::Rfc3339Milli => {
            format!(
                "{date}T{}{}{zone}",
                dt.format("%H:%M:%S"),
                trimmed_fraction(nanos, 3)
            )
        }
        TimeFormat::Rfc3339Micro => {
            format!(
                "{date}T{}{}{zone}",
                dt.format("%H:%M:%S"),
                trimmed_fraction(nanos, 6)
            )
        }
        TimeFormat::Rfc3339Nano => {
            format!(
                "{date}T{}{}{zone}",
                dt.format("%H:%M:%S"),
                trimmed_fraction(nanos, 9)
            )
        }
        TimeFormat::Rfc1123Z => dt.format("%a, %d %b %Y %H:%M:%S %z").to_string(),
        TimeFormat::YearMonthDay => date,
        TimeFormat::YearMonthDayHour => format!("{date}T{:02}{zone}", dt.hour()),
        TimeFormat::YearMonthDayHourMinute => {
            format!("{date}T{:02}:{:02}{zone}", dt.hour(), dt.minute())
        }
    }
}

/// Go's `Z07:00`: `Z` for UTC, else `±hh:mm`.
fn go_zone(offset: &FixedOffset) -> String {
    let secs = offset.local_minus_utc();
    if secs == 0 {
        return "Z".to_string();
    }
    let sign = if secs < 0 { '-' } else { '+' };
    let abs = secs.unsigned_abs();
    format!("{sign}{:02}:{:02}", abs / 3600, (abs % 3600) / 60)
}

/// Go's `.999…` layout element: up to `digits` digits, truncated, trailing zeros (and a bare
/// dot) removed.
fn trimmed_fraction(nanos: u32, digits: u32) -> String {
    let value = nanos / 10u32.pow(9 - digits);
    let text = format!("{value:0width$}", width = digits as usize);
    let text = text.trim_end_matches('0');
    if text.is_empty() {
        String::new()
    } else {
        format!(".{text}")
    }
}

/// Go's `time.Duration.String()` for a non-negative nanosecond count (`1h2m3s`, `1.5s`,
/// `250ms`, `0s`).
pub fn go_duration_string(ns: u64) -> String {
    const US: u64 = 1_000;
    const MS: u64 = 1_000_000;
    const S: u64 = 1_000_000_000;
    if ns == 0 {
        return "0s".to_string();
    }
    if ns < US {
        return format!("{ns}ns");
    }
    if ns < MS {
        return format!("{}{}µs", ns / US, trimmed_decimal(ns % US, 3));
    }
    if ns < S {
        return format!("{}{}ms", ns / MS, trimmed_decimal(ns % MS, 6));
    }
    let secs = ns / S;
    let frac = trimmed_decimal(ns % S, 9);
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}{frac}s")
    } else if m > 0 {
        format!("{m}m{s}{frac}s")
    } else {
        format!("{s}{frac}s")
    }
}

fn trimmed_decimal(value: u64, digits: usize) -> String {
    let text = format!("{value:0digits$}");
    let text = text.trim_end_matches('0');
    if text.is_empty() {
        String::new()
    } else {
        format!(".{text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(NOW)
    }

    #[test]
    fn go_durations_parse_like_time_parse_duration() {
        let cases: &[(&str, i128)] = &[
            ("0", 0),
            ("5s", 5_000_000_000),
            ("5m", 300_000_000_000),
            ("1h30m", 5_400_000_000_000),
            ("1.5h", 5_400_000_000_000),
            ("300ms", 300_000_000),
            ("2us", 2_000),
            ("2µs", 2_000),
            ("10ns", 10),
            ("-1m", -60_000_000_000),
            ("1h2m3.5s", 3_723_500_000_000),
        ];
        for (s, want) in cases {
            assert_eq!(parse_go_duration_nanos(s), Ok(*want), "{s}");
        }
        for bad in ["", "5", "m", "5x", "1..5s", "-", "5 m", "1d", "h5"] {
            assert!(parse_go_duration_nanos(bad).is_err(), "{bad:?} should fail");
        }
        assert!(parse_go_duration("-5s").is_err());
        assert_eq!(parse_go_duration("1.5s"), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn since_accepts_relative_and_absolute_forms() {
        let ts = |s: &str| parse_time_spec(s, now()).map(|t| (t.seconds, t.nanos));
        assert_eq!(ts("5m"), Ok((NOW as i64 - 300, 0)));
        assert_eq!(ts("1h30m"), Ok((NOW as i64 - 5400, 0)));
        assert_eq!(ts("2023-11-14T22:13:20Z"), Ok((1_700_000_000, 0)));
        assert_eq!(
            ts("2023-11-14T22:13:20.5Z"),
            Ok((1_700_000_000, 500_000_000))
        );
        assert_eq!(ts("2023-11-14T23:13:20+01:00"), Ok((1_700_000_000, 0)));
        assert_eq!(ts("2023-11-14"), Ok((1_699_920_000, 0)));
        assert_eq!(ts("2023-11-14T22Z"), Ok((1_699_999_200, 0)));
        assert_eq!(ts("2023-11-14T22:13Z"), Ok((1_699_999_980, 0)));
        assert_eq!(
            ts("Tue, 14 Nov 2023 22:13:20 +0000"),
            Ok((1_700_000_000, 0))
        );
        for bad in ["yesterday", "2023-13-01", "2023-11-14T25Z", "", "5 minutes"] {
            assert!(parse_time_spec(bad, now()).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn formats_match_go_layouts() {
        let ts = Timestamp {
            seconds: 1_698_333_346, // 2023-10-26T15:15:46Z
            nanos: 416_500_000,
        };
        let f = |tf| format_timestamp(Some(&ts), tf, Zone::Utc);
        assert_eq!(f(TimeFormat::StampMilli), "Oct 26 15:15:46.416");
        assert_eq!(f(TimeFormat::Rfc3339), "2023-10-26T15:15:46Z");
        assert_eq!(f(TimeFormat::Rfc3339Milli), "2023-10-26T15:15:46.416Z");
        assert_eq!(f(TimeFormat::Rfc3339Micro), "2023-10-26T15:15:46.4165Z");
        assert_eq!(f(TimeFormat::Rfc3339Nano), "2023-10-26T15:15:46.4165Z");
        assert_eq!(f(TimeFormat::Rfc1123Z), "Thu, 26 Oct 2023 15:15:46 +0000");
        assert_eq!(f(TimeFormat::YearMonthDay), "2023-10-26");
        assert_eq!(f(TimeFormat::YearMonthDayHour), "2023-10-26T15Z");
        assert_eq!(f(TimeFormat::YearMonthDayHourMinute), "2023-10-26T15:15Z");
        // Single-digit days are space-padded in Go's Stamp layouts.
        let early = Timestamp {
            seconds: 1_696_604_400, // 2023-10-06T15:00:00Z
            nanos: 0,
        };
        assert_eq!(
            format_timestamp(Some(&early), TimeFormat::StampMilli, Zone::Utc),
            "Oct  6 15:00:00.000"
        );
        assert_eq!(
            format_timestamp(Some(&early), TimeFormat::Rfc3339Milli, Zone::Utc),
            "2023-10-06T15:00:00Z"
        );
        assert_eq!(
            format_timestamp(None, TimeFormat::StampMilli, Zone::Utc),
            "N/A"
        );
        let bad = Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        };
        assert_eq!(
            format_timestamp(Some(&bad), TimeFormat::Rfc3339, Zone::Utc),
            "N/A"
        );
    }

    #[test]
    fn durations_print_like_go() {
        assert_eq!(go_duration_string(0), "0s");
        assert_eq!(go_duration_string(999), "999ns");
        assert_eq!(go_duration_string(1_500), "1.5µs");
        assert_eq!(go_duration_string(250_000_000), "250ms");
        assert_eq!(go_duration_string(1_500_000_000), "1.5s");
        assert_eq!(go_duration_string(100_000_000_000), "1m40s");
        assert_eq!(go_duration_string(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_duration_string(286_000_000_000), "4m46s");
    }
}
