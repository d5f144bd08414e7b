//! Generates the Hubble-compatible API from `protos/` with the system `protoc` (PATH or `$PROTOC`):
//! prost messages + tonic client/server stubs, a file descriptor set (for gRPC
//! reflection), and pbjson serde impls (proto3 canonical JSON).

use std::{env, error::Error, path::PathBuf};

const PROTOS: &[&str] = &[
    "protos/flow/flow.proto",
    "protos/observer/observer.proto",
    "protos/peer/peer.proto",
    "protos/relay/relay.proto",
];

fn main() -> Result<(), Box<dyn Error>> {
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let descriptor_path = out_dir.join("periscope_descriptor.bin");

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .file_descriptor_set_path(&descriptor_path)
        // Well-known types come from pbjson-types so wrappers serialize as bare
        // values (BoolValue -> true).
        .compile_well_known_types(true)
        .extern_path(".google.protobuf", "::pbjson_types")
        // pbjson-types prints `+00:00`; ours prints the canonical `Z` form.
        .extern_path(".google.protobuf.Timestamp", "crate::Timestamp")
        .compile_protos(PROTOS, &["protos"])?;

    let descriptors = std::fs::read(&descriptor_path)?;
    pbjson_build::Builder::new()
        .register_descriptors(&descriptors)?
        // Newer Hubble versions add fields; readers of their JSON must not fail.
        .ignore_unknown_fields()
        // Hubble prints proto field names (`drop_reason_desc`), not camelCase.
        .preserve_proto_field_names()
        .build(&[".flow", ".observer", ".peer", ".relay"])?;

    println!("cargo:rerun-if-changed=protos");
    Ok(())
}
