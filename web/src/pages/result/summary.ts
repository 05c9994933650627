// The summary table: one row per signal. Percentile and time-in-range columns appear only when
// the analysis has them (results of `signal-summary` and older jobs do not).
import type { SignalSummary, TimeInRange } from '../../api/types';
import { dataTable, h } from '../../dom';
import { formatCount, formatHoursMinutes, formatNumber, formatPercent } from '../../format';

export function summaryTable(signals: SignalSummary[]): HTMLElement {
  const withPercentiles = signals.some((s) => s.percentiles);
  // Time in range means nothing without a normal range (the ECG waveform has none).
  const withRange = signals.some((s) => s.time_in_range && (s.time_in_range.normal_low !== null || s.time_in_range.normal_high !== null));
  const headers = [
    'Signal', 'Unit', 'n', 'Mean', 'SD', 'Min',
    ...(withPercentiles ? ['P5', 'Median', 'P95'] : []),
    'Max',
    ...(withRange ? ['Normal range', 'In range', 'Below', 'Above'] : []),
    'Excluded (implausible)', 'Missing',
  ];
  const num = (text: string, name?: string) => h('td', { class: 'num', 'data-col': name }, text);
  return h('div', { class: 'table-scroll' }, dataTable(
    headers,
    signals.map((s) => {
      const p = s.percentiles;
      const range = s.time_in_range;
      return h('tr', { 'data-signal': s.name },
        h('th', { scope: 'row' }, s.name, s.derived ? h('span', { class: 'muted', title: `${formatCount(s.derived)} values computed from SBP and DBP` }, ' (derived)') : null),
        h('td', {}, s.unit),
        num(formatCount(s.n), 'n'),
        num(formatNumber(s.mean), 'mean'), num(formatNumber(s.sd), 'sd'), num(formatNumber(s.min), 'min'),
        withPercentiles && [num(formatNumber(p?.p5), 'p5'), num(formatNumber(p?.median), 'median'), num(formatNumber(p?.p95), 'p95')],
        num(formatNumber(s.max), 'max'),
        withRange && rangeCells(range),
        num(formatCount(s.out_of_range), 'excluded'), num(formatCount(s.missing), 'missing'));
    }),
    'No signals.',
  ));
}

function rangeCells(range: TimeInRange | undefined): HTMLTableCellElement[] {
  // Without a normal range (the ECG waveform) every sample is "in range": say nothing instead.
  if (!range || (range.normal_low === null && range.normal_high === null)) {
    return ['normal', 'in-range', 'below', 'above'].map((name) => h('td', { 'data-col': name }, '—'));
  }
  const total = range.below_s + range.in_s + range.above_s;
  const share = (seconds: number, name: string) =>
    h('td', { class: 'num nowrap', 'data-col': name, title: `${formatHoursMinutes(seconds)} (h:mm) of ${formatHoursMinutes(total)} timed` },
      `${formatPercent(seconds, total)} · ${formatHoursMinutes(seconds)}`);
  return [
    h('td', { 'data-col': 'normal' }, normalRange(range.normal_low, range.normal_high)),
    share(range.in_s, 'in-range'),
    share(range.below_s, 'below'),
    share(range.above_s, 'above'),
  ];
}

/** "51–90", "≥ 96", "≤ 38" or "—". */
export function normalRange(low: number | null | undefined, high: number | null | undefined): string {
  const hasLow = low !== null && low !== undefined;
  const hasHigh = high !== null && high !== undefined;
  if (hasLow && hasHigh) return `${formatNumber(low)}–${formatNumber(high)}`;
  if (hasLow) return `≥ ${formatNumber(low)}`;
  if (hasHigh) return `≤ ${formatNumber(high)}`;
  return '—';
}
