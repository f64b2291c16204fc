//! The H5 user extractor: a bearer access token, verified, of an active user.

use crate::secrets::jwt;

/// An authenticated, active H5 user (`Authorization: Bearer <access token>`).
pub struct H5Caller(pub crate::domain::h5::users::H5User);

impl actix_web::FromRequest for H5Caller {
    type Error = crate::error::ApiError;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &actix_web::HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        use crate::error::ApiError;
        let state = req
            .app_data::<actix_web::web::Data<crate::state::AppState>>()
            .cloned();
        let claims = state.as_ref().and_then(|s| {
            let token = super::admin::bearer_token(req)?;
            jwt::verify(&s.settings.h5.jwt_secret, token)
        });
        let gate = super::gate::Gate::open(req);
        Box::pin(async move {
            let _open_until_decided = gate;
            let (Some(state), Some(claims)) = (state, claims) else {
                return Err(ApiError::Unauthorized);
            };
            let conn = state
                .db
                .get()
                .await
                .map_err(crate::domain::DomainError::from)?;
            match crate::domain::h5::users::find(&*conn, claims.sub).await? {
                Some(user) if user.is_active() && user.organization_id == claims.org => {
                    Ok(H5Caller(user))
                }
                _ => Err(ApiError::Unauthorized),
            }
        })
    }
}
