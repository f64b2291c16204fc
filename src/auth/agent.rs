//! Agent authentication: `X-Agent-Token: <token>`, and on the agent-facing routes
//! (`/api/v1/agent/*`) also `Authorization: Bearer <token>`. See `agent_tokens`.

use actix_web::dev::Payload;
use actix_web::web::Data;
use actix_web::{FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;

use super::admin::bearer_token;
use crate::domain::model::AgentPrincipal;
use crate::domain::support::access::Caller;
use crate::domain::DomainError;
use crate::error::ApiError;
use crate::state::AppState;

pub const AGENT_TOKEN_HEADER: &str = "x-agent-token";

/// An authenticated agent.
pub struct AgentCaller(pub AgentPrincipal);

impl FromRequest for AgentCaller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<Data<AppState>>().cloned();
        let token = req
            .headers()
            .get(AGENT_TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .or_else(|| bearer_token(req))
            .map(str::to_string);
        let gate = super::gate::Gate::open(req);
        Box::pin(async move {
            let _open_until_decided = gate;
            let (Some(state), Some(token)) = (state, token) else {
                return Err(ApiError::Unauthorized);
            };
            let conn = state.db.get().await.map_err(DomainError::from)?;
            let key = &state.settings.agent_token_key.0;
            match crate::domain::agents::presence::authenticate(&*conn, key, &token).await? {
                Some((agent, touched)) => {
                    if touched {
                        state.agents_changed(agent.organization_id);
                    }
                    Ok(AgentCaller(agent))
                }
                None => Err(ApiError::Unauthorized),
            }
        })
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        if bearer_token(req).is_some() || req.headers().get(AGENT_TOKEN_HEADER).is_none() {
            let admin = super::admin::Admin::from_request(req, payload);
            return Box::pin(async move { Ok(Caller::User(admin.await?.0)) });
        }
        let agent = AgentCaller::from_request(req, payload);
        Box::pin(async move { Ok(Caller::Agent(agent.await?.0)) })
    }
}
