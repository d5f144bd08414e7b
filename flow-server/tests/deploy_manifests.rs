//! Renders the Helm chart in deploy/helm/periscope and checks the Kubernetes objects it makes
//! (kinds, images, ports, mounts, RBAC, selectors), and that deploy/kubernetes/ is the chart
//! rendered with its defaults.
//!
//! `helm` is not available from our package registries, so a minimal renderer here implements
//! the subset of Go templates the chart uses: `{{ .Values.x.y }}`, `.Release.Name/Namespace`,
//! `.Chart.*`, `| quote`, `toYaml … | nindent N`, `if`/`else`/`end`, comments and `{{-`/`-}}`
//! trimming. Anything else fails the test, which keeps the chart inside that subset.
//!
//! Regenerate the plain manifests with
//! `PERISCOPE_WRITE_MANIFESTS=1 cargo test -p periscope-flow-server --test deploy_manifests`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use periscope_flow_server::metrics::{DEFAULT_METRICS, parse_metrics};
use serde_yaml::{Mapping, Value};

const RELEASE: &str = "periscope";
const NAMESPACE: &str = "periscope";
const IMAGE: &str = "ghcr.io/periscope/periscope:0.1.0";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn chart_dir() -> PathBuf {
    repo().join("deploy/helm/periscope")
}

fn read_yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `a.b.c` lookup; `None` if any step is missing.
fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = v;
    for key in path.split('.').filter(|k| !k.is_empty()) {
        cur = match key.parse::<usize>() {
            Ok(i) => cur.as_sequence()?.get(i)?,
            Err(_) => cur.as_mapping()?.get(key)?,
        };
    }
    Some(cur)
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::Sequence(s)) => !s.is_empty(),
        Some(Value::Mapping(m)) => !m.is_empty(),
        Some(Value::Tagged(_)) => true,
    }
}

struct Ctx {
    values: Value,
    chart: Value,
    release: String,
    namespace: String,
}

impl Ctx {
    fn resolve(&self, expr: &str) -> Result<Option<Value>, String> {
        let expr = expr.trim();
        if let Some(path) = expr.strip_prefix(".Values.") {
            return Ok(lookup(&self.values, path).cloned());
        }
        if let Some(path) = expr.strip_prefix(".Chart.") {
            return Ok(
                lookup(&self.chart, &(path[..1].to_ascii_lowercase() + &path[1..])).cloned(),
            );
        }
        match expr {
            ".Release.Name" => Ok(Some(Value::String(self.release.clone()))),
            ".Release.Namespace" => Ok(Some(Value::String(self.namespace.clone()))),
            _ => Err(format!("unsupported expression {expr:?}")),
        }
    }
}

fn scalar(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!("not a scalar: {other:?}")),
    }
}

fn nindent(text: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    let mut out = String::new();
    for line in text.trim_end().lines() {
        out.push('\n');
        out.push_str(&pad);
        out.push_str(line);
    }
    out
}

fn eval(action: &str, ctx: &Ctx) -> Result<String, String> {
    let mut stages = action.split('|').map(str::trim);
    let first = stages.next().unwrap_or("");
    let mut out = if let Some(expr) = first.strip_prefix("toYaml ") {
        let v = ctx.resolve(expr)?.ok_or(format!("missing value {expr}"))?;
        serde_yaml::to_string(&v).map_err(|e| e.to_string())?
    } else {
        let v = ctx
            .resolve(first)?
            .ok_or(format!("missing value {first}"))?;
        scalar(&v)?
    };
    for stage in stages {
        out = match stage.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["quote"] => format!("\"{}\"", out.replace('\\', "\\\\").replace('"', "\\\"")),
            ["nindent", n] => nindent(&out, n.parse().map_err(|_| format!("bad nindent {n}"))?),
            _ => return Err(format!("unsupported pipeline stage {stage:?}")),
        };
    }
    Ok(out)
}

/// Renders one template; errors name the unsupported construct.
fn render_template(text: &str, ctx: &Ctx) -> Result<String, String> {
    // Split into text and actions, applying `{{-` / `-}}` whitespace trimming.
    let mut parts: Vec<(bool, String)> = Vec::new();
    let mut rest = text;
    let mut trim_next = false;
    while let Some(start) = rest.find("{{") {
        let mut before = rest[..start].to_string();
        if trim_next {
            before = before.trim_start().to_string();
        }
        let end = rest[start..].find("}}").ok_or("unclosed {{")? + start;
        let mut inner = &rest[start + 2..end];
        if let Some(s) = inner.strip_prefix('-') {
            before = before.trim_end().to_string();
            inner = s;
        }
        trim_next = false;
        if let Some(s) = inner.strip_suffix('-') {
            trim_next = true;
            inner = s;
        }
        parts.push((false, before));
        parts.push((true, inner.trim().to_string()));
        rest = &rest[end + 2..];
    }
    let tail = if trim_next { rest.trim_start() } else { rest };
    parts.push((false, tail.to_string()));

    let mut out = String::new();
    // (condition of this block, whether we are in its else branch)
    let mut stack: Vec<(bool, bool)> = Vec::new();
    let active = |stack: &[(bool, bool)]| stack.iter().all(|&(c, in_else)| c != in_else);
    for (is_action, s) in parts {
        if !is_action {
            if active(&stack) {
                out.push_str(&s);
            }
            continue;
        }
        if s.starts_with("/*") && s.ends_with("*/") {
            continue;
        }
        if let Some(expr) = s.strip_prefix("if ") {
            let cond = truthy(ctx.resolve(expr)?.as_ref());
            stack.push((cond, false));
        } else if s == "else" {
            let top = stack.last_mut().ok_or("else without if")?;
            top.1 = true;
        } else if s == "end" {
            stack.pop().ok_or("end without if")?;
        } else if active(&stack) {
            out.push_str(&eval(&s, ctx)?);
        }
    }
    if !stack.is_empty() {
        return Err("unterminated if".into());
    }
    Ok(out)
}

fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(bv) => merge(bv, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// Renders every template with `overrides` merged onto values.yaml; returns the documents.
fn render_chart(overrides: &str) -> Vec<Value> {
    let mut values = read_yaml(&chart_dir().join("values.yaml"));
    let over: Value = serde_yaml::from_str(overrides).expect("override yaml");
    if !over.is_null() {
        merge(&mut values, &over);
    }
    let ctx = Ctx {
        values,
        chart: read_yaml(&chart_dir().join("Chart.yaml")),
        release: RELEASE.into(),
        namespace: NAMESPACE.into(),
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(chart_dir().join("templates"))
        .expect("templates dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.ends_with(".yaml") && !name.starts_with('_')
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no templates");
    let mut docs = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("template");
        let rendered =
            render_template(&text, &ctx).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        for chunk in split_docs(&rendered) {
            let v: Value = serde_yaml::from_str(&chunk).unwrap_or_else(|e| {
                panic!(
                    "{}: rendered YAML does not parse: {e}\n{chunk}",
                    f.display()
                )
            });
            if !v.is_null() {
                docs.push(v);
            }
        }
    }
    docs
}

fn split_docs(text: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    for line in text.lines() {
        if line.trim_end() == "---" {
            out.push(String::new());
        } else if let Some(cur) = out.last_mut() {
            cur.push_str(line);
            cur.push('\n');
        }
    }
    out
}

fn s<'a>(v: &'a Value, path: &str) -> &'a str {
    lookup(v, path)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("missing string {path} in {v:?}"))
}

fn kind_of(v: &Value) -> &str {
    s(v, "kind")
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| kind_of(d) == kind && s(d, "metadata.name") == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_mapping)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_string(), scalar(v).ok()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// `sel` is non-empty and every pair appears in `labels`.
fn selects(sel: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !sel.is_empty() && sel.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn seq<'a>(v: &'a Value, path: &str) -> &'a [Value] {
    lookup(v, path)
        .and_then(Value::as_sequence)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn container_ports(c: &Value) -> BTreeMap<String, u64> {
    seq(c, "ports")
        .iter()
        .map(|p| {
            let port = lookup(p, "containerPort")
                .and_then(Value::as_u64)
                .expect("containerPort");
            (s(p, "name").to_string(), port)
        })
        .collect()
}

fn args(c: &Value) -> Vec<String> {
    seq(c, "args")
        .iter()
        .filter_map(|a| a.as_str().map(String::from))
        .collect()
}

fn check_workload_basics(docs: &[Value]) {
    for d in docs {
        for key in ["apiVersion", "kind", "metadata.name"] {
            assert!(lookup(d, key).is_some(), "{key} missing in {d:?}");
        }
        let cluster_scoped = matches!(
            kind_of(d),
            "ClusterRole" | "ClusterRoleBinding" | "Namespace"
        );
        if !cluster_scoped {
            assert_eq!(s(d, "metadata.namespace"), NAMESPACE, "{d:?}");
        }
        if matches!(kind_of(d), "DaemonSet" | "Deployment") {
            let sel = string_map(lookup(d, "spec.selector.matchLabels"));
            let labels = string_map(lookup(d, "spec.template.metadata.labels"));
            assert!(
                selects(&sel, &labels),
                "selector does not match pod labels: {d:?}"
            );
            for c in seq(d, "spec.template.spec.containers") {
                assert_eq!(s(c, "image"), IMAGE);
            }
            let sa = s(d, "spec.template.spec.serviceAccountName");
            find(docs, "ServiceAccount", sa);
        }
    }
}

fn pod_labels(d: &Value) -> BTreeMap<String, String> {
    string_map(lookup(d, "spec.template.metadata.labels"))
}

/// The checks every default-valued render must pass.
fn check_defaults(docs: &[Value]) {
    let mut kinds: Vec<&str> = docs.iter().map(kind_of).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        vec![
            "ClusterRole",
            "ClusterRoleBinding",
            "DaemonSet",
            "Deployment",
            "Service",
            "Service",
            "Service",
            "ServiceAccount",
            "ServiceAccount",
            "ServiceMonitor"
        ]
    );
    check_workload_basics(docs);

    // Node agent.
    let ds = find(docs, "DaemonSet", "periscope-agent");
    let pod = lookup(ds, "spec.template.spec").expect("pod spec");
    assert_eq!(lookup(pod, "hostNetwork"), Some(&Value::Bool(true)));
    let c = &seq(pod, "containers")[0];
    assert_eq!(
        lookup(c, "securityContext.privileged"),
        Some(&Value::Bool(true))
    );
    assert_eq!(seq(c, "command"), [Value::String("periscope-agent".into())]);
    let a = args(c);
    for want in [
        "--node-name=$(NODE_NAME)",
        "--listen-address=0.0.0.0:4244",
        "--advertise-address=$(NODE_IP):4244",
        "--cluster-name=default",
        "--metrics-address=0.0.0.0:9965",
        "--ring-capacity=4095",
        "--aggregation=medium",
    ] {
        assert!(a.iter().any(|x| x == want), "{want} not in {a:?}");
    }
    let metrics = a
        .iter()
        .find_map(|x| x.strip_prefix("--metrics="))
        .expect("--metrics arg");
    assert_eq!(
        metrics, DEFAULT_METRICS,
        "chart default differs from the dashboards' metrics"
    );
    assert_eq!(parse_metrics(metrics).expect("valid --metrics").len(), 7);
    let node_name = seq(c, "env")
        .iter()
        .find(|e| s(e, "name") == "NODE_NAME")
        .expect("NODE_NAME env");
    assert_eq!(
        s(node_name, "valueFrom.fieldRef.fieldPath"),
        "spec.nodeName"
    );
    let ports = container_ports(c);
    assert_eq!(ports.get("grpc"), Some(&4244));
    assert_eq!(ports.get("metrics"), Some(&9965));
    let volumes: BTreeMap<&str, &Value> = seq(pod, "volumes")
        .iter()
        .map(|v| (s(v, "name"), v))
        .collect();
    let mounts: BTreeMap<&str, &str> = seq(c, "volumeMounts")
        .iter()
        .map(|m| (s(m, "mountPath"), s(m, "name")))
        .collect();
    for (path, host) in [
        ("/sys/fs/bpf", "/sys/fs/bpf"),
        ("/sys/fs/cgroup", "/sys/fs/cgroup"),
    ] {
        let vol = mounts
            .get(path)
            .unwrap_or_else(|| panic!("{path} not mounted"));
        assert_eq!(s(volumes[vol], "hostPath.path"), host);
    }
    let bpf = seq(c, "volumeMounts")
        .iter()
        .find(|m| s(m, "mountPath") == "/sys/fs/bpf")
        .expect("bpffs");
    assert_eq!(s(bpf, "mountPropagation"), "Bidirectional");

    // RBAC: the agent's account may read the metadata it enriches flows with.
    let sa = s(pod, "serviceAccountName");
    let crb = find(docs, "ClusterRoleBinding", "periscope-agent");
    let role = find(docs, "ClusterRole", s(crb, "roleRef.name"));
    let subject = &seq(crb, "subjects")[0];
    assert_eq!(
        (
            s(subject, "kind"),
            s(subject, "name"),
            s(subject, "namespace")
        ),
        ("ServiceAccount", sa, NAMESPACE)
    );
    let core = seq(role, "rules")
        .iter()
        .find(|r| seq(r, "apiGroups").iter().any(|g| g.as_str() == Some("")))
        .expect("core rule");
    let strs = |v: &[Value]| {
        v.iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect::<Vec<_>>()
    };
    for res in ["pods", "namespaces", "services", "endpoints", "nodes"] {
        assert!(
            strs(seq(core, "resources")).iter().any(|r| r == res),
            "{res}"
        );
    }
    assert_eq!(strs(seq(core, "verbs")), vec!["get", "list", "watch"]);

    // Services select the right pods on the right ports.
    let agent_labels = pod_labels(ds);
    let peer = find(docs, "Service", "periscope-peer");
    assert!(selects(
        &string_map(lookup(peer, "spec.selector")),
        &agent_labels
    ));
    assert_eq!(
        lookup(peer, "spec.ports.0.port").and_then(Value::as_u64),
        Some(4244)
    );
    let msvc = find(docs, "Service", "periscope-metrics");
    assert!(selects(
        &string_map(lookup(msvc, "spec.selector")),
        &agent_labels
    ));
    assert_eq!(
        lookup(msvc, "spec.ports.0.port").and_then(Value::as_u64),
        Some(9965)
    );
    assert_eq!(s(msvc, "spec.ports.0.name"), "metrics");
    assert_eq!(s(msvc, "spec.ports.0.targetPort"), "metrics");
    let sm = find(docs, "ServiceMonitor", "periscope-metrics");
    assert!(selects(
        &string_map(lookup(sm, "spec.selector.matchLabels")),
        &string_map(lookup(msvc, "metadata.labels"))
    ));
    assert_eq!(s(sm, "spec.endpoints.0.port"), "metrics");
    assert_eq!(s(sm, "spec.endpoints.0.path"), "/metrics");

    // Relay.
    let relay = find(docs, "Deployment", "periscope-relay");
    let rc = &seq(relay, "spec.template.spec.containers")[0];
    assert_eq!(
        seq(rc, "command"),
        [Value::String("periscope-relay".into())]
    );
    assert_eq!(container_ports(rc).get("grpc"), Some(&4245));
    assert!(
        args(rc)
            .iter()
            .any(|a| a == "--peer-service=periscope-peer.periscope.svc:4244"),
        "{:?}",
        args(rc)
    );
    let rsvc = find(docs, "Service", "periscope-relay");
    assert!(selects(
        &string_map(lookup(rsvc, "spec.selector")),
        &pod_labels(relay)
    ));
    assert_eq!(
        lookup(rsvc, "spec.ports.0.port").and_then(Value::as_u64),
        Some(4245)
    );
    assert_eq!(s(rsvc, "spec.ports.0.targetPort"), "grpc");
}

fn namespace_doc() -> Value {
    let mut m = Mapping::new();
    m.insert("apiVersion".into(), "v1".into());
    m.insert("kind".into(), "Namespace".into());
    let mut meta = Mapping::new();
    meta.insert("name".into(), NAMESPACE.into());
    m.insert("metadata".into(), Value::Mapping(meta));
    Value::Mapping(m)
}

fn to_yaml_stream(header: &str, docs: &[Value]) -> String {
    let mut out = String::from(header);
    for (i, d) in docs.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&serde_yaml::to_string(d).expect("yaml"));
    }
    out
}

fn read_docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    split_docs(&text)
        .iter()
        .map(|c| {
            serde_yaml::from_str::<Value>(c).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .filter(|v| !v.is_null())
        .collect()
}

#[test]
fn chart_renders_and_plain_manifests_match_it() {
    let docs = render_chart("");
    check_defaults(&docs);

    let (monitors, rest): (Vec<Value>, Vec<Value>) = docs
        .into_iter()
        .partition(|d| kind_of(d) == "ServiceMonitor");
    let mut main = vec![namespace_doc()];
    main.extend(rest);
    // Apply order: accounts and RBAC before the workloads that use them.
    let rank = |d: &Value| {
        [
            "Namespace",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Service",
            "DaemonSet",
            "Deployment",
        ]
        .iter()
        .position(|k| *k == kind_of(d))
        .unwrap_or(usize::MAX)
    };
    main.sort_by_key(rank);
    let dir = repo().join("deploy/kubernetes");
    let header = "# Generated from deploy/helm/periscope with default values (release and namespace \"periscope\").\n\
                  # Regenerate: PERISCOPE_WRITE_MANIFESTS=1 cargo test -p periscope-flow-server --test deploy_manifests\n";
    if std::env::var_os("PERISCOPE_WRITE_MANIFESTS").is_some() {
        std::fs::write(dir.join("periscope.yaml"), to_yaml_stream(header, &main)).expect("write");
        std::fs::write(
            dir.join("servicemonitor.yaml"),
            to_yaml_stream(header, &monitors),
        )
        .expect("write");
    }
    let plain = read_docs(&dir.join("periscope.yaml"));
    assert_eq!(
        plain, main,
        "deploy/kubernetes/periscope.yaml is stale: regenerate it"
    );
    let plain_sm = read_docs(&dir.join("servicemonitor.yaml"));
    assert_eq!(
        plain_sm, monitors,
        "deploy/kubernetes/servicemonitor.yaml is stale: regenerate it"
    );
    let mut all = plain;
    all.extend(plain_sm);
    check_workload_basics(&all);
}

#[test]
fn chart_values_switch_features() {
    let docs = render_chart(
        "tls: {enabled: true, secretName: my-certs}\n\
         relay: {enabled: false}\n\
         metrics: {serviceMonitor: {enabled: false}, port: 9999, plugins: \"drop:sourceContext=namespace tcp\"}\n\
         agent: {aggregation: none, ringCapacity: 65535, port: 5000}\n\
         image: {tag: dev}",
    );
    let kinds: Vec<&str> = docs.iter().map(kind_of).collect();
    assert!(
        !kinds.contains(&"Deployment") && !kinds.contains(&"ServiceMonitor"),
        "{kinds:?}"
    );
    assert_eq!(kinds.iter().filter(|k| **k == "ServiceAccount").count(), 1);
    let ds = find(&docs, "DaemonSet", "periscope-agent");
    let c = &seq(ds, "spec.template.spec.containers")[0];
    assert_eq!(s(c, "image"), "ghcr.io/periscope/periscope:dev");
    let a = args(c);
    for want in [
        "--aggregation=none",
        "--ring-capacity=65535",
        "--listen-address=0.0.0.0:5000",
        "--metrics-address=0.0.0.0:9999",
        "--metrics=drop:sourceContext=namespace tcp",
        "--tls-cert=/var/lib/periscope/tls/tls.crt",
        "--tls-key=/var/lib/periscope/tls/tls.key",
        "--tls-client-ca=/var/lib/periscope/tls/ca.crt",
    ] {
        assert!(a.iter().any(|x| x == want), "{want} not in {a:?}");
    }
    let ports = container_ports(c);
    assert_eq!((ports["grpc"], ports["metrics"]), (5000, 9999));
    let tls = seq(ds, "spec.template.spec.volumes")
        .iter()
        .find(|v| s(v, "name") == "tls")
        .expect("tls volume");
    assert_eq!(s(tls, "secret.secretName"), "my-certs");
    assert!(
        seq(c, "volumeMounts")
            .iter()
            .any(|m| s(m, "mountPath") == "/var/lib/periscope/tls")
    );

    // TLS on the relay too, and custom ServiceMonitor labels.
    let docs = render_chart(
        "tls: {enabled: true}\nmetrics: {serviceMonitor: {labels: {release: kube-prometheus}}}",
    );
    let relay = find(&docs, "Deployment", "periscope-relay");
    let rc = &seq(relay, "spec.template.spec.containers")[0];
    assert!(
        args(rc)
            .iter()
            .any(|a| a == "--node-tls-ca=/var/lib/periscope/tls/ca.crt")
    );
    assert_eq!(
        s(relay, "spec.template.spec.volumes.0.secret.secretName"),
        "periscope-tls"
    );
    let sm = find(&docs, "ServiceMonitor", "periscope-metrics");
    assert_eq!(s(sm, "metadata.labels.release"), "kube-prometheus");
    let labels = string_map(lookup(sm, "metadata.labels"));
    assert_eq!(
        labels.get("app.kubernetes.io/name").map(String::as_str),
        Some("periscope-metrics")
    );
}

#[test]
fn renderer_rejects_what_it_does_not_implement() {
    let ctx = Ctx {
        values: serde_yaml::from_str("a: {b: 1, s: x}").expect("yaml"),
        chart: Value::Null,
        release: "r".into(),
        namespace: "n".into(),
    };
    assert_eq!(
        render_template("x: {{ .Values.a.b }}", &ctx).as_deref(),
        Ok("x: 1")
    );
    assert_eq!(
        render_template("a\n{{- if .Values.a.s }}\nb{{ end }}", &ctx).as_deref(),
        Ok("a\nb")
    );
    assert_eq!(
        render_template("{{ if .Values.nope }}y{{ else }}n{{ end }}", &ctx).as_deref(),
        Ok("n")
    );
    assert!(render_template("{{ include \"x\" . }}", &ctx).is_err());
    assert!(render_template("{{ .Values.missing }}", &ctx).is_err());
    assert!(render_template("{{ .Values.a.s | upper }}", &ctx).is_err());
    assert!(render_template("{{ if .Values.a.s }}", &ctx).is_err());
}
