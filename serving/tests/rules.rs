//! Rule stores: versions, conflicts, the audit trail, the revision replicas poll, replicas sharing a
//! database and the rule cap. One scenario per behaviour, run on the memory store and on PostgreSQL
//! (each PostgreSQL test on its own fresh database; `LUSSO_DATABASE_URL` must be set).

use std::sync::Arc;

use serde_json::json;
use serving::rules::{RuleInput, RuleStore, MAX_RULES};
use serving::Error;
use uuid::Uuid;

fn input(name: &str, priority: i64, factor: f64) -> RuleInput {
    serde_json::from_value(json!({"name": name, "priority": priority,
        "conditions": {"segment": ["High-Value Returning"], "market": ["IT"]},
        "actions": [{"type": "boost", "attribute": "line", "value": "milano", "factor": factor},
            {"type": "pin", "product_id": "P999999", "position": 1}]}))
    .expect("a rule")
}

async fn crud_round_trip(s: &dyn RuleStore) {
    let created = s
        .create(input("VIP boost", 10, 1.5), "giulia")
        .await
        .unwrap();
    assert_eq!(created.version, 1);
    assert_eq!(created.updated_by, "giulia");
    assert_eq!(created.created_at, created.updated_at);
    // Stored as given: the store does not check the catalogue (P999999 does not exist).
    assert_eq!(created.input, input("VIP boost", 10, 1.5));
    assert_eq!(s.get(created.id).await.unwrap(), created);
    assert_eq!(s.list().await.unwrap(), std::slice::from_ref(&created));

    let updated = s
        .update(created.id, input("VIP boost", 20, 2.5), Some(1), "marco")
        .await
        .unwrap();
    assert_eq!(updated.version, 2);
    assert_eq!(updated.id, created.id);
    assert_eq!(updated.created_at, created.created_at);
    assert!(updated.updated_at >= created.updated_at);
    assert_eq!(updated.updated_by, "marco");
    assert_eq!(updated.input.priority, 20);
    assert_eq!(s.get(created.id).await.unwrap(), updated);

    let other = s.create(input("Other", 1, 2.0), "giulia").await.unwrap();
    let listed = s.list().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.contains(&updated) && listed.contains(&other));
    assert!(listed[0].created_at <= listed[1].created_at, "oldest first");
}

async fn stale_version_conflicts(s: &dyn RuleStore) {
    let r = s.create(input("r", 1, 2.0), "a").await.unwrap();
    s.update(r.id, input("r", 2, 2.0), Some(1), "a")
        .await
        .unwrap();
    match s.update(r.id, input("r", 3, 2.0), Some(1), "b").await {
        Err(Error::Conflict(m)) => assert!(m.contains("version 2") && m.contains('1'), "{m}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(
        s.get(r.id).await.unwrap().input.priority,
        2,
        "nothing written"
    );
    // Without an expected version the write goes through.
    let v3 = s.update(r.id, input("r", 3, 2.0), None, "b").await.unwrap();
    assert_eq!(v3.version, 3);
}

async fn unknown_is_not_found(s: &dyn RuleStore) {
    let id = Uuid::new_v4();
    match s.get(id).await {
        Err(Error::NotFound(m)) => assert_eq!(m, format!("rule {id}")),
        other => panic!("expected not found, got {other:?}"),
    }
    assert!(matches!(
        s.update(id, input("r", 1, 2.0), None, "a").await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(s.delete(id, "a").await, Err(Error::NotFound(_))));
}

async fn delete_then_get(s: &dyn RuleStore) {
    let r = s.create(input("gone", 1, 2.0), "a").await.unwrap();
    let kept = s.create(input("kept", 1, 2.0), "a").await.unwrap();
    s.delete(r.id, "b").await.unwrap();
    assert!(matches!(s.get(r.id).await, Err(Error::NotFound(_))));
    assert_eq!(s.list().await.unwrap(), [kept]);
    assert!(matches!(s.delete(r.id, "b").await, Err(Error::NotFound(_))));
}

async fn audit_trail(s: &dyn RuleStore) {
    let r = s.create(input("VIP", 10, 1.5), "giulia").await.unwrap();
    let noise = s.create(input("noise", 1, 2.0), "x").await.unwrap();
    s.update(r.id, input("VIP", 20, 2.5), Some(1), "marco")
        .await
        .unwrap();
    s.delete(r.id, "anna").await.unwrap();

    let trail = s.audit(Some(r.id), 10).await.unwrap();
    let summary: Vec<(&str, &str, i64)> = trail
        .iter()
        .map(|a| (a.action.as_str(), a.actor.as_str(), a.version))
        .collect();
    assert_eq!(
        summary,
        [
            ("delete", "anna", 2),
            ("update", "marco", 2),
            ("create", "giulia", 1)
        ]
    );
    assert!(trail.windows(2).all(|w| w[0].seq > w[1].seq));
    assert!(trail.iter().all(|a| a.rule_id == r.id));
    assert_eq!(trail[1].changes, ["actions[0].factor", "priority"]);
    let top = [
        "actions",
        "conditions",
        "enabled",
        "name",
        "priority",
        "rule_set",
    ];
    assert_eq!(trail[2].changes, top);
    assert_eq!(trail[0].changes, top);
    assert_eq!(trail[2].before, None);
    assert_eq!(trail[2].after.as_ref().unwrap()["priority"], 10);
    assert_eq!(trail[1].before.as_ref().unwrap()["priority"], 10);
    assert_eq!(trail[1].after.as_ref().unwrap()["priority"], 20);
    assert_eq!(trail[0].after, None);
    assert!(trail[0].at >= trail[2].at);

    let all = s.audit(None, 2).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!((all[0].action.as_str(), all[0].rule_id), ("delete", r.id));
    assert_eq!(s.audit(None, 10).await.unwrap().len(), 4);
    assert_eq!(s.audit(Some(noise.id), 10).await.unwrap().len(), 1);
    assert!(s.audit(Some(Uuid::new_v4()), 10).await.unwrap().is_empty());
}

async fn revision_moves_on_writes_only(s: &dyn RuleStore) {
    let r0 = s.revision().await.unwrap();
    let r = s.create(input("r", 1, 2.0), "a").await.unwrap();
    let r1 = s.revision().await.unwrap();
    assert!(r1 > r0);
    s.get(r.id).await.unwrap();
    s.list().await.unwrap();
    s.audit(None, 10).await.unwrap();
    assert_eq!(s.revision().await.unwrap(), r1, "reads do not move it");
    s.update(r.id, input("r", 2, 2.0), Some(1), "a")
        .await
        .unwrap();
    let r2 = s.revision().await.unwrap();
    assert!(r2 > r1);
    assert!(s
        .update(r.id, input("r", 3, 2.0), Some(1), "a")
        .await
        .is_err());
    assert!(s.delete(Uuid::new_v4(), "a").await.is_err());
    assert_eq!(
        s.revision().await.unwrap(),
        r2,
        "failed writes do not move it"
    );
    s.delete(r.id, "a").await.unwrap();
    assert!(s.revision().await.unwrap() > r2);
}

async fn replicas_share_writes(a: &dyn RuleStore, b: &dyn RuleStore) {
    let before = b.revision().await.unwrap();
    let r = a.create(input("shared", 5, 2.0), "giulia").await.unwrap();
    assert!(
        b.revision().await.unwrap() > before,
        "b sees a's write move the revision"
    );
    assert_eq!(b.get(r.id).await.unwrap(), r);
    let v2 = b
        .update(r.id, input("shared", 6, 2.0), Some(1), "marco")
        .await
        .unwrap();
    assert_eq!(a.get(r.id).await.unwrap(), v2);
    assert!(matches!(
        a.update(r.id, input("shared", 7, 2.0), Some(1), "giulia")
            .await,
        Err(Error::Conflict(_))
    ));
    assert_eq!(a.revision().await.unwrap(), b.revision().await.unwrap());
    b.delete(r.id, "marco").await.unwrap();
    assert!(a.list().await.unwrap().is_empty());
    assert_eq!(a.audit(Some(r.id), 10).await.unwrap().len(), 3);
}

/// `prefilled` rules are already in the store (written behind its back, to keep the test fast).
async fn cap_reached(s: &dyn RuleStore, prefilled: usize) {
    for i in prefilled..MAX_RULES {
        s.create(input(&format!("r{i}"), 1, 2.0), "bulk")
            .await
            .unwrap();
    }
    let rev = s.revision().await.unwrap();
    match s.create(input("one too many", 1, 2.0), "bulk").await {
        Err(Error::Conflict(m)) => assert_eq!(m, "rules: at most 10000"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(s.revision().await.unwrap(), rev);
    let all = s.list().await.unwrap();
    assert_eq!(all.len(), MAX_RULES);
    // Room again after a delete.
    s.delete(all[0].id, "bulk").await.unwrap();
    s.create(input("fits", 1, 2.0), "bulk").await.unwrap();
}

mod memory {
    use super::*;
    use serving::rules::MemoryRuleStore;

    #[tokio::test]
    async fn crud_round_trip() {
        super::crud_round_trip(&MemoryRuleStore::new()).await;
    }

    #[tokio::test]
    async fn stale_version_conflicts() {
        super::stale_version_conflicts(&MemoryRuleStore::new()).await;
    }

    #[tokio::test]
    async fn unknown_is_not_found() {
        super::unknown_is_not_found(&MemoryRuleStore::new()).await;
    }

    #[tokio::test]
    async fn delete_then_get() {
        super::delete_then_get(&MemoryRuleStore::new()).await;
    }

    #[tokio::test]
    async fn audit_trail() {
        super::audit_trail(&MemoryRuleStore::new()).await;
    }

    #[tokio::test]
    async fn revision_moves_on_writes_only() {
        super::revision_moves_on_writes_only(&MemoryRuleStore::new()).await;
    }

    #[tokio::test]
    async fn replicas_share_writes() {
        // One process: the replicas are two handles on one store.
        let s = Arc::new(MemoryRuleStore::new());
        let (a, b) = (s.clone(), s);
        super::replicas_share_writes(a.as_ref(), b.as_ref()).await;
    }

    #[tokio::test]
    async fn cap_reached() {
        super::cap_reached(&MemoryRuleStore::new(), 0).await;
    }
}

mod postgres {
    use super::*;
    use serving::rules::PgRuleStore;

    async fn url() -> String {
        let base = std::env::var("LUSSO_DATABASE_URL").expect(
            "LUSSO_DATABASE_URL (scripts/services.sh up, then source ~/.local/share/lusso/services/env.sh)",
        );
        serving::pg::fresh_database(&base, "lusso_test_rules")
            .await
            .expect("a fresh database")
    }

    async fn open(url: &str) -> PgRuleStore {
        let pool = serving::pg::connect(url).await.expect("connect");
        PgRuleStore::new(pool).await.expect("schema")
    }

    async fn store() -> PgRuleStore {
        open(&url().await).await
    }

    #[tokio::test]
    async fn crud_round_trip() {
        let s = store().await;
        assert!(s.describe().starts_with("postgres://"), "{}", s.describe());
        super::crud_round_trip(&s).await;
    }

    #[tokio::test]
    async fn stale_version_conflicts() {
        super::stale_version_conflicts(&store().await).await;
    }

    #[tokio::test]
    async fn unknown_is_not_found() {
        super::unknown_is_not_found(&store().await).await;
    }

    #[tokio::test]
    async fn delete_then_get() {
        super::delete_then_get(&store().await).await;
    }

    #[tokio::test]
    async fn audit_trail() {
        super::audit_trail(&store().await).await;
    }

    #[tokio::test]
    async fn revision_moves_on_writes_only() {
        super::revision_moves_on_writes_only(&store().await).await;
    }

    #[tokio::test]
    async fn replicas_share_writes() {
        let url = url().await;
        let (a, b) = (open(&url).await, open(&url).await);
        super::replicas_share_writes(&a, &b).await;
    }

    #[tokio::test]
    async fn cap_reached() {
        let url = url().await;
        let s = open(&url).await;
        // All but the last rule in one statement rather than 9,999 transactions.
        let prefilled = MAX_RULES - 1;
        let pool = serving::pg::connect(&url).await.unwrap();
        let body = serde_json::to_value(input("bulk", 1, 2.0)).unwrap();
        sqlx::query(
            "INSERT INTO serving_rules (id, version, body, created_at, updated_at, updated_by)
             SELECT gen_random_uuid(), 1, $1, now(), now(), 'bulk' FROM generate_series(1, $2)",
        )
        .bind(body)
        .bind(prefilled as i32)
        .execute(&pool)
        .await
        .unwrap();
        super::cap_reached(&s, prefilled).await;
    }
}
