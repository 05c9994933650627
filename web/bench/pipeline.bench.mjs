// Throughput of the WebAssembly worker pipeline in headless Chromium, on the exact frames the native
// bench (server/benches/pipeline.rs) timed and wrote out. Part of `cargo xtask bench pipeline`;
// a benchmark, not a test: it prints figures and asserts nothing about time. It does check that every
// result frame is byte-identical to the native one, since a fast wrong answer is no answer.
//
// Each workload runs in a module Web Worker, as in production (src/volunteer/pipeline.worker.ts), and
// again on the page's main thread. One run = a fresh WasmPipeline, receive(template frame),
// receive(every task frame), then step() until idle, timed with performance.now(); the figure is the
// median of --runs runs after a warm-up (at least three runs and a second). "full" steps with an
// unbounded row budget (the same work as the native run_until_idle); "sliced" steps 20 000 rows at
// a time like pipeline.worker.ts, without its yields to the event loop.
//
//   node web/bench/pipeline.bench.mjs --frames DIR --pkg DIR [--runs 7]
// The last line of output is one JSON object with every figure.

import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { chromium } from 'playwright-core';

const ROWS_PER_SLICE = 20_000; // as in src/volunteer/pipeline.worker.ts

function option(name, fallback) {
  const index = process.argv.indexOf(`--${name}`);
  return index > 0 && process.argv[index + 1] ? process.argv[index + 1] : fallback;
}

const framesDir = option('frames');
const pkgDir = option('pkg');
const runs = Math.max(1, Number(option('runs', '7')));
if (!framesDir || !pkgDir) {
  console.error('usage: node web/bench/pipeline.bench.mjs --frames DIR --pkg DIR [--runs N]');
  process.exit(2);
}

// Shared by the worker and the page: everything that is timed happens here.
const benchCore = `
export async function runAll(glue, runs, rowsPerSlice) {
  const utf8 = new TextEncoder();
  const manifest = await (await fetch('/frames/manifest.json')).json();
  const text = (url) => fetch(url).then((response) => response.text());
  const figures = {};
  for (const workload of manifest) {
    const base = '/frames/' + workload.name + '/';
    const template = await text(base + workload.template);
    // Task frames as the server sends them: binary messages of UTF-8 JSON (docs/protocol.md).
    const tasks = await Promise.all(workload.tasks.map((t) => fetch(base + t.task).then((r) => r.arrayBuffer())));
    // Result frames as workers send them: UTF-8 bytes, a header line and the payload.
    const expected = await Promise.all(workload.tasks.map((t) => fetch(base + t.result).then((r) => r.arrayBuffer()).then((b) => new Uint8Array(b))));
    const same = (a, b) => a.length === b.length && a.every((byte, i) => byte === b[i]);
    const once = (maxRows) => {
      const t0 = performance.now();
      const pipeline = new glue.WasmPipeline();
      // As src/volunteer/pipeline.worker.ts does: frames cross into wasm as UTF-8 bytes.
      const replies = [...pipeline.receive_bytes(utf8.encode(template))];
      for (const frame of tasks) replies.push(...pipeline.receive_bytes(new Uint8Array(frame)));
      const t1 = performance.now();
      const frames = [];
      while (!pipeline.is_idle()) frames.push(...pipeline.step(maxRows).frames);
      const t2 = performance.now();
      pipeline.free();
      return { receive: t1 - t0, run: t2 - t1, total: t2 - t0, replies, frames };
    };
    const median = (values) => {
      const sorted = [...values].sort((a, b) => a - b);
      const mid = sorted.length >> 1;
      return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    };
    figures[workload.name] = {};
    for (const [variant, maxRows] of [['full', 0xffffffff], ['sliced', rowsPerSlice]]) {
      // V8 first compiles wasm with its baseline compiler and tiers hot functions up to optimised
      // code in the background; a volunteer's tab runs task after task, so the steady state is what
      // counts: warm up for at least three runs and a second before measuring.
      let warm = once(maxRows);
      for (let n = 1, since = performance.now(); n < 3 || performance.now() - since < 1000; n++) warm = once(maxRows);
      const refused = warm.replies.map((reply) => new TextDecoder().decode(reply)).filter((reply) => JSON.parse(reply).type !== 'ack');
      if (refused.length) throw new Error(workload.name + ': refused: ' + refused[0]);
      const identical = warm.frames.length === expected.length && warm.frames.every((f, i) => same(f, expected[i]));
      const measured = Array.from({ length: runs }, () => once(maxRows));
      const total = median(measured.map((m) => m.total));
      figures[workload.name][variant] = {
        tasks: tasks.length,
        samples: workload.samples,
        runs,
        median_ms: total,
        min_ms: Math.min(...measured.map((m) => m.total)),
        receive_median_ms: median(measured.map((m) => m.receive)),
        run_median_ms: median(measured.map((m) => m.run)),
        samples_per_s: (workload.samples / total) * 1e3,
        identical_to_native: identical,
      };
    }
  }
  return figures;
}
`;

const workerScript = `
import init, * as glue from '/pkg/vitalgrid_worker.js';
import { runAll } from '/core.js';
self.onmessage = async (event) => {
  try {
    await init();
    self.postMessage({ ok: true, figures: await runAll(glue, event.data.runs, event.data.rowsPerSlice) });
  } catch (error) {
    self.postMessage({ ok: false, error: String(error && error.stack || error) });
  }
};
`;

const page = `<!doctype html><meta charset="utf-8"><title>pipeline bench</title>
<script type="module">
import init, * as glue from '/pkg/vitalgrid_worker.js';
import { runAll } from '/core.js';
window.inWorker = (runs, rowsPerSlice) => new Promise((resolve, reject) => {
  const worker = new Worker('/worker.js', { type: 'module' });
  worker.onerror = (event) => reject(new Error(event.message));
  worker.onmessage = (event) => {
    worker.terminate();
    event.data.ok ? resolve(event.data.figures) : reject(new Error(event.data.error));
  };
  worker.postMessage({ runs, rowsPerSlice });
});
window.onMainThread = async (runs, rowsPerSlice) => { await init(); return runAll(glue, runs, rowsPerSlice); };
window.benchReady = true;
</script>`;

const types = { '.js': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json' };

const server = createServer(async (request, response) => {
  const url = new URL(request.url, 'http://localhost');
  const inline = { '/': [page, 'text/html'], '/core.js': [benchCore, 'text/javascript'], '/worker.js': [workerScript, 'text/javascript'] }[url.pathname];
  try {
    if (inline) {
      response.writeHead(200, { 'content-type': inline[1] }).end(inline[0]);
      return;
    }
    const [root, prefix] = url.pathname.startsWith('/pkg/') ? [pkgDir, '/pkg/'] : [framesDir, '/frames/'];
    const relative = path.normalize(decodeURIComponent(url.pathname.slice(prefix.length)));
    if (!url.pathname.startsWith(prefix) || relative.startsWith('..')) throw new Error('not served');
    const body = await readFile(path.join(root, relative));
    response.writeHead(200, { 'content-type': types[path.extname(relative)] ?? 'application/octet-stream' }).end(body);
  } catch {
    response.writeHead(404).end();
  }
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const origin = `http://127.0.0.1:${server.address().port}`;

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const tab = await browser.newPage();
  tab.on('pageerror', (error) => console.error('page error:', error));
  await tab.goto(origin + '/');
  await tab.waitForFunction(() => window.benchReady === true);
  const contexts = {};
  for (const [context, fn] of [['worker', 'inWorker'], ['main', 'onMainThread']]) {
    contexts[context] = await tab.evaluate(([name, n, rows]) => window[name](n, rows), [fn, runs, ROWS_PER_SLICE]);
    for (const [name, variants] of Object.entries(contexts[context])) {
      for (const [variant, f] of Object.entries(variants)) {
        console.error(
          `wasm ${context.padEnd(6)} ${variant.padEnd(6)} ${name.padEnd(16)} ${String(f.tasks).padStart(2)} task(s) ${String(f.samples).padStart(7)} samples ` +
            `${f.median_ms.toFixed(1).padStart(8)} ms ${(f.samples_per_s / 1e6).toFixed(2).padStart(6)} M samples/s ` +
            `(receive ${f.receive_median_ms.toFixed(1)} ms, run ${f.run_median_ms.toFixed(1)} ms)${f.identical_to_native ? '' : '  RESULT DIFFERS FROM NATIVE'}`,
        );
      }
    }
  }
  console.log(JSON.stringify({ bench: 'pipeline', target: 'wasm-chromium', browser: browser.version(), runs, contexts }));
} finally {
  await browser.close();
  server.close();
}
