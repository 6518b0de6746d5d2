//! A response buffer that keeps large shared byte values (a fetch response's record batches) by
//! reference instead of copying them, and marks the places where bytes that are not in memory
//! (record batches still in a segment file) belong: a chain of pieces. Pure bytes; no file or
//! socket I/O here.

use std::sync::OnceLock;

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::buf::ByteBufMut;

/// Values at least this long are kept by reference; shorter ones are cheaper to copy than to
/// give their own iovec.
pub const SHARE_MIN_BYTES: usize = 4096;

/// Longest value a placeholder can stand for. Kafka sizes are i32, and a fetch response is far
/// smaller (fetch.max.bytes), so 1 GiB is never the limit in practice; beyond it the caller
/// falls back to real bytes.
pub const PLACEHOLDER_MAX_BYTES: usize = 1 << 30;

/// Placeholders one encoding can tell apart (one per partition of a fetch response).
pub const PLACEHOLDER_MAX_SLOTS: usize = 1 << 16;

/// One piece of an encoded message, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Bytes(Bytes),
    /// Where the value encoded from `placeholder(slot, len)` goes: `len` bytes the caller supplies.
    Slot { slot: usize, len: usize },
}

impl Piece {
    pub fn len(&self) -> usize {
        match self {
            Piece::Bytes(b) => b.len(),
            Piece::Slot { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The address range behind every placeholder: one read-only anonymous mapping, reserved once per
/// process and never touched, so it costs address space but no memory (the kernel backs untouched
/// pages with nothing). `None` if the kernel refused the mapping.
fn placeholder_region() -> Option<&'static [u8]> {
    static REGION: OnceLock<Option<&'static [u8]>> = OnceLock::new();
    *REGION.get_or_init(|| {
        let len = PLACEHOLDER_MAX_BYTES + PLACEHOLDER_MAX_SLOTS;
        // SAFETY: a fresh private anonymous mapping; no existing memory is affected.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            tracing::warn!(error = %std::io::Error::last_os_error(), "no placeholder mapping; fetches read records into memory");
            return None;
        }
        // SAFETY: the mapping is `len` readable bytes (zeros), never unmapped nor written, so a
        // shared 'static slice over it is valid for the life of the process.
        Some(unsafe { std::slice::from_raw_parts(p as *const u8, len) })
    })
}

/// A value of `len` bytes that stands for bytes supplied later: encoding it into a [`Chain`]
/// yields `Piece::Slot { slot, len }` instead of bytes. It lets kafka-protocol write a field's
/// length prefix for record batches that are still in a segment file, without allocating or
/// reading them. The slot is the placeholder's identity: its offset in a reserved address range.
/// `None` when `slot` or `len` is beyond the limits above, or the range could not be reserved:
/// the caller then uses real bytes.
pub fn placeholder(slot: usize, len: usize) -> Option<Bytes> {
    if slot >= PLACEHOLDER_MAX_SLOTS || len > PLACEHOLDER_MAX_BYTES || len == 0 {
        return None;
    }
    let region = placeholder_region()?;
    Some(Bytes::from_static(&region[slot..slot + len]))
}

/// The slot of a value made by [`placeholder`], recognised by its address.
fn slot_of(bytes: &Bytes) -> Option<usize> {
    let region = placeholder_region()?;
    let (base, at) = (region.as_ptr() as usize, bytes.as_ptr() as usize);
    (!bytes.is_empty() && at >= base && at - base < PLACEHOLDER_MAX_SLOTS).then(|| at - base)
}

/// Encoded bytes as a list of pieces, in order.
#[derive(Debug, Default)]
pub struct Chain {
    done: Vec<Piece>,
    done_len: usize,
    tail: BytesMut,
}

impl Chain {
    pub fn with_capacity(small_bytes: usize) -> Chain {
        Chain { done: Vec::new(), done_len: 0, tail: BytesMut::with_capacity(small_bytes) }
    }

    /// Total bytes encoded.
    pub fn len(&self) -> usize {
        self.done_len + self.tail.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The pieces, in order (empty ones left out).
    pub fn into_pieces(mut self) -> Vec<Piece> {
        if !self.tail.is_empty() {
            self.done.push(Piece::Bytes(self.tail.freeze()));
        }
        self.done
    }

    fn seal_tail(&mut self) {
        if !self.tail.is_empty() {
            let t = self.tail.split().freeze();
            self.done_len += t.len();
            self.done.push(Piece::Bytes(t));
        }
    }
}

// SAFETY: every method delegates to the tail BytesMut, which upholds BufMut's contract.
unsafe impl BufMut for Chain {
    fn remaining_mut(&self) -> usize {
        self.tail.remaining_mut()
    }
    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller initialised `cnt` bytes of the tail's chunk_mut.
        unsafe { self.tail.advance_mut(cnt) }
    }
    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.tail.chunk_mut()
    }
}

impl ByteBufMut for Chain {
    fn offset(&self) -> usize {
        self.len()
    }
    /// Message encoding never seeks (sizes are computed first); record-batch encoding, which
    /// does, writes into its own BytesMut. Seeking is supported within the tail only.
    fn seek(&mut self, offset: usize) {
        assert!(offset >= self.done_len, "seek into a sealed chunk");
        self.tail.resize(offset - self.done_len, 0);
    }
    fn range(&mut self, r: std::ops::Range<usize>) -> &mut [u8] {
        assert!(r.start >= self.done_len, "range in a sealed chunk");
        &mut self.tail[r.start - self.done_len..r.end - self.done_len]
    }
    fn put_bytes_shared(&mut self, bytes: &Bytes) {
        // A placeholder is never read, whatever its size: its bytes are zeros, not the value.
        if let Some(slot) = slot_of(bytes) {
            self.seal_tail();
            self.done_len += bytes.len();
            self.done.push(Piece::Slot { slot, len: bytes.len() });
            return;
        }
        if bytes.len() < SHARE_MIN_BYTES {
            self.put_slice(bytes);
            return;
        }
        self.seal_tail();
        self.done_len += bytes.len();
        self.done.push(Piece::Bytes(bytes.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::{FetchResponse, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    #[test]
    fn a_chain_encodes_the_same_bytes_as_a_flat_buffer_and_shares_large_values() {
        let big = Bytes::from(vec![7u8; 100_000]);
        let small = Bytes::from(vec![9u8; 100]);
        for version in [4i16, 11, 12, 13, 16, 17] {
            let part = |i: i32, records: &Bytes| PartitionData::default().with_partition_index(i).with_high_watermark(5).with_records(Some(records.clone()));
            let resp = FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![part(0, &big), part(1, &small), part(2, &big)])]);
            let mut flat = BytesMut::new();
            resp.encode(&mut flat, version).expect("flat");
            let mut chain = Chain::with_capacity(256);
            resp.encode(&mut chain, version).expect("chain");
            assert_eq!(chain.len(), flat.len(), "v{version}");
            let chunks = chain.into_pieces();
            assert_eq!(concat(&chunks), flat.to_vec(), "v{version}: same bytes");
            let shared = chunks.iter().filter(|c| matches!(c, Piece::Bytes(b) if b.as_ptr() == big.as_ptr())).count();
            assert_eq!(shared, 2, "v{version}: both large record sets by reference");
        }
    }

    #[test]
    fn seeking_within_the_tail_works_and_empty_chains_have_no_chunks() {
        let mut c = Chain::default();
        assert!(c.is_empty() && Chain::default().into_pieces().is_empty());
        c.put_slice(b"abcd");
        c.seek(6);
        c.range(4..6).copy_from_slice(b"ef");
        assert_eq!(concat(&c.into_pieces()), b"abcdef");
    }

    /// The bytes of pieces that are all in memory.
    fn concat(pieces: &[Piece]) -> Vec<u8> {
        pieces
            .iter()
            .flat_map(|p| match p {
                Piece::Bytes(b) => b.to_vec(),
                Piece::Slot { .. } => panic!("a slot where bytes were expected"),
            })
            .collect()
    }

    #[test]
    fn placeholders_become_slots_of_their_length_with_the_same_framing_as_real_bytes() {
        // 100 bytes: below SHARE_MIN_BYTES, a real value of that size would be copied; a
        // placeholder must still become a slot. 200_000: a large one.
        let (small, big) = (vec![1u8; 100], vec![2u8; 200_000]);
        for version in [4i16, 11, 12, 13, 16, 17] {
            let resp = |a: Bytes, b: Bytes| {
                let part = |i: i32, r: Bytes| PartitionData::default().with_partition_index(i).with_records(Some(r));
                FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
                    .with_topic(TopicName(StrBytes::from_static_str("t")))
                    .with_partitions(vec![part(0, a), part(1, b)])])
            };
            let mut flat = BytesMut::new();
            resp(Bytes::from(small.clone()), Bytes::from(big.clone())).encode(&mut flat, version).expect("flat");
            let held = resp(placeholder(0, small.len()).expect("slot 0"), placeholder(1, big.len()).expect("slot 1"));
            let mut chain = Chain::with_capacity(256);
            held.encode(&mut chain, version).expect("chain");
            assert_eq!(chain.len(), flat.len(), "v{version}");
            // Filling the slots with the real values gives exactly the flat encoding.
            let filled: Vec<u8> = chain
                .into_pieces()
                .into_iter()
                .flat_map(|p| match p {
                    Piece::Bytes(b) => b.to_vec(),
                    Piece::Slot { slot: 0, len } => { assert_eq!(len, small.len()); small.clone() }
                    Piece::Slot { slot: 1, len } => { assert_eq!(len, big.len()); big.clone() }
                    Piece::Slot { slot, .. } => panic!("unexpected slot {slot}"),
                })
                .collect();
            assert_eq!(filled, flat.to_vec(), "v{version}");
        }
    }

    #[test]
    fn placeholders_out_of_bounds_are_refused_and_ordinary_bytes_are_never_slots() {
        assert!(placeholder(PLACEHOLDER_MAX_SLOTS, 10).is_none());
        assert!(placeholder(0, PLACEHOLDER_MAX_BYTES + 1).is_none());
        assert!(placeholder(0, 0).is_none(), "an empty value needs no slot");
        assert_eq!(slot_of(&placeholder(7, 5000).expect("slot")), Some(7));
        assert_eq!(slot_of(&Bytes::from(vec![0u8; 5000])), None);
        assert_eq!(slot_of(&Bytes::from_static(b"abc")), None);
    }
}
