//! A minimal server-sent-events reader for lock watches.

/// Splits a byte stream into `(event, data)` messages.
#[derive(Default)]
pub struct SseParser {
    buf: Vec<u8>,
}

/// Bound on a buffered message, so a misbehaving server cannot grow it.
const MESSAGE_MAX: usize = 64 << 10;

impl SseParser {
    /// Feed bytes; returns complete messages, or `None` if the stream is bad.
    pub fn feed(&mut self, bytes: &[u8]) -> Option<Vec<(String, String)>> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(pos) = self.buf.windows(2).position(|w| w == b"\n\n") {
            let msg: Vec<u8> = self.buf.drain(..pos + 2).collect();
            let text = String::from_utf8_lossy(&msg);
            let (mut event, mut data) = (String::new(), String::new());
            for line in text.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    event = v.to_string();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data.push_str(v);
                }
            }
            if !event.is_empty() {
                out.push((event, data));
            }
        }
        (self.buf.len() <= MESSAGE_MAX).then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_messages_across_chunks() {
        let mut p = SseParser::default();
        assert_eq!(
            p.feed(b"event: held\ndata: {\"a\":1}\n\nevent: lo").expect("ok"),
            vec![("held".into(), "{\"a\":1}".into())]
        );
        assert_eq!(p.feed(b"st\ndata: x\n\n").expect("ok"), vec![("lost".into(), "x".into())]);
    }

    #[test]
    fn unbounded_message_is_refused() {
        let mut p = SseParser::default();
        assert!(p.feed(&vec![b'a'; MESSAGE_MAX + 1]).is_none());
    }
}
