//! Periscope's gRPC API: our own `.proto` files, wire-compatible with Hubble's public API v1
//! (`flow`, `observer`, `peer`, `relay` packages), generated with tonic/prost.
//! Depends on nothing in the workspace; every other crate that speaks the API depends on it.
//!
//! Every message also implements `serde::Serialize`/`Deserialize` with the proto3 JSON
//! mapping (pbjson): lowerCamelCase keys, enums as names, 64-bit integers as strings,
//! wrappers as bare values, [`Timestamp`] as RFC 3339 with `Z`. Deserialization accepts
//! both camelCase and the original proto field names (Hubble prints the latter).
//!
//! Well-known types: use [`Timestamp`] from this crate (not `pbjson_types::Timestamp`);
//! everything else (`BoolValue`, `UInt32Value`, `Int32Value`, `Any`, `FieldMask`) comes from
//! [`pbjson_types`], re-exported so every crate builds them with the same types.

mod timestamp;

pub use pbjson_types;
pub use timestamp::{Timestamp, TimestampError};

/// Hubble `flow` package: `Flow`, `FlowFilter`, events and their enums.
pub mod flow {
    tonic::include_proto!("flow");
    include!(concat!(env!("OUT_DIR"), "/flow.serde.rs"));
}

/// Hubble `observer` package: the `Observer` service and its messages.
pub mod observer {
    tonic::include_proto!("observer");
    include!(concat!(env!("OUT_DIR"), "/observer.serde.rs"));
}

/// Hubble `peer` package: the `Peer` service (node discovery for the relay).
pub mod peer {
    tonic::include_proto!("peer");
    include!(concat!(env!("OUT_DIR"), "/peer.serde.rs"));
}

/// Hubble `relay` package: node status events and states.
pub mod relay {
    tonic::include_proto!("relay");
    include!(concat!(env!("OUT_DIR"), "/relay.serde.rs"));
}

/// Encoded `FileDescriptorSet` of all four packages, for `tonic-reflection`.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/periscope_descriptor.bin"));
