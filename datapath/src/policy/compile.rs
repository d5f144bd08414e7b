//! Compiling a set of policies against the cluster's endpoints into the resolved, per-endpoint
//! policy the kernel side loads into its maps: per endpoint and direction, whether policy is
//! enforced and the entries `(remote identity, protocol, port range) → allow/deny`.
//!
//! The semantics are Cilium's:
//! - a direction is enforced for an endpoint once any rule selecting it has an item for that
//!   direction (even an empty one); if none of those rules enables default deny, an allow-all
//!   entry is added so only deny entries bite;
//! - rules union; deny wins over allow regardless of specificity. The compiler makes the second
//!   point hold for a most-specific-first lookup too (see [`super::verdict::lookup`]): for every
//!   allow entry overlapping a deny entry it adds the overlap as a deny entry, which is at least
//!   as specific as the allow entry, and drops allow entries that a deny entry replaces exactly;
//! - `fromCIDR`/`toCIDR` prefixes get local CIDR identities (from 16777217 up, like Cilium) that
//!   go into the ipcache; a CIDR peer selects every CIDR identity inside it and outside its
//!   `except` list. Pod addresses keep their pod identity (CIDR rules never select pods).

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;
use serde::Serialize;

use super::api::Entity;
use super::error::{ErrorKind, PolicyError};
use super::model::{
    L7Rules, Label, Peer, PeerRule, Policy, PolicyKey, Selector, cluster_requirement,
};
use super::verdict::{self, Verdict};
use crate::cluster::{Cluster, PodInfo};
use crate::identity::{reserved, reserved_labels};

/// Local CIDR identities start above this (Cilium's local identity scope, 1 << 24).
pub const CIDR_IDENTITY_SCOPE: u32 = 1 << 24;
/// The first CIDR identity handed out.
pub const MIN_CIDR_IDENTITY: u32 = CIDR_IDENTITY_SCOPE + 1;
/// The last one.
pub const MAX_CIDR_IDENTITY: u32 = CIDR_IDENTITY_SCOPE | 0x00ff_ffff;

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_SCTP: u8 = 132;

/// A local endpoint the policy is computed for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointInfo {
    pub endpoint_id: u16,
    pub namespace: String,
    pub name: String,
    pub identity: u32,
    /// Identity labels (`k8s:org=empire`, …).
    pub labels: Vec<String>,
}

impl From<&PodInfo> for EndpointInfo {
    fn from(p: &PodInfo) -> EndpointInfo {
        EndpointInfo {
            endpoint_id: p.endpoint_id,
            namespace: p.namespace.clone(),
            name: p.name.clone(),
            identity: p.identity,
            labels: p.identity_labels.clone(),
        }
    }
}

/// What policies are compiled against: the cluster name (for the `cluster` entity), the local
/// endpoints, and every identity a selector may pick as a peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyContext {
    pub cluster_name: String,
    pub endpoints: Vec<EndpointInfo>,
    /// Non-reserved identities and their labels: the local endpoints' plus any remote ones.
    pub identities: BTreeMap<u32, Vec<String>>,
}

impl PolicyContext {
    pub fn new(cluster_name: impl Into<String>, endpoints: Vec<EndpointInfo>) -> PolicyContext {
        let identities = endpoints
            .iter()
            .map(|e| (e.identity, e.labels.clone()))
            .collect();
        PolicyContext {
            cluster_name: cluster_name.into(),
            endpoints,
            identities,
        }
    }

    pub fn from_pods(cluster_name: impl Into<String>, pods: &[PodInfo]) -> PolicyContext {
        PolicyContext::new(cluster_name, pods.iter().map(EndpointInfo::from).collect())
    }

    pub fn from_cluster(cluster: &Cluster) -> PolicyContext {
        PolicyContext::from_pods(cluster.spec.cluster_name.clone(), &cluster.pods)
    }

    /// Add an identity that is not a local endpoint (a pod on another node).
    pub fn with_identity(mut self, identity: u32, labels: Vec<String>) -> PolicyContext {
        self.identities.insert(identity, labels);
        self
    }
}

/// One policy map entry. `remote_identity` 0 is any identity, `proto` 0 any protocol, `port` 0
/// any port; otherwise the entry covers destination ports `port..=end_port` (`end_port == port`
/// for a single port).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PolicyEntry {
    pub remote_identity: u32,
    pub proto: u8,
    pub port: u16,
    pub end_port: u16,
    pub deny: bool,
    /// L7 rules on this port (allow entries only); `None` allows all L7 traffic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l7: Option<L7Rules>,
}

impl PolicyEntry {
    fn key(&self) -> EntryKey {
        EntryKey {
            id: self.remote_identity,
            proto: self.proto,
            port: self.port,
            end: self.end_port,
        }
    }
}

/// Policy of one endpoint in one direction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DirectionPolicy {
    /// Whether the datapath looks the policy up at all; if not, everything passes.
    pub enforced: bool,
    /// Whether a selecting rule enabled default deny (when enforced without it, the entries
    /// start with an allow-all entry).
    pub default_deny: bool,
    /// The policies with a rule selecting the endpoint in this direction.
    pub policies: Vec<PolicyKey>,
    /// Sorted by (remote identity, proto, port, end port, deny); no duplicate keys.
    pub entries: Vec<PolicyEntry>,
}

impl DirectionPolicy {
    /// The verdict the datapath must reach for a new connection (see [`verdict::lookup`]).
    pub fn verdict(&self, remote_identity: u32, proto: u8, dport: u16) -> Verdict {
        if !self.enforced {
            return Verdict::NotEnforced;
        }
        verdict::verdict(&self.entries, remote_identity, proto, dport)
    }
}

/// Policy of one local endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointPolicy {
    pub endpoint_id: u16,
    pub namespace: String,
    pub name: String,
    pub identity: u32,
    pub labels: Vec<String>,
    pub ingress: DirectionPolicy,
    pub egress: DirectionPolicy,
}

/// The compiled result for every local endpoint, plus the CIDR identities the ipcache needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ResolvedPolicy {
    /// By endpoint id.
    pub endpoints: BTreeMap<u16, EndpointPolicy>,
    /// Prefix → local CIDR identity, to add to the ipcache (pod, node and world entries win on
    /// an identical prefix; see [`ResolvedPolicy::ipcache_entries`]).
    pub cidr_identities: BTreeMap<IpNet, u32>,
    /// Labels of every identity an entry can name: pods, reserved and CIDR identities.
    pub identity_labels: BTreeMap<u32, Vec<String>>,
}

impl ResolvedPolicy {
    pub fn endpoint(&self, endpoint_id: u16) -> Option<&EndpointPolicy> {
        self.endpoints.get(&endpoint_id)
    }

    /// `base` (e.g. [`crate::identity::IpLookup::ipcache_entries`]) plus the CIDR identities,
    /// sorted by prefix. An entry already in `base` for the same prefix is kept.
    pub fn ipcache_entries(&self, base: &[(IpNet, u32)]) -> Vec<(IpNet, u32)> {
        let mut out: BTreeMap<IpNet, u32> = self
            .cidr_identities
            .iter()
            .map(|(p, id)| (*p, *id))
            .collect();
        out.extend(base.iter().copied());
        out.into_iter().collect()
    }

    /// Labels of an identity as shown next to it (empty for unknown identities).
    pub fn labels_of(&self, identity: u32) -> &[String] {
        self.identity_labels
            .get(&identity)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

/// Compile `policies` for every endpoint of `ctx`. `previous` CIDR identities are kept for
/// prefixes still in use, so applying a policy does not renumber unrelated ipcache entries.
pub fn compile<'a>(
    policies: impl IntoIterator<Item = &'a Policy>,
    ctx: &PolicyContext,
    previous: Option<&BTreeMap<IpNet, u32>>,
) -> Result<ResolvedPolicy, PolicyError> {
    let policies: Vec<&Policy> = policies.into_iter().collect();
    let cidr_identities = allocate_cidr_identities(&policies, previous)?;

    let mut identity_labels: BTreeMap<u32, Vec<String>> = ctx.identities.clone();
    for id in reserved::HOST..=reserved::INGRESS {
        if let Some(l) = reserved_labels(id) {
            identity_labels.insert(id, vec![l.to_string()]);
        }
    }
    for (prefix, id) in &cidr_identities {
        identity_labels.insert(
            *id,
            vec![format!("cidr:{prefix}"), "reserved:world".to_string()],
        );
    }

    let universe = Universe::new(&identity_labels, &cidr_identities, &ctx.cluster_name);
    let mut by_identity: BTreeMap<u32, (DirectionPolicy, DirectionPolicy)> = BTreeMap::new();
    let mut endpoints = BTreeMap::new();
    for ep in &ctx.endpoints {
        let (ingress, egress) = by_identity
            .entry(ep.identity)
            .or_insert_with(|| {
                let labels: Vec<Label<'_>> = ep.labels.iter().map(|l| Label::parse(l)).collect();
                (
                    resolve_direction(&policies, &labels, Direction::Ingress, &universe),
                    resolve_direction(&policies, &labels, Direction::Egress, &universe),
                )
            })
            .clone();
        endpoints.insert(
            ep.endpoint_id,
            EndpointPolicy {
                endpoint_id: ep.endpoint_id,
                namespace: ep.namespace.clone(),
                name: ep.name.clone(),
                identity: ep.identity,
                labels: ep.labels.clone(),
                ingress,
                egress,
            },
        );
    }
    Ok(ResolvedPolicy {
        endpoints,
        cidr_identities,
        identity_labels,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Ingress,
    Egress,
}

/// Every prefix named by a CIDR peer (and its exceptions) gets an identity; `/0` is world.
fn allocate_cidr_identities(
    policies: &[&Policy],
    previous: Option<&BTreeMap<IpNet, u32>>,
) -> Result<BTreeMap<IpNet, u32>, PolicyError> {
    let mut prefixes = BTreeSet::new();
    for p in policies {
        for r in &p.rules {
            for item in r
                .ingress
                .iter()
                .chain(&r.ingress_deny)
                .chain(&r.egress)
                .chain(&r.egress_deny)
            {
                for peer in &item.peers {
                    if let Peer::Cidr { cidr, except } = peer {
                        prefixes.insert(*cidr);
                        prefixes.extend(except.iter().copied());
                    }
                }
            }
        }
    }
    prefixes.retain(|p| p.prefix_len() > 0);
    let mut out = BTreeMap::new();
    let mut used = BTreeSet::new();
    if let Some(prev) = previous {
        for (p, id) in prev {
            if prefixes.contains(p) && (MIN_CIDR_IDENTITY..=MAX_CIDR_IDENTITY).contains(id) {
                out.insert(*p, *id);
                used.insert(*id);
            }
        }
    }
    let mut next = MIN_CIDR_IDENTITY;
    for p in prefixes {
        if out.contains_key(&p) {
            continue;
        }
        while used.contains(&next) {
            next += 1;
        }
        if next > MAX_CIDR_IDENTITY {
            return Err(PolicyError::new(
                ErrorKind::Compile,
                "too many CIDR prefixes: the local identity range is exhausted",
            ));
        }
        out.insert(p, next);
        used.insert(next);
    }
    Ok(out)
}

/// The identities a peer can select, with parsed labels.
struct Universe<'a> {
    labelled: Vec<(u32, Vec<Label<'a>>)>,
    cidrs: &'a BTreeMap<IpNet, u32>,
    cluster: Selector,
}

impl<'a> Universe<'a> {
    fn new(
        labels: &'a BTreeMap<u32, Vec<String>>,
        cidrs: &'a BTreeMap<IpNet, u32>,
        cluster_name: &str,
    ) -> Universe<'a> {
        Universe {
            labelled: labels
                .iter()
                .map(|(id, ls)| (*id, ls.iter().map(|l| Label::parse(l)).collect()))
                .collect(),
            cidrs,
            cluster: cluster_requirement(cluster_name),
        }
    }

    fn cidr_ids(&self, inside: &IpNet, except: &[IpNet]) -> impl Iterator<Item = u32> + '_ {
        let (inside, except) = (*inside, except.to_vec());
        self.cidrs
            .iter()
            .filter(move |(p, _)| inside.contains(*p) && !except.iter().any(|e| e.contains(*p)))
            .map(|(_, id)| *id)
    }

    fn select(&self, peer: &Peer) -> BTreeSet<u32> {
        let v4_all: IpNet = IpNet::V4(Default::default());
        let v6_all: IpNet = IpNet::V6(Default::default());
        match peer {
            Peer::Any => BTreeSet::from([0]),
            Peer::Endpoints(sel) if sel.requirements.is_empty() => BTreeSet::from([0]),
            Peer::Endpoints(sel) => self
                .labelled
                .iter()
                .filter(|(_, ls)| sel.matches(ls))
                .map(|(id, _)| *id)
                .collect(),
            Peer::Entity(entity) => match entity {
                Entity::All => BTreeSet::from([0]),
                Entity::None => BTreeSet::new(),
                Entity::World => std::iter::once(reserved::WORLD)
                    .chain(self.cidrs.values().copied())
                    .collect(),
                Entity::WorldIpv4 => std::iter::once(reserved::WORLD)
                    .chain(self.cidr_ids(&v4_all, &[]))
                    .collect(),
                Entity::WorldIpv6 => std::iter::once(reserved::WORLD)
                    .chain(self.cidr_ids(&v6_all, &[]))
                    .collect(),
                Entity::Host => BTreeSet::from([reserved::HOST]),
                Entity::RemoteNode => BTreeSet::from([reserved::REMOTE_NODE]),
                Entity::Init => BTreeSet::from([reserved::INIT]),
                Entity::Health => BTreeSet::from([reserved::HEALTH]),
                Entity::Unmanaged => BTreeSet::from([reserved::UNMANAGED]),
                Entity::Ingress => BTreeSet::from([reserved::INGRESS]),
                Entity::KubeApiserver => BTreeSet::from([reserved::KUBE_APISERVER]),
                Entity::Cluster => [
                    reserved::HOST,
                    reserved::REMOTE_NODE,
                    reserved::INIT,
                    reserved::HEALTH,
                    reserved::UNMANAGED,
                    reserved::INGRESS,
                    reserved::KUBE_APISERVER,
                ]
                .into_iter()
                .chain(
                    self.labelled
                        .iter()
                        .filter(|(_, ls)| self.cluster.matches(ls))
                        .map(|(id, _)| *id),
                )
                .collect(),
            },
            Peer::Cidr { cidr, except } => {
                let mut ids: BTreeSet<u32> = self.cidr_ids(cidr, except).collect();
                if cidr.prefix_len() == 0 {
                    // Addresses without a CIDR identity of their own resolve to world.
                    ids.insert(reserved::WORLD);
                }
                ids
            }
        }
    }
}

fn resolve_direction(
    policies: &[&Policy],
    labels: &[Label<'_>],
    dir: Direction,
    universe: &Universe<'_>,
) -> DirectionPolicy {
    let mut out = DirectionPolicy::default();
    let mut entries: BTreeMap<(EntryKey, bool), Option<L7Rules>> = BTreeMap::new();
    for p in policies {
        let mut selected = false;
        for r in &p.rules {
            let (has, allow, deny, dd) = match dir {
                Direction::Ingress => (
                    r.has_ingress(),
                    &r.ingress,
                    &r.ingress_deny,
                    r.default_deny_ingress,
                ),
                Direction::Egress => (
                    r.has_egress(),
                    &r.egress,
                    &r.egress_deny,
                    r.default_deny_egress,
                ),
            };
            if !has || !r.subject.matches(labels) {
                continue;
            }
            selected = true;
            out.enforced = true;
            out.default_deny |= dd;
            for item in allow {
                add_entries(&mut entries, item, false, universe);
            }
            for item in deny {
                add_entries(&mut entries, item, true, universe);
            }
        }
        if selected {
            out.policies.push(p.key.clone());
        }
    }
    out.policies.sort();
    if out.enforced && !out.default_deny {
        insert_entry(&mut entries, EntryKey::default(), false, None);
    }
    out.entries = push_down_denies(entries);
    out
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct EntryKey {
    id: u32,
    proto: u8,
    port: u16,
    end: u16,
}

impl EntryKey {
    /// The packets both keys cover, as a key; `None` when disjoint.
    fn meet(&self, other: &EntryKey) -> Option<EntryKey> {
        let wild = |a: u32, b: u32| match (a, b) {
            (0, x) | (x, 0) => Some(x),
            (a, b) if a == b => Some(a),
            _ => None,
        };
        let id = wild(self.id, other.id)?;
        let proto = wild(u32::from(self.proto), u32::from(other.proto))? as u8;
        let (port, end) = match (self.port, other.port) {
            (0, _) => (other.port, other.end),
            (_, 0) => (self.port, self.end),
            _ => {
                let lo = self.port.max(other.port);
                let hi = self.end.min(other.end);
                if lo > hi {
                    return None;
                }
                (lo, hi)
            }
        };
        Some(EntryKey {
            id,
            proto,
            port,
            end,
        })
    }
}

fn insert_entry(
    entries: &mut BTreeMap<(EntryKey, bool), Option<L7Rules>>,
    key: EntryKey,
    deny: bool,
    l7: Option<L7Rules>,
) {
    use std::collections::btree_map::Entry;
    match entries.entry((key, deny)) {
        Entry::Vacant(v) => {
            v.insert(l7);
        }
        Entry::Occupied(mut o) => {
            // Same key from several rules: without L7 rules anywhere, all L7 traffic is allowed;
            // otherwise the L7 rules add up.
            let merged = match (o.get().clone(), l7) {
                (Some(mut a), Some(b)) => {
                    a.http.extend(b.http);
                    a.http.sort();
                    a.http.dedup();
                    Some(a)
                }
                _ => None,
            };
            o.insert(merged);
        }
    }
}

fn add_entries(
    entries: &mut BTreeMap<(EntryKey, bool), Option<L7Rules>>,
    item: &PeerRule,
    deny: bool,
    universe: &Universe<'_>,
) {
    let ids: BTreeSet<u32> = item.peers.iter().flat_map(|p| universe.select(p)).collect();
    for id in ids {
        if item.ports.is_empty() {
            insert_entry(
                entries,
                EntryKey {
                    id,
                    ..EntryKey::default()
                },
                deny,
                None,
            );
            continue;
        }
        for port in &item.ports {
            let protos: &[u8] = match (port.protocol.number(), port.port) {
                // ANY with a port means the port-carrying protocols, as Cilium expands it.
                (0, p) if p != 0 => &[IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP],
                (0, _) => &[0],
                (IPPROTO_TCP, _) => &[IPPROTO_TCP],
                (IPPROTO_UDP, _) => &[IPPROTO_UDP],
                _ => &[IPPROTO_SCTP],
            };
            for proto in protos {
                let key = EntryKey {
                    id,
                    proto: *proto,
                    port: port.port,
                    end: if port.port == 0 { 0 } else { port.end_port },
                };
                insert_entry(
                    entries,
                    key,
                    deny,
                    if deny { None } else { port.l7.clone() },
                );
            }
        }
    }
}

/// Make deny precedence hold under a most-specific-first lookup, as Cilium's map state does: an
/// allow entry a deny entry covers entirely is dropped, and where an allow and a deny entry only
/// overlap, the overlap becomes a deny entry (as specific as both, so it is found first).
fn push_down_denies(entries: BTreeMap<(EntryKey, bool), Option<L7Rules>>) -> Vec<PolicyEntry> {
    let denies: Vec<EntryKey> = entries
        .keys()
        .filter(|(_, deny)| *deny)
        .map(|(k, _)| *k)
        .collect();
    let mut deny_keys: BTreeSet<EntryKey> = denies.iter().copied().collect();
    let mut allows: BTreeMap<EntryKey, Option<L7Rules>> = BTreeMap::new();
    for ((key, deny), l7) in entries {
        if !deny {
            allows.insert(key, l7);
        }
    }
    let mut covered = BTreeSet::new();
    for a in allows.keys() {
        for d in &denies {
            match a.meet(d) {
                Some(m) if m == *a => {
                    covered.insert(*a);
                }
                // The deny entry is inside the allow entry, hence more specific: found first.
                Some(m) if m == *d => {}
                Some(m) => {
                    deny_keys.insert(m);
                }
                None => {}
            }
        }
    }
    let mut out: Vec<PolicyEntry> = allows
        .into_iter()
        .filter(|(k, _)| !covered.contains(k) && !deny_keys.contains(k))
        .map(|(k, l7)| entry(k, false, l7))
        .collect();
    out.extend(deny_keys.into_iter().map(|k| entry(k, true, None)));
    out.sort();
    debug_assert!(out.windows(2).all(|w| w[0].key() != w[1].key()));
    out
}

fn entry(k: EntryKey, deny: bool, l7: Option<L7Rules>) -> PolicyEntry {
    PolicyEntry {
        remote_identity: k.id,
        proto: k.proto,
        port: k.port,
        end_port: k.end,
        deny,
        l7,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::verdict::verdict_deny_first;

    fn key(id: u32, proto: u8, port: u16, end: u16) -> EntryKey {
        EntryKey {
            id,
            proto,
            port,
            end,
        }
    }

    #[test]
    fn meet_of_keys() {
        assert_eq!(
            key(0, 6, 80, 80).meet(&key(5, 0, 0, 0)),
            Some(key(5, 6, 80, 80))
        );
        assert_eq!(key(4, 0, 0, 0).meet(&key(5, 0, 0, 0)), None);
        assert_eq!(key(0, 6, 0, 0).meet(&key(0, 17, 0, 0)), None);
        assert_eq!(
            key(0, 6, 80, 90).meet(&key(0, 6, 85, 100)),
            Some(key(0, 6, 85, 90))
        );
        assert_eq!(key(0, 6, 80, 90).meet(&key(0, 6, 91, 100)), None);
    }

    /// Exhaustive check on a small universe: after push-down, the most-specific-first lookup the
    /// datapath does agrees with "deny wins" evaluated on the raw entries.
    #[test]
    fn push_down_makes_lookup_agree_with_deny_first() {
        let keys = [
            key(0, 0, 0, 0),
            key(5, 0, 0, 0),
            key(0, 6, 0, 0),
            key(5, 6, 0, 0),
            key(0, 6, 80, 80),
            key(5, 6, 80, 80),
            key(0, 6, 79, 82),
            key(7, 6, 81, 90),
            key(0, 17, 80, 80),
        ];
        // Every combination of up to 3 raw entries, each allow or deny.
        let n = keys.len();
        let mut cases = 0;
        for a in 0..n * 2 {
            for b in a..n * 2 {
                for c in b..n * 2 {
                    let mut raw = BTreeMap::new();
                    for i in [a, b, c] {
                        insert_entry(&mut raw, keys[i % n], i >= n, None);
                    }
                    let raw_entries: Vec<PolicyEntry> = raw
                        .iter()
                        .map(|((k, d), l7)| entry(*k, *d, l7.clone()))
                        .collect();
                    let compiled = push_down_denies(raw);
                    for id in [5, 7, 9] {
                        for proto in [6, 17, 1] {
                            for port in [0, 78, 79, 80, 81, 82, 83, 90] {
                                let got = verdict::verdict(&compiled, id, proto, port);
                                let want = verdict_deny_first(&raw_entries, id, proto, port);
                                // Deny match types may differ (an overlap entry is more specific
                                // than the raw deny); decisions and allow match types may not.
                                let same = match (got, want) {
                                    (Verdict::Allowed { .. }, Verdict::Allowed { .. }) => {
                                        got == want
                                    }
                                    (
                                        Verdict::DeniedByRule { .. },
                                        Verdict::DeniedByRule { .. },
                                    )
                                    | (Verdict::Denied, Verdict::Denied) => true,
                                    _ => false,
                                };
                                assert!(
                                    same,
                                    "raw {raw_entries:?} compiled {compiled:?} id {id} proto {proto} port {port}: {got:?} vs {want:?}"
                                );
                                cases += 1;
                            }
                        }
                    }
                }
            }
        }
        assert!(cases > 10_000);
    }

    #[test]
    fn cidr_identities_are_stable_across_recompiles() {
        let mut prev = BTreeMap::new();
        prev.insert("10.0.0.0/8".parse().unwrap(), MIN_CIDR_IDENTITY + 5);
        prev.insert("192.0.2.0/24".parse().unwrap(), MIN_CIDR_IDENTITY);
        let p = |cidrs: &[&str]| Policy {
            key: PolicyKey {
                kind: super::super::model::PolicyKind::CiliumNetworkPolicy,
                namespace: Some("default".into()),
                name: "x".into(),
            },
            file: "x".into(),
            line: 1,
            text: String::new(),
            rules: vec![super::super::model::Rule {
                subject: Selector::default(),
                ingress: vec![PeerRule {
                    peers: cidrs
                        .iter()
                        .map(|c| Peer::Cidr {
                            cidr: c.parse().unwrap(),
                            except: vec![],
                        })
                        .collect(),
                    ports: vec![],
                }],
                ingress_deny: vec![],
                egress: vec![],
                egress_deny: vec![],
                default_deny_ingress: true,
                default_deny_egress: true,
                description: None,
                labels: vec![],
            }],
        };
        let pol = p(&["10.0.0.0/8", "172.16.0.0/12", "0.0.0.0/0"]);
        let ids = allocate_cidr_identities(&[&pol], Some(&prev)).unwrap();
        assert_eq!(ids.len(), 2, "/0 is world, not a CIDR identity");
        assert_eq!(ids[&"10.0.0.0/8".parse().unwrap()], MIN_CIDR_IDENTITY + 5);
        assert_eq!(ids[&"172.16.0.0/12".parse().unwrap()], MIN_CIDR_IDENTITY);
        let fresh = allocate_cidr_identities(&[&pol], None).unwrap();
        assert_eq!(
            fresh.values().copied().collect::<Vec<_>>(),
            [MIN_CIDR_IDENTITY, MIN_CIDR_IDENTITY + 1]
        );
        assert_eq!(MIN_CIDR_IDENTITY, 16_777_217);
    }
}
