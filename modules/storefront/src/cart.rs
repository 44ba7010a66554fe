//! The cart: adding to it, viewing it with its shipping quote, emptying it.

use super::*;

#[derive(Deserialize)]
pub(crate) struct AddForm {
    pub(crate) product_id: String,
    pub(crate) quantity: String,
}

pub(crate) async fn add_to_cart(
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
        Err(e) => {
            let chrome = shop.chrome(&visit, &ctx).await;
            return shop.unavailable(&visit, chrome, format!("catalog: {e}"));
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
        Err(e) => {
            let chrome = shop.chrome(&visit, &ctx).await;
            shop.unavailable(&visit, chrome, format!("cart: {e}"))
        }
    }
}

pub(crate) async fn cart_page(
    visit: &Visit,
    ctx: &CallContext,
    shop: &Storefront,
    status: StatusCode,
    form_error: Option<String>,
) -> HttpResponse {
    // This page shows the cart as it is: one fresh read serves the lines and the header.
    let (currencies, cart) = futures::join!(
        shop.currencies(visit, ctx),
        shop.deps.cart.get_cart(ctx, visit.user.clone())
    );
    let cart = match cart {
        Ok(c) => c,
        Err(e) => {
            let chrome = Storefront::chrome_of(visit, currencies, 0);
            return shop.unavailable(visit, chrome, format!("cart: {e}"));
        }
    };
    let chrome = Storefront::chrome_of(visit, currencies, crate::render::count_of(&cart));
    let zero = Money::new(&visit.currency, 0, 0).unwrap_or_else(|_| Money {
        currency_code: visit.currency.clone(),
        units: 0,
        nanos: 0,
    });
    let mut lines = Vec::new();
    let mut subtotal = zero.clone();
    // Each line's product and price, all lines at once; a product no longer sold is left
    // out of the page (checkout refuses it).
    let priced = futures::future::join_all(cart.items.iter().map(|item| async move {
        let product = shop
            .deps
            .catalog
            .get_product(ctx, item.product_id.clone())
            .await
            .ok()?;
        let price = shop.price(ctx, &product.price_usd, &visit.currency).await;
        Some(price.map(|price| (item, product, price)))
    }))
    .await;
    for line in priced.into_iter().flatten() {
        let (item, product, price) = match line {
            Ok(line) => line,
            Err(e) => return shop.unavailable(visit, chrome, e),
        };
        let Ok(line_total) = price.checked_mul(item.quantity) else {
            return shop.unavailable(visit, chrome, "a cart line's total overflows");
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
    let shipping = async {
        if cart.items.is_empty() {
            return Ok(zero.clone());
        }
        let quote = shop
            .deps
            .shipping
            .get_quote(
                // A quote is the same for the same items: one kept a moment will do (the
                // order's shipping is quoted afresh by checkout).
                &ctx.clone().kept_answer_will_do(),
                QuoteRequest {
                    // A quote depends on the item count only: quote for the demo address.
                    address: Address::example(),
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
        match quote {
            Ok(q) => shop.price(ctx, &q.cost, &visit.currency).await,
            Err(e) => Err(format!("shipping: {e}")),
        }
    };
    let (shipping, recommendations) = futures::join!(
        shipping,
        shop.recommendations(
            ctx,
            visit,
            cart.items.iter().map(|i| i.product_id.clone()).collect(),
        )
    );
    let shipping = match shipping {
        Ok(cost) => cost,
        Err(e) => return shop.unavailable(visit, chrome, e),
    };
    let total = subtotal.checked_add(&shipping).unwrap_or(subtotal);
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

pub(crate) async fn view_cart(req: HttpRequest, ctx: CallContext, shop: Shop) -> HttpResponse {
    let visit = Visit::of(&req, &shop).await;
    cart_page(&visit, &ctx, &shop, StatusCode::OK, None).await
}

pub(crate) async fn empty_cart(req: HttpRequest, ctx: CallContext, shop: Shop) -> HttpResponse {
    let visit = Visit::of(&req, &shop).await;
    match shop.deps.cart.empty_cart(&ctx, visit.user.clone()).await {
        Ok(()) => redirect(&visit, "/"),
        Err(e) => {
            let chrome = shop.chrome(&visit, &ctx).await;
            shop.unavailable(&visit, chrome, format!("cart: {e}"))
        }
    }
}
