//! The per-node flow server: decodes datapath notifications into flows, enriches them with
//! endpoint metadata, keeps them in a compact ring buffer and serves Hubble's Observer and Peer
//! gRPC APIs. Depends on `periscope-probes` (event ABI), `periscope-proto` (API) and, for the
//! agent's datapath wiring (`agent`), `periscope-datapath`; never on the relay or the UI.

pub mod agent;
pub mod decoder;
pub mod filter;
pub mod fixtures;
pub mod icmp;
pub mod labels;
pub mod materialize;
pub mod meta;
pub mod metrics;
pub mod node;
pub mod packet;
pub mod pipeline;
pub mod query;
pub mod record;
pub mod replay;
pub mod ring;
pub mod server;
