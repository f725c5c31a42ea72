//! Unit tests of object templates (SPEC T3): defaults, template errors, update rules,
//! keys always private, and searches that would probe a hidden value.

use super::*;

fn aes_template() -> Attributes {
    let mut t = Attributes::new();
    t.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
    t.set_ulong(CKA_KEY_TYPE, CKK_AES);
    t.set(CKA_VALUE, vec![7u8; 32]);
    t
}

#[test]
fn defaults_for_an_imported_secret_key() {
    let o = build(&aes_template(), Origin::Create, &Attributes::new()).unwrap();
    assert_eq!(o.get_bool(CKA_SENSITIVE).unwrap(), Some(true));
    assert_eq!(o.get_bool(CKA_LOCAL).unwrap(), Some(false));
    assert_eq!(o.get_bool(CKA_ALWAYS_SENSITIVE).unwrap(), Some(false));
    assert_eq!(o.get_ulong(CKA_VALUE_LEN).unwrap(), Some(32));
    assert_eq!(o.get_bool(CKA_PRIVATE).unwrap(), Some(true));
    assert!(hides_secrets(&o));
}

#[test]
fn template_errors() {
    let mut t = aes_template();
    t.set(CKA_VALUE, vec![1u8; 15]);
    assert!(matches!(
        build(&t, Origin::Create, &Attributes::new()),
        Err(Error::AttributeValueInvalid(_))
    ));
    let mut t = aes_template();
    t.set(CKA_MODULUS, vec![1]);
    assert!(matches!(
        build(&t, Origin::Create, &Attributes::new()),
        Err(Error::AttributeTypeInvalid(_))
    ));
    let mut t = aes_template();
    t.set_bool(CKA_LOCAL, true);
    assert!(matches!(
        build(&t, Origin::Create, &Attributes::new()),
        Err(Error::AttributeReadOnly(_))
    ));
    let mut t = Attributes::new();
    t.set(CKA_LABEL, b"x".to_vec());
    assert!(matches!(
        build(&t, Origin::Create, &Attributes::new()),
        Err(Error::TemplateIncomplete(_))
    ));
    let mut t = aes_template();
    t.set(CKA_TOKEN, vec![1, 1]);
    assert!(matches!(
        build(&t, Origin::Create, &Attributes::new()),
        Err(Error::AttributeValueInvalid(_))
    ));
}

#[test]
fn update_rules() {
    let o = build(&aes_template(), Origin::Create, &Attributes::new()).unwrap();
    let mut t = Attributes::new();
    t.set(CKA_ID, b"new".to_vec());
    assert_eq!(apply_update(&o, &t).unwrap().get(CKA_ID), Some(&b"new"[..]));
    let mut t = Attributes::new();
    t.set_bool(CKA_SENSITIVE, false);
    assert!(matches!(
        apply_update(&o, &t),
        Err(Error::AttributeReadOnly(_))
    ));
    let mut t = Attributes::new();
    t.set(CKA_VALUE, vec![0u8; 32]);
    assert!(matches!(
        apply_update(&o, &t),
        Err(Error::AttributeReadOnly(_))
    ));
    let mut t = Attributes::new();
    t.set_bool(CKA_MODIFIABLE, false);
    let ro = apply_copy(&o, &t).unwrap();
    let mut t = Attributes::new();
    t.set(CKA_LABEL, b"l".to_vec());
    assert!(apply_update(&ro, &t).is_err());
}

#[test]
fn keys_are_always_private() {
    let mut t = aes_template();
    t.set_bool(CKA_PRIVATE, false);
    assert!(matches!(
        build(&t, Origin::Create, &Attributes::new()),
        Err(Error::AttributeValueInvalid(CKA_PRIVATE))
    ));
    let o = build(&aes_template(), Origin::Create, &Attributes::new()).unwrap();
    let mut p = Attributes::new();
    p.set_bool(CKA_PRIVATE, false);
    assert!(apply_copy(&o, &p).is_err());
    assert!(apply_update(&o, &p).is_err());
    // A record an older version wrote with CKA_PRIVATE=false: still private, and
    // private again once copied or changed.
    let mut old = o.clone();
    old.set_bool(CKA_PRIVATE, false);
    assert!(is_private(&old));
    let copy = apply_copy(&old, &Attributes::new()).unwrap();
    assert_eq!(copy.get_bool(CKA_PRIVATE).unwrap(), Some(true));
    let mut l = Attributes::new();
    l.set(CKA_LABEL, b"x".to_vec());
    let upd = apply_update(&old, &l).unwrap();
    assert_eq!(upd.get_bool(CKA_PRIVATE).unwrap(), Some(true));
    // Public keys and data objects may be public.
    let mut d = Attributes::new();
    d.set_ulong(CKA_CLASS, CKO_DATA);
    d.set_bool(CKA_PRIVATE, false);
    assert!(!is_private(
        &build(&d, Origin::Create, &Attributes::new()).unwrap()
    ));
}

#[test]
fn a_template_naming_a_hidden_value_never_matches() {
    let o = build(&aes_template(), Origin::Create, &Attributes::new()).unwrap();
    let mut guess = Attributes::new();
    guess.set(CKA_VALUE, vec![7u8; 32]);
    assert!(o.matches(&guess), "the guess is right");
    assert!(probes_secret(&o, &guess));
    let mut t = aes_template();
    t.set_bool(CKA_SENSITIVE, false);
    t.set_bool(CKA_EXTRACTABLE, true);
    let open = build(&t, Origin::Create, &Attributes::new()).unwrap();
    assert!(!probes_secret(&open, &guess));
    let mut label = Attributes::new();
    label.set(CKA_LABEL, Vec::new());
    assert!(!probes_secret(&o, &label));
}
