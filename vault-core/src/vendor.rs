//! Every vendor-defined PKCS#11 value vtoken uses, in one place: vtoken's vendor
//! range is `CKA_VENDOR_DEFINED | 0x5654_xxxx` ("VT"). The features that give
//! these values their meaning live in [`crate::ext`] and re-export them at their
//! old paths; the kernel needs only to recognise them (attribute validation,
//! which records are always sealed).

use cryptoki_sys::*;

use crate::attr::Attributes;

/// SPEC C1: marks a key as gated by the picture-verification gate (set at
/// generation or import, read-only afterwards).
pub const CKA_VTOKEN_GATED: CK_ATTRIBUTE_TYPE = CKA_VENDOR_DEFINED | 0x5654_0001;

/// SPEC V9: an OTP credential's parameters (JSON of `otp::OtpParams`).
pub const CKA_VTOKEN_OTP: CK_ATTRIBUTE_TYPE = CKA_VENDOR_DEFINED | 0x5654_0002;

/// SPEC V11: on an object restored from a backup, a stable identity of the source
/// object (SHA-256 over the source serial and its `CKA_UNIQUE_ID`), so importing a
/// newer bundle updates instead of duplicating. Set only by the restore; templates
/// cannot name it.
pub const CKA_VTOKEN_BACKUP_ORIGIN: CK_ATTRIBUTE_TYPE = CKA_VENDOR_DEFINED | 0x5654_0020;

/// SPEC V8: `C_UnwrapKey` of a sealed envelope (a CMS envelope or data encrypted
/// directly to the device key, both delivery options) with the token's device key,
/// which has no object handle: the unwrapping key handle is `CK_INVALID_HANDLE`.
/// The template's class decides what is made: `CKO_DATA` (the plaintext is its
/// `CKA_VALUE`) or `CKO_SECRET_KEY`. No parameter.
pub const CKM_VTOKEN_SEALED_ENVELOPE: CK_MECHANISM_TYPE = CKM_VENDOR_DEFINED | 0x5654_0101;

/// SPEC V1: `CKA_APPLICATION` of vault entries (`CKO_DATA` objects).
pub const VAULT_APPLICATION: &[u8] = b"vtoken-vault";

/// SPEC V1: whether an object is a vault entry.
pub fn is_vault_object(a: &Attributes) -> bool {
    a.class() == Some(CKO_DATA) && a.get(CKA_APPLICATION) == Some(VAULT_APPLICATION)
}

/// SPEC K4 (remote key download, seed 003): on a terminal master key downloaded
/// from a remote key server, the server's 16-byte identity of the queued key, so a
/// key delivered again (its acknowledgement was lost) is not stored twice. Set only
/// by the download; templates cannot name it.
pub const CKA_VTOKEN_RKS_UID: CK_ATTRIBUTE_TYPE = CKA_VENDOR_DEFINED | 0x5654_0301;
