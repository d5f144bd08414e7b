//! Reading policy files: multi-document YAML, dispatched on `apiVersion`/`kind`, converted into
//! the normalized [`Policy`] model. Every error names the file, line, column and field.

use std::path::Path;

use super::api::{CiliumNetworkPolicy, NetworkPolicy};
use super::error::{ErrorKind, PolicyError};
use super::model::{self, Policy, PolicyKey, PolicyKind};
use super::source::{Document, locate_keys, root_mapping, split_documents, yaml_error};

pub const CILIUM_API_VERSION: &str = "cilium.io/v2";
pub const NETWORKING_API_VERSION: &str = "networking.k8s.io/v1";

/// The namespace of a namespaced policy without `metadata.namespace`, as kubectl applies it.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Read and parse a policy file.
pub fn load_file(path: &Path) -> Result<Vec<Policy>, PolicyError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| PolicyError::new(ErrorKind::Io, e.to_string()).in_file(&file))?;
    parse_policies(&text, &file)
}

/// Parse every policy document in `text`; `file` names it in errors. Documents that hold only
/// comments are skipped; the first bad document fails the whole file.
pub fn parse_policies(text: &str, file: &str) -> Result<Vec<Policy>, PolicyError> {
    split_documents(text)
        .iter()
        .map(|doc| parse_document(doc, file))
        .collect()
}

fn parse_document(doc: &Document, file: &str) -> Result<Policy, PolicyError> {
    let value: serde_yaml::Value =
        serde_yaml::from_str(&doc.text).map_err(|e| yaml_error(&e, doc, file))?;
    let Some(map) = value.as_mapping() else {
        return Err(error_at(
            doc,
            file,
            &[],
            ErrorKind::Schema,
            "a policy document must be a mapping with apiVersion, kind, metadata and spec",
        ));
    };
    let text_of = |key: &str| -> Result<String, PolicyError> {
        match map.get(key) {
            Some(serde_yaml::Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(error_at(
                doc,
                file,
                &[key],
                ErrorKind::Schema,
                "must be a string",
            )),
            None => Err(error_at(
                doc,
                file,
                &[key],
                ErrorKind::Schema,
                format!("missing field `{key}`"),
            )),
        }
    };
    let api_version = text_of("apiVersion")?;
    let kind_name = text_of("kind")?;
    let (kind, want_version) = match kind_name.as_str() {
        "CiliumNetworkPolicy" => (PolicyKind::CiliumNetworkPolicy, CILIUM_API_VERSION),
        "CiliumClusterwideNetworkPolicy" => (
            PolicyKind::CiliumClusterwideNetworkPolicy,
            CILIUM_API_VERSION,
        ),
        "NetworkPolicy" => (PolicyKind::NetworkPolicy, NETWORKING_API_VERSION),
        other => {
            return Err(error_at(
                doc,
                file,
                &["kind"],
                ErrorKind::Unsupported,
                format!(
                    "unsupported kind {other:?}: expected CiliumNetworkPolicy, \
                     CiliumClusterwideNetworkPolicy or NetworkPolicy"
                ),
            ));
        }
    };
    if api_version != want_version {
        return Err(error_at(
            doc,
            file,
            &["apiVersion"],
            ErrorKind::Unsupported,
            format!(
                "unsupported apiVersion {api_version:?} for {kind_name}: expected {want_version}"
            ),
        ));
    }
    let line = doc.first_line + root_mapping(&doc.text).map_or(1, |(l, _)| l);
    match kind {
        PolicyKind::CiliumNetworkPolicy | PolicyKind::CiliumClusterwideNetworkPolicy => {
            let p: CiliumNetworkPolicy =
                serde_yaml::from_str(&doc.text).map_err(|e| yaml_error(&e, doc, file))?;
            let namespace = if kind == PolicyKind::CiliumNetworkPolicy {
                Some(
                    p.metadata
                        .namespace
                        .clone()
                        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string()),
                )
            } else {
                if p.metadata.namespace.is_some() {
                    return Err(error_at(
                        doc,
                        file,
                        &["metadata", "namespace"],
                        ErrorKind::Invalid,
                        "a clusterwide policy has no namespace",
                    ));
                }
                None
            };
            Ok(Policy {
                key: PolicyKey {
                    kind,
                    namespace: namespace.clone(),
                    name: p.metadata.name.clone(),
                },
                file: file.to_string(),
                line,
                text: doc.text.clone(),
                rules: model::from_cnp(&p, namespace.as_deref()),
            })
        }
        PolicyKind::NetworkPolicy => {
            let p: NetworkPolicy =
                serde_yaml::from_str(&doc.text).map_err(|e| yaml_error(&e, doc, file))?;
            let namespace = p
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
            Ok(Policy {
                key: PolicyKey {
                    kind,
                    namespace: Some(namespace.clone()),
                    name: p.metadata.name.clone(),
                },
                file: file.to_string(),
                line,
                text: doc.text.clone(),
                rules: vec![model::from_network_policy(&p, &namespace)],
            })
        }
    }
}

/// An error about a key path of the document's root mapping, located in the text.
fn error_at(
    doc: &Document,
    file: &str,
    keys: &[&str],
    kind: ErrorKind,
    message: impl Into<String>,
) -> PolicyError {
    let root = root_mapping(&doc.text);
    let loc = root.and_then(|(l, c)| {
        if keys.is_empty() {
            Some((l, c))
        } else {
            locate_keys(&doc.text, l, c, keys).or(Some((l, c)))
        }
    });
    PolicyError::new(kind, message)
        .in_file(file)
        .at(loc.map(|(l, _)| l + doc.first_line), loc.map(|(_, c)| c))
        .field(keys.join("."))
}
