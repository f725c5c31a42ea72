//! The one error type of the token core.
//!
//! Every variant maps to exactly one PKCS#11 return value ([`Error::ckr`]), so the
//! PKCS#11 adapter never has to guess, and the CLI prints [`std::fmt::Display`] text.

use cryptoki_sys::*;

/// Result alias used throughout the core.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong inside the token.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid arguments: {0}")]
    ArgumentsBad(String),
    #[error("incorrect PIN")]
    PinIncorrect,
    #[error("PIN is locked after too many wrong tries")]
    PinLocked,
    #[error("PIN length out of range ({min}..={max} bytes)")]
    PinLenRange { min: usize, max: usize },
    #[error("PIN is not valid: {0}")]
    PinInvalid(String),
    #[error("user PIN is not initialized")]
    UserPinNotInitialized,
    #[error("not logged in")]
    UserNotLoggedIn,
    #[error("already logged in")]
    UserAlreadyLoggedIn,
    #[error("another user type is already logged in")]
    UserAnotherAlreadyLoggedIn,
    #[error("user type is not valid")]
    UserTypeInvalid,
    #[error("token is not initialized")]
    TokenNotInitialized,
    #[error("token is not present: {0}")]
    TokenNotPresent(String),
    #[error("token is write protected: {0}")]
    TokenWriteProtected(String),
    #[error("session is read-only")]
    SessionReadOnly,
    #[error("a read-only session exists while the SO is logging in")]
    SessionReadOnlyExists,
    #[error("the SO is logged in: only read/write sessions can be opened")]
    SessionReadWriteSoExists,
    #[error("sessions are open on this token")]
    SessionExists,
    #[error("invalid session handle")]
    SessionHandleInvalid,
    #[error("invalid object handle")]
    ObjectHandleInvalid,
    #[error("invalid key handle")]
    KeyHandleInvalid,
    #[error("an operation is already active in this session")]
    OperationActive,
    #[error("no operation is active in this session")]
    OperationNotInitialized,
    #[error("mechanism not supported: 0x{0:x}")]
    MechanismInvalid(CK_MECHANISM_TYPE),
    #[error("mechanism parameter invalid: {0}")]
    MechanismParamInvalid(String),
    #[error("key type inconsistent with mechanism")]
    KeyTypeInconsistent,
    #[error("key does not permit this function")]
    KeyFunctionNotPermitted,
    #[error("key size out of range")]
    KeySizeRange,
    #[error("key cannot be digested")]
    KeyIndigestible,
    #[error("key cannot be wrapped")]
    KeyNotWrappable,
    #[error("key is unextractable")]
    KeyUnextractable,
    #[error("template incomplete: {0}")]
    TemplateIncomplete(String),
    #[error("template inconsistent: {0}")]
    TemplateInconsistent(String),
    #[error("attribute 0x{0:x} is read-only")]
    AttributeReadOnly(CK_ATTRIBUTE_TYPE),
    #[error("attribute 0x{0:x} is sensitive")]
    AttributeSensitive(CK_ATTRIBUTE_TYPE),
    #[error("attribute type 0x{0:x} is invalid for this object")]
    AttributeTypeInvalid(CK_ATTRIBUTE_TYPE),
    #[error("attribute 0x{0:x} has an invalid value")]
    AttributeValueInvalid(CK_ATTRIBUTE_TYPE),
    #[error("input data length out of range")]
    DataLenRange,
    #[error("input data invalid")]
    DataInvalid,
    #[error("encrypted data invalid")]
    EncryptedDataInvalid,
    #[error("encrypted data length out of range")]
    EncryptedDataLenRange,
    /// A sealed envelope or CMS message that is malformed, unsupported, changed, or
    /// not sealed to this token (`CKR_ENCRYPTED_DATA_INVALID`).
    #[error("sealed envelope: {0}")]
    Envelope(String),
    /// The token has no device key pair yet (made when the user PIN is first set).
    #[error("the token has no device identity yet (it is made when the user PIN is set)")]
    DeviceIdentityMissing,
    #[error("signature invalid")]
    SignatureInvalid,
    #[error("signature length out of range")]
    SignatureLenRange,
    #[error("wrapped key invalid")]
    WrappedKeyInvalid,
    #[error("wrapped key length out of range")]
    WrappedKeyLenRange,
    #[error("buffer too small")]
    BufferTooSmall,
    #[error("action prohibited by the object's attributes")]
    ActionProhibited,
    #[error("function not supported")]
    FunctionNotSupported,
    #[error("function rejected by the user")]
    FunctionRejected,
    /// The vault is not activated, disabled or locked (`CKR_ACTION_PROHIBITED`).
    #[error("{0}")]
    VaultUnavailable(String),
    /// A wrong vault activation code (`CKR_PIN_INCORRECT`).
    #[error("incorrect vault activation code ({tries_left} tries left)")]
    VaultCodeIncorrect { tries_left: u32 },
    /// A picture check of the gate failed (wrong, late, refreshed or unanswered;
    /// `CKR_FUNCTION_REJECTED`, like a refusal).
    #[error("picture check failed: {0}")]
    GateRejected(String),
    /// The gate locked the token after too many failed picture checks (SPEC C5):
    /// every operation fails with `CKR_DEVICE_REMOVED` — the software counterpart
    /// of a USB key that must be unplugged and replugged — until the user runs
    /// `vtoken reattach`.
    #[error(
        "the token is locked after too many failed picture checks: this machine may be \
         compromised; after checking it, run `vtoken reattach` (needs the user PIN)"
    )]
    GateLocked,
    #[error("token file is corrupt or was tampered with: {0}")]
    Corrupt(String),
    #[error("token file format version {0} is newer than this vtoken supports")]
    UnsupportedVersion(u32),
    #[error("storage error: {0}")]
    Storage(String),
    /// The disk holding the token file is full: the write was refused and the file
    /// keeps its previous state (`CKR_DEVICE_MEMORY`).
    #[error("no space left for the token file; nothing was written: {0}")]
    DeviceMemory(String),
    #[error("configuration error: {0}")]
    Config(String),
    #[error("out of memory")]
    HostMemory,
    #[error("internal error: {0}")]
    General(String),
}

impl Error {
    /// The PKCS#11 return value for this error.
    pub fn ckr(&self) -> CK_RV {
        use Error::*;
        match self {
            ArgumentsBad(_) => CKR_ARGUMENTS_BAD,
            PinIncorrect => CKR_PIN_INCORRECT,
            PinLocked => CKR_PIN_LOCKED,
            PinLenRange { .. } => CKR_PIN_LEN_RANGE,
            PinInvalid(_) => CKR_PIN_INVALID,
            UserPinNotInitialized => CKR_USER_PIN_NOT_INITIALIZED,
            UserNotLoggedIn => CKR_USER_NOT_LOGGED_IN,
            UserAlreadyLoggedIn => CKR_USER_ALREADY_LOGGED_IN,
            UserAnotherAlreadyLoggedIn => CKR_USER_ANOTHER_ALREADY_LOGGED_IN,
            UserTypeInvalid => CKR_USER_TYPE_INVALID,
            TokenNotInitialized => CKR_TOKEN_NOT_RECOGNIZED,
            TokenNotPresent(_) => CKR_TOKEN_NOT_PRESENT,
            TokenWriteProtected(_) => CKR_TOKEN_WRITE_PROTECTED,
            SessionReadOnly => CKR_SESSION_READ_ONLY,
            SessionReadOnlyExists => CKR_SESSION_READ_ONLY_EXISTS,
            SessionReadWriteSoExists => CKR_SESSION_READ_WRITE_SO_EXISTS,
            SessionExists => CKR_SESSION_EXISTS,
            SessionHandleInvalid => CKR_SESSION_HANDLE_INVALID,
            ObjectHandleInvalid => CKR_OBJECT_HANDLE_INVALID,
            KeyHandleInvalid => CKR_KEY_HANDLE_INVALID,
            OperationActive => CKR_OPERATION_ACTIVE,
            OperationNotInitialized => CKR_OPERATION_NOT_INITIALIZED,
            MechanismInvalid(_) => CKR_MECHANISM_INVALID,
            MechanismParamInvalid(_) => CKR_MECHANISM_PARAM_INVALID,
            KeyTypeInconsistent => CKR_KEY_TYPE_INCONSISTENT,
            KeyFunctionNotPermitted => CKR_KEY_FUNCTION_NOT_PERMITTED,
            KeySizeRange => CKR_KEY_SIZE_RANGE,
            KeyIndigestible => CKR_KEY_INDIGESTIBLE,
            KeyNotWrappable => CKR_KEY_NOT_WRAPPABLE,
            KeyUnextractable => CKR_KEY_UNEXTRACTABLE,
            TemplateIncomplete(_) => CKR_TEMPLATE_INCOMPLETE,
            TemplateInconsistent(_) => CKR_TEMPLATE_INCONSISTENT,
            AttributeReadOnly(_) => CKR_ATTRIBUTE_READ_ONLY,
            AttributeSensitive(_) => CKR_ATTRIBUTE_SENSITIVE,
            AttributeTypeInvalid(_) => CKR_ATTRIBUTE_TYPE_INVALID,
            AttributeValueInvalid(_) => CKR_ATTRIBUTE_VALUE_INVALID,
            DataLenRange => CKR_DATA_LEN_RANGE,
            DataInvalid => CKR_DATA_INVALID,
            EncryptedDataInvalid => CKR_ENCRYPTED_DATA_INVALID,
            EncryptedDataLenRange => CKR_ENCRYPTED_DATA_LEN_RANGE,
            Envelope(_) => CKR_ENCRYPTED_DATA_INVALID,
            DeviceIdentityMissing => CKR_FUNCTION_FAILED,
            SignatureInvalid => CKR_SIGNATURE_INVALID,
            SignatureLenRange => CKR_SIGNATURE_LEN_RANGE,
            WrappedKeyInvalid => CKR_WRAPPED_KEY_INVALID,
            WrappedKeyLenRange => CKR_WRAPPED_KEY_LEN_RANGE,
            BufferTooSmall => CKR_BUFFER_TOO_SMALL,
            ActionProhibited => CKR_ACTION_PROHIBITED,
            FunctionNotSupported => CKR_FUNCTION_NOT_SUPPORTED,
            FunctionRejected => CKR_FUNCTION_REJECTED,
            VaultUnavailable(_) => CKR_ACTION_PROHIBITED,
            VaultCodeIncorrect { .. } => CKR_PIN_INCORRECT,
            GateRejected(_) => CKR_FUNCTION_REJECTED,
            GateLocked => CKR_DEVICE_REMOVED,
            Corrupt(_) => CKR_DEVICE_ERROR,
            UnsupportedVersion(_) => CKR_DEVICE_ERROR,
            Storage(_) => CKR_DEVICE_ERROR,
            DeviceMemory(_) => CKR_DEVICE_MEMORY,
            Config(_) => CKR_GENERAL_ERROR,
            HostMemory => CKR_HOST_MEMORY,
            General(_) => CKR_GENERAL_ERROR,
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
            Error::DeviceMemory(e.to_string())
        } else {
            Error::Storage(e.to_string())
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Storage(e.to_string())
    }
}
