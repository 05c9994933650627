//! The packets exchanged between the server and volunteer workers over `/ws/worker`.
//!
//! Every frame is one JSON message, except a task or a result: its header line, then its
//! payload's bytes ([`encode_task_frame`], [`encode_result_frame`]). Data-bearing packets carry
//! their content as a `payload` string plus a digest of that string's UTF-8 bytes, so integrity is
//! checked over exactly the bytes that were sent, independent of JSON formatting on either side:
//! - templates carry the hex SHA-256;
//! - tasks and results carry an Adler-32, which catches damage in transit as well and costs a
//!   browser almost nothing on a megabyte of samples, where SHA-256 in WebAssembly (no SHA
//!   instructions) cost more than the analysis. A task's data comes from the server, so a
//!   checksum, not a cryptographic digest, is what it needs. Its columns travel packed (see
//!   [`crate::wire`]).
//!
//! Packets never carry a patient reference, file name, account or wall-clock date: task ids are
//! opaque and times are seconds relative to the start of the recording.
//!
//! The server depends on this module too, so the two ends cannot drift apart.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// Bumped whenever a packet changes shape; a worker speaking another version is refused.
/// Version 2: task packets carry `crc32` instead of `sha256`, and packed columns.
/// Version 3: result packets carry `crc32` too; the server hashes each result itself.
/// Version 4: task and result packets carry `adler32` instead of `crc32`, and each travels as its
/// header line and its payload's bytes ([`encode_task_frame`], [`encode_result_frame`]).
pub const PROTOCOL_VERSION: u32 = 4;

/// Messages the server sends to a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// Answer to `Hello`: the worker is registered and may receive up to `slots` tasks at once.
    Welcome { worker_id: String, slots: u32 },
    /// A template the worker must cache (by id and version) before tasks that name it arrive.
    Template(SignedPayload),
    /// A task to run. The worker ACKs on receipt (or sends ERROR when the packet is corrupt).
    Task(TaskPacket),
    /// The server withdraws a task (the job was cancelled or the task was reassigned).
    Cancel { task_id: String },
    /// The server rejects something the worker sent (for instance a result whose hash does not match).
    Error {
        task_id: Option<String>,
        code: ErrorCode,
        message: String,
    },
}

/// Messages a worker sends to the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WorkerMessage {
    /// First message on a new connection: protocol version and how many tasks it runs at once.
    Hello {
        protocol: u32,
        slots: u32,
        agent: String,
        /// A random key the worker keeps across connections (a browser keeps it in local storage)
        /// so the server can build up its credibility. Anyone can make a new key, so a new key
        /// starts with none: it buys no trust, only a history.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        worker_key: Option<String>,
    },
    /// The task packet arrived intact; the worker has started on it.
    Ack { task_id: String, lease: u64 },
    /// The worker is still busy on the task (extends the lease).
    Progress {
        task_id: String,
        lease: u64,
        fraction: f64,
    },
    /// The finished task.
    Result(ResultPacket),
    /// The worker could not take or finish a task (corrupt packet, unknown template, invalid data…).
    Error {
        task_id: Option<String>,
        lease: Option<u64>,
        code: ErrorCode,
        message: String,
    },
    /// The worker hands a task back unfinished (the volunteer pressed Stop).
    Release { task_id: String, lease: u64 },
}

/// Why a packet was refused. `Integrity` and `Malformed` mean the bytes were damaged in transit:
/// the sender should send the packet again. The others are about the content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The payload does not hash to the announced SHA-256.
    Integrity,
    /// The frame or its payload is not valid JSON of the expected shape.
    Malformed,
    /// The task names a template the worker has not received.
    UnknownTemplate,
    /// The task names an algorithm the worker does not have.
    UnknownAlgorithm,
    /// The result does not belong to a task currently leased to this worker.
    StaleLease,
    /// The protocol version is not supported.
    Protocol,
}

/// A payload string with the SHA-256 of its bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignedPayload {
    pub payload: String,
    pub sha256: String,
}

impl SignedPayload {
    /// Wraps `payload`, computing its hash.
    pub fn seal(payload: String) -> Self {
        let sha256 = sha256_hex(payload.as_bytes());
        Self { payload, sha256 }
    }

    /// True when the payload still hashes to the announced value.
    pub fn is_intact(&self) -> bool {
        sha256_hex(self.payload.as_bytes()) == self.sha256
    }
}

/// A task or result payload with the Adler-32 (RFC 1950, as zlib computes it) of its bytes.
///
/// Adler-32 rather than CRC-32: both catch damage in transit, but a browser computes a CRC-32 a
/// table lookup per byte (no carry-less multiply in WebAssembly), which was 5 % of a vitals task's
/// time in Chromium and thirteen times the native cost, while Adler-32's sums vectorise with
/// WebAssembly's fixed-width SIMD (≈ 1.5 %). Its known weakness (its sums use few of their bits on
/// messages of a few hundred bytes) matters little for payloads of kilobytes to megabytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckedPayload {
    pub payload: String,
    pub adler32: u32,
}

impl CheckedPayload {
    /// Wraps `payload`, computing its checksum.
    pub fn seal(payload: String) -> Self {
        let adler32 = adler32(payload.as_bytes());
        Self { payload, adler32 }
    }

    /// True when the payload still has the announced checksum.
    pub fn is_intact(&self) -> bool {
        adler32(self.payload.as_bytes()) == self.adler32
    }
}

/// The Adler-32 of `bytes` (SIMD where the target has it: SSE2 to AVX-512 natively, picked at
/// run time, and `simd128` in WebAssembly; the same number everywhere).
pub fn adler32(bytes: &[u8]) -> u32 {
    simd_adler32::adler32(&bytes)
}

/// The first line of a task frame: the [`TaskPacket`] without its payload. `type` and `task_id`
/// come first: the browser routes a task by reading them from the frame's first bytes.
#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename = "task")]
struct TaskHeader<'a> {
    #[serde(borrow)]
    task_id: Cow<'a, str>,
    lease: u64,
    #[serde(borrow)]
    template_id: Cow<'a, str>,
    template_version: u32,
    #[serde(borrow)]
    algorithm: Cow<'a, str>,
    adler32: u32,
}

/// The first line of a result frame: the [`ResultPacket`] without its payload.
#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename = "result")]
struct ResultHeader<'a> {
    #[serde(borrow)]
    task_id: Cow<'a, str>,
    lease: u64,
    adler32: u32,
}

/// A frame holding a data packet: the JSON of its header, a newline, then the payload's bytes as
/// they are.
///
/// A payload is JSON of up to a few megabytes (a task's packed columns, a segment's result): inside
/// a JSON frame it was a string to escape on one side and unescape on the other (a result's
/// escaping alone was 5 % of a vitals task's time, natively and in WebAssembly), and the browser
/// page parsed a whole result to learn its type. Compact JSON never holds a raw newline, so the
/// first one ends the header.
fn data_frame(header: &impl Serialize, payload: &str) -> Vec<u8> {
    // The headers are strings and integers, which always serialise.
    let mut frame = serde_json::to_vec(header).unwrap_or_default();
    frame.reserve_exact(1 + payload.len());
    frame.push(b'\n');
    frame.extend_from_slice(payload.as_bytes());
    frame
}

/// A task's frame: `{"type":"task","task_id":…,"lease":…,"template_id":…,"template_version":…,
/// "algorithm":…,"adler32":…}`, a newline, then the payload ([`data_frame`]).
pub fn encode_task_frame(packet: &TaskPacket) -> Vec<u8> {
    let header = TaskHeader {
        task_id: Cow::Borrowed(&packet.task_id),
        lease: packet.lease,
        template_id: Cow::Borrowed(&packet.template_id),
        template_version: packet.template_version,
        algorithm: Cow::Borrowed(&packet.algorithm),
        adler32: packet.data.adler32,
    };
    data_frame(&header, &packet.data.payload)
}

/// A result's frame: `{"type":"result","task_id":…,"lease":…,"adler32":…}`, a newline, then the
/// payload ([`data_frame`]).
pub fn encode_result_frame(packet: &ResultPacket) -> Vec<u8> {
    let header = ResultHeader {
        task_id: Cow::Borrowed(&packet.task_id),
        lease: packet.lease,
        adler32: packet.data.adler32,
    };
    data_frame(&header, &packet.data.payload)
}

/// The frame for a server message: a task's header line and payload ([`encode_task_frame`]) as a
/// binary message, any other message's JSON as a text message.
pub fn encode_server_message(message: &ServerMessage) -> Result<Frame, serde_json::Error> {
    Ok(match message {
        ServerMessage::Task(packet) => Frame::Binary(encode_task_frame(packet)),
        other => Frame::Text(serde_json::to_string(other)?),
    })
}

/// A frame as a WebSocket message holds it.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Text(String),
    Binary(Vec<u8>),
}

/// Why a frame could not be read.
#[derive(Debug, Error)]
pub enum FrameError {
    #[error("not a message of the protocol: {0}")]
    Json(#[from] serde_json::Error),
    #[error("a result's payload is not UTF-8 text")]
    NotUtf8,
    #[error("a {0} travels as its header line and its payload, not as one JSON message")]
    WithoutHeaderLine(&'static str),
}

/// Splits a frame at its first newline: a data packet's header and payload, or `None` for a frame
/// that is one JSON message.
fn header_line(frame: &[u8]) -> Option<(&[u8], &[u8])> {
    let newline = frame.iter().position(|&byte| byte == b'\n')?;
    Some((&frame[..newline], &frame[newline + 1..]))
}

/// Reads a frame a worker sent (text or binary, the same bytes): one JSON message, or a result's
/// header line and payload ([`encode_result_frame`]).
pub fn decode_worker_frame(frame: &[u8]) -> Result<WorkerMessage, FrameError> {
    let Some((header, payload)) = header_line(frame) else {
        return match serde_json::from_slice(frame)? {
            WorkerMessage::Result(_) => Err(FrameError::WithoutHeaderLine("result")),
            message => Ok(message),
        };
    };
    let header: ResultHeader = serde_json::from_slice(header)?;
    let payload = std::str::from_utf8(payload).map_err(|_| FrameError::NotUtf8)?;
    Ok(WorkerMessage::Result(ResultPacket {
        task_id: header.task_id.into_owned(),
        lease: header.lease,
        data: CheckedPayload {
            payload: payload.to_owned(),
            adler32: header.adler32,
        },
    }))
}

/// Reads a frame the server sent (text, or the UTF-8 bytes of a binary message): one JSON message,
/// or a task's header line and payload ([`encode_task_frame`]).
pub fn decode_server_frame(frame: &str) -> Result<ServerMessage, FrameError> {
    let Some((header, payload)) = frame.split_once('\n') else {
        return match serde_json::from_str(frame)? {
            ServerMessage::Task(_) => Err(FrameError::WithoutHeaderLine("task")),
            message => Ok(message),
        };
    };
    let header: TaskHeader = serde_json::from_str(header)?;
    Ok(ServerMessage::Task(TaskPacket {
        task_id: header.task_id.into_owned(),
        lease: header.lease,
        template_id: header.template_id.into_owned(),
        template_version: header.template_version,
        algorithm: header.algorithm.into_owned(),
        data: CheckedPayload {
            payload: payload.to_owned(),
            adler32: header.adler32,
        },
    }))
}

/// One unit of work: a segment of one recording, to be run through one algorithm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskPacket {
    /// Opaque id; says nothing about the file, job or patient.
    pub task_id: String,
    /// Fencing token of the lease under which this copy was sent; echoed in ACK/RESULT.
    pub lease: u64,
    pub template_id: String,
    pub template_version: u32,
    pub algorithm: String,
    /// JSON of [`TaskData`].
    #[serde(flatten)]
    pub data: CheckedPayload,
}

/// A worker's answer to a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultPacket {
    pub task_id: String,
    pub lease: u64,
    /// JSON of [`crate::algorithm::SegmentResult`]; on the wire after the frame's header line
    /// ([`encode_result_frame`]). A checksum, not a hash: the server could never
    /// trust a hash a worker announces, so it hashes every result it accepts itself, and the
    /// worker only needs to show that the bytes arrived as sent (SHA-256 in WebAssembly, without
    /// the SHA instructions native code uses, was 6 % of a vitals task's time).
    #[serde(flatten)]
    pub data: CheckedPayload,
}

/// The numbers of one segment of a recording, column-wise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskData {
    /// Seconds from the first sample of the recording (not of the segment).
    #[serde(with = "crate::wire::complete")]
    pub time_s: Vec<f64>,
    /// One entry per signal; `values[i]` belongs to `time_s[i]`; `None` where the cell was empty.
    pub signals: Vec<SignalColumn>,
    /// Rows `core_start..core_end` belong to this segment; rows outside are overlap that windowed
    /// algorithms may read but must not count, so merged results count every row exactly once.
    pub core_start: usize,
    pub core_end: usize,
    /// Width and origin of the chart buckets, fixed for the whole recording so segment results merge
    /// bucket by bucket.
    pub trend_bucket_s: f64,
    /// Core rows that the file listed out of time order and the server put in order before
    /// cutting (a recording can only be cut once sorted); the worker counts them as out of order,
    /// as it would had it sorted them itself.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reordered_rows: u64,
}

fn is_zero(count: &u64) -> bool {
    *count == 0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalColumn {
    /// The template's canonical signal name (`hr`, `spo2`, `ecg`, …).
    pub name: String,
    /// `values[i]` belongs to `time_s[i]`; `None` where the cell was empty.
    #[serde(with = "crate::wire::cells")]
    pub values: Vec<Option<f64>>,
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_payload_is_intact_until_a_byte_changes() {
        let mut sealed = SignedPayload::seal("{\"a\":1}".to_owned());
        assert!(sealed.is_intact());
        sealed.payload = "{\"a\":2}".to_owned();
        assert!(!sealed.is_intact());
    }

    #[test]
    fn the_browser_runtime_speaks_this_protocol_version() {
        let runtime = include_str!("../../web/src/volunteer/runtime.ts");
        let line = format!("const PROTOCOL_VERSION = {PROTOCOL_VERSION};");
        assert!(
            runtime.contains(&line),
            "web/src/volunteer/runtime.ts lacks `{line}`"
        );
    }

    #[test]
    fn checked_payload_is_intact_until_a_byte_changes() {
        let mut checked = CheckedPayload::seal("{\"a\":1}".to_owned());
        assert!(checked.is_intact());
        checked.payload = "{\"a\":2}".to_owned();
        assert!(!checked.is_intact());
    }

    /// Adler-32 by its definition (RFC 1950): two sums modulo 65 521, one byte at a time.
    fn adler32_by_definition(bytes: &[u8]) -> u32 {
        let (a, b) = bytes.iter().fold((1_u32, 0_u32), |(a, b), &byte| {
            let a = (a + u32::from(byte)) % 65_521;
            (a, (b + a) % 65_521)
        });
        (b << 16) | a
    }

    #[test]
    fn adler32_is_zlibs_checksum_whatever_the_length_and_bytes() {
        // RFC 1950's example value, as zlib computes it.
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
        assert_eq!(adler32(b""), 1);
        // Lengths around the vector widths and the 5 552-byte stretch after which the sums must
        // be reduced; bytes of 255 make the sums largest.
        let mut state = 0x2545_F491_u32;
        for len in [1, 15, 16, 17, 31, 32, 33, 64, 5_551, 5_552, 5_553, 70_000] {
            let random: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    state.to_le_bytes()[0]
                })
                .collect();
            let high = vec![255_u8; len];
            for bytes in [random, high] {
                assert_eq!(
                    adler32(&bytes),
                    adler32_by_definition(&bytes),
                    "{len} bytes"
                );
            }
        }
    }

    fn result(payload: &str) -> ResultPacket {
        ResultPacket {
            task_id: "t-1".into(),
            lease: 7,
            data: CheckedPayload::seal(payload.to_owned()),
        }
    }

    #[test]
    fn a_result_frame_is_its_header_line_then_the_payload_bytes_unescaped() {
        let packet = result("{\"rows\":3,\"note\":\"a \\\"quoted\\\" word\"}\n");
        let frame = encode_result_frame(&packet);
        let expected_header = format!(
            "{{\"type\":\"result\",\"task_id\":\"t-1\",\"lease\":7,\"adler32\":{}}}\n",
            packet.data.adler32
        );
        assert!(frame.starts_with(expected_header.as_bytes()));
        assert_eq!(
            &frame[expected_header.len()..],
            packet.data.payload.as_bytes()
        );
        let back = decode_worker_frame(&frame).expect("reads");
        assert_eq!(back, WorkerMessage::Result(packet));
    }

    #[test]
    fn worker_frames_without_a_header_line_are_plain_json() {
        let ack = WorkerMessage::Ack {
            task_id: "t-1".into(),
            lease: 2,
        };
        let frame = serde_json::to_vec(&ack).expect("serialises");
        assert_eq!(decode_worker_frame(&frame).expect("reads"), ack);
    }

    #[test]
    fn malformed_worker_frames_are_refused_with_a_reason() {
        let packet = result("{}");
        // A result as one JSON message, as protocol 3 sent it.
        let old = serde_json::to_vec(&WorkerMessage::Result(packet.clone())).expect("serialises");
        assert!(matches!(
            decode_worker_frame(&old),
            Err(FrameError::WithoutHeaderLine("result"))
        ));
        // Another message's JSON before a newline is not a result header.
        let mut ack = serde_json::to_vec(&WorkerMessage::Ack {
            task_id: "t".into(),
            lease: 1,
        })
        .expect("serialises");
        ack.extend_from_slice(b"\n{}");
        assert!(matches!(
            decode_worker_frame(&ack),
            Err(FrameError::Json(_))
        ));
        // A payload that is not UTF-8.
        let mut frame = encode_result_frame(&packet);
        frame.push(0xff);
        assert!(matches!(
            decode_worker_frame(&frame),
            Err(FrameError::NotUtf8)
        ));
        assert!(matches!(
            decode_worker_frame(b"\xff\xfe"),
            Err(FrameError::Json(_))
        ));
        assert!(matches!(decode_worker_frame(b""), Err(FrameError::Json(_))));
    }

    #[test]
    fn task_data_round_trips_through_packed_columns() {
        let data = TaskData {
            time_s: vec![0.0, 0.5, 1.0, 1.5],
            signals: vec![SignalColumn {
                name: "hr".into(),
                values: vec![Some(70.0), None, Some(71.5), Some(72.0)],
            }],
            core_start: 1,
            core_end: 3,
            trend_bucket_s: 60.0,
            reordered_rows: 0,
        };
        let json = serde_json::to_string(&data).expect("serialises");
        assert!(json.contains("\"encoding\":\"linear\""), "{json}");
        assert_eq!(
            serde_json::from_str::<TaskData>(&json).expect("parses"),
            data
        );
    }

    #[test]
    fn a_task_frame_is_its_header_line_then_the_payload_and_reads_back() {
        let packet = TaskPacket {
            task_id: "t1".into(),
            lease: 3,
            template_id: "bedside-vitals".into(),
            template_version: 1,
            algorithm: "vitals-summary".into(),
            data: CheckedPayload::seal("{\"time_s\":[0,1]}".into()),
        };
        let frame = encode_server_message(&ServerMessage::Task(packet.clone())).expect("encodes");
        let Frame::Binary(bytes) = frame else {
            panic!("a task goes as a binary message");
        };
        let text = String::from_utf8(bytes).expect("UTF-8");
        // The browser reads a task's id from the frame's first bytes instead of parsing megabytes
        // (web/src/volunteer/runtime.ts), so the order is part of the protocol.
        assert!(
            text.starts_with("{\"type\":\"task\",\"task_id\":\"t1\","),
            "{text}"
        );
        let tail = format!(
            "\"adler32\":{}}}\n{{\"time_s\":[0,1]}}",
            packet.data.adler32
        );
        assert!(text.ends_with(&tail), "{text}");
        assert_eq!(
            decode_server_frame(&text).expect("reads"),
            ServerMessage::Task(packet.clone())
        );
        // As one JSON message (protocol 3's form) a task is refused.
        let old = serde_json::to_string(&ServerMessage::Task(packet)).expect("serialises");
        assert!(matches!(
            decode_server_frame(&old),
            Err(FrameError::WithoutHeaderLine("task"))
        ));
    }

    #[test]
    fn other_server_messages_are_json_text() {
        let welcome = ServerMessage::Welcome {
            worker_id: "w".into(),
            slots: 2,
        };
        let Frame::Text(text) = encode_server_message(&welcome).expect("encodes") else {
            panic!("a welcome goes as text");
        };
        assert_eq!(text, r#"{"type":"welcome","worker_id":"w","slots":2}"#);
        assert_eq!(decode_server_frame(&text).expect("reads"), welcome);
    }
}
