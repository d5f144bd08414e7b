//! Policy enforcement, userspace side: writes a compiled [`ResolvedPolicy`] into the probes'
//! policy maps (and its CIDR identities into the ipcache), lets another process do the same
//! through the pinned maps of a running datapath, and persists a cluster's policy repository.
//!
//! Map layout (`bpf/maps.h`):
//! - `policy`, one LPM trie for every endpoint: key `{prefixlen; sec_label (remote identity,
//!   0 = any); endpoint_id; dir (direction | slot << 1); protocol (0 = any); dport (network
//!   order)}`. Identity, endpoint and direction are always matched (56 bits), the protocol when the
//!   entry names one (64), then the port prefix (64 + 0..=16). A port range becomes the aligned
//!   prefixes of [`port_prefixes`]; two entries on the same trie key resolve to deny. The value
//!   carries the deny flag and the match type verdict notifications report.
//! - `policy_state`, a hash endpoint id → enforced directions and the live slot.
//!
//! The probes look up twice (remote identity, then identity 0) and keep the match with the better
//! [`MatchType::precedence`]: [`datapath_verdict`] is that lookup in Rust, tested against
//! [`crate::policy::verdict::lookup`].
//!
//! A sync never shows the probes a mix of an endpoint's old and new policy: entries go into the
//! endpoint's idle slot first, then one `policy_state` update flips the live slot, then the old
//! slot is deleted. Interrupted syncs leave only idle-slot entries behind, which the next sync
//! removes.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use periscope_probes::abi::match_type;
use periscope_probes::probes::{PolicyEntry, PolicyPrefix, PolicyState, policy};
use tracing::{debug, warn};

use crate::cluster::Cluster;
use crate::loader::{DEFAULT_BPFFS, LoaderError, PIN_ROOT, validate_instance};
use crate::maps::{
    Conntrack, Ipcache, IpcacheEntry, MapsError, PolicyMap, PolicyStateMap, monotonic_ns,
};
use crate::policy::{
    EndpointPolicy, MAX_CIDR_IDENTITY, MIN_CIDR_IDENTITY, MatchType, PolicyContext, PolicyError,
    PolicyKind, PolicyRepository, ResolvedPolicy, Verdict, load_file, port_prefixes,
};

const ENFORCE_MASK: u32 = policy::ENFORCE_INGRESS | policy::ENFORCE_EGRESS;

#[derive(Debug, thiserror::Error)]
pub enum EnforceError {
    #[error(transparent)]
    Maps(#[from] MapsError),
    #[error(transparent)]
    Loader(#[from] LoaderError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("endpoint {endpoint}: an entry for any protocol on port {port} cannot be expressed")]
    Unrepresentable { endpoint: u16, port: u16 },
    #[error("no datapath instance {instance:?} is running: {} has no pinned policy maps", dir.display())]
    NotRunning { instance: String, dir: PathBuf },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> EnforceError {
    let context = context.into();
    move |source| EnforceError::Io { context, source }
}

/// One trie key of an endpoint's policy, without the endpoint and slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TrieKey {
    pub egress: bool,
    /// 0 = any identity.
    pub remote_identity: u32,
    /// 0 = any protocol (and then any port).
    pub proto: u8,
    /// First port of the prefix, host order; 0 (with `port_bits` 0) for any port.
    pub port: u16,
    /// Leading bits of the port that must match (0..=16).
    pub port_bits: u8,
}

impl TrieKey {
    /// The trie prefix length of this key.
    pub fn prefix_len(&self) -> u32 {
        if self.proto == 0 {
            policy::PREFIX_FIXED
        } else {
            policy::PREFIX_PROTO + u32::from(self.port_bits)
        }
    }

    /// The stored key for `endpoint_id` in `slot` (0 or 1).
    pub fn to_prefix(&self, endpoint_id: u16, slot: u8) -> PolicyPrefix {
        let dir = if self.egress {
            policy::DIR_EGRESS
        } else {
            policy::DIR_INGRESS
        };
        PolicyPrefix {
            sec_label: self.remote_identity,
            endpoint_id,
            dir: dir | ((slot & 1) << policy::DIR_SLOT_SHIFT),
            protocol: self.proto,
            dport: self.port.to_be(),
            pad: 0,
        }
    }

    /// The endpoint, slot and key of a stored entry; `None` for a prefix length we never write.
    pub fn from_stored(prefix_len: u32, p: &PolicyPrefix) -> Option<(u16, u8, TrieKey)> {
        let (proto, port_bits) = match prefix_len {
            policy::PREFIX_FIXED => (0, 0),
            l if (policy::PREFIX_PROTO..=policy::PREFIX_FULL).contains(&l) => {
                (p.protocol, u8::try_from(l - policy::PREFIX_PROTO).ok()?)
            }
            _ => return None,
        };
        let port = if port_bits == 0 {
            0
        } else {
            // Only the prefix bits are meaningful.
            u16::from_be(p.dport) & (u16::MAX << (16 - port_bits))
        };
        let key = TrieKey {
            egress: p.dir & 1 == policy::DIR_EGRESS,
            remote_identity: p.sec_label,
            proto,
            port,
            port_bits,
        };
        Some((p.endpoint_id, (p.dir >> policy::DIR_SLOT_SHIFT) & 1, key))
    }

    /// Whether a packet with this protocol and destination port falls under the key (the
    /// identity and direction are the caller's business).
    fn covers(&self, proto: u8, dport: u16) -> bool {
        if self.proto == 0 {
            return true;
        }
        if self.proto != proto {
            return false;
        }
        if self.port_bits == 0 {
            return true;
        }
        let mask = u16::MAX << (16 - self.port_bits);
        dport & mask == self.port
    }
}

/// One trie value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrieValue {
    pub deny: bool,
    pub match_type: MatchType,
}

impl TrieValue {
    pub fn to_entry(self) -> PolicyEntry {
        PolicyEntry {
            flags: if self.deny { policy::F_DENY } else { 0 },
            match_type: self.match_type.code(),
            ..Default::default()
        }
    }

    pub fn from_entry(e: &PolicyEntry) -> TrieValue {
        TrieValue {
            deny: e.flags & policy::F_DENY != 0,
            match_type: match_type_from_code(e.match_type),
        }
    }
}

fn match_type_from_code(code: u8) -> MatchType {
    match code {
        match_type::L3_ONLY => MatchType::L3Only,
        match_type::L3_L4 => MatchType::L3L4,
        match_type::L4_ONLY => MatchType::L4Only,
        match_type::ALL => MatchType::All,
        match_type::L3_PROTO => MatchType::L3Proto,
        match_type::PROTO_ONLY => MatchType::ProtoOnly,
        _ => MatchType::None,
    }
}

/// What the maps hold (or should hold) for one endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointMaps {
    /// `policy::ENFORCE_*` bits.
    pub enforce: u32,
    pub entries: BTreeMap<TrieKey, TrieValue>,
}

impl EndpointMaps {
    fn is_empty(&self) -> bool {
        self.enforce == 0 && self.entries.is_empty()
    }
}

/// The trie entries of one endpoint's compiled policy. Unenforced directions get no entries (the
/// probes do not look at them).
pub fn endpoint_maps(ep: &EndpointPolicy) -> Result<EndpointMaps, EnforceError> {
    let mut out = EndpointMaps::default();
    for (egress, dir) in [(false, &ep.ingress), (true, &ep.egress)] {
        if !dir.enforced {
            continue;
        }
        out.enforce |= if egress {
            policy::ENFORCE_EGRESS
        } else {
            policy::ENFORCE_INGRESS
        };
        for e in &dir.entries {
            if e.proto == 0 && e.port != 0 {
                return Err(EnforceError::Unrepresentable {
                    endpoint: ep.endpoint_id,
                    port: e.port,
                });
            }
            let value = TrieValue {
                deny: e.deny,
                match_type: MatchType::of(e),
            };
            for (port, bits) in port_prefixes(e.port, e.end_port) {
                let key = TrieKey {
                    egress,
                    remote_identity: e.remote_identity,
                    proto: e.proto,
                    port,
                    port_bits: bits,
                };
                // Same key from two entries: same class and port prefix, so deny wins.
                let slot = out.entries.entry(key).or_insert(value);
                slot.deny |= value.deny;
            }
        }
    }
    Ok(out)
}

/// The maps' desired content for every endpoint of `resolved`.
pub fn desired_maps(
    resolved: &ResolvedPolicy,
) -> Result<BTreeMap<u16, EndpointMaps>, EnforceError> {
    resolved
        .endpoints
        .iter()
        .map(|(id, ep)| Ok((*id, endpoint_maps(ep)?)))
        .collect()
}

fn precedence(mt: MatchType) -> u8 {
    mt.precedence()
}

/// The probes' verdict for a new connection (`policy_lookup` in `bpf/probes.c`): the longest
/// matching prefix with the remote identity and with identity 0, the better match type of the
/// two. `dport` is 0 for protocols without ports (ICMP included).
pub fn datapath_verdict(
    maps: &EndpointMaps,
    egress: bool,
    remote: u32,
    proto: u8,
    dport: u16,
) -> Verdict {
    let bit = if egress {
        policy::ENFORCE_EGRESS
    } else {
        policy::ENFORCE_INGRESS
    };
    if maps.enforce & bit == 0 {
        return Verdict::NotEnforced;
    }
    let longest = |id: u32| {
        maps.entries
            .iter()
            .filter(|(k, _)| {
                k.egress == egress && k.remote_identity == id && k.covers(proto, dport)
            })
            .max_by_key(|(k, _)| k.prefix_len())
            .map(|(_, v)| *v)
    };
    let mut hit = longest(remote);
    if let Some(any) = longest(0)
        && hit.is_none_or(|h| precedence(any.match_type) < precedence(h.match_type))
    {
        hit = Some(any);
    }
    match hit {
        None => Verdict::Denied,
        Some(v) if v.deny => Verdict::DeniedByRule {
            match_type: v.match_type,
        },
        Some(v) => Verdict::Allowed {
            match_type: v.match_type,
        },
    }
}

/// The policy maps' current content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveMaps {
    pub states: BTreeMap<u16, PolicyState>,
    /// By (endpoint, slot).
    pub slots: BTreeMap<(u16, u8), BTreeMap<TrieKey, TrieValue>>,
    /// Stored keys we would never write (removed by the next sync).
    pub foreign: Vec<(u32, PolicyPrefix)>,
}

impl LiveMaps {
    pub fn read(policy: &PolicyMap, state: &PolicyStateMap) -> Result<LiveMaps, EnforceError> {
        let mut live = LiveMaps {
            states: state.list()?.into_iter().collect(),
            ..Default::default()
        };
        for r in policy.list()? {
            match TrieKey::from_stored(r.prefix_len, &r.prefix) {
                Some((ep, slot, key)) => {
                    live.slots
                        .entry((ep, slot))
                        .or_default()
                        .insert(key, TrieValue::from_entry(&r.entry));
                }
                None => live.foreign.push((r.prefix_len, r.prefix)),
            }
        }
        Ok(live)
    }

    fn slot_of(state: Option<&PolicyState>) -> u8 {
        u8::from(state.is_some_and(|s| s.flags & policy::STATE_SLOT != 0))
    }

    /// What the probes see for each endpoint: enforced directions and the live slot's entries.
    pub fn effective(&self) -> BTreeMap<u16, EndpointMaps> {
        self.states
            .iter()
            .map(|(id, st)| {
                let slot = Self::slot_of(Some(st));
                (
                    *id,
                    EndpointMaps {
                        enforce: st.flags & ENFORCE_MASK,
                        entries: self.slots.get(&(*id, slot)).cloned().unwrap_or_default(),
                    },
                )
            })
            .filter(|(_, m)| !m.is_empty())
            .collect()
    }
}

/// What a sync changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Endpoints whose live policy was replaced (or removed).
    pub endpoints_changed: usize,
    pub entries_written: usize,
    pub entries_deleted: usize,
    pub ipcache_upserts: usize,
    pub ipcache_deletes: usize,
}

fn is_cidr_identity(id: u32) -> bool {
    (MIN_CIDR_IDENTITY..=MAX_CIDR_IDENTITY).contains(&id)
}

/// The ipcache changes for `cidrs`: prefixes to write (unless the same prefix already has a
/// non-CIDR identity: pods, nodes and world win) and CIDR-identity prefixes no longer used.
pub fn plan_ipcache(
    current: &[IpcacheEntry],
    cidrs: &BTreeMap<IpNet, u32>,
) -> (Vec<(IpNet, u32)>, Vec<IpNet>) {
    let cur: BTreeMap<IpNet, u32> = current
        .iter()
        .filter_map(|e| Some((IpNet::new(e.prefix, e.prefix_len).ok()?.trunc(), e.identity)))
        .collect();
    let want: BTreeMap<IpNet, u32> = cidrs.iter().map(|(p, id)| (p.trunc(), *id)).collect();
    let upserts = want
        .iter()
        .filter(|(p, id)| match cur.get(p) {
            Some(c) => c != *id && is_cidr_identity(*c),
            None => true,
        })
        .map(|(p, id)| (*p, *id))
        .collect();
    let deletes = cur
        .iter()
        .filter(|(p, id)| is_cidr_identity(**id) && !want.contains_key(p))
        .map(|(p, _)| *p)
        .collect();
    (upserts, deletes)
}

/// Makes the policy maps and the ipcache's CIDR entries match `resolved`, endpoint by endpoint
/// without mixed states (see the module docs). Endpoints the maps know but `resolved` does not
/// (removed pods) lose their policy. On error the probes keep a consistent policy per endpoint;
/// sync again to finish.
pub fn sync(
    policy_map: &mut PolicyMap,
    state_map: &mut PolicyStateMap,
    ipcache: &mut Ipcache,
    resolved: &ResolvedPolicy,
) -> Result<SyncStats, EnforceError> {
    let want = desired_maps(resolved)?;
    let live = LiveMaps::read(policy_map, state_map)?;
    let mut stats = SyncStats::default();

    // New CIDR identities must resolve before a policy naming them goes live.
    let (ipc_upserts, ipc_deletes) = plan_ipcache(&ipcache.list()?, &resolved.cidr_identities);
    for (net, id) in &ipc_upserts {
        ipcache.insert(net.addr(), net.prefix_len(), *id)?;
        stats.ipcache_upserts += 1;
    }

    for (len, prefix) in &live.foreign {
        if policy_map.remove(*len, *prefix)? {
            stats.entries_deleted += 1;
        }
    }

    let ids: BTreeSet<u16> = want
        .keys()
        .chain(live.states.keys())
        .chain(live.slots.keys().map(|(id, _)| id))
        .copied()
        .collect();
    let empty = BTreeMap::new();
    let mut flips: Vec<(u16, PolicyState, u8)> = Vec::new();
    let mut clears: Vec<u16> = Vec::new();

    // 1. Write each changed endpoint's new entries into its idle slot.
    for &id in &ids {
        let target = want.get(&id).cloned().unwrap_or_default();
        let state = live.states.get(&id);
        let live_slot = LiveMaps::slot_of(state);
        let idle = 1 - live_slot;
        let cur_live = live.slots.get(&(id, live_slot)).unwrap_or(&empty);
        let cur_idle = live.slots.get(&(id, idle)).unwrap_or(&empty);
        let cur_enforce = state.map_or(0, |s| s.flags & ENFORCE_MASK);

        if cur_enforce == target.enforce && *cur_live == target.entries {
            // Unchanged; remove what an interrupted sync may have left in the idle slot.
            stats.entries_deleted += delete_slot(policy_map, id, idle, cur_idle)?;
            if target.is_empty() && state.is_some() {
                state_map.remove(id)?;
            }
            continue;
        }
        stats.endpoints_changed += 1;
        if target.is_empty() {
            clears.push(id);
            continue;
        }
        for (k, _) in cur_idle
            .iter()
            .filter(|(k, _)| !target.entries.contains_key(k))
        {
            if policy_map.remove(k.prefix_len(), k.to_prefix(id, idle))? {
                stats.entries_deleted += 1;
            }
        }
        for (k, v) in &target.entries {
            if cur_idle.get(k) != Some(v) {
                policy_map.insert(k.prefix_len(), k.to_prefix(id, idle), v.to_entry())?;
                stats.entries_written += 1;
            }
        }
        let flags = target.enforce | if idle == 1 { policy::STATE_SLOT } else { 0 };
        flips.push((id, PolicyState { flags }, live_slot));
    }

    // 2. Flip: one map update per endpoint makes its new policy live.
    for (id, state, _) in &flips {
        state_map.set(*id, *state)?;
    }
    for id in &clears {
        state_map.remove(*id)?;
    }

    // 3. Drop what is no longer live.
    for (id, _, old) in &flips {
        let entries = live.slots.get(&(*id, *old)).unwrap_or(&empty);
        stats.entries_deleted += delete_slot(policy_map, *id, *old, entries)?;
    }
    for id in &clears {
        for slot in [0, 1] {
            let entries = live.slots.get(&(*id, slot)).unwrap_or(&empty);
            stats.entries_deleted += delete_slot(policy_map, *id, slot, entries)?;
        }
    }
    for net in &ipc_deletes {
        if ipcache.remove(net.addr(), net.prefix_len())? {
            stats.ipcache_deletes += 1;
        }
    }
    debug!(?stats, "policy maps synced");
    Ok(stats)
}

fn delete_slot(
    policy_map: &mut PolicyMap,
    id: u16,
    slot: u8,
    entries: &BTreeMap<TrieKey, TrieValue>,
) -> Result<usize, EnforceError> {
    let mut n = 0;
    for k in entries.keys() {
        if policy_map.remove(k.prefix_len(), k.to_prefix(id, slot))? {
            n += 1;
        }
    }
    Ok(n)
}

/// An exclusive advisory lock on an instance's pin directory: the one writer of its policy
/// maps at a time (the agent's [`crate::loader::Datapath::apply_policy`], a `periscope policy`
/// command). Released on drop.
pub struct PolicyLock {
    _dir: File,
}

impl PolicyLock {
    /// Blocks until the lock on `pin_dir` is ours.
    pub fn acquire(pin_dir: &Path) -> Result<PolicyLock, EnforceError> {
        let what = || format!("locking {}", pin_dir.display());
        let dir = File::open(pin_dir).map_err(io_err(what()))?;
        loop {
            // SAFETY: flock on a descriptor we own; no memory is passed.
            if unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(PolicyLock { _dir: dir });
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(io_err(what())(err));
            }
        }
    }
}

/// The policy maps (and ipcache) of a running datapath, opened from its pins, so a separate
/// process (the `periscope policy` CLI) can change the live policy. Holds the instance's
/// [`PolicyLock`] while it exists, so a CLI can load the saved repository, apply a change, sync
/// and save without another writer in between.
pub struct PinnedPolicyMaps {
    _lock: PolicyLock,
    pin_dir: PathBuf,
    policy: PolicyMap,
    state: PolicyStateMap,
    ipcache: Ipcache,
}

impl PinnedPolicyMaps {
    /// Opens `/sys/fs/bpf/periscope/<instance>/`.
    pub fn open(instance: &str) -> Result<PinnedPolicyMaps, EnforceError> {
        Self::open_in(Path::new(DEFAULT_BPFFS), instance)
    }

    /// Opens `<bpffs>/periscope/<instance>/`.
    pub fn open_in(bpffs: &Path, instance: &str) -> Result<PinnedPolicyMaps, EnforceError> {
        validate_instance(instance)?;
        let pin_dir = bpffs.join(PIN_ROOT).join(instance);
        if !pin_dir.join(periscope_probes::probes::map::POLICY).exists() {
            return Err(EnforceError::NotRunning {
                instance: instance.to_owned(),
                dir: pin_dir,
            });
        }
        Ok(PinnedPolicyMaps {
            _lock: PolicyLock::acquire(&pin_dir)?,
            policy: PolicyMap::open_pinned(&pin_dir)?,
            state: PolicyStateMap::open_pinned(&pin_dir)?,
            ipcache: Ipcache::open_pinned(&pin_dir)?,
            pin_dir,
        })
    }

    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    /// Makes the live policy `resolved` (see [`sync`]).
    pub fn sync(&mut self, resolved: &ResolvedPolicy) -> Result<SyncStats, EnforceError> {
        sync(
            &mut self.policy,
            &mut self.state,
            &mut self.ipcache,
            resolved,
        )
    }

    /// What the probes currently enforce, per endpoint.
    pub fn live(&self) -> Result<LiveMaps, EnforceError> {
        LiveMaps::read(&self.policy, &self.state)
    }
}

/// Sweeps expired conntrack entries of a running datapath on a background thread (see
/// [`Conntrack::gc`]) every `interval` until dropped.
pub struct ConntrackGc {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ConntrackGc {
    /// Opens the instance's pinned conntrack map (`pin_dir`, e.g. `Datapath::pin_dir`) and
    /// starts sweeping it.
    pub fn spawn(pin_dir: &Path, interval: Duration) -> Result<ConntrackGc, EnforceError> {
        let mut ct = Conntrack::open_pinned(pin_dir)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let interval = interval.max(Duration::from_millis(100));
        let thread = std::thread::Builder::new()
            .name("ct-gc".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    let next = Instant::now() + interval;
                    // Short sleeps so a drop never waits a whole interval.
                    while !flag.load(Ordering::Relaxed) && Instant::now() < next {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    if flag.load(Ordering::Relaxed) {
                        break;
                    }
                    match ct.gc(monotonic_ns()) {
                        Ok(stats) => debug!(?stats, "conntrack swept"),
                        Err(e) => warn!(error = %e, "conntrack sweep failed"),
                    }
                }
            })
            .map_err(io_err("starting the conntrack sweeper"))?;
        Ok(ConntrackGc {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for ConntrackGc {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Where a cluster's applied policies are kept: `<state_dir>/policies/`.
pub fn policies_dir(cluster: &Cluster) -> PathBuf {
    cluster.state_dir.join("policies")
}

/// The cluster's policy repository as last saved (empty if none was).
pub fn load_repository(cluster: &Cluster) -> Result<PolicyRepository, EnforceError> {
    load_repository_from(&policies_dir(cluster), PolicyContext::from_cluster(cluster))
}

/// Saves every policy of `repo` under the cluster's state dir (see [`save_repository_to`]).
pub fn save_repository(cluster: &Cluster, repo: &PolicyRepository) -> Result<(), EnforceError> {
    save_repository_to(&policies_dir(cluster), repo)
}

/// A repository for `ctx` holding the policies saved in `dir` (`*.yaml`, applied together; a
/// missing dir is an empty repository). The revision restarts: it counts changes of this process.
pub fn load_repository_from(
    dir: &Path,
    ctx: PolicyContext,
) -> Result<PolicyRepository, EnforceError> {
    let mut repo = PolicyRepository::new(ctx);
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(repo),
        Err(e) => return Err(io_err(format!("reading {}", dir.display()))(e)),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let mut policies = Vec::new();
    for f in &files {
        policies.extend(load_file(f)?);
    }
    if !policies.is_empty() {
        repo.apply(policies)?;
    }
    Ok(repo)
}

/// Writes one file per policy (its document as applied) into `dir`, each replaced atomically,
/// then removes the files of policies no longer in `repo`.
pub fn save_repository_to(dir: &Path, repo: &PolicyRepository) -> Result<(), EnforceError> {
    std::fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
    let mut keep = BTreeSet::new();
    for p in repo.policies() {
        let name = file_name(p.key.kind, p.key.namespace.as_deref(), &p.key.name);
        let path = dir.join(&name);
        let tmp = dir.join(format!(".{name}.tmp"));
        let mut text = p.text.clone();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        std::fs::write(&tmp, text).map_err(io_err(format!("writing {}", tmp.display())))?;
        std::fs::rename(&tmp, &path).map_err(io_err(format!("replacing {}", path.display())))?;
        keep.insert(name);
    }
    let entries = std::fs::read_dir(dir).map_err(io_err(format!("reading {}", dir.display())))?;
    for e in entries.filter_map(Result::ok) {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".yaml") && !keep.contains(&name) {
            std::fs::remove_file(e.path())
                .map_err(io_err(format!("removing {}", e.path().display())))?;
        }
    }
    Ok(())
}

/// `cnp_default_rule1.yaml`; `_` never occurs in Kubernetes names, so names cannot collide.
fn file_name(kind: PolicyKind, namespace: Option<&str>, name: &str) -> String {
    let kind = match kind {
        PolicyKind::CiliumNetworkPolicy => "cnp",
        PolicyKind::CiliumClusterwideNetworkPolicy => "ccnp",
        PolicyKind::NetworkPolicy => "netpol",
    };
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    };
    match namespace {
        Some(ns) => format!("{kind}_{}_{}.yaml", clean(ns), clean(name)),
        None => format!("{kind}_{}.yaml", clean(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{self, ClusterSpec};
    use crate::policy::PolicyEntry as CompiledEntry;
    use crate::policy::verdict;

    fn entry(id: u32, proto: u8, port: u16, end: u16, deny: bool) -> CompiledEntry {
        CompiledEntry {
            remote_identity: id,
            proto,
            port,
            end_port: end,
            deny,
            l7: None,
        }
    }

    fn ep_with(ingress: Vec<CompiledEntry>) -> EndpointPolicy {
        EndpointPolicy {
            endpoint_id: 9,
            namespace: "default".into(),
            name: "x".into(),
            identity: 1000,
            labels: vec![],
            ingress: crate::policy::DirectionPolicy {
                enforced: true,
                entries: ingress,
                ..Default::default()
            },
            egress: Default::default(),
        }
    }

    /// A small deterministic generator (xorshift), so the test needs no extra crate.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
            xs[(self.next() % xs.len() as u64) as usize]
        }
    }

    #[test]
    fn trie_keys_round_trip_through_the_stored_form() {
        let keys = [
            TrieKey {
                egress: false,
                remote_identity: 0,
                proto: 0,
                port: 0,
                port_bits: 0,
            },
            TrieKey {
                egress: true,
                remote_identity: 17839,
                proto: 6,
                port: 80,
                port_bits: 16,
            },
            TrieKey {
                egress: false,
                remote_identity: 5,
                proto: 17,
                port: 5008,
                port_bits: 14,
            },
            TrieKey {
                egress: true,
                remote_identity: 5,
                proto: 6,
                port: 0,
                port_bits: 0,
            },
        ];
        for k in keys {
            for slot in [0, 1] {
                let p = k.to_prefix(42, slot);
                assert_eq!(
                    TrieKey::from_stored(k.prefix_len(), &p),
                    Some((42, slot, k))
                );
            }
        }
        let p = keys[1].to_prefix(42, 0);
        // Network byte order in memory: the trie compares the port's high byte first.
        assert_eq!(p.dport.to_ne_bytes(), [0, 80]);
        assert_eq!(keys[1].prefix_len(), 80);
        assert_eq!(keys[0].prefix_len(), 56);
        assert_eq!(keys[3].prefix_len(), 64);
        assert_eq!(TrieKey::from_stored(40, &p), None);
        assert_eq!(TrieKey::from_stored(81, &p), None);
    }

    #[test]
    fn colliding_prefixes_resolve_to_deny() {
        // 80..=90 deny splits into 80/13, 88/15, 90/16; 80..=87 allow is 80/13 as well.
        let m = endpoint_maps(&ep_with(vec![
            entry(5, 6, 80, 87, false),
            entry(5, 6, 80, 90, true),
        ]))
        .unwrap();
        assert_eq!(m.entries.len(), 3);
        assert!(m.entries.values().all(|v| v.deny));
        assert_eq!(m.enforce, policy::ENFORCE_INGRESS);
        assert!(matches!(
            endpoint_maps(&ep_with(vec![entry(5, 0, 80, 80, false)])),
            Err(EnforceError::Unrepresentable { .. })
        ));
    }

    /// The Rust mirror of the BPF lookup agrees with the reference lookup on arbitrary entry
    /// lists: decision and match type, for every identity/protocol/port probed.
    #[test]
    fn datapath_lookup_matches_the_reference_on_random_policies() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let ids = [0, 0, 5, 7];
        let protos = [0, 6, 6, 17];
        let ports: [(u16, u16); 7] = [
            (0, 0),
            (80, 80),
            (80, 90),
            (79, 82),
            (84, 87),
            (1, 65535),
            (443, 443),
        ];
        let mut checked = 0;
        for _ in 0..400 {
            let n = 1 + rng.next() % 6;
            let mut entries = Vec::new();
            for _ in 0..n {
                let proto = rng.pick(&protos);
                let (p, e) = if proto == 0 { (0, 0) } else { rng.pick(&ports) };
                entries.push(entry(
                    rng.pick(&ids),
                    proto,
                    p,
                    e,
                    rng.next().is_multiple_of(3),
                ));
            }
            let maps = endpoint_maps(&ep_with(entries.clone())).unwrap();
            for remote in [5, 7, 9] {
                for proto in [6, 17, 1] {
                    for dport in [0, 1, 79, 80, 81, 84, 88, 90, 91, 443, 65535] {
                        let got = datapath_verdict(&maps, false, remote, proto, dport);
                        let want = verdict::verdict(&entries, remote, proto, dport);
                        assert_eq!(got, want, "{entries:?} remote {remote} {proto}/{dport}");
                        checked += 1;
                    }
                }
            }
            assert_eq!(
                datapath_verdict(&maps, true, 5, 6, 80),
                Verdict::NotEnforced
            );
        }
        assert!(checked > 30_000);
    }

    #[test]
    fn starwars_policies_compile_to_the_same_verdicts() {
        let c = cluster::plan(
            &ClusterSpec::starwars(),
            "enf",
            None,
            std::path::Path::new("/x"),
        )
        .unwrap();
        let mut repo = PolicyRepository::new(PolicyContext::from_cluster(&c));
        for text in [
            include_str!("../tests/policies/rule1-l3-l4.yaml"),
            include_str!("../tests/policies/deny-tiefighter.yaml"),
            include_str!("../tests/policies/xwing-egress.yaml"),
            include_str!("../tests/policies/netpol.yaml"),
        ] {
            repo.apply_text(text, "t.yaml").unwrap();
        }
        let resolved = repo.resolved();
        let maps = desired_maps(resolved).unwrap();
        let mut remotes: Vec<u32> = resolved.identity_labels.keys().copied().collect();
        remotes.push(99_999);
        for (id, ep) in &resolved.endpoints {
            let m = &maps[id];
            for remote in &remotes {
                for proto in [6, 17, 1, 132] {
                    for dport in [0, 53, 80, 443, 5000, 5005, 5011, 8080] {
                        assert_eq!(
                            datapath_verdict(m, false, *remote, proto, dport),
                            ep.ingress.verdict(*remote, proto, dport),
                            "{} ingress from {remote} {proto}/{dport}",
                            ep.name
                        );
                        assert_eq!(
                            datapath_verdict(m, true, *remote, proto, dport),
                            ep.egress.verdict(*remote, proto, dport),
                            "{} egress to {remote} {proto}/{dport}",
                            ep.name
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn ipcache_plan_keeps_base_entries_and_removes_unused_cidrs() {
        let e = |p: &str, id: u32| {
            let net: IpNet = p.parse().unwrap();
            IpcacheEntry {
                prefix: net.addr(),
                prefix_len: net.prefix_len(),
                identity: id,
            }
        };
        let current = [
            e("10.244.0.5/32", 300),
            e("0.0.0.0/0", 2),
            e("192.0.2.0/24", MIN_CIDR_IDENTITY),
            e("198.51.100.0/24", MIN_CIDR_IDENTITY + 1),
            e("203.0.113.0/24", MIN_CIDR_IDENTITY + 2),
        ];
        let mut cidrs = BTreeMap::new();
        cidrs.insert("10.244.0.5/32".parse().unwrap(), MIN_CIDR_IDENTITY + 7);
        cidrs.insert("192.0.2.0/24".parse().unwrap(), MIN_CIDR_IDENTITY);
        cidrs.insert("198.51.100.0/24".parse().unwrap(), MIN_CIDR_IDENTITY + 3);
        cidrs.insert("10.0.0.0/8".parse().unwrap(), MIN_CIDR_IDENTITY + 4);
        let (up, del) = plan_ipcache(&current, &cidrs);
        assert_eq!(
            up,
            vec![
                ("10.0.0.0/8".parse().unwrap(), MIN_CIDR_IDENTITY + 4),
                ("198.51.100.0/24".parse().unwrap(), MIN_CIDR_IDENTITY + 3),
            ]
        );
        assert_eq!(del, vec!["203.0.113.0/24".parse::<IpNet>().unwrap()]);
    }

    #[test]
    fn repositories_persist_and_reload() {
        let c = cluster::plan(
            &ClusterSpec::starwars(),
            "enfp",
            None,
            std::path::Path::new("/x"),
        )
        .unwrap();
        let dir = std::env::temp_dir().join(format!("periscope-enforce-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let ctx = PolicyContext::from_cluster(&c);
        assert_eq!(
            load_repository_from(&dir, ctx.clone())
                .unwrap()
                .policies()
                .count(),
            0,
            "a missing dir is an empty repository"
        );
        let mut repo = PolicyRepository::new(ctx.clone());
        repo.apply_text(include_str!("../tests/policies/rule1-l3-l4.yaml"), "a.yaml")
            .unwrap();
        repo.apply_text(include_str!("../tests/policies/netpol.yaml"), "b.yaml")
            .unwrap();
        save_repository_to(&dir, &repo).unwrap();
        let back = load_repository_from(&dir, ctx.clone()).unwrap();
        assert_eq!(back.resolved(), repo.resolved());
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "cnp_default_rule1.yaml",
                "netpol_default_deathstar.yaml",
                "netpol_default_default-deny.yaml"
            ]
        );

        repo.delete("cnp/rule1").unwrap();
        save_repository_to(&dir, &repo).unwrap();
        let back = load_repository_from(&dir, ctx).unwrap();
        assert_eq!(back.policies().count(), 2);
        assert_eq!(back.resolved(), repo.resolved());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
