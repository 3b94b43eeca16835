//! Sparse user × item matrices in CSR form and the id ↔ index maps around them.
//!
//! Memory: a CSR entry is a `u32` column and an `f32` value (8 bytes) plus one `usize` per row, so 10M
//! interactions take ≈ 80 MB per orientation (the trainers keep both, user × item and item × user: ≈ 160 MB),
//! built by a counting sort in O(nnz + rows) with no hashing on the hot path.

/// Compressed sparse rows: row `r`'s columns are `indices[indptr[r]..indptr[r+1]]`, strictly increasing, with
/// their values in `data` at the same positions.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Csr {
    pub rows: usize,
    pub cols: usize,
    pub indptr: Vec<usize>,
    pub indices: Vec<u32>,
    pub data: Vec<f32>,
}

impl Csr {
    /// Builds from `(row, col, value)` triples in any order; repeated `(row, col)` pairs are summed, and
    /// entries that sum to exactly 0 are dropped (a purchase fully cancelled by its return, say).
    pub fn from_triples(rows: usize, cols: usize, triples: &[(u32, u32, f32)]) -> Csr {
        // Counting sort by row, then by column within each row (stable, so sums add in input order and the
        // result is the same on every run).
        let mut counts = vec![0usize; rows + 1];
        for &(r, _, _) in triples {
            counts[r as usize + 1] += 1;
        }
        for r in 0..rows {
            counts[r + 1] += counts[r];
        }
        let mut next = counts.clone();
        let mut by_row = vec![(0u32, 0f32); triples.len()];
        for &(r, c, v) in triples {
            by_row[next[r as usize]] = (c, v);
            next[r as usize] += 1;
        }
        let mut indptr = Vec::with_capacity(rows + 1);
        let mut indices = Vec::with_capacity(triples.len());
        let mut data = Vec::with_capacity(triples.len());
        indptr.push(0);
        for r in 0..rows {
            let row = &mut by_row[counts[r]..counts[r + 1]];
            row.sort_by_key(|(c, _)| *c);
            let mut i = 0;
            while i < row.len() {
                let c = row[i].0;
                let mut v = 0f32;
                while i < row.len() && row[i].0 == c {
                    v += row[i].1;
                    i += 1;
                }
                if v != 0.0 {
                    indices.push(c);
                    data.push(v);
                }
            }
            indptr.push(indices.len());
        }
        Csr {
            rows,
            cols,
            indptr,
            indices,
            data,
        }
    }

    /// Stored entries.
    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    /// Row `r`: its columns and values.
    #[inline]
    pub fn row(&self, r: usize) -> (&[u32], &[f32]) {
        let (a, b) = (self.indptr[r], self.indptr[r + 1]);
        (&self.indices[a..b], &self.data[a..b])
    }

    /// Whether `(r, c)` is stored.
    #[inline]
    pub fn contains(&self, r: usize, c: u32) -> bool {
        self.row(r).0.binary_search(&c).is_ok()
    }

    /// The transpose (item × user from user × item), by a counting sort: O(nnz + cols).
    pub fn transpose(&self) -> Csr {
        let mut counts = vec![0usize; self.cols + 1];
        for &c in &self.indices {
            counts[c as usize + 1] += 1;
        }
        for c in 0..self.cols {
            counts[c + 1] += counts[c];
        }
        let mut next = counts.clone();
        let mut indices = vec![0u32; self.nnz()];
        let mut data = vec![0f32; self.nnz()];
        for r in 0..self.rows {
            let (cs, vs) = self.row(r);
            for (&c, &v) in cs.iter().zip(vs) {
                let at = next[c as usize];
                indices[at] = r as u32;
                data[at] = v;
                next[c as usize] += 1;
            }
        }
        Csr {
            rows: self.cols,
            cols: self.rows,
            indptr: counts,
            indices,
            data,
        }
    }

    /// The same pattern with every value mapped by `f` (confidence scaling).
    pub fn map_values(&self, f: impl Fn(f32) -> f32) -> Csr {
        Csr {
            data: self.data.iter().map(|v| f(*v)).collect(),
            ..self.clone()
        }
    }

    /// Approximate heap bytes.
    pub fn memory_bytes(&self) -> usize {
        self.indptr.len() * std::mem::size_of::<usize>() + self.nnz() * 8
    }
}

/// A dense numbering of ids (users or items): index → id and id → index.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IdIndex {
    ids: Vec<String>,
    positions: foldhash::HashMap<String, u32>,
}

impl IdIndex {
    /// Numbers `ids` in the given order (duplicates keep their first position).
    pub fn new(ids: Vec<String>) -> IdIndex {
        let mut index = IdIndex::default();
        for id in ids {
            index.intern(&id);
        }
        index
    }

    /// The position of `id`, adding it at the end if new.
    pub fn intern(&mut self, id: &str) -> u32 {
        if let Some(&p) = self.positions.get(id) {
            return p;
        }
        let p = self.ids.len() as u32;
        self.ids.push(id.to_string());
        self.positions.insert(id.to_string(), p);
        p
    }

    /// The position of `id`, if known.
    pub fn get(&self, id: &str) -> Option<u32> {
        self.positions.get(id).copied()
    }

    /// The id at position `p`.
    pub fn id(&self, p: u32) -> &str {
        &self.ids[p as usize]
    }

    /// All ids in index order.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// The "natural" order of ids used for index order: numerically when every id is an integer (`2 < 10`),
/// else by bytes. Stable and independent of input order, so the same data always gives the same matrix.
pub fn sort_ids(ids: &mut [String]) {
    let numeric: Option<Vec<i64>> = ids.iter().map(|s| s.parse::<i64>().ok()).collect();
    match numeric {
        Some(_) => ids.sort_by_key(|s| s.parse::<i64>().unwrap_or(i64::MAX)),
        None => ids.sort(),
    }
}

/// A test matrix with two taste groups: users below `users / 2` like the items below `items / 2`, the others
/// the rest; each user misses the own-group items with `(u + i) % skip == 0`. Every entry has `value`.
#[cfg(test)]
pub(crate) fn two_groups(users: u32, items: u32, skip: u32, value: f32) -> Csr {
    let mut t = Vec::new();
    for u in 0..users {
        for i in 0..items {
            if (u < users / 2) == (i < items / 2) && (u + i) % skip != 0 {
                t.push((u, i, value));
            }
        }
    }
    Csr::from_triples(users as usize, items as usize, &t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triples_are_summed_sorted_and_zero_sums_dropped() {
        let m = Csr::from_triples(
            3,
            4,
            &[
                (2, 1, 1.0),
                (0, 3, 2.0),
                (0, 1, 1.0),
                (0, 3, 1.0),
                (1, 2, 5.0),
                (1, 2, -5.0),
            ],
        );
        assert_eq!(m.indptr, vec![0, 2, 2, 3]);
        assert_eq!(m.indices, vec![1, 3, 1]);
        assert_eq!(m.data, vec![1.0, 3.0, 1.0]);
        assert!(m.contains(0, 3) && !m.contains(1, 2));
        let t = m.transpose();
        assert_eq!((t.rows, t.cols), (4, 3));
        assert_eq!(t.row(1), (&[0u32, 2][..], &[1.0f32, 1.0][..]));
        assert_eq!(t.transpose(), m);
    }

    #[test]
    fn ids_sort_numerically_when_all_are_integers() {
        let mut v = vec!["10".to_string(), "2".into(), "1".into()];
        sort_ids(&mut v);
        assert_eq!(v, ["1", "2", "10"]);
        let mut v = vec!["b".to_string(), "10".into(), "2".into()];
        sort_ids(&mut v);
        assert_eq!(v, ["10", "2", "b"]);
    }
}
