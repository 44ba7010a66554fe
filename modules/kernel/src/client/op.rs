//! One call of a contract operation, built by a module's client (see [`RemoteClient::op`]).

use super::*;

/// One call of a contract operation being built (see [`RemoteClient::op`]).
#[must_use = "a call does nothing until it is fetched or sent"]
pub struct OpCall<'a> {
    pub(super) client: &'a RemoteClient,
    pub(super) req: RemoteRequest,
    pub(super) failure: Option<RemoteError>,
}

impl OpCall<'_> {
    /// Puts `params` into the route's `{...}` segments, in order (percent-encoded).
    pub fn params(mut self, params: &[&str]) -> Self {
        if let Some(op) = self.req.op {
            self.req.path = op.path_with(params);
        }
        self
    }

    /// Adds `name=value` to the query string (form-encoded).
    pub fn query(mut self, name: &str, value: &str) -> Self {
        let sep = if self.req.path.contains('?') {
            '&'
        } else {
            '?'
        };
        self.req.path.push(sep);
        self.req.path.push_str(
            &url::form_urlencoded::Serializer::new(String::new())
                .append_pair(name, value)
                .finish(),
        );
        self
    }

    /// Sends `body` as JSON.
    pub fn json<B: Serialize + ?Sized>(self, body: &B) -> Self {
        let encoded = serde_json::to_vec(body).map_err(|e| e.to_string());
        self.body(encoded.map(Bytes::from), "application/json")
    }

    /// Sends `encoded` as the body with `content_type`; a body that could not be encoded
    /// makes the call fail without being sent.
    fn body(mut self, encoded: Result<Bytes, String>, content_type: &str) -> Self {
        match encoded {
            Ok(bytes) => {
                self.req.body = Some(bytes);
                self.req.content_type = Some(content_type.to_owned());
            }
            Err(reason) => {
                self.failure = Some(RemoteError::Protocol {
                    module: self.client.module,
                    status: 0,
                    reason: format!("cannot encode request: {reason}"),
                });
            }
        }
        self
    }

    /// Names the resource a gRPC call is about: its operation's REST path with `params` (what
    /// [`OpCall::params`] would send over REST). Its answer is then kept and dropped by that
    /// resource, as over REST: a change of one shopper's cart drops only that cart's answers.
    pub fn resource(mut self, params: &[&str]) -> Self {
        if let Some(op) = self.req.op {
            self.req.resource = Some(op.path_with(params));
        }
        self
    }

    /// Sends the call as the gRPC method at `path` (`/cleave.<module>.v1.<Module>/<Method>`)
    /// with `args` as its message (see [`crate::grpc`]).
    pub fn grpc(mut self, path: &'static str, args: crate::grpc::Args) -> Self {
        path.clone_into(&mut self.req.path);
        self.body(args.encode(), crate::grpc::JSON_CONTENT_TYPE)
    }

    /// Sends the call as the gRPC method at `path` of another wire contract (Online
    /// Boutique's services), `message` being its request already encoded (protobuf); read the
    /// answer's message with [`OpCall::fetch_message`].
    pub fn message(mut self, path: &'static str, message: Bytes) -> Self {
        path.clone_into(&mut self.req.path);
        self.body(Ok(message), "application/grpc")
    }

    /// Adds a header of the contract (e.g. `idempotency-key`).
    pub fn header(mut self, name: &'static str, value: String) -> Self {
        self.req.headers.push((name, value));
        self
    }

    /// Says whether this call carries the key or reference that makes a `keyed` operation
    /// safe to repeat.
    pub fn keyed(mut self, keyed: bool) -> Self {
        self.req.keyed = keyed;
        self
    }

    async fn answer(self) -> Result<(RemoteResponse, &'static str), RemoteError> {
        if let Some(failure) = self.failure {
            return Err(failure);
        }
        let client = self.client;
        let key = client.kept.key(&self.req);
        if let Some((k, _, KeptUse::Answer)) = &key
            && let Some(res) = client.kept.answers.get(k)
        {
            return Ok((res, client.module));
        }
        // A change made through this client: its own later reads of that resource see it.
        let written = self
            .req
            .op
            .is_some_and(|op| op.repeat != crate::call::Repeat::ReadOnly)
            .then(|| resource_of(&self.req));
        let res = client.call(self.req).await;
        if let Some(path) = written {
            client.forget_answers_about(&path);
            if let Ok(res) = &res {
                client.kept.note_own_changes(&res.announced);
            }
        }
        let res = res?;
        if let Err(refused) = client.check_status(&res) {
            // A fresh read refused (the token revoked, the resource gone): what was kept for
            // this asker no longer holds.
            if let Some((key, _, KeptUse::Renew)) = &key {
                client.kept.answers.forget(key);
            }
            return Err(refused);
        }
        if let Some((key, ticket, _)) = key {
            client.kept.answers.keep(ticket, key, res.clone());
        }
        Ok((res, client.module))
    }

    /// Sends the call and decodes a JSON answer; an error answer becomes the contract's error
    /// (see [`RemoteError::into_api_error`]).
    ///
    /// # Errors
    /// The contract error the callee answered, or its `unavailable` error.
    pub async fn fetch<T: DeserializeOwned, E: ApiError>(self) -> Result<T, E> {
        let (res, module) = self.answer().await.map_err(RemoteError::into_api_error)?;
        serde_json::from_slice(&res.body).map_err(|e| {
            RemoteError::Protocol {
                module,
                status: res.status,
                reason: format!("body does not decode: {e}"),
            }
            .into_api_error()
        })
    }

    /// Sends the call and answers the body of its answer as it is (a gRPC answer's message).
    ///
    /// # Errors
    /// As [`OpCall::fetch`].
    pub async fn fetch_message<E: ApiError>(self) -> Result<Bytes, E> {
        self.answer()
            .await
            .map(|(res, _)| res.body)
            .map_err(RemoteError::into_api_error)
    }

    /// Sends the call and expects a 2xx answer whose body is ignored (e.g. 204).
    ///
    /// # Errors
    /// As [`OpCall::fetch`].
    pub async fn send<E: ApiError>(self) -> Result<(), E> {
        self.answer()
            .await
            .map(|_| ())
            .map_err(RemoteError::into_api_error)
    }
}
