//! The identity module's REST API, served from any [`IdentityApi`].

use actix_web::{HttpResponse, web};
use cleave_kernel::http::{Call, Reply, Routes, no_content, ok};

use crate::{Credentials, IdentityApi, RefreshRequest, ops};

/// The routes of the identity module's operations.
pub fn routes(r: &mut Routes) {
    r.add(&ops::REGISTER, register)
        .add(&ops::DELETE_USER, delete_user)
        .add(&ops::USER_ACTIVE, user_active)
        .add(&ops::LOGIN, login)
        .add(&ops::REFRESH, refresh)
        .add(&ops::GUEST, guest)
        .add(&ops::LOGOUT, logout)
        .add(&ops::WHOAMI, whoami)
        .add(&ops::JWKS, jwks);
}

/// Creates a shopper account if the address has none (202 either way).
async fn register(c: Call<dyn IdentityApi>, body: web::Json<Credentials>) -> Reply {
    let registration = c.api.register(&c.ctx, body.into_inner()).await?;
    Ok(HttpResponse::Accepted().json(registration))
}

/// Logs in: an access token and a refresh token.
async fn login(c: Call<dyn IdentityApi>, body: web::Json<Credentials>) -> Reply {
    ok(c.api.login(&c.ctx, body.into_inner()).await?)
}

/// Exchanges a refresh token for a new pair (the old one is spent).
async fn refresh(c: Call<dyn IdentityApi>, body: web::Json<RefreshRequest>) -> Reply {
    ok(c.api
        .refresh(&c.ctx, body.into_inner().refresh_token)
        .await?)
}

/// A guest's access token (201).
async fn guest(c: Call<dyn IdentityApi>) -> Reply {
    Ok(HttpResponse::Created().json(c.api.guest(&c.ctx).await?))
}

/// Logs out: revokes every token of the refresh token's session.
async fn logout(c: Call<dyn IdentityApi>, body: web::Json<RefreshRequest>) -> Reply {
    c.api
        .logout(&c.ctx, body.into_inner().refresh_token)
        .await?;
    no_content()
}

/// The caller (needs `Authorization: Bearer`).
async fn whoami(c: Call<dyn IdentityApi>) -> Reply {
    ok(c.api.whoami(&c.ctx).await?)
}

/// The public keys access tokens are signed with (JWKS, RFC 7517).
async fn jwks(c: Call<dyn IdentityApi>) -> Reply {
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "max-age=60"))
        .json(c.api.jwks(&c.ctx).await?))
}

/// Whether a user exists and is not deleted.
async fn user_active(c: Call<dyn IdentityApi>, user_id: web::Path<String>) -> Reply {
    ok(c.api.user_active(&c.ctx, user_id.into_inner()).await?)
}

/// Deletes a user (admin role).
async fn delete_user(c: Call<dyn IdentityApi>, user_id: web::Path<String>) -> Reply {
    c.api.delete_user(&c.ctx, user_id.into_inner()).await?;
    no_content()
}
