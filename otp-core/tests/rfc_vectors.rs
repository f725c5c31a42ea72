//! Published test vectors: RFC 4226 Appendix D and RFC 6238 Appendix B, plus
//! verification-window behaviour.

use otp_core::{hotp, totp, verify_hotp, verify_totp, Algorithm};

const SEED20: &[u8] = b"12345678901234567890";
const SEED32: &[u8] = b"12345678901234567890123456789012";
const SEED64: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

/// RFC 4226 Appendix D: HOTP values for counters 0..=9.
const RFC4226: [&str; 10] = [
    "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871",
    "520489",
];

/// RFC 6238 Appendix B: (time, SHA1, SHA256, SHA512), 8 digits, X = 30, T0 = 0.
const RFC6238: [(u64, &str, &str, &str); 6] = [
    (59, "94287082", "46119246", "90693936"),
    (1111111109, "07081804", "68084774", "25091201"),
    (1111111111, "14050471", "67062674", "99943326"),
    (1234567890, "89005924", "91819424", "93441116"),
    (2000000000, "69279037", "90698825", "38618901"),
    (20000000000, "65353130", "77737706", "47863826"),
];

#[test]
fn rfc4226_appendix_d() {
    for (counter, expected) in RFC4226.iter().enumerate() {
        assert_eq!(
            hotp(SEED20, counter as u64, 6, Algorithm::Sha1).unwrap(),
            *expected,
            "counter {counter}"
        );
    }
}

#[test]
fn rfc6238_appendix_b_all_18_rows() {
    let mut rows = 0;
    for (time, sha1, sha256, sha512) in RFC6238 {
        for (alg, seed, expected) in [
            (Algorithm::Sha1, SEED20, sha1),
            (Algorithm::Sha256, SEED32, sha256),
            (Algorithm::Sha512, SEED64, sha512),
        ] {
            assert_eq!(
                totp(seed, time, 30, 0, 8, alg).unwrap(),
                expected,
                "{alg} at {time}"
            );
            rows += 1;
        }
    }
    assert_eq!(rows, 18);
}

#[test]
fn totp_respects_t0_and_period() {
    // Shifting both the time and T0 by the same amount changes nothing.
    assert_eq!(
        totp(SEED20, 59 + 1000, 30, 1000, 8, Algorithm::Sha1).unwrap(),
        "94287082"
    );
    // A 60 s period at t = 119 is step 1, like t = 59 with 30 s.
    assert_eq!(
        totp(SEED20, 119, 60, 0, 8, Algorithm::Sha1).unwrap(),
        "94287082"
    );
}

#[test]
fn hotp_window_matches_at_offset_and_misses_outside() {
    // Code for counter 5, server expects counter 2.
    let code = RFC4226[5];
    assert_eq!(verify_hotp(SEED20, code, 2, 3, 6, Algorithm::Sha1), Some(5));
    assert_eq!(
        verify_hotp(SEED20, code, 2, 10, 6, Algorithm::Sha1),
        Some(5)
    );
    assert_eq!(verify_hotp(SEED20, code, 2, 2, 6, Algorithm::Sha1), None);
    // Counters already used (behind the server's counter) are never accepted.
    assert_eq!(verify_hotp(SEED20, code, 6, 10, 6, Algorithm::Sha1), None);
    // Exact match with no look-ahead.
    assert_eq!(verify_hotp(SEED20, code, 5, 0, 6, Algorithm::Sha1), Some(5));
    // Wrong key.
    assert_eq!(verify_hotp(SEED32, code, 0, 10, 6, Algorithm::Sha1), None);
    // Every RFC value is found in a window from 0.
    for (i, c) in RFC4226.iter().enumerate() {
        assert_eq!(
            verify_hotp(SEED20, c, 0, 9, 6, Algorithm::Sha1),
            Some(i as u64)
        );
    }
}

#[test]
fn totp_window_matches_at_offset_and_misses_outside() {
    for (time, sha1, sha256, sha512) in RFC6238 {
        for (alg, seed, code) in [
            (Algorithm::Sha1, SEED20, sha1),
            (Algorithm::Sha256, SEED32, sha256),
            (Algorithm::Sha512, SEED64, sha512),
        ] {
            assert_eq!(verify_totp(seed, code, time, 30, 0, 0, 8, alg), Some(0));
            // Client two steps behind the server clock.
            let later = time + 60;
            assert_eq!(verify_totp(seed, code, later, 30, 0, 2, 8, alg), Some(-2));
            assert_eq!(verify_totp(seed, code, later, 30, 0, 1, 8, alg), None);
            // Client one step ahead of the server clock.
            let earlier = time - 30;
            assert_eq!(verify_totp(seed, code, earlier, 30, 0, 1, 8, alg), Some(1));
            assert_eq!(verify_totp(seed, code, earlier, 30, 0, 0, 8, alg), None);
        }
    }
    // Wrong algorithm never matches.
    assert_eq!(
        verify_totp(SEED20, "94287082", 59, 30, 0, 2, 8, Algorithm::Sha256),
        None
    );
}

#[test]
fn verify_rejects_invalid_parameters() {
    assert_eq!(
        verify_totp(SEED20, "94287082", 59, 0, 0, 1, 8, Algorithm::Sha1),
        None
    );
    assert_eq!(
        verify_totp(SEED20, "94287082", 59, 30, 100, 1, 8, Algorithm::Sha1),
        None
    );
    assert_eq!(
        verify_totp(SEED20, "94287082", 59, 30, 0, 1, 11, Algorithm::Sha1),
        None
    );
    assert_eq!(verify_hotp(SEED20, "7552", 0, 1, 4, Algorithm::Sha1), None);
}
