// /volunteer: anyone can lend their browser's spare CPU to VitalGrid. Explains what runs and what
// it sees, then drives the VolunteerRuntime (socket on this page, wasm in Web Workers). The CPU
// share (default 50 %, remembered in localStorage) is how much of each thread's core the wasm may
// use; it can be changed while running.
import { h, replaceChildren } from '../dom';
import { formatCount, shortTaskId } from '../format';
import type { Page } from '../main';
import { VolunteerRuntime, type RuntimeView } from '../volunteer/runtime';

export const volunteerPage: Page = ({ root }) => {
  const CPU_SHARE_STORAGE = 'vitalgrid.cpu_share';
const CPU_SHARES = [25, 50, 75, 100];
const DEFAULT_CPU_SHARE = 50;

function storedShare(): number {
  try {
    const value = Number(localStorage.getItem(CPU_SHARE_STORAGE));
    return CPU_SHARES.includes(value) ? value : DEFAULT_CPU_SHARE;
  } catch {
    return DEFAULT_CPU_SHARE;
  }
}

const maxThreads = Math.max(1, navigator.hardwareConcurrency || 1);
  const threads = h('input', { id: 'threads', type: 'number', min: 1, max: maxThreads, step: 1, value: Math.min(2, maxThreads) });
  const initialShare = storedShare();
  const cpuShare = h('select', { id: 'cpu-share' },
    CPU_SHARES.map((percent) => h('option', { value: percent, selected: percent === initialShare }, `${percent} %${percent === DEFAULT_CPU_SHARE ? ' (default)' : ''}`)));
  const start = h('button', { type: 'button' }, 'Start');
  const stop = h('button', { type: 'button', disabled: true }, 'Stop');
  const status = h('p', { class: 'runtime-status', role: 'status', 'data-testid': 'runtime-status' }, 'Not running.');
  const tasksDone = h('strong', { 'data-testid': 'tasks-done' }, '0');
  const samples = h('strong', { 'data-testid': 'samples-processed' }, '0');
  const threadList = h('ol', { class: 'threads', 'aria-label': 'Thread status' });

  const runtime = new VolunteerRuntime(show);
  function show(view: RuntimeView): void {
    const running = view.state === 'connecting' || view.state === 'running' || view.state === 'stopping';
    start.disabled = running;
    threads.disabled = running;
    stop.disabled = !running || view.state === 'stopping';
    status.textContent = view.detail;
    status.dataset.state = view.state;
    status.classList.toggle('error', view.state === 'refused');
    tasksDone.textContent = formatCount(view.tasksDone);
    samples.textContent = formatCount(view.samplesProcessed);
    replaceChildren(
      threadList,
      view.threads.map((thread, index) =>
        h('li', {},
          `Thread ${index + 1}: `,
          thread.problem
            ? h('span', { class: 'error' }, thread.problem)
            : thread.taskId
              ? `working on task ${shortTaskId(thread.taskId)}${thread.progress !== null ? ` (${Math.round(thread.progress * 100)} %)` : ''}`
              : running ? 'idle' : 'stopped',
          ` · ${thread.tasksDone} done`),
      ),
    );
  }

  start.addEventListener('click', () => {
    const count = Math.min(maxThreads, Math.max(1, Math.round(Number(threads.value) || 1)));
    threads.value = String(count);
    runtime.start(count, Number(cpuShare.value) / 100);
  });
  cpuShare.addEventListener('change', () => {
    try {
      localStorage.setItem(CPU_SHARE_STORAGE, cpuShare.value);
    } catch {
      // not remembered: fine
    }
    runtime.setCpuShare(Number(cpuShare.value) / 100);
  });
  stop.addEventListener('click', () => void runtime.stop());

  replaceChildren(
    root,
    h('h1', {}, 'Donate compute to clinical research'),
    h('div', { class: 'card explainer' },
      h('p', {}, 'While this tab is open, your browser runs ', h('strong', {}, "VitalGrid's analysis pipeline, compiled to WebAssembly"),
        ', inside sandboxed Web Workers. It helps hospital clinicians analyse bedside monitor and ECG recordings.'),
      h('p', {}, 'What your browser sees: ', h('strong', {}, 'numbers only'),
        '. No names, patient references, files or dates ever reach it: task ids are opaque and times are seconds relative to the start of a recording.'),
      h('p', {}, 'Each thread works in short slices and rests in between, so it uses at most the ', h('strong', {}, 'CPU share'),
        ' you choose of one core. The default, 50 %, keeps your computer responsive; you can change it at any time, also while running.'),
      h('p', {}, 'It stops as soon as you press Stop or close the tab. Unfinished work is handed back to other volunteers.'),
    ),
    h('div', { class: 'card controls' },
      h('div', {}, h('label', { for: 'threads' }, 'Threads'), threads, h('span', { class: 'muted' }, ` of ${maxThreads} available`)),
      h('div', {}, h('label', { for: 'cpu-share' }, 'CPU share'), cpuShare,
        h('span', { class: 'muted' }, ' per thread')),
      start,
      stop,
    ),
    status,
    h('dl', { class: 'facts' }, h('dt', {}, 'Tasks done'), h('dd', {}, tasksDone), h('dt', {}, 'Samples processed'), h('dd', {}, samples)),
    threadList,
  );

  // Leaving the page (or closing the tab) stops the work; the server reclaims unreleased tasks.
  const onUnload = () => void runtime.stop();
  window.addEventListener('pagehide', onUnload);
  return () => {
    window.removeEventListener('pagehide', onUnload);
    void runtime.stop();
  };
};
