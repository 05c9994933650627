//! The WebAssembly facade for the browser's Web Worker: converts between JS values and the native
//! [`Pipeline`]; no logic of its own, so native tests cover everything that matters.

use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::pipeline::{self, Pipeline};
use crate::sender;

/// Installs the panic hook once, when the module is instantiated, so panics reach the console.
#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}

/// What `step` returns to JS: `{frames: string[], rows: number, idle: boolean, progress: number}`.
#[derive(Serialize)]
struct StepReport {
    frames: Vec<String>,
    rows: u32,
    idle: bool,
    progress: f64,
}

/// The worker pipeline; outgoing messages cross as JSON text frames ready for the socket.
#[wasm_bindgen]
pub struct WasmPipeline {
    inner: Pipeline,
}

#[wasm_bindgen]
impl WasmPipeline {
    #[wasm_bindgen(constructor)]
    pub fn new() -> WasmPipeline {
        WasmPipeline {
            inner: Pipeline::new(),
        }
    }

    /// Feeds one server frame; returns frames to send at once (ACK or ERROR).
    pub fn receive(&mut self, frame: &str) -> Result<Vec<String>, JsError> {
        encode_all(&self.inner.receive(frame))
    }

    /// Does at most `max_rows` rows of work, then returns so the caller can yield to the event loop.
    pub fn step(&mut self, max_rows: u32) -> Result<JsValue, JsError> {
        // u32 → usize is lossless on wasm32 and wider targets.
        let step = self.inner.step(max_rows as usize);
        let report = StepReport {
            frames: encode_all(&step.outgoing)?,
            rows: u32::try_from(step.rows_processed).unwrap_or(max_rows),
            idle: step.idle,
            progress: step.progress,
        };
        let serializer = serde_wasm_bindgen::Serializer::json_compatible();
        report
            .serialize(&serializer)
            .map_err(|error| JsError::new(&error.to_string()))
    }

    /// Abandons every queued task; returns a RELEASE frame for each.
    pub fn release_all(&mut self) -> Vec<String> {
        // Release frames hold only a string and an integer, which always encode; an impossible
        // failure drops that frame rather than throwing while the volunteer is stopping.
        self.inner
            .release_all()
            .iter()
            .filter_map(|m| sender::encode(m).ok())
            .collect()
    }

    pub fn is_idle(&self) -> bool {
        self.inner.is_idle()
    }
}

impl Default for WasmPipeline {
    fn default() -> Self {
        Self::new()
    }
}

/// The result frame for a template frame and a task frame, as a worker would send it.
#[wasm_bindgen]
pub fn run_task_frame(template_frame: &str, task_frame: &str) -> Result<String, JsError> {
    pipeline::run_task_frame(template_frame, task_frame)
        .map_err(|error| JsError::new(&error.to_string()))
}

fn encode_all(messages: &[crate::protocol::WorkerMessage]) -> Result<Vec<String>, JsError> {
    messages
        .iter()
        .map(|m| sender::encode(m).map_err(|error| JsError::new(&error.to_string())))
        .collect()
}
