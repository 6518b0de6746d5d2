//! Byte primitives of Kafka's generated record schemas, shared by the coordinators' record codecs (`__consumer_offsets`, `__transaction_state`):
//! classic (i16-length strings, i32 counts) and flexible (unsigned-varint lengths, tagged fields)
//! encodings. Every count and length read from disk is checked against the bytes left before it
//! sizes anything, so a corrupt record is refused, never allocated. Pure bytes, no I/O.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use uuid::Uuid;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("record truncated")]
    Truncated,
    #[error("unknown schema version {0}")]
    UnknownVersion(i16),
    #[error("string is not UTF-8")]
    BadString,
    #[error("invalid length or count {0}")]
    BadLength(i64),
    #[error("{0} trailing bytes")]
    Trailing(usize),
}

/// Reads one record value (or key) front to back.
pub struct Reader {
    b: Bytes,
    /// Flexible versions: compact strings/arrays/bytes and tagged fields.
    flexible: bool,
}

impl Reader {
    pub fn new(b: Bytes, flexible: bool) -> Reader {
        Reader { b, flexible }
    }

    pub fn set_flexible(&mut self, flexible: bool) {
        self.flexible = flexible;
    }

    pub fn remaining(&self) -> usize {
        self.b.remaining()
    }

    fn need(&self, n: usize) -> Result<(), CodecError> {
        if self.b.remaining() < n { Err(CodecError::Truncated) } else { Ok(()) }
    }

    pub fn i8(&mut self) -> Result<i8, CodecError> {
        self.need(1)?;
        Ok(self.b.get_i8())
    }

    pub fn i16(&mut self) -> Result<i16, CodecError> {
        self.need(2)?;
        Ok(self.b.get_i16())
    }

    pub fn i32(&mut self) -> Result<i32, CodecError> {
        self.need(4)?;
        Ok(self.b.get_i32())
    }

    pub fn i64(&mut self) -> Result<i64, CodecError> {
        self.need(8)?;
        Ok(self.b.get_i64())
    }

    pub fn uuid(&mut self) -> Result<Uuid, CodecError> {
        self.need(16)?;
        let mut raw = [0u8; 16];
        self.b.copy_to_slice(&mut raw);
        Ok(Uuid::from_bytes(raw))
    }

    pub fn uvarint(&mut self) -> Result<u32, CodecError> {
        let mut v: u64 = 0;
        for shift in (0..35).step_by(7) {
            self.need(1)?;
            let byte = self.b.get_u8();
            v |= ((byte & 0x7f) as u64) << shift;
            if byte & 0x80 == 0 {
                return u32::try_from(v).map_err(|_| CodecError::BadLength(v as i64));
            }
        }
        Err(CodecError::BadLength(v as i64))
    }

    /// A length that may be -1 (null): i16 (strings) or i32 (bytes, arrays) classic, or an
    /// unsigned varint holding length + 1 (0 = null) flexible.
    fn length(&mut self, classic_i16: bool) -> Result<Option<usize>, CodecError> {
        let n: i64 = if self.flexible {
            self.uvarint()? as i64 - 1
        } else if classic_i16 {
            self.i16()? as i64
        } else {
            self.i32()? as i64
        };
        match n {
            -1 => Ok(None),
            n if n < -1 => Err(CodecError::BadLength(n)),
            n => Ok(Some(n as usize)),
        }
    }

    fn raw(&mut self, n: usize) -> Result<Bytes, CodecError> {
        self.need(n)?;
        Ok(self.b.split_to(n))
    }

    pub fn nullable_str(&mut self) -> Result<Option<String>, CodecError> {
        let Some(n) = self.length(true)? else { return Ok(None) };
        let raw = self.raw(n)?;
        String::from_utf8(raw.to_vec()).map(Some).map_err(|_| CodecError::BadString)
    }

    /// A non-nullable string (null read as empty, as Kafka's readers tolerate).
    pub fn str(&mut self) -> Result<String, CodecError> {
        Ok(self.nullable_str()?.unwrap_or_default())
    }

    pub fn bytes(&mut self) -> Result<Bytes, CodecError> {
        let n = self.length(false)?.unwrap_or(0);
        self.raw(n)
    }

    /// An array's element count, refused when even elements of `min_element_bytes` each could
    /// not fit in what is left: the count never sizes an allocation by itself.
    pub fn array_len(&mut self, min_element_bytes: usize) -> Result<usize, CodecError> {
        let n = self.length(false)?.unwrap_or(0);
        if n.saturating_mul(min_element_bytes.max(1)) > self.remaining() {
            return Err(CodecError::BadLength(n as i64));
        }
        Ok(n)
    }

    /// Skips a tagged-field section (flexible versions only; none in classic ones).
    pub fn skip_tags(&mut self) -> Result<(), CodecError> {
        if !self.flexible {
            return Ok(());
        }
        let count = self.uvarint()? as usize;
        if count > self.remaining() {
            return Err(CodecError::BadLength(count as i64));
        }
        for _ in 0..count {
            let _tag = self.uvarint()?;
            let size = self.uvarint()? as usize;
            self.raw(size)?;
        }
        Ok(())
    }

    /// A tagged-field section's fields as (tag, value bytes), for values that read some of them.
    pub fn tags(&mut self) -> Result<Vec<(u32, Bytes)>, CodecError> {
        if !self.flexible {
            return Ok(Vec::new());
        }
        let count = self.uvarint()? as usize;
        // Each field takes two bytes at least (its tag and its size).
        if count.saturating_mul(2) > self.remaining() {
            return Err(CodecError::BadLength(count as i64));
        }
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            let tag = self.uvarint()?;
            let size = self.uvarint()? as usize;
            out.push((tag, self.raw(size)?));
        }
        Ok(out)
    }

    /// The value must end here (a longer one is another schema, or corrupt).
    pub fn finish(self) -> Result<(), CodecError> {
        match self.b.remaining() {
            0 => Ok(()),
            n => Err(CodecError::Trailing(n)),
        }
    }
}

/// Writes flexible-version fields (Kafka's compact encodings).
pub struct FlexWriter(pub BytesMut);

impl FlexWriter {
    /// Starts a value with its schema version.
    pub fn new(version: i16) -> FlexWriter {
        let mut b = BytesMut::new();
        b.put_i16(version);
        FlexWriter(b)
    }

    pub fn uvarint(&mut self, mut v: u32) {
        while v >= 0x80 {
            self.0.put_u8((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.put_u8(v as u8);
    }

    fn len(&mut self, n: usize) {
        self.uvarint(u32::try_from(n).unwrap_or(u32::MAX - 1) + 1);
    }

    pub fn str(&mut self, s: &str) {
        self.len(s.len());
        self.0.put_slice(s.as_bytes());
    }

    pub fn nullable_str(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.str(s),
            None => self.uvarint(0),
        }
    }

    /// Compact bytes: length + 1, then the bytes.
    pub fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.0.put_slice(b);
    }

    pub fn array_len(&mut self, n: usize) {
        self.len(n);
    }

    pub fn i8(&mut self, v: i8) {
        self.0.put_i8(v);
    }

    pub fn i16(&mut self, v: i16) {
        self.0.put_i16(v);
    }

    pub fn i32(&mut self, v: i32) {
        self.0.put_i32(v);
    }

    pub fn i64(&mut self, v: i64) {
        self.0.put_i64(v);
    }

    pub fn uuid(&mut self, id: &Uuid) {
        self.0.put_slice(id.as_bytes());
    }

    /// An empty tagged-field section.
    pub fn no_tags(&mut self) {
        self.uvarint(0);
    }

    pub fn raw(&mut self, b: &[u8]) {
        self.0.put_slice(b);
    }

    pub fn finish(self) -> Bytes {
        self.0.freeze()
    }
}

/// Test helper: bytes from a hex string.
#[cfg(test)]
pub(crate) fn hex(s: &str) -> Bytes {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digits")).collect::<Vec<u8>>().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_overlong_ones_are_refused() {
        for v in [0u32, 1, 127, 128, 300, 16_383, 16_384, u32::MAX] {
            let mut w = FlexWriter(BytesMut::new());
            w.uvarint(v);
            let mut r = Reader::new(w.finish(), true);
            assert_eq!(r.uvarint().unwrap(), v);
            r.finish().unwrap();
        }
        let mut r = Reader::new(Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), true);
        assert!(r.uvarint().is_err());
        let mut r = Reader::new(Bytes::from_static(&[0x80]), true);
        assert_eq!(r.uvarint(), Err(CodecError::Truncated));
    }

    #[test]
    fn counts_larger_than_the_bytes_left_are_refused_before_any_allocation() {
        // Classic: an i32 count of 2^31-1.
        let mut r = Reader::new(Bytes::from_static(&[0x7f, 0xff, 0xff, 0xff, 0, 0]), false);
        assert_eq!(r.array_len(1), Err(CodecError::BadLength(i32::MAX as i64)));
        // Flexible: a varint count of about 2^28 with 2 bytes behind it.
        let mut r = Reader::new(Bytes::from_static(&[0xff, 0xff, 0xff, 0x7f, 0, 0]), true);
        assert!(matches!(r.array_len(4), Err(CodecError::BadLength(_))));
        // A negative classic length other than -1.
        let mut r = Reader::new(Bytes::from_static(&[0xff, 0xfe]), false);
        assert_eq!(r.nullable_str(), Err(CodecError::BadLength(-2)));
        let mut r = Reader::new(Bytes::from_static(&[0x00, 0x09, b'a']), false);
        assert_eq!(r.str(), Err(CodecError::Truncated));
        // Tagged fields whose count or size runs past the end.
        let mut r = Reader::new(Bytes::from_static(&[0x05, 0x00]), true);
        assert!(r.skip_tags().is_err());
        let mut r = Reader::new(Bytes::from_static(&[0x01, 0x00, 0x09, 0x00]), true);
        assert_eq!(r.skip_tags(), Err(CodecError::Truncated));
    }
}
