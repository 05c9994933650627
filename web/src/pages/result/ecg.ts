// The ECG section: the first seconds of the trace with detected beats ticked (rejected beats in
// orange), the HRV time-domain table and the rejected beats.
import uPlot from 'uplot';
import type { EcgReport, EcgStrip } from '../../api/types';
import { dataTable, h } from '../../dom';
import { formatCount, formatNumber, formatOffset } from '../../format';
import { Y_AXIS_SIZE } from './charts';
import type { ChartSection } from './news2';

const BEAT_COLOUR = '#b3261e';
const REJECTED_COLOUR = '#e69114';
/** Rejected beats listed on the page (the result holds at most 200). */
const REJECTED_SHOWN = 50;

export function ecgSection(report: EcgReport): ChartSection {
  const strip = report.strip;
  const stripEnd = strip.time_s.length ? strip.time_s[strip.time_s.length - 1] : 0;
  const figure = h('figure', { class: 'chart ecg-strip', 'data-testid': 'ecg-strip' },
    h('figcaption', {}, `ECG, first ${formatNumber(Math.round(stripEnd))} s`,
      h('span', { class: 'legend' },
        h('span', { class: 'swatch', style: `background: ${BEAT_COLOUR}` }), `${formatCount(strip.beat_times_s.length)} beats `,
        strip.rejected_times_s.length > 0 && [h('span', { class: 'swatch', style: `background: ${REJECTED_COLOUR}` }), `${formatCount(strip.rejected_times_s.length)} rejected`])));
  const element = h(
    'section',
    { 'aria-labelledby': 'ecg-title' },
    h('h2', { id: 'ecg-title' }, 'ECG'),
    figure,
    h('h3', {}, 'Heart rate variability (time domain)'),
    hrvTable(report),
    report.hrv === null ? h('p', { class: 'muted' }, 'HRV was not computed: too few normal-to-normal intervals.') : null,
    rejectedPart(report),
  );
  const draw = (width: number): uPlot[] => {
    if (strip.time_s.length === 0) {
      figure.append(h('p', { class: 'muted' }, 'No ECG samples to chart.'));
      return [];
    }
    return [stripChart(strip, figure, width)];
  };
  return { element, draw };
}

function hrvTable(report: EcgReport): HTMLElement {
  const hrv = report.hrv;
  const reasons = { ectopic: 0, artifact: 0 };
  for (const beat of report.rejected) reasons[beat.reason] += 1;
  const listedAll = report.rejected.length === report.rejected_beats;
  const rejectedText = report.rejected_beats === 0
    ? '0'
    : `${formatCount(report.rejected_beats)} (${formatCount(reasons.ectopic)} ectopic, ${formatCount(reasons.artifact)} artifact${listedAll ? '' : ` among the first ${formatCount(report.rejected.length)}`})`;
  const row = (key: string, label: string, value: number | null | undefined, text: string) =>
    h('tr', { 'data-hrv': key, 'data-value': value ?? '' }, h('th', { scope: 'row' }, label), h('td', { class: 'num' }, text));
  const withUnit = (value: number | undefined, unit: string) => (value === undefined ? '—' : `${formatNumber(value)} ${unit}`);
  return h('div', { 'data-testid': 'hrv-table', class: 'compact' }, dataTable(['Measure', 'Value'], [
    row('beats', 'Beats detected', report.beats, formatCount(report.beats)),
    row('nn_count', 'NN intervals', hrv?.nn_count, hrv ? formatCount(hrv.nn_count) : '—'),
    row('rejected', 'Rejected beats (ectopic / artifact)', report.rejected_beats, rejectedText),
    row('mean_hr_bpm', 'Mean heart rate', hrv?.mean_hr_bpm, withUnit(hrv?.mean_hr_bpm, 'bpm')),
    row('mean_nn_ms', 'Mean NN', hrv?.mean_nn_ms, withUnit(hrv?.mean_nn_ms, 'ms')),
    row('sdnn_ms', 'SDNN', hrv?.sdnn_ms, withUnit(hrv?.sdnn_ms, 'ms')),
    row('rmssd_ms', 'RMSSD', hrv?.rmssd_ms, withUnit(hrv?.rmssd_ms, 'ms')),
    row('pnn50_pct', 'pNN50', hrv?.pnn50_pct, withUnit(hrv?.pnn50_pct, '%')),
    row('signal_quality', 'Signal quality (0 unusable – 1 clean)', report.signal_quality, formatNumber(Number(report.signal_quality.toFixed(2)))),
    row('fs_hz', 'Sampling rate', report.fs_hz, withUnit(report.fs_hz, 'Hz')),
  ], ''));
}

function rejectedPart(report: EcgReport): HTMLElement[] | null {
  if (report.rejected_beats === 0) return null;
  const shown = report.rejected.slice(0, REJECTED_SHOWN);
  const unlisted = report.rejected_beats - shown.length;
  return [
    h('h3', {}, 'Rejected beats'),
    h('p', { class: 'muted' }, 'These beats were left out of the NN intervals, so they do not count in the HRV measures.'),
    h('div', { 'data-testid': 'rejected-beats', class: 'compact' }, dataTable(['Time from start', 'Reason'],
      shown.map((beat) => h('tr', {}, h('td', { class: 'mono' }, formatOffset(beat.time_s, 2)), h('td', {}, beat.reason))), '')),
    ...(unlisted > 0 ? [h('p', { class: 'muted' }, `… and ${formatCount(unlisted)} more not listed.`)] : []),
  ];
}

/** Index of the sample nearest to `time` (times ascending). */
function nearest(times: number[], time: number): number {
  let low = 0;
  let high = times.length - 1;
  while (low < high) {
    const mid = (low + high) >> 1;
    if (times[mid] < time) low = mid + 1;
    else high = mid;
  }
  return low > 0 && time - times[low - 1] < times[low] - time ? low - 1 : low;
}

function stripChart(strip: EcgStrip, target: HTMLElement, width: number): uPlot {
  const tick = (u: uPlot, times: number[], colour: string) => {
    const { ctx, bbox } = u;
    const px = uPlot.pxRatio;
    ctx.save();
    ctx.strokeStyle = colour;
    ctx.fillStyle = colour;
    ctx.lineWidth = 1.5 * px;
    for (const time of times) {
      const x = u.valToPos(time, 'x', true);
      if (x < bbox.left || x > bbox.left + bbox.width) continue;
      ctx.beginPath();
      ctx.moveTo(x, bbox.top);
      ctx.lineTo(x, bbox.top + 8 * px);
      ctx.stroke();
      const y = u.valToPos(strip.values[nearest(strip.time_s, time)], 'y', true);
      ctx.beginPath();
      ctx.arc(x, y, 3 * px, 0, 2 * Math.PI);
      ctx.fill();
    }
    ctx.restore();
  };
  const options: uPlot.Options = {
    width,
    height: 200,
    scales: { x: { time: false } },
    series: [
      { label: 'Time', value: (_u, v) => (v == null ? '—' : `${formatNumber(v)} s`) },
      { label: 'ECG', stroke: '#1d2a33', width: 1, points: { show: false } },
    ],
    axes: [{ values: (_u, ticks) => ticks.map((t) => `${formatNumber(t)} s`) }, { label: 'mV', size: Y_AXIS_SIZE }],
    hooks: { draw: [(u) => { tick(u, strip.beat_times_s, BEAT_COLOUR); tick(u, strip.rejected_times_s, REJECTED_COLOUR); }] },
  };
  return new uPlot(options, [strip.time_s, strip.values], target);
}
