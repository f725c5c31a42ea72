//! Device identity helpers shared by `vtoken init`, `vtoken device` and `vtoken
//! backup` (SPEC V7, V8, V11): reading root certificates, the local root's default
//! place, certifying a device key with it, and the error mapping of `vtoken-device`.

use std::path::{Path, PathBuf};

use vault_core::token::Token;
use vtoken_pki::{certs_from_pem, LocalCa};

use crate::context::Ctx;
use crate::error::{bail, CliError, Result};
use crate::output::read_in;

/// The local root's directory when none is named: `ca` beside the token directory.
pub fn default_ca_dir(ctx: &Ctx) -> PathBuf {
    let td = &ctx.config().token_dir;
    td.parent().unwrap_or(td).join("ca")
}

/// Certificates from a PEM or DER file.
pub fn read_certs(path: &Path) -> Result<Vec<Vec<u8>>> {
    let data = read_in(path)?;
    if data.starts_with(b"-----") {
        let text = String::from_utf8_lossy(&data);
        let v =
            certs_from_pem(&text).map_err(|e| CliError::new(format!("{}: {e}", path.display())))?;
        if v.is_empty() {
            bail!("{}: no certificate found", path.display());
        }
        Ok(v)
    } else {
        Ok(vec![data])
    }
}

pub fn root_of(path: &Path) -> Result<Vec<u8>> {
    Ok(read_certs(path)?.remove(0))
}

/// A `vtoken-device` failure as the CLI reports it.
pub fn dev(e: vtoken_device::Error) -> CliError {
    match e {
        vtoken_device::Error::Token(t) => t.into(),
        e => CliError::new(e.to_string()),
    }
}

/// Certifies `token` (logged in) with the local root in `dir`.
pub fn certify_with(token: &Token, dir: &Path) -> Result<Vec<u8>> {
    let ca = LocalCa::load(dir).map_err(|e| {
        CliError::new(format!(
            "cannot load the local root from {}: {e} (create one with `vtoken ca init`)",
            dir.display()
        ))
    })?;
    vtoken_device::certify_local(token, &ca).map_err(dev)
}
