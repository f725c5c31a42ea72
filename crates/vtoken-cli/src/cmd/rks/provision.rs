//! K2 at the key-loading station and on the device: `vtoken rks provision` makes
//! an injection envelope (DIK2 derived inside the station token, sealed to the
//! device's certificate, signed by the station) and `vtoken rks inject` opens it
//! inside the device token (SO PIN). The one-process form `--token DEVICE
//! --station S` runs both halves through the same envelope.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::json;
use vault_core::ext::rks::Injected;
use vault_core::token::{Token, UserType};

use super::{hex_arg, read_spki};
use crate::args::SoPin;
use crate::context::{login, Ctx};
use crate::error::{bail, CliError, Result};
use crate::identity::read_certs;
use crate::output::{outln, print_json, read_in, write_out};
use crate::pin;

/// What `provision` was given.
pub struct ProvisionArgs<'a> {
    pub station: &'a str,
    pub factor: &'a str,
    pub root: &'a Path,
    pub device_cert: Option<&'a PathBuf>,
    pub out: Option<&'a PathBuf>,
    pub station_pin: Option<&'a String>,
    pub so: &'a SoPin,
    pub replace: bool,
}

/// The device certificate's checks at the station: it must chain to the root the
/// station trusts, carry the device profile; its serial is the DSN. Without this,
/// anyone could name a DSN with a certificate of their own and receive that
/// device's DIK2.
fn device_dsn(station: &Token, chain: &[Vec<u8>]) -> Result<String> {
    let v = vtoken_device::verify_identity_chain_for(station, chain, SystemTime::now())
        .map_err(|e| CliError::new(format!("device certificate refused: {e}")))?;
    Ok(v.token_serial.to_ascii_uppercase())
}

/// The device's check of the envelope's signer: a device certificate under the
/// device's own identity root (a forged envelope naming a fake RKS root is signed
/// by no such station), not the device itself.
fn station_serial(device: &Token, cert: &[u8]) -> vault_core::Result<String> {
    let v = vtoken_device::verify_identity_chain_for(device, &[cert.to_vec()], SystemTime::now())
        .map_err(|e| {
        vault_core::Error::envelope(format!("station certificate refused: {e}"))
    })?;
    if v.token_serial.eq_ignore_ascii_case(device.serial()) {
        return Err(vault_core::Error::envelope(
            "the envelope is signed by this token itself, not by a station".into(),
        ));
    }
    Ok(v.token_serial)
}

/// Opens an envelope inside `device` (the SO logged in).
pub fn inject_into(device: &Token, envelope: &[u8], replace: bool) -> Result<Injected> {
    Ok(device.rks_inject(envelope, replace, |cert| station_serial(device, cert))?)
}

fn report(json: bool, i: &Injected) -> Result<()> {
    if json {
        print_json(&json!({
            "device": i.dsn, "station": i.station, "replaced": i.replaced
        }))
    } else {
        let how = if i.replaced {
            "re-provisioned"
        } else {
            "provisioned"
        };
        outln!("device {} {how} by station {}", i.dsn, i.station);
        Ok(())
    }
}

/// `vtoken rks provision`.
pub fn provision(ctx: &Ctx, json: bool, a: &ProvisionArgs<'_>) -> Result<()> {
    let f = hex_arg("factor", a.factor)?;
    if f.is_empty() || f.len() > 64 {
        bail!("--factor has 1 to 64 bytes in hex");
    }
    let root_spki = read_spki(a.root)?;
    if a.device_cert.is_some() != a.out.is_some() {
        bail!(
            "--device-cert and -o go together (make an envelope for another machine); \
             without both, --token names the device token to provision here"
        );
    }
    // The device: its certificate file, or the token on this machine.
    let (device, chain) = match a.device_cert {
        Some(p) => (None, read_certs(p)?),
        None => {
            let d = ctx.open()?;
            let chain = d.token.identity_info().map(|i| i.chain).unwrap_or_default();
            if chain.is_empty() {
                bail!(
                    "the device token {} has no device certificate: certify it first \
                     (vtoken --token {} device certify)",
                    d.entry.label,
                    d.entry.label
                );
            }
            (Some(d), chain)
        }
    };
    let st_entry = ctx.registry.find(a.station)?;
    if device
        .as_ref()
        .is_some_and(|d| d.entry.serial == st_entry.serial)
    {
        bail!("--station names the device token itself; give the station token");
    }
    let st = ctx.registry.open(&st_entry)?;
    let st_sid = &st.open_session(true)?;
    let st_pin = match a.station_pin.filter(|v| !v.is_empty()) {
        Some(v) => zeroize::Zeroizing::new(v.clone()),
        None => pin::prompt_named("station token's user PIN")?,
    };
    let r = (|| {
        login(&st, UserType::User, &st_pin)?;
        let dsn = device_dsn(&st, &chain)?;
        if let Some(d) = &device {
            if !dsn.eq_ignore_ascii_case(&d.entry.serial) {
                bail!("the device token's certificate names {dsn}, not its serial");
            }
        }
        Ok::<Vec<u8>, CliError>(st.rks_station_seal(&chain[0], &dsn, &f, &root_spki)?)
    })();
    let _ = st.close_session(st_sid);
    let envelope = r?;
    match (device, a.out) {
        (_, Some(out)) => {
            write_out(Some(out), &envelope)?;
            if json {
                print_json(&json!({ "station": st_entry.serial, "out": out }))?;
            } else {
                outln!(
                    "injection envelope for the device written to {} (load it there with \
                     `vtoken rks inject --in FILE`)",
                    out.display()
                );
            }
            Ok(())
        }
        (Some(d), None) => {
            d.login(UserType::So, &pin::so(a.so)?)?;
            let i = inject_into(&d.token, &envelope, a.replace)?;
            report(json, &i)
        }
        (None, None) => unreachable!("checked above"),
    }
}

/// `vtoken rks inject`.
pub fn inject(ctx: &Ctx, json: bool, input: &Path, so: &SoPin, replace: bool) -> Result<()> {
    let b = read_in(input)?;
    let d = ctx.open()?;
    d.login(UserType::So, &pin::so(so)?)?;
    let i = inject_into(&d.token, &b, replace)
        .map_err(|e| CliError::new(format!("{}: injection refused: {e}", input.display())))?;
    report(json, &i)
}
