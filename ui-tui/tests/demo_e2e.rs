//! `periscope demo` end to end (root only; skips with a printed reason otherwise): the real
//! binary builds its own cluster instance, loads the datapath, applies rule1 and must print
//! xwing's policy drops through the relay, then tear everything down.

use std::process::Command;

#[test]
fn demo_prints_xwing_drops_and_cleans_up() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "SKIPPED demo_prints_xwing_drops_and_cleans_up: needs root for eBPF and network namespaces"
        );
        return;
    }
    let pid = std::process::id();
    let prefix = format!("dm{}", pid % 100_000);
    let cidr = format!("10.250.{}.0/24", pid % 256);
    let out = Command::new(env!("CARGO_BIN_EXE_periscope"))
        .args([
            "demo",
            "--no-wait",
            "--prefix",
            &prefix,
            "--pod-cidr",
            &cidr,
        ])
        .args([
            "--agent-address",
            "127.0.0.1:0",
            "--relay-address",
            "127.0.0.1:0",
            "--metrics-address",
            "127.0.0.1:0",
        ])
        .output()
        .expect("run periscope demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert_eq!(
        stdout.matches("Ship landed").count(),
        3,
        "both ships before rule1, tiefighter after:\n{stdout}"
    );
    let drops: Vec<&str> = stdout
        .lines()
        .filter(|l| {
            l.contains("default/xwing:") && l.ends_with("Policy denied DROPPED (TCP Flags: SYN)")
        })
        .collect();
    assert!(!drops.is_empty(), "no xwing drop in:\n{stdout}");
    for l in &drops {
        assert!(l.contains(" <> default/deathstar-"), "{l}");
        assert!(l.contains(":80 (ID:"), "{l}");
    }
    assert!(stderr.contains("torn down"), "{stderr}");
    let netns = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns");
    assert!(
        !String::from_utf8_lossy(&netns.stdout).contains(&prefix),
        "netns left behind"
    );
    assert!(
        !std::path::Path::new(&format!("/sys/fs/bpf/periscope/{prefix}")).exists(),
        "pins left behind"
    );
}
