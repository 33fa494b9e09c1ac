//! The `--so_flags` string: `key=value` words separated by spaces, commas or
//! semicolons, e.g. `local=192.168.0.1 rto_min_ms=200 sack=0 cc=reno`.
//!
//! `local=` names an address the stack answers for, IPv4 or IPv6, and may
//! be given more than once for a dual-stack host:
//! `local=192.168.0.1 local=fd3d:fa7b:d17d::1`. The addresses given replace
//! the default ([`DEFAULT_LOCAL`], IPv4 only), so a script run with
//! `--ip_version=ipv6` names its IPv6 `--local_ip` here too (packetdrill
//! otherwise picks a random one in fd3d:fa7b:d17d::/48, which the shim
//! cannot know). `--ip_version=ipv4-mapped-ipv6` puts IPv4 on the wire and
//! needs only the IPv4 address.
//!
//! Stack options go into a [`tcp_stack::Config`]; the rest steer the shim.
//! The defaults are the core's, except where packetdrill's Linux scripts
//! expect Linux's defaults (noted at each).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
use tcp_stack::{Config, CongestionControl};

/// packetdrill's default gateway address, the usual `--local_ip` of scripts
/// run against a shared object (packetdrill otherwise picks a random
/// address in 192.168.0.0/16, which the shim cannot know).
pub const DEFAULT_LOCAL: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 1);

/// Everything the flags decide.
#[derive(Debug, Clone)]
pub struct Flags {
    pub config: Config,
    /// Longest single wait of `netdev_receive` before it reports "nothing".
    pub receive_timeout: Duration,
    /// After this long with nothing sent by the stack while packetdrill
    /// keeps sniffing, `netdev_receive` hands back an empty packet so that
    /// packetdrill fails the script instead of sniffing forever. Zero: never.
    pub sniff_timeout: Duration,
    /// Log every call and packet to stderr.
    pub verbose: bool,
    /// A `local=` was seen: the next one adds to the list instead of
    /// replacing the default.
    local_given: bool,
}

impl Default for Flags {
    fn default() -> Self {
        let mut config = Config::with_addr(DEFAULT_LOCAL);
        // Linux's net.ipv4.tcp_ecn = 2: ECN is accepted when a peer asks but
        // not requested on active opens; scripts written for Linux expect
        // plain SYNs. The core has one switch for both: off unless `ecn=1`.
        config.ecn = false;
        Flags {
            config,
            receive_timeout: Duration::from_millis(100),
            sniff_timeout: Duration::from_secs(30),
            verbose: false,
            local_given: false,
        }
    }
}

impl Flags {
    /// Parses a flags string (`None`: packetdrill was given no `--so_flags`).
    pub fn parse(s: Option<&str>) -> Result<Flags, String> {
        let mut f = Flags::default();
        let words = s
            .unwrap_or("")
            .split(|c: char| c.is_whitespace() || c == ',' || c == ';')
            .filter(|w| !w.is_empty());
        for word in words {
            let (key, value) = word
                .split_once('=')
                .ok_or_else(|| format!("'{word}' is not key=value"))?;
            f.set(key, value)
                .map_err(|e| format!("{key}={value}: {e}"))?;
        }
        Ok(f)
    }

    fn set(&mut self, key: &str, v: &str) -> Result<(), String> {
        let c = &mut self.config;
        match key {
            "local" => {
                let ip: IpAddr = v.parse().map_err(|_| "not an IPv4 or IPv6 address")?;
                // An address the host could not own (RFC 1122 3.2.1.3, RFC
                // 4291 2.5.2, 2.5.5.2, 2.7): an IPv4-mapped one is only
                // how an AF_INET6 socket writes an IPv4 address; give that.
                let bad = match ip {
                    IpAddr::V4(a) => a.is_unspecified() || a.is_multicast() || a.is_broadcast(),
                    IpAddr::V6(a) => {
                        a.is_unspecified() || a.is_multicast() || a.to_ipv4_mapped().is_some()
                    }
                };
                if bad {
                    return Err("not a unicast address the host can own".into());
                }
                if !self.local_given {
                    c.addrs.clear();
                    self.local_given = true;
                }
                if !c.addrs.contains(&ip) {
                    c.addrs.push(ip);
                }
            }
            "mtu" => c.mtu = num(v)?,
            "seed" => c.seed = num(v)?,
            "rto_min_ms" => c.min_rto = ms(v)?,
            "rto_max_ms" => c.max_rto = ms(v)?,
            "rto_initial_ms" => c.initial_rto = ms(v)?,
            "delack_ms" => c.delayed_ack = ms(v)?,
            "msl_ms" => c.msl = ms(v)?,
            "fin_timeout_ms" => c.fin_wait2_timeout = ms(v)?,
            "user_timeout_ms" => c.user_timeout = ms(v)?,
            "connect_timeout_ms" => c.connect_timeout = ms(v)?,
            "sack" => c.sack = boolean(v)?,
            "timestamps" => c.timestamps = boolean(v)?,
            "wscale" => c.window_scaling = boolean(v)?,
            "ecn" => c.ecn = boolean(v)?,
            "nodelay" => c.nodelay = boolean(v)?,
            "iw" => c.initial_window_segments = num(v)?,
            "cc" => {
                c.congestion_control = match v {
                    "reno" | "newreno" => CongestionControl::NewReno,
                    "cubic" => CongestionControl::Cubic,
                    _ => return Err("expected reno or cubic".into()),
                }
            }
            "sndbuf" => {
                c.send_buffer = num(v)?;
                c.send_buffer_max = c.send_buffer_max.max(c.send_buffer);
            }
            "sndbuf_max" => c.send_buffer_max = num(v)?,
            "rcvbuf" => {
                c.recv_buffer = num(v)?;
                c.recv_buffer_max = c.recv_buffer_max.max(c.recv_buffer);
            }
            "rcvbuf_max" => c.recv_buffer_max = num(v)?,
            "syncookies" => {
                // As Linux's net.ipv4.tcp_syncookies: 0, 1 (when full), 2 (always).
                c.syn_cookies = match v {
                    "0" => tcp_stack::SynCookies::Off,
                    "1" => tcp_stack::SynCookies::WhenFull,
                    "2" => tcp_stack::SynCookies::Always,
                    _ => return Err("expected 0, 1 or 2".into()),
                }
            }
            "max_syn_backlog" => c.max_syn_backlog = num(v)?,
            "synack_retries" => c.synack_retries = num(v)?,
            "challenge_ack_limit" => c.challenge_ack_limit = num(v)?,
            "challenge_ack_interval_ms" => c.challenge_ack_interval = ms(v)?,
            "receive_timeout_ms" => self.receive_timeout = ms(v)?,
            "sniff_timeout_ms" => self.sniff_timeout = ms(v)?,
            "verbose" => self.verbose = boolean(v)?,
            _ => return Err("unknown flag".into()),
        }
        Ok(())
    }
}

fn num<T: std::str::FromStr>(v: &str) -> Result<T, String> {
    v.parse().map_err(|_| "not a number".to_string())
}

fn ms(v: &str) -> Result<Duration, String> {
    num(v).map(Duration::from_millis)
}

fn boolean(v: &str) -> Result<bool, String> {
    match v {
        "1" | "true" | "on" | "yes" => Ok(true),
        "0" | "false" | "off" | "no" => Ok(false),
        _ => Err("expected 0 or 1".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_flags_gives_linux_like_defaults() {
        let f = Flags::parse(None).unwrap();
        assert_eq!(f.config.addrs, vec![std::net::IpAddr::V4(DEFAULT_LOCAL)]);
        assert!(!f.config.ecn);
        assert_eq!(f.config.min_rto, Duration::from_millis(200));
    }

    #[test]
    fn flags_set_stack_options() {
        let f = Flags::parse(Some(
            "local=10.0.0.5, rto_min_ms=300;sack=0  timestamps=0 cc=reno msl_ms=500",
        ))
        .unwrap();
        let c = &f.config;
        assert_eq!(
            c.addrs,
            vec![std::net::IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5))]
        );
        assert_eq!(c.min_rto, Duration::from_millis(300));
        assert!(!c.sack && !c.timestamps);
        assert_eq!(c.congestion_control, CongestionControl::NewReno);
        assert_eq!(c.msl, Duration::from_millis(500));
    }

    #[test]
    fn local_takes_ipv6_and_both_families() {
        let v6: IpAddr = "fd3d:fa7b:d17d::1".parse().unwrap();
        let f = Flags::parse(Some("local=fd3d:fa7b:d17d::1")).unwrap();
        // The addresses given replace the IPv4 default.
        assert_eq!(f.config.addrs, vec![v6]);
        let f = Flags::parse(Some("local=192.168.0.1 local=fd3d:fa7b:d17d::1")).unwrap();
        assert_eq!(f.config.addrs, vec![IpAddr::V4(DEFAULT_LOCAL), v6]);
        // Repeats are kept once; order is kept.
        let f = Flags::parse(Some(
            "local=fd3d:fa7b:d17d::1,local=10.0.0.5;local=10.0.0.5",
        ))
        .unwrap();
        assert_eq!(
            f.config.addrs,
            vec![v6, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5))]
        );
    }

    #[test]
    fn bad_flags_are_reported() {
        assert!(Flags::parse(Some("sack")).is_err());
        assert!(Flags::parse(Some("sack=2")).is_err());
        assert!(Flags::parse(Some("local=192.168.0.256")).is_err());
        assert!(Flags::parse(Some("local=::")).is_err());
        assert!(Flags::parse(Some("local=ff02::1")).is_err());
        assert!(Flags::parse(Some("local=::ffff:192.168.0.1")).is_err());
        assert!(Flags::parse(Some("local=224.0.0.1")).is_err());
        assert!(Flags::parse(Some("frobnicate=1"))
            .unwrap_err()
            .contains("unknown"));
    }
}
