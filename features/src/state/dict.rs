//! The name dictionary of shopper blobs (format 3): attribute names (categories, colours, lines, price bands,
//! devices, markets, sizes) written as their position in one list kept in the feature store, so the names a
//! blob repeats cost one byte each (two past the 64th name) instead of a 4-byte hash code (format 2) or the
//! name itself.
//!
//! - **Append-only.** A name keeps its code forever: the list only grows, by compare-and-set on its revision
//!   (like every blob), so consumers starting together agree on it. Each writer appends the catalogue's names
//!   missing from the list before its first write ([`Dict::sync`]); names outside the list are written inline,
//!   so an unknown name never blocks a write.
//! - **Deterministic start.** The first writer stores the catalogue's names in a fixed order (the most
//!   repeated kinds first, for one-byte codes), so two stores built from one catalogue (the live store and a
//!   recomputation) hold the same list.
//! - **Bounded.** At most [`DICT_MAX_NAMES`] names; past that, new names stay inline.
//! - **Readers that fall behind.** A code past the end of a reader's copy (another process appended since) reads
//!   as `#<code>` and is counted in [`Dict::misses`]; the processor then reloads the list and decodes again
//!   (`Processor::decode_user`). The placeholder encodes back to the same code, so a blob never loses a name.
//! - **Its key has no expiry.** Run Redis with `noeviction` or a `volatile-*` policy (shopper blobs expire,
//!   the dictionary does not), as for every key without a TTL here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use pipelines::catalog::Catalog;
use pipelines::event::Device;

use super::compact::{Names, Vocab};
use super::{read_header, revision_of, write_header};
use crate::codec::{Reader, Writer};
use crate::store::{CasWrite, FeatureStore};
use crate::{Error, Result};

/// Names kept in the dictionary; later names are written inline.
pub const DICT_MAX_NAMES: usize = 65_536;
/// Format of the dictionary blob.
const DICT_FORMAT: u64 = 1;
/// Compare-and-set rounds of [`Dict::sync`] before it gives up (each lost round means another writer appended).
const SYNC_ROUNDS: usize = 20;
/// Market codes of the storefronts (two-letter country codes), the busiest first (they get one-byte codes);
/// others are written inline.
const MARKETS_FIRST: [&str; 6] = ["IT", "GB", "DE", "CH", "FR", "US"];
const MARKETS_MORE: [&str; 8] = ["ES", "NL", "AT", "JP", "BE", "PT", "IE", "SE"];

/// Names of a shopper blob by code, and codes by name; see the module docs.
#[derive(Debug, Default)]
pub struct Dict {
    names: Vec<Box<str>>,
    codes: HashMap<Box<str>, u32>,
    /// The format-2 hash codes, to read blobs written before this dictionary.
    legacy: Vocab,
    misses: AtomicU64,
}

impl Dict {
    /// A dictionary of `names` in this order (duplicates after the first are ignored).
    pub fn new<S: AsRef<str>>(names: impl IntoIterator<Item = S>, legacy: Vocab) -> Dict {
        let mut d = Dict {
            legacy,
            ..Dict::default()
        };
        for n in names {
            d.push(n.as_ref());
        }
        d
    }

    fn push(&mut self, name: &str) {
        if self.names.len() < DICT_MAX_NAMES && !self.codes.contains_key(name) {
            self.codes.insert(name.into(), self.names.len() as u32);
            self.names.push(name.into());
        }
    }

    /// The names a catalogue brings, in the order a new dictionary stores them: what every blob holds (price
    /// bands, devices, the busiest markets) and the affinity kinds (lines, categories, colours) first, so they
    /// get one-byte codes; sizes and the other markets after.
    pub fn catalogue_names(catalog: &Catalog) -> Vec<String> {
        let mut names: Vec<String> = ["entry", "core", "premium", "luxury"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        names.extend(Device::ALL.iter().map(|d| d.as_str().to_string()));
        names.extend(MARKETS_FIRST.iter().map(|m| m.to_string()));
        names.extend(catalog.lines().iter().map(|l| l.id.clone()));
        names.extend(catalog.categories().iter().map(|c| c.id.clone()));
        names.extend(catalog.colours().iter().map(|c| c.code.clone()));
        names.extend(MARKETS_MORE.iter().map(|m| m.to_string()));
        let mut sizes: Vec<String> = catalog
            .products()
            .iter()
            .flat_map(|p| p.variants.iter().map(|v| v.size.clone()))
            .collect();
        sizes.sort();
        sizes.dedup();
        names.extend(sizes);
        names
    }

    /// The dictionary a new store gets for `catalog` (what [`Dict::sync`] writes to an empty store).
    pub fn for_catalog(catalog: &Catalog) -> Dict {
        Dict::new(Dict::catalogue_names(catalog), Vocab::from_catalog(catalog))
    }

    /// Loads the dictionary under `key`, appending the `wanted` names it lacks (compare-and-set, retried when
    /// another writer appended first). With `wanted` empty it only reads.
    pub async fn sync(
        store: &dyn FeatureStore,
        key: &str,
        wanted: &[String],
        legacy: Vocab,
    ) -> Result<Dict> {
        for _ in 0..SYNC_ROUNDS {
            let blob = store.get(&[key.to_string()]).await?.pop().flatten();
            let names = match &blob {
                Some(b) => decode_names(b)?,
                None => Vec::new(),
            };
            let mut dict = Dict::new(&names, legacy.clone());
            let before = dict.len();
            for n in wanted {
                dict.push(n);
            }
            if dict.len() == before {
                return Ok(dict);
            }
            let rev = revision_of(blob.as_deref());
            let write = CasWrite {
                key: key.to_string(),
                expected_rev: rev,
                blob: dict.encode(rev + 1),
                ttl: None,
                side: None,
            };
            if store.put_cas(vec![write]).await?.first() == Some(&true) {
                return Ok(dict);
            }
        }
        Err(Error::Unavailable(format!(
            "feature name dictionary `{key}`: still conflicting after {SYNC_ROUNDS} compare-and-set rounds"
        )))
    }

    /// Number of names with a code.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when no name has a code.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Codes read that this copy does not know (another process appended them since it was loaded).
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    /// The format-2 hash codes (for blobs written before the dictionary).
    pub(crate) fn legacy(&self) -> &Vocab {
        &self.legacy
    }

    fn encode(&self, rev: u64) -> Vec<u8> {
        let mut w = Writer::default();
        write_header(&mut w, rev, DICT_FORMAT);
        w.usize(self.names.len());
        for n in &self.names {
            w.str(n);
        }
        w.buf
    }

    fn code(&self, name: &str) -> Option<u32> {
        self.codes.get(name).copied().or_else(|| {
            let c = name.strip_prefix('#')?;
            // Only the canonical spelling of a placeholder, so any other name round-trips inline.
            let code: u32 = c.parse().ok()?;
            (c == code.to_string() && code as usize >= self.names.len()).then_some(code)
        })
    }
}

impl Names for Dict {
    fn code_for(&self, name: &str) -> Option<u32> {
        self.code(name)
    }

    fn name_of(&self, code: u64) -> String {
        match self.names.get(code as usize) {
            Some(n) => n.to_string(),
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                format!("#{code}")
            }
        }
    }
}

fn decode_names(blob: &[u8]) -> Result<Vec<String>> {
    let mut r = Reader::new(blob);
    read_header(&mut r, &[DICT_FORMAT])?;
    let n = r.usize()?;
    if n > DICT_MAX_NAMES {
        return Err(r.corrupt("dictionary size"));
    }
    (0..n).map(|_| r.string()).collect()
}

/// A processor's copy of the dictionary: loaded (and the catalogue's names appended) before the first use,
/// reloaded when a blob names a code the copy lacks.
#[derive(Debug, Default)]
pub(crate) struct DictCell {
    current: std::sync::RwLock<Option<Arc<Dict>>>,
    /// When an unknown code last forced a reload.
    last_reload: std::sync::Mutex<Option<std::time::Instant>>,
    gate: tokio::sync::Mutex<()>,
}

/// Shortest time between two reloads forced by unknown codes (a code that stays unknown costs one read a second).
const RELOAD_MIN: std::time::Duration = std::time::Duration::from_secs(1);

impl DictCell {
    fn loaded(&self) -> Option<Arc<Dict>> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The dictionary, loaded on first use.
    pub(crate) async fn get(
        &self,
        store: &dyn FeatureStore,
        key: &str,
        catalog: &Catalog,
    ) -> Result<Arc<Dict>> {
        if let Some(d) = self.loaded() {
            return Ok(d);
        }
        let _gate = self.gate.lock().await;
        if let Some(d) = self.loaded() {
            return Ok(d);
        }
        self.load(store, key, catalog).await
    }

    /// Loads again, unless an unknown code forced a reload less than [`RELOAD_MIN`] ago; returns the copy in
    /// use afterwards.
    pub(crate) async fn reload(
        &self,
        store: &dyn FeatureStore,
        key: &str,
        catalog: &Catalog,
    ) -> Result<Arc<Dict>> {
        let _gate = self.gate.lock().await;
        let now = std::time::Instant::now();
        {
            let mut last = self.last_reload.lock().unwrap_or_else(|p| p.into_inner());
            if let (Some(at), Some(d)) = (*last, self.loaded()) {
                if now.duration_since(at) < RELOAD_MIN {
                    return Ok(d);
                }
            }
            *last = Some(now);
        }
        self.load(store, key, catalog).await
    }

    async fn load(
        &self,
        store: &dyn FeatureStore,
        key: &str,
        catalog: &Catalog,
    ) -> Result<Arc<Dict>> {
        let wanted = Dict::catalogue_names(catalog);
        let d = Arc::new(Dict::sync(store, key, &wanted, Vocab::from_catalog(catalog)).await?);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(d.clone());
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    fn dict(names: &[&str]) -> Dict {
        Dict::new(names.iter().copied(), Vocab::default())
    }

    fn round_trip(d: &Dict, name: Option<&str>) -> (usize, Option<String>) {
        let mut w = Writer::default();
        d.write_opt(&mut w, name);
        (w.buf.len(), d.read_opt(&mut Reader::new(&w.buf)).unwrap())
    }

    #[test]
    fn the_first_64_names_cost_one_byte_and_others_are_inline() {
        let names: Vec<String> = (0..100).map(|i| format!("n{i}")).collect();
        let d = Dict::new(&names, Vocab::default());
        assert_eq!(round_trip(&d, Some("n0")), (1, Some("n0".into())));
        assert_eq!(round_trip(&d, Some("n63")), (1, Some("n63".into())));
        assert_eq!(round_trip(&d, Some("n64")), (2, Some("n64".into())));
        assert_eq!(round_trip(&d, Some("other")), (6, Some("other".into())));
        assert_eq!(round_trip(&d, Some("")), (1, Some(String::new())));
        assert_eq!(round_trip(&d, None), (1, None));
    }

    #[test]
    fn a_code_past_the_copy_reads_as_a_placeholder_that_writes_back_the_same_code() {
        let newer = dict(&["dresses", "knitwear-w", "bags"]);
        let older = dict(&["dresses"]);
        let mut w = Writer::default();
        newer.write(&mut w, "bags");
        let seen = older.read(&mut Reader::new(&w.buf)).unwrap();
        assert_eq!(seen, "#2");
        assert_eq!(older.misses(), 1);
        let mut again = Writer::default();
        older.write(&mut again, &seen);
        assert_eq!(again.buf, w.buf);
        assert_eq!(newer.read(&mut Reader::new(&again.buf)).unwrap(), "bags");
        // A name that merely looks like a placeholder, or names a known code, stays inline.
        for name in ["#0", "#02", "#x"] {
            assert_eq!(
                round_trip(&older, Some(name)),
                (1 + name.len(), Some(name.into()))
            );
        }
    }

    #[tokio::test]
    async fn sync_appends_only_missing_names_and_never_moves_a_code() {
        let store = MemoryStore::new(100);
        let key = "lusso:dict:{dict}";
        let first = Dict::sync(&store, key, &["a".into(), "b".into()], Vocab::default())
            .await
            .unwrap();
        assert_eq!(first.len(), 2);
        // Another catalogue: one name dropped, two added; the old codes stay.
        let second = Dict::sync(&store, key, &["c".into(), "b".into()], Vocab::default())
            .await
            .unwrap();
        assert_eq!(second.names, ["a", "b", "c"].map(Box::from));
        // A reader (nothing wanted) sees the same list.
        let reader = Dict::sync(&store, key, &[], Vocab::default())
            .await
            .unwrap();
        assert_eq!(reader.names, second.names);
        // A stale copy's write loses the race and the next round sees the list.
        let stale = dict(&["a"]);
        let ok = store
            .put_cas(vec![CasWrite {
                key: key.into(),
                expected_rev: 1,
                blob: stale.encode(2),
                ttl: None,
                side: None,
            }])
            .await
            .unwrap();
        assert_eq!(ok, [false]);
    }

    #[test]
    fn a_new_store_gets_the_catalogue_names_affinity_kinds_first() {
        let catalog = Catalog::generate(pipelines::config::DEFAULT_CATALOG_SEED);
        let d = Dict::for_catalog(&catalog);
        assert_eq!(d.code("entry"), Some(0));
        let cat = &catalog.categories()[0].id;
        assert!(d.code(cat).unwrap() < 64, "categories have one-byte codes");
        let colour = &catalog.colours()[0].code;
        assert!(d.code(colour).unwrap() < 64, "colours have one-byte codes");
        assert!(d.len() < DICT_MAX_NAMES);
    }
}
