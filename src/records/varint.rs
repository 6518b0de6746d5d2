//! The record format's zig-zag varints (Kafka's `ByteUtils.readVarint` / `readVarlong`), decoded a
//! byte at a time so every reader (a slice, a decompressing stream) shares one decoder; it owns no
//! input and allocates nothing.

/// Longest encodings: an int field (5 bytes) and a long field (10 bytes).
pub const INT_BYTES_MAX: u32 = 5;
pub const LONG_BYTES_MAX: u32 = 10;

/// A varint longer than its field allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLong;

/// One varint being decoded: feed bytes with [`Decoder::push`] until it yields the value.
#[derive(Debug, Default, Clone, Copy)]
pub struct Decoder {
    raw: u64,
    count: u32,
}

impl Decoder {
    /// Takes the next byte; `Some(value)` once the varint is complete, `TooLong` once it has taken
    /// `max_bytes` bytes without ending.
    pub fn push(&mut self, byte: u8, max_bytes: u32) -> Result<Option<i64>, TooLong> {
        if self.count >= max_bytes.min(LONG_BYTES_MAX) {
            return Err(TooLong);
        }
        self.raw |= u64::from(byte & 0x7f) << (7 * self.count);
        self.count += 1;
        if byte & 0x80 != 0 {
            return if self.count >= max_bytes.min(LONG_BYTES_MAX) { Err(TooLong) } else { Ok(None) };
        }
        Ok(Some(((self.raw >> 1) as i64) ^ -((self.raw & 1) as i64)))
    }

    /// Whether a byte was taken (an input ending now ends inside the varint).
    pub fn started(&self) -> bool {
        self.count > 0
    }
}

/// Decodes one varint of at most `max_bytes` from the front of `input`, advancing it past the
/// varint. `None` when the input ends inside the varint or the varint is too long (the input is
/// then left as it was). The same values and refusals as feeding [`Decoder`] byte by byte, in one
/// pass over the slice: the produce walk reads six or more of these per record.
#[inline]
pub fn take(input: &mut &[u8], max_bytes: u32) -> Option<i64> {
    let max = max_bytes.min(LONG_BYTES_MAX) as usize;
    let mut raw = 0u64;
    for (i, &b) in input.iter().take(max).enumerate() {
        raw |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            *input = &input[i + 1..];
            return Some(((raw >> 1) as i64) ^ -((raw & 1) as i64));
        }
    }
    None
}

/// Appends `v` as a zig-zag varint.
pub fn put(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn every_long_round_trips(v in any::<i64>()) {
            let mut buf = Vec::new();
            put(&mut buf, v);
            prop_assert!(buf.len() <= LONG_BYTES_MAX as usize);
            let mut input = &buf[..];
            prop_assert_eq!(take(&mut input, LONG_BYTES_MAX), Some(v));
            prop_assert!(input.is_empty());
        }

        #[test]
        fn every_int_fits_the_int_limit(v in any::<i32>()) {
            let mut buf = Vec::new();
            put(&mut buf, i64::from(v));
            let mut input = &buf[..];
            prop_assert_eq!(take(&mut input, INT_BYTES_MAX), Some(i64::from(v)));
        }

        /// `take` (one pass over a slice) and `Decoder` (a byte at a time, for streams) agree on
        /// any input: the value, where it ends, and what they refuse.
        #[test]
        fn take_agrees_with_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..14), max_bytes in 0u32..12) {
            let mut d = Decoder::default();
            let mut expected = None;
            for (i, &b) in bytes.iter().enumerate() {
                match d.push(b, max_bytes) {
                    Ok(Some(v)) => { expected = Some((v, i + 1)); break; }
                    Ok(None) => {}
                    Err(TooLong) => break,
                }
            }
            let mut input = &bytes[..];
            let got = take(&mut input, max_bytes);
            prop_assert_eq!(got, expected.map(|(v, _)| v));
            let left = expected.map_or(bytes.len(), |(_, used)| bytes.len() - used);
            prop_assert_eq!(input.len(), left);
        }
    }

    #[test]
    fn known_encodings_and_bad_input() {
        for (v, bytes) in [(0i64, &[0x00u8][..]), (-1, &[0x01]), (1, &[0x02]), (-64, &[0x7f]), (64, &[0x80, 0x01]), (300, &[0xd8, 0x04])] {
            let mut buf = Vec::new();
            put(&mut buf, v);
            assert_eq!(buf, bytes, "{v}");
        }
        // Ends inside the varint.
        assert_eq!(take(&mut &[0x80u8, 0x80][..], LONG_BYTES_MAX), None);
        assert_eq!(take(&mut &[][..], LONG_BYTES_MAX), None);
        // Longer than the field allows: 6 bytes for an int, 11 for a long.
        assert_eq!(take(&mut &[0x80u8, 0x80, 0x80, 0x80, 0x80, 0x00][..], INT_BYTES_MAX), None);
        assert_eq!(take(&mut &[0xffu8; 11][..], LONG_BYTES_MAX), None);
        let mut d = Decoder::default();
        assert!(!d.started());
        assert_eq!(d.push(0x80, INT_BYTES_MAX), Ok(None));
        assert!(d.started());
    }
}
