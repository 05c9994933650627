// /jobs/:id/result: the merged analysis of one recording. Sections appear when the analysis has
// them (older results and single algorithms have fewer): summary, data quality, ECG (strip, HRV),
// alerts (table, then a timeline over the trend charts), trends, NEWS2. See ./result/.
import type uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { api, ApiError, messageOf } from '../api/client';
import type { Analysis, JobResult } from '../api/types';
import { h, replaceChildren } from '../dom';
import { formatDuration } from '../format';
import type { Page } from '../main';
import { navigate } from '../session';
import { alertsTable, alertsTimeline, alertSpans, alignTimeline } from './result/alerts';
import { chartWidth, type TimeRange } from './result/charts';
import { ecgSection } from './result/ecg';
import { news2Section, type ChartSection } from './result/news2';
import { qualitySection } from './result/quality';
import { summaryTable } from './result/summary';
import { trendChart } from './result/trends';

export const resultPage: Page = ({ root, params }) => {
  const jobId = params[0];
  const charts: uPlot[] = [];
  let left = false;
  replaceChildren(root, h('p', { class: 'muted' }, 'Loading the result…'));

  api.result(jobId).then(
    (result) => {
      if (!left) show(result);
    },
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

    const range = timeRange(analysis);
    const alerts = analysis.alerts?.alerts ?? [];
    const chartSections: ChartSection[] = [];
    const ecg = analysis.ecg ? ecgSection(analysis.ecg) : null;
    const news2 = analysis.news2 ? news2Section(analysis.news2, range) : null;
    if (ecg) chartSections.push(ecg);
    if (news2) chartSections.push(news2);
    const timeline = analysis.alerts ? alertsTimeline(alerts, analysis.signals, range) : null;
    const chartArea = h('div', { class: 'charts' }, timeline);

    replaceChildren(
      root,
      h('p', {}, h('a', { href: '/files' }, '← Recordings')),
      h('h1', {}, `${result.patient_ref} — ${result.file_name}`),
      h('p', { class: 'muted' }, `${result.kind === 'ecg' ? 'ECG' : 'Vital signs'} · ${analysis.algorithm} · ${analysis.segments} segments · ${formatDuration(analysis.duration_s)}`),
      h('h2', {}, 'Summary'),
      summaryTable(analysis.signals),
      qualitySection(analysis),
      ecg?.element,
      analysis.alerts && h('section', { 'aria-labelledby': 'alerts-title' },
        h('h2', { id: 'alerts-title' }, `Alerts (${alerts.length})`),
        h('p', { class: 'muted' }, 'Sustained breaches of the template’s alert rules; each lasted at least its rule’s minimum duration. They are shaded on the trend charts below.'),
        alertsTable(alerts, analysis.signals)),
      h('h2', {}, 'Trends'),
      chartArea,
      news2?.element,
      h('div', { class: 'actions' }, deleteButton),
      deleteError,
    );

    const width = chartWidth(chartArea);
    for (const signal of analysis.signals) {
      const figure = h('figure', { class: 'chart trend', 'data-signal': signal.name }, h('figcaption', {}, `${signal.name} (${signal.unit})`));
      chartArea.append(figure);
      if (signal.trend.time_s.length === 0) figure.append(h('p', { class: 'muted' }, 'No valid values to chart.'));
      else charts.push(trendChart(signal, figure, width, range, alertSpans(alerts, signal.name)));
    }
    // uPlot lays its plot area out after construction, so line the timeline up on the next frame.
    const first = charts[0];
    if (timeline && first) requestAnimationFrame(() => alignTimeline(timeline, first.over));
    for (const section of chartSections) charts.push(...section.draw(width));
  }

  return () => {
    left = true;
    charts.forEach((chart) => chart.destroy());
  };
};

/** From the start of the recording to its end, or to the last charted event if that is later. */
function timeRange(analysis: Analysis): TimeRange {
  let max = analysis.duration_s;
  for (const signal of analysis.signals) max = Math.max(max, signal.trend.time_s.at(-1) ?? 0);
  for (const alert of analysis.alerts?.alerts ?? []) max = Math.max(max, alert.end_s);
  const news2Times = analysis.news2?.series.time_s ?? [];
  max = Math.max(max, news2Times.at(-1) ?? 0);
  return { min: 0, max: max > 0 ? max : 1 };
}
