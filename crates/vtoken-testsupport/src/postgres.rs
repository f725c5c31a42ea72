//! A throwaway PostgreSQL server for the servers' PostgreSQL tests (issue 21):
//! Debian's `postgresql` package (`/usr/lib/postgresql/<version>/bin`, or the
//! directory in `VTOKEN_PG_BIN`), a fresh cluster made by `initdb` in a temporary
//! directory, `postgres` listening on 127.0.0.1 on a free port (and a Unix socket in
//! the same directory), run as the unprivileged user `nobody` when the test runs as
//! root (PostgreSQL refuses to run as root). Superuser `vtoken`, trust
//! authentication (the cluster lives as long as the test). Stopped and deleted on
//! drop. [`Postgres::stop`] and [`Postgres::start_again`] restart it in place, for
//! the tests of a database going away mid-run.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The cluster's superuser.
pub const USER: &str = "vtoken";

/// A running PostgreSQL cluster in a temporary directory.
pub struct Postgres {
    bin: PathBuf,
    tmp: tempfile::TempDir,
    port: u16,
    /// `Some((uid, gid))` of `nobody` when the test runs as root.
    run_as: Option<(u32, u32)>,
    /// More `postgres` options, after the defaults (a later `-c` wins).
    extra: Vec<String>,
    child: Option<Child>,
}

/// The directory of Debian's PostgreSQL server binaries (newest version first).
fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("VTOKEN_PG_BIN") {
        return PathBuf::from(d);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b).unwrap_or_else(|| {
        panic!(
            "PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin: \
             run scripts/deps (installs Debian's postgresql) or set VTOKEN_PG_BIN"
        )
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

fn id(flag: &str, user: &str) -> u32 {
    let out = Command::new("id")
        .args([flag, user])
        .output()
        .expect("run id");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("id {flag} {user}: {out:?}"))
}

impl Postgres {
    /// initdb and start a cluster; panics (with the server's log) if it does not
    /// come up.
    pub fn start() -> Postgres {
        Postgres::start_with(&[])
    }

    /// [`Postgres::start`] with more `postgres` options after the defaults, e.g.
    /// `["-c", "fsync=on"]` for a durable cluster (the benchmarks: the tests run
    /// with `fsync=off`).
    pub fn start_with(extra: &[&str]) -> Postgres {
        let bin = bin_dir();
        let tmp = tempfile::Builder::new()
            .prefix("vtoken-pg-")
            .tempdir()
            .expect("temporary directory");
        let root = String::from_utf8_lossy(
            &Command::new("id")
                .arg("-u")
                .output()
                .expect("run id")
                .stdout,
        )
        .trim()
            == "0";
        let run_as = root.then(|| (id("-u", "nobody"), id("-g", "nobody")));
        let mut pg = Postgres {
            bin,
            tmp,
            port: 0,
            run_as,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        if let Some((uid, gid)) = run_as {
            let status = Command::new("chown")
                .arg(format!("{uid}:{gid}"))
                .arg(pg.tmp.path())
                .status()
                .expect("run chown");
            assert!(status.success(), "chown of the PostgreSQL directory failed");
        }
        let out = pg
            .command("initdb")
            .arg("-D")
            .arg(pg.data())
            .args(["-U", USER, "-A", "trust", "-E", "UTF8", "--locale=C"])
            .args(["--no-sync", "--no-instructions"])
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        pg.port = free_port();
        pg.start_again();
        pg
    }

    /// A command of the server's binaries, as `nobody` when running as root.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match self.run_as {
            Some((uid, gid)) => {
                // setpriv execs the program: the child's pid is the server's own.
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .arg("--clear-groups")
                    .arg("--")
                    .arg(path);
                c
            }
            None => Command::new(path),
        }
    }

    fn data(&self) -> PathBuf {
        self.tmp.path().join("data")
    }

    fn log(&self) -> PathBuf {
        self.tmp.path().join("postgres.log")
    }

    /// The directory of the server's Unix socket.
    pub fn socket_dir(&self) -> &Path {
        self.tmp.path()
    }

    /// The postmaster's process id while the server runs (its backends are its
    /// children), e.g. to read their CPU time from /proc.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Start the server (again, after [`Postgres::stop`]) on the same port and data;
    /// returns once it accepts connections.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "PostgreSQL is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .expect("PostgreSQL log file");
        let child = self
            .command("postgres")
            .arg("-D")
            .arg(self.data())
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(self.socket_dir())
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(["-c", "max_connections=200"])
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start postgres");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ok = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            if let Some(st) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                panic!(
                    "postgres exited ({st}): {}",
                    std::fs::read_to_string(self.log()).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not start in 60 s: {}",
                std::fs::read_to_string(self.log()).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stop the server (fast shutdown: open connections are cut, as when an
    /// administrator restarts it); waits until it is gone.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Create database `name`; its URL (`postgres://vtoken@127.0.0.1:PORT/name`).
    pub fn database(&self, name: &str) -> String {
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(name)
    }

    /// The URL of database `name`.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{name}", self.port)
    }

    /// Run `sql` in database `db` with `psql` (unaligned, tuples only); its output.
    /// Panics on failure.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", USER])
            .args(["-d", db, "-c", sql])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Terminate every other connection to database `db` (what a failover, a network
    /// cut or an administrator's `pg_terminate_backend` does to the servers).
    pub fn kill_connections(&self, db: &str) -> u64 {
        self.psql(
            "postgres",
            &format!(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = '{db}' AND pid <> pg_backend_pid()"
            ),
        )
        .parse()
        .unwrap_or(0)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}
