//! Units on hand of one variant per location, in a compact form: a catalogue of 50,000 products has about
//! 300,000 variants, and a map per variant with its own copy of every location id cost ~550 bytes each
//! (~165 MB, most of a serving process). Here a variant holds a small sorted vector whose location ids are
//! shared by the whole catalogue (one `Arc<str>` per location), about 120 bytes. JSON stays a map
//! `{"location id": units}`.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Units per location id, sorted by location id, one entry per location.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stock(Vec<(Arc<str>, u32)>);

impl Stock {
    /// Units at `location` (`None` when the location is not listed).
    pub fn get(&self, location: &str) -> Option<u32> {
        self.0
            .binary_search_by(|(l, _)| (**l).cmp(location))
            .ok()
            .map(|i| self.0[i].1)
    }

    /// Location ids, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(l, _)| &**l)
    }

    /// Units per location, in location order.
    pub fn values(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().map(|(_, q)| *q)
    }

    /// `(location id, units)` in location order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &u32)> {
        self.0.iter().map(|(l, q)| (&**l, q))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Points every location id at the catalogue's own copy (`shared`, by id), so the ids are stored once.
    pub(crate) fn share_ids(&mut self, shared: &BTreeMap<&str, Arc<str>>) {
        for (l, _) in &mut self.0 {
            if let Some(s) = shared.get(&**l) {
                *l = s.clone();
            }
        }
        self.0.shrink_to_fit();
    }
}

impl<S: AsRef<str>> FromIterator<(S, u32)> for Stock {
    /// Builds from `(location, units)` pairs; a repeated location keeps its last units.
    fn from_iter<I: IntoIterator<Item = (S, u32)>>(iter: I) -> Stock {
        let map: BTreeMap<String, u32> = iter
            .into_iter()
            .map(|(l, q)| (l.as_ref().to_string(), q))
            .collect();
        Stock(map.into_iter().map(|(l, q)| (Arc::from(l), q)).collect())
    }
}

impl<'a> IntoIterator for &'a Stock {
    type Item = (&'a str, &'a u32);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (Arc<str>, u32)>,
        fn(&'a (Arc<str>, u32)) -> (&'a str, &'a u32),
    >;

    fn into_iter(self) -> Self::IntoIter {
        fn pair(e: &(Arc<str>, u32)) -> (&str, &u32) {
            (&*e.0, &e.1)
        }
        self.0.iter().map(pair)
    }
}

impl Serialize for Stock {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Stock {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Stock, D::Error> {
        Ok(BTreeMap::<String, u32>::deserialize(d)?
            .into_iter()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_like_a_sorted_map_and_serialises_as_one() {
        let s: Stock = [("online", 3u32), ("milano", 0), ("online", 5)]
            .into_iter()
            .collect();
        assert_eq!(s.keys().collect::<Vec<_>>(), ["milano", "online"]);
        assert_eq!(s.get("online"), Some(5));
        assert_eq!(s.get("roma"), None);
        assert_eq!(s.values().sum::<u32>(), 5);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, r#"{"milano":0,"online":5}"#);
        assert_eq!(serde_json::from_str::<Stock>(&json).unwrap(), s);
    }

    #[test]
    fn shared_ids_are_one_allocation() {
        let shared_online: Arc<str> = Arc::from("online");
        let shared: BTreeMap<&str, Arc<str>> = [("online", shared_online.clone())].into();
        let mut a: Stock = [("online", 1u32)].into_iter().collect();
        let mut b: Stock = [("online", 2u32)].into_iter().collect();
        a.share_ids(&shared);
        b.share_ids(&shared);
        assert!(Arc::ptr_eq(&a.0[0].0, &shared_online));
        assert!(Arc::ptr_eq(&b.0[0].0, &shared_online));
    }
}
