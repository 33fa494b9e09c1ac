//! The Linux-kernel server: blocking `std::net` in a network namespace.
//! Connection-rate and idle connections are served inline by the accept
//! thread (one thread, like the user-space servers); bulk and
//! request/response get a thread each, which adds its own CPU time to the
//! server's account when it ends.

use crate::sys::{self, Netns};
use crate::Server;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct KernelServer {
    addr: SocketAddr,
    ns: Arc<Netns>,
    shared: Arc<Shared>,
}

struct Shared {
    cpu_ns: AtomicU64,
    cpu: AtomicUsize,
    accept_tid: AtomicI32,
    idle: Mutex<Vec<TcpStream>>,
}

impl KernelServer {
    /// Listens on `addr` inside `ns`.
    pub fn start(ns: Arc<Netns>, addr: SocketAddr) -> std::io::Result<KernelServer> {
        let shared = Arc::new(Shared {
            cpu_ns: AtomicU64::new(0),
            cpu: AtomicUsize::new(1 % sys::cpus()),
            accept_tid: AtomicI32::new(0),
            idle: Mutex::new(Vec::new()),
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let sh = shared.clone();
        let ns2 = ns.clone();
        std::thread::Builder::new()
            .name("kernel-server".into())
            .spawn(move || {
                let l = ns2.enter().and_then(|()| TcpListener::bind(addr));
                // The thread never ends: it must not keep the namespace alive.
                drop(ns2);
                let l = match l {
                    Ok(l) => {
                        sh.accept_tid.store(sys::gettid(), Ordering::Relaxed);
                        let _ = tx.send(Ok(()));
                        l
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                for s in l.incoming().flatten() {
                    serve(&sh, s);
                }
            })?;
        rx.recv().map_err(std::io::Error::other)??;
        Ok(KernelServer { addr, ns, shared })
    }
}

fn serve(sh: &Arc<Shared>, mut s: TcpStream) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let mut mode = [0u8; 1];
    if s.read_exact(&mut mode).is_err() {
        return;
    }
    match mode[0] {
        b'C' => {
            let _ = s.write_all(b"c");
            let mut b = [0u8; 16];
            while matches!(s.read(&mut b), Ok(n) if n > 0) {}
        }
        b'I' => {
            let _ = s.write_all(b"i");
            sh.idle.lock().unwrap().push(s);
        }
        m => {
            let sh = sh.clone();
            let _ = std::thread::Builder::new()
                .name("kernel-conn".into())
                .spawn(move || {
                    let _ = sys::pin(0, sh.cpu.load(Ordering::Relaxed));
                    let t0 = sys::thread_cpu();
                    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                    let _ = s.set_write_timeout(Some(Duration::from_secs(10)));
                    match m {
                        b'U' => {
                            let mut buf = vec![0u8; 64 * 1024];
                            let mut n = 0u64;
                            while let Ok(k) = s.read(&mut buf) {
                                if k == 0 {
                                    break;
                                }
                                n += k as u64;
                            }
                            let _ = s.write_all(&n.to_be_bytes());
                        }
                        b'D' => {
                            let mut ms = [0u8; 4];
                            if s.read_exact(&mut ms).is_ok() {
                                let dur = Duration::from_millis(u32::from_be_bytes(ms).into());
                                let buf = vec![0x5au8; 64 * 1024];
                                let start = Instant::now();
                                while start.elapsed() < dur {
                                    if s.write_all(&buf).is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                        b'E' => {
                            let _ = s.set_nodelay(true);
                            let mut buf = [0u8; crate::client::RR_SIZE];
                            while s.read_exact(&mut buf).is_ok() {
                                if s.write_all(&buf).is_err() {
                                    break;
                                }
                            }
                        }
                        _ => {}
                    }
                    let _ = s.shutdown(Shutdown::Write);
                    let d = sys::thread_cpu().saturating_sub(t0);
                    sh.cpu_ns.fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
                });
        }
    }
}

impl Server for KernelServer {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
    fn cpu(&self) -> Option<Duration> {
        let accept = sys::task_cpu(self.shared.accept_tid.load(Ordering::Relaxed))?;
        Some(accept + Duration::from_nanos(self.shared.cpu_ns.load(Ordering::Relaxed)))
    }
    fn retrans(&self) -> Option<u64> {
        self.ns.retrans_segs()
    }
    fn pin(&self, cpu: usize) {
        self.shared.cpu.store(cpu, Ordering::Relaxed);
        let _ = sys::pin(self.shared.accept_tid.load(Ordering::Relaxed), cpu);
    }
    fn release_idle(&self) {
        self.shared.idle.lock().unwrap().clear();
    }
}
