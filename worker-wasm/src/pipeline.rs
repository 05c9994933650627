//! Pipeline: ties Receiver → DataProcessor → Algorithm → Sender together and runs queued tasks in
//! row-bounded slices, so a browser can do a slice, yield to its event loop and come back.
//!
//! The slice size only decides where work pauses, never what is computed: each task's rows are
//! visited in the same order with the same arithmetic, so results are byte-identical for any budget.

use std::collections::VecDeque;

use thiserror::Error;

use crate::algorithm::SegmentResult;
use crate::protocol::{ErrorCode, ResultPacket, TaskPacket, WorkerMessage};
pub use crate::receiver::TaskError;
use crate::receiver::{AcceptedTask, Received, Receiver, accept_task};
use crate::sender::{self, SendError};
use crate::slicer::{Clock, Slicer};
use crate::template::Template;

/// The outcome of one [`Pipeline::step`].
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Results (or errors) of tasks that finished during this step.
    pub outgoing: Vec<WorkerMessage>,
    /// Rows visited during this step (core and overlap rows alike).
    pub rows_processed: usize,
    /// True when no task is left.
    pub idle: bool,
    /// Fraction (0..=1) done of the task at the head of the queue; 0 when idle.
    pub progress: f64,
}

/// The outcome of one [`Pipeline::run_slice`]: the step it amounted to and the rest it asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Slice {
    pub step: Step,
    /// Milliseconds to rest before the next slice, for the CPU share; 0 when idle.
    pub rest_ms: f64,
}

/// A worker's tasks, from frame to result. Tasks run one at a time in arrival order.
#[derive(Debug, Default)]
pub struct Pipeline {
    receiver: Receiver,
    queue: VecDeque<AcceptedTask>,
    slicer: Slicer,
}

impl Pipeline {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed one server frame; returns messages to send at once (Ack or Error), possibly empty.
    pub fn receive(&mut self, frame: &str) -> Vec<WorkerMessage> {
        match self.receiver.receive(frame) {
            Received::Nothing => Vec::new(),
            Received::Reply(message) => vec![message],
            Received::Task(task) => {
                // A resent task (for instance after an integrity error or a reassignment) replaces any
                // copy still queued: only the newest lease may report.
                self.queue.retain(|queued| queued.task_id != task.task_id);
                let ack = WorkerMessage::Ack {
                    task_id: task.task_id.clone(),
                    lease: task.lease,
                };
                self.queue.push_back(*task);
                vec![ack]
            }
            Received::Cancel(task_id) => {
                self.queue.retain(|queued| queued.task_id != task_id);
                Vec::new()
            }
        }
    }

    /// Do at most `max_rows` rows of work on queued tasks, then return; finished tasks yield Result
    /// messages. Tasks without rows finish even with a zero budget.
    pub fn step(&mut self, max_rows: usize) -> Step {
        let mut outgoing = Vec::new();
        let mut rows_processed = 0;
        while let Some(task) = self.queue.front_mut() {
            rows_processed += task
                .processor
                .process(max_rows - rows_processed, &mut task.run);
            if !task.processor.is_done() {
                break;
            }
            if let Some(task) = self.queue.pop_front() {
                outgoing.push(finish(task));
            }
        }
        let progress = self.queue.front().map_or(0.0, |task| {
            let total = task.processor.total_rows();
            // Precision loss converting row counts to f64 is irrelevant for a progress bar.
            if total == 0 {
                1.0
            } else {
                task.processor.rows_done() as f64 / total as f64
            }
        });
        Step {
            outgoing,
            rows_processed,
            idle: self.queue.is_empty(),
            progress,
        }
    }

    pub fn is_idle(&self) -> bool {
        self.queue.is_empty()
    }

    /// Share of the CPU (0.05–1) the worker may use; it rests in proportion between slices.
    pub fn set_cpu_share(&mut self, share: f64) {
        self.slicer.set_cpu_share(share);
    }

    /// Works for about `budget_ms` (overrunning by at most one adaptive row chunk), then returns so
    /// the caller can answer messages (Stop, ping, new tasks) and rest for `rest_ms`.
    pub fn run_slice(&mut self, clock: &impl Clock, budget_ms: f64) -> Slice {
        self.slicer.set_budget_ms(budget_ms);
        let mut slicer = std::mem::take(&mut self.slicer);
        let mut outgoing = Vec::new();
        let mut last = None;
        let mut rows_processed = 0;
        let report = slicer.run_slice(clock, |max_rows| {
            let step = self.step(max_rows);
            let rows = step.rows_processed;
            rows_processed += rows;
            let idle = step.idle;
            outgoing.extend(step.outgoing);
            last = Some((step.idle, step.progress));
            // A task without rows finishes without visiting any: keep going unless idle.
            if idle { 0 } else { rows.max(1) }
        });
        self.slicer = slicer;
        let (idle, progress) = last.unwrap_or((self.is_idle(), 0.0));
        Slice {
            step: Step {
                outgoing,
                rows_processed,
                idle,
                progress,
            },
            rest_ms: if idle { 0.0 } else { report.rest_ms },
        }
    }

    /// Abandon all queued/running tasks, returning a Release message for each (volunteer pressed Stop).
    pub fn release_all(&mut self) -> Vec<WorkerMessage> {
        self.queue
            .drain(..)
            .map(|task| WorkerMessage::Release {
                task_id: task.task_id,
                lease: task.lease,
            })
            .collect()
    }

    /// Convenience: step until idle, collecting everything (tests, native runs).
    pub fn run_until_idle(&mut self) -> Vec<WorkerMessage> {
        let mut outgoing = Vec::new();
        while !self.is_idle() {
            outgoing.extend(self.step(usize::MAX).outgoing);
        }
        outgoing
    }
}

/// Runs one task packet to completion against `template`, as the server does to re-run a stored
/// task for audit. Uses the same code as [`Pipeline`], so the result bytes are identical.
pub fn run_task(template: &Template, packet: &TaskPacket) -> Result<ResultPacket, TaskError> {
    let mut task = accept_task(Some(template), packet.clone())?;
    task.processor.process(usize::MAX, &mut task.run);
    let result = task.run.finish(&task.processor);
    Ok(sender::result_packet(&task.task_id, task.lease, &result)?)
}

/// Why [`run_task_frame`] produced no result frame.
#[derive(Debug, Error)]
pub enum FrameRunError {
    /// The pipeline answered a frame with this Error frame (JSON) instead of accepting it.
    #[error("the worker refused a frame: {0}")]
    Refused(String),
    #[error("the task frame did not yield a result")]
    NoResult,
    #[error(transparent)]
    Encode(#[from] SendError),
}

/// Runs a template frame and a task frame through a fresh [`Pipeline`] and returns the result frame,
/// exactly as a worker would send it (the byte-identity check between native and WebAssembly).
pub fn run_task_frame(template_frame: &str, task_frame: &str) -> Result<Vec<u8>, FrameRunError> {
    let mut pipeline = Pipeline::new();
    let refusal = |reply: &WorkerMessage| -> Result<FrameRunError, FrameRunError> {
        // A refusal is an ACK's or ERROR's JSON, never a result's payload.
        let frame = sender::encode(reply)?;
        Ok(FrameRunError::Refused(
            String::from_utf8_lossy(&frame).into_owned(),
        ))
    };
    for frame in [template_frame, task_frame] {
        for reply in pipeline.receive(frame) {
            if !matches!(reply, WorkerMessage::Ack { .. }) {
                return Err(refusal(&reply)?);
            }
        }
    }
    let outgoing = pipeline.run_until_idle();
    match outgoing.as_slice() {
        [result @ WorkerMessage::Result(_)] => Ok(sender::encode(result)?),
        [other, ..] => Err(refusal(other)?),
        [] => Err(FrameRunError::NoResult),
    }
}

fn finish(task: AcceptedTask) -> WorkerMessage {
    let result: SegmentResult = task.run.finish(&task.processor);
    match sender::result_packet(&task.task_id, task.lease, &result) {
        Ok(packet) => WorkerMessage::Result(packet),
        Err(error) => WorkerMessage::Error {
            task_id: Some(task.task_id),
            lease: Some(task.lease),
            code: ErrorCode::Malformed,
            message: error.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{
        CheckedPayload, ServerMessage, SignalColumn, SignedPayload, TaskData, encode_task_frame,
    };
    use crate::slicer::Clock;
    use crate::template::{SIGNAL_SUMMARY, builtin_templates};

    fn vitals() -> Template {
        builtin_templates().remove(0)
    }

    fn template_frame() -> String {
        let payload = serde_json::to_string(&vitals()).expect("serialises");
        serde_json::to_string(&ServerMessage::Template(SignedPayload::seal(payload)))
            .expect("serialises")
    }

    /// A few thousand rows with duplicates, disorder, gaps in cells and out-of-range values.
    fn packet(task_id: &str, rows: usize) -> TaskPacket {
        let mut time_s: Vec<f64> = (0..rows).map(|i| i as f64 * 1.01).collect();
        if rows > 10 {
            time_s.swap(3, 4);
            time_s[8] = time_s[7];
        }
        let hr = (0..rows).map(|i| {
            if i % 97 == 0 {
                Some(0.0)
            } else {
                Some(60.0 + (i % 41) as f64 * 0.7)
            }
        });
        let spo2 = (0..rows).map(|i| {
            if i % 13 == 0 {
                None
            } else {
                Some(90.0 + (i % 9) as f64)
            }
        });
        let data = TaskData {
            time_s,
            signals: vec![
                SignalColumn {
                    name: "hr".into(),
                    values: hr.collect(),
                },
                SignalColumn {
                    name: "spo2".into(),
                    values: spo2.collect(),
                },
            ],
            core_start: rows.min(2),
            core_end: rows,
            trend_bucket_s: 30.0,
            reordered_rows: 0,
        };
        TaskPacket {
            task_id: task_id.into(),
            lease: 9,
            template_id: "bedside-vitals".into(),
            template_version: 1,
            algorithm: SIGNAL_SUMMARY.into(),
            data: CheckedPayload::seal(serde_json::to_string(&data).expect("serialises")),
        }
    }

    fn task_frame(packet: TaskPacket) -> String {
        String::from_utf8(encode_task_frame(&packet)).expect("frames are UTF-8")
    }

    fn ready_pipeline(tasks: &[TaskPacket]) -> Pipeline {
        let mut pipeline = Pipeline::new();
        assert!(pipeline.receive(&template_frame()).is_empty());
        for task in tasks {
            let replies = pipeline.receive(&task_frame(task.clone()));
            assert!(
                matches!(replies.as_slice(), [WorkerMessage::Ack { .. }]),
                "{replies:?}"
            );
        }
        pipeline
    }

    fn encoded(messages: &[WorkerMessage]) -> Vec<Vec<u8>> {
        messages
            .iter()
            .map(|m| sender::encode(m).expect("encodes"))
            .collect()
    }

    #[test]
    fn results_are_byte_identical_for_any_step_size() {
        let tasks = [packet("a", 2500), packet("b", 0), packet("c", 11)];
        let reference = encoded(&ready_pipeline(&tasks).run_until_idle());
        assert_eq!(reference.len(), 3);
        for budget in [1, 7, 1000, usize::MAX] {
            let mut pipeline = ready_pipeline(&tasks);
            let mut outgoing = Vec::new();
            while !pipeline.is_idle() {
                let step = pipeline.step(budget);
                assert!(step.rows_processed <= budget);
                assert!((0.0..=1.0).contains(&step.progress));
                outgoing.extend(step.outgoing);
            }
            assert_eq!(encoded(&outgoing), reference, "budget {budget}");
        }
    }

    #[test]
    fn run_task_gives_the_same_bytes_as_the_pipeline() {
        let task = packet("a", 2500);
        let from_pipeline = ready_pipeline(std::slice::from_ref(&task)).run_until_idle();
        let one_shot = run_task(&vitals(), &task).expect("runs");
        assert_eq!(from_pipeline, vec![WorkerMessage::Result(one_shot)]);
    }

    #[test]
    fn step_stops_after_its_row_budget() {
        let mut pipeline = ready_pipeline(&[packet("a", 100)]);
        let step = pipeline.step(40);
        assert_eq!(
            (step.rows_processed, step.idle, step.outgoing.len()),
            (40, false, 0)
        );
        assert!((step.progress - 0.4).abs() < 1e-12);
        let step = pipeline.step(100);
        assert_eq!(
            (step.rows_processed, step.idle, step.outgoing.len()),
            (60, true, 1)
        );
    }

    struct FakeClock(std::cell::Cell<f64>);

    impl Clock for FakeClock {
        fn now_ms(&self) -> f64 {
            // Every reading costs 0.5 ms: the work between readings takes time.
            let now = self.0.get();
            self.0.set(now + 0.5);
            now
        }
    }

    #[test]
    fn slices_give_the_same_bytes_and_a_stop_between_slices_is_honoured_at_once() {
        let tasks = [packet("a", 2500), packet("b", 0), packet("c", 11)];
        let reference = encoded(&ready_pipeline(&tasks).run_until_idle());
        let clock = FakeClock(std::cell::Cell::new(0.0));
        let mut pipeline = ready_pipeline(&tasks);
        pipeline.set_cpu_share(0.5);
        let mut outgoing = Vec::new();
        let mut slices = 0;
        while !pipeline.is_idle() {
            let slice = pipeline.run_slice(&clock, 1.0);
            if !slice.step.idle {
                assert!(slice.rest_ms > 0.0, "half share rests: {slice:?}");
            }
            outgoing.extend(slice.step.outgoing);
            slices += 1;
        }
        assert!(slices > 1, "the work was cut into slices");
        assert_eq!(encoded(&outgoing), reference);

        let mut stopped = ready_pipeline(&tasks);
        let first = stopped.run_slice(&clock, 1.0);
        assert!(!first.step.idle);
        let released = stopped.release_all();
        assert_eq!(released.len(), 3);
        let next = stopped.run_slice(&clock, 1.0);
        assert_eq!(
            (next.step.rows_processed, next.step.idle, next.rest_ms),
            (0, true, 0.0)
        );
        assert!(next.step.outgoing.is_empty());
    }

    #[test]
    fn cancelled_task_is_dropped_silently() {
        let mut pipeline = ready_pipeline(&[packet("a", 100), packet("b", 100)]);
        pipeline.step(10);
        assert!(
            pipeline
                .receive(r#"{"type":"cancel","task_id":"a"}"#)
                .is_empty()
        );
        let outgoing = pipeline.run_until_idle();
        assert!(matches!(outgoing.as_slice(), [WorkerMessage::Result(r)] if r.task_id == "b"));
    }

    #[test]
    fn release_all_hands_back_every_unfinished_task() {
        let mut pipeline = ready_pipeline(&[packet("a", 100), packet("b", 100)]);
        pipeline.step(10);
        let released = pipeline.release_all();
        assert_eq!(
            released,
            vec![
                WorkerMessage::Release {
                    task_id: "a".into(),
                    lease: 9
                },
                WorkerMessage::Release {
                    task_id: "b".into(),
                    lease: 9
                },
            ]
        );
        assert!(pipeline.is_idle());
    }

    #[test]
    fn resent_task_replaces_the_queued_copy() {
        let mut pipeline = ready_pipeline(&[packet("a", 10)]);
        let mut again = packet("a", 10);
        again.lease = 10;
        pipeline.receive(&task_frame(again));
        let outgoing = pipeline.run_until_idle();
        assert!(matches!(outgoing.as_slice(), [WorkerMessage::Result(r)] if r.lease == 10));
    }

    #[test]
    fn corrupt_task_is_not_queued() {
        let mut pipeline = ready_pipeline(&[]);
        let mut corrupt = packet("a", 10);
        corrupt.data.adler32 ^= 1;
        let replies = pipeline.receive(&task_frame(corrupt));
        assert!(matches!(
            replies.as_slice(),
            [WorkerMessage::Error {
                code: ErrorCode::Integrity,
                lease: Some(9),
                ..
            }]
        ));
        assert!(pipeline.is_idle());
    }

    #[test]
    fn run_task_frame_matches_run_task_and_reports_refusals() {
        let task = packet("a", 300);
        let frame = run_task_frame(&template_frame(), &task_frame(task.clone())).expect("runs");
        let expected = WorkerMessage::Result(run_task(&vitals(), &task).expect("runs"));
        assert_eq!(frame, sender::encode(&expected).expect("encodes"));
        let refused = run_task_frame("{}", &task_frame(task));
        assert!(matches!(refused, Err(FrameRunError::Refused(ref f)) if f.contains("malformed")));
    }

    /// Writes a template frame, a task frame and the native result frame to the directory named
    /// by VITALGRID_FRAMES_DIR (if set), for the Node test that runs the same task in WebAssembly.
    #[test]
    fn frames_for_the_wasm_byte_identity_check_are_written_when_asked() {
        let Ok(dir) = std::env::var("VITALGRID_FRAMES_DIR") else {
            return;
        };
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("creates dir");
        let task = packet("audit", 5000);
        let result = run_task(&vitals(), &task).expect("runs");
        let result_frame = sender::encode(&WorkerMessage::Result(result)).expect("encodes");
        std::fs::write(dir.join("template.json"), template_frame()).expect("writes");
        std::fs::write(dir.join("task.frame"), task_frame(task)).expect("writes");
        std::fs::write(dir.join("result.frame"), result_frame).expect("writes");
    }
}
