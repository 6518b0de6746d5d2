//! Walks the records inside one v2 batch at produce time, checking that they match the header's count and parse, without keeping them: compressed batches are streamed through a decompressor into a small buffer, never materialized.
//!
//! Kafka iterates every batch's records when it appends a produce request (uncompressed: each record
//! parsed in place; compressed: a streaming decompressor that skips keys and values). A batch whose
//! records run out before `recordsCount`, or that has bytes left after it, or whose record lengths
//! or fields do not add up, is refused with INVALID_RECORD. The same checks here keep a header that
//! lies about its count (D2/D3 of issue 14) from moving the high watermark or sizing an allocation,
//! and a compression bomb from growing memory: the walk holds one [`SCRATCH_BYTES`] read buffer and
//! the decompressor's own state, whatever the decompressed total is.

use std::io::{BufRead, BufReader, Read};

use super::batch::{BatchHeader, CompressionCodec, HEADER_SIZE};

/// Read buffer between a decompressor and the walk. Records, keys and values are skipped through
/// it, so this (plus the decompressor's state) is the walk's memory whatever the batch holds.
pub const SCRATCH_BYTES: usize = 16 * 1024;

/// Largest number of keyless-record indexes reported for a compacted topic. Kafka names every one
/// (KIP-467); a compressed batch can hold hundreds of millions of 7-byte records, so the list (and
/// the response carrying it) is cut here. The batch is refused either way.
pub const MISSING_KEY_INDEXES_MAX: usize = 1_000;

/// Snappy's densest element (a 3-byte copy of 64 bytes) expands 64/3 < 22 times; a block header
/// announcing more than this many bytes per compressed byte is a lie and is refused before the
/// output buffer is sized.
const SNAPPY_EXPANSION_MAX: usize = 22;

/// The 8 magic bytes of the xerial (snappy-java) framing the Java producer writes, followed by a
/// 4-byte version and a 4-byte compatible version; then blocks of (u32 length, raw snappy block).
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_BYTES: usize = 16;

/// The limits and needs of one walk, from the topic's config.
#[derive(Debug, Clone, Copy)]
pub struct WalkLimits {
    /// Largest decompressed record accepted (`max.message.bytes`). Uncompressed records are bounded
    /// by the batch already. Kafka has no such bound at produce time; Fjord's cleaner and
    /// ListOffsets decode whole batches, so a record larger than any batch the topic accepts is
    /// refused here rather than found there.
    pub record_bytes_max: usize,
    /// Compacted topic: report the records without a key.
    pub need_keys: bool,
}

/// Why a walk refused a batch. Every variant but `RecordTooLarge` is INVALID_RECORD in Kafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalkError {
    /// The records do not match the header or do not parse.
    Invalid(&'static str),
    /// A decompressed record longer than [`WalkLimits::record_bytes_max`].
    RecordTooLarge { size: usize, max: usize },
}

/// Walks the records of `batch` (a whole framed batch whose header was checked: magic 2, CRC,
/// count >= 1, known codec). Returns the indexes of records without a key when `need_keys`
/// (at most [`MISSING_KEY_INDEXES_MAX`] of them), else an empty list.
pub fn walk_records(batch: &[u8], limits: &WalkLimits) -> Result<Vec<i32>, WalkError> {
    let header = BatchHeader::parse(batch).ok_or(WalkError::Invalid("batch shorter than header"))?;
    let count = header.records_count();
    let payload = batch.get(HEADER_SIZE..header.total_size().min(batch.len())).unwrap_or(&[]);
    match header.compression() {
        CompressionCodec::None => Walk::new(payload, limits, count, false).run(),
        CompressionCodec::Gzip => {
            let d = flate2::bufread::MultiGzDecoder::new(payload);
            Walk::new(BufReader::with_capacity(SCRATCH_BYTES, d), limits, count, true).run()
        }
        CompressionCodec::Snappy => {
            let d = SnappyReader::new(payload);
            Walk::new(BufReader::with_capacity(SCRATCH_BYTES, d), limits, count, true).run()
        }
        CompressionCodec::Lz4 => {
            let d = lz4::Decoder::new(payload).map_err(|_| WalkError::Invalid("lz4 stream does not decode"))?;
            Walk::new(BufReader::with_capacity(SCRATCH_BYTES, d), limits, count, true).run()
        }
        CompressionCodec::Zstd => with_zstd_context(|context| {
            let d = zstd::stream::read::Decoder::with_context(payload, context);
            Walk::new(BufReader::with_capacity(SCRATCH_BYTES, d), limits, count, true).run()
        }),
        CompressionCodec::Unknown(_) => Err(WalkError::Invalid("unknown compression codec")),
    }
}

/// A zstd decompression context kept per thread between walks: creating one (and its window
/// buffers) per batch cost about as much as decompressing a 16 KiB batch. One that grew past
/// [`ZSTD_CONTEXT_KEPT_BYTES_MAX`] (a frame with a large window) is dropped after use, so a bomb
/// does not leave its window allocated on every worker thread.
const ZSTD_CONTEXT_KEPT_BYTES_MAX: usize = 8 << 20;

thread_local! {
    static ZSTD_CONTEXT: std::cell::RefCell<Option<zstd::zstd_safe::DCtx<'static>>> = const { std::cell::RefCell::new(None) };
}

fn with_zstd_context<T>(f: impl FnOnce(&mut zstd::zstd_safe::DCtx<'static>) -> T) -> T {
    let mut context = ZSTD_CONTEXT.with(|slot| slot.borrow_mut().take()).unwrap_or_else(zstd::zstd_safe::DCtx::create);
    let out = f(&mut context);
    if context.sizeof() <= ZSTD_CONTEXT_KEPT_BYTES_MAX {
        ZSTD_CONTEXT.with(|slot| *slot.borrow_mut() = Some(context));
    }
    out
}

/// Inside a walk: the stream ended, or the decompressor failed.
enum Stop {
    End,
    Refused(WalkError),
}

impl From<WalkError> for Stop {
    fn from(e: WalkError) -> Self {
        Stop::Refused(e)
    }
}

struct Walk<'l, R> {
    input: R,
    /// Bytes taken from `input` so far: record ends are positions in this count.
    consumed: usize,
    limits: &'l WalkLimits,
    count: i32,
    compressed: bool,
}

impl<'l, R: BufRead> Walk<'l, R> {
    fn new(input: R, limits: &'l WalkLimits, count: i32, compressed: bool) -> Self {
        Self { input, consumed: 0, limits, count, compressed }
    }

    fn run(mut self) -> Result<Vec<i32>, WalkError> {
        let mut keyless = Vec::new();
        for index in 0..self.count {
            match self.record(index) {
                Ok(true) => {}
                Ok(false) => {
                    if keyless.len() < MISSING_KEY_INDEXES_MAX {
                        keyless.push(index);
                    }
                }
                Err(Stop::End) => return Err(WalkError::Invalid("fewer records than recordsCount (premature end of the records)")),
                Err(Stop::Refused(e)) => return Err(e),
            }
        }
        match self.peek_end() {
            Ok(true) => Ok(keyless),
            Ok(false) => Err(WalkError::Invalid("bytes remain after recordsCount records")),
            Err(Stop::End) => Ok(keyless),
            Err(Stop::Refused(e)) => Err(e),
        }
    }

    /// Walks record `index`; `Ok(false)` when it has no key and keys are needed.
    fn record(&mut self, index: i32) -> Result<bool, Stop> {
        let Some(length) = self.varint(5)? else {
            return Err(Stop::End);
        };
        if length <= 0 {
            return Err(WalkError::Invalid("record length is not positive").into());
        }
        let length = length as usize;
        if self.compressed && length > self.limits.record_bytes_max {
            return Err(WalkError::RecordTooLarge { size: length, max: self.limits.record_bytes_max }.into());
        }
        let end = self.consumed + length;
        // Past the length varint, running out of input means the record is cut short.
        let inside = |r: Result<(), Stop>| r.map_err(|s| match s {
            Stop::End => Stop::Refused(WalkError::Invalid("record runs past the end of the records")),
            other => other,
        });
        let mut has_key = true;
        inside((|| {
            self.skip(1, end)?; // attributes
            self.field(10, end)?; // timestamp delta
            let offset_delta = self.field(5, end)?;
            // Kafka keeps an uncompressed batch's records as sent whatever their offset deltas
            // (only the base offset is set), so any is accepted there. A compressed batch whose
            // deltas are not 0, 1, 2, ... Kafka would rebuild with new offsets (4.0 fails doing it:
            // UNKNOWN_SERVER_ERROR); Fjord stores batches as sent, so it refuses them.
            if self.compressed && offset_delta != index as i64 {
                return Err(WalkError::Invalid("compressed record offset deltas are not 0, 1, 2, ...").into());
            }
            let key_length = self.field(5, end)?;
            if key_length < -1 {
                return Err(WalkError::Invalid("negative record key length").into());
            }
            has_key = key_length >= 0;
            self.skip(key_length.max(0) as usize, end)?;
            let value_length = self.field(5, end)?;
            if value_length < -1 {
                return Err(WalkError::Invalid("negative record value length").into());
            }
            self.skip(value_length.max(0) as usize, end)?;
            let headers = self.field(5, end)?;
            if headers < 0 {
                return Err(WalkError::Invalid("negative record header count").into());
            }
            // Each header takes at least two bytes, so `end` bounds this loop.
            for _ in 0..headers {
                let key_length = self.field(5, end)?;
                if key_length < 0 {
                    return Err(WalkError::Invalid("negative record header key length").into());
                }
                self.skip(key_length as usize, end)?;
                let value_length = self.field(5, end)?;
                if value_length < -1 {
                    return Err(WalkError::Invalid("negative record header value length").into());
                }
                self.skip(value_length.max(0) as usize, end)?;
            }
            if self.consumed != end {
                return Err(WalkError::Invalid("record length does not match its fields").into());
            }
            Ok(())
        })())?;
        Ok(has_key || !self.limits.need_keys)
    }

    /// A varint field of the current record, which ends at `end`.
    fn field(&mut self, max_bytes: u32, end: usize) -> Result<i64, Stop> {
        let v = self.varint(max_bytes)?.ok_or(Stop::End)?;
        if self.consumed > end {
            return Err(WalkError::Invalid("record fields run past its length").into());
        }
        Ok(v)
    }

    /// A zigzag varint of at most `max_bytes` bytes (5 for int, 10 for long); `None` when the input
    /// ends before its first byte.
    fn varint(&mut self, max_bytes: u32) -> Result<Option<i64>, Stop> {
        let mut raw: u64 = 0;
        for i in 0..max_bytes {
            let Some(b) = self.byte()? else {
                return if i == 0 { Ok(None) } else { Err(Stop::End) };
            };
            raw |= ((b & 0x7f) as u64) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(Some(((raw >> 1) as i64) ^ -((raw & 1) as i64)));
            }
        }
        Err(WalkError::Invalid("varint is too long").into())
    }

    fn byte(&mut self) -> Result<Option<u8>, Stop> {
        let buf = self.input.fill_buf().map_err(|_| WalkError::Invalid("compressed records do not decompress"))?;
        let Some(&b) = buf.first() else {
            return Ok(None);
        };
        self.input.consume(1);
        self.consumed += 1;
        Ok(Some(b))
    }

    /// Skips `n` bytes of the current record, which ends at `end`.
    fn skip(&mut self, n: usize, end: usize) -> Result<(), Stop> {
        if n > end - self.consumed.min(end) {
            return Err(WalkError::Invalid("record fields run past its length").into());
        }
        let mut left = n;
        while left > 0 {
            let buf = self.input.fill_buf().map_err(|_| WalkError::Invalid("compressed records do not decompress"))?;
            if buf.is_empty() {
                return Err(Stop::End);
            }
            let step = buf.len().min(left);
            self.input.consume(step);
            self.consumed += step;
            left -= step;
        }
        Ok(())
    }

    /// True when the input has nothing after the last record.
    fn peek_end(&mut self) -> Result<bool, Stop> {
        let buf = self.input.fill_buf().map_err(|_| WalkError::Invalid("compressed records do not decompress"))?;
        Ok(buf.is_empty())
    }
}

/// Snappy as Kafka producers write it: the xerial framing (Java) or one raw block (librdkafka, and
/// Java's reader accepts it). Holds one decompressed block at a time.
struct SnappyReader<'a> {
    rest: &'a [u8],
    framed: bool,
    block: Vec<u8>,
    position: usize,
}

impl<'a> SnappyReader<'a> {
    fn new(payload: &'a [u8]) -> Self {
        let framed = payload.len() >= XERIAL_HEADER_BYTES && payload.starts_with(XERIAL_MAGIC);
        let rest = if framed { &payload[XERIAL_HEADER_BYTES..] } else { payload };
        Self { rest, framed, block: Vec::new(), position: 0 }
    }

    /// Decompresses the next block into `self.block`; false at the end of the stream.
    fn next_block(&mut self) -> std::io::Result<bool> {
        if self.rest.is_empty() {
            return Ok(false);
        }
        let compressed = if self.framed {
            let Some((length, rest)) = self.rest.split_first_chunk::<4>() else {
                return Err(invalid("snappy block length cut short"));
            };
            let length = u32::from_be_bytes(*length) as usize;
            let Some((block, rest)) = rest.split_at_checked(length) else {
                return Err(invalid("snappy block longer than the records"));
            };
            self.rest = rest;
            block
        } else {
            std::mem::take(&mut self.rest)
        };
        let claimed = snap::raw::decompress_len(compressed).map_err(|_| invalid("snappy block header"))?;
        if claimed > compressed.len().saturating_mul(SNAPPY_EXPANSION_MAX) {
            return Err(invalid("snappy block claims more than it can hold"));
        }
        self.block.clear();
        self.block.resize(claimed, 0);
        let n = snap::raw::Decoder::new().decompress(compressed, &mut self.block).map_err(|_| invalid("snappy block does not decode"))?;
        self.block.truncate(n);
        self.position = 0;
        Ok(true)
    }
}

fn invalid(what: &'static str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what)
}

impl Read for SnappyReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        // An empty block is legal: keep going until bytes or the end.
        while self.position == self.block.len() {
            if !self.next_block()? {
                return Ok(0);
            }
        }
        let n = out.len().min(self.block.len() - self.position);
        out[..n].copy_from_slice(&self.block[self.position..self.position + n]);
        self.position += n;
        Ok(n)
    }
}
