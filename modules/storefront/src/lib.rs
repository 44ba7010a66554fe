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

mod account;
mod assets;
mod browse;
mod cart;
mod checkout;
mod csrf;
mod render;
mod views;
mod visit;

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
use cleave_kernel::auth::Authenticator;
use cleave_kernel::context::Principal;
use cleave_kernel::module;
use cleave_kernel::module::{Contract, Start, StartError};
use currency_api::CurrencyApi;
use identity_api::{Credentials, IdentityApi, IdentityError, Secret};
use recommendation_api::RecommendationApi;
use serde::{Deserialize, Serialize};
use shipping_api::{QuoteRequest, ShippingApi, ShippingItem};

use account::*;
use assets::*;
use browse::*;
use cart::*;
use checkout::*;
use csrf::*;
use render::*;
use views::{
    AccountPage, AdView, CartLine, CartPage, Chrome, ConfirmationPage, ErrorPage, HomePage,
    OrderLine, OrderSummaryLine, OrdersPage, ProductCard, ProductPage,
};
use visit::*;

/// The module's name and config section.
pub const MODULE: &str = "storefront";

/// The sign-in page and form.
pub const LOGIN_PATH: &str = "/login";
/// The registration page and form.
pub const REGISTER_PATH: &str = "/register";

/// The session cookie (Boutique's name).
pub const SESSION_COOKIE: &str = "shop_session-id";

/// The prefix of the session ids the storefront mints (`session-<uuid>`): the cart's owner
/// until the visitor signs in. No user's or API guest's id has it, so a session cookie can
/// only name a session.
pub const SESSION_PREFIX: &str = "session-";
/// The currency cookie (Boutique's name).
pub const CURRENCY_COOKIE: &str = "shop_currency";
/// The signed-in user's access token (HttpOnly).
pub use cleave_kernel::auth::TOKEN_COOKIE;
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
#[module(contract = StorefrontContract, config = StorefrontConfig,
    owns = "session and currency cookies",
    requires = ["catalog", "currency", "cart", "recommendation", "ads", "shipping", "checkout",
        "identity"],
    optional = ["recommendation", "ads"])]
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

impl Storefront {
    /// Starts the module from what the process gives it (see `#[module]`).
    async fn from_start(start: Start<'_, StorefrontConfig>) -> Result<Arc<Self>, StartError> {
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

/// The HTML 404 page, for paths outside the API that nothing serves.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    let shop = req.app_data::<web::Data<Storefront>>().cloned();
    match shop {
        Some(shop) => {
            let visit = Visit::of(&req, &shop).await;
            let chrome = shop.chrome(&visit, &CallContext::current()).await;
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

type Shop = web::Data<Storefront>;
