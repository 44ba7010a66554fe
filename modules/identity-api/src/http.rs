//! The identity module's REST API, served from any [`IdentityApi`].

use actix_web::{HttpResponse, web};
use cleave_kernel::auth::Jwks;
use cleave_kernel::http::Routes;
use cleave_kernel::{CallContext, Failure};

use crate::{
    Credentials, IdentityApi, IdentityError, RefreshRequest, TokenPair, User, UserStatus, ops,
};

/// The OpenAPI description of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(register, login, refresh, logout, whoami, jwks, user_active, delete_user),
    components(schemas(Credentials, User, TokenPair, RefreshRequest, UserStatus, Jwks)),
    tags((name = "identity", description = "Users, sessions and the keys tokens are signed with"))
)]
pub struct ApiDoc;

/// The routes of the identity module's operations.
pub fn routes(r: &mut Routes) {
    r.add(&ops::REGISTER, register)
        .add(&ops::DELETE_USER, delete_user)
        .add(&ops::USER_ACTIVE, user_active)
        .add(&ops::LOGIN, login)
        .add(&ops::REFRESH, refresh)
        .add(&ops::LOGOUT, logout)
        .add(&ops::WHOAMI, whoami)
        .add(&ops::JWKS, jwks);
}

/// Creates a shopper account.
#[utoipa::path(
    post,
    path = ops::REGISTER.path,
    tag = "identity",
    request_body = Credentials,
    responses(
        (status = 201, description = "The new user", body = User),
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
    path = ops::LOGIN.path,
    tag = "identity",
    request_body = Credentials,
    responses(
        (status = 200, description = "The session's tokens", body = TokenPair),
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
    path = ops::REFRESH.path,
    tag = "identity",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens", body = TokenPair),
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
    path = ops::LOGOUT.path,
    tag = "identity",
    request_body = RefreshRequest,
    responses(
        (status = 204, description = "Revoked (also for unknown tokens)"),
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
    path = ops::WHOAMI.path,
    tag = "identity",
    responses(
        (status = 200, description = "The authenticated user", body = User),
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
    path = ops::JWKS.path,
    tag = "identity",
    responses(
        (status = 200, description = "The key set", body = Jwks),
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
    path = ops::USER_ACTIVE.path,
    tag = "identity",
    params(("user_id" = String, Path, description = "The user id")),
    responses(
        (status = 200, description = "The user's status", body = UserStatus),
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
    path = ops::DELETE_USER.path,
    tag = "identity",
    params(("user_id" = String, Path, description = "The user id")),
    responses(
        (status = 204, description = "Deleted"),
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
