//! Checksummed binary frames: `len u32 | crc32c u32 | postcard payload`.
//!
//! Used for every record on disk and every message between replicas, so that
//! a torn write or a corrupted byte is detected instead of being believed.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Bytes before the payload.
pub const HEADER_LEN: usize = 8;
/// The largest payload accepted (64 MiB), so a corrupted length cannot make a
/// reader allocate without bound.
pub const PAYLOAD_MAX: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame is truncated: need {need} bytes, have {have}")]
    Truncated { need: usize, have: usize },
    #[error("frame checksum mismatch (stored {stored:08x}, computed {computed:08x})")]
    Checksum { stored: u32, computed: u32 },
    #[error("frame length {0} exceeds the limit")]
    TooLong(usize),
    #[error("frame payload does not decode: {0}")]
    Decode(#[from] postcard::Error),
}

/// Encode `value` as one frame appended to `out`.
pub fn encode_into<T: Serialize>(value: &T, out: &mut Vec<u8>) -> Result<(), FrameError> {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    let mut out2 = postcard::to_extend(value, std::mem::take(out))?;
    let len = out2.len() - start - HEADER_LEN;
    if len > PAYLOAD_MAX {
        out2.truncate(start);
        *out = out2;
        return Err(FrameError::TooLong(len));
    }
    let crc = crc32c::crc32c(&out2[start + HEADER_LEN..]);
    out2[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
    out2[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    *out = out2;
    Ok(())
}

/// Encode `value` as one frame.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::new();
    encode_into(value, &mut out)?;
    Ok(out)
}

/// Decode the first frame of `buf`; returns the value and the bytes consumed.
pub fn decode<T: DeserializeOwned>(buf: &[u8]) -> Result<(T, usize), FrameError> {
    if buf.len() < HEADER_LEN {
        return Err(FrameError::Truncated { need: HEADER_LEN, have: buf.len() });
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let stored = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    if len > PAYLOAD_MAX {
        return Err(FrameError::TooLong(len));
    }
    let end = HEADER_LEN + len;
    let payload = buf.get(HEADER_LEN..end).ok_or(FrameError::Truncated { need: end, have: buf.len() })?;
    let computed = crc32c::crc32c(payload);
    if computed != stored {
        return Err(FrameError::Checksum { stored, computed });
    }
    Ok((postcard::from_bytes(payload)?, end))
}

/// Decode a buffer holding exactly one frame.
pub fn decode_exact<T: DeserializeOwned>(buf: &[u8]) -> Result<T, FrameError> {
    let (v, n) = decode(buf)?;
    if n != buf.len() {
        return Err(FrameError::Truncated { need: n, have: buf.len() });
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption_detected() {
        let f = encode(&("lock", 42u64)).expect("encodes");
        let (v, n): ((String, u64), usize) = decode(&f).expect("decodes");
        assert_eq!((v.0.as_str(), v.1, n), ("lock", 42, f.len()));
        for i in 0..f.len() {
            let mut bad = f.clone();
            bad[i] ^= 0x40;
            assert!(decode::<(String, u64)>(&bad).is_err(), "flipped byte {i} went unnoticed");
        }
        assert!(matches!(decode::<(String, u64)>(&f[..f.len() - 1]), Err(FrameError::Truncated { .. })));
    }
}
