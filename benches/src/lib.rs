//! Helpers the benchmark binaries share.
//!
//! Layout:
//! - [`edge`]: the HTTP edge as a deployed process runs it, with one publishable key, for the edge-on/off
//!   comparisons of `serving_bench --edge` and `collector_throughput --edge`.

pub mod edge {
    use std::sync::Arc;

    use axum::http::Method;
    use axum::Router;
    use pipelines::access::{FileKeys, KeyKind, Keys, NewKey};
    use pipelines::http::auth::{Access, Edge, RateLimit};

    /// Every route is a storefront route here: the edge checks the publishable key, takes a token from its
    /// bucket and runs the rest of the edge, as for `/v1/recommendations` and `/v1/events` in production.
    fn storefront(_: &Method, _: &str) -> Access {
        Access::Publishable
    }

    /// `router` behind the edge, with a fresh publishable key (stored under `dir`) whose bucket is far above
    /// the benchmark's rate, so the limiter's bookkeeping is measured but never refuses.
    pub async fn behind(router: Router, dir: &std::path::Path) -> anyhow::Result<(Router, String)> {
        std::fs::create_dir_all(dir)?;
        let keys = Keys::load(Arc::new(FileKeys::in_dir(dir))).await?;
        let (key, _) = keys
            .create(NewKey {
                name: "bench-storefront".into(),
                kind: KeyKind::Publishable,
                scopes: Default::default(),
                origins: vec![],
            })
            .await?;
        let edge = Edge::new(keys, storefront, vec![]).with_rate_limit(RateLimit {
            per_second: 1e9,
            burst: 1e9,
        });
        Ok((pipelines::http::behind_edge(router, edge), key))
    }

    /// The median of a round's figures (the upper one of an even count).
    pub fn median(v: &mut [f64]) -> f64 {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }
}
