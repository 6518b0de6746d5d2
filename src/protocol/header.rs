//! Request and response headers. The ApiVersions response header is always v0 (no tagged fields),
//! whatever the request version, because clients parse it before they know our versions.

use bytes::{Buf, BufMut, Bytes};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use super::chain::{Chain, Piece};

/// The fixed first 8 bytes of every request header; readable even for versions we do not know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderPrefix {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
}

pub fn peek_prefix(frame: &[u8]) -> Option<HeaderPrefix> {
    if frame.len() < 8 {
        return None;
    }
    let mut b = &frame[..8];
    Some(HeaderPrefix { api_key: b.get_i16(), api_version: b.get_i16(), correlation_id: b.get_i32() })
}

/// Decodes the full request header of a known api key and version, leaving `body` at the body.
pub fn decode_request_header(api_key: ApiKey, version: i16, body: &mut Bytes) -> anyhow::Result<RequestHeader> {
    let header_version = api_key.request_header_version(version);
    RequestHeader::decode(body, header_version)
}

/// Encodes a response frame (length prefix, header at the API's response header version, body)
/// as a chain of pieces: large byte fields are not copied, and placeholders (record batches left
/// in a segment file) become slots.
pub fn encode_response_pieces<M: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &M,
) -> anyhow::Result<Vec<Piece>> {
    let header_version = if api_key == ApiKey::ApiVersions { 0 } else { api_key.response_header_version(version) };
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let size = header.compute_size(header_version)? + body.compute_size(version)?;
    // Everything but shared values goes in the first chunks; a small response is one chunk.
    let mut buf = Chain::with_capacity((4 + size).min(64 * 1024));
    buf.put_i32(size as i32);
    header.encode(&mut buf, header_version)?;
    body.encode(&mut buf, version)?;
    anyhow::ensure!(buf.len() == 4 + size, "encoded {} bytes, computed {}", buf.len(), 4 + size);
    Ok(buf.into_pieces())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::ApiVersionsResponse;

    #[test]
    fn api_versions_response_header_has_no_tagged_fields_even_at_v3() {
        let pieces = encode_response_pieces(ApiKey::ApiVersions, 3, 7, &ApiVersionsResponse::default()).unwrap();
        let [Piece::Bytes(frame)] = &pieces[..] else { panic!("a small response is one piece: {pieces:?}") };
        // length(4) + correlation id(4), then the body starts with error_code (2 bytes of zero).
        assert_eq!(&frame[4..8], &7i32.to_be_bytes());
        assert_eq!(&frame[8..10], &[0, 0]);
        assert_eq!(i32::from_be_bytes(frame[..4].try_into().unwrap()) as usize, frame.len() - 4);
    }

    #[test]
    fn prefix_needs_eight_bytes() {
        assert_eq!(peek_prefix(&[0; 7]), None);
        let p = peek_prefix(&[0, 18, 0, 3, 0, 0, 0, 9]).unwrap();
        assert_eq!(p, HeaderPrefix { api_key: 18, api_version: 3, correlation_id: 9 });
    }
}
