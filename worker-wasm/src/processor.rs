//! DataProcessor: puts a task's rows in time order, drops duplicate timestamps and sorts each cell
//! into valid, missing or out of range, handing valid values to an algorithm a slice at a time.
//!
//! Definitions (they decide the counts in [`crate::analysis::SegmentResult`]):
//! - A row is *core* when its index in the packet lies in `core_start..core_end`; only core rows are
//!   counted. Overlap rows still take part in ordering and de-duplication, so a core row that repeats
//!   the timestamp of an overlap row is a duplicate, exactly as in a single pass over the recording.
//! - A row is *out of order* when its time is earlier than the latest time of any row before it in
//!   the packet. Rows are then put in order with a stable sort, so equal times keep packet order.
//!   The server sorts a recording before cutting it into tasks and says how many core rows it
//!   moved (`TaskData::reordered_rows`); those count as out of order too.
//! - After ordering, a row whose time equals the previous kept row's time is a *duplicate*: the first
//!   is kept, later ones are dropped. Times compare exactly (they are copied, never computed).
//! - Of a kept core row, each template signal's cell is *missing* (empty), *out of range* (outside
//!   `[rule.min, rule.max]` or not finite; excluded) or valid.
//! - MAP is *derived* as (SBP + 2·DBP) / 3 for a row whose MAP cell is empty (or whose task has no
//!   MAP column) when both pressures are valid; the derived value then obeys MAP's own rule.
//! - A *gap* is listed when a kept core row follows the previous kept row (core or overlap) by more
//!   than the template's `max_gap_s`.

use thiserror::Error;

use crate::analysis::{Gap, RuleKind, RuleViolation, ViolationExample};
use crate::protocol::TaskData;
use crate::template::{AnalysisParams, Template};

/// Why task data cannot be processed; reported to the server as `Malformed`.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum DataError {
    #[error("signal `{name}` has {values} values for {rows} timestamps")]
    LengthMismatch {
        name: String,
        values: usize,
        rows: usize,
    },
    #[error("core range {start}..{end} does not fit {rows} rows")]
    CoreOutOfBounds {
        start: usize,
        end: usize,
        rows: usize,
    },
    #[error("trend bucket width {0} is not a positive finite number of seconds")]
    BadBucketWidth(f64),
    #[error("timestamp at row {0} is not finite")]
    NonFiniteTime(usize),
    #[error("signal `{0}` appears more than once")]
    DuplicateSignal(String),
}

/// Checks that a task's columns fit together. Cheap (one pass over the time column) so the
/// receiver can run it before acknowledging the task.
pub fn validate(data: &TaskData) -> Result<(), DataError> {
    survey(data).map(|_| ())
}

/// What one pass over a task's time column tells about all of it. The ordering, the column-wise
/// visit and the beat detector's trace each walked the column for a part of this (three passes
/// over 2.4 MB for a 5-minute ECG, more than the cache holds); now they ask.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeSurvey {
    /// Every time is later than the one before it: rows are in order and none repeats.
    pub strictly_increasing: bool,
    /// The longest step between consecutive times (−∞ with fewer than two rows); meaningful
    /// when `strictly_increasing`.
    pub longest_step_s: f64,
}

impl TimeSurvey {
    fn of(time_s: &[f64]) -> Result<Self, DataError> {
        // Four lanes of folds without an early exit, so the loop vectorises; a NaN fails the
        // order, and a non-finite time is then looked for (rare: such a task is refused).
        let (mut finite, mut increasing, mut longest) =
            ([true; 4], [true; 4], [f64::NEG_INFINITY; 4]);
        let mut note = |lane: usize, earlier: f64, later: f64| {
            let step = later - earlier;
            finite[lane] &= later.is_finite();
            increasing[lane] &= later > earlier;
            longest[lane] = if step > longest[lane] {
                step
            } else {
                longest[lane]
            };
        };
        if let Some((first, _)) = time_s.split_first() {
            let (earlier, later) = (&time_s[..time_s.len() - 1], &time_s[1..]);
            let (earlier4, later4) = (earlier.chunks_exact(4), later.chunks_exact(4));
            let rest = earlier4.remainder().iter().zip(later4.remainder());
            for (a, b) in earlier4.zip(later4) {
                for lane in 0..4 {
                    note(lane, a[lane], b[lane]);
                }
            }
            for (lane, (&a, &b)) in rest.enumerate() {
                note(lane, a, b);
            }
            finite[0] &= first.is_finite();
        }
        if !finite.iter().all(|&f| f) {
            let row = time_s.iter().position(|t| !t.is_finite()).unwrap_or(0);
            return Err(DataError::NonFiniteTime(row));
        }
        Ok(Self {
            strictly_increasing: increasing.iter().all(|&i| i),
            longest_step_s: longest
                .into_iter()
                .fold(f64::NEG_INFINITY, |a, b| if b > a { b } else { a }),
        })
    }
}

/// [`validate`], returning the survey of the time column it made.
fn survey(data: &TaskData) -> Result<TimeSurvey, DataError> {
    let rows = data.time_s.len();
    if data.core_start > data.core_end || data.core_end > rows {
        return Err(DataError::CoreOutOfBounds {
            start: data.core_start,
            end: data.core_end,
            rows,
        });
    }
    if !(data.trend_bucket_s.is_finite() && data.trend_bucket_s > 0.0) {
        return Err(DataError::BadBucketWidth(data.trend_bucket_s));
    }
    let times = TimeSurvey::of(&data.time_s)?;
    for (i, column) in data.signals.iter().enumerate() {
        if column.values.len() != rows {
            return Err(DataError::LengthMismatch {
                name: column.name.clone(),
                values: column.values.len(),
                rows,
            });
        }
        if data.signals[..i]
            .iter()
            .any(|earlier| earlier.name == column.name)
        {
            return Err(DataError::DuplicateSignal(column.name.clone()));
        }
    }
    Ok(times)
}

/// How many valid values the column-wise visit hands a sink at once. The summary folds values in
/// blocks of this size (and its results' last bits depend on that size), so a whole block handed
/// over needs no copy there.
pub const VALUE_BLOCK: usize = 512;

/// Receives the valid values of kept core rows, each signal's in time order. Signals are
/// independent of each other: a column-wise visit hands over a stretch of one signal's values
/// before the same stretch of the next signal's, so a sink must not rely on the order between
/// signals.
pub trait ValueSink {
    /// `signal` indexes [`DataProcessor::signals`].
    fn valid_value(&mut self, signal: usize, time_s: f64, value: f64);

    /// Consecutive valid values of one signal, with their ascending times (the column-wise visit
    /// hands them over in blocks). One by one unless a sink has something faster.
    fn valid_values(&mut self, signal: usize, times_s: &[f64], values: &[f64]) {
        for (&time_s, &value) in times_s.iter().zip(values) {
            self.valid_value(signal, time_s, value);
        }
    }
}

/// One template signal that the task carries, with its cell counts so far.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalTally {
    pub name: String,
    pub missing: u64,
    pub out_of_range: u64,
    /// Cells computed from other columns (MAP from SBP and DBP).
    pub derived: u64,
    pub normal_low: Option<f64>,
    pub normal_high: Option<f64>,
    pub resolution: f64,
    /// First few out-of-range cells and empty required cells, in time order.
    pub out_of_range_examples: Vec<ViolationExample>,
    pub missing_required: u64,
    pub missing_examples: Vec<ViolationExample>,
    required: bool,
    column: Option<usize>,
    /// Columns of SBP and DBP with their rules' ranges, when this signal is MAP and can be derived.
    derive_from: Option<[(usize, f64, f64); 2]>,
    min: f64,
    max: f64,
}

impl SignalTally {
    /// The rule violations counted so far, e.g. `hr out of range [20, 300]`.
    pub fn violations(&self) -> Vec<RuleViolation> {
        let mut found = Vec::new();
        if self.out_of_range > 0 {
            found.push(RuleViolation {
                signal: self.name.clone(),
                rule: RuleKind::OutOfRange,
                description: format!("{} out of range [{}, {}]", self.name, self.min, self.max),
                rows: self.out_of_range,
                examples: self.out_of_range_examples.clone(),
            });
        }
        if self.missing_required > 0 {
            found.push(RuleViolation {
                signal: self.name.clone(),
                rule: RuleKind::MissingRequired,
                description: format!("{} required but empty", self.name),
                rows: self.missing_required,
                examples: self.missing_examples.clone(),
            });
        }
        found
    }

    /// True when `value` obeys the signal's plausible range.
    #[inline]
    pub fn accepts(&self, value: f64) -> bool {
        value.is_finite() && value >= self.min && value <= self.max
    }

    /// The cell of `row`: read, or derived when this is MAP and its cell is empty. Inlined: it
    /// runs for every cell of every task.
    #[inline]
    fn cell(&mut self, data: &TaskData, row: usize) -> Option<f64> {
        let read = self.column.and_then(|c| data.signals[c].values[row]);
        if read.is_some() {
            return read;
        }
        let [(sbp_col, sbp_min, sbp_max), (dbp_col, dbp_min, dbp_max)] = self.derive_from?;
        let sbp = data.signals[sbp_col].values[row]
            .filter(|v| v.is_finite() && *v >= sbp_min && *v <= sbp_max)?;
        let dbp = data.signals[dbp_col].values[row]
            .filter(|v| v.is_finite() && *v >= dbp_min && *v <= dbp_max)?;
        self.derived += 1;
        Some((sbp + 2.0 * dbp) / 3.0)
    }
}

impl SignalTally {
    /// Counts `cell` of a kept core row as missing or out of range, or hands it to `sink` as
    /// signal `index`'s valid value.
    #[inline]
    fn sort_cell(&mut self, index: usize, time: f64, cell: Option<f64>, sink: &mut impl ValueSink) {
        match cell {
            None => {
                self.missing += 1;
                if self.required {
                    self.missing_required += 1;
                    push_example(&mut self.missing_examples, time, None);
                }
            }
            Some(value) if self.accepts(value) => sink.valid_value(index, time, value),
            Some(value) => {
                self.out_of_range += 1;
                push_example(&mut self.out_of_range_examples, time, Some(value));
            }
        }
    }
}

fn push_example(examples: &mut Vec<ViolationExample>, time_s: f64, value: Option<f64>) {
    if examples.len() < RuleViolation::EXAMPLES_MAX {
        examples.push(ViolationExample {
            time_s,
            value: value.filter(|v| v.is_finite()),
        });
    }
}

/// Row counts over core rows (see the module docs for the definitions).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RowCounts {
    pub rows: u64,
    pub duplicates_removed: u64,
    pub out_of_order: u64,
    /// Earliest and latest core time; `None` while no core row has been seen.
    pub first_time_s: Option<f64>,
    pub last_time_s: Option<f64>,
}

/// Processes one task's rows; [`DataProcessor::process`] can be called repeatedly with a row budget.
#[derive(Debug, Clone)]
pub struct DataProcessor {
    data: TaskData,
    times: TimeSurvey,
    signals: Vec<SignalTally>,
    /// Visit order once ordering has run; `None` before the first `process` call.
    order: Option<RowOrder>,
    next: usize,
    last_kept_time: Option<f64>,
    counts: RowCounts,
    max_gap_s: Option<f64>,
    gaps: Vec<Gap>,
    params: AnalysisParams,
    /// Room for a derived signal's cells during a column-wise visit, kept between calls.
    cells: Vec<Option<f64>>,
}

#[derive(Debug, Clone)]
enum RowOrder {
    /// The packet was already in non-decreasing time order (the common case: no permutation).
    AsSent,
    Sorted(Vec<usize>),
}

impl DataProcessor {
    /// Validates `data` and selects the template's signals it carries, in template order (MAP
    /// counts as carried when SBP and DBP are). Columns the template does not know are ignored.
    pub fn new(data: TaskData, template: &Template) -> Result<Self, DataError> {
        let times = survey(&data)?;
        let column_of = |name: &str| data.signals.iter().position(|c| c.name == name);
        let pressure = |name: &str| {
            let rule = template.signal(name)?;
            Some((column_of(name)?, rule.min, rule.max))
        };
        let signals = template
            .signals
            .iter()
            .filter_map(|rule| {
                let column = column_of(&rule.name);
                let derive_from = if rule.name == "map" {
                    pressure("sbp").zip(pressure("dbp")).map(|(s, d)| [s, d])
                } else {
                    None
                };
                if column.is_none() && derive_from.is_none() {
                    return None;
                }
                Some(SignalTally {
                    name: rule.name.clone(),
                    missing: 0,
                    out_of_range: 0,
                    derived: 0,
                    normal_low: rule.normal_low,
                    normal_high: rule.normal_high,
                    resolution: rule.resolution,
                    out_of_range_examples: Vec::new(),
                    missing_required: 0,
                    missing_examples: Vec::new(),
                    required: rule.required,
                    column,
                    derive_from,
                    min: rule.min,
                    max: rule.max,
                })
            })
            .collect();
        Ok(Self {
            data,
            times,
            signals,
            order: None,
            next: 0,
            last_kept_time: None,
            counts: RowCounts::default(),
            max_gap_s: template.gap_limit_s(),
            gaps: Vec::new(),
            params: template.params.clone(),
            cells: Vec::new(),
        })
    }

    /// The task's data, as sent.
    pub fn data(&self) -> &TaskData {
        &self.data
    }

    /// What the time column is like as a whole (in order, longest step).
    pub fn time_survey(&self) -> TimeSurvey {
        self.times
    }

    /// Packet row indices in visiting (time) order.
    pub fn rows_in_time_order(&self) -> Vec<usize> {
        match &self.order {
            Some(RowOrder::Sorted(permutation)) => permutation.clone(),
            _ => (0..self.data.time_s.len()).collect(),
        }
    }

    pub fn max_gap_s(&self) -> Option<f64> {
        self.max_gap_s
    }

    pub fn params(&self) -> &AnalysisParams {
        &self.params
    }

    /// Gaps ending in the core found so far, in time order.
    pub fn gaps(&self) -> &[Gap] {
        &self.gaps
    }

    pub fn total_rows(&self) -> usize {
        self.data.time_s.len()
    }

    pub fn rows_done(&self) -> usize {
        self.next
    }

    pub fn is_done(&self) -> bool {
        self.next >= self.total_rows()
    }

    pub fn trend_bucket_s(&self) -> f64 {
        self.data.trend_bucket_s
    }

    pub fn signals(&self) -> &[SignalTally] {
        &self.signals
    }

    pub fn counts(&self) -> RowCounts {
        self.counts
    }

    /// Visits at most `max_rows` rows (core and overlap alike), feeding valid values to `sink`, and
    /// returns how many it visited. The first call also orders the rows: nothing to do when the
    /// survey found them in order, else a pass over the time column and a sort (rare, and not
    /// split across calls).
    pub fn process(&mut self, max_rows: usize, sink: &mut impl ValueSink) -> usize {
        self.order.get_or_insert_with(|| {
            let (order, out_of_order) = if self.times.strictly_increasing {
                (RowOrder::AsSent, 0)
            } else {
                order_rows(&self.data.time_s, self.data.core_start..self.data.core_end)
            };
            self.counts.out_of_order = out_of_order + self.data.reordered_rows;
            order
        });
        let as_sent = matches!(self.order, Some(RowOrder::AsSent));
        let end = self
            .next
            .saturating_add(max_rows)
            .min(self.data.time_s.len());
        let rows = self.next..end;
        if as_sent {
            // Overlap before the core, the core (column-wise where it can be), overlap after it.
            let core_start = self.data.core_start.clamp(rows.start, rows.end);
            let core = core_start..self.data.core_end.clamp(core_start, rows.end);
            self.visit_rows(rows.start..core.start, sink);
            self.visit_core_in_order(core.clone(), sink);
            self.visit_rows(core.end..rows.end, sink);
        } else {
            self.visit_rows(rows, sink);
        }
        let visited = end - self.next;
        self.next = end;
        visited
    }
}

impl DataProcessor {
    /// Visits the rows at `positions` of the visiting order one by one.
    fn visit_rows(&mut self, positions: std::ops::Range<usize>, sink: &mut impl ValueSink) {
        let visit = |row| {
            visit_row(
                &self.data,
                row,
                &mut self.signals,
                &mut self.counts,
                &mut self.last_kept_time,
                (self.max_gap_s, &mut self.gaps),
                sink,
            );
        };
        match &self.order {
            Some(RowOrder::Sorted(permutation)) => {
                permutation[positions].iter().copied().for_each(visit)
            }
            _ => positions.for_each(visit),
        }
    }

    /// Visits core rows `rows` of a packet in time order: the stretches where every row follows
    /// the last kept one (later, and within the template's gap) column by column, each row that
    /// breaks a stretch (a repeated time, a gap) on its own with `visit_row`. A vitals log with a
    /// few hundred repeated times in a day is still nearly all stretches.
    fn visit_core_in_order(&mut self, rows: std::ops::Range<usize>, sink: &mut impl ValueSink) {
        let max_gap = self.max_gap_s.unwrap_or(f64::INFINITY);
        let follows = |previous: f64, time: f64| time > previous && time - previous <= max_gap;
        let times = &self.data.time_s;
        // The survey answers for a packet without any break at once.
        let whole = self.times.strictly_increasing
            && self.times.longest_step_s <= max_gap
            && rows
                .clone()
                .next()
                .zip(self.last_kept_time)
                .is_none_or(|(first, last)| follows(last, times[first]));
        if whole {
            self.visit_columns(rows, sink);
            return;
        }
        let mut start = rows.start;
        while start < rows.end {
            let mut last = self.last_kept_time;
            let mut end = start;
            while end < rows.end && last.is_none_or(|last| follows(last, self.data.time_s[end])) {
                last = Some(self.data.time_s[end]);
                end += 1;
            }
            self.visit_columns(start..end, sink);
            if end < rows.end {
                self.visit_rows(end..end + 1, sink);
                end += 1;
            }
            start = end;
        }
    }

    /// Visits core rows `rows`, all in packet order and each following the last kept row, one
    /// signal at a time: no row is a duplicate and no gap is listed, so only the cells need
    /// looking at. Gives every signal exactly what `visit_row` gives it row by row (each signal's
    /// counts and its sink's state are its own), without the per-row work of looking up each
    /// signal's column and sending each value on its own through every algorithm; valid values
    /// go to the sink a block at a time.
    fn visit_columns(&mut self, rows: std::ops::Range<usize>, sink: &mut impl ValueSink) {
        let data = &self.data;
        let times = &data.time_s[rows.clone()];
        let (Some(&first), Some(&last)) = (times.first(), times.last()) else {
            return;
        };
        for (index, tally) in self.signals.iter_mut().enumerate() {
            match (tally.column, tally.derive_from) {
                (Some(column), None) => {
                    sort_column(
                        tally,
                        index,
                        times,
                        &data.signals[column].values[rows.clone()],
                        sink,
                    );
                }
                _ => {
                    // Derived cells (MAP) count as derived when they are read, so read them first.
                    self.cells.clear();
                    self.cells
                        .extend(rows.clone().map(|row| tally.cell(data, row)));
                    sort_column(tally, index, times, &self.cells, sink);
                }
            }
        }
        self.counts.rows += times.len() as u64;
        self.counts.first_time_s.get_or_insert(first);
        self.counts.last_time_s = Some(last);
        self.last_kept_time = Some(last);
    }
}

/// Sorts one signal's cells of kept core rows (at `times`): counted when missing or out of range,
/// handed to `sink` as signal `index`'s values a block at a time when valid, so the sink still
/// sees every valid value in time order.
#[cfg(not(target_arch = "wasm32"))]
fn sort_column(
    tally: &mut SignalTally,
    index: usize,
    times: &[f64],
    cells: &[Option<f64>],
    sink: &mut impl ValueSink,
) {
    const BLOCK: usize = VALUE_BLOCK;
    let (mut block_times, mut block_values) = ([0.0; BLOCK], [0.0; BLOCK]);
    let mut held = 0;
    for (&time, &cell) in times.iter().zip(cells) {
        match cell {
            Some(value) if tally.accepts(value) => {
                block_times[held] = time;
                block_values[held] = value;
                held += 1;
                if held == BLOCK {
                    sink.valid_values(index, &block_times, &block_values);
                    held = 0;
                }
            }
            other => tally.sort_cell(index, time, other, sink),
        }
    }
    sink.valid_values(index, &block_times[..held], &block_values[..held]);
}

/// [`sort_column`] testing four cells at once in WebAssembly SIMD, and taking four valid ones
/// into the block together: V8 ran the loop cell by cell at about twice the native time. Any
/// other four cells are sorted one at a time as natively, so the sink sees the same values in the
/// same blocks, and the tally counts the same cells.
#[cfg(target_arch = "wasm32")]
fn sort_column(
    tally: &mut SignalTally,
    index: usize,
    times: &[f64],
    cells: &[Option<f64>],
    sink: &mut impl ValueSink,
) {
    use core::arch::wasm32::{
        f64x2, f64x2_abs, f64x2_ge, f64x2_le, f64x2_lt, f64x2_splat, i64x2_extract_lane, v128_and,
    };
    const BLOCK: usize = VALUE_BLOCK;
    let (mut block_times, mut block_values) = ([0.0; BLOCK], [0.0; BLOCK]);
    let mut held = 0;
    let (min, max) = (f64x2_splat(tally.min), f64x2_splat(tally.max));
    let infinity = f64x2_splat(f64::INFINITY);
    // `accepts` of two cells, an empty one as NaN, which every comparison refuses.
    let accepted = |first: Option<f64>, second: Option<f64>| {
        let values = f64x2(first.unwrap_or(f64::NAN), second.unwrap_or(f64::NAN));
        let finite = f64x2_lt(f64x2_abs(values), infinity);
        v128_and(
            finite,
            v128_and(f64x2_ge(values, min), f64x2_le(values, max)),
        )
    };
    let rows = times.len().min(cells.len());
    let mut row = 0;
    while row < rows {
        if row + 4 <= rows && held + 4 <= BLOCK {
            let four = &cells[row..row + 4];
            let masks = v128_and(accepted(four[0], four[1]), accepted(four[2], four[3]));
            // Both lanes' masks as integers: LLVM would re-derive them with 64-bit shifts before
            // a vector test, which V8 emulates on x86.
            if i64x2_extract_lane::<0>(masks) & i64x2_extract_lane::<1>(masks) != 0 {
                block_times[held..held + 4].copy_from_slice(&times[row..row + 4]);
                for (slot, cell) in block_values[held..held + 4].iter_mut().zip(four) {
                    *slot = cell.unwrap_or_default();
                }
                held += 4;
                row += 4;
                if held == BLOCK {
                    sink.valid_values(index, &block_times, &block_values);
                    held = 0;
                }
                continue;
            }
        }
        let (time, cell) = (times[row], cells[row]);
        match cell {
            Some(value) if tally.accepts(value) => {
                block_times[held] = time;
                block_values[held] = value;
                held += 1;
                if held == BLOCK {
                    sink.valid_values(index, &block_times, &block_values);
                    held = 0;
                }
            }
            other => tally.sort_cell(index, time, other, sink),
        }
        row += 1;
    }
    sink.valid_values(index, &block_times[..held], &block_values[..held]);
}

/// Counts out-of-order core rows and returns the visiting order.
fn order_rows(time_s: &[f64], core: std::ops::Range<usize>) -> (RowOrder, u64) {
    let mut latest = f64::NEG_INFINITY;
    let mut out_of_order = 0;
    let mut any = false;
    for (row, &t) in time_s.iter().enumerate() {
        if t < latest {
            any = true;
            if core.contains(&row) {
                out_of_order += 1;
            }
        } else {
            latest = t;
        }
    }
    if !any {
        return (RowOrder::AsSent, 0);
    }
    let mut permutation: Vec<usize> = (0..time_s.len()).collect();
    // `sort_by` is stable: rows with equal times keep packet order, so "keep the first" is well defined.
    permutation.sort_by(|&a, &b| time_s[a].total_cmp(&time_s[b]));
    (RowOrder::Sorted(permutation), out_of_order)
}

#[inline]
fn visit_row(
    data: &TaskData,
    row: usize,
    signals: &mut [SignalTally],
    counts: &mut RowCounts,
    last_kept_time: &mut Option<f64>,
    (max_gap_s, gaps): (Option<f64>, &mut Vec<Gap>),
    sink: &mut impl ValueSink,
) {
    let time = data.time_s[row];
    let is_core = (data.core_start..data.core_end).contains(&row);
    let previous = *last_kept_time;
    let duplicate = previous == Some(time);
    if !duplicate {
        *last_kept_time = Some(time);
    }
    if !is_core {
        return;
    }
    if let (Some(previous), Some(max_gap)) = (previous, max_gap_s) {
        if !duplicate && time - previous > max_gap {
            gaps.push(Gap {
                start_s: previous,
                length_s: time - previous,
            });
        }
    }
    counts.rows += 1;
    counts.first_time_s.get_or_insert(time);
    counts.last_time_s = Some(time);
    if duplicate {
        counts.duplicates_removed += 1;
        return;
    }
    for (index, tally) in signals.iter_mut().enumerate() {
        let cell = tally.cell(data, row);
        tally.sort_cell(index, time, cell, sink);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::SignalColumn;
    use crate::template::builtin_templates;

    #[derive(Default)]
    struct Collect(Vec<(usize, f64, f64)>);

    impl ValueSink for Collect {
        fn valid_value(&mut self, signal: usize, time_s: f64, value: f64) {
            self.0.push((signal, time_s, value));
        }
    }

    fn vitals() -> Template {
        builtin_templates().remove(0)
    }

    fn data(time_s: Vec<f64>, hr: Vec<Option<f64>>) -> TaskData {
        let rows = time_s.len();
        TaskData {
            time_s,
            signals: vec![SignalColumn {
                name: "hr".into(),
                values: hr,
            }],
            core_start: 0,
            core_end: rows,
            trend_bucket_s: 60.0,
            reordered_rows: 0,
        }
    }

    fn run(data: TaskData) -> (DataProcessor, Vec<(usize, f64, f64)>) {
        let mut processor = DataProcessor::new(data, &vitals()).expect("valid data");
        let mut sink = Collect::default();
        processor.process(usize::MAX, &mut sink);
        (processor, sink.0)
    }

    #[test]
    fn any_slicing_of_the_work_gives_the_same_result_bits() {
        // A browser visits a task in slices of varying size; its result must be the bytes a
        // native run in one go gives, so it can be compared by hash.
        let times: Vec<f64> = (0..5_000).map(|i| f64::from(i) * 0.5).collect();
        let hr: Vec<Option<f64>> = (0..5_000)
            .map(|i| {
                (i % 13 != 0).then(|| 60.0 + f64::from(i % 37) * 0.7 + f64::from(i % 11) / 3.0)
            })
            .collect();
        let task = data(times, hr);
        let result_in_slices = |budget: usize| {
            let mut processor = DataProcessor::new(task.clone(), &vitals()).expect("valid data");
            let mut run =
                crate::algorithm::AlgorithmRun::start(crate::template::SIGNAL_SUMMARY, &processor)
                    .expect("known algorithm");
            while !processor.is_done() {
                processor.process(budget, &mut run);
            }
            serde_json::to_string(&run.finish(&processor)).expect("serialises")
        };
        let whole = result_in_slices(usize::MAX);
        for budget in [1, 97, 256, 511, 513, 4_999] {
            assert_eq!(result_in_slices(budget), whole, "slices of {budget} rows");
        }
    }

    #[test]
    fn a_plain_single_signal_run_counts_as_the_row_by_row_visit_does() {
        let times: Vec<f64> = (0..50).map(f64::from).collect();
        let hr: Vec<Option<f64>> = (0..50)
            .map(|i| match i % 7 {
                0 => None,
                3 => Some(0.0),
                _ => Some(60.0 + f64::from(i)),
            })
            .collect();
        let (plain, plain_values) = run(data(times.clone(), hr.clone()));
        // A repeated last row makes the run not plain, so every row takes the general visit.
        let (mut times_dup, mut hr_dup) = (times, hr);
        times_dup.push(49.0);
        hr_dup.push(Some(99.0));
        let (general, general_values) = run(data(times_dup, hr_dup));
        assert_eq!(plain_values, general_values);
        assert_eq!(plain.signals(), general.signals());
        let (p, g) = (plain.counts(), general.counts());
        assert_eq!(
            (p.rows + 1, p.duplicates_removed + 1),
            (g.rows, g.duplicates_removed)
        );
        assert_eq!(
            (p.first_time_s, p.last_time_s),
            (g.first_time_s, g.last_time_s)
        );
        assert!(plain.signals()[0].missing > 0 && plain.signals()[0].out_of_range > 0);
    }

    #[test]
    fn the_column_wise_visit_gives_each_signal_what_the_row_by_row_visit_gives_it() {
        // Seven signals with repeated times, gaps beyond the template's 60 s, empty and
        // out-of-range cells and MAP derived where its cell is empty.
        let rows = 3_000;
        let mut time_s: Vec<f64> = Vec::with_capacity(rows);
        for i in 0..rows {
            let previous = time_s.last().copied().unwrap_or(0.0);
            time_s.push(match i {
                0 => 0.0,
                _ if i % 211 == 0 => previous,
                _ if i % 997 == 0 => previous + 75.0,
                _ => previous + 1.0,
            });
        }
        let column = |name: &str, cell: &dyn Fn(usize) -> Option<f64>| SignalColumn {
            name: name.into(),
            values: (0..rows).map(cell).collect(),
        };
        let wave = |i: usize, base: f64, swing: f64| base + swing * ((i % 53) as f64 / 53.0);
        let signals = vec![
            column("hr", &|i| (i % 89 != 0).then(|| wave(i, 55.0, 80.0))),
            column("sbp", &|i| {
                Some(if i % 101 == 0 {
                    0.0
                } else {
                    wave(i, 85.0, 50.0)
                })
            }),
            column("dbp", &|i| (i % 67 != 0).then(|| wave(i, 45.0, 40.0))),
            column("map", &|i| (i % 3 == 0).then(|| wave(i, 60.0, 30.0))),
            column("rr", &|i| Some(wave(i, 8.0, 20.0))),
            column("spo2", &|i| (i % 31 != 0).then(|| wave(i, 86.0, 14.0))),
            column("temp", &|i| Some(wave(i, 35.0, 4.5))),
        ];
        let in_order = TaskData {
            time_s,
            signals,
            core_start: 0,
            core_end: rows,
            trend_bucket_s: 60.0,
            reordered_rows: 0,
        };
        // Two rows swapped make the packet out of order, so every row is visited on its own; the
        // sort restores the same order, so only the out-of-order count may differ.
        let mut swapped = in_order.clone();
        swapped.time_s.swap(1, 2);
        for column in &mut swapped.signals {
            column.values.swap(1, 2);
        }
        let by_signal = |values: Vec<(usize, f64, f64)>| {
            let mut values = values;
            values.sort_by_key(|&(signal, _, _)| signal);
            values
        };
        let (columns, column_values) = run(in_order);
        let (rows_, row_values) = run(swapped);
        assert!(column_values.len() > 15_000);
        assert_eq!(by_signal(column_values), by_signal(row_values));
        assert_eq!(columns.signals(), rows_.signals());
        assert_eq!(columns.gaps(), rows_.gaps());
        assert!(!columns.gaps().is_empty());
        let (c, r) = (columns.counts(), rows_.counts());
        assert_eq!(
            (c.rows, c.duplicates_removed),
            (r.rows, r.duplicates_removed)
        );
        assert!(c.duplicates_removed > 0);
        assert_eq!(
            (c.first_time_s, c.last_time_s),
            (r.first_time_s, r.last_time_s)
        );
        assert_eq!((c.out_of_order, r.out_of_order), (0, 1));
    }

    #[test]
    fn duplicate_timestamps_are_removed_and_counted() {
        let (processor, values) = run(data(
            vec![0.0, 1.0, 1.0, 2.0],
            vec![Some(60.0), Some(61.0), Some(99.0), Some(62.0)],
        ));
        assert_eq!(processor.counts().duplicates_removed, 1);
        assert_eq!(processor.counts().rows, 4);
        assert_eq!(values, vec![(0, 0.0, 60.0), (0, 1.0, 61.0), (0, 2.0, 62.0)]);
    }

    #[test]
    fn rows_the_server_put_in_order_count_as_out_of_order() {
        let mut sorted_upstream = data(
            vec![0.0, 1.0, 2.0, 3.0],
            vec![Some(60.0), Some(61.0), Some(62.0), Some(63.0)],
        );
        sorted_upstream.reordered_rows = 2;
        let (processor, values) = run(sorted_upstream);
        assert_eq!(processor.counts().out_of_order, 2);
        assert_eq!(values.len(), 4, "nothing else changes");
    }

    #[test]
    fn out_of_order_rows_are_sorted_stably_and_counted() {
        let (processor, values) = run(data(
            vec![0.0, 2.0, 1.0, 1.0, 3.0],
            vec![Some(60.0), Some(62.0), Some(61.0), Some(99.0), Some(63.0)],
        ));
        let counts = processor.counts();
        assert_eq!((counts.out_of_order, counts.duplicates_removed), (2, 1));
        // The first of the two rows at t = 1 (61) is kept.
        let kept: Vec<f64> = values.iter().map(|v| v.2).collect();
        assert_eq!(kept, vec![60.0, 61.0, 62.0, 63.0]);
        assert_eq!(
            (counts.first_time_s, counts.last_time_s),
            (Some(0.0), Some(3.0))
        );
    }

    #[test]
    fn out_of_range_values_are_excluded_and_counted() {
        let (processor, values) = run(data(
            vec![0.0, 1.0, 2.0, 3.0],
            vec![Some(0.0), Some(350.0), Some(80.0), None],
        ));
        let hr = &processor.signals()[0];
        assert_eq!((hr.out_of_range, hr.missing), (2, 1));
        assert_eq!(values, vec![(0, 2.0, 80.0)]);
    }

    #[test]
    fn overlap_rows_are_context_only() {
        let mut task = data(
            vec![0.0, 1.0, 2.0, 3.0],
            vec![Some(60.0), Some(61.0), Some(62.0), None],
        );
        task.core_start = 1;
        task.core_end = 3;
        let (processor, values) = run(task);
        assert_eq!(processor.counts().rows, 2);
        assert_eq!(processor.signals()[0].missing, 0);
        assert_eq!(values, vec![(0, 1.0, 61.0), (0, 2.0, 62.0)]);
    }

    #[test]
    fn core_row_repeating_an_overlap_timestamp_is_a_duplicate() {
        let mut task = data(vec![0.0, 1.0, 1.0, 2.0], vec![Some(60.0); 4]);
        task.core_start = 2;
        let (processor, _) = run(task);
        assert_eq!(processor.counts().duplicates_removed, 1);
    }

    #[test]
    fn processing_in_slices_visits_every_row_once() {
        let mut processor = DataProcessor::new(
            data(vec![0.0, 1.0, 2.0, 3.0, 4.0], vec![Some(70.0); 5]),
            &vitals(),
        )
        .expect("valid data");
        let mut sink = Collect::default();
        let visited: Vec<usize> = (0..4).map(|_| processor.process(2, &mut sink)).collect();
        assert_eq!(visited, vec![2, 2, 1, 0]);
        assert!(processor.is_done());
        assert_eq!(sink.0.len(), 5);
    }

    #[test]
    fn the_time_survey_tells_order_and_longest_step_and_finds_non_finite_times() {
        let survey = |times: &[f64]| TimeSurvey::of(times);
        let plain = survey(&[0.0, 1.0, 2.5, 3.0, 3.5, 4.0, 9.0]).expect("finite");
        assert!(plain.strictly_increasing);
        assert_eq!(plain.longest_step_s, 5.0);
        assert!(
            !survey(&[0.0, 1.0, 1.0, 2.0, 3.0])
                .expect("finite")
                .strictly_increasing
        );
        assert!(
            !survey(&[0.0, 2.0, 1.0])
                .expect("finite")
                .strictly_increasing
        );
        assert!(survey(&[7.0]).expect("finite").strictly_increasing);
        assert_eq!(
            survey(&[0.0, 1.0, 2.0, 3.0, 4.0, f64::NAN]),
            Err(DataError::NonFiniteTime(5))
        );
        assert_eq!(survey(&[f64::INFINITY]), Err(DataError::NonFiniteTime(0)));
    }

    #[test]
    fn inconsistent_lengths_and_ranges_are_rejected() {
        let short = data(vec![0.0, 1.0], vec![Some(1.0)]);
        assert!(matches!(
            validate(&short),
            Err(DataError::LengthMismatch { .. })
        ));
        let mut beyond = data(vec![0.0], vec![Some(70.0)]);
        beyond.core_end = 2;
        assert!(matches!(
            validate(&beyond),
            Err(DataError::CoreOutOfBounds { .. })
        ));
        let mut zero_width = data(vec![0.0], vec![Some(70.0)]);
        zero_width.trend_bucket_s = 0.0;
        assert!(matches!(
            validate(&zero_width),
            Err(DataError::BadBucketWidth(_))
        ));
    }

    #[test]
    fn signals_follow_template_order_and_unknown_columns_are_ignored() {
        let task = TaskData {
            time_s: vec![0.0],
            signals: vec![
                SignalColumn {
                    name: "spo2".into(),
                    values: vec![Some(97.0)],
                },
                SignalColumn {
                    name: "bogus".into(),
                    values: vec![Some(1.0)],
                },
                SignalColumn {
                    name: "hr".into(),
                    values: vec![Some(70.0)],
                },
            ],
            core_start: 0,
            core_end: 1,
            trend_bucket_s: 60.0,
            reordered_rows: 0,
        };
        let processor = DataProcessor::new(task, &vitals()).expect("valid data");
        let names: Vec<&str> = processor
            .signals()
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(names, vec!["hr", "spo2"]);
    }
}
