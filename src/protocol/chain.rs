//! A response buffer that keeps large shared byte values (a fetch response's record batches) by
//! reference instead of copying them: a chain of chunks, written to the socket with one vectored
//! write. Pure bytes; no I/O here.

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::buf::ByteBufMut;

/// Values at least this long are kept by reference; shorter ones are cheaper to copy than to
/// give their own iovec.
pub const SHARE_MIN_BYTES: usize = 4096;

/// Encoded bytes as a list of chunks, in order.
#[derive(Debug, Default)]
pub struct Chain {
    done: Vec<Bytes>,
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

    /// The chunks, in order (empty ones left out).
    pub fn into_chunks(mut self) -> Vec<Bytes> {
        if !self.tail.is_empty() {
            self.done.push(self.tail.freeze());
        }
        self.done
    }

    fn seal_tail(&mut self) {
        if !self.tail.is_empty() {
            let t = self.tail.split().freeze();
            self.done_len += t.len();
            self.done.push(t);
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
        if bytes.len() < SHARE_MIN_BYTES {
            self.put_slice(bytes);
            return;
        }
        self.seal_tail();
        self.done_len += bytes.len();
        self.done.push(bytes.clone());
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
            let chunks = chain.into_chunks();
            assert_eq!(chunks.concat(), flat.to_vec(), "v{version}: same bytes");
            let shared = chunks.iter().filter(|c| c.as_ptr() == big.as_ptr()).count();
            assert_eq!(shared, 2, "v{version}: both large record sets by reference");
        }
    }

    #[test]
    fn seeking_within_the_tail_works_and_empty_chains_have_no_chunks() {
        let mut c = Chain::default();
        assert!(c.is_empty() && Chain::default().into_chunks().is_empty());
        c.put_slice(b"abcd");
        c.seek(6);
        c.range(4..6).copy_from_slice(b"ef");
        assert_eq!(c.into_chunks().concat(), b"abcdef");
    }
}
