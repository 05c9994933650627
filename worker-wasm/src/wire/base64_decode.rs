//! Base64 decoding of packed columns' `data` (standard alphabet, canonical padding): the `base64`
//! crate's, with WebAssembly SIMD for the bulk on wasm32, where V8 ran the crate's table lookups at
//! about twice their native time (5 % of a vitals task in Chromium).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// `data` decoded, or the crate's error for it.
#[cfg(not(target_arch = "wasm32"))]
pub(super) fn decode(data: &str) -> Result<Vec<u8>, base64::DecodeError> {
    BASE64.decode(data)
}

/// `data` decoded, or the crate's error for it.
#[cfg(target_arch = "wasm32")]
pub(super) fn decode(data: &str) -> Result<Vec<u8>, base64::DecodeError> {
    decode_in_groups(data.as_bytes(), simd128::decode_group)
}

/// Decodes `data` sixteen characters (twelve bytes) at a time with `decode_group`, which returns
/// `false` for a group holding anything but the alphabet's 64 characters; the crate decodes the
/// last four to nineteen characters, where padding and the input's length are checked. Base64
/// decodes each four characters on their own, so the result is the crate's for the whole input.
/// Anything the groups or the crate refuse is decoded again by the crate as a whole, so an error
/// is the crate's own, positions included.
#[cfg(any(target_arch = "wasm32", test))]
fn decode_in_groups(
    data: &[u8],
    decode_group: impl Fn(&[u8], &mut [u8]) -> bool,
) -> Result<Vec<u8>, base64::DecodeError> {
    let groups = data.len().saturating_sub(4) / 16;
    let (head, tail) = data.split_at(groups * 16);
    let mut bytes = vec![0; groups * 12];
    for (chars, out) in head.chunks_exact(16).zip(bytes.chunks_exact_mut(12)) {
        if !decode_group(chars, out) {
            return BASE64.decode(data);
        }
    }
    match BASE64.decode_vec(tail, &mut bytes) {
        Ok(()) => Ok(bytes),
        Err(_) => BASE64.decode(data),
    }
}

#[cfg(target_arch = "wasm32")]
mod simd128 {
    use core::arch::wasm32::{
        i8x16_add, i8x16_all_true, i8x16_eq, i8x16_shuffle, i8x16_splat, i8x16_sub, i16x8_shl,
        i32x4_shl, u8x16_lt, u8x16_splat, u16x8_shr, u16x8_splat, u32x4_extract_lane, u32x4_shr,
        u32x4_splat, u64x2, u64x2_extract_lane, v128_and, v128_or,
    };

    /// Sixteen characters into twelve bytes, or `false` when one is not in the standard alphabet
    /// (padding included: it belongs to the last four characters, which the crate decodes).
    /// `chars` holds sixteen bytes and `out` twelve: the chunks `decode_in_groups` hands over.
    #[inline]
    pub(super) fn decode_group(chars: &[u8], out: &mut [u8]) -> bool {
        let word = |at: usize| {
            let mut word = [0; 8];
            word.copy_from_slice(&chars[at..at + 8]);
            u64::from_le_bytes(word)
        };
        let chars = u64x2(word(0), word(8));
        // Classes by wrapping differences compared unsigned: `c - b'A' < 26` holds exactly for
        // `A..=Z`, whatever the byte.
        let within = |first: u8, count: u8| {
            u8x16_lt(i8x16_sub(chars, u8x16_splat(first)), u8x16_splat(count))
        };
        let (upper, lower, digit) = (within(b'A', 26), within(b'a', 26), within(b'0', 10));
        let plus = i8x16_eq(chars, u8x16_splat(b'+'));
        let slash = i8x16_eq(chars, u8x16_splat(b'/'));
        // Each class's distance from its characters to their values (A → 0, a → 26, 0 → 52,
        // + → 62, / → 63), added modulo 256. None of them is zero, so a zero lane is a character
        // outside the alphabet: tested on the distances rather than on the classes' masks, which
        // LLVM would re-derive lane by lane with two byte shifts (x86 has none; V8 emulates them).
        let offset = v128_or(
            v128_or(
                v128_and(upper, i8x16_splat(-65)),
                v128_and(lower, i8x16_splat(-71)),
            ),
            v128_or(
                v128_and(digit, i8x16_splat(4)),
                v128_or(
                    v128_and(plus, i8x16_splat(19)),
                    v128_and(slash, i8x16_splat(16)),
                ),
            ),
        );
        if !i8x16_all_true(offset) {
            return false;
        }
        let sextets = i8x16_add(chars, offset);
        // Each 16-bit lane holds two sextets, the first in its low byte: `a | b << 8` becomes
        // `a << 6 | b`; then each 32-bit lane two of those: `p | q << 16` becomes `p << 12 | q`,
        // the four characters' 24 bits.
        let pairs = v128_or(
            i16x8_shl(v128_and(sextets, u16x8_splat(0x00ff)), 6),
            u16x8_shr(sextets, 8),
        );
        let triples = v128_or(
            i32x4_shl(v128_and(pairs, u32x4_splat(0xffff)), 12),
            u32x4_shr(pairs, 16),
        );
        // Each lane's three bytes, most significant first.
        let bytes =
            i8x16_shuffle::<2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, 0, 0, 0, 0>(triples, triples);
        out[..8].copy_from_slice(&u64x2_extract_lane::<0>(bytes).to_le_bytes());
        out[8..12].copy_from_slice(&u32x4_extract_lane::<2>(bytes).to_le_bytes());
        true
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A group decoder that refuses what the SIMD one refuses (padding, anything outside the
    /// alphabet), for testing the split between groups and the crate natively.
    fn crate_group(chars: &[u8], out: &mut [u8]) -> bool {
        !chars.contains(&b'=') && BASE64.decode_slice(chars, out) == Ok(12)
    }

    proptest! {
        #[test]
        fn decoding_in_groups_gives_the_crates_bytes(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let text = BASE64.encode(&bytes);
            prop_assert_eq!(decode_in_groups(text.as_bytes(), crate_group), Ok(bytes));
        }

        #[test]
        fn decoding_in_groups_gives_the_crates_result_for_damaged_text(
            bytes in prop::collection::vec(any::<u8>(), 0..120),
            damage in prop::collection::vec((any::<prop::sample::Index>(), prop_oneof![Just(b'='), Just(b'-'), Just(b' '), Just(0xc3), any::<u8>()]), 0..3),
            cut in 0_usize..3,
        ) {
            let mut text = BASE64.encode(&bytes).into_bytes();
            for (at, byte) in &damage {
                if !text.is_empty() {
                    let at = at.index(text.len());
                    text[at] = *byte;
                }
            }
            text.truncate(text.len().saturating_sub(cut));
            prop_assert_eq!(decode_in_groups(&text, crate_group), BASE64.decode(&text));
        }
    }
}
