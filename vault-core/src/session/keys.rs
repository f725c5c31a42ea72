//! Key management: generate, wrap, unwrap, derive (SPEC T4), and the checks a
//! wrap makes on the two keys.

use super::*;

/// Whether a key made from `template` (unwrap, derive) could be read back: it is
/// extractable or not sensitive (the defaults of [`object::build`] otherwise).
fn exposes_value(template: &Attributes) -> bool {
    template.bool_or(CKA_EXTRACTABLE, false) || !template.bool_or(CKA_SENSITIVE, true)
}

/// The object of a derived secret key with value `secret` from `template`, with
/// PKCS#11 3.1 §4.9's rule: it is "always sensitive" / "never extractable" only if
/// its sources were and it is. A derived key is made for the purpose its template
/// names: the uses it does not name are off (a key made or imported otherwise gets
/// SoftHSMv2's defaults, every use on).
fn derived_object(
    template: &Attributes,
    secret: &[u8],
    sources: &[&Attributes],
) -> Result<Attributes> {
    let mut template = template.clone();
    for t in [
        CKA_ENCRYPT,
        CKA_DECRYPT,
        CKA_SIGN,
        CKA_VERIFY,
        CKA_WRAP,
        CKA_UNWRAP,
    ] {
        if !template.contains(t) {
            template.set_bool(t, false);
        }
    }
    let template = &template;
    let mut g = Attributes::new();
    g.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
    if template.key_type().is_none() {
        g.set_ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET);
    }
    g.set(CKA_VALUE, secret.to_vec());
    g.set_bool(CKA_LOCAL, false);
    g.set_ulong(CKA_KEY_GEN_MECHANISM, CK_UNAVAILABLE_INFORMATION);
    let mut attrs = object::build(template, Origin::Generated, &g)?;
    let always = sources
        .iter()
        .all(|a| a.bool_or(CKA_ALWAYS_SENSITIVE, false));
    let never = sources
        .iter()
        .all(|a| a.bool_or(CKA_NEVER_EXTRACTABLE, false));
    let sensitive = attrs.bool_or(CKA_SENSITIVE, true);
    let extractable = attrs.bool_or(CKA_EXTRACTABLE, false);
    attrs.set_bool(CKA_ALWAYS_SENSITIVE, always && sensitive);
    attrs.set_bool(CKA_NEVER_EXTRACTABLE, never && !extractable);
    attrs.set_bool(CKA_LOCAL, false);
    Ok(attrs)
}

/// The data object `CKM_HKDF_DATA` makes from `template` (class `CKO_DATA`,
/// given or implied; `CKA_VALUE_LEN` is the output length and not stored): private
/// unless the template says otherwise, since its value comes from secret keys.
fn derived_data_object(template: &Attributes, value: &[u8]) -> Result<Attributes> {
    let mut t = template.clone();
    t.remove(CKA_VALUE_LEN);
    match t.class() {
        None | Some(CKO_DATA) => {}
        Some(_) => {
            return Err(Error::TemplateInconsistent(
                "CKM_HKDF_DATA makes a data object (CKO_DATA)".into(),
            ))
        }
    }
    if !t.contains(CKA_PRIVATE) {
        t.set_bool(CKA_PRIVATE, true);
    }
    let mut g = Attributes::new();
    g.set_ulong(CKA_CLASS, CKO_DATA);
    g.set(CKA_VALUE, value.to_vec());
    object::build(&t, Origin::Generated, &g)
}

/// Whether a key's value is out of the caller's reach: sensitive, or not
/// extractable (the defaults of [`object::build`]).
fn is_protected(attrs: &Attributes) -> bool {
    attrs.bool_or(CKA_SENSITIVE, true) || !attrs.bool_or(CKA_EXTRACTABLE, false)
}

/// The template of a key derived by a mechanism that copies its sources' bits
/// ([`mechanism::kdf::reveals_base`]), under PKCS#11's rules for them: sensitive if
/// a source is, not extractable if a source is not. A template asking for the
/// opposite is refused rather than quietly changed.
fn inherit_protection(template: &Attributes, sources: &[&Attributes]) -> Result<Attributes> {
    let mut t = template.clone();
    if sources.iter().any(|a| a.bool_or(CKA_SENSITIVE, true)) {
        if !t.bool_or(CKA_SENSITIVE, true) {
            return Err(Error::TemplateInconsistent(
                "a key derived from a sensitive key by concatenation, XOR or extraction \
                 is sensitive too (CKA_SENSITIVE = false refused)"
                    .into(),
            ));
        }
        t.set_bool(CKA_SENSITIVE, true);
    }
    if sources.iter().any(|a| !a.bool_or(CKA_EXTRACTABLE, false)) {
        if t.bool_or(CKA_EXTRACTABLE, false) {
            return Err(Error::TemplateInconsistent(
                "a key derived from a non-extractable key by concatenation, XOR or \
                 extraction is not extractable either (CKA_EXTRACTABLE = true refused)"
                    .into(),
            ));
        }
        t.set_bool(CKA_EXTRACTABLE, false);
    }
    Ok(t)
}

/// A key's security strength in bits (NIST SP 800-57 Part 1, table 2): symmetric
/// keys their length (three-key DES3: 112, single DES: 56), RSA by modulus size, EC by
/// half the curve order. `None`: unknown (treated as weakest when wrapping,
/// strongest when wrapped).
fn strength(attrs: &Attributes) -> Option<usize> {
    match attrs.key_type()? {
        CKK_DES3 => Some(112),
        CKK_DES => Some(56),
        CKK_RSA => {
            let bits = match attrs.get_ulong(CKA_MODULUS_BITS).ok().flatten() {
                Some(b) => b as usize,
                None => attrs.get(CKA_MODULUS).map(|n| {
                    let lead = n.iter().take_while(|b| **b == 0).count();
                    (n.len() - lead) * 8
                })?,
            };
            Some(match bits {
                0..=1023 => 0,
                1024..=2047 => 80,
                2048..=3071 => 112,
                3072..=7679 => 128,
                7680..=15359 => 192,
                _ => 256,
            })
        }
        CKK_EC_EDWARDS | CKK_EC_MONTGOMERY => Some(128),
        CKK_EC => {
            let curve =
                crate::mechanism::backend::Curve::from_ec_params(attrs.get(CKA_EC_PARAMS)?)?;
            // SP 800-57: half the order's bits, P-521 counted as 256.
            Some((curve.bits() / 2).min(256))
        }
        _ => attrs.get(CKA_VALUE).map(|v| (v.len() * 8).min(256)),
    }
}

/// `[policy] strict_wrap` for a sensitive `target`: the wrapping key must not be a
/// secret key that can also decrypt (the wrapped blob would decrypt to the value
/// with `C_Decrypt`), nor weaker than the target. `CKR_KEY_NOT_WRAPPABLE`: the
/// token cannot wrap this key with that wrapping key (PKCS#11's meaning of it).
fn check_strict_wrap(wrapping: &Attributes, target: &Attributes) -> Result<()> {
    if wrapping.class() == Some(CKO_SECRET_KEY) && wrapping.bool_or(CKA_DECRYPT, true) {
        return Err(Error::KeyNotWrappable);
    }
    let need = strength(target).unwrap_or(usize::MAX);
    if strength(wrapping).unwrap_or(0) < need {
        return Err(Error::KeyNotWrappable);
    }
    Ok(())
}

impl Token {
    /// Re-seals key records an older version sealed as public (see
    /// [`crate::store::Store::migrate_public_keys`]); runs at user login. A failure
    /// (a read-only file) is logged: such records stay invisible without login.
    pub(crate) fn migrate_public_keys(&self) {
        let Some(keys) = self.master_keys() else {
            return;
        };
        let res = self.store().migrate_public_keys(&keys);
        match res {
            Ok(0) => {}
            Ok(n) => {
                self.cache_write().objects.clear();
                warn!(serial = %self.serial(), records = n, "key records sealed as public by an older version re-sealed under the master key");
            }
            Err(e) => {
                warn!(serial = %self.serial(), error = %e, "public key records could not be re-sealed")
            }
        }
    }

    /// `C_GenerateKey`.
    pub fn generate_key(
        &self,
        sid: &SessionRef,
        mech: &Mechanism,
        template: &Attributes,
    ) -> Result<u64> {
        self.resolve(sid)?;
        Token::check_mech_flag(mech, CKF_GENERATE)?;
        object::check_encoding(template)?;
        self.check_trusted_template(template)?;
        let mut generated = mechanism::generate_key(mech, template)?;
        generated.set_bool(CKA_LOCAL, true);
        generated.set_ulong(CKA_KEY_GEN_MECHANISM, mech.ty);
        let template = self.key_template(template, generated.class());
        let attrs = object::build(&template, Origin::Generated, &generated)?;
        self.check_write(sid, &attrs)?;
        self.store_object(sid, attrs)
    }

    /// `C_GenerateKeyPair`: returns (public, private) ids.
    pub fn generate_key_pair(
        &self,
        sid: &SessionRef,
        mech: &Mechanism,
        pub_t: &Attributes,
        priv_t: &Attributes,
    ) -> Result<(u64, u64)> {
        self.resolve(sid)?;
        Token::check_mech_flag(mech, CKF_GENERATE_KEY_PAIR)?;
        object::check_encoding(pub_t)?;
        object::check_encoding(priv_t)?;
        self.check_trusted_template(pub_t)?;
        self.check_trusted_template(priv_t)?;
        let (mut gp, mut gs) = mechanism::generate_key_pair(mech, pub_t, priv_t)?;
        for g in [&mut gp, &mut gs] {
            g.set_bool(CKA_LOCAL, true);
            g.set_ulong(CKA_KEY_GEN_MECHANISM, mech.ty);
        }
        // Both halves share one CKA_ID: the caller's, or the one derived from the
        // generated public key. It goes into the templates before the objects are
        // built, so building the private half does not derive it again from the
        // scalar (for EC that is a PKCS#8 round trip with two scalar
        // multiplications: three quarters of a session key pair's cost).
        let id = match (pub_t.get(CKA_ID), priv_t.get(CKA_ID)) {
            (Some(a), _) if !a.is_empty() => a.to_vec(),
            (_, Some(b)) if !b.is_empty() => b.to_vec(),
            _ => object::derived_id(&gp).unwrap_or_default(),
        };
        let with_id = |t: &Attributes| {
            let mut t = t.clone();
            if !t.contains(CKA_ID) {
                t.set(CKA_ID, id.clone());
            }
            t
        };
        let pub_attrs = object::build(&with_id(pub_t), Origin::Generated, &gp)?;
        let priv_t = with_id(priv_t);
        let priv_t = self.key_template(&priv_t, Some(CKO_PRIVATE_KEY));
        let priv_attrs = object::build(&priv_t, Origin::Generated, &gs)?;
        self.check_write(sid, &pub_attrs)?;
        self.check_write(sid, &priv_attrs)?;
        let p = self.store_object(sid, pub_attrs)?;
        match self.store_object(sid, priv_attrs) {
            Ok(s) => Ok((p, s)),
            Err(e) => {
                let _ = self.destroy_object(sid, p);
                Err(e)
            }
        }
    }

    /// `C_WrapKey`.
    pub fn wrap_key(
        &self,
        sid: &SessionRef,
        mech: &Mechanism,
        wrapping: u64,
        key: u64,
        out: OutLen,
    ) -> Result<Output> {
        self.resolve(sid)?;
        let w = self.key_of(wrapping, CKA_WRAP, mech)?;
        let o = self.object(key).map_err(|_| Error::KeyHandleInvalid)?;
        if !o.attrs.bool_or(CKA_EXTRACTABLE, false) {
            return Err(Error::KeyUnextractable);
        }
        if o.attrs.bool_or(CKA_WRAP_WITH_TRUSTED, false) && !w.obj.attrs.bool_or(CKA_TRUSTED, false)
        {
            return Err(Error::KeyNotWrappable);
        }
        if self.strict_wrap && o.attrs.bool_or(CKA_SENSITIVE, true) {
            check_strict_wrap(&w.obj.attrs, &o.attrs)?;
        }
        self.key_check(
            OpClass::KeyExport,
            &o.attrs,
            &w.verdict,
            "export by wrapping",
        )?;
        let bytes = mechanism::wrap(mech, &w.key, &o.attrs)?;
        Ok(deliver(out, bytes).0)
    }

    /// `C_UnwrapKey`.
    pub fn unwrap_key(
        &self,
        sid: &SessionRef,
        mech: &Mechanism,
        unwrapping: u64,
        wrapped: &[u8],
        template: &Attributes,
    ) -> Result<u64> {
        self.resolve(sid)?;
        object::check_encoding(template)?;
        self.check_trusted_template(template)?;
        let plain = if let Some(h) = self.hooks.unwrapper(mech.ty) {
            // A vendor mechanism whose key the extension keeps (no object): it
            // checks the handle, the login and the gate itself.
            let plain = h.unwrap(self, unwrapping, wrapped)?;
            if template.class() == Some(CKO_DATA) {
                // A data object made from the template, as `C_CreateObject`
                // would (its owner's hook confirms it), holding the plaintext.
                let mut t = template.clone();
                t.set(CKA_VALUE, plain.to_vec());
                return self.create_object(sid, &t);
            }
            plain
        } else {
            let u = self.key_of(unwrapping, CKA_UNWRAP, mech)?;
            self.key_check(OpClass::Unwrap, &u.obj.attrs, &u.verdict, "unwrap a key")?;
            if exposes_value(template) {
                // The unwrapped value can be read back: the unwrap is a decryption.
                self.key_check(
                    OpClass::Decrypt,
                    &u.obj.attrs,
                    &u.verdict,
                    "unwrap into an extractable key",
                )?;
            }
            mechanism::unwrap(mech, &u.key, wrapped)?
        };
        let mut generated = match template.class() {
            Some(CKO_PRIVATE_KEY) => mechanism::encoding::pkcs8_to_attributes(&plain)?.1,
            Some(CKO_SECRET_KEY) => {
                let mut g = Attributes::new();
                g.set(CKA_VALUE, plain.to_vec());
                g.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
                g
            }
            _ => {
                return Err(Error::TemplateIncomplete(
                    "CKA_CLASS of the unwrapped key".into(),
                ))
            }
        };
        generated.set_bool(CKA_LOCAL, false);
        generated.set_ulong(CKA_KEY_GEN_MECHANISM, CK_UNAVAILABLE_INFORMATION);
        let template = self.key_template(template, generated.class());
        let mut attrs = object::build(&template, Origin::Generated, &generated)?;
        attrs.set_bool(CKA_ALWAYS_SENSITIVE, false);
        attrs.set_bool(CKA_NEVER_EXTRACTABLE, false);
        self.store_object(sid, attrs)
    }

    /// `C_DeriveKey`: the new key's handle (see [`Token::derive_keys`]).
    pub fn derive_key(
        &self,
        sid: &SessionRef,
        mech: &Mechanism,
        base: u64,
        template: &Attributes,
    ) -> Result<u64> {
        Ok(self.derive_keys(sid, mech, base, template)?[0])
    }

    /// `C_DeriveKey`, with every key it makes: the template's first, then the
    /// additional keys an SP 800-108 derivation names in its parameter (each with its
    /// own template, checked like the first). `CKM_CONCATENATE_BASE_AND_KEY` names
    /// its second key in the parameter, HKDF a key whose value is the salt; it is
    /// looked up and checked as the base key is. Either every key is stored or none.
    pub fn derive_keys(
        &self,
        sid: &SessionRef,
        mech: &Mechanism,
        base: u64,
        template: &Attributes,
    ) -> Result<Vec<u64>> {
        self.resolve(sid)?;
        let additional: &[Attributes] = match &mech.param {
            mechanism::MechParam::Kbkdf(p) => &p.additional,
            _ => &[],
        };
        for t in std::iter::once(template).chain(additional) {
            object::check_encoding(t)?;
            self.check_trusted_template(t)?;
        }
        let b = self.key_of(base, CKA_DERIVE, mech)?;
        self.key_check(OpClass::Derive, &b.obj.attrs, &b.verdict, "derive a key")?;
        let other = match (mech.ty, &mech.param) {
            (CKM_CONCATENATE_BASE_AND_KEY, mechanism::MechParam::KeyHandle(h)) => {
                let o = self.key_of(*h, CKA_DERIVE, mech)?;
                self.key_check(OpClass::Derive, &o.obj.attrs, &o.verdict, "derive a key")?;
                Some(o)
            }
            (CKM_CONCATENATE_BASE_AND_KEY, _) => {
                return Err(Error::MechanismParamInvalid(
                    "CKM_CONCATENATE_BASE_AND_KEY needs the second key's handle".into(),
                ))
            }
            (CKM_HKDF_DERIVE | CKM_HKDF_DATA, mechanism::MechParam::Hkdf(p)) => match p.salt {
                // The salt as another key's value: that key is checked as the base is.
                mechanism::hkdf::Salt::Key(h) => {
                    let o = self.key_of(h, CKA_DERIVE, mech)?;
                    self.key_check(OpClass::Derive, &o.obj.attrs, &o.verdict, "derive a key")?;
                    Some(o)
                }
                _ => None,
            },
            _ => None,
        };
        let sources: Vec<&Attributes> = std::iter::once(&*b.obj.attrs)
            .chain(other.as_ref().map(|o| &*o.obj.attrs))
            .collect();
        if mech.ty == CKM_HKDF_DATA {
            // The output is a data object anyone in the session can read: the
            // derivation is a decryption of the keys' values, as for an
            // extractable key.
            for k in std::iter::once(&b).chain(other.as_ref()) {
                self.key_check(
                    OpClass::Decrypt,
                    &k.obj.attrs,
                    &k.verdict,
                    "derive readable data",
                )?;
            }
            let secret =
                mechanism::derive(mech, &b.key, other.as_ref().map(|o| &*o.key), template)?;
            let attrs = derived_data_object(template, &secret)?;
            if self.hooks.owner(&attrs).is_some() {
                return Err(Error::TemplateInconsistent(
                    "derived data cannot become an extension's object (a vault entry, ...)".into(),
                ));
            }
            return Ok(vec![self.store_object(sid, attrs)?]);
        }
        let template = self.key_template(template, Some(CKO_SECRET_KEY));
        let additional: Vec<Attributes> = additional
            .iter()
            .map(|t| self.key_template(t, Some(CKO_SECRET_KEY)).into_owned())
            .collect();
        let reveals = mechanism::kdf::reveals_base(mech.ty);
        let protected = reveals && sources.iter().any(|a| is_protected(a));
        let template = if reveals {
            inherit_protection(&template, &sources)?
        } else {
            template.into_owned()
        };
        if std::iter::once(&template)
            .chain(&additional)
            .any(exposes_value)
        {
            // A derived value can be read back: the derivation is a decryption.
            for k in std::iter::once(&b).chain(other.as_ref()) {
                self.key_check(
                    OpClass::Decrypt,
                    &k.obj.attrs,
                    &k.verdict,
                    "derive an extractable key",
                )?;
            }
        }
        let mut secrets = if additional.is_empty() {
            vec![mechanism::derive(
                mech,
                &b.key,
                other.as_ref().map(|o| &*o.key),
                &template,
            )?]
        } else {
            let all: Vec<&Attributes> = std::iter::once(&template).chain(&additional).collect();
            mechanism::kbkdf::derive_all(mech, &b.key, &all)?
        };
        let secret = secrets.remove(0);
        if protected {
            let len = |a: &Attributes| a.get(CKA_VALUE).map_or(0, <[u8]>::len);
            let other_len = sources.get(1).map_or(0, |a| len(a));
            if secret.len() < mechanism::kdf::full_len(mech, len(&b.obj.attrs), other_len) {
                return Err(Error::TemplateInconsistent(
                    "a key derived from a sensitive key by concatenation, XOR or extraction \
                     must keep all of its bits (a part of a key can be searched for piece by \
                     piece)"
                        .into(),
                ));
            }
        }
        let attrs = derived_object(&template, &secret, &sources)?;
        if protected {
            // Nor may it be a weaker kind of key than its sources (an AES-128 key
            // and 8 known bytes as a DES3 key fall to a meet-in-the-middle search).
            let need = sources
                .iter()
                .filter_map(|a| strength(a))
                .max()
                .unwrap_or(0);
            if strength(&attrs).unwrap_or(0) < need {
                return Err(Error::TemplateInconsistent(
                    "a key derived from a sensitive key by concatenation, XOR or extraction \
                     must be at least as strong as it"
                        .into(),
                ));
            }
        }
        let mut objects = vec![attrs];
        for (t, v) in additional.iter().zip(&secrets) {
            objects.push(derived_object(t, v, &sources)?);
        }
        // Every template is checked before the first key is stored; a store that
        // fails takes back the keys stored before it.
        let mut ids = Vec::with_capacity(objects.len());
        for attrs in objects {
            match self.store_object(sid, attrs) {
                Ok(id) => ids.push(id),
                Err(e) => {
                    for id in ids {
                        let _ = self.destroy_object(sid, id);
                    }
                    return Err(e);
                }
            }
        }
        Ok(ids)
    }

    /// `C_EncapsulateKey` length query (PKCS#11 3.2): the ciphertext length of
    /// `key` under `mech`, with the same checks as the operation.
    pub fn encapsulated_len(&self, sid: &SessionRef, mech: &Mechanism, key: u64) -> Result<usize> {
        self.resolve(sid)?;
        let k = self.key_of(key, CKA_ENCAPSULATE, mech)?;
        mechanism::mlkem::ciphertext_len(&k.key)
    }

    /// `C_EncapsulateKey` (PKCS#11 3.2): a fresh shared secret to the public `key`,
    /// stored as a new secret key from `template`; returns the ciphertext for the
    /// private key's holder and the new key's handle.
    pub fn encapsulate_key(
        &self,
        sid: &SessionRef,
        mech: &Mechanism,
        key: u64,
        template: &Attributes,
    ) -> Result<(Vec<u8>, u64)> {
        self.resolve(sid)?;
        object::check_encoding(template)?;
        self.check_trusted_template(template)?;
        let k = self.key_of(key, CKA_ENCAPSULATE, mech)?;
        let (ct, secret) = mechanism::encapsulate(mech, &k.key)?;
        let id = self.store_shared_secret(sid, template, &secret)?;
        Ok((ct, id))
    }

    /// `C_DecapsulateKey` (PKCS#11 3.2): the shared secret of `ciphertext` under
    /// the private `key`, stored as a new secret key from `template`. For the gate
    /// it is an unwrap (a private key opens a secret), and a decryption when the
    /// new key can be read back.
    pub fn decapsulate_key(
        &self,
        sid: &SessionRef,
        mech: &Mechanism,
        key: u64,
        template: &Attributes,
        ciphertext: &[u8],
    ) -> Result<u64> {
        self.resolve(sid)?;
        object::check_encoding(template)?;
        self.check_trusted_template(template)?;
        let k = self.key_of(key, CKA_DECAPSULATE, mech)?;
        self.key_check(
            OpClass::Unwrap,
            &k.obj.attrs,
            &k.verdict,
            "decapsulate a key",
        )?;
        let t = self.key_template(template, Some(CKO_SECRET_KEY));
        if exposes_value(&t) {
            self.key_check(
                OpClass::Decrypt,
                &k.obj.attrs,
                &k.verdict,
                "decapsulate into an extractable key",
            )?;
        }
        let secret = mechanism::decapsulate(mech, &k.key, ciphertext)?;
        self.store_shared_secret(sid, template, &secret)
    }

    /// Stores a KEM's shared secret as a secret key from `template` (a shorter
    /// `CKA_VALUE_LEN` keeps the leading bytes), with a derived key's rules.
    fn store_shared_secret(
        &self,
        sid: &SessionRef,
        template: &Attributes,
        secret: &[u8],
    ) -> Result<u64> {
        let mut t = self
            .key_template(template, Some(CKO_SECRET_KEY))
            .into_owned();
        let len = match t.get_ulong(CKA_VALUE_LEN)? {
            Some(n) if (1..=secret.len() as u64).contains(&n) => n as usize,
            Some(_) => {
                return Err(Error::TemplateInconsistent(format!(
                    "CKA_VALUE_LEN: the shared secret has {} bytes",
                    secret.len()
                )))
            }
            None => secret.len(),
        };
        t.remove(CKA_VALUE_LEN);
        let attrs = derived_object(&t, &secret[..len], &[])?;
        self.store_object(sid, attrs)
    }

    /// A creation template for an object of `class` under `[policy] key_privacy`:
    /// with `force`, `CKA_PRIVATE = false` on a private or secret key becomes `true`
    /// (the key is private either way; `object::build` refuses what is left).
    pub(super) fn key_template<'a>(
        &self,
        template: &'a Attributes,
        class: Option<CK_OBJECT_CLASS>,
    ) -> std::borrow::Cow<'a, Attributes> {
        let class = template.class().or(class);
        let key = matches!(class, Some(CKO_PRIVATE_KEY | CKO_SECRET_KEY));
        let mut t = std::borrow::Cow::Borrowed(template);
        if self.key_privacy == crate::config::KeyPrivacy::Force
            && key
            && template.get(CKA_PRIVATE) == Some(&[0u8][..])
        {
            t.to_mut().set_bool(CKA_PRIVATE, true);
        }
        if self.key_defaults == crate::config::KeyDefaults::Legacy && key {
            if !template.contains(CKA_SENSITIVE) {
                t.to_mut().set_bool(CKA_SENSITIVE, false);
            }
            if !template.contains(CKA_EXTRACTABLE) {
                t.to_mut().set_bool(CKA_EXTRACTABLE, true);
            }
        }
        t
    }
}
