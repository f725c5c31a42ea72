//! How the trusted prompt shows the secrets of an entry about to be stored (SPEC V5,
//! ¶0087–0088): the display is there so the user catches data changed between the
//! client and the token.
//!
//! Token policy ([`SecretDisplay`], set with the SO PIN, kept in the token header
//! under `ext["vault_display"]`; a header without it means [`SecretDisplay::Plain`]):
//!
//! - `plain`: each secret as received, in the clear.
//! - `fingerprint`: each secret as a per-write fingerprint ([`fingerprint`]): the
//!   first 64 bits of HMAC-SHA-256 keyed with a fresh 16-byte random of this write,
//!   over the field's name and the value received, shown as four groups of four hex
//!   digits. The client asks for the write's random first
//!   ([`Token::vault_write_nonce`]), computes the fingerprint of what it sends and
//!   shows it beside; the user compares. A value changed in transit gives another
//!   fingerprint; finding a different value with the same one is a 2^64 search per
//!   write (the random is fresh each time, so nothing can be computed in advance),
//!   and the screen never shows the secret.
//!
//! A write with no random asked for (a PKCS#11 `C_CreateObject`, say) draws one
//! itself: the prompt still shows fingerprints, which no client can match.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use hmac::{Hmac, Mac};

use super::*;

/// The header extension key of the display policy.
const DISPLAY_KEY: &str = "vault_display";

/// Length of a write's random, in bytes.
pub const WRITE_NONCE_LEN: usize = 16;

/// How the prompt shows the secrets of an entry about to be stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretDisplay {
    /// In the clear, as received.
    #[default]
    Plain,
    /// As a per-write fingerprint the client shows too.
    Fingerprint,
}

impl SecretDisplay {
    /// `plain` or `fingerprint`.
    pub fn as_str(self) -> &'static str {
        match self {
            SecretDisplay::Plain => "plain",
            SecretDisplay::Fingerprint => "fingerprint",
        }
    }
}

impl std::str::FromStr for SecretDisplay {
    type Err = Error;
    fn from_str(s: &str) -> Result<SecretDisplay> {
        match s {
            "plain" => Ok(SecretDisplay::Plain),
            "fingerprint" => Ok(SecretDisplay::Fingerprint),
            _ => Err(Error::ArgumentsBad(format!(
                "secret display \"{s}\": expected plain or fingerprint"
            ))),
        }
    }
}

/// The fingerprint of secret field `name` = `value` under a write's random `nonce`:
/// HMAC-SHA-256(nonce, "vtoken-vault-fp-v1" 0 name 0 value), first 8 bytes, as
/// `xxxx-xxxx-xxxx-xxxx`. The client and the token compute it alike.
pub fn fingerprint(nonce: &[u8; WRITE_NONCE_LEN], name: &str, value: &str) -> String {
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(nonce).expect("any key length");
    mac.update(b"vtoken-vault-fp-v1\0");
    mac.update(name.as_bytes());
    mac.update(&[0]);
    mac.update(value.as_bytes());
    let tag = mac.finalize().into_bytes();
    tag[..8]
        .chunks(2)
        .map(|c| format!("{:02x}{:02x}", c[0], c[1]))
        .collect::<Vec<_>>()
        .join("-")
}

/// The random of the next write, per token (by serial): taken by that write.
fn pending() -> &'static Mutex<HashMap<String, Zeroizing<[u8; WRITE_NONCE_LEN]>>> {
    static P: OnceLock<Mutex<HashMap<String, Zeroizing<[u8; WRITE_NONCE_LEN]>>>> = OnceLock::new();
    P.get_or_init(|| Mutex::new(HashMap::new()))
}

impl Token {
    /// The token's secret display policy.
    pub fn vault_secret_display(&self) -> Result<SecretDisplay> {
        let mut st = self.store();
        match st.header()?.ext.get(DISPLAY_KEY) {
            None => Ok(SecretDisplay::Plain),
            Some(b) => postcard::from_bytes(b)
                .map_err(|e| Error::corrupt(Part::VaultState, format!("secret display: {e}"))),
        }
    }

    /// The SO sets the secret display policy: `so_pin` is verified and counted
    /// like a login. Does not log in.
    pub fn vault_set_secret_display(&self, so_pin: &[u8], d: SecretDisplay) -> Result<()> {
        self.verify_pin(UserType::So, so_pin)?;
        let b = postcard::to_allocvec(&d)
            .map_err(|e| Error::General(format!("secret display: {e}")))?;
        let mut st = self.store();
        let mut h = st.header()?.clone();
        h.ext.insert(DISPLAY_KEY.to_string(), b);
        st.write_header(&h)?;
        info!(serial = %self.serial(), display = d.as_str(), "vault secret display changed by the SO");
        Ok(())
    }

    /// A fresh random for the next vault write of this token (V5 fingerprints): the
    /// client computes its fingerprints with it. Each call replaces the pending one;
    /// the next write takes it, so it serves one write only.
    pub fn vault_write_nonce(&self) -> Result<[u8; WRITE_NONCE_LEN]> {
        let mut n = Zeroizing::new([0u8; WRITE_NONCE_LEN]);
        crate::mechanism::random(&mut n[..])?;
        let out = *n;
        pending()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(self.serial().to_string(), n);
        Ok(out)
    }

    /// What the prompt shows of `e` before it is stored, by the display policy.
    pub(super) fn write_description(&self, e: &Entry) -> Result<Zeroizing<String>> {
        if self.vault_secret_display()? == SecretDisplay::Plain {
            return Ok(e.describe_received());
        }
        let taken = pending()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(self.serial());
        let nonce = match taken {
            Some(n) => n,
            None => {
                let mut n = Zeroizing::new([0u8; WRITE_NONCE_LEN]);
                crate::mechanism::random(&mut n[..])?;
                n
            }
        };
        let mut s = Zeroizing::new(format!("Kind: {}\nTitle: {}", e.kind, e.title));
        if !e.url.is_empty() {
            s.push_str(&format!("\nURL: {}", e.url));
        }
        for f in &e.fields {
            if f.secret {
                s.push_str(&format!(
                    "\n{} (secret, fingerprint): {}",
                    f.name,
                    fingerprint(&nonce, &f.name, &f.value)
                ));
            } else {
                s.push_str(&format!("\n{}: {}", f.name, f.value));
            }
        }
        s.push_str("\nCompare each fingerprint with the one your client shows.");
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_depends_on_nonce_name_and_value() {
        let a = [1u8; WRITE_NONCE_LEN];
        let b = [2u8; WRITE_NONCE_LEN];
        let f = fingerprint(&a, "password", "hunter2");
        assert_eq!(f.len(), 19);
        assert_eq!(f, fingerprint(&a, "password", "hunter2"));
        assert_ne!(f, fingerprint(&b, "password", "hunter2"));
        assert_ne!(f, fingerprint(&a, "password", "hunter3"));
        assert_ne!(f, fingerprint(&a, "card_pin", "hunter2"));
        // The separator keeps name and value apart.
        assert_ne!(fingerprint(&a, "ab", "c"), fingerprint(&a, "a", "bc"));
    }
}
