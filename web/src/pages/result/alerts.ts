// Alerts: a timeline strip (one lane per kind, on the same time range as the trend charts and
// lined up with their plot area), a table, and the spans each trend chart shades.
import type { Alert, SignalSummary } from '../../api/types';
import { dataTable, h } from '../../dom';
import { formatDuration, formatNumber, formatOffset } from '../../format';
import type { Span, TimeRange } from './charts';
import { Y_AXIS_SIZE } from './charts';

const KIND_COLOURS: Record<string, string> = {
  tachycardia: '#c0392b',
  bradycardia: '#8e44ad',
  hypoxaemia: '#1f6fb2',
  hypotension: '#d35400',
  tachypnoea: '#16a085',
  fever: '#b7950b',
  hypothermia: '#2c3e50',
};
const FALLBACK_COLOURS = ['#7f8c8d', '#6d4c41', '#00838f', '#ad1457'];

export function alertColour(kind: string): string {
  if (KIND_COLOURS[kind]) return KIND_COLOURS[kind];
  let hash = 0;
  for (const char of kind) hash = (hash * 31 + char.charCodeAt(0)) >>> 0;
  return FALLBACK_COLOURS[hash % FALLBACK_COLOURS.length];
}

/** `#rrggbb` with an alpha, for shading that leaves the trace readable. */
function translucent(hex: string, alpha: number): string {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${n >> 16}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

export function alertSpans(alerts: Alert[], signal: string): Span[] {
  return alerts
    .filter((a) => a.signal === signal)
    .map((a) => ({ start: a.start_s, end: a.end_s, colour: translucent(alertColour(a.kind), 0.18) }));
}

function describe(alert: Alert, unit: string): string {
  const rule = `${alert.signal} ${alert.condition === 'above' ? '>' : '<'} ${formatNumber(alert.threshold)} ${unit}`.trim();
  return `${alert.kind} (${rule}): from ${formatOffset(alert.start_s)} for ${formatDuration(alert.duration_s)}, worst ${formatNumber(alert.worst_value)} ${unit} at ${formatOffset(alert.worst_time_s)}`;
}

/** Kinds in a stable order: by the signal's place in the summary, then by name. */
function lanesOf(alerts: Alert[], signals: SignalSummary[]): string[] {
  const order = (signal: string) => {
    const at = signals.findIndex((s) => s.name === signal);
    return at < 0 ? signals.length : at;
  };
  const kinds = new Map<string, string>();
  for (const alert of alerts) if (!kinds.has(alert.kind)) kinds.set(alert.kind, alert.signal);
  return [...kinds.entries()].sort(([ka, sa], [kb, sb]) => order(sa) - order(sb) || ka.localeCompare(kb)).map(([kind]) => kind);
}

/**
 * The timeline strip. Bars are positioned in % of the shared time range inside a track whose left
 * edge and width are set to the first trend chart's plot area by `alignTimeline`.
 */
export function alertsTimeline(alerts: Alert[], signals: SignalSummary[], range: TimeRange): HTMLElement {
  const unitOf = (signal: string) => signals.find((s) => s.name === signal)?.unit ?? '';
  const span = range.max - range.min || 1;
  const percent = (t: number) => ((Math.min(Math.max(t, range.min), range.max) - range.min) / span) * 100;
  const lanes = lanesOf(alerts, signals);
  const strip = h('figure', { class: 'chart timeline', 'data-testid': 'alerts-timeline', style: `--plot-left: ${Y_AXIS_SIZE}px` },
    h('figcaption', {}, 'Alerts over time'));
  if (lanes.length === 0) {
    strip.append(h('p', { class: 'muted' }, 'No alert rule was breached for its minimum duration.'));
    return strip;
  }
  for (const kind of lanes) {
    const track = h('div', { class: 'timeline-track' });
    for (const alert of alerts.filter((a) => a.kind === kind)) {
      const text = describe(alert, unitOf(alert.signal));
      track.append(h('span', {
        class: 'timeline-bar', tabindex: 0, title: text, 'aria-label': text, 'data-kind': kind,
        style: `left: ${percent(alert.start_s)}%; width: ${percent(alert.end_s) - percent(alert.start_s)}%; background: ${alertColour(kind)}`,
      }));
    }
    strip.append(h('div', { class: 'timeline-lane', 'data-kind': kind },
      h('span', { class: 'timeline-label', title: kind, style: `color: ${alertColour(kind)}` }, kind), track));
  }
  strip.append(h('div', { class: 'timeline-axis' },
    h('span', {}, formatOffset(range.min)), h('span', {}, formatOffset(range.max))));
  return strip;
}

/** Puts the strip's tracks exactly over a chart's plot area (uPlot's `over` element). */
export function alignTimeline(strip: HTMLElement, plotArea: HTMLElement): void {
  strip.style.setProperty('--plot-left', `${plotArea.offsetLeft}px`);
  strip.style.setProperty('--plot-width', `${plotArea.offsetWidth}px`);
}

export function alertsTable(alerts: Alert[], signals: SignalSummary[]): HTMLElement {
  const unitOf = (signal: string) => signals.find((s) => s.name === signal)?.unit ?? '';
  return h('div', { 'data-testid': 'alerts-table' }, dataTable(
    ['Kind', 'Signal', 'Rule', 'Start', 'End', 'Duration', 'Worst'],
    alerts.map((a) => {
      const unit = unitOf(a.signal);
      return h('tr', { 'data-kind': a.kind },
        h('th', { scope: 'row' }, h('span', { class: 'swatch', style: `background: ${alertColour(a.kind)}` }), a.kind),
        h('td', {}, a.signal),
        h('td', {}, `${a.condition === 'above' ? '>' : '<'} ${formatNumber(a.threshold)} ${unit}`),
        h('td', { class: 'mono' }, formatOffset(a.start_s)),
        h('td', { class: 'mono' }, formatOffset(a.end_s)),
        h('td', { class: 'num' }, formatDuration(a.duration_s)),
        h('td', { class: 'num' }, `${formatNumber(a.worst_value)} ${unit} at ${formatOffset(a.worst_time_s)}`));
    }),
    'No alert rule was breached for its minimum duration.',
  ));
}
