//! Network namespaces for the kernel-peer tests that build their own
//! topology (routers, veth pairs): `ip` from iproute2, namespaces named
//! `<prefix><role>-<pid>-<n>` and deleted on drop, or by a later run once
//! the process that made them is gone.
#![allow(dead_code)]

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

/// Why these tests cannot run here: no root (CAP_NET_ADMIN) or no `ip`.
pub fn unavailable() -> Option<String> {
    if let Some(why) = super::device::tun_unavailable() {
        return Some(why);
    }
    match Command::new("ip").arg("-V").output() {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!("`ip -V` failed: {}", out.status)),
        Err(e) => Some(format!("`ip` (iproute2) cannot be run: {e}")),
    }
}

/// Prints the reason and returns true when test `what` cannot run; panics
/// instead under CI=true, where a skip would hide a broken runner.
pub fn skip(what: &str) -> bool {
    let Some(why) = unavailable() else {
        return false;
    };
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but {what} cannot run: {why}");
    }
    // Straight to the stderr handle: the test harness captures `eprintln!`
    // and shows it only for failures, and a skip must be seen.
    let _ = writeln!(io::stderr(), "skipping {what}: {why}");
    true
}

/// Runs `ip` with `args`, failing with its stderr.
pub fn ip(args: &[&str]) -> io::Result<()> {
    let out = Command::new("ip").args(args).output()?;
    if out.status.success() {
        return Ok(());
    }
    Err(io::Error::other(format!(
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}

/// Runs `ip` with `args` and returns its stdout.
pub fn ip_output(args: &[&str]) -> io::Result<String> {
    let out = Command::new("ip").args(args).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!("ip {} failed", args.join(" "))));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A named network namespace (`ip netns add`), deleted on drop. The
/// interfaces in it go with it; sockets opened in it keep it alive until
/// they close.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(name: String) -> io::Result<Netns> {
        ip(&["netns", "add", &name])?;
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// `ip -n <ns> args...`
    pub fn ip(&self, args: &[&str]) -> io::Result<()> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// Runs `f` on a thread that has entered this namespace: sockets it
    /// opens and `/proc/sys/net` files it writes belong to the namespace.
    pub fn enter<T, F>(&self, f: F) -> io::Result<T>
    where
        T: Send,
        F: FnOnce() -> io::Result<T> + Send,
    {
        let handle = File::open(format!("/run/netns/{}", self.name))?;
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    // SAFETY: `handle` is an open namespace file for the
                    // call's duration; CLONE_NEWNET moves only this thread,
                    // which ends when `f` returns.
                    let rc = unsafe { libc::setns(handle.as_raw_fd(), libc::CLONE_NEWNET) };
                    if rc != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    f()
                })
                .join()
                .expect("namespace thread panicked")
        })
    }

    /// Writes a sysctl of this namespace (`key` as a path under /proc/sys).
    pub fn sysctl(&self, key: &str, value: &str) -> io::Result<()> {
        let path = format!("/proc/sys/{key}");
        self.enter(|| std::fs::write(&path, value))
    }

    /// Waits (bounded) until no IPv6 address here is tentative (DAD).
    pub fn wait_no_tentative(&self) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = ip_output(&["-n", &self.name, "-6", "addr", "show", "tentative"])?;
            if out.trim().is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "addresses still tentative in {}: {out}",
                    self.name
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!("cleanup: {e}");
        }
    }
}

/// Deletes namespaces named `<prefix><role>-<pid>-<n>` left by test
/// processes that died before their guards ran (killed by a timeout, say):
/// their pid is gone.
pub fn remove_stale(prefix: &str) {
    let Ok(dir) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(prefix)
            .and_then(|rest| rest.split('-').nth(1))
        else {
            continue;
        };
        if !std::path::Path::new("/proc").join(pid).exists() {
            let _ = ip(&["netns", "del", &name]);
        }
    }
}
