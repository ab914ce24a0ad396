//! Finding where a JSON string's plain run ends: the first byte that is a quote, a
//! backslash or a control byte (below 0x20). The writer's escaper copies the bytes before
//! it at once (`json_writer`, with [`copy_plain`]), and the reader's fast path takes a
//! string up to it (`fast_json`, with [`first_stop`]); both look at every byte of a
//! string, which is most of a large string's cost, so this file does it sixteen bytes a
//! compare.
//!
//! On x86_64 with SSE2 (part of the architecture, so always there): thirty-two bytes a
//! step, as two 16-byte compares and one branch, and a last 16-byte load that overlaps
//! the bytes already scanned rather than reading past the slice. [`copy_plain`] stores
//! each block to the output as it scans it, so a long string is read once, not scanned
//! and then read again by `memcpy`. Slices shorter than sixteen bytes, and other
//! architectures, take the portable path: eight bytes a word (SWAR, the zero-byte test of
//! serde_json's own decoder), then one at a time. The only `unsafe` is the SSE2 loads,
//! stores and intrinsics, and `set_len` after the stores; `scan/tests.rs` checks both
//! paths against the byte-at-a-time definition, [`is_stop`], at every offset and byte
//! value, and the bytes `copy_plain` appends.

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

/// Appends the bytes of `bytes` before its first stop to `out` and returns how many
/// (the stop, if any, is at that index).
#[inline]
pub(crate) fn copy_plain(out: &mut Vec<u8>, bytes: &[u8]) -> usize {
    #[cfg(target_arch = "x86_64")]
    return sse2::copy_plain(out, bytes);
    #[cfg(not(target_arch = "x86_64"))]
    return swar::copy_plain(out, bytes);
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

    /// [`super::copy_plain`] without SIMD: the scan, then one copy.
    #[inline]
    pub(crate) fn copy_plain(out: &mut Vec<u8>, bytes: &[u8]) -> usize {
        let run = first_stop(bytes);
        out.extend_from_slice(&bytes[..run]);
        run
    }
}

/// The SSE2 scan (x86_64 only).
#[cfg(target_arch = "x86_64")]
pub(crate) mod sse2 {
    use core::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
        _mm_storeu_si128, _mm_xor_si128,
    };
    use std::mem::MaybeUninit;

    // SAFETY, for every block below: SSE2 is part of every x86_64 target, so these
    // intrinsics are always available; they still need `unsafe` because these functions
    // do not carry `#[target_feature(enable = "sse2")]`.

    /// The 16 bytes of `block` in a register.
    #[inline(always)]
    fn load(block: &[u8; 16]) -> __m128i {
        // SAFETY: SSE2 (above); reads the 16 bytes of `block` (`loadu`: any alignment).
        unsafe { _mm_loadu_si128(block.as_ptr().cast::<__m128i>()) }
    }

    /// Writes `bytes` to `to`.
    #[inline(always)]
    fn store(to: &mut [MaybeUninit<u8>; 16], bytes: __m128i) {
        // SAFETY: SSE2 (above); writes the 16 bytes of `to` (`storeu`: any alignment),
        // which may hold any bytes.
        unsafe { _mm_storeu_si128(to.as_mut_ptr().cast::<__m128i>(), bytes) }
    }

    /// Each byte of the result is 0xff where that byte of `bytes` is a stop, else 0.
    #[inline(always)]
    fn stops_in(bytes: __m128i) -> __m128i {
        // SAFETY: SSE2 (above); no memory is touched.
        unsafe {
            // `x ^ 2` maps the control bytes onto themselves, `"` to 0x20 and 0x20 to
            // 0x22, so `x ^ 2 <= 0x20` (unsigned: `max(y, 0x20) == 0x20`) is exactly a
            // control byte or a quote, in three instructions rather than four (a signed
            // compare would take the bytes from 0x80 for control bytes).
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
        // SAFETY: SSE2 (above); no memory is touched.
        unsafe { _mm_movemask_epi8(stops) as u32 }
    }

    /// Where the first of 32 bytes' stops is, if any: one `movemask` and one branch
    /// when there is none.
    #[inline(always)]
    fn first_of_two(low: __m128i, high: __m128i) -> Option<usize> {
        let (low, high) = (stops_in(low), stops_in(high));
        // SAFETY: SSE2 (above); no memory is touched.
        let either = unsafe { _mm_or_si128(low, high) };
        (mask(either) != 0).then(|| (mask(low) | mask(high) << 16).trailing_zeros() as usize)
    }

    /// Where the first stop among the 16 bytes is, if any.
    #[inline(always)]
    fn first_of(bytes: __m128i) -> Option<usize> {
        let found = mask(stops_in(bytes));
        (found != 0).then(|| found.trailing_zeros() as usize)
    }

    /// The two halves of a 32-byte block.
    #[inline(always)]
    fn halves(block: &[u8]) -> (__m128i, __m128i) {
        let (low, high) = block.split_at(16);
        (load(low.try_into().expect("16 bytes")), load(high.try_into().expect("16 bytes")))
    }

    /// The two halves of a 32-byte block to write.
    #[inline(always)]
    fn halves_mut(block: &mut [MaybeUninit<u8>]) -> (&mut [MaybeUninit<u8>; 16], &mut [MaybeUninit<u8>; 16]) {
        let (low, high) = block.split_at_mut(16);
        (low.try_into().expect("16 bytes"), high.try_into().expect("16 bytes"))
    }

    /// The scan's end, from `at`, where fewer than 32 bytes of `bytes` (at least 16 long)
    /// are left: a 16-byte block if there is one, then one load of the last 16 bytes,
    /// which overlaps bytes already scanned. With `copy` (as long as `bytes`), what is
    /// scanned is also written to the same place there.
    #[inline(always)]
    fn finish(bytes: &[u8], mut at: usize, mut copy: Option<&mut [MaybeUninit<u8>]>) -> usize {
        let mut put = |from: usize, value: __m128i| {
            if let Some(copy) = copy.as_deref_mut() {
                store(copy[from..].first_chunk_mut().expect("as long as `bytes`"), value);
            }
        };
        if let Some(block) = bytes[at..].first_chunk::<16>() {
            let block = load(block);
            put(at, block);
            if let Some(offset) = first_of(block) {
                return at + offset;
            }
            at += 16;
        }
        if at == bytes.len() {
            return at;
        }
        // The last 16 bytes start `at - from` (1 to 15) bytes before `at`: those were
        // scanned (and written) already.
        let from = bytes.len() - 16;
        let last = load(bytes.last_chunk().expect("at least 16 bytes"));
        put(from, last);
        let found = mask(stops_in(last)) >> (at - from);
        if found != 0 { at + found.trailing_zeros() as usize } else { bytes.len() }
    }

    /// [`super::first_stop`] with SSE2: the first sixteen bytes alone (most strings a
    /// reader meets, member names above all, end there), then thirty-two bytes a step
    /// (two compares, one branch), then [`finish`]. Under sixteen bytes: [`super::swar`].
    #[inline]
    pub(crate) fn first_stop(bytes: &[u8]) -> usize {
        let Some(first) = bytes.first_chunk::<16>() else {
            return super::swar::first_stop(bytes);
        };
        if let Some(offset) = first_of(load(first)) {
            return offset;
        }
        let mut at = 16;
        for block in bytes[16..].chunks_exact(32) {
            let (low, high) = halves(block);
            if let Some(offset) = first_of_two(low, high) {
                return at + offset;
            }
            at += 32;
        }
        finish(bytes, at, None)
    }

    /// [`super::copy_plain`] with SSE2, in one pass: each block is stored to `out` as it
    /// is scanned (the stop's block whole, past the run, in spare capacity), rather than
    /// scanned, then copied by `memcpy`. Under sixteen bytes: [`super::swar`].
    #[inline]
    pub(crate) fn copy_plain(out: &mut Vec<u8>, bytes: &[u8]) -> usize {
        if bytes.len() < 16 {
            return super::swar::copy_plain(out, bytes);
        }
        out.reserve(bytes.len());
        let written = out.len();
        let copy = &mut out.spare_capacity_mut()[..bytes.len()];
        let run = 'scan: {
            let mut at = 0;
            for (block, to) in bytes.chunks_exact(32).zip(copy.chunks_exact_mut(32)) {
                let (low, high) = halves(block);
                let (to_low, to_high) = halves_mut(to);
                store(to_low, low);
                store(to_high, high);
                if let Some(offset) = first_of_two(low, high) {
                    break 'scan at + offset;
                }
                at += 32;
            }
            finish(bytes, at, Some(copy))
        };
        // SAFETY: every byte scanned was written to the same place of the spare
        // capacity, so the `run` bytes after `written` are initialized: `bytes[..run]`.
        unsafe { out.set_len(written + run) };
        run
    }
}

#[cfg(test)]
mod tests;
