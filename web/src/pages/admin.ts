// /admin: accounts (list and create), connected volunteer workers and the record of every worker
// key (credibility, bans), the task queues by priority, all jobs with their history on demand,
// server health, and the templates (every version, read-only). Everything but the templates
// refreshes every few seconds; each section loads on its own, so one failing endpoint leaves the
// others working, and a section is redrawn only when its data changed (focus and open histories
// survive a refresh). Templates are loaded once (they change only when an admin adds a version).
import { api, messageOf } from '../api/client';
import type { AdminJob, Id, JobEvent, Priority, QueueCount, Role, TaskStatus, Template, WorkerInfo, WorkerRecord } from '../api/types';
import { dataTable, h, progressBar, replaceChildren } from '../dom';
import { formatBytes, formatCount, formatDuration, formatNumber, formatPercent, formatTimeOfDay, formatTimestamp, shortId, shortTaskId } from '../format';
import { normalRange } from './result/summary';
import type { Page } from '../main';

const REFRESH_MS = 3000;
/** Worker records listed besides the banned ones. */
const TOP_RECORDS = 10;
const PRIORITIES: Priority[] = ['urgent', 'normal', 'batch'];
const TASK_STATUSES: TaskStatus[] = ['queued', 'leased', 'done', 'failed'];

/** A job's history as last loaded: the events, or why they could not be loaded. */
type History = { events: JobEvent[] } | { error: string } | 'loading';

export const adminPage: Page = ({ root }) => {
  const accounts = h('div', { 'data-testid': 'accounts' });
  const workers = h('div', { 'data-testid': 'workers' });
  const records = h('div', { 'data-testid': 'worker-records' });
  const queues = h('div', { 'data-testid': 'queues' });
  const jobs = h('div', { 'data-testid': 'jobs' });
  const health = h('div', { 'data-testid': 'health' });
  const templates = h('div', { 'data-testid': 'templates' }, h('p', { class: 'muted' }, 'Loading templates…'));
  const loadError = h('p', { class: 'error', role: 'alert' });

  replaceChildren(
    root,
    h('h1', {}, 'Administration'),
    loadError,
    h('section', { 'aria-labelledby': 'accounts-title' }, h('h2', { id: 'accounts-title' }, 'Accounts'), createAccountForm(refresh), accounts),
    h('section', { 'aria-labelledby': 'workers-title' },
      h('h2', { id: 'workers-title' }, 'Workers'), workers,
      h('h3', { id: 'records-title' }, 'Worker records'),
      h('p', { class: 'muted' }, `Every worker key ever seen keeps its record: banned keys, then the ${TOP_RECORDS} most credible others.`),
      records),
    h('section', { 'aria-labelledby': 'queues-title' }, h('h2', { id: 'queues-title' }, 'Queues'), queues),
    h('section', { 'aria-labelledby': 'jobs-title' }, h('h2', { id: 'jobs-title' }, 'Jobs'), jobs),
    h('section', { 'aria-labelledby': 'health-title' }, h('h2', { id: 'health-title' }, 'Health'), health),
    h('section', { 'aria-labelledby': 'templates-title' }, h('h2', { id: 'templates-title' }, 'Templates'), templates),
  );

  api.templates().then(
    (list) => replaceChildren(templates, list.length ? list.map(templateCard) : h('p', { class: 'muted' }, 'No templates.')),
    (error) => replaceChildren(templates, h('p', { class: 'error', role: 'alert' }, `Could not load the templates: ${messageOf(error)}`)),
  );

  // Job histories the admin opened, and what was loaded for them; open ones reload on refresh.
  const histories = new Map<string, History>();
  let jobList: AdminJob[] = [];
  const shown = new Map<HTMLElement, string>();

  /** Redraws `target` with `draw()` unless `data` is what it already shows. */
  function show(target: HTMLElement, data: unknown, draw: () => Node): void {
    const snapshot = JSON.stringify(data);
    if (shown.get(target) === snapshot) return;
    shown.set(target, snapshot);
    replaceChildren(target, draw());
  }

  function showJobs(): void {
    show(jobs, [jobList, [...histories]], () => jobsTable(jobList, histories, toggleHistory));
  }

  async function loadHistory(jobId: string): Promise<void> {
    try {
      const events = await api.jobEvents(jobId);
      if (histories.has(jobId)) histories.set(jobId, { events });
    } catch (error) {
      if (histories.has(jobId)) histories.set(jobId, { error: messageOf(error) });
    }
  }

  async function toggleHistory(jobId: Id): Promise<void> {
    const key = String(jobId);
    if (histories.has(key)) {
      histories.delete(key);
      showJobs();
      return;
    }
    histories.set(key, 'loading');
    showJobs();
    await loadHistory(key);
    showJobs();
  }

  /** Loads one section; a failure is shown in the section and reported to the caller. */
  async function section<T>(target: HTMLElement, what: string, load: () => Promise<T>, draw: (data: T) => Node): Promise<boolean> {
    try {
      const data = await load();
      show(target, data, () => draw(data));
      return true;
    } catch (error) {
      const message = `Could not load the ${what}: ${messageOf(error)}`;
      show(target, { error: message }, () => h('p', { class: 'error', role: 'alert' }, message));
      return false;
    }
  }

  async function refresh(): Promise<void> {
    const outcomes = await Promise.all([
      section(accounts, 'accounts', api.users, (userList) => dataTable(
        ['E-mail', 'Role', 'Created'],
        userList.map((u) => h('tr', {}, h('td', {}, u.email), h('td', {}, u.role), h('td', {}, formatTimestamp(u.created_at)))),
        'No accounts.',
      )),
      section(workers, 'workers', api.workers, workersTable),
      section(records, 'worker records', api.workerRecords, recordsTable),
      section(queues, 'queues', api.queues, queuesTable),
      (async () => {
        try {
          jobList = await api.adminJobs();
          await Promise.all([...histories.keys()].map(loadHistory));
          showJobs();
          return true;
        } catch (error) {
          const message = `Could not load the jobs: ${messageOf(error)}`;
          show(jobs, { error: message }, () => h('p', { class: 'error', role: 'alert' }, message));
          return false;
        }
      })(),
      section(health, 'health', api.health, (status) => h('dl', { class: 'facts' },
        h('dt', {}, 'Status'), h('dd', {}, status.status),
        h('dt', {}, 'Database'), h('dd', {}, status.database),
        h('dt', {}, 'Workers'), h('dd', {}, status.workers),
        h('dt', {}, 'Queued tasks'), h('dd', {}, status.queued_tasks),
        status.leased_tasks !== undefined && [h('dt', {}, 'Leased tasks'), h('dd', {}, status.leased_tasks)],
        status.payload_budget_bytes !== undefined && [
          h('dt', {}, 'Task payloads in memory'),
          h('dd', {}, `${formatBytes(status.payload_held_bytes ?? 0)} of ${formatBytes(status.payload_budget_bytes)}`),
        ])),
    ]);
    loadError.textContent = outcomes.every(Boolean) ? '' : 'Some sections could not be refreshed; they are retried every few seconds.';
  }

  void refresh();
  const timer = setInterval(() => void refresh(), REFRESH_MS);
  return () => clearInterval(timer);
};

/** "95.2 %" with "19 agreed · 1 disagreed" under it. */
function credibilityCell(record: { credibility: number; agreed: number; disagreed: number }): HTMLTableCellElement {
  return h('td', { 'data-col': 'credibility' },
    formatPercent(record.credibility, 1),
    h('div', { class: 'muted' }, `${formatCount(record.agreed)} agreed · ${formatCount(record.disagreed)} disagreed`));
}

function bannedCell(banned: boolean): HTMLTableCellElement {
  return h('td', { 'data-col': 'banned' }, banned ? h('span', { class: 'status status-failed' }, 'banned') : h('span', { class: 'muted' }, 'no'));
}

function workersTable(list: WorkerInfo[]): HTMLTableElement {
  return dataTable(
    ['Worker key', 'Agent', 'Slots', 'In flight', 'Tasks done', 'Speed', 'Credibility', 'Banned', 'Connected'],
    list.map((w) =>
      h('tr', { 'data-worker-key': w.worker_key },
        h('td', { class: 'mono', title: `key ${w.worker_key}\nconnection ${w.id}` }, shortId(w.worker_key)),
        h('td', {}, w.agent),
        h('td', { class: 'num' }, w.slots),
        h('td', { 'data-col': 'in-flight' },
          h('span', {}, `${w.in_flight} / ${w.slots}`),
          w.reserved > 0 && h('span', { class: 'muted' }, ` + ${w.reserved} reserved`),
          w.current_tasks.length > 0 && h('div', { class: 'mono muted', title: w.current_tasks.join('\n') }, w.current_tasks.map((t) => shortTaskId(t)).join(', '))),
        h('td', { class: 'num' }, formatCount(w.tasks_done)),
        h('td', { class: 'num', 'data-col': 'speed' }, w.rows_per_s === null ? '—' : `${formatCount(Math.round(w.rows_per_s))} rows/s`,
          h('div', { class: 'muted' },
            `ACK ${w.ack_latency_ms === null ? '—' : `${formatCount(Math.round(w.ack_latency_ms))} ms`} · ${formatCount(w.failures)} failed`)),
        credibilityCell(w),
        bannedCell(w.banned),
        h('td', {}, formatTimestamp(w.connected_at))),
    ),
    'No volunteer is connected.',
  );
}

/** Banned keys first (all of them), then the most credible others. */
function recordsTable(list: WorkerRecord[]): HTMLTableElement {
  const banned = list.filter((r) => r.banned);
  const top = list
    .filter((r) => !r.banned)
    .sort((a, b) => b.credibility - a.credibility || b.agreed - a.agreed || b.last_seen_at - a.last_seen_at)
    .slice(0, TOP_RECORDS);
  return dataTable(
    ['Worker key', 'Credibility', 'Late results', 'Banned', 'Last seen'],
    [...banned, ...top].map((r) =>
      h('tr', { 'data-worker-key': r.worker_key, class: r.banned ? 'banned' : '' },
        h('td', { class: 'mono', title: r.worker_key }, shortId(r.worker_key)),
        credibilityCell(r),
        h('td', { class: 'num', 'data-col': 'late-results', title: 'Sent after the task had moved on; never applied' }, formatCount(r.late_results)),
        bannedCell(r.banned),
        h('td', {}, formatTimestamp(r.last_seen_at))),
    ),
    'No worker has connected yet.',
  );
}

/** Priorities down, task states across, with totals. */
function queuesTable(counts: QueueCount[]): HTMLTableElement {
  const count = (priority: Priority, status: TaskStatus) =>
    counts.filter((c) => c.priority === priority && c.status === status).reduce((sum, c) => sum + c.tasks, 0);
  return h(
    'table',
    { class: 'queues' },
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Priority'), TASK_STATUSES.map((s) => h('th', { scope: 'col', class: 'num' }, s)), h('th', { scope: 'col', class: 'num' }, 'total'))),
    h('tbody', {},
      PRIORITIES.map((priority) => {
        const cells = TASK_STATUSES.map((status) => count(priority, status));
        return h('tr', { 'data-priority': priority },
          h('th', { scope: 'row' }, priority),
          cells.map((n, i) => h('td', { class: 'num', 'data-status': TASK_STATUSES[i] }, n ? formatCount(n) : h('span', { class: 'muted' }, '0'))),
          h('td', { class: 'num' }, formatCount(cells.reduce((a, b) => a + b, 0))));
      })),
  );
}

const JOB_HEADERS = ['Job', 'Owner', 'File', 'Algorithm', 'Template', 'Priority', 'Status', 'Progress', 'Created', 'Finished', ''];

function jobsTable(list: AdminJob[], histories: Map<string, History>, toggle: (jobId: Id) => void): HTMLTableElement {
  const rows = list.flatMap((j) => {
    const history = histories.get(String(j.id));
    const row = h('tr', { 'data-job-id': j.id },
      h('td', { class: 'mono' }, j.id), h('td', {}, j.owner_email), h('td', {}, j.file_name), h('td', {}, j.algorithm), h('td', { 'data-col': 'template' }, templateOf(j)),
      h('td', { 'data-col': 'priority' }, j.priority && j.priority !== 'normal' ? h('span', { class: `badge priority-${j.priority}` }, j.priority) : (j.priority ?? 'normal')),
      h('td', {}, h('span', { class: `status status-${j.status}`, title: j.error ?? '' }, j.status)),
      h('td', {}, progressBar(j.tasks_done, j.tasks_total, `Job ${j.id} progress`)),
      h('td', {}, formatTimestamp(j.created_at)), h('td', {}, formatTimestamp(j.finished_at)),
      h('td', {}, h('button', {
        type: 'button', class: 'link history-toggle', 'aria-expanded': history ? 'true' : 'false', 'aria-controls': `history-${j.id}`,
        onclick: () => toggle(j.id),
      }, history ? 'Hide history' : 'History')));
    if (!history) return [row];
    return [row, h('tr', { class: 'history-row', id: `history-${j.id}`, 'data-history-of': j.id },
      h('td', { colspan: JOB_HEADERS.length }, historyView(j.id, history)))];
  });
  return dataTable(JOB_HEADERS, rows, 'No jobs yet.');
}

function historyView(jobId: Id, history: History): HTMLElement {
  if (history === 'loading') return h('p', { class: 'muted' }, `Loading the history of job ${jobId}…`);
  if ('error' in history) return h('p', { class: 'error', role: 'alert' }, `Could not load the history: ${history.error}`);
  return h('div', { class: 'history', 'data-testid': 'job-history', 'aria-label': `History of job ${jobId}` },
    dataTable(
      ['Time', 'Event', 'Task', 'Worker', 'Detail'],
      history.events.map((e) =>
        h('tr', { 'data-kind': e.kind },
          h('td', { title: new Date(e.at).toISOString() }, formatTimeOfDay(e.at)),
          h('td', {}, h('span', { class: `event event-${e.kind}` }, e.kind.replace(/_/g, ' '))),
          h('td', { class: 'mono', title: e.task_id ?? '' }, shortTaskId(e.task_id)),
          h('td', { class: 'mono', title: e.worker ?? '' }, shortId(e.worker)),
          h('td', {}, e.detail))),
      'No events recorded for this job.',
    ));
}

function createAccountForm(onCreated: () => Promise<void>): HTMLFormElement {
  const email = h('input', { id: 'new-email', type: 'email', required: true, autocomplete: 'off' });
  const password = h('input', { id: 'new-password', type: 'password', required: true, autocomplete: 'new-password' });
  const role = h('select', { id: 'new-role' }, h('option', { value: 'clinician' }, 'Clinician'), h('option', { value: 'admin' }, 'Administrator'));
  const submit = h('button', { type: 'submit' }, 'Create account');
  const message = h('p', { role: 'status' });

  const form = h(
    'form',
    { class: 'inline-form', 'aria-label': 'Create account' },
    h('div', {}, h('label', { for: 'new-email' }, 'E-mail'), email),
    h('div', {}, h('label', { for: 'new-password' }, 'Password'), password),
    h('div', {}, h('label', { for: 'new-role' }, 'Role'), role),
    submit,
    message,
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    submit.disabled = true;
    message.className = '';
    try {
      const created = await api.createUser(email.value.trim(), password.value, role.value as Role);
      message.textContent = `Account ${created.email} created.`;
      form.reset();
      await onCreated();
    } catch (error) {
      message.className = 'error';
      message.textContent = messageOf(error);
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

/** "template v2 · bedside-vitals", or "—" for jobs from before templates were versioned. */
function templateOf(job: AdminJob): string {
  if (job.template_version === undefined) return '—';
  return job.template_id ? `template v${job.template_version} · ${job.template_id}` : `template v${job.template_version}`;
}

function templateCard(template: Template): HTMLElement {
  const rules = template.params.alerts;
  return h(
    'article',
    { class: 'card', 'data-template': `${template.id}@${template.version}` },
    h('h3', {}, `${template.id} `, h('span', { class: 'muted' }, `version ${template.version} · ${template.kind}`)),
    h('dl', { class: 'facts' },
      h('dt', {}, 'Algorithms'), h('dd', {}, template.algorithms.map((a, i) => (i === 0 ? `${a} (default)` : a)).join(', ')),
      h('dt', {}, 'Maximum gap'), h('dd', {}, template.max_gap_s === undefined ? 'none (gaps are not listed)' : formatDuration(template.max_gap_s)),
      template.kind === 'vitals' && [h('dt', {}, 'NEWS2'), h('dd', {}, `values current for ${formatDuration(template.params.news2.window_s)}, scored with ≥ ${template.params.news2.min_parameters} parameters`)],
      template.kind === 'vitals' && [h('dt', {}, 'Alert bridging'), h('dd', {}, `breaches up to ${formatDuration(template.params.alert_bridge_s)} apart are one episode`)],
      template.kind === 'ecg' && [h('dt', {}, 'ECG strip'), h('dd', {}, `first ${formatDuration(template.params.ecg.strip_s)}, at most ${template.params.ecg.strip_max_points} points`)]),
    dataTable(
      ['Signal', 'Unit', 'Plausible range', 'Normal range', 'Required', 'Resolution', 'Column names'],
      template.signals.map((s) =>
        h('tr', { 'data-signal': s.name },
          h('th', { scope: 'row' }, s.name), h('td', {}, s.unit),
          h('td', {}, s.min < 0 ? `${formatNumber(s.min)} to ${formatNumber(s.max)}` : `${formatNumber(s.min)}–${formatNumber(s.max)}`),
          h('td', {}, normalRange(s.normal_low, s.normal_high)),
          h('td', {}, s.required ? 'yes' : 'no'),
          h('td', { class: 'num' }, formatNumber(s.resolution)),
          h('td', { class: 'muted' }, s.aliases.join(', ')))),
      'No signals.',
    ),
    rules.length > 0 && dataTable(
      ['Alert', 'Rule', 'For at least'],
      rules.map((r) => h('tr', {}, h('th', { scope: 'row' }, r.kind), h('td', {}, `${r.signal} ${r.condition === 'above' ? '>' : '<'} ${formatNumber(r.threshold)}`), h('td', {}, formatDuration(r.min_duration_s)))),
      '',
    ),
  );
}
