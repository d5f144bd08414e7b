//! Golden tests: every output format on the fixed responses of `common::responses()`, times in
//! UTC. Regenerate after an intended change with `PERISCOPE_UPDATE_GOLDEN=1 cargo test -p
//! periscope-cli --test golden`, then review the diff of `tests/golden/`.

mod common;

use std::path::PathBuf;

use periscope_cli::output::{OutputFormat, Printer, PrinterOptions};
use periscope_cli::timefmt::{TimeFormat, Zone};
use periscope_proto::observer::get_flows_response::ResponseTypes;

fn render(opts: PrinterOptions) -> String {
    let mut printer = Printer::new(opts, Vec::new(), Vec::new());
    for r in common::responses() {
        printer.write_response(&r).expect("writing to memory");
    }
    let (out, err) = printer.finish().expect("writing to memory");
    format!(
        "--- stdout ---\n{}--- stderr ---\n{}",
        String::from_utf8(out).expect("utf-8"),
        String::from_utf8(err).expect("utf-8")
    )
}

fn check(name: &str, opts: PrinterOptions) {
    let got = render(opts);
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.txt"));
    if std::env::var_os("PERISCOPE_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &got).expect("write golden file");
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (set PERISCOPE_UPDATE_GOLDEN=1 to create)",
            path.display()
        )
    });
    assert!(
        got == want,
        "{name}: output differs from {}\n--- got ---\n{got}\n--- want ---\n{want}",
        path.display()
    );
}

fn opts(format: OutputFormat) -> PrinterOptions {
    PrinterOptions {
        format,
        time_format: TimeFormat::StampMilli,
        zone: Zone::Utc,
        color: false,
        node_name: false,
        ip_translation: true,
        debug: false,
    }
}

#[test]
fn compact() {
    check("compact", opts(OutputFormat::Compact));
}

#[test]
fn compact_with_node_names() {
    check(
        "compact-node-name",
        PrinterOptions {
            node_name: true,
            ..opts(OutputFormat::Compact)
        },
    );
}

#[test]
fn compact_numeric() {
    check(
        "compact-numeric",
        PrinterOptions {
            ip_translation: false,
            ..opts(OutputFormat::Compact)
        },
    );
}

#[test]
fn compact_colored() {
    check(
        "compact-color",
        PrinterOptions {
            color: true,
            ..opts(OutputFormat::Compact)
        },
    );
}

#[test]
fn compact_rfc3339_with_debug_events() {
    check(
        "compact-rfc3339",
        PrinterOptions {
            time_format: TimeFormat::Rfc3339Milli,
            debug: true,
            ..opts(OutputFormat::Compact)
        },
    );
}

#[test]
fn dict() {
    check("dict", opts(OutputFormat::Dict));
}

#[test]
fn dict_with_node_names() {
    check(
        "dict-node-name",
        PrinterOptions {
            node_name: true,
            ..opts(OutputFormat::Dict)
        },
    );
}

#[test]
fn json() {
    check("json", opts(OutputFormat::Json));
}

#[test]
fn jsonpb() {
    check("jsonpb", opts(OutputFormat::Jsonpb));
}

#[test]
fn table() {
    check("table", opts(OutputFormat::Table));
}

#[test]
fn table_with_node_names() {
    check(
        "table-node-name",
        PrinterOptions {
            node_name: true,
            ..opts(OutputFormat::Table)
        },
    );
}

/// The issue's two example lines, verbatim.
#[test]
fn issue_examples_match_hubble_lines() {
    let got = render(opts(OutputFormat::Compact));
    assert!(got.contains(
        "Oct 26 15:15:46.416: default/xwing:49446 (ID:13058) <> default/deathstar-689f66b57d-kccrz:80 (ID:17839) Policy denied DROPPED (TCP Flags: SYN)\n"
    ), "{got}");
    assert!(got.contains(
        ": default/tiefighter:45910 (ID:56650) -> default/deathstar-689f66b57d-kccrz:80 (ID:17839) to-endpoint FORWARDED (TCP Flags: SYN)\n"
    ), "{got}");
    assert!(
        got.contains("EVENTS LOST: HUBBLE_RING_BUFFER CPU(0) 5\n"),
        "{got}"
    );
}

/// jsonpb lines are whole `GetFlowsResponse`s that read back into the same messages.
#[test]
fn jsonpb_round_trips() {
    let mut printer = Printer::new(opts(OutputFormat::Jsonpb), Vec::new(), Vec::new());
    let responses = common::responses();
    for r in &responses {
        printer.write_response(r).expect("memory");
    }
    let (out, err) = printer.finish().expect("memory");
    let lines: Vec<&str> = std::str::from_utf8(&out).expect("utf-8").lines().collect();
    // Node status events go to stderr, like Hubble; without --debug only the failure shows.
    let streamed: Vec<_> = responses
        .iter()
        .filter(|r| !matches!(r.response_types, Some(ResponseTypes::NodeStatus(_))))
        .collect();
    assert_eq!(lines.len(), streamed.len());
    for (line, want) in lines.iter().zip(streamed) {
        let back: periscope_proto::observer::GetFlowsResponse =
            serde_json::from_str(line).expect("valid GetFlowsResponse JSON");
        assert_eq!(&back, want);
    }
    assert_eq!(std::str::from_utf8(&err).expect("utf-8").lines().count(), 1);
}
