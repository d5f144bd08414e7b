//! Selector and filter flags → `GetFlowsRequest`, with `hubble observe`'s rules for
//! `--last/--first/--all/--follow/--since/--until`.

use std::time::SystemTime;

use periscope_proto::observer::GetFlowsRequest;

use crate::cli::{FilterArgs, SelectorArgs};
use crate::filters::{self, FilterError, Filters};
use crate::timefmt::{self, TimeError};

/// Hubble prints the last 20 flows when nothing else is asked for.
pub const DEFAULT_LAST: u64 = 20;

/// Why the selector flags do not make a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("cannot set both --{0} and --{1}")]
    Exclusive(&'static str, &'static str),
    #[error("invalid --{flag} value: {source}")]
    Time {
        flag: &'static str,
        #[source]
        source: TimeError,
    },
    #[error(transparent)]
    Filter(#[from] FilterError),
}

/// Builds the request `periscope observe` sends. `now` anchors relative `--since/--until`.
pub fn build(
    selectors: &SelectorArgs,
    filter_args: &FilterArgs,
    now: SystemTime,
) -> Result<GetFlowsRequest, RequestError> {
    let filters = filters::build(filter_args)?;
    with_filters(selectors, filters, now)
}

/// Like [`build`], for callers that already hold built [`Filters`].
pub fn with_filters(
    sel: &SelectorArgs,
    filters: Filters,
    now: SystemTime,
) -> Result<GetFlowsRequest, RequestError> {
    let first_n = sel.first.unwrap_or(0);
    let mut last_n = sel.last.unwrap_or(0);
    let first = first_n > 0;
    let last = last_n > 0;
    if first && last {
        return Err(RequestError::Exclusive("first", "last"));
    }
    if first && sel.all {
        return Err(RequestError::Exclusive("first", "all"));
    }
    if first && sel.follow {
        return Err(RequestError::Exclusive("first", "follow"));
    }
    if last && sel.all {
        return Err(RequestError::Exclusive("last", "all"));
    }

    let parse = |flag: &'static str, s: &str| {
        timefmt::parse_time_spec(s, now).map_err(|source| RequestError::Time { flag, source })
    };
    let since = sel
        .since
        .as_deref()
        .map(|s| parse("since", s))
        .transpose()?;
    // With --follow the stream has no end, so --until is ignored (as in Hubble), but a bad
    // value is still reported.
    let until = sel
        .until
        .as_deref()
        .map(|s| parse("until", s))
        .transpose()?;
    let until = if sel.follow { None } else { until };

    if since.is_none() && until.is_none() && !first {
        if sel.all {
            last_n = u64::MAX;
        } else if last_n == 0 && !sel.follow {
            last_n = DEFAULT_LAST;
        }
    }
    Ok(GetFlowsRequest {
        number: if first { first_n } else { last_n },
        first,
        follow: sel.follow,
        whitelist: filters.whitelist,
        blacklist: filters.blacklist,
        since,
        until,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn sel() -> SelectorArgs {
        SelectorArgs::default()
    }

    fn req(s: SelectorArgs) -> Result<GetFlowsRequest, RequestError> {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        build(&s, &FilterArgs::default(), now)
    }

    #[test]
    fn defaults_to_last_twenty_unless_following() {
        let r = req(sel()).expect("valid");
        assert_eq!((r.number, r.first, r.follow), (20, false, false));
        let r = req(SelectorArgs {
            follow: true,
            ..sel()
        })
        .expect("valid");
        assert_eq!((r.number, r.follow), (0, true));
        let r = req(SelectorArgs {
            follow: true,
            last: Some(5),
            ..sel()
        })
        .expect("valid");
        assert_eq!((r.number, r.follow), (5, true));
    }

    #[test]
    fn first_all_and_last() {
        let r = req(SelectorArgs {
            first: Some(3),
            ..sel()
        })
        .expect("valid");
        assert_eq!((r.number, r.first), (3, true));
        let r = req(SelectorArgs { all: true, ..sel() }).expect("valid");
        assert_eq!(r.number, u64::MAX);
        let r = req(SelectorArgs {
            last: Some(7),
            ..sel()
        })
        .expect("valid");
        assert_eq!((r.number, r.first), (7, false));
    }

    #[test]
    fn exclusive_selectors_are_rejected() {
        let cases = [
            SelectorArgs {
                first: Some(1),
                last: Some(1),
                ..sel()
            },
            SelectorArgs {
                first: Some(1),
                all: true,
                ..sel()
            },
            SelectorArgs {
                first: Some(1),
                follow: true,
                ..sel()
            },
            SelectorArgs {
                last: Some(1),
                all: true,
                ..sel()
            },
        ];
        for c in cases {
            assert!(matches!(req(c), Err(RequestError::Exclusive(..))));
        }
    }

    #[test]
    fn since_and_until_replace_the_default_count() {
        let r = req(SelectorArgs {
            since: Some("5m".into()),
            ..sel()
        })
        .expect("valid");
        assert_eq!(r.number, 0);
        assert_eq!(r.since.map(|t| t.seconds), Some(1_700_000_000 - 300));
        let r = req(SelectorArgs {
            since: Some("2023-11-14T22:00:00Z".into()),
            until: Some("2023-11-14T22:10:00Z".into()),
            ..sel()
        })
        .expect("valid");
        assert_eq!(r.since.map(|t| t.seconds), Some(1_699_999_200));
        assert_eq!(r.until.map(|t| t.seconds), Some(1_699_999_800));
        // --until is dropped when following.
        let r = req(SelectorArgs {
            until: Some("1m".into()),
            follow: true,
            ..sel()
        })
        .expect("valid");
        assert_eq!(r.until, None);
        let e = req(SelectorArgs {
            since: Some("yesterday".into()),
            ..sel()
        });
        assert!(matches!(e, Err(RequestError::Time { flag: "since", .. })));
    }
}
