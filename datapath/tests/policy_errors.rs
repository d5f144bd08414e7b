//! Invalid policy input: every error names the file, the line (and column) and the field, and
//! says what is wrong. Pure: no root needed.

use std::path::Path;

use periscope_datapath::policy::{ErrorKind, PolicyError, load_file, parse_policies};

fn err(text: &str) -> PolicyError {
    parse_policies(text, "bad.yaml").expect_err("must be rejected")
}

/// A valid CNP with `body` spliced in as the `spec`'s ingress rule list.
fn cnp_with_ingress(body: &str) -> String {
    format!(
        "apiVersion: cilium.io/v2\n\
         kind: CiliumNetworkPolicy\n\
         metadata:\n  name: rule1\n\
         spec:\n  endpointSelector:\n    matchLabels:\n      class: deathstar\n  ingress:\n{body}"
    )
}

#[test]
fn bad_yaml_syntax() {
    let e = err("apiVersion: cilium.io/v2\nkind: [CiliumNetworkPolicy\nmetadata: {}\n");
    assert_eq!(e.kind, ErrorKind::Syntax);
    assert_eq!(e.file.as_deref(), Some("bad.yaml"));
    assert!(e.line.is_some());
    assert!(e.to_string().starts_with("bad.yaml:"), "{e}");

    let e = err("apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\n  metadata: x\n");
    assert_eq!(e.kind, ErrorKind::Syntax);
    assert_eq!(e.line, Some(3), "{e}");

    // In a later document, locations quoted inside the message are file lines too, and the
    // error's own location is not repeated.
    let e = err(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: a}\nspec: {}\n---\nkind: \"unterminated\n",
    );
    assert_eq!(e.kind, ErrorKind::Syntax);
    assert_eq!(
        e.to_string(),
        "bad.yaml:6:20: found unexpected end of stream, while scanning a quoted scalar at line 6 column 7"
    );
}

#[test]
fn unknown_field_is_rejected_with_its_path() {
    let text = cnp_with_ingress(
        "  - fromEndpoints:\n    - matchLabels:\n        org: empire\n    toPort:\n    - ports: []\n",
    );
    let e = err(&text);
    assert_eq!(e.kind, ErrorKind::Schema);
    assert_eq!(e.field.as_deref(), Some("spec.ingress[0].toPort"));
    assert_eq!((e.line, e.column), (Some(13), Some(5)));
    assert!(
        e.to_string()
            .starts_with("bad.yaml:13:5: spec.ingress[0].toPort: unknown field `toPort`"),
        "{e}"
    );

    let e = err(
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: x\n  nmespace: y\nspec: {}\n",
    );
    assert_eq!(e.field.as_deref(), Some("metadata.nmespace"));
    assert_eq!(e.line, Some(5));
}

#[test]
fn bad_port_names_the_value() {
    let text = cnp_with_ingress(
        "  - fromEndpoints:\n    - matchLabels:\n        org: empire\n    toPorts:\n    - ports:\n      - port: \"8o\"\n        protocol: TCP\n",
    );
    let e = err(&text);
    assert_eq!(e.kind, ErrorKind::Invalid);
    assert_eq!(
        e.to_string(),
        "bad.yaml:15:15: spec.ingress[0].toPorts[0].ports[0].port: invalid port \"8o\": \
         expected a number 0-65535 (named ports are not supported)"
    );

    let text = cnp_with_ingress("  - toPorts:\n    - ports:\n      - port: 70000\n");
    let e = err(&text);
    assert_eq!(
        e.to_string(),
        "bad.yaml:12:15: spec.ingress[0].toPorts[0].ports[0].port: invalid port 70000: out of range 0-65535"
    );
}

#[test]
fn end_port_below_port_points_at_end_port() {
    let text =
        cnp_with_ingress("  - toPorts:\n    - ports:\n      - port: \"80\"\n        endPort: 70\n");
    let e = err(&text);
    assert_eq!(e.kind, ErrorKind::Invalid);
    assert_eq!(
        e.to_string(),
        "bad.yaml:13:9: spec.ingress[0].toPorts[0].ports[0].endPort: endPort 70 is below port 80"
    );
}

#[test]
fn bad_protocol() {
    let text = cnp_with_ingress(
        "  - toPorts:\n    - ports:\n      - port: \"80\"\n        protocol: TCPP\n",
    );
    let e = err(&text);
    assert_eq!(e.kind, ErrorKind::Invalid);
    assert_eq!(
        e.to_string(),
        "bad.yaml:13:19: spec.ingress[0].toPorts[0].ports[0].protocol: invalid protocol \"TCPP\": expected TCP, UDP, SCTP or ANY"
    );
    let text = cnp_with_ingress(
        "  - toPorts:\n    - ports:\n      - port: \"0\"\n        protocol: ICMP\n",
    );
    let e = err(&text);
    assert_eq!(e.kind, ErrorKind::Unsupported);
    assert_eq!(
        e.field.as_deref(),
        Some("spec.ingress[0].toPorts[0].ports[0].protocol")
    );
}

#[test]
fn unsupported_kind_and_api_version() {
    let e = err("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n");
    assert_eq!(e.kind, ErrorKind::Unsupported);
    assert_eq!(
        e.to_string(),
        "bad.yaml:2:1: kind: unsupported kind \"Pod\": expected CiliumNetworkPolicy, \
         CiliumClusterwideNetworkPolicy or NetworkPolicy"
    );
    let e =
        err("# header\nkind: CiliumNetworkPolicy\napiVersion: cilium.io/v1\nmetadata: {name: x}\n");
    assert_eq!(
        e.to_string(),
        "bad.yaml:3:1: apiVersion: unsupported apiVersion \"cilium.io/v1\" for \
         CiliumNetworkPolicy: expected cilium.io/v2"
    );
    let e = err("apiVersion: cilium.io/v2\nkind: NetworkPolicy\nmetadata: {name: x}\n");
    assert_eq!(e.field.as_deref(), Some("apiVersion"));
    let e = err("kind: NetworkPolicy\nmetadata: {name: x}\n");
    assert_eq!(
        e.to_string(),
        "bad.yaml:1:1: apiVersion: missing field `apiVersion`"
    );
    let e = err("- a\n- b\n");
    assert_eq!(e.kind, ErrorKind::Schema);
}

#[test]
fn errors_in_later_documents_have_file_line_numbers() {
    let good = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/policies/rule1-l3-l4.yaml"),
    )
    .unwrap();
    let good_lines = good.lines().count();
    let text = format!(
        "{good}---\napiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: two\nspec:\n  endpointSelector: {{}}\n  egress:\n  - toEntities: [wrold]\n"
    );
    let e = err(&text);
    assert_eq!(e.kind, ErrorKind::Invalid);
    assert_eq!(e.line, Some(good_lines + 9), "{e}");
    assert_eq!(e.field.as_deref(), Some("spec.egress[0].toEntities[0]"));
    assert!(e.message.starts_with("unknown variant `wrold`"), "{e}");
}

#[test]
fn unsupported_fields_say_so() {
    let text = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: f}\nspec:\n  endpointSelector: {}\n  egress:\n  - toFQDNs:\n    - matchName: example.com\n";
    let e = err(text);
    assert_eq!(e.kind, ErrorKind::Unsupported);
    assert_eq!(
        e.to_string(),
        "bad.yaml:8:5: spec.egress[0].toFQDNs: not supported by periscope"
    );
    let text = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: f}\nspec:\n  nodeSelector: {}\n  ingress: [{}]\n";
    assert_eq!(err(text).kind, ErrorKind::Unsupported);
}

#[test]
fn cross_field_checks_are_located() {
    // No endpointSelector: reported at the spec mapping.
    let e = err(
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: f}\nspec:\n  ingress: [{}]\n",
    );
    assert_eq!(
        e.to_string(),
        "bad.yaml:5:3: spec.endpointSelector: endpointSelector is required"
    );
    // Neither spec nor specs.
    let e = err("apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: f}\n");
    assert_eq!(e.field.as_deref(), Some("spec"));
    // except outside the CIDR: at the except key.
    let text = cnp_with_ingress(
        "  - fromCIDRSet:\n    - cidr: 10.0.0.0/8\n      except:\n      - 192.168.0.0/16\n",
    );
    let e = err(&text);
    assert_eq!(
        e.to_string(),
        "bad.yaml:12:7: spec.ingress[0].fromCIDRSet[0].except: 192.168.0.0/16 is not inside 10.0.0.0/8"
    );
    // In without values.
    let text = cnp_with_ingress(
        "  - fromEndpoints:\n    - matchExpressions:\n      - key: org\n        operator: In\n",
    );
    let e = err(&text);
    assert_eq!(
        e.field.as_deref(),
        Some("spec.ingress[0].fromEndpoints[0].matchExpressions[0].values")
    );
    assert_eq!(e.line, Some(12), "{e}");
    // Unknown operator.
    let text = cnp_with_ingress(
        "  - fromEndpoints:\n    - matchExpressions:\n      - {key: org, operator: Equals, values: [a]}\n",
    );
    let e = err(&text);
    assert_eq!(e.kind, ErrorKind::Invalid);
    assert!(e.message.starts_with("unknown variant `Equals`"), "{e}");
    // Bad label value in matchLabels: names the key.
    let text = cnp_with_ingress("  - fromEndpoints:\n    - matchLabels:\n        org: \"-bad\"\n");
    let e = err(&text);
    assert_eq!(
        e.to_string(),
        "bad.yaml:12:9: spec.ingress[0].fromEndpoints[0].matchLabels.org: invalid label value \"-bad\""
    );
    // Bad CIDR.
    let text = cnp_with_ingress("  - fromCIDR: [10.0.0.0/33]\n");
    let e = err(&text);
    assert_eq!(e.field.as_deref(), Some("spec.ingress[0].fromCIDR[0]"));
    assert_eq!(e.message, "invalid CIDR \"10.0.0.0/33\"");
    // A bad regular expression in an HTTP rule.
    let text = cnp_with_ingress(
        "  - toPorts:\n    - ports: [{port: \"80\", protocol: TCP}]\n      rules:\n        http:\n        - path: \"/v1/(\"\n",
    );
    let e = err(&text);
    assert_eq!(
        e.field.as_deref(),
        Some("spec.ingress[0].toPorts[0].rules.http[0].path")
    );
    assert_eq!(e.line, Some(14));
    assert!(
        e.message
            .starts_with("invalid regular expression \"/v1/(\""),
        "{e}"
    );
    // HTTP rules on UDP.
    let text = cnp_with_ingress(
        "  - toPorts:\n    - ports: [{port: \"53\", protocol: UDP}]\n      rules:\n        http: [{}]\n",
    );
    let e = err(&text);
    assert_eq!(e.field.as_deref(), Some("spec.ingress[0].toPorts[0].rules"));
    assert_eq!(e.line, Some(12));
    // L7 rules are not allowed in deny rules.
    let text = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: f}\nspec:\n  endpointSelector: {}\n  ingressDeny:\n  - toPorts:\n    - ports: [{port: \"80\"}]\n      rules: {http: [{}]}\n";
    let e = err(text);
    assert_eq!(e.kind, ErrorKind::Schema);
    assert_eq!(
        e.field.as_deref(),
        Some("spec.ingressDeny[0].toPorts[0].rules")
    );
}

#[test]
fn network_policy_errors() {
    let np = |spec: &str| {
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: np\nspec:\n{spec}"
        )
    };
    let e = err(&np(
        "  podSelector: {}\n  ingress:\n  - from:\n    - ipBlock: {cidr: 10.0.0.0/8}\n      podSelector: {}\n",
    ));
    assert_eq!(e.field.as_deref(), Some("spec.ingress[0].from[0].ipBlock"));
    assert_eq!(e.line, Some(9), "{e}");
    let e = err(&np(
        "  podSelector: {}\n  ingress:\n  - ports:\n    - port: http\n",
    ));
    assert_eq!(e.field.as_deref(), Some("spec.ingress[0].ports[0].port"));
    let e = err(&np("  podSelector: {}\n  policyTypes: [Ingres]\n"));
    assert_eq!(e.field.as_deref(), Some("spec.policyTypes[0]"));
    let e = err(&np(
        "  podSelector:\n    matchLabels:\n      k8s:org: empire\n",
    ));
    assert_eq!(e.field.as_deref(), Some("spec.podSelector"));
    assert!(e.message.contains("no source prefix"), "{e}");
    let e = err(&np(
        "  podSelector: {}\n  ingress:\n  - ports:\n    - {protocol: ANY, port: 80}\n",
    ));
    assert_eq!(
        e.field.as_deref(),
        Some("spec.ingress[0].ports[0].protocol")
    );
    let e = err(
        "apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata:\n  name: c\n  namespace: default\nspec:\n  endpointSelector: {}\n  ingress: [{}]\n",
    );
    assert_eq!(
        e.to_string(),
        "bad.yaml:5:3: metadata.namespace: a clusterwide policy has no namespace"
    );
}

#[test]
fn files_are_named_in_errors() {
    let missing = Path::new("/nonexistent/policy.yaml");
    let e = load_file(missing).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Io);
    assert!(
        e.to_string().starts_with("/nonexistent/policy.yaml: "),
        "{e}"
    );

    let dir = std::env::temp_dir().join(format!("periscope-policy-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rule1.yaml");
    std::fs::write(
        &path,
        cnp_with_ingress("  - toPorts:\n    - ports:\n      - port: \"8o\"\n"),
    )
    .unwrap();
    let e = load_file(&path).unwrap_err();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        e.to_string(),
        format!(
            "{}:12:15: spec.ingress[0].toPorts[0].ports[0].port: invalid port \"8o\": expected a number 0-65535 (named ports are not supported)",
            path.display()
        )
    );
}
