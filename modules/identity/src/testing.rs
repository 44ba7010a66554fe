//! For tests of whoever verifies identity's tokens (feature `test-util`): the key identity
//! signs with, read from its table, and every forged or misused token that must be refused.

use aws_lc_rs::hmac;
use aws_lc_rs::signature::Ed25519KeyPair;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use cleave_kernel::events::now_ms;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use crate::entity::signing_key;

/// The key signing now: its kid, its PKCS#8 DER and its public `x` (base64url), as stored.
///
/// # Panics
/// When the table cannot be read or holds no key in use: a test's set-up is wrong.
pub async fn signing_key(conn: &DatabaseConnection) -> (String, Vec<u8>, String) {
    let key = signing_key::Entity::find()
        .filter(signing_key::Column::RetiredAtMs.is_null())
        .one(conn)
        .await
        .expect("read identity_signing_keys")
        .expect("a key in use");
    let der = STANDARD.decode(&key.private_pkcs8).expect("base64 DER");
    (key.kid, der, key.public_x)
}

/// A token every verifier of identity's tokens must refuse.
#[derive(Debug)]
pub struct Forged {
    /// What is wrong with it.
    pub case: &'static str,
    /// The token.
    pub token: String,
    /// Words the refusal's reason holds (so that it is refused for this and not another fault).
    pub reason: &'static str,
}

/// Every forged, stale or misused token for `subject`, made with the key identity signs with
/// now (read through `conn`): the right key with a wrong claim or header, a wrong key or
/// algorithm, a tampered payload; `refresh_token` (one of the subject's) is among them, being
/// no access token.
///
/// # Panics
/// As [`signing_key`].
pub async fn forged_tokens(
    conn: &DatabaseConnection,
    subject: &str,
    refresh_token: &str,
) -> Vec<Forged> {
    let (kid, der, x) = signing_key(conn).await;
    let now = now_ms() / 1000;
    let good = json!({"iss": "cleave", "aud": "cleave", "sub": subject, "exp": now + 300,
                      "iat": now, "jti": uuid::Uuid::new_v4().to_string(), "roles": ["shopper"]});
    let mut no_exp = good.clone();
    no_exp.as_object_mut().expect("object").remove("exp");
    let header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid});
    let sign = |header: &Value, claims: &Value| sign_ed25519(header, claims, &der);
    let genuine = sign(&header, &good);
    let (head, rest) = genuine.split_once('.').expect("jwt");
    let (_, sig) = rest.split_once('.').expect("jwt");
    let hs256 = {
        let input = format!(
            "{}.{}",
            b64(&with(&header, "alg", json!("HS256"))),
            b64(&good)
        );
        let key = hmac::Key::new(hmac::HMAC_SHA256, x.as_bytes());
        let tag = URL_SAFE_NO_PAD.encode(hmac::sign(&key, input.as_bytes()).as_ref());
        format!("{input}.{tag}")
    };
    let mut crit = with(&header, "crit", json!(["urn:example:must-check"]));
    crit["urn:example:must-check"] = json!(true);
    let forged = |case, token, reason| Forged {
        case,
        token,
        reason,
    };
    vec![
        forged(
            "alg none",
            format!(
                "{}.{}.",
                b64(&with(&header, "alg", json!("none"))),
                b64(&good)
            ),
            "not a well-formed JWT",
        ),
        forged(
            "HS256 signed with the public key",
            hs256,
            "algorithm is not allowed",
        ),
        forged(
            "wrong aud",
            sign(&header, &with(&good, "aud", json!("someone-else"))),
            "another audience",
        ),
        forged(
            "wrong iss",
            sign(&header, &with(&good, "iss", json!("evil"))),
            "another issuer",
        ),
        forged(
            "expired",
            sign(&header, &with(&good, "exp", json!(now - 120))),
            "expired",
        ),
        forged(
            "nbf in the future",
            sign(&header, &with(&good, "nbf", json!(now + 600))),
            "not valid yet",
        ),
        forged(
            "missing exp",
            sign(&header, &no_exp),
            "lacks a required claim",
        ),
        forged(
            "tampered payload",
            format!(
                "{head}.{}.{sig}",
                b64(&with(&good, "roles", json!(["admin"])))
            ),
            "signature is invalid",
        ),
        forged(
            "unknown kid",
            sign(&with(&header, "kid", json!("no-such-key")), &good),
            "unknown key",
        ),
        forged(
            "not an access token (typ)",
            sign(&with(&header, "typ", json!("JWT")), &good),
            "not an access token",
        ),
        forged(
            "a refresh token",
            refresh_token.to_owned(),
            "not a well-formed JWT",
        ),
        forged(
            "iat a year ahead",
            sign(&header, &with(&good, "iat", json!(now + 365 * 24 * 3600))),
            "issued in the future",
        ),
        forged(
            "an unknown crit header",
            sign(&crit, &good),
            "critical header extensions",
        ),
    ]
}

/// `v` with `key` set to `value`.
fn with(v: &Value, key: &str, value: Value) -> Value {
    let mut v = v.clone();
    v[key] = value;
    v
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

/// A token with exactly `header` and `claims`, signed with the Ed25519 key `der`.
fn sign_ed25519(header: &Value, claims: &Value, der: &[u8]) -> String {
    let input = format!("{}.{}", b64(header), b64(claims));
    let pair = Ed25519KeyPair::from_pkcs8(der).expect("key");
    let sig = URL_SAFE_NO_PAD.encode(pair.sign(input.as_bytes()).as_ref());
    format!("{input}.{sig}")
}
