//! Every WebSocket close code and `error` frame code of the three sockets, in one table, so
//! a code a client acts on (reconnect, log in again, give up) is spelled once. The meaning of
//! each is in docs/relay-protocol.md, docs/gateway-protocol.md and
//! docs/board-sync-protocol.md.

use serde::Serialize;

/// Why the server closed a socket: the code of the WebSocket close frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Close {
    /// The server is shutting down: reconnect (through the load balancer, to another
    /// instance).
    GoingAway = 1001,
    /// The peer broke the WebSocket protocol.
    ProtocolError = 1002,
    /// A frame over the 16 MiB protocol limit (smaller ones over WS_MAX_FRAME_BYTES get
    /// an `error` frame and the socket stays).
    TooLarge = 1009,
    /// The board socket could not be set up on our side: retry.
    InternalError = 1011,
    /// The instance holds WS_MAX_CONNECTIONS_PER_INSTANCE sockets: retry later.
    TryAgainLater = 1013,
    /// A newer link of the same gateway took over (on any instance).
    Replaced = 4000,
    /// Authentication failed, or the account was suspended; the board socket's
    /// "unauthorized" and "board access denied" too.
    AuthFailed = 4001,
    /// The board socket's board is unknown, of another organization, or not a UUID.
    BoardNotFound = 4004,
    /// Nothing came for WS_HEARTBEAT_TIMEOUT_SECONDS.
    HeartbeatTimeout = 4008,
    /// The client did not take its frames: over WS_OUTBOUND_QUEUE_BYTES were queued.
    TooSlow = 4009,
}

impl Close {
    pub const fn code(self) -> u16 {
        self as u16
    }
}

/// The `payload.code` of an `error` frame on the H5 chat socket and the gateway relay link
/// (and of the board socket's binary-frame refusal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    InvalidJson,
    MissingType,
    UnknownType,
    MissingFields,
    InvalidAgentId,
    AssignmentNotFound,
    AgentUnavailable,
    GatewayOffline,
    FrameTooLarge,
    AuthRequired,
    AuthPending,
    AlreadyAuthenticated,
    BinaryNotSupported,
    SessionNotFound,
    /// The gateway refused a message, or the agent's run for it failed.
    AgentError,
    /// Text that cannot be stored (a NUL character): sending it again cannot succeed.
    InvalidText,
    Internal,
}

/// The `code` of a board socket's `error` frame for a refused request (the socket stays);
/// the board's closing `error` frames carry a `Close` code instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BoardErrorCode {
    InvalidJson,
    NotReady,
    UnknownType,
    InvalidFrame,
    FrameTooLarge,
    /// Text that cannot be stored (a NUL character).
    InvalidText,
    /// The REST rules refused a `task.move` or `task.create`.
    Refused,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_documented_ones() {
        assert_eq!(Close::Replaced.code(), 4000);
        assert_eq!(Close::TooSlow.code(), 4009);
        assert_eq!(
            serde_json::to_value(ErrorCode::InvalidAgentId).unwrap(),
            "INVALID_AGENT_ID"
        );
        assert_eq!(
            serde_json::to_value(BoardErrorCode::FrameTooLarge).unwrap(),
            "frame_too_large"
        );
    }
}
