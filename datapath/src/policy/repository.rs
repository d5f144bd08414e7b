//! The set of loaded policies and its compiled form. Every change is validated and compiled in
//! full before anything is replaced, so an error leaves the previous policies and resolved
//! policy exactly as they were: a policy is never half-applied.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use ipnet::IpNet;
use serde::Serialize;

use super::compile::{PolicyContext, ResolvedPolicy, compile};
use super::error::{ErrorKind, PolicyError};
use super::model::{Policy, PolicyKey, PolicyKind};
use super::parse::{DEFAULT_NAMESPACE, load_file, parse_policies};
use super::render;

/// What an apply or delete changed, for the kernel side to sync its maps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ChangeSet {
    /// The repository revision after the change.
    pub revision: u64,
    pub added: Vec<PolicyKey>,
    pub updated: Vec<PolicyKey>,
    /// Applied again with identical rules.
    pub unchanged: Vec<PolicyKey>,
    pub deleted: Vec<PolicyKey>,
    /// Endpoints whose resolved policy (either direction) changed; rewrite their policy maps.
    pub endpoints: Vec<u16>,
    /// CIDR identities to add to (or change in) the ipcache.
    pub ipcache_upserts: Vec<(IpNet, u32)>,
    /// CIDR prefixes no policy uses any more.
    pub ipcache_deletes: Vec<IpNet>,
}

impl ChangeSet {
    /// Whether the datapath has nothing to update.
    pub fn is_noop(&self) -> bool {
        self.endpoints.is_empty()
            && self.ipcache_upserts.is_empty()
            && self.ipcache_deletes.is_empty()
    }
}

/// Named policies (by kind, namespace and name) and their compiled result.
#[derive(Debug, Clone)]
pub struct PolicyRepository {
    ctx: PolicyContext,
    policies: BTreeMap<PolicyKey, Policy>,
    resolved: ResolvedPolicy,
    revision: u64,
}

impl PolicyRepository {
    /// An empty repository: nothing is enforced.
    pub fn new(ctx: PolicyContext) -> PolicyRepository {
        let policies = BTreeMap::new();
        // No policies: compiling cannot fail (no CIDR prefixes to allocate).
        let resolved = compile(policies.values(), &ctx, None).unwrap_or_default();
        PolicyRepository {
            ctx,
            policies,
            resolved,
            revision: 1,
        }
    }

    pub fn context(&self) -> &PolicyContext {
        &self.ctx
    }

    pub fn resolved(&self) -> &ResolvedPolicy {
        &self.resolved
    }

    /// Starts at 1 and grows with every change of the policy set, like Cilium's.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    pub fn policies(&self) -> impl Iterator<Item = &Policy> {
        self.policies.values()
    }

    pub fn get(&self, key: &PolicyKey) -> Option<&Policy> {
        self.policies.get(key)
    }

    /// Add or replace `policies` (as `kubectl apply`), leaving the others in place.
    pub fn apply(&mut self, policies: Vec<Policy>) -> Result<ChangeSet, PolicyError> {
        let mut seen: BTreeMap<&PolicyKey, &Policy> = BTreeMap::new();
        for p in &policies {
            if let Some(first) = seen.insert(&p.key, p) {
                return Err(PolicyError::new(
                    ErrorKind::Duplicate,
                    format!(
                        "{} {} is also defined at {}:{}",
                        p.key.kind, p.key, first.file, first.line
                    ),
                )
                .in_file(&p.file)
                .at(Some(p.line), None)
                .field("metadata.name"));
            }
        }
        let mut next = self.policies.clone();
        let mut change = ChangeSet::default();
        for p in policies {
            match next.get(&p.key) {
                None => change.added.push(p.key.clone()),
                Some(old) if old.rules == p.rules => change.unchanged.push(p.key.clone()),
                Some(_) => change.updated.push(p.key.clone()),
            }
            next.insert(p.key.clone(), p);
        }
        let changed = !change.added.is_empty() || !change.updated.is_empty();
        self.commit(next, change, changed)
    }

    /// Parse `text` (`file` names it in errors) and apply it.
    pub fn apply_text(&mut self, text: &str, file: &str) -> Result<ChangeSet, PolicyError> {
        self.apply(parse_policies(text, file)?)
    }

    pub fn apply_file(&mut self, path: &Path) -> Result<ChangeSet, PolicyError> {
        self.apply(load_file(path)?)
    }

    /// Delete one policy by reference: `name` (namespace `default`, or a clusterwide policy),
    /// `namespace/name`, optionally prefixed by a kind (`cnp/`, `ccnp/`, `netpol/`).
    pub fn delete(&mut self, reference: &str) -> Result<ChangeSet, PolicyError> {
        let key = self.find(reference)?;
        self.delete_keys(&[key])
    }

    /// Delete exactly these policies; if one is not loaded, nothing is deleted.
    pub fn delete_keys(&mut self, keys: &[PolicyKey]) -> Result<ChangeSet, PolicyError> {
        let mut next = self.policies.clone();
        let mut change = ChangeSet::default();
        for k in keys {
            if next.remove(k).is_none() && !change.deleted.contains(k) {
                return Err(PolicyError::new(
                    ErrorKind::NotFound,
                    format!("no {} {k} is loaded", k.kind),
                ));
            }
            if !change.deleted.contains(k) {
                change.deleted.push(k.clone());
            }
        }
        let changed = !change.deleted.is_empty();
        self.commit(next, change, changed)
    }

    /// Delete the policies a file defines (as `kubectl delete -f`).
    pub fn delete_file(&mut self, path: &Path) -> Result<ChangeSet, PolicyError> {
        let keys: Vec<PolicyKey> = load_file(path)?.into_iter().map(|p| p.key).collect();
        self.delete_keys(&keys)
    }

    /// Recompile for changed endpoints (pods added or removed).
    pub fn set_context(&mut self, ctx: PolicyContext) -> Result<ChangeSet, PolicyError> {
        let resolved = compile(
            self.policies.values(),
            &ctx,
            Some(&self.resolved.cidr_identities),
        )?;
        let mut change = ChangeSet::default();
        diff(&self.resolved, &resolved, &mut change);
        change.revision = self.revision;
        self.ctx = ctx;
        self.resolved = resolved;
        Ok(change)
    }

    /// The key a `delete` reference names.
    pub fn find(&self, reference: &str) -> Result<PolicyKey, PolicyError> {
        let mut parts: Vec<&str> = reference.split('/').collect();
        let kind = match parts.first().map(|k| k.to_ascii_lowercase()) {
            Some(k) if parts.len() > 1 => match k.as_str() {
                "cnp" | "ciliumnetworkpolicy" | "ciliumnetworkpolicies" => {
                    Some(PolicyKind::CiliumNetworkPolicy)
                }
                "ccnp" | "ciliumclusterwidenetworkpolicy" | "ciliumclusterwidenetworkpolicies" => {
                    Some(PolicyKind::CiliumClusterwideNetworkPolicy)
                }
                "netpol" | "networkpolicy" | "networkpolicies" => Some(PolicyKind::NetworkPolicy),
                _ => None,
            },
            _ => None,
        };
        if kind.is_some() {
            parts.remove(0);
        }
        let (namespace, name) = match parts.as_slice() {
            [name] => (None, *name),
            [ns, name] => (Some(*ns), *name),
            _ => {
                return Err(PolicyError::new(
                    ErrorKind::NotFound,
                    format!("{reference:?} is not a policy name (use [kind/][namespace/]name)"),
                ));
            }
        };
        let matches: Vec<&PolicyKey> = self
            .policies
            .keys()
            .filter(|k| kind.is_none_or(|kind| k.kind == kind) && k.name == name)
            .filter(|k| match (namespace, k.namespace.as_deref()) {
                (Some(ns), Some(kns)) => ns == kns,
                (Some(_), None) => false,
                (None, Some(kns)) => kns == DEFAULT_NAMESPACE,
                (None, None) => true,
            })
            .collect();
        match matches.as_slice() {
            [] => Err(PolicyError::new(
                ErrorKind::NotFound,
                format!("no policy {reference:?} is loaded"),
            )),
            [one] => Ok((*one).clone()),
            many => Err(PolicyError::new(
                ErrorKind::Ambiguous,
                format!(
                    "{reference:?} names several policies ({}): prefix the kind, e.g. cnp/{}",
                    many.iter()
                        .map(|k| format!("{} {k}", k.kind))
                        .collect::<Vec<_>>()
                        .join(", "),
                    many[0]
                ),
            )),
        }
    }

    /// `policy get` as text; `endpoint` limits the per-endpoint part to one endpoint.
    pub fn render_text(&self, endpoint: Option<u16>) -> String {
        let policies: Vec<&Policy> = self.policies.values().collect();
        render::render_text(&self.resolved, &policies, self.revision, endpoint)
    }

    /// `policy get -o json`.
    pub fn render_json(&self, endpoint: Option<u16>) -> serde_json::Value {
        let policies: Vec<&Policy> = self.policies.values().collect();
        render::render_json(&self.resolved, &policies, self.revision, endpoint)
    }

    /// Compile the new set; only if that succeeds, replace the current state.
    fn commit(
        &mut self,
        next: BTreeMap<PolicyKey, Policy>,
        mut change: ChangeSet,
        bump: bool,
    ) -> Result<ChangeSet, PolicyError> {
        let resolved = compile(
            next.values(),
            &self.ctx,
            Some(&self.resolved.cidr_identities),
        )?;
        diff(&self.resolved, &resolved, &mut change);
        self.policies = next;
        self.resolved = resolved;
        if bump {
            self.revision += 1;
        }
        change.revision = self.revision;
        Ok(change)
    }
}

fn diff(old: &ResolvedPolicy, new: &ResolvedPolicy, change: &mut ChangeSet) {
    let ids: BTreeSet<u16> = old
        .endpoints
        .keys()
        .chain(new.endpoints.keys())
        .copied()
        .collect();
    change.endpoints = ids
        .into_iter()
        .filter(|id| {
            let (o, n) = (old.endpoints.get(id), new.endpoints.get(id));
            match (o, n) {
                (Some(o), Some(n)) => o.ingress != n.ingress || o.egress != n.egress,
                _ => true,
            }
        })
        .collect();
    change.ipcache_upserts = new
        .cidr_identities
        .iter()
        .filter(|(p, id)| old.cidr_identities.get(p) != Some(id))
        .map(|(p, id)| (*p, *id))
        .collect();
    change.ipcache_deletes = old
        .cidr_identities
        .keys()
        .filter(|p| !new.cidr_identities.contains_key(p))
        .copied()
        .collect();
}
