//! The chunked alternative of a backup bundle (SPEC V11, ¶0109): for a large vault,
//! the plaintext is split into parts and each part is sealed on its own to the
//! target's device certificate (a CMS `AuthEnvelopedData` per part, as
//! [`vault_core::sealed::seal`] makes them). The list of sealed parts, in order,
//! behind a [`MAGIC`], is signed by the source as one CMS `SignedData` (content
//! type id-data), so no part can be dropped, repeated, reordered or swapped with
//! another bundle's; the digest signature inside the plaintext (¶0106) covers the
//! reassembled data as in the one-envelope form.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use vault_core::sealed::KeyTransport;

/// Marks a chunked bundle's signed content.
pub const MAGIC: &[u8; 16] = b"vtoken-chunks-v1";

/// Smallest part accepted (bytes): smaller ones only multiply envelopes.
pub const MIN_CHUNK: usize = 256;

/// What the source signs (postcard).
#[derive(Serialize, Deserialize)]
pub struct ChunkedBundle {
    /// [`MAGIC`].
    pub magic: [u8; 16],
    /// The sealed parts, in order (each a DER `ContentInfo` AuthEnvelopedData).
    pub chunks: Vec<Vec<u8>>,
}

/// Seals `plain` in parts of `chunk` bytes to `target_leaf`, and signs the list
/// with `sign_cb` (the source's device key over CMS signed attributes).
pub(crate) fn seal(
    target_leaf: &[u8],
    source_leaf: &[u8],
    plain: &[u8],
    chunk: usize,
    sign_cb: impl FnOnce(&[u8]) -> vault_core::Result<Vec<u8>>,
) -> vault_core::Result<Vec<u8>> {
    let chunks = plain
        .chunks(chunk.max(MIN_CHUNK))
        .map(|part| vault_core::sealed::seal(target_leaf, part))
        .collect::<vault_core::Result<Vec<_>>>()?;
    let list = postcard::to_allocvec(&ChunkedBundle {
        magic: *MAGIC,
        chunks,
    })
    .map_err(|e| vault_core::Error::envelope(format!("chunked bundle: {e}")))?;
    vault_core::sealed::sign(&list, source_leaf, sign_cb)
}

/// Opens a chunked bundle: `None` when `bundle` is not one (a one-envelope bundle
/// then); else the signature is verified, `check_signer` judges the signer
/// certificate, and only then each part is opened with `unwrap` and the parts
/// joined.
pub(crate) fn open(
    bundle: &[u8],
    check_signer: impl FnOnce(&[u8]) -> vault_core::Result<()>,
    unwrap: impl Fn(&KeyTransport, &[u8]) -> vault_core::Result<Zeroizing<Vec<u8>>>,
    my_leaf: &[u8],
) -> Option<vault_core::Result<Zeroizing<Vec<u8>>>> {
    let (content, signer) = vault_core::sealed::verify_signed(bundle).ok()?;
    let list: ChunkedBundle = postcard::from_bytes(&content).ok()?;
    if &list.magic != MAGIC {
        return None;
    }
    Some((|| {
        check_signer(&signer)?;
        // Sized up front (a part's plaintext is shorter than its envelope), so no
        // reallocation leaves plaintext behind.
        let cap = list.chunks.iter().map(Vec::len).sum();
        let mut plain = Zeroizing::new(Vec::with_capacity(cap));
        for part in &list.chunks {
            let p = vault_core::sealed::open(part, &unwrap, Some(my_leaf))?;
            plain.extend_from_slice(&p);
        }
        Ok(plain)
    })())
}
