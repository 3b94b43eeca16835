//! Reads shopper blobs of format 2 (attribute names as 24-bit hash codes, recent event ids inside the blob), so
//! state already in Redis stays readable after an upgrade; the next write of a shopper stores format 3.

use super::compact::{read_recent, Vocab};
use super::user::UserState;
use super::{Decayed, Fences};
use crate::codec::Reader;
use crate::windows::Counters;
use crate::Result;

/// Reads the rest of a format-2 blob whose header (revision `rev`) has been read.
pub(crate) fn decode(r: &mut Reader<'_>, rev: u64, vocab: &Vocab) -> Result<UserState> {
    use super::compact::Names as _;
    let fences = Fences::decode(r)?;
    let first_seen_ms = r.i64()?;
    let newest = first_seen_ms + r.i64()?;
    let lp = r.i64()?;
    let last_purchase_ms = (lp >= 0).then(|| newest - lp);
    let device = vocab.read_opt(r)?;
    let market = vocab.read_opt(r)?;
    let env_ms = newest - r.i64()?;
    let mut totals = [0u64; 4];
    for t in &mut totals {
        *t = r.u64()?;
    }
    let orders = r.u64()? as u32;
    let monetary_cents = r.i64()?;
    let counts = Counters::decode_at(r, Some(newest))?;
    let viewed = read_recent(r, newest, 1)?;
    let purchased = read_recent(r, newest, 1)?;
    let affinity = [
        Decayed::decode_compact(r, vocab, newest, false)?,
        Decayed::decode_compact(r, vocab, newest, false)?,
        Decayed::decode_compact(r, vocab, newest, false)?,
        Decayed::decode_compact(r, vocab, newest, false)?,
    ];
    let n = r.usize()?;
    let mut sizes = Vec::with_capacity(n);
    for _ in 0..n {
        sizes.push((vocab.read(r)?, vocab.read(r)?, r.u64()? as u32));
    }
    let n = r.usize()?;
    let mut recent_ids = Vec::with_capacity(n);
    let mut prev = newest.div_euclid(1000);
    for _ in 0..n {
        let f = r.fixed_u48()?;
        prev -= r.i64()?;
        recent_ids.push((f, prev * 1000));
    }
    Ok(UserState {
        rev,
        fences,
        first_seen_ms,
        last_seen_ms: newest,
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

/// The format-2 encoder of the previous release, kept to make fixtures.
#[cfg(test)]
pub(crate) fn encode(s: &UserState, rev: u64, vocab: &Vocab) -> Vec<u8> {
    use super::compact::{write_recent, Names as _};
    use super::{write_header, FORMAT_V2};
    let mut w = crate::codec::Writer::default();
    let newest = s.last_seen_ms;
    write_header(&mut w, rev, FORMAT_V2);
    s.fences.encode(&mut w);
    w.i64(s.first_seen_ms);
    w.i64(newest - s.first_seen_ms);
    w.i64(s.last_purchase_ms.map_or(-1, |t| newest - t));
    vocab.write_opt(&mut w, s.device.as_deref());
    vocab.write_opt(&mut w, s.market.as_deref());
    w.i64(newest - s.env_ms);
    s.totals.iter().for_each(|t| w.u64(*t));
    w.u64(u64::from(s.orders));
    w.i64(s.monetary_cents);
    s.counts.encode_at(&mut w, Some(newest));
    write_recent(&mut w, &s.viewed, newest, 1);
    write_recent(&mut w, &s.purchased, newest, 1);
    for a in &s.affinity {
        a.encode_compact(&mut w, vocab, newest, false);
    }
    w.usize(s.sizes.len());
    for (c, z, n) in &s.sizes {
        vocab.write(&mut w, c);
        vocab.write(&mut w, z);
        w.u64(u64::from(*n));
    }
    w.usize(s.recent_ids.len());
    let mut prev = newest.div_euclid(1000);
    for (f, t) in &s.recent_ids {
        let t = t.div_euclid(1000);
        w.fixed_u48(*f);
        w.i64(prev - t);
        prev = t;
    }
    w.buf
}
