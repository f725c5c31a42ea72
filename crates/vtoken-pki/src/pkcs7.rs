//! Certs-only PKCS#7 (a CMS SignedData with no signers, RFC 5652 / RFC 7030 4.1.3) and
//! the base64 transfer encoding EST uses (how EST clients fetch the CA certificates
//! and receive theirs, E8).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use cms::cert::CertificateChoices;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{CertificateSet, EncapsulatedContentInfo, SignedData, SignerInfos};
use const_oid::db::rfc5911::{ID_DATA, ID_SIGNED_DATA};
use der::asn1::{Any, SetOfVec};
use der::{Decode, Encode};
use x509_cert::Certificate;

use crate::{Error, Result};

/// DER ContentInfo(SignedData) carrying `certs` (DER) and nothing else.
pub fn certs_only(certs: &[Vec<u8>]) -> Result<Vec<u8>> {
    let mut set = Vec::with_capacity(certs.len());
    for der in certs {
        set.push(CertificateChoices::Certificate(Certificate::from_der(der)?));
    }
    let signed = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::new(),
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: ID_DATA,
            econtent: None,
        },
        certificates: Some(CertificateSet(SetOfVec::try_from(set)?)),
        crls: None,
        signer_infos: SignerInfos(SetOfVec::new()),
    };
    Ok(ContentInfo {
        content_type: ID_SIGNED_DATA,
        content: Any::encode_from(&signed)?,
    }
    .to_der()?)
}

/// The certificates (DER) of a certs-only PKCS#7.
pub fn parse_certs_only(der: &[u8]) -> Result<Vec<Vec<u8>>> {
    let ci = ContentInfo::from_der(der)?;
    if ci.content_type != ID_SIGNED_DATA {
        return Err(Error::Malformed(format!(
            "PKCS#7 content type {} is not signedData",
            ci.content_type
        )));
    }
    let signed: SignedData = ci.content.decode_as()?;
    let mut out = Vec::new();
    for choice in signed.certificates.iter().flat_map(|s| s.0.iter()) {
        if let CertificateChoices::Certificate(c) = choice {
            out.push(c.to_der()?);
        }
    }
    Ok(out)
}

/// Standard base64 in lines of 64 characters (what `openssl base64 -d` reads).
pub fn base64_lines(data: &[u8]) -> String {
    let text = STANDARD.encode(data);
    let mut out = String::with_capacity(text.len() + text.len() / 64 + 1);
    for chunk in text.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out
}

/// Decode base64 that may contain line breaks and other white space.
pub fn base64_decode(text: &[u8]) -> Result<Vec<u8>> {
    let compact: Vec<u8> = text
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    STANDARD
        .decode(compact)
        .map_err(|e| Error::Malformed(format!("base64: {e}")))
}
