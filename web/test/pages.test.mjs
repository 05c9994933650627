// The clinician and admin pages in a real browser against a mocked REST API (page.route), so the
// UI can be checked without the Rust server: redirects, the files table, upload errors, the result
// page (an old summary-only result and full vitals and ECG reports) with its charts, and the admin
// page's templates and jobs.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { launchChromium, serveDist, until } from './support.mjs';
import { ecgResult, templates, vitalsReport } from './fixtures.mjs';

/** Set SCREENSHOT_DIR to keep a picture of each result page for a look by eye. */
async function keepScreenshot(page, name) {
  if (process.env.SCREENSHOT_DIR) await page.screenshot({ path: path.join(process.env.SCREENSHOT_DIR, `${name}.png`), fullPage: true });
}

/** Painted (non-transparent) pixels of every canvas matching `selector`, in document order. */
function paintedPixels(page, selector) {
  return page.evaluate((selector) =>
    [...document.querySelectorAll(selector)].map((canvas) => {
      const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
      let n = 0;
      for (let i = 3; i < pixels.length; i += 4) if (pixels[i] !== 0) n += 1;
      return n;
    }), selector);
}

const clinician = { id: 2, email: 'clinician@example.org', role: 'clinician' };
const doneJob = { id: 11, file_id: 5, algorithm: 'signal-summary', status: 'done', tasks_total: 4, tasks_done: 4, created_at: '2026-11-26T10:00:00Z', finished_at: '2026-11-26T10:01:00Z', error: null, has_result: true };
const file = { id: 5, patient_ref: 'PT-001', file_name: 'vitals.csv', kind: 'vitals', size_bytes: 123456, rows: 7200, signals: ['hr', 'spo2'], ignored_columns: ['note'], duration_s: 7199, created_at: '2026-11-26T09:59:00Z', latest_job: doneJob };
const trend = (base) => ({ time_s: [0, 60, 120, 180], min: [base - 5, base - 4, base - 6, base - 5], mean: [base, base + 1, base, base - 1], max: [base + 5, base + 6, base + 4, base + 5] });
const result = {
  job_id: 11, file_id: 5, patient_ref: 'PT-001', file_name: 'vitals.csv', kind: 'vitals',
  analysis: {
    algorithm: 'signal-summary', segments: 4, rows: 7200, duplicates_removed: 3, out_of_order: 2, duration_s: 7199,
    signals: [
      { name: 'hr', unit: 'bpm', n: 7100, mean: 72.345, sd: 5.4321, min: 51, max: 129, out_of_range: 12, missing: 88, trend: trend(72) },
      { name: 'spo2', unit: '%', n: 7200, mean: 97.1, sd: 1.2, min: 88, max: 100, out_of_range: 0, missing: 0, trend: trend(97) },
    ],
  },
};

let site, browser;
before(async () => {
  site = await serveDist();
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  site?.close();
});

const json = (body, status = 200) => ({ status, contentType: 'application/json', body: JSON.stringify(body) });

async function clinicianPage() {
  const page = await browser.newPage({ baseURL: site.url });
  await page.route('**/api/me', (route) => route.fulfill(json(clinician)));
  await page.route('**/api/files', (route) =>
    route.request().method() === 'GET'
      ? route.fulfill(json([file]))
      : route.fulfill(json({ error: { code: 'invalid_file', message: 'No time column: expected one of time_s, time, timestamp' } }, 422)),
  );
  await page.route('**/api/jobs/11/result', (route) => route.fulfill(json(result)));
  await page.route('**/api/jobs/21/result', (route) => route.fulfill(json(vitalsReport)));
  await page.route('**/api/jobs/22/result', (route) => route.fulfill(json(ecgResult)));
  return page;
}

test('a logged-out visitor is sent to the login page', async () => {
  const page = await browser.newPage({ baseURL: site.url });
  await page.route('**/api/me', (route) => route.fulfill(json({ error: { code: 'unauthenticated', message: 'Log in first' } }, 401)));
  await page.goto('/files');
  await page.waitForURL('**/login');
  await page.getByLabel('E-mail').waitFor();
  await page.close();
});

test('the files table shows recordings and the server reason of a refused upload', async () => {
  const page = await clinicianPage();
  await page.goto('/files');
  const row = page.locator('tr[data-file-id]', { hasText: 'PT-001' });
  await row.waitFor();
  const text = await row.innerText();
  assert.match(text, /hr, spo2/);
  assert.match(text, /Ignored columns: note/);
  assert.match(text, /2 h 00 min/);
  assert.equal(await row.getAttribute('data-job-status'), 'done');

  await page.getByLabel('Patient reference').fill('PT-009');
  await page.getByLabel('Data file').setInputFiles({ name: 'bad.csv', mimeType: 'text/csv', buffer: Buffer.from('a,b\n1,2\n') });
  await page.getByRole('button', { name: 'Upload' }).click();
  await page.getByText('No time column: expected one of time_s, time, timestamp').waitFor();
  await page.close();
});

test('an old summary-only result shows the summary, data quality and drawn charts', async () => {
  const page = await clinicianPage();
  await page.goto('/files');
  await page.getByRole('link', { name: 'View result' }).click();
  await page.waitForURL('**/jobs/11/result');
  await page.getByRole('heading', { name: 'PT-001 — vitals.csv' }).waitFor();
  const hr = await page.locator('tr[data-signal="hr"]').innerText();
  assert.match(hr, /\t72\.3\d\t5\.432\t51\t129\t/);
  assert.match(hr, /5\.43/);
  assert.match(await page.getByTestId('data-quality').innerText(), /7,200 rows analysed, 3 duplicate timestamps removed, 2 rows out of order/);
  const painted = await until('charts to be drawn', async () => {
    const counts = await paintedPixels(page, '.chart canvas');
    return counts.length === 2 && counts.every((n) => n > 0) && counts;
  });
  assert.equal(painted.length, 2);
  // Sections the old result does not have are left out rather than shown empty.
  for (const id of ['quality', 'alerts-timeline', 'alerts-table', 'news2-chart', 'news2-bands', 'ecg-strip', 'hrv-table']) {
    assert.equal(await page.getByTestId(id).count(), 0, `${id} is absent`);
  }
  assert.equal(await page.getByRole('columnheader', { name: 'Median' }).count(), 0);
  await page.close();
});

test('a vitals report shows percentiles, time in range, data quality, alerts and NEWS2', async () => {
  const page = await clinicianPage();
  await page.goto('/jobs/21/result');
  await page.getByRole('heading', { name: 'PT-003 — ward.csv' }).waitFor();

  const cell = async (signal, column) => (await page.locator(`tr[data-signal="${signal}"] td[data-col="${column}"]`).innerText()).trim();
  assert.deepEqual(
    await Promise.all(['mean', 'sd', 'min', 'p5', 'median', 'p95', 'max'].map((c) => cell('hr', c))),
    ['72.35', '8.5', '51', '61', '72', '92', '129'],
  );
  assert.equal(await cell('hr', 'normal'), '51–90');
  assert.equal(await cell('hr', 'in-range'), '82.5 % · 1:39');
  assert.equal(await cell('hr', 'below'), '5 % · 0:06');
  assert.equal(await cell('hr', 'above'), '12.5 % · 0:15');
  assert.equal(await cell('spo2', 'normal'), '96–100');
  assert.match(await page.locator('tr[data-signal="map"] th').innerText(), /derived/);

  const quality = await page.getByTestId('quality').innerText();
  for (const expected of [
    '7,203 rows received.',
    '3 rows left out because their timestamp repeated the previous row’s',
    '2 rows arrived out of time order and were put back in order',
    '12 values left out of the statistics, charts, alerts and NEWS2',
    '30 MAP values were computed from systolic and diastolic pressure',
    '1 stretch longer than 1 min 00 s had no data, 4 min 00 s in total',
    'hr out of range [20, 300]',
    '0:01:05 · 0 bpm; 1:02:05 · 350 bpm; 1:02:06 · empty or not a number … and 9 more',
  ]) assert.ok(quality.includes(expected), `quality section says "${expected}":\n${quality}`);
  const gap = await page.getByTestId('gaps').locator('tbody tr').innerText();
  assert.match(gap, /0:30:00\t0:34:00\t4 min 00 s/);

  const alertRows = page.getByTestId('alerts-table').locator('tbody tr');
  assert.equal(await alertRows.count(), 2);
  assert.equal(await alertRows.nth(0).getAttribute('data-kind'), 'tachycardia');
  assert.match(await alertRows.nth(0).innerText(), /tachycardia\thr\t> 120 bpm\t0:10:00\t0:13:00\t3 min 00 s\t129 bpm at 0:11:40/);
  assert.match(await alertRows.nth(1).innerText(), /hypoxaemia\tspo2\t< 90 %\t0:40:00\t0:41:00\t1 min 00 s\t88 % at 0:40:30/);

  const timeline = page.getByTestId('alerts-timeline');
  assert.deepEqual(await timeline.locator('.timeline-lane').evaluateAll((lanes) => lanes.map((l) => l.dataset.kind)), ['tachycardia', 'hypoxaemia']);
  const bar = timeline.locator('.timeline-bar[data-kind="tachycardia"]');
  assert.match(await bar.getAttribute('title'), /tachycardia \(hr > 120 bpm\): from 0:10:00 for 3 min 00 s, worst 129 bpm at 0:11:40/);
  // The timeline's track covers the same pixels as the first chart's plot area, so a bar sits
  // over its alert's span on the charts below it.
  const measure = () => page.evaluate(() => {
    const track = document.querySelector('[data-testid="alerts-timeline"] .timeline-track').getBoundingClientRect();
    const plot = document.querySelector('.chart.trend .u-over').getBoundingClientRect();
    const bar = document.querySelector('.timeline-bar[data-kind="tachycardia"]').getBoundingClientRect();
    return { track: [track.left, track.width], plot: [plot.left, plot.width], bar: [bar.left, bar.width] };
  });
  const aligned = (g) => g.plot[1] > 0 && Math.abs(g.track[0] - g.plot[0]) < 1 && Math.abs(g.track[1] - g.plot[1]) < 1;
  const geometry = await until('the timeline to line up with the charts', async () => {
    const g = await measure();
    return aligned(g) && g;
  }).catch(async (error) => assert.fail(`${error.message}: ${JSON.stringify(await measure())}`));
  const expectedLeft = geometry.plot[0] + (600 / 7200) * geometry.plot[1];
  assert.ok(Math.abs(geometry.bar[0] - expectedLeft) < 1.5, `bar starts at 600 s: ${JSON.stringify(geometry)}`);

  const bands = page.getByTestId('news2-bands');
  const band = async (name) => (await bands.locator(`tr[data-band="${name}"]`).innerText()).split('\t').slice(1).join(' | ');
  assert.equal(await band('low'), '1:30 | 75 %');
  assert.equal(await band('low_medium'), '0:10 | 8.3 %');
  assert.equal(await band('medium'), '0:11 | 9.2 %');
  assert.equal(await band('high'), '0:05 | 4.2 %');
  assert.equal(await band('unscored'), '0:04 | 3.3 %');
  assert.equal(await page.getByTestId('news2-max').innerText(), 'Highest score 8, first reached at 0:12:00.');

  const painted = await until('trend and NEWS2 charts to be drawn', async () => {
    const trends = await paintedPixels(page, '.chart.trend canvas');
    const news2 = await paintedPixels(page, '[data-testid="news2-chart"] canvas');
    return trends.length === 3 && news2.length === 1 && [...trends, ...news2].every((n) => n > 0) && { trends, news2 };
  });
  // The risk bands are shaded over the whole plot, so most of the NEWS2 canvas is painted.
  const news2Size = await page.locator('[data-testid="news2-chart"] canvas').evaluate((c) => c.width * c.height);
  assert.ok(painted.news2[0] > news2Size / 2, `NEWS2 bands painted: ${painted.news2[0]} of ${news2Size}`);
  assert.equal(await page.getByTestId('ecg-strip').count(), 0, 'no ECG section for vitals');
  await keepScreenshot(page, 'result-vitals-report');
  await page.close();
});

test('an ECG report shows the strip with beats, the HRV table and the rejected beats', async () => {
  const page = await clinicianPage();
  await page.goto('/jobs/22/result');
  await page.getByRole('heading', { name: 'PT-004 — ecg.csv' }).waitFor();
  const hrv = page.getByTestId('hrv-table');
  const value = async (key) => (await hrv.locator(`tr[data-hrv="${key}"] td`).innerText()).trim();
  assert.equal(await value('beats'), '386');
  assert.equal(await value('nn_count'), '383');
  assert.equal(await value('rejected'), '2 (1 ectopic, 1 artifact)');
  assert.equal(await value('mean_hr_bpm'), '77.1 bpm');
  assert.equal(await value('mean_nn_ms'), '778.2 ms');
  assert.equal(await value('sdnn_ms'), '45.6 ms');
  assert.equal(await value('rmssd_ms'), '32.1 ms');
  assert.equal(await value('pnn50_pct'), '10.5 %');
  assert.equal(await value('signal_quality'), '0.97');
  assert.equal(await hrv.locator('tr[data-hrv="beats"]').getAttribute('data-value'), '386');
  assert.match(await page.getByTestId('rejected-beats').innerText(), /0:00:12\.50\tectopic\n0:01:40\.50\tartifact/);
  assert.match(await page.getByTestId('ecg-strip').innerText(), /13 beats/);
  assert.equal(await page.getByRole('columnheader', { name: 'In range' }).count(), 0, 'no time in range without a normal range');
  assert.equal(await page.locator('tr[data-signal="ecg"] td[data-col="median"]').innerText(), '-0.01');

  // The strip: beats are ticked in red at the top of the plot, so red pixels appear there.
  const strip = await until('the ECG strip to be drawn', async () => {
    const [painted] = await paintedPixels(page, '[data-testid="ecg-strip"] canvas');
    return painted > 0 && painted;
  });
  assert.ok(strip > 0);
  const redTicks = await page.evaluate(() => {
    const canvas = document.querySelector('[data-testid="ecg-strip"] canvas');
    const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let red = 0;
    for (let i = 0; i < pixels.length; i += 4) if (pixels[i] > 150 && pixels[i + 1] < 80 && pixels[i + 2] < 80 && pixels[i + 3] > 200) red += 1;
    return red;
  });
  assert.ok(redTicks > 13, `beat marks drawn (${redTicks} red pixels)`);
  for (const id of ['alerts-timeline', 'alerts-table', 'news2-chart']) assert.equal(await page.getByTestId(id).count(), 0, `${id} is absent for ECG`);
  await keepScreenshot(page, 'result-ecg-report');
  await page.close();
});

test('the admin page lists every template version and the template version of each job', async () => {
  const page = await browser.newPage({ baseURL: site.url });
  await page.route('**/api/me', (route) => route.fulfill(json({ id: 1, email: 'admin@example.org', role: 'admin' })));
  await page.route('**/api/users', (route) => route.fulfill(json([{ ...clinician, created_at: '2026-11-26T09:00:00Z' }])));
  await page.route('**/api/admin/workers', (route) => route.fulfill(json([])));
  await page.route('**/api/admin/jobs', (route) => route.fulfill(json([
    { ...doneJob, template_id: 'bedside-vitals', template_version: 2, owner_email: clinician.email, file_name: 'vitals.csv' },
  ])));
  await page.route('**/api/health', (route) => route.fulfill(json({ status: 'ok', database: 'sqlite', workers: 0, queued_tasks: 0 })));
  await page.route('**/api/templates', (route) => route.fulfill(json(templates)));
  await page.goto('/admin');
  const list = page.getByTestId('templates');
  await list.locator('[data-template="bedside-vitals@2"]').waitFor();
  assert.equal(await list.locator('article').count(), 3);
  const v2 = list.locator('[data-template="bedside-vitals@2"]');
  assert.match(await v2.innerText(), /version 2 · vitals/);
  assert.match(await v2.innerText(), /vitals-report \(default\), vitals-summary/);
  assert.match(await v2.locator('tr[data-signal="hr"]').innerText(), /hr\tbpm\t20–300\t55–90\tno/);
  assert.match(await v2.locator('tr[data-signal="spo2"]').innerText(), /≥ 96/);
  assert.match(await v2.innerText(), /tachycardia\thr > 120\t1 min 00 s/);
  assert.match(await list.locator('[data-template="ecg-single-lead@1"]').innerText(), /ecg-report \(default\)/);
  assert.match(await page.getByTestId('jobs').locator('td[data-col="template"]').innerText(), /template v2 · bedside-vitals/);
  await keepScreenshot(page, 'admin-templates');
  await page.close();
});
