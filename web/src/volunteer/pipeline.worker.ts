// A Web Worker running VitalGrid's pipeline compiled to WebAssembly. It receives server frames from
// the page, works through its task in time slices of about SLICE_BUDGET_MS and rests between slices
// for as long as the wasm says (`rest_ms`, from the volunteer's CPU share), so a Stop or a new frame
// is answered between slices; it posts back the frames the page must send to the server.
import init, { WasmPipeline, run_task_frame } from '../wasm/pkg/vitalgrid_worker.js';
import type { FromWorker, ToWorker, WorkerFrame } from './messages';

/** Milliseconds of work per slice: short enough to answer Stop promptly, long enough to be efficient. */
const SLICE_BUDGET_MS = 8;
/** Upper bound on a rest, whatever the wasm asks (it rests busy × (1 − share) / share). */
const MAX_REST_MS = 1000;

/** What `WasmPipeline.run_slice` returns (serialised with serde-wasm-bindgen). */
interface SliceReport {
  frames: WorkerFrame[];
  rows: number;
  idle: boolean;
  progress: number;
  rest_ms: number;
}

// This file runs in a worker, but the project type-checks against the DOM library; `self.postMessage`
// with one argument is valid in both.
const post = (message: FromWorker): void => self.postMessage(message);
/** Frames go into wasm as UTF-8 bytes (see `WasmPipeline.receive_bytes`). */
const utf8 = new TextEncoder();

// Everything pump() uses is declared above the top-level await below: pump() first runs when init()
// resolves, before the rest of this module has been evaluated.
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const inbox: ToWorker[] = [];
let pipeline: WasmPipeline | null = null;
let pumping = false;
let stopped = false;

// Registered before the wasm is loaded: frames that arrive meanwhile wait in the inbox.
self.onmessage = (event: MessageEvent<ToWorker>) => {
  inbox.push(event.data);
  void pump();
};

try {
  await init();
  pipeline = new WasmPipeline();
  post({ kind: 'ready' });
  void pump();
} catch (error) {
  post({ kind: 'failed', message: `The analysis pipeline could not start: ${error instanceof Error ? error.message : String(error)}` });
}

/** Handles waiting messages, then runs slices until the pipeline is idle. Only one pump runs at a time. */
async function pump(): Promise<void> {
  if (pumping || !pipeline) return;
  pumping = true;
  try {
    for (;;) {
      for (let message = inbox.shift(); message; message = inbox.shift()) handle(pipeline, message);
      if (stopped || pipeline.is_idle()) break;
      const report = pipeline.run_slice(SLICE_BUDGET_MS) as SliceReport;
      post({ kind: 'frames', frames: report.frames, rows: report.rows, progress: report.progress });
      const rest = Number.isFinite(report.rest_ms) ? Math.min(Math.max(report.rest_ms, 0), MAX_REST_MS) : 0;
      await sleep(rest); // 0 still yields, so messages posted meanwhile are seen
    }
  } catch (error) {
    post({ kind: 'failed', message: `The analysis pipeline crashed: ${error instanceof Error ? error.message : String(error)}` });
    stopped = true;
  } finally {
    pumping = false;
  }
}

function handle(pipeline: WasmPipeline, message: ToWorker): void {
  switch (message.kind) {
    case 'frame':
      if (!stopped) {
        const bytes = typeof message.frame === 'string' ? utf8.encode(message.frame) : new Uint8Array(message.frame);
        post({ kind: 'frames', frames: pipeline.receive_bytes(bytes), rows: 0, progress: null });
      }
      break;
    case 'cpu_share':
      pipeline.set_cpu_share(message.share);
      break;
    case 'stop':
      stopped = true;
      post({ kind: 'stopped', frames: pipeline.release_all() });
      break;
    case 'run_task_frame':
      try {
        // wasm-bindgen returns a fresh copy of the bytes, never a view of shared memory.
        const frame = run_task_frame(message.template, message.task) as WorkerFrame;
        post({ kind: 'task_result', frame, error: null });
      } catch (error) {
        post({ kind: 'task_result', frame: null, error: error instanceof Error ? error.message : String(error) });
      }
      break;
  }
}
