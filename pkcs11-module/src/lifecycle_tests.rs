//! One end-to-end pass through the exported functions on a temporary token
//! directory. A single test, because the module's state is process-global.

use std::ptr::null_mut;

use cryptoki_sys::*;

use crate::crypto::*;
use crate::general::*;
use crate::keys::*;
use crate::object::*;
use crate::session::*;
use crate::slot::*;

fn slots() -> Vec<CK_SLOT_ID> {
    let mut n: CK_ULONG = 0;
    // SAFETY: `n` is a live local; `v` holds the `n` slot IDs the count says.
    unsafe {
        assert_eq!(C_GetSlotList(CK_TRUE, null_mut(), &mut n), CKR_OK);
        let mut v = vec![0; n as usize];
        assert_eq!(C_GetSlotList(CK_TRUE, v.as_mut_ptr(), &mut n), CKR_OK);
        v
    }
}

#[test]
fn lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("vtoken.toml");
    let toml = format!(
        "token_dir = \"{}\"\nkdf = \"test\"\n",
        dir.path().join("tokens").display()
    );
    std::fs::write(&conf, toml).unwrap();
    std::env::set_var("VTOKEN_CONF", &conf);
    // SAFETY: every pointer passed below is NULL where the function allows it or
    // points to a live local of the type and length the call states, as a C caller's.
    unsafe {
        let mut n: CK_ULONG = 0;
        assert_eq!(
            C_GetSlotList(0, null_mut(), &mut n),
            CKR_CRYPTOKI_NOT_INITIALIZED
        );
        assert_eq!(C_Finalize(null_mut()), CKR_CRYPTOKI_NOT_INITIALIZED);
        assert_eq!(C_Initialize(null_mut()), CKR_OK);
        assert_eq!(C_Initialize(null_mut()), CKR_CRYPTOKI_ALREADY_INITIALIZED);

        // One free slot; initializing it keeps its ID and adds a new free slot.
        let s0 = slots();
        assert_eq!(s0.len(), 1);
        let free = s0[0];
        let mut ti = CK_TOKEN_INFO::default();
        assert_eq!(C_GetTokenInfo(free, &mut ti), CKR_OK);
        assert_eq!(ti.flags & CKF_TOKEN_INITIALIZED, 0);
        let mut h: CK_SESSION_HANDLE = 0;
        let rw = CKF_SERIAL_SESSION | CKF_RW_SESSION;
        assert_eq!(
            C_OpenSession(free, rw, null_mut(), None, &mut h),
            CKR_TOKEN_NOT_RECOGNIZED
        );
        let mut so = *b"12345678";
        let mut label = crate::convert::padded::<32>("unit");
        assert_eq!(
            C_InitToken(free, so.as_mut_ptr(), 8, label.as_mut_ptr()),
            CKR_OK
        );
        let s1 = slots();
        assert_eq!(s1.len(), 2);
        assert_eq!(s1[0], free);
        assert_ne!(s1[1], free);
        assert_eq!(C_GetTokenInfo(free, &mut ti), CKR_OK);
        assert_eq!(&ti.label[..5], b"unit ");
        assert_eq!(C_GetTokenInfo(12345, &mut ti), CKR_SLOT_ID_INVALID);

        // SO sets the user PIN; the user logs in.
        assert_eq!(
            C_OpenSession(free, CKF_RW_SESSION, null_mut(), None, &mut h),
            CKR_SESSION_PARALLEL_NOT_SUPPORTED
        );
        assert_eq!(C_OpenSession(free, rw, null_mut(), None, &mut h), CKR_OK);
        assert_eq!(C_Login(h, CKU_SO, so.as_mut_ptr(), 8), CKR_OK);
        let mut user = *b"123456";
        assert_eq!(C_InitPIN(h, user.as_mut_ptr(), 6), CKR_OK);
        assert_eq!(C_Logout(h), CKR_OK);
        let mut wrong = *b"000000";
        assert_eq!(
            C_Login(h, CKU_USER, wrong.as_mut_ptr(), 6),
            CKR_PIN_INCORRECT
        );
        assert_eq!(C_Login(h, CKU_USER, user.as_mut_ptr(), 6), CKR_OK);
        let mut si = CK_SESSION_INFO::default();
        assert_eq!(C_GetSessionInfo(h, &mut si), CKR_OK);
        assert_eq!((si.slotID, si.state), (free, CKS_RW_USER_FUNCTIONS));
        assert_eq!(
            C_GetSessionInfo(h + 1000, &mut si),
            CKR_SESSION_HANDLE_INVALID
        );

        // An AES key; its value is sensitive.
        let mut len: CK_ULONG = 32;
        let mut yes: CK_BBOOL = CK_TRUE;
        let mut tmpl = [
            CK_ATTRIBUTE {
                type_: CKA_VALUE_LEN,
                pValue: &mut len as *mut _ as *mut _,
                ulValueLen: 8,
            },
            CK_ATTRIBUTE {
                type_: CKA_ENCRYPT,
                pValue: &mut yes as *mut _ as *mut _,
                ulValueLen: 1,
            },
            CK_ATTRIBUTE {
                type_: CKA_DECRYPT,
                pValue: &mut yes as *mut _ as *mut _,
                ulValueLen: 1,
            },
        ];
        let mut mech = CK_MECHANISM {
            mechanism: CKM_AES_KEY_GEN,
            pParameter: null_mut(),
            ulParameterLen: 0,
        };
        let mut key: CK_OBJECT_HANDLE = 0;
        assert_eq!(
            C_GenerateKey(h, &mut mech, tmpl.as_mut_ptr(), 3, &mut key),
            CKR_OK
        );
        assert_eq!(
            C_GenerateKey(h, null_mut(), tmpl.as_mut_ptr(), 3, &mut key),
            CKR_ARGUMENTS_BAD
        );
        let mut vl = [0u8; 8];
        let mut get = [
            CK_ATTRIBUTE {
                type_: CKA_VALUE,
                pValue: null_mut(),
                ulValueLen: 0,
            },
            CK_ATTRIBUTE {
                type_: CKA_VALUE_LEN,
                pValue: vl.as_mut_ptr() as *mut _,
                ulValueLen: 8,
            },
            CK_ATTRIBUTE {
                type_: CKA_MODULUS,
                pValue: null_mut(),
                ulValueLen: 0,
            },
        ];
        assert_ne!(C_GetAttributeValue(h, key, get.as_mut_ptr(), 3), CKR_OK);
        assert_eq!(get[0].ulValueLen, CK_UNAVAILABLE_INFORMATION);
        assert_eq!(u64::from_le_bytes(vl), 32);
        assert_eq!(get[2].ulValueLen, CK_UNAVAILABLE_INFORMATION);

        // AES-CBC-PAD round trip with the length protocol.
        let mut iv = [3u8; 16];
        let mut cbc = CK_MECHANISM {
            mechanism: CKM_AES_CBC_PAD,
            pParameter: iv.as_mut_ptr() as *mut _,
            ulParameterLen: 16,
        };
        let mut plain = *b"seventeen bytes!!";
        assert_eq!(C_EncryptInit(h, &mut cbc, key), CKR_OK);
        let mut out_len: CK_ULONG = 0;
        assert_eq!(
            C_Encrypt(h, plain.as_mut_ptr(), 17, null_mut(), &mut out_len),
            CKR_OK
        );
        assert!(out_len >= 32);
        let mut small = [0u8; 4];
        let mut small_len: CK_ULONG = 4;
        assert_eq!(
            C_Encrypt(
                h,
                plain.as_mut_ptr(),
                17,
                small.as_mut_ptr(),
                &mut small_len
            ),
            CKR_BUFFER_TOO_SMALL
        );
        let mut ct = vec![0u8; out_len as usize];
        assert_eq!(
            C_Encrypt(h, plain.as_mut_ptr(), 17, ct.as_mut_ptr(), &mut out_len),
            CKR_OK
        );
        assert_eq!(out_len, 32);
        assert_eq!(C_DecryptInit(h, &mut cbc, key), CKR_OK);
        let mut back = [0u8; 32];
        let mut back_len: CK_ULONG = 32;
        assert_eq!(
            C_Decrypt(h, ct.as_mut_ptr(), 32, back.as_mut_ptr(), &mut back_len),
            CKR_OK
        );
        assert_eq!(&back[..back_len as usize], &plain[..]);

        // Random needs a session; finalize ends everything.
        let mut rnd = [0u8; 16];
        assert_eq!(C_GenerateRandom(h, rnd.as_mut_ptr(), 16), CKR_OK);
        assert_eq!(
            C_GenerateRandom(0, rnd.as_mut_ptr(), 16),
            CKR_SESSION_HANDLE_INVALID
        );
        assert_eq!(C_Finalize(std::ptr::dangling_mut()), CKR_ARGUMENTS_BAD);
        assert_eq!(C_Finalize(null_mut()), CKR_OK);
        assert_eq!(
            C_GenerateRandom(h, rnd.as_mut_ptr(), 16),
            CKR_CRYPTOKI_NOT_INITIALIZED
        );
    }
}
