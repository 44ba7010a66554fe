//! Browsing: the home page, product pages and the currency switch.

use super::*;

pub(crate) async fn home(req: HttpRequest, ctx: CallContext, shop: Shop) -> HttpResponse {
    let visit = Visit::of(&req, &shop).await;
    // Independent calls go out together: the page waits for the slowest, not the sum.
    let (chrome, products, ad) = futures::join!(
        shop.chrome(&visit, &ctx),
        shop.deps.catalog.list_products(&ctx),
        shop.ad(&ctx, Vec::new())
    );
    let products = match products {
        Ok(p) => p,
        Err(e) => return shop.unavailable(&visit, chrome, format!("catalog: {e}")),
    };
    let cards =
        futures::future::try_join_all(products.iter().map(|p| shop.card(&ctx, p, &visit.currency)))
            .await;
    let cards = match cards {
        Ok(cards) => cards,
        Err(e) => return shop.unavailable(&visit, chrome, e),
    };
    let page = HomePage {
        chrome,
        products: cards,
        ad,
    };
    html(&visit, StatusCode::OK, page.render())
}

pub(crate) async fn product(
    req: HttpRequest,
    ctx: CallContext,
    shop: Shop,
    id: web::Path<String>,
) -> HttpResponse {
    let visit = Visit::of(&req, &shop).await;
    let product_id = ProductId::parse(id.into_inner());
    // The recommendations need only the id: they go out with the product's own reads.
    let (chrome, product, recommendations) = futures::join!(
        shop.chrome(&visit, &ctx),
        async {
            match &product_id {
                Ok(id) => Some(shop.deps.catalog.get_product(&ctx, id.clone()).await),
                Err(_) => None,
            }
        },
        async {
            match &product_id {
                Ok(id) => shop.recommendations(&ctx, &visit, vec![id.clone()]).await,
                Err(_) => Vec::new(),
            }
        }
    );
    let not_found = |chrome| {
        error_page(
            &visit,
            chrome,
            StatusCode::NOT_FOUND,
            "We can't find that product",
            "It may no longer be sold, or the link may be mistyped.",
        )
    };
    let Some(product) = product else {
        return not_found(chrome);
    };
    let product = match product {
        Ok(p) => p,
        Err(CatalogError::ProductNotFound { .. } | CatalogError::InvalidProductId { .. }) => {
            return not_found(chrome);
        }
        Err(e) => return shop.unavailable(&visit, chrome, format!("catalog: {e}")),
    };
    let (card, ad) = futures::join!(
        shop.card(&ctx, &product, &visit.currency),
        shop.ad(&ctx, product.categories.clone())
    );
    let card = match card {
        Ok(card) => card,
        Err(e) => return shop.unavailable(&visit, chrome, e),
    };
    let page = ProductPage {
        chrome,
        description: product.description,
        product: card,
        recommendations,
        ad,
    };
    html(&visit, StatusCode::OK, page.render())
}

#[derive(Deserialize)]
pub(crate) struct CurrencyForm {
    pub(crate) currency_code: String,
    #[serde(default)]
    pub(crate) return_to: Option<String>,
}

/// Where to go back to: a local path only (never another site).
pub(crate) fn local_path(raw: Option<&str>) -> Option<String> {
    let p = raw?;
    let local = p.starts_with('/') && !p.starts_with("//") && !p.contains('\\');
    (local && !p.chars().any(char::is_control)).then(|| p.to_owned())
}

pub(crate) async fn set_currency(
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
        Err(e) => {
            let chrome = shop.chrome(&visit, &ctx).await;
            return shop.unavailable(&visit, chrome, format!("currency: {e}"));
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
