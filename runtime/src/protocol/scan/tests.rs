//! Every scan (and copying scan) against the definition, one byte at a time: each byte value at each offset
//! of each length through the SIMD blocks and their tail, from unaligned starts, and
//! random bytes.

use proptest::prelude::*;

use super::{copy_plain, first_stop, is_stop, swar};

/// The definition: the first byte that [`is_stop`], or the length.
fn reference(bytes: &[u8]) -> usize {
    bytes.iter().position(|&byte| is_stop(byte)).unwrap_or(bytes.len())
}

/// A scan: [`first_stop`] or one of its implementations.
type Scan = fn(&[u8]) -> usize;
/// A copying scan: [`copy_plain`] or one of its implementations.
type CopyingScan = fn(&mut Vec<u8>, &[u8]) -> usize;

/// Every scan this architecture has, by name.
fn scans() -> Vec<(&'static str, Scan)> {
    vec![
        ("first_stop", first_stop),
        ("swar", swar::first_stop),
        #[cfg(target_arch = "x86_64")]
        ("sse2", super::sse2::first_stop),
    ]
}

/// Every copying scan this architecture has, by name.
fn copies() -> Vec<(&'static str, CopyingScan)> {
    vec![
        ("copy_plain", copy_plain),
        ("swar::copy_plain", swar::copy_plain),
        #[cfg(target_arch = "x86_64")]
        ("sse2::copy_plain", super::sse2::copy_plain),
    ]
}

/// Each scan finds the first stop; each copying scan also appends exactly the bytes
/// before it, after what `out` held (and without room to spare, so it must reserve).
fn check(bytes: &[u8]) {
    let expected = reference(bytes);
    for (name, scan) in scans() {
        assert_eq!(scan(bytes), expected, "{name} on {bytes:02x?}");
    }
    for (name, copy) in copies() {
        let mut out = b"held".to_vec();
        out.shrink_to_fit();
        assert_eq!(copy(&mut out, bytes), expected, "{name} on {bytes:02x?}");
        assert_eq!(&out[..4], b"held", "{name} on {bytes:02x?}");
        assert_eq!(&out[4..], &bytes[..expected], "{name} on {bytes:02x?}");
    }
}

#[test]
fn the_stops_are_the_control_bytes_quote_and_backslash() {
    let stops: Vec<u8> = (0..=255).filter(|&byte| is_stop(byte)).collect();
    let mut expected: Vec<u8> = (0..0x20).collect();
    expected.extend([b'"', b'\\']);
    assert_eq!(stops, expected);
}

/// Each byte value at each offset below 64 of every length below 80 (past two 32-byte
/// steps, a 16-byte block and every overlap of the last load), on a clean background: a
/// scan that is one off, misses a byte class, or reads a byte as signed fails here.
#[test]
fn every_byte_value_at_every_offset_of_every_length() {
    let mut buffer = [b'a'; 80];
    for len in 0..buffer.len() {
        check(&buffer[..len]);
        for offset in 0..len.min(64) {
            for byte in 0..=255 {
                buffer[offset] = byte;
                check(&buffer[..len]);
            }
            buffer[offset] = b'a';
        }
    }
}

/// The same from every start of a 16-byte block (loads not aligned), for a byte of each
/// class and the neighbours of each class's edges, on clean backgrounds below and above
/// 0x80.
#[test]
fn every_offset_from_unaligned_starts() {
    const BYTES: [u8; 14] = [0x00, 0x08, 0x1f, 0x20, 0x21, b'"', 0x23, 0x5b, b'\\', 0x5d, 0x7f, 0x80, 0x9f, 0xff];
    for background in [b'a', 0xa0, 0xff] {
        let mut buffer = [background; 96];
        for start in 0..16 {
            for len in 0..80 {
                check(&buffer[start..start + len]);
                for offset in 0..len {
                    for byte in BYTES {
                        buffer[start + offset] = byte;
                        check(&buffer[start..start + len]);
                    }
                    buffer[start + offset] = background;
                }
            }
        }
    }
}

/// Two stops: the first one counts, wherever the second is (same block, next block, the
/// overlapped tail).
#[test]
fn the_first_of_two_stops_counts() {
    let mut buffer = [b'x'; 72];
    for first in 0..buffer.len() {
        for second in first + 1..buffer.len() {
            buffer[first] = b'"';
            buffer[second] = 0x01;
            check(&buffer);
            check(&buffer[..second]);
            buffer[second] = b'x';
        }
        buffer[first] = b'x';
    }
}

/// One stop at every position of a long buffer: past the fixed tables' 80 bytes, where
/// only many 32-byte steps reach.
#[test]
fn one_stop_anywhere_in_a_long_buffer() {
    let mut buffer = [b'y'; 300];
    check(&buffer);
    for at in 0..buffer.len() {
        for stop in [b'"', b'\\', 0x1f] {
            buffer[at] = stop;
            check(&buffer);
            check(&buffer[1..]);
        }
        buffer[at] = b'y';
    }
}

/// Bytes that are mostly not stops, so runs are long enough to cross blocks.
fn mostly_clean() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![8 => 0x20u8..=0xff, 1 => any::<u8>()];
    proptest::collection::vec(byte, 0..300)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200), start in 0usize..16) {
        check(&bytes[start.min(bytes.len())..]);
    }

    #[test]
    fn random_mostly_clean_bytes(bytes in mostly_clean(), start in 0usize..16) {
        check(&bytes[start.min(bytes.len())..]);
    }
}
