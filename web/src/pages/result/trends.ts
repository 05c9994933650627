// One trend chart per signal: the bucket min–max range as a shaded band with the mean as a line,
// on the shared time range, with the signal's alerts shaded behind the trace.
import uPlot from 'uplot';
import type { SignalSummary } from '../../api/types';
import { CHART_HEIGHT, shadeSpans, timeAxis, timeSeries, Y_AXIS_SIZE, type Span, type TimeRange } from './charts';

export function trendChart(signal: SignalSummary, target: HTMLElement, width: number, range: TimeRange, spans: Span[]): uPlot {
  const { time_s, min, mean, max } = signal.trend;
  const axis = timeAxis(range);
  const options: uPlot.Options = {
    width,
    height: CHART_HEIGHT,
    scales: axis.scales,
    cursor: axis.cursor,
    series: [
      timeSeries,
      { label: 'Min', stroke: '#7aa6c2', width: 1 },
      { label: 'Mean', stroke: '#0b5d8a', width: 2 },
      { label: 'Max', stroke: '#7aa6c2', width: 1 },
    ],
    bands: [{ series: [3, 1], fill: 'rgba(11, 93, 138, 0.12)' }],
    axes: [axis.xAxis, { label: signal.unit, size: Y_AXIS_SIZE }],
    hooks: { draw: [(u) => shadeSpans(u, spans)] },
  };
  return new uPlot(options, [time_s, min, mean, max], target);
}
