//! Walks the records inside one v2 batch at produce time, checking that they match the header's count and parse, without keeping them: compressed batches are streamed through a decompressor into a small buffer, never materialized.
//!
//! Kafka iterates every batch's records when it appends a produce request (uncompressed: each record
//! parsed in place; compressed: a streaming decompressor that skips keys and values). A batch whose
//! records run out before `recordsCount`, or that has bytes left after it, or whose record lengths
//! or fields do not add up, is refused with INVALID_RECORD. The same checks here keep a header that
//! lies about its count (D2/D3 of issue 14) from moving the high watermark or sizing an allocation,
//! and a compression bomb from growing memory: the walk holds one [`SCRATCH_BYTES`] read buffer
//! (block codecs, lz4 and snappy: their one decoded block, read in place) and the decompressor's
//! own state, whatever the decompressed total is.

use std::io::{BufRead, BufReader, Read};
use std::ops::ControlFlow;

use super::batch::{BatchHeader, CompressionCodec, HEADER_SIZE};
use super::varint::{self, INT_BYTES_MAX, LONG_BYTES_MAX};

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
    /// CreateTime topics with message.timestamp.before/after.max.ms: report the records stamped
    /// outside this window, as Kafka checks every record (not only the batch header's timestamps).
    pub timestamps: Option<TimestampWindow>,
}

/// The timestamps a record may carry, inclusive: `[now - before.max.ms, now + after.max.ms]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampWindow {
    pub earliest: i64,
    pub latest: i64,
}

/// A record stamped outside the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfWindow {
    /// Its index in the batch (Kafka's record error carries it).
    pub index: i32,
    pub offset_delta: i64,
    pub timestamp: i64,
}

/// What a walk found that refuses a well-formed batch record by record (Kafka's record errors),
/// each list cut at [`MISSING_KEY_INDEXES_MAX`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    /// Records without a key, when keys are needed.
    pub keyless: Vec<i32>,
    /// Records stamped outside [`WalkLimits::timestamps`].
    pub out_of_window: Vec<OutOfWindow>,
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
/// count >= 1, known codec). Returns the records without a key (when `need_keys`) and those
/// stamped outside the window (when one is given).
pub fn walk_records(batch: &[u8], limits: &WalkLimits) -> Result<Findings, WalkError> {
    walk(batch, limits, None).map(|(findings, _)| findings)
}

/// Where a record sits in its batch, as a walk meets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordAt {
    pub index: i32,
    pub offset_delta: i64,
    pub timestamp_delta: i64,
}

/// Walks the records of a stored batch (checked when it was appended) with the same bounded memory,
/// calling `visit` for each until it breaks. Returns the bytes of records walked (decompressed).
/// For readers of the log that need a record's place, not its key or value (ListOffsets by
/// timestamp), and to learn what decoding a batch whole would cost before doing it (the cleaner).
pub fn visit_records(batch: &[u8], visit: &mut dyn FnMut(RecordAt) -> ControlFlow<()>) -> Result<usize, WalkError> {
    let limits = WalkLimits { record_bytes_max: usize::MAX, need_keys: false, timestamps: None };
    walk(batch, &limits, Some(visit)).map(|(_, bytes)| bytes)
}

/// The walk behind both entry points: (what it found, record bytes walked).
fn walk(batch: &[u8], limits: &WalkLimits, visit: Option<&mut dyn FnMut(RecordAt) -> ControlFlow<()>>) -> Result<(Findings, usize), WalkError> {
    let header = BatchHeader::parse(batch).ok_or(WalkError::Invalid("batch shorter than header"))?;
    let count = header.records_count();
    // A batch without timestamps (-1) has nothing to check.
    let timestamps = limits.timestamps.filter(|_| header.base_timestamp() >= 0);
    let limits = &WalkLimits { timestamps, ..*limits };
    let base_timestamp = header.base_timestamp();
    let payload = batch.get(HEADER_SIZE..header.total_size().min(batch.len())).unwrap_or(&[]);
    match header.compression() {
        CompressionCodec::None => Walk::new(payload, limits, count, base_timestamp, false, visit).run(),
        CompressionCodec::Gzip => {
            let d = flate2::bufread::MultiGzDecoder::new(payload);
            Walk::new(BufReader::with_capacity(SCRATCH_BYTES, d), limits, count, base_timestamp, true, visit).run()
        }
        // Block codecs are walked straight in their decoded block: no copy into a read buffer.
        CompressionCodec::Snappy => Walk::new(SnappyReader::new(payload), limits, count, base_timestamp, true, visit).run(),
        CompressionCodec::Lz4 => with_lz4_block(|block| Walk::new(Lz4FrameReader::new(payload, block), limits, count, base_timestamp, true, visit).run()),
        CompressionCodec::Zstd => with_zstd_context(|context| {
            let d = zstd::stream::read::Decoder::with_context(payload, context);
            Walk::new(BufReader::with_capacity(SCRATCH_BYTES, d), limits, count, base_timestamp, true, visit).run()
        }),
        CompressionCodec::Unknown(_) => Err(WalkError::Invalid("unknown compression codec")),
    }
}

/// Hands `read` the records of `batch` (a checked batch, as `walk_records` takes) as one stream,
/// decompressed through the same readers and [`SCRATCH_BYTES`] buffer as the walk. For the rewrite
/// of a batch into another codec (`records::recompress`), which needs the records' bytes.
pub(crate) fn with_records_stream<T>(batch: &[u8], read: impl FnOnce(&mut dyn BufRead) -> T) -> Result<T, WalkError> {
    let header = BatchHeader::parse(batch).ok_or(WalkError::Invalid("batch shorter than header"))?;
    let payload = batch.get(HEADER_SIZE..header.total_size().min(batch.len())).unwrap_or(&[]);
    with_decompressed(header.compression(), payload, read)
}

/// Hands `read` `payload` decompressed by `codec` as one stream, through the readers the walk
/// uses (also for other compressed payloads than batches: KIP-714 telemetry pushes).
pub(crate) fn with_decompressed<T>(codec: CompressionCodec, payload: &[u8], read: impl FnOnce(&mut dyn BufRead) -> T) -> Result<T, WalkError> {
    Ok(match codec {
        CompressionCodec::None => read(&mut { payload }),
        CompressionCodec::Gzip => read(&mut BufReader::with_capacity(SCRATCH_BYTES, flate2::bufread::MultiGzDecoder::new(payload))),
        // Block codecs are read straight from their decoded block: no copy into a read buffer.
        CompressionCodec::Snappy => read(&mut SnappyReader::new(payload)),
        CompressionCodec::Lz4 => with_lz4_block(|block| read(&mut Lz4FrameReader::new(payload, block))),
        CompressionCodec::Zstd => with_zstd_context(|context| {
            let d = zstd::stream::read::Decoder::with_context(payload, context);
            read(&mut BufReader::with_capacity(SCRATCH_BYTES, d))
        }),
        CompressionCodec::Unknown(_) => return Err(WalkError::Invalid("unknown compression codec")),
    })
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

/// Inside a walk: the stream ended, the decompressor failed, or the visitor has what it wanted.
enum Stop {
    End,
    Refused(WalkError),
    Visited,
}

impl From<WalkError> for Stop {
    fn from(e: WalkError) -> Self {
        Stop::Refused(e)
    }
}

struct Walk<'l, 'v, R> {
    input: R,
    /// Called with each record's place; breaking ends the walk early.
    visit: Option<&'v mut dyn FnMut(RecordAt) -> ControlFlow<()>>,
    /// Bytes taken from `input` so far: record ends are positions in this count.
    consumed: usize,
    limits: &'l WalkLimits,
    count: i32,
    /// The header's base timestamp: each record's is this plus its delta.
    base_timestamp: i64,
    compressed: bool,
    /// Records stamped outside `limits.timestamps`.
    out_of_window: Vec<OutOfWindow>,
}

impl<'l, 'v, R: BufRead> Walk<'l, 'v, R> {
    fn new(input: R, limits: &'l WalkLimits, count: i32, base_timestamp: i64, compressed: bool, visit: Option<&'v mut dyn FnMut(RecordAt) -> ControlFlow<()>>) -> Self {
        Self { input, visit, consumed: 0, limits, count, base_timestamp, compressed, out_of_window: Vec::new() }
    }

    fn run(mut self) -> Result<(Findings, usize), WalkError> {
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
                Err(Stop::Visited) => return Ok((Findings { keyless, out_of_window: self.out_of_window }, self.consumed)),
            }
        }
        let consumed = self.consumed;
        match self.peek_end() {
            Ok(true) | Err(Stop::End) | Err(Stop::Visited) => Ok((Findings { keyless, out_of_window: std::mem::take(&mut self.out_of_window) }, consumed)),
            Ok(false) => Err(WalkError::Invalid("bytes remain after recordsCount records")),
            Err(Stop::Refused(e)) => Err(e),
        }
    }

    /// Walks record `index`; `Ok(false)` when it has no key and keys are needed.
    fn record(&mut self, index: i32) -> Result<bool, Stop> {
        let Some(length) = self.varint(INT_BYTES_MAX)? else {
            return Err(Stop::End);
        };
        if length <= 0 {
            return Err(WalkError::Invalid("record length is not positive").into());
        }
        let length = length as usize;
        if self.compressed && length > self.limits.record_bytes_max {
            return Err(WalkError::RecordTooLarge { size: length, max: self.limits.record_bytes_max }.into());
        }
        // Mostly the record is whole in the buffered bytes (a decoded block, the batch itself):
        // walked there as a slice, its fields read without a call to the input each. The margin
        // keeps every read the stream walk would make inside the slice, so both find the same.
        let buf = self.input.fill_buf().map_err(|_| WalkError::Invalid("compressed records do not decompress"))?;
        if buf.len() > length + LONG_BYTES_MAX as usize {
            let mut inner = Walk {
                input: buf,
                visit: self.visit.take(),
                consumed: 0,
                limits: self.limits,
                count: self.count,
                base_timestamp: self.base_timestamp,
                compressed: self.compressed,
                out_of_window: std::mem::take(&mut self.out_of_window),
            };
            let walked = inner.fields(index, length);
            self.visit = inner.visit.take();
            self.out_of_window = std::mem::take(&mut inner.out_of_window);
            let has_key = walked?;
            self.input.consume(length);
            self.consumed += length;
            return Ok(has_key);
        }
        self.fields(index, self.consumed + length)
    }

    /// Walks the fields of record `index` after its length; the record ends where `consumed`
    /// reaches `end`. `Ok(false)` when it has no key and keys are needed.
    fn fields(&mut self, index: i32, end: usize) -> Result<bool, Stop> {
        // Past the length varint, running out of input means the record is cut short.
        let inside = |r: Result<(), Stop>| r.map_err(|s| match s {
            Stop::End => Stop::Refused(WalkError::Invalid("record runs past the end of the records")),
            other => other,
        });
        let mut has_key = true;
        inside((|| {
            self.skip(1, end)?; // attributes
            let timestamp_delta = self.field(LONG_BYTES_MAX, end)?;
            let offset_delta = self.field(INT_BYTES_MAX, end)?;
            if let Some(w) = self.limits.timestamps {
                let timestamp = self.base_timestamp.saturating_add(timestamp_delta);
                if (timestamp < w.earliest || timestamp > w.latest) && self.out_of_window.len() < MISSING_KEY_INDEXES_MAX {
                    self.out_of_window.push(OutOfWindow { index, offset_delta, timestamp });
                }
            }
            if let Some(visit) = self.visit.as_mut()
                && visit(RecordAt { index, offset_delta, timestamp_delta }).is_break()
            {
                return Err(Stop::Visited);
            }
            // Kafka keeps an uncompressed batch's records as sent whatever their offset deltas
            // (only the base offset is set), so any is accepted there. A compressed batch whose
            // deltas are not 0, 1, 2, ... Kafka would rebuild with new offsets (4.0 fails doing it:
            // UNKNOWN_SERVER_ERROR); Fjord stores batches as sent, so it refuses them.
            if self.compressed && offset_delta != index as i64 {
                return Err(WalkError::Invalid("compressed record offset deltas are not 0, 1, 2, ...").into());
            }
            let key_length = self.field(INT_BYTES_MAX, end)?;
            if key_length < -1 {
                return Err(WalkError::Invalid("negative record key length").into());
            }
            has_key = key_length >= 0;
            self.skip(key_length.max(0) as usize, end)?;
            let value_length = self.field(INT_BYTES_MAX, end)?;
            if value_length < -1 {
                return Err(WalkError::Invalid("negative record value length").into());
            }
            self.skip(value_length.max(0) as usize, end)?;
            let headers = self.field(INT_BYTES_MAX, end)?;
            if headers < 0 {
                return Err(WalkError::Invalid("negative record header count").into());
            }
            // Each header takes at least two bytes, so `end` bounds this loop.
            for _ in 0..headers {
                let key_length = self.field(INT_BYTES_MAX, end)?;
                if key_length < 0 {
                    return Err(WalkError::Invalid("negative record header key length").into());
                }
                self.skip(key_length as usize, end)?;
                let value_length = self.field(INT_BYTES_MAX, end)?;
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
    #[inline]
    fn field(&mut self, max_bytes: u32, end: usize) -> Result<i64, Stop> {
        let v = self.varint(max_bytes)?.ok_or(Stop::End)?;
        if self.consumed > end {
            return Err(WalkError::Invalid("record fields run past its length").into());
        }
        Ok(v)
    }

    /// A zigzag varint of at most `max_bytes` bytes (5 for int, 10 for long); `None` when the input
    /// ends before its first byte. Inlined into the record walk: mostly the whole varint is in the
    /// buffered bytes and decodes with one read of the buffer.
    #[inline]
    fn varint(&mut self, max_bytes: u32) -> Result<Option<i64>, Stop> {
        let buf = self.input.fill_buf().map_err(|_| WalkError::Invalid("compressed records do not decompress"))?;
        let mut rest = buf;
        if let Some(v) = varint::take(&mut rest, max_bytes) {
            let n = buf.len() - rest.len();
            self.input.consume(n);
            self.consumed += n;
            return Ok(Some(v));
        }
        self.varint_bytewise(max_bytes)
    }

    /// A varint split across buffers, too long, or missing: byte by byte, which tells them apart.
    #[cold]
    #[inline(never)]
    fn varint_bytewise(&mut self, max_bytes: u32) -> Result<Option<i64>, Stop> {
        let mut d = varint::Decoder::default();
        loop {
            let Some(b) = self.byte()? else {
                return if d.started() { Err(Stop::End) } else { Ok(None) };
            };
            match d.push(b, max_bytes) {
                Ok(Some(v)) => return Ok(Some(v)),
                Ok(None) => {}
                Err(varint::TooLong) => return Err(WalkError::Invalid("varint is too long").into()),
            }
        }
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
    #[inline]
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

/// LZ4 frames as Kafka producers write them (independent blocks, Kafka's Java reader refuses
/// dependent ones), decoded block by block into one buffer of the frame's block maximum size
/// (64 KiB to 4 MiB). Checksums are skipped, not verified: the batch's CRC32C already covers these
/// bytes, and the xxhash of the content cost as much as the decompression. Measured on 64 KiB
/// batches: about twice the throughput of the lz4 crate's frame decoder.
struct Lz4FrameReader<'a, 'b> {
    rest: &'a [u8],
    /// Inside a frame: its block maximum and whether blocks carry a checksum; None between frames.
    frame: Option<(usize, bool, bool)>,
    /// The thread's block buffer ([`with_lz4_block`]).
    block: &'b mut Vec<u8>,
    /// Decoded bytes in `block` (its length stays at the largest block maximum seen, so it is
    /// zero-filled once per thread, not per block or batch).
    end: usize,
    position: usize,
}

const LZ4_FRAME_MAGIC: u32 = 0x184D_2204;

/// A decoded-block buffer kept per thread between walks (zero-filling a 64 KiB block per batch
/// showed in produce profiles); one grown past this (a frame of 1 or 4 MiB blocks) is dropped
/// after use, as the zstd context is.
const LZ4_BLOCK_KEPT_BYTES_MAX: usize = 256 << 10;

thread_local! {
    static LZ4_BLOCK: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn with_lz4_block<T>(f: impl FnOnce(&mut Vec<u8>) -> T) -> T {
    let mut block = LZ4_BLOCK.with(|slot| std::mem::take(&mut *slot.borrow_mut()));
    let out = f(&mut block);
    if block.len() <= LZ4_BLOCK_KEPT_BYTES_MAX {
        LZ4_BLOCK.with(|slot| *slot.borrow_mut() = block);
    }
    out
}

impl<'a, 'b> Lz4FrameReader<'a, 'b> {
    fn new(payload: &'a [u8], block: &'b mut Vec<u8>) -> Self {
        Self { rest: payload, frame: None, block, end: 0, position: 0 }
    }

    fn take(&mut self, n: usize) -> std::io::Result<&'a [u8]> {
        let (head, rest) = self.rest.split_at_checked(n).ok_or_else(|| invalid("lz4 frame cut short"))?;
        self.rest = rest;
        Ok(head)
    }

    fn u32_le(&mut self) -> std::io::Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads a frame header: returns (block max bytes, block checksums, content checksum).
    fn frame_header(&mut self) -> std::io::Result<(usize, bool, bool)> {
        if self.u32_le()? != LZ4_FRAME_MAGIC {
            return Err(invalid("not an lz4 frame"));
        }
        let descriptor = self.take(2)?;
        let (flags, bd) = (descriptor[0], descriptor[1]);
        if flags >> 6 != 0b01 {
            return Err(invalid("unknown lz4 frame version"));
        }
        if flags & 0x20 == 0 {
            return Err(invalid("dependent lz4 blocks are not supported (as in Kafka)"));
        }
        if flags & 0x01 != 0 {
            return Err(invalid("lz4 dictionaries are not supported"));
        }
        let block_max = match (bd >> 4) & 0x07 {
            4 => 64 << 10,
            5 => 256 << 10,
            6 => 1 << 20,
            7 => 4 << 20,
            _ => return Err(invalid("lz4 block maximum size")),
        };
        if flags & 0x08 != 0 {
            self.take(8)?; // content size
        }
        self.take(1)?; // header checksum
        Ok((block_max, flags & 0x10 != 0, flags & 0x04 != 0))
    }

    /// Decodes the next block into `self.block`; false at the end of the stream.
    fn next_block(&mut self) -> std::io::Result<bool> {
        loop {
            let (block_max, block_checksum, content_checksum) = match self.frame {
                Some(f) => f,
                None if self.rest.is_empty() => return Ok(false),
                None => {
                    let f = self.frame_header()?;
                    self.frame = Some(f);
                    f
                }
            };
            let size = self.u32_le()?;
            if size == 0 {
                // End mark; a following frame may start after the content checksum.
                if content_checksum {
                    self.take(4)?;
                }
                self.frame = None;
                continue;
            }
            let stored = size & 0x8000_0000 != 0;
            let length = (size & 0x7fff_ffff) as usize;
            if length > block_max {
                return Err(invalid("lz4 block larger than its frame's maximum"));
            }
            let data = self.take(length)?;
            if block_checksum {
                self.take(4)?;
            }
            if self.block.len() < block_max {
                self.block.resize(block_max, 0);
            }
            self.end = if stored {
                self.block[..length].copy_from_slice(data);
                length
            } else {
                lz4::block::decompress_to_buffer(data, Some(block_max as i32), &mut self.block[..block_max]).map_err(|_| invalid("lz4 block does not decode"))?
            };
            self.position = 0;
            return Ok(true);
        }
    }
}

impl Read for Lz4FrameReader<'_, '_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        read_decoded(self, out)
    }
}

impl BufRead for Lz4FrameReader<'_, '_> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        while self.position == self.end {
            if !self.next_block()? {
                return Ok(&[]);
            }
        }
        Ok(&self.block[self.position..self.end])
    }

    fn consume(&mut self, n: usize) {
        self.position = (self.position + n).min(self.end);
    }
}

/// `Read` of a block reader: copied out of its decoded block (the walk reads it in place).
fn read_decoded(reader: &mut impl BufRead, out: &mut [u8]) -> std::io::Result<usize> {
    let n = {
        let decoded = reader.fill_buf()?;
        let n = out.len().min(decoded.len());
        out[..n].copy_from_slice(&decoded[..n]);
        n
    };
    reader.consume(n);
    Ok(n)
}

fn invalid(what: &'static str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what)
}

impl Read for SnappyReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        read_decoded(self, out)
    }
}

impl BufRead for SnappyReader<'_> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        // An empty block is legal: keep going until bytes or the end.
        while self.position == self.block.len() {
            if !self.next_block()? {
                return Ok(&[]);
            }
        }
        Ok(&self.block[self.position..])
    }

    fn consume(&mut self, n: usize) {
        self.position = (self.position + n).min(self.block.len());
    }
}

/// Batches crafted to lie, shared with the `hostile` example and the wire tests.
#[cfg(test)]
#[path = "../../examples/hostile/batches.rs"]
mod crafted;

#[cfg(test)]
mod tests {
    use super::crafted::{self, ALL_CODECS, Codec};
    use super::*;

    /// The keyless records a walk reports (most tests need only those).
    fn keyless_of(batch: &[u8], limits: &WalkLimits) -> Result<Vec<i32>, WalkError> {
        walk_records(batch, limits).map(|f| f.keyless)
    }
    use proptest::prelude::*;

    const GIB: usize = 1 << 30;

    fn limits() -> WalkLimits {
        WalkLimits { record_bytes_max: 1_048_588, need_keys: false, timestamps: None }
    }
    fn compacted() -> WalkLimits {
        WalkLimits { need_keys: true, ..limits() }
    }

    #[test]
    fn every_records_timestamp_is_checked_whatever_the_header_says() {
        // The second record is 2 h ahead of a header whose base and max timestamps are both `now`.
        let now = 1_800_000_000_000;
        let window = TimestampWindow { earliest: i64::MIN, latest: now + 3_600_000 };
        let l = WalkLimits { timestamps: Some(window), ..limits() };
        for codec in ALL_CODECS {
            let b = crafted::record_timestamp_ahead(codec, now, 7_200_000);
            let found = walk_records(&b, &l).expect("well formed");
            assert_eq!(found.out_of_window, vec![OutOfWindow { index: 1, offset_delta: 1, timestamp: now + 7_200_000 }], "{codec:?}");
            assert!(walk_records(&b, &limits()).expect("walks").out_of_window.is_empty(), "{codec:?}: no window, no check");
            let late = WalkLimits { timestamps: Some(TimestampWindow { earliest: now + 1, latest: i64::MAX }), ..limits() };
            let idx: Vec<i32> = walk_records(&b, &late).expect("walks").out_of_window.iter().map(|r| r.index).collect();
            assert_eq!(idx, vec![0, 2], "{codec:?}: too old");
        }
    }
    fn refused(batch: &[u8], l: &WalkLimits) -> &'static str {
        match keyless_of(batch, l) {
            Err(WalkError::Invalid(reason)) => reason,
            other => panic!("expected INVALID_RECORD, got {other:?}"),
        }
    }

    #[test]
    fn valid_batches_of_every_codec_walk_clean() {
        for codec in ALL_CODECS {
            for n in [1, 2, 7, 500] {
                let b = crafted::valid(codec, n);
                assert_eq!(keyless_of(&b, &limits()), Ok(vec![]), "{codec:?} x{n}");
                assert_eq!(keyless_of(&b, &compacted()), Ok(vec![]), "{codec:?} x{n} keyed");
            }
        }
    }

    #[test]
    fn keyless_records_are_named_by_index_on_every_codec() {
        let raw: Vec<u8> = [Some(&b"a"[..]), None, Some(b"c"), None].iter().enumerate().flat_map(|(i, k)| crafted::record(i as i32, *k, b"v")).collect();
        for codec in ALL_CODECS {
            let b = crafted::assemble(codec, 4, 3, &crafted::compress(codec, &raw));
            assert_eq!(keyless_of(&b, &compacted()), Ok(vec![1, 3]), "{codec:?}");
            assert_eq!(keyless_of(&b, &limits()), Ok(vec![]), "{codec:?}: keys not needed");
        }
    }

    #[test]
    fn a_count_above_the_records_present_is_refused_on_every_codec() {
        for codec in ALL_CODECS {
            for count in [2, 3, 1_000_000, i32::MAX] {
                let b = crafted::lying_count(codec, count);
                assert!(refused(&b, &limits()).contains("fewer records"), "{codec:?} count {count}");
                assert!(refused(&b, &compacted()).contains("fewer records"), "{codec:?} count {count} compacted");
            }
        }
    }

    #[test]
    fn a_count_below_the_records_present_is_refused_on_every_codec() {
        for codec in ALL_CODECS {
            for (present, count) in [(2, 1), (10, 9), (10, 1)] {
                let b = crafted::count_too_small(codec, present, count);
                assert!(refused(&b, &limits()).contains("remain"), "{codec:?} {present} as {count}");
            }
        }
    }

    #[test]
    fn offset_deltas_are_free_when_uncompressed_and_must_count_up_when_compressed() {
        for deltas in [[0, 0, 2], [0, 2, 1], [1, 2, 3], [0, 1, 5]] {
            assert_eq!(keyless_of(&crafted::offset_deltas(Codec::None, deltas), &limits()), Ok(vec![]), "Kafka keeps them: {deltas:?}");
            for codec in &ALL_CODECS[1..] {
                let b = crafted::offset_deltas(*codec, deltas);
                assert!(refused(&b, &limits()).contains("offset deltas"), "{codec:?} {deltas:?}");
            }
        }
        for codec in ALL_CODECS {
            assert_eq!(keyless_of(&crafted::offset_deltas(codec, [0, 1, 2]), &limits()), Ok(vec![]), "{codec:?}");
        }
    }

    #[test]
    fn record_lengths_that_run_past_the_end_or_are_not_positive_are_refused() {
        for codec in ALL_CODECS {
            assert!(refused(&crafted::length_past_end(codec, 32), &limits()).contains("past the end"), "{codec:?}");
            assert!(refused(&crafted::length_past_end(codec, 0), &limits()).contains("not positive"), "{codec:?}");
            assert!(refused(&crafted::length_past_end(codec, -5), &limits()).contains("not positive"), "{codec:?}");
            // A cut varint is the end of the records in the middle of a record's length.
            refused(&crafted::truncated_varint(codec), &limits());
        }
    }

    #[test]
    fn fields_that_disagree_with_the_record_length_are_refused() {
        // Key length 10 inside a record whose length leaves room for 1.
        let mut r = crafted::record(0, Some(b"k"), b"v");
        r[4] = 20; // zigzag 10
        let b = crafted::assemble(Codec::None, 1, 0, &r);
        assert!(refused(&b, &limits()).contains("past its length"));
        // A record length one byte longer than its fields, with a spare byte after them.
        let mut r = crafted::record(0, Some(b"k"), b"v");
        r[0] += 2;
        r.push(0);
        let b = crafted::assemble(Codec::None, 1, 0, &r);
        refused(&b, &limits());
        // A 6-byte varint.
        let b = crafted::assemble(Codec::None, 1, 0, &[0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert!(refused(&b, &limits()).contains("too long"));
    }

    fn lz4_frame(raw: &[u8], configure: impl Fn(&mut lz4::EncoderBuilder)) -> Vec<u8> {
        use std::io::Write;
        let mut builder = lz4::EncoderBuilder::new();
        builder.block_mode(lz4::BlockMode::Independent);
        configure(&mut builder);
        let mut e = builder.build(Vec::new()).expect("in memory");
        e.write_all(raw).expect("in memory");
        let (out, r) = e.finish();
        r.expect("in memory");
        out
    }

    #[test]
    fn lz4_frames_of_every_shape_kafka_clients_write_are_read() {
        // 300 records of pseudo-random bytes (stored blocks) and of text (compressed blocks).
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut noise = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect()
        };
        let random: Vec<u8> = (0..300).flat_map(|i: i32| crafted::record(i, Some(b"k"), &noise(300))).collect();
        let text = crafted::records(300);
        // A hand-made frame with one stored (uncompressed) block, as encoders write for data that
        // does not compress.
        let mut stored = LZ4_FRAME_MAGIC.to_le_bytes().to_vec();
        stored.extend([0x60, 0x40, 0x00]);
        stored.extend((text.len() as u32 | 0x8000_0000).to_le_bytes());
        stored.extend(&text);
        stored.extend(0u32.to_le_bytes());
        assert_eq!(keyless_of(&crafted::assemble(Codec::Lz4, 300, 299, &stored), &limits()), Ok(vec![]));
        for raw in [&random, &text] {
            let frames = [
                lz4_frame(raw, |_| {}),
                lz4_frame(raw, |b| {
                    b.block_size(lz4::BlockSize::Max4MB).checksum(lz4::ContentChecksum::ChecksumEnabled);
                }),
                lz4_frame(raw, |b| {
                    b.block_size(lz4::BlockSize::Max256KB).block_checksum(lz4::liblz4::BlockChecksum::BlockChecksumEnabled);
                }),
            ];
            for f in frames {
                assert_eq!(keyless_of(&crafted::assemble(Codec::Lz4, 300, 299, &f), &limits()), Ok(vec![]));
            }
        }
        // Two frames back to back are one stream of records.
        let (first, second) = text.split_at(crafted::records(100).len());
        let mut two = lz4_frame(first, |_| {});
        two.extend(lz4_frame(second, |_| {}));
        assert_eq!(keyless_of(&crafted::assemble(Codec::Lz4, 300, 299, &two), &limits()), Ok(vec![]));
        // Dependent blocks: Kafka's reader refuses them, so does this one.
        let mut builder = lz4::EncoderBuilder::new();
        builder.block_mode(lz4::BlockMode::Linked);
        let mut e = builder.build(Vec::new()).expect("in memory");
        std::io::Write::write_all(&mut e, &text).expect("in memory");
        let dependent = e.finish().0;
        assert!(refused(&crafted::assemble(Codec::Lz4, 300, 299, &dependent), &limits()).contains("decompress"));
    }

    #[test]
    fn compressed_streams_that_do_not_decode_are_refused() {
        for codec in &ALL_CODECS[1..] {
            refused(&crafted::garbage_payload(*codec), &limits());
            refused(&crafted::truncated_stream(*codec, 50), &limits());
            refused(&crafted::assemble(*codec, 1, 0, &[]), &limits());
        }
    }

    #[test]
    fn a_snappy_block_claiming_more_than_snappy_can_expand_is_refused_before_sizing_a_buffer() {
        // Raw block header: varint 0xFFFFFFFF (4 GiB) and one literal byte.
        let b = crafted::assemble(Codec::Snappy, 1, 0, &[0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, b'x']);
        refused(&b, &limits());
        let mut framed = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01".to_vec();
        framed.extend(7u32.to_be_bytes());
        framed.extend([0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, b'x']);
        refused(&crafted::assemble(Codec::Snappy, 1, 0, &framed), &limits());
    }

    #[test]
    fn a_gib_record_in_a_small_zstd_batch_is_refused_at_its_length() {
        let b = crafted::zstd_bomb_one_record(GIB);
        assert!(b.len() < 128 << 10, "the bomb is {} bytes", b.len());
        for l in [limits(), compacted()] {
            assert!(matches!(keyless_of(&b, &l), Err(WalkError::RecordTooLarge { size, max: 1_048_588 }) if size > GIB));
        }
    }

    #[test]
    fn a_gib_of_records_past_the_count_is_refused_after_the_counted_ones() {
        let b = crafted::zstd_bomb_trailing(GIB);
        assert!(refused(&b, &compacted()).contains("remain"));
    }

    #[test]
    fn a_gib_of_legal_records_is_walked_through_a_small_buffer() {
        // 256 records of 4 MiB zeros: legal under a 8 MiB record bound. The walk skips every value
        // through SCRATCH_BYTES; nothing here holds a record, so this is the memory bound in
        // action (tests/hostile_records.rs measures the broker's resident memory around it).
        let b = crafted::zstd_bomb_big_records(256, 4);
        assert!(b.len() < 1 << 20, "the bomb is {} bytes", b.len());
        let l = WalkLimits { record_bytes_max: 8 << 20, need_keys: true, timestamps: None };
        assert_eq!(keyless_of(&b, &l), Ok(vec![]));
        // The same batch under the default bound: refused at the first record's length.
        assert!(matches!(keyless_of(&b, &limits()), Err(WalkError::RecordTooLarge { .. })));
    }

    #[test]
    fn the_missing_key_list_is_capped() {
        let n = MISSING_KEY_INDEXES_MAX as i32 + 50;
        let raw: Vec<u8> = (0..n).flat_map(|i| crafted::record(i, None, b"")).collect();
        let b = crafted::assemble(Codec::Zstd, n, n - 1, &crafted::compress(Codec::Zstd, &raw));
        let keyless = keyless_of(&b, &compacted()).expect("walks");
        assert_eq!(keyless.len(), MISSING_KEY_INDEXES_MAX);
        assert_eq!(keyless[..3], [0, 1, 2]);
    }

    #[test]
    fn kafka_protocol_decoding_survives_a_lying_count_without_a_huge_reservation() {
        // Defense in depth (vendor/kafka-protocol/PATCHES.md): the cleaner, ListOffsets and the
        // internal topics still decode whole batches from disk with kafka-protocol.
        for codec in ALL_CODECS {
            let mut b = bytes::Bytes::from(crafted::lying_count(codec, i32::MAX));
            assert!(kafka_protocol::records::RecordBatchDecoder::decode(&mut b).is_err(), "{codec:?}");
        }
        let mut b = bytes::Bytes::from(crafted::assemble(Codec::Snappy, 1, 0, &[0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, b'x']));
        assert!(kafka_protocol::records::RecordBatchDecoder::decode(&mut b).is_err());
    }

    proptest! {
        #[test]
        fn garbage_records_never_panic(codec in 0usize..5, count in any::<i32>(), payload in proptest::collection::vec(any::<u8>(), 0..200)) {
            let b = crafted::assemble(ALL_CODECS[codec], count.max(1), count.max(1) - 1, &payload);
            let _ = keyless_of(&b, &limits());
            let _ = keyless_of(&b, &compacted());
        }

        #[test]
        fn mutated_record_bytes_never_panic_and_valid_ones_walk(codec in 0usize..5, n in 1i32..20, flip in any::<usize>(), bit in 0u8..8) {
            let codec = ALL_CODECS[codec];
            let raw = crafted::records(n);
            let b = crafted::assemble(codec, n, n - 1, &crafted::compress(codec, &raw));
            prop_assert_eq!(keyless_of(&b, &limits()), Ok(vec![]));
            let mut raw = raw;
            let i = flip % raw.len();
            raw[i] ^= 1 << bit;
            let b = crafted::assemble(codec, n, n - 1, &crafted::compress(codec, &raw));
            let _ = keyless_of(&b, &compacted());
        }

        #[test]
        fn any_count_other_than_the_records_present_is_refused(codec in 0usize..5, n in 1i32..30, claimed in 1i32..i32::MAX) {
            prop_assume!(claimed != n);
            let codec = ALL_CODECS[codec];
            let b = crafted::assemble(codec, claimed, claimed - 1, &crafted::compress(codec, &crafted::records(n)));
            prop_assert!(matches!(keyless_of(&b, &limits()), Err(WalkError::Invalid(_))));
        }
    }
}
