//! Filter flags → `FlowFilter`s, table-driven against Hubble's documented semantics (the cases
//! mirror `hubble observe`'s own flag tests). Differences from Hubble are deliberate and
//! noted: pod and service names that stay unqualified get the `default` namespace here,
//! which is what Hubble's server assumes for them.

use periscope_cli::cli::parse_observe;
use periscope_cli::filters::{self, FilterError, Filters};
use periscope_proto::flow::{
    DropReason, EventTypeFilter, FlowFilter, HttpHeader, IpVersion, NetworkInterface, TcpFlags,
    TrafficDirection, Verdict, Workload,
};

fn build(args: &[&str]) -> Result<Filters, String> {
    let parsed = parse_observe(args.iter().copied()).map_err(|e| e.to_string())?;
    filters::build(&parsed.filters).map_err(|e| e.to_string())
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn ff() -> FlowFilter {
    FlowFilter::default()
}

fn white(w: Vec<FlowFilter>) -> Filters {
    Filters {
        whitelist: w,
        blacklist: vec![],
    }
}

const DROPPED: i32 = Verdict::Dropped as i32;

fn et(t: i32) -> EventTypeFilter {
    EventTypeFilter {
        r#type: t,
        match_sub_type: false,
        sub_type: 0,
    }
}

fn et_sub(t: i32, sub: i32) -> EventTypeFilter {
    EventTypeFilter {
        r#type: t,
        match_sub_type: true,
        sub_type: sub,
    }
}

#[test]
fn flags_build_hubbles_filters() {
    let cases: Vec<(&str, Vec<&str>, Filters)> = vec![
        (
            "the issue's example: --pod deathstar --verdict DROPPED",
            vec!["--pod", "deathstar", "--verdict", "DROPPED"],
            white(vec![
                FlowFilter {
                    source_pod: s(&["default/deathstar"]),
                    verdict: vec![DROPPED],
                    ..ff()
                },
                FlowFilter {
                    destination_pod: s(&["default/deathstar"]),
                    verdict: vec![DROPPED],
                    ..ff()
                },
            ]),
        ),
        ("no flags, no filters", vec![], Filters::default()),
        (
            "values of one flag OR, --not negates only the next flag (Hubble TestFilterDispatch)",
            vec![
                "--from-ip",
                "1.2.3.4",
                "--from-ip",
                "5.6.7.8",
                "--not",
                "--to-ip",
                "5.5.5.5",
                "--verdict",
                "DROPPED",
                "-t",
                "l7",
            ],
            Filters {
                whitelist: vec![FlowFilter {
                    source_ip: s(&["1.2.3.4", "5.6.7.8"]),
                    verdict: vec![DROPPED],
                    event_type: vec![et(129)],
                    ..ff()
                }],
                blacklist: vec![FlowFilter {
                    destination_ip: s(&["5.5.5.5"]),
                    ..ff()
                }],
            },
        ),
        (
            "either-side flags make two filters; other flags apply to both (Hubble TestFilterLeftRight)",
            vec![
                "--ip",
                "1.2.3.4",
                "--ip",
                "5.6.7.8",
                "--verdict",
                "DROPPED",
                "--not",
                "--pod",
                "deathstar",
                "--not",
                "--http-status",
                "200",
                "--http-method",
                "get",
                "--http-path",
                "/page/\\d+",
                "--node-name",
                "k8s*",
            ],
            Filters {
                whitelist: vec![
                    FlowFilter {
                        source_ip: s(&["1.2.3.4", "5.6.7.8"]),
                        verdict: vec![DROPPED],
                        http_method: s(&["get"]),
                        http_path: s(&["/page/\\d+"]),
                        node_name: s(&["k8s*"]),
                        ..ff()
                    },
                    FlowFilter {
                        destination_ip: s(&["1.2.3.4", "5.6.7.8"]),
                        verdict: vec![DROPPED],
                        http_method: s(&["get"]),
                        http_path: s(&["/page/\\d+"]),
                        node_name: s(&["k8s*"]),
                        ..ff()
                    },
                ],
                blacklist: vec![
                    FlowFilter {
                        source_pod: s(&["default/deathstar"]),
                        http_status_code: s(&["200"]),
                        ..ff()
                    },
                    FlowFilter {
                        destination_pod: s(&["default/deathstar"]),
                        http_status_code: s(&["200"]),
                        ..ff()
                    },
                ],
            },
        ),
        (
            "event types by name and number, with subtypes (Hubble TestFilterType)",
            vec![
                "-t",
                "254",
                "-t",
                "255:127",
                "-t",
                "trace:to-endpoint",
                "-t",
                "trace:from-endpoint",
                "-t",
                "4:2",
                "-t",
                "agent",
                "-t",
                "agent:3",
                "-t",
                "agent:policy-updated",
            ],
            white(vec![FlowFilter {
                event_type: vec![
                    et(254),
                    et_sub(255, 127),
                    et_sub(4, 0),
                    et_sub(4, 5),
                    et_sub(4, 2),
                    et(130),
                    et_sub(130, 3),
                    et_sub(130, 5),
                ],
                ..ff()
            }]),
        ),
        (
            "other event type names (Cilium's message numbers)",
            vec![
                "-t",
                "drop",
                "-t",
                "policy-verdict",
                "-t",
                "trace-sock",
                "-t",
                "capture",
                "-t",
                "trace:to-stack",
            ],
            white(vec![FlowFilter {
                event_type: vec![et(1), et(5), et(7), et(3), et_sub(4, 3)],
                ..ff()
            }]),
        ),
        (
            "labels (Hubble TestLabels)",
            vec![
                "--label",
                "k1=v1,k2=v2",
                "-l",
                "k3",
                "--node-label",
                "io.cilium.egress-gateway",
            ],
            white(vec![
                FlowFilter {
                    source_label: s(&["k1=v1,k2=v2", "k3"]),
                    node_labels: s(&["io.cilium.egress-gateway"]),
                    ..ff()
                },
                FlowFilter {
                    destination_label: s(&["k1=v1,k2=v2", "k3"]),
                    node_labels: s(&["io.cilium.egress-gateway"]),
                    ..ff()
                },
            ]),
        ),
        (
            "--from-label/--to-label stay in one filter",
            vec!["--from-label", "app=x", "--to-label", "reserved:world"],
            white(vec![FlowFilter {
                source_label: s(&["app=x"]),
                destination_label: s(&["reserved:world"]),
                ..ff()
            }]),
        ),
        (
            "from-pod and to-workload: one filter",
            vec!["--from-pod", "cilium", "--to-workload", "app"],
            white(vec![FlowFilter {
                source_pod: s(&["default/cilium"]),
                destination_workload: vec![Workload {
                    name: "app".into(),
                    kind: String::new(),
                }],
                ..ff()
            }]),
        ),
        (
            "pod and to-workload: two filters",
            vec!["--pod", "cilium", "--to-workload", "Deployment/app"],
            white(vec![
                FlowFilter {
                    source_pod: s(&["default/cilium"]),
                    destination_workload: vec![Workload {
                        name: "app".into(),
                        kind: "Deployment".into(),
                    }],
                    ..ff()
                },
                FlowFilter {
                    destination_pod: s(&["default/cilium"]),
                    destination_workload: vec![Workload {
                        name: "app".into(),
                        kind: "Deployment".into(),
                    }],
                    ..ff()
                },
            ]),
        ),
        (
            "--workload names both sides",
            vec!["--workload", "buzz"],
            white(vec![
                FlowFilter {
                    source_workload: vec![Workload {
                        name: "buzz".into(),
                        kind: String::new(),
                    }],
                    ..ff()
                },
                FlowFilter {
                    destination_workload: vec![Workload {
                        name: "buzz".into(),
                        kind: String::new(),
                    }],
                    ..ff()
                },
            ]),
        ),
        (
            "identities (Hubble TestIdentity)",
            vec!["--identity", "1", "--identity", "2"],
            white(vec![
                FlowFilter {
                    source_identity: vec![1, 2],
                    ..ff()
                },
                FlowFilter {
                    destination_identity: vec![1, 2],
                    ..ff()
                },
            ]),
        ),
        (
            "reserved identity names",
            vec![
                "--from-identity",
                "world",
                "--to-identity",
                "kube-apiserver",
            ],
            white(vec![FlowFilter {
                source_identity: vec![2],
                destination_identity: vec![7],
                ..ff()
            }]),
        ),
        (
            "pod and to-identity (Hubble TestFromToIdentityCombined)",
            vec!["--pod", "cilium", "--to-identity", "42"],
            white(vec![
                FlowFilter {
                    source_pod: s(&["default/cilium"]),
                    destination_identity: vec![42],
                    ..ff()
                },
                FlowFilter {
                    destination_pod: s(&["default/cilium"]),
                    destination_identity: vec![42],
                    ..ff()
                },
            ]),
        ),
        (
            "uuid",
            vec!["--uuid", "b9fab269-04ae-495c-9d12-b6c36d41de0d"],
            white(vec![FlowFilter {
                uuid: s(&["b9fab269-04ae-495c-9d12-b6c36d41de0d"]),
                ..ff()
            }]),
        ),
        (
            "traffic direction, any case (Hubble TestTrafficDirection)",
            vec![
                "--traffic-direction",
                "INGRESS",
                "--traffic-direction",
                "EgrEss",
            ],
            white(vec![FlowFilter {
                traffic_direction: vec![
                    TrafficDirection::Ingress as i32,
                    TrafficDirection::Egress as i32,
                ],
                ..ff()
            }]),
        ),
        (
            "snat ip with a CIDR",
            vec!["--snat-ip", "2.2.2.2/16"],
            white(vec![FlowFilter {
                source_ip_xlated: s(&["2.2.2.2/16"]),
                ..ff()
            }]),
        ),
        (
            "interface",
            vec!["--interface", "eth0"],
            white(vec![FlowFilter {
                interface: vec![NetworkInterface {
                    index: 0,
                    name: "eth0".into(),
                }],
                ..ff()
            }]),
        ),
        (
            "http url and headers (value may contain colons)",
            vec![
                "--http-url",
                "http://.*cilium\\.io/foo",
                "--http-header",
                "foo:bar",
                "--http-header",
                "Foo:coco:bar",
            ],
            white(vec![FlowFilter {
                http_url: s(&["http://.*cilium\\.io/foo"]),
                http_header: vec![
                    HttpHeader {
                        key: "foo".into(),
                        value: "bar".into(),
                    },
                    HttpHeader {
                        key: "Foo".into(),
                        value: "coco:bar".into(),
                    },
                ],
                ..ff()
            }]),
        ),
        (
            "ports on either side",
            vec!["--port", "80", "--port", "443"],
            white(vec![
                FlowFilter {
                    source_port: s(&["80", "443"]),
                    ..ff()
                },
                FlowFilter {
                    destination_port: s(&["80", "443"]),
                    ..ff()
                },
            ]),
        ),
        (
            "from-port and to-port AND",
            vec!["--from-port", "1172", "--to-port", "11245"],
            white(vec![FlowFilter {
                source_port: s(&["1172"]),
                destination_port: s(&["11245"]),
                ..ff()
            }]),
        ),
        (
            "CIDR destination, protocol and tcp flags",
            vec![
                "--to-ip",
                "10.0.0.0/24",
                "--protocol",
                "tcp",
                "--tcp-flags",
                "syn,ack",
                "--tcp-flags",
                "FIN",
            ],
            white(vec![FlowFilter {
                destination_ip: s(&["10.0.0.0/24"]),
                protocol: s(&["tcp"]),
                tcp_flags: vec![
                    TcpFlags {
                        syn: true,
                        ack: true,
                        ..TcpFlags::default()
                    },
                    TcpFlags {
                        fin: true,
                        ..TcpFlags::default()
                    },
                ],
                ..ff()
            }]),
        ),
        (
            "ip versions",
            vec!["-4", "-6", "--ip-version", "none"],
            white(vec![FlowFilter {
                ip_version: vec![
                    IpVersion::IPv4 as i32,
                    IpVersion::IPv6 as i32,
                    IpVersion::IpNotUsed as i32,
                ],
                ..ff()
            }]),
        ),
        (
            "drop reasons and several verdicts",
            vec![
                "--drop-reason-desc",
                "POLICY_DENIED",
                "--verdict",
                "DROPPED",
                "--verdict",
                "forwarded",
            ],
            white(vec![FlowFilter {
                drop_reason_desc: vec![DropReason::PolicyDenied as i32],
                verdict: vec![DROPPED, Verdict::Forwarded as i32],
                ..ff()
            }]),
        ),
        (
            "fqdn both sides",
            vec!["--fqdn", "*.cilium.io", "--http-status", "5+"],
            white(vec![
                FlowFilter {
                    source_fqdn: s(&["*.cilium.io"]),
                    http_status_code: s(&["5+"]),
                    ..ff()
                },
                FlowFilter {
                    destination_fqdn: s(&["*.cilium.io"]),
                    http_status_code: s(&["5+"]),
                    ..ff()
                },
            ]),
        ),
        (
            "clusters (Hubble TestCluster)",
            vec!["--cluster", "foo", "--cluster", "bar"],
            white(vec![
                FlowFilter {
                    source_cluster_name: s(&["foo", "bar"]),
                    ..ff()
                },
                FlowFilter {
                    destination_cluster_name: s(&["foo", "bar"]),
                    ..ff()
                },
            ]),
        ),
        (
            "service without namespace gets default",
            vec!["--to-service", "deathstar"],
            white(vec![FlowFilter {
                destination_service: s(&["default/deathstar"]),
                ..ff()
            }]),
        ),
        (
            "namespace qualified names are kept",
            vec!["--from-pod", "kube-system/coredns"],
            white(vec![FlowFilter {
                source_pod: s(&["kube-system/coredns"]),
                ..ff()
            }]),
        ),
        (
            "--not -n goes to the blacklist",
            vec!["--not", "-n", "kube-system"],
            Filters {
                whitelist: vec![],
                blacklist: vec![
                    FlowFilter {
                        source_pod: s(&["kube-system/"]),
                        ..ff()
                    },
                    FlowFilter {
                        destination_pod: s(&["kube-system/"]),
                        ..ff()
                    },
                ],
            },
        ),
        (
            "raw allow/deny lists are appended",
            vec![
                "--pod",
                "x",
                "--allowlist",
                r#"{"source_ip":["9.9.9.9"]}"#,
                "--denylist",
                r#"{"verdict":["DROPPED"]}"#,
            ],
            Filters {
                whitelist: vec![
                    FlowFilter {
                        source_pod: s(&["default/x"]),
                        ..ff()
                    },
                    FlowFilter {
                        destination_pod: s(&["default/x"]),
                        ..ff()
                    },
                    FlowFilter {
                        source_ip: s(&["9.9.9.9"]),
                        ..ff()
                    },
                ],
                blacklist: vec![FlowFilter {
                    verdict: vec![DROPPED],
                    ..ff()
                }],
            },
        ),
    ];
    for (name, args, want) in cases {
        let got = build(&args).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn namespaces_like_hubble() {
    // Hubble's TestNamespace cases.
    let cases: Vec<(&str, Vec<&str>, Vec<FlowFilter>)> = vec![
        (
            "from or to a namespace, with a port",
            vec!["--namespace", "cilium", "--port", "443"],
            vec![
                FlowFilter {
                    source_pod: s(&["cilium/"]),
                    source_port: s(&["443"]),
                    ..ff()
                },
                FlowFilter {
                    destination_pod: s(&["cilium/"]),
                    destination_port: s(&["443"]),
                    ..ff()
                },
            ],
        ),
        (
            "from a namespace with a port",
            vec!["--from-namespace", "cilium", "--from-port", "443"],
            vec![FlowFilter {
                source_pod: s(&["cilium/"]),
                source_port: s(&["443"]),
                ..ff()
            }],
        ),
        (
            "to a namespace",
            vec!["--to-namespace", "cilium"],
            vec![FlowFilter {
                destination_pod: s(&["cilium/"]),
                ..ff()
            }],
        ),
        (
            "to a namespace with a port on either side",
            vec!["--to-namespace", "cilium", "--port", "443"],
            vec![
                FlowFilter {
                    destination_pod: s(&["cilium/"]),
                    source_port: s(&["443"]),
                    ..ff()
                },
                FlowFilter {
                    destination_pod: s(&["cilium/"]),
                    destination_port: s(&["443"]),
                    ..ff()
                },
            ],
        ),
        (
            "namespace and pod",
            vec!["--namespace", "cilium", "--pod", "foo-9c76d6c95-tf788"],
            vec![
                FlowFilter {
                    source_pod: s(&["cilium/foo-9c76d6c95-tf788"]),
                    ..ff()
                },
                FlowFilter {
                    destination_pod: s(&["cilium/foo-9c76d6c95-tf788"]),
                    ..ff()
                },
            ],
        ),
        (
            "namespace and service",
            vec!["--namespace", "cilium", "--service", "foo"],
            vec![
                FlowFilter {
                    source_service: s(&["cilium/foo"]),
                    ..ff()
                },
                FlowFilter {
                    destination_service: s(&["cilium/foo"]),
                    ..ff()
                },
            ],
        ),
        (
            "several namespaces times several services",
            vec![
                "-n",
                "cilium",
                "-n",
                "kube-system",
                "--service",
                "foo",
                "--service",
                "bar",
            ],
            vec![
                FlowFilter {
                    source_service: s(&[
                        "cilium/foo",
                        "kube-system/foo",
                        "cilium/bar",
                        "kube-system/bar",
                    ]),
                    ..ff()
                },
                FlowFilter {
                    destination_service: s(&[
                        "cilium/foo",
                        "kube-system/foo",
                        "cilium/bar",
                        "kube-system/bar",
                    ]),
                    ..ff()
                },
            ],
        ),
        (
            "to a namespace and a pod in it",
            vec![
                "--to-namespace",
                "cilium",
                "--to-pod",
                "cilium/foo-9c76d6c95-tf788",
            ],
            vec![FlowFilter {
                destination_pod: s(&["cilium/foo-9c76d6c95-tf788"]),
                ..ff()
            }],
        ),
        (
            "from a namespace to a pod elsewhere",
            vec![
                "--from-namespace",
                "kube-system",
                "--to-pod",
                "cilium/foo-9c76d6c95-tf788",
            ],
            vec![FlowFilter {
                source_pod: s(&["kube-system/"]),
                destination_pod: s(&["cilium/foo-9c76d6c95-tf788"]),
                ..ff()
            }],
        ),
        (
            "to any namespace with a port",
            vec!["--to-all-namespaces", "--port", "443"],
            vec![
                FlowFilter {
                    destination_pod: s(&["/"]),
                    source_port: s(&["443"]),
                    ..ff()
                },
                FlowFilter {
                    destination_pod: s(&["/"]),
                    destination_port: s(&["443"]),
                    ..ff()
                },
            ],
        ),
        (
            "to pod foo in any namespace",
            vec!["--to-all-namespaces", "--to-pod", "foo"],
            vec![FlowFilter {
                destination_pod: s(&["/foo"]),
                ..ff()
            }],
        ),
        (
            "to service bar in any namespace",
            vec!["--to-all-namespaces", "--to-service", "bar"],
            vec![FlowFilter {
                destination_service: s(&["/bar"]),
                ..ff()
            }],
        ),
        (
            "-A with a pod",
            vec!["-A", "--pod", "foo"],
            vec![
                FlowFilter {
                    source_pod: s(&["/foo"]),
                    ..ff()
                },
                FlowFilter {
                    destination_pod: s(&["/foo"]),
                    ..ff()
                },
            ],
        ),
        (
            "--all-namespaces with a service",
            vec!["--all-namespaces", "--service", "bar"],
            vec![
                FlowFilter {
                    source_service: s(&["/bar"]),
                    ..ff()
                },
                FlowFilter {
                    destination_service: s(&["/bar"]),
                    ..ff()
                },
            ],
        ),
    ];
    for (name, args, want) in cases {
        let got = build(&args).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got, white(want), "{name}");
    }
}

#[test]
fn bad_values_are_rejected_with_the_flag_named() {
    let cases: &[(&[&str], &str)] = &[
        (&["--verdict", "BOGUS"], "--verdict"),
        (&["--tcp-flags", "unknown"], "unknown tcp flag"),
        (&["--tcp-flags", "syn,"], "--tcp-flags"),
        (&["--tcp-flags", ",syn"], "--tcp-flags"),
        (&["-t", "some-invalid-type"], "unknown type"),
        (
            &["-t", "trace:some-invalid-sub-type"],
            "unknown trace subtype",
        ),
        (&["-t", "agent:Policy updated"], "--type"),
        (&["--identity", "bad"], "--identity"),
        (&["--from-identity", "bad"], "--from-identity"),
        (
            &["--traffic-direction", "to the moon"],
            "expected ingress or egress",
        ),
        (&["--port", "70000"], "--port"),
        (&["--ip", "1.2.3"], "--ip"),
        (&["--to-ip", "10.0.0.0/33"], "--to-ip"),
        (&["--protocol", "carrier-pigeon"], "--protocol"),
        (&["--http-status", "6000"], "--http-status"),
        (&["--http-path", "("], "--http-path"),
        (&["--http-header", "foobar"], "KEY:VALUE"),
        (&["--drop-reason-desc", "NOPE"], "--drop-reason-desc"),
        (&["--ip-version", "v5"], "--ip-version"),
        (&["--from-ip", "1.2.3.4", "--not"], "trailing --not"),
        (&["--not", "--not", "--pod", "x"], "consecutive --not"),
        (&["--allowlist", "{not json"], "--allowlist"),
        (
            &["--to-namespace", "kube-system", "--to-pod", "cilium/foo"],
            "namespace conflict",
        ),
        (
            &[
                "--from-namespace",
                "kube-system",
                "--from-service",
                "cilium/foo",
            ],
            "namespace conflict",
        ),
        (
            &[
                "--from-service",
                "cilium/foo",
                "--from-pod",
                "kube-system/hubble",
            ],
            "namespace conflict",
        ),
    ];
    for (args, needle) in cases {
        let err = build(args).expect_err(&format!("{args:?} should fail"));
        assert!(
            err.contains(needle),
            "{args:?}: {err:?} should mention {needle:?}"
        );
        assert!(!err.contains('\n'), "{args:?}: one line, got {err:?}");
    }
}

#[test]
fn conflicting_flags_like_hubble() {
    // Hubble's TestConflicts_Table (minus entries for flags that do not exist).
    let pairs: &[(&str, &str)] = &[
        ("--port", "--to-port"),
        ("--port", "--from-port"),
        ("--identity", "--to-identity"),
        ("--identity", "--from-identity"),
        ("--workload", "--to-workload"),
        ("--workload", "--from-workload"),
        ("--fqdn", "--from-fqdn"),
        ("--fqdn", "--to-fqdn"),
        ("--ip", "--from-ip"),
        ("--ip", "--to-ip"),
        ("--label", "--from-label"),
        ("--label", "--to-label"),
        ("--service", "--from-service"),
        ("--service", "--to-service"),
        ("--pod", "--from-pod"),
        ("--pod", "--to-pod"),
        ("--namespace", "--from-namespace"),
        ("--namespace", "--to-namespace"),
        ("--ip", "--fqdn"),
        ("--ip", "--pod"),
        ("--from-ip", "--from-pod"),
        ("--to-ip", "--to-pod"),
        ("--ip", "--namespace"),
        ("--from-ip", "--namespace"),
        ("--to-ip", "--to-namespace"),
        ("--pod", "--fqdn"),
        ("--from-pod", "--namespace"),
        ("--to-pod", "--namespace"),
        ("--namespace", "--from-service"),
        ("--namespace", "--to-service"),
        ("--node-name", "--cluster"),
    ];
    let value = |flag: &str, v: &'static str| -> &'static str {
        match flag {
            "--port" | "--to-port" | "--from-port" => "80",
            "--identity" | "--to-identity" | "--from-identity" => "42",
            "--ip" | "--from-ip" | "--to-ip" => "1.2.3.4",
            _ => v,
        }
    };
    for (a, b) in pairs {
        let args = [*a, value(a, "foo"), *b, value(b, "bar")];
        let err = build(&args).expect_err(&format!("{a} and {b} should conflict"));
        assert!(err.contains("cannot be combined"), "{a} {b}: {err}");
    }
    // Hubble's "complex ok" combinations stay valid.
    build(&[
        "--to-service",
        "foo",
        "--from-service",
        "bar",
        "--from-identity",
        "world",
        "--to-identity",
        "world",
        "--to-ip",
        "1.2.3.4",
        "--from-pod",
        "blib",
        "--from-port",
        "1172",
        "--to-port",
        "11245",
        "--workload",
        "buzz",
    ])
    .expect("complex ok");
    build(&[
        "--service",
        "bar",
        "--from-identity",
        "world",
        "--to-identity",
        "world",
        "--pod",
        "blib",
        "--namespace",
        "test",
        "--from-port",
        "1172",
        "--to-port",
        "11245",
        "--workload",
        "buzz",
    ])
    .expect("complex with namespace and service ok");
    // A conflict in the blacklist is judged separately from the whitelist.
    build(&["--ip", "1.2.3.4", "--not", "--pod", "x"]).expect("different lists do not conflict");
}

#[test]
fn filter_errors_are_typed() {
    let parsed = parse_observe(["--verdict", "nope"]).expect("clap accepts any string");
    assert!(matches!(
        filters::build(&parsed.filters),
        Err(FilterError::InvalidValue {
            flag: "verdict",
            ..
        })
    ));
}
