//! The one error type of the token core.
//!
//! Every variant maps to exactly one PKCS#11 return value ([`Error::ckr`]), so the
//! PKCS#11 adapter never has to guess, and the CLI prints [`std::fmt::Display`] text.

use std::path::PathBuf;

use cryptoki_sys::*;

/// Result alias used throughout the core.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong inside the token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    /// not sealed to this token (`CKR_ENCRYPTED_DATA_INVALID`; SPEC V8, E3).
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// The token's identity key pair (SPEC E1) is missing or unusable.
    #[error(transparent)]
    Identity(#[from] IdentityError),
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
    /// An action the token refuses in its current state, with the reason and what
    /// to do (`CKR_ACTION_PROHIBITED`).
    #[error("{0}")]
    Prohibited(String),
    #[error("function not supported")]
    FunctionNotSupported,
    #[error("function rejected by the user")]
    FunctionRejected,
    /// A confirmation the user did not give, and why (`CKR_FUNCTION_REJECTED`, like
    /// [`Error::FunctionRejected`]; the reason is for people, PKCS#11 sees one code).
    #[error(transparent)]
    NotConfirmed(#[from] NotConfirmed),
    /// The password vault refused (SPEC V2–V4).
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The picture gate refused or locked the token (SPEC C1–C5).
    #[error(transparent)]
    Gate(#[from] GateError),
    /// The token file or the disk under it (SPEC T5).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The trusted prompt agent could not ask (SPEC V5, C2).
    #[error(transparent)]
    Prompt(#[from] PromptError),
    /// The configuration file, `VTOKEN_*` settings or the token directory.
    #[error("configuration error: {0}")]
    Config(#[from] ConfigError),
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
            Identity(IdentityError::Missing) => CKR_FUNCTION_FAILED,
            SignatureInvalid => CKR_SIGNATURE_INVALID,
            SignatureLenRange => CKR_SIGNATURE_LEN_RANGE,
            WrappedKeyInvalid => CKR_WRAPPED_KEY_INVALID,
            WrappedKeyLenRange => CKR_WRAPPED_KEY_LEN_RANGE,
            BufferTooSmall => CKR_BUFFER_TOO_SMALL,
            ActionProhibited | Prohibited(_) => CKR_ACTION_PROHIBITED,
            FunctionNotSupported => CKR_FUNCTION_NOT_SUPPORTED,
            FunctionRejected | NotConfirmed(_) => CKR_FUNCTION_REJECTED,
            Vault(VaultError::Unavailable(_)) => CKR_ACTION_PROHIBITED,
            Vault(VaultError::CodeIncorrect { .. }) => CKR_PIN_INCORRECT,
            Gate(GateError::Rejected { .. }) => CKR_FUNCTION_REJECTED,
            Gate(GateError::Locked | GateError::LockedNow { .. }) => CKR_DEVICE_REMOVED,
            Store(StoreError::Full(_)) => CKR_DEVICE_MEMORY,
            Store(
                StoreError::Corrupt { .. }
                | StoreError::UnsupportedVersion(_)
                | StoreError::Sqlite(_)
                | StoreError::Io(_)
                | StoreError::Exists(_)
                | StoreError::Busy(_)
                | StoreError::Create { .. },
            ) => CKR_DEVICE_ERROR,
            Prompt(_) => CKR_GENERAL_ERROR,
            Config(_) => CKR_GENERAL_ERROR,
            HostMemory => CKR_HOST_MEMORY,
            General(_) => CKR_GENERAL_ERROR,
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Store(StoreError::from(e))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Store(StoreError::Io(e))
    }
}

impl Error {
    /// A sealed envelope or CMS message vtoken refuses.
    pub fn envelope(msg: String) -> Error {
        Error::Envelope(EnvelopeError::Invalid(msg))
    }

    /// A damaged part of the token file (`CKR_DEVICE_ERROR`).
    pub fn corrupt(part: Part, detail: impl Into<String>) -> Error {
        Error::Store(StoreError::Corrupt {
            part,
            detail: detail.into(),
        })
    }

    /// An invalid configuration setting.
    pub fn config(setting: &'static str, problem: impl Into<String>) -> Error {
        Error::Config(ConfigError::Invalid {
            setting,
            problem: problem.into(),
        })
    }
}

/// The token file or the disk under it (SPEC T5). Every variant but [`StoreError::Full`]
/// is `CKR_DEVICE_ERROR`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A record failed its integrity check or does not decode: the file was damaged or
    /// changed outside vtoken. Nothing is repaired silently.
    #[error("token file is corrupt or was tampered with: {part}: {detail}")]
    Corrupt { part: Part, detail: String },
    #[error("token file format version {0} is newer than this vtoken supports")]
    UnsupportedVersion(u32),
    #[error("storage error: {0}")]
    Sqlite(rusqlite::Error),
    #[error("storage error: {0}")]
    Io(std::io::Error),
    /// A token file is created only where none exists.
    #[error("storage error: {} already exists", .0.display())]
    Exists(PathBuf),
    #[error("storage error: cannot create {}: {source}", path.display())]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A write lost too many races with other processes; retrying later succeeds.
    #[error("storage error: {0}")]
    Busy(&'static str),
    /// The disk is full: the write was refused and the file keeps its previous state
    /// (`CKR_DEVICE_MEMORY`).
    #[error("no space left for the token file; nothing was written: {0}")]
    Full(rusqlite::Error),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
            StoreError::Full(e)
        } else {
            StoreError::Sqlite(e)
        }
    }
}

/// Which part of the token file is damaged.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Part {
    /// The file as a whole (not SQLite, wrong schema, unreadable).
    File(PathBuf),
    /// The format record (version, KDF parameters).
    Format,
    /// The sealed token header (labels, PIN verifiers, policies).
    Header,
    /// A persistent object record, by row id.
    Object(u64),
    /// A PIN or vault counter, by name.
    Counter(String),
    /// The key that seals public records.
    PublicRecordKey,
    /// The gate's persisted state (SPEC C5).
    GateState,
    /// The vault's persisted state (SPEC V2–V4).
    VaultState,
    /// The token's prompt policy (SPEC V5).
    PromptPolicy,
    /// An OTP credential's parameters (SPEC V9–V11).
    Otp,
    /// The identity key pair or its bound root (SPEC E1, E4).
    Identity,
    /// Pending backup requests (SPEC E5).
    BackupRequests,
    /// The SQLite schema (only vtoken's tables and indexes are accepted).
    Schema,
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Part::File(p) => write!(f, "{}", p.display()),
            Part::Format => f.write_str("format record"),
            Part::Header => f.write_str("token header"),
            Part::Object(id) => write!(f, "object {id}"),
            Part::Counter(n) => write!(f, "counter '{n}'"),
            Part::PublicRecordKey => f.write_str("public-record key"),
            Part::GateState => f.write_str("gate state"),
            Part::VaultState => f.write_str("vault state"),
            Part::PromptPolicy => f.write_str("prompt policy"),
            Part::Otp => f.write_str("OTP credential"),
            Part::Identity => f.write_str("identity key"),
            Part::BackupRequests => f.write_str("backup requests"),
            Part::Schema => f.write_str("schema"),
        }
    }
}

/// The password vault refused (SPEC V2–V4).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// Not activated, activation locked, or disabled (`CKR_ACTION_PROHIBITED`).
    #[error("{0}")]
    Unavailable(VaultUnavailable),
    /// A wrong activation code (`CKR_PIN_INCORRECT`).
    #[error("incorrect vault activation code ({tries_left} tries left)")]
    CodeIncorrect { tries_left: u32 },
}

/// Why the vault cannot be used, each with the user's way out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum VaultUnavailable {
    NotActivated,
    ActivationLocked { max_tries: u32 },
    Disabled,
}

impl std::fmt::Display for VaultUnavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VaultUnavailable::NotActivated => f.write_str(
                "the vault is not activated: enter the activation code with `vtoken vault activate`",
            ),
            VaultUnavailable::ActivationLocked { max_tries } => write!(
                f,
                "the vault activation is locked after {max_tries} wrong activation codes; only \
                 re-initializing the token (which erases it) makes the vault available again"
            ),
            VaultUnavailable::Disabled => {
                f.write_str("the vault is disabled: switch it on with `vtoken vault enable`")
            }
        }
    }
}

/// Why a confirmation was not given: three different situations, each with its own
/// fix, so a person is told which one happened.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotConfirmed {
    /// The person said no (or closed the dialog), or the agent refused for them.
    #[error("not confirmed: you (or the {agent} prompt agent) said no")]
    Refused { agent: String },
    /// Nobody answered within the prompt timeout.
    #[error(
        "not confirmed: no answer within {secs} s on the {agent} prompt; answer sooner, or \
         raise the prompt timeout (`timeout_secs` in the `[prompt]` section of the \
         configuration)"
    )]
    TimedOut { agent: String, secs: u64 },
    /// No agent can ask: the token's policy is `deny`, or its agent cannot be shown
    /// here (`why`).
    #[error(
        "not confirmed: no prompt agent can ask ({why}); the SO configures one with \
         `vtoken prompt set --agent tty` (a terminal), `--agent desktop` (a dialog on \
         the desktop) or `--agent pinentry`"
    )]
    NoAgent { why: String },
}

/// The picture gate (SPEC C1–C5).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GateError {
    /// A picture check failed — wrong, late, refreshed or unanswered — with chances
    /// left (`CKR_FUNCTION_REJECTED`, like a refusal).
    #[error("picture check failed: {reason}; {left} chance{} left", if *.left == 1 { "" } else { "s" })]
    Rejected { reason: GateFailure, left: u32 },
    /// The gate locked the token after too many failed picture checks (SPEC C5): every
    /// operation fails with `CKR_DEVICE_REMOVED` — the software counterpart of a USB key
    /// that must be unplugged and replugged — until the SO runs `vtoken reattach`.
    #[error("{LOCKED}")]
    Locked,
    /// [`GateError::Locked`], caused by this very request: its picture was the last
    /// chance, and `last` says what became of it (the answer was wrong, came too
    /// late, ...). The same `CKR_DEVICE_REMOVED`.
    #[error("{}{LOCKED}", .last.last_chance())]
    LockedNow { last: GateFailure },
}

/// The lock message (both lock variants).
const LOCKED: &str = "the token is locked after too many failed picture checks: this machine \
                      may be compromised; after checking it, run `vtoken reattach` (needs the \
                      SO PIN)";

impl GateError {
    /// Whether the token is locked (either lock variant).
    pub fn is_locked(&self) -> bool {
        matches!(self, GateError::Locked | GateError::LockedNow { .. })
    }
}

/// How a picture check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GateFailure {
    Wrong,
    Late,
    Unanswered,
    Refreshed,
    Refused,
    AgentFailed,
    Replaced,
    Abandoned,
}

impl GateFailure {
    /// The reason as the user reads it (lower case, no full stop).
    /// What became of the last chance, as the lock message starts ("the answer to
    /// the last picture was wrong; ").
    pub fn last_chance(self) -> String {
        match self {
            GateFailure::Wrong => "the answer to the last picture was wrong; ".into(),
            GateFailure::Late | GateFailure::Unanswered => {
                "the answer to the last picture came too late; ".into()
            }
            other => format!("the last picture failed ({}); ", other.as_str()),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            GateFailure::Wrong => "wrong answer",
            GateFailure::Late => "the answer came too late",
            GateFailure::Unanswered => "no answer in time",
            GateFailure::Refreshed => "new picture requested",
            GateFailure::Refused => "refused by the user",
            GateFailure::AgentFailed => "the prompt agent failed",
            GateFailure::Replaced => "replaced by a new picture",
            GateFailure::Abandoned => "abandoned",
        }
    }
}

impl std::fmt::Display for GateFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Sealed envelopes and CMS messages (SPEC V8, E3, E5): malformed, unsupported,
/// changed, or not sealed to this token. One variant on purpose: after the key-transport
/// step every failure reads the same, so the error is no decryption oracle.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    #[error("sealed envelope: {0}")]
    Invalid(String),
}

/// The token's identity key pair (SPEC E1).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The key pair is made when the user PIN is first set (`CKR_FUNCTION_FAILED`).
    #[error("the token has no device identity yet (it is made when the user PIN is set)")]
    Missing,
}

/// The trusted prompt agent could not ask (SPEC V5, C2). `agent` names it as the user
/// configured it (`tty prompt`, `pinentry /usr/bin/pinentry-tty`, `prompt command
/// /path`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PromptError {
    /// The agent cannot be started or reached (a missing program, no terminal).
    #[error("{agent}: cannot start: {source}")]
    Start {
        agent: String,
        source: std::io::Error,
    },
    /// Talking to a running agent failed.
    #[error("{agent}: {context}: {source}")]
    Io {
        agent: String,
        context: String,
        source: std::io::Error,
    },
    /// The agent broke its protocol (a bad exit status, an unreadable answer, a
    /// reader that stopped).
    #[error("{agent}: {problem}")]
    Protocol { agent: String, problem: String },
    /// The agent cannot show this request (a picture too wide for pinentry).
    #[error("{agent}: {problem}")]
    Unsuitable {
        agent: &'static str,
        problem: String,
    },
    /// The gate's picture could not be decoded for display.
    #[error("picture: {0}")]
    Picture(String),
}

impl PromptError {
    /// Talking to the agent failed while doing `context`.
    pub fn io(
        agent: impl Into<String>,
        context: impl Into<String>,
        source: std::io::Error,
    ) -> Self {
        PromptError::Io {
            agent: agent.into(),
            context: context.into(),
            source,
        }
    }

    /// The agent broke its protocol.
    pub fn protocol(agent: impl Into<String>, problem: impl Into<String>) -> Self {
        PromptError::Protocol {
            agent: agent.into(),
            problem: problem.into(),
        }
    }
}

/// The configuration file, `VTOKEN_*` settings or the token directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A TOML syntax or type error.
    #[error("{0}")]
    Syntax(String),
    /// A setting with a value vtoken refuses.
    #[error("{setting}: {problem}")]
    Invalid {
        setting: &'static str,
        problem: String,
    },
    /// One of the errors above, in the named file.
    #[error("{}: {source}", path.display())]
    InFile {
        path: PathBuf,
        source: Box<ConfigError>,
    },
    #[error("cannot create {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A token directory someone else could write into (or that belongs to another
    /// user).
    #[error("token directory {}: {problem}", path.display())]
    TokenDir { path: PathBuf, problem: String },
}
