//! `otpauth://` URI parsing, serialisation and error cases.

use otp_core::{base32, Algorithm, Error, OtpKind, OtpUri};

#[test]
fn google_example_totp() {
    let u = OtpUri::parse(
        "otpauth://totp/Example:alice@google.com?secret=JBSWY3DPEHPK3PXP&issuer=Example",
    )
    .unwrap();
    assert_eq!(u.kind, OtpKind::Totp);
    assert_eq!(u.issuer.as_deref(), Some("Example"));
    assert_eq!(u.account, "alice@google.com");
    assert_eq!(u.secret, b"Hello!\xde\xad\xbe\xef");
    assert_eq!(u.algorithm, Algorithm::Sha1);
    assert_eq!(u.digits, 6);
    assert_eq!(u.period, 30);
    assert_eq!(u.name(), "Example:alice@google.com");
}

#[test]
fn full_parameters_and_percent_decoding() {
    let u = OtpUri::parse(
        "otpauth://totp/ACME%20Co:john.doe%40email.com?secret=HXDMVJECJJWSRB3HWIZR4IFUGFTMXBOZ\
         &issuer=ACME%20Co&algorithm=SHA256&digits=8&period=60&image=https%3A%2F%2Fx",
    )
    .unwrap();
    assert_eq!(u.issuer.as_deref(), Some("ACME Co"));
    assert_eq!(u.account, "john.doe@email.com");
    assert_eq!(u.algorithm, Algorithm::Sha256);
    assert_eq!((u.digits, u.period), (8, 60));
    assert_eq!(
        u.secret,
        base32::decode("HXDMVJECJJWSRB3HWIZR4IFUGFTMXBOZ").unwrap()
    );
}

#[test]
fn label_variants() {
    // Encoded colon and a space after it.
    let u = OtpUri::parse("otpauth://totp/Big%20Corp%3A%20bob?secret=GEZDGNBV").unwrap();
    assert_eq!(u.issuer.as_deref(), Some("Big Corp"));
    assert_eq!(u.account, "bob");
    // No issuer at all.
    let u = OtpUri::parse("otpauth://totp/bob?secret=GEZDGNBV").unwrap();
    assert_eq!(u.issuer, None);
    assert_eq!(u.name(), "bob");
    // Issuer only as a parameter ('+' as space in parameter values).
    let u = OtpUri::parse("otpauth://totp/bob?secret=gezd+gnbv&issuer=Big+Corp").unwrap();
    assert_eq!(u.issuer.as_deref(), Some("Big Corp"));
    assert_eq!(u.name(), "Big Corp:bob");
    assert_eq!(u.secret, b"12345");
    // Upper-case scheme and type, lower-case algorithm, unpadded/padded secret.
    let u = OtpUri::parse("OTPAUTH://TOTP/x?secret=MZXW6YQ%3D&algorithm=sha512").unwrap();
    assert_eq!(u.algorithm, Algorithm::Sha512);
    assert_eq!(u.secret, b"foob");
}

#[test]
fn hotp_uri() {
    let u =
        OtpUri::parse("otpauth://hotp/Corp:bob?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&counter=3")
            .unwrap();
    assert_eq!(u.kind, OtpKind::Hotp);
    assert_eq!(u.counter, 3);
    assert_eq!(u.code(0).unwrap(), "969429"); // RFC 4226 counter 3
}

#[test]
fn totp_code_helper() {
    let mut u = OtpUri::new_totp(Some("RFC"), "6238", b"12345678901234567890".to_vec());
    u.digits = 8;
    assert_eq!(u.code(59).unwrap(), "94287082");
}

fn round_trip(u: &OtpUri) {
    let s = u.to_uri();
    let back = OtpUri::parse(&s).unwrap_or_else(|e| panic!("{s}: {e}"));
    assert_eq!(&back, u, "{s}");
    assert_eq!(back.to_uri(), s);
}

#[test]
fn round_trips() {
    let secret: Vec<u8> = (1..=20).collect();
    let mut u = OtpUri::new_totp(Some("Ex Corp & Söhne"), "a+b c@d.e", secret.clone());
    round_trip(&u);
    u.algorithm = Algorithm::Sha512;
    u.digits = 10;
    u.period = 45;
    round_trip(&u);
    u.issuer = None;
    u.account = "plain/üser?x=1&y#z%".into();
    round_trip(&u);
    // Account containing ':' is fine when there is an issuer.
    let u = OtpUri::new_hotp(Some("I"), "a:b:c", secret.clone(), u64::MAX);
    round_trip(&u);
    for len in [1, 5, 10, 16, 32, 64] {
        round_trip(&OtpUri::new_totp(None, "k", vec![0xA5; len]));
    }
    // Parse -> produce -> parse of a third-party URI.
    let u = OtpUri::parse(
        "otpauth://totp/Example:alice@google.com?secret=JBSWY3DPEHPK3PXP&issuer=Example",
    )
    .unwrap();
    assert_eq!(
        u.to_uri(),
        "otpauth://totp/Example:alice%40google.com?secret=JBSWY3DPEHPK3PXP&issuer=Example\
         &algorithm=SHA1&digits=6&period=30"
    );
    round_trip(&u);
}

#[test]
fn error_cases() {
    let cases: &[(&str, Error)] = &[
        ("otpauth://totp/bob?issuer=X", Error::MissingSecret),
        ("otpauth://totp/bob?secret=&issuer=X", Error::MissingSecret),
        ("otpauth://totp/bob", Error::MissingSecret),
        ("otpauth://hotp/bob?secret=GEZDGNBV", Error::MissingCounter),
        (
            "otpauth://motp/bob?secret=GEZDGNBV",
            Error::UnknownOtpType("motp".into()),
        ),
        (
            "otpauth://totp/bob?secret=GEZDGNBV&digits=5",
            Error::InvalidDigits(5),
        ),
        (
            "otpauth://totp/bob?secret=GEZDGNBV&digits=11",
            Error::InvalidDigits(11),
        ),
        (
            "otpauth://totp/bob?secret=GEZDGNBV&digits=six",
            Error::InvalidParameter {
                name: "digits".into(),
                value: "six".into(),
            },
        ),
        (
            "otpauth://hotp/bob?secret=GEZDGNBV&counter=-1",
            Error::InvalidParameter {
                name: "counter".into(),
                value: "-1".into(),
            },
        ),
        (
            "otpauth://totp/bob?secret=GEZDGNBV&period=0",
            Error::InvalidPeriod,
        ),
        (
            "otpauth://totp/bob?secret=GEZDGNBV&algorithm=MD5",
            Error::UnsupportedAlgorithm("MD5".into()),
        ),
        (
            "otpauth://totp/A:bob?secret=GEZDGNBV&issuer=B",
            Error::IssuerMismatch {
                label: "A".into(),
                parameter: "B".into(),
            },
        ),
        ("otpauth://totp/A:?secret=GEZDGNBV", Error::MissingAccount),
        ("otpauth://totp/?secret=GEZDGNBV", Error::MissingAccount),
    ];
    for (uri, expected) in cases {
        assert_eq!(&OtpUri::parse(uri).unwrap_err(), expected, "{uri}");
    }

    // Bad base32 secret.
    let e = OtpUri::parse("otpauth://totp/bob?secret=GEZ1GNBV").unwrap_err();
    assert!(matches!(e, Error::InvalidBase32(_)), "{e:?}");
    assert!(e.to_string().contains("base32"), "{e}");

    // Structural problems.
    for uri in [
        "https://totp/bob?secret=GEZDGNBV",
        "totp/bob?secret=GEZDGNBV",
        "otpauth://totp?secret=GEZDGNBV",
        "otpauth://totp/bob%zz?secret=GEZDGNBV",
        "otpauth://totp/bob?secret=GEZDGNBV&secret=GEZDGNBV",
        "otpauth://totp/bob?secret=GEZDGNBV&issuer=a%3Ab",
    ] {
        let e = OtpUri::parse(uri).unwrap_err();
        assert!(matches!(e, Error::InvalidUri(_)), "{uri}: {e:?}");
    }
}

#[test]
fn error_messages_are_readable() {
    let msg = |u: &str| OtpUri::parse(u).unwrap_err().to_string();
    assert_eq!(
        msg("otpauth://totp/bob"),
        "the otpauth URI has no secret parameter"
    );
    assert!(msg("otpauth://xotp/bob?secret=AA").contains("unknown OTP type \"xotp\""));
    assert!(msg("otpauth://totp/b?secret=GEZDGNBV&digits=12").contains("between 6 and 10"));
    assert!(msg("otpauth://hotp/b?secret=GEZDGNBV").contains("counter"));
}

#[test]
fn from_str_and_debug() {
    let u: OtpUri = "otpauth://totp/bob?secret=GEZDGNBV".parse().unwrap();
    let dbg = format!("{u:?}");
    assert!(dbg.contains("redacted") && !dbg.contains("49, 50"), "{dbg}");
}
