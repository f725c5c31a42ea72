//! CMS envelopes and signed bundles (vault-core `sealed`, SPEC V8/V11): any input
//! gives `Ok` or `Err`, never a panic.
//!
//! The recipient is a fixed RSA test key (`fuzz/keys/recipient.*`, public on
//! purpose), so inputs sealed to it — the corpus holds `openssl cms -encrypt`
//! envelopes, OAEP and PKCS#1 v1.5, AES-CBC and AES-GCM — really decrypt, and the
//! fuzzer reaches the content decryption and authenticated-attribute code.

use std::sync::OnceLock;

use rsa::pkcs8::DecodePrivateKey;
use rsa::{Pkcs1v15Encrypt, RsaPrivateKey};
use vault_core::sealed::{self, KeyTransport};
use zeroize::Zeroizing;

const KEY: &str = include_str!("../keys/recipient.key");
const CERT: &str = include_str!("../keys/recipient.pem");

fn key() -> &'static RsaPrivateKey {
    static K: OnceLock<RsaPrivateKey> = OnceLock::new();
    K.get_or_init(|| RsaPrivateKey::from_pkcs8_pem(KEY).expect("fuzz/keys/recipient.key"))
}

fn cert_der() -> &'static [u8] {
    static C: OnceLock<Vec<u8>> = OnceLock::new();
    C.get_or_init(|| {
        use x509_cert::der::{DecodePem, Encode};
        let c = x509_cert::Certificate::from_pem(CERT).expect("fuzz/keys/recipient.pem");
        c.to_der().unwrap()
    })
}

/// The token side of key transport, with the test key.
fn decrypt(kt: &KeyTransport, ek: &[u8]) -> vault_core::Result<Zeroizing<Vec<u8>>> {
    let fail = || vault_core::Error::General("key transport failed".into());
    let cek = match kt.oaep_padding()? {
        Some(oaep) => key().decrypt(oaep, ek),
        None => key().decrypt(Pkcs1v15Encrypt, ek),
    };
    cek.map(Zeroizing::new).map_err(|_| fail())
}

/// One fuzz input: as an envelope (any recipient, then this certificate's), as a
/// SignedData, and as a signed backup bundle.
pub fn run(data: &[u8]) {
    let opened = sealed::open(data, decrypt, None);
    let mine = sealed::open(data, decrypt, Some(cert_der()));
    // With a single recipient, naming our certificate cannot open what the
    // anonymous form refused, nor give other content.
    if let (Ok(a), Ok(b)) = (&opened, &mine) {
        assert_eq!(
            a.as_slice(),
            b.as_slice(),
            "recipient choice changed the content"
        );
    }
    if let Ok((content, signer)) = sealed::verify_signed(data) {
        assert!(!signer.is_empty(), "a verified SignedData without a signer");
        let _ = content;
    }
    let _ = sealed::open_signed(data, |_| Ok(()), decrypt, Some(cert_der()));
}

/// Opens `data` with the test key (for the replay tests' check of the seeds).
pub fn open_for_test(data: &[u8]) -> vault_core::Result<Zeroizing<Vec<u8>>> {
    sealed::open(data, decrypt, None)
}
