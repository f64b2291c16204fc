//! Admin authentication: `Authorization: Bearer <token>`, the local admin token
//! (AUTH_MODE=local, compared in constant time) or a Clerk session token (AUTH_MODE=clerk,
//! `domain::orgs::clerk`). The first authenticated call of a user provisions it and its
//! "Personal" organization (`domain::orgs::accounts`).

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::web::Data;
use actix_web::{FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;

use crate::domain::model::Principal;
use crate::domain::orgs::accounts;
use crate::error::ApiError;
use crate::state::AppState;

/// The token of an `Authorization: Bearer …` header (scheme matched case-insensitively).
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// An authenticated admin with an active organization membership.
pub struct Admin(pub Principal);

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(state) = req.app_data::<Data<AppState>>().cloned() else {
            return Box::pin(async {
                Err(ApiError::internal("auth", "application state is missing"))
            });
        };
        let token = bearer_token(req).map(str::to_string);
        let gate = super::gate::Gate::open(req);
        Box::pin(async move {
            let _open_until_decided = gate;
            let Some(token) = token else {
                return Err(ApiError::Unauthorized);
            };
            let clerk = state.clerk.as_deref();
            accounts::admin_principal(
                &state.db,
                &state.memos.principals,
                &state.settings.auth,
                clerk,
                &token,
            )
            .await?
            .map(Admin)
            .ok_or(ApiError::Unauthorized)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn bearer_scheme_is_case_insensitive_and_trimmed() {
        let req = TestRequest::default()
            .insert_header((AUTHORIZATION, "bEaReR   abc  "))
            .to_http_request();
        assert_eq!(bearer_token(&req), Some("abc"));
    }

    #[test]
    fn other_schemes_and_missing_headers_give_no_token() {
        let basic = TestRequest::default()
            .insert_header((AUTHORIZATION, "Basic abc"))
            .to_http_request();
        assert_eq!(bearer_token(&basic), None);
        assert_eq!(
            bearer_token(&TestRequest::default().to_http_request()),
            None
        );
    }
}
