//! What a CA and an issuing station parse (SPEC E5–E9, `vtoken-pki`): PKCS#10
//! requests, certificates and their chains, EST's base64 PKCS#7 certs-only, PEM.
//! Any input gives `Ok` or `Err`, never a panic; what verifies must be consistent.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

const ROOT: &str = include_str!("../keys/recipient.pem");

fn root_der() -> &'static [u8] {
    static R: OnceLock<Vec<u8>> = OnceLock::new();
    R.get_or_init(|| vtoken_pki::certs_from_pem(ROOT).expect("fuzz/keys/recipient.pem")[0].clone())
}

/// One fuzz input: as a DER request, a DER certificate (alone and under the test
/// root), a PKCS#7 certs-only, base64 text and PEM text.
pub fn run(data: &[u8]) {
    if let Ok(info) = vtoken_pki::verify_csr(data) {
        // A request whose signature verifies names the same serial both ways.
        let serial = vtoken_pki::csr_token_serial(data).expect("verified CSR has no serial");
        assert_eq!(serial, info.serial);
        assert!(!info.spki.is_empty());
    } else {
        let _ = vtoken_pki::csr_token_serial(data);
    }
    let _ = vtoken_pki::cert_token_serial(data);
    let _ = vtoken_pki::cert_spki(data);
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let _ = vtoken_pki::verify_chain(data, &[], root_der(), now);
    let _ = vtoken_pki::verify_chain(root_der(), &[data.to_vec()], root_der(), now);
    if let Ok(certs) = vtoken_pki::pkcs7::parse_certs_only(data) {
        let again = vtoken_pki::pkcs7::certs_only(&certs).expect("re-encode certs-only");
        assert_eq!(
            vtoken_pki::pkcs7::parse_certs_only(&again).expect("parse re-encoded"),
            certs
        );
    }
    if let Ok(bytes) = vtoken_pki::pkcs7::base64_decode(data) {
        let _ = vtoken_pki::pkcs7::parse_certs_only(&bytes);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(certs) = vtoken_pki::certs_from_pem(text) {
            for c in certs {
                let _ = vtoken_pki::cert_token_serial(&c);
            }
        }
    }
}
