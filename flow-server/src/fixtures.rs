//! Replay fixtures: synthetic Star Wars traffic as raw notifications, for tests, benchmarks and
//! replay files. These are never a stand-in for the datapath in an end-to-end test.

use std::net::{IpAddr, Ipv4Addr};

use periscope_probes::abi::{drop_reason, match_type, obs_point, trace_reason};

use crate::decoder::build;
use crate::meta::{ClusterMetadata, EndpointInfo, ServiceInfo, Workload};
use crate::packet::build as pkt;
use crate::record::proto;

pub const XWING: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 5);
pub const TIEFIGHTER: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 6);
pub const DEATHSTAR_1: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 9);
pub const DEATHSTAR_2: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 10);
pub const DEATHSTAR_SVC: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
pub const WORLD: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
pub const XWING_ID: u32 = 13058;
pub const TIEFIGHTER_ID: u32 = 56650;
pub const DEATHSTAR_ID: u32 = 17839;

fn pod(name: &str, ep: u32, id: u32, labels: &[&str], workload: &str, node: &str) -> EndpointInfo {
    let mut labels: Vec<String> = labels.iter().map(|l| format!("k8s:{l}")).collect();
    labels.push("k8s:io.kubernetes.pod.namespace=default".into());
    labels.sort();
    EndpointInfo {
        endpoint_id: ep,
        identity: id,
        namespace: "default".into(),
        pod_name: name.into(),
        labels,
        workloads: vec![Workload {
            name: workload.into(),
            kind: "Deployment".into(),
        }],
        cluster_name: "default".into(),
        node_name: node.into(),
    }
}

/// Metadata for the Star Wars demo pods on `node`.
pub fn starwars_metadata(node: &str) -> ClusterMetadata {
    ClusterMetadata {
        endpoints: vec![
            (
                vec![IpAddr::V4(XWING)],
                pod(
                    "xwing",
                    101,
                    XWING_ID,
                    &["org=alliance", "class=xwing"],
                    "xwing",
                    node,
                ),
            ),
            (
                vec![IpAddr::V4(TIEFIGHTER)],
                pod(
                    "tiefighter",
                    102,
                    TIEFIGHTER_ID,
                    &["org=empire", "class=tiefighter"],
                    "tiefighter",
                    node,
                ),
            ),
            (
                vec![IpAddr::V4(DEATHSTAR_1)],
                pod(
                    "deathstar-689f66b57d-kccrz",
                    103,
                    DEATHSTAR_ID,
                    &["org=empire", "class=deathstar"],
                    "deathstar",
                    node,
                ),
            ),
            (
                vec![IpAddr::V4(DEATHSTAR_2)],
                pod(
                    "deathstar-689f66b57d-t99c9",
                    104,
                    DEATHSTAR_ID,
                    &["org=empire", "class=deathstar"],
                    "deathstar",
                    node,
                ),
            ),
        ],
        services: vec![(
            IpAddr::V4(DEATHSTAR_SVC),
            80,
            ServiceInfo {
                name: "deathstar".into(),
                namespace: "default".into(),
            },
        )],
        node_ips: vec![],
        identities: vec![],
    }
}

/// A TCP SYN from xwing to deathstar, traced at deathstar's endpoint: the benchmark's flow.
pub fn syn_trace(sport: u16) -> Vec<u8> {
    let p = pkt::ip_packet(
        XWING.into(),
        DEATHSTAR_1.into(),
        proto::TCP,
        &pkt::tcp(sport, 80, 0x02),
    );
    build::trace(
        obs_point::TO_LXC,
        103,
        XWING_ID,
        DEATHSTAR_ID,
        trace_reason::POLICY,
        &p,
    )
}

/// One "round" of demo traffic (10 notifications): tiefighter's allowed HTTP connection with
/// policy verdict and reply, xwing's denied SYN (verdict + drop), a ping to the world.
pub fn starwars_round(sport: u16) -> Vec<Vec<u8>> {
    let tf: IpAddr = TIEFIGHTER.into();
    let ds: IpAddr = DEATHSTAR_1.into();
    let xw: IpAddr = XWING.into();
    let world: IpAddr = WORLD.into();
    let tcp = |s, d, sp, dp, f| pkt::ip_packet(s, d, proto::TCP, &pkt::tcp(sp, dp, f));
    let syn = tcp(tf, ds, sport, 80, 0x02);
    let synack = tcp(ds, tf, 80, sport, 0x12);
    let ack_psh = tcp(tf, ds, sport, 80, 0x18);
    let xsyn = tcp(xw, ds, sport.wrapping_add(1), 80, 0x02);
    let ping = pkt::ip_packet(xw, world, proto::ICMP, &pkt::icmp(8, 0));
    let dns = pkt::ip_packet(tf, world, proto::UDP, &pkt::udp(sport, 53));
    vec![
        build::trace(
            obs_point::FROM_LXC,
            102,
            TIEFIGHTER_ID,
            0,
            trace_reason::POLICY,
            &syn,
        ),
        build::policy_verdict(103, TIEFIGHTER_ID, 0, true, match_type::L3_L4, &syn),
        build::trace(
            obs_point::TO_LXC,
            103,
            TIEFIGHTER_ID,
            DEATHSTAR_ID,
            trace_reason::POLICY,
            &syn,
        ),
        build::trace(
            obs_point::FROM_LXC,
            103,
            DEATHSTAR_ID,
            0,
            trace_reason::CT_REPLY,
            &synack,
        ),
        build::trace(
            obs_point::TO_LXC,
            102,
            DEATHSTAR_ID,
            TIEFIGHTER_ID,
            trace_reason::CT_REPLY,
            &synack,
        ),
        build::trace(
            obs_point::TO_LXC,
            103,
            TIEFIGHTER_ID,
            DEATHSTAR_ID,
            trace_reason::CT_ESTABLISHED,
            &ack_psh,
        ),
        build::policy_verdict(
            103,
            XWING_ID,
            -i32::from(drop_reason::POLICY_DENIED),
            true,
            match_type::NONE,
            &xsyn,
        ),
        build::drop(
            drop_reason::POLICY_DENIED,
            103,
            XWING_ID,
            DEATHSTAR_ID,
            &xsyn,
        ),
        build::trace(
            obs_point::FROM_LXC,
            101,
            XWING_ID,
            2,
            trace_reason::POLICY,
            &ping,
        ),
        build::trace(
            obs_point::FROM_LXC,
            102,
            TIEFIGHTER_ID,
            2,
            trace_reason::POLICY,
            &dns,
        ),
    ]
}
