//! Access tokens across a key rotation: a verifier that remembers verified tokens forgets them
//! when the keys change, so a token of a withdrawn key is refused even if it was accepted
//! before.

use std::sync::{Arc, Mutex};

use cleave_kernel::async_trait;
use cleave_kernel::auth::{
    AccessClaims, Jwks, KeySource, PublicJwk, TokenVerifier, sign_access_token,
};

/// Publishes whatever keys the test sets.
struct Published(Mutex<Jwks>);

#[async_trait]
impl KeySource for Published {
    async fn jwks(&self) -> Result<Jwks, String> {
        Ok(Jwks {
            keys: self.0.lock().expect("lock").keys.clone(),
        })
    }
}

/// A fresh Ed25519 key: its PKCS#8 and its published form under `kid`.
fn key(kid: &str) -> (Vec<u8>, PublicJwk) {
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
    use base64::Engine;
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("key");
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("pair");
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
    (pkcs8.as_ref().to_vec(), PublicJwk::ed25519(kid, &x))
}

fn token(kid: &str, pkcs8: &[u8], sub: &str) -> String {
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs(),
    )
    .expect("now");
    let claims = AccessClaims {
        iss: "cleave".into(),
        aud: "cleave".into(),
        sub: sub.into(),
        exp: now + 300,
        iat: now,
        nbf: None,
        jti: format!("{kid}-{sub}"),
        roles: vec!["shopper".into()],
    };
    sign_access_token(&claims, kid, pkcs8).expect("sign")
}

#[tokio::test]
async fn a_token_accepted_before_is_refused_once_its_key_is_withdrawn() {
    let (a_key, a_public) = key("a");
    let (b_key, b_public) = key("b");
    let published = Arc::new(Published(Mutex::new(Jwks {
        keys: vec![a_public],
    })));
    let verifier = TokenVerifier::new("cleave", "cleave", 30, published.clone());
    let alice = token("a", &a_key, "alice");
    for _ in 0..2 {
        let claims = verifier.verify(&alice).await.expect("a's token verifies");
        assert_eq!(claims.sub, "alice");
    }
    // A token that is not the same string is checked in full, remembered or not.
    let forged = format!("{}x", &alice[..alice.len() - 1]);
    assert!(verifier.verify(&forged).await.is_err(), "a changed token");

    // Key a is withdrawn, b published in its place. A token of a key never published makes
    // the verifier fetch the keys again (and is refused): a's token, accepted before, is
    // refused from then on.
    published.0.lock().expect("lock").keys = vec![b_public];
    let (c_key, _) = key("c");
    assert!(verifier.verify(&token("c", &c_key, "carol")).await.is_err());
    let refused = verifier.verify(&alice).await;
    assert!(
        refused.is_err(),
        "a's token, accepted before, is refused now: {refused:?}"
    );
    let bob = token("b", &b_key, "bob");
    for _ in 0..2 {
        assert_eq!(verifier.verify(&bob).await.expect("b's token").sub, "bob");
    }
}
