//! `alerts`: sustained threshold breaches (tachycardia, hypoxaemia, …) from the template's alert
//! rules.
//!
//! A *run* is a chain of breaching samples of one rule in which consecutive breaching samples are
//! at most `alert_bridge_s` apart; normal or missing values in between do not break it, so a few
//! seconds of interruption inside an episode keep it whole. A run is an alert when the time from
//! its first to its last breaching sample reaches the rule's `min_duration_s` (a one-second
//! artifact lasts 0 s and raises nothing). Segments keep their first and last run of each rule
//! whatever their length, so the merge can join runs that span a cut before filtering.

use crate::analysis::{Alert, AlertRun, AlertsReport, AlertsSegment, SegmentResult};
use crate::processor::{DataProcessor, ValueSink};
use crate::template::{AlertRule, Template};

/// Accumulates the runs of one segment.
#[derive(Debug, Clone)]
pub struct AlertsRun {
    rules: Vec<AlertRule>,
    bridge_s: f64,
    /// Rule indices per processor signal.
    by_signal: Vec<Vec<usize>>,
    /// Closed runs per rule, then the open one.
    runs: Vec<Vec<AlertRun>>,
}

impl AlertsRun {
    pub fn new(processor: &DataProcessor) -> Self {
        let params = processor.params();
        let by_signal = processor
            .signals()
            .iter()
            .map(|tally| {
                params
                    .alerts
                    .iter()
                    .enumerate()
                    .filter(|(_, rule)| rule.signal == tally.name)
                    .map(|(index, _)| index)
                    .collect()
            })
            .collect();
        Self {
            rules: params.alerts.clone(),
            bridge_s: params.alert_bridge_s,
            by_signal,
            runs: vec![Vec::new(); params.alerts.len()],
        }
    }

    /// Runs grouped by rule; interior runs shorter than their rule's minimum are dropped.
    pub fn finish(self, _processor: &DataProcessor) -> AlertsSegment {
        let mut kept = Vec::new();
        for (index, runs) in self.runs.into_iter().enumerate() {
            let last = runs.len().saturating_sub(1);
            let min = self.rules[index].min_duration_s;
            kept.extend(
                runs.into_iter()
                    .enumerate()
                    .filter(|(i, run)| *i == 0 || *i == last || run.end_s - run.start_s >= min)
                    .map(|(_, run)| run),
            );
        }
        AlertsSegment { runs: kept }
    }
}

impl AlertRun {
    /// A run of one sample: the value at `time_s` breaches rule `rule`.
    fn breach(rule: usize, time_s: f64, value: f64) -> Self {
        Self {
            rule: rule as u32,
            start_s: time_s,
            end_s: time_s,
            worst_value: value,
            worst_time_s: time_s,
        }
    }
}

/// Adds `next` (later in time) to the chain ending with `runs`' last run, or starts a new run.
fn extend(runs: &mut Vec<AlertRun>, next: AlertRun, rule: &AlertRule, bridge_s: f64) {
    match runs.last_mut() {
        Some(open) if next.start_s - open.end_s <= bridge_s => {
            open.end_s = next.end_s;
            if rule.is_worse(next.worst_value, open.worst_value) {
                open.worst_value = next.worst_value;
                open.worst_time_s = next.worst_time_s;
            }
        }
        _ => runs.push(next),
    }
}

impl ValueSink for AlertsRun {
    fn valid_value(&mut self, signal: usize, time_s: f64, value: f64) {
        let Some(rules) = self.by_signal.get(signal) else {
            return;
        };
        for &index in rules {
            let rule = &self.rules[index];
            if rule.is_breached_by(value) {
                let sample = AlertRun::breach(index, time_s, value);
                extend(&mut self.runs[index], sample, rule, self.bridge_s);
            }
        }
    }

    /// Rule by rule over the block: each rule's runs are its own, so this is what value by value
    /// gives, with the rule looked up once.
    fn valid_values(&mut self, signal: usize, times_s: &[f64], values: &[f64]) {
        let Some(rules) = self.by_signal.get(signal) else {
            return;
        };
        for &index in rules {
            let (rule, runs) = (&self.rules[index], &mut self.runs[index]);
            // The same loop in both builds; natively without the closure, which sharing it cost
            // the native loop about a tenth of its time (perf).
            #[cfg(not(target_arch = "wasm32"))]
            for (&time_s, &value) in times_s.iter().zip(values) {
                if rule.is_breached_by(value) {
                    extend(
                        runs,
                        AlertRun::breach(index, time_s, value),
                        rule,
                        self.bridge_s,
                    );
                }
            }
            #[cfg(target_arch = "wasm32")]
            simd128::where_breached(rule, times_s, values, |times_s, values| {
                for (&time_s, &value) in times_s.iter().zip(values) {
                    if rule.is_breached_by(value) {
                        extend(
                            runs,
                            AlertRun::breach(index, time_s, value),
                            rule,
                            self.bridge_s,
                        );
                    }
                }
            });
        }
    }
}

#[cfg(target_arch = "wasm32")]
mod simd128 {
    use core::arch::wasm32::{
        f64x2, f64x2_gt, f64x2_lt, f64x2_splat, v128, v128_any_true, v128_or,
    };

    use crate::template::{AlertRule, Condition};

    /// Hands `breaches` only the stretches of four values (and the last few) where `rule` may be
    /// breached, found in WebAssembly SIMD: nearly every value breaches nothing, and V8 ran the
    /// comparison and branch per value at about 1.6 times the native time. The same values in
    /// the same order reach `breaches`, which still tests each one.
    #[inline(always)]
    pub(super) fn where_breached(
        rule: &AlertRule,
        times_s: &[f64],
        values: &[f64],
        breaches: impl FnMut(&[f64], &[f64]),
    ) {
        let threshold = f64x2_splat(rule.threshold);
        // One loop per condition, so that each compares without a match per value.
        match rule.condition {
            Condition::Above => screen(times_s, values, breaches, |v| f64x2_gt(v, threshold)),
            Condition::Below => screen(times_s, values, breaches, |v| f64x2_lt(v, threshold)),
        }
    }

    #[inline(always)]
    fn screen(
        times_s: &[f64],
        values: &[f64],
        mut breaches: impl FnMut(&[f64], &[f64]),
        breached: impl Fn(v128) -> v128,
    ) {
        let quads = values.chunks_exact(4);
        let rest = quads.remainder();
        for (at, quad) in quads.enumerate() {
            let either = v128_or(
                breached(f64x2(quad[0], quad[1])),
                breached(f64x2(quad[2], quad[3])),
            );
            if v128_any_true(either) {
                let at = at * 4;
                breaches(times_s.get(at..at + 4).unwrap_or(&[]), quad);
            }
        }
        let done = values.len() - rest.len();
        breaches(times_s.get(done..).unwrap_or(&[]), rest);
    }
}

/// The alerts of a job, folded from its segments one at a time (in time order): runs are joined
/// across cuts, and those lasting at least their rule's minimum are reported in start order.
#[derive(Debug)]
pub struct AlertsMerge {
    /// Runs per template alert rule.
    runs: Vec<Vec<AlertRun>>,
}

impl AlertsMerge {
    pub fn new(template: &Template) -> Self {
        Self {
            runs: vec![Vec::new(); template.params.alerts.len()],
        }
    }

    pub fn add(&mut self, template: &Template, segment: &SegmentResult) {
        let params = &template.params;
        for run in segment.alerts.iter().flat_map(|section| &section.runs) {
            let index = run.rule as usize;
            if let (Some(runs), Some(rule)) = (self.runs.get_mut(index), params.alerts.get(index)) {
                extend(runs, *run, rule, params.alert_bridge_s);
            }
        }
    }

    pub fn finish(self, template: &Template) -> AlertsReport {
        let mut alerts = Vec::new();
        for (rule, runs) in template.params.alerts.iter().zip(self.runs) {
            alerts.extend(
                runs.into_iter()
                    .filter(|run| run.end_s - run.start_s >= rule.min_duration_s)
                    .map(|run| Alert {
                        kind: rule.kind.clone(),
                        signal: rule.signal.clone(),
                        condition: rule.condition,
                        threshold: rule.threshold,
                        start_s: run.start_s,
                        end_s: run.end_s,
                        duration_s: run.end_s - run.start_s,
                        worst_value: run.worst_value,
                        worst_time_s: run.worst_time_s,
                    }),
            );
        }
        // Stable: equal starts stay in rule order.
        alerts.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
        AlertsReport { alerts }
    }
}
