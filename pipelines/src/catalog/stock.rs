//! Units on hand of one variant per location, in a compact form: a catalogue of 50,000 products has about
//! 300,000 variants, and a map per variant with its own copy of every location id cost ~550 bytes each
//! (~165 MB, most of a serving process). Here a variant holds its units in location order (4 bytes per
//! location) and points at a sorted list of location ids that the whole catalogue shares (every variant is
//! stocked in the same locations, so one list): 32 bytes inline plus 16 on the heap for 4 locations, where a
//! vector of `(Arc<str>, u32)` pairs took 24 + 96. JSON stays a map `{"location id": units}`.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Units per location id, sorted by location id, one entry per location.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stock {
    /// Sorted, no repeats; shared with the catalogue's other variants after [`Stock::share_ids`].
    locations: Arc<[Arc<str>]>,
    /// `units[i]` at `locations[i]`.
    units: Box<[u32]>,
}

impl Stock {
    /// From location ids, sorted and without repeats, and the units at each.
    pub(crate) fn new(locations: Arc<[Arc<str>]>, units: Box<[u32]>) -> Stock {
        debug_assert!(locations.windows(2).all(|w| w[0] < w[1]));
        debug_assert_eq!(locations.len(), units.len());
        Stock { locations, units }
    }

    /// Units at `location` (`None` when the location is not listed).
    pub fn get(&self, location: &str) -> Option<u32> {
        self.locations
            .binary_search_by(|l| (**l).cmp(location))
            .ok()
            .map(|i| self.units[i])
    }

    /// Location ids, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.locations.iter().map(|l| &**l)
    }

    /// Units per location, in location order.
    pub fn values(&self) -> impl Iterator<Item = u32> + '_ {
        self.units.iter().copied()
    }

    /// `(location id, units)` in location order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &u32)> {
        self.keys().zip(self.units.iter())
    }

    pub fn len(&self) -> usize {
        self.units.len()
    }

    pub fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    /// Points the location list at an equal one of `lists` (adding it when new), so that the catalogue
    /// stores each distinct list once.
    pub(crate) fn share_ids(&mut self, lists: &mut Vec<Arc<[Arc<str>]>>) {
        match lists.iter().find(|l| l[..] == self.locations[..]) {
            Some(l) => self.locations = l.clone(),
            None => lists.push(self.locations.clone()),
        }
    }
}

impl<S: AsRef<str>> FromIterator<(S, u32)> for Stock {
    /// Builds from `(location, units)` pairs; a repeated location keeps its last units.
    fn from_iter<I: IntoIterator<Item = (S, u32)>>(iter: I) -> Stock {
        let map: BTreeMap<String, u32> = iter
            .into_iter()
            .map(|(l, q)| (l.as_ref().to_string(), q))
            .collect();
        Stock {
            locations: map.keys().map(|l| Arc::from(l.as_str())).collect(),
            units: map.into_values().collect(),
        }
    }
}

impl<'a> IntoIterator for &'a Stock {
    type Item = (&'a str, &'a u32);
    type IntoIter = std::iter::Zip<
        std::iter::Map<std::slice::Iter<'a, Arc<str>>, fn(&'a Arc<str>) -> &'a str>,
        std::slice::Iter<'a, u32>,
    >;

    fn into_iter(self) -> Self::IntoIter {
        fn id(l: &Arc<str>) -> &str {
            l
        }
        self.locations
            .iter()
            .map(id as fn(&'a Arc<str>) -> &'a str)
            .zip(self.units.iter())
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
    fn equal_location_lists_are_one_allocation() {
        let mut lists = Vec::new();
        let mut a: Stock = [("online", 1u32), ("MI01", 2)].into_iter().collect();
        let mut b: Stock = [("MI01", 7u32), ("online", 0)].into_iter().collect();
        let mut c: Stock = [("online", 4u32)].into_iter().collect();
        for s in [&mut a, &mut b, &mut c] {
            s.share_ids(&mut lists);
        }
        assert!(Arc::ptr_eq(&a.locations, &b.locations));
        assert_eq!(lists.len(), 2);
        assert_eq!((b.get("MI01"), b.get("online")), (Some(7), Some(0)));
        assert_eq!(a.iter().collect::<Vec<_>>(), [("MI01", &2), ("online", &1)]);
        assert_eq!((&c).into_iter().collect::<Vec<_>>(), [("online", &4)]);
    }
}
