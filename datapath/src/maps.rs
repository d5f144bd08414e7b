//! Typed userspace access to the maps the probes read: the endpoint map (pod IP → endpoint id,
//! host-side ifindex, identity), the ipcache (prefix → identity) and, read-only, conntrack.
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
    self, CtEntry, CtKey, EndpointInfo, EndpointKey, IpcachePrefix, IpcacheValue, ProbeConfigError,
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
    CtVal(CtEntry)
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

/// Read-only view of the `conntrack` LRU map (diagnostics and tests).
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
