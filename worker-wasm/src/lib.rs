//! VitalGrid's worker pipeline: Receiver → DataProcessor → Algorithm → Sender, plus the packet
//! protocol shared with the server. Plain Rust; the browser facade lives in `web` (wasm32 only).

/// Packets exchanged with the server and their integrity hashes.
pub mod protocol;
/// Templates: expected columns and the rules their values obey.
pub mod template;
/// Result shapes: per-segment results and the merged analysis.
pub mod analysis;
