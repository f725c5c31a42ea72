//! Slots: one per token file in the token directory, plus one free slot (SPEC T1).
//!
//! A slot ID is derived from its token's serial (31 bits of SHA-256 of the serial,
//! so it fits the `atoi` that test suites use), which keeps it
//! stable across processes and restarts. The free slot, where `C_InitToken` creates
//! a new token, has the fixed ID [`FREE_SLOT_ID`]. Token files are re-read on every
//! listing, so a token created by another process shows up without a restart.

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::error::{ConfigError, Error, Result};
use crate::store::Store;
use crate::token::Token;

/// Slot ID used for the free slot when no serial has been reserved for it.
/// (The PKCS#11 module reserves the next token's serial in advance and gives the
/// free slot that serial's ID, so a slot keeps its ID when its token is initialized.)
pub const FREE_SLOT_ID: u64 = 0;

/// File extension of token files.
pub const TOKEN_EXT: &str = "vtoken";

/// One token found in the token directory.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TokenEntry {
    /// Stable slot ID.
    pub slot_id: u64,
    /// Token serial.
    pub serial: String,
    /// Token label.
    pub label: String,
    /// The token file.
    pub path: PathBuf,
}

/// The slot ID of a token with this serial: 31 bits of SHA-256(serial), so it is the
/// same in every process and after restarts, and serials that share a prefix (an
/// issuer's range) still get distinct slots.
pub fn slot_id_for_serial(serial: &str) -> u64 {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(serial.to_ascii_uppercase().as_bytes());
    let id = (u32::from_be_bytes([d[0], d[1], d[2], d[3]]) & 0x7fff_ffff) as u64;
    if id == FREE_SLOT_ID {
        1
    } else {
        id
    }
}

/// Readable tokens, and unreadable files with the reason.
type Scan = (Vec<TokenEntry>, Vec<(PathBuf, Error)>);

/// The token directory of a configuration.
#[derive(Clone, Debug)]
pub struct Registry {
    config: Config,
}

impl Registry {
    /// A registry over `config.token_dir`.
    pub fn new(config: Config) -> Registry {
        Registry { config }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Every readable token, sorted by slot ID. Files that fail to open are logged
    /// and skipped (they are reported by [`Registry::problems`]).
    pub fn tokens(&self) -> Result<Vec<TokenEntry>> {
        Ok(self.scan()?.0)
    }

    /// Token files that could not be opened, with the reason.
    pub fn problems(&self) -> Result<Vec<(PathBuf, Error)>> {
        Ok(self.scan()?.1)
    }

    fn scan(&self) -> Result<Scan> {
        let dir = &self.config.token_dir;
        crate::config::check_token_dir(dir)?;
        let mut ok = Vec::new();
        let mut bad = Vec::new();
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((ok, bad)),
            Err(e) => {
                return Err(Error::Config(ConfigError::Read {
                    path: dir.to_path_buf(),
                    source: e,
                }))
            }
        };
        for ent in rd.flatten() {
            let p = ent.path();
            if p.extension().and_then(|e| e.to_str()) != Some(TOKEN_EXT) {
                continue;
            }
            match Store::open(&p).and_then(|mut s| s.header().cloned()) {
                Ok(h) => ok.push(TokenEntry {
                    slot_id: slot_id_for_serial(&h.serial),
                    serial: h.serial,
                    label: h.label,
                    path: p,
                }),
                Err(e) => {
                    tracing::warn!(path = %p.display(), error = %e, "skipping unreadable token file");
                    bad.push((p, e))
                }
            }
        }
        ok.sort_by(|a, b| a.slot_id.cmp(&b.slot_id).then(a.serial.cmp(&b.serial)));
        Ok((ok, bad))
    }

    /// The token with this label or serial (serial wins; a label must be unique).
    pub fn find(&self, label_or_serial: &str) -> Result<TokenEntry> {
        let all = self.tokens()?;
        if let Some(t) = all
            .iter()
            .find(|t| t.serial.eq_ignore_ascii_case(label_or_serial))
        {
            return Ok(t.clone());
        }
        let by_label: Vec<_> = all.iter().filter(|t| t.label == label_or_serial).collect();
        match by_label.len() {
            1 => Ok(by_label[0].clone()),
            0 => Err(Error::TokenNotPresent(format!(
                "no token with label or serial '{label_or_serial}' in {}",
                self.config.token_dir.display()
            ))),
            _ => Err(Error::ArgumentsBad(format!(
                "several tokens are labelled '{label_or_serial}'; name one by serial"
            ))),
        }
    }

    /// The token in the slot `slot_id`.
    pub fn by_slot(&self, slot_id: u64) -> Result<Option<TokenEntry>> {
        Ok(self.tokens()?.into_iter().find(|t| t.slot_id == slot_id))
    }

    /// Creates a new token (the free slot's `C_InitToken`), with a random serial or
    /// the one given (see [`Token::create_with_serial`]).
    pub fn create(&self, label: &str, so_pin: &[u8], serial: Option<&str>) -> Result<TokenEntry> {
        self.config.ensure_token_dir()?;
        let serial = match serial {
            Some(s) => s.to_ascii_uppercase(),
            None => crate::token::new_serial()?,
        };
        let path = self.path_for(&serial);
        if path.exists() {
            return Err(Error::ArgumentsBad(format!(
                "a token with serial {serial} exists"
            )));
        }
        // Built under a temporary name (not *.vtoken, so no scan sees it half made),
        // then published by an atomic rename.
        let tmp = self.config.token_dir.join(format!(".{serial}.creating"));
        let serial = Token::create_with_serial(&tmp, &serial, label, so_pin, &self.config)?;
        std::fs::rename(&tmp, &path)?;
        Ok(TokenEntry {
            slot_id: slot_id_for_serial(&serial),
            serial,
            label: label.to_string(),
            path,
        })
    }

    /// The serial the free slot's next token gets, reserved in the token directory
    /// (`.free-slot.sqlite`) so every process shows the free slot under the same ID
    /// (SPEC T1): a script lists slots in one process and runs `C_InitToken` on the
    /// free slot's ID in the next. A reserved serial whose token exists, or ever
    /// existed, is retired and a new one reserved, in one transaction, so concurrent
    /// processes agree and a serial is never handed out twice (not even after its
    /// token is deleted: certificates name serials).
    pub fn free_serial(&self) -> Result<String> {
        self.config.ensure_token_dir()?;
        let db = self.config.token_dir.join(".free-slot.sqlite");
        let mut c = rusqlite::Connection::open(&db)?;
        c.busy_timeout(std::time::Duration::from_secs(10))?;
        let stale = |c: &rusqlite::Connection, serial: &str| -> Result<bool> {
            let retired: bool = c.query_row(
                "SELECT EXISTS(SELECT 1 FROM retired WHERE serial = ?1)",
                [serial],
                |r| r.get(0),
            )?;
            let tmp = self.config.token_dir.join(format!(".{serial}.creating"));
            Ok(retired || self.path_for(serial).exists() || tmp.exists())
        };
        // Read first: the common case (the reservation still free) takes no write lock.
        c.execute_batch(
            "CREATE TABLE IF NOT EXISTS free_slot (id INTEGER PRIMARY KEY CHECK (id = 1), serial TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS retired (serial TEXT PRIMARY KEY);",
        )?;
        let current = |c: &rusqlite::Connection| -> Result<Option<String>> {
            use rusqlite::OptionalExtension;
            Ok(
                c.query_row("SELECT serial FROM free_slot WHERE id = 1", [], |r| {
                    r.get(0)
                })
                .optional()?,
            )
        };
        if let Some(serial) = current(&c)? {
            if !stale(&c, &serial)? {
                return Ok(serial);
            }
        }
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let serial = match current(&tx)? {
            Some(serial) if !stale(&tx, &serial)? => serial,
            old => {
                if let Some(old) = old {
                    tx.execute("INSERT OR IGNORE INTO retired (serial) VALUES (?1)", [&old])?;
                }
                let mut next = crate::token::new_serial()?;
                while stale(&tx, &next)? {
                    next = crate::token::new_serial()?;
                }
                tx.execute(
                    "INSERT INTO free_slot (id, serial) VALUES (1, ?1)
                     ON CONFLICT (id) DO UPDATE SET serial = excluded.serial",
                    [&next],
                )?;
                next
            }
        };
        tx.commit()?;
        Ok(serial)
    }

    /// Where the token with `serial` lives.
    pub fn path_for(&self, serial: &str) -> PathBuf {
        self.config.token_dir.join(format!("{serial}.{TOKEN_EXT}"))
    }

    /// Opens a token. Its prompt agent and confirmations are the token's own policy
    /// (see [`crate::prompt::policy`]), not the caller's configuration.
    pub fn open(&self, entry: &TokenEntry) -> Result<std::sync::Arc<Token>> {
        Token::open(&entry.path, &self.config)
    }

    /// Deletes a token file and its SQLite side files.
    pub fn delete(&self, entry: &TokenEntry) -> Result<()> {
        remove_token_file(&entry.path)
    }
}

/// Removes a token file with its `-wal` and `-shm` companions.
pub fn remove_token_file(path: &Path) -> Result<()> {
    std::fs::remove_file(path)?;
    for suffix in ["-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
    Ok(())
}

#[cfg(test)]
mod slot_id_tests {
    use super::*;

    #[test]
    fn slot_ids_differ_for_serials_sharing_a_prefix() {
        let ids: std::collections::BTreeSet<u64> = (0..1000u64)
            .map(|i| slot_id_for_serial(&format!("{i:016X}")))
            .collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids
            .iter()
            .all(|&id| id != FREE_SLOT_ID && id <= 0x7fff_ffff));
        assert_eq!(
            slot_id_for_serial("00000000000000ab"),
            slot_id_for_serial("00000000000000AB")
        );
    }
}
