//! Configuration: `VTOKEN_CONF` (TOML) or the XDG defaults.
//!
//! A file holding the single line `token_dir = "/some/dir"` is a complete, valid
//! configuration: every other key has a default, and the directory is created on
//! first use. Without `VTOKEN_CONF`, `$XDG_CONFIG_HOME/vtoken/vtoken.toml`
//! (`~/.config/vtoken/vtoken.toml`) is read if it exists, and tokens live in
//! `$XDG_DATA_HOME/vtoken` (`~/.local/share/vtoken`).
//!
//! ```toml
//! token_dir = "/var/lib/vtoken"   # where token files live
//! kdf = "default"                 # "default" (Argon2id 64 MiB, t=1) or "test" (cheap: tests and CI only)
//! # or explicit: [kdf] m_cost_kib = 65536, t_cost = 3, p_cost = 1
//! [pin]
//! min_len = 6
//! max_len = 64
//! user_max_tries = 5
//! so_max_tries = 10
//! [log]
//! level = "info"                  # error|warn|info|debug|trace; VTOKEN_LOG overrides
//! file = "/tmp/vtoken.log"        # default: stderr
//! [prompt]                        # user presence (SPEC V5/V6), see `crate::prompt`:
//!                                 # defaults for NEW tokens (agent, confirm); an existing
//!                                 # token's agent and confirmations are its own policy
//! agent = "deny"                  # deny|pinentry|tty|command; VTOKEN_PROMPT overrides
//! program = "/usr/bin/pinentry-curses"  # pinentry; default: first of pinentry-curses,
//!                                 # pinentry-tty, pinentry in PATH
//! command = "/usr/local/bin/ask --quiet" # command agent: split on whitespace, or an array
//! timeout_secs = 60               # unanswered prompts time out (a refusal)
//! tty = "/dev/pts/3"              # terminal for pinentry/tty; default $GPG_TTY or this one
//! confirm = ["vault-write"]       # operations needing confirmation: vault-write,
//!                                 # vault-read, otp-code, key-export
//! login = "client"                # "agent": C_Login with a NULL PIN asks the token's
//!                                 # agent (CKF_PROTECTED_AUTHENTICATION_PATH)
//! [policy]
//! rsa_pkcs1_decrypt = false       # pure-Rust build only: allow CKM_RSA_PKCS decrypt/unwrap
//!                                 # (not constant-time there: RUSTSEC-2023-0071)
//! legacy_mechanisms = true        # single DES (CKM_DES_*) for legacy clients; false hides it
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{ConfigError, Error, Result};

mod token_dir;
pub use token_dir::check_token_dir;

/// Argon2id cost parameters used to derive the keys that wrap a token's master key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Iterations.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl KdfParams {
    /// The default cost: Argon2id, 64 MiB, 1 pass, 1 lane — above OWASP's minimums
    /// (19 MiB t=2, 46 MiB t=1), and the largest memory cost that keeps a login within
    /// 100 ms on the reference machine (`tests/kdf_cost.rs` measures the candidates).
    /// That is also what each offline guess against a copied token file costs, per
    /// core (README, threat model).
    pub const DEFAULT: KdfParams = KdfParams {
        m_cost_kib: 64 * 1024,
        t_cost: 1,
        p_cost: 1,
    };
    /// A cheap cost for tests and CI. Never use it for a real token.
    pub const TEST: KdfParams = KdfParams {
        m_cost_kib: 64,
        t_cost: 1,
        p_cost: 1,
    };
    /// The largest cost accepted, in the configuration and in a token file (a forged
    /// header must not make a login allocate gigabytes or run for hours).
    pub const MAX: KdfParams = KdfParams {
        m_cost_kib: 1024 * 1024,
        t_cost: 64,
        p_cost: 16,
    };

    /// `Err` unless Argon2 accepts the cost and it is within [`KdfParams::MAX`].
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.m_cost_kib > Self::MAX.m_cost_kib
            || self.t_cost > Self::MAX.t_cost
            || self.p_cost > Self::MAX.p_cost
        {
            return Err(format!(
                "Argon2 cost m={} KiB t={} p={} above the maximum m={} KiB t={} p={}",
                self.m_cost_kib,
                self.t_cost,
                self.p_cost,
                Self::MAX.m_cost_kib,
                Self::MAX.t_cost,
                Self::MAX.p_cost
            ));
        }
        argon2::Params::new(self.m_cost_kib, self.t_cost, self.p_cost, Some(32))
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum KdfSetting {
    Profile(String),
    Explicit {
        m_cost_kib: u32,
        t_cost: u32,
        p_cost: Option<u32>,
    },
}

/// PIN policy (SPEC T2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PinPolicy {
    /// Shortest PIN accepted, in bytes.
    pub min_len: usize,
    /// Longest PIN accepted, in bytes.
    pub max_len: usize,
    /// Consecutive wrong user PINs before the user PIN locks.
    pub user_max_tries: u32,
    /// Consecutive wrong SO PINs before the SO PIN locks.
    pub so_max_tries: u32,
}

impl Default for PinPolicy {
    fn default() -> Self {
        PinPolicy {
            // Six characters: every 4-digit PIN falls to an offline search of a
            // copied token file in minutes (see README, threat model).
            min_len: 6,
            max_len: 64,
            user_max_tries: 5,
            so_max_tries: 10,
        }
    }
}

/// Logging settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Level filter (`error`, `warn`, `info`, `debug`, `trace`).
    pub level: Option<String>,
    /// Log file; stderr when absent. Never stdout.
    pub file: Option<PathBuf>,
}

/// Which prompt agent asks the user (SPEC V5/V6).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PromptAgent {
    /// Refuse everything (fail closed; the headless default).
    #[default]
    Deny,
    /// A GnuPG pinentry program spoken to over Assuan.
    Pinentry,
    /// A direct prompt on the terminal device.
    Tty,
    /// An external command: exit 0 confirms, 1 refuses.
    Command,
    /// Dialogs on the graphical session (zenity / yad).
    Desktop,
}

impl PromptAgent {
    /// The agent's name as written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            PromptAgent::Deny => "deny",
            PromptAgent::Pinentry => "pinentry",
            PromptAgent::Tty => "tty",
            PromptAgent::Command => "command",
            PromptAgent::Desktop => "desktop",
        }
    }
}

/// Who gives the PIN of `C_Login` (`[prompt] login`).
///
/// `agent` makes the token a PKCS#11 "protected authentication path" token
/// (`CKF_PROTECTED_AUTHENTICATION_PATH`): a client calls `C_Login` with a NULL PIN
/// and the token's own prompt agent asks the user, so the application (a browser,
/// say) never sees the PIN. A client that passes a PIN still may. This is the
/// configuration of the process that loads the module, not token policy: it only
/// decides whether the agent may be asked; which agent asks stays token policy
/// (`crate::prompt::policy`), and the PIN is verified and counted as always.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoginInput {
    /// The client passes the PIN (the default: every existing client keeps typing it).
    #[default]
    Client,
    /// A NULL PIN asks the token's prompt agent.
    Agent,
}

impl std::str::FromStr for PromptAgent {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "deny" => Ok(PromptAgent::Deny),
            "pinentry" => Ok(PromptAgent::Pinentry),
            "tty" => Ok(PromptAgent::Tty),
            "command" => Ok(PromptAgent::Command),
            "desktop" => Ok(PromptAgent::Desktop),
            other => Err(Error::config(
                "prompt agent",
                format!(
                    "\"{other}\": expected \"deny\", \"pinentry\", \"tty\", \"desktop\" or \
                     \"command\""
                ),
            )),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum CommandSetting {
    Line(String),
    Argv(Vec<String>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawPrompt {
    agent: Option<PromptAgent>,
    program: Option<PathBuf>,
    command: Option<CommandSetting>,
    timeout_secs: Option<u64>,
    tty: Option<PathBuf>,
    confirm: Option<Vec<String>>,
    login: Option<LoginInput>,
}

/// Prompt settings: `[prompt]` (see [`crate::prompt`] for the agents and the
/// `VTOKEN_PROMPT` override).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PromptConfig {
    /// The agent.
    pub agent: PromptAgent,
    /// The pinentry program; `None`: the first of `pinentry-curses`, `pinentry-tty`,
    /// `pinentry` found in `PATH`.
    pub program: Option<PathBuf>,
    /// The command agent's program and arguments (empty unless configured).
    pub command: Vec<String>,
    /// Seconds before an unanswered prompt counts as timed out (at least 1).
    pub timeout_secs: u64,
    /// The terminal for `pinentry` and `tty`; `None`: `$GPG_TTY`, then this
    /// process's terminal.
    pub tty: Option<PathBuf>,
    /// Operations that need the user's confirmation (see [`PromptConfig::OPERATIONS`]).
    pub confirm: Vec<String>,
    /// Who gives the PIN of `C_Login` ([`LoginInput`]).
    pub login: LoginInput,
}

impl Default for PromptConfig {
    fn default() -> Self {
        PromptConfig {
            agent: PromptAgent::Deny,
            program: None,
            command: Vec::new(),
            timeout_secs: PromptConfig::DEFAULT_TIMEOUT_SECS,
            tty: None,
            confirm: vec!["vault-write".to_string()],
            login: LoginInput::Client,
        }
    }
}

impl PromptConfig {
    /// Default prompt timeout.
    pub const DEFAULT_TIMEOUT_SECS: u64 = 60;
    /// The operation names `confirm` may list.
    pub const OPERATIONS: &'static [&'static str] =
        &["vault-write", "vault-read", "otp-code", "key-export"];

    /// Whether operation `op` (`"vault-write"`, ...) needs the user's confirmation.
    pub fn needs(&self, op: &str) -> bool {
        self.confirm.iter().any(|c| c == op)
    }

    /// The prompt timeout.
    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.timeout_secs)
    }

    /// Applies an override in the `VTOKEN_PROMPT` syntax: `deny`, `tty`,
    /// `pinentry`, `pinentry:/usr/bin/pinentry-tty`, `command:/path/to/script args`.
    /// The timeout, terminal and `confirm` list are kept.
    pub fn with_override(&self, spec: &str) -> Result<PromptConfig> {
        let spec = spec.trim();
        let (kind, rest) = match spec.split_once(':') {
            Some((k, r)) => (k.trim(), Some(r.trim())),
            None => (spec, None),
        };
        let agent: PromptAgent = kind
            .parse()
            .map_err(|e: Error| Error::config("VTOKEN_PROMPT", format!("{spec}: {e}")))?;
        let mut c = self.clone();
        c.agent = agent;
        match (agent, rest) {
            (_, None) => {}
            (PromptAgent::Pinentry, Some(p)) if !p.is_empty() => c.program = Some(p.into()),
            (PromptAgent::Tty, Some(p)) if !p.is_empty() => c.tty = Some(p.into()),
            (PromptAgent::Command, Some(cmd)) => {
                c.command = cmd.split_whitespace().map(str::to_string).collect()
            }
            (_, Some(_)) => {
                return Err(Error::config(
                    "VTOKEN_PROMPT",
                    format!("{spec}: \"{kind}\" takes no argument"),
                ))
            }
        }
        if c.agent == PromptAgent::Command && c.command.is_empty() {
            return Err(Error::config(
                "VTOKEN_PROMPT",
                format!("{spec}: the command agent needs a command (command:/path/to/program)"),
            ));
        }
        Ok(c)
    }

    /// This configuration with `VTOKEN_PROMPT` applied, if set and not empty.
    pub fn effective(&self) -> Result<PromptConfig> {
        match std::env::var("VTOKEN_PROMPT") {
            Ok(s) if !s.trim().is_empty() => self.with_override(&s),
            _ => Ok(self.clone()),
        }
    }

    fn from_raw(raw: RawPrompt) -> Result<PromptConfig> {
        let d = PromptConfig::default();
        let command = match raw.command {
            None => Vec::new(),
            Some(CommandSetting::Line(l)) => l.split_whitespace().map(str::to_string).collect(),
            Some(CommandSetting::Argv(v)) => v,
        };
        let c = PromptConfig {
            agent: raw.agent.unwrap_or(d.agent),
            program: raw.program,
            command,
            timeout_secs: raw.timeout_secs.unwrap_or(d.timeout_secs),
            tty: raw.tty,
            confirm: raw.confirm.unwrap_or(d.confirm),
            login: raw.login.unwrap_or_default(),
        };
        if c.timeout_secs == 0 || c.timeout_secs > 24 * 3600 {
            return Err(Error::config(
                "prompt.timeout_secs",
                format!("must be 1..=86400 (got {})", c.timeout_secs),
            ));
        }
        if c.agent == PromptAgent::Command && c.command.is_empty() {
            return Err(Error::config(
                "prompt.agent",
                "agent = \"command\" needs `command = \"/path/to/program args\"`",
            ));
        }
        if let Some(bad) = c
            .confirm
            .iter()
            .find(|op| !PromptConfig::OPERATIONS.contains(&op.as_str()))
        {
            return Err(Error::config(
                "prompt.confirm",
                format!(
                    "unknown operation \"{bad}\" (known: {})",
                    PromptConfig::OPERATIONS.join(", ")
                ),
            ));
        }
        Ok(c)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    token_dir: Option<PathBuf>,
    kdf: Option<KdfSetting>,
    #[serde(default)]
    pin: PinPolicy,
    #[serde(default)]
    log: LogConfig,
    #[serde(default)]
    prompt: Option<RawPrompt>,
    #[serde(default)]
    policy: PolicyConfig,
}

/// Token-wide policy switches: `[policy]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// A sensitive key is wrapped only by a key that cannot also decrypt (a
    /// secret key with `CKA_DECRYPT`) and is at least as strong as the wrapped key
    /// (`CKR_KEY_NOT_WRAPPABLE` otherwise). `false` only for legacy clients.
    pub strict_wrap: bool,
    /// What a creation template asking for `CKA_PRIVATE = false` on a private or
    /// secret key gets. Key material is always sealed under the master key and usable
    /// only after login; the question is only whether the request is refused.
    pub key_privacy: KeyPrivacy,
    /// Allow `CKM_RSA_PKCS` decryption and unwrap in a build without `aws-lc`,
    /// whose RSA is not constant-time (RUSTSEC-2023-0071). Off by default; the
    /// `aws-lc` build ignores it (always on there).
    pub rsa_pkcs1_decrypt: bool,
    /// Offer legacy mechanisms (single DES: `CKM_DES_KEY_GEN`, `CKM_DES_ECB`,
    /// `CKM_DES_CBC`, `CKM_DES_CBC_PAD`), which legacy clients and test suites
    /// expect, as SoftHSMv2 does. On by default; off, they leave the mechanism list
    /// and are refused.
    pub legacy_mechanisms: bool,
    /// What a private or secret key's template that says nothing of
    /// `CKA_SENSITIVE` / `CKA_EXTRACTABLE` gets.
    pub key_defaults: KeyDefaults,
}

/// `[policy] key_defaults`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyDefaults {
    /// Sensitive and not extractable: a key is never readable unless its creator
    /// asked for that.
    Sensitive,
    /// Not sensitive and extractable, as SoftHSMv2 does (PKCS#11 leaves the
    /// defaults to the token); for legacy clients and test suites that read back
    /// keys they did not mark. Keys derived from a sensitive key stay sensitive.
    Legacy,
}

impl PolicyConfig {
    /// Applies the switches that are process-wide (the mechanism table is one per
    /// process): `rsa_pkcs1_decrypt` and `legacy_mechanisms`. Opening a token does it;
    /// the PKCS#11 module does it at `C_Initialize`, so the mechanism list is right
    /// before any token opens.
    pub fn apply_to_process(&self) {
        crate::mechanism::backend::set_rsa_pkcs1_decrypt(self.rsa_pkcs1_decrypt);
        crate::mechanism::backend::set_legacy_mechanisms(self.legacy_mechanisms);
    }
}

/// `[policy] key_privacy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyPrivacy {
    /// The key is created private (`CKA_PRIVATE` reads `CK_TRUE`). pkcs11-tool's
    /// `--keygen` and the `cryptoki` crate send `CKA_PRIVATE = false` for every
    /// secret key unless told otherwise, so refusing would break their defaults.
    Force,
    /// The template is refused with `CKR_ATTRIBUTE_VALUE_INVALID`.
    Refuse,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            strict_wrap: true,
            key_privacy: KeyPrivacy::Force,
            rsa_pkcs1_decrypt: false,
            legacy_mechanisms: true,
            key_defaults: KeyDefaults::Sensitive,
        }
    }
}

/// The effective configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Directory holding one `*.vtoken` file per token.
    pub token_dir: PathBuf,
    /// KDF cost for new PINs.
    pub kdf: KdfParams,
    /// PIN policy for new tokens.
    pub pin: PinPolicy,
    /// Logging.
    pub log: LogConfig,
    /// User-presence prompt (`[prompt]`).
    pub prompt: PromptConfig,
    /// Policy switches (`[policy]`).
    pub policy: PolicyConfig,
    /// The file this configuration came from, if any.
    pub source: Option<PathBuf>,
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

fn xdg(var: &str, fallback: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => home().join(fallback),
    }
}

impl Config {
    /// The default configuration file path (without `VTOKEN_CONF`).
    pub fn default_path() -> PathBuf {
        xdg("XDG_CONFIG_HOME", ".config")
            .join("vtoken")
            .join("vtoken.toml")
    }

    /// The default token directory.
    pub fn default_token_dir() -> PathBuf {
        xdg("XDG_DATA_HOME", ".local/share").join("vtoken")
    }

    /// Loads `VTOKEN_CONF` if set (it must exist), else the XDG file if it exists,
    /// else the defaults.
    pub fn load() -> Result<Config> {
        match std::env::var_os("VTOKEN_CONF") {
            Some(p) if !p.is_empty() => Config::from_file(Path::new(&p)),
            _ => {
                let p = Config::default_path();
                if p.exists() {
                    Config::from_file(&p)
                } else {
                    Config::from_toml("").map(|c| Config { source: None, ..c })
                }
            }
        }
    }

    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut c = Config::from_toml(&text).map_err(|e| match e {
            Error::Config(source) => Error::Config(ConfigError::InFile {
                path: path.to_path_buf(),
                source: Box::new(source),
            }),
            e => e,
        })?;
        c.source = Some(path.to_path_buf());
        Ok(c)
    }

    /// Parses TOML text (an empty text gives the defaults).
    pub fn from_toml(text: &str) -> Result<Config> {
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| ConfigError::Syntax(e.message().to_string()))?;
        let kdf = match raw.kdf {
            None => KdfParams::DEFAULT,
            Some(KdfSetting::Profile(p)) => match p.as_str() {
                "default" => KdfParams::DEFAULT,
                "test" => KdfParams::TEST,
                other => {
                    return Err(Error::config(
                        "kdf",
                        format!("\"{other}\": expected \"default\", \"test\" or a table"),
                    ))
                }
            },
            Some(KdfSetting::Explicit {
                m_cost_kib,
                t_cost,
                p_cost,
            }) => {
                let k = KdfParams {
                    m_cost_kib,
                    t_cost,
                    p_cost: p_cost.unwrap_or(1),
                };
                k.check().map_err(|e| Error::config("kdf", e.to_string()))?;
                k
            }
        };
        let pin = raw.pin;
        if pin.min_len == 0 || pin.min_len > pin.max_len || pin.max_len > 255 {
            return Err(Error::config(
                "pin",
                format!(
                    "need 1 <= min_len <= max_len <= 255 (got {}..{})",
                    pin.min_len, pin.max_len
                ),
            ));
        }
        if pin.user_max_tries == 0 || pin.so_max_tries == 0 {
            return Err(Error::config("pin", "max tries must be at least 1"));
        }
        let prompt = PromptConfig::from_raw(raw.prompt.unwrap_or_default())?;
        Ok(Config {
            token_dir: raw.token_dir.unwrap_or_else(Config::default_token_dir),
            kdf,
            pin,
            log: raw.log,
            prompt,
            policy: raw.policy,
            source: None,
        })
    }

    /// A configuration for tests: the given directory, the cheap KDF.
    pub fn for_dir(dir: impl Into<PathBuf>) -> Config {
        Config {
            token_dir: dir.into(),
            kdf: KdfParams::TEST,
            pin: PinPolicy::default(),
            log: LogConfig::default(),
            prompt: PromptConfig::default(),
            policy: PolicyConfig::default(),
            source: None,
        }
    }

    /// Creates the token directory (mode 0700) if missing, and checks it
    /// ([`check_token_dir`]).
    pub fn ensure_token_dir(&self) -> Result<()> {
        self.create_token_dir()?;
        check_token_dir(&self.token_dir)
    }

    fn create_token_dir(&self) -> Result<()> {
        if !self.token_dir.exists() {
            std::fs::create_dir_all(&self.token_dir).map_err(|e| {
                Error::Config(ConfigError::CreateDir {
                    path: self.token_dir.clone(),
                    source: e,
                })
            })?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(
                    &self.token_dir,
                    std::fs::Permissions::from_mode(0o700),
                );
            }
        }
        Ok(())
    }
}

/// Sets up `tracing` once per process: `VTOKEN_LOG` (`LEVEL` or `LEVEL:FILE`) wins
/// over the config's `[log]`. Output goes to stderr or the file, never stdout.
/// Without either, only errors reach stderr.
pub fn init_logging(cfg: &LogConfig) {
    use std::sync::Once;
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let env = std::env::var("VTOKEN_LOG").ok().filter(|s| !s.is_empty());
        let (level, file) = match env {
            Some(s) => match s.split_once(':') {
                Some((l, f)) => (l.to_string(), Some(PathBuf::from(f))),
                None => (s, cfg.file.clone()),
            },
            None => (
                cfg.level.clone().unwrap_or_else(|| "error".into()),
                cfg.file.clone(),
            ),
        };
        let filter = tracing_subscriber::EnvFilter::try_new(&level)
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false);
        let res = match file.and_then(|f| {
            let mut o = std::fs::OpenOptions::new();
            o.create(true).append(true);
            // A new log file is the user's alone (it names tokens and operations).
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
            o.open(f).ok()
        }) {
            Some(fh) => builder.with_writer(std::sync::Mutex::new(fh)).try_init(),
            None => builder.with_writer(std::io::stderr).try_init(),
        };
        let _ = res;
    });
}

#[cfg(test)]
mod tests;
