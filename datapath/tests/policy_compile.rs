//! The policy compiler on the Star Wars cluster: the seed policy rule1 (L3/L4 and L7), unions,
//! deny rules, entities, CIDRs, matchExpressions, NetworkPolicy, clusterwide policies, the
//! repository's all-or-nothing changes and `policy get` output. Pure: no root needed.

use std::path::{Path, PathBuf};

use periscope_datapath::cluster::{self, Cluster, ClusterSpec, PodInfo};
use periscope_datapath::identity::reserved;
use periscope_datapath::policy::{
    ErrorKind, HttpRule, L7Rules, MIN_CIDR_IDENTITY, MatchType, PolicyContext, PolicyEntry,
    PolicyKey, PolicyKind, PolicyRepository, Verdict, compile, parse_policies,
};

const TCP: u8 = 6;
const UDP: u8 = 17;
const SCTP: u8 = 132;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/policies")
        .join(name)
}

fn starwars() -> Cluster {
    cluster::plan(
        &ClusterSpec::starwars(),
        "ptest",
        None,
        Path::new("/nonexistent"),
    )
    .unwrap()
}

fn repo(c: &Cluster) -> PolicyRepository {
    PolicyRepository::new(PolicyContext::from_cluster(c))
}

struct Pods<'a> {
    deathstars: Vec<&'a PodInfo>,
    tiefighter: &'a PodInfo,
    xwing: &'a PodInfo,
}

fn pods(c: &Cluster) -> Pods<'_> {
    Pods {
        deathstars: c.pods_named("deathstar").collect(),
        tiefighter: c.pod("tiefighter").unwrap(),
        xwing: c.pod("xwing").unwrap(),
    }
}

fn allow(id: u32, proto: u8, port: u16, end_port: u16) -> PolicyEntry {
    PolicyEntry {
        remote_identity: id,
        proto,
        port,
        end_port,
        deny: false,
        l7: None,
    }
}

fn deny(id: u32, proto: u8, port: u16, end_port: u16) -> PolicyEntry {
    PolicyEntry {
        deny: true,
        ..allow(id, proto, port, end_port)
    }
}

fn sorted(mut v: Vec<PolicyEntry>) -> Vec<PolicyEntry> {
    v.sort();
    v
}

#[test]
fn rule1_allows_only_empire_to_deathstar_port_80() {
    let c = starwars();
    let p = pods(&c);
    let mut repo = repo(&c);
    assert_eq!(repo.revision(), 1);
    let change = repo
        .apply_file(&fixture("rule1-l3-l4.yaml"))
        .expect("rule1 applies");

    let rule1 = PolicyKey {
        kind: PolicyKind::CiliumNetworkPolicy,
        namespace: Some("default".into()),
        name: "rule1".into(),
    };
    assert_eq!(change.added, std::slice::from_ref(&rule1));
    assert_eq!(change.revision, 2);
    let mut ds_ids: Vec<u16> = p.deathstars.iter().map(|d| d.endpoint_id).collect();
    ds_ids.sort();
    assert_eq!(change.endpoints, ds_ids, "only the deathstars change");
    assert!(change.ipcache_upserts.is_empty());

    let ds_identity = p.deathstars[0].identity;
    assert_eq!(p.deathstars.len(), 2);
    for ds in &p.deathstars {
        let ep = repo.resolved().endpoint(ds.endpoint_id).unwrap();
        assert!(ep.ingress.enforced && ep.ingress.default_deny);
        assert_eq!(ep.ingress.policies, std::slice::from_ref(&rule1));
        assert_eq!(
            ep.ingress.entries,
            sorted(vec![
                allow(p.tiefighter.identity, TCP, 80, 80),
                allow(ds_identity, TCP, 80, 80),
            ]),
            "tiefighter and deathstar (org=empire) on TCP/80, nothing else"
        );
        assert!(!ep.egress.enforced);
        assert!(ep.egress.entries.is_empty());

        let ingress = &ep.ingress;
        let v = ingress.verdict(p.xwing.identity, TCP, 80);
        assert_eq!(v, Verdict::Denied);
        assert_eq!(v.match_type(), MatchType::None);
        assert_eq!(v.drop_reason(), Some(133));
        let v = ingress.verdict(p.tiefighter.identity, TCP, 80);
        assert_eq!(
            v,
            Verdict::Allowed {
                match_type: MatchType::L3L4
            }
        );
        assert_eq!(v.match_type().code(), 2);
        assert_eq!(
            ingress.verdict(p.tiefighter.identity, TCP, 81),
            Verdict::Denied
        );
        assert_eq!(
            ingress.verdict(p.tiefighter.identity, UDP, 80),
            Verdict::Denied
        );
        assert_eq!(ingress.verdict(reserved::WORLD, TCP, 80), Verdict::Denied);
        assert_eq!(ingress.verdict(reserved::HOST, TCP, 80), Verdict::Denied);
    }
    for other in [p.tiefighter, p.xwing] {
        let ep = repo.resolved().endpoint(other.endpoint_id).unwrap();
        assert!(!ep.ingress.enforced && !ep.egress.enforced);
        assert_eq!(
            ep.ingress.verdict(p.xwing.identity, TCP, 80),
            Verdict::NotEnforced
        );
        assert_eq!(
            ep.egress.verdict(ds_identity, TCP, 80),
            Verdict::NotEnforced
        );
    }

    // Deleting restores the unenforced state.
    let change = repo.delete("rule1").unwrap();
    assert_eq!(change.deleted, [rule1]);
    assert_eq!(change.endpoints, ds_ids);
    let ep = repo
        .resolved()
        .endpoint(p.deathstars[0].endpoint_id)
        .unwrap();
    assert!(!ep.ingress.enforced);
    assert_eq!(
        ep.ingress.verdict(p.xwing.identity, TCP, 80),
        Verdict::NotEnforced
    );
    assert_eq!(repo.revision(), 3);
}

#[test]
fn rule1_l7_records_the_http_rule_and_replaces_l3_l4() {
    let c = starwars();
    let p = pods(&c);
    let mut repo = repo(&c);
    repo.apply_file(&fixture("rule1-l3-l4.yaml")).unwrap();
    let change = repo.apply_file(&fixture("rule1-l7-http.yaml")).unwrap();
    assert_eq!(change.updated.len(), 1, "same name: rule1 is replaced");
    assert!(change.added.is_empty());

    let ep = repo
        .resolved()
        .endpoint(p.deathstars[0].endpoint_id)
        .unwrap();
    let l7 = L7Rules {
        http: vec![HttpRule {
            method: Some("POST".into()),
            path: Some("/v1/request-landing".into()),
            host: None,
            headers: vec![],
        }],
    };
    assert_eq!(ep.ingress.entries.len(), 2);
    for e in &ep.ingress.entries {
        assert_eq!((e.proto, e.port, e.end_port, e.deny), (TCP, 80, 80, false));
        assert_eq!(e.l7.as_ref(), Some(&l7));
    }
    // L3/L4 verdicts are the same; the HTTP rule is for the L7 proxy.
    assert!(
        ep.ingress
            .verdict(p.tiefighter.identity, TCP, 80)
            .is_allowed()
    );
    assert_eq!(
        ep.ingress.verdict(p.xwing.identity, TCP, 80),
        Verdict::Denied
    );

    // Applying the same file again changes nothing.
    let again = repo.apply_file(&fixture("rule1-l7-http.yaml")).unwrap();
    assert_eq!(again.unchanged.len(), 1);
    assert!(again.is_noop());
    assert_eq!(again.revision, change.revision);
}

#[test]
fn policies_union() {
    let c = starwars();
    let p = pods(&c);
    let mut repo = repo(&c);
    repo.apply_file(&fixture("rule1-l3-l4.yaml")).unwrap();
    repo.apply_text(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: alliance-tls
spec:
  endpointSelector:
    matchLabels: {class: deathstar}
  ingress:
  - fromEndpoints:
    - matchLabels: {org: alliance}
    toPorts:
    - ports:
      - {port: "443", protocol: TCP}
      - {port: "8000", endPort: 8080, protocol: UDP}
"#,
        "alliance.yaml",
    )
    .unwrap();
    let ds = p.deathstars[0];
    let ep = repo.resolved().endpoint(ds.endpoint_id).unwrap();
    assert_eq!(
        ep.ingress.entries,
        sorted(vec![
            allow(p.tiefighter.identity, TCP, 80, 80),
            allow(ds.identity, TCP, 80, 80),
            allow(p.xwing.identity, TCP, 443, 443),
            allow(p.xwing.identity, UDP, 8000, 8080),
        ])
    );
    assert_eq!(ep.ingress.policies.len(), 2);
    let x = p.xwing.identity;
    assert!(ep.ingress.verdict(x, TCP, 443).is_allowed());
    assert!(ep.ingress.verdict(x, UDP, 8042).is_allowed());
    assert!(!ep.ingress.verdict(x, UDP, 8081).is_allowed());
    assert!(!ep.ingress.verdict(x, TCP, 80).is_allowed());
    assert!(
        ep.ingress
            .verdict(p.tiefighter.identity, TCP, 80)
            .is_allowed()
    );
}

#[test]
fn deny_rules_win_over_allow() {
    let c = starwars();
    let p = pods(&c);
    let mut repo = repo(&c);
    repo.apply_file(&fixture("rule1-l3-l4.yaml")).unwrap();
    repo.apply_file(&fixture("deny-tiefighter.yaml")).unwrap();
    let ds = p.deathstars[0];
    let ep = repo.resolved().endpoint(ds.endpoint_id).unwrap();
    // The tiefighter's allow entry is covered by the deny entry and dropped.
    assert_eq!(
        ep.ingress.entries,
        sorted(vec![
            allow(ds.identity, TCP, 80, 80),
            deny(p.tiefighter.identity, 0, 0, 0),
        ])
    );
    let v = ep.ingress.verdict(p.tiefighter.identity, TCP, 80);
    assert_eq!(
        v,
        Verdict::DeniedByRule {
            match_type: MatchType::L3Only
        }
    );
    assert_eq!(v.drop_reason(), Some(181));
    assert!(ep.ingress.verdict(ds.identity, TCP, 80).is_allowed());
    assert_eq!(
        ep.ingress.verdict(p.xwing.identity, TCP, 80),
        Verdict::Denied
    );

    // A deny of one port from everyone overlaps the L3-only allow of another policy: the
    // overlap becomes its own deny entry so a most-specific lookup still denies.
    let mut repo2 = repo_with(
        &c,
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: mixed}
specs:
- endpointSelector: {matchLabels: {class: xwing}}
  ingress:
  - fromEndpoints: [{matchLabels: {class: tiefighter}}]
  ingressDeny:
  - toPorts:
    - ports: [{port: "22", protocol: TCP}]
"#,
    );
    let ep = repo2
        .resolved()
        .endpoint(p.xwing.endpoint_id)
        .unwrap()
        .clone();
    let t = p.tiefighter.identity;
    assert_eq!(
        ep.ingress.entries,
        sorted(vec![
            allow(t, 0, 0, 0),
            deny(0, TCP, 22, 22),
            deny(t, TCP, 22, 22),
        ])
    );
    assert!(!ep.ingress.verdict(t, TCP, 22).is_allowed());
    assert_eq!(
        ep.ingress.verdict(t, TCP, 23),
        Verdict::Allowed {
            match_type: MatchType::L3Only
        }
    );

    // Deny-only rules with enableDefaultDeny off: everything else stays allowed.
    let change = repo2
        .apply_text(
            r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: mixed}
spec:
  endpointSelector: {matchLabels: {class: xwing}}
  enableDefaultDeny: {ingress: false}
  ingressDeny:
  - fromEntities: [world]
"#,
            "mixed.yaml",
        )
        .unwrap();
    assert_eq!(change.updated.len(), 1);
    let ep = repo2.resolved().endpoint(p.xwing.endpoint_id).unwrap();
    assert!(ep.ingress.enforced && !ep.ingress.default_deny);
    assert_eq!(
        ep.ingress.entries,
        [allow(0, 0, 0, 0), deny(reserved::WORLD, 0, 0, 0)]
    );
    assert_eq!(
        ep.ingress.verdict(t, UDP, 53),
        Verdict::Allowed {
            match_type: MatchType::All
        }
    );
    assert!(!ep.ingress.verdict(reserved::WORLD, UDP, 53).is_allowed());
}

fn repo_with(c: &Cluster, text: &str) -> PolicyRepository {
    let mut r = repo(c);
    r.apply_text(text, "inline.yaml").unwrap();
    r
}

#[test]
fn entities_select_reserved_and_cluster_identities() {
    let c = starwars();
    let p = pods(&c);
    let egress_of = |entities: &str| {
        let r = repo_with(
            &c,
            &format!(
                "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {{name: e}}\n\
                 spec:\n  endpointSelector: {{matchLabels: {{class: xwing}}}}\n  egress:\n  \
                 - toEntities: [{entities}]\n"
            ),
        );
        r.resolved()
            .endpoint(p.xwing.endpoint_id)
            .unwrap()
            .egress
            .clone()
    };
    let ids = |d: &periscope_datapath::policy::DirectionPolicy| -> Vec<u32> {
        d.entries.iter().map(|e| e.remote_identity).collect()
    };
    assert_eq!(ids(&egress_of("world")), [reserved::WORLD]);
    assert_eq!(ids(&egress_of("host")), [reserved::HOST]);
    assert_eq!(ids(&egress_of("remote-node, health")), [4, 6]);
    assert_eq!(ids(&egress_of("kube-apiserver")), [7]);
    assert_eq!(ids(&egress_of("all")), [0]);
    let none = egress_of("none");
    assert!(
        none.enforced && none.entries.is_empty(),
        "none selects nothing but enforces"
    );
    let mut cluster: Vec<u32> = vec![1, 3, 4, 5, 6, 7, 8];
    let mut pod_ids: Vec<u32> = c.pods.iter().map(|p| p.identity).collect();
    pod_ids.dedup();
    pod_ids.sort();
    pod_ids.dedup();
    cluster.extend(pod_ids);
    assert_eq!(ids(&egress_of("cluster")), cluster);

    let world = egress_of("world");
    assert_eq!(
        world.verdict(reserved::WORLD, TCP, 443),
        Verdict::Allowed {
            match_type: MatchType::L3Only
        }
    );
    assert_eq!(world.verdict(reserved::HOST, TCP, 443), Verdict::Denied);
    let all = egress_of("all");
    assert_eq!(
        all.verdict(12345, UDP, 1),
        Verdict::Allowed {
            match_type: MatchType::All
        }
    );
}

#[test]
fn cidr_rules_get_local_identities_and_honour_except() {
    let c = starwars();
    let p = pods(&c);
    let mut repo = repo(&c);
    let change = repo.apply_file(&fixture("xwing-egress.yaml")).unwrap();
    let r = repo.resolved();
    let id = |prefix: &str| r.cidr_identities[&prefix.parse().unwrap()];
    let (ten, svc, doc) = (id("10.0.0.0/8"), id("10.96.0.0/12"), id("192.0.2.0/24"));
    assert_eq!(
        [ten, svc, doc],
        [
            MIN_CIDR_IDENTITY,
            MIN_CIDR_IDENTITY + 1,
            MIN_CIDR_IDENTITY + 2
        ]
    );
    assert_eq!(change.ipcache_upserts.len(), 3);
    assert_eq!(r.labels_of(ten), ["cidr:10.0.0.0/8", "reserved:world"]);

    let egress = &r.endpoint(p.xwing.endpoint_id).unwrap().egress;
    assert!(egress.enforced);
    assert_eq!(
        egress.entries,
        sorted(vec![
            allow(0, TCP, 53, 53),
            allow(0, UDP, 53, 53),
            allow(0, SCTP, 53, 53),
            allow(reserved::HOST, 0, 0, 0),
            allow(ten, 0, 0, 0),
            allow(doc, TCP, 443, 443),
        ]),
        "the except prefix's identity is not allowed; ANY with a port expands to TCP/UDP/SCTP"
    );
    assert!(egress.verdict(ten, TCP, 5432).is_allowed());
    assert_eq!(egress.verdict(svc, TCP, 5432), Verdict::Denied);
    assert_eq!(
        egress.verdict(svc, UDP, 53),
        Verdict::Allowed {
            match_type: MatchType::L4Only
        }
    );
    assert_eq!(
        egress.verdict(doc, TCP, 443),
        Verdict::Allowed {
            match_type: MatchType::L3L4
        }
    );
    assert_eq!(egress.verdict(doc, TCP, 80), Verdict::Denied);
    // CIDR rules never select pods: their addresses keep their pod identity.
    assert_eq!(
        egress.verdict(p.tiefighter.identity, TCP, 80),
        Verdict::Denied
    );

    // The ipcache gets the prefixes next to the cluster's own entries.
    let lookup = periscope_datapath::identity::IpLookup::from_cluster(&c, &[]);
    let cache = r.ipcache_entries(&lookup.ipcache_entries());
    assert!(cache.contains(&("10.96.0.0/12".parse().unwrap(), svc)));
    assert!(cache.contains(&("0.0.0.0/0".parse().unwrap(), reserved::WORLD)));
    assert!(cache.contains(&(
        format!("{}/32", p.xwing.ip).parse().unwrap(),
        p.xwing.identity
    )));

    // The world entity also covers CIDR identities; deleting frees the prefixes.
    let change = repo.delete("xwing-egress").unwrap();
    assert_eq!(change.ipcache_deletes.len(), 3);
    assert!(repo.resolved().cidr_identities.is_empty());
}

#[test]
fn world_entity_includes_cidr_identities() {
    let c = starwars();
    let p = pods(&c);
    let r = repo_with(
        &c,
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: w}
specs:
- endpointSelector: {matchLabels: {class: xwing}}
  egress:
  - toEntities: [world]
- endpointSelector: {matchLabels: {class: tiefighter}}
  egress:
  - toCIDRSet: [{cidr: 0.0.0.0/0, except: [10.0.0.0/8]}]
"#,
    );
    let res = r.resolved();
    let ten = res.cidr_identities[&"10.0.0.0/8".parse().unwrap()];
    let xw = &res.endpoint(p.xwing.endpoint_id).unwrap().egress;
    assert_eq!(
        xw.entries,
        [allow(reserved::WORLD, 0, 0, 0), allow(ten, 0, 0, 0)]
    );
    let tf = &res.endpoint(p.tiefighter.endpoint_id).unwrap().egress;
    assert_eq!(
        tf.entries,
        [allow(reserved::WORLD, 0, 0, 0)],
        "0.0.0.0/0 is world minus except"
    );
}

#[test]
fn match_expressions_select_by_operator() {
    let c = starwars();
    let p = pods(&c);
    let r = repo_with(
        &c,
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: exprs}
spec:
  endpointSelector:
    matchExpressions:
    - {key: class, operator: In, values: [deathstar, tiefighter]}
  ingress:
  - fromEndpoints:
    - matchExpressions:
      - {key: k8s:org, operator: NotIn, values: [empire]}
    - matchExpressions:
      - {key: class, operator: Exists}
      - {key: app.kubernetes.io/name, operator: DoesNotExist}
    toPorts:
    - ports: [{port: "7", protocol: UDP}]
"#,
    );
    let res = r.resolved();
    for target in p.deathstars.iter().chain([&p.tiefighter]) {
        let ep = res.endpoint(target.endpoint_id).unwrap();
        assert_eq!(
            ep.ingress.entries,
            [allow(p.xwing.identity, UDP, 7, 7)],
            "only the alliance matches; every pod has app.kubernetes.io/name"
        );
    }
    assert!(!res.endpoint(p.xwing.endpoint_id).unwrap().ingress.enforced);
}

#[test]
fn namespaces_scope_selectors() {
    let c = starwars();
    let p = pods(&c);
    // A policy in another namespace selects nothing here; naming the namespace explicitly in
    // a peer selector reaches across.
    let r = repo_with(
        &c,
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: elsewhere, namespace: rebels}
spec:
  endpointSelector: {}
  ingress: [{}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: cross, namespace: default}
spec:
  endpointSelector: {matchLabels: {class: xwing}}
  ingress:
  - fromEndpoints:
    - matchLabels: {k8s:io.kubernetes.pod.namespace: rebels}
    - matchLabels: {org: empire}
"#,
    );
    let res = r.resolved();
    for ds in &p.deathstars {
        assert!(!res.endpoint(ds.endpoint_id).unwrap().ingress.enforced);
    }
    let xw = &res.endpoint(p.xwing.endpoint_id).unwrap().ingress;
    let mut want = vec![
        allow(p.tiefighter.identity, 0, 0, 0),
        allow(p.deathstars[0].identity, 0, 0, 0),
    ];
    want.sort();
    assert_eq!(xw.entries, want, "no pod lives in rebels");

    // A clusterwide policy selects in every namespace; `{}` peers are pods with a namespace.
    let r = repo_with(
        &c,
        r#"
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: ccnp}
spec:
  endpointSelector: {}
  ingress:
  - fromEndpoints: [{}]
"#,
    );
    let mut all_pods: Vec<u32> = c.pods.iter().map(|p| p.identity).collect();
    all_pods.sort();
    all_pods.dedup();
    for pod in &c.pods {
        let ing = &r.resolved().endpoint(pod.endpoint_id).unwrap().ingress;
        let ids: Vec<u32> = ing.entries.iter().map(|e| e.remote_identity).collect();
        assert_eq!(ids, all_pods);
    }
    assert_eq!(r.policies().next().unwrap().key.namespace, None);
}

#[test]
fn reserved_labels_in_selectors_are_not_namespaced() {
    let c = starwars();
    let p = pods(&c);
    let r = repo_with(
        &c,
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: host}
spec:
  endpointSelector: {matchLabels: {class: xwing}}
  ingress:
  - fromEndpoints:
    - matchLabels: {"reserved:host": ""}
"#,
    );
    let xw = &r.resolved().endpoint(p.xwing.endpoint_id).unwrap().ingress;
    assert_eq!(xw.entries, [allow(reserved::HOST, 0, 0, 0)]);
}

#[test]
fn network_policies_convert_like_cilium() {
    let c = starwars();
    let p = pods(&c);
    let mut repo = repo(&c);
    let change = repo.apply_file(&fixture("netpol.yaml")).unwrap();
    assert_eq!(change.added.len(), 2);
    assert!(
        change
            .added
            .iter()
            .all(|k| k.kind == PolicyKind::NetworkPolicy)
    );
    let res = repo.resolved();
    let cidr = res.cidr_identities[&"192.0.2.0/24".parse().unwrap()];
    assert!(
        res.cidr_identities
            .contains_key(&"192.0.2.128/25".parse().unwrap())
    );
    let ds = p.deathstars[0];
    let ep = res.endpoint(ds.endpoint_id).unwrap();
    let mut want = Vec::new();
    for id in [p.tiefighter.identity, ds.identity, p.xwing.identity, cidr] {
        want.push(allow(id, TCP, 80, 80));
        want.push(allow(id, UDP, 5000, 5010));
    }
    assert_eq!(ep.ingress.entries, sorted(want));
    assert_eq!(
        ep.ingress.policies.len(),
        2,
        "both policies select the deathstar"
    );
    assert!(
        ep.egress.enforced && ep.egress.entries.is_empty(),
        "Egress type without rules"
    );
    assert_eq!(ep.egress.verdict(reserved::WORLD, UDP, 53), Verdict::Denied);

    // The default-deny policy closes ingress for every pod of the namespace.
    for pod in [p.tiefighter, p.xwing] {
        let ep = res.endpoint(pod.endpoint_id).unwrap();
        assert!(ep.ingress.enforced && ep.ingress.entries.is_empty());
        assert!(!ep.egress.enforced);
    }

    // An empty `from` allows every source; NetworkPolicy selectors use the k8s source.
    let r = repo_with(
        &c,
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: open-80}
spec:
  podSelector: {matchLabels: {class: tiefighter}}
  ingress:
  - ports: [{port: 80}]
  - from:
    - namespaceSelector: {}
"#,
    );
    let ep = r.resolved().endpoint(p.tiefighter.endpoint_id).unwrap();
    let mut want = vec![allow(0, TCP, 80, 80)];
    let mut ids: Vec<u32> = c.pods.iter().map(|p| p.identity).collect();
    ids.sort();
    ids.dedup();
    want.extend(ids.into_iter().map(|id| allow(id, 0, 0, 0)));
    assert_eq!(ep.ingress.entries, sorted(want));
    assert_eq!(
        ep.ingress.verdict(reserved::WORLD, TCP, 80),
        Verdict::Allowed {
            match_type: MatchType::L4Only
        }
    );
}

#[test]
fn failed_apply_leaves_everything_as_it_was() {
    let c = starwars();
    let p = pods(&c);
    let mut repo = repo(&c);
    repo.apply_file(&fixture("rule1-l3-l4.yaml")).unwrap();
    let before_resolved = repo.resolved().clone();
    let before_text = repo.render_text(None);
    let before_rev = repo.revision();

    // The first document is fine and would open the deathstar to everyone; the second is bad.
    let text = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: rule1}
spec:
  endpointSelector: {matchLabels: {class: deathstar}}
  ingress: [{fromEntities: [all]}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: broken}
spec:
  endpointSelector: {}
  ingress:
  - toPorts:
    - ports: [{port: "http"}]
"#;
    let err = repo.apply_text(text, "two.yaml").unwrap_err();
    assert_eq!(err.kind, ErrorKind::Invalid);
    assert_eq!(err.line, Some(16));
    assert_eq!(repo.resolved(), &before_resolved);
    assert_eq!(repo.render_text(None), before_text);
    assert_eq!(repo.revision(), before_rev);
    assert_eq!(repo.policies().count(), 1);

    // The same policy twice in one apply is refused as a whole, too.
    let dup = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: d}\n\
               spec: {endpointSelector: {}, ingress: [{}]}\n";
    let err = repo
        .apply_text(&format!("{dup}---\n{dup}"), "dup.yaml")
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Duplicate);
    assert_eq!(
        err.to_string(),
        "dup.yaml:6: metadata.name: CiliumNetworkPolicy default/d is also defined at dup.yaml:1"
    );
    assert_eq!(repo.resolved(), &before_resolved);

    // Deleting what is not there fails without side effects.
    let err = repo.delete("nope").unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert_eq!(repo.resolved(), &before_resolved);

    // A delete reference can name the namespace and the kind.
    assert!(repo.find("default/rule1").is_ok());
    assert!(repo.find("cnp/default/rule1").is_ok());
    assert!(repo.find("netpol/rule1").is_err());
    assert!(repo.find("other/rule1").is_err());
    repo.apply_text(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: rule1}\n\
         spec: {podSelector: {}}\n",
        "np.yaml",
    )
    .unwrap();
    assert_eq!(repo.delete("rule1").unwrap_err().kind, ErrorKind::Ambiguous);
    let change = repo.delete("netpol/rule1").unwrap();
    assert_eq!(change.deleted[0].kind, PolicyKind::NetworkPolicy);
    assert_eq!(
        repo.resolved().endpoint(p.deathstars[0].endpoint_id),
        before_resolved.endpoint(p.deathstars[0].endpoint_id)
    );
}

#[test]
fn compile_is_deterministic_and_order_independent() {
    let c = starwars();
    let ctx = PolicyContext::from_cluster(&c);
    let mut all = Vec::new();
    for f in [
        "rule1-l3-l4.yaml",
        "deny-tiefighter.yaml",
        "xwing-egress.yaml",
        "netpol.yaml",
    ] {
        all.extend(periscope_datapath::policy::load_file(&fixture(f)).unwrap());
    }
    let a = compile(&all, &ctx, None).unwrap();
    all.reverse();
    let b = compile(&all, &ctx, None).unwrap();
    assert_eq!(a, b);
    for ep in a.endpoints.values() {
        for dir in [&ep.ingress, &ep.egress] {
            assert!(
                dir.entries.windows(2).all(|w| w[0] < w[1]),
                "sorted, no duplicates"
            );
        }
    }
}

#[test]
fn policy_get_renders_text_and_json() {
    let c = starwars();
    let p = pods(&c);
    let mut repo = repo(&c);
    repo.apply_file(&fixture("rule1-l7-http.yaml")).unwrap();
    let ds = p.deathstars[0];
    let text = repo.render_text(Some(ds.endpoint_id));
    println!("{text}");
    assert!(text.starts_with("Revision: 2  (1 policy loaded)\n"));
    assert!(text.contains("CiliumNetworkPolicy default/rule1"));
    assert!(text.contains("\"L7 policy to restrict access to specific HTTP call\""));
    assert!(text.contains(&format!(
        "Endpoint {}  default/{}  identity {}",
        ds.endpoint_id, ds.name, ds.identity
    )));
    assert!(text.contains("  Ingress: enforced (default deny) by default/rule1\n"));
    assert!(text.contains("  Egress: not enforced (all traffic allowed)\n"));
    let tf_row = text
        .lines()
        .find(|l| l.contains(&format!(" {} ", p.tiefighter.identity)))
        .expect("a row for the tiefighter");
    assert!(tf_row.trim_start().starts_with("Allow"));
    assert!(tf_row.contains("80/TCP"));
    assert!(tf_row.contains("k8s:class=tiefighter"));
    assert!(text.contains("HTTP method=POST path=/v1/request-landing"));
    assert_eq!(
        text.matches("Endpoint ").count(),
        1,
        "limited to one endpoint"
    );
    assert!(!text.contains("xwing"));

    let json = repo.render_json(None);
    assert_eq!(json["revision"], 2);
    assert_eq!(json["policies"][0]["name"], "rule1");
    let eps = json["endpoints"].as_array().unwrap();
    assert_eq!(eps.len(), c.pods.len());
    let ds_json = eps
        .iter()
        .find(|e| e["endpoint_id"] == ds.endpoint_id)
        .unwrap();
    assert_eq!(ds_json["ingress"]["enforced"], true);
    assert_eq!(ds_json["egress"]["enforced"], false);
    let entries = ds_json["ingress"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert!(
        entries
            .iter()
            .all(|e| e["port_proto"] == "80/TCP" && e["proto"] == 6)
    );
    assert!(
        entries
            .iter()
            .all(|e| e["l7"]["http"][0]["method"] == "POST")
    );
    assert!(entries.iter().any(|e| {
        e["remote_labels"]
            .as_array()
            .unwrap()
            .contains(&"k8s:class=tiefighter".into())
    }));
}

#[test]
fn context_changes_recompile() {
    let c = starwars();
    let p = pods(&c);
    let without_xwing: Vec<PodInfo> = c
        .pods
        .iter()
        .filter(|x| x.name != "xwing")
        .cloned()
        .collect();
    let mut repo = PolicyRepository::new(PolicyContext::from_pods("default", &without_xwing));
    repo.apply_file(&fixture("netpol.yaml")).unwrap();
    let ds = p.deathstars[0].endpoint_id;
    let before = repo.resolved().endpoint(ds).unwrap().ingress.entries.len();
    let change = repo.set_context(PolicyContext::from_cluster(&c)).unwrap();
    assert!(change.endpoints.contains(&ds));
    assert!(
        change.endpoints.contains(&p.xwing.endpoint_id),
        "a new endpoint"
    );
    assert_eq!(
        repo.resolved().endpoint(ds).unwrap().ingress.entries.len(),
        before + 2,
        "the xwing's identity joins the peers"
    );
    assert!(parse_policies("", "empty.yaml").unwrap().is_empty());
}

#[test]
fn policies_keep_their_text_for_saving_and_reloading() {
    let c = starwars();
    let mut a = repo(&c);
    a.apply_file(&fixture("netpol.yaml")).unwrap();
    a.apply_file(&fixture("rule1-l7-http.yaml")).unwrap();
    let saved: Vec<String> = a.policies().map(|p| p.text.clone()).collect();
    assert!(saved.iter().all(|t| t.contains("kind: ")));
    let mut b = repo(&c);
    b.apply_text(&saved.join("\n---\n"), "saved.yaml").unwrap();
    let rules = |r: &PolicyRepository| {
        r.policies()
            .map(|p| (p.key.clone(), p.rules.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(rules(&a), rules(&b));
    assert_eq!(a.resolved(), b.resolved());
}
