//! Object records (SPEC T3): one sealed row per token object, under the master key
//! for private objects and under the public-record key otherwise, its associated
//! data binding it to the token serial, the object id and the index columns.

use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::seal::{self, Key32, MasterKeys};
use super::Store;
use crate::attr::Attributes;
use crate::error::{Error, Part, Result};

/// One object row as read from the file, before decryption.
#[derive(Debug)]
pub struct RawRecord {
    pub id: u64,
    pub private: bool,
    pub class: u64,
    pub gen: i64,
    label_tag: Option<Vec<u8>>,
    id_tag: Option<Vec<u8>>,
    blob: Vec<u8>,
}

/// A candidate row of a search: id, generation and privacy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowRef {
    pub id: u64,
    pub gen: i64,
    pub private: bool,
}

/// Associated data of an object record: the token serial, the object id, its privacy,
/// class and index tags. A record copied to another id or token, or whose clear
/// columns were changed, fails to open.
fn obj_ad(
    serial: &str,
    id: u64,
    private: bool,
    class: u64,
    lt: &Option<Vec<u8>>,
    it: &Option<Vec<u8>>,
) -> Vec<u8> {
    let mut ad = Vec::with_capacity(96);
    ad.extend_from_slice(b"vtoken-obj-v1\0");
    ad.extend_from_slice(serial.as_bytes());
    ad.push(0);
    ad.extend_from_slice(&id.to_le_bytes());
    ad.push(private as u8);
    ad.extend_from_slice(&class.to_le_bytes());
    for t in [lt, it] {
        match t {
            Some(t) => {
                ad.push(1);
                ad.extend_from_slice(t);
            }
            None => ad.push(0),
        }
    }
    ad
}

impl Store {
    fn view(&self) -> SealView<'_> {
        SealView {
            serial: &self.header.serial,
            pub_key: &self.pub_key,
            pub_index: &self.pub_index,
        }
    }

    /// Stores a new object; returns its id and generation. Committed on return.
    pub fn insert_object(
        &mut self,
        private: bool,
        attrs: &Attributes,
        mk: Option<&MasterKeys>,
    ) -> Result<RowRef> {
        self.writable()?;
        let private = sealed_private(private, attrs);
        let gen = random_gen()?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let id: u64 = tx.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM objects", [], |r| {
            r.get::<_, i64>(0)
        })? as u64;
        // `self` is borrowed by the transaction, so seal with a helper view.
        let (class, lt, it, blob) = SealView {
            serial: &self.header.serial,
            pub_key: &self.pub_key,
            pub_index: &self.pub_index,
        }
        .seal_object(id, private, attrs, mk)?;
        tx.execute(
            "INSERT INTO objects(id, private, class, label_tag, id_tag, gen, blob) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![id as i64, private, class as i64, lt, it, gen, blob],
        )?;
        tx.commit()?;
        Ok(RowRef { id, gen, private })
    }

    /// Replaces an object's attributes (the object keeps its id).
    pub fn update_object(
        &mut self,
        id: u64,
        private: bool,
        attrs: &Attributes,
        mk: Option<&MasterKeys>,
    ) -> Result<RowRef> {
        self.writable()?;
        let private = sealed_private(private, attrs);
        let gen = random_gen()?;
        let (class, lt, it, blob) = self.view().seal_object(id, private, attrs, mk)?;
        let n = self.conn.execute(
            "UPDATE objects SET private = ?2, class = ?3, label_tag = ?4, id_tag = ?5, gen = ?6, blob = ?7 WHERE id = ?1",
            params![id as i64, private, class as i64, lt, it, gen, blob],
        )?;
        if n == 0 {
            return Err(Error::ObjectHandleInvalid);
        }
        Ok(RowRef { id, gen, private })
    }

    /// Like [`Store::update_object`], but only while the row still has generation
    /// `expected_gen` (a compare-and-swap in one statement, atomic across processes).
    /// `Ok(None)`: another writer changed the object first (re-read and retry).
    pub fn update_object_if_gen(
        &mut self,
        id: u64,
        expected_gen: i64,
        private: bool,
        attrs: &Attributes,
        mk: Option<&MasterKeys>,
    ) -> Result<Option<RowRef>> {
        self.writable()?;
        let private = sealed_private(private, attrs);
        let gen = random_gen()?;
        let (class, lt, it, blob) = self.view().seal_object(id, private, attrs, mk)?;
        let n = self.conn.execute(
            "UPDATE objects SET private = ?2, class = ?3, label_tag = ?4, id_tag = ?5, gen = ?6, blob = ?7 WHERE id = ?1 AND gen = ?8",
            params![id as i64, private, class as i64, lt, it, gen, blob, expected_gen],
        )?;
        if n == 0 {
            return match self.row(id)? {
                None => Err(Error::ObjectHandleInvalid),
                Some(_) => Ok(None),
            };
        }
        Ok(Some(RowRef { id, gen, private }))
    }

    /// Deletes an object; `ObjectHandleInvalid` if it is gone already.
    pub fn delete_object(&mut self, id: u64) -> Result<()> {
        self.writable()?;
        let n = self
            .conn
            .execute("DELETE FROM objects WHERE id = ?1", [id as i64])?;
        if n == 0 {
            return Err(Error::ObjectHandleInvalid);
        }
        Ok(())
    }

    /// The generation of one object, if it exists.
    pub fn row(&self, id: u64) -> Result<Option<RowRef>> {
        Ok(self
            .conn
            .query_row(
                "SELECT gen, private FROM objects WHERE id = ?1",
                [id as i64],
                |r| {
                    Ok(RowRef {
                        id,
                        gen: r.get(0)?,
                        private: r.get(1)?,
                    })
                },
            )
            .optional()?)
    }

    /// Reads and opens one object. `Corrupt` if its record fails the integrity check.
    pub fn load_object(
        &self,
        id: u64,
        mk: Option<&MasterKeys>,
    ) -> Result<Option<(RowRef, Attributes)>> {
        let raw = self
            .conn
            .query_row(
                "SELECT private, class, label_tag, id_tag, gen, blob FROM objects WHERE id = ?1",
                [id as i64],
                |r| {
                    Ok(RawRecord {
                        id,
                        private: r.get(0)?,
                        class: r.get::<_, i64>(1)? as u64,
                        label_tag: r.get(2)?,
                        id_tag: r.get(3)?,
                        gen: r.get(4)?,
                        blob: r.get(5)?,
                    })
                },
            )
            .optional()?;
        match raw {
            None => Ok(None),
            Some(raw) => {
                let rr = RowRef {
                    id: raw.id,
                    gen: raw.gen,
                    private: raw.private,
                };
                Ok(Some((rr, self.open_record(&raw, mk)?)))
            }
        }
    }

    /// Opens a raw record.
    pub fn open_record(&self, raw: &RawRecord, mk: Option<&MasterKeys>) -> Result<Attributes> {
        let key = if raw.private {
            &mk.ok_or(Error::UserNotLoggedIn)?.records
        } else {
            &self.pub_key
        };
        let ad = obj_ad(
            &self.header.serial,
            raw.id,
            raw.private,
            raw.class,
            &raw.label_tag,
            &raw.id_tag,
        );
        let plain = seal::open(key, &ad, &raw.blob)
            .ok_or_else(|| Error::corrupt(Part::Object(raw.id), "fails its integrity check"))?;
        let attrs: Attributes = postcard::from_bytes(&plain)
            .map_err(|e| Error::corrupt(Part::Object(raw.id), e.to_string()))?;
        if attrs.class().unwrap_or(u64::MAX) != raw.class {
            return Err(Error::corrupt(
                Part::Object(raw.id),
                "class column mismatch",
            ));
        }
        Ok(attrs)
    }

    /// Raw records for a list of ids (for batch opening after [`Store::candidates`]).
    pub fn raw_records(&self, ids: &[u64]) -> Result<Vec<RawRecord>> {
        let mut st = self.conn.prepare_cached(
            "SELECT private, class, label_tag, id_tag, gen, blob FROM objects WHERE id = ?1",
        )?;
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            if let Some(r) = st
                .query_row([id as i64], |r| {
                    Ok(RawRecord {
                        id,
                        private: r.get(0)?,
                        class: r.get::<_, i64>(1)? as u64,
                        label_tag: r.get(2)?,
                        id_tag: r.get(3)?,
                        gen: r.get(4)?,
                        blob: r.get(5)?,
                    })
                })
                .optional()?
            {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Number of objects (public, private).
    pub fn counts(&self) -> Result<(u64, u64)> {
        let mut st = self
            .conn
            .prepare_cached("SELECT private, COUNT(*) FROM objects GROUP BY private")?;
        let mut p = (0, 0);
        let rows = st.query_map([], |r| {
            Ok((r.get::<_, bool>(0)?, r.get::<_, i64>(1)? as u64))
        })?;
        for r in rows {
            let (private, n) = r?;
            if private {
                p.1 = n
            } else {
                p.0 = n
            }
        }
        Ok(p)
    }
}

/// Whether a record is sealed under the master key: when the caller says so, and
/// always for what holds key material or vault data (private and secret keys, OTP
/// credentials, vault entries), whatever their `CKA_PRIVATE` says.
pub fn sealed_private(private: bool, attrs: &Attributes) -> bool {
    private || crate::object::is_private(attrs) || crate::vendor::is_vault_object(attrs)
}

impl Store {
    /// Re-seals under the master key every key record an older version sealed under
    /// the public-record key (a key created with `CKA_PRIVATE=false`), with
    /// `CKA_PRIVATE` set true; returns how many. Runs at user login. The old
    /// ciphertext is overwritten (`secure_delete`) and the WAL truncated, so a later
    /// copy of the file keeps no record the public-record key opens.
    pub fn migrate_public_keys(&mut self, mk: &MasterKeys) -> Result<usize> {
        use cryptoki_sys::{CKA_PRIVATE, CKO_PRIVATE_KEY, CKO_SECRET_KEY};
        // The class column is in the clear: finding them costs one index scan.
        let ids: Vec<u64> = {
            let mut st = self
                .conn
                .prepare_cached("SELECT id FROM objects WHERE private = 0 AND class IN (?1, ?2)")?;
            let rows = st.query_map(
                params![CKO_PRIVATE_KEY as i64, CKO_SECRET_KEY as i64],
                |r| r.get::<_, i64>(0),
            )?;
            rows.map(|r| r.map(|v| v as u64))
                .collect::<std::result::Result<_, _>>()?
        };
        if ids.is_empty() {
            return Ok(0);
        }
        self.writable()?;
        self.conn.pragma_update(None, "secure_delete", "ON")?;
        let records = self.raw_records(&ids)?;
        let mut sealed = Vec::with_capacity(records.len());
        for raw in &records {
            let mut attrs = self.open_record(raw, None)?;
            attrs.set_bool(CKA_PRIVATE, true);
            let row = self.view().seal_object(raw.id, true, &attrs, Some(mk))?;
            sealed.push((raw.id, row, random_gen()?));
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        for (id, (class, lt, it, blob), gen) in &sealed {
            // Only rows still public: another process may have migrated them first.
            tx.execute(
                "UPDATE objects SET private = 1, class = ?2, label_tag = ?3, id_tag = ?4, gen = ?5, blob = ?6 WHERE id = ?1 AND private = 0",
                params![*id as i64, *class as i64, lt, it, gen, blob],
            )?;
        }
        tx.commit()?;
        let _ = self.conn.pragma_update(None, "wal_checkpoint", "TRUNCATE");
        Ok(sealed.len())
    }

    /// Writes `attrs` as a record sealed under the public-record key whatever its
    /// class, as versions before keys were always private did. Only for tests of
    /// [`Store::migrate_public_keys`] (it reveals nothing: the public-record key is
    /// in the file); the token never calls it.
    #[doc(hidden)]
    pub fn insert_legacy_public_record(&mut self, attrs: &Attributes) -> Result<RowRef> {
        self.writable()?;
        let gen = random_gen()?;
        let id: u64 =
            self.conn
                .query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM objects", [], |r| {
                    r.get::<_, i64>(0)
                })? as u64;
        let (class, lt, it, blob) = self.view().seal_object(id, false, attrs, None)?;
        self.conn.execute(
            "INSERT INTO objects(id, private, class, label_tag, id_tag, gen, blob) VALUES(?1, 0, ?2, ?3, ?4, ?5, ?6)",
            params![id as i64, class as i64, lt, it, gen, blob],
        )?;
        Ok(RowRef {
            id,
            gen,
            private: false,
        })
    }
}

/// A sealed object row: class, label tag, id tag, blob.
type SealedRow = (u64, Option<Vec<u8>>, Option<Vec<u8>>, Vec<u8>);

struct SealView<'a> {
    serial: &'a str,
    pub_key: &'a Key32,
    pub_index: &'a Key32,
}

impl SealView<'_> {
    fn seal_object(
        &self,
        id: u64,
        private: bool,
        attrs: &Attributes,
        mk: Option<&MasterKeys>,
    ) -> Result<SealedRow> {
        use cryptoki_sys::{CKA_ID, CKA_LABEL};
        let class = attrs.class().unwrap_or(u64::MAX);
        let ik = if private {
            &mk.ok_or(Error::UserNotLoggedIn)?.index
        } else {
            self.pub_index
        };
        let lt = attrs.get(CKA_LABEL).map(|v| ik.tag(v));
        let it = attrs.get(CKA_ID).map(|v| ik.tag(v));
        let key = if private {
            &mk.ok_or(Error::UserNotLoggedIn)?.records
        } else {
            self.pub_key
        };
        let plain = attrs.to_sealable()?;
        let blob = seal::seal(
            key,
            &obj_ad(self.serial, id, private, class, &lt, &it),
            &plain,
        )?;
        Ok((class, lt, it, blob))
    }
}

/// A new row generation, random so that an `(id, gen)` pair names one version of an
/// object ([`Store::update_object_if_gen`] compares it).
fn random_gen() -> Result<i64> {
    let mut b = [0u8; 8];
    crate::mechanism::random(&mut b)?;
    Ok(i64::from_le_bytes(b))
}
