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

/// How a log of frames ended, when it did not end cleanly.
#[derive(Debug)]
pub struct TornTail {
    /// Where the damage starts: the length of the intact prefix.
    pub offset: usize,
    /// Bytes from `offset` to the end, to be cut off.
    pub bytes: usize,
    pub error: FrameError,
}

impl TornTail {
    /// Cut this tail off `file` on `disk`, durably, and say so in the log.
    /// `what` names the log in the warning ("raft log", "store WAL"), which
    /// operators search for: "{what} has a torn or corrupt tail ...".
    /// Returns the bytes dropped.
    pub fn cut(&self, disk: &dyn crate::disk::Disk, file: &str, what: &str) -> std::io::Result<u64> {
        tracing::warn!(
            offset = self.offset,
            dropped_bytes = self.bytes,
            error = %self.error,
            "{what} has a torn or corrupt tail (a crash during an append); truncating it"
        );
        disk.truncate(file, self.offset as u64)?;
        Ok(self.bytes as u64)
    }
}

/// A damaged frame followed by intact ones: not a torn tail (a crash mid-append
/// damages only the end), so cutting it off would drop records that were
/// durable, perhaps acknowledged.
#[derive(Debug, thiserror::Error)]
#[error("record at byte {offset} is damaged ({error}), but intact records follow at byte {next}")]
pub struct MidLogCorruption {
    pub offset: usize,
    pub next: usize,
    pub error: FrameError,
}

/// Read a log made of consecutive frames of `T`, calling `each` for every
/// record in order. Returns `Ok(None)` if the whole buffer is intact, and
/// `Ok(Some(tail))` if it ends with a torn or corrupt tail (the caller cuts
/// it off and reports it). A damaged frame that is followed, anywhere later,
/// by an intact frame of `T` is corruption in the middle of the log: that is
/// an error, and the caller must not serve from what it read.
///
/// This is a pure function of the bytes, so that it can be fuzzed.
pub fn read_log<T: DeserializeOwned>(
    buf: &[u8],
    mut each: impl FnMut(T),
) -> Result<Option<TornTail>, MidLogCorruption> {
    let mut at = 0usize;
    while at < buf.len() {
        match decode::<T>(&buf[at..]) {
            Ok((v, n)) => {
                each(v);
                at += n;
            }
            Err(error) => {
                return match next_intact::<T>(buf, at + 1) {
                    Some(next) => Err(MidLogCorruption { offset: at, next, error }),
                    None => Ok(Some(TornTail { offset: at, bytes: buf.len() - at, error })),
                };
            }
        }
    }
    Ok(None)
}

/// The first offset at or after `from` where an intact frame of `T` starts.
///
/// Cheap on the garbage a torn write leaves: a position is only checksummed
/// if its length field fits in the rest of the buffer.
fn next_intact<T: DeserializeOwned>(buf: &[u8], from: usize) -> Option<usize> {
    (from..buf.len()).find(|&p| decode::<T>(&buf[p..]).is_ok())
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

    fn log_of(values: &[u64]) -> Vec<u8> {
        let mut out = Vec::new();
        for v in values {
            encode_into(v, &mut out).expect("encodes");
        }
        out
    }

    #[test]
    fn read_log_reads_an_intact_log() {
        let buf = log_of(&[1, 2, 3]);
        let mut seen = Vec::new();
        assert!(read_log::<u64>(&buf, |v| seen.push(v)).expect("intact").is_none());
        assert_eq!(seen, [1, 2, 3]);
    }

    #[test]
    fn read_log_reports_a_torn_tail() {
        let buf = log_of(&[1, 2, 3]);
        let whole = buf.len();
        let last = log_of(&[3]).len();
        for cut in whole - last + 1..whole {
            let mut seen = Vec::new();
            let tail = read_log::<u64>(&buf[..cut], |v| seen.push(v)).expect("a torn tail is not an error");
            let tail = tail.expect("reported");
            assert_eq!((tail.offset, tail.bytes, seen.as_slice()), (whole - last, cut - (whole - last), &[1, 2][..]));
        }
        // A corrupt last record is a tail too.
        let mut bad = buf.clone();
        bad[whole - 1] ^= 0xff;
        assert_eq!(read_log::<u64>(&bad, |_| ()).expect("tail").expect("reported").offset, whole - last);
    }

    #[test]
    fn read_log_refuses_damage_in_the_middle() {
        let buf = log_of(&[1, 2, 3]);
        let first = log_of(&[1]).len();
        for i in first..2 * first {
            let mut bad = buf.clone();
            bad[i] ^= 0x10;
            let err = read_log::<u64>(&bad, |_| ()).expect_err("middle damage must not pass as a torn tail");
            assert_eq!((err.offset, err.next), (first, 2 * first), "flipped byte {i}");
        }
    }
}
