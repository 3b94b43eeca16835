//! Price override stores (memory and PostgreSQL) through one scenario, and a price book fed from them.
//! The PostgreSQL tests read `LUSSO_DATABASE_URL` and get a fresh database each.

use std::sync::Arc;

use pipelines::catalog::Catalog;
use serving::pricing::{
    MemoryOverrideStore, OverrideStore, PgOverrideStore, PriceBook, PriceOverrideInput,
    PriceSource, MAX_OVERRIDES,
};
use serving::Error;

fn input(product_id: &str, market: &str, amount: f64, currency: &str) -> PriceOverrideInput {
    PriceOverrideInput {
        product_id: product_id.into(),
        market: market.into(),
        amount,
        currency: currency.into(),
    }
}

/// `store` and `other` are two handles on the same overrides (the same object for memory).
async fn scenario(store: &dyn OverrideStore, other: &dyn OverrideStore) {
    let r0 = store.revision().await.unwrap();
    assert!(store.list().await.unwrap().is_empty());

    let first = store
        .put(input("P000001", "GB", 1050.0, "GBP"), "alice")
        .await
        .unwrap();
    assert_eq!((first.amount, first.updated_by.as_str()), (1050.0, "alice"));
    let r1 = other.revision().await.unwrap();
    assert_ne!(r1, r0, "a put moves the revision");
    let second = store
        .put(input("P000002", "CH", 999.95, "CHF"), "alice")
        .await
        .unwrap();
    assert_eq!(other.list().await.unwrap(), vec![first, second.clone()]);

    // Replace: same (product, market), new amount and author.
    let replaced = other
        .put(input("P000001", "GB", 1100.0, "GBP"), "bob")
        .await
        .unwrap();
    let r2 = store.revision().await.unwrap();
    assert!(r2 != r1);
    let list = store.list().await.unwrap();
    assert_eq!(list, vec![replaced.clone(), second.clone()]);
    assert_eq!(
        (list[0].amount, list[0].updated_by.as_str()),
        (1100.0, "bob")
    );

    // Rejected input changes nothing.
    for (bad, field) in [
        (input("P000001", "GB", 0.0, "GBP"), "amount"),
        (input("P000001", "GB", 10.005, "GBP"), "amount"),
        (input("P000001", "XX", 10.0, "GBP"), "market"),
        (input("P000001", "GB", 10.0, "ZZZ"), "currency"),
        (input("", "GB", 10.0, "GBP"), "product_id"),
    ] {
        match store.put(bad, "mallory").await {
            Err(Error::BadInput { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    assert_eq!(store.revision().await.unwrap(), r2);

    // The price book applies what the store holds.
    let book =
        PriceBook::new(Arc::new(Catalog::generate(7)), PriceBook::default_markets()).unwrap();
    assert_eq!(book.set_overrides(store.list().await.unwrap()), 2);
    let p = book.price("P000001", "GB").unwrap();
    assert_eq!((p.amount, p.source), (1100.0, PriceSource::Override));

    // Delete, then delete again.
    store.delete("P000001", "GB", "alice").await.unwrap();
    let r3 = other.revision().await.unwrap();
    assert!(r3 != r2);
    assert_eq!(other.list().await.unwrap(), vec![second]);
    match other.delete("P000001", "GB", "alice").await {
        Err(Error::NotFound(m)) => assert!(m.contains("P000001"), "{m}"),
        x => panic!("{x:?}"),
    }
    assert_eq!(store.revision().await.unwrap(), r3);
    book.set_overrides(store.list().await.unwrap());
    assert_eq!(
        book.price("P000001", "GB").unwrap().source,
        PriceSource::List
    );
    assert!(!store.describe().is_empty());
}

/// A store bounded at 2: a third distinct override is a conflict naming the bound; replacing is fine.
async fn capped(store: &dyn OverrideStore) {
    store
        .put(input("P000001", "GB", 10.0, "GBP"), "a")
        .await
        .unwrap();
    store
        .put(input("P000002", "GB", 10.0, "GBP"), "a")
        .await
        .unwrap();
    let rev = store.revision().await.unwrap();
    match store.put(input("P000003", "GB", 10.0, "GBP"), "a").await {
        Err(Error::Conflict(m)) => assert!(m.contains("capped at 2"), "{m}"),
        x => panic!("{x:?}"),
    }
    assert_eq!(store.revision().await.unwrap(), rev);
    store
        .put(input("P000002", "GB", 20.0, "GBP"), "a")
        .await
        .unwrap();
    assert_eq!(store.list().await.unwrap().len(), 2);
}

mod memory {
    use super::*;

    #[tokio::test]
    async fn override_store() {
        let store = MemoryOverrideStore::new();
        scenario(&store, &store).await;
    }

    #[tokio::test]
    async fn override_store_bound() {
        capped(&MemoryOverrideStore::with_max(2)).await;
        let full = MemoryOverrideStore::new();
        for i in 0..MAX_OVERRIDES {
            full.put(input(&format!("P{i:06}"), "GB", 10.0, "GBP"), "bulk")
                .await
                .unwrap();
        }
        match full.put(input("P999999", "FR", 10.0, "EUR"), "bulk").await {
            Err(Error::Conflict(m)) => assert!(m.contains(&MAX_OVERRIDES.to_string()), "{m}"),
            x => panic!("{x:?}"),
        }
    }
}

mod postgres {
    use super::*;

    async fn database() -> String {
        let base = std::env::var("LUSSO_DATABASE_URL").expect(
            "LUSSO_DATABASE_URL (scripts/services.sh up, then source ~/.local/share/lusso/services/env.sh)",
        );
        serving::pg::fresh_database(&base, "lusso_test_prices")
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn override_store() {
        let url = database().await;
        let a = PgOverrideStore::new(serving::pg::connect(&url).await.unwrap())
            .await
            .unwrap();
        // A second replica on the same database (its DDL is a no-op).
        let b = PgOverrideStore::new(serving::pg::connect(&url).await.unwrap())
            .await
            .unwrap();
        scenario(&a, &b).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn override_store_bound() {
        let url = database().await;
        let store = PgOverrideStore::new(serving::pg::connect(&url).await.unwrap())
            .await
            .unwrap()
            .with_max(2);
        capped(&store).await;
    }
}
