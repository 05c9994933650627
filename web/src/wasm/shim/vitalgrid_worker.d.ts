// Hand-written declarations of the wasm-bindgen output (worker-wasm/src/web.rs), used by `tsc` only
// while src/wasm/pkg has not been generated. Keep in step with web.rs; the generated .d.ts wins.

export default function init(input?: unknown): Promise<unknown>;

export interface StepReport {
  /** Frames to send to the server as they are (ACK, PROGRESS, RESULT, ERROR). */
  frames: string[];
  /** Data rows processed during this slice. */
  rows: number;
  /** True when no task is left to work on. */
  idle: boolean;
  /** Fraction (0..1) of the current task done. */
  progress: number;
}

export class WasmPipeline {
  constructor();
  free(): void;
  /** Takes one frame from the server; returns frames to send back at once (ACK or ERROR). */
  receive(frame: string): string[];
  /** Works on the current task for at most `maxRows` rows. */
  step(maxRows: number): StepReport;
  /** Hands every unfinished task back (RELEASE frames). */
  release_all(): string[];
  is_idle(): boolean;
}

/** Runs one task from its template frame and task frame and returns the RESULT (or ERROR) frame. */
export function run_task_frame(templateFrame: string, taskFrame: string): string;
