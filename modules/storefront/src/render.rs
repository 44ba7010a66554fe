//! Rendering pages: the chrome every page shares, HTML answers with their security
//! headers, redirects, error pages, and money for people.

use super::*;

/// Headers every HTML page carries.
pub(crate) fn secure_headers(res: &mut HttpResponse) {
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

pub(crate) fn html(
    visit: &Visit,
    status: StatusCode,
    body: Result<String, askama::Error>,
) -> HttpResponse {
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

pub(crate) fn redirect(visit: &Visit, to: &str) -> HttpResponse {
    let mut res = HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to.to_owned()))
        .finish();
    visit_cookies(visit, &mut res);
    res
}

pub(crate) fn error_page(
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
pub(crate) fn format_money(m: &Money) -> String {
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

/// How many items a cart holds (the header's count).
pub(crate) fn count_of(cart: &cart_api::Cart) -> i64 {
    cart.items.iter().map(|i| i.quantity).sum()
}

impl Storefront {
    /// The header, counting the cart's items itself.
    pub(crate) async fn chrome(&self, visit: &Visit, ctx: &CallContext) -> Chrome {
        // Independent calls go out together: a page waits for the slowest, not the sum.
        let (currencies, cart) = futures::join!(self.currencies(visit, ctx), async {
            if visit.new_session && visit.principal.is_none() {
                // A session minted for this very request has no cart: nothing to ask.
                return None;
            }
            // The header's count may lag a moment behind a change made elsewhere: where
            // cart is another process's, an answer kept since its last change will do.
            let ctx = ctx.clone().kept_answer_will_do();
            self.deps.cart.get_cart(&ctx, visit.user.clone()).await.ok()
        });
        Self::chrome_of(visit, currencies, cart.as_ref().map_or(0, count_of))
    }

    /// The header of a page that knows the cart's item count (it read the cart, or the
    /// order it placed emptied it): the cart is not asked again.
    pub(crate) async fn chrome_counting(
        &self,
        visit: &Visit,
        ctx: &CallContext,
        cart_count: i64,
    ) -> Chrome {
        Self::chrome_of(visit, self.currencies(visit, ctx).await, cart_count)
    }

    /// The currencies a visitor may pick; only the visit's own when currency fails.
    pub(crate) async fn currencies(&self, visit: &Visit, ctx: &CallContext) -> Vec<String> {
        self.deps
            .currency
            .supported_currencies(ctx)
            .await
            .map(|c| c.into_iter().map(String::from).collect())
            .unwrap_or_else(|_| vec![visit.currency.clone()])
    }

    pub(crate) fn chrome_of(visit: &Visit, currencies: Vec<String>, cart_count: i64) -> Chrome {
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

    pub(crate) async fn price(
        &self,
        ctx: &CallContext,
        money: &Money,
        currency: &str,
    ) -> Result<Money, String> {
        self.deps
            .currency
            .convert(ctx, money.clone(), currency.to_owned())
            .await
            .map_err(|e| format!("currency: {e}"))
    }

    pub(crate) async fn card(
        &self,
        ctx: &CallContext,
        p: &Product,
        currency: &str,
    ) -> Result<ProductCard, String> {
        let price = self.price(ctx, &p.price_usd, currency).await?;
        Ok(ProductCard {
            id: p.id.to_string(),
            name: p.name.clone(),
            picture: p.picture.clone(),
            price: format_money(&price),
            categories: p.categories.clone(),
        })
    }

    /// Recommended products as cards; empty when recommendations fail (they are optional).
    /// An answer kept a moment will do: the same user and products get the same
    /// recommendations, and a suggestion may lag a catalog change by
    /// `modules.recommendation.cache_ttl_ms` (a product since removed is left out below).
    pub(crate) async fn recommendations(
        &self,
        ctx: &CallContext,
        visit: &Visit,
        products: Vec<ProductId>,
    ) -> Vec<ProductCard> {
        let ids = match self
            .deps
            .recommendation
            .list_recommendations(
                &ctx.clone().kept_answer_will_do(),
                visit.user.clone(),
                products,
            )
            .await
        {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "recommendations unavailable; page rendered without them");
                return Vec::new();
            }
        };
        let cards = futures::future::join_all(ids.into_iter().map(|id| async move {
            let p = self.deps.catalog.get_product(ctx, id).await.ok()?;
            self.card(ctx, &p, &visit.currency).await.ok()
        }))
        .await;
        cards.into_iter().flatten().collect()
    }

    /// One ad for these categories; `None` when ads fail (they are optional). An ad kept a
    /// moment (`remote.cache_ttl_ms`) will do.
    pub(crate) async fn ad(&self, ctx: &CallContext, keys: Vec<String>) -> Option<AdView> {
        match self
            .deps
            .ads
            .get_ads(
                &ctx.clone().kept_answer_will_do(),
                AdsRequest { context_keys: keys },
            )
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

    /// The 503 page; `cause` (what failed) is logged once, at warn, in the request's span.
    pub(crate) fn unavailable(
        &self,
        visit: &Visit,
        chrome: Chrome,
        cause: impl std::fmt::Display,
    ) -> HttpResponse {
        tracing::warn!(cause = %cause, path = %visit.path, "page unavailable (503)");
        error_page(
            visit,
            chrome,
            StatusCode::SERVICE_UNAVAILABLE,
            "We'll be right back",
            "Part of the shop is not answering right now. Nothing was charged. Please try again in a moment.",
        )
    }
}

pub(crate) async fn bad_request(
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

#[cfg(test)]
mod money_tests {
    use super::*;

    #[test]
    pub(crate) fn money_is_shown_with_symbols_and_two_decimals_except_yen() {
        let m = |c: &str, u, n| Money::new(c, u, n).expect("money");
        assert_eq!(format_money(&m("USD", 18, 990_000_000)), "$18.99");
        assert_eq!(format_money(&m("EUR", 5, 0)), "€5.00");
        assert_eq!(format_money(&m("JPY", 2847, 400_000_000)), "¥2847");
        assert_eq!(format_money(&m("CAD", 1, 5_000_000)), "1.01 CAD");
    }

    #[test]
    pub(crate) fn only_local_paths_are_returned_to() {
        assert_eq!(local_path(Some("/cart")).as_deref(), Some("/cart"));
        assert_eq!(local_path(Some("//evil.example")), None);
        assert_eq!(local_path(Some("https://evil.example/")), None);
        assert_eq!(local_path(None), None);
    }
}
