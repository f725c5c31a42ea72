//! The processes under load: `vtoken-server` instances started and stopped through
//! their real command line, their CPU time and the PostgreSQL cluster's, read from
//! `/proc`.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Clock ticks a second of `/proc/PID/stat`'s CPU fields.
fn ticks_per_second() -> f64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as f64,
        _ => 100.0,
    }
}

/// (parent pid, utime + stime, cutime + cstime) of a process, in seconds.
fn stat(pid: u32) -> Option<(u32, f64, f64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: fields follow the last ')'.
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
    let tps = ticks_per_second();
    Some((
        f.get(1)?.parse().ok()?,
        (n(11)? + n(12)?) / tps,
        (n(13)? + n(14)?) / tps,
    ))
}

/// CPU seconds of the calling thread so far.
pub fn thread_cpu() -> f64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map_or(0.0, |t| t.tv_sec() as f64 + t.tv_nsec() as f64 / 1e9)
}

/// CPU seconds (user + system) of process `pid` so far.
pub fn cpu_of(pid: u32) -> f64 {
    stat(pid).map_or(0.0, |(_, own, _)| own)
}

/// CPU seconds of this process (all its threads).
pub fn own_cpu() -> f64 {
    cpu_of(std::process::id())
}

/// CPU seconds of a PostgreSQL cluster: the postmaster, its live children (the
/// backends, the checkpointer, the WAL writer, ...) and the children that have
/// exited (counted into the postmaster's cutime/cstime when reaped).
pub fn tree_cpu(root: u32) -> f64 {
    let Some((_, own, reaped)) = stat(root) else {
        return 0.0;
    };
    let mut total = own + reaped;
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if let Some((ppid, cpu, _)) = stat(pid) {
            if ppid == root {
                total += cpu;
            }
        }
    }
    total
}

/// What one server instance reported about its database when it stopped.
#[derive(Clone, Copy, Debug, Default)]
pub struct DbTime {
    /// Transactions run.
    pub transactions: u64,
    /// Wall seconds spent in them.
    pub seconds: f64,
}

/// A `vtoken-server … serve` process on 127.0.0.1, its stderr collected.
pub struct Server {
    child: Child,
    /// Base URL (`http://127.0.0.1:PORT`).
    pub url: String,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Server {
    /// Start `BIN ARGS --listen 127.0.0.1:0` and wait for its address line. The log
    /// level shows warnings and the database's closing statistics only.
    pub fn start(bin: &Path, args: &[String]) -> Result<Server, String> {
        let mut child = Command::new(bin)
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .env("VTOKEN_LOG", "warn,vtoken_db_stats=debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("{}: {e}", bin.display()))?;
        let mut err = child.stderr.take().expect("piped stderr");
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let mut line = String::new();
        let _ = BufReader::new(child.stdout.take().expect("piped stdout")).read_line(&mut line);
        let Some(url) = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .map(str::to_string)
        else {
            let _ = child.kill();
            let _ = child.wait();
            let log = stderr.join().unwrap_or_default();
            return Err(format!("{args:?} did not start: {line}{log}"));
        };
        Ok(Server {
            child,
            url,
            stderr: Some(stderr),
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM (graceful shutdown: in-flight requests finish), wait for the exit and
    /// read the database statistics it logged; `None` if it had to be killed or
    /// logged none.
    pub fn stop(mut self) -> Option<DbTime> {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut clean = false;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                clean = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if !clean {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let log = self.stderr.take()?.join().unwrap_or_default();
        for l in log.lines().filter(|l| !l.contains("vtoken_db_stats")) {
            eprintln!("  server: {l}");
        }
        parse_db_time(&log)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.stderr.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The sum of the `transactions=N seconds=S` lines of the `vtoken_db_stats` target.
fn parse_db_time(log: &str) -> Option<DbTime> {
    let mut found = None::<DbTime>;
    for l in log.lines().filter(|l| l.contains("vtoken_db_stats")) {
        let field = |name: &str| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .and_then(|v| v.parse::<f64>().ok())
        };
        if let (Some(t), Some(s)) = (field("transactions="), field("seconds=")) {
            let d = found.get_or_insert_with(DbTime::default);
            d.transactions += t as u64;
            d.seconds += s;
        }
    }
    found
}

/// Run `vtoken-server ARGS` to completion; its stdout, or its stderr as the error.
pub fn run(bin: &Path, args: &[String]) -> Result<String, String> {
    let o = Command::new(bin)
        .args(args)
        .env("VTOKEN_LOG", "warn")
        .output()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    if !o.status.success() {
        return Err(format!(
            "vtoken-server {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Run many `vtoken-server` commands on `workers` threads; the first failure.
pub fn run_all(bin: &Path, cmds: Vec<Vec<String>>, workers: usize) -> Result<(), String> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let cmds = &cmds;
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..workers.max(1))
            .map(|_| {
                let next = &next;
                s.spawn(move || loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(c) = cmds.get(i) else {
                        return Ok(());
                    };
                    run(bin, c)?;
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("worker panicked".into())))
            .collect::<Result<Vec<()>, String>>()
            .map(drop)
    })
}

/// `vtoken-server` beside this binary (both are built into the same target
/// directory), unless given.
pub fn server_bin(given: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(p) = given {
        return Ok(p);
    }
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let p = me.with_file_name("vtoken-server");
    if p.exists() {
        Ok(p)
    } else {
        Err(format!(
            "{} not found: build it (cargo build --release -p vtoken-server) or give --server",
            p.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_time_lines_are_summed() {
        let log = "2026-12-05T02:00:00Z DEBUG vtoken_db_stats: database time transactions=10 seconds=0.5\n\
                   2026-12-05T02:00:00Z  WARN vtoken_server: something\n\
                   2026-12-05T02:00:01Z DEBUG vtoken_db_stats: database time transactions=5 seconds=0.25\n";
        let d = parse_db_time(log).unwrap();
        assert_eq!(d.transactions, 15);
        assert!((d.seconds - 0.75).abs() < 1e-9);
        assert!(parse_db_time("nothing here\n").is_none());
    }

    #[test]
    fn own_cpu_time_grows_with_work() {
        let before = own_cpu();
        let start = Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(300) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        assert!(own_cpu() > before, "300 ms of spinning shows in /proc");
    }
}
