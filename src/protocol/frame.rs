//! The 4-byte big-endian length prefix of every Kafka request and response. Rejects negative and
//! oversized lengths before anything is allocated; knows nothing of sockets.

/// Why a frame length was refused. Either way the connection is closed, as Kafka does.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("negative frame length {0}")]
    Negative(i32),
    #[error("frame of {len} bytes is larger than the limit ({max})")]
    TooLarge { len: usize, max: usize },
    #[error("frame of {0} bytes is too short to hold a request header")]
    TooShort(usize),
}

/// Smallest request: api key (2) + api version (2) + correlation id (4).
pub const REQUEST_HEADER_MIN_BYTES: usize = 8;

/// Checks a request length prefix against `socket.request.max.bytes`.
pub fn check_request_len(prefix: [u8; 4], max_bytes: usize) -> Result<usize, FrameError> {
    check_len(prefix, max_bytes, REQUEST_HEADER_MIN_BYTES)
}

/// Smallest response: the correlation id.
pub const RESPONSE_HEADER_MIN_BYTES: usize = 4;

/// Checks a response length prefix (read by Fjord's own outbound client) against the most the
/// caller accepts.
pub fn check_response_len(prefix: [u8; 4], max_bytes: usize) -> Result<usize, FrameError> {
    check_len(prefix, max_bytes, RESPONSE_HEADER_MIN_BYTES)
}

fn check_len(prefix: [u8; 4], max_bytes: usize, min_bytes: usize) -> Result<usize, FrameError> {
    let len = i32::from_be_bytes(prefix);
    if len < 0 {
        return Err(FrameError::Negative(len));
    }
    let len = len as usize;
    if len > max_bytes {
        return Err(FrameError::TooLarge { len, max: max_bytes });
    }
    if len < min_bytes {
        return Err(FrameError::TooShort(len));
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_lengths_within_limit() {
        assert_eq!(check_request_len(100i32.to_be_bytes(), 100), Ok(100));
    }

    #[test]
    fn rejects_negative_oversized_and_short() {
        assert_eq!(check_request_len((-1i32).to_be_bytes(), 100), Err(FrameError::Negative(-1)));
        assert_eq!(check_request_len(101i32.to_be_bytes(), 100), Err(FrameError::TooLarge { len: 101, max: 100 }));
        assert_eq!(check_request_len(3i32.to_be_bytes(), 100), Err(FrameError::TooShort(3)));
        assert!(check_request_len(i32::MAX.to_be_bytes(), 104857600).is_err());
    }

    #[test]
    fn response_lengths_are_checked_the_same_way() {
        assert_eq!(check_response_len(4i32.to_be_bytes(), 100), Ok(4));
        assert_eq!(check_response_len((-5i32).to_be_bytes(), 100), Err(FrameError::Negative(-5)));
        assert_eq!(check_response_len(101i32.to_be_bytes(), 100), Err(FrameError::TooLarge { len: 101, max: 100 }));
        assert_eq!(check_response_len(3i32.to_be_bytes(), 100), Err(FrameError::TooShort(3)));
    }
}
