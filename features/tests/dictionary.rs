//! The pieces of shopper state that live beside the blob, each scenario run against the in-memory store and
//! against real Redis: the recent event ids under their own key (written in the blob's atomic step, expiring on
//! their own), and the name dictionary that several processes share and grow.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use features::processor::{state_id, Processor};
use features::state::dict::Dict;
use features::state::stream_id;
use features::state::user::UserState;
use features::store::{CasWrite, SideWrite};
use features::Context;
use pipelines::catalog::Catalog;

async fn recent_ids_live_beside_the_blob_and_expire_on_their_own(redis: bool) {
    let (events, _, _) = simulate(30, 3, 21);
    let (ctx, store, _keys) = context_and_store(redis).await;
    let p = Processor::new(ctx.clone(), store.clone());
    p.process(&incoming(&events, stream_id(0, 0), 0))
        .await
        .unwrap();
    let id = state_id(&events[events.len() - 1]);
    let got = store
        .get(&[ctx.keys.user(&id), ctx.keys.recent_ids(&id)])
        .await
        .unwrap();
    let blob = got[0].as_ref().expect("shopper blob");
    let ids = UserState::decode_recent_ids(got[1].as_ref().expect("recent ids key")).unwrap();
    assert!(!ids.is_empty());
    assert!(
        p.decode_user(blob).await.unwrap().recent_ids.is_empty(),
        "the blob itself carries no ids"
    );

    // The side write lands with a successful compare-and-set only, and expires on its own TTL.
    let (key, side) = (ctx.keys.user("u:side"), ctx.keys.recent_ids("u:side"));
    let write = |rev: u64, ttl_ms: u64| CasWrite {
        key: key.clone(),
        expected_rev: rev,
        blob: (rev + 1).to_be_bytes().to_vec(),
        ttl: Some(Duration::from_secs(60)),
        side: Some(SideWrite {
            key: side.clone(),
            value: Some(vec![1, rev as u8]),
            ttl: Duration::from_millis(ttl_ms),
        }),
    };
    assert_eq!(store.put_cas(vec![write(0, 300)]).await.unwrap(), [true]);
    assert_eq!(
        store.put_cas(vec![write(5, 60_000)]).await.unwrap(),
        [false]
    );
    let now = store.get(&[key.clone(), side.clone()]).await.unwrap();
    assert_eq!(
        now[1].as_deref(),
        Some(&[1u8, 0][..]),
        "the losing write left the side key alone"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    let later = store.get(&[key.clone(), side.clone()]).await.unwrap();
    assert!(later[0].is_some(), "the blob keeps its own, longer TTL");
    assert!(later[1].is_none(), "the side key expired");
    // A write with no ids deletes the side key.
    let mut del = write(1, 60_000);
    del.side.as_mut().unwrap().value = None;
    store.put_cas(vec![write(1, 60_000)]).await.unwrap();
    assert!(store.get(std::slice::from_ref(&side)).await.unwrap()[0].is_some());
    del.expected_rev = 2;
    assert_eq!(store.put_cas(vec![del]).await.unwrap(), [true]);
    assert!(store.get(&[side]).await.unwrap()[0].is_none());
}

/// The catalogue with every colour code suffixed (a new season's palette), through its JSON form.
fn with_colours_renamed(catalog: &Catalog, suffix: &str) -> Catalog {
    let mut v = serde_json::to_value(catalog).unwrap();
    for c in v["colours"].as_array_mut().unwrap() {
        let code = format!("{}{suffix}", c["code"].as_str().unwrap());
        c["code"] = code.into();
    }
    for p in v["products"].as_array_mut().unwrap() {
        let code = format!("{}{suffix}", p["colour_code"].as_str().unwrap());
        p["colour_code"] = code.into();
    }
    serde_json::from_value(v).unwrap()
}

async fn processes_share_and_grow_one_dictionary(redis: bool) {
    let (events, _, now) = simulate(60, 5, 22);
    let (ctx, store, _keys) = context_and_store(redis).await;
    // A second process started later with a catalogue whose colours were renamed: it appends its names, and
    // the first process, whose copy predates them, still reads every blob the second writes.
    let ctx2 = Arc::new(Context::new(
        Arc::new(with_colours_renamed(&ctx.catalog, "-ss27")),
        ctx.config.clone(),
    ));
    let first = Processor::new(ctx.clone(), store.clone());
    let second = Processor::new(ctx2.clone(), store.clone());
    let d1 = first.dict().await.unwrap();
    let d2 = second.dict().await.unwrap();
    assert!(d2.len() > d1.len(), "{} vs {}", d2.len(), d1.len());
    // Codes never move: the first copy's names keep their codes in the grown list.
    assert_eq!(
        Dict::sync(store.as_ref(), &ctx.keys.dict(), &[], Default::default())
            .await
            .unwrap()
            .len(),
        d2.len()
    );
    second
        .process(&incoming(&events, stream_id(0, 0), 0))
        .await
        .unwrap();
    let ids: Vec<String> = events
        .iter()
        .map(state_id)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let keys: Vec<String> = ids.iter().map(|i| ctx.keys.user(i)).collect();
    let blobs = store.get(&keys).await.unwrap();
    let mut renamed_seen = 0;
    for (id, b) in ids.iter().zip(blobs) {
        let b = b.expect("blob");
        let by_first = first.decode_user(&b).await.unwrap();
        let by_second = second.decode_user(&b).await.unwrap();
        assert_eq!(
            by_first.features(id, now, &ctx2),
            by_second.features(id, now, &ctx2),
            "{id}"
        );
        assert!(
            by_first.affinity[2]
                .scores
                .iter()
                .all(|(n, _)| !n.starts_with('#')),
            "no placeholder once the copy is reloaded"
        );
        renamed_seen += by_first.affinity[2]
            .scores
            .iter()
            .filter(|(n, _)| n.ends_with("-ss27"))
            .count();
    }
    assert!(renamed_seen > 0, "the renamed colours were written");
}

mod memory {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn recent_ids_live_beside_the_blob_and_expire_on_their_own() {
        super::recent_ids_live_beside_the_blob_and_expire_on_their_own(false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn processes_share_and_grow_one_dictionary() {
        super::processes_share_and_grow_one_dictionary(false).await;
    }
}

mod redis {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn recent_ids_live_beside_the_blob_and_expire_on_their_own() {
        super::recent_ids_live_beside_the_blob_and_expire_on_their_own(true).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn processes_share_and_grow_one_dictionary() {
        super::processes_share_and_grow_one_dictionary(true).await;
    }
}
