//! The cluster-wide relay: discovers nodes through Peer.Notify, dials each node's Observer API and
//! serves the same API merged across nodes. Depends on `periscope-proto` (and may use the flow
//! server's library for shared filter logic); never on the UI.
