// NEWS2: the worst aggregate score per chart bucket as a step line over the risk bands
// (0–4 low, 5–6 medium, ≥ 7 high), with buckets where a single parameter scored 3 (the
// "low–medium" band of the result) marked, and the time spent in each band.
import uPlot from 'uplot';
import type { News2Band, News2Report } from '../../api/types';
import { dataTable, h } from '../../dom';
import { formatDuration, formatHoursMinutes, formatOffset, formatPercent } from '../../format';
import { CHART_HEIGHT, shadeBands, timeAxis, timeSeries, Y_AXIS_SIZE, type TimeRange } from './charts';

const BAND_COLOURS = {
  low: 'rgba(30, 122, 70, 0.10)',
  medium: 'rgba(230, 145, 20, 0.18)',
  high: 'rgba(179, 38, 30, 0.16)',
};
const RED_SCORE_COLOUR = '#d9822b';

const BAND_ROWS: { band: News2Band | 'unscored'; label: string; key: keyof News2Report['time_in_band'] }[] = [
  { band: 'low', label: 'Low (aggregate 0–4)', key: 'low_s' },
  { band: 'low_medium', label: 'Low–medium (0–4 with one parameter scoring 3)', key: 'low_medium_s' },
  { band: 'medium', label: 'Medium (5–6)', key: 'medium_s' },
  { band: 'high', label: 'High (7 or more)', key: 'high_s' },
  { band: 'unscored', label: 'Not scored (too few current parameters)', key: 'unscored_s' },
];

export interface ChartSection {
  element: HTMLElement;
  /** Creates the section's charts once the element is in the page (uPlot needs a width). */
  draw: (width: number) => uPlot[];
}

export function news2Section(report: News2Report, range: TimeRange): ChartSection {
  const figure = h('figure', { class: 'chart news2', 'data-testid': 'news2-chart' },
    h('figcaption', {}, 'NEWS2 aggregate score (worst per interval)',
      h('span', { class: 'legend' },
        h('span', { class: 'swatch', style: `background: ${BAND_COLOURS.low}` }), 'low ',
        h('span', { class: 'swatch', style: `background: ${BAND_COLOURS.medium}` }), 'medium ',
        h('span', { class: 'swatch', style: `background: ${BAND_COLOURS.high}` }), 'high ',
        h('span', { class: 'swatch dot', style: `background: ${RED_SCORE_COLOUR}` }), 'single parameter 3')));
  const times = report.time_in_band;
  const total = times.unscored_s + times.low_s + times.low_medium_s + times.medium_s + times.high_s;
  const element = h(
    'section',
    { 'aria-labelledby': 'news2-title', class: 'news2-section' },
    h('h2', { id: 'news2-title' }, 'NEWS2'),
    h('p', { class: 'muted' },
      `Consciousness is assumed Alert and the patient on air. A parameter’s latest value counts for ${formatDuration(report.window_s)}; a moment is scored when at least ${report.min_parameters} of the 5 parameters are current.`),
    h('p', { 'data-testid': 'news2-max' }, report.max_score === null
      ? 'No moment could be scored.'
      : `Highest score ${report.max_score}${report.max_score_time_s === null ? '' : `, first reached at ${formatOffset(report.max_score_time_s)}`}.`),
    figure,
    h('div', { 'data-testid': 'news2-bands', class: 'compact' }, dataTable(
      ['Band', 'Time (h:mm)', 'Share'],
      BAND_ROWS.map((row) =>
        h('tr', { 'data-band': row.band },
          h('th', { scope: 'row' }, row.label),
          h('td', { class: 'num' }, formatHoursMinutes(times[row.key])),
          h('td', { class: 'num' }, formatPercent(times[row.key], total)))),
      '',
    )),
  );
  const draw = (width: number): uPlot[] => {
    if (report.series.time_s.length === 0) {
      figure.append(h('p', { class: 'muted' }, 'Nothing was scored.'));
      return [];
    }
    return [news2Chart(report, range, figure, width)];
  };
  return { element, draw };
}

function news2Chart(report: News2Report, range: TimeRange, target: HTMLElement, width: number): uPlot {
  const { time, score, redScore } = stepData(report.series);
  const top = Math.max(10, (report.max_score ?? 0) + 1);
  const axis = timeAxis(range);
  const stepped = uPlot.paths.stepped!({ align: 1 });
  const options: uPlot.Options = {
    width,
    height: CHART_HEIGHT,
    scales: { ...axis.scales, y: { auto: false, range: [0, top] } },
    cursor: axis.cursor,
    series: [
      timeSeries,
      { label: 'NEWS2', stroke: '#1d2a33', width: 2, paths: stepped, points: { show: false } },
      { label: 'Single parameter 3', stroke: RED_SCORE_COLOUR, fill: RED_SCORE_COLOUR, paths: () => null, points: { show: true, size: 7, stroke: RED_SCORE_COLOUR, fill: RED_SCORE_COLOUR } },
    ],
    axes: [axis.xAxis, { label: 'score', size: Y_AXIS_SIZE, splits: () => [0, 3, 5, 7, top].filter((v, i, all) => v <= top && all.indexOf(v) === i) }],
    hooks: {
      drawClear: [
        (u) => shadeBands(u, 'y', [
          { from: 0, to: 4.5, colour: BAND_COLOURS.low },
          { from: 4.5, to: 6.5, colour: BAND_COLOURS.medium },
          { from: 6.5, to: top, colour: BAND_COLOURS.high },
        ]),
      ],
    },
  };
  return new uPlot(options, [time, score, redScore] as uPlot.AlignedData, target);
}

/**
 * The series lists only buckets that hold a scored or unscored moment; a bucket missing from it
 * had no data at all. A null is put where a bucket is missing so the step line breaks there
 * instead of holding the previous score, and the last bucket gets an end point so its step shows.
 */
function stepData(series: News2Report['series']): { time: number[]; score: (number | null)[]; redScore: (number | null)[] } {
  const { time_s, score, band } = series;
  let bucket = Infinity;
  for (let i = 1; i < time_s.length; i += 1) bucket = Math.min(bucket, time_s[i] - time_s[i - 1]);
  if (!Number.isFinite(bucket) || bucket <= 0) bucket = 60;
  const out = { time: [] as number[], score: [] as (number | null)[], redScore: [] as (number | null)[] };
  time_s.forEach((t, i) => {
    out.time.push(t);
    out.score.push(score[i]);
    out.redScore.push(band[i] === 'low_medium' ? score[i] : null);
    const next = time_s[i + 1];
    if (next === undefined || next - t > bucket * 1.5) {
      out.time.push(t + bucket);
      out.score.push(score[i]);
      out.redScore.push(null);
      if (next !== undefined && next > t + bucket) {
        out.time.push(t + bucket + Math.min(1, (next - t - bucket) / 2));
        out.score.push(null);
        out.redScore.push(null);
      }
    }
  });
  return out;
}
