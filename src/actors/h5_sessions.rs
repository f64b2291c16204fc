//! Where account changes reach open H5 chat sockets. The chat relay fills this in (it owns
//! the H5Session actors); until then a suspension only records itself in the log, and the
//! suspended user's tokens already stop working at the next request.

use uuid::Uuid;

#[derive(Debug, Clone, Default)]
pub struct H5Sessions;

impl H5Sessions {
    /// Closes every socket of this user, on every instance.
    pub fn close_user(&self, user_id: Uuid, reason: &str) {
        tracing::info!(%user_id, reason, "closing H5 sessions");
    }
}
