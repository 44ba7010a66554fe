//! Page view models: plain, already formatted data that the askama templates in `templates/`
//! render. Handlers fill these structs; templates only loop and branch, never compute, so every
//! field is an owned `String`, number, `bool`, `Vec` or `Option`. HTML escaping is on for all
//! `.html` templates, so nothing here needs to be pre-escaped.

use askama::Template;

/// What every page's header and footer need (rendered by `base.html`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Chrome {
    /// The session's currency code, e.g. `"EUR"`; selected in the switcher.
    pub(crate) currency: String,
    /// Every supported currency code, in display order.
    pub(crate) currencies: Vec<String>,
    /// Number of items in the cart (sum of quantities), shown on the cart link.
    pub(crate) cart_count: i64,
    /// A short, non-secret form of the session id shown in the footer for support.
    pub(crate) session_short: String,
    /// Path (and query) of the current page; the currency form posts it back as `return_to`.
    pub(crate) current_path: String,
    /// The signed-in user's e-mail address, if someone is signed in.
    pub(crate) signed_in: Option<String>,
}

/// One product as shown in grids, recommendation strips and cart lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ProductCard {
    pub(crate) id: String,
    pub(crate) name: String,
    /// Image URL, e.g. `/static/img/products/0PUK6V6EV0.svg`.
    pub(crate) picture: String,
    /// Price in the session's currency, already formatted (`"€18.99"` or `"18.99 EUR"`).
    pub(crate) price: String,
    pub(crate) categories: Vec<String>,
}

/// A text ad linking somewhere in the shop.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AdView {
    pub(crate) redirect_url: String,
    pub(crate) text: String,
}

/// `GET /`: the product grid.
#[derive(Debug, Template)]
#[template(path = "home.html")]
pub(crate) struct HomePage {
    pub(crate) chrome: Chrome,
    pub(crate) products: Vec<ProductCard>,
    pub(crate) ad: Option<AdView>,
}

/// `GET /product/{id}`: one product, its add-to-cart form and recommendations.
#[derive(Debug, Template)]
#[template(path = "product.html")]
pub(crate) struct ProductPage {
    pub(crate) chrome: Chrome,
    pub(crate) product: ProductCard,
    pub(crate) description: String,
    pub(crate) recommendations: Vec<ProductCard>,
    pub(crate) ad: Option<AdView>,
}

/// One line of the cart table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CartLine {
    pub(crate) product: ProductCard,
    pub(crate) quantity: i64,
    /// `product.price` times `quantity`, formatted.
    pub(crate) line_total: String,
}

/// `GET /cart` (and the checkout form shown again with `form_error` after a failed order).
#[derive(Debug, Template)]
#[template(path = "cart.html")]
pub(crate) struct CartPage {
    pub(crate) chrome: Chrome,
    /// Empty means "your cart is empty" (no table, no checkout form).
    pub(crate) lines: Vec<CartLine>,
    /// Shipping quote, formatted.
    pub(crate) shipping: String,
    /// Items plus shipping, formatted.
    pub(crate) total: String,
    pub(crate) recommendations: Vec<ProductCard>,
    /// Pre-filled e-mail address (Boutique's demo value `someone@example.com` for anonymous users).
    pub(crate) default_email: String,
    /// Years offered for the card's expiry, e.g. this year and the next few; the second one is
    /// pre-selected (as in Boutique), so the demo card is valid whatever the month.
    pub(crate) expiry_years: Vec<i32>,
    /// A message shown above the checkout form, e.g. after a declined card.
    pub(crate) form_error: Option<String>,
}

/// One line of a placed order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct OrderLine {
    pub(crate) name: String,
    pub(crate) quantity: i64,
    /// Cost of the line, formatted.
    pub(crate) cost: String,
}

/// `POST /cart/checkout` success.
#[derive(Debug, Template)]
#[template(path = "confirmation.html")]
pub(crate) struct ConfirmationPage {
    pub(crate) chrome: Chrome,
    pub(crate) order_id: String,
    pub(crate) tracking_id: String,
    /// Total charged, formatted.
    pub(crate) total: String,
    /// Shipping cost, formatted.
    pub(crate) shipping: String,
    pub(crate) lines: Vec<OrderLine>,
    /// Where the confirmation e-mail goes.
    pub(crate) email: String,
    pub(crate) recommendations: Vec<ProductCard>,
}

/// Any HTML error (404, payment declined, dependency unavailable, ...). The handler sets the
/// response status itself; `status` is only displayed.
#[derive(Debug, Template)]
#[template(path = "error.html")]
pub(crate) struct ErrorPage {
    pub(crate) chrome: Chrome,
    pub(crate) status: u16,
    pub(crate) title: String,
    pub(crate) message: String,
    pub(crate) request_id: String,
}

/// `GET /login` and `GET /register` (and the form again after a failure).
#[derive(Debug, Template)]
#[template(path = "account.html")]
pub(crate) struct AccountPage {
    pub(crate) chrome: Chrome,
    pub(crate) heading: String,
    pub(crate) action: String,
    pub(crate) submit: String,
    pub(crate) register: bool,
    pub(crate) email: String,
    pub(crate) form_error: Option<String>,
}

/// One line of the order history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct OrderSummaryLine {
    pub(crate) order_id: String,
    pub(crate) placed: String,
    pub(crate) items: i64,
    pub(crate) total: String,
}

/// `GET /orders`: the signed-in user's orders.
#[derive(Debug, Template)]
#[template(path = "orders.html")]
pub(crate) struct OrdersPage {
    pub(crate) chrome: Chrome,
    pub(crate) orders: Vec<OrderSummaryLine>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chrome() -> Chrome {
        Chrome {
            currency: "EUR".into(),
            currencies: vec!["USD".into(), "EUR".into(), "JPY".into()],
            cart_count: 3,
            session_short: "a1b2c3d4".into(),
            current_path: "/product/OLJCESPC7Z".into(),
            signed_in: None,
        }
    }

    fn card(id: &str, name: &str) -> ProductCard {
        ProductCard {
            id: id.into(),
            name: name.into(),
            picture: format!("/static/img/products/{id}.svg"),
            price: "€18.99".into(),
            categories: vec!["kitchen".into()],
        }
    }

    fn ad() -> Option<AdView> {
        Some(AdView {
            redirect_url: "/product/6E92ZMYYFZ".into(),
            text: "Mugs for a slow morning".into(),
        })
    }

    fn h1_count(html: &str) -> usize {
        html.matches("<h1").count()
    }

    #[test]
    fn home_lists_products_with_header_and_footer() {
        let html = HomePage {
            chrome: chrome(),
            products: vec![card("6E92ZMYYFZ", "Mug"), card("OLJCESPC7Z", "Sunglasses")],
            ad: ad(),
        }
        .render()
        .unwrap();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains(r#"<html lang="en">"#));
        assert_eq!(h1_count(&html), 1);
        assert!(html.contains(r#"href="/product/6E92ZMYYFZ""#));
        assert!(html.contains(r#"alt="Sunglasses""#));
        assert!(html.contains("Skip to content"));
        assert!(html.contains(r#"action="/setCurrency""#));
        assert!(html.contains(r#"name="currency_code""#));
        assert!(html.contains(r#"<option value="EUR" selected>"#));
        assert!(html.contains(r#"<option value="USD">"#));
        assert!(html.contains(r#"name="return_to" value="/product/OLJCESPC7Z""#));
        assert!(html.contains(r#"src="/static/js/app.js" defer"#));
        assert!(html.contains("Mugs for a slow morning"));
        assert!(html.contains(r#"href="/api/docs""#));
        assert!(
            !html.contains("<script>"),
            "no inline scripts (CSP script-src 'self')"
        );
    }

    #[test]
    fn output_is_escaped() {
        let mut product = card("X", "<script>alert(1)</script>");
        product.price = "\"quoted\" & 'single'".into();
        let html = HomePage {
            chrome: chrome(),
            products: vec![product],
            ad: None,
        }
        .render()
        .unwrap();
        // askama writes numeric entities (`&#60;`); accept named ones too.
        assert!(!html.contains("<script>alert"));
        assert!(html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"));
        assert!(!html.contains("\"quoted\""));
        assert!(!html.contains("'single'"));
    }

    #[test]
    fn product_page_has_add_to_cart_form() {
        let html = ProductPage {
            chrome: chrome(),
            product: card("OLJCESPC7Z", "Sunglasses"),
            description: "Polarised.".into(),
            recommendations: vec![card("6E92ZMYYFZ", "Mug")],
            ad: None,
        }
        .render()
        .unwrap();
        assert_eq!(h1_count(&html), 1);
        assert!(html.contains(r#"action="/cart""#));
        assert!(html.contains(r#"name="product_id" value="OLJCESPC7Z""#));
        assert!(html.contains(r#"name="quantity""#));
        assert!(html.contains("Polarised."));
        assert!(html.contains(r#"href="/product/6E92ZMYYFZ""#));
    }

    fn cart(lines: Vec<CartLine>, form_error: Option<String>) -> CartPage {
        CartPage {
            chrome: chrome(),
            lines,
            shipping: "€8.99".into(),
            total: "€46.97".into(),
            recommendations: vec![card("OLJCESPC7Z", "Sunglasses")],
            default_email: "someone@example.com".into(),
            expiry_years: vec![2026, 2027, 2028, 2029, 2030],
            form_error,
        }
    }

    #[test]
    fn empty_cart_says_so_and_has_no_checkout_form() {
        let html = cart(vec![], None).render().unwrap();
        assert_eq!(h1_count(&html), 1);
        assert!(html.contains("Your cart is empty"));
        assert!(!html.contains("/cart/checkout"));
        assert!(!html.contains("/cart/empty"));
    }

    #[test]
    fn cart_has_lines_totals_and_checkout_fields() {
        let line = CartLine {
            product: card("6E92ZMYYFZ", "Mug"),
            quantity: 2,
            line_total: "€17.98".into(),
        };
        let html = cart(vec![line], Some("Your card was declined.".into()))
            .render()
            .unwrap();
        assert_eq!(h1_count(&html), 1);
        assert!(html.contains("€17.98"));
        assert!(html.contains("€8.99"));
        assert!(html.contains("€46.97"));
        assert!(html.contains(r#"action="/cart/empty""#));
        assert!(html.contains(r#"action="/cart/checkout""#));
        assert!(html.contains("Your card was declined."));
        for field in [
            "email",
            "street_address",
            "zip_code",
            "city",
            "state",
            "country",
            "credit_card_number",
            "credit_card_expiration_month",
            "credit_card_expiration_year",
            "credit_card_cvv",
        ] {
            assert!(
                html.contains(&format!(r#"name="{field}""#)),
                "missing field {field}"
            );
            assert!(
                html.contains(&format!(r#"<label for="{field}""#)),
                "no label for {field}"
            );
        }
        assert!(html.contains(r#"value="someone@example.com""#));
        assert!(html.contains(r#"value="4432-8015-6152-0454""#));
        assert!(html.contains(r#"<option value="2027" selected>"#));
    }

    #[test]
    fn confirmation_shows_ids_and_total() {
        let html = ConfirmationPage {
            chrome: chrome(),
            order_id: "ord-123".into(),
            tracking_id: "TRK-9".into(),
            total: "€46.97".into(),
            shipping: "€8.99".into(),
            lines: vec![OrderLine {
                name: "Mug".into(),
                quantity: 2,
                cost: "€17.98".into(),
            }],
            email: "someone@example.com".into(),
            recommendations: vec![],
        }
        .render()
        .unwrap();
        assert_eq!(h1_count(&html), 1);
        assert!(html.contains("Your order is complete!"));
        assert!(html.contains("ord-123"));
        assert!(html.contains("TRK-9"));
        assert!(html.contains("€46.97"));
        assert!(html.contains("Continue shopping"));
    }

    #[test]
    fn error_page_shows_title_message_and_request_id() {
        let html = ErrorPage {
            chrome: chrome(),
            status: 404,
            title: "We can't find that page".into(),
            message: "The product may have moved.".into(),
            request_id: "req-42".into(),
        }
        .render()
        .unwrap();
        assert_eq!(h1_count(&html), 1);
        // The apostrophe is escaped (askama's exact entity is not our concern).
        assert!(html.contains("t find that page"));
        assert!(!html.contains("We can't"));
        assert!(html.contains("The product may have moved."));
        assert!(html.contains("req-42"));
        assert!(html.contains("404"));
    }
}
