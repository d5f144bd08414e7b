//! Loads the probes object, pins its maps under a per-instance bpffs directory, and attaches the
//! programs to interfaces: TCX links where the kernel has them (6.6+), clsact + netlink filters
//! otherwise.
//!
//! Ownership rules that keep restarts clean:
//! - maps are pinned under `<bpffs>/periscope/<instance>/`; a new [`Datapath`] with the same
//!   instance name removes whatever a previous (crashed) run left there before loading, and
//!   dropping the [`Datapath`] removes the directory;
//! - before attaching a hook, any attachment of a program with the same name on that interface
//!   and direction is removed first (a TCX link of an older process, or a clsact filter that
//!   outlived its process), so an interface never runs two copies of a probe;
//! - links are not pinned: TCX links die with the process, and clsact filters are detached on
//!   drop (and swept on the next attach if the process was killed).

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use aya::maps::Map;
use aya::programs::links::FdLink;
use aya::programs::tc::{self, NlOptions, SchedClassifierLinkId, TcAttachOptions};
use aya::programs::{LinkOrder, ProgramError, SchedClassifier, TcAttachType};
use aya::{Ebpf, EbpfLoader};
use periscope_probes::probes::{self, Aggregation, PROBES_OBJECT};
use tracing::{debug, info, warn};

use crate::enforce::{self, EnforceError, LiveMaps, SyncStats};
use crate::maps::{Conntrack, EndpointMap, Ipcache, MapsError, PolicyMap, PolicyStateMap};
use crate::perf::{PerfConfig, PerfError, PerfReader, ReaderSlot};
use crate::policy::{PolicyContext, PolicyRepository, ResolvedPolicy};

/// Where bpffs is normally mounted.
pub const DEFAULT_BPFFS: &str = "/sys/fs/bpf";
/// Directory under bpffs that holds one sub-directory per instance.
pub const PIN_ROOT: &str = "periscope";

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// Where a program is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Hook {
    /// Host-side veth ingress (packets leaving the pod).
    FromContainer,
    /// Host-side veth egress (packets entering the pod).
    ToContainer,
    /// Node uplink ingress.
    FromNetdev,
    /// Node uplink egress.
    ToNetdev,
}

impl Hook {
    pub const fn program(self) -> &'static str {
        match self {
            Self::FromContainer => probes::program::FROM_CONTAINER,
            Self::ToContainer => probes::program::TO_CONTAINER,
            Self::FromNetdev => probes::program::FROM_NETDEV,
            Self::ToNetdev => probes::program::TO_NETDEV,
        }
    }

    pub const fn attach_type(self) -> TcAttachType {
        match self {
            Self::FromContainer | Self::FromNetdev => TcAttachType::Ingress,
            Self::ToContainer | Self::ToNetdev => TcAttachType::Egress,
        }
    }

    const ALL: [Self; 4] = [
        Self::FromContainer,
        Self::ToContainer,
        Self::FromNetdev,
        Self::ToNetdev,
    ];
}

/// How a program is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttachMode {
    /// A TCX link (kernel 6.6+): owned by our fd, gone when the process exits.
    Tcx,
    /// A direct-action filter on the clsact qdisc (older kernels).
    Clsact,
}

impl fmt::Display for AttachMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tcx => "tcx",
            Self::Clsact => "clsact",
        })
    }
}

/// Which attach mechanism to use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AttachPreference {
    /// TCX, falling back to clsact when the kernel refuses TCX.
    #[default]
    Auto,
    Tcx,
    Clsact,
}

#[derive(Debug, Clone)]
pub struct LoaderConfig {
    /// Names the pin directory; one running datapath per name.
    pub instance: String,
    pub aggregation: Aggregation,
    /// Report interval of a quiet connection direction under `medium`.
    pub report_interval: Duration,
    /// TCP flags whose first appearance per direction is reported under `medium`.
    pub report_tcp_flags: u8,
    /// bpffs mount point; mounted there if it is the default path and not mounted yet.
    pub bpffs: PathBuf,
    pub attach: AttachPreference,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        Self {
            instance: "default".to_owned(),
            aggregation: Aggregation::default(),
            report_interval: Duration::from_nanos(probes::MONITOR_REPORT_INTERVAL_NS),
            report_tcp_flags: 0xff,
            bpffs: PathBuf::from(DEFAULT_BPFFS),
            attach: AttachPreference::Auto,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    #[error(
        "invalid instance name {0:?}: use 1-64 characters from [A-Za-z0-9_.-], not starting with '.'"
    )]
    InvalidInstance(String),
    #[error("{0} is not a bpffs mount (mount -t bpf bpf {0})")]
    NotBpffs(PathBuf),
    #[error("interface {0:?} not found")]
    InterfaceNotFound(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("loading the probes object: {0}")]
    Load(#[source] Box<aya::EbpfError>),
    #[error("{0} is missing from the probes object")]
    Missing(&'static str),
    #[error("program {name}: {source}")]
    Program {
        name: &'static str,
        #[source]
        source: Box<ProgramError>,
    },
    #[error("attaching {program} to {ifname}: {source}")]
    Attach {
        program: &'static str,
        ifname: String,
        #[source]
        source: Box<ProgramError>,
    },
    #[error(transparent)]
    Maps(#[from] MapsError),
    #[error(transparent)]
    Perf(#[from] PerfError),
    #[error("a perf reader is already open for this datapath")]
    ReaderActive,
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> LoaderError {
    let context = context.into();
    move |source| LoaderError::Io { context, source }
}

pub(crate) fn validate_instance(name: &str) -> Result<(), LoaderError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(LoaderError::InvalidInstance(name.to_owned()))
    }
}

fn is_bpffs(path: &Path) -> Result<bool, LoaderError> {
    let c = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| LoaderError::NotBpffs(path.to_owned()))?;
    // SAFETY: statfs is plain data; an all-zero value is valid and the kernel fills it in.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a valid out-pointer.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::NotFound {
            return Ok(false);
        }
        return Err(io_err(format!("statfs {}", path.display()))(err));
    }
    #[allow(
        clippy::unnecessary_cast,
        reason = "f_type's width differs between libc targets"
    )]
    Ok(st.f_type as i64 == BPF_FS_MAGIC)
}

/// Makes sure `path` is a bpffs mount, mounting one at the default location if needed (as
/// Cilium does); any other path must already be mounted.
fn ensure_bpffs(path: &Path) -> Result<(), LoaderError> {
    if is_bpffs(path)? {
        return Ok(());
    }
    if path != Path::new(DEFAULT_BPFFS) {
        return Err(LoaderError::NotBpffs(path.to_owned()));
    }
    std::fs::create_dir_all(path).map_err(io_err(format!("creating {}", path.display())))?;
    let target = CString::new(DEFAULT_BPFFS).map_err(|_| LoaderError::NotBpffs(path.to_owned()))?;
    let fstype = c"bpf";
    // SAFETY: all pointers are valid NUL-terminated strings; data may be null.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(io_err(format!("mounting bpffs on {DEFAULT_BPFFS}"))(
            io::Error::last_os_error(),
        ));
    }
    info!(path = DEFAULT_BPFFS, "mounted bpffs");
    Ok(())
}

/// Removes an instance's pin directory (maps left by an earlier run). Missing is fine.
pub fn remove_stale_pins(bpffs: &Path, instance: &str) -> Result<bool, LoaderError> {
    validate_instance(instance)?;
    let dir = bpffs.join(PIN_ROOT).join(instance);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err(format!("removing {}", dir.display()))(e)),
    }
}

fn ifindex(ifname: &str) -> Result<u32, LoaderError> {
    let c = CString::new(ifname).map_err(|_| LoaderError::InterfaceNotFound(ifname.to_owned()))?;
    // SAFETY: `c` is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        Err(LoaderError::InterfaceNotFound(ifname.to_owned()))
    } else {
        Ok(idx)
    }
}

#[derive(Debug)]
struct Attachment {
    link: SchedClassifierLinkId,
    mode: AttachMode,
}

/// The loaded probes: programs, maps and attachments of one instance. Dropping it detaches
/// every program and removes the instance's pins.
pub struct Datapath {
    endpoints: EndpointMap,
    ipcache: Ipcache,
    conntrack: Conntrack,
    policy: PolicyMap,
    policy_state: PolicyStateMap,
    ebpf: Ebpf,
    attached: BTreeMap<(String, Hook), Attachment>,
    pin_dir: PathBuf,
    preference: AttachPreference,
    reader_active: Arc<AtomicBool>,
}

impl Datapath {
    /// Loads the embedded probes object for `config.instance`, after removing the instance's
    /// stale pins. Needs root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN to mount bpffs).
    pub fn load(config: &LoaderConfig) -> Result<Self, LoaderError> {
        validate_instance(&config.instance)?;
        ensure_bpffs(&config.bpffs)?;
        if remove_stale_pins(&config.bpffs, &config.instance)? {
            info!(instance = %config.instance, "removed stale pins of an earlier run");
        }
        let pin_dir = config.bpffs.join(PIN_ROOT).join(&config.instance);
        std::fs::create_dir_all(&pin_dir)
            .map_err(io_err(format!("creating {}", pin_dir.display())))?;

        match Self::load_into(config, &pin_dir) {
            Ok(dp) => Ok(dp),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&pin_dir);
                remove_empty_root(&config.bpffs);
                Err(e)
            }
        }
    }

    fn load_into(config: &LoaderConfig, pin_dir: &Path) -> Result<Self, LoaderError> {
        let aggregation = config.aggregation.as_global();
        let interval_ns = u64::try_from(config.report_interval.as_nanos()).unwrap_or(u64::MAX);
        let tcp_flags = u32::from(config.report_tcp_flags);
        let mut ebpf = EbpfLoader::new()
            .default_map_pin_directory(pin_dir)
            .override_global(probes::global::MONITOR_AGGREGATION, &aggregation, true)
            .override_global(probes::global::MONITOR_INTERVAL_NS, &interval_ns, true)
            .override_global(probes::global::MONITOR_TCP_FLAGS, &tcp_flags, true)
            .load(PROBES_OBJECT)
            .map_err(|e| LoaderError::Load(Box::new(e)))?;

        for name in probes::program::ALL {
            let program: &mut SchedClassifier = ebpf
                .program_mut(name)
                .ok_or(LoaderError::Missing(name))?
                .try_into()
                .map_err(|e| LoaderError::Program {
                    name,
                    source: Box::new(e),
                })?;
            program.load().map_err(|e| LoaderError::Program {
                name,
                source: Box::new(e),
            })?;
        }

        let mut take = |name: &'static str| -> Result<Map, LoaderError> {
            ebpf.take_map(name).ok_or(LoaderError::Missing(name))
        };
        let endpoints = EndpointMap::from_map(take(probes::map::ENDPOINTS)?)?;
        let ipcache = Ipcache::from_map(take(probes::map::IPCACHE)?)?;
        let conntrack = Conntrack::from_map(take(probes::map::CONNTRACK)?)?;
        let policy = PolicyMap::from_map(take(probes::map::POLICY)?)?;
        let policy_state = PolicyStateMap::from_map(take(probes::map::POLICY_STATE)?)?;
        if ebpf.map(probes::map::EVENTS).is_none() {
            return Err(LoaderError::Missing(probes::map::EVENTS));
        }
        info!(instance = %config.instance, aggregation = %config.aggregation, pins = %pin_dir.display(), "probes loaded");
        Ok(Self {
            endpoints,
            ipcache,
            conntrack,
            policy,
            policy_state,
            ebpf,
            attached: BTreeMap::new(),
            pin_dir: pin_dir.to_owned(),
            preference: config.attach,
            reader_active: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The instance's pin directory (maps are pinned here by name).
    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    pub fn endpoints(&self) -> &EndpointMap {
        &self.endpoints
    }

    pub fn endpoints_mut(&mut self) -> &mut EndpointMap {
        &mut self.endpoints
    }

    pub fn ipcache(&self) -> &Ipcache {
        &self.ipcache
    }

    pub fn ipcache_mut(&mut self) -> &mut Ipcache {
        &mut self.ipcache
    }

    pub fn conntrack(&self) -> &Conntrack {
        &self.conntrack
    }

    /// For [`Conntrack::gc`].
    pub fn conntrack_mut(&mut self) -> &mut Conntrack {
        &mut self.conntrack
    }

    /// Makes `resolved` the enforced policy (policy maps, CIDR identities in the ipcache); see
    /// [`enforce::sync`]. Connections already in conntrack keep flowing, as in Cilium.
    pub fn apply_policy(&mut self, resolved: &ResolvedPolicy) -> Result<SyncStats, EnforceError> {
        let _lock = enforce::PolicyLock::acquire(&self.pin_dir)?;
        enforce::sync(
            &mut self.policy,
            &mut self.policy_state,
            &mut self.ipcache,
            resolved,
        )
    }

    /// Compiles the policy files for `ctx`'s endpoints and enforces the result (e.g. for a
    /// benchmark: `PolicyContext::from_pods(..)` + `rule1-l3-l4.yaml`). Returns the repository.
    pub fn apply_policy_files(
        &mut self,
        ctx: PolicyContext,
        files: &[&Path],
    ) -> Result<PolicyRepository, EnforceError> {
        let mut repo = PolicyRepository::new(ctx);
        let mut policies = Vec::new();
        for f in files {
            policies.extend(crate::policy::load_file(f)?);
        }
        repo.apply(policies)?;
        self.apply_policy(repo.resolved())?;
        Ok(repo)
    }

    /// What the probes currently enforce.
    pub fn live_policy(&self) -> Result<LiveMaps, EnforceError> {
        LiveMaps::read(&self.policy, &self.policy_state)
    }

    /// Opens per-CPU perf buffers and stores them in the `events` array. One reader at a time:
    /// a second call fails with [`LoaderError::ReaderActive`] until the first reader is dropped.
    pub fn perf_reader(&self, config: &PerfConfig) -> Result<PerfReader, LoaderError> {
        let slot = ReaderSlot::claim(&self.reader_active).ok_or(LoaderError::ReaderActive)?;
        let events = self.events_fd()?;
        Ok(PerfReader::open(events, config)?.with_slot(slot))
    }

    fn events_fd(&self) -> Result<BorrowedFd<'_>, LoaderError> {
        match self.ebpf.map(probes::map::EVENTS) {
            Some(Map::PerfEventArray(data)) => Ok(data.fd().as_fd()),
            _ => Err(LoaderError::Missing(probes::map::EVENTS)),
        }
    }

    /// Attaches `from_container` (ingress) and `to_container` (egress) to a pod's host-side veth.
    pub fn attach_endpoint(&mut self, ifname: &str) -> Result<AttachMode, LoaderError> {
        self.attach(ifname, Hook::FromContainer)?;
        self.attach(ifname, Hook::ToContainer)
    }

    /// Attaches `from_netdev` (ingress) and `to_netdev` (egress) to the node's uplink.
    pub fn attach_netdev(&mut self, ifname: &str) -> Result<AttachMode, LoaderError> {
        self.attach(ifname, Hook::FromNetdev)?;
        self.attach(ifname, Hook::ToNetdev)
    }

    /// Attaches one hook, replacing our own earlier attachment and any stale one of the same
    /// program on that interface and direction. Returns the mechanism used.
    pub fn attach(&mut self, ifname: &str, hook: Hook) -> Result<AttachMode, LoaderError> {
        let if_index = ifindex(ifname)?;
        self.detach(ifname, hook);
        remove_stale_attachments(ifname, if_index, hook);

        let name = hook.program();
        let program: &mut SchedClassifier = self
            .ebpf
            .program_mut(name)
            .ok_or(LoaderError::Missing(name))?
            .try_into()
            .map_err(|e| LoaderError::Program {
                name,
                source: Box::new(e),
            })?;
        let attach_err = |e: ProgramError| LoaderError::Attach {
            program: name,
            ifname: ifname.to_owned(),
            source: Box::new(e),
        };

        let tcx = match self.preference {
            AttachPreference::Clsact => None,
            AttachPreference::Auto | AttachPreference::Tcx => Some(program.attach_with_options(
                ifname,
                hook.attach_type(),
                // First in the chain: an observer should see packets before anything can drop them.
                TcAttachOptions::TcxOrder(LinkOrder::first()),
            )),
        };
        let (link, mode) = match tcx {
            Some(Ok(link)) => (link, AttachMode::Tcx),
            Some(Err(e)) if self.preference == AttachPreference::Tcx => return Err(attach_err(e)),
            tcx => {
                if let Some(Err(e)) = tcx {
                    warn!(ifname, program = name, error = %e, "TCX attach failed; falling back to clsact");
                }
                // Already present is fine; any real problem shows up in the attach below.
                if let Err(e) = tc::qdisc_add_clsact(ifname) {
                    debug!(ifname, error = %e, "clsact qdisc not added");
                }
                let link = program
                    .attach_with_options(
                        ifname,
                        hook.attach_type(),
                        TcAttachOptions::Netlink(NlOptions::default()),
                    )
                    .map_err(attach_err)?;
                (link, AttachMode::Clsact)
            }
        };
        debug!(ifname, program = name, %mode, "attached");
        self.attached
            .insert((ifname.to_owned(), hook), Attachment { link, mode });
        Ok(mode)
    }

    /// Detaches one hook from `ifname` if we attached it; `false` if it was not attached.
    /// An interface that has already disappeared counts as detached.
    pub fn detach(&mut self, ifname: &str, hook: Hook) -> bool {
        let Some(att) = self.attached.remove(&(ifname.to_owned(), hook)) else {
            return false;
        };
        let name = hook.program();
        let program: Option<&mut SchedClassifier> =
            self.ebpf.program_mut(name).and_then(|p| p.try_into().ok());
        let Some(program) = program else {
            return true;
        };
        let result = match att.mode {
            // Closing our link fd only detaches once every copy of it is closed, and a child
            // process forked meanwhile (before its exec) holds one; detach explicitly instead.
            AttachMode::Tcx => program
                .take_link(att.link)
                .map_err(|e| e.to_string())
                .and_then(|link| FdLink::try_from(link).map_err(|e| e.to_string()))
                .and_then(|link| {
                    let id = link.info().map_err(|e| e.to_string())?.id();
                    detach_link_by_id(id).map_err(|e| e.to_string())
                }),
            AttachMode::Clsact => program.detach(att.link).map_err(|e| e.to_string()),
        };
        if let Err(error) = result {
            // Typically the kernel already dropped the attachment with its device.
            debug!(ifname, program = name, mode = %att.mode, %error, "detach reported an error");
        }
        true
    }

    /// Detaches every hook we attached to `ifname`.
    pub fn detach_interface(&mut self, ifname: &str) {
        for hook in Hook::ALL {
            self.detach(ifname, hook);
        }
    }

    /// Detaches everything.
    pub fn detach_all(&mut self) {
        let keys: Vec<(String, Hook)> = self.attached.keys().cloned().collect();
        for (ifname, hook) in keys {
            self.detach(&ifname, hook);
        }
    }

    /// Run count and cumulative run time per program. The kernel only counts while BPF run-time
    /// stats are enabled ([`aya::sys::enable_stats`] or `sysctl kernel.bpf_stats_enabled=1`).
    pub fn program_stats(&self) -> Vec<ProgramStats> {
        probes::program::ALL
            .iter()
            .filter_map(|&name| {
                let program: &SchedClassifier = self.ebpf.program(name)?.try_into().ok()?;
                let info = program.info().ok()?;
                Some(ProgramStats {
                    program: name,
                    run_count: info.run_count(),
                    run_time: info.run_time(),
                })
            })
            .collect()
    }

    /// Current attachments: interface, hook and mechanism.
    pub fn attachments(&self) -> Vec<(String, Hook, AttachMode)> {
        self.attached
            .iter()
            .map(|((ifname, hook), att)| (ifname.clone(), *hook, att.mode))
            .collect()
    }
}

impl Drop for Datapath {
    fn drop(&mut self) {
        self.detach_all();
        if let Err(e) = std::fs::remove_dir_all(&self.pin_dir)
            && e.kind() != io::ErrorKind::NotFound
        {
            warn!(dir = %self.pin_dir.display(), error = %e, "removing pins failed");
        }
        if let Some(bpffs) = self.pin_dir.parent().and_then(Path::parent) {
            remove_empty_root(bpffs);
        }
    }
}

/// Turns on kernel BPF run-time accounting for as long as the returned fd stays open.
pub fn enable_run_time_stats() -> Result<OwnedFd, LoaderError> {
    aya::sys::enable_stats(aya::sys::Stats::RunTime).map_err(|e| LoaderError::Io {
        context: "enabling BPF run-time stats".into(),
        source: e.io_error,
    })
}

/// Kernel-side execution counters of one program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgramStats {
    pub program: &'static str,
    pub run_count: u64,
    pub run_time: Duration,
}

/// Removes `<bpffs>/periscope` when no instance is left in it.
fn remove_empty_root(bpffs: &Path) {
    // remove_dir refuses a non-empty directory, which is exactly the check we want.
    let _ = std::fs::remove_dir(bpffs.join(PIN_ROOT));
}

/// Removes attachments of `hook`'s program (by name) on `ifname` that are not ours: TCX links
/// held by another process and clsact filters left by a killed one. Best effort: failures are
/// logged, and the attach that follows still works (we would just not be alone).
fn remove_stale_attachments(ifname: &str, if_index: u32, hook: Hook) {
    let name = hook.program();
    match tc::qdisc_detach_program(ifname, hook.attach_type(), name) {
        Ok(()) => info!(ifname, program = name, "removed a stale clsact filter"),
        Err(tc::TcError::IoError(e)) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => debug!(ifname, program = name, error = %e, "no clsact filters checked"),
    }
    match tcx_links_of(if_index, hook) {
        Ok(links) => {
            for link_id in links {
                match detach_link_by_id(link_id) {
                    Ok(()) => info!(ifname, program = name, link_id, "detached a stale TCX link"),
                    Err(e) => {
                        warn!(ifname, program = name, link_id, error = %e, "could not detach a stale TCX link")
                    }
                }
            }
        }
        Err(e) => debug!(ifname, program = name, error = %e, "TCX query failed"),
    }
}

// Raw bpf(2) commands aya does not expose: per-interface TCX query with link ids, and detaching
// a link we do not hold an fd for.
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_LINK_GET_FD_BY_ID: libc::c_long = 30;
const BPF_LINK_DETACH: libc::c_long = 34;
const BPF_TCX_INGRESS: u32 = 46;
const BPF_TCX_EGRESS: u32 = 47;

#[repr(C)]
#[derive(Default)]
struct ProgQueryAttr {
    target_ifindex: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    count: u32,
    pad: u32,
    prog_attach_flags: u64,
    link_ids: u64,
    link_attach_flags: u64,
    revision: u64,
}

fn bpf(cmd: libc::c_long, attr: *mut libc::c_void, size: usize) -> io::Result<libc::c_long> {
    // SAFETY: callers pass a pointer to a live, correctly laid out bpf_attr of `size` bytes.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr, size) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// One program attached through TCX, as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcxAttachment {
    /// Program name (as loaded; the kernel keeps at most 15 characters).
    pub program: Option<String>,
    pub program_id: u32,
    /// 0 when attached without a link.
    pub link_id: u32,
}

/// Lists the TCX programs attached to `ifname` in one direction, in execution order.
pub fn tcx_attachments(
    ifname: &str,
    direction: TcAttachType,
) -> Result<Vec<TcxAttachment>, LoaderError> {
    let if_index = ifindex(ifname)?;
    query_tcx(if_index, direction).map_err(io_err(format!("querying TCX programs on {ifname}")))
}

fn query_tcx(if_index: u32, direction: TcAttachType) -> io::Result<Vec<TcxAttachment>> {
    const MAX: usize = 64;
    let mut prog_ids = [0u32; MAX];
    let mut link_ids = [0u32; MAX];
    let mut attr = ProgQueryAttr {
        target_ifindex: if_index,
        attach_type: match direction {
            TcAttachType::Egress => BPF_TCX_EGRESS,
            _ => BPF_TCX_INGRESS,
        },
        prog_ids: prog_ids.as_mut_ptr() as u64,
        link_ids: link_ids.as_mut_ptr() as u64,
        count: MAX as u32,
        ..Default::default()
    };
    bpf(
        BPF_PROG_QUERY,
        (&raw mut attr).cast(),
        size_of::<ProgQueryAttr>(),
    )?;
    let n = (attr.count as usize).min(MAX);
    if n == 0 {
        return Ok(Vec::new());
    }
    let mut names = BTreeMap::new();
    for info in aya::programs::loaded_programs().flatten() {
        if prog_ids[..n].contains(&info.id()) {
            names.insert(info.id(), info.name_as_str().map(str::to_owned));
        }
    }
    Ok((0..n)
        .map(|i| TcxAttachment {
            program: names.get(&prog_ids[i]).cloned().flatten(),
            program_id: prog_ids[i],
            link_id: link_ids[i],
        })
        .collect())
}

/// Link ids of TCX attachments on `if_index` in `hook`'s direction whose program is `hook`'s.
fn tcx_links_of(if_index: u32, hook: Hook) -> io::Result<Vec<u32>> {
    Ok(query_tcx(if_index, hook.attach_type())?
        .into_iter()
        .filter(|a| a.link_id != 0 && a.program.as_deref() == Some(hook.program()))
        .map(|a| a.link_id)
        .collect())
}

fn detach_link_by_id(link_id: u32) -> io::Result<()> {
    // bpf_attr for GET_FD_BY_ID: { id, next_id, open_flags }.
    let mut get = [link_id, 0, 0];
    let fd = bpf(
        BPF_LINK_GET_FD_BY_ID,
        get.as_mut_ptr().cast(),
        size_of_val(&get),
    )?;
    let fd = i32::try_from(fd).map_err(|_| io::Error::other("link fd out of range"))?;
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut detach = [fd.as_raw_fd() as u32, 0];
    bpf(
        BPF_LINK_DETACH,
        detach.as_mut_ptr().cast(),
        size_of_val(&detach),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_names_are_path_safe() {
        for ok in ["default", "node-1", "e2e_1234.a"] {
            assert!(validate_instance(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "../x", "a/b", "a b", &"x".repeat(65)] {
            assert!(validate_instance(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hooks_map_to_programs_and_directions() {
        assert_eq!(Hook::FromContainer.program(), "from_container");
        assert_eq!(Hook::FromContainer.attach_type(), TcAttachType::Ingress);
        assert_eq!(Hook::ToContainer.attach_type(), TcAttachType::Egress);
        assert_eq!(Hook::FromNetdev.attach_type(), TcAttachType::Ingress);
        assert_eq!(Hook::ToNetdev.program(), "to_netdev");
        assert_eq!(size_of::<ProgQueryAttr>(), 64);
    }

    #[test]
    fn stale_pin_removal_rejects_bad_names_and_tolerates_missing_dirs() {
        let tmp = std::env::temp_dir().join(format!("periscope-pins-{}", std::process::id()));
        assert!(matches!(
            remove_stale_pins(&tmp, "../etc"),
            Err(LoaderError::InvalidInstance(_))
        ));
        assert!(!remove_stale_pins(&tmp, "nothing-here").expect("missing dir is fine"));
        let dir = tmp.join(PIN_ROOT).join("x");
        std::fs::create_dir_all(&dir).expect("tmp dir");
        std::fs::write(dir.join("events"), b"").expect("tmp file");
        assert!(remove_stale_pins(&tmp, "x").expect("removed"));
        assert!(!dir.exists());
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
