//! The currency contract suite against the module in process and over HTTP.

use cleave_kernel::module::Migrations;
use cleave_kernel::testing::ContractHarness;
use cleave_migrations::currency::Migrator;
use currency::CurrencyModule;
use currency_api::contract;

#[tokio::test]
async fn currency_meets_the_contract_in_process_and_over_http() {
    ContractHarness::<CurrencyModule>::new::<Migrations<Migrator>>()
        .run(|p| async move { contract::run(&p.label, p.api.as_ref()).await })
        .await;
}
