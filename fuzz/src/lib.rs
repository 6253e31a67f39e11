//! Helpers shared by the fuzz targets.

/// Append `payload` as a frame with a correct header (length and CRC32C), so
/// that the fuzzer's bytes reach the payload decoder instead of stopping at
/// the checksum. The layout is `fenced_io::frame`'s; `framed_matches_the_codec`
/// below keeps the two in step.
pub fn push_frame(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// `payload` as one frame.
pub fn framed(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + fenced_io::frame::HEADER_LEN);
    push_frame(&mut out, payload);
    out
}

/// Frames, then raw bytes (a torn or corrupt tail, or garbage).
pub fn log_bytes(records: &[Vec<u8>], tail: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        push_frame(&mut out, r);
    }
    out.extend_from_slice(tail);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn framed_matches_the_codec() {
        let real = fenced_io::frame::encode(&("x", 7u64)).expect("encodes");
        assert_eq!(super::framed(&real[fenced_io::frame::HEADER_LEN..]), real);
    }
}
