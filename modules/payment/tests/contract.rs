//! The payment contract suite against the module in process and over HTTP, plus what the
//! suite cannot see: status codes on the wire, what is stored, and concurrent refunds.

use std::collections::BTreeSet;
use std::sync::Arc;

use cleave_domain::{CreditCard, Money};
use cleave_kernel::CallContext;
use cleave_kernel::module::Migrations;
use cleave_kernel::testing::{ContractHarness, TestDb, TestKeys, TestServer, test_databases};
use cleave_migrations::payment::Migrator;
use payment::PaymentModule;
use payment_api::{
    Charge, ChargeRequest, ChargeStatus, PaymentApi, PaymentContract, contract, current_year_month,
};
use sea_orm::prelude::DateTimeUtc;
use sea_orm::{ConnectionTrait, QueryResult, Statement};

fn harness() -> ContractHarness<PaymentModule> {
    ContractHarness::new::<Migrations<Migrator>>()
}

async fn start(db: &TestDb) -> Arc<dyn PaymentApi> {
    harness().start(db, &TestKeys::new()).await
}

fn request(number: &str) -> ChargeRequest {
    ChargeRequest {
        amount: Money {
            currency_code: "EUR".into(),
            units: 12,
            nanos: 500_000_000,
        },
        card: CreditCard {
            number: number.into(),
            cvv: "987".into(),
            expiration_year: current_year_month().0 + 2,
            expiration_month: 7,
        },
        reference: None,
    }
}

#[tokio::test]
async fn payment_meets_the_contract_in_process_and_over_http() {
    harness()
        .run(|p| async move {
            contract::run(&p.label, p.api.as_ref(), &p.as_user("ops", &["admin"])).await;
        })
        .await;
}

#[tokio::test]
async fn refunds_over_http_are_for_admins_only() {
    for db in test_databases().await {
        let keys = TestKeys::new();
        let server = TestServer::serve::<PaymentContract>(harness().start(&db, &keys).await, &keys);
        // Refunds over HTTP are for admins (and modules proving themselves) only.
        let charge: Charge = reqwest::Client::new()
            .post(
                server
                    .base_url
                    .join("/api/payment/v1/charges")
                    .expect("url"),
            )
            .json(&request("4111111111111111"))
            .bearer_auth(keys.token("ops", &["admin"]))
            .send()
            .await
            .expect("charge")
            .json()
            .await
            .expect("json");
        let refund_url = server
            .base_url
            .join(&format!(
                "/api/payment/v1/charges/{}/refund",
                charge.transaction_id
            ))
            .expect("url");
        let anonymous = reqwest::Client::new()
            .post(refund_url.clone())
            .send()
            .await
            .expect("send");
        assert_eq!(anonymous.status(), 401, "{}", db.backend);
        let shopper = reqwest::Client::new()
            .post(refund_url)
            .bearer_auth(keys.token("someone", &["shopper"]))
            .send()
            .await
            .expect("send");
        assert_eq!(shopper.status(), 403, "{}", db.backend);
        server.stop().await;
    }
}

#[tokio::test]
async fn a_charge_answers_201_with_its_location_and_a_decline_answers_402() {
    for db in test_databases().await {
        let keys = TestKeys::new();
        let server = TestServer::serve::<PaymentContract>(start(&db).await, &keys);
        let url = |path: &str| server.base_url.join(path).expect("url").to_string();
        let http = reqwest::Client::new();
        let admin = keys.token("ops", &["admin"]);
        // Charging is for checkout and admins: a stranger learns nothing about a card.
        let res = http
            .post(url("/api/payment/v1/charges"))
            .json(&request("4111111111111111"))
            .send()
            .await
            .expect("post charge");
        assert_eq!(res.status().as_u16(), 401, "{}", db.backend);

        let res = http
            .post(url("/api/payment/v1/charges"))
            .json(&request("4111111111111111"))
            .bearer_auth(&admin)
            .send()
            .await
            .expect("post charge");
        assert_eq!(res.status().as_u16(), 201, "{}", db.backend);
        let location = res
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .expect("a location header");
        let charge: Charge = res.json().await.expect("a charge body");
        assert_eq!(
            location,
            format!("/api/payment/v1/charges/{}", charge.transaction_id),
            "{}",
            db.backend
        );
        let fetched = http
            .get(url(&location))
            .bearer_auth(&admin)
            .send()
            .await
            .expect("get charge");
        assert_eq!(fetched.status().as_u16(), 200, "{}", db.backend);
        assert_eq!(
            fetched.json::<Charge>().await.expect("charge body"),
            charge,
            "{}",
            db.backend
        );

        let declined = http
            .post(url("/api/payment/v1/charges"))
            .json(&request("378282246310005"))
            .bearer_auth(&admin)
            .send()
            .await
            .expect("post amex");
        assert_eq!(declined.status().as_u16(), 402, "{}", db.backend);
        let body = declined.text().await.expect("problem body");
        assert!(body.contains("payment.unsupported_card"), "{body}");
        assert!(!body.contains("378282246310005"), "{body}");

        let missing = http
            .get(url("/api/payment/v1/charges/no-such-charge"))
            .bearer_auth(&admin)
            .send()
            .await
            .expect("get missing");
        assert_eq!(missing.status().as_u16(), 404, "{}", db.backend);
        server.stop().await;
    }
}

/// The text of one cell, whatever its column type (NULL reads as empty). A column of a type
/// not handled here fails the test rather than escaping the scan.
fn cell_text(row: &QueryResult, column: &str) -> String {
    if let Ok(v) = row.try_get::<Option<String>>("", column) {
        return v.unwrap_or_default();
    }
    if let Ok(v) = row.try_get::<Option<i64>>("", column) {
        return v.map(|v| v.to_string()).unwrap_or_default();
    }
    if let Ok(v) = row.try_get::<Option<i32>>("", column) {
        return v.map(|v| v.to_string()).unwrap_or_default();
    }
    if let Ok(v) = row.try_get::<Option<DateTimeUtc>>("", column) {
        return v.map(|v| v.to_rfc3339()).unwrap_or_default();
    }
    panic!("column {column} has a type this scan cannot read: teach cell_text about it");
}

#[tokio::test]
async fn no_column_of_a_stored_charge_holds_the_card_number() {
    let cards = [
        ("4111-1111-1111-1111", "4111111111111111", "1111"),
        ("5555 5555 5555 4444", "5555555555554444", "4444"),
        ("2223003122003222", "2223003122003222", "3222"),
    ];
    for db in test_databases().await {
        let module = start(&db).await;
        let ctx = CallContext::root();
        let mut ids = Vec::new();
        for (typed, _, _) in cards {
            let charge = module
                .charge(&ctx, request(typed))
                .await
                .unwrap_or_else(|e| panic!("{}: charge: {e}", db.backend));
            ids.push(charge.transaction_id);
        }
        module
            .refund(&ctx, ids[0].clone())
            .await
            .expect("refund one");

        let conn = db.connect().await;
        let rows = conn
            .query_all_raw(Statement::from_string(
                conn.get_database_backend(),
                "SELECT * FROM payment_charges",
            ))
            .await
            .expect("read payment_charges");
        assert_eq!(rows.len(), cards.len(), "{}", db.backend);
        let cells: Vec<(String, String)> = rows
            .iter()
            .flat_map(|row| {
                row.column_names()
                    .into_iter()
                    .map(|column| {
                        let text = cell_text(row, &column);
                        (column, text)
                    })
                    .collect::<Vec<_>>()
            })
            .collect();

        // The scan really read the rows: every id and every last four are there.
        for id in &ids {
            assert!(
                cells.iter().any(|(_, text)| text == id),
                "{}: {id} not found in {cells:?}",
                db.backend
            );
        }
        for (_, _, last4) in cards {
            assert!(
                cells
                    .iter()
                    .any(|(column, text)| column == "card_last4" && text == last4),
                "{}: {last4} not stored",
                db.backend
            );
        }
        // And nothing more of the number: neither as typed, nor its digits, nor all but the
        // last four of them.
        for (typed, digits, _) in cards {
            for (column, text) in &cells {
                for secret in [typed, digits, &digits[..digits.len() - 4]] {
                    assert!(
                        !text.contains(secret),
                        "{}: column {column} holds the card number: {text}",
                        db.backend
                    );
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refunds_of_one_charge_refund_it_once() {
    for db in test_databases().await {
        let module = start(&db).await;
        let charge = module
            .charge(&CallContext::root(), request("5555555555554444"))
            .await
            .expect("charge");
        let refunds: Vec<_> = (0..10)
            .map(|_| {
                let (module, id) = (module.clone(), charge.transaction_id.clone());
                tokio::spawn(async move { module.refund(&CallContext::root(), id).await })
            })
            .collect();
        let mut refunded_at = BTreeSet::new();
        for refund in refunds {
            let refunded = refund
                .await
                .expect("task")
                .unwrap_or_else(|e| panic!("{}: a concurrent refund failed: {e}", db.backend));
            assert_eq!(refunded.status, ChargeStatus::Refunded, "{}", db.backend);
            refunded_at.insert(refunded.refunded_at.expect("refunded_at is set"));
        }
        assert_eq!(
            refunded_at.len(),
            1,
            "{}: every refund saw the one refund: {refunded_at:?}",
            db.backend
        );
        let stored = module
            .get_charge(&CallContext::root(), charge.transaction_id.clone())
            .await
            .expect("get");
        assert_eq!(
            stored.refunded_at.as_ref(),
            refunded_at.first(),
            "{}",
            db.backend
        );
    }
}
