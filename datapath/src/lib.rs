//! The userspace side of the datapath: loads and attaches the probes (aya), keeps the endpoint and
//! ipcache maps in sync with the cluster, compiles policies and writes them into the policy maps
//! (`policy`, `enforce`), reads the perf event array, and builds the local netns-based cluster.
//! Depends only on `periscope-probes` (the event ABI) inside the workspace.

pub mod cluster;
pub mod enforce;
pub mod identity;

pub mod loader;
pub mod maps;
pub mod perf;
pub mod policy;
