//! Sender: turns outgoing [`WorkerMessage`]s into frames (JSON, or a result's header line and
//! payload) and seals segment results.
//!
//! Everything encoded here is structs, enums and `Vec`s (no maps), and serde_json formats floats
//! with the same shortest-round-trip algorithm on every target, so a result's bytes — and therefore
//! its hash — are the same natively and in WebAssembly.

use thiserror::Error;

use crate::analysis::SegmentResult;
use crate::protocol::{CheckedPayload, ResultPacket, WorkerMessage, encode_result_frame};

#[derive(Debug, Error)]
pub enum SendError {
    #[error("could not encode an outgoing message: {0}")]
    Encode(#[from] serde_json::Error),
}

/// The frame for `message`, as UTF-8 bytes: a result's header line and payload
/// ([`encode_result_frame`]), any other message's JSON. Workers send it as a binary message.
pub fn encode(message: &WorkerMessage) -> Result<Vec<u8>, SendError> {
    match message {
        WorkerMessage::Result(packet) => Ok(encode_result_frame(packet)),
        other => Ok(serde_json::to_vec(other)?),
    }
}

/// The result packet for a finished task: the segment result's JSON, sealed with its Adler-32.
pub fn result_packet(
    task_id: &str,
    lease: u64,
    result: &SegmentResult,
) -> Result<ResultPacket, SendError> {
    Ok(ResultPacket {
        task_id: task_id.to_owned(),
        lease,
        data: CheckedPayload::seal(serde_json::to_string(result)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ErrorCode;

    #[test]
    fn result_packet_is_sealed_over_the_segment_json() {
        let result = SegmentResult {
            algorithm: "signal-summary".into(),
            rows: 0,
            duplicates_removed: 0,
            out_of_order: 0,
            first_time_s: 0.0,
            last_time_s: 0.0,
            signals: vec![],
            quality: None,
            alerts: None,
            news2: None,
            ecg: None,
        };
        let packet = result_packet("t1", 4, &result).expect("encodes");
        assert!(packet.data.is_intact());
        let back: SegmentResult = serde_json::from_str(&packet.data.payload).expect("parses");
        assert_eq!(back, result);
    }

    #[test]
    fn error_message_encodes_with_snake_case_tags() {
        let frame = encode(&WorkerMessage::Error {
            task_id: None,
            lease: None,
            code: ErrorCode::UnknownTemplate,
            message: "x".into(),
        })
        .expect("encodes");
        assert_eq!(
            frame,
            br#"{"type":"error","task_id":null,"lease":null,"code":"unknown_template","message":"x"}"#
        );
    }
}
