//! Finding where a JSON string's plain run ends: the first byte that is a quote, a
//! backslash or a control byte (below 0x20). The writer's escaper copies the bytes before
//! it at once (`json_writer`), and the reader's fast path takes a string up to it
//! (`fast_json`); both scan every byte of a string, which is most of a large string's
//! cost, so this file does it sixteen bytes a compare.
//!
//! On x86_64 with SSE2 (part of the architecture, so always there): thirty-two bytes a
//! step, as two 16-byte compares and one branch, and a last 16-byte load that overlaps
//! the bytes already scanned rather than reading past the slice. Slices shorter than
//! sixteen bytes, and other architectures, take the portable path: eight bytes a word
//! (SWAR, the zero-byte test of serde_json's own decoder), then one at a time. The only
//! `unsafe` is the SSE2 loads and intrinsics; `scan/tests.rs` checks both paths against
//! the byte-at-a-time definition, [`is_stop`], at every offset and byte value.

/// Whether `byte` ends a plain run: JSON escapes it (`"`, `\`) or refuses it raw
/// (a control byte).
#[inline(always)]
pub(crate) fn is_stop(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// The index of the first byte of `bytes` that [`is_stop`], or `bytes.len()` if none.
#[inline]
pub(crate) fn first_stop(bytes: &[u8]) -> usize {
    #[cfg(target_arch = "x86_64")]
    return sse2::first_stop(bytes);
    #[cfg(not(target_arch = "x86_64"))]
    return swar::first_stop(bytes);
}

/// The portable scan: eight bytes a word.
pub(crate) mod swar {
    const ONES: u64 = u64::MAX / 255;
    const HIGH_BITS: u64 = ONES << 7;

    /// The high bit of each byte of `word` (little-endian) that is a stop is set, and the
    /// lowest set bit is the first stop (bits above it may be false positives from the
    /// subtractions' borrows, which carry up, never down: only the lowest is used).
    /// Mycroft's zero-byte test, with its `& !x` shared: `"` and `\` are below 0x80, so
    /// `x ^ "` and `x ^ \` have the high bits of `x`.
    #[inline(always)]
    fn stops_in(word: u64) -> u64 {
        let control = word.wrapping_sub(ONES * 0x20);
        let quote = (word ^ (ONES * u64::from(b'"'))).wrapping_sub(ONES);
        let backslash = (word ^ (ONES * u64::from(b'\\'))).wrapping_sub(ONES);
        (control | quote | backslash) & !word & HIGH_BITS
    }

    /// [`super::first_stop`] without SIMD: sixteen bytes a step (two words tested, one
    /// branch), then eight, then one.
    #[inline]
    pub(crate) fn first_stop(bytes: &[u8]) -> usize {
        let word = |eight: &[u8]| u64::from_le_bytes(eight.try_into().expect("8 bytes"));
        let mut blocks = bytes.chunks_exact(16);
        let mut at = 0;
        for block in blocks.by_ref() {
            let (low, high) = (stops_in(word(&block[..8])), stops_in(word(&block[8..])));
            if low | high != 0 {
                let (found, base) = if low != 0 { (low, at) } else { (high, at + 8) };
                return base + (found.trailing_zeros() / 8) as usize;
            }
            at += 16;
        }
        let mut tail = blocks.remainder();
        if let Some((eight, after)) = tail.split_first_chunk::<8>() {
            let found = stops_in(u64::from_le_bytes(*eight));
            if found != 0 {
                return at + (found.trailing_zeros() / 8) as usize;
            }
            at += 8;
            tail = after;
        }
        match tail.iter().position(|&byte| super::is_stop(byte)) {
            Some(offset) => at + offset,
            None => at + tail.len(),
        }
    }
}

/// The SSE2 scan (x86_64 only).
#[cfg(target_arch = "x86_64")]
pub(crate) mod sse2 {
    use core::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
        _mm_xor_si128,
    };

    /// Each byte of the result is 0xff where that byte of `block` is a stop, else 0.
    #[inline(always)]
    fn stops_in(block: &[u8; 16]) -> __m128i {
        // SAFETY: SSE2 is part of x86_64, so the intrinsics are available (from Rust 1.86
        // on, only the load needs `unsafe`; with 1.85, this crate's oldest, all do); the
        // load reads the 16 bytes of `block`, a `&[u8; 16]` (no alignment needed: `loadu`).
        unsafe {
            let bytes = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
            // `x ^ 2` maps the control bytes onto themselves, `"` to 0x20 and 0x20 to
            // 0x22, so `x ^ 2 <= 0x20` (unsigned: `max(y, 0x20) == 0x20`) is exactly a
            // control byte or a quote, in three instructions rather than four.
            let edge = _mm_set1_epi8(0x20);
            let flipped = _mm_xor_si128(bytes, _mm_set1_epi8(2));
            let control_or_quote = _mm_cmpeq_epi8(_mm_max_epu8(flipped, edge), edge);
            let backslash = _mm_cmpeq_epi8(bytes, _mm_set1_epi8(b'\\' as i8));
            _mm_or_si128(control_or_quote, backslash)
        }
    }

    /// Bit `i` set where byte `i` of `stops` (from [`stops_in`]) is set.
    #[inline(always)]
    fn mask(stops: __m128i) -> u32 {
        // SAFETY: SSE2 is part of x86_64 (see `stops_in`); no memory is touched.
        unsafe { _mm_movemask_epi8(stops) as u32 }
    }

    /// Both blocks' stops in one vector, to test 32 bytes with one `movemask`.
    #[inline(always)]
    fn either(low: __m128i, high: __m128i) -> __m128i {
        // SAFETY: SSE2 is part of x86_64 (see `stops_in`); no memory is touched.
        unsafe { _mm_or_si128(low, high) }
    }

    /// The first 16 bytes of `block`.
    #[inline(always)]
    fn half(block: &[u8]) -> &[u8; 16] {
        block.first_chunk().expect("16 bytes")
    }

    /// [`super::first_stop`] with SSE2: thirty-two bytes a step (two compares, one
    /// branch); the last bytes in one 16-byte load that ends at the slice's end and
    /// overlaps bytes already scanned. Under sixteen bytes: [`super::swar`].
    #[inline]
    pub(crate) fn first_stop(bytes: &[u8]) -> usize {
        let Some(last) = bytes.last_chunk::<16>() else {
            return super::swar::first_stop(bytes);
        };
        let mut blocks = bytes.chunks_exact(32);
        let mut at = 0;
        for block in blocks.by_ref() {
            let (low, high) = (stops_in(half(block)), stops_in(half(&block[16..])));
            if mask(either(low, high)) != 0 {
                let found = mask(low) | mask(high) << 16;
                return at + found.trailing_zeros() as usize;
            }
            at += 32;
        }
        let tail = blocks.remainder();
        if let Some(sixteen) = tail.first_chunk::<16>() {
            let found = mask(stops_in(sixteen));
            if found != 0 {
                return at + found.trailing_zeros() as usize;
            }
            at += 16;
        }
        if at == bytes.len() {
            return at;
        }
        // `last` starts `skip` (1 to 15) bytes before `at`: those were scanned already.
        let skip = at - (bytes.len() - 16);
        let found = mask(stops_in(last)) >> skip;
        if found != 0 { at + found.trailing_zeros() as usize } else { bytes.len() }
    }
}

#[cfg(test)]
mod tests;
