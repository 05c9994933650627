//! VitalGrid's worker pipeline: Receiver → DataProcessor → Algorithm → Sender, plus the packet
//! protocol shared with the server. Plain Rust; the browser facade lives in `web` (wasm32 only).

/// Algorithms (`vitals-report`, `ecg-report` and their parts) and the merge of segment results into an analysis.
pub mod algorithm;
/// Result shapes: per-segment results and the merged analysis.
pub mod analysis;
/// Pipeline: the stages together, run in row-bounded slices; `run_task` for one-shot audits.
pub mod pipeline;
/// DataProcessor: ordering, de-duplication and range checks of a task's rows, in slices.
pub mod processor;
/// Packets exchanged with the server and their integrity hashes.
pub mod protocol;
/// Receiver: frame parsing, integrity checks, template cache, task acceptance.
pub mod receiver;
/// Sender: encoding of outgoing frames and sealing of results.
pub mod sender;
/// Slicer: the in-worker scheduler (time-budgeted slices, rest for the CPU share) over a `Clock`.
pub mod slicer;
/// Templates: expected columns and the rules their values obey.
pub mod template;
/// The WebAssembly facade used by the browser worker.
#[cfg(target_arch = "wasm32")]
pub mod web;
/// Compact, exact encodings of a task's columns of numbers.
pub mod wire;
