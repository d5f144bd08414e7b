//! A fixed set of Star Wars demo responses covering every kind of line the printers produce:
//! a policy drop, trace to/from endpoint (request and reply), ICMP to the world, UDP to a
//! service, HTTP request/response, a policy verdict, IPv6, lost events and a node status event.

#![allow(dead_code)]

use periscope_proto::Timestamp;
use periscope_proto::flow::{
    self, CiliumEventType, DropReason, Endpoint, Flow, FlowType, Http, IcmPv4, Ip, IpVersion,
    Layer4, Layer7, LostEvent, LostEventSource, Service, Tcp, TcpFlags, TrafficDirection, Udp,
    Verdict, layer4, layer7,
};
use periscope_proto::observer::GetFlowsResponse;
use periscope_proto::observer::get_flows_response::ResponseTypes;
use periscope_proto::pbjson_types::BoolValue;
use periscope_proto::relay::{NodeState, NodeStatusEvent};

/// 2023-10-26T15:15:46.416Z, the time in the example line.
pub const BASE_SECONDS: i64 = 1_698_333_346;

pub fn ts(offset_ms: i64) -> Timestamp {
    let total_ms = 416 + offset_ms;
    Timestamp {
        seconds: BASE_SECONDS + total_ms.div_euclid(1000),
        nanos: (total_ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

fn pod(ns: &str, name: &str, identity: u32, app: &str) -> Option<Endpoint> {
    Some(Endpoint {
        id: 100 + identity % 1000,
        identity,
        namespace: ns.into(),
        labels: vec![
            format!("k8s:app.kubernetes.io/name={app}"),
            format!("k8s:io.kubernetes.pod.namespace={ns}"),
        ],
        pod_name: name.into(),
        ..Default::default()
    })
}

fn world() -> Option<Endpoint> {
    Some(Endpoint {
        identity: 2,
        labels: vec!["reserved:world".into()],
        ..Default::default()
    })
}

fn ipv4(src: &str, dst: &str) -> Option<Ip> {
    Some(Ip {
        source: src.into(),
        destination: dst.into(),
        ip_version: IpVersion::IPv4 as i32,
        ..Default::default()
    })
}

fn tcp(sport: u32, dport: u32, flags: TcpFlags) -> Option<Layer4> {
    Some(Layer4 {
        protocol: Some(layer4::Protocol::Tcp(Tcp {
            source_port: sport,
            destination_port: dport,
            flags: Some(flags),
        })),
    })
}

fn syn() -> TcpFlags {
    TcpFlags {
        syn: true,
        ..Default::default()
    }
}

fn event(t: i32, sub: i32) -> Option<CiliumEventType> {
    Some(CiliumEventType {
        r#type: t,
        sub_type: sub,
    })
}

fn reply(v: bool) -> Option<BoolValue> {
    Some(BoolValue { value: v })
}

const XWING: &str = "10.244.0.5";
const TIEFIGHTER: &str = "10.244.0.7";
const DEATHSTAR: &str = "10.244.0.9";
const DEATHSTAR_POD: &str = "deathstar-689f66b57d-kccrz";

pub fn flows() -> Vec<Flow> {
    vec![
        // 0: the example drop.
        Flow {
            time: Some(ts(0)),
            uuid: "0123abcd-ef01-4abc-8000-000000000001".into(),
            verdict: Verdict::Dropped as i32,
            drop_reason: 133,
            drop_reason_desc: DropReason::PolicyDenied as i32,
            ip: ipv4(XWING, DEATHSTAR),
            l4: tcp(49446, 80, syn()),
            source: pod("default", "xwing", 13058, "xwing"),
            destination: pod("default", DEATHSTAR_POD, 17839, "deathstar"),
            r#type: FlowType::L3L4 as i32,
            node_name: "kind-worker".into(),
            event_type: event(1, 133),
            traffic_direction: TrafficDirection::Ingress as i32,
            summary: "TCP Flags: SYN".into(),
            ..Default::default()
        },
        // 1: forwarded to the endpoint (summary left for the printer to compute).
        Flow {
            time: Some(ts(105)),
            verdict: Verdict::Forwarded as i32,
            ip: ipv4(TIEFIGHTER, DEATHSTAR),
            l4: tcp(45910, 80, syn()),
            source: pod("default", "tiefighter", 56650, "tiefighter"),
            destination: pod("default", DEATHSTAR_POD, 17839, "deathstar"),
            r#type: FlowType::L3L4 as i32,
            node_name: "kind-worker".into(),
            event_type: event(4, 0),
            traffic_direction: TrafficDirection::Ingress as i32,
            is_reply: reply(false),
            ..Default::default()
        },
        // 2: the reply, seen leaving deathstar: printed swapped with `<-`.
        Flow {
            time: Some(ts(106)),
            verdict: Verdict::Forwarded as i32,
            ip: ipv4(DEATHSTAR, TIEFIGHTER),
            l4: tcp(
                80,
                45910,
                TcpFlags {
                    syn: true,
                    ack: true,
                    ..Default::default()
                },
            ),
            source: pod("default", DEATHSTAR_POD, 17839, "deathstar"),
            destination: pod("default", "tiefighter", 56650, "tiefighter"),
            r#type: FlowType::L3L4 as i32,
            node_name: "kind-worker".into(),
            event_type: event(4, 5),
            traffic_direction: TrafficDirection::Ingress as i32,
            is_reply: reply(true),
            ..Default::default()
        },
        // 3: ICMP to the outside world.
        Flow {
            time: Some(ts(2_000)),
            verdict: Verdict::Forwarded as i32,
            ip: ipv4(XWING, "1.1.1.1"),
            l4: Some(Layer4 {
                protocol: Some(layer4::Protocol::IcmPv4(IcmPv4 { r#type: 8, code: 0 })),
            }),
            source: pod("default", "xwing", 13058, "xwing"),
            destination: world(),
            r#type: FlowType::L3L4 as i32,
            node_name: "kind-worker".into(),
            event_type: event(4, 3),
            traffic_direction: TrafficDirection::Egress as i32,
            is_reply: reply(false),
            ..Default::default()
        },
        // 4: UDP to a service.
        Flow {
            time: Some(ts(3_000)),
            verdict: Verdict::Forwarded as i32,
            ip: ipv4(TIEFIGHTER, "10.96.0.10"),
            l4: Some(Layer4 {
                protocol: Some(layer4::Protocol::Udp(Udp {
                    source_port: 53211,
                    destination_port: 53,
                })),
            }),
            source: pod("default", "tiefighter", 56650, "tiefighter"),
            destination: Some(Endpoint {
                identity: 27331,
                ..Default::default()
            }),
            destination_service: Some(Service {
                name: "kube-dns".into(),
                namespace: "kube-system".into(),
            }),
            r#type: FlowType::L3L4 as i32,
            node_name: "kind-worker".into(),
            event_type: event(4, 11),
            traffic_direction: TrafficDirection::Egress as i32,
            is_reply: reply(false),
            ..Default::default()
        },
        // 5: HTTP request (L7).
        Flow {
            time: Some(ts(4_000)),
            verdict: Verdict::Forwarded as i32,
            ip: ipv4(TIEFIGHTER, DEATHSTAR),
            l4: tcp(45912, 80, TcpFlags::default()),
            source: pod("default", "tiefighter", 56650, "tiefighter"),
            destination: pod("default", DEATHSTAR_POD, 17839, "deathstar"),
            r#type: FlowType::L7 as i32,
            node_name: "kind-worker".into(),
            event_type: event(129, 0),
            traffic_direction: TrafficDirection::Ingress as i32,
            is_reply: reply(false),
            l7: Some(Layer7 {
                r#type: flow::L7FlowType::Request as i32,
                latency_ns: 0,
                record: Some(layer7::Record::Http(Http {
                    code: 0,
                    method: "POST".into(),
                    url: "http://deathstar.default.svc.cluster.local/v1/request-landing".into(),
                    protocol: "HTTP/1.1".into(),
                    headers: vec![],
                })),
            }),
            ..Default::default()
        },
        // 6: HTTP response (L7, a reply).
        Flow {
            time: Some(ts(4_012)),
            verdict: Verdict::Forwarded as i32,
            ip: ipv4(DEATHSTAR, TIEFIGHTER),
            l4: tcp(80, 45912, TcpFlags::default()),
            source: pod("default", DEATHSTAR_POD, 17839, "deathstar"),
            destination: pod("default", "tiefighter", 56650, "tiefighter"),
            r#type: FlowType::L7 as i32,
            node_name: "kind-worker".into(),
            event_type: event(129, 0),
            traffic_direction: TrafficDirection::Ingress as i32,
            is_reply: reply(true),
            l7: Some(Layer7 {
                r#type: flow::L7FlowType::Response as i32,
                latency_ns: 12_400_000,
                record: Some(layer7::Record::Http(Http {
                    code: 200,
                    method: "POST".into(),
                    url: "http://deathstar.default.svc.cluster.local/v1/request-landing".into(),
                    protocol: "HTTP/1.1".into(),
                    headers: vec![],
                })),
            }),
            ..Default::default()
        },
        // 7: a policy verdict.
        Flow {
            time: Some(ts(5_000)),
            verdict: Verdict::Dropped as i32,
            ip: ipv4(XWING, DEATHSTAR),
            l4: tcp(49447, 80, syn()),
            source: pod("default", "xwing", 13058, "xwing"),
            destination: pod("default", DEATHSTAR_POD, 17839, "deathstar"),
            r#type: FlowType::L3L4 as i32,
            node_name: "kind-worker".into(),
            event_type: event(5, 0),
            policy_match_type: 2,
            traffic_direction: TrafficDirection::Ingress as i32,
            summary: "TCP Flags: SYN".into(),
            ..Default::default()
        },
        // 8: IPv6 to the world (the host part is bracketed).
        Flow {
            time: Some(ts(6_000)),
            verdict: Verdict::Forwarded as i32,
            ip: Some(Ip {
                source: "fd00::5".into(),
                destination: "2001:db8::1".into(),
                ip_version: IpVersion::IPv6 as i32,
                ..Default::default()
            }),
            l4: tcp(
                40000,
                443,
                TcpFlags {
                    ack: true,
                    psh: true,
                    ..Default::default()
                },
            ),
            source: pod("default", "xwing", 13058, "xwing"),
            destination: world(),
            r#type: FlowType::L3L4 as i32,
            node_name: "kind-worker".into(),
            event_type: event(4, 11),
            traffic_direction: TrafficDirection::Egress as i32,
            is_reply: reply(false),
            ..Default::default()
        },
    ]
}

fn flow_response(f: Flow) -> GetFlowsResponse {
    GetFlowsResponse {
        node_name: f.node_name.clone(),
        time: f.time,
        response_types: Some(ResponseTypes::Flow(f)),
    }
}

/// The flows plus a lost-events notice and two node status events, in stream order.
pub fn responses() -> Vec<GetFlowsResponse> {
    let mut out: Vec<GetFlowsResponse> = flows().into_iter().map(flow_response).collect();
    out.insert(
        4,
        GetFlowsResponse {
            node_name: "kind-worker".into(),
            time: Some(ts(2_500)),
            response_types: Some(ResponseTypes::LostEvents(LostEvent {
                source: LostEventSource::HubbleRingBuffer as i32,
                num_events_lost: 5,
                cpu: None,
                first: Some(ts(2_400)),
                last: Some(ts(2_500)),
            })),
        },
    );
    // Informational: only printed with --debug.
    out.insert(
        0,
        GetFlowsResponse {
            node_name: "relay".into(),
            time: Some(ts(-1_000)),
            response_types: Some(ResponseTypes::NodeStatus(NodeStatusEvent {
                state_change: NodeState::NodeConnected as i32,
                node_names: vec!["kind-worker".into(), "kind-worker2".into()],
                message: String::new(),
            })),
        },
    );
    out.push(GetFlowsResponse {
        node_name: "relay".into(),
        time: Some(ts(7_000)),
        response_types: Some(ResponseTypes::NodeStatus(NodeStatusEvent {
            state_change: NodeState::NodeUnavailable as i32,
            node_names: vec!["kind-worker2".into()],
            message: "connection refused".into(),
        })),
    });
    out
}
