// The volunteer page's runtime in a real browser, without the server: web/dist is served by a tiny
// static server and the test itself plays the server's side of /ws/worker (Playwright's
// routeWebSocket). Checks that frames reach the wasm workers and come back as the protocol says,
// that the counters move, that Stop closes the socket, that a task run through the live runtime
// gives the same bytes as `run_task_frame`, that the hello carries a worker key kept across Starts,
// that a reduced CPU share still finishes tasks, and that a refusal (a banned key) is shown and stops
// the runtime. Needs `npm run build` with the wasm pipeline.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { dist, launchChromium, serveDist, until } from './support.mjs';

const sha256 = (text) => createHash('sha256').update(text, 'utf8').digest('hex');
// Adler-32 (RFC 1950) of a string's UTF-8 bytes, written out from its definition.
const adler32 = (text) => {
  let [a, b] = [1, 0];
  for (const byte of new TextEncoder().encode(text)) {
    a = (a + byte) % 65521;
    b = (b + a) % 65521;
  }
  return ((b << 16) | a) >>> 0;
};
// Templates carry a SHA-256; tasks and results an Adler-32 (see worker-wasm/src/protocol.rs).
const seal = (payload) => ({ payload, sha256: sha256(payload) });

// The built-in vitals template (worker-wasm/src/template.rs), as the server would send it.
const template = {
  id: 'bedside-vitals', version: 1, kind: 'vitals',
  signals: [
    { name: 'hr', aliases: ['heart_rate'], unit: 'bpm', min: 20, max: 300 },
    { name: 'spo2', aliases: ['sao2'], unit: '%', min: 50, max: 100 },
  ],
  algorithms: ['signal-summary'],
};
const templateFrame = JSON.stringify({ type: 'template', ...seal(JSON.stringify(template)) });

/** A task's payload: `rows` seconds of heart rate and SpO2, with empty and out-of-range cells. */
function taskPayload(rows) {
  const time_s = Array.from({ length: rows }, (_, i) => i);
  const hr = time_s.map((t) => (t % 97 === 0 ? null : 70 + 10 * Math.sin(t / 60)));
  const spo2 = time_s.map((t) => (t % 50 === 0 ? 0 : 97 + (t % 3)));
  return JSON.stringify({ time_s, signals: [{ name: 'hr', values: hr }, { name: 'spo2', values: spo2 }], core_start: 0, core_end: rows, trend_bucket_s: 60 });
}

/** A task frame as the server sends it: its header line, then the payload (docs/protocol.md). */
function taskFrame(taskId, rows, { payload = taskPayload(rows), sealed = payload } = {}) {
  const header = { type: 'task', task_id: taskId, lease: 1, template_id: 'bedside-vitals', template_version: 1, algorithm: 'signal-summary', adler32: adler32(sealed) };
  return JSON.stringify(header) + '\n' + payload;
}

/**
 * A frame the runtime sent, as an object: a binary result frame is its header line and payload
 * (docs/protocol.md); any other frame is JSON, whether it came as text or as bytes.
 */
const parse = (frame) => {
  const text = frame.toString('utf8');
  const newline = text.indexOf('\n');
  return newline < 0 ? JSON.parse(text) : { ...JSON.parse(text.slice(0, newline)), payload: text.slice(newline + 1) };
};

let site, baseUrl, browser;

before(async () => {
  site = await serveDist();
  baseUrl = site.url;
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  site?.close();
});

/** Opens /volunteer with a scripted server socket; `script(frame, ws)` answers each worker frame. */
async function volunteerPage(script) {
  const page = await browser.newPage({ baseURL: baseUrl });
  const received = [];
  let closed = false;
  await page.route('**/api/me', (route) => route.fulfill({ status: 401, contentType: 'application/json', body: '{"error":{"code":"unauthenticated","message":"Log in"}}' }));
  await page.routeWebSocket('**/ws/worker', (ws) => {
    ws.onMessage((frame) => {
      received.push(frame);
      script(frame, ws);
    });
    ws.onClose(() => (closed = true));
  });
  await page.goto('/volunteer');
  return { page, received, isClosed: () => closed };
}

test('tasks reach the wasm workers and their frames reach the server unchanged', async () => {
  const tasks = [taskFrame('t-1', 5000), taskFrame('t-2', 30_000)];
  const { page, received, isClosed } = await volunteerPage((frame, ws) => {
    const message = parse(frame);
    if (message.type === 'hello') {
      ws.send(JSON.stringify({ type: 'welcome', worker_id: 'w-1', slots: message.slots }));
      ws.send(templateFrame);
      tasks.forEach((task) => ws.send(task));
      ws.send('this is not json');
    }
  });
  await page.getByLabel('Threads').fill('2');
  await page.getByRole('button', { name: 'Start' }).click();

  const ofType = (type) => received.map(parse).filter((m) => m.type === type);
  await until('two results and one error', () => ofType('result').length === 2 && ofType('error').length === 1);

  const hello = parse(received[0]);
  assert.equal(hello.type, 'hello');
  assert.equal(hello.protocol, 4);
  assert.equal(hello.slots, 2);
  assert.match(hello.agent, /^browser /);
  assert.match(hello.worker_key, /^b-[0-9a-f]{32}$/);
  assert.deepEqual(ofType('ack').map((m) => m.task_id).sort(), ['t-1', 't-2']);
  assert.deepEqual(ofType('result').map((m) => m.task_id).sort(), ['t-1', 't-2']);
  assert.equal(ofType('error')[0].code, 'malformed');
  for (const result of ofType('result')) assert.equal(adler32(result.payload), result.adler32);

  await until('the counters', async () => (await page.getByTestId('tasks-done').innerText()) === '2');
  assert.equal((await page.getByTestId('samples-processed').innerText()).replace(/\D/g, ''), '35000');

  // Byte identity: the frame the live runtime sent equals a fresh run_task_frame in a worker.
  const workerUrl = '/assets/' + readdirSync(path.join(dist, 'assets')).find((name) => name.startsWith('pipeline.worker-'));
  const direct = await page.evaluate(
    ({ workerUrl, template, task }) =>
      new Promise((resolve) => {
        const worker = new Worker(workerUrl, { type: 'module' });
        worker.onmessage = ({ data }) =>
          data.kind === 'task_result' && resolve({ error: data.error, frame: data.frame && new TextDecoder().decode(data.frame) });
        worker.postMessage({ kind: 'run_task_frame', template, task });
      }),
    { workerUrl, template: templateFrame, task: tasks[0] },
  );
  assert.equal(direct.error, null);
  const sent = received.find((f) => typeof f !== 'string' && f.includes('"type":"result"') && f.includes('"t-1"'));
  assert.ok(sent, 'the runtime sent the result as a binary message');
  assert.equal(direct.frame, sent.toString('utf8'));

  await page.getByRole('button', { name: 'Stop' }).click();
  await until('the socket to close', () => isClosed());
  await until('the stopped state', async () => (await page.getByTestId('runtime-status').getAttribute('data-state')) === 'stopped');
  assert.ok(await page.getByRole('button', { name: 'Start' }).isEnabled());
  await page.close();
});

test('a task with a damaged payload is refused with an integrity error', async () => {
  const sealed = taskPayload(100);
  const damaged = taskFrame('t-bad', 100, { payload: sealed.replace('"core_start":0', '"core_start":1'), sealed });
  const { page, received } = await volunteerPage((frame, ws) => {
    if (parse(frame).type === 'hello') {
      ws.send(JSON.stringify({ type: 'welcome', worker_id: 'w-2', slots: 1 }));
      ws.send(templateFrame);
      ws.send(damaged);
      ws.send(taskFrame('t-ok', 100)); // the single thread must be free again for this one
    }
  });
  await page.getByLabel('Threads').fill('1');
  await page.getByRole('button', { name: 'Start' }).click();
  await until('the error and the result', () => received.some((f) => f.includes('"type":"result"')));
  const error = received.map(parse).find((m) => m.type === 'error');
  assert.equal(error.code, 'integrity');
  assert.equal(error.task_id, 't-bad');
  await page.close();
});

test('Stop hands an unfinished task back with a release frame', async () => {
  const big = taskFrame('t-long', 1_000_000); // long enough to still be running when Stop arrives
  let stopping = null;
  let page;
  const opened = await volunteerPage((frame, ws) => {
    const message = parse(frame);
    if (message.type === 'hello') {
      ws.send(JSON.stringify({ type: 'welcome', worker_id: 'w-3', slots: 1 }));
      ws.send(templateFrame);
      ws.send(big);
    }
    // Stop the moment the task is acknowledged, rather than on the test's next poll.
    if (message.type === 'ack') stopping = page.getByRole('button', { name: 'Stop' }).click();
  });
  ({ page } = opened);
  const { received, isClosed } = opened;
  // The least CPU share makes the task last four times as long, so Stop lands while it runs.
  await page.getByLabel('CPU share').selectOption('25');
  await page.getByLabel('Threads').fill('1');
  await page.getByRole('button', { name: 'Start' }).click();
  await until('the ack and the Stop click', () => stopping !== null);
  await stopping;
  await until('the socket to close', () => isClosed());
  const types = received.map((f) => parse(f).type);
  assert.ok(!types.includes('result'), `the task finished before Stop (${types}); make it longer`);
  const release = received.map(parse).find((m) => m.type === 'release');
  assert.deepEqual(release, { type: 'release', task_id: 't-long', lease: 1 });
  await page.close();
});

test('the hello carries a worker key that stays the same across Starts, and 50 % CPU share still finishes tasks', async () => {
  let next = 0;
  const { page, received } = await volunteerPage((frame, ws) => {
    if (parse(frame).type === 'hello') {
      next += 1;
      ws.send(JSON.stringify({ type: 'welcome', worker_id: `w-key-${next}`, slots: 1 }));
      ws.send(templateFrame);
      ws.send(taskFrame(`t-share-${next}`, 20_000));
    }
  });
  const share = page.getByLabel('CPU share');
  assert.equal(await share.inputValue(), '50', 'the CPU share defaults to 50 %');
  await share.selectOption('50');
  await page.getByLabel('Threads').fill('1');
  const hellos = () => received.map(parse).filter((m) => m.type === 'hello');
  const results = () => received.map(parse).filter((m) => m.type === 'result');

  await page.getByRole('button', { name: 'Start' }).click();
  await until('the first result', () => results().length === 1);
  await until('the samples counter', async () => (await page.getByTestId('samples-processed').innerText()).replace(/\D/g, '') === '20000');
  await page.getByRole('button', { name: 'Stop' }).click();
  await until('the stopped state', async () => (await page.getByTestId('runtime-status').getAttribute('data-state')) === 'stopped');

  await page.getByRole('button', { name: 'Start' }).click();
  await until('the second result', () => results().length === 2);
  const [first, second] = hellos();
  assert.match(first.worker_key, /^b-[0-9a-f]{32}$/);
  assert.equal(second.worker_key, first.worker_key, 'the same key on the second Start');
  assert.equal(await page.evaluate(() => localStorage.getItem('vitalgrid.worker_key')), first.worker_key);
  assert.deepEqual(results().map((m) => m.task_id), ['t-share-1', 't-share-2']);
  for (const result of results()) assert.equal(adler32(result.payload), result.adler32);
  await page.getByRole('button', { name: 'Stop' }).click();
  await until('the stopped state', async () => (await page.getByTestId('runtime-status').getAttribute('data-state')) === 'stopped');

  // A reload in the same browser context keeps the key and the chosen share.
  await share.selectOption('25');
  await page.reload();
  assert.equal(await page.getByLabel('CPU share').inputValue(), '25');
  await page.getByRole('button', { name: 'Start' }).click();
  await until('the third result', () => results().length === 3);
  assert.equal(hellos()[2].worker_key, first.worker_key, 'the same key after a reload');
  await page.getByRole('button', { name: 'Stop' }).click();
  await page.close();
});

test('a refusal from the server (a banned worker key) is shown and stops the runtime', async () => {
  const reason = 'this worker returned a wrong result and may not take more work';
  const { page, isClosed } = await volunteerPage((frame, ws) => {
    if (parse(frame).type === 'hello') {
      ws.send(JSON.stringify({ type: 'error', task_id: null, code: 'protocol', message: reason }));
      ws.close();
    }
  });
  await page.getByRole('button', { name: 'Start' }).click();
  const status = page.getByTestId('runtime-status');
  await until('the refused state', async () => (await status.getAttribute('data-state')) === 'refused');
  assert.match(await status.innerText(), new RegExp(`refused this browser: ${reason}`));
  assert.match(await status.getAttribute('class'), /\berror\b/);
  await until('the socket to close', () => isClosed());
  assert.ok(await page.getByRole('button', { name: 'Start' }).isEnabled());
  assert.ok(await page.getByRole('button', { name: 'Stop' }).isDisabled());
  await page.close();
});
