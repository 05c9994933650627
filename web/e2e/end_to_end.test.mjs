// End to end through a real browser: an admin creates a clinician, the clinician uploads a vitals
// and an ECG recording and starts jobs, a volunteer tab computes them in wasm Web Workers, the
// clinician reads the results, the server's native audit confirms the browser's result bytes, and
// the clinician deletes what they uploaded. The ECG job is started as urgent; the admin page shows
// the queues by priority and a job's history.
//
// Needs: the server binary (VITALGRID_BIN, default ../target/debug/vitalgrid), web/dist built with
// the wasm pipeline (`npm run build`), Debian's chromium at /usr/bin/chromium (no browser download).
// Screenshots and logs go to web/e2e/artifacts/.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const webDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const repoRoot = path.resolve(webDir, '..');
const sharedData = path.resolve(repoRoot, '..', 'shared', 'data', 'real');
const bin = path.resolve(webDir, process.env.VITALGRID_BIN ?? '../target/debug/vitalgrid');
const artifacts = path.join(webDir, 'e2e', 'artifacts');

const ADMIN_EMAIL = 'admin@example.org';
const ADMIN_PASSWORD = randomBytes(12).toString('hex');
const CLINICIAN_EMAIL = 'clinician@example.org';
const CLINICIAN_PASSWORD = 'correct horse battery staple';
const JOBS_TIMEOUT_MS = 180_000;

let workDir, databaseUrl, vitalsPath, ecgPath, server, baseUrl, browser;
let admin, clinician, volunteer; // pages, each in its own browser context
const resultUrls = {}; // patient ref → /jobs/:id/result
let shotCount = 0;

/** Polls `probe` until it returns something truthy; fails with `what` after `timeout` ms. */
async function waitFor(what, probe, { timeout = 15_000, interval = 250 } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await probe();
    if (last) return last;
    if (Date.now() > deadline) assert.fail(`timed out after ${timeout} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}

async function screenshot(page, name) {
  shotCount += 1;
  await page.screenshot({ path: path.join(artifacts, `${String(shotCount).padStart(2, '0')}-${name}.png`), fullPage: true });
}

/** Starts `vitalgrid serve` on a free port and resolves with its URL once it says it listens. */
function startServer() {
  const child = spawn(bin, ['serve', '--listen', '127.0.0.1:0', '--database-url', databaseUrl], {
    env: {
      ...process.env,
      VITALGRID_ADMIN_EMAIL: ADMIN_EMAIL,
      VITALGRID_ADMIN_PASSWORD: ADMIN_PASSWORD,
      VITALGRID_WEB_DIR: path.join(webDir, 'dist'),
      // One volunteer tab is one worker, and a task needs this many distinct workers to agree.
      VITALGRID_REPLICAS: '1',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log = createWriteStream(path.join(artifacts, 'server.log'));
  child.stderr.pipe(log);
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`server did not report its address in 30 s; stdout: ${seen}`)), 30_000);
    child.stdout.on('data', (chunk) => {
      log.write(chunk);
      if (baseUrl) return;
      seen += chunk.toString();
      const match = seen.match(/VitalGrid listening on (http:\/\/\S+)/);
      if (match) {
        clearTimeout(timer);
        baseUrl = match[1].replace(/\/$/, '');
        resolve(child);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (!baseUrl) reject(new Error(`server exited with ${code} before listening; see ${artifacts}/server.log`));
    });
  });
}

async function newPage(name) {
  const context = await browser.newContext({ baseURL: baseUrl, viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const log = createWriteStream(path.join(artifacts, `console-${name}.log`));
  page.on('console', (message) => log.write(`[${message.type()}] ${message.text()}\n`));
  page.on('pageerror', (error) => log.write(`[pageerror] ${error.stack ?? error}\n`));
  return page;
}

async function logIn(page, email, password, home) {
  await page.goto('/login');
  await page.getByLabel('E-mail').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL(`**${home}`);
  await page.getByTestId('user-email').filter({ hasText: email }).waitFor();
}

const fileRow = (patientRef) => clinician.locator('tr[data-file-id]', { hasText: patientRef });

before(async () => {
  assert.ok(existsSync(bin), `server binary not found at ${bin} (build it, or set VITALGRID_BIN)`);
  assert.ok(existsSync(path.join(webDir, 'dist', 'index.html')), 'web/dist is missing: run `npm run build` first');
  assert.ok(existsSync(path.join(sharedData, 'bsnb_ecg_5min.csv')), `shared ECG recording missing at ${sharedData}`);
  mkdirSync(artifacts, { recursive: true });
  workDir = mkdtempSync(path.join(tmpdir(), 'vitalgrid-e2e-'));
  databaseUrl = `sqlite://${path.join(workDir, 'vitalgrid.sqlite')}?mode=rwc`;
  vitalsPath = path.join(workDir, 'vitals.csv');
  ecgPath = path.join(sharedData, 'bsnb_ecg_5min.csv');

  const generated = spawnSync(bin, ['generate-vitals', '--hours', '2', '--seed', '7', '--out', vitalsPath], { encoding: 'utf8' });
  assert.equal(generated.status, 0, `generate-vitals failed: ${generated.stderr}`);

  server = await startServer();
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close().catch(() => {});
  if (server && server.exitCode === null) {
    server.kill('SIGTERM');
    const killer = setTimeout(() => server.kill('SIGKILL'), 5000);
    await new Promise((resolve) => server.once('exit', resolve));
    clearTimeout(killer);
  }
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

test('admin logs in and creates a clinician account', async () => {
  admin = await newPage('admin');
  await logIn(admin, ADMIN_EMAIL, ADMIN_PASSWORD, '/admin');
  await admin.getByLabel('E-mail').fill(CLINICIAN_EMAIL);
  await admin.getByLabel('Password').fill(CLINICIAN_PASSWORD);
  await admin.getByLabel('Role').selectOption('clinician');
  await admin.getByRole('button', { name: 'Create account' }).click();
  await admin.getByTestId('accounts').getByRole('cell', { name: CLINICIAN_EMAIL }).waitFor();
  for (const template of ['bedside-vitals@1', 'ecg-single-lead@1']) {
    await admin.getByTestId('templates').locator(`[data-template="${template}"]`).waitFor();
  }
  assert.match(await admin.locator('[data-template="bedside-vitals@1"] tr[data-signal="hr"]').innerText(), /20–300\t51–90/);
  await screenshot(admin, 'admin-account-created');
});

test('clinician uploads a vitals and an ECG recording and starts both jobs', async () => {
  clinician = await newPage('clinician');
  await logIn(clinician, CLINICIAN_EMAIL, CLINICIAN_PASSWORD, '/files');
  for (const [patientRef, file] of [['PT-001', vitalsPath], ['PT-002', ecgPath]]) {
    await clinician.getByLabel('Patient reference').fill(patientRef);
    await clinician.getByLabel('Data file').setInputFiles(file);
    await clinician.getByRole('button', { name: 'Upload' }).click();
    await fileRow(patientRef).waitFor();
    const bar = clinician.getByLabel('Upload progress');
    assert.ok(await bar.isVisible(), 'the upload progress bar is shown');
    assert.equal(await bar.evaluate((el) => el.value), 1, 'the upload progress bar is full');
  }
  await screenshot(clinician, 'files-uploaded');
  assert.match(await fileRow('PT-001').innerText(), /hr/);
  assert.match(await fileRow('PT-002').innerText(), /ecg/);
  await fileRow('PT-002').getByLabel('Priority').selectOption('urgent');
  for (const patientRef of ['PT-001', 'PT-002']) {
    await fileRow(patientRef).getByRole('button', { name: 'Process', exact: true }).click();
    await waitFor(`a job for ${patientRef}`, async () => (await fileRow(patientRef).getAttribute('data-job-status')) !== 'none');
  }
  await fileRow('PT-002').getByTestId('job-priority').filter({ hasText: 'urgent' }).waitFor();
  assert.equal(await fileRow('PT-001').getByTestId('job-priority').count(), 0, 'a normal job shows no priority');
  await screenshot(clinician, 'jobs-started');
});

test('a volunteer tab computes both jobs in Web Workers', async () => {
  volunteer = await newPage('volunteer');
  await volunteer.goto('/volunteer');
  await volunteer.getByLabel('Threads').fill('2');
  await volunteer.getByRole('button', { name: 'Start' }).click();
  await screenshot(volunteer, 'volunteer-started');

  await waitFor('both jobs to be done', async () => {
    const statuses = await Promise.all(['PT-001', 'PT-002'].map((ref) => fileRow(ref).getAttribute('data-job-status')));
    if (statuses.includes('failed')) {
      await screenshot(clinician, 'job-failed');
      assert.fail(`a job failed: ${await clinician.getByTestId('files').innerText()}`);
    }
    return statuses.every((status) => status === 'done');
  }, { timeout: JOBS_TIMEOUT_MS, interval: 1000 });
  await screenshot(clinician, 'jobs-done');
  await admin.getByTestId('jobs').locator('td[data-col="template"]', { hasText: 'template v1 · bedside-vitals' }).waitFor();
  await admin.getByTestId('jobs').locator('td[data-col="template"]', { hasText: 'template v1 · ecg-single-lead' }).waitFor();
  await screenshot(volunteer, 'volunteer-working');

  const tasksDone = Number((await volunteer.getByTestId('tasks-done').innerText()).replace(/\D/g, ''));
  const samples = Number((await volunteer.getByTestId('samples-processed').innerText()).replace(/\D/g, ''));
  assert.ok(tasksDone > 0, `the volunteer page counted ${tasksDone} tasks`);
  assert.ok(samples > 0, `the volunteer page counted ${samples} samples`);
});

test('the admin page shows the queues, the worker and a job history', async () => {
  // Every task is done: the vitals job's under normal, the ECG job's under urgent.
  const queues = admin.getByTestId('queues');
  const doneTasks = async (priority) => Number((await queues.locator(`tr[data-priority="${priority}"] td[data-status="done"]`).innerText()).replace(/\D/g, ''));
  await waitFor('done tasks in the normal and urgent queues', async () =>
    (await queues.locator('tr[data-priority="urgent"]').count()) === 1 && (await doneTasks('normal')) > 0 && (await doneTasks('urgent')) > 0);
  assert.equal(Number((await queues.locator('tr[data-priority="batch"] td').last().innerText()).replace(/\D/g, '')), 0, 'no batch tasks');

  const worker = admin.getByTestId('workers').locator('tr[data-worker-key^="b-"]');
  await worker.first().waitFor();
  assert.match(await worker.first().innerText(), /browser /);
  await admin.getByTestId('worker-records').locator('tr[data-worker-key^="b-"]').first().waitFor();

  const ecgJob = admin.getByTestId('jobs').locator('tr[data-job-id]', { hasText: 'bsnb_ecg_5min.csv' });
  assert.match(await ecgJob.locator('td[data-col="priority"]').innerText(), /urgent/i);
  await ecgJob.getByRole('button', { name: 'History' }).click();
  const history = admin.getByTestId('job-history');
  await history.locator('tr[data-kind="done"]').waitFor();
  assert.ok(await history.locator('tr[data-kind="submitted"]').count() >= 1, 'the history lists the submission');
  assert.ok(await history.locator('tr[data-kind="result_accepted"]').count() >= 1, 'the history lists accepted results');
  await screenshot(admin, 'admin-queues-history');
});

/** Width and painted (non-transparent) pixels of every canvas matching `selector`. */
function canvasesIn(selector) {
  return clinician.evaluate((selector) =>
    [...document.querySelectorAll(selector)].map((canvas) => {
      const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
      let painted = 0;
      for (let i = 3; i < pixels.length; i += 4) if (pixels[i] !== 0) painted += 1;
      return { width: canvas.width, painted };
    }), selector);
}

/** Vitals report of the generated recording: 2 h with 4 episodes, artifacts, duplicates and 3 gaps. */
async function checkVitalsReport() {
  const quality = clinician.getByTestId('quality');
  await quality.waitFor();
  assert.ok(await quality.isVisible(), 'the data-quality section is visible');
  const qualityText = await quality.innerText();
  assert.match(qualityText, /rows left out because their timestamp repeated/, 'duplicates are reported');
  assert.match(qualityText, /hr out of range \[20, 300\]/, 'artifacts are reported with their rule');
  assert.ok(await clinician.getByTestId('gaps').locator('tbody tr').count() >= 1, 'gaps are listed');

  for (const id of ['alerts-timeline', 'alerts-table', 'news2-chart', 'news2-bands']) {
    assert.ok(await clinician.getByTestId(id).isVisible(), `${id} is visible`);
  }
  const alerts = await clinician.getByTestId('alerts-table').locator('tbody tr[data-kind]').count();
  assert.ok(alerts >= 1, `the generated episodes raise alerts (${alerts})`);
  const bars = await clinician.getByTestId('alerts-timeline').locator('.timeline-bar').count();
  assert.equal(bars, alerts, 'one timeline bar per alert');
  assert.match(await clinician.getByTestId('news2-bands').innerText(), /Low \(aggregate 0–4\)/);
  const news2 = await waitFor('the NEWS2 chart to be drawn', async () => {
    const found = await canvasesIn('[data-testid="news2-chart"] canvas');
    return found.length === 1 && found[0].painted > 0 && found;
  });
  assert.equal(news2.length, 1);
}

/** ECG report of bsnb_ecg_5min: about 386 beats at about 77 bpm (see shared/data/real/REFERENCE.md). */
async function checkEcgReport() {
  const hrv = clinician.getByTestId('hrv-table');
  await hrv.waitFor();
  const valueOf = async (key) => Number(await hrv.locator(`tr[data-hrv="${key}"]`).getAttribute('data-value'));
  const beats = await valueOf('beats');
  const meanHr = await valueOf('mean_hr_bpm');
  assert.ok(beats >= 380 && beats <= 392, `beats ${beats} within 380–392`);
  assert.ok(meanHr >= 76 && meanHr <= 79, `mean HR ${meanHr} within 76–79 bpm`);
  assert.match(await hrv.locator('tr[data-hrv="beats"]').innerText(), new RegExp(`\\b${beats}\\b`), 'the beat count is shown');
  const strip = await waitFor('the ECG strip to be drawn', async () => {
    const found = await canvasesIn('[data-testid="ecg-strip"] canvas');
    return found.length === 1 && found[0].width > 0 && found[0].painted > 0 && found;
  });
  assert.equal(strip.length, 1);
}

for (const [patientRef, expectedSignals] of [['PT-001', ['hr', 'spo2']], ['PT-002', ['ecg']]]) {
  test(`the result of ${patientRef} shows its signals and charts`, async () => {
    await fileRow(patientRef).getByRole('link', { name: 'View result' }).click();
    await clinician.waitForURL(/\/jobs\/[^/]+\/result$/);
    resultUrls[patientRef] = new URL(clinician.url()).pathname;
    await clinician.getByRole('heading', { name: new RegExp(patientRef) }).waitFor();

    const signals = await clinician.locator('tr[data-signal]').evaluateAll((rows) => rows.map((row) => row.dataset.signal));
    for (const name of expectedSignals) assert.ok(signals.includes(name), `summary lists ${name} (got ${signals})`);
    if (patientRef === 'PT-002') assert.deepEqual(signals, ['ecg']);

    // Every trend chart canvas exists, has a size and has pixels painted on it.
    const canvases = await waitFor('charts to be drawn', async () => {
      const found = await canvasesIn('.chart.trend canvas');
      return found.length >= signals.length && found.every((c) => c.width > 0 && c.painted > 0) && found;
    });
    assert.equal(canvases.length, signals.length, 'one trend chart per signal');
    if (patientRef === 'PT-001') await checkVitalsReport();
    else await checkEcgReport();
    await screenshot(clinician, `result-${patientRef}`);
    await clinician.getByRole('link', { name: '← Recordings' }).click();
    await clinician.waitForURL('**/files');
  });
}

test('the browser results are byte-identical to a native re-run', () => {
  const audit = spawnSync(bin, ['audit-results', '--database-url', databaseUrl], { encoding: 'utf8' });
  const line = audit.stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  assert.ok(line, `audit-results printed no JSON (exit ${audit.status}): ${audit.stdout}\n${audit.stderr}`);
  const report = JSON.parse(line);
  assert.equal(audit.status, 0, `audit-results failed: ${line}\n${audit.stderr}`);
  assert.ok(report.tasks > 0, `audited ${report.tasks} tasks`);
  assert.equal(report.identical, report.tasks);
  assert.equal(report.different, 0);
});

test('the clinician deletes a result and then the recording', async () => {
  const resultUrl = resultUrls['PT-001'];
  assert.ok(resultUrl, 'the PT-001 result page was visited');
  await clinician.goto(resultUrl);
  clinician.once('dialog', (dialog) => dialog.accept());
  await clinician.getByRole('button', { name: 'Delete result' }).click();
  await clinician.waitForURL('**/files');

  const response = await clinician.request.get(`/api${resultUrl}`);
  assert.equal(response.status(), 404, 'the deleted result is gone from the API');
  await clinician.goto(resultUrl);
  await clinician.getByRole('alert').filter({ hasText: 'does not exist' }).waitFor();
  await screenshot(clinician, 'result-deleted');

  await clinician.goto('/files');
  await fileRow('PT-001').waitFor();
  clinician.once('dialog', (dialog) => dialog.accept());
  await fileRow('PT-001').getByRole('button', { name: 'Delete', exact: true }).click();
  await fileRow('PT-001').waitFor({ state: 'detached' });
  await clinician.reload();
  await fileRow('PT-002').waitFor();
  assert.equal(await fileRow('PT-001').count(), 0, 'the deleted recording stays gone after a reload');
  await screenshot(clinician, 'file-deleted');
});
