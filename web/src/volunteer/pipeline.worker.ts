// A Web Worker running VitalGrid's pipeline compiled to WebAssembly. It receives server frames from
// the page, works through its task in slices of rows (yielding between slices so a Stop is answered
// promptly) and posts back the frames the page must send to the server.
import init, { WasmPipeline, run_task_frame } from '../wasm/pkg/vitalgrid_worker.js';
import type { FromWorker, ToWorker } from './messages';

/** Rows per slice: large enough to keep the wasm busy, small enough to answer Stop within ~100 ms. */
const ROWS_PER_SLICE = 20_000;

/** What `WasmPipeline.step` returns (serialised with serde-wasm-bindgen). */
interface StepReport {
  frames: string[];
  rows: number;
  idle: boolean;
  progress: number;
}

// This file runs in a worker, but the project type-checks against the DOM library; `self.postMessage`
// with one argument is valid in both.
const post = (message: FromWorker): void => self.postMessage(message);

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

/** Handles waiting messages, then steps the pipeline until it is idle. Only one pump runs at a time. */
async function pump(): Promise<void> {
  if (pumping || !pipeline) return;
  pumping = true;
  try {
    for (;;) {
      for (let message = inbox.shift(); message; message = inbox.shift()) handle(pipeline, message);
      if (stopped || pipeline.is_idle()) break;
      const report = pipeline.step(ROWS_PER_SLICE) as StepReport;
      post({ kind: 'frames', frames: report.frames, rows: report.rows, progress: report.progress });
      await new Promise((resolve) => setTimeout(resolve, 0));
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
      if (!stopped) post({ kind: 'frames', frames: pipeline.receive(message.frame), rows: 0, progress: null });
      break;
    case 'stop':
      stopped = true;
      post({ kind: 'stopped', frames: pipeline.release_all() });
      break;
    case 'run_task_frame':
      try {
        post({ kind: 'task_result', frame: run_task_frame(message.template, message.task), error: null });
      } catch (error) {
        post({ kind: 'task_result', frame: null, error: error instanceof Error ? error.message : String(error) });
      }
      break;
  }
}
