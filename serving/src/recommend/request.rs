//! Query parameters of `GET /v1/recommendations` and `GET /v1/products/{id}/similar`, validated with the
//! parameter named in every error.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::config::{DEFAULT_N, MAX_EXCLUDE, MAX_N, PLACEMENTS};
use crate::{Error, Result};

/// Largest id accepted (user, anonymous, session, product).
pub const MAX_ID_LEN: usize = 128;
/// Context products (`product_id=` on `pdp` / `cart`) accepted.
pub const MAX_CONTEXT_PRODUCTS: usize = 20;

/// Optional diversification asked by the caller (overrides the placement's default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Diversity {
    /// No diversification beyond the placement's rules.
    None,
    /// At most `max` items per value of `attribute` (`category` or `line`).
    PerAttribute { attribute: String, max: usize },
    /// Maximal marginal relevance with this λ over item-factor cosine.
    Mmr { lambda: f32 },
}

/// A validated recommendations request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RecRequest {
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    pub session_id: Option<String>,
    pub placement: String,
    pub n: usize,
    pub market: Option<String>,
    pub size: Option<String>,
    pub exclude: Vec<String>,
    pub device: Option<String>,
    /// Products the page is about (`pdp`: the product shown; `cart`: the cart's products).
    pub context_products: Vec<String>,
    /// Segment override, for previews and the demo storefront (otherwise the shopper's own).
    pub segment: Option<String>,
    pub diversity: Option<Diversity>,
}

impl RecRequest {
    /// The unit experiments bucket on and impressions are keyed by.
    pub fn unit(&self) -> Option<&str> {
        self.user_id.as_deref().or(self.anonymous_id.as_deref())
    }
}

const REC_PARAMS: &[&str] = &[
    "user_id",
    "anonymous_id",
    "session_id",
    "placement",
    "n",
    "market",
    "size",
    "exclude",
    "device",
    "product_id",
    "segment",
    "diversity",
];

fn id_param(q: &HashMap<String, String>, name: &str) -> Result<Option<String>> {
    match q.get(name).map(|v| v.trim()) {
        None => Ok(None),
        Some("") => Err(Error::bad(name, "is empty")),
        Some(v) if v.len() > MAX_ID_LEN => Err(Error::bad(
            name,
            format!("is longer than {MAX_ID_LEN} characters"),
        )),
        Some(v) if v.chars().any(|c| c.is_control() || c == ',') => {
            Err(Error::bad(name, "contains a control character or a comma"))
        }
        Some(v) => Ok(Some(v.to_string())),
    }
}

fn list_param(q: &HashMap<String, String>, name: &str, max: usize) -> Result<Vec<String>> {
    let Some(raw) = q.get(name) else {
        return Ok(Vec::new());
    };
    let items: Vec<String> = raw
        .split(',')
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if items.len() > max {
        return Err(Error::bad(name, format!("at most {max} ids")));
    }
    if let Some(bad) = items.iter().find(|s| s.len() > MAX_ID_LEN) {
        return Err(Error::bad(
            name,
            format!(
                "`{}…` is longer than {MAX_ID_LEN} characters",
                bad.chars().take(16).collect::<String>()
            ),
        ));
    }
    Ok(items)
}

/// `n`: 1–`max`, default `default`.
pub fn n_param(q: &HashMap<String, String>, default: usize, max: usize) -> Result<usize> {
    match q.get("n") {
        None => Ok(default),
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(Error::bad(
                "n",
                format!("`{v}` is not an integer in 1–{max}"),
            )),
        },
    }
}

/// `market`: an ISO 3166-1 alpha-2 country (upper-cased).
pub fn market_param(q: &HashMap<String, String>) -> Result<Option<String>> {
    match q.get("market") {
        None => Ok(None),
        Some(v) => {
            let m = v.trim().to_ascii_uppercase();
            if pipelines::iso::is_country(&m) {
                Ok(Some(m))
            } else {
                Err(Error::bad(
                    "market",
                    format!("`{v}` is not an ISO 3166-1 alpha-2 country"),
                ))
            }
        }
    }
}

/// Rejects parameters outside `known` (a typo would otherwise be silently ignored).
pub fn reject_unknown(q: &HashMap<String, String>, known: &[&str]) -> Result<()> {
    let mut unknown: Vec<&String> = q.keys().filter(|k| !known.contains(&k.as_str())).collect();
    unknown.sort();
    match unknown.first() {
        Some(k) => Err(Error::bad(
            k.as_str(),
            format!("unknown parameter (accepted: {})", known.join(", ")),
        )),
        None => Ok(()),
    }
}

fn diversity_param(q: &HashMap<String, String>) -> Result<Option<Diversity>> {
    let Some(v) = q.get("diversity").map(|v| v.trim()) else {
        return Ok(None);
    };
    let bad = || {
        Error::bad(
            "diversity",
            format!("`{v}` is not `none`, `category:N`, `line:N` (N 1–100) or `mmr:λ` (λ 0–1)"),
        )
    };
    if v == "none" {
        return Ok(Some(Diversity::None));
    }
    let (kind, arg) = v.split_once(':').ok_or_else(bad)?;
    match kind {
        "category" | "line" => {
            let max: usize = arg.parse().map_err(|_| bad())?;
            if !(1..=100).contains(&max) {
                return Err(bad());
            }
            Ok(Some(Diversity::PerAttribute {
                attribute: kind.to_string(),
                max,
            }))
        }
        "mmr" => {
            let lambda: f32 = arg.parse().map_err(|_| bad())?;
            if !(0.0..=1.0).contains(&lambda) {
                return Err(bad());
            }
            Ok(Some(Diversity::Mmr { lambda }))
        }
        _ => Err(bad()),
    }
}

/// Parses and validates the recommendations query.
pub fn parse_recommendations(q: &HashMap<String, String>) -> Result<RecRequest> {
    reject_unknown(q, REC_PARAMS)?;
    let placement = match q.get("placement").map(|v| v.trim()) {
        None => "home".to_string(),
        Some(p) if PLACEMENTS.contains(&p) => p.to_string(),
        Some(p) => {
            return Err(Error::bad(
                "placement",
                format!("`{p}` is not one of {}", PLACEMENTS.join(", ")),
            ))
        }
    };
    let device = match q.get("device").map(|v| v.trim()) {
        None => None,
        Some(d) if pipelines::event::Device::parse(d).is_some() => Some(d.to_string()),
        Some(d) => {
            return Err(Error::bad(
                "device",
                format!("`{d}` is not one of desktop, mobile, tablet, app, other"),
            ))
        }
    };
    let segment = match q.get("segment").map(|v| v.trim()) {
        None => None,
        Some(s) if features::segment::RULE_SEGMENTS.contains(&s) => Some(s.to_string()),
        Some(s) => {
            return Err(Error::bad(
                "segment",
                format!(
                    "`{s}` is not one of {}",
                    features::segment::RULE_SEGMENTS.join(", ")
                ),
            ))
        }
    };
    let size = match q.get("size").map(|v| v.trim()) {
        None => None,
        Some("") => return Err(Error::bad("size", "is empty")),
        Some(s) if s.len() > 16 => return Err(Error::bad("size", "is longer than 16 characters")),
        Some(s) => Some(s.to_ascii_uppercase()),
    };
    Ok(RecRequest {
        user_id: id_param(q, "user_id")?,
        anonymous_id: id_param(q, "anonymous_id")?,
        session_id: id_param(q, "session_id")?,
        placement,
        n: n_param(q, DEFAULT_N, MAX_N)?,
        market: market_param(q)?,
        size,
        exclude: list_param(q, "exclude", MAX_EXCLUDE)?,
        device,
        context_products: list_param(q, "product_id", MAX_CONTEXT_PRODUCTS)?,
        segment,
        diversity: diversity_param(q)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn field(r: Result<RecRequest>) -> String {
        match r {
            Err(Error::BadInput { field, .. }) => field,
            other => panic!("expected a bad input, got {other:?}"),
        }
    }

    #[test]
    fn defaults_and_lists() {
        let r = parse_recommendations(&q(&[("user_id", "42"), ("exclude", "P1, P2,,")])).unwrap();
        assert_eq!((r.placement.as_str(), r.n), ("home", DEFAULT_N));
        assert_eq!(r.exclude, vec!["P1", "P2"]);
        assert_eq!(r.unit(), Some("42"));
        let r = parse_recommendations(&q(&[("diversity", "mmr:0.5"), ("size", "m")])).unwrap();
        assert_eq!(r.diversity, Some(Diversity::Mmr { lambda: 0.5 }));
        assert_eq!(r.size.as_deref(), Some("M"));
    }

    #[test]
    fn every_bad_parameter_is_named() {
        for (pairs, name) in [
            (vec![("n", "0")], "n"),
            (vec![("n", "101")], "n"),
            (vec![("n", "x")], "n"),
            (vec![("placement", "footer")], "placement"),
            (vec![("market", "XX")], "market"),
            (vec![("device", "watch")], "device"),
            (vec![("segment", "VIP")], "segment"),
            (vec![("user_id", "")], "user_id"),
            (vec![("diversity", "brand:2")], "diversity"),
            (vec![("diversity", "mmr:2")], "diversity"),
            (vec![("colour", "red")], "colour"),
        ] {
            assert_eq!(field(parse_recommendations(&q(&pairs))), name, "{pairs:?}");
        }
        let many = (0..=MAX_EXCLUDE)
            .map(|i| format!("P{i}"))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(
            field(parse_recommendations(&q(&[("exclude", &many)]))),
            "exclude"
        );
    }
}
