//! Real segments to mutate: two exchanges between the fuzzed stack and a
//! second [`Stack`] as the peer, recorded once per process. Their peer
//! segments become the [`Template`]s, and the actions that replay them
//! become seed inputs.
//!
//! - The listener exchange: the peer connects to the listener, sends
//!   3000 bytes and reads 3000; the peer closes first.
//! - The active exchange: the stack connects to the peer, sends 2000
//!   bytes and shuts down; the peer answers with 2000 bytes and closes.
//!
//! The peer's segments reach the stack one millisecond after they are
//! sent; the stack's reach the peer at once.

use super::stack::{config, ip_datagram, Action, Fuzzer, Mutation, LISTEN_PORT, LOCAL_IP, PEER_IP};
use crate::wire::tcp::fill_checksum;
use crate::wire::{IcmpRepr, IpProtocol, Ipv4Packet, Ipv4Repr, TcpRepr};
use crate::{Config, ConnId, Event, Stack, State};
use std::collections::VecDeque;
use std::net::SocketAddrV4;
use std::sync::OnceLock;

/// A segment the peer sent in a recorded exchange.
#[derive(Debug, Clone)]
pub struct Template {
    /// The peer's address and port.
    pub src: SocketAddrV4,
    /// Our address and port.
    pub dst: SocketAddrV4,
    /// The TCP header.
    pub tcp: TcpRepr,
    /// The TCP payload.
    pub payload: Vec<u8>,
}

impl Template {
    fn from_packet(pkt: &[u8]) -> Option<Template> {
        let ip = Ipv4Packet::new_checked(pkt).ok()?;
        let repr = Ipv4Repr::parse(&ip).ok()?;
        let (tcp, payload) = TcpRepr::parse(ip.payload(), repr.src, repr.dst, true).ok()?;
        Some(Template {
            src: SocketAddrV4::new(repr.src, tcp.src_port),
            dst: SocketAddrV4::new(repr.dst, tcp.dst_port),
            tcp,
            payload: payload.to_vec(),
        })
    }

    /// The segment as an IPv4 datagram.
    pub fn to_packet(&self) -> Vec<u8> {
        let hl = self.tcp.header_len();
        let mut seg = vec![0u8; hl + self.payload.len()];
        self.tcp.emit(&mut seg);
        seg[hl..].copy_from_slice(&self.payload);
        fill_checksum(&mut seg, *self.src.ip(), *self.dst.ip());
        ip_datagram(*self.src.ip(), *self.dst.ip(), IpProtocol::Tcp, 0, &seg)
    }
}

/// The peer port the stack connects to in the active exchange.
const PEER_PORT: u16 = 8080;

struct Recording {
    templates: Vec<Template>,
    listener: Vec<Action>,
    active: Vec<Action>,
}

fn recording() -> &'static Recording {
    static R: OnceLock<Recording> = OnceLock::new();
    R.get_or_init(|| {
        let mut templates = Vec::new();
        let listener = Recorder::run(&mut templates, Scenario::Listener);
        let active = Recorder::run(&mut templates, Scenario::Active);
        assert!(templates.len() <= 256, "template indexes are one byte");
        Recording {
            templates,
            listener,
            active,
        }
    })
}

/// The recorded peer segments, listener exchange first.
pub fn templates() -> &'static [Template] {
    &recording().templates
}

/// Seed inputs for a target (`"wire"`, `"stack"`), named.
pub fn seed_inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let r = recording();
    match target {
        "stack" => {
            let encode = |actions: &[Action]| {
                let mut out = vec![0u8]; // the configuration the exchange used
                for a in actions {
                    a.encode(&mut out);
                }
                out
            };
            let mut seeds = vec![
                ("listener_exchange".to_string(), encode(&r.listener)),
                ("active_exchange".to_string(), encode(&r.active)),
            ];
            // The handshake alone, and the handshake followed by every
            // later segment with SND.NXT-relative acknowledgments.
            let handshake: Vec<Action> = r.listener.iter().take(6).cloned().collect();
            seeds.push(("listener_handshake".to_string(), encode(&handshake)));
            let relative: Vec<Action> = r
                .listener
                .iter()
                .map(|a| match a {
                    Action::Segment { template, .. } => Action::Segment {
                        template: *template,
                        m: Mutation {
                            ack: Some((2, 0)),
                            seq: Some((1, 0)),
                            ..Mutation::default()
                        },
                    },
                    other => other.clone(),
                })
                .collect();
            seeds.push(("listener_relative".to_string(), encode(&relative)));
            seeds
        }
        "wire" => {
            let mut seeds: Vec<(String, Vec<u8>)> = Vec::new();
            let mut seen = Vec::new();
            for (i, t) in r.templates.iter().enumerate() {
                // One template per flag combination and option set.
                let key = (t.tcp.flags, t.tcp.options.len(), t.payload.is_empty());
                if seen.contains(&key) {
                    continue;
                }
                seen.push(key);
                let mut input = vec![0u8];
                input.extend_from_slice(&t.to_packet());
                seeds.push((format!("template_{i}"), input));
            }
            let icmp = |m: IcmpRepr<'_>| {
                let mut body = vec![0u8; m.buffer_len()];
                m.emit(&mut body);
                let mut input = vec![0u8];
                input.extend(ip_datagram(PEER_IP, LOCAL_IP, IpProtocol::Icmp, 0, &body));
                input
            };
            let quote = r.templates[0].to_packet();
            let quote = &quote[..quote.len().min(48)];
            seeds.push((
                "icmp_echo".to_string(),
                icmp(IcmpRepr::EchoRequest {
                    ident: 7,
                    seq: 1,
                    data: b"ping",
                }),
            ));
            seeds.push((
                "icmp_frag_needed".to_string(),
                icmp(IcmpRepr::DstUnreachable {
                    code: 4,
                    next_hop_mtu: 1280,
                    data: quote,
                }),
            ));
            seeds
        }
        _ => Vec::new(),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Listener,
    Active,
}

/// Drives the fuzzed stack (through [`Fuzzer`], so the actions replay
/// exactly) against a peer stack, recording both.
struct Recorder<'t> {
    f: Fuzzer,
    peer: Stack,
    templates: &'t mut Vec<Template>,
    actions: Vec<Action>,
    events: VecDeque<Event>,
    /// Peer datagrams on their way to the stack.
    to_stack: Vec<Vec<u8>>,
}

impl Recorder<'_> {
    fn run(templates: &mut Vec<Template>, scenario: Scenario) -> Vec<Action> {
        let mut f = Fuzzer::new(0);
        f.record = true;
        let peer_cfg = Config {
            addrs: vec![PEER_IP.into()],
            seed: 0xbeef,
            ..config(0)
        };
        let mut r = Recorder {
            f,
            peer: Stack::new(peer_cfg),
            templates,
            actions: Vec::new(),
            events: VecDeque::new(),
            to_stack: Vec::new(),
        };
        let mut peer_conn: Option<ConnId> = None;
        let mut peer_listener = None;
        match scenario {
            Scenario::Listener => {
                let remote = SocketAddrV4::new(LOCAL_IP, LISTEN_PORT);
                peer_conn = Some(r.peer.connect(r.f.now, None, remote).expect("connect"));
            }
            Scenario::Active => {
                let addr = SocketAddrV4::new(PEER_IP, PEER_PORT);
                peer_listener = Some(r.peer.listen(addr, 4).expect("listen"));
                r.apply(Action::Connect {
                    port: PEER_PORT,
                    local_port: 0,
                });
            }
        }
        let (peer_sends, stack_sends) = match scenario {
            Scenario::Listener => (3000, 3000),
            Scenario::Active => (2000, 2000),
        };
        let (mut peer_sent, mut peer_read, mut peer_closed) = (0usize, 0usize, false);
        let mut buf = vec![0u8; 65536];
        for _ in 0..400 {
            r.pump_peer();
            r.apply(Action::Advance { code: 0, ms: 0 });
            if r.peer.poll_timeout().is_some_and(|t| t <= r.f.now) {
                r.peer.handle_timeout(r.f.now);
            }
            for pkt in std::mem::take(&mut r.to_stack) {
                let Some(t) = Template::from_packet(&pkt) else {
                    continue;
                };
                let template = r.templates.len() as u8;
                r.templates.push(t);
                r.apply(Action::Segment {
                    template,
                    m: Mutation::default(),
                });
            }
            // The stack's application.
            while let Some(ev) = r.events.pop_front() {
                let idx = |r: &Recorder<'_>, id| {
                    r.f.held.iter().position(|h| *h == id).unwrap_or(0) as u8
                };
                match ev {
                    Event::Incoming(_) => {
                        r.apply(Action::Accept(0));
                        let conn = (r.f.held.len() - 1) as u8;
                        r.apply(Action::Send {
                            conn,
                            len: stack_sends,
                        });
                    }
                    Event::Connected(id) => {
                        let conn = idx(&r, id);
                        r.apply(Action::Send {
                            conn,
                            len: stack_sends,
                        });
                        r.apply(Action::Shutdown(conn));
                    }
                    Event::Readable(id) => {
                        let conn = idx(&r, id);
                        r.apply(Action::Recv {
                            conn,
                            len: u16::MAX,
                        });
                    }
                    Event::PeerClosed(id) => {
                        let conn = idx(&r, id);
                        r.apply(Action::Close(conn));
                    }
                    _ => {}
                }
            }
            // The peer's application.
            if let Some(l) = peer_listener {
                if let Some(c) = r.peer.accept(l) {
                    peer_conn = Some(c);
                }
            }
            if let Some(c) = peer_conn {
                while let Ok(n) = r.peer.recv(c, &mut buf) {
                    if n == 0 {
                        break;
                    }
                    peer_read += n;
                }
                if r.peer.state(c) == State::Established || r.peer.state(c) == State::CloseWait {
                    if peer_sent < peer_sends {
                        let data: Vec<u8> = (peer_sent..peer_sends).map(|i| i as u8).collect();
                        peer_sent += r.peer.send(c, &data).unwrap_or(0);
                    }
                    if peer_sent == peer_sends && peer_read >= stack_sends.into() && !peer_closed {
                        r.peer.close(c).expect("close");
                        peer_closed = true;
                    }
                }
            }
            while r.peer.poll_event().is_some() {}
            if peer_closed && r.f.stack.connection_count() == 0 {
                break;
            }
        }
        assert!(peer_closed, "the recorded exchange did not finish");
        // Ticks while the stack sat in TIME-WAIT add nothing.
        while r.actions.last() == Some(&Action::Advance { code: 0, ms: 0 }) {
            r.actions.pop();
        }
        r.actions
    }

    /// Applies an action to the stack and hands its datagrams to the peer.
    fn apply(&mut self, a: Action) {
        self.f.apply(&a, self.templates);
        self.actions.push(a);
        self.events.extend(self.f.events.drain(..));
        let now = self.f.now;
        for pkt in std::mem::take(&mut self.f.out) {
            self.peer.handle_packet(now, &pkt);
        }
    }

    /// Queues the peer's datagrams for the next tick.
    fn pump_peer(&mut self) {
        let mut buf = [0u8; 1500];
        while let Some(n) = self.peer.poll_transmit(self.f.now, &mut buf) {
            self.to_stack.push(buf[..n].to_vec());
        }
    }
}
