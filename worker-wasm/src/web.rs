//! The WebAssembly facade for the browser's Web Worker: converts between JS values and the native
//! [`Pipeline`]; no logic of its own, so native tests cover everything that matters.

use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::pipeline::{self, Pipeline};
use crate::sender;
use crate::slicer::Clock;

/// `performance.now()` when the global has it (Web Workers and Node do), else `Date.now()`.
struct PerformanceClock {
    performance: Option<js_sys::Function>,
    this: JsValue,
}

impl PerformanceClock {
    fn new() -> Self {
        let this = js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("performance"))
            .unwrap_or(JsValue::UNDEFINED);
        let performance = js_sys::Reflect::get(&this, &JsValue::from_str("now"))
            .ok()
            .and_then(|now| now.dyn_into::<js_sys::Function>().ok());
        Self { performance, this }
    }
}

impl Clock for PerformanceClock {
    fn now_ms(&self) -> f64 {
        self.performance
            .as_ref()
            .and_then(|now| now.call0(&self.this).ok())
            .and_then(|value| value.as_f64())
            .unwrap_or_else(js_sys::Date::now)
    }
}

/// What `run_slice` returns to JS: `step`'s fields plus `rest_ms`, the pause before the next slice.
/// (`frames` is set on the object apart: see [`with_frames`].)
#[derive(Serialize)]
struct SliceReport {
    rows: u32,
    idle: bool,
    progress: f64,
    rest_ms: f64,
}

/// Installs the panic hook once, when the module is instantiated, so panics reach the console.
#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}

/// What `step` returns to JS: `{frames: Uint8Array[], rows: number, idle: boolean, progress: number}`.
#[derive(Serialize)]
struct StepReport {
    rows: u32,
    idle: bool,
    progress: f64,
}

/// The worker pipeline; outgoing messages cross as frames ready for the socket: `Uint8Array`s of
/// UTF-8 (docs/protocol.md), which a WebSocket sends as they are. As strings they cost a UTF-8
/// decode on the way out of wasm memory, and the browser encodes them back to send them.
#[wasm_bindgen]
pub struct WasmPipeline {
    inner: Pipeline,
    clock: PerformanceClock,
}

#[wasm_bindgen]
impl WasmPipeline {
    #[wasm_bindgen(constructor)]
    pub fn new() -> WasmPipeline {
        WasmPipeline {
            inner: Pipeline::new(),
            clock: PerformanceClock::new(),
        }
    }

    /// Feeds one server frame; returns frames to send at once (ACK or ERROR).
    pub fn receive(&mut self, frame: &str) -> Result<js_sys::Array, JsError> {
        encode_all(&self.inner.receive(frame))
    }

    /// [`WasmPipeline::receive`] for a frame the caller encoded as UTF-8 (`TextEncoder`): bytes
    /// cross into wasm memory at memory-copy speed, while wasm-bindgen's glue copies a string one
    /// character at a time — a millisecond for a megabyte task. Bytes that are not UTF-8 become
    /// replacement characters, which the frame's checksum then refuses.
    pub fn receive_bytes(&mut self, frame: &[u8]) -> Result<js_sys::Array, JsError> {
        // `from_utf8` checks ASCII a word at a time; `from_utf8_lossy` walks every byte even when
        // all is well (4 % of an ECG report's time in wasm), so it is only the fallback.
        match std::str::from_utf8(frame) {
            Ok(text) => self.receive(text),
            Err(_) => self.receive(&String::from_utf8_lossy(frame)),
        }
    }

    /// Does at most `max_rows` rows of work, then returns so the caller can yield to the event loop.
    pub fn step(&mut self, max_rows: u32) -> Result<JsValue, JsError> {
        // u32 → usize is lossless on wasm32 and wider targets.
        let step = self.inner.step(max_rows as usize);
        let report = StepReport {
            rows: u32::try_from(step.rows_processed).unwrap_or(max_rows),
            idle: step.idle,
            progress: step.progress,
        };
        with_frames(&report, encode_all(&step.outgoing)?)
    }

    /// Works for about `budget_ms` (a few ms keeps Stop and pings responsive), then returns
    /// `{frames, rows, idle, progress, rest_ms}`; wait `rest_ms` before the next slice.
    pub fn run_slice(&mut self, budget_ms: f64) -> Result<JsValue, JsError> {
        let slice = self.inner.run_slice(&self.clock, budget_ms);
        let report = SliceReport {
            rows: u32::try_from(slice.step.rows_processed).unwrap_or(u32::MAX),
            idle: slice.step.idle,
            progress: slice.step.progress,
            rest_ms: slice.rest_ms,
        };
        with_frames(&report, encode_all(&slice.step.outgoing)?)
    }

    /// Share of the CPU (0.05–1, e.g. 0.5 for 50 %) the worker may use.
    pub fn set_cpu_share(&mut self, share: f64) {
        self.inner.set_cpu_share(share);
    }

    /// Abandons every queued task; returns a RELEASE frame for each.
    pub fn release_all(&mut self) -> js_sys::Array {
        // Release frames hold only a string and an integer, which always encode; an impossible
        // failure drops that frame rather than throwing while the volunteer is stopping.
        self.inner
            .release_all()
            .iter()
            .filter_map(|m| sender::encode(m).ok())
            .map(|frame| js_sys::Uint8Array::from(frame.as_slice()))
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
pub fn run_task_frame(template_frame: &str, task_frame: &str) -> Result<Vec<u8>, JsError> {
    pipeline::run_task_frame(template_frame, task_frame)
        .map_err(|error| JsError::new(&error.to_string()))
}

/// The frames for `messages`, as an array of `Uint8Array`s.
fn encode_all(messages: &[crate::protocol::WorkerMessage]) -> Result<js_sys::Array, JsError> {
    messages
        .iter()
        .map(|m| {
            sender::encode(m)
                .map(|frame| js_sys::Uint8Array::from(frame.as_slice()))
                .map_err(|error| JsError::new(&error.to_string()))
        })
        .collect()
}

/// `report` as a JS object, with `frames` added to it.
fn with_frames(report: &impl Serialize, frames: js_sys::Array) -> Result<JsValue, JsError> {
    let serializer = serde_wasm_bindgen::Serializer::json_compatible();
    let object = report
        .serialize(&serializer)
        .map_err(|error| JsError::new(&error.to_string()))?;
    js_sys::Reflect::set(&object, &JsValue::from_str("frames"), &frames)
        .map_err(|_| JsError::new("could not attach the frames to the step report"))?;
    Ok(object)
}
