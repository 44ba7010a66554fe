//! Answers kept for callers whose context says a kept answer will do, and the changes
//! made through this client that drop them.

use super::*;

/// Most answers one client keeps; past it the expired ones go, then all.
const MAX_KEPT_ANSWERS: usize = 10_000;
/// Most changes made through one client remembered until their events arrive; past it the
/// oldest go (their events then drop all they name, as another process's would).
const MAX_OWN_CHANGES: usize = 1024;

/// What identifies a kept answer: the operation, the resource (see [`resource_of`]), the body,
/// and, for an operation not everyone may call, who asked (see [`asker`]).
type AnswerKey = (&'static str, String, Bytes, Option<String>);

/// The resource a call is about, as kept answers are keyed and dropped: over REST its path
/// with its query; over gRPC the REST path its operation names ([`OpCall::resource`]), else
/// the module's root (`""`, inside which every resource is: any change drops it).
pub(super) fn resource_of(req: &RemoteRequest) -> String {
    match &req.resource {
        Some(resource) => resource.clone(),
        None if grpc::is_grpc_call(req) => String::new(),
        None => req.path.clone(),
    }
}

/// Who a request asks as, as the callee will see it: the relayed token and the headers that
/// speak for the caller (a forwarded request's marker and `Authorization`). An answer kept
/// for one asker is never given to another: the callee's access rules decided it for that
/// one. Holds tokens: never logged (`Kept`'s `Debug` shows only a count).
pub(super) fn asker(req: &RemoteRequest) -> String {
    let mut who = String::new();
    if let Some(token) = req.ctx.principal().and_then(|p| p.access_token.as_deref()) {
        who.push_str(token);
    }
    for (name, value) in &req.headers {
        who.push('\n');
        who.push_str(name);
        who.push(':');
        who.push_str(value);
    }
    who
}

/// Whether two paths (queries aside) name the same resource or one is inside the other
/// (`/carts/u1` and `/carts/u1/items`; `/products` and `/products/X`), as a write's
/// invalidation goes in HTTP caching (RFC 9111, 4.4).
pub(super) fn related(a: &str, b: &str) -> bool {
    let (a, b) = (
        a.split('?').next().unwrap_or(a),
        b.split('?').next().unwrap_or(b),
    );
    let inside = |x: &str, y: &str| x.strip_prefix(y).is_some_and(|r| r.starts_with('/'));
    a == b || inside(a, b) || inside(b, a)
}

/// Answers of `cached` operations, of reads whose caller said a kept answer will do, and of
/// fresh reads of operations asked so before, kept by the caller.
pub(super) struct KeptAnswers {
    pub(super) answers: Kept<AnswerKey, RemoteResponse>,
    /// Read-only operations a caller has asked with the kept-answer word: the answers of
    /// their fresh reads (the cart page's) are kept for the same asker too, for its next read
    /// that a kept answer will do (the header's count), which would otherwise be asked again
    /// after every change.
    asked_kept: std::sync::RwLock<Vec<&'static str>>,
    /// Events announcing changes made through this client, and when what it kept of the
    /// written resource was dropped for them (see [`RemoteClient::forget_answers_about_change`]).
    own_changes: std::sync::Mutex<std::collections::VecDeque<(uuid::Uuid, std::time::Instant)>>,
}

/// How a call may use the kept answers.
pub(super) enum KeptUse {
    /// A kept answer answers it, else its answer is kept.
    Answer,
    /// It is asked in any case; its answer is kept (replacing what was), its error drops
    /// what was kept for it.
    Renew,
}

impl KeptAnswers {
    pub(super) fn new(ttl: Duration) -> Self {
        Self {
            answers: Kept::new(ttl, MAX_KEPT_ANSWERS),
            asked_kept: std::sync::RwLock::new(Vec::new()),
            own_changes: std::sync::Mutex::default(),
        }
    }

    /// Remembers that `events` announce a change made through this client, whose written
    /// resource's answers were dropped just now.
    pub(super) fn note_own_changes(&self, events: &[uuid::Uuid]) {
        if events.is_empty() || !self.answers.keeps() {
            return;
        }
        let now = std::time::Instant::now();
        let mut own = self
            .own_changes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for &event in events {
            if own.len() >= MAX_OWN_CHANGES {
                own.pop_front();
            }
            own.push_back((event, now));
        }
    }

    /// When the answers were dropped for `event`, a change made through this client; the
    /// record goes.
    pub(super) fn take_own_change(&self, event: uuid::Uuid) -> Option<std::time::Instant> {
        let mut own = self
            .own_changes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let at = own.iter().position(|(id, _)| *id == event)?;
        own.remove(at).map(|(_, dropped)| dropped)
    }

    /// The key of a request whose answer may be kept, the ticket it is asked with, and how
    /// it may use what is kept: a `cached` operation's or a read whose caller says a kept
    /// answer will do (answered from it), or a fresh read of an operation asked so before
    /// (renewing it).
    pub(super) fn key(&self, req: &RemoteRequest) -> Option<(AnswerKey, Ticket, KeptUse)> {
        let op = req.op.filter(|_| self.answers.keeps())?;
        let read_only = op.repeat == crate::call::Repeat::ReadOnly;
        let how = if op.cached || (read_only && req.ctx.accepts_kept_answers()) {
            if !op.cached && !self.was_asked_kept(op.id) {
                let mut asked = self
                    .asked_kept
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if !asked.contains(&op.id) {
                    asked.push(op.id);
                }
            }
            KeptUse::Answer
        } else if read_only && self.was_asked_kept(op.id) {
            KeptUse::Renew
        } else {
            return None;
        };
        let ticket = self.answers.ticket();
        let everyones = op.access.contains(&crate::call::Access::Anyone);
        Some((
            (
                op.id,
                resource_of(req),
                req.body.clone().unwrap_or_default(),
                (!everyones).then(|| asker(req)),
            ),
            ticket,
            how,
        ))
    }

    fn was_asked_kept(&self, op: &'static str) -> bool {
        self.asked_kept
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(&op)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_is_related_to_its_resource_what_is_inside_it_and_what_it_is_inside_of() {
        assert!(related("/api/cart/v1/carts/u1", "/api/cart/v1/carts/u1"));
        assert!(related(
            "/api/cart/v1/carts/u1/items",
            "/api/cart/v1/carts/u1"
        ));
        assert!(related(
            "/api/cart/v1/carts/u1",
            "/api/cart/v1/carts/u1/items"
        ));
        assert!(related("/products?q=mug", "/products/OLJCESPC7Z"));
        assert!(!related("/api/cart/v1/carts/u1", "/api/cart/v1/carts/u2"));
        assert!(!related("/api/cart/v1/carts/u1", "/api/cart/v1/carts/u10"));
        assert!(!related(
            "/api/cart/v1/carts/u1/summary",
            "/api/cart/v1/carts/u1/items"
        ));
    }

    #[test]
    fn a_grpc_answer_is_kept_by_the_resource_its_call_names_else_by_the_modules_root() {
        const GET_CART: crate::call::Operation = crate::call::Operation {
            module: "cart",
            name: "get_cart",
            id: "cart.get_cart",
            method: crate::call::HttpMethod::Get,
            path: "/api/cart/v1/carts/{user_id}",
            repeat: crate::call::Repeat::ReadOnly,
            cached: true,
            access: &[crate::call::Access::Anyone],
            owner: None,
            errors: &[],
            summary: "",
        };
        let grpc = |resource: Option<&str>| RemoteRequest {
            op: Some(&GET_CART),
            content_type: Some(crate::grpc::JSON_CONTENT_TYPE.to_owned()),
            resource: resource.map(str::to_owned),
            ..RemoteRequest::new(
                CallContext::root(),
                Method::POST,
                "/cleave.cart.v1.Cart/GetCart".into(),
            )
        };
        let rest = RemoteRequest {
            op: Some(&GET_CART),
            ..RemoteRequest::new(
                CallContext::root(),
                Method::GET,
                "/api/cart/v1/carts/u1".into(),
            )
        };
        assert_eq!(resource_of(&rest), "/api/cart/v1/carts/u1");
        assert_eq!(
            resource_of(&grpc(Some("/api/cart/v1/carts/u1"))),
            "/api/cart/v1/carts/u1"
        );
        assert_eq!(resource_of(&grpc(None)), "", "the module's root");
        // Kept so, a change of u2's cart drops u2's answer and the one of unknown resource,
        // not u1's.
        let kept = KeptAnswers::new(Duration::from_secs(60));
        for (user, req) in [
            ("u1", grpc(Some("/api/cart/v1/carts/u1"))),
            ("u2", grpc(Some("/api/cart/v1/carts/u2"))),
            ("unknown", grpc(None)),
        ] {
            let (key, ticket, _) = kept.key(&req).expect("a cached operation's answer is kept");
            let answer = RemoteResponse {
                status: 200,
                content_type: None,
                body: Bytes::from(user),
                headers: Vec::new(),
                announced: Vec::new(),
            };
            kept.answers.keep(ticket, key, answer);
        }
        kept.answers
            .forget_where(|(_, k, _, _)| related(k, "/api/cart/v1/carts/u2"));
        let left = |req: &RemoteRequest| {
            let (key, _, _) = kept.key(req).expect("key");
            kept.answers.get(&key).map(|a| a.body)
        };
        assert_eq!(
            left(&grpc(Some("/api/cart/v1/carts/u1"))),
            Some(Bytes::from("u1"))
        );
        assert_eq!(left(&grpc(Some("/api/cart/v1/carts/u2"))), None);
        assert_eq!(left(&grpc(None)), None);
    }
}
