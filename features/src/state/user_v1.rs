//! Reads shopper blobs of format 1 (releases before the compact encoding), so state already in Redis stays
//! readable after an upgrade; the next write of a shopper stores format 3. The tests here cover every format.

use super::user::UserState;
use super::{Decayed, Fences};
use crate::codec::Reader;
use crate::windows::Counters;
use crate::Result;

/// Reads the rest of a format-1 blob whose header (revision `rev`) has been read.
pub(crate) fn decode(r: &mut Reader<'_>, rev: u64) -> Result<UserState> {
    let fences = Fences::decode(r)?;
    let first_seen_ms = r.i64()?;
    let last_seen_ms = first_seen_ms + r.i64()?;
    let lp = r.i64()?;
    let last_purchase_ms = (lp >= 0).then(|| last_seen_ms - lp);
    let device = r.opt_string()?;
    let market = r.opt_string()?;
    let env_ms = last_seen_ms - r.i64()?;
    let counts = Counters::decode(r)?;
    let mut totals = [0u64; 4];
    for t in &mut totals {
        *t = r.u64()?;
    }
    let orders = r.u64()? as u32;
    let monetary_cents = r.i64()?;
    let viewed = decode_recent(r)?;
    let purchased = decode_recent(r)?;
    let affinity = [
        Decayed::decode(r)?,
        Decayed::decode(r)?,
        Decayed::decode(r)?,
        Decayed::decode(r)?,
    ];
    let n = r.usize()?;
    let mut sizes = Vec::with_capacity(n);
    for _ in 0..n {
        sizes.push((r.string()?, r.string()?, r.u64()? as u32));
    }
    let n = r.usize()?;
    let mut recent_ids = Vec::with_capacity(n);
    for _ in 0..n {
        // Format 1 kept 64-bit fingerprints and the message position; format 2 compares 48-bit fingerprints.
        let fp = r.fixed_u64()? & 0xffff_ffff_ffff;
        let _position = r.u64()?;
        // Format 2 keeps whole seconds.
        recent_ids.push((fp, (last_seen_ms - r.i64()?).div_euclid(1000) * 1000));
    }
    Ok(UserState {
        rev,
        fences,
        first_seen_ms,
        last_seen_ms,
        last_purchase_ms,
        device,
        market,
        env_ms,
        counts,
        totals,
        orders,
        monetary_cents,
        viewed,
        purchased,
        affinity,
        sizes,
        recent_ids,
    })
}

/// A format-1 last-N list: id strings with absolute-then-delta times.
fn decode_recent(r: &mut Reader<'_>) -> Result<Vec<(String, i64)>> {
    let n = r.usize()?;
    let mut v = Vec::with_capacity(n);
    let mut prev = 0i64;
    for _ in 0..n {
        let id = r.string()?;
        prev += r.i64()?;
        v.push((id, prev));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use chrono::{DateTime, Duration, Utc};
    use pipelines::catalog::Catalog;
    use pipelines::sim::{SimConfig, Simulator};

    use super::super::dict::Dict;
    use super::super::user::{fingerprint, UserState};
    use super::super::{write_header, FORMAT_V1};
    use crate::codec::Writer;
    use crate::processor::state_id;
    use crate::{Context, FeaturesConfig};

    /// The format-1 encoder of earlier releases, kept here to make fixtures.
    fn encode_v1(s: &UserState, rev: u64) -> Vec<u8> {
        let mut w = Writer::default();
        write_header(&mut w, rev, FORMAT_V1);
        s.fences.encode(&mut w);
        w.i64(s.first_seen_ms);
        w.i64(s.last_seen_ms - s.first_seen_ms);
        w.i64(s.last_purchase_ms.map_or(-1, |t| s.last_seen_ms - t));
        w.opt_str(s.device.as_deref());
        w.opt_str(s.market.as_deref());
        w.i64(s.last_seen_ms - s.env_ms);
        s.counts.encode(&mut w);
        s.totals.iter().for_each(|t| w.u64(*t));
        w.u64(u64::from(s.orders));
        w.i64(s.monetary_cents);
        for list in [&s.viewed, &s.purchased] {
            w.usize(list.len());
            let mut prev = 0i64;
            for (id, ts) in list {
                w.str(id);
                w.i64(ts - prev);
                prev = *ts;
            }
        }
        s.affinity.iter().for_each(|a| a.encode(&mut w));
        w.usize(s.sizes.len());
        for (c, z, n) in &s.sizes {
            w.str(c);
            w.str(z);
            w.u64(u64::from(*n));
        }
        w.usize(s.recent_ids.len());
        for (i, (f, t)) in s.recent_ids.iter().enumerate() {
            // Format 1 stored the full 64-bit fingerprint: set high bits that format 2 must drop.
            w.fixed_u64(*f | (0xabcd << 48));
            w.u64(((i as u64) << 48) | 12_345);
            w.i64(s.last_seen_ms - t);
        }
        w.buf
    }

    /// Shopper states after 20 days of simulated traffic, applied as the processor does.
    fn shoppers() -> (Vec<UserState>, Context) {
        let catalog = Arc::new(Catalog::generate(pipelines::config::DEFAULT_CATALOG_SEED));
        let ctx = Context::new(catalog.clone(), FeaturesConfig::default());
        // A fixed instant: the simulator's sessions follow the hour of day, so the sizes below would move with
        // the clock.
        let now = DateTime::parse_from_rfc3339("2026-06-01T12:00:00Z")
            .expect("instant")
            .with_timezone(&Utc);
        let mut sim = Simulator::new(SimConfig::new(3, 300, now - Duration::days(20)), catalog);
        let mut states: HashMap<String, UserState> = HashMap::new();
        let mut offset = 0;
        loop {
            let batch = sim.next_events_until(now, 10_000);
            if batch.is_empty() {
                break;
            }
            for v in batch {
                let ev = pipelines::validate::validate_event(&v, now).expect("valid");
                let s = states.entry(state_id(&ev)).or_default();
                let fp = fingerprint(&ev.event_id);
                if !s.is_duplicate(fp) {
                    s.apply(&ev, 0, offset, &ctx);
                    s.remember(fp, ev.ts.timestamp_millis(), &ctx);
                }
                offset += 1;
            }
        }
        let mut v: Vec<UserState> = states.into_values().collect();
        v.sort_by_key(|s| s.first_seen_ms);
        (v, ctx)
    }

    #[test]
    fn every_format_decodes_to_the_state_and_format_3_is_the_smallest() {
        let (states, ctx) = shoppers();
        let dict = Dict::for_catalog(&ctx.catalog);
        let legacy = dict.legacy().clone();
        assert!(states.len() > 200, "{} shoppers", states.len());
        let (mut v1_bytes, mut v2_bytes, mut v3_bytes) = (0, 0, 0);
        for (i, s) in states.iter().enumerate() {
            let rev = i as u64 + 1;
            let mut expected = s.clone();
            expected.rev = rev;
            // Formats 1 and 2 carry the recent ids; format 3 keeps them under their own key.
            let v1 = encode_v1(s, rev);
            assert_eq!(UserState::decode(&v1, &dict).unwrap(), expected);
            let v2 = super::super::user_v2::encode(s, rev, &legacy);
            assert_eq!(UserState::decode(&v2, &dict).unwrap(), expected);
            let v3 = s.encode(rev, &dict);
            let mut from_v3 = UserState::decode(&v3, &dict).unwrap();
            assert!(from_v3.recent_ids.is_empty());
            if let Some(ids) = s.encode_recent_ids() {
                from_v3.recent_ids = UserState::decode_recent_ids(&ids).unwrap();
            }
            assert_eq!(from_v3, expected);
            let parts: usize = s.encoded_parts(&dict).iter().map(|p| p.1).sum();
            assert_eq!(parts, v3.len(), "the parts add up to the blob");
            v1_bytes += v1.len();
            v2_bytes += v2.len();
            v3_bytes += v3.len();
        }
        // Measured on this data (fixed instant): format 2 is 0.59 of format 1 and format 3 about 0.5 of format 2
        // (BENCHMARKS.md has the part-by-part sizes).
        assert!(
            v2_bytes * 10 < v1_bytes * 6,
            "format 2 {v2_bytes} B vs format 1 {v1_bytes} B"
        );
        assert!(
            v3_bytes * 10 < v2_bytes * 7,
            "format 3 {v3_bytes} B vs format 2 {v2_bytes} B"
        );
    }

    #[test]
    fn an_older_blob_is_upgraded_to_seconds_and_grid_scores() {
        let (states, ctx) = shoppers();
        let dict = Dict::for_catalog(&ctx.catalog);
        let s = states
            .iter()
            .find(|s| s.viewed.len() > 2)
            .expect("a shopper with views");
        // State as an older release kept it: millisecond times and scores off the grid.
        let mut old = s.clone();
        old.viewed.iter_mut().for_each(|(_, t)| *t += 999);
        old.affinity[0]
            .scores
            .iter_mut()
            .for_each(|(_, x)| *x *= 1.000_000_1);
        let read = UserState::decode(&encode_v1(&old, 7), &dict).unwrap();
        let mut expected = s.clone();
        expected.rev = 7;
        assert_eq!(read.viewed, expected.viewed);
        for ((n, x), (m, y)) in read.affinity[0].scores.iter().zip(&s.affinity[0].scores) {
            assert_eq!(n, m);
            assert_eq!(*x, super::super::on_score_grid(*x), "on the grid");
            assert!((x - y).abs() <= 4e-6 * y.abs(), "{x} vs {y}");
        }
        // And what format 3 stores of it reads back unchanged.
        let again = UserState::decode(&read.encode(7, &dict), &dict).unwrap();
        assert_eq!(again.viewed, read.viewed);
        assert_eq!(again.affinity, read.affinity);
    }

    #[test]
    fn a_truncated_blob_is_an_error_not_a_panic() {
        let (states, ctx) = shoppers();
        let dict = Dict::for_catalog(&ctx.catalog);
        let blob = states[0].encode(1, &dict);
        for n in 0..blob.len() {
            assert!(UserState::decode(&blob[..n], &dict).is_err(), "{n} bytes");
        }
        let ids = states[0].encode_recent_ids().expect("ids");
        for n in 0..ids.len() {
            assert!(
                UserState::decode_recent_ids(&ids[..n]).is_err(),
                "{n} bytes"
            );
        }
    }
}
