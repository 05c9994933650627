//! Data quality: per-rule violation counts with the first few examples, duplicates, disorder and
//! gaps, per segment and merged. A gap across a cut without overlap rows is found here, from the
//! last row of one segment and the first row of the next.

use crate::analysis::{Gap, QualityReport, QualitySegment, RuleViolation, SegmentResult};
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

/// Merges the segments' quality sections (segments in time order).
pub fn merge(template: &Template, segments: &[SegmentResult]) -> QualityReport {
    let max_gap_s = template.max_gap_s.filter(|g| g.is_finite() && *g > 0.0);
    let mut violations: Vec<RuleViolation> = Vec::new();
    let mut gaps: Vec<Gap> = Vec::new();
    let mut previous_last: Option<f64> = None;
    for segment in segments {
        let Some(quality) = &segment.quality else {
            continue;
        };
        for found in &quality.violations {
            match violations
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
                None => violations.push(found.clone()),
            }
        }
        if segment.rows == 0 {
            continue;
        }
        if let (Some(last), Some(max_gap)) = (previous_last, max_gap_s) {
            let length = segment.first_time_s - last;
            let reported = quality.gaps.iter().any(|gap| gap.start_s == last);
            if length > max_gap && !reported {
                gaps.push(Gap {
                    start_s: last,
                    length_s: length,
                });
            }
        }
        gaps.extend_from_slice(&quality.gaps);
        previous_last = Some(segment.last_time_s);
    }
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
        rows: segments.iter().map(|seg| seg.rows).sum(),
        duplicates_removed: segments.iter().map(|seg| seg.duplicates_removed).sum(),
        out_of_order: segments.iter().map(|seg| seg.out_of_order).sum(),
        derived_map: segments
            .iter()
            .flat_map(|seg| seg.signals.iter().filter(|s| s.name == "map"))
            .map(|s| s.derived)
            .sum(),
        violations,
        max_gap_s,
        gaps,
        gap_count,
        gap_total_s,
    }
}
