//! What the pipeline's test files share: probe operations on `/thing`, and one call of an
//! operation with a deadline, as a contract client makes it.

use std::time::Duration;

use cleave_kernel::CallContext;
use cleave_kernel::call::{HttpMethod, Operation, Repeat};
use cleave_kernel::client::RemoteClient;
use cleave_kernel::error::KernelError;

/// Operation `id` of the probe module on `/thing`.
pub(crate) const fn op(id: &'static str, method: HttpMethod, repeat: Repeat) -> Operation {
    Operation {
        module: "probe",
        name: id,
        id,
        method,
        path: "/thing",
        repeat,
        cached: false,
        access: &[cleave_kernel::call::Access::Anyone],
        owner: None,
        errors: &[],
        summary: "",
    }
}

/// Calls `op` through `remote` with a 5 s deadline; its error as a contract would see it.
pub(crate) async fn call(remote: &RemoteClient, op: &'static Operation) -> Result<(), KernelError> {
    remote
        .op(
            op,
            &CallContext::root().with_timeout(Duration::from_secs(5)),
        )
        .fetch::<serde_json::Value, KernelError>()
        .await
        .map(|_| ())
}
