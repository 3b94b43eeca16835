//! One scenario per behaviour, run against both stores: the embedded file and PostgreSQL.

use std::sync::Arc;

use super::*;

fn secret(name: &str, scopes: &str) -> NewKey {
    NewKey {
        name: name.into(),
        kind: KeyKind::Secret,
        scopes: Scope::parse_list(scopes).unwrap(),
        origins: vec![],
    }
}

async fn create_lookup_revoke(store: Arc<dyn KeyStore>) {
    let keys = Keys::load(store.clone()).await.unwrap();
    let (sk, rec) = keys
        .create(secret("merch-1", "rules:write,data:read"))
        .await
        .unwrap();
    assert!(sk.starts_with("sk_") && sk.len() == 51, "{sk}");
    assert_eq!(rec.prefix, &sk[..7]);
    let (pk, _) = keys
        .create(NewKey {
            name: "shop".into(),
            kind: KeyKind::Publishable,
            scopes: Default::default(),
            origins: vec!["https://shop.example".into()],
        })
        .await
        .unwrap();
    let p = keys.lookup(&sk).expect("the new key works");
    assert_eq!(&*p.name, "merch-1");
    assert!(p.has(Scope::RulesWrite) && p.has(Scope::DataRead) && !p.has(Scope::PricesWrite));
    let shop = keys.lookup(&pk).unwrap();
    assert_eq!(shop.kind, KeyKind::Publishable);
    assert!(!shop.has(Scope::DataRead), "a publishable key has no scope");
    assert!(
        shop.allows_origin("https://shop.example") && !shop.allows_origin("https://evil.example")
    );
    // A near miss, another kind's prefix, garbage: nothing.
    let mut wrong = sk.clone();
    wrong.pop();
    wrong.push(if sk.ends_with('0') { '1' } else { '0' });
    for k in [
        wrong.as_str(),
        "sk_",
        "",
        "Bearer x",
        &pk.replace("pk_", "sk_"),
    ] {
        assert!(keys.lookup(k).is_none(), "{k}");
    }
    // Only the hash is stored.
    let all = store.all().await.unwrap();
    assert_eq!(all.len(), 2);
    let stored = serde_json::to_string(&all).unwrap();
    assert!(
        !stored.contains(&sk[3..]) && !stored.contains(&pk[3..]),
        "{stored}"
    );
    // Names are unique, even after a revocation.
    let again = keys.create(secret("merch-1", "admin")).await.unwrap_err();
    assert!(again.to_string().contains("merch-1"), "{again}");
    assert!(keys.revoke("merch-1").await.unwrap());
    assert!(!keys.revoke("merch-1").await.unwrap(), "already revoked");
    assert!(keys.lookup(&sk).is_none(), "a revoked key stops working");
    assert!(keys.create(secret("merch-1", "admin")).await.is_err());
    // Another process sees the same keys (a fresh load of the same store).
    let other = Keys::load(store).await.unwrap();
    assert!(other.lookup(&pk).is_some() && other.lookup(&sk).is_none());
}

async fn bad_keys_are_refused(store: Arc<dyn KeyStore>) {
    let keys = Keys::load(store.clone()).await.unwrap();
    let cases = [
        (secret("", "admin"), "name"),
        (secret("has space", "admin"), "name"),
        (secret(&"n".repeat(65), "admin"), "name"),
        (
            NewKey {
                name: "pk-scoped".into(),
                kind: KeyKind::Publishable,
                scopes: Scope::parse_list("data:read").unwrap(),
                origins: vec![],
            },
            "scopes",
        ),
        (
            NewKey {
                name: "sk-none".into(),
                kind: KeyKind::Secret,
                scopes: Default::default(),
                origins: vec![],
            },
            "scopes",
        ),
        (
            NewKey {
                name: "pk-bad-origin".into(),
                kind: KeyKind::Publishable,
                scopes: Default::default(),
                origins: vec!["shop.example".into()],
            },
            "origins",
        ),
    ];
    for (new, field) in cases {
        let e = keys.create(new.clone()).await.unwrap_err();
        assert!(e.to_string().contains(field), "{:?}: {e}", new.name);
    }
    assert!(store.all().await.unwrap().is_empty(), "nothing stored");
}

#[test]
fn scope_lists_parse_and_admin_is_all() {
    assert_eq!(Scope::parse_list("admin").unwrap().len(), Scope::ALL.len());
    assert_eq!(
        Scope::parse_list(" rules:write , data:read ").unwrap(),
        [Scope::RulesWrite, Scope::DataRead].into_iter().collect()
    );
    let e = Scope::parse_list("rules:write,root")
        .unwrap_err()
        .to_string();
    assert!(e.contains("`root`") && e.contains("data:admin"), "{e}");
    for s in Scope::ALL {
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, format!("\"{}\"", s.as_str()));
    }
}

#[test]
fn generated_keys_differ_and_hash_to_hex() {
    let a = generate(KeyKind::Publishable);
    let b = generate(KeyKind::Publishable);
    assert_ne!(a, b);
    assert!(a.starts_with("pk_"));
    let h = hash(&a);
    assert_eq!(h.len(), 64);
    assert!(h.bytes().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(h, hash(&a));
}

mod file {
    use super::*;

    fn store(dir: &tempfile::TempDir) -> Arc<dyn KeyStore> {
        Arc::new(FileKeys::in_dir(dir.path()))
    }

    #[tokio::test]
    async fn create_lookup_revoke() {
        let dir = tempfile::tempdir().unwrap();
        super::create_lookup_revoke(store(&dir)).await;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("api_keys.json"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "only the owner reads the key file");
        }
    }

    #[tokio::test]
    async fn bad_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        super::bad_keys_are_refused(store(&dir)).await;
    }
}

mod postgres {
    use super::*;

    async fn store() -> Arc<dyn KeyStore> {
        let base = std::env::var("LUSSO_DATABASE_URL").expect(
            "LUSSO_DATABASE_URL is not set: run the suite with scripts/test.sh, which starts PostgreSQL",
        );
        let url = crate::pg::fresh_database(&base, "lusso_test_keys")
            .await
            .unwrap();
        Arc::new(PgKeys::connect(&url).await.unwrap())
    }

    #[tokio::test]
    async fn create_lookup_revoke() {
        super::create_lookup_revoke(store().await).await;
    }

    #[tokio::test]
    async fn bad_keys_are_refused() {
        super::bad_keys_are_refused(store().await).await;
    }
}
