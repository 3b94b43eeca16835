//! Compact forms of the strings a shopper blob repeats, which were most of its bytes (ARCHITECTURE: memory budget).
//!
//! - **Attribute names**: format 3 writes them through the store's dictionary ([`super::dict`]); format 2 (read
//!   only now) wrote them (category, line, colour, price band, size, device) as a 24-bit code that a
//!   [`Vocab`] built from the catalogue resolves back to the name. The code is a hash of the name, not an index,
//!   so it does not move when the catalogue gains or loses entries. Names shorter than [`MIN_CODED_LEN`] (a code
//!   would not be shorter), names outside the vocabulary, and names whose code collides with another vocabulary
//!   name are written inline. A code that the current catalogue no longer knows decodes as `#xxxxxx` (its hex),
//!   and that placeholder encodes back to the same code, so the blob stays stable.
//! - **Product ids** in the last-N lists are split into a prefix and a trailing decimal number (`P000123` →
//!   `P`, width 6, 123); each blob keeps a small table of prefixes, and each id costs its number's varint (plus a
//!   table index when the blob has more than one prefix). Any id round-trips exactly: one without trailing digits
//!   is a prefix with width 0.

use std::collections::HashMap;

use pipelines::catalog::Catalog;
use pipelines::event::Device;

use crate::codec::{Reader, Writer};
use crate::Result;

/// Shortest name written as a code: a code is a 4-byte varint, an inline name `1 + len` bytes.
pub const MIN_CODED_LEN: usize = 4;

/// Longest run of trailing digits read as a number (10¹⁸ < 2⁶³).
const MAX_DIGITS: usize = 18;

/// The 24-bit code of a name: FNV-1a (32 bits) folded to 24.
pub fn code_of(name: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (h ^ (h >> 24)) & 0x00ff_ffff
}

/// The code of a `#xxxxxx` placeholder (a name whose code the catalogue no longer knows).
fn placeholder_code(name: &str) -> Option<u32> {
    let hex = name.strip_prefix('#')?;
    if hex.len() != 6
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    u32::from_str_radix(hex, 16).ok()
}

/// How a blob format writes attribute names (format 2: [`Vocab`] hash codes; format 3: the stored dictionary,
/// [`super::dict::Dict`]).
pub(crate) trait Names {
    /// The code of a name, if it has one.
    fn code_for(&self, name: &str) -> Option<u32>;
    /// The name of a code (a placeholder for a code this table does not know).
    fn name_of(&self, code: u64) -> String;

    /// Writes an optional name: head varint 0 = none, `code << 1 | 1` = coded, `(len + 1) << 1` = inline bytes.
    fn write_opt(&self, w: &mut Writer, name: Option<&str>) {
        match name {
            None => w.u64(0),
            Some(n) => match self.code_for(n) {
                Some(c) => w.u64((u64::from(c) << 1) | 1),
                None => {
                    w.u64(((n.len() as u64) + 1) << 1);
                    w.buf.extend_from_slice(n.as_bytes());
                }
            },
        }
    }

    /// Reads what [`Names::write_opt`] wrote.
    fn read_opt(&self, r: &mut Reader<'_>) -> Result<Option<String>> {
        let head = r.u64()?;
        if head == 0 {
            return Ok(None);
        }
        if head & 1 == 1 {
            return Ok(Some(self.name_of(head >> 1)));
        }
        let len = usize::try_from((head >> 1) - 1).unwrap_or(usize::MAX);
        r.string_of(len).map(Some)
    }

    fn write(&self, w: &mut Writer, name: &str) {
        self.write_opt(w, Some(name));
    }

    fn read(&self, r: &mut Reader<'_>) -> Result<String> {
        self.read_opt(r)?
            .ok_or_else(|| r.corrupt("name (absent where one is required)"))
    }
}

/// Attribute names by code, and codes by name.
#[derive(Debug, Clone, Default)]
pub struct Vocab {
    names: HashMap<u32, Box<str>>,
    codes: HashMap<Box<str>, u32>,
}

impl Vocab {
    /// A vocabulary of `names` (duplicates ignored). Names sharing a code are all left out, whatever their order,
    /// so each kept code means one name.
    pub fn new<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> Vocab {
        let mut by_code: HashMap<u32, Vec<Box<str>>> = HashMap::new();
        for n in names {
            let n = n.as_ref();
            if n.len() < MIN_CODED_LEN || placeholder_code(n).is_some() {
                continue;
            }
            let e = by_code.entry(code_of(n)).or_default();
            if !e.iter().any(|x| &**x == n) {
                e.push(n.into());
            }
        }
        let mut v = Vocab::default();
        for (code, mut ns) in by_code {
            if ns.len() == 1 {
                let n = ns.pop().expect("one name");
                v.codes.insert(n.clone(), code);
                v.names.insert(code, n);
            }
        }
        v
    }

    /// The catalogue's categories, lines, colours and sizes, the price bands and the device names.
    pub fn from_catalog(catalog: &Catalog) -> Vocab {
        let mut names: Vec<String> = Vec::new();
        names.extend(catalog.categories().iter().map(|c| c.id.clone()));
        names.extend(catalog.lines().iter().map(|l| l.id.clone()));
        names.extend(catalog.colours().iter().map(|c| c.code.clone()));
        for p in catalog.products() {
            names.extend(p.variants.iter().map(|v| v.size.clone()));
        }
        names.extend(
            ["entry", "core", "premium", "luxury"]
                .iter()
                .map(|s| s.to_string()),
        );
        names.extend(Device::ALL.iter().map(|d| d.as_str().to_string()));
        Vocab::new(names)
    }

    /// Number of names that are written as codes.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when no name is coded.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    fn code(&self, name: &str) -> Option<u32> {
        self.codes
            .get(name)
            .copied()
            .or_else(|| placeholder_code(name))
    }
}

impl Names for Vocab {
    fn code_for(&self, name: &str) -> Option<u32> {
        self.code(name)
    }

    fn name_of(&self, code: u64) -> String {
        let code = code as u32;
        match self.names.get(&code) {
            Some(n) => n.to_string(),
            None => format!("#{code:06x}"),
        }
    }
}

/// `id` as (prefix, trailing digits), with at most [`MAX_DIGITS`] digits.
fn split_id(id: &str) -> (&str, &str) {
    let digits = id
        .bytes()
        .rev()
        .take_while(u8::is_ascii_digit)
        .take(MAX_DIGITS)
        .count();
    id.split_at(id.len() - digits)
}

/// Writes a newest-first list of `(product id, time)`; times in units of `unit_ms` (1 in format 2; 1000 in
/// format 3, whose lists hold whole seconds), as differences, the first from `newest_ms`.
pub(crate) fn write_recent(w: &mut Writer, list: &[(String, i64)], newest_ms: i64, unit_ms: i64) {
    let mut table: Vec<(&str, usize)> = Vec::new();
    let mut refs = Vec::with_capacity(list.len());
    for (id, _) in list {
        let (prefix, digits) = split_id(id);
        let key = (prefix, digits.len());
        let i = match table.iter().position(|e| *e == key) {
            Some(i) => i,
            None => {
                table.push(key);
                table.len() - 1
            }
        };
        refs.push((i, digits));
    }
    w.usize(table.len());
    for (prefix, width) in &table {
        w.str(prefix);
        w.usize(*width);
    }
    w.usize(list.len());
    let mut prev = newest_ms.div_euclid(unit_ms);
    for ((i, digits), (_, ts)) in refs.iter().zip(list) {
        if table.len() > 1 {
            w.usize(*i);
        }
        if !digits.is_empty() {
            w.u64(digits.parse::<u64>().expect("at most 18 ASCII digits"));
        }
        let t = ts.div_euclid(unit_ms);
        w.i64(prev - t);
        prev = t;
    }
}

/// Reads a list written by [`write_recent`] with the same `newest_ms` and `unit_ms`.
pub(crate) fn read_recent(
    r: &mut Reader<'_>,
    newest_ms: i64,
    unit_ms: i64,
) -> Result<Vec<(String, i64)>> {
    let n = r.usize()?;
    let mut table = Vec::with_capacity(n);
    for _ in 0..n {
        let prefix = r.string()?;
        let width = r.usize()?;
        if width > MAX_DIGITS {
            return Err(r.corrupt("id width"));
        }
        table.push((prefix, width));
    }
    let n = r.usize()?;
    let mut out = Vec::with_capacity(n);
    let mut prev = newest_ms.div_euclid(unit_ms);
    for _ in 0..n {
        let i = if table.len() > 1 { r.usize()? } else { 0 };
        let (prefix, width) = table.get(i).ok_or_else(|| r.corrupt("id prefix index"))?;
        let id = if *width == 0 {
            prefix.clone()
        } else {
            let num = r.u64()?;
            if num.checked_ilog10().map_or(1, |d| d as usize + 1) > *width {
                return Err(r.corrupt("id number wider than its prefix's width"));
            }
            format!("{prefix}{num:0width$}", width = *width)
        };
        prev -= r.i64()?;
        out.push((id, prev * unit_ms));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vocab() -> Vocab {
        Vocab::from_catalog(&Catalog::generate(pipelines::config::DEFAULT_CATALOG_SEED))
    }

    #[test]
    fn catalogue_names_are_coded_and_short_or_unknown_ones_inline() {
        let v = vocab();
        assert!(v.len() > 30, "{} coded names", v.len());
        for name in ["dresses", "premium", "mobile"] {
            let mut w = Writer::default();
            v.write(&mut w, name);
            assert_eq!(w.buf.len(), 4, "{name} is coded");
            assert_eq!(v.read(&mut Reader::new(&w.buf)).unwrap(), name);
        }
        for name in ["M", "42", "NER", "not-in-the-catalogue", ""] {
            let mut w = Writer::default();
            v.write(&mut w, name);
            assert_eq!(w.buf.len(), 1 + name.len(), "{name} is inline");
            assert_eq!(v.read(&mut Reader::new(&w.buf)).unwrap(), name);
        }
        let mut w = Writer::default();
        v.write_opt(&mut w, None);
        assert_eq!(v.read_opt(&mut Reader::new(&w.buf)).unwrap(), None);
    }

    #[test]
    fn a_code_the_catalogue_forgot_reads_as_a_placeholder_that_encodes_back_to_it() {
        let old = Vocab::new(["dresses", "knitwear-w"]);
        let new = Vocab::new(["knitwear-w"]);
        let mut w = Writer::default();
        old.write(&mut w, "dresses");
        let seen = new.read(&mut Reader::new(&w.buf)).unwrap();
        assert_eq!(seen, format!("#{:06x}", code_of("dresses")));
        let mut again = Writer::default();
        new.write(&mut again, &seen);
        assert_eq!(again.buf, w.buf);
        assert_eq!(old.read(&mut Reader::new(&again.buf)).unwrap(), "dresses");
    }

    #[test]
    fn names_sharing_a_code_are_all_written_inline() {
        // Find two names with one code by brute force over a small space, then check neither is coded.
        let mut seen: HashMap<u32, String> = HashMap::new();
        let (a, b) = (0u32..)
            .map(|i| format!("name{i}"))
            .find_map(|n| {
                let c = code_of(&n);
                seen.get(&c).map(|m| (m.clone(), n.clone())).or_else(|| {
                    seen.insert(c, n);
                    None
                })
            })
            .expect("a collision exists");
        let v = Vocab::new([a.as_str(), b.as_str(), "dresses"]);
        assert_eq!(v.len(), 1);
        let mut w = Writer::default();
        v.write(&mut w, &a);
        assert_eq!(w.buf.len(), 1 + a.len());
    }

    #[test]
    fn product_ids_split_into_prefix_and_number() {
        assert_eq!(split_id("P000123"), ("P", "000123"));
        assert_eq!(split_id("007"), ("", "007"));
        assert_eq!(split_id("SKU-A"), ("SKU-A", ""));
        assert_eq!(
            split_id("X12345678901234567890"),
            ("X12", "345678901234567890")
        );
    }

    proptest! {
        #[test]
        fn recent_lists_round_trip(
            ids in proptest::collection::vec("[A-Z]{0,3}[0-9]{0,22}|[a-z\\-]{1,8}", 0..60),
            gaps in proptest::collection::vec(0i64..10_000_000, 60),
            newest in 1_600_000_000_000i64..1_900_000_000_000,
        ) {
            let mut ts = newest;
            let list: Vec<(String, i64)> = ids
                .into_iter()
                .zip(&gaps)
                .map(|(id, g)| { ts -= g; (id, ts) })
                .collect();
            let mut w = Writer::default();
            write_recent(&mut w, &list, newest, 1);
            let mut r = Reader::new(&w.buf);
            prop_assert_eq!(read_recent(&mut r, newest, 1).unwrap(), list.clone());
            prop_assert!(r.done());
            // Whole seconds (format 3): what is read is the time truncated to its second.
            let mut w = Writer::default();
            write_recent(&mut w, &list, newest, 1000);
            let mut r = Reader::new(&w.buf);
            let secs: Vec<(String, i64)> =
                list.iter().map(|(id, t)| (id.clone(), t.div_euclid(1000) * 1000)).collect();
            prop_assert_eq!(read_recent(&mut r, newest, 1000).unwrap(), secs);
            prop_assert!(r.done());
        }

        #[test]
        fn any_name_round_trips(name in ".{0,20}") {
            let v = vocab();
            let mut w = Writer::default();
            v.write(&mut w, &name);
            prop_assert_eq!(v.read(&mut Reader::new(&w.buf)).unwrap(), name);
        }
    }
}
