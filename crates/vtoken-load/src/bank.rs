//! The bank cell: `tokens` wallets, each with its own account and a P-256 wallet
//! key registered with `bank register`; each operation one wallet load: the signed
//! load request (permit back, the account debited) and the signed receipt
//! (settlement back, the debit confirmed), as `tests/bank.rs` builds them. Each
//! client owns its tokens, so every token's sequence numbers go up one by one.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use p256::ecdsa::{SigningKey, VerifyingKey};
use pkcs8::EncodePublicKey;
use rand_core::RngCore;
use vtoken_pki::{build_csr, SigAlg, Usage};
use vtoken_wallet::msg::{
    sign_der, LoadPermit, LoadReceipt, LoadRequest, Outcome, Settlement, ALG_ECDSA_P256_SHA256,
};
use vtoken_wallet::{api, keys, Amount, Envelope, Kind};

use crate::{sys, Backend, Cell};

/// Every account's opening balance, and what each load moves.
const OPENING: u64 = 1_000_000;
const AMOUNT: &str = "1.00";

struct Token {
    serial: String,
    account: String,
    key: SigningKey,
    /// The last sequence number used and the wallet's balance in cents.
    seq: u64,
    wallet_cents: u64,
}

pub struct BankCell {
    dir: PathBuf,
    db: Vec<String>,
    bin: PathBuf,
    bank_vk: VerifyingKey,
    /// Per client, its tokens.
    clients: Vec<Mutex<Vec<Token>>>,
    /// Per client, the next of its tokens to load.
    turn: Vec<Mutex<usize>>,
}

/// Whether this vtoken-server's bank takes `--database` (the PostgreSQL port).
pub fn supports_database(bin: &Path) -> bool {
    sys::run(bin, &["bank".into(), "serve".into(), "--help".into()])
        .is_ok_and(|h| h.contains("--database"))
}

fn amount(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

impl BankCell {
    /// `bank init`, an account and a registered wallet key per token; the tokens
    /// dealt to `clients` clients.
    pub fn setup(
        bin: &Path,
        tmp: &Path,
        backend: &Backend,
        tokens: usize,
        clients: usize,
    ) -> Result<BankCell, String> {
        let dir = tmp.join("bank");
        let d = dir.display().to_string();
        let db = backend.args();
        let cmd = |v: &[&str]| {
            let mut c: Vec<String> = v.iter().map(|x| x.to_string()).collect();
            c.extend(db.clone());
            c
        };
        sys::run(bin, &cmd(&["bank", "init", "--dir", &d]))?;
        let mut all = Vec::new();
        let mut opens = Vec::new();
        let mut registers = Vec::new();
        for t in 0..tokens {
            let serial = format!("{:016X}", 0xB000 + t);
            let account = format!("ACC{t}");
            let key = SigningKey::random(&mut rand_core::OsRng);
            let spki = key
                .verifying_key()
                .to_public_key_der()
                .map_err(|e| e.to_string())?;
            let csr = build_csr(
                spki.as_bytes(),
                &serial,
                Usage::Signing,
                |tbs| Ok::<_, String>(sign_der(&key, tbs)),
                SigAlg::EcdsaSha256,
            )
            .map_err(|e| e.to_string())?;
            let csr_file = tmp.join(format!("{serial}.csr"));
            std::fs::write(&csr_file, csr).map_err(|e| e.to_string())?;
            let opening = format!("{OPENING}.00");
            opens.push(cmd(&[
                "bank",
                "account",
                "open",
                "--dir",
                &d,
                "--account",
                &account,
                "--holder",
                "Load test",
                "--balance",
                &opening,
            ]));
            let out = tmp.join(format!("{serial}.pem")).display().to_string();
            registers.push(cmd(&[
                "bank",
                "register",
                "--dir",
                &d,
                "--account",
                &account,
                "--csr",
                &csr_file.display().to_string(),
                "-o",
                &out,
            ]));
            all.push(Token {
                serial,
                account,
                key,
                seq: 0,
                wallet_cents: 0,
            });
        }
        eprintln!("   opening {tokens} accounts and registering {tokens} wallets");
        // SQLite takes one writer at a time: one worker there, so no command waits
        // out the busy timeout.
        let workers = if db.is_empty() { 1 } else { 4 };
        sys::run_all(bin, opens, workers)?;
        sys::run_all(bin, registers, workers)?;
        let pem = std::fs::read(dir.join("bank.pem")).map_err(|e| e.to_string())?;
        let bank_vk =
            keys::verifying_key_of_cert(&keys::cert_der_of(&pem).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        let mut per: Vec<Vec<Token>> = (0..clients).map(|_| Vec::new()).collect();
        for (i, t) in all.into_iter().enumerate() {
            per[i % clients].push(t);
        }
        Ok(BankCell {
            dir,
            db,
            bin: bin.to_path_buf(),
            bank_vk,
            turn: (0..clients).map(|_| Mutex::new(0)).collect(),
            clients: per.into_iter().map(Mutex::new).collect(),
        })
    }
}

fn seal<T: serde::Serialize>(
    kind: Kind,
    serial: &str,
    body: &T,
    key: &SigningKey,
) -> Result<Vec<u8>, String> {
    Envelope::seal_with(kind, serial, body, key)
        .map(|e| e.to_bytes())
        .map_err(|e| e.to_string())
}

impl Cell for BankCell {
    fn serve_args(&self) -> Vec<String> {
        let mut a: Vec<String> = vec!["bank".into(), "serve".into(), "--dir".into()];
        a.push(self.dir.display().to_string());
        a.extend(self.db.clone());
        a
    }

    fn requests_per_op(&self) -> f64 {
        2.0
    }

    fn op(&self, agent: &ureq::Agent, url: &str, client: usize, _i: usize) -> Result<(), String> {
        let mut tokens = self.clients[client].lock().map_err(|e| e.to_string())?;
        let mut turn = self.turn[client].lock().map_err(|e| e.to_string())?;
        let n = tokens.len();
        let t = &mut tokens[*turn % n];
        *turn += 1;
        let amt: Amount = AMOUNT.parse().map_err(|e| format!("{e}"))?;
        let mut random = [0u8; 16];
        rand_core::OsRng.fill_bytes(&mut random);
        t.seq += 1;
        let req = LoadRequest {
            token_serial: t.serial.clone(),
            account: t.account.clone(),
            amount: amt,
            currency: "CNY".into(),
            wallet_balance: amount(t.wallet_cents).parse().map_err(|e| format!("{e}"))?,
            seq: t.seq,
            key_version: 1,
            alg: ALG_ECDSA_P256_SHA256.into(),
            random,
            time: 0,
        };
        let permit = crate::post(
            agent,
            url,
            api::LOAD,
            &[],
            &seal(Kind::LoadRequest, &t.serial, &req, &t.key)?,
        )?;
        let permit: LoadPermit = Envelope::from_bytes(&permit)
            .and_then(|e| e.open(Kind::LoadPermit, &self.bank_vk))
            .map_err(|e| format!("permit: {e}"))?;
        if (permit.seq, permit.amount, permit.random) != (t.seq, amt, random) {
            return Err(format!("{}: permit for another load", t.serial));
        }
        t.wallet_cents += 100;
        let receipt = LoadReceipt {
            token_serial: t.serial.clone(),
            seq: t.seq,
            random,
            amount: amt,
            wallet_balance: amount(t.wallet_cents).parse().map_err(|e| format!("{e}"))?,
        };
        let st = crate::post(
            agent,
            url,
            api::RECEIPT,
            &[],
            &seal(Kind::LoadReceipt, &t.serial, &receipt, &t.key)?,
        )?;
        let st: Settlement = Envelope::from_bytes(&st)
            .and_then(|e| e.open(Kind::Settlement, &self.bank_vk))
            .map_err(|e| format!("settlement: {e}"))?;
        if st.outcome != Outcome::Confirmed {
            return Err(format!("{} seq {}: {:?}", t.serial, t.seq, st.outcome));
        }
        Ok(())
    }

    /// Through the bank's own command line (the same on both backends): each
    /// account holds its opening balance less exactly its token's loads.
    fn check(&self, _backend: &Backend, ok: usize) -> Result<String, String> {
        let mut loads = 0;
        let mut wrong = Vec::new();
        let d = self.dir.display().to_string();
        for c in &self.clients {
            for t in c.lock().map_err(|e| e.to_string())?.iter() {
                let mut a: Vec<String> = [
                    "bank",
                    "account",
                    "show",
                    "--dir",
                    &d,
                    "--account",
                    &t.account,
                    "--json",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect();
                a.extend(self.db.clone());
                let v: serde_json::Value =
                    serde_json::from_str(&sys::run(&self.bin, &a)?).map_err(|e| e.to_string())?;
                let want = amount(OPENING * 100 - t.wallet_cents);
                if v["balance"].as_str() != Some(want.as_str()) {
                    wrong.push(format!("{}: {} (expected {want})", t.account, v["balance"]));
                }
                loads += t.wallet_cents / 100;
            }
        }
        let m = format!(
            "{loads} loads confirmed by the clients for {ok} operations; every account's \
             balance = opening - its loads{}",
            if wrong.is_empty() {
                String::new()
            } else {
                format!(": NOT for {}", wrong.join(", "))
            }
        );
        if wrong.is_empty() && loads == ok as u64 {
            Ok(m)
        } else {
            Err(m)
        }
    }
}

/// The bank's public-key work per load, in this process: the wallet certificate's
/// chain check, the request's and the receipt's signatures verified, the permit and
/// the settlement signed (ECDSA P-256, the `vtoken_wallet` and `vtoken_pki` calls
/// the server makes).
pub fn bare_crypto() -> Result<(f64, String), String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let ca = vtoken_pki::LocalCa::init(&tmp.path().join("bank"), "Bare bank")
        .map_err(|e| e.to_string())?;
    let bank_key = SigningKey::random(&mut rand_core::OsRng);
    let wallet = SigningKey::random(&mut rand_core::OsRng);
    let spki = wallet
        .verifying_key()
        .to_public_key_der()
        .map_err(|e| e.to_string())?;
    let cert = ca
        .issue_for_spki(spki.as_bytes(), "000000000000B000", Usage::Signing)
        .map_err(|e| e.to_string())?;
    let amt: Amount = AMOUNT.parse().map_err(|e| format!("{e}"))?;
    let req = LoadRequest {
        token_serial: "000000000000B000".into(),
        account: "ACC0".into(),
        amount: amt,
        currency: "CNY".into(),
        wallet_balance: Amount::ZERO,
        seq: 1,
        key_version: 1,
        alg: ALG_ECDSA_P256_SHA256.into(),
        random: [1; 16],
        time: 0,
    };
    let sealed = seal(Kind::LoadRequest, &req.token_serial, &req, &wallet)?;
    let receipt = LoadReceipt {
        token_serial: req.token_serial.clone(),
        seq: 1,
        random: [1; 16],
        amount: amt,
        wallet_balance: amt,
    };
    let sealed_receipt = seal(Kind::LoadReceipt, &req.token_serial, &receipt, &wallet)?;
    let secs = crate::time_per_call(200, || {
        vtoken_pki::verify_chain(&cert, &[], ca.cert_der(), std::time::SystemTime::now())
            .map_err(|e| e.to_string())?;
        let vk = keys::verifying_key_of_cert(&cert).map_err(|e| e.to_string())?;
        let r: LoadRequest = Envelope::from_bytes(&sealed)
            .and_then(|e| e.open(Kind::LoadRequest, &vk))
            .map_err(|e| e.to_string())?;
        seal(Kind::LoadPermit, &r.token_serial, &r.seq, &bank_key)?;
        let rc: LoadReceipt = Envelope::from_bytes(&sealed_receipt)
            .and_then(|e| e.open(Kind::LoadReceipt, &vk))
            .map_err(|e| e.to_string())?;
        seal(Kind::Settlement, &rc.token_serial, &rc.seq, &bank_key)?;
        Ok(())
    })?;
    Ok((
        secs * 1e3,
        "ECDSA P-256: chain check of the wallet certificate, verify request and receipt, sign permit and settlement".into(),
    ))
}
