//! End-to-end tests of the local cluster builder. They need root (network namespaces, veths,
//! routes) and skip with a printed reason otherwise. Each test uses its own instance prefix and
//! pod CIDR, so they run in parallel with each other and with other suites, and all traffic stays
//! between namespaces the test created. A drop guard tears the instance down if an assertion
//! fails midway.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::Ipv4Net;
use periscope_datapath::cluster::{self, BuildOptions, Cluster, ClusterSpec, ServerMode};

const STEP: Duration = Duration::from_secs(15);

fn skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root to create network namespaces".into());
    }
    None
}

/// Tools the pods run; missing ones are an environment defect worth a loud failure, not a skip.
fn require_tools() {
    for tool in ["ip", "ping", "curl"] {
        let found = std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
        assert!(
            found,
            "`{tool}` is not installed (apt-get install iproute2 iputils-ping curl)"
        );
    }
}

struct Instance {
    prefix: String,
    cidr: Ipv4Net,
    root: PathBuf,
}

/// A prefix and pod CIDR no other test (or concurrently running test binary) uses.
fn instance(tag: u8) -> Instance {
    let pid = std::process::id();
    Instance {
        prefix: format!("e2e{tag}{}", pid % 100_000),
        cidr: Ipv4Net::new(Ipv4Addr::new(10, 200 + tag, (pid % 256) as u8, 0), 24).unwrap(),
        root: std::env::temp_dir().join("periscope-cluster-e2e"),
    }
}

/// Tears the instance down when dropped, also when the test panics.
struct Guard<'a> {
    inst: &'a Instance,
    cluster: Option<Cluster>,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        let result = match self.cluster.take() {
            Some(c) => c.teardown(),
            None => cluster::teardown(&self.inst.prefix, &self.inst.root),
        };
        if let Err(e) = result {
            eprintln!("teardown of {} failed: {e}", self.inst.prefix);
        }
    }
}

fn run(c: &Cluster, pod: &str, argv: &[&str]) -> (bool, String, String) {
    let out = c
        .exec_timeout(pod, argv, STEP)
        .unwrap_or_else(|e| panic!("{pod}: {argv:?}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_gone(inst: &Instance, pod_ips: &[Ipv4Addr], pids: &[u32]) {
    let left = cluster::leftovers(&inst.prefix, &inst.root).unwrap();
    assert!(left.is_empty(), "left behind: {left:?}");
    for ip in pod_ips {
        let out = std::process::Command::new("ip")
            .args(["route", "show", "exact", &format!("{ip}/32")])
            .output()
            .unwrap();
        assert!(
            out.stdout.is_empty(),
            "route to {ip} left: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let alive = stat
            .rsplit_once(')')
            .is_some_and(|(_, r)| !r.trim_start().starts_with('Z'));
        assert!(!alive, "server {pid} still running");
    }
    let etc: Vec<_> = std::fs::read_dir("/etc/netns")
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        !etc.iter().any(|n| n
            .to_string_lossy()
            .starts_with(&format!("{}-", inst.prefix))),
        "/etc/netns still has {etc:?}"
    );
    assert!(!Path::new(&inst.root).join(&inst.prefix).exists());
}

#[test]
fn starwars_with_server_processes_builds_idempotently_and_tears_down_after_crash() {
    if let Some(reason) = skip_reason() {
        eprintln!("SKIPPED starwars e2e: {reason}");
        return;
    }
    require_tools();
    let inst = instance(1);
    // Servers are processes here, so teardown by prefix is all the guard needs.
    let _guard = Guard {
        inst: &inst,
        cluster: None,
    };
    let opts = BuildOptions {
        prefix: inst.prefix.clone(),
        pod_cidr: Some(inst.cidr),
        server: ServerMode::Process(PathBuf::from(env!("CARGO_BIN_EXE_periscope-cluster"))),
        state_root: inst.root.clone(),
    };
    let spec = ClusterSpec::starwars();
    let c = cluster::build(&spec, &opts).unwrap();

    assert_eq!(c.pods.len(), 4);
    for p in &c.pods {
        assert!(p.host_ifindex > 0 && p.pod_ifindex > 0, "{p:?}");
        assert!(inst.cidr.contains(&p.ip));
        assert!(p.netns.starts_with(&format!("{}-default-", inst.prefix)));
        assert_eq!(
            p.server_pid.is_some(),
            p.name.starts_with("deathstar"),
            "{p:?}"
        );
    }
    let ds: Vec<_> = c.pods_named("deathstar").collect();
    assert_eq!(ds[0].identity, ds[1].identity);
    assert_ne!(c.pod("xwing").unwrap().identity, ds[0].identity);
    assert!(
        c.health().unwrap().iter().all(|h| h.ok()),
        "{:?}",
        c.health()
    );

    // Building again changes nothing: same links (ifindexes), addresses, servers.
    let again = cluster::build(&spec, &opts).unwrap();
    assert_eq!(again.pods, c.pods);
    // And the saved state is what other processes (periscope-cluster exec) load.
    let loaded = Cluster::load(&inst.prefix, &inst.root).unwrap().unwrap();
    assert_eq!(loaded.pods, c.pods);
    drop(again);

    let deathstar_ip = ds[0].ip.to_string();
    let (ok, out, err) = run(
        &c,
        "xwing",
        &["ping", "-c", "3", "-i", "0.2", "-W", "2", &deathstar_ip],
    );
    assert!(ok && out.contains("3 received"), "ping: {out}{err}");

    let landing = "deathstar.default.svc.cluster.local/v1/request-landing";
    let (ok, out, err) = run(
        &c,
        "tiefighter",
        &["curl", "-s", "--max-time", "5", "-XPOST", landing],
    );
    assert!(ok, "curl failed: {err}");
    assert_eq!(out, "Ship landed\n");
    let port = format!("{}/v1/exhaust-port", ds[1].name);
    let (ok, out, _) = run(
        &c,
        "tiefighter",
        &["curl", "-s", "--max-time", "5", "-XPUT", &port],
    );
    assert!(ok && out.contains("Panic: deathstar exploded"), "{out}");
    let (_, out, _) = run(
        &c,
        "xwing",
        &[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
            "deathstar/v1/nope",
        ],
    );
    assert_eq!(out, "404");

    // Crash: the handle goes away without teardown. A later teardown finds everything from the
    // prefix alone, even without the state directory.
    let ips: Vec<Ipv4Addr> = c.pods.iter().map(|p| p.ip).collect();
    let pids: Vec<u32> = c.pods.iter().filter_map(|p| p.server_pid).collect();
    drop(c);
    std::fs::remove_dir_all(inst.root.join(&inst.prefix)).unwrap();
    let report = cluster::teardown(&inst.prefix, &inst.root).unwrap();
    assert_eq!(report.netns_deleted.len(), 4, "{report:?}");
    assert_eq!(report.processes_killed.len(), 2, "{report:?}");
    assert_gone(&inst, &ips, &pids);
    // Tearing down twice is harmless.
    let report = cluster::teardown(&inst.prefix, &inst.root).unwrap();
    assert_eq!(report, Default::default());
}

#[test]
fn starwars_with_in_process_servers() {
    if let Some(reason) = skip_reason() {
        eprintln!("SKIPPED starwars in-process e2e: {reason}");
        return;
    }
    require_tools();
    let inst = instance(2);
    let mut guard = Guard {
        inst: &inst,
        cluster: None,
    };
    let opts = BuildOptions {
        prefix: inst.prefix.clone(),
        pod_cidr: Some(inst.cidr),
        server: ServerMode::InProcess,
        state_root: inst.root.clone(),
    };
    let c = guard
        .cluster
        .insert(cluster::build(&ClusterSpec::starwars(), &opts).unwrap());
    assert!(c.pods.iter().all(|p| p.server_pid.is_none()));

    // Short service name (same namespace) and a pod name both resolve inside the pods.
    let (ok, out, err) = run(
        c,
        "tiefighter",
        &[
            "curl",
            "-s",
            "--max-time",
            "5",
            "-XPOST",
            "deathstar/v1/request-landing",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(out, "Ship landed\n");
    let second = format!(
        "{}/v1/request-landing",
        c.pods_named("deathstar").nth(1).unwrap().name
    );
    let (ok, out, _) = run(
        c,
        "xwing",
        &["curl", "-s", "--max-time", "5", "-XPOST", &second],
    );
    assert!(ok && out == "Ship landed\n", "{out}");
    assert!(
        c.health().unwrap().iter().all(|h| h.ok()),
        "{:?}",
        c.health()
    );

    // A hung command is cut off.
    let e = c
        .exec_timeout("xwing", &["sleep", "5"], Duration::from_millis(200))
        .unwrap_err();
    assert!(matches!(e, cluster::ClusterError::Timeout { .. }), "{e}");
    assert!(matches!(
        c.exec("nope", &["true"]),
        Err(cluster::ClusterError::UnknownPod(_))
    ));

    let ips: Vec<Ipv4Addr> = c.pods.iter().map(|p| p.ip).collect();
    let c = guard.cluster.take().unwrap();
    c.teardown().unwrap();
    assert_gone(&inst, &ips, &[]);
}
