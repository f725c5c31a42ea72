//! The operator (E1): the run starts only after a login to the operator's token, and
//! every request to the CA or relay is signed with the operator credential on it —
//! a key and the certificate labelled [`OPERATOR_LABEL`], made once with
//! [`Operator::request`] and [`Operator::install`] and registered with the CA.
//!
//! Seed 001 step 201 ("the local device authenticates the operator ... checks that
//! the authority device holds valid data ... sends it data to compute and checks the
//! result") is [`Operator::authorise`]: knowing a token's PIN is not enough; the
//! token must hold an operator certificate of the CA (checked at the station: chain,
//! validity, operator profile) that the CA still honours (registered, not revoked),
//! and its key must answer a fresh challenge of the CA inside the token. Only then
//! does the station go on to step 202.

use cryptoki_sys::*;
use vault_core::mechanism::encoding;
use vault_core::slots::{Registry, TokenEntry};
use vault_core::token::UserType;
use vault_core::Attributes;
use vtoken_pki::auth::Credential;
use vtoken_pki::{SigAlg, Usage};

use crate::error::{Error, Result};
use crate::keys::{self, search, KeyPair};
use crate::session::TokenSession;
use crate::station::KeyType;
use crate::trust::Trust;

/// Label of the operator credential's key and certificate on the operator token.
pub const OPERATOR_LABEL: &str = "vtoken-operator";

/// The operator's token, logged in as its user.
pub struct Operator {
    session: TokenSession,
}

/// The operator key's PKCS#10 request, for the CA to register.
pub struct OperatorRequest {
    /// The request (DER), signed inside the operator token.
    pub csr: Vec<u8>,
    /// The key's CKA_ID.
    pub key_id: Vec<u8>,
    /// Whether the key was generated now (else it was on the token already).
    pub generated: bool,
}

impl Operator {
    /// The operator token named `name` (label or serial).
    pub fn find(registry: &Registry, name: &str) -> Result<TokenEntry> {
        registry.find(name).map_err(Error::OperatorToken)
    }

    /// Opens the operator token and logs in with `pin`; a refused PIN stops the run.
    pub fn login(registry: &Registry, entry: &TokenEntry, pin: &str) -> Result<Operator> {
        let session = TokenSession::open(registry, entry)?;
        session
            .login(UserType::User, pin)
            .map_err(|e| Error::OperatorLogin {
                label: entry.label.clone(),
                source: Box::new(e),
            })?;
        Ok(Operator { session })
    }

    /// The operator token's entry.
    pub fn entry(&self) -> &TokenEntry {
        &self.session.entry
    }

    /// The operator token's serial.
    pub fn serial(&self) -> &str {
        self.session.token.serial()
    }

    /// The operator credential: the certificate labelled [`OPERATOR_LABEL`] and the
    /// private key with its CKA_ID, signing inside the token, asking for `profile`.
    pub fn credential(&self, profile: Usage) -> Result<Credential> {
        let op = &self.session;
        let mut t = Attributes::new();
        t.set_ulong(CKA_CLASS, CKO_CERTIFICATE);
        t.set(CKA_LABEL, OPERATOR_LABEL.as_bytes().to_vec());
        for h in op.token.search(&t)?.into_iter().rev() {
            let a = op.token.attributes(h)?;
            let (Some(cert), Some(id)) = (a.get(CKA_VALUE), a.get(CKA_ID)) else {
                continue;
            };
            let Some(&key) = search(op, CKO_PRIVATE_KEY, Some(id))?.first() else {
                continue;
            };
            let spki = vtoken_pki::cert_spki(cert)?;
            let mech = keys::mechanism_for(SigAlg::for_spki(&spki)?)?;
            let (token, sid) = (op.token.clone(), op.sid.clone());
            let mut cred = Credential::new(
                cert.to_vec(),
                Box::new(move |msg| keys::token_sign(&token, &sid, key, mech, msg)),
            )?;
            cred.profile = Some(profile);
            return Ok(cred);
        }
        Err(Error::NoOperatorCredential {
            label: op.entry.label.clone(),
        })
    }

    /// Step 201: proves to the station and to the CA at `url` that this is an
    /// authorised operator token (see the module). Returns the name the CA knows the
    /// operator by. Nothing else happens before this succeeds.
    pub fn authorise(&self, url: &str, trust: &Trust) -> Result<String> {
        let not_authorised = |reason: String| Error::OperatorNotAuthorised {
            label: self.session.entry.label.clone(),
            reason,
        };
        // The certificate on the token (none: the PIN alone proves nothing).
        let cred = self.credential(Usage::Operator)?;
        trust
            .check_operator(cred.cert_der())
            .map_err(not_authorised)?;
        let challenge = vtoken_pki::client::operator_challenge(url)
            .map_err(|e| not_authorised(format!("no challenge from the CA: {e}")))?;
        let sig = cred
            .answer_challenge(&challenge.challenge)
            .map_err(|e| not_authorised(format!("the token did not answer: {e}")))?;
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let verdict = vtoken_pki::client::operator_authorise(
            url,
            &vtoken_pki::api::OperatorAnswer {
                challenge: challenge.challenge,
                cert: b64.encode(cred.cert_der()),
                signature: b64.encode(sig),
            },
        )
        .map_err(|e| not_authorised(format!("the CA refused: {e}")))?;
        Ok(verdict.operator)
    }

    /// The operator key (an EC P-256 key pair labelled [`OPERATOR_LABEL`], made now
    /// if the token has none; it never leaves the token) and its request, signed
    /// inside the token.
    pub fn request(&self) -> Result<OperatorRequest> {
        let op = &self.session;
        let mut t = Attributes::new();
        t.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY);
        t.set(CKA_LABEL, OPERATOR_LABEL.as_bytes().to_vec());
        let key = match op.token.search(&t)?.first() {
            Some(&h) => {
                let a = op.token.attributes(h)?;
                let id = a.get(CKA_ID).unwrap_or_default().to_vec();
                let spki = match keys::public_spki(op, &id)? {
                    Some(spki) => spki,
                    None => encoding::public_key_spki(&a)?,
                };
                KeyPair {
                    private: h,
                    id,
                    label: OPERATOR_LABEL.into(),
                    spki,
                    generated: false,
                }
            }
            None => keys::generate_key_pair(op, KeyType::EcP256, OPERATOR_LABEL)?,
        };
        let csr = keys::sign_request(op, &key, Usage::Operator)?;
        Ok(OperatorRequest {
            csr,
            key_id: key.id,
            generated: key.generated,
        })
    }

    /// Stores the operator certificate `cert` (DER) the CA issued beside its key,
    /// under the key's CKA_ID; [`Error::OperatorKeyMissing`] if the key it certifies
    /// is not on the token.
    pub fn install(&self, cert: &[u8]) -> Result<()> {
        let op = &self.session;
        let spki = vtoken_pki::cert_spki(cert)?;
        let mut id = None;
        for p in search(op, CKO_PUBLIC_KEY, None)? {
            let a = op.token.attributes(p)?;
            if encoding::public_key_spki(&a).ok().as_deref() == Some(&spki[..]) {
                let pid = a.get(CKA_ID).unwrap_or_default().to_vec();
                if !search(op, CKO_PRIVATE_KEY, Some(&pid))?.is_empty() {
                    id = Some(pid);
                    break;
                }
            }
        }
        let Some(id) = id else {
            return Err(Error::OperatorKeyMissing {
                label: op.entry.label.clone(),
            });
        };
        keys::store_certificate(op, cert, &id, OPERATOR_LABEL)
    }
}
