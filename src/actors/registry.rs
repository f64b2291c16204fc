//! The local Registry: which actor on this instance holds which gateway link. A newer link
//! for the same gateway replaces the older one. It also closes every socket it knows on
//! shutdown.

use std::collections::HashMap;

use actix::prelude::*;
use uuid::Uuid;

/// What the registry tells a socket actor.
#[derive(Message, Debug, Clone, Copy, PartialEq, Eq)]
#[rtype(result = "()")]
pub enum Control {
    /// A newer connection took over.
    Replaced,
    /// The server is shutting down.
    GoingAway,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct RegisterGateway {
    pub gateway_id: Uuid,
    pub link_id: Uuid,
    pub control: Recipient<Control>,
}

/// Removes the entry only if it is still this link's (a replaced link must not remove its
/// successor).
#[derive(Message)]
#[rtype(result = "()")]
pub struct UnregisterGateway {
    pub gateway_id: Uuid,
    pub link_id: Uuid,
}

#[derive(Message)]
#[rtype(result = "bool")]
pub struct HasGateway(pub Uuid);

/// Tells every socket to close with "going away"; answers how many were told.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct CloseAll;

#[derive(Default)]
pub struct Registry {
    gateways: HashMap<Uuid, (Uuid, Recipient<Control>)>,
}

impl Actor for Registry {
    type Context = Context<Self>;
}

impl Supervised for Registry {}

impl Handler<RegisterGateway> for Registry {
    type Result = ();

    fn handle(&mut self, msg: RegisterGateway, _: &mut Context<Self>) {
        if let Some((old_link, old)) = self
            .gateways
            .insert(msg.gateway_id, (msg.link_id, msg.control))
        {
            tracing::info!(gateway_id = %msg.gateway_id, %old_link, "gateway link replaced by a newer one");
            old.do_send(Control::Replaced);
        }
    }
}

impl Handler<UnregisterGateway> for Registry {
    type Result = ();

    fn handle(&mut self, msg: UnregisterGateway, _: &mut Context<Self>) {
        if self
            .gateways
            .get(&msg.gateway_id)
            .is_some_and(|(link, _)| *link == msg.link_id)
        {
            self.gateways.remove(&msg.gateway_id);
        }
    }
}

impl Handler<HasGateway> for Registry {
    type Result = bool;

    fn handle(&mut self, msg: HasGateway, _: &mut Context<Self>) -> bool {
        self.gateways.contains_key(&msg.0)
    }
}

impl Handler<CloseAll> for Registry {
    type Result = usize;

    fn handle(&mut self, _: CloseAll, _: &mut Context<Self>) -> usize {
        for (_, control) in self.gateways.values() {
            control.do_send(Control::GoingAway);
        }
        self.gateways.len()
    }
}
