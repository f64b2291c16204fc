//! Admin authentication, AUTH_MODE=local: `Authorization: Bearer <LOCAL_AUTH_TOKEN>`,
//! compared in constant time. The first authenticated call provisions the local user and
//! its "Personal" organization.

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
        let authorized = bearer_token(req).is_some_and(|given| state.settings.auth.accepts(given));
        Box::pin(async move {
            if !authorized {
                return Err(ApiError::Unauthorized);
            }
            Ok(Admin(accounts::local_principal(&state.db).await?))
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
