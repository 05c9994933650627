//! Receiver: reads server frames, checks integrity, caches templates and turns task packets into
//! ready-to-run tasks — or into the Error the server must hear about.

use std::collections::BTreeMap;

use thiserror::Error;

use crate::algorithm::{self, AlgorithmRun};
use crate::processor::{DataError, DataProcessor};
use crate::protocol::{
    ErrorCode, ServerMessage, SignedPayload, TaskData, TaskPacket, WorkerMessage,
    decode_server_frame,
};
use crate::sender::SendError;
use crate::template::Template;

/// Why a task cannot be run (or its result not sent); each maps to a protocol [`ErrorCode`].
#[derive(Debug, Error)]
pub enum TaskError {
    #[error("task payload does not match its Adler-32")]
    Integrity,
    #[error("template {id} v{version} has not been received")]
    UnknownTemplate { id: String, version: u32 },
    #[error("algorithm `{0}` is not available for this template on this worker")]
    UnknownAlgorithm(String),
    #[error("task payload is not valid task data: {0}")]
    Unparsable(#[from] serde_json::Error),
    #[error("task data is inconsistent: {0}")]
    Inconsistent(#[from] DataError),
    #[error(transparent)]
    Encode(#[from] SendError),
}

impl TaskError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Integrity => ErrorCode::Integrity,
            Self::UnknownTemplate { .. } => ErrorCode::UnknownTemplate,
            Self::UnknownAlgorithm(_) => ErrorCode::UnknownAlgorithm,
            Self::Unparsable(_) | Self::Inconsistent(_) | Self::Encode(_) => ErrorCode::Malformed,
        }
    }
}

/// A task that passed every check, with its processor and algorithm ready to step.
#[derive(Debug, Clone)]
pub struct AcceptedTask {
    pub task_id: String,
    pub lease: u64,
    pub processor: DataProcessor,
    pub run: AlgorithmRun,
}

/// What a frame asks of the pipeline.
#[derive(Debug)]
pub enum Received {
    /// Nothing to do or say (a template was cached, or the server sent Welcome or Error).
    Nothing,
    /// Something to tell the server at once (always an Error).
    Reply(WorkerMessage),
    /// A task to acknowledge and queue (boxed: it is far larger than the other variants).
    Task(Box<AcceptedTask>),
    /// The server withdrew this task.
    Cancel(String),
}

/// Keeps the templates the server sent, by id and version.
#[derive(Debug, Default, Clone)]
pub struct Receiver {
    templates: BTreeMap<(String, u32), Template>,
}

impl Receiver {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn template(&self, id: &str, version: u32) -> Option<&Template> {
        self.templates.get(&(id.to_owned(), version))
    }

    /// Interprets one text frame from the server.
    pub fn receive(&mut self, frame: &str) -> Received {
        let message = match decode_server_frame(frame) {
            Ok(message) => message,
            Err(error) => {
                // From the header line alone: a task's payload can be megabytes.
                let header = frame.split_once('\n').map_or(frame, |(header, _)| header);
                let (task_id, lease) = salvage_ids(header);
                return Received::Reply(WorkerMessage::Error {
                    task_id,
                    lease,
                    code: ErrorCode::Malformed,
                    message: format!("unreadable frame: {error}"),
                });
            }
        };
        match message {
            ServerMessage::Template(signed) => match self.cache_template(&signed) {
                Ok(()) => Received::Nothing,
                Err((code, message)) => Received::Reply(WorkerMessage::Error {
                    task_id: None,
                    lease: None,
                    code,
                    message,
                }),
            },
            ServerMessage::Task(packet) => {
                let (task_id, lease) = (packet.task_id.clone(), packet.lease);
                let template = self.template(&packet.template_id, packet.template_version);
                match accept_task(template, packet) {
                    Ok(task) => Received::Task(Box::new(task)),
                    Err(error) => Received::Reply(WorkerMessage::Error {
                        task_id: Some(task_id),
                        lease: Some(lease),
                        code: error.code(),
                        message: error.to_string(),
                    }),
                }
            }
            ServerMessage::Cancel { task_id } => Received::Cancel(task_id),
            ServerMessage::Welcome { .. } | ServerMessage::Error { .. } => Received::Nothing,
        }
    }

    fn cache_template(&mut self, signed: &SignedPayload) -> Result<(), (ErrorCode, String)> {
        if !signed.is_intact() {
            return Err((
                ErrorCode::Integrity,
                "template payload does not match its SHA-256".into(),
            ));
        }
        let template: Template = serde_json::from_str(&signed.payload).map_err(|error| {
            (
                ErrorCode::Malformed,
                format!("template payload is not a template: {error}"),
            )
        })?;
        self.templates
            .insert((template.id.clone(), template.version), template);
        Ok(())
    }
}

/// Checks a task packet against its template (when known) and prepares it to run. The checks run
/// in the order the server relies on: integrity first (a damaged packet says nothing reliable),
/// then template, algorithm and data.
pub fn accept_task(
    template: Option<&Template>,
    packet: TaskPacket,
) -> Result<AcceptedTask, TaskError> {
    if !packet.data.is_intact() {
        return Err(TaskError::Integrity);
    }
    let template = template
        .filter(|t| t.id == packet.template_id && t.version == packet.template_version)
        .ok_or_else(|| TaskError::UnknownTemplate {
            id: packet.template_id.clone(),
            version: packet.template_version,
        })?;
    if !template.algorithms.contains(&packet.algorithm)
        || !algorithm::is_implemented(&packet.algorithm)
    {
        return Err(TaskError::UnknownAlgorithm(packet.algorithm));
    }
    let data: TaskData = serde_json::from_str(&packet.data.payload)?;
    let processor = DataProcessor::new(data, template)?;
    let run = AlgorithmRun::start(&packet.algorithm, &processor)
        .ok_or_else(|| TaskError::UnknownAlgorithm(packet.algorithm.clone()))?;
    Ok(AcceptedTask {
        task_id: packet.task_id,
        lease: packet.lease,
        processor,
        run,
    })
}

/// Best-effort task id and lease from a frame that did not parse, so the server can resend the
/// right task. Tries JSON first (wrong shape), then a textual scan (truncated or damaged text).
fn salvage_ids(frame: &str) -> (Option<String>, Option<u64>) {
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(frame) {
        let task_id = value
            .get("task_id")
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        let lease = value.get("lease").and_then(serde_json::Value::as_u64);
        return (task_id, lease);
    }
    let field = |name: &str| {
        let key = format!("\"{name}\"");
        let rest = frame[frame.find(&key)? + key.len()..]
            .trim_start()
            .strip_prefix(':')?
            .trim_start();
        Some(rest.to_owned())
    };
    let task_id = field("task_id").and_then(|rest| {
        let rest = rest.strip_prefix('"')?;
        rest.find('"').map(|end| rest[..end].to_owned())
    });
    let lease = field("lease").and_then(|rest| {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    });
    (task_id, lease)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{CheckedPayload, SignalColumn, encode_task_frame};
    use crate::template::{SIGNAL_SUMMARY, builtin_templates};

    fn template_frame() -> String {
        let template = serde_json::to_string(&builtin_templates()[0]).expect("serialises");
        serde_json::to_string(&ServerMessage::Template(SignedPayload::seal(template)))
            .expect("serialises")
    }

    fn packet(payload: String) -> TaskPacket {
        TaskPacket {
            task_id: "t-7".into(),
            lease: 3,
            template_id: "bedside-vitals".into(),
            template_version: 1,
            algorithm: SIGNAL_SUMMARY.into(),
            data: CheckedPayload::seal(payload),
        }
    }

    fn good_data() -> String {
        serde_json::to_string(&TaskData {
            time_s: vec![0.0, 1.0],
            signals: vec![SignalColumn {
                name: "hr".into(),
                values: vec![Some(70.0), None],
            }],
            core_start: 0,
            core_end: 2,
            trend_bucket_s: 60.0,
            reordered_rows: 0,
        })
        .expect("serialises")
    }

    fn task_frame(packet: TaskPacket) -> String {
        String::from_utf8(encode_task_frame(&packet)).expect("frames are UTF-8")
    }

    fn receive_task(receiver: &mut Receiver, packet: TaskPacket) -> Received {
        receiver.receive(&task_frame(packet))
    }

    fn error_code(received: &Received) -> Option<(ErrorCode, Option<&str>, Option<u64>)> {
        match received {
            Received::Reply(WorkerMessage::Error {
                code,
                task_id,
                lease,
                ..
            }) => Some((*code, task_id.as_deref(), *lease)),
            _ => None,
        }
    }

    fn ready_receiver() -> Receiver {
        let mut receiver = Receiver::new();
        assert!(matches!(
            receiver.receive(&template_frame()),
            Received::Nothing
        ));
        receiver
    }

    #[test]
    fn intact_task_for_a_cached_template_is_accepted() {
        let mut receiver = ready_receiver();
        let received = receive_task(&mut receiver, packet(good_data()));
        assert!(
            matches!(received, Received::Task(ref task) if task.task_id == "t-7" && task.lease == 3)
        );
    }

    #[test]
    fn corrupt_task_payload_is_dropped_with_integrity_error() {
        let mut receiver = ready_receiver();
        let mut corrupt = packet(good_data());
        corrupt.data.payload = corrupt
            .data
            .payload
            .replace("\"core_end\":2", "\"core_end\":1");
        assert!(!corrupt.data.is_intact(), "the test changed the payload");
        let received = receive_task(&mut receiver, corrupt);
        assert_eq!(
            error_code(&received),
            Some((ErrorCode::Integrity, Some("t-7"), Some(3)))
        );
    }

    #[test]
    fn task_for_an_unknown_template_is_refused() {
        let mut receiver = Receiver::new();
        let received = receive_task(&mut receiver, packet(good_data()));
        assert_eq!(
            error_code(&received).map(|e| e.0),
            Some(ErrorCode::UnknownTemplate)
        );
    }

    #[test]
    fn task_for_an_unknown_algorithm_is_refused() {
        let mut receiver = ready_receiver();
        let mut unknown = packet(good_data());
        unknown.algorithm = "qrs-detect".into();
        let received = receive_task(&mut receiver, unknown);
        assert_eq!(
            error_code(&received).map(|e| e.0),
            Some(ErrorCode::UnknownAlgorithm)
        );
    }

    #[test]
    fn task_with_inconsistent_lengths_is_malformed() {
        let mut receiver = ready_receiver();
        // Written by hand in the plain column form: one value for two timestamps.
        let bad = r#"{"time_s":[0,1],"signals":[{"name":"hr","values":[70.0]}],"core_start":0,"core_end":2,"trend_bucket_s":60}"#.to_owned();
        let received = receive_task(&mut receiver, packet(bad));
        assert_eq!(
            error_code(&received).map(|e| e.0),
            Some(ErrorCode::Malformed)
        );
    }

    #[test]
    fn task_payload_that_is_not_task_data_is_malformed() {
        let mut receiver = ready_receiver();
        let received = receive_task(&mut receiver, packet("{\"rows\":[]}".into()));
        assert_eq!(
            error_code(&received).map(|e| e.0),
            Some(ErrorCode::Malformed)
        );
    }

    #[test]
    fn corrupt_template_is_refused_with_integrity_error() {
        let mut receiver = Receiver::new();
        let frame = template_frame().replace("bpm", "BPM");
        assert_eq!(
            error_code(&receiver.receive(&frame)).map(|e| e.0),
            Some(ErrorCode::Integrity)
        );
        assert!(receiver.template("bedside-vitals", 1).is_none());
    }

    #[test]
    fn truncated_frame_is_malformed_with_salvaged_task_id() {
        let mut receiver = ready_receiver();
        let frame = task_frame(packet(good_data()));
        let header_len = frame.find('\n').expect("a header line");
        // Cut inside the header line, after the id and the lease: unreadable, ids salvaged.
        let received = receiver.receive(&frame[..header_len / 2]);
        assert_eq!(
            error_code(&received),
            Some((ErrorCode::Malformed, Some("t-7"), Some(3)))
        );
        // Cut inside the payload: the header reads, the checksum does not match.
        let received = receiver.receive(&frame[..frame.len() - 10]);
        assert_eq!(
            error_code(&received),
            Some((ErrorCode::Integrity, Some("t-7"), Some(3)))
        );
        assert_eq!(
            error_code(&receiver.receive("not json")),
            Some((ErrorCode::Malformed, None, None))
        );
    }

    #[test]
    fn welcome_and_cancel_need_no_reply() {
        let mut receiver = Receiver::new();
        assert!(matches!(
            receiver.receive(r#"{"type":"welcome","worker_id":"w","slots":1}"#),
            Received::Nothing
        ));
        assert!(matches!(
            receiver.receive(r#"{"type":"cancel","task_id":"t-7"}"#),
            Received::Cancel(ref id) if id == "t-7"
        ));
    }
}
