//! HTTP routes, one module per route group, and the app that ties them together.
//! Handlers are thin: they parse and authorize, then call `domain`.

mod activity;
mod agent_api;
mod agent_coordination;
mod agent_posts;
mod agents;
mod approvals;
mod auth;
mod board_groups;
mod board_sync;
mod boards;
mod calendar;
pub mod context;
mod custom_fields;
mod gateway_registry;
mod gateway_sessions;
mod gateways;
mod h5_auth;
mod h5_chat;
mod h5_users;
mod health;
pub mod json;
mod knowledge;
pub(crate) mod memory;
mod methods;
mod metrics;
mod onboarding;
mod organizations;
mod pagination;
mod pipelines;
mod proactive_rules;
mod prometheus;
mod query;
mod skills;
mod souls;
mod sse;
mod suggestions;
mod tags;
mod tasks;
mod teams;
mod users;
mod validate;
mod webhooks;

use actix_cors::Cors;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, LOCATION};
use actix_web::middleware::{from_fn, Condition};
use actix_web::web::{self, Data};
use actix_web::{App, HttpResponse};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::SwaggerUi;

use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Mission Control", description = "The control plane for fleets of AI agents behind gateways."),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        components.add_security_scheme(
            "agent_token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Agent-Token"))),
        );
    }
}

/// `OkResponse` of the reference API.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct OkResponse {
    pub ok: bool,
}

impl OkResponse {
    pub fn json() -> web::Json<OkResponse> {
        web::Json(OkResponse { ok: true })
    }
}

/// The whole application; `HttpServer` calls this once per worker.
pub fn app(
    state: Data<AppState>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let settings = state.settings.clone();
    let (app, openapi) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .app_data(state)
        .app_data(web::PayloadConfig::new(settings.http_body_limit))
        .app_data(web::PathConfig::default().error_handler(json::path_error))
        .app_data(web::QueryConfig::default().error_handler(|e, _| json::query_error(e)))
        .service(health::health)
        .service(health::healthz)
        .service(health::readyz)
        .service(prometheus::metrics)
        .configure(users::routes)
        .configure(auth::routes)
        .configure(organizations::routes)
        .configure(custom_fields::routes)
        .configure(gateway_sessions::routes)
        .configure(gateways::routes)
        .configure(gateway_registry::routes)
        .configure(agents::routes)
        .configure(agent_api::routes)
        .configure(agent_coordination::routes)
        .configure(agent_posts::routes)
        .configure(memory::routes)
        .configure(board_groups::routes)
        .configure(boards::routes)
        .configure(tasks::routes)
        .configure(approvals::routes)
        .configure(tags::routes)
        .configure(activity::routes)
        .configure(metrics::routes)
        .configure(h5_auth::routes)
        .configure(h5_users::routes)
        .configure(h5_chat::routes)
        .configure(board_sync::routes)
        .configure(suggestions::routes)
        .configure(proactive_rules::routes)
        .configure(pipelines::routes)
        .configure(knowledge::routes)
        .configure(webhooks::routes)
        .configure(onboarding::routes)
        .configure(skills::routes)
        .configure(souls::routes)
        .configure(calendar::routes)
        .configure(teams::routes)
        .split_for_parts();

    let allowed = Data::new(methods::Allowed::of(&openapi));
    app.app_data(allowed)
        .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", openapi))
        .route(
            "/docs",
            web::get().to(|| async {
                HttpResponse::PermanentRedirect()
                    .insert_header((LOCATION, "/docs/"))
                    .finish()
            }),
        )
        .default_service(web::to(methods::unrouted))
        .wrap(from_fn(json::check_parameters))
        .wrap(from_fn(json::refuse_nul_in_url))
        .wrap(Condition::new(
            !settings.cors_origins.is_empty(),
            cors(&settings.cors_origins),
        ))
        .wrap(from_fn(context::middleware))
}

fn cors(origins: &[String]) -> Cors {
    let mut cors = Cors::default()
        .allow_any_method()
        .allow_any_header()
        .supports_credentials()
        .expose_headers([
            HeaderName::from_static("x-total-count"),
            HeaderName::from_static("x-limit"),
            HeaderName::from_static("x-offset"),
            context::REQUEST_ID_HEADER,
        ])
        .max_age(600);
    for origin in origins {
        cors = if origin == "*" {
            cors.allow_any_origin()
        } else {
            cors.allowed_origin(origin)
        };
    }
    cors
}

/// Runs a whole transaction again (up to three tries in all, after 10 and 20 ms) when
/// PostgreSQL made it a deadlock's or a serialization conflict's victim: the other
/// transaction went through, and this one, started afresh, usually does too. For handlers
/// whose transaction is cheap and on a hot row (heartbeats).
pub async fn retrying<T, F, Fut>(mut attempt: F) -> Result<T, crate::domain::DomainError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, crate::domain::DomainError>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(e) if e.is_transient_conflict() && tries < 3 => {
                tracing::info!(error = %e, tries, "transaction conflict; running it again");
                actix_web::rt::time::sleep(std::time::Duration::from_millis(10 * tries)).await;
                tries += 1;
            }
            other => return other,
        }
    }
}
