//! Where committed system events are broadcast (domain.md §B3): each goes out as the
//! reference's `SystemEvent` on `mc:events:{org_id}` and, for a board's event, also on
//! `mc:events:{org_id}:{board_id}`, over the bridge (so with its instance envelope).
//! Pub/sub is best effort: the `agent_events` row is the event's durable copy.

use actix::Addr;

use super::bridge::{Bridge, Publish};
use crate::domain::proactivity::events::AgentEvent;
use crate::protocol::channels::Channel;

/// Call after the event's commit.
pub fn publish(bridge: &Addr<Bridge>, event: &AgentEvent) {
    let payload = event.system_event().to_string();
    let board = event.board_id.map(|board_id| Channel::BoardEvents {
        organization_id: event.organization_id,
        board_id,
    });
    for channel in std::iter::once(Channel::OrgEvents(event.organization_id)).chain(board) {
        let sent = bridge.send(Publish {
            channel: channel.to_string(),
            payload: payload.clone(),
        });
        let event_id = event.id;
        actix::spawn(async move {
            if let Err(e) = sent.await.unwrap_or_else(|e| Err(e.to_string())) {
                tracing::warn!(%event_id, error = %e, "system event not published");
            }
        });
    }
}
