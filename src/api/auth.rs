//! Bearer-token check when `api.token` is set: every request except `GET`/`HEAD` of `/health` and `/metrics` needs
//! `Authorization: Bearer <token>` (401 otherwise). GETs are guarded too: dead-letter payloads, job stderr and
//! pids are no one else's business.

use std::future::{ready, Ready};

use actix_web::body::EitherBody;
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::{Method, StatusCode};
use actix_web::web;
use futures::future::LocalBoxFuture;

use super::{error, ApiState};

pub struct RequireToken;

impl<S, B> Transform<S, ServiceRequest> for RequireToken
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = RequireTokenMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequireTokenMiddleware { service }))
    }
}

pub struct RequireTokenMiddleware<S> {
    service: S,
}

/// The requests that need no token: reading `/health` and `/metrics` (probes and scrapers carry no secret).
fn is_open(method: &Method, path: &str) -> bool {
    (method == Method::GET || method == Method::HEAD) && matches!(path, "/health" | "/metrics")
}

/// Constant-time comparison, so the token cannot be guessed byte by byte from timings.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl<S, B> Service<ServiceRequest> for RequireTokenMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let token = req
            .app_data::<web::Data<ApiState>>()
            .and_then(|s| s.token.clone());
        if let Some(expected) = token.filter(|_| !is_open(req.method(), req.path())) {
            let given = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim);
            let ok = given.is_some_and(|g| same(g.as_bytes(), expected.as_bytes()));
            if !ok {
                tracing::warn!(path = %req.path(), method = %req.method(), "rejected request without a valid bearer token");
                let response = error(
                    StatusCode::UNAUTHORIZED,
                    "missing or wrong token: send Authorization: Bearer <api.token>",
                );
                return Box::pin(
                    async move { Ok(req.into_response(response).map_into_right_body()) },
                );
            }
        }
        let fut = self.service.call(req);
        Box::pin(async move { fut.await.map(ServiceResponse::map_into_left_body) })
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::Method;

    #[test]
    fn only_reads_of_health_and_metrics_are_open() {
        assert!(super::is_open(&Method::GET, "/health"));
        assert!(super::is_open(&Method::HEAD, "/metrics"));
        assert!(!super::is_open(&Method::POST, "/health"));
        for path in [
            "/status",
            "/dead-letters",
            "/dead-letters/1",
            "/jobs",
            "/plan",
            "/sync",
            "/debug/fail/x",
        ] {
            assert!(!super::is_open(&Method::GET, path), "{path}");
        }
    }

    #[test]
    fn comparison_is_exact() {
        assert!(super::same(b"abc", b"abc"));
        assert!(!super::same(b"abc", b"abd"));
        assert!(!super::same(b"abc", b"abcd"));
    }
}
