// /admin: accounts (list and create), connected volunteer workers, all jobs, server health, and the
// templates (every version, read-only). Accounts, workers, jobs and health refresh every few seconds;
// templates are loaded once (they change only when an admin adds a version through the API).
import { api, messageOf } from '../api/client';
import type { AdminJob, Role, Template } from '../api/types';
import { dataTable, h, progressBar, replaceChildren } from '../dom';
import { formatDuration, formatNumber, formatTimestamp } from '../format';
import { normalRange } from './result/summary';
import type { Page } from '../main';

const REFRESH_MS = 3000;

export const adminPage: Page = ({ root }) => {
  const accounts = h('div', { 'data-testid': 'accounts' });
  const workers = h('div', { 'data-testid': 'workers' });
  const jobs = h('div', { 'data-testid': 'jobs' });
  const health = h('div', { 'data-testid': 'health' });
  const templates = h('div', { 'data-testid': 'templates' }, h('p', { class: 'muted' }, 'Loading templates…'));
  const loadError = h('p', { class: 'error', role: 'alert' });

  replaceChildren(
    root,
    h('h1', {}, 'Administration'),
    loadError,
    h('section', { 'aria-labelledby': 'accounts-title' }, h('h2', { id: 'accounts-title' }, 'Accounts'), createAccountForm(refresh), accounts),
    h('section', { 'aria-labelledby': 'workers-title' }, h('h2', { id: 'workers-title' }, 'Workers'), workers),
    h('section', { 'aria-labelledby': 'jobs-title' }, h('h2', { id: 'jobs-title' }, 'Jobs'), jobs),
    h('section', { 'aria-labelledby': 'health-title' }, h('h2', { id: 'health-title' }, 'Health'), health),
    h('section', { 'aria-labelledby': 'templates-title' }, h('h2', { id: 'templates-title' }, 'Templates'), templates),
  );

  api.templates().then(
    (list) => replaceChildren(templates, list.length ? list.map(templateCard) : h('p', { class: 'muted' }, 'No templates.')),
    (error) => replaceChildren(templates, h('p', { class: 'error', role: 'alert' }, `Could not load the templates: ${messageOf(error)}`)),
  );

  async function refresh(): Promise<void> {
    try {
      const [userList, workerList, jobList, status] = await Promise.all([api.users(), api.workers(), api.adminJobs(), api.health()]);
      loadError.textContent = '';
      replaceChildren(
        accounts,
        dataTable(
          ['E-mail', 'Role', 'Created'],
          userList.map((u) => h('tr', {}, h('td', {}, u.email), h('td', {}, u.role), h('td', {}, formatTimestamp(u.created_at)))),
          'No accounts.',
        ),
      );
      replaceChildren(
        workers,
        dataTable(
          ['Worker', 'Agent', 'Slots', 'In flight', 'Tasks done', 'Connected'],
          workerList.map((w) =>
            h('tr', {}, h('td', { class: 'mono' }, w.id), h('td', {}, w.agent), h('td', { class: 'num' }, w.slots),
              h('td', { class: 'num' }, w.in_flight), h('td', { class: 'num' }, w.tasks_done), h('td', {}, formatTimestamp(w.connected_at))),
          ),
          'No volunteer is connected.',
        ),
      );
      replaceChildren(
        jobs,
        dataTable(
          ['Job', 'Owner', 'File', 'Algorithm', 'Template', 'Status', 'Progress', 'Created', 'Finished'],
          jobList.map((j) =>
            h('tr', {}, h('td', { class: 'mono' }, j.id), h('td', {}, j.owner_email), h('td', {}, j.file_name), h('td', {}, j.algorithm), h('td', { 'data-col': 'template' }, templateOf(j)),
              h('td', {}, h('span', { class: `status status-${j.status}`, title: j.error ?? '' }, j.status)),
              h('td', {}, progressBar(j.tasks_done, j.tasks_total, `Job ${j.id} progress`)),
              h('td', {}, formatTimestamp(j.created_at)), h('td', {}, formatTimestamp(j.finished_at))),
          ),
          'No jobs yet.',
        ),
      );
      replaceChildren(
        health,
        h('dl', { class: 'facts' },
          h('dt', {}, 'Status'), h('dd', {}, status.status),
          h('dt', {}, 'Database'), h('dd', {}, status.database),
          h('dt', {}, 'Workers'), h('dd', {}, status.workers),
          h('dt', {}, 'Queued tasks'), h('dd', {}, status.queued_tasks)),
      );
    } catch (error) {
      loadError.textContent = `Could not refresh: ${messageOf(error)}`;
    }
  }

  void refresh();
  const timer = setInterval(() => void refresh(), REFRESH_MS);
  return () => clearInterval(timer);
};

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
