//! Who is visiting: the session, the signed-in user, the currency, and the cookies that
//! carry them.

use super::*;

/// Who is visiting: their session (new or from the cookie), the signed-in user if any, and
/// their currency.
pub(crate) struct Visit {
    pub(crate) session: UserId,
    pub(crate) new_session: bool,
    /// Whose cart and orders: the signed-in user, else the session.
    pub(crate) user: UserId,
    /// The signed-in user (from a valid `shop_token` cookie).
    pub(crate) principal: Option<Principal>,
    /// Their e-mail address, for the header.
    pub(crate) account: Option<String>,
    /// Tokens renewed during this request (their cookies go out with the response).
    pub(crate) renewed: Option<identity_api::TokenPair>,
    /// Mark cookies `Secure`.
    pub(crate) secure: bool,
    pub(crate) currency: String,
    pub(crate) path: String,
    pub(crate) request_id: String,
}

impl Visit {
    pub(crate) async fn of(req: &HttpRequest, shop: &Storefront) -> Self {
        // The session is an id the storefront minted (`session-<uuid>`); any other value (a
        // user's or an API guest's id, which appear in URLs) is not taken: it would open
        // that user's cart.
        let existing = req
            .cookie(SESSION_COOKIE)
            .and_then(|c| minted_session(c.value()));
        let (session, new_session) = match existing {
            Some(s) => (s, false),
            None => (new_session_id(), true),
        };
        let currency = req
            .cookie(CURRENCY_COOKIE)
            .map(|c| c.value().to_owned())
            .filter(|c| CurrencyCode::parse(c.clone()).is_ok())
            .unwrap_or_else(|| shop.config.default_currency.clone());
        let path = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let mut principal = match req.cookie(TOKEN_COOKIE) {
            Some(c) => shop.deps.authenticator.authenticate(c.value()).await.ok(),
            None => None,
        };
        // An expired (or missing) access token with a refresh token: renew quietly. A spent
        // or revoked refresh token simply leaves the visitor signed out.
        let mut renewed = None;
        if principal.is_none()
            && let Some(refresh) = req.cookie(REFRESH_COOKIE)
            && let Ok(pair) = shop
                .deps
                .identity
                .refresh(&CallContext::current(), Secret(refresh.value().to_owned()))
                .await
        {
            principal = shop
                .deps
                .authenticator
                .authenticate(pair.access_token.expose())
                .await
                .ok();
            renewed = principal.as_ref().map(|_| pair);
        }
        let user = principal
            .as_ref()
            .and_then(|p| UserId::parse(p.subject.clone()).ok())
            .unwrap_or_else(|| session.clone());
        let account = principal
            .as_ref()
            .and_then(|_| req.cookie(ACCOUNT_COOKIE).map(|c| c.value().to_owned()));
        Self {
            session,
            new_session,
            user,
            principal,
            account,
            renewed,
            secure: shop.config.secure_cookies,
            currency,
            path,
            request_id: cleave_kernel::context::current_request_id()
                .map(|id| id.as_str().to_owned())
                .unwrap_or_default(),
        }
    }
}

/// A session id the storefront could have minted: [`SESSION_PREFIX`] and a UUID.
pub(crate) fn minted_session(raw: &str) -> Option<UserId> {
    let uuid = raw.strip_prefix(SESSION_PREFIX)?;
    uuid::Uuid::try_parse(uuid).ok()?;
    UserId::parse(raw.to_owned()).ok()
}

/// A new session id (`session-<uuid>`).
pub(crate) fn new_session_id() -> UserId {
    let raw = format!("{SESSION_PREFIX}{}", uuid::Uuid::new_v4());
    minted_session(&raw).unwrap_or_else(|| unreachable!("a session id is a valid user id"))
}

pub(crate) fn cookie(name: &'static str, value: String, secure: bool) -> Cookie<'static> {
    Cookie::build(name, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(actix_web::cookie::time::Duration::days(30))
        .finish()
}

/// The cookies a visit sets: a new session id, renewed tokens.
pub(crate) fn visit_cookies(visit: &Visit, res: &mut HttpResponse) {
    if visit.new_session {
        let _ = res.add_cookie(&cookie(
            SESSION_COOKIE,
            visit.session.to_string(),
            visit.secure,
        ));
    }
    if let Some(pair) = &visit.renewed {
        for c in token_cookies(pair, visit.secure) {
            let _ = res.add_cookie(&c);
        }
    }
}

/// The access and refresh token cookies of a session.
pub(crate) fn token_cookies(pair: &identity_api::TokenPair, secure: bool) -> [Cookie<'static>; 2] {
    let mut access = cookie(TOKEN_COOKIE, pair.access_token.expose().to_owned(), secure);
    access.set_max_age(actix_web::cookie::time::Duration::seconds(
        i64::try_from(pair.expires_in).unwrap_or(900),
    ));
    let refresh = cookie(
        REFRESH_COOKIE,
        pair.refresh_token.expose().to_owned(),
        secure,
    );
    [access, refresh]
}
