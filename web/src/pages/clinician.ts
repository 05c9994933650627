// /files: the clinician's recordings. Upload (with a real progress bar), start processing at a
// priority (normal, urgent or batch), follow the job live, open or delete results.
import { api, messageOf } from '../api/client';
import type { DataFile, Id, Job, Priority } from '../api/types';
import { dataTable, h, progressBar, replaceChildren } from '../dom';
import { formatBytes, formatCount, formatDuration } from '../format';
import type { Page } from '../main';

const POLL_MS = 1000;

const PRIORITIES: [Priority, string][] = [['normal', 'Normal'], ['urgent', 'Urgent'], ['batch', 'Batch']];

const isActive = (job: Job | null): boolean => job?.status === 'queued' || job?.status === 'running';

export const filesPage: Page = ({ root }) => {
  let files: DataFile[] = [];
  let shown = ''; // JSON of what the table shows, so polling redraws only on change
  const chosen = new Map<Id, Priority>(); // the Priority picked per file survives redraws
  const tableArea = h('div', { 'data-testid': 'files' });
  const tableError = h('p', { class: 'error', role: 'alert' });

  function redraw(): void {
    const snapshot = JSON.stringify(files);
    if (snapshot === shown) return;
    shown = snapshot;
    replaceChildren(
      tableArea,
      dataTable(['Patient ref', 'File', 'Kind', 'Rows', 'Signals', 'Duration', 'Analysis', 'Actions'], files.map(fileRow), 'No recordings yet. Upload one above.'),
    );
  }

  function fileRow(file: DataFile): HTMLTableRowElement {
    const job = file.latest_job;
    return h(
      'tr',
      { 'data-file-id': file.id, 'data-job-status': job?.status ?? 'none' },
      h('td', {}, file.patient_ref),
      h('td', {}, file.file_name, h('div', { class: 'muted' }, formatBytes(file.size_bytes))),
      h('td', {}, file.kind === 'ecg' ? 'ECG' : 'Vitals'),
      h('td', { class: 'num' }, formatCount(file.rows)),
      h(
        'td',
        {},
        file.signals.join(', '),
        file.ignored_columns.length > 0 && h('div', { class: 'muted' }, `Ignored columns: ${file.ignored_columns.join(', ')}`),
      ),
      h('td', {}, formatDuration(file.duration_s)),
      h('td', { class: 'job' }, jobCell(job)),
      h(
        'td',
        { class: 'actions' },
        prioritySelect(file),
        h('button', { type: 'button', disabled: isActive(job), onclick: () => void process(file) }, job ? 'Process again' : 'Process'),
        job?.status === 'done' && job.has_result && h('a', { href: `/jobs/${job.id}/result` }, 'View result'),
        h('button', { type: 'button', class: 'danger', onclick: () => void remove(file) }, 'Delete'),
      ),
    );
  }

  function prioritySelect(file: DataFile): HTMLLabelElement {
    const current = chosen.get(file.id) ?? 'normal';
    const select = h('select', { 'data-testid': 'priority' },
      PRIORITIES.map(([value, text]) => h('option', { value, selected: value === current }, text)));
    select.addEventListener('change', () => chosen.set(file.id, select.value as Priority));
    return h('label', { class: 'priority-choice' }, 'Priority ', select);
  }

  function jobCell(job: Job | null): (Node | string)[] {
    if (!job) return ['Not processed'];
    const priority = job.priority && job.priority !== 'normal'
      ? [' ', h('span', { class: `badge priority-${job.priority}`, 'data-testid': 'job-priority' }, job.priority)]
      : [];
    const status = h('span', {}, h('span', { class: `status status-${job.status}` }, job.status), ...priority);
    if (isActive(job)) return [status, progressBar(job.tasks_done, job.tasks_total, `Progress of ${job.id}`)];
    if (job.status === 'failed') return [status, h('div', { class: 'error' }, job.error ?? 'The analysis failed.')];
    return [status];
  }

  async function process(file: DataFile): Promise<void> {
    tableError.textContent = '';
    try {
      file.latest_job = await api.startJob(file.id, chosen.get(file.id) ?? 'normal');
      redraw();
    } catch (error) {
      tableError.textContent = messageOf(error);
    }
  }

  async function remove(file: DataFile): Promise<void> {
    if (!confirm(`Delete ${file.file_name} (${file.patient_ref}) and its results?`)) return;
    tableError.textContent = '';
    try {
      await api.deleteFile(file.id);
      files = files.filter((f) => f !== file);
      redraw();
    } catch (error) {
      tableError.textContent = messageOf(error);
    }
  }

  async function load(): Promise<void> {
    try {
      files = await api.files();
      redraw();
    } catch (error) {
      tableError.textContent = messageOf(error);
    }
  }

  // Follows every queued or running job; one request per active job per second.
  async function poll(): Promise<void> {
    const active = files.filter((f) => isActive(f.latest_job));
    await Promise.all(
      active.map(async (file) => {
        try {
          file.latest_job = await api.job(file.latest_job!.id);
        } catch {
          // a missed poll is retried a second later
        }
      }),
    );
    redraw();
  }

  const uploader = uploadForm((file) => {
    files = [file, ...files];
    redraw();
  });
  replaceChildren(root, h('h1', {}, 'Recordings'), uploader, h('h2', {}, 'Your recordings'), tableError, tableArea);
  void load();
  const timer = setInterval(() => void poll(), POLL_MS);
  return () => clearInterval(timer);
};

function uploadForm(onUploaded: (file: DataFile) => void): HTMLFormElement {
  const patientRef = h('input', { id: 'patient-ref', type: 'text', required: true, autocomplete: 'off' });
  const dataFile = h('input', { id: 'data-file', type: 'file', accept: '.csv,text/csv,text/plain', required: true });
  const submit = h('button', { type: 'submit' }, 'Upload');
  const progress = h('progress', { max: 1, value: 0, hidden: true, 'aria-label': 'Upload progress' });
  const message = h('p', { role: 'status' });

  const form = h(
    'form',
    { class: 'card inline-form', 'aria-label': 'Upload a recording' },
    h('div', {}, h('label', { for: 'patient-ref' }, 'Patient reference'), patientRef),
    h('div', {}, h('label', { for: 'data-file' }, 'Data file'), dataFile),
    submit,
    progress,
    message,
    h('p', { class: 'muted hint' }, 'CSV with a time column and bedside vital signs (hr, spo2, …) or a single ECG lead.'),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const file = dataFile.files?.[0];
    if (!file) return;
    submit.disabled = true;
    progress.hidden = false;
    progress.value = 0;
    message.className = '';
    message.textContent = `Uploading ${file.name}…`;
    try {
      const uploaded = await api.uploadFile(patientRef.value.trim(), file, (fraction) => (progress.value = fraction));
      progress.value = 1;
      message.textContent = `${uploaded.file_name} uploaded: ${formatCount(uploaded.rows)} rows, ${uploaded.signals.join(', ')}.`;
      form.reset();
      onUploaded(uploaded);
    } catch (error) {
      progress.hidden = true;
      message.className = 'error';
      message.textContent = messageOf(error);
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}
