//! How a task's columns of numbers travel: compact and lossless.
//!
//! A 5-minute ECG at 1 kHz is 300 000 samples. As JSON numbers (with a time column beside them)
//! that is ~5 MB of text that the browser must hash and parse before any analysis starts, which
//! cost more than the analysis itself. Recorded values are decimals with a fixed number of
//! digits (`-0.00737` mV, `36.8` °C), so a column is sent as integers and a decimal scale:
//!
//! | encoding  | value of row `i`                         | `data` (base64)                        |
//! |-----------|------------------------------------------|----------------------------------------|
//! | `plain`   | a JSON array of numbers, `null` if empty | —                                      |
//! | `linear`  | `(first + i·step) / 10^scale`            | — (a regularly sampled time column)    |
//! | `delta16` | `(first + Σ d[1..=i]) / 10^scale`        | `d` as little-endian i16, `d[0]` = 0   |
//! | `int16`   | `n[i] / 10^scale`                        | little-endian i16; `i16::MIN` = empty  |
//! | `int32`   | `n[i] / 10^scale`                        | little-endian i32; `i32::MIN` = empty  |
//! | `float64` | the IEEE 754 double itself               | little-endian f64; NaN = empty         |
//!
//! The integer forms are exact, not rounded: the encoder only uses a scale at which every value
//! survives `n / 10^scale` bit for bit (an IEEE division of two exactly representable numbers is
//! correctly rounded, so it yields the same double a decimal parser yields for the same digits),
//! and otherwise falls back to `float64`. The worker therefore computes on exactly the numbers
//! the server read from the upload. Plain arrays are accepted too, so a task can be written by
//! hand (tests do); the server always sends the most compact exact form.
//!
//! Present values are finite: the extractor turns non-finite cells into empty ones. A negative
//! zero arrives as zero (`-0.000` in a file is a zero reading).

use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

mod base64_decode;

/// Powers of ten that f64 represents exactly (up to 10^22); the scales the encoder tries stop
/// well below, where integers still fit the narrow forms.
const POW10: [f64; 10] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];

/// The longest `linear` column accepted: it costs no bytes to announce, so its length is bounded
/// before anything is allocated (2^24 rows is 4.6 hours at 1 kHz; tasks are far shorter).
const MAX_LINEAR_LEN: usize = 1 << 24;

/// A column in transit (see the module docs for each form).
#[derive(Debug, Clone, PartialEq)]
pub enum PackedColumn {
    Plain(Vec<Option<f64>>),
    Linear {
        len: usize,
        first: i64,
        step: i64,
        scale: u8,
    },
    Delta16 {
        len: usize,
        first: i64,
        scale: u8,
        deltas: Vec<i16>,
    },
    Int16 {
        scale: u8,
        values: Vec<i16>,
    },
    Int32 {
        scale: u8,
        values: Vec<i32>,
    },
    Float64(Vec<f64>),
}

/// Why a packed column cannot be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WireError {
    #[error("unknown column encoding `{0}`")]
    UnknownEncoding(String),
    #[error("column encoding `{encoding}` needs the field `{field}`")]
    MissingField {
        encoding: &'static str,
        field: &'static str,
    },
    #[error("column data is not base64: {0}")]
    Base64(String),
    #[error("column data holds {bytes} bytes, not a whole number of {width}-byte values")]
    Ragged { bytes: usize, width: usize },
    #[error("column announces {len} values but its data holds {found}")]
    LengthMismatch { len: usize, found: usize },
    #[error("decimal scale {0} is out of range (0..=9)")]
    BadScale(u8),
    #[error("column value overflows")]
    Overflow,
    #[error("a linear column of {0} rows is longer than any task")]
    TooLong(usize),
    #[error("row {0} of a column that must be complete (time) is empty")]
    EmptyCell(usize),
}

impl PackedColumn {
    /// The most compact exact form of `values`.
    pub fn encode(values: &[Option<f64>]) -> Self {
        let Some(scale) = common_scale(values) else {
            return Self::Float64(values.iter().map(|v| v.unwrap_or(f64::NAN)).collect());
        };
        let divisor = POW10[usize::from(scale)];
        let ints: Vec<Option<i64>> = values
            .iter()
            .map(|v| v.map(|v| (v * divisor).round() as i64))
            .collect();
        if let Some(column) = linear(&ints, scale) {
            return column;
        }
        if let Some(column) = delta16(&ints, scale) {
            return column;
        }
        let fits = |lo: i64, hi: i64| ints.iter().flatten().all(|n| (lo..=hi).contains(n));
        if fits(i64::from(i16::MIN) + 1, i64::from(i16::MAX)) {
            let values = ints
                .iter()
                .map(|n| n.map_or(i16::MIN, |n| n as i16))
                .collect();
            return Self::Int16 { scale, values };
        }
        // `common_scale` only accepts integers that fit i32 without its sentinel.
        let values = ints
            .iter()
            .map(|n| n.map_or(i32::MIN, |n| n as i32))
            .collect();
        Self::Int32 { scale, values }
    }

    /// [`PackedColumn::encode`] for a column without empty cells.
    pub fn encode_complete(values: &[f64]) -> Self {
        let cells: Vec<Option<f64>> = values.iter().copied().map(Some).collect();
        Self::encode(&cells)
    }
}

/// The least decimal scale at which every present value is an integer that fits i32 (without
/// its sentinel) and converts back to the very same double; `None` when there is none ≤ 9.
fn common_scale(values: &[Option<f64>]) -> Option<u8> {
    let exact_at = |v: f64, scale: u8| {
        let divisor = POW10[usize::from(scale)];
        let n = (v * divisor).round();
        n.abs() < f64::from(i32::MAX) && n / divisor == v
    };
    let mut scale = 0u8;
    for v in values.iter().flatten() {
        while !exact_at(*v, scale) {
            scale += 1;
            if usize::from(scale) >= POW10.len() {
                return None;
            }
        }
    }
    // A value that passed at a smaller scale nearly always passes at a larger one; check, since
    // exactness is the promise.
    values
        .iter()
        .flatten()
        .all(|v| exact_at(*v, scale))
        .then_some(scale)
}

fn linear(ints: &[Option<i64>], scale: u8) -> Option<PackedColumn> {
    let first = (*ints.first()?)?;
    let step = match ints.get(1) {
        Some(second) => (*second)?.checked_sub(first)?,
        None => 0,
    };
    let mut expected = first;
    for n in ints {
        if *n != Some(expected) {
            return None;
        }
        expected = expected.checked_add(step)?;
    }
    Some(PackedColumn::Linear {
        len: ints.len(),
        first,
        step,
        scale,
    })
}

fn delta16(ints: &[Option<i64>], scale: u8) -> Option<PackedColumn> {
    let first = (*ints.first()?)?;
    let mut previous = first;
    let mut deltas = Vec::with_capacity(ints.len());
    for n in ints {
        let n = (*n)?;
        deltas.push(i16::try_from(n - previous).ok()?);
        previous = n;
    }
    Some(PackedColumn::Delta16 {
        len: ints.len(),
        first,
        scale,
        deltas,
    })
}

/// The JSON object of a packed (non-plain) column. Strings are borrowed from the payload where
/// they can be, so a megabyte of base64 is not copied before it is decoded.
#[derive(Serialize, Deserialize)]
struct PackedRepr<'a> {
    #[serde(borrow)]
    encoding: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    len: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scale: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    first: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    step: Option<i64>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    data: Option<Cow<'a, str>>,
}

/// The largest integer magnitude a packed column may reach: every integer up to 2^53 is an exact
/// f64, and sums of 2^24 i16 deltas from it cannot overflow i64.
const MAX_MAGNITUDE: i64 = 1 << 53;

impl PackedRepr<'_> {
    fn need<T>(
        value: Option<T>,
        encoding: &'static str,
        field: &'static str,
    ) -> Result<T, WireError> {
        value.ok_or(WireError::MissingField { encoding, field })
    }

    fn divisor(&self, encoding: &'static str) -> Result<f64, WireError> {
        let scale = Self::need(self.scale, encoding, "scale")?;
        POW10
            .get(usize::from(scale))
            .copied()
            .ok_or(WireError::BadScale(scale))
    }

    fn first(&self, encoding: &'static str) -> Result<i64, WireError> {
        let first = Self::need(self.first, encoding, "first")?;
        if first.abs() > MAX_MAGNITUDE {
            return Err(WireError::Overflow);
        }
        Ok(first)
    }

    /// The base64 `data`, checked to hold whole values of `width` bytes.
    fn bytes(&self, encoding: &'static str, width: usize) -> Result<Vec<u8>, WireError> {
        let data = Self::need(self.data.as_deref(), encoding, "data")?;
        let bytes =
            base64_decode::decode(data).map_err(|error| WireError::Base64(error.to_string()))?;
        if bytes.len() % width != 0 {
            return Err(WireError::Ragged {
                bytes: bytes.len(),
                width,
            });
        }
        Ok(bytes)
    }

    /// The column's values, straight from the bytes to the numbers without an intermediate
    /// vector, because this runs on every sample a worker receives.
    fn decode<T: Cell>(&self) -> Result<Vec<T>, WireError> {
        Ok(match self.encoding.as_ref() {
            "linear" => {
                let divisor = self.divisor("linear")?;
                let (first, step) = (
                    self.first("linear")?,
                    Self::need(self.step, "linear", "step")?,
                );
                let len = Self::need(self.len, "linear", "len")?;
                if len > MAX_LINEAR_LEN {
                    return Err(WireError::TooLong(len));
                }
                let last = i64::try_from(len.saturating_sub(1))
                    .ok()
                    .and_then(|rows| step.checked_mul(rows))
                    .and_then(|span| first.checked_add(span))
                    .ok_or(WireError::Overflow)?;
                if last.abs() > MAX_MAGNITUDE {
                    return Err(WireError::Overflow);
                }
                // In i32 when every value fits (weeks of milliseconds): the same numbers, but a
                // loop the compiler can vectorise, conversion and division included.
                match (
                    i32::try_from(first),
                    i32::try_from(step),
                    i32::try_from(last),
                ) {
                    (Ok(first), Ok(step), Ok(_)) => (0..len as i32)
                        .map(|i| T::present(f64::from(first + i * step) / divisor))
                        .collect(),
                    _ => (0..len as i64)
                        .map(|i| T::present((first + i * step) as f64 / divisor))
                        .collect(),
                }
            }
            "delta16" => {
                let divisor = self.divisor("delta16")?;
                let first = self.first("delta16")?;
                let len = Self::need(self.len, "delta16", "len")?;
                let bytes = self.bytes("delta16", 2)?;
                if bytes.len() / 2 != len {
                    return Err(WireError::LengthMismatch {
                        len,
                        found: bytes.len() / 2,
                    });
                }
                let mut n = first;
                bytes
                    .chunks_exact(2)
                    .map(|d| {
                        n += i64::from(i16::from_le_bytes([d[0], d[1]]));
                        T::present(n as f64 / divisor)
                    })
                    .collect()
            }
            "int16" => {
                let divisor = self.divisor("int16")?;
                let bytes = self.bytes("int16", 2)?;
                collect_cells(bytes.chunks_exact(2).map(|b| {
                    let n = i16::from_le_bytes([b[0], b[1]]);
                    (n != i16::MIN).then(|| f64::from(n) / divisor)
                }))?
            }
            "int32" => {
                let divisor = self.divisor("int32")?;
                let bytes = self.bytes("int32", 4)?;
                collect_cells(bytes.chunks_exact(4).map(|b| {
                    let n = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                    (n != i32::MIN).then(|| f64::from(n) / divisor)
                }))?
            }
            "float64" => {
                let bytes = self.bytes("float64", 8)?;
                collect_cells(bytes.chunks_exact(8).map(|b| {
                    let v = f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
                    (!v.is_nan()).then_some(v)
                }))?
            }
            other => return Err(WireError::UnknownEncoding(other.to_owned())),
        })
    }
}

/// What a decoded cell becomes: `Option<f64>` in a signal column, `f64` in the time column, which
/// may not have empty cells.
trait Cell: Sized {
    fn present(value: f64) -> Self;
    /// An empty cell at `row`.
    fn empty(row: usize) -> Result<Self, WireError>;
}

impl Cell for Option<f64> {
    fn present(value: f64) -> Self {
        Some(value)
    }

    fn empty(_row: usize) -> Result<Self, WireError> {
        Ok(None)
    }
}

impl Cell for f64 {
    fn present(value: f64) -> Self {
        value
    }

    fn empty(row: usize) -> Result<Self, WireError> {
        Err(WireError::EmptyCell(row))
    }
}

fn collect_cells<T: Cell>(cells: impl Iterator<Item = Option<f64>>) -> Result<Vec<T>, WireError> {
    let mut out = Vec::with_capacity(cells.size_hint().0);
    for (row, cell) in cells.enumerate() {
        out.push(match cell {
            Some(value) => T::present(value),
            None => T::empty(row)?,
        });
    }
    Ok(out)
}

fn base64_of<const WIDTH: usize, T: Copy>(values: &[T], to_bytes: fn(T) -> [u8; WIDTH]) -> String {
    let bytes: Vec<u8> = values.iter().flat_map(|&v| to_bytes(v)).collect();
    BASE64.encode(bytes)
}

impl Serialize for PackedColumn {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let repr = |encoding: &'static str| PackedRepr {
            encoding: Cow::Borrowed(encoding),
            len: None,
            scale: None,
            first: None,
            step: None,
            data: None,
        };
        let repr = match self {
            Self::Plain(values) => return values.serialize(serializer),
            Self::Linear {
                len,
                first,
                step,
                scale,
            } => PackedRepr {
                len: Some(*len),
                first: Some(*first),
                step: Some(*step),
                scale: Some(*scale),
                ..repr("linear")
            },
            Self::Delta16 {
                len,
                first,
                scale,
                deltas,
            } => PackedRepr {
                len: Some(*len),
                first: Some(*first),
                scale: Some(*scale),
                data: Some(Cow::Owned(base64_of(deltas, i16::to_le_bytes))),
                ..repr("delta16")
            },
            Self::Int16 { scale, values } => PackedRepr {
                scale: Some(*scale),
                data: Some(Cow::Owned(base64_of(values, i16::to_le_bytes))),
                ..repr("int16")
            },
            Self::Int32 { scale, values } => PackedRepr {
                scale: Some(*scale),
                data: Some(Cow::Owned(base64_of(values, i32::to_le_bytes))),
                ..repr("int32")
            },
            Self::Float64(values) => PackedRepr {
                data: Some(Cow::Owned(base64_of(values, f64::to_le_bytes))),
                ..repr("float64")
            },
        };
        repr.serialize(serializer)
    }
}

/// Reads a column in any form (see the module docs).
fn deserialize_column<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Cell + Deserialize<'de>,
{
    struct ColumnVisitor<T>(std::marker::PhantomData<T>);
    impl<'de, T: Cell + Deserialize<'de>> Visitor<'de> for ColumnVisitor<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an array of numbers or a packed column object")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            Vec::<T>::deserialize(de::value::SeqAccessDeserializer::new(seq))
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            PackedRepr::deserialize(de::value::MapAccessDeserializer::new(map))?
                .decode()
                .map_err(de::Error::custom)
        }
    }
    deserializer.deserialize_any(ColumnVisitor(std::marker::PhantomData))
}

/// `#[serde(with = …)]` for a column that may have empty cells.
pub mod cells {
    use super::*;

    pub fn serialize<S: Serializer>(
        values: &[Option<f64>],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        PackedColumn::encode(values).serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<Option<f64>>, D::Error> {
        deserialize_column(deserializer)
    }
}

/// `#[serde(with = …)]` for a column without empty cells (time).
pub mod complete {
    use super::*;

    pub fn serialize<S: Serializer>(values: &[f64], serializer: S) -> Result<S::Ok, S::Error> {
        PackedColumn::encode_complete(values).serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<f64>, D::Error> {
        deserialize_column(deserializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A column as a task carries it.
    #[derive(Debug, Deserialize)]
    struct Cells(#[serde(with = "cells")] Vec<Option<f64>>);

    fn read(json: &str) -> Result<Vec<Option<f64>>, String> {
        serde_json::from_str::<Cells>(json)
            .map(|cells| cells.0)
            .map_err(|e| e.to_string())
    }

    fn round_trip(values: &[Option<f64>]) -> (PackedColumn, Vec<Option<f64>>) {
        let packed = PackedColumn::encode(values);
        let json = serde_json::to_string(&packed).expect("serialises");
        let decoded = read(&json).expect("decodes");
        (packed, decoded)
    }

    fn same_bits(a: &[Option<f64>], b: &[Option<f64>]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x.map(f64::to_bits) == y.map(f64::to_bits))
    }

    #[test]
    fn regular_time_column_is_linear_and_exact() {
        let times: Vec<Option<f64>> = (0..300_000)
            .map(|i| {
                Some(
                    format!("{}.{:03}", i / 1000, i % 1000)
                        .parse()
                        .expect("number"),
                )
            })
            .collect();
        let (packed, back) = round_trip(&times);
        assert!(
            matches!(
                packed,
                PackedColumn::Linear {
                    scale: 3,
                    step: 1,
                    ..
                }
            ),
            "{packed:?}"
        );
        assert!(same_bits(&times, &back));
    }

    #[test]
    fn ecg_millivolts_travel_as_small_deltas_bit_for_bit() {
        let text = [
            "-0.00737", "-0.00620", "-0.00521", "-0.00503", "0.21234", "-0.01000",
        ];
        let values: Vec<Option<f64>> = text
            .iter()
            .map(|t| Some(t.parse().expect("number")))
            .collect();
        let (packed, back) = round_trip(&values);
        assert!(
            matches!(packed, PackedColumn::Delta16 { scale: 5, .. }),
            "{packed:?}"
        );
        assert!(same_bits(&values, &back));
    }

    #[test]
    fn vitals_with_empty_cells_are_int16_with_a_sentinel() {
        let values = vec![Some(72.0), None, Some(36.8), Some(-3.5), None, Some(250.1)];
        let (packed, back) = round_trip(&values);
        assert!(
            matches!(packed, PackedColumn::Int16 { scale: 1, .. }),
            "{packed:?}"
        );
        assert!(same_bits(&values, &back));
    }

    #[test]
    fn wide_integers_use_int32_and_inexact_decimals_float64() {
        let wide = vec![Some(100_000.0), None, Some(-2_000_000.5)];
        let (packed, back) = round_trip(&wide);
        assert!(
            matches!(packed, PackedColumn::Int32 { scale: 1, .. }),
            "{packed:?}"
        );
        assert!(same_bits(&wide, &back));

        let inexact = vec![Some(std::f64::consts::PI), None, Some(1e300), Some(-0.1)];
        let (packed, back) = round_trip(&inexact);
        assert!(matches!(packed, PackedColumn::Float64(_)), "{packed:?}");
        assert!(same_bits(&inexact, &back));
    }

    #[test]
    fn plain_arrays_are_accepted_as_written_by_hand() {
        assert_eq!(read("[1, null, 2.5]"), Ok(vec![Some(1.0), None, Some(2.5)]));
    }

    #[test]
    fn damaged_columns_are_errors_not_panics() {
        for (json, expected) in [
            (r#"{"encoding":"int16","scale":1,"data":"AAA"}"#, "base64"),
            (
                r#"{"encoding":"int16","scale":1,"data":"AAAA"}"#,
                "whole number",
            ),
            (r#"{"encoding":"int32","data":"AAAAAA=="}"#, "scale"),
            (
                r#"{"encoding":"delta16","len":5,"first":0,"scale":0,"data":"AAA="}"#,
                "announces 5",
            ),
            (
                r#"{"encoding":"linear","len":3,"first":9223372036854775807,"step":1,"scale":0}"#,
                "overflows",
            ),
            (r#"{"encoding":"int16","scale":12,"data":""}"#, "scale 12"),
            (r#"{"encoding":"zip","data":""}"#, "unknown column encoding"),
        ] {
            let error = read(json).expect_err(json);
            assert!(error.contains(expected), "{json}: {error}");
        }
    }

    #[test]
    fn a_time_column_may_not_have_empty_cells() {
        #[derive(Debug, Deserialize)]
        struct Times(
            #[serde(with = "complete")]
            #[allow(dead_code)]
            Vec<f64>,
        );
        let json =
            serde_json::to_string(&PackedColumn::encode(&[Some(0.0), None])).expect("serialises");
        let error = serde_json::from_str::<Times>(&json).expect_err("an empty time cell");
        assert!(error.to_string().contains("row 1"), "{error}");
    }

    #[test]
    fn random_decimals_survive_bit_for_bit() {
        // A small deterministic generator: decimals with 0..=6 digits, some cells empty.
        let mut state = 0x2545_F491_4F6C_DD1D_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..200 {
            let digits = (next() % 7) as usize;
            let values: Vec<Option<f64>> = (0..50)
                .map(|_| {
                    let n = (next() % 2_000_000) as i64 - 1_000_000;
                    (next() % 10 != 0).then(|| {
                        format!("{}", n as f64 / 10f64.powi(digits as i32))
                            .parse()
                            .expect("number")
                    })
                })
                .collect();
            let (_, back) = round_trip(&values);
            assert!(same_bits(&values, &back), "{values:?}");
        }
    }
}
