//! The error responses of the API document, derived from the error tables: a handler
//! describes its parameters, body and success answers (`#[utoipa::path]`); the errors of each
//! operation come from its contract's declaration (`#[op(.., errors(..))]`, each error's
//! status and description from `#[derive(ApiError)]`), plus the failures the kernel may answer
//! on any route (one shared set), so no route repeats them.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::ApiError;
use crate::auth::AuthError;
use crate::call::Operation;
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
}

fn kernel_error(code: &str) -> Option<&'static ErrorDoc> {
    KernelError::ERRORS
        .iter()
        .chain(AuthError::ERRORS)
        .find(|d| d.code == code)
}

/// The kernel's failures any route of a contract may answer: a bad token (401), a
/// dependency or the module down (503, the module's own code), the deadline (504); with a
/// body, a malformed, oversized or non-JSON one (400, 413, 415); with query parameters, a
/// malformed query (400).
fn common_errors(has_body: bool, has_query: bool) -> Vec<&'static ErrorDoc> {
    let mut codes = vec!["auth.unauthenticated", "cleave.timeout"];
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

fn add_errors(operation: &mut Value, contract: &ContractDoc, ops: &[&Operation], limited: bool) {
    let has_body = operation.get("requestBody").is_some();
    let has_query = operation
        .get("parameters")
        .and_then(Value::as_array)
        .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"));
    let unavailable = format!("{}.unavailable", contract.module);
    let mut docs: Vec<&ErrorDoc> = Vec::new();
    for op in ops {
        for code in op.errors.iter().copied().chain([unavailable.as_str()]) {
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
