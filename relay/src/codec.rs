//! Pass-through gRPC codecs for GetFlows: the relay reads each node's `GetFlowsResponse` as raw
//! bytes, scans only the few fields it needs (kind and time), and writes the same bytes to its
//! clients. Flows are never decoded into structs or re-encoded, which is most of a relay's cost.

use periscope_proto::Timestamp;
use periscope_proto::observer::GetFlowsRequest;
use prost::Message;
use prost::bytes::{Buf, BufMut, Bytes, BytesMut};
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

// GetFlowsResponse field numbers (observer.proto).
const FIELD_FLOW: u32 = 1;
const FIELD_NODE_STATUS: u32 = 2;
const FIELD_LOST_EVENTS: u32 = 3;
const FIELD_TIME: u32 = 1001;
// Flow.time and Timestamp.{seconds,nanos}.
const FIELD_FLOW_TIME: u32 = 1;
const FIELD_SECONDS: u32 = 1;
const FIELD_NANOS: u32 = 2;

const WIRE_VARINT: u8 = 0;
const WIRE_I64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_I32: u8 = 5;

/// Which member of the `response_types` oneof a response carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseKind {
    Flow,
    NodeStatus,
    LostEvents,
    /// None set (or a member newer than this relay knows).
    Other,
}

/// One node's `GetFlowsResponse`, still encoded.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub bytes: Bytes,
    pub kind: ResponseKind,
    /// Event time in ns since the epoch: the response's `time`, else the flow's `time`.
    pub time_ns: Option<i128>,
}

/// Why a node's response could not be scanned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    #[error("truncated protobuf message")]
    Truncated,
    #[error("varint longer than 10 bytes")]
    VarintTooLong,
    #[error("invalid wire type {0}")]
    WireType(u8),
    #[error("field number 0")]
    FieldZero,
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, ScanError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let (&b, rest) = self.buf.split_first().ok_or(ScanError::Truncated)?;
            self.buf = rest;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(ScanError::VarintTooLong)
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], ScanError> {
        let n = usize::try_from(n).map_err(|_| ScanError::Truncated)?;
        if n > self.buf.len() {
            return Err(ScanError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// Next (field, wire type, payload): varints are returned in `value`, LEN payloads in `data`.
    fn field(&mut self) -> Result<Option<Field<'a>>, ScanError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let number = u32::try_from(key >> 3).map_err(|_| ScanError::FieldZero)?;
        if number == 0 {
            return Err(ScanError::FieldZero);
        }
        let wire = (key & 7) as u8;
        let f = match wire {
            WIRE_VARINT => Field {
                number,
                value: self.varint()?,
                data: &[],
            },
            WIRE_I64 => Field {
                number,
                value: 0,
                data: self.take(8)?,
            },
            WIRE_LEN => {
                let len = self.varint()?;
                Field {
                    number,
                    value: 0,
                    data: self.take(len)?,
                }
            }
            WIRE_I32 => Field {
                number,
                value: 0,
                data: self.take(4)?,
            },
            other => return Err(ScanError::WireType(other)),
        };
        Ok(Some(f))
    }
}

struct Field<'a> {
    number: u32,
    value: u64,
    data: &'a [u8],
}

fn scan_timestamp(data: &[u8]) -> Result<i128, ScanError> {
    let mut r = Reader { buf: data };
    let mut ts = Timestamp::default();
    while let Some(f) = r.field()? {
        match f.number {
            // int64/int32 are sign-extended varints on the wire.
            FIELD_SECONDS => ts.seconds = f.value as i64,
            FIELD_NANOS => ts.nanos = f.value as i64 as i32,
            _ => {}
        }
    }
    Ok(ts.as_unix_nanos())
}

/// Scans an encoded `GetFlowsResponse` for its kind and event time. Only the top level is
/// walked (a member's payload is skipped by its length); the flow itself is looked into only
/// when the response carries no `time`.
pub fn scan_response(bytes: Bytes) -> Result<RawResponse, ScanError> {
    let mut r = Reader { buf: &bytes };
    let mut kind = ResponseKind::Other;
    let mut time = None;
    let mut flow: &[u8] = &[];
    while let Some(f) = r.field()? {
        match f.number {
            FIELD_FLOW => {
                kind = ResponseKind::Flow;
                flow = f.data;
            }
            FIELD_NODE_STATUS => kind = ResponseKind::NodeStatus,
            FIELD_LOST_EVENTS => kind = ResponseKind::LostEvents,
            FIELD_TIME => time = Some(scan_timestamp(f.data)?),
            _ => {}
        }
    }
    if time.is_none() && kind == ResponseKind::Flow {
        let mut fr = Reader { buf: flow };
        while let Some(ff) = fr.field()? {
            if ff.number == FIELD_FLOW_TIME {
                time = Some(scan_timestamp(ff.data)?);
            }
        }
    }
    Ok(RawResponse {
        time_ns: time,
        kind,
        bytes,
    })
}

/// Client side (relay → node): sends a prost `GetFlowsRequest`, receives [`RawResponse`]s.
#[derive(Debug, Default, Clone, Copy)]
pub struct NodeFlowsCodec;

#[derive(Debug, Default, Clone, Copy)]
pub struct RequestEncoder;

/// Copies each message out of tonic's read buffer into a shared arena (one allocation per
/// [`ARENA_CHUNK`] bytes rather than one per message, and tonic's buffer stays unshared so
/// it is reused instead of reallocated).
#[derive(Debug, Default)]
pub struct RawResponseDecoder {
    arena: BytesMut,
}

/// Arena allocation size for decoded node responses.
pub const ARENA_CHUNK: usize = 256 << 10;

impl Encoder for RequestEncoder {
    type Item = GetFlowsRequest;
    type Error = Status;
    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encoding GetFlowsRequest: {e}")))
    }
}

impl Decoder for RawResponseDecoder {
    type Item = RawResponse;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<RawResponse>, Status> {
        let len = src.remaining();
        if self.arena.capacity() - self.arena.len() < len {
            self.arena = BytesMut::with_capacity(ARENA_CHUNK.max(len));
        }
        while src.has_remaining() {
            let chunk = src.chunk();
            let n = chunk.len();
            self.arena.extend_from_slice(chunk);
            src.advance(n);
        }
        let bytes = self.arena.split().freeze();
        scan_response(bytes)
            .map(Some)
            .map_err(|e| Status::internal(format!("malformed GetFlowsResponse from node: {e}")))
    }
}

impl Codec for NodeFlowsCodec {
    type Encode = GetFlowsRequest;
    type Decode = RawResponse;
    type Encoder = RequestEncoder;
    type Decoder = RawResponseDecoder;
    fn encoder(&mut self) -> RequestEncoder {
        RequestEncoder
    }
    fn decoder(&mut self) -> RawResponseDecoder {
        RawResponseDecoder::default()
    }
}

/// Server side (client → relay): receives a prost `GetFlowsRequest`, sends encoded responses
/// as they are.
#[derive(Debug, Default, Clone, Copy)]
pub struct RelayFlowsCodec;

#[derive(Debug, Default, Clone, Copy)]
pub struct RawEncoder;

#[derive(Debug, Default, Clone, Copy)]
pub struct RequestDecoder;

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RequestDecoder {
    type Item = GetFlowsRequest;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<GetFlowsRequest>, Status> {
        GetFlowsRequest::decode(src)
            .map(Some)
            .map_err(|e| Status::invalid_argument(format!("malformed GetFlowsRequest: {e}")))
    }
}

impl Codec for RelayFlowsCodec {
    type Encode = Bytes;
    type Decode = GetFlowsRequest;
    type Encoder = RawEncoder;
    type Decoder = RequestDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RequestDecoder {
        RequestDecoder
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use periscope_proto::flow::{Flow, LostEvent};
    use periscope_proto::observer::GetFlowsResponse;
    use periscope_proto::observer::get_flows_response::ResponseTypes;
    use periscope_proto::relay::NodeStatusEvent;

    fn ts(seconds: i64, nanos: i32) -> Timestamp {
        Timestamp { seconds, nanos }
    }

    fn encode(r: &GetFlowsResponse) -> Bytes {
        Bytes::from(r.encode_to_vec())
    }

    #[test]
    fn scans_kind_and_time_without_touching_the_bytes() {
        let flow = Flow {
            time: Some(ts(1_700_000_000, 5)),
            node_name: "node-1".into(),
            source_names: vec!["a".into(); 3],
            ..Default::default()
        };
        let resp = GetFlowsResponse {
            response_types: Some(ResponseTypes::Flow(flow)),
            node_name: "node-1".into(),
            time: Some(ts(1_700_000_001, 7)),
        };
        let bytes = encode(&resp);
        let raw = scan_response(bytes.clone()).expect("scan");
        assert_eq!(raw.kind, ResponseKind::Flow);
        assert_eq!(raw.time_ns, Some(1_700_000_001_000_000_007));
        assert_eq!(raw.bytes, bytes);
        assert_eq!(GetFlowsResponse::decode(raw.bytes).expect("decodes"), resp);
    }

    #[test]
    fn falls_back_to_the_flow_time_and_handles_negative_times() {
        let resp = GetFlowsResponse {
            response_types: Some(ResponseTypes::Flow(Flow {
                time: Some(ts(-5, 10)),
                ..Default::default()
            })),
            ..Default::default()
        };
        let raw = scan_response(encode(&resp)).expect("scan");
        assert_eq!(raw.time_ns, Some(-5_000_000_000 + 10));
    }

    #[test]
    fn other_kinds() {
        let lost = GetFlowsResponse {
            response_types: Some(ResponseTypes::LostEvents(LostEvent::default())),
            time: Some(ts(3, 0)),
            ..Default::default()
        };
        let raw = scan_response(encode(&lost)).expect("scan");
        assert_eq!(
            (raw.kind, raw.time_ns),
            (ResponseKind::LostEvents, Some(3_000_000_000))
        );
        let status = GetFlowsResponse {
            response_types: Some(ResponseTypes::NodeStatus(NodeStatusEvent::default())),
            ..Default::default()
        };
        let raw = scan_response(encode(&status)).expect("scan");
        assert_eq!((raw.kind, raw.time_ns), (ResponseKind::NodeStatus, None));
        let raw = scan_response(Bytes::new()).expect("empty is a valid message");
        assert_eq!(raw.kind, ResponseKind::Other);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let resp = GetFlowsResponse {
            response_types: Some(ResponseTypes::Flow(Flow::default())),
            node_name: "some-node".into(),
            time: Some(ts(1, 1)),
        };
        let bytes = encode(&resp);
        for cut in 1..bytes.len() {
            let _ = scan_response(bytes.slice(..cut));
        }
        assert_eq!(
            scan_response(Bytes::from_static(&[0x0a, 0x05, 0x01])).unwrap_err(),
            ScanError::Truncated
        );
        assert_eq!(
            scan_response(Bytes::from_static(&[0x0b])).unwrap_err(),
            ScanError::WireType(3)
        );
        assert_eq!(
            scan_response(Bytes::from_static(&[0x00, 0x00])).unwrap_err(),
            ScanError::FieldZero
        );
        assert_eq!(
            scan_response(Bytes::from_static(&[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
            ]))
            .unwrap_err(),
            ScanError::VarintTooLong
        );
        // Unknown fields of every wire type are skipped.
        let mut unknown = vec![0x20, 0x05]; // field 4 varint
        unknown.extend([0x29, 1, 2, 3, 4, 5, 6, 7, 8]); // field 5 i64
        unknown.extend([0x35, 1, 2, 3, 4]); // field 6 i32
        assert!(scan_response(Bytes::from(unknown)).is_ok());
    }
}
