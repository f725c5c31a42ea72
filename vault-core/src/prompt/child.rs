//! Child-process helpers shared by the agents: waiting with a deadline and killing a
//! child together with whatever it started.

use std::collections::HashMap;
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Waits for `child` until `deadline`; `None` when it is still running then.
pub(crate) fn wait_until(
    child: &mut Child,
    deadline: Instant,
) -> std::io::Result<Option<ExitStatus>> {
    let mut nap = Duration::from_millis(5);
    loop {
        if let Some(st) = child.try_wait()? {
            return Ok(Some(st));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        std::thread::sleep(nap.min(deadline - now));
        nap = (nap * 2).min(Duration::from_millis(50));
    }
}

/// The processes descending from `pid` (children, grandchildren, ...), from `/proc`.
/// Empty where `/proc` is not available.
fn descendants(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for e in dir.flatten() {
        let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ..."; comm may hold spaces and parentheses.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|s| s.parse().ok()) {
            children.entry(ppid).or_default().push(p);
        }
    }
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        if let Some(c) = children.get(&p) {
            out.extend_from_slice(c);
            todo.extend_from_slice(c);
        }
    }
    out
}

/// Kills `child` (SIGKILL) and, best effort, the processes it started (a shell
/// script's `sleep`, say), then reaps it.
pub(crate) fn kill_tree(child: &mut Child) {
    let desc = descendants(child.id());
    let _ = child.kill();
    if !desc.is_empty() {
        let _ = std::process::Command::new("kill")
            .arg("-KILL")
            .args(desc.iter().map(u32::to_string))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    let _ = child.wait();
}

/// `cmd.spawn()`, retried briefly on `ETXTBSY`: a program written a moment ago
/// can still be open for writing in a process another thread just forked (until
/// that one calls exec), and exec then fails with "Text file busy".
pub(crate) fn spawn(cmd: &mut std::process::Command) -> std::io::Result<Child> {
    const ETXTBSY: i32 = 26;
    let mut tries = 0;
    loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(ETXTBSY) && tries < 20 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(10 * tries));
            }
            r => return r,
        }
    }
}
