//! Linux plumbing for the comparison: network namespaces (created with
//! `ip netns`, entered per thread with `setns`), CPU pinning, per-thread CPU
//! time, RSS, kernel slab usage and per-namespace SNMP counters.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::Duration;

/// Runs a command; an error carries its stderr.
pub fn run(cmd: &str, args: &[&str]) -> io::Result<()> {
    let out = Command::new(cmd).args(args).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "`{cmd} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Runs a shell command inside a namespace.
pub fn ns_sh(ns: &str, script: &str) -> io::Result<()> {
    run("ip", &["netns", "exec", ns, "sh", "-c", script])
}

/// A named network namespace owned by this process: deleted (with every
/// interface inside it) on drop.
pub struct Netns {
    pub name: String,
    file: File,
}

/// Prefix of everything this benchmark creates.
pub const PREFIX: &str = "ubn";

impl Netns {
    /// Creates `ubn<pid><tag>` with `lo` up, sysctls for connection-rate runs
    /// (wide port range, TIME-WAIT reuse) and IPv6 without duplicate
    /// address detection applied.
    pub fn create(tag: &str) -> io::Result<Netns> {
        let name = format!("{PREFIX}{}{tag}", std::process::id());
        let _ = run("ip", &["netns", "del", &name]);
        run("ip", &["netns", "add", &name])?;
        // From here on Drop cleans up, even if the rest fails.
        let file = match File::open(format!("/var/run/netns/{name}")) {
            Ok(f) => f,
            Err(e) => {
                let _ = run("ip", &["netns", "del", &name]);
                return Err(e);
            }
        };
        let ns = Netns { name, file };
        ns_sh(
            &ns.name,
            "ip link set lo up && \
             echo '1024 65000' > /proc/sys/net/ipv4/ip_local_port_range && \
             echo 1 > /proc/sys/net/ipv4/tcp_tw_reuse",
        )?;
        // No duplicate address detection: an IPv6 address is usable at
        // once (else a second of tentative state per device). A kernel
        // without IPv6 has no such file; its IPv6 rows then fail alone.
        let _ = ns_sh(
            &ns.name,
            "echo 0 > /proc/sys/net/ipv6/conf/all/accept_dad; \
             echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad",
        );
        Ok(ns)
    }

    /// Moves the calling thread into this namespace (sockets and devices it
    /// creates afterwards live there).
    pub fn enter(&self) -> io::Result<()> {
        // SAFETY: setns on a valid namespace fd; affects only this thread.
        let rc = unsafe { libc::setns(self.file.as_raw_fd(), libc::CLONE_NEWNET) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Packets the kernel dropped on transmit on this namespace's `ubn*`
    /// devices (a TUN whose reader is too slow drops here).
    pub fn dev_tx_drops(&self) -> Option<u64> {
        std::thread::scope(|s| {
            s.spawn(|| {
                self.enter().ok()?;
                let text = std::fs::read_to_string("/proc/thread-self/net/dev").ok()?;
                let mut sum = 0u64;
                for l in text.lines().skip(2) {
                    let (name, rest) = l.split_once(':')?;
                    if !name.trim().starts_with(PREFIX) {
                        continue;
                    }
                    // rx: bytes packets errs drop fifo frame compressed
                    // multicast; tx: bytes packets errs drop ...
                    sum += rest.split_whitespace().nth(11)?.parse::<u64>().ok()?;
                }
                Some(sum)
            })
            .join()
            .ok()
            .flatten()
        })
    }

    /// TCP sockets of this namespace still closing (FIN-WAIT, CLOSING,
    /// LAST-ACK, CLOSE-WAIT, SYN states): not ESTABLISHED, TIME-WAIT or LISTEN.
    pub fn closing_sockets(&self) -> Option<usize> {
        std::thread::scope(|s| {
            s.spawn(|| {
                self.enter().ok()?;
                let text = std::fs::read_to_string("/proc/thread-self/net/tcp").ok()?;
                Some(
                    text.lines()
                        .skip(1)
                        .filter_map(|l| l.split_whitespace().nth(3))
                        .filter(|st| !matches!(*st, "01" | "06" | "07" | "0A"))
                        .count(),
                )
            })
            .join()
            .ok()
            .flatten()
        })
    }

    /// Reads `/proc/net/snmp` of this namespace (from a short-lived thread).
    pub fn retrans_segs(&self) -> Option<u64> {
        std::thread::scope(|s| {
            s.spawn(|| {
                self.enter().ok()?;
                retrans_segs_here()
            })
            .join()
            .ok()
            .flatten()
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = run("ip", &["netns", "del", &self.name]) {
            eprintln!("warning: {e}");
        }
    }
}

/// Deletes `ubn<pid>*` namespaces left by runs whose process is gone.
pub fn remove_stale_namespaces() {
    let Ok(dir) = std::fs::read_dir("/var/run/netns") else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let pid: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        if pid.is_empty() || std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let _ = run("ip", &["netns", "del", &name]);
    }
}

/// Deletes every namespace this process created (last-resort cleanup).
pub fn remove_own_namespaces() {
    let me = format!("{PREFIX}{}", std::process::id());
    if let Ok(dir) = std::fs::read_dir("/var/run/netns") {
        for e in dir.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with(&me) {
                let _ = run("ip", &["netns", "del", &n]);
            }
        }
    }
}

/// TcpExt/Tcp RetransSegs of the calling thread's namespace.
pub fn retrans_segs_here() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/net/snmp").ok()?;
    let mut lines = text.lines().filter(|l| l.starts_with("Tcp:"));
    let header = lines.next()?;
    let values = lines.next()?;
    let idx = header.split_whitespace().position(|h| h == "RetransSegs")?;
    values.split_whitespace().nth(idx)?.parse().ok()
}

/// Kernel thread id of the caller.
pub fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// Pins thread `tid` (0 = the caller) to one CPU.
pub fn pin(tid: i32, cpu: usize) -> io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET stays in bounds
    // for cpu < CPU_SETSIZE.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Number of CPUs this process may run on.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// User+system CPU time of the calling thread.
pub fn thread_cpu() -> Duration {
    rusage(libc::RUSAGE_THREAD)
}

/// User+system CPU time of the whole process.
pub fn process_cpu() -> Duration {
    rusage(libc::RUSAGE_SELF)
}

fn rusage(who: libc::c_int) -> Duration {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(who, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// User+system CPU time of thread `tid` of this process, from
/// `/proc/self/task/<tid>/stat` (clock-tick resolution).
pub fn task_cpu(tid: i32) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(Duration::from_micros(ticks * 1_000_000 / hz))
}

/// Resident set size of this process, bytes.
pub fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Bytes in the slab caches a TCP socket with a file descriptor uses (the
/// socket itself, its inode, file and dentry, bind buckets, request socks).
/// System-wide: other activity on the machine adds noise.
pub fn socket_slab_bytes() -> u64 {
    const CACHES: &[&str] = &[
        "TCP",
        "sock_inode_cache",
        "filp",
        "dentry",
        "tcp_bind_bucket",
        "tcp_bind2_bucket",
        "request_sock_TCP",
        "skbuff_head_cache",
    ];
    let Ok(text) = std::fs::read_to_string("/proc/slabinfo") else {
        return 0;
    };
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 4 || !CACHES.contains(&f[0]) {
                return None;
            }
            let active: u64 = f[1].parse().ok()?;
            let size: u64 = f[3].parse().ok()?;
            Some(active * size)
        })
        .sum()
}

/// Raises the open-file limit as far as allowed (10,000 idle connections
/// need 10,000+ descriptors on the kernel side); returns the soft limit.
pub fn raise_nofile() -> u64 {
    // SAFETY: get/setrlimit with a valid struct.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 {
            r.rlim_cur = r.rlim_max.min(1 << 20);
            if r.rlim_cur < 65536 {
                r.rlim_max = r.rlim_max.max(65536);
                r.rlim_cur = 65536;
            }
            if libc::setrlimit(libc::RLIMIT_NOFILE, &r) != 0 {
                // Without CAP_SYS_RESOURCE: up to the hard limit only.
                libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
                r.rlim_cur = r.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &r);
            }
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        r.rlim_cur
    }
}

/// CPU model and kernel version, for the report.
pub fn machine() -> (String, String) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    (cpu, kernel)
}

/// Runs a shell command inside a namespace and returns its stdout.
pub fn ns_output(ns: &str, script: &str) -> io::Result<String> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "sh", "-c", script])
        .output()?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(io::Error::other(format!(
            "`{script}` in {ns} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// The MAC address of interface `dev` in namespace `ns` (`ip netns exec`
/// mounts that namespace's sysfs).
pub fn if_mac(ns: &str, dev: &str) -> io::Result<[u8; 6]> {
    let text = ns_output(ns, &format!("cat /sys/class/net/{dev}/address"))?;
    let bytes: Vec<u8> = text
        .trim()
        .split(':')
        .filter_map(|b| u8::from_str_radix(b, 16).ok())
        .collect();
    <[u8; 6]>::try_from(bytes)
        .map_err(|_| io::Error::other(format!("{dev}: unexpected MAC address {text:?}")))
}

/// Sets a socket's receive buffer to `bytes` past `net.core.rmem_max`
/// (`SO_RCVBUFFORCE`, root only; the kernel doubles it for its overhead).
pub fn force_rcvbuf(fd: std::os::fd::BorrowedFd<'_>, bytes: usize) -> io::Result<()> {
    let v = libc::c_int::try_from(bytes).map_err(io::Error::other)?;
    // SAFETY: setsockopt reads one c_int.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Frames an AF_PACKET socket dropped (its receive buffer full) since the
/// last call: `PACKET_STATISTICS` resets the kernel's counters on read.
pub fn packet_drops(fd: std::os::fd::BorrowedFd<'_>) -> Option<u64> {
    let mut st = libc::tpacket_stats {
        tp_packets: 0,
        tp_drops: 0,
    };
    let mut len = std::mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `st`.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            (&mut st as *mut libc::tpacket_stats).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(u64::from(st.tp_drops))
}
