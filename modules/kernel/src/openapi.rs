//! The error responses of the API document, derived from the error tables: a handler
//! describes its parameters, body and success answers (`#[utoipa::path]`); the errors of each
//! operation come from its contract's declaration (`#[op(.., errors(..))]`, each error's
//! status and description from `#[derive(ApiError)]`), plus the failures the kernel may answer
//! on any route (one shared set), so no route repeats them.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::ApiError;
use crate::auth::AuthError;
use crate::call::{Access, Operation};
use crate::error::{ErrorDoc, KernelError, PROBLEM_JSON};

/// One contract as the document needs it: its operations and its error table.
#[derive(Debug, Clone, Copy)]
pub struct ContractDoc {
    /// The module.
    pub module: &'static str,
    /// Its operations.
    pub operations: &'static [&'static Operation],
    /// Its errors.
    pub errors: &'static [ErrorDoc],
    /// The codes of its refusals: unauthenticated (401), forbidden (403).
    pub refusals: [&'static str; 2],
}

fn kernel_error(code: &str) -> Option<&'static ErrorDoc> {
    KernelError::ERRORS
        .iter()
        .chain(AuthError::ERRORS)
        .find(|d| d.code == code)
}

/// The kernel's failures any route of a contract may answer: a bad token (401), the process
/// overloaded (503 `cleave.overloaded`), a
/// dependency or the module down (503, the module's own code), the deadline (504); with a
/// body, a malformed, oversized or non-JSON one (400, 413, 415); with query parameters, a
/// malformed query (400).
fn common_errors(has_body: bool, has_query: bool) -> Vec<&'static ErrorDoc> {
    let mut codes = vec![
        "auth.unauthenticated",
        "cleave.timeout",
        "cleave.overloaded",
    ];
    if has_body {
        codes.extend([
            "cleave.invalid_json",
            "cleave.payload_too_large",
            "cleave.unsupported_media_type",
        ]);
    }
    if has_query {
        codes.push("cleave.invalid_query");
    }
    codes.into_iter().filter_map(kernel_error).collect()
}

/// Adds to every operation of `doc` whose route belongs to one of `contracts` its error
/// responses (`application/problem+json`, one per status, naming each code), replacing any
/// error response already there. Routes in `rate_limited` (method, path) may also answer
/// 429 `cleave.rate_limited`.
///
/// # Errors
/// When the document does not (de)serialize (a bug).
pub fn document_errors(
    doc: utoipa::openapi::OpenApi,
    contracts: &[ContractDoc],
    rate_limited: &[(&str, &str)],
) -> Result<utoipa::openapi::OpenApi, serde_json::Error> {
    let mut value = serde_json::to_value(doc)?;
    security_schemes(&mut value);
    if let Some(paths) = value.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (method, operation) in item.iter_mut() {
                let method = method.to_ascii_uppercase();
                for contract in contracts {
                    let ops: Vec<&Operation> = contract
                        .operations
                        .iter()
                        .copied()
                        .filter(|op| op.method.as_str() == method && op.path == path)
                        .collect();
                    if !ops.is_empty() {
                        let limited = rate_limited.contains(&(method.as_str(), path.as_str()));
                        add_errors(operation, contract, &ops, limited);
                    }
                }
            }
        }
    }
    serde_json::from_value(value)
}

/// Who may call the operations of one route (usually one; `GET /orders` serves two), in
/// the document: `security` (a bearer token, a module's client certificate, or nothing for
/// operations open to anyone), and `x-cleave-access` (each kind of caller admitted, see
/// [`Access::key`]) with `x-cleave-owner` (the parameter or body field holding the owner's
/// user id) for operations that admit their owner.
fn document_access(operation: &mut Value, ops: &[&Operation]) {
    let Some(operation) = operation.as_object_mut() else {
        return;
    };
    let mut access: Vec<Access> = Vec::new();
    for a in ops.iter().flat_map(|op| op.access) {
        if !access.contains(a) {
            access.push(*a);
        }
    }
    let mut security = Vec::new();
    if access.contains(&Access::Anyone) {
        security.push(json!({}));
    }
    if access
        .iter()
        .any(|a| matches!(a, Access::SignedIn | Access::Owner | Access::Admin))
    {
        security.push(json!({BEARER_SCHEME: []}));
    }
    if access
        .iter()
        .any(|a| matches!(a, Access::Module(_) | Access::AnyModule))
    {
        security.push(json!({MODULE_SCHEME: []}));
    }
    operation.insert("security".into(), Value::Array(security));
    let keys: Vec<String> = access.iter().map(Access::key).collect();
    operation.insert("x-cleave-access".into(), json!(keys));
    if let Some(owner) = ops.iter().find_map(|op| op.owner) {
        let field = owner.rsplit('.').next().unwrap_or(owner);
        operation.insert("x-cleave-owner".into(), json!(field));
    }
}

/// The security scheme of user and guest access tokens.
pub const BEARER_SCHEME: &str = "bearer";
/// The security scheme of module certificates (mutual TLS).
pub const MODULE_SCHEME: &str = "module_certificate";

/// The document's security schemes: access tokens (`Authorization: Bearer`, from
/// `POST /api/identity/v1/tokens` or `/guests`) and module certificates.
fn security_schemes(value: &mut Value) {
    let schemes = json!({
        BEARER_SCHEME: {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "An access token: a user's (POST /api/identity/v1/tokens) or a \
                            guest's (POST /api/identity/v1/guests)."
        },
        MODULE_SCHEME: {
            "type": "mutualTLS",
            "description": "A module of the deployment, proven by its client certificate \
                            (cleave certs issue)."
        }
    });
    if let Some(root) = value.as_object_mut() {
        let components = root.entry("components").or_insert_with(|| json!({}));
        if let Some(components) = components.as_object_mut() {
            components.insert("securitySchemes".into(), schemes);
        }
    }
}

fn add_errors(operation: &mut Value, contract: &ContractDoc, ops: &[&Operation], limited: bool) {
    let has_body = operation.get("requestBody").is_some();
    let has_query = operation
        .get("parameters")
        .and_then(Value::as_array)
        .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"));
    let unavailable = format!("{}.unavailable", contract.module);
    let [unauthenticated, forbidden] = contract.refusals;
    let mut docs: Vec<&ErrorDoc> = Vec::new();
    document_access(operation, ops);
    for op in ops {
        let mut refusals = Vec::new();
        if !op.access.contains(&Access::Anyone) {
            refusals.push(unauthenticated);
            if op.access.iter().any(|a| *a != Access::SignedIn) {
                refusals.push(forbidden);
            }
        }
        let codes = op.errors.iter().copied().chain(refusals);
        for code in codes.chain([unavailable.as_str()]) {
            if let Some(d) = contract.errors.iter().find(|d| d.code == code)
                && !docs.contains(&d)
            {
                docs.push(d);
            }
        }
    }
    docs.extend(common_errors(has_body, has_query));
    if limited {
        docs.extend(kernel_error("cleave.rate_limited"));
    }
    let mut by_status: BTreeMap<u16, Vec<&ErrorDoc>> = BTreeMap::new();
    for d in docs {
        by_status.entry(d.status).or_default().push(d);
    }
    let Some(responses) = operation
        .get_mut("responses")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    responses.retain(|status, _| !status.starts_with('4') && !status.starts_with('5'));
    for (status, docs) in by_status {
        let description = docs
            .iter()
            .map(|d| format!("`{}`: {}", d.code, d.description))
            .collect::<Vec<_>>()
            .join(" ");
        responses.insert(
            status.to_string(),
            json!({
                "description": description,
                "content": {
                    PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}
                }
            }),
        );
    }
}
