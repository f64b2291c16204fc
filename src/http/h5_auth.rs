//! `/api/v1/h5/auth/*`: H5 users register, log in, refresh and manage their profile.

use actix_web::http::header::RETRY_AFTER;
use actix_web::http::StatusCode;
use actix_web::web::{self, Data};
use actix_web::{get, patch, post, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::auth::h5::H5Caller;
use crate::auth::throttle::Limit;
use crate::domain::h5::users::{
    self as h5_users, H5User, NewUser, ProfileUpdate, UserWithAssignments,
};
use crate::domain::DomainError;
use crate::error::{ApiError, ApiResult};
use crate::http::json::Json;
use crate::secrets::jwt as tokens;
use crate::secrets::password;
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
pub struct RegisterRequest {
    pub organization_id: Uuid,
    pub username: String,
    pub password: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    pub organization_id: Uuid,
    pub username: String,
    pub password: String,
}

#[derive(Deserialize, ToSchema)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// Unknown keys are ignored, as the reference does (the app may send more).
#[derive(Deserialize, ToSchema)]
pub struct ProfileRequest {
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<String>)]
    pub display_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<String>)]
    pub avatar_url: Option<Option<String>>,
}

/// `H5TokenResponse`.
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    pub user: H5User,
    pub access_token: String,
    pub refresh_token: String,
}

/// `H5AccessTokenResponse`.
#[derive(Serialize, ToSchema)]
pub struct AccessTokenResponse {
    pub access_token: String,
    pub refresh_token: String,
}

/// The refresh answer: `H5AccessTokenResponse` plus `user`. The shipped H5 app stores
/// `response.user` after a refresh, and the reference never sends it, which logs the app
/// out; sending it is a superset that fixes that.
#[derive(Serialize, ToSchema)]
pub struct RefreshResponse {
    pub user: H5User,
    pub access_token: String,
    pub refresh_token: String,
}

const BAD_LOGIN: &str = "Invalid username or password.";
const BAD_REFRESH: &str = "Invalid or expired refresh token.";

fn invalid(field: &str, msg: &str, input: &str) -> ApiError {
    ApiError::validation(
        "value_error",
        vec![json!("body"), json!(field)],
        format!("Value error, {msg}"),
        Value::String(input.into()),
    )
}

fn check_len(field: &str, value: &Option<String>, max: usize) -> ApiResult<()> {
    match value {
        Some(v) if v.chars().count() > max => Err(invalid(
            field,
            &format!("{field} must be at most {max} characters."),
            v,
        )),
        _ => Ok(()),
    }
}

fn check_password(password: &str) -> ApiResult<()> {
    let len = password.chars().count();
    if len < password::MIN_LEN {
        return Err(invalid(
            "password",
            &format!(
                "Password must be at least {} characters.",
                password::MIN_LEN
            ),
            "",
        ));
    }
    if len > password::MAX_LEN {
        return Err(invalid(
            "password",
            &format!("Password must be at most {} characters.", password::MAX_LEN),
            "",
        ));
    }
    Ok(())
}

/// Issues a refresh token of `family_id` (a new family at login) and an access token.
async fn issue(
    state: &AppState,
    client: &impl crate::db::GenericClient,
    user: &H5User,
    family_id: Uuid,
) -> ApiResult<AccessTokenResponse> {
    let (refresh_token, hash) = tokens::refresh_token();
    h5_users::store_refresh(
        client,
        user.id,
        family_id,
        &hash,
        state.settings.h5.refresh_ttl,
    )
    .await?;
    let access_token = tokens::access_token(
        &state.settings.h5.jwt_secret,
        user.id,
        user.organization_id,
        state.settings.h5.access_ttl,
    );
    Ok(AccessTokenResponse {
        access_token,
        refresh_token,
    })
}

/// Creates an H5 user in an organization and logs it in.
#[utoipa::path(tag = "h5-auth", request_body = RegisterRequest, responses((status = 201, body = TokenResponse), (status = 404), (status = 409), (status = 422)))]
#[post("/api/v1/h5/auth/register")]
pub async fn register(
    state: Data<AppState>,
    Json(body): Json<RegisterRequest>,
) -> ApiResult<HttpResponse> {
    let username = body.username.trim().to_string();
    if !(2..=64).contains(&username.chars().count()) {
        return Err(invalid(
            "username",
            "Username must be between 2 and 64 characters.",
            &body.username,
        ));
    }
    check_password(&body.password)?;
    check_len("display_name", &body.display_name, 128)?;
    check_len("email", &body.email, 255)?;
    check_len("phone", &body.phone, 32)?;
    let password_hash = password::hash_async(body.password)
        .await
        .map_err(|e| ApiError::internal("password hashing", e))?;

    let mut conn = state.db.get().await.map_err(DomainError::from)?;
    let tx = conn.transaction().await.map_err(DomainError::from)?;
    let user = h5_users::create(
        &tx,
        NewUser {
            organization_id: body.organization_id,
            username: &username,
            password_hash: &password_hash,
            display_name: body.display_name.as_deref(),
            email: body.email.as_deref(),
            phone: body.phone.as_deref(),
        },
    )
    .await?;
    let issued = issue(&state, &tx, &user, Uuid::new_v4()).await?;
    tx.commit().await.map_err(DomainError::from)?;
    Ok(HttpResponse::Created().json(TokenResponse {
        user,
        access_token: issued.access_token,
        refresh_token: issued.refresh_token,
    }))
}

fn client_address(req: &HttpRequest, trust_forwarded_for: bool) -> String {
    let info = req.connection_info();
    let address = if trust_forwarded_for {
        info.realip_remote_addr()
    } else {
        info.peer_addr()
    };
    address.unwrap_or("unknown").to_string()
}

/// Logs an H5 user in. Unknown user, wrong password and a suspended account answer alike.
#[utoipa::path(tag = "h5-auth", request_body = LoginRequest, responses((status = 200, body = TokenResponse), (status = 401), (status = 422), (status = 429)))]
#[post("/api/v1/h5/auth/login")]
pub async fn login(
    req: HttpRequest,
    state: Data<AppState>,
    Json(body): Json<LoginRequest>,
) -> ApiResult<HttpResponse> {
    let username = body.username.trim().to_string();
    let settings = &state.settings.h5;
    let user_key = format!("h5:login:fail:user:{}:{}", body.organization_id, username);
    let limits = [
        Limit {
            key: user_key.clone(),
            max: settings.login_max_failures,
        },
        Limit {
            key: format!(
                "h5:login:fail:ip:{}",
                client_address(&req, state.settings.trust_forwarded_for)
            ),
            max: settings.login_max_failures_per_ip,
        },
    ];
    if let Err(retry_after) = state.login_throttle.check(&limits).await {
        let refusal = ApiError::status(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed login attempts. Try again later.",
        );
        let mut res = actix_web::ResponseError::error_response(&refusal);
        res.headers_mut()
            .insert(RETRY_AFTER, retry_after.as_secs().max(1).into());
        return Ok(res);
    }

    let mut conn = state.db.get().await.map_err(DomainError::from)?;
    let found = h5_users::find_for_login(&*conn, body.organization_id, &username).await?;
    let (user, stored) = found.map_or((None, None), |(user, hash)| (Some(user), Some(hash)));
    let password_ok = password::verify_async(body.password, stored)
        .await
        .map_err(|e| ApiError::internal("password check", e))?;
    let user = match user {
        Some(user) if password_ok => user,
        _ => {
            state.login_throttle.record_failure(&limits).await;
            return Err(ApiError::status(StatusCode::UNAUTHORIZED, BAD_LOGIN));
        }
    };
    if !user.is_active() {
        return Err(ApiError::status(StatusCode::UNAUTHORIZED, BAD_LOGIN));
    }
    state.login_throttle.clear(&user_key).await;

    let tx = conn.transaction().await.map_err(DomainError::from)?;
    let user = h5_users::record_login(&tx, user.id).await?;
    let issued = issue(&state, &tx, &user, Uuid::new_v4()).await?;
    tx.commit().await.map_err(DomainError::from)?;
    Ok(HttpResponse::Ok().json(TokenResponse {
        user,
        access_token: issued.access_token,
        refresh_token: issued.refresh_token,
    }))
}

/// Exchanges a refresh token for a new pair. Each refresh token works once; presenting a
/// spent one revokes every token descended from the same login.
#[utoipa::path(tag = "h5-auth", request_body = RefreshRequest, responses((status = 200, body = RefreshResponse), (status = 401), (status = 422)))]
#[post("/api/v1/h5/auth/refresh")]
pub async fn refresh(
    state: Data<AppState>,
    Json(body): Json<RefreshRequest>,
) -> ApiResult<web::Json<RefreshResponse>> {
    let mut conn = state.db.get().await.map_err(DomainError::from)?;
    let tx = conn.transaction().await.map_err(DomainError::from)?;
    let redeemed = h5_users::redeem_refresh(
        &tx,
        &crate::secrets::tokens::sha256_hex(&body.refresh_token),
    )
    .await?;
    let answer = match redeemed {
        Some(redeemed) => {
            let issued = issue(&state, &tx, &redeemed.user, redeemed.family_id).await?;
            Some(RefreshResponse {
                user: redeemed.user,
                access_token: issued.access_token,
                refresh_token: issued.refresh_token,
            })
        }
        None => None,
    };
    // Committed even when refusing: a detected reuse must stay revoked.
    tx.commit().await.map_err(DomainError::from)?;
    answer
        .map(web::Json)
        .ok_or_else(|| ApiError::status(StatusCode::UNAUTHORIZED, BAD_REFRESH))
}

/// The caller and the agents assigned to them.
#[utoipa::path(tag = "h5-auth", security(("bearer" = [])), responses((status = 200, body = UserWithAssignments), (status = 401)))]
#[get("/api/v1/h5/auth/me")]
pub async fn me(
    state: Data<AppState>,
    H5Caller(user): H5Caller,
) -> ApiResult<web::Json<UserWithAssignments>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(h5_users::with_assignments(&*conn, user).await?))
}

/// Updates the caller's display name or avatar; absent fields stay, `null` clears.
#[utoipa::path(tag = "h5-auth", security(("bearer" = [])), request_body = ProfileRequest, responses((status = 200, body = H5User), (status = 401), (status = 422)))]
#[patch("/api/v1/h5/auth/me")]
pub async fn update_me(
    state: Data<AppState>,
    H5Caller(user): H5Caller,
    Json(body): Json<ProfileRequest>,
) -> ApiResult<web::Json<H5User>> {
    check_len("display_name", &body.display_name.clone().flatten(), 128)?;
    check_len("avatar_url", &body.avatar_url.clone().flatten(), 512)?;
    let conn = state.db.get().await.map_err(DomainError::from)?;
    let update = ProfileUpdate {
        display_name: body.display_name,
        avatar_url: body.avatar_url,
    };
    Ok(web::Json(
        h5_users::update_profile(&*conn, user.id, update).await?,
    ))
}

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(register)
        .service(login)
        .service(refresh)
        .service(me)
        .service(update_me);
}
