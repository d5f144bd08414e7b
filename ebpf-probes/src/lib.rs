//! The event ABI shared by the kernel-side probes and userspace, and (once built) the probes themselves.
//!
//! The notification layouts are Cilium's datapath monitor messages, so captures from a real Cilium
//! decode here and our decoder can be compared with Hubble's on identical bytes. The C side
//! (`bpf/notify.h`) and the `#[repr(C)]` mirrors below must agree; a test checks sizes and offsets.
//! This crate sits at the bottom of the dependency chain: it depends on nothing in the workspace,
//! and everything that reads or writes events (datapath, flow-server) depends on it.

pub mod abi;
pub mod probes;
pub mod source;
