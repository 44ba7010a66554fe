//! Placing the order from the cart page's form.

use super::*;

#[derive(Deserialize)]
pub(crate) struct CheckoutForm {
    pub(crate) email: String,
    pub(crate) street_address: String,
    pub(crate) zip_code: String,
    pub(crate) city: String,
    #[serde(default)]
    pub(crate) state: String,
    pub(crate) country: String,
    pub(crate) credit_card_number: String,
    pub(crate) credit_card_expiration_month: String,
    pub(crate) credit_card_expiration_year: String,
    pub(crate) credit_card_cvv: String,
}

pub(crate) async fn checkout(
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
            let chrome = shop.chrome(&visit, &ctx).await;
            return shop.unavailable(&visit, chrome, format!("checkout: {e}"));
        }
    };
    // Placing the order emptied the cart (checkout's contract): the header counts 0.
    let (chrome, recommendations) = futures::join!(
        shop.chrome_counting(&visit, &ctx, 0),
        shop.recommendations(
            &ctx,
            &visit,
            order.items.iter().map(|i| i.product_id.clone()).collect(),
        )
    );
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
