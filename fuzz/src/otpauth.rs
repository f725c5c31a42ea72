//! `otpauth://` URI parsing and base32 decoding (otp-core).
//!
//! Any input must give `Ok` or `Err`, never a panic; what parses must survive a
//! round trip (`to_uri` parses back to an equal value) and compute a code.

use otp_core::{base32, OtpUri};

/// One fuzz input: first as a URI, then as base32 text.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(uri) = OtpUri::parse(text) {
        uri.validate()
            .expect("parse returned a value that fails validate");
        let again = OtpUri::parse(&uri.to_uri()).expect("to_uri output does not parse");
        assert_eq!(again, uri, "to_uri does not round-trip");
        assert!(!uri.name().is_empty());
        for t in [0, 59, 1_111_111_109, u64::MAX] {
            let Ok(c) = uri.code(t) else { continue };
            assert_eq!(c.len(), uri.digits as usize);
            assert!(c.bytes().all(|b| b.is_ascii_digit()));
            if uri.kind == otp_core::OtpKind::Hotp {
                let hit = otp_core::verify_hotp(
                    &uri.secret,
                    &c,
                    uri.counter,
                    0,
                    uri.digits,
                    uri.algorithm,
                );
                assert_eq!(hit, Some(uri.counter), "the HOTP code does not verify");
            }
        }
    }
    if let Ok(bytes) = base32::decode(text) {
        assert_eq!(base32::decode(&base32::encode(&bytes)).unwrap(), bytes);
        assert_eq!(
            base32::decode(&base32::encode_padded(&bytes)).unwrap(),
            bytes
        );
    }
    // The V9 seed derivation takes any vault entry text.
    let _ = otp_core::seed_from_entry(text);
}
