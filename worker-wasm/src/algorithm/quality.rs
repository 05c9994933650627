//! Data quality: per-rule violation counts with the first few examples, duplicates, disorder and
//! gaps, per segment and merged. A gap across a cut without overlap rows is found here, from the
//! last row of one segment and the first row of the next.

use crate::analysis::{Analysis, Gap, QualityReport, QualitySegment, RuleViolation, SegmentResult};
use crate::processor::DataProcessor;
use crate::template::Template;

/// The quality section of one segment.
pub fn segment(processor: &DataProcessor) -> QualitySegment {
    QualitySegment {
        violations: processor
            .signals()
            .iter()
            .flat_map(|tally| tally.violations())
            .collect(),
        gaps: processor.gaps().to_vec(),
    }
}

/// The quality report of a job, folded from its segments one at a time (in time order).
#[derive(Debug, Default)]
pub struct QualityMerge {
    violations: Vec<RuleViolation>,
    gaps: Vec<Gap>,
    /// The last timestamp of the latest segment with rows: a gap may open across the next cut.
    previous_last: Option<f64>,
}

impl QualityMerge {
    pub fn add(&mut self, template: &Template, segment: &SegmentResult) {
        let Some(quality) = &segment.quality else {
            return;
        };
        for found in &quality.violations {
            match self
                .violations
                .iter_mut()
                .find(|v| v.signal == found.signal && v.rule == found.rule)
            {
                Some(merged) => {
                    merged.rows += found.rows;
                    let room = RuleViolation::EXAMPLES_MAX.saturating_sub(merged.examples.len());
                    merged
                        .examples
                        .extend(found.examples.iter().take(room).copied());
                }
                None => self.violations.push(found.clone()),
            }
        }
        if segment.rows == 0 {
            return;
        }
        if let (Some(last), Some(max_gap)) = (self.previous_last, template.gap_limit_s()) {
            let length = segment.first_time_s - last;
            let reported = quality.gaps.iter().any(|gap| gap.start_s == last);
            if length > max_gap && !reported {
                self.gaps.push(Gap {
                    start_s: last,
                    length_s: length,
                });
            }
        }
        self.gaps.extend_from_slice(&quality.gaps);
        self.previous_last = Some(segment.last_time_s);
    }

    /// The report; its row counts and derived MAP values are those of `analysis`, the job's
    /// merged base.
    pub fn finish(self, template: &Template, analysis: &Analysis) -> QualityReport {
        let Self {
            mut violations,
            mut gaps,
            ..
        } = self;
        // Template order, then rule order, whatever order segments first met them in.
        let rank = |v: &RuleViolation| {
            let signal = template
                .signals
                .iter()
                .position(|rule| rule.name == v.signal)
                .unwrap_or(usize::MAX);
            (signal, v.rule as u8)
        };
        violations.sort_by_key(rank);
        gaps.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
        let gap_total_s = gaps.iter().map(|gap| gap.length_s).sum();
        let gap_count = gaps.len() as u64;
        gaps.truncate(QualityReport::GAP_LIST_MAX);
        QualityReport {
            rows: analysis.rows,
            duplicates_removed: analysis.duplicates_removed,
            out_of_order: analysis.out_of_order,
            derived_map: analysis
                .signals
                .iter()
                .find(|signal| signal.name == "map")
                .map_or(0, |map| map.derived),
            violations,
            max_gap_s: template.gap_limit_s(),
            gaps,
            gap_count,
            gap_total_s,
        }
    }
}
