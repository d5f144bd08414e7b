//! Everything about a cluster instance that can be decided without the kernel: netns and link
//! names, pod addresses, MACs, endpoint ids, identities and the per-pod hosts file. Pure and
//! deterministic: the same spec and prefix always give the same plan.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;

use super::spec::ClusterSpec;
use super::{Cluster, ClusterError, Mac, PodInfo, ServiceInfo};
use crate::identity::{Identities, security_labels, stable_hash};

/// Instance prefix used when none is given.
pub const DEFAULT_PREFIX: &str = "periscope";

/// Where instance state (cluster.json, pid files, server logs) lives: `<root>/<prefix>/`.
pub const DEFAULT_STATE_ROOT: &str = "/run/periscope-cluster";

/// Every pod's default gateway: link-local, answered by the host-side veth, as in Cilium.
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);

/// Tag put in the host veth's alias so teardown finds links by instance even without state.
pub const ALIAS_TAG: &str = "periscope";

/// Endpoint ids are small like Cilium's; 0 is never used.
pub const MAX_ENDPOINT_ID: u16 = 4095;

/// Prefixes are short and have no '-', so `<prefix>-` never matches another instance's names.
pub fn validate_prefix(prefix: &str) -> Result<(), ClusterError> {
    let ok = !prefix.is_empty()
        && prefix.len() <= 12
        && prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(ClusterError::InvalidPrefix(prefix.to_string()))
    }
}

pub fn netns_name(prefix: &str, namespace: &str, pod: &str) -> String {
    format!("{prefix}-{namespace}-{pod}")
}

/// `lxc` + 12 hex digits (15 chars, the kernel's limit), from the prefix and pod.
pub fn host_ifname(prefix: &str, namespace: &str, pod: &str) -> String {
    let h = stable_hash(&[
        b"ifname",
        prefix.as_bytes(),
        namespace.as_bytes(),
        pod.as_bytes(),
    ]);
    format!("lxc{:012x}", h & 0xffff_ffff_ffff)
}

/// Alias set on the host veth: `periscope:<prefix>:<namespace>/<pod>`.
pub fn link_alias(prefix: &str, namespace: &str, pod: &str) -> String {
    format!("{ALIAS_TAG}:{prefix}:{namespace}/{pod}")
}

pub fn state_dir(state_root: &Path, prefix: &str) -> PathBuf {
    state_root.join(prefix)
}

/// A locally administered unicast MAC derived from the pod and which end of the pair it is.
fn mac(role: &str, prefix: &str, namespace: &str, pod: &str) -> Mac {
    let h = stable_hash(&[
        role.as_bytes(),
        prefix.as_bytes(),
        namespace.as_bytes(),
        pod.as_bytes(),
    ])
    .to_be_bytes();
    Mac([(h[0] & 0xfc) | 0x02, h[1], h[2], h[3], h[4], h[5]])
}

/// Whether `ip` can be a pod address in `cidr`: inside it and neither network nor broadcast.
pub fn usable(cidr: &Ipv4Net, ip: Ipv4Addr) -> bool {
    cidr.contains(&ip) && ip != cidr.network() && ip != cidr.broadcast()
}

/// Pod addresses: fixed ones first, then the lowest free addresses to the other pods in
/// (namespace, name) order, so reordering the spec does not renumber pods.
pub fn allocate_ips(
    spec: &ClusterSpec,
    cidr: Ipv4Net,
) -> Result<BTreeMap<(String, String), Ipv4Addr>, ClusterError> {
    let mut out = BTreeMap::new();
    let mut used = BTreeSet::new();
    for p in &spec.pods {
        if let Some(ip) = p.ip {
            if !usable(&cidr, ip) {
                return Err(ClusterError::Plan(format!(
                    "fixed address {ip} of {}/{} is not usable in pod CIDR {cidr}",
                    p.namespace, p.name
                )));
            }
            used.insert(ip);
            out.insert((p.namespace.clone(), p.name.clone()), ip);
        }
    }
    let mut free = cidr
        .hosts()
        .filter(|ip| usable(&cidr, *ip) && !used.contains(ip));
    let mut rest: Vec<(String, String)> = spec
        .pods
        .iter()
        .filter(|p| p.ip.is_none())
        .map(|p| (p.namespace.clone(), p.name.clone()))
        .collect();
    rest.sort();
    for key in rest {
        let ip = free.next().ok_or_else(|| {
            ClusterError::Plan(format!(
                "pod CIDR {cidr} has no address left for {}/{}",
                key.0, key.1
            ))
        })?;
        out.insert(key, ip);
    }
    Ok(out)
}

/// Endpoint ids: hashed into 1..=4095, collisions probed upwards in (namespace, name) order.
pub fn allocate_endpoint_ids(
    spec: &ClusterSpec,
) -> Result<BTreeMap<(String, String), u16>, ClusterError> {
    let mut keys: Vec<(String, String)> = spec
        .pods
        .iter()
        .map(|p| (p.namespace.clone(), p.name.clone()))
        .collect();
    keys.sort();
    if keys.len() > usize::from(MAX_ENDPOINT_ID) {
        return Err(ClusterError::Plan(format!(
            "{} pods exceed the {MAX_ENDPOINT_ID} endpoint ids of a node",
            keys.len()
        )));
    }
    let mut used = BTreeSet::new();
    let mut out = BTreeMap::new();
    for key in keys {
        let h = stable_hash(&[b"endpoint", key.0.as_bytes(), key.1.as_bytes()]);
        let mut id = (h % u64::from(MAX_ENDPOINT_ID)) as u16 + 1;
        while used.contains(&id) {
            id = id % MAX_ENDPOINT_ID + 1;
        }
        used.insert(id);
        out.insert(key, id);
    }
    Ok(out)
}

/// The full description of an instance before anything is created (ifindexes 0, no pids).
pub fn plan(
    spec: &ClusterSpec,
    prefix: &str,
    pod_cidr: Option<Ipv4Net>,
    state_root: &Path,
) -> Result<Cluster, ClusterError> {
    validate_prefix(prefix)?;
    let cidr = pod_cidr.unwrap_or(spec.pod_cidr).trunc();
    if cidr.prefix_len() > 30 {
        return Err(ClusterError::Plan(format!(
            "pod CIDR {cidr} is too small: need at least a /30"
        )));
    }
    let ips = allocate_ips(spec, cidr)?;
    let endpoint_ids = allocate_endpoint_ids(spec)?;
    let label_sets: Vec<Vec<String>> = spec
        .pods
        .iter()
        .map(|p| security_labels(p, &spec.cluster_name))
        .collect();
    let identities = Identities::allocate(&label_sets)?;

    let mut pods = Vec::with_capacity(spec.pods.len());
    let mut ifnames = BTreeSet::new();
    for (p, labels) in spec.pods.iter().zip(label_sets) {
        let key = (p.namespace.clone(), p.name.clone());
        let (Some(ip), Some(endpoint_id), Some(identity)) = (
            ips.get(&key).copied(),
            endpoint_ids.get(&key).copied(),
            identities.get(&labels),
        ) else {
            return Err(ClusterError::Plan(format!(
                "{}/{} was not allocated",
                p.namespace, p.name
            )));
        };
        let host_ifname = host_ifname(prefix, &p.namespace, &p.name);
        if !ifnames.insert(host_ifname.clone()) {
            return Err(ClusterError::Plan(format!(
                "interface name {host_ifname} collides; rename pod {}/{}",
                p.namespace, p.name
            )));
        }
        pods.push(PodInfo {
            name: p.name.clone(),
            namespace: p.namespace.clone(),
            node: p.node.clone(),
            labels: p.labels.clone(),
            identity_labels: labels,
            identity,
            endpoint_id,
            workload: p.workload.clone(),
            service_account: p.service_account.clone(),
            netns: netns_name(prefix, &p.namespace, &p.name),
            host_ifname,
            host_ifindex: 0,
            host_mac: mac("host", prefix, &p.namespace, &p.name),
            pod_ifindex: 0,
            ip,
            mac: mac("pod", prefix, &p.namespace, &p.name),
            serve: p.serve,
            server_pid: None,
        });
    }

    let services = spec
        .services
        .iter()
        .map(|s| {
            let backends: Vec<&PodInfo> = spec
                .backends(s)
                .filter_map(|b| {
                    pods.iter()
                        .find(|p| p.namespace == b.namespace && p.name == b.name)
                })
                .collect();
            ServiceInfo {
                name: s.name.clone(),
                namespace: s.namespace.clone(),
                cluster_ip: s.cluster_ip,
                ports: s.ports.clone(),
                backend_pods: backends.iter().map(|p| p.name.clone()).collect(),
                backends: backends.iter().map(|p| p.ip).collect(),
            }
        })
        .collect();

    Ok(Cluster {
        spec: spec.clone(),
        prefix: prefix.to_string(),
        pod_cidr: cidr,
        gateway: GATEWAY,
        state_dir: state_dir(state_root, prefix),
        pods,
        services,
        runtime: Default::default(),
    })
}

/// `/etc/hosts` for one pod (bind-mounted by `ip netns exec` from `/etc/netns/<netns>/hosts`).
pub fn hosts_file(cluster: &Cluster, pod: &PodInfo) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Written by periscope-cluster for {} (instance {}); removed by teardown.",
        pod.qualified_name(),
        cluster.prefix
    );
    out.push_str("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    // Until the datapath load-balances ClusterIPs (a later issue), a service name resolves to its
    // first backend pod's IP, so clients reach a real server without any NAT.
    for svc in &cluster.services {
        let Some(ip) = svc.backends.first() else {
            let _ = writeln!(
                out,
                "# service {}/{} has no backends",
                svc.namespace, svc.name
            );
            continue;
        };
        let (n, ns) = (&svc.name, &svc.namespace);
        let mut names = vec![
            format!("{n}.{ns}.svc.cluster.local"),
            format!("{n}.{ns}.svc"),
            format!("{n}.{ns}"),
        ];
        if *ns == pod.namespace {
            names.push(n.clone());
        }
        let _ = writeln!(out, "{ip}\t{}", names.join(" "));
    }
    for p in &cluster.pods {
        let mut names = vec![format!("{}.{}", p.name, p.namespace)];
        if p.namespace == pod.namespace {
            names.insert(0, p.name.clone());
        }
        let _ = writeln!(out, "{}\t{}", p.ip, names.join(" "));
    }
    out
}

/// `/etc/resolv.conf` for pods: no reachable DNS server, so a name missing from the hosts file
/// fails fast inside the pod instead of sending queries off the machine.
pub fn resolv_conf(pod: &PodInfo) -> String {
    format!(
        "# Written by periscope-cluster: names resolve from /etc/hosts only.\n\
         search {ns}.svc.cluster.local svc.cluster.local cluster.local\n\
         nameserver 127.0.0.1\n\
         options timeout:1 attempts:1\n",
        ns = pod.namespace
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn starwars() -> Cluster {
        plan(
            &ClusterSpec::starwars(),
            "periscope",
            None,
            Path::new(DEFAULT_STATE_ROOT),
        )
        .unwrap()
    }

    #[test]
    fn prefixes() {
        assert!(validate_prefix("periscope").is_ok());
        assert!(validate_prefix("e2e123").is_ok());
        for bad in ["", "a-b", "UPPER", "waytoolongprefix", "a/b"] {
            assert!(validate_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_fit_the_kernel() {
        let c = starwars();
        for p in &c.pods {
            assert!(p.host_ifname.starts_with("lxc"));
            assert_eq!(p.host_ifname.len(), 15);
            assert!(p.netns.starts_with("periscope-default-"));
            // Locally administered unicast.
            assert_eq!(p.mac.0[0] & 0x03, 0x02);
            assert_eq!(p.host_mac.0[0] & 0x03, 0x02);
            assert_ne!(p.mac, p.host_mac);
        }
        // The prefix changes every name, so parallel instances do not collide.
        let other = plan(&ClusterSpec::starwars(), "other", None, Path::new("/x")).unwrap();
        for (a, b) in c.pods.iter().zip(&other.pods) {
            assert_ne!(a.host_ifname, b.host_ifname);
            assert_ne!(a.netns, b.netns);
            assert_ne!(a.mac, b.mac);
            assert_eq!(a.identity, b.identity, "identities depend on labels only");
        }
        assert_eq!(other.state_dir, Path::new("/x/other"));
    }

    #[test]
    fn ips_are_allocated_in_sorted_order() {
        let c = starwars();
        let ips: Vec<String> = c.pods.iter().map(|p| p.ip.to_string()).collect();
        assert_eq!(
            ips,
            ["10.244.0.1", "10.244.0.2", "10.244.0.3", "10.244.0.4"]
        );
        // Reversing the spec order does not renumber anyone.
        let mut spec = ClusterSpec::starwars();
        spec.pods.reverse();
        let r = plan(&spec, "periscope", None, Path::new("/x")).unwrap();
        for p in &c.pods {
            assert_eq!(r.pod(&p.name).unwrap().ip, p.ip);
            assert_eq!(r.pod(&p.name).unwrap().endpoint_id, p.endpoint_id);
        }
    }

    #[test]
    fn fixed_ips_are_kept_and_skipped() {
        let mut spec = ClusterSpec::starwars();
        spec.pods[3].ip = Some(Ipv4Addr::new(10, 244, 0, 1)); // xwing takes .1
        let c = plan(&spec, "p", None, Path::new("/x")).unwrap();
        assert_eq!(c.pod("xwing").unwrap().ip, Ipv4Addr::new(10, 244, 0, 1));
        assert_eq!(
            c.pod("deathstar-689f66b57d-kccrz").unwrap().ip,
            Ipv4Addr::new(10, 244, 0, 2)
        );
        assert_eq!(
            c.pod("tiefighter").unwrap().ip,
            Ipv4Addr::new(10, 244, 0, 4)
        );
    }

    #[test]
    fn cidr_override_and_exhaustion() {
        let spec = ClusterSpec::starwars();
        let c = plan(
            &spec,
            "p",
            Some("10.9.8.0/29".parse().unwrap()),
            Path::new("/x"),
        )
        .unwrap();
        assert_eq!(c.pod_cidr.to_string(), "10.9.8.0/29");
        assert_eq!(c.pod("xwing").unwrap().ip, Ipv4Addr::new(10, 9, 8, 4));
        // A /30 has two usable addresses for four pods.
        let e = plan(
            &spec,
            "p",
            Some("10.9.8.0/30".parse().unwrap()),
            Path::new("/x"),
        )
        .unwrap_err();
        assert!(matches!(e, ClusterError::Plan(_)), "{e}");
        // A fixed IP outside the overriding CIDR is an error, not silently moved.
        let mut fixed = spec.clone();
        fixed.pods[0].ip = Some(Ipv4Addr::new(10, 244, 0, 50));
        let e = plan(
            &fixed,
            "p",
            Some("10.9.8.0/24".parse().unwrap()),
            Path::new("/x"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("10.244.0.50"), "{e}");
        // Host bits in the override are ignored.
        let c = plan(
            &spec,
            "p",
            Some("10.9.8.7/24".parse().unwrap()),
            Path::new("/x"),
        )
        .unwrap();
        assert_eq!(c.pod_cidr.to_string(), "10.9.8.0/24");
    }

    #[test]
    fn endpoint_ids_unique_and_small() {
        let c = starwars();
        let ids: BTreeSet<u16> = c.pods.iter().map(|p| p.endpoint_id).collect();
        assert_eq!(ids.len(), 4);
        assert!(ids.iter().all(|id| (1..=MAX_ENDPOINT_ID).contains(id)));
        let ds: Vec<u32> = c.pods_named("deathstar").map(|p| p.identity).collect();
        assert_eq!(ds.len(), 2);
        assert_eq!(ds[0], ds[1]);
    }

    #[test]
    fn service_backends_and_hosts_file() {
        let c = starwars();
        let svc = c.service("default", "deathstar").unwrap();
        assert_eq!(
            svc.backend_pods,
            ["deathstar-689f66b57d-kccrz", "deathstar-689f66b57d-t99c9"]
        );
        assert_eq!(
            svc.backends,
            [Ipv4Addr::new(10, 244, 0, 1), Ipv4Addr::new(10, 244, 0, 2)]
        );
        let hosts = hosts_file(&c, c.pod("tiefighter").unwrap());
        assert!(
            hosts.contains("10.244.0.1\tdeathstar.default.svc.cluster.local deathstar.default.svc deathstar.default deathstar\n"),
            "{hosts}"
        );
        assert!(
            hosts.contains("10.244.0.4\txwing xwing.default\n"),
            "{hosts}"
        );
        assert!(resolv_conf(c.pod("xwing").unwrap()).contains("nameserver 127.0.0.1"));
    }

    #[test]
    fn plan_is_deterministic() {
        let a = serde_json::to_string(&starwars()).unwrap();
        let b = serde_json::to_string(&starwars()).unwrap();
        assert_eq!(a, b);
    }
}
