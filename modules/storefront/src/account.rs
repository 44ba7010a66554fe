//! Accounts: sign-in, registration, sign-out and the order history.

use super::*;

pub(crate) async fn logout(req: HttpRequest, shop: Shop) -> HttpResponse {
    let visit = Visit::of(&req, &shop).await;
    let mut res = HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/"))
        .finish();
    if let Some(refresh) = req.cookie(REFRESH_COOKIE) {
        // End the session server-side too: the refresh token and its family are revoked.
        let _ = shop
            .deps
            .identity
            .logout(&CallContext::current(), Secret(refresh.value().to_owned()))
            .await;
    }
    for name in [
        SESSION_COOKIE,
        CURRENCY_COOKIE,
        TOKEN_COOKIE,
        ACCOUNT_COOKIE,
        REFRESH_COOKIE,
    ] {
        let mut gone = cookie(name, String::new(), shop.config.secure_cookies);
        gone.make_removal();
        let _ = res.add_cookie(&gone);
    }
    let _ = visit;
    res
}

#[derive(Deserialize)]
pub(crate) struct AccountForm {
    pub(crate) email: String,
    pub(crate) password: String,
}

pub(crate) fn account_page(
    register: bool,
    chrome: Chrome,
    email: String,
    error: Option<String>,
) -> AccountPage {
    let (heading, action, submit) = if register {
        ("Create your account", REGISTER_PATH, "Create account")
    } else {
        ("Sign in", LOGIN_PATH, "Sign in")
    };
    AccountPage {
        chrome,
        heading: heading.into(),
        action: action.into(),
        submit: submit.into(),
        register,
        email,
        form_error: error,
    }
}

pub(crate) async fn login_page(req: HttpRequest, ctx: CallContext, shop: Shop) -> HttpResponse {
    let visit = Visit::of(&req, &shop).await;
    let chrome = shop.chrome(&visit, &ctx).await;
    html(
        &visit,
        StatusCode::OK,
        account_page(false, chrome, String::new(), None).render(),
    )
}

pub(crate) async fn register_page(req: HttpRequest, ctx: CallContext, shop: Shop) -> HttpResponse {
    let visit = Visit::of(&req, &shop).await;
    let chrome = shop.chrome(&visit, &ctx).await;
    html(
        &visit,
        StatusCode::OK,
        account_page(true, chrome, String::new(), None).render(),
    )
}

pub(crate) async fn login(
    req: HttpRequest,
    ctx: CallContext,
    shop: Shop,
    form: web::Form<AccountForm>,
) -> HttpResponse {
    sign_in(&req, &ctx, &shop, form.into_inner(), false).await
}

pub(crate) async fn register(
    req: HttpRequest,
    ctx: CallContext,
    shop: Shop,
    form: web::Form<AccountForm>,
) -> HttpResponse {
    sign_in(&req, &ctx, &shop, form.into_inner(), true).await
}

/// Registers (when asked) and signs in: the session's cart moves to the user's, and the
/// access token goes in an HttpOnly cookie.
pub(crate) async fn sign_in(
    req: &HttpRequest,
    ctx: &CallContext,
    shop: &Storefront,
    form: AccountForm,
    register: bool,
) -> HttpResponse {
    let visit = Visit::of(req, shop).await;
    let creds = Credentials {
        email: form.email.clone(),
        password: Secret(form.password),
    };
    let identity = &shop.deps.identity;
    let outcome = async {
        if register {
            identity.register(ctx, creds.clone()).await?;
        }
        identity.login(ctx, creds).await
    }
    .await;
    let pair = match outcome {
        Ok(pair) => pair,
        Err(e) => {
            let (status, message) = match &e {
                IdentityError::InvalidCredentials => (
                    StatusCode::UNAUTHORIZED,
                    "Wrong e-mail address or password.".to_owned(),
                ),
                IdentityError::TooManyAttempts { retry_after_secs } => (
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "Too many attempts. Please wait {retry_after_secs} seconds and try again."
                    ),
                ),
                IdentityError::InvalidEmail { .. }
                | IdentityError::InvalidPassword { .. }
                | IdentityError::CommonPassword => (StatusCode::BAD_REQUEST, format!("{e}.")),
                _ => {
                    let chrome = shop.chrome(&visit, ctx).await;
                    return shop.unavailable(&visit, chrome, format!("identity: {e}"));
                }
            };
            let chrome = shop.chrome(&visit, ctx).await;
            return html(
                &visit,
                status,
                account_page(register, chrome, form.email, Some(message)).render(),
            );
        }
    };
    let principal = match shop
        .deps
        .authenticator
        .authenticate(pair.access_token.expose())
        .await
    {
        Ok(principal) => principal,
        Err(e) => {
            let chrome = shop.chrome(&visit, ctx).await;
            return shop.unavailable(&visit, chrome, format!("the new token: {e}"));
        }
    };
    // The cart follows the user: what the session collected moves to their cart.
    if let Ok(user) = UserId::parse(principal.subject.clone())
        && user != visit.session
        && let Ok(cart) = shop.deps.cart.get_cart(ctx, visit.session.clone()).await
    {
        for item in cart.items {
            let _ = shop
                .deps
                .cart
                .add_item(ctx, user.clone(), item.product_id, item.quantity)
                .await;
        }
        let _ = shop.deps.cart.empty_cart(ctx, visit.session.clone()).await;
    }
    let mut res = redirect(&visit, "/");
    for c in token_cookies(&pair, shop.config.secure_cookies) {
        let _ = res.add_cookie(&c);
    }
    let account = cookie(
        ACCOUNT_COOKIE,
        form.email.trim().to_lowercase(),
        shop.config.secure_cookies,
    );
    let _ = res.add_cookie(&account);
    tracing::info!(user_id = %principal.subject, "signed in to the storefront");
    res
}

pub(crate) async fn orders(req: HttpRequest, ctx: CallContext, shop: Shop) -> HttpResponse {
    let visit = Visit::of(&req, &shop).await;
    let Some(principal) = visit.principal.clone() else {
        return redirect(&visit, LOGIN_PATH);
    };
    let chrome = shop.chrome(&visit, &ctx).await;
    let list = shop
        .deps
        .checkout
        .list_orders(&ctx.with_principal(principal), visit.user.clone())
        .await;
    let list = match list {
        Ok(list) => list,
        Err(e) => return shop.unavailable(&visit, chrome, format!("checkout: {e}")),
    };
    let page = OrdersPage {
        chrome,
        orders: list
            .iter()
            .map(|o| OrderSummaryLine {
                order_id: o.order_id.clone(),
                placed: o.created_at.chars().take(10).collect(),
                items: o.items.iter().map(|i| i.quantity).sum(),
                total: format_money(&o.total),
            })
            .collect(),
    };
    html(&visit, StatusCode::OK, page.render())
}
