// The clinician pages in a real browser against a mocked REST API (page.route), so the UI can be
// checked without the Rust server: redirects, the files table, upload errors, the result page and
// its charts.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { launchChromium, serveDist, until } from './support.mjs';

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

test('the result page shows the summary, data quality and drawn charts', async () => {
  const page = await clinicianPage();
  await page.goto('/files');
  await page.getByRole('link', { name: 'View result' }).click();
  await page.waitForURL('**/jobs/11/result');
  await page.getByRole('heading', { name: 'PT-001 — vitals.csv' }).waitFor();
  const hr = await page.locator('tr[data-signal="hr"]').innerText();
  assert.match(hr, /\t72\.3\d\t5\.432\t51\t129\t/);
  assert.match(hr, /5\.43/);
  assert.match(await page.getByTestId('data-quality').innerText(), /7,200 rows analysed, 3 duplicate timestamps removed, 2 rows out of order/);
  const painted = await until('charts to be drawn', () =>
    page.evaluate(() => {
      const canvases = [...document.querySelectorAll('.chart canvas')];
      const counts = canvases.map((canvas) => {
        const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let n = 0;
        for (let i = 3; i < pixels.length; i += 4) if (pixels[i] !== 0) n += 1;
        return n;
      });
      return counts.length === 2 && counts.every((n) => n > 0) && counts;
    }),
  );
  assert.equal(painted.length, 2);
  await page.close();
});
