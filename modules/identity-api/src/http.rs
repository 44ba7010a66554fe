//! The identity module's REST API, served from any [`IdentityApi`].

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use cleave_kernel::auth::Jwks;
use cleave_kernel::{CallContext, Failure, Problem};

use crate::{Credentials, IdentityApi, IdentityError, RefreshRequest, TokenPair, User, UserStatus};

/// The OpenAPI description of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(register, login, refresh, logout, whoami, jwks, user_active, delete_user),
    components(schemas(Credentials, User, TokenPair, RefreshRequest, UserStatus, Jwks)),
    tags((name = "identity", description = "Users, sessions and the keys tokens are signed with"))
)]
pub struct ApiDoc;

/// Registers `/api/identity/v1/...` on `cfg`, answering from `api`.
pub fn configure(cfg: &mut web::ServiceConfig, api: Arc<dyn IdentityApi>) {
    cfg.service(
        web::scope("/api/identity/v1")
            .app_data(web::Data::from(api))
            .service(web::resource("/users").route(web::post().to(register)))
            .service(web::resource("/users/{user_id}").route(web::delete().to(delete_user)))
            .service(web::resource("/users/{user_id}/active").route(web::get().to(user_active)))
            .service(web::resource("/tokens").route(web::post().to(login)))
            .service(web::resource("/tokens/refresh").route(web::post().to(refresh)))
            .service(web::resource("/tokens/revoke").route(web::post().to(logout)))
            .service(web::resource("/me").route(web::get().to(whoami)))
            .service(web::resource("/jwks").route(web::get().to(jwks))),
    );
}

/// Creates a shopper account.
#[utoipa::path(
    post,
    path = "/api/identity/v1/users",
    tag = "identity",
    request_body = Credentials,
    responses(
        (status = 201, description = "The new user", body = User),
        (status = 400, description = "Bad email or password (`identity.invalid_email`, `identity.invalid_password`, `cleave.invalid_json`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already registered (`identity.email_taken`)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many registrations for this address or from this client (`identity.too_many_attempts`, `cleave.rate_limited`); see `Retry-After`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large (`cleave.payload_too_large`)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON (`cleave.unsupported_media_type`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Unavailable (`identity.unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn register(
    ctx: CallContext,
    api: web::Data<dyn IdentityApi>,
    body: web::Json<Credentials>,
) -> Result<HttpResponse, Failure> {
    match api.register(&ctx, body.into_inner()).await {
        Ok(user) => Ok(HttpResponse::Created().json(user)),
        Err(e) => Ok(error_response(e)),
    }
}

/// The problem response of `err`, with `Retry-After` when it is a rate limit.
fn error_response(err: IdentityError) -> HttpResponse {
    let retry = match &err {
        IdentityError::TooManyAttempts { retry_after_secs } => Some(*retry_after_secs),
        _ => None,
    };
    let mut res = actix_web::ResponseError::error_response(&Failure::from(err));
    if let Some(secs) = retry
        && let Ok(v) = actix_web::http::header::HeaderValue::from_str(&secs.to_string())
    {
        res.headers_mut()
            .insert(actix_web::http::header::RETRY_AFTER, v);
    }
    res
}

/// Logs in: an access token and a refresh token.
#[utoipa::path(
    post,
    path = "/api/identity/v1/tokens",
    tag = "identity",
    request_body = Credentials,
    responses(
        (status = 200, description = "The session's tokens", body = TokenPair),
        (status = 400, description = "Malformed body (`cleave.invalid_json`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Wrong email or password (`identity.invalid_credentials`)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts for this account or from this client (`identity.too_many_attempts`, `cleave.rate_limited`); see `Retry-After`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large (`cleave.payload_too_large`)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON (`cleave.unsupported_media_type`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Unavailable (`identity.unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn login(
    ctx: CallContext,
    api: web::Data<dyn IdentityApi>,
    body: web::Json<Credentials>,
) -> Result<HttpResponse, Failure> {
    match api.login(&ctx, body.into_inner()).await {
        Ok(pair) => Ok(HttpResponse::Ok().json(pair)),
        Err(e) => Ok(error_response(e)),
    }
}

/// Exchanges a refresh token for a new pair (the old one is spent).
#[utoipa::path(
    post,
    path = "/api/identity/v1/tokens/refresh",
    tag = "identity",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens", body = TokenPair),
        (status = 400, description = "Malformed body (`cleave.invalid_json`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Invalid or reused refresh token (`identity.invalid_refresh_token`, `identity.refresh_token_reused`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large (`cleave.payload_too_large`)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON (`cleave.unsupported_media_type`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Unavailable (`identity.unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn refresh(
    ctx: CallContext,
    api: web::Data<dyn IdentityApi>,
    body: web::Json<RefreshRequest>,
) -> Result<HttpResponse, Failure> {
    Ok(HttpResponse::Ok().json(api.refresh(&ctx, body.into_inner().refresh_token).await?))
}

/// Logs out: revokes every token of the refresh token's session.
#[utoipa::path(
    post,
    path = "/api/identity/v1/tokens/revoke",
    tag = "identity",
    request_body = RefreshRequest,
    responses(
        (status = 204, description = "Revoked (also for unknown tokens)"),
        (status = 400, description = "Malformed body (`cleave.invalid_json`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large (`cleave.payload_too_large`)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON (`cleave.unsupported_media_type`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Unavailable (`identity.unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn logout(
    ctx: CallContext,
    api: web::Data<dyn IdentityApi>,
    body: web::Json<RefreshRequest>,
) -> Result<HttpResponse, Failure> {
    api.logout(&ctx, body.into_inner().refresh_token).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The caller (needs `Authorization: Bearer`).
#[utoipa::path(
    get,
    path = "/api/identity/v1/me",
    tag = "identity",
    responses(
        (status = 200, description = "The authenticated user", body = User),
        (status = 401, description = "No or invalid access token (`identity.unauthenticated`, `auth.unauthenticated`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The user is gone (`identity.user_not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Unavailable (`identity.unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn whoami(
    ctx: CallContext,
    api: web::Data<dyn IdentityApi>,
) -> Result<HttpResponse, Failure> {
    Ok(HttpResponse::Ok().json(api.whoami(&ctx).await?))
}

/// The public keys access tokens are signed with (JWKS, RFC 7517).
#[utoipa::path(
    get,
    path = "/api/identity/v1/jwks",
    tag = "identity",
    responses(
        (status = 200, description = "The key set", body = Jwks),
        (status = 503, description = "Unavailable (`identity.unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn jwks(ctx: CallContext, api: web::Data<dyn IdentityApi>) -> Result<HttpResponse, Failure> {
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "max-age=60"))
        .json(api.jwks(&ctx).await?))
}

/// Whether a user exists and is not deleted.
#[utoipa::path(
    get,
    path = "/api/identity/v1/users/{user_id}/active",
    tag = "identity",
    params(("user_id" = String, Path, description = "The user id")),
    responses(
        (status = 200, description = "The user's status", body = UserStatus),
        (status = 503, description = "Unavailable (`identity.unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn user_active(
    ctx: CallContext,
    api: web::Data<dyn IdentityApi>,
    user_id: web::Path<String>,
) -> Result<HttpResponse, Failure> {
    Ok(HttpResponse::Ok().json(api.user_active(&ctx, user_id.into_inner()).await?))
}

/// Deletes a user (admin role).
#[utoipa::path(
    delete,
    path = "/api/identity/v1/users/{user_id}",
    tag = "identity",
    params(("user_id" = String, Path, description = "The user id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No or invalid access token (`identity.unauthenticated`, `auth.unauthenticated`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin (`identity.forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user (`identity.user_not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Unavailable (`identity.unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn delete_user(
    ctx: CallContext,
    api: web::Data<dyn IdentityApi>,
    user_id: web::Path<String>,
) -> Result<HttpResponse, Failure> {
    api.delete_user(&ctx, user_id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}
