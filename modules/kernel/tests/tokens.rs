//! Access tokens across a key rotation: a verifier that remembers verified tokens forgets them
//! when the keys change, so a token of a withdrawn key is refused even if it was accepted
//! before.

use std::sync::{Arc, Mutex};

use cleave_kernel::async_trait;
use cleave_kernel::auth::{Jwks, KeySource, TokenVerifier};
use cleave_kernel::testing::TestKeys;

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

#[tokio::test]
async fn a_token_accepted_before_is_refused_once_its_key_is_withdrawn() {
    let (a, b) = (TestKeys::named("a"), TestKeys::named("b"));
    let published = Arc::new(Published(Mutex::new(Jwks {
        keys: vec![a.public()],
    })));
    let verifier = TokenVerifier::new("cleave", "cleave", 30, published.clone());
    let alice = a.token("alice", &["shopper"]);
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
    published.0.lock().expect("lock").keys = vec![b.public()];
    let c = TestKeys::named("c");
    assert!(
        verifier
            .verify(&c.token("carol", &["shopper"]))
            .await
            .is_err()
    );
    let refused = verifier.verify(&alice).await;
    assert!(
        refused.is_err(),
        "a's token, accepted before, is refused now: {refused:?}"
    );
    let bob = b.token("bob", &["shopper"]);
    for _ in 0..2 {
        assert_eq!(verifier.verify(&bob).await.expect("b's token").sub, "bob");
    }
}
