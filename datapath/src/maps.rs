//! Typed userspace access to the maps the probes read: the endpoint map (pod IP → endpoint id,
//! host-side ifindex, identity), the ipcache (prefix → identity), the policy trie and per-endpoint
//! policy state (written by [`crate::enforce`]), and conntrack (read, and garbage collected).
//!
//! Handles come from a loaded [`Datapath`](crate::loader::Datapath) or are opened from the
//! instance's pin directory, so another thread or process can keep the maps in sync while the
//! loader owns the programs.

use std::net::IpAddr;
use std::path::Path;

use aya::Pod;
use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{HashMap, Map, MapData, MapError};
use periscope_probes::probes::{
    self, CT_F_CLOSING, CtEntry, CtKey, EndpointInfo, EndpointKey, IpcachePrefix, IpcacheValue,
    PolicyEntry, PolicyPrefix, PolicyState, ProbeConfigError, ct_lifetime,
};

#[derive(Debug, thiserror::Error)]
pub enum MapsError {
    #[error("map {map}: {source}")]
    Map {
        map: &'static str,
        #[source]
        source: MapError,
    },
    #[error(transparent)]
    Prefix(#[from] ProbeConfigError),
}

fn map_err(map: &'static str) -> impl FnOnce(MapError) -> MapsError {
    move |source| MapsError::Map { map, source }
}

// aya needs its own marker trait on key and value types; the orphan rule wants local types.
macro_rules! pod {
    ($($name:ident($inner:ty)),* $(,)?) => {$(
        #[repr(transparent)]
        #[derive(Debug, Clone, Copy)]
        struct $name($inner);
        // SAFETY: a transparent wrapper over a #[repr(C)] struct of integers with explicit
        // padding fields, so every bit pattern is valid and no byte is uninitialised.
        unsafe impl Pod for $name {}
    )*};
}
pod!(
    EpKey(EndpointKey),
    EpInfo(EndpointInfo),
    IpcPrefix(IpcachePrefix),
    IpcValue(IpcacheValue),
    Ct(CtKey),
    CtVal(CtEntry),
    PolPrefix(PolicyPrefix),
    PolEntry(PolicyEntry),
    PolState(PolicyState)
);

/// True when a map syscall failed because the key was absent.
fn is_not_found(err: &MapError) -> bool {
    match err {
        MapError::KeyNotFound | MapError::ElementNotFound => true,
        MapError::SyscallError(e) => e.io_error.raw_os_error() == Some(libc::ENOENT),
        _ => false,
    }
}

fn open_pinned(dir: &Path, name: &'static str) -> Result<MapData, MapsError> {
    MapData::from_pin(dir.join(name)).map_err(map_err(name))
}

/// One pod as the probes see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub ip: IpAddr,
    /// Endpoint id: the notification's `source` (from/to the pod) and `dst_id`.
    pub id: u16,
    /// ifindex of the pod's host-side veth.
    pub ifindex: u32,
    pub identity: u32,
}

/// The `endpoints` hash map.
pub struct EndpointMap {
    inner: HashMap<MapData, EpKey, EpInfo>,
}

impl EndpointMap {
    pub(crate) fn from_map(map: Map) -> Result<Self, MapsError> {
        let inner = HashMap::try_from(map).map_err(map_err(probes::map::ENDPOINTS))?;
        Ok(Self { inner })
    }

    /// Opens the map pinned under an instance's pin directory.
    pub fn open_pinned(pin_dir: &Path) -> Result<Self, MapsError> {
        Self::from_map(Map::HashMap(open_pinned(pin_dir, probes::map::ENDPOINTS)?))
    }

    /// Inserts or replaces the endpoint for `ep.ip`.
    pub fn insert(&mut self, ep: &Endpoint) -> Result<(), MapsError> {
        let info = EndpointInfo {
            ifindex: ep.ifindex,
            lxc_id: ep.id,
            sec_identity: ep.identity,
            ..Default::default()
        };
        self.inner
            .insert(EpKey(EndpointKey::new(ep.ip)), EpInfo(info), 0)
            .map_err(map_err(probes::map::ENDPOINTS))
    }

    /// Removes the endpoint for `ip`; `false` if there was none.
    pub fn remove(&mut self, ip: IpAddr) -> Result<bool, MapsError> {
        match self.inner.remove(&EpKey(EndpointKey::new(ip))) {
            Ok(()) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(map_err(probes::map::ENDPOINTS)(e)),
        }
    }

    pub fn get(&self, ip: IpAddr) -> Result<Option<Endpoint>, MapsError> {
        match self.inner.get(&EpKey(EndpointKey::new(ip)), 0) {
            Ok(EpInfo(info)) => Ok(Some(endpoint(ip, &info))),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(map_err(probes::map::ENDPOINTS)(e)),
        }
    }

    /// All endpoints, sorted by IP. Entries with an unknown family tag are skipped.
    pub fn list(&self) -> Result<Vec<Endpoint>, MapsError> {
        let mut out = Vec::new();
        for item in self.inner.iter() {
            let (EpKey(key), EpInfo(info)) = item.map_err(map_err(probes::map::ENDPOINTS))?;
            if let Some(ip) = key.ip() {
                out.push(endpoint(ip, &info));
            }
        }
        out.sort_by_key(|e| e.ip);
        Ok(out)
    }
}

fn endpoint(ip: IpAddr, info: &EndpointInfo) -> Endpoint {
    Endpoint {
        ip,
        id: info.lxc_id,
        ifindex: info.ifindex,
        identity: info.sec_identity,
    }
}

/// One ipcache entry: every address in `prefix/prefix_len` has `identity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpcacheEntry {
    pub prefix: IpAddr,
    pub prefix_len: u8,
    pub identity: u32,
}

/// The `ipcache` LPM trie.
pub struct Ipcache {
    inner: LpmTrie<MapData, IpcPrefix, IpcValue>,
}

impl Ipcache {
    pub(crate) fn from_map(map: Map) -> Result<Self, MapsError> {
        let inner = LpmTrie::try_from(map).map_err(map_err(probes::map::IPCACHE))?;
        Ok(Self { inner })
    }

    pub fn open_pinned(pin_dir: &Path) -> Result<Self, MapsError> {
        Self::from_map(Map::LpmTrie(open_pinned(pin_dir, probes::map::IPCACHE)?))
    }

    fn key(ip: IpAddr, prefix_len: u8) -> Result<Key<IpcPrefix>, MapsError> {
        let (prefix, bits) = IpcachePrefix::new(ip, prefix_len)?;
        Ok(Key::new(bits, IpcPrefix(prefix)))
    }

    /// Maps `ip/prefix_len` (host bits ignored) to `identity`, replacing any previous value.
    pub fn insert(&mut self, ip: IpAddr, prefix_len: u8, identity: u32) -> Result<(), MapsError> {
        let key = Self::key(ip, prefix_len)?;
        let value = IpcValue(IpcacheValue {
            sec_identity: identity,
            flags: 0,
        });
        self.inner
            .insert(&key, value, 0)
            .map_err(map_err(probes::map::IPCACHE))
    }

    /// Removes exactly `ip/prefix_len`; `false` if it was not there.
    pub fn remove(&mut self, ip: IpAddr, prefix_len: u8) -> Result<bool, MapsError> {
        match self.inner.remove(&Self::key(ip, prefix_len)?) {
            Ok(()) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(map_err(probes::map::IPCACHE)(e)),
        }
    }

    /// The identity the probes would resolve for `ip` (longest prefix match), if any entry covers it.
    pub fn lookup(&self, ip: IpAddr) -> Result<Option<u32>, MapsError> {
        let full = if ip.is_ipv4() { 32 } else { 128 };
        match self.inner.get(&Self::key(ip, full)?, 0) {
            Ok(IpcValue(v)) => Ok(Some(v.sec_identity)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(map_err(probes::map::IPCACHE)(e)),
        }
    }

    /// All entries, sorted by prefix then length.
    pub fn list(&self) -> Result<Vec<IpcacheEntry>, MapsError> {
        let mut out = Vec::new();
        for item in self.inner.iter() {
            let (key, IpcValue(value)) = item.map_err(map_err(probes::map::IPCACHE))?;
            let IpcPrefix(data) = key.data();
            if let Some((prefix, prefix_len)) = data.prefix(key.prefix_len()) {
                out.push(IpcacheEntry {
                    prefix,
                    prefix_len,
                    identity: value.sec_identity,
                });
            }
        }
        out.sort_by_key(|e| (e.prefix, e.prefix_len));
        Ok(out)
    }
}

/// A conntrack entry as read back from the map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CtRecord {
    pub key: CtKey,
    pub entry: CtEntry,
}

/// The `conntrack` LRU map: read for diagnostics, swept by [`Conntrack::gc`].
pub struct Conntrack {
    inner: HashMap<MapData, Ct, CtVal>,
}

impl Conntrack {
    pub(crate) fn from_map(map: Map) -> Result<Self, MapsError> {
        let inner = HashMap::try_from(map).map_err(map_err(probes::map::CONNTRACK))?;
        Ok(Self { inner })
    }

    pub fn open_pinned(pin_dir: &Path) -> Result<Self, MapsError> {
        Self::from_map(Map::LruHashMap(open_pinned(
            pin_dir,
            probes::map::CONNTRACK,
        )?))
    }

    /// A snapshot of all entries. Entries evicted or added while iterating may be missed.
    pub fn list(&self) -> Result<Vec<CtRecord>, MapsError> {
        let mut out = Vec::new();
        for item in self.inner.iter() {
            match item {
                Ok((Ct(key), CtVal(entry))) => out.push(CtRecord { key, entry }),
                // The LRU may evict a key between "next key" and "lookup".
                Err(e) if is_not_found(&e) => continue,
                Err(e) => return Err(map_err(probes::map::CONNTRACK)(e)),
            }
        }
        Ok(out)
    }
}

/// The idle lifetime the probes give a conntrack entry of protocol `proto` (see `ct_lifetime` in
/// `bpf/probes.c`): past it the entry no longer matches.
pub fn ct_entry_lifetime_ns(entry: &CtEntry, proto: u8) -> u64 {
    const IPPROTO_TCP: u8 = 6;
    if entry.flags & CT_F_CLOSING != 0 {
        ct_lifetime::CLOSING_NS
    } else if proto == IPPROTO_TCP {
        ct_lifetime::TCP_NS
    } else {
        ct_lifetime::NON_TCP_NS
    }
}

/// Whether the probes would treat `entry` as gone at monotonic time `now_ns`.
pub fn ct_entry_expired(key: &CtKey, entry: &CtEntry, now_ns: u64) -> bool {
    now_ns.saturating_sub(entry.last_seen_ns) > ct_entry_lifetime_ns(entry, key.proto)
}

/// CLOCK_MONOTONIC in ns: the clock the probes stamp conntrack entries with (they read its
/// coarse variant, which lags by at most a tick).
pub fn monotonic_ns() -> u64 {
    // SAFETY: timespec is plain data; clock_gettime fills it and cannot fail for this clock.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

/// What one conntrack sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CtGcStats {
    pub scanned: usize,
    pub deleted: usize,
}

impl Conntrack {
    /// Deletes every entry expired at monotonic time `now_ns` (pass [`monotonic_ns`]). The
    /// probes already ignore expired entries and the LRU evicts the oldest when full; the sweep
    /// returns their memory and keeps `list` meaningful. An entry a packet refreshed between
    /// the scan and the delete is re-read and kept.
    pub fn gc(&mut self, now_ns: u64) -> Result<CtGcStats, MapsError> {
        let records = self.list()?;
        let mut stats = CtGcStats {
            scanned: records.len(),
            deleted: 0,
        };
        for r in records {
            if !ct_entry_expired(&r.key, &r.entry, now_ns) {
                continue;
            }
            match self.inner.get(&Ct(r.key), 0) {
                Ok(CtVal(fresh)) if !ct_entry_expired(&r.key, &fresh, now_ns) => continue,
                Ok(_) => {}
                Err(e) if is_not_found(&e) => continue,
                Err(e) => return Err(map_err(probes::map::CONNTRACK)(e)),
            }
            match self.inner.remove(&Ct(r.key)) {
                Ok(()) => stats.deleted += 1,
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(map_err(probes::map::CONNTRACK)(e)),
            }
        }
        Ok(stats)
    }
}

/// One entry of the `policy` LPM trie as stored: `prefix_len` bits of `prefix` match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyRecord {
    pub prefix_len: u32,
    pub prefix: PolicyPrefix,
    pub entry: PolicyEntry,
}

/// The `policy` LPM trie (all endpoints, both directions, both slots).
pub struct PolicyMap {
    inner: LpmTrie<MapData, PolPrefix, PolEntry>,
}

impl PolicyMap {
    pub(crate) fn from_map(map: Map) -> Result<Self, MapsError> {
        let inner = LpmTrie::try_from(map).map_err(map_err(probes::map::POLICY))?;
        Ok(Self { inner })
    }

    pub fn open_pinned(pin_dir: &Path) -> Result<Self, MapsError> {
        Self::from_map(Map::LpmTrie(open_pinned(pin_dir, probes::map::POLICY)?))
    }

    /// Inserts or replaces the entry for `prefix_len` bits of `prefix`.
    pub fn insert(
        &mut self,
        prefix_len: u32,
        prefix: PolicyPrefix,
        entry: PolicyEntry,
    ) -> Result<(), MapsError> {
        self.inner
            .insert(&Key::new(prefix_len, PolPrefix(prefix)), PolEntry(entry), 0)
            .map_err(map_err(probes::map::POLICY))
    }

    /// Removes exactly that key; `false` if it was not there.
    pub fn remove(&mut self, prefix_len: u32, prefix: PolicyPrefix) -> Result<bool, MapsError> {
        match self.inner.remove(&Key::new(prefix_len, PolPrefix(prefix))) {
            Ok(()) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(map_err(probes::map::POLICY)(e)),
        }
    }

    /// The entry the trie returns for a full-length lookup key (longest prefix match).
    pub fn lookup(&self, prefix: PolicyPrefix) -> Result<Option<PolicyEntry>, MapsError> {
        let key = Key::new(probes::policy::PREFIX_FULL, PolPrefix(prefix));
        match self.inner.get(&key, 0) {
            Ok(PolEntry(e)) => Ok(Some(e)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(map_err(probes::map::POLICY)(e)),
        }
    }

    /// Every stored entry.
    pub fn list(&self) -> Result<Vec<PolicyRecord>, MapsError> {
        let mut out = Vec::new();
        for item in self.inner.iter() {
            match item {
                Ok((key, PolEntry(entry))) => {
                    let PolPrefix(prefix) = key.data();
                    out.push(PolicyRecord {
                        prefix_len: key.prefix_len(),
                        prefix,
                        entry,
                    });
                }
                // Removed by a concurrent sync between "next key" and "lookup".
                Err(e) if is_not_found(&e) => continue,
                Err(e) => return Err(map_err(probes::map::POLICY)(e)),
            }
        }
        Ok(out)
    }
}

/// The `policy_state` hash: endpoint id → enforced directions and live slot.
pub struct PolicyStateMap {
    inner: HashMap<MapData, u32, PolState>,
}

impl PolicyStateMap {
    pub(crate) fn from_map(map: Map) -> Result<Self, MapsError> {
        let inner = HashMap::try_from(map).map_err(map_err(probes::map::POLICY_STATE))?;
        Ok(Self { inner })
    }

    pub fn open_pinned(pin_dir: &Path) -> Result<Self, MapsError> {
        Self::from_map(Map::HashMap(open_pinned(
            pin_dir,
            probes::map::POLICY_STATE,
        )?))
    }

    /// The state of `endpoint_id`; `None` when nothing is enforced for it.
    pub fn get(&self, endpoint_id: u16) -> Result<Option<PolicyState>, MapsError> {
        match self.inner.get(&u32::from(endpoint_id), 0) {
            Ok(PolState(s)) => Ok(Some(s)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(map_err(probes::map::POLICY_STATE)(e)),
        }
    }

    /// Sets the state in one map update: the probes see the old value or the new one.
    pub fn set(&mut self, endpoint_id: u16, state: PolicyState) -> Result<(), MapsError> {
        self.inner
            .insert(u32::from(endpoint_id), PolState(state), 0)
            .map_err(map_err(probes::map::POLICY_STATE))
    }

    /// Removes the state; `false` if there was none.
    pub fn remove(&mut self, endpoint_id: u16) -> Result<bool, MapsError> {
        match self.inner.remove(&u32::from(endpoint_id)) {
            Ok(()) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(map_err(probes::map::POLICY_STATE)(e)),
        }
    }

    /// Every endpoint with a state, sorted by id. Ids above `u16::MAX` (never written by us) are
    /// skipped.
    pub fn list(&self) -> Result<Vec<(u16, PolicyState)>, MapsError> {
        let mut out = Vec::new();
        for item in self.inner.iter() {
            match item {
                Ok((id, PolState(state))) => {
                    if let Ok(id) = u16::try_from(id) {
                        out.push((id, state));
                    }
                }
                Err(e) if is_not_found(&e) => continue,
                Err(e) => return Err(map_err(probes::map::POLICY_STATE)(e)),
            }
        }
        out.sort_by_key(|(id, _)| *id);
        Ok(out)
    }
}
