//! The OpenClaw tunnel of a relay link (docs/connector.md): a connector on the gateway's host
//! carries whole TCP connections between Mission Control and the local gateway, so that our
//! OpenClaw client speaks to a gateway behind NAT exactly as to one it dials.
//!
//! A gateway asks for it with `"openclaw.tunnel"` in its `auth` capabilities. Then, on the
//! same link:
//! - `{"type":"tunnel.open","payload":{"stream":N}}` (server → connector): open connection N
//!   to the local gateway;
//! - binary frames `[N: u32 big-endian][bytes]`, both ways: that connection's bytes, in order;
//! - `{"type":"tunnel.close","payload":{"stream":N,"reason"?}}`, both ways: connection N is
//!   over (the other side closes its end; a refused or failed open is closed with a reason).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// What a connector lists among its `auth` capabilities to carry the tunnel.
pub const CAPABILITY: &str = "openclaw.tunnel";

/// The largest binary tunnel frame either side sends (bytes after the header).
pub const CHUNK: usize = 64 * 1024;

/// Control frames, both ways.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Control {
    #[serde(rename = "tunnel.open")]
    Open { payload: Stream },
    #[serde(rename = "tunnel.close")]
    Close { payload: Stream },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stream {
    pub stream: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Control {
    pub fn open(stream: u32) -> Control {
        Control::Open {
            payload: Stream {
                stream,
                reason: None,
            },
        }
    }

    pub fn close(stream: u32, reason: Option<String>) -> Control {
        Control::Close {
            payload: Stream { stream, reason },
        }
    }

    /// A text frame that is a tunnel control frame; `None` for any other frame.
    pub fn read(text: &str) -> Option<Control> {
        serde_json::from_str(text).ok()
    }
}

/// A binary frame carrying `bytes` of connection `stream`.
pub fn data(stream: u32, bytes: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(4 + bytes.len());
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(bytes);
    frame
}

/// The stream and bytes of a binary frame (sharing its buffer); `None` when it is shorter
/// than its header.
pub fn read_data(frame: &Bytes) -> Option<(u32, Bytes)> {
    let head = frame.first_chunk::<4>()?;
    Some((u32::from_be_bytes(*head), frame.slice(4..)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_read_back_as_written() {
        let frame = Bytes::from(data(7, b"hello"));
        assert_eq!(read_data(&frame), Some((7, Bytes::from_static(b"hello"))));
        assert_eq!(read_data(&Bytes::from_static(&[0, 0, 1])), None);
        assert_eq!(
            read_data(&Bytes::from_static(&[0, 0, 0, 9])),
            Some((9, Bytes::new()))
        );
        let open = serde_json::to_string(&Control::open(3)).unwrap();
        assert_eq!(open, r#"{"type":"tunnel.open","payload":{"stream":3}}"#);
        assert_eq!(Control::read(&open), Some(Control::open(3)));
        let closed = r#"{"type":"tunnel.close","payload":{"stream":3,"reason":"refused"}}"#;
        assert_eq!(
            Control::read(closed),
            Some(Control::close(3, Some("refused".into())))
        );
        assert_eq!(Control::read(r#"{"type":"heartbeat"}"#), None);
    }
}
