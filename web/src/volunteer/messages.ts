// Messages between the volunteer page (which holds the WebSocket) and each pipeline Web Worker
// (which holds a wasm pipeline). Server frames travel as their original text, never re-serialised,
// because the wasm checks integrity over exactly the bytes the server sent.

/** A server frame: a text message, or a binary one (a task: its header line, then its payload). */
export type ServerFrame = string | ArrayBuffer;

/**
 * A frame the wasm pipeline made for the server, as UTF-8 bytes sent as a binary message: a
 * result's header line and payload (docs/protocol.md), or another message's JSON.
 */
export type WorkerFrame = Uint8Array<ArrayBuffer>;

export type ToWorker =
  /** A frame from the server, exactly as received: text, or the UTF-8 bytes of a task frame. */
  | { kind: 'frame'; frame: ServerFrame }
  /** Hand back unfinished tasks (RELEASE frames) and stop working. */
  | { kind: 'stop' }
  /** Share of one CPU core the worker may use, 0.05–1 (it rests between slices for the rest). */
  | { kind: 'cpu_share'; share: number }
  /** Run one task outside any session and answer with its RESULT frame (byte-identity checks). */
  | { kind: 'run_task_frame'; template: string; task: string };

export type FromWorker =
  /** The wasm module is instantiated. */
  | { kind: 'ready' }
  /** Frames to send to the server as they are, and the data rows processed since the last report. */
  | { kind: 'frames'; frames: WorkerFrame[]; rows: number; progress: number | null }
  /** Answer to `stop`: the RELEASE frames for unfinished tasks. */
  | { kind: 'stopped'; frames: WorkerFrame[] }
  /** Answer to `run_task_frame`: the RESULT frame, or why the task was refused. */
  | { kind: 'task_result'; frame: WorkerFrame | null; error: string | null }
  /** The worker cannot go on (wasm missing or crashed). */
  | { kind: 'failed'; message: string };
