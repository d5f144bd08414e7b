//! Applies a cluster plan to the kernel, and removes it again.
//!
//! Per pod: a network namespace `<prefix>-<namespace>-<pod>` with `lo` up; a veth pair whose host
//! end is `lxc<hash>` (aliased `periscope:<prefix>:<ns>/<pod>` so teardown finds it without any
//! state) and whose pod end is `eth0` with the pod's /32; a default route via the link-local
//! gateway 169.254.1.1 (scope-link route, answered by proxy ARP on the host end, plus permanent
//! neighbour entries so no ARP is needed in either direction); a host /32 route to the pod via
//! its `lxc` device; IPv6 off on both ends (no router solicitations or MLD noise in flows).
//!
//! Everything goes through `ip` (iproute2) with the command line and stderr in every error, and
//! every step is "make it so" rather than "add", so building twice gives the same state. Teardown
//! works from the instance prefix alone (netns names, link aliases, /etc/netns dirs, pid files),
//! so it also cleans up after a run that crashed.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use serde::Deserialize;

use super::plan::{self, ALIAS_TAG, DEFAULT_PREFIX, DEFAULT_STATE_ROOT, GATEWAY};
use super::spec::{ClusterSpec, ServeRole};
use super::{Cluster, ClusterError, PodInfo, deathstar};

const STATE_FILE: &str = "cluster.json";
const ETC_NETNS: &str = "/etc/netns";
/// How long a demo server may take to start listening.
const SERVER_READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a process gets after SIGTERM before SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(2);
/// How long teardown waits for the kernel to destroy veths of deleted namespaces.
const LINK_GONE_TIMEOUT: Duration = Duration::from_secs(3);

/// How deathstar pods get their HTTP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerMode {
    /// `ip netns exec <ns> <exe> serve-deathstar --port 80 …` in the background, pid recorded;
    /// survives the building process (what `periscope-cluster up` uses). `exe` must be a
    /// `periscope-cluster` binary.
    Process(PathBuf),
    /// Listeners bound inside each pod's netns, served by a thread of this process until the
    /// [`Cluster`] handle is dropped or torn down. Needs no extra binary.
    InProcess,
    /// No servers.
    Disabled,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOptions {
    /// Instance prefix (1-12 lowercase letters/digits); parallel instances need distinct ones.
    pub prefix: String,
    /// Overrides the spec's pod CIDR; parallel instances need disjoint ones.
    pub pod_cidr: Option<Ipv4Net>,
    pub server: ServerMode,
    /// State lives in `<state_root>/<prefix>/`.
    pub state_root: PathBuf,
}

impl BuildOptions {
    pub fn new(prefix: impl Into<String>) -> BuildOptions {
        BuildOptions {
            prefix: prefix.into(),
            pod_cidr: None,
            server: ServerMode::InProcess,
            state_root: PathBuf::from(DEFAULT_STATE_ROOT),
        }
    }
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions::new(DEFAULT_PREFIX)
    }
}

/// Process-local parts of a [`Cluster`] handle: server children to reap, in-process servers.
#[derive(Debug, Default)]
pub(crate) struct Runtime {
    children: Vec<Child>,
    servers: Option<InProcessServers>,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // Reap children that already exited; running ones keep serving (the cluster outlives
        // the handle unless torn down).
        for c in &mut self.children {
            let _ = c.try_wait();
        }
    }
}

/// What teardown removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TeardownReport {
    pub processes_killed: Vec<u32>,
    pub netns_deleted: Vec<String>,
    pub links_deleted: Vec<String>,
    pub dirs_removed: Vec<PathBuf>,
}

/// What an instance still has on the machine; empty after a complete teardown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leftovers {
    pub netns: Vec<String>,
    /// Host links carrying the instance's alias.
    pub links: Vec<String>,
    /// `/etc/netns/<prefix>-*` directories.
    pub etc_dirs: Vec<PathBuf>,
    /// The state directory (cluster.json, pid files, logs), if it exists.
    pub state_dir: Option<PathBuf>,
    /// Demo servers of this instance still running.
    pub processes: Vec<u32>,
}

impl Leftovers {
    pub fn is_empty(&self) -> bool {
        self.netns.is_empty()
            && self.links.is_empty()
            && self.etc_dirs.is_empty()
            && self.state_dir.is_none()
            && self.processes.is_empty()
    }
}

/// Build (or bring up to date) the cluster instance. Idempotent: building again with the same
/// spec and options leaves the same netns, links, addresses, routes and servers.
///
/// On error the instance may be partly built; the error names the failed command. Call
/// [`teardown`] (or build again) — nothing is left half-applied silently.
pub fn build(spec: &ClusterSpec, opts: &BuildOptions) -> Result<Cluster, ClusterError> {
    let mut cluster = plan::plan(spec, &opts.prefix, opts.pod_cidr, &opts.state_root)?;
    require_root()?;
    check_conflicts(&cluster)?;
    fs::create_dir_all(&cluster.state_dir)
        .map_err(|e| ClusterError::io(format!("creating {}", cluster.state_dir.display()), e))?;
    // Saved before anything is created so teardown knows every name even after a crash here.
    save_state(&cluster)?;

    write_sysctl(None, "net/ipv4/ip_forward", "1")?;
    let prefix = cluster.prefix.clone();
    for pod in &mut cluster.pods {
        setup_pod(&prefix, pod)?;
    }
    for pod in &cluster.pods {
        write_netns_files(&cluster, pod)?;
    }
    start_servers(&mut cluster, &opts.server)?;
    save_state(&cluster)?;
    Ok(cluster)
}

/// Remove everything of instance `prefix` under `state_root`: server processes, netns, links
/// (and with them routes and neighbour entries), `/etc/netns` dirs and the state dir. Works from
/// names and aliases alone, so it also cleans up after a crashed run; removing nothing is fine.
pub fn teardown(prefix: &str, state_root: &Path) -> Result<TeardownReport, ClusterError> {
    plan::validate_prefix(prefix)?;
    require_root()?;
    let state_dir = plan::state_dir(state_root, prefix);
    let mut report = TeardownReport::default();
    let saved = load_state_file(&state_dir).ok().flatten();

    // Servers first: a process (or socket) inside a namespace keeps it and its veth alive.
    // Found by pid file and by command line, in case the state dir or the netns mount is gone.
    let start = format!("{prefix}-");
    let mut servers = pid_file_processes(&state_dir, prefix);
    servers.extend(server_processes(|ns| ns.starts_with(&start)));
    servers.sort_unstable();
    servers.dedup();
    for pid in servers {
        if kill_process(pid) {
            report.processes_killed.push(pid);
        }
    }
    let mut namespaces = instance_netns(prefix)?;
    if let Some(c) = &saved {
        let listed: Vec<String> = list_netns()?;
        for p in &c.pods {
            if listed.contains(&p.netns) && !namespaces.contains(&p.netns) {
                namespaces.push(p.netns.clone());
            }
        }
    }
    let me = std::process::id();
    for ns in &namespaces {
        if let Ok(pids) = ip(["netns", "pids", ns]) {
            for pid in pids
                .split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok())
            {
                if pid != me && kill_process(pid) {
                    report.processes_killed.push(pid);
                }
            }
        }
        match ip(["netns", "del", ns]) {
            Ok(_) => report.netns_deleted.push(ns.clone()),
            Err(e) if !netns_exists(ns)? => tracing::debug!("netns {ns} already gone: {e}"),
            Err(e) => return Err(e),
        }
    }

    // Deleting a namespace destroys its veths asynchronously; wait briefly, then delete the rest.
    let mut names = instance_links(prefix)?;
    if let Some(c) = &saved {
        for p in &c.pods {
            if !names.contains(&p.host_ifname) && find_link(None, &p.host_ifname)?.is_some() {
                names.push(p.host_ifname.clone());
            }
        }
    }
    let deadline = Instant::now() + LINK_GONE_TIMEOUT;
    while !names.is_empty() && Instant::now() < deadline && !report.netns_deleted.is_empty() {
        std::thread::sleep(Duration::from_millis(50));
        let still = all_links(None)?;
        names.retain(|n| still.iter().any(|l| &l.ifname == n));
    }
    for name in names {
        match ip(["link", "del", "dev", &name]) {
            Ok(_) => report.links_deleted.push(name),
            Err(e) if find_link(None, &name)?.is_none() => {
                tracing::debug!("{name} already gone: {e}")
            }
            Err(e) => return Err(e),
        }
    }

    for dir in instance_etc_dirs(prefix) {
        fs::remove_dir_all(&dir)
            .map_err(|e| ClusterError::io(format!("removing {}", dir.display()), e))?;
        report.dirs_removed.push(dir);
    }
    if state_dir.exists() {
        fs::remove_dir_all(&state_dir)
            .map_err(|e| ClusterError::io(format!("removing {}", state_dir.display()), e))?;
        report.dirs_removed.push(state_dir);
    }
    Ok(report)
}

/// What instance `prefix` still has on the machine (netns, aliased links, /etc/netns dirs,
/// state dir, running servers).
pub fn leftovers(prefix: &str, state_root: &Path) -> Result<Leftovers, ClusterError> {
    plan::validate_prefix(prefix)?;
    let state_dir = plan::state_dir(state_root, prefix);
    let mut processes = pid_file_processes(&state_dir, prefix);
    let start = format!("{prefix}-");
    processes.extend(server_processes(|ns| ns.starts_with(&start)));
    processes.sort_unstable();
    processes.dedup();
    Ok(Leftovers {
        netns: instance_netns(prefix)?,
        links: instance_links(prefix)?,
        etc_dirs: instance_etc_dirs(prefix),
        state_dir: state_dir.exists().then_some(state_dir),
        processes,
    })
}

/// The host's own addresses (host network namespace), for [`crate::identity::IpLookup`]:
/// traffic from or to them is `reserved:host`.
pub fn node_addresses() -> Result<Vec<std::net::IpAddr>, ClusterError> {
    let lists: Vec<AddrList> = ip_json(&["addr", "show"])?;
    let mut out: Vec<std::net::IpAddr> = lists
        .iter()
        .flat_map(|l| &l.addr_info)
        .filter_map(|a| a.local.parse().ok())
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

impl Cluster {
    /// The instance saved by a previous [`build`] (e.g. by `periscope-cluster up`), if any.
    pub fn load(prefix: &str, state_root: &Path) -> Result<Option<Cluster>, ClusterError> {
        plan::validate_prefix(prefix)?;
        load_state_file(&plan::state_dir(state_root, prefix))
    }

    /// Stop this handle's servers and remove the whole instance (see [`teardown`]).
    pub fn teardown(mut self) -> Result<TeardownReport, ClusterError> {
        // In-process listeners hold their namespaces alive; close them first.
        drop(self.runtime.servers.take());
        let root = self
            .state_dir
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let report = teardown(&self.prefix, &root)?;
        for c in &mut self.runtime.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.runtime.children.clear();
        Ok(report)
    }

    /// A `Command` running `argv` inside the pod (`ip netns exec <netns> argv…`), for callers
    /// that want to set stdio themselves.
    pub fn exec_command<S: AsRef<OsStr>>(
        &self,
        pod: &str,
        argv: &[S],
    ) -> Result<Command, ClusterError> {
        let p = self
            .pod(pod)
            .ok_or_else(|| ClusterError::UnknownPod(pod.to_string()))?;
        if argv.is_empty() {
            return Err(ClusterError::io(
                format!("exec in {pod}"),
                io::Error::new(io::ErrorKind::InvalidInput, "empty command"),
            ));
        }
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &p.netns]).args(argv);
        Ok(cmd)
    }

    /// Run `argv` inside the pod and collect its output (stdin is empty). A non-zero exit is
    /// not an error here: check `Output::status`.
    pub fn exec<S: AsRef<OsStr>>(&self, pod: &str, argv: &[S]) -> Result<Output, ClusterError> {
        let mut cmd = self.exec_command(pod, argv)?;
        cmd.stdin(Stdio::null())
            .output()
            .map_err(|e| ClusterError::io(format!("exec in {pod}: {}", display_argv(argv)), e))
    }

    /// Like [`Cluster::exec`], but kills the command after `timeout` and reports
    /// [`ClusterError::Timeout`].
    pub fn exec_timeout<S: AsRef<OsStr>>(
        &self,
        pod: &str,
        argv: &[S],
        timeout: Duration,
    ) -> Result<Output, ClusterError> {
        let what = || format!("exec in {pod}: {}", display_argv(argv));
        let mut child = self
            .exec_command(pod, argv)?
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| ClusterError::io(what(), e))?;
        // Drain the pipes on threads so a chatty command cannot block on a full pipe.
        let drain = |r: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut r) = r {
                    let _ = r.read_to_end(&mut buf);
                }
                buf
            })
        };
        let out = drain(
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        );
        let err = drain(
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        );
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = child.try_wait().map_err(|e| ClusterError::io(what(), e))? {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ClusterError::Timeout {
                    what: what(),
                    after: timeout,
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        Ok(Output {
            status,
            stdout: out.join().unwrap_or_default(),
            stderr: err.join().unwrap_or_default(),
        })
    }

    /// Live state of each pod: netns present, host link up, server running.
    pub fn health(&self) -> Result<Vec<PodHealth>, ClusterError> {
        let namespaces = list_netns()?;
        let links = all_links(None)?;
        Ok(self
            .pods
            .iter()
            .map(|p| {
                let link = links.iter().find(|l| l.ifname == p.host_ifname);
                PodHealth {
                    pod: p.qualified_name(),
                    netns: namespaces.contains(&p.netns),
                    link_up: link.is_some_and(|l| l.flags.iter().any(|f| f == "UP")),
                    ifindex_matches: link.is_some_and(|l| l.ifindex == p.host_ifindex),
                    server: p.serve.map(|_| match p.server_pid {
                        Some(pid) => process_matches(pid, &p.netns),
                        // In-process servers: something must listen in the pod's netns.
                        None => {
                            in_netns(&p.netns, || listening_here(deathstar::PORT)).unwrap_or(false)
                        }
                    }),
                }
            })
            .collect())
    }
}

/// One pod's state as `Cluster::health` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodHealth {
    pub pod: String,
    pub netns: bool,
    pub link_up: bool,
    /// The host link still has the ifindex recorded at build time (probes attach by ifindex).
    pub ifindex_matches: bool,
    /// `None` for pods without a server.
    pub server: Option<bool>,
}

impl PodHealth {
    pub fn ok(&self) -> bool {
        self.netns && self.link_up && self.ifindex_matches && self.server.unwrap_or(true)
    }
}

fn require_root() -> Result<(), ClusterError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        Ok(())
    } else {
        Err(ClusterError::NotRoot)
    }
}

fn display_argv<S: AsRef<OsStr>>(argv: &[S]) -> String {
    argv.iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Run `ip` with `args`; a failure carries the command line, exit status and stderr.
fn ip<I, S>(args: I) -> Result<String, ClusterError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<OsString> = args
        .into_iter()
        .map(|a| a.as_ref().to_os_string())
        .collect();
    let line = format!("ip {}", display_argv(&args));
    let out = Command::new("ip")
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| ClusterError::io(format!("running `{line}` (is iproute2 installed?)"), e))?;
    if !out.status.success() {
        return Err(ClusterError::Command {
            cmd: line,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ip -j …` parsed as a JSON list (iproute2 prints nothing at all for some empty lists).
fn ip_json<T: for<'de> Deserialize<'de>>(args: &[&str]) -> Result<Vec<T>, ClusterError> {
    let mut full = vec!["-j"];
    full.extend_from_slice(args);
    let text = ip(&full)?;
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(&text).map_err(|e| ClusterError::Command {
        cmd: format!("ip {}", full.join(" ")),
        status: "unparseable output".to_string(),
        stderr: e.to_string(),
    })
}

#[derive(Debug, Deserialize)]
struct Link {
    ifname: String,
    ifindex: u32,
    #[serde(default)]
    ifalias: Option<String>,
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    link_index: Option<u32>,
    #[serde(default)]
    flags: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct AddrList {
    #[serde(default)]
    addr_info: Vec<AddrInfo>,
}

#[derive(Debug, Deserialize)]
struct AddrInfo {
    family: String,
    local: String,
    prefixlen: u8,
}

#[derive(Debug, Deserialize)]
struct Route {
    #[serde(default)]
    dev: Option<String>,
}

#[derive(Debug, Deserialize)]
struct NetnsEntry {
    name: String,
}

fn ns_args<'a>(ns: Option<&'a str>, rest: &[&'a str]) -> Vec<&'a str> {
    let mut v = Vec::with_capacity(rest.len() + 2);
    if let Some(ns) = ns {
        v.extend(["-n", ns]);
    }
    v.extend_from_slice(rest);
    v
}

fn all_links(ns: Option<&str>) -> Result<Vec<Link>, ClusterError> {
    ip_json(&ns_args(ns, &["link", "show"]))
}

fn find_link(ns: Option<&str>, name: &str) -> Result<Option<Link>, ClusterError> {
    Ok(all_links(ns)?.into_iter().find(|l| l.ifname == name))
}

fn list_netns() -> Result<Vec<String>, ClusterError> {
    Ok(ip_json::<NetnsEntry>(&["netns", "list"])?
        .into_iter()
        .map(|n| n.name)
        .collect())
}

fn netns_exists(name: &str) -> Result<bool, ClusterError> {
    Ok(list_netns()?.iter().any(|n| n == name))
}

fn instance_netns(prefix: &str) -> Result<Vec<String>, ClusterError> {
    let start = format!("{prefix}-");
    Ok(list_netns()?
        .into_iter()
        .filter(|n| n.starts_with(&start))
        .collect())
}

fn alias_prefix(prefix: &str) -> String {
    format!("{ALIAS_TAG}:{prefix}:")
}

fn instance_links(prefix: &str) -> Result<Vec<String>, ClusterError> {
    let tag = alias_prefix(prefix);
    Ok(all_links(None)?
        .into_iter()
        .filter(|l| l.ifalias.as_deref().is_some_and(|a| a.starts_with(&tag)))
        .map(|l| l.ifname)
        .collect())
}

fn instance_etc_dirs(prefix: &str) -> Vec<PathBuf> {
    let start = format!("{prefix}-");
    let Ok(entries) = fs::read_dir(ETC_NETNS) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(&start))
        .map(|e| e.path())
        .collect();
    dirs.sort();
    dirs
}

/// Refuse to take over addresses or link names that belong to something else.
fn check_conflicts(cluster: &Cluster) -> Result<(), ClusterError> {
    let addrs: Vec<AddrList> = ip_json(&["-4", "addr", "show"])?;
    for a in addrs.iter().flat_map(|l| &l.addr_info) {
        if let Ok(ip) = a.local.parse::<Ipv4Addr>()
            && cluster.pod_cidr.contains(&ip)
        {
            return Err(ClusterError::Conflict(format!(
                "host address {ip} lies inside pod CIDR {}; pick another podCIDR",
                cluster.pod_cidr
            )));
        }
    }
    let links = all_links(None)?;
    for pod in &cluster.pods {
        let alias = plan::link_alias(&cluster.prefix, &pod.namespace, &pod.name);
        if let Some(l) = links.iter().find(|l| l.ifname == pod.host_ifname)
            && l.ifalias.as_deref() != Some(alias.as_str())
        {
            return Err(ClusterError::Conflict(format!(
                "link {} exists but is not {}'s (alias {:?})",
                pod.host_ifname,
                pod.qualified_name(),
                l.ifalias
            )));
        }
        let dst = format!("{}/32", pod.ip);
        let routes: Vec<Route> = ip_json(&["route", "show", "exact", &dst])?;
        if let Some(other) = routes
            .iter()
            .find(|r| r.dev.as_deref() != Some(pod.host_ifname.as_str()))
        {
            return Err(ClusterError::Conflict(format!(
                "{dst} is already routed via {} (another cluster instance with the same pod CIDR?)",
                other.dev.as_deref().unwrap_or("a gateway")
            )));
        }
    }
    Ok(())
}

/// Write a sysctl under /proc/sys, in the current netns (`None`) or inside `ns`.
fn write_sysctl(ns: Option<&str>, key: &str, value: &str) -> Result<(), ClusterError> {
    let path = Path::new("/proc/sys").join(key);
    let write = || fs::write(&path, value);
    let res = match ns {
        None => write(),
        Some(ns) => in_netns(ns, write)?,
    };
    res.map_err(|e| {
        let whereabouts = ns.map(|n| format!(" in netns {n}")).unwrap_or_default();
        ClusterError::io(
            format!("setting {} = {value}{whereabouts}", path.display()),
            e,
        )
    })
}

/// Run `f` on a short-lived thread that has joined the network namespace `ns`. Sockets created
/// there stay in that namespace after the thread exits.
fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> Result<T, ClusterError> {
    let path = Path::new("/run/netns").join(ns);
    let file = fs::File::open(&path)
        .map_err(|e| ClusterError::io(format!("opening {}", path.display()), e))?;
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: setns on a valid namespace fd; CLONE_NEWNET only changes this thread's
            // network namespace, and the thread ends right after `f`.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc != 0 {
                return Err(ClusterError::io(
                    format!("entering netns {ns}"),
                    io::Error::last_os_error(),
                ));
            }
            Ok(f())
        })
        .join()
        .unwrap_or_else(|_| {
            Err(ClusterError::io(
                format!("thread in netns {ns}"),
                io::Error::other("panicked"),
            ))
        })
    })
}

fn setup_pod(prefix: &str, pod: &mut PodInfo) -> Result<(), ClusterError> {
    let ns = pod.netns.clone();
    let lxc = pod.host_ifname.clone();
    if !netns_exists(&ns)? {
        ip(["netns", "add", &ns])?;
    }
    ip(["-n", &ns, "link", "set", "lo", "up"])?;

    // The pair exists only if the host end is there and its peer is this netns' eth0.
    let host = find_link(None, &lxc)?;
    let peer = find_link(Some(&ns), "eth0")?;
    let paired = match (&host, &peer) {
        (Some(h), Some(p)) => p.link_index == Some(h.ifindex),
        _ => false,
    };
    if !paired {
        if host.is_some() {
            ip(["link", "del", "dev", &lxc])?;
        }
        if find_link(Some(&ns), "eth0")?.is_some() {
            ip(["-n", &ns, "link", "del", "dev", "eth0"])?;
        }
        let (hmac, pmac) = (pod.host_mac.to_string(), pod.mac.to_string());
        ip([
            "link", "add", &lxc, "address", &hmac, "type", "veth", "peer", "name", "eth0",
            "address", &pmac, "netns", &ns,
        ])?;
    }
    let alias = plan::link_alias(prefix, &pod.namespace, &pod.name);
    ip(["link", "set", "dev", &lxc, "alias", &alias])?;
    ensure_mac(None, &lxc, &pod.host_mac.to_string())?;
    ensure_mac(Some(&ns), "eth0", &pod.mac.to_string())?;

    // Before the links come up, so they never send IPv6 autoconfiguration traffic. Kernels
    // booted without IPv6 have no such sysctl, which is just as quiet.
    for (netns, key) in [
        (None, format!("net/ipv6/conf/{lxc}/disable_ipv6")),
        (
            Some(ns.as_str()),
            "net/ipv6/conf/eth0/disable_ipv6".to_string(),
        ),
    ] {
        match write_sysctl(netns, &key, "1") {
            Err(ClusterError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
            other => other?,
        }
    }
    write_sysctl(None, &format!("net/ipv4/conf/{lxc}/proxy_arp"), "1")?;
    write_sysctl(None, &format!("net/ipv4/conf/{lxc}/rp_filter"), "0")?;
    write_sysctl(None, &format!("net/ipv4/conf/{lxc}/forwarding"), "1")?;
    write_sysctl(Some(&ns), "net/ipv4/conf/eth0/rp_filter", "0")?;

    ip(["link", "set", "dev", &lxc, "up"])?;
    ip(["-n", &ns, "link", "set", "dev", "eth0", "up"])?;

    // Exactly one IPv4 address on eth0: the pod's /32.
    let want = (pod.ip.to_string(), 32u8);
    let have: Vec<AddrList> = ip_json(&["-n", &ns, "addr", "show", "dev", "eth0"])?;
    let v4: Vec<(String, u8)> = have
        .iter()
        .flat_map(|l| &l.addr_info)
        .filter(|a| a.family == "inet")
        .map(|a| (a.local.clone(), a.prefixlen))
        .collect();
    if v4 != [want.clone()] {
        ip(["-n", &ns, "addr", "flush", "dev", "eth0"])?;
        ip([
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{}/32", pod.ip),
            "dev",
            "eth0",
        ])?;
    }

    let gw = GATEWAY.to_string();
    let hmac = pod.host_mac.to_string();
    ip([
        "-n",
        &ns,
        "route",
        "replace",
        &format!("{gw}/32"),
        "dev",
        "eth0",
        "scope",
        "link",
    ])?;
    ip([
        "-n", &ns, "route", "replace", "default", "via", &gw, "dev", "eth0",
    ])?;
    ip([
        "-n",
        &ns,
        "neigh",
        "replace",
        &gw,
        "lladdr",
        &hmac,
        "dev",
        "eth0",
        "nud",
        "permanent",
    ])?;

    let pod_ip = pod.ip.to_string();
    let pmac = pod.mac.to_string();
    ip(["route", "replace", &format!("{pod_ip}/32"), "dev", &lxc])?;
    ip([
        "neigh",
        "replace",
        &pod_ip,
        "lladdr",
        &pmac,
        "dev",
        &lxc,
        "nud",
        "permanent",
    ])?;

    pod.host_ifindex = find_link(None, &lxc)?
        .map(|l| l.ifindex)
        .ok_or_else(|| ClusterError::Conflict(format!("{lxc} vanished while being set up")))?;
    pod.pod_ifindex = find_link(Some(&ns), "eth0")?
        .map(|l| l.ifindex)
        .ok_or_else(|| {
            ClusterError::Conflict(format!("eth0 in {ns} vanished while being set up"))
        })?;
    Ok(())
}

fn ensure_mac(ns: Option<&str>, dev: &str, mac: &str) -> Result<(), ClusterError> {
    let current = find_link(ns, dev)?.and_then(|l| l.address);
    if current.as_deref() != Some(mac) {
        ip(ns_args(ns, &["link", "set", "dev", dev, "address", mac]))?;
    }
    Ok(())
}

/// `/etc/netns/<netns>/{hosts,resolv.conf}`, which `ip netns exec` mounts over `/etc`.
fn write_netns_files(cluster: &Cluster, pod: &PodInfo) -> Result<(), ClusterError> {
    let dir = Path::new(ETC_NETNS).join(&pod.netns);
    fs::create_dir_all(&dir)
        .map_err(|e| ClusterError::io(format!("creating {}", dir.display()), e))?;
    for (name, text) in [
        ("hosts", plan::hosts_file(cluster, pod)),
        ("resolv.conf", plan::resolv_conf(pod)),
    ] {
        let path = dir.join(name);
        fs::write(&path, text)
            .map_err(|e| ClusterError::io(format!("writing {}", path.display()), e))?;
    }
    Ok(())
}

fn pid_file(state_dir: &Path, netns: &str) -> PathBuf {
    state_dir.join(format!("{netns}.pid"))
}

fn start_servers(cluster: &mut Cluster, mode: &ServerMode) -> Result<(), ClusterError> {
    let state_dir = cluster.state_dir.clone();
    let mut listeners = Vec::new();
    for pod in &mut cluster.pods {
        if pod.serve != Some(ServeRole::Deathstar) {
            continue;
        }
        match mode {
            ServerMode::Disabled => {}
            ServerMode::Process(exe) => {
                let pid_path = pid_file(&state_dir, &pod.netns);
                let recorded = fs::read_to_string(&pid_path)
                    .ok()
                    .and_then(|s| s.trim().parse::<u32>().ok());
                // Adopt a running server even if its pid file was lost (e.g. state dir removed).
                let running = recorded
                    .filter(|pid| process_matches(*pid, &pod.netns))
                    .or_else(|| server_processes(|ns| ns == pod.netns).into_iter().next());
                if let Some(pid) = running {
                    fs::write(&pid_path, format!("{pid}\n")).map_err(|e| {
                        ClusterError::io(format!("writing {}", pid_path.display()), e)
                    })?;
                    pod.server_pid = Some(pid);
                    continue;
                }
                // Served by something else in the pod (an in-process server of another handle).
                if in_netns(&pod.netns, || listening_here(deathstar::PORT))? {
                    continue;
                }
                let child = spawn_server(exe, pod, &state_dir)?;
                let pid = child.id();
                cluster.runtime.children.push(child);
                fs::write(&pid_path, format!("{pid}\n"))
                    .map_err(|e| ClusterError::io(format!("writing {}", pid_path.display()), e))?;
                pod.server_pid = Some(pid);
            }
            ServerMode::InProcess => {
                let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, deathstar::PORT));
                match in_netns(&pod.netns, || std::net::TcpListener::bind(addr))? {
                    Ok(l) => listeners.push(l),
                    // Already served (an earlier build's handle or server process): keep that one.
                    Err(e) if e.kind() == io::ErrorKind::AddrInUse => {}
                    Err(e) => {
                        return Err(ClusterError::Server {
                            pod: pod.qualified_name(),
                            message: format!("binding {addr}: {e}"),
                        });
                    }
                }
            }
        }
    }
    if !listeners.is_empty() {
        cluster.runtime.servers = Some(InProcessServers::start(listeners)?);
    }
    Ok(())
}

fn spawn_server(exe: &Path, pod: &PodInfo, state_dir: &Path) -> Result<Child, ClusterError> {
    let server_err = |message: String| ClusterError::Server {
        pod: pod.qualified_name(),
        message,
    };
    let log_path = state_dir.join(format!("{}.log", pod.netns));
    let log = fs::File::create(&log_path)
        .map_err(|e| ClusterError::io(format!("creating {}", log_path.display()), e))?;
    let log2 = log
        .try_clone()
        .map_err(|e| ClusterError::io("duplicating log fd", e))?;
    let port = deathstar::PORT.to_string();
    let mut child = Command::new("ip")
        .args(["netns", "exec", &pod.netns])
        .arg(exe)
        .args(["serve-deathstar", "--port", &port, "--instance", &pod.netns])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        // Own process group: a Ctrl-C meant for `periscope-cluster up` must not stop servers.
        .process_group(0)
        .spawn()
        .map_err(|e| server_err(format!("starting {}: {e}", exe.display())))?;
    // `ip netns exec` execs the command in place, so the child's pid is the server's.
    let deadline = Instant::now() + SERVER_READY_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = fs::read_to_string(&log_path).unwrap_or_default();
            return Err(server_err(format!(
                "exited with {status} before listening: {}",
                log.trim()
            )));
        }
        if listening_in(child.id(), deathstar::PORT) {
            return Ok(child);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(server_err(format!(
                "not listening after {SERVER_READY_TIMEOUT:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether a TCP socket listens on `port` in the netns of process `pid` (via its /proc view,
/// so checking sends no packet that probes could see).
fn listening_in(pid: u32, port: u16) -> bool {
    ["tcp", "tcp6"].iter().any(|f| {
        fs::read_to_string(format!("/proc/{pid}/net/{f}"))
            .is_ok_and(|t| tcp_table_listens(&t, port))
    })
}

/// Same, for the calling thread's netns.
fn listening_here(port: u16) -> bool {
    ["tcp", "tcp6"].iter().any(|f| {
        fs::read_to_string(format!("/proc/thread-self/net/{f}"))
            .is_ok_and(|t| tcp_table_listens(&t, port))
    })
}

/// Parse `/proc/net/tcp`: `sl local_address rem_address st …`, state 0A is LISTEN.
fn tcp_table_listens(table: &str, port: u16) -> bool {
    table.lines().skip(1).any(|line| {
        let mut cols = line.split_whitespace().skip(1);
        let (Some(local), Some(_remote), Some(state)) = (cols.next(), cols.next(), cols.next())
        else {
            return false;
        };
        let local_port = local
            .rsplit(':')
            .next()
            .and_then(|p| u16::from_str_radix(p, 16).ok());
        state == "0A" && local_port == Some(port)
    })
}

/// A live (non-zombie) demo server of netns `netns`: guards against killing a reused pid.
fn process_matches(pid: u32, netns: &str) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the parenthesised command name, which may itself contain spaces.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    if state == Some("Z") || state.is_none() {
        return false;
    }
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    args.contains(&b"serve-deathstar".as_slice()) && args.contains(&netns.as_bytes())
}

/// Demo servers found in the process table whose `--instance` argument (the pod's netns)
/// satisfies `instance`.
fn server_processes(instance: impl Fn(&str) -> bool) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|pid| {
            let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
                return false;
            };
            let args: Vec<String> = cmdline
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            args.iter().any(|a| a == "serve-deathstar")
                && args.windows(2).any(|w| w[0] == "--instance" && instance(&w[1]))
                // Not the `ip netns exec` wrapper in the instant before it execs the server.
                && args.first().is_some_and(|a| a != "ip")
        })
        .filter(|pid| {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            stat.rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().next())
                != Some("Z")
        })
        .collect()
}

/// Live servers recorded in the instance's pid files.
fn pid_file_processes(state_dir: &Path, prefix: &str) -> Vec<u32> {
    let Ok(entries) = fs::read_dir(state_dir) else {
        return Vec::new();
    };
    let start = format!("{prefix}-");
    entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let netns = name.strip_suffix(".pid")?.to_string();
            let pid = fs::read_to_string(e.path())
                .ok()?
                .trim()
                .parse::<u32>()
                .ok()?;
            (netns.starts_with(&start) && process_matches(pid, &netns)).then_some(pid)
        })
        .collect()
}

/// SIGTERM, then SIGKILL after a grace period. True if the process existed.
fn kill_process(pid: u32) -> bool {
    let Ok(raw) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) with a concrete pid (> 0) and a valid signal number.
    if unsafe { libc::kill(raw, libc::SIGTERM) } != 0 {
        return false;
    }
    let gone = |deadline: Instant| {
        while Instant::now() < deadline {
            // Reap it if it is our child; harmless (ECHILD) otherwise.
            // SAFETY: waitpid with WNOHANG on a concrete pid and a null status pointer.
            unsafe { libc::waitpid(raw, std::ptr::null_mut(), libc::WNOHANG) };
            let stat = fs::read_to_string(format!("/proc/{pid}/stat"));
            match stat {
                Err(_) => return true,
                Ok(s)
                    if s.rsplit_once(')')
                        .and_then(|(_, r)| r.split_whitespace().next())
                        == Some("Z") =>
                {
                    return true;
                }
                Ok(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        false
    };
    if !gone(Instant::now() + KILL_GRACE) {
        // SAFETY: as above.
        unsafe { libc::kill(raw, libc::SIGKILL) };
        gone(Instant::now() + KILL_GRACE);
    }
    true
}

fn save_state(cluster: &Cluster) -> Result<(), ClusterError> {
    let path = cluster.state_dir.join(STATE_FILE);
    let json = serde_json::to_vec_pretty(cluster).map_err(|e| ClusterError::State {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let tmp = path.with_extension("json.tmp");
    fs::write(&tmp, json).map_err(|e| ClusterError::io(format!("writing {}", tmp.display()), e))?;
    fs::rename(&tmp, &path)
        .map_err(|e| ClusterError::io(format!("renaming to {}", path.display()), e))
}

fn load_state_file(state_dir: &Path) -> Result<Option<Cluster>, ClusterError> {
    let path = state_dir.join(STATE_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ClusterError::io(format!("reading {}", path.display()), e)),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| ClusterError::State {
            path,
            message: e.to_string(),
        })
}

/// Deathstar listeners served by one background thread with its own single-threaded runtime,
/// so callers need no tokio runtime of their own. Dropping it closes the listeners.
#[derive(Debug)]
pub(crate) struct InProcessServers {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl InProcessServers {
    fn start(listeners: Vec<std::net::TcpListener>) -> Result<InProcessServers, ClusterError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ClusterError::io("starting the demo server runtime", e))?;
        for l in listeners {
            l.set_nonblocking(true)
                .map_err(|e| ClusterError::io("configuring a demo listener", e))?;
            let l = {
                let _guard = rt.enter();
                tokio::net::TcpListener::from_std(l)
                    .map_err(|e| ClusterError::io("registering a demo listener", e))?
            };
            rt.spawn(async move {
                if let Err(e) = deathstar::serve(l).await {
                    tracing::warn!("deathstar server stopped: {e}");
                }
            });
        }
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("deathstar".into())
            .spawn(move || {
                // Returns on stop or when the sender is dropped; dropping the runtime then
                // cancels the server tasks and closes their sockets.
                let _ = rt.block_on(rx);
            })
            .map_err(|e| ClusterError::io("spawning the demo server thread", e))?;
        Ok(InProcessServers {
            stop: Some(tx),
            thread: Some(thread),
        })
    }
}

impl Drop for InProcessServers {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_net_tcp() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
           0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n\
           1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0\n";
        assert!(tcp_table_listens(table, 80));
        // 8080 is only an established connection, not a listener.
        assert!(!tcp_table_listens(table, 8080));
        assert!(!tcp_table_listens("garbage", 80));
    }

    #[test]
    fn leftovers_empty_is_empty() {
        assert!(Leftovers::default().is_empty());
        let l = Leftovers {
            netns: vec!["x".into()],
            ..Default::default()
        };
        assert!(!l.is_empty());
    }

    #[test]
    fn bad_prefix_is_rejected_before_touching_anything() {
        let e = teardown("bad-prefix", Path::new("/nonexistent")).unwrap_err();
        assert!(matches!(e, ClusterError::InvalidPrefix(_)), "{e}");
        let e = build(&ClusterSpec::starwars(), &BuildOptions::new("UPPER")).unwrap_err();
        assert!(matches!(e, ClusterError::InvalidPrefix(_)), "{e}");
    }
}
