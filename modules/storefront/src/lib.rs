//! The `storefront` module: the HTML shop, on Online Boutique's routes and form fields.
//!
//! - Owns: nothing but two cookies: `shop_session-id` (the cart's user id for anonymous
//!   shoppers) and `shop_currency`.
//! - Provides: the pages (`GET /`, `/product/{id}`, `/cart`, `POST /cart`, `/cart/empty`,
//!   `/setCurrency`, `/cart/checkout`, `GET /logout`, `/static/...`, `/robots.txt`,
//!   `/_healthz`) through [`configure`].
//! - Requires: catalog, currency, cart, recommendation, ads, shipping, checkout (through their
//!   `-api` traits only). Recommendations and ads are optional: when they fail the page
//!   renders without them.
//!
//! Templates (askama) are compiled into the binary and static assets (rust-embed) embedded in
//! it, so the binary is the whole shop.

mod views;

use std::sync::Arc;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{Next, from_fn};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use ads_api::{AdsApi, AdsRequest};
use askama::Template;
use cart_api::CartApi;
use catalog_api::{CatalogApi, CatalogError, Product};
use checkout_api::{CheckoutApi, CheckoutError, PlaceOrderRequest};
use cleave_domain::{Address, CreditCard, CurrencyCode, Money, ProductId, UserId};
use cleave_kernel::CallContext;
use cleave_kernel::async_trait;
use cleave_kernel::auth::Authenticator;
use cleave_kernel::context::Principal;
use cleave_kernel::module::{Contract, Module, ModuleConfig, Start, StartError};
use currency_api::CurrencyApi;
use identity_api::{Credentials, IdentityApi, IdentityError, Secret};
use recommendation_api::RecommendationApi;
use serde::{Deserialize, Serialize};
use shipping_api::{QuoteRequest, ShippingApi, ShippingItem};

use views::{
    AccountPage, AdView, CartLine, CartPage, Chrome, ConfirmationPage, ErrorPage, HomePage,
    OrderLine, OrderSummaryLine, OrdersPage, ProductCard, ProductPage,
};

/// The module's name and config section.
pub const MODULE: &str = "storefront";

/// The sign-in page and form.
pub const LOGIN_PATH: &str = "/login";
/// The registration page and form.
pub const REGISTER_PATH: &str = "/register";

/// The session cookie (Boutique's name).
pub const SESSION_COOKIE: &str = "shop_session-id";
/// The currency cookie (Boutique's name).
pub const CURRENCY_COOKIE: &str = "shop_currency";
/// The signed-in user's access token (HttpOnly).
pub const TOKEN_COOKIE: &str = "shop_token";
/// The signed-in user's e-mail address, for the header.
pub const ACCOUNT_COOKIE: &str = "shop_account";
/// The signed-in user's refresh token (HttpOnly): a new access token when the old one
/// expires.
pub const REFRESH_COOKIE: &str = "shop_refresh";

/// Settings of `[modules.storefront]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StorefrontConfig {
    /// The currency of a first visit.
    pub default_currency: String,
    /// Mark cookies `Secure` (set when the shop is served over HTTPS).
    pub secure_cookies: bool,
}

impl Default for StorefrontConfig {
    fn default() -> Self {
        Self {
            default_currency: "USD".into(),
            secure_cookies: false,
        }
    }
}

/// The modules the storefront calls.
#[derive(Clone)]
pub struct StorefrontDeps {
    /// Products.
    pub catalog: Arc<dyn CatalogApi>,
    /// Prices in the shopper's currency.
    pub currency: Arc<dyn CurrencyApi>,
    /// The cart.
    pub cart: Arc<dyn CartApi>,
    /// Suggestions (optional on every page).
    pub recommendation: Arc<dyn RecommendationApi>,
    /// Ads (optional on every page).
    pub ads: Arc<dyn AdsApi>,
    /// Shipping quotes.
    pub shipping: Arc<dyn ShippingApi>,
    /// Orders.
    pub checkout: Arc<dyn CheckoutApi>,
    /// Accounts and sessions.
    pub identity: Arc<dyn IdentityApi>,
    /// Verifies the session's access token.
    pub authenticator: Arc<Authenticator>,
}

/// The storefront, ready to be mounted.
pub struct Storefront {
    deps: StorefrontDeps,
    config: StorefrontConfig,
}

impl Storefront {
    /// The storefront over its dependencies.
    pub fn new(config: &StorefrontConfig, deps: StorefrontDeps) -> Arc<Self> {
        Arc::new(Self {
            deps,
            config: config.clone(),
        })
    }
}

impl ModuleConfig for StorefrontConfig {}

/// The storefront as the kernel sees it: pages on Boutique's routes, no API (so no operations,
/// no client: it is served where it is hosted and nowhere else).
#[derive(Debug, Clone, Copy, Default)]
pub struct StorefrontContract;

impl Contract for StorefrontContract {
    type Api = Storefront;
    type Error = cleave_kernel::error::KernelError;
    const MODULE: &'static str = MODULE;
    const OPERATIONS: &'static [&'static cleave_kernel::call::Operation] = &[];

    fn intercept(api: Arc<Storefront>, _: cleave_kernel::call::CallPath) -> Arc<Storefront> {
        api
    }

    fn client(_: cleave_kernel::client::RemoteClient) -> Option<Arc<Storefront>> {
        None
    }

    fn configure(cfg: &mut web::ServiceConfig, api: Arc<Storefront>) {
        configure(cfg, api);
    }

    fn openapi() -> Option<utoipa::openapi::OpenApi> {
        None
    }
}

#[async_trait]
impl Module for Storefront {
    type Contract = StorefrontContract;
    type Config = StorefrontConfig;
    const OWNS: &'static str = "session and currency cookies";
    const REQUIRES: &'static [&'static str] = &[
        "catalog",
        "currency",
        "cart",
        "recommendation",
        "ads",
        "shipping",
        "checkout",
        "identity",
    ];

    async fn start(start: Start<'_, StorefrontConfig>) -> Result<Arc<Storefront>, StartError> {
        let deps = StorefrontDeps {
            catalog: start.dep::<catalog_api::CatalogContract>()?,
            currency: start.dep::<currency_api::CurrencyContract>()?,
            cart: start.dep::<cart_api::CartContract>()?,
            recommendation: start.dep::<recommendation_api::RecommendationContract>()?,
            ads: start.dep::<ads_api::AdsContract>()?,
            shipping: start.dep::<shipping_api::ShippingContract>()?,
            checkout: start.dep::<checkout_api::CheckoutContract>()?,
            identity: start.dep::<identity_api::IdentityContract>()?,
            authenticator: start.authenticator()?,
        };
        Ok(Storefront::new(start.config(), deps))
    }
}

#[derive(rust_embed::Embed)]
#[folder = "static/"]
struct Assets;

/// Registers the shop's routes on `cfg`.
pub fn configure(cfg: &mut web::ServiceConfig, shop: Arc<Storefront>) {
    // Every resource taking a form post refuses posts from other sites (CSRF).
    let form = |path: &str| web::resource(path).wrap(from_fn(same_site_posts));
    cfg.app_data(web::Data::from(shop))
        .service(web::resource("/").route(web::get().to(home)))
        .service(web::resource("/product/{id}").route(web::get().to(product)))
        .service(
            form("/cart")
                .route(web::get().to(view_cart))
                .route(web::post().to(add_to_cart)),
        )
        .service(form("/cart/empty").route(web::post().to(empty_cart)))
        .service(form("/cart/checkout").route(web::post().to(checkout)))
        .service(form("/setCurrency").route(web::post().to(set_currency)))
        .service(web::resource("/logout").route(web::get().to(logout)))
        .service(
            form(LOGIN_PATH)
                .route(web::get().to(login_page))
                .route(web::post().to(login)),
        )
        .service(
            form(REGISTER_PATH)
                .route(web::get().to(register_page))
                .route(web::post().to(register)),
        )
        .service(web::resource("/orders").route(web::get().to(orders)))
        .service(web::resource("/_healthz").route(web::get().to(|| async { "ok" })))
        .service(web::resource("/robots.txt").route(web::get().to(robots)))
        .service(web::resource("/static/{path:.*}").route(web::get().to(asset)));
}

/// Middleware of the form resources: a POST from another site gets the 403 page instead of
/// reaching its handler.
async fn same_site_posts(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let shop = req.app_data::<web::Data<Storefront>>().cloned();
    match shop {
        Some(shop)
            if req.method() == actix_web::http::Method::POST && cross_site(req.request()) =>
        {
            let ctx = req
                .extensions()
                .get::<CallContext>()
                .cloned()
                .unwrap_or_else(CallContext::root);
            let page = refuse_cross_site(req.request(), &ctx, &shop).await;
            Ok(req.into_response(page))
        }
        _ => Ok(next.call(req).await?.map_into_boxed_body()),
    }
}

/// The HTML 404 page, for paths outside the API that nothing serves.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    let shop = req.app_data::<web::Data<Storefront>>().cloned();
    match shop {
        Some(shop) => {
            let visit = Visit::of(&req, &shop).await;
            let chrome = shop.chrome(&visit, &CallContext::root()).await;
            error_page(
                &visit,
                chrome,
                StatusCode::NOT_FOUND,
                "We can't find that page",
                "The page you asked for does not exist. It may have moved, or the link may be mistyped.",
            )
        }
        None => HttpResponse::NotFound().finish(),
    }
}

/// Who is visiting: their session (new or from the cookie), the signed-in user if any, and
/// their currency.
struct Visit {
    session: UserId,
    new_session: bool,
    /// Whose cart and orders: the signed-in user, else the session.
    user: UserId,
    /// The signed-in user (from a valid `shop_token` cookie).
    principal: Option<Principal>,
    /// Their e-mail address, for the header.
    account: Option<String>,
    /// Tokens renewed during this request (their cookies go out with the response).
    renewed: Option<identity_api::TokenPair>,
    /// Mark cookies `Secure`.
    secure: bool,
    currency: String,
    path: String,
    request_id: String,
}

impl Visit {
    async fn of(req: &HttpRequest, shop: &Storefront) -> Self {
        let existing = req
            .cookie(SESSION_COOKIE)
            .and_then(|c| UserId::parse(c.value().to_owned()).ok());
        let (session, new_session) = match existing {
            Some(s) => (s, false),
            None => (
                UserId::parse(uuid::Uuid::new_v4().to_string()).unwrap_or_else(|_| fallback_user()),
                true,
            ),
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
                .refresh(&CallContext::root(), Secret(refresh.value().to_owned()))
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

fn fallback_user() -> UserId {
    // A v4 uuid always parses as a user id; this is only here so no unwrap is needed.
    UserId::parse("anonymous").unwrap_or_else(|_| unreachable!("a constant id is valid"))
}

fn cookie(name: &'static str, value: String, secure: bool) -> Cookie<'static> {
    Cookie::build(name, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(actix_web::cookie::time::Duration::days(30))
        .finish()
}

/// Headers every HTML page carries.
fn secure_headers(res: &mut HttpResponse) {
    let headers = res.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'self'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

fn html(visit: &Visit, status: StatusCode, body: Result<String, askama::Error>) -> HttpResponse {
    let mut res = match body {
        Ok(body) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(body),
        Err(e) => {
            tracing::error!(error = %e, "template failed to render");
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body("The page could not be rendered.")
        }
    };
    visit_cookies(visit, &mut res);
    secure_headers(&mut res);
    res
}

/// The cookies a visit sets: a new session id, renewed tokens.
fn visit_cookies(visit: &Visit, res: &mut HttpResponse) {
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
fn token_cookies(pair: &identity_api::TokenPair, secure: bool) -> [Cookie<'static>; 2] {
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

fn redirect(visit: &Visit, to: &str) -> HttpResponse {
    let mut res = HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to.to_owned()))
        .finish();
    visit_cookies(visit, &mut res);
    res
}

fn error_page(
    visit: &Visit,
    chrome: Chrome,
    status: StatusCode,
    title: &str,
    message: &str,
) -> HttpResponse {
    let page = ErrorPage {
        chrome,
        status: status.as_u16(),
        title: title.into(),
        message: message.into(),
        request_id: visit.request_id.clone(),
    };
    html(visit, status, page.render())
}

/// Formats money for people: a symbol where there is a well-known one, two decimals (none
/// for yen).
pub fn format_money(m: &Money) -> String {
    let amount = m.to_decimal();
    let (symbol, dp) = match m.currency_code.as_str() {
        "USD" => ("$", 2),
        "EUR" => ("€", 2),
        "GBP" => ("£", 2),
        "JPY" => ("¥", 0),
        _ => ("", 2),
    };
    let rounded =
        amount.round_dp_with_strategy(dp, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
    let text = format!("{rounded:.prec$}", prec = dp as usize);
    if symbol.is_empty() {
        format!("{text} {}", m.currency_code)
    } else {
        format!("{symbol}{text}")
    }
}

impl Storefront {
    async fn chrome(&self, visit: &Visit, ctx: &CallContext) -> Chrome {
        let currencies = self
            .deps
            .currency
            .supported_currencies(ctx)
            .await
            .map(|c| c.into_iter().map(String::from).collect())
            .unwrap_or_else(|_| vec![visit.currency.clone()]);
        let cart_count = self
            .deps
            .cart
            .get_cart(ctx, visit.user.clone())
            .await
            .map(|c| c.items.iter().map(|i| i.quantity).sum())
            .unwrap_or(0);
        Chrome {
            currency: visit.currency.clone(),
            currencies,
            cart_count,
            session_short: visit.session.as_str().chars().take(8).collect(),
            current_path: visit.path.clone(),
            signed_in: visit
                .account
                .clone()
                .or_else(|| visit.principal.as_ref().map(|_| "your account".to_owned())),
        }
    }

    async fn price(&self, ctx: &CallContext, money: &Money, currency: &str) -> Option<Money> {
        self.deps
            .currency
            .convert(ctx, money.clone(), currency.to_owned())
            .await
            .ok()
    }

    async fn card(&self, ctx: &CallContext, p: &Product, currency: &str) -> Option<ProductCard> {
        let price = self.price(ctx, &p.price_usd, currency).await?;
        Some(ProductCard {
            id: p.id.to_string(),
            name: p.name.clone(),
            picture: p.picture.clone(),
            price: format_money(&price),
            categories: p.categories.clone(),
        })
    }

    /// Recommended products as cards; empty when recommendations fail (they are optional).
    async fn recommendations(
        &self,
        ctx: &CallContext,
        visit: &Visit,
        products: Vec<ProductId>,
    ) -> Vec<ProductCard> {
        let ids = match self
            .deps
            .recommendation
            .list_recommendations(ctx, visit.user.clone(), products)
            .await
        {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "recommendations unavailable; page rendered without them");
                return Vec::new();
            }
        };
        let mut cards = Vec::new();
        for id in ids {
            if let Ok(p) = self.deps.catalog.get_product(ctx, id).await
                && let Some(card) = self.card(ctx, &p, &visit.currency).await
            {
                cards.push(card);
            }
        }
        cards
    }

    /// One ad for these categories; `None` when ads fail (they are optional).
    async fn ad(&self, ctx: &CallContext, keys: Vec<String>) -> Option<AdView> {
        match self
            .deps
            .ads
            .get_ads(ctx, AdsRequest { context_keys: keys })
            .await
        {
            Ok(ads) => ads.ads.into_iter().next().map(|a| AdView {
                redirect_url: a.redirect_url,
                text: a.text,
            }),
            Err(e) => {
                tracing::warn!(error = %e, "ads unavailable; page rendered without them");
                None
            }
        }
    }

    fn unavailable(&self, visit: &Visit, chrome: Chrome) -> HttpResponse {
        error_page(
            visit,
            chrome,
            StatusCode::SERVICE_UNAVAILABLE,
            "We'll be right back",
            "Part of the shop is not answering right now. Nothing was charged. Please try again in a moment.",
        )
    }
}

type Shop = web::Data<Storefront>;

async fn home(req: HttpRequest, ctx: CallContext, shop: Shop) -> HttpResponse {
    let visit = Visit::of(&req, &shop).await;
    let chrome = shop.chrome(&visit, &ctx).await;
    let products = match shop.deps.catalog.list_products(&ctx).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "catalog unavailable");
            return shop.unavailable(&visit, chrome);
        }
    };
    let mut cards = Vec::with_capacity(products.len());
    for p in &products {
        match shop.card(&ctx, p, &visit.currency).await {
            Some(card) => cards.push(card),
            None => return shop.unavailable(&visit, chrome),
        }
    }
    let ad = shop.ad(&ctx, Vec::new()).await;
    let page = HomePage {
        chrome,
        products: cards,
        ad,
    };
    html(&visit, StatusCode::OK, page.render())
}

async fn product(
    req: HttpRequest,
    ctx: CallContext,
    shop: Shop,
    id: web::Path<String>,
) -> HttpResponse {
    let visit = Visit::of(&req, &shop).await;
    let chrome = shop.chrome(&visit, &ctx).await;
    let not_found = |chrome| {
        error_page(
            &visit,
            chrome,
            StatusCode::NOT_FOUND,
            "We can't find that product",
            "It may no longer be sold, or the link may be mistyped.",
        )
    };
    let Ok(id) = ProductId::parse(id.into_inner()) else {
        return not_found(chrome);
    };
    let product = match shop.deps.catalog.get_product(&ctx, id.clone()).await {
        Ok(p) => p,
        Err(CatalogError::ProductNotFound { .. } | CatalogError::InvalidProductId { .. }) => {
            return not_found(chrome);
        }
        Err(_) => return shop.unavailable(&visit, chrome),
    };
    let Some(card) = shop.card(&ctx, &product, &visit.currency).await else {
        return shop.unavailable(&visit, chrome);
    };
    let (recommendations, ad) = futures::join!(
        shop.recommendations(&ctx, &visit, vec![id]),
        shop.ad(&ctx, product.categories.clone())
    );
    let page = ProductPage {
        chrome,
        description: product.description,
        product: card,
        recommendations,
        ad,
    };
    html(&visit, StatusCode::OK, page.render())
}

/// Whether a form post comes from another site (CSRF): its `Origin`, or failing that its
/// `Referer`, names a host other than this one. Posts with neither (Boutique's load
/// generator, old clients) pass; cookies are `SameSite=Lax` besides.
fn cross_site(req: &HttpRequest) -> bool {
    let host = req.connection_info().host().to_ascii_lowercase();
    let header = |name| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    match header(header::ORIGIN).or_else(|| header(header::REFERER)) {
        None => false,
        Some(source) => {
            let source_host = source.split_once("://").map(|(_, rest)| {
                rest.split('/')
                    .next()
                    .unwrap_or_default()
                    .to_ascii_lowercase()
            });
            source_host.as_deref() != Some(host.as_str())
        }
    }
}

async fn refuse_cross_site(
    req: &HttpRequest,
    ctx: &CallContext,
    shop: &Storefront,
) -> HttpResponse {
    let visit = Visit::of(req, shop).await;
    tracing::warn!(path = %req.path(), "cross-site form post refused");
    let chrome = shop.chrome(&visit, ctx).await;
    error_page(
        &visit,
        chrome,
        StatusCode::FORBIDDEN,
        "That form came from another site",
        "For your safety the shop only accepts its own forms. Please go back to the shop and try again.",
    )
}

async fn bad_request(
    visit: &Visit,
    ctx: &CallContext,
    shop: &Storefront,
    msg: &str,
) -> HttpResponse {
    let chrome = shop.chrome(visit, ctx).await;
    error_page(
        visit,
        chrome,
        StatusCode::BAD_REQUEST,
        "That didn't work",
        msg,
    )
}

#[derive(Deserialize)]
struct AddForm {
    product_id: String,
    quantity: String,
}

async fn add_to_cart(
    req: HttpRequest,
    ctx: CallContext,
    shop: Shop,
    form: web::Form<AddForm>,
) -> HttpResponse {
    let visit = Visit::of(&req, &shop).await;
    let AddForm {
        product_id,
        quantity,
    } = form.into_inner();
    let Ok(product_id) = ProductId::parse(product_id) else {
        return bad_request(&visit, &ctx, &shop, "That product does not exist.").await;
    };
    let Ok(quantity) = quantity.trim().parse::<i64>() else {
        return bad_request(&visit, &ctx, &shop, "The quantity must be a whole number.").await;
    };
    // The product must exist before it goes in the cart.
    match shop
        .deps
        .catalog
        .get_product(&ctx, product_id.clone())
        .await
    {
        Ok(_) => {}
        Err(CatalogError::ProductNotFound { .. }) => {
            return bad_request(&visit, &ctx, &shop, "That product does not exist.").await;
        }
        Err(_) => {
            let chrome = shop.chrome(&visit, &ctx).await;
            return shop.unavailable(&visit, chrome);
        }
    }
    match shop
        .deps
        .cart
        .add_item(&ctx, visit.user.clone(), product_id, quantity)
        .await
    {
        Ok(_) => redirect(&visit, "/cart"),
        Err(e) if !cleave_kernel::ApiError::status(&e).is_server_error() => {
            bad_request(&visit, &ctx, &shop, &e.to_string()).await
        }
        Err(_) => {
            let chrome = shop.chrome(&visit, &ctx).await;
            shop.unavailable(&visit, chrome)
        }
    }
}

/// The demo address quotes are made for (a quote depends on the item count only).
fn quote_address() -> Address {
    Address {
        street_address: "1600 Amphitheatre Parkway".into(),
        city: "Mountain View".into(),
        state: "CA".into(),
        country: "United States".into(),
        zip_code: "94043".into(),
    }
}

async fn cart_page(
    visit: &Visit,
    ctx: &CallContext,
    shop: &Storefront,
    status: StatusCode,
    form_error: Option<String>,
) -> HttpResponse {
    let chrome = shop.chrome(visit, ctx).await;
    let cart = match shop.deps.cart.get_cart(ctx, visit.user.clone()).await {
        Ok(c) => c,
        Err(_) => return shop.unavailable(visit, chrome),
    };
    let zero = Money::new(&visit.currency, 0, 0).unwrap_or_else(|_| Money {
        currency_code: visit.currency.clone(),
        units: 0,
        nanos: 0,
    });
    let mut lines = Vec::new();
    let mut subtotal = zero.clone();
    for item in &cart.items {
        let Ok(product) = shop
            .deps
            .catalog
            .get_product(ctx, item.product_id.clone())
            .await
        else {
            continue; // a product no longer sold is left out of the page; checkout refuses it
        };
        let Some(price) = shop.price(ctx, &product.price_usd, &visit.currency).await else {
            return shop.unavailable(visit, chrome);
        };
        let Ok(line_total) = price.checked_mul(item.quantity) else {
            return shop.unavailable(visit, chrome);
        };
        subtotal = subtotal.checked_add(&line_total).unwrap_or(subtotal);
        lines.push(CartLine {
            product: ProductCard {
                id: product.id.to_string(),
                name: product.name.clone(),
                picture: product.picture.clone(),
                price: format_money(&price),
                categories: product.categories.clone(),
            },
            quantity: item.quantity,
            line_total: format_money(&line_total),
        });
    }
    let shipping = if cart.items.is_empty() {
        zero.clone()
    } else {
        let quote = shop
            .deps
            .shipping
            .get_quote(
                ctx,
                QuoteRequest {
                    address: quote_address(),
                    items: cart
                        .items
                        .iter()
                        .map(|i| ShippingItem {
                            product_id: i.product_id.clone(),
                            quantity: i.quantity,
                        })
                        .collect(),
                },
            )
            .await;
        let converted = match quote {
            Ok(q) => shop.price(ctx, &q.cost, &visit.currency).await,
            Err(_) => None,
        };
        let Some(cost) = converted else {
            return shop.unavailable(visit, chrome);
        };
        cost
    };
    let total = subtotal.checked_add(&shipping).unwrap_or(subtotal);
    let recommendations = shop
        .recommendations(
            ctx,
            visit,
            cart.items.iter().map(|i| i.product_id.clone()).collect(),
        )
        .await;
    let year = chrono::Datelike::year(&chrono::Utc::now());
    let page = CartPage {
        chrome,
        lines,
        shipping: format_money(&shipping),
        total: format_money(&total),
        recommendations,
        default_email: visit
            .account
            .clone()
            .unwrap_or_else(|| "someone@example.com".into()),
        expiry_years: (year..year + 6).collect(),
        form_error,
    };
    html(visit, status, page.render())
}

async fn view_cart(req: HttpRequest, ctx: CallContext, shop: Shop) -> HttpResponse {
    let visit = Visit::of(&req, &shop).await;
    cart_page(&visit, &ctx, &shop, StatusCode::OK, None).await
}

async fn empty_cart(req: HttpRequest, ctx: CallContext, shop: Shop) -> HttpResponse {
    let visit = Visit::of(&req, &shop).await;
    match shop.deps.cart.empty_cart(&ctx, visit.user.clone()).await {
        Ok(()) => redirect(&visit, "/"),
        Err(_) => {
            let chrome = shop.chrome(&visit, &ctx).await;
            shop.unavailable(&visit, chrome)
        }
    }
}

#[derive(Deserialize)]
struct CurrencyForm {
    currency_code: String,
    #[serde(default)]
    return_to: Option<String>,
}

/// Where to go back to: a local path only (never another site).
fn local_path(raw: Option<&str>) -> Option<String> {
    let p = raw?;
    let local = p.starts_with('/') && !p.starts_with("//") && !p.contains('\\');
    (local && !p.chars().any(char::is_control)).then(|| p.to_owned())
}

async fn set_currency(
    req: HttpRequest,
    ctx: CallContext,
    shop: Shop,
    form: web::Form<CurrencyForm>,
) -> HttpResponse {
    let visit = Visit::of(&req, &shop).await;
    let CurrencyForm {
        currency_code,
        return_to,
    } = form.into_inner();
    let supported = shop
        .deps
        .currency
        .supported_currencies(&ctx)
        .await
        .map(|all| all.iter().any(|c| c.as_str() == currency_code));
    match supported {
        Ok(true) => {}
        Ok(false) => {
            let chrome = shop.chrome(&visit, &ctx).await;
            return error_page(
                &visit,
                chrome,
                StatusCode::BAD_REQUEST,
                "Unknown currency",
                "Please pick a currency from the list.",
            );
        }
        Err(_) => {
            let chrome = shop.chrome(&visit, &ctx).await;
            return shop.unavailable(&visit, chrome);
        }
    }
    let back = local_path(return_to.as_deref())
        .or_else(|| {
            // Boutique's load generator posts no return_to: go back where it came from, if
            // that is this site.
            let referer = req.headers().get(header::REFERER)?.to_str().ok()?;
            let host = req.connection_info().host().to_owned();
            let rest = referer.split_once("://")?.1;
            let path = rest.strip_prefix(host.as_str())?;
            local_path(Some(path))
        })
        .unwrap_or_else(|| "/".into());
    let mut res = redirect(&visit, &back);
    let _ = res.add_cookie(&cookie(
        CURRENCY_COOKIE,
        currency_code,
        shop.config.secure_cookies,
    ));
    res
}

#[derive(Deserialize)]
struct CheckoutForm {
    email: String,
    street_address: String,
    zip_code: String,
    city: String,
    #[serde(default)]
    state: String,
    country: String,
    credit_card_number: String,
    credit_card_expiration_month: String,
    credit_card_expiration_year: String,
    credit_card_cvv: String,
}

async fn checkout(
    req: HttpRequest,
    ctx: CallContext,
    shop: Shop,
    form: web::Form<CheckoutForm>,
) -> HttpResponse {
    let visit = Visit::of(&req, &shop).await;
    let f = form.into_inner();
    let (Ok(month), Ok(year)) = (
        f.credit_card_expiration_month.trim().parse::<u32>(),
        f.credit_card_expiration_year.trim().parse::<i32>(),
    ) else {
        return cart_page(
            &visit,
            &ctx,
            &shop,
            StatusCode::BAD_REQUEST,
            Some("The card's expiry month and year must be numbers.".into()),
        )
        .await;
    };
    let Ok(currency) = CurrencyCode::parse(visit.currency.clone()) else {
        return cart_page(&visit, &ctx, &shop, StatusCode::BAD_REQUEST, None).await;
    };
    let order_req = PlaceOrderRequest {
        user_id: visit.user.clone(),
        user_currency: currency,
        address: Address {
            street_address: f.street_address,
            city: f.city,
            state: f.state,
            country: f.country,
            zip_code: f.zip_code,
        },
        email: f.email.trim().to_owned(),
        credit_card: CreditCard {
            number: f.credit_card_number,
            cvv: f.credit_card_cvv,
            expiration_year: year,
            expiration_month: month,
        },
    };
    // A signed-in shopper orders as themselves (their token travels with the call).
    let ctx = match &visit.principal {
        Some(p) => ctx.with_principal(p.clone()),
        None => ctx,
    };
    let order = match shop.deps.checkout.place_order(&ctx, order_req, None).await {
        Ok(order) => order,
        Err(CheckoutError::PaymentDeclined { detail, .. }) => {
            return cart_page(
                &visit,
                &ctx,
                &shop,
                StatusCode::PAYMENT_REQUIRED,
                Some(format!(
                    "Your payment was declined: {detail}. Nothing was charged; please check the card details."
                )),
            )
            .await;
        }
        Err(
            CheckoutError::InvalidRequest { detail } | CheckoutError::InvalidAddress { detail },
        ) => {
            return cart_page(
                &visit,
                &ctx,
                &shop,
                StatusCode::BAD_REQUEST,
                Some(format!("Please check the form: {detail}.")),
            )
            .await;
        }
        Err(CheckoutError::EmptyCart) => return redirect(&visit, "/cart"),
        Err(
            e @ (CheckoutError::ProductUnavailable { .. }
            | CheckoutError::UnsupportedCurrency { .. }),
        ) => {
            return cart_page(
                &visit,
                &ctx,
                &shop,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(e.to_string()),
            )
            .await;
        }
        Err(e) => {
            tracing::warn!(error = %e, "checkout failed");
            let chrome = shop.chrome(&visit, &ctx).await;
            return shop.unavailable(&visit, chrome);
        }
    };
    let chrome = shop.chrome(&visit, &ctx).await;
    let recommendations = shop
        .recommendations(
            &ctx,
            &visit,
            order.items.iter().map(|i| i.product_id.clone()).collect(),
        )
        .await;
    let page = ConfirmationPage {
        chrome,
        order_id: order.order_id,
        tracking_id: order.shipping_tracking_id,
        total: format_money(&order.total),
        shipping: format_money(&order.shipping_cost),
        lines: order
            .items
            .iter()
            .map(|i| OrderLine {
                name: i.name.clone(),
                quantity: i.quantity,
                cost: format_money(&i.cost),
            })
            .collect(),
        email: order.email,
        recommendations,
    };
    html(&visit, StatusCode::OK, page.render())
}

async fn logout(req: HttpRequest, shop: Shop) -> HttpResponse {
    let visit = Visit::of(&req, &shop).await;
    let mut res = HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/"))
        .finish();
    if let Some(refresh) = req.cookie(REFRESH_COOKIE) {
        // End the session server-side too: the refresh token and its family are revoked.
        let _ = shop
            .deps
            .identity
            .logout(&CallContext::root(), Secret(refresh.value().to_owned()))
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
struct AccountForm {
    email: String,
    password: String,
}

fn account_page(
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

async fn login_page(req: HttpRequest, ctx: CallContext, shop: Shop) -> HttpResponse {
    let visit = Visit::of(&req, &shop).await;
    let chrome = shop.chrome(&visit, &ctx).await;
    html(
        &visit,
        StatusCode::OK,
        account_page(false, chrome, String::new(), None).render(),
    )
}

async fn register_page(req: HttpRequest, ctx: CallContext, shop: Shop) -> HttpResponse {
    let visit = Visit::of(&req, &shop).await;
    let chrome = shop.chrome(&visit, &ctx).await;
    html(
        &visit,
        StatusCode::OK,
        account_page(true, chrome, String::new(), None).render(),
    )
}

async fn login(
    req: HttpRequest,
    ctx: CallContext,
    shop: Shop,
    form: web::Form<AccountForm>,
) -> HttpResponse {
    sign_in(&req, &ctx, &shop, form.into_inner(), false).await
}

async fn register(
    req: HttpRequest,
    ctx: CallContext,
    shop: Shop,
    form: web::Form<AccountForm>,
) -> HttpResponse {
    sign_in(&req, &ctx, &shop, form.into_inner(), true).await
}

/// Registers (when asked) and signs in: the session's cart moves to the user's, and the
/// access token goes in an HttpOnly cookie.
async fn sign_in(
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
                IdentityError::EmailTaken => (
                    StatusCode::CONFLICT,
                    "This e-mail address already has an account: sign in instead.".to_owned(),
                ),
                IdentityError::InvalidEmail { .. } | IdentityError::InvalidPassword { .. } => {
                    (StatusCode::BAD_REQUEST, format!("{e}."))
                }
                _ => {
                    let chrome = shop.chrome(&visit, ctx).await;
                    return shop.unavailable(&visit, chrome);
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
    let Ok(principal) = shop
        .deps
        .authenticator
        .authenticate(pair.access_token.expose())
        .await
    else {
        let chrome = shop.chrome(&visit, ctx).await;
        return shop.unavailable(&visit, chrome);
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

async fn orders(req: HttpRequest, ctx: CallContext, shop: Shop) -> HttpResponse {
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
    let Ok(list) = list else {
        return shop.unavailable(&visit, chrome);
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

async fn robots() -> HttpResponse {
    serve_asset("robots.txt")
}

async fn asset(path: web::Path<String>) -> HttpResponse {
    serve_asset(&path.into_inner())
}

fn serve_asset(path: &str) -> HttpResponse {
    match Assets::get(path) {
        Some(file) => HttpResponse::Ok()
            .content_type(file.metadata.mimetype())
            .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .body(file.data.into_owned()),
        None => HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("not found"),
    }
}

#[cfg(test)]
mod money_tests {
    use super::*;

    #[test]
    fn money_is_shown_with_symbols_and_two_decimals_except_yen() {
        let m = |c: &str, u, n| Money::new(c, u, n).expect("money");
        assert_eq!(format_money(&m("USD", 18, 990_000_000)), "$18.99");
        assert_eq!(format_money(&m("EUR", 5, 0)), "€5.00");
        assert_eq!(format_money(&m("JPY", 2847, 400_000_000)), "¥2847");
        assert_eq!(format_money(&m("CAD", 1, 5_000_000)), "1.01 CAD");
    }

    #[test]
    fn only_local_paths_are_returned_to() {
        assert_eq!(local_path(Some("/cart")).as_deref(), Some("/cart"));
        assert_eq!(local_path(Some("//evil.example")), None);
        assert_eq!(local_path(Some("https://evil.example/")), None);
        assert_eq!(local_path(None), None);
    }
}
