// The data-quality section: what was analysed, what was left out of the analysis and why, and
// where the recording has no data. A clinician must be able to tell a quiet trace from a missing one.
import type { Analysis, QualityReport, RuleViolation } from '../../api/types';
import { dataTable, h } from '../../dom';
import { formatCount, formatDuration, formatNumber, formatOffset } from '../../format';

/** Gaps listed in the table; the rest are behind a "show all" disclosure. */
const GAPS_SHOWN = 20;

export function qualitySection(analysis: Analysis): HTMLElement {
  const quality = analysis.quality;
  const summary = h('p', { 'data-testid': 'data-quality' },
    `Data quality: ${formatCount(analysis.rows)} rows analysed, ${formatCount(analysis.duplicates_removed)} duplicate timestamps removed, ${formatCount(analysis.out_of_order)} rows out of order.`);
  if (!quality) return h('section', { 'aria-labelledby': 'quality-title' }, h('h2', { id: 'quality-title' }, 'Data quality'), summary);

  const unitOf = (signal: string) => analysis.signals.find((s) => s.name === signal)?.unit ?? '';
  return h(
    'section',
    { 'aria-labelledby': 'quality-title', 'data-testid': 'quality', class: 'quality' },
    h('h2', { id: 'quality-title' }, 'Data quality'),
    summary,
    h('ul', { class: 'quality-facts' }, leftOutFacts(quality, analysis).map((fact) => h('li', {}, fact))),
    quality.violations.length > 0 && [
      h('h3', {}, 'Values excluded by the template’s rules'),
      dataTable(
        ['Signal', 'Rule', 'Rows excluded', 'First examples (time from start · value)'],
        quality.violations.map((v) =>
          h('tr', { 'data-violation': `${v.signal}:${v.rule}` },
            h('th', { scope: 'row' }, v.signal),
            h('td', {}, v.description),
            h('td', { class: 'num' }, formatCount(v.rows)),
            h('td', {}, examplesList(v, unitOf(v.signal))))),
        'No rule was broken.',
      ),
    ],
    gapsPart(quality),
  );
}

/** Plain sentences: every row or value that did not count, and why. */
function leftOutFacts(quality: QualityReport, analysis: Analysis): string[] {
  const facts = [
    `${formatCount(quality.rows)} rows received.`,
    quality.duplicates_removed > 0
      ? `${formatCount(quality.duplicates_removed)} rows left out because their timestamp repeated the previous row’s (the first row was kept).`
      : 'No duplicate timestamps.',
    quality.out_of_order > 0
      ? `${formatCount(quality.out_of_order)} rows arrived out of time order and were put back in order (none was dropped).`
      : 'All rows were in time order.',
  ];
  const excluded = quality.violations.reduce((sum, v) => sum + v.rows, 0);
  facts.push(excluded > 0
    ? `${formatCount(excluded)} values left out of the statistics, charts, alerts and NEWS2 because they broke a rule (see the table).`
    : 'No value broke the template’s plausibility rules.');
  if (quality.derived_map > 0) {
    facts.push(`${formatCount(quality.derived_map)} MAP values were computed from systolic and diastolic pressure ((SBP + 2 × DBP) / 3) because the MAP column was absent or empty.`);
  }
  if (quality.max_gap_s === null) {
    facts.push('The template sets no maximum gap, so stretches without data are not listed.');
  } else if (quality.gap_count > 0) {
    facts.push(`${formatCount(quality.gap_count)} ${quality.gap_count === 1 ? 'stretch' : 'stretches'} longer than ${formatDuration(quality.max_gap_s)} had no data, ${formatDuration(quality.gap_total_s)} in total; nothing is filled in across them and time in range stops counting after ${formatDuration(quality.max_gap_s)}.`);
  } else {
    facts.push(`No stretch without data longer than ${formatDuration(quality.max_gap_s)}.`);
  }
  const missing = analysis.signals.filter((s) => s.missing > 0);
  if (missing.length > 0) {
    facts.push(`Empty cells (not counted as values): ${missing.map((s) => `${s.name} ${formatCount(s.missing)}`).join(', ')}.`);
  }
  return facts;
}

function examplesList(violation: RuleViolation, unit: string): HTMLElement {
  const more = violation.rows - violation.examples.length;
  return h('span', { class: 'examples' },
    violation.examples.flatMap((e, i) => [
      i > 0 ? '; ' : '',
      h('span', { class: 'mono' }, formatOffset(e.time_s, Number.isInteger(e.time_s) ? 0 : 2)),
      ' · ',
      e.value === null ? h('em', {}, 'empty or not a number') : `${formatNumber(e.value)} ${unit}`.trim(),
    ]),
    more > 0 ? h('span', { class: 'muted' }, ` … and ${formatCount(more)} more`) : null);
}

function gapsPart(quality: QualityReport): (HTMLElement | null)[] | null {
  if (quality.max_gap_s === null || quality.gaps.length === 0) return null;
  const row = (gap: { start_s: number; length_s: number }) =>
    h('tr', {}, h('td', { class: 'mono' }, formatOffset(gap.start_s)), h('td', { class: 'mono' }, formatOffset(gap.start_s + gap.length_s)), h('td', { class: 'num' }, formatDuration(gap.length_s)));
  const headers = ['Last row before (from start)', 'Next row (from start)', 'Length'];
  const shown = quality.gaps.slice(0, GAPS_SHOWN);
  const rest = quality.gaps.slice(GAPS_SHOWN);
  const unlisted = quality.gap_count - quality.gaps.length;
  return [
    h('h3', {}, `Gaps longer than ${formatDuration(quality.max_gap_s)}`),
    h('div', { 'data-testid': 'gaps' }, dataTable(headers, shown.map(row), 'No gaps.')),
    rest.length > 0 ? h('details', {}, h('summary', {}, `Show ${formatCount(rest.length)} more gaps`), dataTable(headers, rest.map(row), '')) : null,
    unlisted > 0 ? h('p', { class: 'muted' }, `${formatCount(unlisted)} further gaps are counted in the totals above but not listed.`) : null,
  ];
}
