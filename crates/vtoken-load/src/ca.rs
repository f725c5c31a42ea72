//! The CA cell: enrollments (a fresh P-256 key's PKCS#10 request in, the
//! certificate out, stored), each request signed by a registered operator as the
//! CA requires (`vtoken_pki::auth`).

use std::path::{Path, PathBuf};

use p256::ecdsa::{signature::Signer, Signature, SigningKey};
use pkcs8::EncodePublicKey;
use vtoken_pki::auth::Credential;
use vtoken_pki::{api, build_csr, SigAlg, Usage};

use crate::{sys, Backend, Cell};

/// Token serials the CA certifies.
const RANGE: &str = "0000000000000000-00000000FFFFFFFF";

pub struct CaCell {
    dir: PathBuf,
    db: Vec<String>,
    op_key: SigningKey,
    op_cert: Vec<u8>,
    /// One request per operation, each for a fresh key and token serial.
    csrs: Vec<Vec<u8>>,
}

fn csr(key: &SigningKey, serial: &str, usage: Usage) -> Result<Vec<u8>, String> {
    let spki = key
        .verifying_key()
        .to_public_key_der()
        .map_err(|e| e.to_string())?;
    build_csr(
        spki.as_bytes(),
        serial,
        usage,
        |m| Ok::<_, vtoken_pki::Error>(Signer::<Signature>::sign(key, m).to_bytes().to_vec()),
        SigAlg::EcdsaSha256,
    )
    .map_err(|e| e.to_string())
}

fn credential(key: &SigningKey, cert: &[u8]) -> Result<Credential, String> {
    let key = key.clone();
    Credential::new(
        cert.to_vec(),
        Box::new(move |m| Ok(Signer::<Signature>::sign(&key, m).to_bytes().to_vec())),
    )
    .map_err(|e| e.to_string())
}

impl CaCell {
    /// `ca init`, one operator (`ca operator add --csr`), `ops` requests.
    pub fn setup(bin: &Path, tmp: &Path, backend: &Backend, ops: usize) -> Result<CaCell, String> {
        let dir = tmp.join("ca");
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let db = backend.args();
        let mut init = s(&["ca", "init", "--dir", &dir.display().to_string()]);
        init.extend(s(&["--name", "Load test CA"]));
        init.extend(db.clone());
        sys::run(bin, &init)?;
        let op_key = SigningKey::random(&mut rand_core::OsRng);
        let op_csr = tmp.join("station.csr");
        std::fs::write(&op_csr, csr(&op_key, "0F0F0F0F00000001", Usage::Operator)?)
            .map_err(|e| e.to_string())?;
        let mut add = s(&["ca", "operator", "add", "--dir", &dir.display().to_string()]);
        add.extend(s(&["--name", "station", "--profiles", "device", "--csr"]));
        add.push(op_csr.display().to_string());
        add.extend(db.clone());
        let pem = sys::run(bin, &add)?;
        let op_cert = vtoken_pki::certs_from_pem(&pem)
            .map_err(|e| e.to_string())?
            .into_iter()
            .next()
            .ok_or("ca operator add printed no certificate")?;
        let csrs = (0..ops)
            .map(|i| {
                let key = SigningKey::random(&mut rand_core::OsRng);
                csr(&key, &format!("{:016X}", 0x1000 + i), Usage::Device)
            })
            .collect::<Result<_, _>>()?;
        Ok(CaCell {
            dir,
            db,
            op_key,
            op_cert,
            csrs,
        })
    }
}

impl Cell for CaCell {
    fn serve_args(&self) -> Vec<String> {
        let mut a: Vec<String> = ["ca", "serve", "--dir"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.push(self.dir.display().to_string());
        // The per-client limit would refuse a load generator (all clients share
        // one address and one operator).
        for x in ["--serial-range", RANGE, "--rate-limit", "100000000"] {
            a.push(x.into());
        }
        a.extend(self.db.clone());
        a
    }

    fn requests_per_op(&self) -> f64 {
        1.0
    }

    fn op(&self, agent: &ureq::Agent, url: &str, _client: usize, i: usize) -> Result<(), String> {
        let csr = &self.csrs[i];
        // A credential per request is cheap (a key clone): the signing closure is
        // not shared between client threads.
        let cred = credential(&self.op_key, &self.op_cert)?;
        let mut headers = cred
            .headers("POST", api::ENROLL, csr)
            .map_err(|e| e.to_string())?;
        headers.push(("Content-Type", api::CT_PKCS10.to_string()));
        let cert = crate::post(agent, url, api::ENROLL, &headers, csr)?;
        let serial = vtoken_pki::cert_token_serial(&cert).map_err(|e| e.to_string())?;
        if serial != format!("{:016X}", 0x1000 + i) {
            return Err(format!(
                "certificate for token {serial}, not for request {i}"
            ));
        }
        Ok(())
    }

    fn check(&self, backend: &Backend, ok: usize) -> Result<String, String> {
        let file = self.dir.join("ca.db");
        let certs = backend.count("ca", &file, "SELECT count(*) FROM certs")?;
        let distinct =
            backend.count("ca", &file, "SELECT count(DISTINCT cert_serial) FROM certs")?;
        let tokens = backend.count(
            "ca",
            &file,
            "SELECT count(DISTINCT token_serial) FROM certs",
        )?;
        let m = format!(
            "{certs} certificates stored, {distinct} distinct serials, {tokens} tokens, for {ok} enrollments"
        );
        if certs == ok as i64 && distinct == certs && tokens == certs {
            Ok(m)
        } else {
            Err(m)
        }
    }
}

/// The CA's public-key work per enrollment, in this process: the operator
/// signature over the request (verified, with its certificate parsed), the
/// PKCS#10 signature (verified, parsed), and the certificate (built, signed with
/// the CA's P-256 key) — the same `vtoken_pki` calls the server makes.
pub fn bare_crypto() -> Result<(f64, String), String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let ca =
        vtoken_pki::LocalCa::init(&tmp.path().join("ca"), "Bare CA").map_err(|e| e.to_string())?;
    let op_key = SigningKey::random(&mut rand_core::OsRng);
    let op_spki = op_key
        .verifying_key()
        .to_public_key_der()
        .map_err(|e| e.to_string())?;
    let op_cert = ca
        .issue_for_spki(op_spki.as_bytes(), "0F0F0F0F00000001", Usage::Operator)
        .map_err(|e| e.to_string())?;
    let cred = credential(&op_key, &op_cert)?;
    let key = SigningKey::random(&mut rand_core::OsRng);
    let req = csr(&key, "0000000000001000", Usage::Device)?;
    let headers = cred
        .headers("POST", api::ENROLL, &req)
        .map_err(|e| e.to_string())?;
    let secs = crate::time_per_call(200, || {
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        vtoken_pki::auth::verify_now(header, "POST", api::ENROLL, &req)
            .map_err(|e| e.to_string())?;
        let info = vtoken_pki::verify_csr(&req).map_err(|e| e.to_string())?;
        ca.issue(&info, 365).map_err(|e| e.to_string())?;
        Ok(())
    })?;
    Ok((
        secs * 1e3,
        "ECDSA P-256: verify the operator's request signature and the PKCS#10, sign the certificate".into(),
    ))
}
