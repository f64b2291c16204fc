//! 405 for a wrong method on a path that exists. Each actix route is a resource of its
//! own, so a method that no route takes looks like no route at all (404); the reference
//! (Starlette) answers 405 with `Allow`, and clients tell "wrong method" from "no such
//! thing" by it.

use actix_web::http::header::ALLOW;
use actix_web::http::Method;
use actix_web::web::Data;
use actix_web::{HttpRequest, HttpResponse, ResponseError};

use crate::error::ApiError;
use crate::http::validate::{segments, Template};

/// The methods each documented path takes (read from our own OpenAPI document).
pub struct Allowed(Vec<(Template, Vec<Method>)>);

impl Allowed {
    pub fn of(api: &utoipa::openapi::OpenApi) -> Allowed {
        Allowed(
            api.paths
                .paths
                .iter()
                .map(|(path, item)| {
                    let methods = [
                        (Method::GET, item.get.is_some()),
                        (Method::POST, item.post.is_some()),
                        (Method::PUT, item.put.is_some()),
                        (Method::PATCH, item.patch.is_some()),
                        (Method::DELETE, item.delete.is_some()),
                    ]
                    .into_iter()
                    .filter_map(|(method, has)| has.then_some(method))
                    .collect();
                    (Template::parse(path), methods)
                })
                .collect(),
        )
    }

    /// What `path` takes, or nothing when no documented path fits it.
    fn methods(&self, path: &str) -> Vec<&Method> {
        let parts = segments(path);
        let mut found: Vec<&Method> = Vec::new();
        for (template, methods) in &self.0 {
            if template.fits(&parts) {
                for method in methods {
                    if !found.contains(&method) {
                        found.push(method);
                    }
                }
            }
        }
        found
    }
}

/// The app's default service: 405 with `Allow` where the path exists, else 404.
pub async fn unrouted(req: HttpRequest, allowed: Data<Allowed>) -> HttpResponse {
    let methods = allowed.methods(req.path());
    if methods.is_empty() || methods.contains(&req.method()) {
        return ApiError::not_found().error_response();
    }
    let allow: Vec<&str> = methods.iter().map(|m| m.as_str()).collect();
    let mut response = ApiError::status(
        actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
        "Method Not Allowed",
    )
    .error_response();
    if let Ok(value) = allow.join(", ").parse() {
        response.headers_mut().insert(ALLOW, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_gathered_from_every_fitting_path() {
        let mut api = utoipa::openapi::OpenApi::default();
        let op = || utoipa::openapi::path::Operation::default();
        let mut items = utoipa::openapi::path::Paths::new();
        let mut boards = utoipa::openapi::path::PathItem::default();
        boards.get = Some(op());
        boards.patch = Some(op());
        items.paths.insert("/boards/{board_id}".into(), boards);
        let mut snapshot = utoipa::openapi::path::PathItem::default();
        snapshot.get = Some(op());
        items.paths.insert("/boards/snapshot".into(), snapshot);
        api.paths = items;
        let allowed = Allowed::of(&api);
        assert_eq!(allowed.methods("/boards/x"), [&Method::GET, &Method::PATCH]);
        assert_eq!(
            allowed.methods("/boards/snapshot"),
            [&Method::GET, &Method::PATCH]
        );
        assert!(allowed.methods("/tasks").is_empty());
    }
}
