//! The seed catalog: Online Boutique's nine products (its load generator asks for these ids),
//! with our own names and descriptions.

use sea_orm_migration::prelude::*;
use crate::schema::{delete_rows, name};

/// id, name, description, price units, price nanos, categories.
type Row = (
    &'static str,
    &'static str,
    &'static str,
    i64,
    i32,
    &'static [&'static str],
);

const PRODUCTS: [Row; 9] = [
    (
        "0PUK6V6EV0",
        "Candle Holder",
        "A hand-turned brass holder that gives a plain taper candle a warm, steady glow on the dinner table.",
        18,
        990_000_000,
        &["decor", "home"],
    ),
    (
        "1YMWWN1N4O",
        "Watch",
        "A quiet automatic watch with a sapphire glass and a leather strap that wears in, not out.",
        109,
        990_000_000,
        &["accessories"],
    ),
    (
        "2ZYFJ3GM2N",
        "Hairdryer",
        "A compact ionic hairdryer with three heat settings and a cool shot, light enough to travel.",
        24,
        990_000_000,
        &["hair", "beauty"],
    ),
    (
        "66VCHSJNUP",
        "Tank Top",
        "A breathable organic cotton tank top, cut long, for hot days and warm evenings.",
        18,
        990_000_000,
        &["clothing", "tops"],
    ),
    (
        "6E92ZMYYFZ",
        "Mug",
        "A stoneware mug with a speckled glaze that keeps coffee hot through the morning.",
        8,
        990_000_000,
        &["kitchen"],
    ),
    (
        "9SIQT8TOJO",
        "Bamboo Glass Jar",
        "An airtight glass jar with a bamboo lid for coffee beans, pasta or cookies.",
        5,
        490_000_000,
        &["kitchen"],
    ),
    (
        "L9ECAV7KIM",
        "Loafers",
        "Suede loafers with a cushioned sole, smart enough for work and soft enough for a long walk.",
        89,
        990_000_000,
        &["footwear"],
    ),
    (
        "LS4PSXUNUM",
        "Salt & Pepper Shakers",
        "A pair of ceramic shakers, one white, one black, that sit well on any table.",
        18,
        490_000_000,
        &["kitchen"],
    ),
    (
        "OLJCESPC7Z",
        "Sunglasses",
        "Polarised sunglasses with acetate frames that cut glare on the road and the water.",
        19,
        990_000_000,
        &["accessories"],
    ),
];

pub(super) async fn up(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let mut insert = Query::insert();
    insert.into_table(name("catalog_products")).columns([
        name("id"),
        name("name"),
        name("description"),
        name("picture"),
        name("price_currency_code"),
        name("price_units"),
        name("price_nanos"),
        name("categories"),
    ]);
    for (id, name, description, units, nanos, categories) in PRODUCTS {
        let categories = serde_json::to_string(categories)
            .map_err(|e| DbErr::Custom(format!("encode categories: {e}")))?;
        insert
            .values([
                id.into(),
                name.into(),
                description.into(),
                format!("/static/img/products/{id}.svg").into(),
                "USD".into(),
                units.into(),
                nanos.into(),
                categories.into(),
            ])
            .map_err(|e| DbErr::Custom(format!("seed row {id}: {e}")))?;
    }
    manager.exec_stmt(insert).await
}

pub(super) async fn down(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    delete_rows(manager, "catalog_products", "id", PRODUCTS.iter().map(|p| p.0)).await
}
