//! The policy compiler: CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy (`cilium.io/v2`)
//! and Kubernetes NetworkPolicy (`networking.k8s.io/v1`) YAML in, per-endpoint policy map
//! entries out. Pure: no kernel, no I/O beyond reading a policy file.
//!
//! - [`parse`]: files → [`Policy`] (normalized [`model`]); errors name file, line, column, field.
//! - [`compile()`]: policies + the cluster's endpoints → [`ResolvedPolicy`] (per endpoint and
//!   direction: enforced or not, sorted entries; plus the CIDR identities for the ipcache).
//! - [`verdict`]: the lookup semantics and match types the BPF side must mirror.
//! - [`PolicyRepository`]: named policies with all-or-nothing apply/delete and a [`ChangeSet`].
//! - [`render`]: `policy get` text and JSON.
//!
//! ```
//! use periscope_datapath::cluster::{self, ClusterSpec};
//! use periscope_datapath::policy::{PolicyContext, PolicyRepository, Verdict};
//!
//! let c = cluster::plan(&ClusterSpec::starwars(), "doc", None, std::path::Path::new("/x")).unwrap();
//! let mut repo = PolicyRepository::new(PolicyContext::from_cluster(&c));
//! repo.apply_text(include_str!("../../tests/policies/rule1-l3-l4.yaml"), "rule1.yaml").unwrap();
//! let deathstar = c.pods_named("deathstar").next().unwrap();
//! let xwing = c.pod("xwing").unwrap();
//! let ingress = &repo.resolved().endpoint(deathstar.endpoint_id).unwrap().ingress;
//! assert_eq!(ingress.verdict(xwing.identity, 6, 80), Verdict::Denied);
//! ```

pub mod api;
pub mod compile;
pub mod error;
pub mod model;
pub mod parse;
pub mod render;
pub mod repository;
mod source;
pub mod verdict;

pub use compile::{
    CIDR_IDENTITY_SCOPE, DirectionPolicy, EndpointInfo, EndpointPolicy, MAX_CIDR_IDENTITY,
    MIN_CIDR_IDENTITY, PolicyContext, PolicyEntry, ResolvedPolicy, compile,
};
pub use error::{ErrorKind, PolicyError};
pub use model::{HttpRule, L7Rules, Policy, PolicyKey, PolicyKind};
pub use parse::{load_file, parse_policies};
pub use repository::{ChangeSet, PolicyRepository};
pub use verdict::{MatchType, Verdict, lookup, port_prefixes};
