//! H5 users' chat messages in sessions their sockets know, written in group commits
//! (`GroupCommit<UserMessageWrites>`, one per instance): all that came while the batch
//! before them was written go in one transaction (`h5_chat::store_user_messages`), and each
//! socket hears of its message (and acknowledges it `stored`, and routes it) only after
//! that commit. A socket's first message to an agent, which may create the session, is
//! stored by the socket itself (`h5_chat::accept_user_message`).

use futures_util::future::{FutureExt, LocalBoxFuture};

use super::group_commit::{each_outcome, GroupCommit, Write};
use crate::db::PgPool;
use crate::domain::h5::chat::{self as h5_chat, ChatMessage, UserMessageIn};
use crate::domain::DomainError;

/// The instance's writer of user messages.
pub type ChatWrites = GroupCommit<UserMessageWrites>;

pub struct UserMessageWrites {
    pub db: PgPool,
}

/// A batch together, in one transaction; a message alone, its statement committing by
/// itself (`each_outcome` says what a batch that failed answers).
impl Write for UserMessageWrites {
    type Item = UserMessageIn;
    /// As `h5_chat::store_user_message` answers (`None`: the assignment check failed), or
    /// why it was not stored.
    type Outcome = Result<Option<(ChatMessage, bool)>, String>;
    const BATCH: usize = 200;

    fn write(&self, messages: Vec<UserMessageIn>) -> LocalBoxFuture<'static, Vec<Self::Outcome>> {
        let db = self.db.clone();
        async move {
            if let [message] = messages.as_slice() {
                return vec![alone(&db, message).await];
            }
            let together = async {
                let mut conn = db.get().await?;
                let tx = conn.transaction().await?;
                let stored = h5_chat::store_user_messages(&tx, &messages).await?;
                tx.commit().await?;
                Ok::<_, DomainError>(stored)
            };
            let together = together.await;
            each_outcome("chat messages", &messages, together, |m| alone(&db, m)).await
        }
        .boxed_local()
    }
}

/// One message, its statement committing by itself.
async fn alone(
    db: &PgPool,
    message: &UserMessageIn,
) -> Result<Option<(ChatMessage, bool)>, String> {
    let conn = db.get().await.map_err(|e| e.to_string())?;
    let mut stored = h5_chat::store_user_messages(&*conn, std::slice::from_ref(message))
        .await
        .map_err(|e| e.to_string())?;
    Ok(stored.pop().flatten())
}
