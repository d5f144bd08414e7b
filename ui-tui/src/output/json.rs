//! `-o json` (the flow, or the lost event, per line) and `-o jsonpb` (the whole
//! `GetFlowsResponse` per line), in proto3 JSON with Hubble's field names.

use std::io;

use periscope_proto::flow::{Flow, LostEvent};
use periscope_proto::observer::GetFlowsResponse;

pub fn flow(f: &Flow) -> io::Result<String> {
    serde_json::to_string(f).map_err(io::Error::other)
}

pub fn lost_events(ev: &LostEvent) -> io::Result<String> {
    serde_json::to_string(ev).map_err(io::Error::other)
}

pub fn response(r: &GetFlowsResponse) -> io::Result<String> {
    serde_json::to_string(r).map_err(io::Error::other)
}
