//! A vault entry and what the vault's API says about entries (SPEC V2, V3).

use super::*;

/// The kind of a vault entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Bank, card number, card PIN.
    BankCard,
    /// Bank, user name, password, URL.
    OnlineBanking,
    /// URL, user name, password, notes.
    Website,
    /// Address, password, server.
    Email,
    /// Any named fields.
    Custom,
}

impl Kind {
    /// The name used in JSON and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::BankCard => "bank-card",
            Kind::OnlineBanking => "online-banking",
            Kind::Website => "website",
            Kind::Email => "email",
            Kind::Custom => "custom",
        }
    }

    /// The preset fields of this kind: (name, secret, required).
    pub fn preset(self) -> &'static [(&'static str, bool, bool)] {
        match self {
            Kind::BankCard => &[
                ("bank", false, true),
                ("card_number", true, true),
                ("card_pin", true, false),
            ],
            Kind::OnlineBanking => &[
                ("bank", false, true),
                ("username", false, true),
                ("password", true, true),
            ],
            Kind::Website => &[
                ("username", false, false),
                ("password", true, false),
                ("notes", false, false),
            ],
            Kind::Email => &[
                ("address", false, true),
                ("password", true, true),
                ("server", false, false),
            ],
            Kind::Custom => &[],
        }
    }
}

impl std::str::FromStr for Kind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Kind> {
        Ok(match s {
            "bank-card" => Kind::BankCard,
            "online-banking" => Kind::OnlineBanking,
            "website" => Kind::Website,
            "email" | "e-mail" => Kind::Email,
            "custom" => Kind::Custom,
            _ => {
                return Err(Error::ArgumentsBad(format!(
                    "vault entry kind \"{s}\": expected bank-card, online-banking, website, email or custom"
                )))
            }
        })
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One named field of an entry.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct Field {
    pub name: String,
    pub value: String,
    /// Masked in listings and prompts; never shown without asking.
    #[serde(default)]
    pub secret: bool,
}

impl Field {
    /// A field.
    pub fn new(name: &str, value: &str, secret: bool) -> Field {
        Field {
            name: name.to_string(),
            value: value.to_string(),
            secret,
        }
    }

    /// The value, or [`MASK`] for a secret.
    pub fn shown(&self) -> &str {
        if self.secret {
            MASK
        } else {
            &self.value
        }
    }
}

impl std::fmt::Debug for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={:?}", self.name, self.shown())
    }
}

/// A vault entry (the JSON in `CKA_VALUE`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub kind: Kind,
    pub title: String,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub fields: Vec<Field>,
    /// Unix time (set by the token).
    #[serde(default)]
    pub created: u64,
    /// Unix time (set by the token).
    #[serde(default)]
    pub modified: u64,
}

impl Entry {
    /// An empty entry of `kind`.
    pub fn new(kind: Kind, title: &str) -> Entry {
        Entry {
            kind,
            title: title.to_string(),
            url: String::new(),
            fields: Vec::new(),
            created: 0,
            modified: 0,
        }
    }

    /// Adds or replaces field `name` (builder style).
    pub fn with(mut self, name: &str, value: &str, secret: bool) -> Entry {
        self.set(name, value, secret);
        self
    }

    /// Sets the URL (builder style).
    pub fn with_url(mut self, url: &str) -> Entry {
        self.url = url.to_string();
        self
    }

    /// Adds or replaces field `name`.
    pub fn set(&mut self, name: &str, value: &str, secret: bool) {
        match self.fields.iter_mut().find(|f| f.name == name) {
            Some(f) => {
                f.value.zeroize();
                f.value = value.to_string();
                f.secret = secret;
            }
            None => self.fields.push(Field::new(name, value, secret)),
        }
    }

    /// Removes field `name`; whether it existed.
    pub fn remove(&mut self, name: &str) -> bool {
        let n = self.fields.len();
        self.fields.retain(|f| f.name != name);
        n != self.fields.len()
    }

    /// Field `name`.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The user name-like field (`username`, `address`).
    pub fn username(&self) -> Option<&str> {
        self.field("username")
            .or_else(|| self.field("address"))
            .map(|f| f.value.as_str())
    }

    /// The field a password request means by default: `password`, else `card_pin`,
    /// else the first secret field.
    pub fn primary_secret(&self) -> Option<&Field> {
        self.field("password")
            .or_else(|| self.field("card_pin"))
            .or_else(|| self.fields.iter().find(|f| f.secret))
    }

    /// Checks the entry: a title, field names unique and non-empty, the required
    /// preset fields present; preset secret fields are forced secret.
    pub fn normalize(&mut self) -> Result<()> {
        let bad = |m: String| Error::TemplateInconsistent(format!("vault entry: {m}"));
        if self.title.trim().is_empty() {
            return Err(bad("a vault entry needs a title".into()));
        }
        if self.title.len() > 256 {
            return Err(bad("the title is longer than 256 bytes".into()));
        }
        let mut seen = std::collections::HashSet::new();
        for f in &self.fields {
            if f.name.trim().is_empty() {
                return Err(bad("a field has an empty name".into()));
            }
            if !seen.insert(f.name.as_str()) {
                return Err(bad(format!("field \"{}\" appears twice", f.name)));
            }
        }
        for &(name, secret, required) in self.kind.preset() {
            match self.fields.iter_mut().find(|f| f.name == name) {
                Some(f) => f.secret |= secret,
                None if required => {
                    return Err(bad(format!(
                        "the field \"{name}\" is required for an entry of kind {}",
                        self.kind
                    )))
                }
                None => {}
            }
        }
        Ok(())
    }

    /// A description for the confirmation prompt, secrets masked (deletions: what
    /// goes needs no secret shown).
    pub fn describe(&self) -> String {
        self.description(false)
    }

    /// The entry exactly as the token received it, secrets included: what the
    /// trusted prompt shows before a write (V5, ¶0087–0088), so that data changed
    /// between the client and the token is caught by the user. Zeroized on drop.
    pub fn describe_received(&self) -> Zeroizing<String> {
        Zeroizing::new(self.description(true))
    }

    fn description(&self, secrets: bool) -> String {
        let mut s = format!("Kind: {}\nTitle: {}", self.kind, self.title);
        if !self.url.is_empty() {
            s.push_str(&format!("\nURL: {}", self.url));
        }
        for f in &self.fields {
            let v = if secrets { &f.value } else { f.shown() };
            let tag = if secrets && f.secret { " (secret)" } else { "" };
            s.push_str(&format!("\n{}{tag}: {v}", f.name));
        }
        s
    }

    /// The summary of this entry (no secrets).
    pub fn summary(&self) -> EntrySummary {
        EntrySummary {
            kind: self.kind,
            title: self.title.clone(),
            url: self.url.clone(),
            username: self.username().unwrap_or("").to_string(),
            modified: self.modified,
        }
    }

    pub(super) fn to_json(&self) -> Result<Zeroizing<Vec<u8>>> {
        serde_json::to_vec(self)
            .map(Zeroizing::new)
            .map_err(|e| Error::General(format!("vault entry: {e}")))
    }

    pub(super) fn from_json(b: &[u8]) -> Result<Entry> {
        serde_json::from_slice(b).map_err(|e| {
            Error::TemplateInconsistent(format!("CKA_VALUE is not a vault entry (JSON): {e}"))
        })
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.title.zeroize();
        self.url.zeroize();
    }
}

/// What listings show of an entry: no secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EntrySummary {
    pub kind: Kind,
    pub title: String,
    pub url: String,
    pub username: String,
    pub modified: u64,
}

/// A search: every given criterion must match.
#[derive(Clone, Debug, Default)]
pub struct Query {
    /// Case-insensitive substring of the title or the URL.
    pub text: Option<String>,
    /// Case-insensitive substring of the URL only.
    pub url: Option<String>,
    pub kind: Option<Kind>,
}

/// How [`Token::vault_password`] returns a value.
#[derive(Clone, Debug)]
pub enum PasswordOutput {
    /// The value itself.
    Plain,
    /// RSA-OAEP (SHA-256, MGF1-SHA-256, empty label) to a public key: a public or
    /// private RSA key object on this token, or a SubjectPublicKeyInfo (DER).
    RsaOaep(PublicKeyRef),
    /// A dynamic password (SPEC V9, ¶0093–0095) over the value. The factors belong
    /// to the token: the time factor is the token's clock, the event factor the
    /// entry's own counter, which the token advances and commits before the
    /// password is computed (as for HOTP), so a dynamic password never repeats.
    Dynamic {
        /// The time factor with this period in seconds.
        time_period: Option<u64>,
        /// The event factor (the entry's counter, advanced by this call).
        event: bool,
        digits: u32,
    },
}

/// The public key of [`PasswordOutput::RsaOaep`].
#[derive(Clone, Debug)]
pub enum PublicKeyRef {
    /// An RSA key object on this token (its handle).
    Object(u64),
    /// A SubjectPublicKeyInfo, DER.
    Spki(Vec<u8>),
}
