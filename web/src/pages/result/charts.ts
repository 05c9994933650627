// What every chart on the result page shares: the time axis (seconds from the start of the
// recording, drawn as h:mm:ss, the same range on every chart so they line up under the alerts
// timeline), a synced cursor, and painting of x-ranges and marks on the plot with uPlot hooks.
import uPlot from 'uplot';
import { formatClock } from '../../format';

export const CHART_HEIGHT = 220;
/** Width of the y axis gutter: the alerts timeline uses the same left offset so its lanes line up. */
export const Y_AXIS_SIZE = 60;
const CURSOR_SYNC_KEY = 'vitalgrid-result-time';
/** Tick spacings in seconds that read well on a clock: 1 s … 12 h. */
const TIME_INCREMENTS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200];

/** A time range shown on every trend-like chart: [0, end of recording or of the last event]. */
export interface TimeRange {
  min: number;
  max: number;
}

export function timeAxis(range: TimeRange): Pick<uPlot.Options, 'scales' | 'cursor'> & { xAxis: uPlot.Axis } {
  return {
    scales: { x: { time: false, auto: false, range: [range.min, range.max] } },
    cursor: { sync: { key: CURSOR_SYNC_KEY } },
    xAxis: { incrs: TIME_INCREMENTS, values: (_u, ticks) => ticks.map(formatClock) },
  };
}

export const timeSeries: uPlot.Series = { label: 'Time', value: (_u, v) => (v == null ? '—' : formatClock(v)) };

/** A span of the x axis to shade, in data units (seconds). */
export interface Span {
  start: number;
  end: number;
  colour: string;
}

/**
 * Shades each span over the plot's full height. Spans narrower than 2 device pixels are widened
 * to 2 so a short alert on a long recording stays visible.
 */
export function shadeSpans(u: uPlot, spans: Span[]): void {
  if (spans.length === 0) return;
  const { ctx, bbox } = u;
  const minWidth = 2 * uPlot.pxRatio;
  ctx.save();
  ctx.beginPath();
  ctx.rect(bbox.left, bbox.top, bbox.width, bbox.height);
  ctx.clip();
  for (const span of spans) {
    const left = u.valToPos(span.start, 'x', true);
    const right = u.valToPos(span.end, 'x', true);
    if (!Number.isFinite(left) || !Number.isFinite(right)) continue;
    const width = Math.max(right - left, minWidth);
    ctx.fillStyle = span.colour;
    ctx.fillRect(left - (width - (right - left)) / 2, bbox.top, width, bbox.height);
  }
  ctx.restore();
}

/** Shades horizontal bands of the y scale `scale` (e.g. NEWS2 risk bands). */
export function shadeBands(u: uPlot, scale: string, bands: { from: number; to: number; colour: string }[]): void {
  const { ctx, bbox } = u;
  ctx.save();
  for (const band of bands) {
    const top = Math.max(u.valToPos(band.to, scale, true), bbox.top);
    const bottom = Math.min(u.valToPos(band.from, scale, true), bbox.top + bbox.height);
    if (!(bottom > top)) continue;
    ctx.fillStyle = band.colour;
    ctx.fillRect(bbox.left, top, bbox.width, bottom - top);
  }
  ctx.restore();
}

/** Width available to a chart placed in `area` (the figure has 0.5rem padding each side). */
export function chartWidth(area: HTMLElement): number {
  return Math.max(320, area.clientWidth - 16);
}
