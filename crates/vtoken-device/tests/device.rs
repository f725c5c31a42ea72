//! Device identity, attestation and token-to-token backup on real token files.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use otp_core::OtpUri;
use vault_core::config::{Config, KdfParams};
use vault_core::identity::CKA_VTOKEN_BACKUP_ORIGIN;
use vault_core::mechanism::Mechanism;
use vault_core::pkcs11::*;
use vault_core::prompt::{Answer, Prompt, Request};
use vault_core::session::{OutLen, Output};
use vault_core::slots::Registry;
use vault_core::token::{Token, UserType};
use vault_core::vault::{Entry, Kind};
use vault_core::Attributes;
use vtoken_device::backup::{self, Summary};
use vtoken_device::{attest, certify_local, new_nonce, verify_attestation, Attestation};
use vtoken_pki::LocalCa;

const SO: &[u8] = b"so-secret-1";
const USER: &[u8] = b"user-1234";

struct Scripted {
    answer: Mutex<Answer>,
    seen: Mutex<Vec<Request>>,
}

impl Prompt for Scripted {
    fn confirm(&self, req: &Request) -> vault_core::Result<Answer> {
        self.seen.lock().unwrap().push(req.clone());
        Ok(*self.answer.lock().unwrap())
    }
    fn name(&self) -> &str {
        "scripted"
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    reg: Registry,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::for_dir(dir.path().join("tokens"));
        cfg.kdf = KdfParams::TEST;
        Fixture {
            reg: Registry::new(cfg),
            _dir: dir,
        }
    }

    /// A token with its user PIN set (so a device key), logged in as the user.
    fn token(&self, label: &str, allow_key_backup: bool) -> (Arc<Token>, Arc<Scripted>) {
        let e = self.reg.create(label, SO, None).unwrap();
        let t = self.reg.open(&e).unwrap();
        t.login(UserType::So, SO).unwrap();
        t.set_key_backup_allowed(allow_key_backup).unwrap();
        t.init_pin(USER).unwrap();
        // Fixed once the user PIN is set.
        assert!(t.set_key_backup_allowed(!allow_key_backup).is_err());
        t.logout().unwrap();
        // A session that stays open: closing a token's last session logs out.
        t.open_session(false).unwrap();
        t.login(UserType::User, USER).unwrap();
        let p = Arc::new(Scripted {
            answer: Mutex::new(Answer::Confirmed),
            seen: Mutex::new(Vec::new()),
        });
        t.set_prompt(p.clone());
        (t, p)
    }
}

fn objects(t: &Token) -> Vec<Attributes> {
    let mut q = Attributes::new();
    q.set_bool(CKA_TOKEN, true);
    let mut v: Vec<Attributes> = t
        .search(&q)
        .unwrap()
        .into_iter()
        .map(|id| {
            let mut a = (*t.attributes(id).unwrap()).clone();
            a.remove(CKA_UNIQUE_ID);
            a.remove(CKA_VTOKEN_BACKUP_ORIGIN);
            a
        })
        .collect();
    v.sort_by_key(|a| (a.label(), a.class()));
    v
}

fn sign(t: &Token, key: u64, msg: &[u8]) -> Vec<u8> {
    let s = &t.open_session(false).unwrap();
    t.sign_init(s, &Mechanism::new(CKM_ECDSA_SHA256), key)
        .unwrap();
    let out = t.sign(s, msg, OutLen::Buffer(256)).unwrap();
    t.close_session(s).unwrap();
    match out {
        Output::Bytes(b) => b,
        Output::Needed(n) => panic!("needs {n}"),
    }
}

fn find_label(t: &Token, class: CK_OBJECT_CLASS, label: &str) -> u64 {
    let mut q = Attributes::new();
    q.set_ulong(CKA_CLASS, class);
    q.set(CKA_LABEL, label.as_bytes().to_vec());
    let v = t.search(&q).unwrap();
    assert_eq!(v.len(), 1, "{label}");
    v[0]
}

/// Fills a token with one of everything that travels.
fn fill(t: &Token) {
    let s = &t.open_session(true).unwrap();
    t.vault_add(
        &Entry::new(Kind::Website, "mail")
            .with_url("https://mail.example")
            .with("username", "alice", false)
            .with("password", "s3cret-marker", true),
    )
    .unwrap();
    t.otp_add(
        &OtpUri::parse("otpauth://totp/Example:alice?secret=JBSWY3DPEHPK3PXP&issuer=Example")
            .unwrap(),
        false,
    )
    .unwrap();
    // A non-extractable signing key pair and an extractable AES key.
    let mut pubt = Attributes::new();
    pubt.set_bool(CKA_TOKEN, true);
    pubt.set(CKA_LABEL, b"sig".to_vec());
    pubt.set(
        CKA_EC_PARAMS,
        vec![0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
    );
    let mut privt = Attributes::new();
    privt.set_bool(CKA_TOKEN, true);
    privt.set_bool(CKA_SIGN, true);
    privt.set_bool(CKA_EXTRACTABLE, false);
    privt.set(CKA_LABEL, b"sig".to_vec());
    t.generate_key_pair(s, &Mechanism::new(CKM_EC_KEY_PAIR_GEN), &pubt, &privt)
        .unwrap();
    let mut at = Attributes::new();
    at.set_bool(CKA_TOKEN, true);
    at.set_bool(CKA_EXTRACTABLE, true);
    at.set_ulong(CKA_VALUE_LEN, 32);
    at.set(CKA_LABEL, b"aes".to_vec());
    t.generate_key(s, &Mechanism::new(CKM_AES_KEY_GEN), &at)
        .unwrap();
    t.close_session(s).unwrap();
}

#[test]
fn device_key_made_with_the_user_pin_and_hidden_from_pkcs11() {
    let f = Fixture::new();
    let e = f.reg.create("fresh", SO, None).unwrap();
    let t = f.reg.open(&e).unwrap();
    assert!(matches!(
        t.identity_info(),
        Err(vault_core::Error::Identity(
            vault_core::error::IdentityError::Missing
        ))
    ));
    t.login(UserType::So, SO).unwrap();
    t.init_pin(USER).unwrap();
    let info = t.identity_info().unwrap();
    assert!(info.chain.is_empty());
    assert!(!info.allow_key_backup);
    // Not a PKCS#11 object: an empty token stays empty.
    t.logout().unwrap();
    t.login(UserType::User, USER).unwrap();
    assert!(t.search(&Attributes::new()).unwrap().is_empty());
    // The public part survives a reopen and needs no login.
    drop(t);
    let t = f.reg.open(&e).unwrap();
    assert_eq!(t.identity_info().unwrap().spki, info.spki);
    // The private key needs a login.
    assert!(matches!(
        t.attest(&[7; 32]),
        Err(vault_core::Error::UserNotLoggedIn)
    ));
}

#[test]
fn attestation_verifies_and_rejects_forgery_wrong_root_and_replay() {
    let f = Fixture::new();
    let (t, _) = f.token("a", false);
    let ca = LocalCa::generate("vtoken test root", 30).unwrap();
    let nonce = new_nonce().unwrap();
    // Uncertified: no attestation.
    assert!(attest(&t, &nonce).is_err());
    certify_local(&t, &ca).unwrap();
    let att = attest(&t, &nonce).unwrap();
    let now = SystemTime::now();
    let v = verify_attestation(&att, ca.cert_der(), &nonce, now).unwrap();
    assert_eq!(v.token_serial, t.serial());

    // Replay: the same answer to a new challenge.
    let fresh = new_nonce().unwrap();
    let e = verify_attestation(&att, ca.cert_der(), &fresh, now).unwrap_err();
    assert!(e.to_string().contains("nonce"), "{e}");

    // Wrong root.
    let other = LocalCa::generate("vtoken test root", 30).unwrap();
    let e = verify_attestation(&att, other.cert_der(), &nonce, now).unwrap_err();
    assert!(e.to_string().contains("certificate rejected"), "{e}");

    // Forged certificate: same subject, same key, issued by another CA, presented
    // against the real root.
    let info = t.identity_info().unwrap();
    let forged_leaf = other
        .issue_for_spki(&info.spki, t.serial(), vtoken_pki::Usage::Device)
        .unwrap();
    let mut forged = att.clone();
    forged.chain = vec![hex::encode(&forged_leaf)];
    assert!(verify_attestation(&forged, ca.cert_der(), &nonce, now).is_err());

    // A genuine certificate of another token with this token's signature.
    let (t2, _) = f.token("b", false);
    certify_local(&t2, &ca).unwrap();
    let att2 = attest(&t2, &nonce).unwrap();
    let mut swapped: Attestation = att.clone();
    swapped.chain = att2.chain.clone();
    assert!(verify_attestation(&swapped, ca.cert_der(), &nonce, now).is_err());
    let mut bad_sig = att.clone();
    bad_sig.signature = att2.signature.clone();
    assert!(verify_attestation(&bad_sig, ca.cert_der(), &nonce, now).is_err());
    // Short nonces are refused by the token.
    assert!(t.attest(&[1; 8]).is_err());
    // The device key signs nothing but attestations and CMS signed attributes.
    assert!(t.identity_sign_cms(b"arbitrary data").is_err());
}

#[test]
fn backup_on_one_machine_keeps_every_attribute_and_keys_sign() {
    let f = Fixture::new();
    let ca = LocalCa::generate("vtoken test root", 30).unwrap();
    let (a, _) = f.token("source", true);
    let (b, pb) = f.token("target", false);
    certify_local(&a, &ca).unwrap();
    certify_local(&b, &ca).unwrap();
    fill(&a);
    let before = objects(&a);
    assert_eq!(before.len(), 5, "vault entry, OTP, EC pair, AES key");

    let sid = &b.open_session(true).unwrap();
    let summary = backup::backup_local(&a, &b, sid, Some(ca.cert_der())).unwrap();
    assert_eq!(summary.created, 5);
    assert_eq!(summary.vault_entries, 1);
    assert_eq!(summary.otp_credentials, 1);
    assert_eq!(summary.keys, 2);
    assert_eq!(summary.non_extractable_keys, 1);
    assert_eq!(summary.public_keys, 1);
    // The target showed what it stores: each object's kind and title (V11).
    let seen = pb.seen.lock().unwrap().last().cloned().unwrap();
    assert!(seen.description.contains(a.serial()), "{seen:?}");
    for item in [
        "vault entry (website): mail",
        "OTP credential: Example:alice",
        "private key (EC): sig",
        "public key (EC): sig",
        "secret key (AES): aes",
    ] {
        assert!(seen.description.contains(item), "{item}: {seen:?}");
    }
    assert!(!seen.description.contains("s3cret-marker"));

    assert_eq!(objects(&b), before, "every attribute restored");
    // Restored keys work: B signs, A's public key verifies.
    let msg = b"signed on the restored token";
    let sig = sign(&b, find_label(&b, CKO_PRIVATE_KEY, "sig"), msg);
    let s = &a.open_session(false).unwrap();
    a.verify_init(
        s,
        &Mechanism::new(CKM_ECDSA_SHA256),
        find_label(&a, CKO_PUBLIC_KEY, "sig"),
    )
    .unwrap();
    a.verify(s, msg, &sig).unwrap();
    // Vault and OTP work on B.
    let code_a = a.otp_code("Example:alice", 1_700_000_000).unwrap();
    assert_eq!(b.otp_code("Example:alice", 1_700_000_000).unwrap(), code_a);

    // A second backup of the same objects: nothing duplicated, nothing new.
    let again = backup::backup_local(&a, &b, sid, None).unwrap();
    assert_eq!((again.created, again.updated, again.unchanged), (0, 0, 5));
    assert_eq!(objects(&b), before, "no duplicates");
    // A changed vault entry on the source replaces its older copy on the target.
    let s = &a.open_session(true).unwrap();
    let vid = find_label(&a, CKO_DATA, "mail");
    a.destroy_object(s, vid).unwrap();
    a.vault_add(
        &Entry::new(Kind::Website, "mail")
            .with_url("https://mail.example")
            .with("username", "alice", false)
            .with("password", "n3w-marker", true),
    )
    .unwrap();
    a.close_session(s).unwrap();
    let third = backup::backup_local(&a, &b, sid, None).unwrap();
    assert_eq!((third.created, third.updated, third.unchanged), (1, 0, 4));
    // (A re-added entry is a new source object: its identity differs.)
    assert_eq!(objects(&b).len(), 6);
    // A source object changed in place (same CKA_UNIQUE_ID) replaces its copy.
    let s = &a.open_session(true).unwrap();
    let aes = find_label(&a, CKO_SECRET_KEY, "aes");
    let mut t = Attributes::new();
    t.set(CKA_LABEL, b"aes-renamed".to_vec());
    a.set_attributes(s, aes, &t).unwrap();
    a.close_session(s).unwrap();
    let fourth = backup::backup_local(&a, &b, sid, None).unwrap();
    assert_eq!(
        (fourth.created, fourth.updated, fourth.unchanged),
        (0, 1, 4)
    );
    assert_eq!(objects(&b).len(), 6);
    find_label(&b, CKO_SECRET_KEY, "aes-renamed");
    let mut q = Attributes::new();
    q.set(CKA_LABEL, b"aes".to_vec());
    assert!(b.search(&q).unwrap().is_empty(), "the older copy is gone");
}

/// The handshake of ¶0104–0105: the source's "enable backup" request, the
/// target's "verification passed" answer.
fn handshake(a: &Token, b: &Token, now: SystemTime) -> backup::BackupRequest {
    let st = backup::start(a).unwrap();
    backup::request(b, &st, now).unwrap()
}

fn certified_pair(
    f: &Fixture,
    ca: &LocalCa,
    allow: bool,
) -> (Arc<Token>, Arc<Token>, Arc<Scripted>) {
    let (a, _) = f.token("source", allow);
    let (b, pb) = f.token("target", false);
    certify_local(&a, ca).unwrap();
    certify_local(&b, ca).unwrap();
    fill(&a);
    (a, b, pb)
}

#[test]
fn bundle_tampering_wrong_target_refusal_and_policy_move_nothing() {
    let f = Fixture::new();
    let ca = LocalCa::generate("vtoken test root", 30).unwrap();
    let (a, b, pb) = certified_pair(&f, &ca, false);
    let now = SystemTime::now();
    let req = handshake(&a, &b, now);
    let (bundle, summary): (Vec<u8>, Summary) =
        backup::export_bundle(&a, &req, Some(ca.cert_der()), now).unwrap();
    // The non-extractable key stays on A (policy not allowed at init), named.
    assert_eq!(summary.skipped_keys, 1);
    assert_eq!(summary.skipped_labels, vec!["sig".to_string()]);
    assert!(summary.skipped_warning().unwrap().contains("sig"));
    assert_eq!(summary.keys, 1);
    let sid = &b.open_session(true).unwrap();

    // Tampered bundles: a byte flipped in several places.
    for pos in [bundle.len() / 3, bundle.len() / 2, bundle.len() - 40] {
        let mut t = bundle.clone();
        t[pos] ^= 0x01;
        assert!(backup::import_bundle(&b, sid, &t, None, None, now).is_err());
        assert!(objects(&b).is_empty(), "tampered bundle stored something");
    }
    // Truncated.
    assert!(backup::import_bundle(&b, sid, &bundle[..bundle.len() - 1], None, None, now).is_err());
    // Wrong expected source.
    assert!(backup::import_bundle(&b, sid, &bundle, None, Some("0000000000000000"), now).is_err());
    // A root the caller names that is not the target's own.
    let other = LocalCa::generate("other root", 30).unwrap();
    let e = backup::import_bundle(&b, sid, &bundle, Some(other.cert_der()), None, now).unwrap_err();
    assert!(e.to_string().contains("not the device root"), "{e}");
    // Refused on the target's prompt: nothing stored, the request stays usable.
    *pb.answer.lock().unwrap() = Answer::Refused;
    assert!(backup::import_bundle(&b, sid, &bundle, None, None, now).is_err());
    assert!(objects(&b).is_empty());
    // A bundle for B cannot be opened by a third token.
    let (c, _) = f.token("third", false);
    certify_local(&c, &ca).unwrap();
    let csid = &c.open_session(true).unwrap();
    assert!(backup::import_bundle(&c, csid, &bundle, None, None, now).is_err());
    assert!(objects(&c).is_empty());
    // A target certified by another root gets nothing, whatever root the caller names.
    let (d, _) = f.token("rogue", false);
    certify_local(&d, &other).unwrap();
    // D refuses A's start (A's certificate is not under D's root); an answer D
    // makes by hand anyway is refused by A.
    let st = backup::start(&a).unwrap();
    assert!(backup::request(&d, &st, now).is_err());
    let mut signed = d.backup_issue_nonce().unwrap();
    signed.extend_from_slice(&hex::decode(&st.random).unwrap());
    let req_d = backup::BackupRequest {
        version: backup::REQUEST_VERSION,
        attestation: attest(&d, &signed).unwrap(),
    };
    let e = backup::export_bundle(&a, &req_d, None, now).unwrap_err();
    assert!(
        e.to_string().contains("does not chain to the device root"),
        "{e}"
    );
    let e = backup::export_bundle(&a, &req_d, Some(other.cert_der()), now).unwrap_err();
    assert!(e.to_string().contains("not the device root"), "{e}");
    assert!(backup::authenticate_pair(&a, &d, now).is_err());

    // Finally accepted: B holds what travelled.
    *pb.answer.lock().unwrap() = Answer::Confirmed;
    let got = backup::import_bundle(&b, sid, &bundle, None, Some(a.serial()), now).unwrap();
    assert_eq!(got.vault_entries, 1);
    assert_eq!(objects(&b).len(), 4);
    // Replay: the same bundle again is refused and stores nothing.
    let e = backup::import_bundle(&b, sid, &bundle, None, None, now).unwrap_err();
    assert!(e.to_string().contains("already imported"), "{e}");
    assert_eq!(objects(&b).len(), 4);
    // A new request and bundle of the same objects: no duplicates.
    let req2 = handshake(&a, &b, now);
    let (bundle2, _) = backup::export_bundle(&a, &req2, None, now).unwrap();
    let got = backup::import_bundle(&b, sid, &bundle2, None, None, now).unwrap();
    assert_eq!((got.created, got.unchanged), (0, 4));
    assert_eq!(objects(&b).len(), 4);
}

/// V11 (¶0106): the source signs a digest of the plaintext, not only the
/// ciphertext. Someone who can open the envelope and have the source's key sign a
/// new CMS envelope (the outer signature is then valid) changes the data: the
/// target refuses it before showing anything, and the honest bundle still imports.
#[test]
fn data_changed_after_the_source_signed_it_is_refused() {
    let f = Fixture::new();
    let ca = LocalCa::generate("vtoken test root", 30).unwrap();
    let (a, b, pb) = certified_pair(&f, &ca, false);
    let now = SystemTime::now();
    let req = handshake(&a, &b, now);
    let (bundle, _) = backup::export_bundle(&a, &req, None, now).unwrap();
    let a_leaf = a.identity_info().unwrap().chain[0].clone();
    let b_leaf = b.identity_info().unwrap().chain[0].clone();
    let plain = vault_core::sealed::open_signed(
        &bundle,
        |_| Ok(()),
        |kt, enc| b.identity_unwrap_cek(kt, enc),
        Some(&b_leaf),
    )
    .unwrap();
    let mut content: backup::BundleContent = postcard::from_bytes(&plain).unwrap();
    let pos = content
        .payload
        .windows(4)
        .position(|w| w == b"mail")
        .expect("the vault entry's title");
    content.payload[pos] = b'M';
    let inner = postcard::to_allocvec(&content).unwrap();
    let forged =
        vault_core::sealed::seal_signed(&b_leaf, &a_leaf, &inner, |s| a.identity_sign_cms(s))
            .unwrap();
    let sid = &b.open_session(true).unwrap();
    let shown = pb.seen.lock().unwrap().len();
    let e = backup::import_bundle(&b, sid, &forged, None, None, now).unwrap_err();
    assert!(
        e.to_string().contains("changed after the source signed"),
        "{e}"
    );
    assert!(objects(&b).is_empty());
    assert_eq!(pb.seen.lock().unwrap().len(), shown, "nothing shown");
    // The request is still pending: the honest bundle imports.
    let got = backup::import_bundle(&b, sid, &bundle, None, None, now).unwrap();
    assert_eq!(got.vault_entries, 1);
}

/// ¶0104–0105 across machines: both devices prove themselves with fresh randoms.
/// The source answers each "verification passed" once; an answer replayed, one to
/// a random the source never issued, or one to another source's start is refused;
/// the target refuses a start whose certificate does not lead to its root.
#[test]
fn handshake_randoms_are_fresh_and_answers_are_not_replayed() {
    let f = Fixture::new();
    let ca = LocalCa::generate("vtoken test root", 30).unwrap();
    let (a, b, _) = certified_pair(&f, &ca, false);
    let now = SystemTime::now();
    let st = backup::start(&a).unwrap();
    assert_eq!(st.serial, a.serial());
    let req = backup::request(&b, &st, now).unwrap();
    backup::export_bundle(&a, &req, None, now).unwrap();
    // The same answer again: refused (its random is spent).
    let e = backup::export_bundle(&a, &req, None, now).unwrap_err();
    assert!(e.to_string().contains("backup start"), "{e}");
    // A start with a random A never issued: B answers it, A refuses the answer.
    let mut forged = backup::start(&a).unwrap();
    forged.random = hex::encode([7u8; 32]);
    let req = backup::request(&b, &forged, now).unwrap();
    let e = backup::export_bundle(&a, &req, None, now).unwrap_err();
    assert!(e.to_string().contains("no pending backup start"), "{e}");
    // An answer to another source's start.
    let (c, _) = f.token("third", false);
    certify_local(&c, &ca).unwrap();
    let req = handshake(&c, &b, now);
    assert!(backup::export_bundle(&a, &req, None, now).is_err());
    // A start claiming another serial than its certificate, and one from a token
    // certified under another root: the target answers neither.
    let mut lying = backup::start(&a).unwrap();
    lying.serial = c.serial().to_string();
    let e = backup::request(&b, &lying, now).unwrap_err();
    assert!(e.to_string().contains("claims"), "{e}");
    let other = LocalCa::generate("other root", 30).unwrap();
    let (d, _) = f.token("rogue", false);
    certify_local(&d, &other).unwrap();
    let e = backup::request(&b, &backup::start(&d).unwrap(), now).unwrap_err();
    assert!(e.to_string().contains("source certificate refused"), "{e}");
    // The attestation covers the source's random: changing it breaks the answer.
    let st = backup::start(&a).unwrap();
    let mut req = backup::request(&b, &st, now).unwrap();
    let mut n = hex::decode(&req.attestation.nonce).unwrap();
    let other_random = backup::start(&a).unwrap().random;
    n.truncate(32);
    n.extend_from_slice(&hex::decode(other_random).unwrap());
    req.attestation.nonce = hex::encode(n);
    let e = backup::export_bundle(&a, &req, None, now).unwrap_err();
    assert!(e.to_string().contains("not authenticated"), "{e}");
}

/// ¶0109: the chunked alternative. Each part is sealed to the target on its own
/// and the list is signed by the source; the import takes it like a one-envelope
/// bundle. A part changed, dropped or reordered, or the list re-signed by someone
/// else, is refused and nothing is stored.
#[test]
fn chunked_bundle_imports_and_refuses_changed_parts() {
    use vtoken_device::chunked::{ChunkedBundle, MIN_CHUNK};
    let f = Fixture::new();
    let ca = LocalCa::generate("vtoken test root", 30).unwrap();
    let (a, b, pb) = certified_pair(&f, &ca, true);
    let now = SystemTime::now();
    let req = handshake(&a, &b, now);
    let (bundle, _) =
        backup::export_bundle_with(&a, &req, None, now, backup::Delivery::Chunked(MIN_CHUNK))
            .unwrap();
    let (content, _) = vault_core::sealed::verify_signed(&bundle).unwrap();
    let list: ChunkedBundle = postcard::from_bytes(&content).unwrap();
    assert!(list.chunks.len() > 2, "{} parts", list.chunks.len());
    // Each part is an envelope to B alone: a third token cannot open one.
    let (c, _) = f.token("third", false);
    certify_local(&c, &ca).unwrap();
    assert!(vault_core::sealed::open(
        &list.chunks[0],
        |kt, enc| c.identity_unwrap_cek(kt, enc),
        None
    )
    .is_err());
    let a_leaf = a.identity_info().unwrap().chain[0].clone();
    let c_leaf = c.identity_info().unwrap().chain[0].clone();
    let resign = |chunks: Vec<Vec<u8>>, by: &Token, leaf: &[u8]| {
        let l = postcard::to_allocvec(&ChunkedBundle {
            magic: *vtoken_device::chunked::MAGIC,
            chunks,
        })
        .unwrap();
        vault_core::sealed::sign(&l, leaf, |s| by.identity_sign_cms(s)).unwrap()
    };
    let sid = &b.open_session(true).unwrap();
    let mut dropped = list.chunks.clone();
    dropped.remove(1);
    let mut swapped = list.chunks.clone();
    swapped.swap(0, 1);
    let mut flipped = list.chunks.clone();
    let n = flipped[1].len();
    flipped[1][n - 30] ^= 1;
    for (what, bad) in [
        // Re-signed by the source itself: only the digest signature inside
        // catches a dropped or reordered part; a flipped byte fails its envelope.
        ("dropped", resign(dropped, &a, &a_leaf)),
        ("reordered", resign(swapped, &a, &a_leaf)),
        ("flipped", resign(flipped, &a, &a_leaf)),
        // The whole list signed by another token of the same root.
        ("foreign signer", resign(list.chunks.clone(), &c, &c_leaf)),
    ] {
        let e = backup::import_bundle(&b, sid, &bad, None, Some(a.serial()), now);
        assert!(e.is_err(), "{what} accepted");
        assert!(objects(&b).is_empty(), "{what}: stored something");
    }
    // A byte of the signed list itself.
    let mut t = bundle.clone();
    let n = t.len();
    t[n / 2] ^= 1;
    assert!(backup::import_bundle(&b, sid, &t, None, None, now).is_err());
    // The real one: stored, shown like a one-envelope bundle.
    let got = backup::import_bundle(&b, sid, &bundle, None, Some(a.serial()), now).unwrap();
    assert_eq!(got.created, objects(&a).len());
    assert_eq!(objects(&b), objects(&a));
    let seen = pb.seen.lock().unwrap().last().cloned().unwrap();
    assert!(seen.description.contains("vault entry (website): mail"));
    // Once only.
    assert!(backup::import_bundle(&b, sid, &bundle, None, None, now).is_err());
}

#[test]
fn device_root_is_fixed_and_only_device_certificates_receive() {
    let f = Fixture::new();
    let ca = LocalCa::generate("vtoken test root", 30).unwrap();
    let (a, b, _) = certified_pair(&f, &ca, false);
    let now = SystemTime::now();
    // PIN holder re-roots the source to a CA of their own: refused, root unchanged.
    let evil = LocalCa::generate("vtoken test root", 30).unwrap();
    let e = certify_local(&a, &evil).unwrap_err();
    assert!(e.to_string().contains("device root is fixed"), "{e}");
    assert_eq!(vtoken_device::own_root(&a).unwrap(), ca.cert_der().to_vec());
    // Renewal under the same root is fine.
    certify_local(&a, &ca).unwrap();
    // A certificate of the right root for B's key, but with the client usage.
    let mut req = handshake(&a, &b, now);
    let info = b.identity_info().unwrap();
    let client = ca
        .issue_for_spki(&info.spki, b.serial(), vtoken_pki::Usage::Client)
        .unwrap();
    req.attestation.chain = vec![hex::encode(&client), hex::encode(ca.cert_der())];
    let e = backup::export_bundle(&a, &req, None, now).unwrap_err();
    assert!(e.to_string().contains("not a device certificate"), "{e}");
    let signing = ca
        .issue_for_spki(&info.spki, b.serial(), vtoken_pki::Usage::Signing)
        .unwrap();
    req.attestation.chain = vec![hex::encode(&signing)];
    let e = backup::export_bundle(&a, &req, None, now).unwrap_err();
    assert!(e.to_string().contains("not a device certificate"), "{e}");
}

#[test]
fn export_needs_the_source_prompt_and_the_gate() {
    let f = Fixture::new();
    let ca = LocalCa::generate("vtoken test root", 30).unwrap();
    let (a, _) = f.token("source", false);
    let (b, _) = f.token("target", false);
    certify_local(&a, &ca).unwrap();
    certify_local(&b, &ca).unwrap();
    fill(&a);
    let now = SystemTime::now();
    let req = handshake(&a, &b, now);
    // The source's prompt: refused, nothing sealed.
    let pa = Arc::new(Scripted {
        answer: Mutex::new(Answer::Refused),
        seen: Mutex::new(Vec::new()),
    });
    a.set_prompt(pa.clone());
    assert!(backup::export_bundle(&a, &req, None, now).is_err());
    let seen = pa.seen.lock().unwrap().last().cloned().unwrap();
    assert!(seen.description.contains(b.serial()), "{seen:?}");
    assert!(
        seen.description.contains("sig"),
        "skipped key named: {seen:?}"
    );
    // Confirmed: a bundle.
    *pa.answer.lock().unwrap() = Answer::Confirmed;
    backup::export_bundle(&a, &req, None, now).unwrap();

    // A gated key among what travels gates the whole export, even with no class
    // listed: the prompt agent cannot show the picture, so nothing is sealed.
    let s = &a.open_session(true).unwrap();
    let mut at = Attributes::new();
    at.set_bool(CKA_TOKEN, true);
    at.set_bool(CKA_EXTRACTABLE, true);
    at.set_bool(vault_core::object::CKA_VTOKEN_GATED, true);
    at.set_ulong(CKA_VALUE_LEN, 32);
    at.set(CKA_LABEL, b"gated-aes".to_vec());
    a.generate_key(s, &Mechanism::new(CKM_AES_KEY_GEN), &at)
        .unwrap();
    a.close_session(s).unwrap();
    a.gate_configure(vault_core::gate::GatePolicy {
        enabled: true,
        classes: vec![],
        ..Default::default()
    })
    .unwrap();
    let asked = pa.seen.lock().unwrap().len();
    let req = handshake(&a, &b, now);
    let e = backup::export_bundle(&a, &req, None, now).unwrap_err();
    assert!(
        matches!(
            e,
            vtoken_device::Error::Token(
                vault_core::Error::FunctionRejected
                    | vault_core::Error::NotConfirmed(_)
                    | vault_core::Error::Gate(_)
            )
        ),
        "{e}"
    );
    // The gate stopped it: the confirmation was never asked.
    assert_eq!(pa.seen.lock().unwrap().len(), asked);
}
