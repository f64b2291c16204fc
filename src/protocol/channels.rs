//! Every Redis pub/sub channel and presence key, spelled once. A channel's name is its
//! `Display`; `Channel::parse` reads a name back where a subscriber serves several
//! families (the registry). Publications on every channel carry the bridge's instance
//! envelope (`actors::bridge`); what is inside is in `protocol::bus` or the socket modules.

use std::fmt;

use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Channel {
    /// `ws:route:h5:{h5_user_id}`: `RouteMessage`s for that user's chat sockets; subscribed
    /// while this instance holds one.
    UserRoute(Uuid),
    /// `ws:route:gateway:{gateway_id}`: `RouteMessage`s for that gateway's relay link;
    /// subscribed while this instance holds it.
    GatewayRoute(Uuid),
    /// `gateway:rpc:answers:{instance_id}`: `RpcAnswer`s for the callers waiting on that
    /// instance.
    RpcAnswers(String),
    /// `suggestions:{organization_id}`: `suggestion.new` frames.
    Suggestions(Uuid),
    /// `board_sync:{board_id}` (the reference's name): wakes the board's rooms.
    BoardSync(Uuid),
    /// `feed:board:{board_id}`: wakes the board's SSE feeds (tasks, approvals, memory).
    BoardFeed(Uuid),
    /// `feed:group:{board_group_id}`: wakes the group memory streams.
    GroupFeed(Uuid),
    /// `feed:org:{organization_id}`: wakes the organization's comment feed.
    OrgFeed(Uuid),
    /// `feed:agents:{organization_id}`: wakes the organization's agents streams.
    AgentsFeed(Uuid),
    /// `feed:command-center:{organization_id}`: wakes the organization's command-center
    /// streams (a new agent event).
    CommandCenterFeed(Uuid),
    /// `mc:events:{organization_id}`: the reference's `SystemEvent`s.
    OrgEvents(Uuid),
    /// `mc:events:{organization_id}:{board_id}`: the system events of one board.
    BoardEvents {
        organization_id: Uuid,
        board_id: Uuid,
    },
    /// `mc:probe:{instance_id}`: the bridge's readiness round trip.
    Probe(String),
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Channel::UserRoute(id) => write!(f, "ws:route:h5:{id}"),
            Channel::GatewayRoute(id) => write!(f, "ws:route:gateway:{id}"),
            Channel::RpcAnswers(instance) => write!(f, "gateway:rpc:answers:{instance}"),
            Channel::Suggestions(id) => write!(f, "suggestions:{id}"),
            Channel::BoardSync(id) => write!(f, "board_sync:{id}"),
            Channel::BoardFeed(id) => write!(f, "feed:board:{id}"),
            Channel::GroupFeed(id) => write!(f, "feed:group:{id}"),
            Channel::OrgFeed(id) => write!(f, "feed:org:{id}"),
            Channel::AgentsFeed(id) => write!(f, "feed:agents:{id}"),
            Channel::CommandCenterFeed(id) => write!(f, "feed:command-center:{id}"),
            Channel::OrgEvents(id) => write!(f, "mc:events:{id}"),
            Channel::BoardEvents {
                organization_id,
                board_id,
            } => write!(f, "mc:events:{organization_id}:{board_id}"),
            Channel::Probe(instance) => write!(f, "mc:probe:{instance}"),
        }
    }
}

impl Channel {
    /// The channel named `name`, if it is one of ours.
    pub fn parse(name: &str) -> Option<Channel> {
        let id = |rest: &str| rest.parse::<Uuid>().ok();
        let (family, rest) = [
            "ws:route:h5:",
            "ws:route:gateway:",
            "gateway:rpc:answers:",
            "suggestions:",
            "board_sync:",
            "feed:board:",
            "feed:group:",
            "feed:org:",
            "feed:agents:",
            "feed:command-center:",
            "mc:events:",
            "mc:probe:",
        ]
        .into_iter()
        .find_map(|family| Some((family, name.strip_prefix(family)?)))?;
        Some(match family {
            "ws:route:h5:" => Channel::UserRoute(id(rest)?),
            "ws:route:gateway:" => Channel::GatewayRoute(id(rest)?),
            "gateway:rpc:answers:" => Channel::RpcAnswers(rest.to_string()),
            "suggestions:" => Channel::Suggestions(id(rest)?),
            "board_sync:" => Channel::BoardSync(id(rest)?),
            "feed:board:" => Channel::BoardFeed(id(rest)?),
            "feed:group:" => Channel::GroupFeed(id(rest)?),
            "feed:org:" => Channel::OrgFeed(id(rest)?),
            "feed:agents:" => Channel::AgentsFeed(id(rest)?),
            "feed:command-center:" => Channel::CommandCenterFeed(id(rest)?),
            "mc:events:" => match rest.split_once(':') {
                Some((organization, board)) => Channel::BoardEvents {
                    organization_id: id(organization)?,
                    board_id: id(board)?,
                },
                None => Channel::OrgEvents(id(rest)?),
            },
            _ => Channel::Probe(rest.to_string()),
        })
    }
}

/// `presence:gateway:{gateway_id}` → the `GatewayPresence` of the link that holds it, with a
/// TTL refreshed while the link lives.
pub fn gateway_presence(gateway_id: Uuid) -> String {
    format!("presence:gateway:{gateway_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        for channel in [
            Channel::UserRoute(a),
            Channel::GatewayRoute(a),
            Channel::RpcAnswers("i-1".into()),
            Channel::Suggestions(a),
            Channel::BoardSync(a),
            Channel::BoardFeed(a),
            Channel::GroupFeed(a),
            Channel::OrgFeed(a),
            Channel::AgentsFeed(a),
            Channel::CommandCenterFeed(a),
            Channel::OrgEvents(a),
            Channel::BoardEvents {
                organization_id: a,
                board_id: b,
            },
            Channel::Probe("i-1".into()),
        ] {
            assert_eq!(Channel::parse(&channel.to_string()), Some(channel));
        }
        assert_eq!(
            Channel::UserRoute(a).to_string(),
            format!("ws:route:h5:{a}")
        );
        assert_eq!(Channel::parse("ws:route:h5:nope"), None);
        assert_eq!(Channel::parse("other"), None);
    }
}
