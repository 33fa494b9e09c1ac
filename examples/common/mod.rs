//! Shared flag parsing and device setup for the examples.
//!
//! Device flags: `--tun NAME --addr IP --peer IP --prefix N [--addr6 IP6
//! --peer6 IP6 --prefix6 N] --port N [--mtu N] [--pcap FILE] [--memory]
//! [--no-offload]`, or `--raw IFNAME --addr IP --prefix N [--addr6 IP6
//! --prefix6 N] [--gateway G] [--gateway6 G6]` to own an existing Ethernet
//! interface through an AF_PACKET socket (the kernel is not configured; the
//! stack uses the interface's MAC, answers ARP and NDP itself, and sends
//! off-link traffic to the gateway). `--addr` and `--peer` take either family (`--prefix`
//! follows it); `--addr6`/`--peer6` add IPv6 beside an IPv4 `--addr`, and
//! the examples then listen on `[::]:PORT`, taking both families. Without
//! `/dev/net/tun` or CAP_NET_ADMIN, or with `--memory`, the examples run an
//! in-process demo over `MemoryDevice::pair`: two user-space stacks, the
//! example's server on one and a demo client on the other.
#![allow(dead_code)]

pub mod device;
pub mod pattern;
pub mod router;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use tcp_async::device::{Device, MemoryDevice, PcapWriter, RawDevice};
use tcp_async::Stack;
use tcp_stack::{Config, MacAddr};

/// Parsed command line.
#[derive(Debug, Clone)]
pub struct Opts {
    /// TUN device name.
    pub tun: String,
    /// `--raw IFNAME`: an existing Ethernet interface to own through an
    /// AF_PACKET socket, instead of a TUN.
    pub raw: Option<String>,
    /// `--gateway`: next hop for off-link destinations of its family
    /// (with `--raw`).
    pub gateway: Option<IpAddr>,
    /// `--gateway6`: the IPv6 next hop beside an IPv4 `--gateway`.
    pub gateway6: Option<Ipv6Addr>,
    /// Our (user-space stack's) address, either family.
    pub addr: IpAddr,
    /// Kernel side's address on the TUN, of `addr`'s family; `None`: no
    /// address of that family (with neither this nor `peer6`, the link is
    /// only up).
    pub peer: Option<IpAddr>,
    /// Prefix length of `peer`: up to 32 for IPv4, 128 for IPv6.
    pub prefix: u8,
    /// Our IPv6 address beside an IPv4 `addr` (dual stack).
    pub addr6: Option<Ipv6Addr>,
    /// Kernel side's IPv6 address beside an IPv4 `peer`.
    pub peer6: Option<Ipv6Addr>,
    /// Prefix length of `peer6`.
    pub prefix6: u8,
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
  --raw IFNAME     own the existing Ethernet interface IFNAME through an AF_PACKET
                   socket instead of a TUN: the kernel is not configured, the stack
                   uses the interface's MAC, --addr/--prefix (and --addr6/--prefix6)
                   are the stack's own address and on-link prefix, --peer is not used
  --gateway G      with --raw: next hop for off-link destinations (either family)
  --gateway6 G6    with --raw: the IPv6 next hop beside an IPv4 --gateway
  --addr IP        address of the user-space stack, IPv4 or IPv6 (default 10.7.0.2)
  --peer IP        address given to the kernel side of the TUN, same family as --addr
                   (default: none, link only up)
  --prefix N       prefix length of --peer (with --raw: of --addr) (default 24 for
                   IPv4, at most 32; 64 for IPv6, at most 128)
  --addr6 IP6      dual stack: an IPv6 address of the user-space stack beside an
                   IPv4 --addr; the example then listens on [::]:PORT (both families)
  --peer6 IP6      dual stack: IPv6 address given to the kernel side beside --peer
  --prefix6 N      prefix length of --peer6 (default 64, at most 128)
  --port N         TCP port
  --mtu N          link MTU (default 1500; at least 1280 with IPv6)
  --pcap FILE      write every packet of the stack's device to FILE
  --memory         run the in-memory demo instead of using a TUN device
  --no-offload     no checksum/TSO offloads on the TUN or the in-memory pair
                   (default: with them)
examples:
  --addr 10.7.0.2 --peer 10.7.0.1 --prefix 24                    IPv4
  --addr fd00:7::2 --peer fd00:7::1 --prefix 64                  IPv6
  --addr 10.7.0.2 --peer 10.7.0.1 --addr6 fd00:7::2 --peer6 fd00:7::1   both
  --raw rv1 --addr 10.9.0.2 --prefix 24 --gateway 10.9.0.1       AF_PACKET";

fn usage_exit(usage: &str, err: Option<String>) -> ! {
    if let Some(err) = &err {
        eprintln!("error: {err}\n");
    }
    eprintln!("{usage}\n{DEVICE_USAGE}");
    std::process::exit(if err.is_some() { 2 } else { 0 })
}

/// The address next to `ip` in its subnet, for a demo peer: the last
/// byte 1 becomes 2, anything else becomes 1.
fn neighbour(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let mut o = v4.octets();
            o[3] = if o[3] == 1 { 2 } else { 1 };
            Ipv4Addr::from(o).into()
        }
        IpAddr::V6(v6) => {
            let mut o = v6.octets();
            o[15] = if o[15] == 1 { 2 } else { 1 };
            Ipv6Addr::from(o).into()
        }
    }
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
            raw: None,
            gateway: None,
            gateway6: None,
            addr: Ipv4Addr::new(10, 7, 0, 2).into(),
            peer: None,
            prefix: 0,
            addr6: None,
            peer6: None,
            prefix6: 64,
            port: default_port,
            mtu: 1500,
            pcap: None,
            memory: false,
            no_offload: false,
            extra: HashMap::new(),
        };
        // Checked once the family of --addr is known.
        let mut prefix: Option<u8> = None;
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
                "raw" => {
                    if value.is_empty() || value.len() > 15 {
                        return Err(Some("--raw: name must be 1 to 15 bytes".into()));
                    }
                    o.raw = Some(value)
                }
                "gateway" => o.gateway = Some(num(&name, &value)?),
                "gateway6" => o.gateway6 = Some(num(&name, &value)?),
                "addr" => o.addr = num(&name, &value)?,
                "peer" => o.peer = Some(num(&name, &value)?),
                "prefix" => prefix = Some(num(&name, &value)?),
                "addr6" => o.addr6 = Some(num(&name, &value)?),
                "peer6" => o.peer6 = Some(num(&name, &value)?),
                "prefix6" => {
                    o.prefix6 = num(&name, &value)?;
                    if o.prefix6 > 128 {
                        return Err(Some("--prefix6 must be at most 128".into()));
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
        let max_prefix = if o.addr.is_ipv6() { 128 } else { 32 };
        o.prefix = prefix.unwrap_or(if o.addr.is_ipv6() { 64 } else { 24 });
        if o.prefix > max_prefix {
            return Err(Some(format!(
                "--prefix must be at most {max_prefix} for an IPv{} --addr",
                if o.addr.is_ipv6() { 6 } else { 4 }
            )));
        }
        if o.peer.is_some_and(|p| p.is_ipv6() != o.addr.is_ipv6()) {
            return Err(Some(
                "--peer must be of the family of --addr (use --addr6/--peer6 for dual stack)"
                    .into(),
            ));
        }
        if o.addr.is_ipv6() && (o.addr6.is_some() || o.peer6.is_some()) {
            return Err(Some(
                "--addr6/--peer6 go beside an IPv4 --addr; --addr is IPv6 already".into(),
            ));
        }
        if o.peer6.is_some() && o.addr6.is_none() {
            return Err(Some("--peer6 needs --addr6".into()));
        }
        if o.raw.is_none() && (o.gateway.is_some() || o.gateway6.is_some()) {
            return Err(Some(
                "--gateway/--gateway6 go with --raw (on a TUN the kernel routes)".into(),
            ));
        }
        if o.gateway6.is_some() && o.gateway.is_some_and(|g| g.is_ipv6()) {
            return Err(Some(
                "--gateway6 goes beside an IPv4 --gateway; --gateway is IPv6 already".into(),
            ));
        }
        Ok(o)
    }

    /// The value of one of the example's own flags.
    pub fn get(&self, flag: &str) -> Option<&str> {
        self.extra.get(flag).map(String::as_str)
    }

    /// Both families: an IPv6 address beside the IPv4 one.
    pub fn dual_stack(&self) -> bool {
        self.addr6.is_some()
    }

    /// Our listening address: `[::]:PORT` for dual stack (both families),
    /// else `addr:PORT`.
    pub fn local(&self) -> SocketAddr {
        if self.dual_stack() {
            SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), self.port)
        } else {
            SocketAddr::new(self.addr, self.port)
        }
    }

    /// Our addresses: `addr`, then `addr6` if given.
    pub fn addrs(&self) -> Vec<IpAddr> {
        let mut v = vec![self.addr];
        v.extend(self.addr6.map(IpAddr::V6));
        v
    }

    /// Where a client reaches our listener: one address per family.
    pub fn targets(&self) -> Vec<SocketAddr> {
        self.addrs()
            .into_iter()
            .map(|ip| SocketAddr::new(ip, self.port))
            .collect()
    }

    /// The kernel side's addresses with their prefix lengths.
    pub fn peers(&self) -> Vec<(IpAddr, u8)> {
        let mut v: Vec<(IpAddr, u8)> = self.peer.map(|p| (p, self.prefix)).into_iter().collect();
        v.extend(self.peer6.map(|p| (IpAddr::V6(p), self.prefix6)));
        v
    }

    /// With `--raw`: our addresses with their on-link prefix lengths.
    pub fn prefixes(&self) -> Vec<(IpAddr, u8)> {
        let mut v = vec![(self.addr, self.prefix)];
        v.extend(self.addr6.map(|a| (IpAddr::V6(a), self.prefix6)));
        v
    }

    /// The stack configuration on an Ethernet interface with MAC `mac`:
    /// our addresses and prefixes, and the gateways.
    pub fn ethernet_config(&self, mac: MacAddr) -> Config {
        let mut config = Config {
            mtu: self.mtu,
            seed: Self::seed(),
            ..Config::with_ethernet(mac, self.prefixes())
        };
        if let Some(eth) = config.ethernet.as_mut() {
            for g in [self.gateway, self.gateway6.map(IpAddr::V6)]
                .into_iter()
                .flatten()
            {
                match g {
                    IpAddr::V4(g) => eth.gateway_v4 = Some(g),
                    IpAddr::V6(g) => eth.gateway_v6 = Some(g),
                }
            }
        }
        config
    }

    /// A seed that differs from run to run.
    fn seed() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            ^ (u64::from(std::process::id()) << 32)
    }

    /// The stack configuration for addresses `addrs`.
    pub fn config(&self, addrs: &[IpAddr]) -> Config {
        Config {
            mtu: self.mtu,
            seed: Self::seed(),
            ..Config::with_addrs(addrs.iter().copied())
        }
    }

    /// The in-memory demo's client address of `addr`'s family: the peer's,
    /// or one next to ours.
    pub fn demo_client_addr(&self) -> IpAddr {
        match self.peer {
            Some(p) if p != self.addr => p,
            _ => neighbour(self.addr),
        }
    }

    /// The in-memory demo client's addresses: [`demo_client_addr`], then
    /// an IPv6 one for dual stack.
    ///
    /// [`demo_client_addr`]: Opts::demo_client_addr
    pub fn demo_client_addrs(&self) -> Vec<IpAddr> {
        let mut v = vec![self.demo_client_addr()];
        if let Some(a6) = self.addr6 {
            v.push(match self.peer6 {
                Some(p) if p != a6 => p.into(),
                _ => neighbour(a6.into()),
            });
        }
        v
    }
}

/// Where the example runs.
pub enum Net {
    /// A real device (a TUN, or an interface owned through AF_PACKET) with
    /// the kernel as the peer; the stack is the default.
    Device { stack: Stack },
    /// The in-memory demo: the example's server on `server` (the default
    /// stack), the demo client on `client`.
    Memory { server: Stack, client: Stack },
}

impl Net {
    /// The stack the example serves (or connects) on.
    pub fn stack(&self) -> &Stack {
        match self {
            Net::Device { stack } => stack,
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
    if let Some(ifname) = &opts.raw {
        return setup_raw(opts, ifname);
    }
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
    let tun = match device::open_tun_addrs(&opts.tun, &opts.peers(), opts.mtu, offload) {
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
    let ours = join(opts.addrs().iter());
    let peers = opts.peers();
    if peers.is_empty() {
        println!(
            "TUN {} up (no kernel address), user-space stack {ours}, MTU {}",
            opts.tun, opts.mtu
        );
    } else {
        let kernel = join(peers.iter().map(|(p, len)| format!("{p}/{len}")));
        println!(
            "TUN {} up, kernel side {kernel}, user-space stack {ours}, MTU {}",
            opts.tun, opts.mtu
        );
    }
    let stack = build_stack(tun, opts.config(&opts.addrs()), opts.pcap.as_deref())?;
    stack.set_default();
    Ok(Net::Device { stack })
}

/// `--raw`: owns `ifname` through an AF_PACKET socket. Fails (no demo
/// fallback: the interface was asked for) when it cannot be opened.
fn setup_raw(opts: &Opts, ifname: &str) -> io::Result<Net> {
    let dev = RawDevice::open(ifname)
        .map_err(|e| io::Error::new(e.kind(), format!("opening {ifname} (AF_PACKET): {e}")))?;
    let mac = dev
        .mac_address()
        .map(MacAddr)
        .ok_or_else(|| io::Error::other(format!("{ifname} has no MAC address")))?;
    let config = opts.ethernet_config(mac);
    let ours = join(opts.prefixes().iter().map(|(a, len)| format!("{a}/{len}")));
    let gateways = join(
        [opts.gateway, opts.gateway6.map(IpAddr::V6)]
            .into_iter()
            .flatten(),
    );
    println!(
        "raw {ifname} (AF_PACKET, MAC {mac}), user-space stack {ours}, gateway {}, MTU {}",
        if gateways.is_empty() {
            "none".to_owned()
        } else {
            gateways
        },
        config.mtu.min(dev.mtu())
    );
    let stack = build_stack(dev, config, opts.pcap.as_deref())?;
    stack.set_default();
    Ok(Net::Device { stack })
}

/// `a, b, c`.
fn join<T: std::fmt::Display>(items: impl Iterator<Item = T>) -> String {
    items.map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
}

fn setup_memory(opts: &Opts) -> io::Result<Net> {
    let (a, b) = if opts.no_offload {
        MemoryDevice::pair(opts.mtu)
    } else {
        MemoryDevice::pair_with_offloads(opts.mtu)
    };
    let server = build_stack(a, opts.config(&opts.addrs()), opts.pcap.as_deref())?;
    let client = build_stack(b, opts.config(&opts.demo_client_addrs()), None)?;
    server.set_default();
    Ok(Net::Memory { server, client })
}

/// Waits for Ctrl-C.
pub async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await
    }
}
