//! The seed ads: one per Online Boutique product, filed under the product's first category,
//! as Boutique's adservice files its ads by category.

use sea_orm_migration::prelude::*;
use crate::schema::{delete_rows, name};

/// id, category, product id, text.
type Row = (&'static str, &'static str, &'static str, &'static str);

const ADS: [Row; 9] = [
    (
        "candle-holder",
        "decor",
        "0PUK6V6EV0",
        "Candle holder for sale. 30% off, and the candles are on us.",
    ),
    (
        "watch",
        "accessories",
        "1YMWWN1N4O",
        "Watch for sale. Buy one, get a second strap free.",
    ),
    (
        "hairdryer",
        "hair",
        "2ZYFJ3GM2N",
        "Hairdryer for sale. 10% off, small enough for your carry-on.",
    ),
    (
        "tank-top",
        "clothing",
        "66VCHSJNUP",
        "Tank top for sale. 20% off.",
    ),
    (
        "mug",
        "kitchen",
        "6E92ZMYYFZ",
        "Mug for sale. Buy two, get a third one free.",
    ),
    (
        "bamboo-glass-jar",
        "kitchen",
        "9SIQT8TOJO",
        "Bamboo glass jar for sale. 10% off, keep your coffee fresh.",
    ),
    (
        "loafers",
        "footwear",
        "L9ECAV7KIM",
        "Loafers for sale. Buy one pair, get the second at half price.",
    ),
    (
        "salt-and-pepper-shakers",
        "kitchen",
        "LS4PSXUNUM",
        "Salt and pepper shakers for sale. 15% off the pair.",
    ),
    (
        "sunglasses",
        "accessories",
        "OLJCESPC7Z",
        "Sunglasses for sale. 25% off, summer starts now.",
    ),
];

pub(super) async fn up(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let mut insert = Query::insert();
    insert.into_table(name("ads_ads")).columns([
        name("id"),
        name("category"),
        name("redirect_url"),
        name("text"),
    ]);
    for (id, category, product_id, text) in ADS {
        insert
            .values([
                id.into(),
                category.into(),
                format!("/product/{product_id}").into(),
                text.into(),
            ])
            .map_err(|e| DbErr::Custom(format!("seed ad {id}: {e}")))?;
    }
    manager.exec_stmt(insert).await
}

pub(super) async fn down(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    delete_rows(manager, "ads_ads", "id", ADS.iter().map(|a| a.0)).await
}
