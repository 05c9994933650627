// /jobs/:id/result: the merged analysis of one recording: summary table, data quality and one
// trend chart per signal (bucket min/mean/max over time from the start of the recording).
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { api, ApiError, messageOf } from '../api/client';
import type { JobResult, SignalSummary } from '../api/types';
import { dataTable, h, replaceChildren } from '../dom';
import { formatClock, formatCount, formatDuration, formatNumber } from '../format';
import type { Page } from '../main';
import { navigate } from '../session';

export const resultPage: Page = ({ root, params }) => {
  const jobId = params[0];
  const charts: uPlot[] = [];
  replaceChildren(root, h('p', { class: 'muted' }, 'Loading the result…'));

  api.result(jobId).then(
    (result) => show(result),
    (error) =>
      replaceChildren(
        root,
        h('h1', {}, 'Result'),
        h('p', { class: 'error', role: 'alert' }, error instanceof ApiError && error.status === 404 ? 'This result does not exist (it may have been deleted).' : messageOf(error)),
        h('a', { href: '/files' }, 'Back to recordings'),
      ),
  );

  function show(result: JobResult): void {
    const { analysis } = result;
    const deleteError = h('p', { class: 'error', role: 'alert' });
    const deleteButton = h('button', { type: 'button', class: 'danger', onclick: () => void deleteResult() }, 'Delete result');
    async function deleteResult(): Promise<void> {
      if (!confirm('Delete this result? The recording is kept and can be processed again.')) return;
      try {
        await api.deleteResult(jobId);
        navigate('/files');
      } catch (error) {
        deleteError.textContent = messageOf(error);
      }
    }

    const chartArea = h('div', { class: 'charts' });
    replaceChildren(
      root,
      h('p', {}, h('a', { href: '/files' }, '← Recordings')),
      h('h1', {}, `${result.patient_ref} — ${result.file_name}`),
      h('p', { class: 'muted' }, `${result.kind === 'ecg' ? 'ECG' : 'Vital signs'} · ${analysis.algorithm} · ${analysis.segments} segments · ${formatDuration(analysis.duration_s)}`),
      h('h2', {}, 'Summary'),
      dataTable(
        ['Signal', 'Unit', 'n', 'Mean', 'SD', 'Min', 'Max', 'Out of range', 'Missing'],
        analysis.signals.map((s) =>
          h('tr', { 'data-signal': s.name },
            h('th', { scope: 'row' }, s.name), h('td', {}, s.unit), h('td', { class: 'num' }, formatCount(s.n)),
            h('td', { class: 'num' }, formatNumber(s.mean)), h('td', { class: 'num' }, formatNumber(s.sd)),
            h('td', { class: 'num' }, formatNumber(s.min)), h('td', { class: 'num' }, formatNumber(s.max)),
            h('td', { class: 'num' }, formatCount(s.out_of_range)), h('td', { class: 'num' }, formatCount(s.missing))),
        ),
        'No signals.',
      ),
      h('p', { 'data-testid': 'data-quality' },
        `Data quality: ${formatCount(analysis.rows)} rows analysed, ${formatCount(analysis.duplicates_removed)} duplicate timestamps removed, ${formatCount(analysis.out_of_order)} rows out of order.`),
      h('h2', {}, 'Trends'),
      chartArea,
      h('div', { class: 'actions' }, deleteButton),
      deleteError,
    );
    for (const signal of analysis.signals) {
      const figure = h('figure', { class: 'chart' }, h('figcaption', {}, `${signal.name} (${signal.unit})`));
      chartArea.append(figure);
      if (signal.trend.time_s.length === 0) figure.append(h('p', { class: 'muted' }, 'No valid values to chart.'));
      else charts.push(trendChart(signal, figure, Math.max(320, chartArea.clientWidth - 16)));
    }
  }

  return () => charts.forEach((chart) => chart.destroy());
};

/** A uPlot chart of one signal: the min–max range as a shaded band with the mean as a line. */
function trendChart(signal: SignalSummary, target: HTMLElement, width: number): uPlot {
  const { time_s, min, mean, max } = signal.trend;
  const options: uPlot.Options = {
    width,
    height: 220,
    scales: { x: { time: false } },
    series: [
      { label: 'Time', value: (_u, v) => (v == null ? '—' : formatClock(v)) },
      { label: 'Min', stroke: '#7aa6c2', width: 1 },
      { label: 'Mean', stroke: '#0b5d8a', width: 2 },
      { label: 'Max', stroke: '#7aa6c2', width: 1 },
    ],
    bands: [{ series: [3, 1], fill: 'rgba(11, 93, 138, 0.12)' }],
    axes: [
      { values: (_u, ticks) => ticks.map(formatClock) },
      { label: signal.unit, size: 60 },
    ],
  };
  return new uPlot(options, [time_s, min, mean, max], target);
}
