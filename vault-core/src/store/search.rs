//! Object searches (SPEC T3: `C_FindObjects` by class, `CKA_LABEL`, `CKA_ID`):
//! candidate rows from the indexed columns, with labels and IDs looked up through
//! their keyed blind-index tags; the caller matches the full template.

use super::records::RowRef;
use super::seal::{Key32, MasterKeys};
use super::Store;
use crate::error::{Error, Result};

/// Search filter on the indexed columns.
#[derive(Clone, Debug, Default)]
pub struct IndexFilter {
    pub class: Option<u64>,
    pub label: Option<Vec<u8>>,
    pub id: Option<Vec<u8>>,
    pub include_private: bool,
}

impl Store {
    fn index_key<'a>(&'a self, private: bool, mk_index: Option<&'a Key32>) -> Result<&'a Key32> {
        if private {
            mk_index.ok_or(Error::UserNotLoggedIn)
        } else {
            Ok(&self.pub_index)
        }
    }

    /// Rows matching the indexed parts of a search (the caller still matches the
    /// full template against the opened records).
    pub fn candidates(&self, f: &IndexFilter, mk: Option<&MasterKeys>) -> Result<Vec<RowRef>> {
        let mut out = Vec::new();
        for private in [false, true] {
            if private && !f.include_private {
                continue;
            }
            let k = match self.index_key(private, mk.map(|m| &m.index)) {
                Ok(k) => k,
                Err(_) => continue,
            };
            let (sql, args) = candidates_query(f, private, |v| k.tag(v));
            let mut st = self.conn.prepare_cached(&sql)?;
            let rows = st.query_map(rusqlite::params_from_iter(args), |r| {
                Ok(RowRef {
                    id: r.get::<_, i64>(0)? as u64,
                    gen: r.get(1)?,
                    private,
                })
            })?;
            for r in rows {
                out.push(r?);
            }
        }
        out.sort_by_key(|r| r.id);
        Ok(out)
    }

    /// SQLite's plan for the candidate query of `f` (tests check that label and ID
    /// searches use their index).
    pub fn explain_candidates(&self, f: &IndexFilter) -> Result<String> {
        let (sql, args) = candidates_query(f, false, |v| v.to_vec());
        let mut st = self.conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
        let rows = st.query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3))?;
        Ok(rows.collect::<std::result::Result<Vec<_>, _>>()?.join("; "))
    }
}

/// The candidate query of [`Store::candidates`] for one privacy class; `tag` maps a
/// label or ID to its blind index.
fn candidates_query(
    f: &IndexFilter,
    private: bool,
    tag: impl Fn(&[u8]) -> Vec<u8>,
) -> (String, Vec<rusqlite::types::Value>) {
    let mut sql = String::from("SELECT id, gen FROM objects WHERE private = ?1");
    let mut args: Vec<rusqlite::types::Value> = vec![(private as i64).into()];
    if let Some(c) = f.class {
        args.push((c as i64).into());
        // With a label or ID tag, that tag's index is the selective one: `+class`
        // keeps SQLite from walking every object of the class.
        let unary = if f.label.is_some() || f.id.is_some() {
            "+"
        } else {
            ""
        };
        sql.push_str(&format!(" AND {unary}class = ?{}", args.len()));
    }
    if let Some(l) = &f.label {
        args.push(tag(l).into());
        sql.push_str(&format!(" AND label_tag = ?{}", args.len()));
    }
    if let Some(i) = &f.id {
        args.push(tag(i).into());
        sql.push_str(&format!(" AND id_tag = ?{}", args.len()));
    }
    sql.push_str(" ORDER BY id");
    (sql, args)
}
