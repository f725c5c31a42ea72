//! K2's sealed channel: the key-loading station hands a device DIK2, the
//! diversification factor and RKS_RCRT_PK in an injection envelope, so the two
//! tokens may sit on different machines and the secrets are in the clear only
//! inside the station token (where DIK2 is derived, K3) and inside the device token.
//!
//! The envelope is a V11-style signed bundle ([`crate::sealed::seal_signed`]): a
//! CMS `AuthEnvelopedData` (AES-256-GCM, RSA-OAEP-SHA256) to the device's
//! certificate, signed by the station's device identity key. Its plaintext is
//! [`INJECT_MAGIC`] ‖ postcard([`Payload`]).
//!
//! Who may inject, and what the device refuses (the attacks of issue 17):
//! - only the device's **security officer** (SO PIN): installing RKS_RCRT_PK is
//!   installing a trust anchor, an issuer's act like `C_InitPIN`; the user PIN is
//!   typed daily on the terminal, and its holder must not be able to re-root the
//!   token to an RKS of their choosing (a fake RKS would then feed it its keys);
//! - an envelope whose signer the caller's `check_signer` refuses (the CLI checks
//!   the station certificate chains to the device's own identity root with the
//!   device profile): a forged envelope naming a fake root fails here;
//! - an envelope sealed to another token (it does not open), or naming another DSN;
//! - a tampered envelope (the signature and the GCM tag);
//! - a second injection, unless the SO asks to replace; and an envelope this
//!   device already took (a replay, even with replace: no rollback to an old root).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::info;
use zeroize::{Zeroize, Zeroizing};

use super::{DeviceRecord, DEVICE_KEY, DEVICE_LABEL};
use crate::error::{Error, Result};
use crate::token::{Token, UserType};

/// Magic in front of an injection envelope's plaintext.
pub const INJECT_MAGIC: &[u8] = b"vtoken rks inject v1\0";
/// Header extension: SHA-256 of every envelope this device took (sealed).
const TAKEN_KEY: &str = "rks-injected";
const TAKEN_LABEL: &[u8] = b"vtoken rks injected seal key";

/// What the station sends the device (K2).
#[derive(Serialize, Deserialize)]
struct Payload {
    /// The device's DSN (its serial, upper-case).
    dsn: String,
    /// The station's serial (must be the signer's).
    station: String,
    dik2: [u8; 24],
    factor: Vec<u8>,
    root_spki: Vec<u8>,
    /// Random: two envelopes for the same device differ.
    nonce: [u8; 16],
}

impl Drop for Payload {
    fn drop(&mut self) {
        self.dik2.zeroize();
        self.factor.zeroize();
    }
}

#[derive(Serialize, Deserialize, Default)]
struct Taken {
    hashes: Vec<[u8; 32]>,
}

/// What an injection did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Injected {
    /// The device's DSN.
    pub dsn: String,
    /// The serial of the station that made the envelope.
    pub station: String,
    /// Whether an earlier provisioning was replaced.
    pub replaced: bool,
}

impl Token {
    /// Station (K2, K3): an injection envelope for the device whose identity
    /// certificate is `device_cert_der` and whose serial is `dsn` (the caller
    /// checked that certificate chains to the root it trusts and certifies `dsn`).
    /// DIK2 is derived here from the DIK1 this station holds and leaves the token
    /// only sealed to the device. The station's user is logged in; the station
    /// must have its own device certificate (it signs the envelope).
    pub fn rks_station_seal(
        &self,
        device_cert_der: &[u8],
        dsn: &str,
        factor: &[u8],
        root_spki: &[u8],
    ) -> Result<Vec<u8>> {
        self.rks_keys(UserType::User)?;
        let dsn = dsn.to_ascii_uppercase();
        if factor.is_empty() || factor.len() > 64 {
            return Err(Error::ArgumentsBad("a factor has 1 to 64 bytes".into()));
        }
        if dsn.eq_ignore_ascii_case(self.serial()) {
            return Err(Error::ArgumentsBad(
                "the device is the station token itself".into(),
            ));
        }
        let info = self.identity_info()?;
        let Some(station_leaf) = info.chain.first() else {
            return Err(Error::ArgumentsBad(
                "the station token has no device certificate (vtoken device certify): \
                 it signs the injection envelope"
                    .into(),
            ));
        };
        let dik2 = self.rks_station_derive(&dsn, factor)?;
        let mut nonce = [0u8; 16];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
        let p = Payload {
            dsn: dsn.clone(),
            station: self.serial().to_ascii_uppercase(),
            dik2: *dik2,
            factor: factor.to_vec(),
            root_spki: root_spki.to_vec(),
            nonce,
        };
        let mut plain = Zeroizing::new(INJECT_MAGIC.to_vec());
        plain.extend_from_slice(&Zeroizing::new(
            postcard::to_allocvec(&p).map_err(|e| Error::General(format!("rks inject: {e}")))?,
        ));
        let env = crate::sealed::seal_signed(device_cert_der, station_leaf, &plain, |a| {
            self.identity_sign_cms(a)
        })?;
        info!(station = %self.serial(), %dsn, "remote key download injection envelope made");
        Ok(env)
    }

    /// Device (K2): opens an injection envelope inside the token and stores DIK2,
    /// the factor and RKS_RCRT_PK where no PKCS#11 call reaches them. The SO is
    /// logged in. `check_signer` gets the signer's certificate (DER) and returns
    /// its token serial, or refuses it. Refused: another DSN, a tampered or
    /// foreign envelope, one this device took before, and a second provisioning
    /// unless `replace`. Nothing changes on a refusal.
    pub fn rks_inject(
        &self,
        envelope: &[u8],
        replace: bool,
        check_signer: impl FnOnce(&[u8]) -> Result<String>,
    ) -> Result<Injected> {
        self.rks_keys(UserType::So)?;
        let was = self.rks_provisioned()?;
        if was && !replace {
            return Err(Error::ArgumentsBad(
                "this token is already provisioned for remote key download \
                 (inject with --replace to replace it)"
                    .into(),
            ));
        }
        let hash: [u8; 32] = Sha256::digest(envelope).into();
        let mut taken: Taken = self.rks_open(TAKEN_KEY, TAKEN_LABEL)?.unwrap_or_default();
        if taken.hashes.contains(&hash) {
            return Err(Error::ArgumentsBad(
                "this injection envelope was already used on this token (a replay)".into(),
            ));
        }
        let info = self.identity_info()?;
        let Some(leaf) = info.chain.first() else {
            return Err(Error::ArgumentsBad(
                "this token has no device certificate (vtoken device certify): \
                 injection envelopes are sealed to it"
                    .into(),
            ));
        };
        let mut signer = String::new();
        let plain = crate::sealed::open_signed(
            envelope,
            |cert| {
                signer = check_signer(cert)?;
                Ok(())
            },
            |kt, enc| self.identity_unwrap_cek(kt, enc),
            Some(leaf),
        )?;
        let bad = || Error::envelope("not a remote key download injection envelope".into());
        let body = plain.strip_prefix(INJECT_MAGIC).ok_or_else(bad)?;
        let p: Payload = postcard::from_bytes(body).map_err(|_| bad())?;
        drop(plain);
        let dsn = self.serial().to_ascii_uppercase();
        if p.dsn != dsn {
            return Err(Error::envelope(format!(
                "the envelope is for device {}, this token is {dsn}",
                p.dsn
            )));
        }
        if !p.station.eq_ignore_ascii_case(&signer) {
            return Err(Error::envelope(format!(
                "the envelope names station {} but is signed by {signer}",
                p.station
            )));
        }
        if p.factor.is_empty() || p.factor.len() > 64 {
            return Err(bad());
        }
        let r = DeviceRecord {
            dik2: p.dik2,
            factor: p.factor.clone(),
            root_spki: p.root_spki.clone(),
        };
        taken.hashes.push(hash);
        // One header write (one store transaction): the record and the replay
        // list change together or not at all.
        self.rks_write_all(&[
            (DEVICE_KEY, DEVICE_LABEL, super::encode(&r)?),
            (TAKEN_KEY, TAKEN_LABEL, super::encode(&taken)?),
        ])?;
        info!(serial = %self.serial(), station = %p.station, replaced = was,
            "remote key download provisioned");
        Ok(Injected {
            dsn,
            station: p.station.clone(),
            replaced: was,
        })
    }
}
