// The volunteer runtime: one WebSocket to the server on the page's main thread, N Web Workers each
// holding the wasm pipeline. The page routes frames between them by their `type` (a task's and a
// result's from their header line), always forwarding the original frame (the wasm checks integrity
// over the exact bytes):
//   template  → every worker (each caches templates)
//   task      → a free worker, which holds it until it sends RESULT, ERROR or RELEASE for that task
//   cancel    → the worker holding that task
//   error     → the worker holding the task it names; a `protocol` error without a task (wrong
//               version, or this browser's worker key was banned) stops the runtime and says why;
//               any other is only logged
//   not JSON  → any worker (the wasm answers with a `malformed` ERROR)
// Everything a worker returns goes to the server unchanged.
//
// The hello carries a worker key kept in localStorage, so the server can keep this browser's track
// record (agreed and disagreed results) across sessions.
import type { FromWorker, ServerFrame, ToWorker, WorkerFrame } from './messages';

// Must equal `PROTOCOL_VERSION` in worker-wasm/src/protocol.rs (a Rust test checks).
const PROTOCOL_VERSION = 4;
/** How long Stop waits for workers to hand back their tasks before closing anyway. */
const STOP_TIMEOUT_MS = 3000;

/** localStorage key under which this browser keeps its worker key. */
export const WORKER_KEY_STORAGE = 'vitalgrid.worker_key';
/** What the server accepts as a worker key (docs/protocol.md). */
const WORKER_KEY_PATTERN = /^[A-Za-z0-9_-]{8,64}$/;

/**
 * `refused`: the server turned this browser away (a `protocol` error, e.g. its key was banned);
 * Start is allowed again, but the same key will be refused again.
 */
export type RuntimeState = 'stopped' | 'connecting' | 'running' | 'stopping' | 'disconnected' | 'refused';

export interface ThreadView {
  /** The task the worker is on, or null when free. Task ids are opaque. */
  taskId: string | null;
  /** Fraction of the current task done, when known. */
  progress: number | null;
  tasksDone: number;
  problem: string | null;
}

export interface RuntimeView {
  state: RuntimeState;
  detail: string;
  tasksDone: number;
  samplesProcessed: number;
  threads: ThreadView[];
}

interface Thread extends ThreadView {
  worker: Worker;
  /** Resolves the pending Stop with this worker's RELEASE frames. */
  onStopped: ((frames: WorkerFrame[]) => void) | null;
}

/** The fields the runtime reads from a frame to route it; everything else is the wasm's business. */
interface FrameHead {
  type?: string;
  task_id?: string | null;
  code?: string;
  message?: string;
}

/** A task frame's first fields, which the server always writes first (serde keeps field order). */
const TASK_HEAD = /^\{"type":"task","task_id":"([^"\\]+)"/;

const utf8 = new TextDecoder();

/**
 * A frame's first line: a task's or a result's header (its payload, up to megabytes, is neither
 * decoded nor parsed on the page's main thread), or the whole of any other message's JSON.
 */
function firstLine(frame: ServerFrame | WorkerFrame): string {
  if (typeof frame === 'string') {
    const newline = frame.indexOf('\n');
    return newline < 0 ? frame : frame.slice(0, newline);
  }
  const bytes = frame instanceof Uint8Array ? frame : new Uint8Array(frame);
  const newline = bytes.indexOf(0x0a);
  return utf8.decode(newline < 0 ? bytes : bytes.subarray(0, newline));
}

/** The fields a frame is routed by, from the server or from a worker alike. */
function headOf(frame: ServerFrame | WorkerFrame): FrameHead | null {
  const line = firstLine(frame);
  // A task goes to a worker by its id even when the rest of its header does not parse, so that
  // the worker holding it answers with the ERROR for that task.
  const task = TASK_HEAD.exec(line);
  if (task) return { type: 'task', task_id: task[1] };
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === 'object' && value !== null ? (value as FrameHead) : null;
  } catch {
    return null;
  }
}

/** "browser Chrome/126.0.0.0" rather than the whole user-agent string. */
function agentName(): string {
  const ua = navigator.userAgent;
  const product = ua.match(/(Edg|Firefox|Chrome|Chromium|Version)\/[\d.]+/)?.[0] ?? ua.slice(0, 40);
  return `browser ${product.replace(/^Version/, 'Safari')}`;
}

let sessionKey: string | null = null; // when localStorage is unavailable (private mode, blocked storage)

/** "b-" and 32 random hex digits. */
function newWorkerKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return 'b-' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * This browser's worker key: read from localStorage, or made and stored there on first use. When
 * storage is unavailable the key lasts as long as the page.
 */
export function workerKey(): string {
  try {
    const stored = localStorage.getItem(WORKER_KEY_STORAGE);
    if (stored && WORKER_KEY_PATTERN.test(stored)) return stored;
    const key = newWorkerKey();
    localStorage.setItem(WORKER_KEY_STORAGE, key);
    return key;
  } catch {
    sessionKey ??= newWorkerKey();
    return sessionKey;
  }
}

/** A CPU share the wasm accepts: 0.05–1, 1 when not a number. */
function clampShare(share: number): number {
  return Number.isFinite(share) ? Math.min(1, Math.max(0.05, share)) : 1;
}

export class VolunteerRuntime {
  private socket: WebSocket | null = null;
  private threads: Thread[] = [];
  /** Tasks that arrived while every worker was busy (the server should not let this happen). */
  private waiting: { taskId: string; frame: ServerFrame }[] = [];
  private cpuShare = 1;
  private view: RuntimeView = { state: 'stopped', detail: 'Not running.', tasksDone: 0, samplesProcessed: 0, threads: [] };

  constructor(private readonly onChange: (view: RuntimeView) => void) {}

  get state(): RuntimeState {
    return this.view.state;
  }

  /** Connects with `threadCount` workers, each using at most `cpuShare` (0.05–1) of a core. */
  start(threadCount: number, cpuShare = 1): void {
    if (this.socket) return;
    this.cpuShare = clampShare(cpuShare);
    this.threads = Array.from({ length: threadCount }, () => this.spawn());
    this.waiting = [];
    this.update('connecting', 'Connecting to VitalGrid…');

    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const socket = new WebSocket(`${scheme}://${location.host}/ws/worker`);
    this.socket = socket;
    socket.onopen = () =>
      socket.send(JSON.stringify({ type: 'hello', protocol: PROTOCOL_VERSION, slots: threadCount, agent: agentName(), worker_key: workerKey() }));
    // Task packets come as binary messages (UTF-8 JSON): they go to the wasm as bytes.
    socket.binaryType = 'arraybuffer';
    socket.onmessage = (event) => {
      if (typeof event.data === 'string' || event.data instanceof ArrayBuffer) this.route(event.data);
    };
    socket.onclose = (event) => {
      if (this.socket !== socket) return; // closed by stop()
      this.shutdown('disconnected', `The connection to VitalGrid closed${event.reason ? `: ${event.reason}` : ''}. Press Start to try again.`);
    };
  }

  /** Changes the CPU share of the running workers (and of those started later). */
  setCpuShare(share: number): void {
    this.cpuShare = clampShare(share);
    this.threads.forEach((thread) => this.post(thread, { kind: 'cpu_share', share: this.cpuShare }));
  }

  /** Hands unfinished tasks back to the server, then closes the socket and the workers. */
  async stop(): Promise<void> {
    if (!this.socket || this.view.state === 'stopping') return;
    const socket = this.socket;
    this.update('stopping', 'Handing unfinished tasks back…');
    const releases = await Promise.all(
      this.threads.map(
        (thread) =>
          new Promise<WorkerFrame[]>((resolve) => {
            if (thread.problem) return resolve([]);
            const timer = setTimeout(() => resolve([]), STOP_TIMEOUT_MS);
            thread.onStopped = (frames) => {
              clearTimeout(timer);
              resolve(frames);
            };
            this.post(thread, { kind: 'stop' });
          }),
      ),
    );
    if (socket.readyState === WebSocket.OPEN) releases.flat().forEach((frame) => socket.send(frame));
    this.socket = null;
    socket.close(1000, 'volunteer stopped');
    this.shutdown('stopped', 'Stopped. Thank you for donating compute!');
  }

  /** The server turned this browser away: say why and stop (its tasks are lost with the socket). */
  private refuse(reason: string): void {
    const socket = this.socket;
    this.shutdown('refused', `VitalGrid refused this browser: ${reason}. Work has stopped.`);
    socket?.close(1000, 'refused by the server');
  }

  private shutdown(state: RuntimeState, detail: string): void {
    this.socket = null;
    for (const thread of this.threads) {
      thread.worker.terminate();
      thread.taskId = null;
      thread.progress = null;
    }
    this.waiting = [];
    this.update(state, detail);
  }

  private spawn(): Thread {
    const worker = new Worker(new URL('./pipeline.worker.ts', import.meta.url), { type: 'module' });
    const thread: Thread = { worker, taskId: null, progress: null, tasksDone: 0, problem: null, onStopped: null };
    worker.onmessage = (event: MessageEvent<FromWorker>) => this.fromWorker(thread, event.data);
    this.post(thread, { kind: 'cpu_share', share: this.cpuShare }); // waits in the worker's inbox until the wasm is up
    worker.onerror = (event) => {
      thread.problem = event.message || 'The worker crashed.';
      this.update();
    };
    return thread;
  }

  private post(thread: Thread, message: ToWorker): void {
    thread.worker.postMessage(message);
  }

  /** Sends one server frame to the worker(s) it is for. */
  private route(frame: ServerFrame): void {
    const head = headOf(frame);
    switch (head?.type) {
      case 'welcome':
        this.update('running', 'Connected. Waiting for tasks…');
        return;
      case 'template':
        this.threads.forEach((thread) => this.post(thread, { kind: 'frame', frame }));
        return;
      case 'task':
        this.assign(String(head.task_id), frame);
        return;
      case 'cancel': {
        const holder = this.threads.find((thread) => thread.taskId === head.task_id);
        if (holder) {
          this.post(holder, { kind: 'frame', frame });
          this.free(holder);
        }
        this.waiting = this.waiting.filter((task) => task.taskId !== head.task_id);
        return;
      }
      case 'error': {
        if (!head.task_id && head.code === 'protocol') {
          this.refuse(head.message ?? 'no reason given');
          return;
        }
        const holder = this.threads.find((thread) => head.task_id && thread.taskId === head.task_id);
        if (holder) this.post(holder, { kind: 'frame', frame });
        else console.warn('VitalGrid server reported an error:', frame);
        return;
      }
      default: {
        // Not JSON or an unknown type: let the wasm answer it (a `malformed` ERROR).
        const any = this.threads.find((thread) => !thread.taskId && !thread.problem) ?? this.threads[0];
        if (any) this.post(any, { kind: 'frame', frame });
      }
    }
  }

  private assign(taskId: string, frame: ServerFrame): void {
    const free = this.threads.find((thread) => !thread.taskId && !thread.problem);
    if (!free) {
      this.waiting.push({ taskId, frame });
      return;
    }
    free.taskId = taskId;
    free.progress = 0;
    this.post(free, { kind: 'frame', frame });
    this.update();
  }

  private free(thread: Thread): void {
    thread.taskId = null;
    thread.progress = null;
    const next = this.waiting.shift();
    if (next) this.assign(next.taskId, next.frame);
  }

  private fromWorker(thread: Thread, message: FromWorker): void {
    switch (message.kind) {
      case 'frames':
        for (const frame of message.frames) {
          this.socket?.send(frame);
          const head = headOf(frame);
          if (head?.type === 'result') {
            thread.tasksDone += 1;
            this.view.tasksDone += 1;
          }
          const endsTask = head?.type === 'result' || head?.type === 'error' || head?.type === 'release';
          if (endsTask && head?.task_id === thread.taskId) this.free(thread);
        }
        this.view.samplesProcessed += message.rows;
        if (message.progress !== null && thread.taskId) thread.progress = message.progress;
        break;
      case 'stopped':
        thread.onStopped?.(message.frames);
        thread.onStopped = null;
        break;
      case 'failed':
        thread.problem = message.message;
        thread.onStopped?.([]);
        thread.onStopped = null;
        break;
      case 'ready':
      case 'task_result':
        break;
    }
    this.update();
  }

  private update(state?: RuntimeState, detail?: string): void {
    if (state) this.view.state = state;
    if (detail) this.view.detail = detail;
    this.view.threads = this.threads.map(({ taskId, progress, tasksDone, problem }) => ({ taskId, progress, tasksDone, problem }));
    this.onChange({ ...this.view });
  }
}
