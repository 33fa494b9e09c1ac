//! Shared flag parsing and device setup for the examples.
//!
//! Device flags: `--tun NAME --addr IP --peer IP --prefix N --port N
//! [--mtu N] [--pcap FILE] [--memory] [--no-offload]`. Without `/dev/net/tun` or
//! CAP_NET_ADMIN, or with `--memory`, the examples run an in-process demo
//! over `MemoryDevice::pair`: two user-space stacks, the example's server on
//! one and a demo client on the other.
#![allow(dead_code)]

pub mod device;
pub mod pattern;
pub mod router;

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use tcp_async::device::{Device, MemoryDevice, PcapWriter};
use tcp_async::Stack;
use tcp_stack::Config;

/// Parsed command line.
#[derive(Debug, Clone)]
pub struct Opts {
    /// TUN device name.
    pub tun: String,
    /// Our (user-space stack's) address.
    pub addr: Ipv4Addr,
    /// Kernel side's address on the TUN; `None`: link up with no address.
    pub peer: Option<Ipv4Addr>,
    pub prefix: u8,
    pub port: u16,
    pub mtu: usize,
    pub pcap: Option<PathBuf>,
    /// Force the in-memory demo.
    pub memory: bool,
    /// No offloads (checksum, TSO) on the TUN or the in-memory pair.
    pub no_offload: bool,
    extra: HashMap<String, String>,
}

const DEVICE_USAGE: &str = "device flags:
  --tun NAME       TUN device to create (default utcp0)
  --addr IP        address of the user-space stack (default 10.7.0.2)
  --peer IP        address given to the kernel side of the TUN (default: none, link only up)
  --prefix N       prefix length of --peer (default 24)
  --port N         TCP port
  --mtu N          link MTU (default 1500)
  --pcap FILE      write every packet of the stack's device to FILE
  --memory         run the in-memory demo instead of using a TUN device
  --no-offload     no checksum/TSO offloads on the TUN or the in-memory pair
                   (default: with them)";

fn usage_exit(usage: &str, err: Option<String>) -> ! {
    if let Some(err) = &err {
        eprintln!("error: {err}\n");
    }
    eprintln!("{usage}\n{DEVICE_USAGE}");
    std::process::exit(if err.is_some() { 2 } else { 0 })
}

impl Opts {
    /// Parses `std::env::args`. `extra` lists the example's own flags that
    /// take a value (without the leading `--`). Exits on `--help` or errors.
    pub fn parse(usage: &str, default_port: u16, extra: &[&str]) -> Opts {
        Self::try_parse(std::env::args().skip(1), default_port, extra)
            .unwrap_or_else(|e| usage_exit(usage, e))
    }

    /// `Err(None)`: help asked for; `Err(Some(msg))`: bad command line.
    pub fn try_parse(
        args: impl IntoIterator<Item = String>,
        default_port: u16,
        extra: &[&str],
    ) -> Result<Opts, Option<String>> {
        let mut o = Opts {
            tun: "utcp0".into(),
            addr: Ipv4Addr::new(10, 7, 0, 2),
            peer: None,
            prefix: 24,
            port: default_port,
            mtu: 1500,
            pcap: None,
            memory: false,
            no_offload: false,
            extra: HashMap::new(),
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
                None => (arg.clone(), None),
            };
            let name = match flag.strip_prefix("--") {
                Some(n) => n.to_owned(),
                None if flag == "-h" => return Err(None),
                None => return Err(Some(format!("unexpected argument {arg:?}"))),
            };
            match name.as_str() {
                "help" => return Err(None),
                "memory" => {
                    o.memory = true;
                    continue;
                }
                "no-offload" => {
                    o.no_offload = true;
                    continue;
                }
                _ => {}
            }
            let value = match inline.or_else(|| args.next()) {
                Some(v) => v,
                None => return Err(Some(format!("--{name} needs a value"))),
            };
            fn num<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, Option<String>> {
                v.parse()
                    .map_err(|_| Some(format!("--{name}: cannot parse {v:?}")))
            }
            match name.as_str() {
                "tun" => {
                    if value.is_empty() || value.len() > 15 {
                        return Err(Some("--tun: name must be 1 to 15 bytes".into()));
                    }
                    o.tun = value
                }
                "addr" => o.addr = num(&name, &value)?,
                "peer" => o.peer = Some(num(&name, &value)?),
                "prefix" => {
                    o.prefix = num(&name, &value)?;
                    if o.prefix > 32 {
                        return Err(Some("--prefix must be at most 32".into()));
                    }
                }
                "port" => o.port = num(&name, &value)?,
                "mtu" => o.mtu = num(&name, &value)?,
                "pcap" => o.pcap = Some(PathBuf::from(value)),
                n if extra.contains(&n) => {
                    o.extra.insert(name, value);
                }
                _ => return Err(Some(format!("unknown flag --{name}"))),
            }
        }
        Ok(o)
    }

    /// The value of one of the example's own flags.
    pub fn get(&self, flag: &str) -> Option<&str> {
        self.extra.get(flag).map(String::as_str)
    }

    /// Our listening address.
    pub fn local(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(self.addr, self.port))
    }

    /// The stack configuration for address `addr`.
    pub fn config(&self, addr: Ipv4Addr) -> Config {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            ^ (u64::from(std::process::id()) << 32);
        Config {
            mtu: self.mtu,
            seed,
            ..Config::with_addr(addr)
        }
    }

    /// The in-memory demo's client address: the peer's, or one next to ours.
    pub fn demo_client_addr(&self) -> Ipv4Addr {
        match self.peer {
            Some(p) if p != self.addr => p,
            _ => {
                let [a, b, c, d] = self.addr.octets();
                Ipv4Addr::new(a, b, c, if d == 1 { 2 } else { 1 })
            }
        }
    }
}

/// Where the example runs.
pub enum Net {
    /// A TUN device with the kernel as the peer; the stack is the default.
    Tun { stack: Stack },
    /// The in-memory demo: the example's server on `server` (the default
    /// stack), the demo client on `client`.
    Memory { server: Stack, client: Stack },
}

impl Net {
    /// The stack the example serves (or connects) on.
    pub fn stack(&self) -> &Stack {
        match self {
            Net::Tun { stack } => stack,
            Net::Memory { server, .. } => server,
        }
    }
}

/// Builds a stack on `dev`, recording packets to `pcap` if set.
pub fn build_stack<D>(dev: D, config: Config, pcap: Option<&Path>) -> io::Result<Stack>
where
    D: Device + Send + 'static,
{
    match pcap {
        Some(path) => Stack::builder(PcapWriter::new(dev, path)?)
            .config(config)
            .build(),
        None => Stack::builder(dev).config(config).build(),
    }
}

/// Opens the TUN device (or the in-memory pair) and builds the stack(s);
/// sets the served stack as the default. Call inside the Tokio runtime.
pub fn setup(opts: &Opts) -> io::Result<Net> {
    let why_memory = if opts.memory {
        Some("--memory given".to_owned())
    } else {
        device::tun_unavailable()
    };
    if let Some(why) = why_memory {
        println!("no TUN device ({why}): running the in-memory demo over MemoryDevice::pair");
        return setup_memory(opts);
    }
    let offload = !opts.no_offload;
    let tun = match device::open_tun_with(&opts.tun, opts.peer, opts.prefix, opts.mtu, offload) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            println!(
                "cannot create TUN {} ({e}): running the in-memory demo",
                opts.tun
            );
            return setup_memory(opts);
        }
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("creating TUN {}: {e}", opts.tun),
            ))
        }
    };
    match opts.peer {
        Some(p) => println!(
            "TUN {} up, kernel side {p}/{}, user-space stack {}, MTU {}",
            opts.tun, opts.prefix, opts.addr, opts.mtu
        ),
        None => println!(
            "TUN {} up (no kernel address), user-space stack {}, MTU {}",
            opts.tun, opts.addr, opts.mtu
        ),
    }
    let stack = build_stack(tun, opts.config(opts.addr), opts.pcap.as_deref())?;
    stack.set_default();
    Ok(Net::Tun { stack })
}

fn setup_memory(opts: &Opts) -> io::Result<Net> {
    let (a, b) = if opts.no_offload {
        MemoryDevice::pair(opts.mtu)
    } else {
        MemoryDevice::pair_with_offloads(opts.mtu)
    };
    let server = build_stack(a, opts.config(opts.addr), opts.pcap.as_deref())?;
    let client = build_stack(b, opts.config(opts.demo_client_addr()), None)?;
    server.set_default();
    Ok(Net::Memory { server, client })
}

/// Waits for Ctrl-C.
pub async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await
    }
}
