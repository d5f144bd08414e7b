//! Wire and JSON compatibility with Hubble's API v1: field numbers and enum values are checked
//! against the numbers in Hubble's published `.proto` files, not against our own generated code.

use periscope_proto::flow::{
    self, CiliumEventType, DropReason, Endpoint, Flow, FlowFilter, FlowType, Ip, IpVersion, Layer4,
    Policy, Tcp, TcpFlags, TraceObservationPoint, TrafficDirection, Verdict, layer4,
};
use periscope_proto::observer::{self, GetFlowsRequest, GetFlowsResponse, ServerStatusResponse};
use periscope_proto::pbjson_types::{BoolValue, UInt32Value};
use periscope_proto::{Timestamp, peer, relay};
use prost::Message;

/// One top-level field of an encoded message.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Varint(u64),
    Fixed64(u64),
    Bytes(Vec<u8>),
    Fixed32(u32),
}

fn read_varint(buf: &[u8], pos: &mut usize) -> u64 {
    let mut out = 0u64;
    for shift in (0..64).step_by(7) {
        let b = buf[*pos];
        *pos += 1;
        out |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return out;
        }
    }
    panic!("varint too long");
}

/// Independent, minimal protobuf reader: (field number, value) in wire order.
fn fields(buf: &[u8]) -> Vec<(u32, Value)> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < buf.len() {
        let key = read_varint(buf, &mut pos);
        let number = u32::try_from(key >> 3).expect("field number fits u32");
        let value = match key & 7 {
            0 => Value::Varint(read_varint(buf, &mut pos)),
            1 => {
                let v = u64::from_le_bytes(buf[pos..pos + 8].try_into().expect("8 bytes"));
                pos += 8;
                Value::Fixed64(v)
            }
            2 => {
                let len = usize::try_from(read_varint(buf, &mut pos)).expect("len fits");
                let v = buf[pos..pos + len].to_vec();
                pos += len;
                Value::Bytes(v)
            }
            5 => {
                let v = u32::from_le_bytes(buf[pos..pos + 4].try_into().expect("4 bytes"));
                pos += 4;
                Value::Fixed32(v)
            }
            t => panic!("unexpected wire type {t}"),
        };
        out.push((number, value));
    }
    out
}

fn field(buf: &[u8], number: u32) -> Value {
    let found: Vec<_> = fields(buf)
        .into_iter()
        .filter(|(n, _)| *n == number)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected exactly one field #{number}, got {found:?}"
    );
    found.into_iter().next().map(|(_, v)| v).expect("one field")
}

fn bytes(v: Value) -> Vec<u8> {
    match v {
        Value::Bytes(b) => b,
        other => panic!("expected length-delimited, got {other:?}"),
    }
}

fn sample_flow() -> Flow {
    Flow {
        time: Some(Timestamp {
            seconds: 1_714_564_800,
            nanos: 123_456_000,
        }),
        uuid: "5d6a0c0e-0000-4000-8000-000000000001".into(),
        verdict: Verdict::Dropped as i32,
        drop_reason: 133,
        drop_reason_desc: DropReason::PolicyDenied as i32,
        ip: Some(Ip {
            source: "10.0.0.5".into(),
            destination: "10.0.0.7".into(),
            ip_version: IpVersion::IPv4 as i32,
            ..Default::default()
        }),
        l4: Some(Layer4 {
            protocol: Some(layer4::Protocol::Tcp(Tcp {
                source_port: 43210,
                destination_port: 80,
                flags: Some(TcpFlags {
                    syn: true,
                    ..Default::default()
                }),
            })),
        }),
        source: Some(Endpoint {
            id: 1234,
            identity: 48213,
            cluster_name: "default".into(),
            namespace: "default".into(),
            labels: vec!["k8s:org=empire".into(), "k8s:class=tiefighter".into()],
            pod_name: "tiefighter".into(),
            ..Default::default()
        }),
        destination: Some(Endpoint {
            identity: 30719,
            namespace: "default".into(),
            pod_name: "deathstar-6c94dcc57b-7xkzq".into(),
            ..Default::default()
        }),
        r#type: FlowType::L3L4 as i32,
        node_name: "kind-worker".into(),
        node_labels: vec!["kubernetes.io/hostname=kind-worker".into()],
        event_type: Some(CiliumEventType {
            r#type: 1,
            sub_type: 133,
        }),
        traffic_direction: TrafficDirection::Ingress as i32,
        policy_match_type: 0,
        trace_observation_point: TraceObservationPoint::ToEndpoint as i32,
        is_reply: Some(BoolValue { value: false }),
        socket_cookie: 1 << 40,
        summary: "TCP Flags: SYN".into(),
        ingress_denied_by: vec![Policy {
            name: "rule1".into(),
            namespace: "default".into(),
            kind: "CiliumNetworkPolicy".into(),
            revision: 7,
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[test]
fn enum_values_match_hubble() {
    assert_eq!(Verdict::Forwarded as i32, 1);
    assert_eq!(Verdict::Dropped as i32, 2);
    assert_eq!(Verdict::Audit as i32, 4);
    assert_eq!(Verdict::Translated as i32, 7);
    assert_eq!(TraceObservationPoint::ToEndpoint as i32, 101);
    assert_eq!(TraceObservationPoint::FromEndpoint as i32, 5);
    assert_eq!(TraceObservationPoint::ToStack as i32, 3);
    assert_eq!(TraceObservationPoint::ToCrypto as i32, 13);
    assert_eq!(DropReason::PolicyDenied as i32, 133);
    assert_eq!(DropReason::PolicyDeny as i32, 181);
    assert_eq!(DropReason::StaleOrUnroutableIp as i32, 151);
    assert_eq!(DropReason::DropPuntProxy as i32, 205);
    assert_eq!(TrafficDirection::Egress as i32, 2);
    assert_eq!(FlowType::Sock as i32, 3);
    assert_eq!(IpVersion::IPv6 as i32, 2);
    assert_eq!(flow::EventType::EventSample as i32, 9);
    assert_eq!(flow::EventType::RecordLost as i32, 2);
    assert_eq!(flow::LostEventSource::HubbleRingBuffer as i32, 3);
    assert_eq!(flow::AgentEventType::AgentStarted as i32, 2);
    assert_eq!(flow::DebugCapturePoint::DbgCaptureDelivery as i32, 4);
    assert_eq!(
        flow::SocketTranslationPoint::SockXlatePointPostDirectionRev as i32,
        4
    );
    assert_eq!(relay::NodeState::NodeGone as i32, 3);
    assert_eq!(peer::ChangeNotificationType::PeerUpdated as i32, 3);
    // The proto names are what JSON carries.
    assert_eq!(DropReason::PolicyDenied.as_str_name(), "POLICY_DENIED");
    assert_eq!(
        TraceObservationPoint::ToEndpoint.as_str_name(),
        "TO_ENDPOINT"
    );
    assert_eq!(FlowType::L3L4.as_str_name(), "L3_L4");
}

#[test]
fn flow_field_numbers_match_hubble() {
    let flow = sample_flow();
    let buf = flow.encode_to_vec();

    assert_eq!(field(&buf, 2), Value::Varint(2)); // verdict = DROPPED
    assert_eq!(field(&buf, 3), Value::Varint(133)); // drop_reason
    assert_eq!(field(&buf, 25), Value::Varint(133)); // drop_reason_desc
    assert_eq!(field(&buf, 22), Value::Varint(1)); // traffic_direction = INGRESS
    assert_eq!(field(&buf, 24), Value::Varint(101)); // trace_observation_point
    assert_eq!(field(&buf, 10), Value::Varint(1)); // Type = L3_L4
    assert_eq!(field(&buf, 32), Value::Varint(1 << 40)); // socket_cookie
    assert_eq!(field(&buf, 11), Value::Bytes(b"kind-worker".to_vec())); // node_name
    assert_eq!(
        field(&buf, 34),
        Value::Bytes(flow.uuid.clone().into_bytes())
    ); // uuid
    assert_eq!(
        field(&buf, 100_000),
        Value::Bytes(b"TCP Flags: SYN".to_vec())
    ); // Summary
    assert_eq!(
        field(&buf, 37),
        Value::Bytes(flow.node_labels[0].clone().into_bytes())
    );

    // time = 1: Timestamp{seconds = 1, nanos = 2}
    let time = bytes(field(&buf, 1));
    assert_eq!(field(&time, 1), Value::Varint(1_714_564_800));
    assert_eq!(field(&time, 2), Value::Varint(123_456_000));

    // event_type = 19: CiliumEventType{type = 1, sub_type = 2}
    let ev = bytes(field(&buf, 19));
    assert_eq!(field(&ev, 1), Value::Varint(1));
    assert_eq!(field(&ev, 2), Value::Varint(133));

    // is_reply = 26 is a BoolValue; `false` is present as an empty message.
    assert_eq!(field(&buf, 26), Value::Bytes(Vec::new()));

    // source = 8: Endpoint{ID = 1, identity = 2, namespace = 3, labels = 4, pod_name = 5,
    // cluster_name = 7}
    let src = bytes(field(&buf, 8));
    assert_eq!(field(&src, 1), Value::Varint(1234));
    assert_eq!(field(&src, 2), Value::Varint(48213));
    assert_eq!(field(&src, 3), Value::Bytes(b"default".to_vec()));
    assert_eq!(field(&src, 5), Value::Bytes(b"tiefighter".to_vec()));
    assert_eq!(field(&src, 7), Value::Bytes(b"default".to_vec()));
    let labels: Vec<_> = fields(&src).into_iter().filter(|(n, _)| *n == 4).collect();
    assert_eq!(labels.len(), 2);
    let dst = bytes(field(&buf, 9));
    assert_eq!(
        field(&dst, 5),
        Value::Bytes(b"deathstar-6c94dcc57b-7xkzq".to_vec())
    );

    // IP = 5: source = 1, destination = 2, ipVersion = 3
    let ip = bytes(field(&buf, 5));
    assert_eq!(field(&ip, 1), Value::Bytes(b"10.0.0.5".to_vec()));
    assert_eq!(field(&ip, 2), Value::Bytes(b"10.0.0.7".to_vec()));
    assert_eq!(field(&ip, 3), Value::Varint(1));

    // l4 = 6 -> TCP = 1 -> destination_port = 2, flags = 3 -> SYN = 2
    let l4 = bytes(field(&buf, 6));
    let tcp = bytes(field(&l4, 1));
    assert_eq!(field(&tcp, 1), Value::Varint(43210));
    assert_eq!(field(&tcp, 2), Value::Varint(80));
    let flags = bytes(field(&tcp, 3));
    assert_eq!(field(&flags, 2), Value::Varint(1));

    // ingress_denied_by = 21005: Policy{name = 1, namespace = 2, revision = 4, kind = 5}
    let pol = bytes(field(&buf, 21_005));
    assert_eq!(field(&pol, 1), Value::Bytes(b"rule1".to_vec()));
    assert_eq!(field(&pol, 4), Value::Varint(7));
    assert_eq!(
        field(&pol, 5),
        Value::Bytes(b"CiliumNetworkPolicy".to_vec())
    );

    // Nothing unexpected: every top-level number is one Hubble defines for these fields.
    let mut numbers: Vec<u32> = fields(&buf).into_iter().map(|(n, _)| n).collect();
    numbers.sort_unstable();
    assert_eq!(
        numbers,
        [
            1, 2, 3, 5, 6, 8, 9, 10, 11, 19, 22, 24, 25, 26, 32, 34, 37, 21_005, 100_000
        ]
    );
}

#[test]
fn is_reply_true_encodes_the_wrapped_bool() {
    let flow = Flow {
        is_reply: Some(BoolValue { value: true }),
        ..Default::default()
    };
    let buf = flow.encode_to_vec();
    let wrapped = bytes(field(&buf, 26));
    assert_eq!(field(&wrapped, 1), Value::Varint(1));
}

#[test]
fn observer_peer_relay_field_numbers_match_hubble() {
    let resp = GetFlowsResponse {
        response_types: Some(observer::get_flows_response::ResponseTypes::Flow(Flow {
            verdict: Verdict::Forwarded as i32,
            ..Default::default()
        })),
        node_name: "kind-worker".into(),
        time: Some(Timestamp {
            seconds: 5,
            nanos: 0,
        }),
    };
    let buf = resp.encode_to_vec();
    assert_eq!(field(&bytes(field(&buf, 1)), 2), Value::Varint(1));
    assert_eq!(field(&buf, 1000), Value::Bytes(b"kind-worker".to_vec()));
    assert_eq!(field(&bytes(field(&buf, 1001)), 1), Value::Varint(5));

    let lost = GetFlowsResponse {
        response_types: Some(observer::get_flows_response::ResponseTypes::LostEvents(
            flow::LostEvent {
                source: flow::LostEventSource::PerfEventRingBuffer as i32,
                num_events_lost: 9,
                ..Default::default()
            },
        )),
        ..Default::default()
    };
    let lost_ev = bytes(field(&lost.encode_to_vec(), 3));
    assert_eq!(field(&lost_ev, 1), Value::Varint(1));
    assert_eq!(field(&lost_ev, 2), Value::Varint(9));

    let req = GetFlowsRequest {
        number: 20,
        first: true,
        follow: true,
        whitelist: vec![FlowFilter {
            source_pod: vec!["default/xwing".into()],
            verdict: vec![Verdict::Dropped as i32],
            ..Default::default()
        }],
        since: Some(Timestamp {
            seconds: 1,
            nanos: 0,
        }),
        ..Default::default()
    };
    let buf = req.encode_to_vec();
    assert_eq!(field(&buf, 1), Value::Varint(20));
    assert_eq!(field(&buf, 9), Value::Varint(1));
    assert_eq!(field(&buf, 3), Value::Varint(1));
    let wl = bytes(field(&buf, 6));
    assert_eq!(field(&wl, 2), Value::Bytes(b"default/xwing".to_vec()));
    assert_eq!(field(&wl, 5), Value::Bytes(vec![2])); // packed repeated enum
    assert!(matches!(field(&buf, 7), Value::Bytes(_)));

    let status = ServerStatusResponse {
        num_flows: 1,
        max_flows: 4095,
        seen_flows: 3,
        uptime_ns: 4,
        num_connected_nodes: Some(UInt32Value { value: 2 }),
        version: "periscope".into(),
        flows_rate: 1.5,
        ..Default::default()
    };
    let buf = status.encode_to_vec();
    assert_eq!(field(&buf, 2), Value::Varint(4095));
    assert_eq!(field(&bytes(field(&buf, 5)), 1), Value::Varint(2));
    assert_eq!(field(&buf, 8), Value::Bytes(b"periscope".to_vec()));
    assert_eq!(field(&buf, 9), Value::Fixed64(1.5f64.to_bits()));

    let note = peer::ChangeNotification {
        name: "kind-worker".into(),
        address: "10.0.0.1:4244".into(),
        r#type: peer::ChangeNotificationType::PeerAdded as i32,
        tls: Some(peer::Tls {
            server_name: "kind-worker.hubble-grpc.cilium.io".into(),
        }),
    };
    let buf = note.encode_to_vec();
    assert_eq!(field(&buf, 2), Value::Bytes(b"10.0.0.1:4244".to_vec()));
    assert_eq!(field(&buf, 3), Value::Varint(1));
    assert!(matches!(field(&bytes(field(&buf, 4)), 1), Value::Bytes(_)));

    let ns = relay::NodeStatusEvent {
        state_change: relay::NodeState::NodeUnavailable as i32,
        node_names: vec!["a".into(), "b".into()],
        message: "dial timeout".into(),
    };
    let buf = ns.encode_to_vec();
    assert_eq!(field(&buf, 1), Value::Varint(2));
    assert_eq!(field(&buf, 3), Value::Bytes(b"dial timeout".to_vec()));
}

#[test]
fn binary_round_trip() {
    let flow = sample_flow();
    let decoded = Flow::decode(flow.encode_to_vec().as_slice()).expect("decodes");
    assert_eq!(decoded, flow);

    let resp = GetFlowsResponse {
        response_types: Some(observer::get_flows_response::ResponseTypes::NodeStatus(
            relay::NodeStatusEvent {
                state_change: relay::NodeState::NodeConnected as i32,
                node_names: vec!["kind-worker".into()],
                message: String::new(),
            },
        )),
        node_name: "relay".into(),
        time: Some(Timestamp {
            seconds: 7,
            nanos: 8,
        }),
    };
    let decoded = GetFlowsResponse::decode(resp.encode_to_vec().as_slice()).expect("decodes");
    assert_eq!(decoded, resp);
}

#[test]
fn garbage_input_is_an_error_not_a_panic() {
    assert!(Flow::decode(&[0xff, 0xff, 0xff][..]).is_err());
    assert!(GetFlowsResponse::decode(&[0x0a, 0x10, 0x01][..]).is_err());
}

#[test]
fn json_uses_hubble_proto_field_names() {
    let resp = GetFlowsResponse {
        response_types: Some(observer::get_flows_response::ResponseTypes::Flow(
            sample_flow(),
        )),
        node_name: "kind-worker".into(),
        time: Some(Timestamp {
            seconds: 1_714_564_800,
            nanos: 123_456_000,
        }),
    };
    let v = serde_json::to_value(&resp).expect("serializes");
    let f = &v["flow"];

    assert_eq!(v["node_name"], "kind-worker");
    assert_eq!(v["time"], "2024-05-01T12:00:00.123456Z");
    assert_eq!(f["time"], "2024-05-01T12:00:00.123456Z");
    assert_eq!(f["verdict"], "DROPPED");
    assert_eq!(f["drop_reason_desc"], "POLICY_DENIED");
    assert_eq!(f["drop_reason"], 133);
    assert_eq!(f["traffic_direction"], "INGRESS");
    assert_eq!(f["trace_observation_point"], "TO_ENDPOINT");
    assert_eq!(f["Type"], "L3_L4");
    assert_eq!(f["is_reply"], false);
    // 64-bit integers are strings in proto3 JSON.
    assert_eq!(f["socket_cookie"], "1099511627776");
    assert_eq!(f["IP"]["ipVersion"], "IPv4");
    assert_eq!(f["l4"]["TCP"]["destination_port"], 80);
    assert_eq!(f["l4"]["TCP"]["flags"]["SYN"], true);
    assert_eq!(f["source"]["ID"], 1234);
    assert_eq!(f["source"]["pod_name"], "tiefighter");
    assert_eq!(f["source"]["cluster_name"], "default");
    assert_eq!(f["event_type"]["type"], 1);
    assert_eq!(f["event_type"]["sub_type"], 133);
    assert_eq!(f["node_labels"][0], "kubernetes.io/hostname=kind-worker");
    assert_eq!(f["ingress_denied_by"][0]["name"], "rule1");
    assert_eq!(f["ingress_denied_by"][0]["revision"], "7");
    assert_eq!(f["Summary"], "TCP Flags: SYN");
    // Defaults are omitted.
    assert!(f.get("proxy_port").is_none());
    assert!(f.get("reply").is_none());

    let back: GetFlowsResponse = serde_json::from_value(v).expect("deserializes");
    assert_eq!(back, resp);
}

#[test]
fn reads_hubble_style_json_with_proto_field_names() {
    // Hubble's CLI prints proto field names; unknown fields from newer versions are ignored.
    let line = r#"{"flow":{"time":"2024-05-01T12:00:00.5+00:00","verdict":"FORWARDED",
        "IP":{"source":"10.0.0.5","destination":"10.0.0.7","ipVersion":"IPv4"},
        "source":{"ID":12,"pod_name":"xwing","namespace":"default"},
        "drop_reason_desc":"POLICY_DENY","is_reply":true,"traffic_direction":"EGRESS",
        "event_type":{"type":4,"sub_type":3},"Type":"L3_L4","socket_cookie":"5",
        "some_future_field":{"x":1}},
        "node_name":"kind-worker","time":"2024-05-01T12:00:00.500Z"}"#;
    let resp: GetFlowsResponse = serde_json::from_str(line).expect("parses");
    assert_eq!(resp.node_name, "kind-worker");
    assert_eq!(
        resp.time,
        Some(Timestamp {
            seconds: 1_714_564_800,
            nanos: 500_000_000
        })
    );
    let Some(observer::get_flows_response::ResponseTypes::Flow(f)) = resp.response_types else {
        panic!("expected a flow");
    };
    assert_eq!(f.verdict(), Verdict::Forwarded);
    assert_eq!(f.drop_reason_desc(), DropReason::PolicyDeny);
    assert_eq!(f.traffic_direction(), TrafficDirection::Egress);
    assert_eq!(f.is_reply, Some(BoolValue { value: true }));
    assert_eq!(
        f.source.as_ref().map(|s| s.pod_name.as_str()),
        Some("xwing")
    );
    assert_eq!(
        f.event_type,
        Some(CiliumEventType {
            r#type: 4,
            sub_type: 3
        })
    );
    assert_eq!(f.socket_cookie, 5);
    assert_eq!(
        f.time,
        Some(Timestamp {
            seconds: 1_714_564_800,
            nanos: 500_000_000
        })
    );
}

#[test]
fn descriptor_set_names_all_services() {
    let set = periscope_proto::pbjson_types::FileDescriptorSet::decode(
        periscope_proto::FILE_DESCRIPTOR_SET,
    )
    .expect("descriptor set decodes");
    let files: Vec<_> = set.file.iter().filter_map(|f| f.name.as_deref()).collect();
    for want in [
        "flow/flow.proto",
        "observer/observer.proto",
        "peer/peer.proto",
        "relay/relay.proto",
    ] {
        assert!(files.contains(&want), "{want} missing from {files:?}");
    }
    let services: Vec<_> = set
        .file
        .iter()
        .flat_map(|f| {
            let pkg = f.package.clone().unwrap_or_default();
            f.service
                .iter()
                .map(move |s| format!("{pkg}.{}", s.name.as_deref().unwrap_or("")))
        })
        .collect();
    assert!(services.contains(&"observer.Observer".to_string()));
    assert!(services.contains(&"peer.Peer".to_string()));
}
