//! The `periscope` command line and terminal flow viewer: turns Hubble-style flags into Observer
//! API requests and prints flows in Hubble's output formats. Sits at the top of the dependency
//! chain and may use any workspace crate; nothing depends on it.
