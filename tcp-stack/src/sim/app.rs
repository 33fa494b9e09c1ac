//! Test applications that drive connections inside a [`Sim`].

use super::network::{mix, NodeId, Sim};
use crate::error::Error;
use crate::state::{ConnId, ListenerId, State};
use crate::time::Instant;
use std::net::SocketAddrV4;

/// A seeded pseudo-random byte stream addressable by offset, so that a
/// receiver can check every byte without storing what was sent: a byte that
/// is lost, duplicated, reordered or corrupted shows up as a mismatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pattern {
    seed: u64,
}

impl Pattern {
    /// The byte stream of `seed`.
    pub fn new(seed: u64) -> Self {
        Pattern { seed }
    }

    /// The byte at `offset`.
    pub fn byte(&self, offset: u64) -> u8 {
        (mix(self.seed ^ (offset >> 3)) >> ((offset & 7) * 8)) as u8
    }

    /// Fills `buf` with the bytes from `offset` on.
    pub fn fill(&self, offset: u64, buf: &mut [u8]) {
        let mut block = offset >> 3;
        let mut word = mix(self.seed ^ block).to_le_bytes();
        for (i, b) in buf.iter_mut().enumerate() {
            let at = offset + i as u64;
            if at >> 3 != block {
                block = at >> 3;
                word = mix(self.seed ^ block).to_le_bytes();
            }
            *b = word[(at & 7) as usize];
        }
    }

    /// The first offset in `offset..offset + data.len()` whose byte differs.
    pub fn first_mismatch(&self, offset: u64, data: &[u8]) -> Option<u64> {
        let mut expect = vec![0; data.len()];
        self.fill(offset, &mut expect);
        data.iter()
            .zip(&expect)
            .position(|(a, b)| a != b)
            .map(|i| offset + i as u64)
    }
}

/// Who sends the first FIN in a [`Transfer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseOrder {
    /// The client shuts down after sending; the server only after the
    /// client's end of stream (the client ends in TIME-WAIT).
    ClientFirst,
    /// The mirror image: the server ends in TIME-WAIT.
    ServerFirst,
    /// Each side shuts down as soon as it has sent everything.
    Whenever,
}

/// What a [`Transfer`] does.
#[derive(Debug, Clone)]
pub struct TransferSpec {
    /// Bytes from client to server.
    pub client_bytes: u64,
    /// Bytes from server to client.
    pub server_bytes: u64,
    /// Server port.
    pub port: u16,
    /// Seed of the two byte patterns.
    pub seed: u64,
    /// Who sends the first FIN.
    pub close: CloseOrder,
    /// The server starts sending only after the client's end of stream:
    /// every server byte then travels over a half-closed connection.
    pub server_sends_after_eof: bool,
    /// The client starts sending only after the server's end of stream.
    pub client_sends_after_eof: bool,
    /// Largest `send`/`recv` call, bytes.
    pub chunk: usize,
    /// Done only when both ends are CLOSED (after TIME-WAIT); otherwise when
    /// both have seen the end of stream and verified every byte.
    pub wait_closed: bool,
}

impl Default for TransferSpec {
    fn default() -> Self {
        TransferSpec {
            client_bytes: 64 * 1024,
            server_bytes: 64 * 1024,
            port: 80,
            seed: 1,
            close: CloseOrder::ClientFirst,
            server_sends_after_eof: false,
            client_sends_after_eof: false,
            chunk: 16 * 1024,
            wait_closed: true,
        }
    }
}

impl TransferSpec {
    /// The bytes the client sends.
    pub fn client_pattern(&self) -> Pattern {
        Pattern::new(mix(self.seed ^ 0xc2))
    }

    /// The bytes the server sends.
    pub fn server_pattern(&self) -> Pattern {
        Pattern::new(mix(self.seed ^ 0x2c))
    }
}

/// What one end of a [`Transfer`] saw.
#[derive(Debug, Clone, PartialEq)]
pub struct EndReport {
    /// The node this end runs on.
    pub node: NodeId,
    /// Its connection: the client's from [`Transfer::start`] on, the
    /// server's once accepted.
    pub conn: Option<ConnId>,
    /// Bytes accepted by `send`.
    pub sent: u64,
    /// Bytes received and verified in order.
    pub verified: u64,
    /// `recv` returned 0.
    pub eof: bool,
    /// `shutdown` was called.
    pub shut_down: bool,
    /// Distinct consecutive states observed, from the first poll on.
    pub states: Vec<State>,
    /// When each state was first entered (same order as `states`).
    pub state_times: Vec<Instant>,
    /// The error that ended the connection or a socket call, if any.
    pub error: Option<Error>,
    /// A data integrity violation (wrong byte, extra bytes, early EOF).
    pub violation: Option<String>,
    /// The connection reached CLOSED after a graceful exchange of FINs.
    pub closed: bool,
}

impl EndReport {
    fn new(node: NodeId) -> Self {
        EndReport {
            node,
            conn: None,
            sent: 0,
            verified: 0,
            eof: false,
            shut_down: false,
            states: Vec::new(),
            state_times: Vec::new(),
            error: None,
            violation: None,
            closed: false,
        }
    }

    /// Whether the end passed through `state`.
    pub fn saw(&self, state: State) -> bool {
        self.states.contains(&state)
    }

    /// How long the end stayed in `state` the first time (until the next
    /// observed state), if it left it.
    pub fn time_in(&self, state: State) -> Option<crate::time::Duration> {
        let i = self.states.iter().position(|s| *s == state)?;
        Some(*self.state_times.get(i + 1)? - self.state_times[i])
    }

    fn failed(&self) -> bool {
        self.error.is_some() || self.violation.is_some()
    }
}

struct End {
    report: EndReport,
    to_send: u64,
    expect: u64,
    send_pattern: Pattern,
    recv_pattern: Pattern,
    read_paused_until: Instant,
    released: bool,
    /// Pattern bytes from offset `staged_from`, not all sent yet.
    staged: Vec<u8>,
    staged_from: u64,
}

/// Drives one client/server connection pair in a [`Sim`]: the client sends
/// `client_bytes` of a seeded pattern, the server `server_bytes` of another;
/// each end verifies every byte it receives exactly once and in order, both
/// shut down in the configured order, and both wait for CLOSED.
///
/// ```ignore
/// let mut t = Transfer::start(&mut sim, client, server, TransferSpec::default());
/// assert!(sim.run_until(deadline, |s| t.poll(s)));
/// t.assert_success();
/// ```
pub struct Transfer {
    spec: TransferSpec,
    listener: Option<ListenerId>,
    server_addr: SocketAddrV4,
    client: End,
    server: End,
    buf: Vec<u8>,
    started: Instant,
    finished: Option<Instant>,
}

impl Transfer {
    /// Opens the listener on `server` and connects from `client`.
    ///
    /// # Panics
    /// If `listen` or `connect` fails.
    pub fn start(sim: &mut Sim, client: NodeId, server: NodeId, spec: TransferSpec) -> Transfer {
        let ip = std::net::IpAddr::V4(sim.addr(server));
        Transfer::start_at(sim, client, server, ip, spec)
    }

    /// [`start`](Transfer::start) to the server's address `ip`, of either
    /// family.
    ///
    /// # Panics
    /// If `listen` or `connect` fails.
    pub fn start_at(
        sim: &mut Sim,
        client: NodeId,
        server: NodeId,
        ip: std::net::IpAddr,
        spec: TransferSpec,
    ) -> Transfer {
        let target = std::net::SocketAddr::new(ip, spec.port);
        let server_addr = match ip {
            std::net::IpAddr::V4(a) => SocketAddrV4::new(a, spec.port),
            std::net::IpAddr::V6(_) => {
                SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, spec.port)
            }
        };
        let listener = sim
            .stack_mut(server)
            .listen(target, 16)
            .expect("listen failed");
        let now = sim.now();
        let conn = sim
            .stack_mut(client)
            .connect(now, None, target)
            .expect("connect failed");
        let c2s = spec.client_pattern();
        let s2c = spec.server_pattern();
        let mut c = End {
            report: EndReport::new(client),
            to_send: spec.client_bytes,
            expect: spec.server_bytes,
            send_pattern: c2s,
            recv_pattern: s2c,
            read_paused_until: Instant::ZERO,
            released: false,
            staged: Vec::new(),
            staged_from: 0,
        };
        c.report.conn = Some(conn);
        let s = End {
            report: EndReport::new(server),
            to_send: spec.server_bytes,
            expect: spec.client_bytes,
            send_pattern: s2c,
            recv_pattern: c2s,
            read_paused_until: Instant::ZERO,
            released: false,
            staged: Vec::new(),
            staged_from: 0,
        };
        Transfer {
            buf: vec![0; spec.chunk.max(1)],
            spec,
            listener: Some(listener),
            server_addr,
            client: c,
            server: s,
            started: now,
            finished: None,
        }
    }

    /// The server's listening address (`0.0.0.0` and the port for a
    /// transfer over IPv6).
    pub fn server_addr(&self) -> SocketAddrV4 {
        self.server_addr
    }

    /// The client's connection, set by [`start`](Transfer::start).
    pub fn client_conn(&self) -> Option<ConnId> {
        self.client.report.conn
    }

    /// The accepted connection, once there is one.
    pub fn server_conn(&self) -> Option<ConnId> {
        self.server.report.conn
    }

    /// The server application does not read before `until` (its receive
    /// window fills up and closes).
    pub fn pause_server_reads(&mut self, until: Instant) {
        self.server.read_paused_until = until;
    }

    /// Same for the client.
    pub fn pause_client_reads(&mut self, until: Instant) {
        self.client.read_paused_until = until;
    }

    /// What the client end saw.
    pub fn client(&self) -> &EndReport {
        &self.client.report
    }

    /// What the server end saw.
    pub fn server(&self) -> &EndReport {
        &self.server.report
    }

    /// When the transfer finished (virtual time), if it did.
    pub fn finished_at(&self) -> Option<Instant> {
        self.finished
    }

    /// Virtual time from start to finish.
    pub fn elapsed(&self) -> Option<crate::time::Duration> {
        self.finished.map(|f| f - self.started)
    }

    /// Acts as both applications once; returns whether the transfer is over
    /// (finished or failed). Use as the condition of [`Sim::run_until`].
    pub fn poll(&mut self, sim: &mut Sim) -> bool {
        if self.server.report.conn.is_none() {
            if let Some(l) = self.listener {
                if let Some(c) = sim.stack_mut(self.server.report.node).accept(l) {
                    self.server.report.conn = Some(c);
                }
            }
        }
        // Twice: what one end sees (EOF) may let the other act at once.
        for _ in 0..2 {
            let (c, s) = (&self.client.report, &self.server.report);
            let client_may_close = self.spec.close != CloseOrder::ServerFirst || c.eof;
            let server_may_close = self.spec.close != CloseOrder::ClientFirst || s.eof;
            let server_may_send = !self.spec.server_sends_after_eof || s.eof;
            let client_may_send = !self.spec.client_sends_after_eof || c.eof;
            Self::poll_end(
                sim,
                &mut self.client,
                &mut self.buf,
                client_may_send,
                client_may_close,
            );
            Self::poll_end(
                sim,
                &mut self.server,
                &mut self.buf,
                server_may_send,
                server_may_close,
            );
        }
        let done = self.is_done();
        if done && self.finished.is_none() {
            self.finished = Some(sim.now());
        }
        done
    }

    /// Finished successfully or failed.
    pub fn is_done(&self) -> bool {
        let (c, s) = (&self.client.report, &self.server.report);
        if c.failed() || s.failed() {
            return true;
        }
        let end_done = |e: &End| {
            e.report.eof
                && e.report.shut_down
                && e.report.verified == e.expect
                && e.report.sent == e.to_send
                && (!self.spec.wait_closed || e.report.closed)
        };
        end_done(&self.client) && end_done(&self.server)
    }

    /// Whether every byte arrived and both ends closed cleanly.
    pub fn succeeded(&self) -> bool {
        self.is_done() && !self.client.report.failed() && !self.server.report.failed()
    }

    /// A one-paragraph account of both ends, for assertion messages.
    pub fn summary(&self) -> String {
        format!(
            "client: {:?}\nserver: {:?}\nexpected client->server {} server->client {}",
            self.client.report, self.server.report, self.client.to_send, self.server.to_send
        )
    }

    /// # Panics
    /// Unless [`succeeded`](Transfer::succeeded), with a summary.
    #[track_caller]
    pub fn assert_success(&self) {
        assert!(self.succeeded(), "transfer failed:\n{}", self.summary());
    }

    fn poll_end(sim: &mut Sim, end: &mut End, buf: &mut [u8], may_send: bool, may_close: bool) {
        let Some(conn) = end.report.conn else { return };
        if end.released {
            return;
        }
        let now = sim.now();
        let stack = sim.stack_mut(end.report.node);
        let state = stack.state(conn);
        if end.report.states.last() != Some(&state) {
            end.report.states.push(state);
            end.report.state_times.push(now);
        }
        if let Some(e) = stack.error(conn) {
            end.report.error.get_or_insert(e);
        }
        // Send.
        if may_send && matches!(state, State::Established | State::CloseWait) {
            while end.report.sent < end.to_send {
                // Pattern bytes are generated once, a chunk at a time.
                let mut off = (end.report.sent - end.staged_from) as usize;
                if off >= end.staged.len() {
                    let n = (end.to_send - end.report.sent).min(buf.len() as u64) as usize;
                    end.staged.resize(n, 0);
                    end.send_pattern.fill(end.report.sent, &mut end.staged);
                    end.staged_from = end.report.sent;
                    off = 0;
                }
                match stack.send(conn, &end.staged[off..]) {
                    Ok(0) | Err(Error::WouldBlock) => break,
                    Ok(k) => end.report.sent += k as u64,
                    Err(e) => {
                        end.report.error.get_or_insert(e);
                        break;
                    }
                }
            }
        }
        // Receive.
        if now >= end.read_paused_until && !end.report.eof && state != State::SynSent {
            loop {
                match stack.recv(conn, buf) {
                    Ok(0) => {
                        end.report.eof = true;
                        if end.report.verified != end.expect {
                            end.report.violation.get_or_insert(format!(
                                "end of stream after {} of {} bytes",
                                end.report.verified, end.expect
                            ));
                        }
                        break;
                    }
                    Ok(n) => {
                        let at = end.report.verified;
                        if at + n as u64 > end.expect {
                            end.report.violation.get_or_insert(format!(
                                "{} bytes beyond the {} expected",
                                at + n as u64 - end.expect,
                                end.expect
                            ));
                            break;
                        }
                        if let Some(bad) = end.recv_pattern.first_mismatch(at, &buf[..n]) {
                            end.report
                                .violation
                                .get_or_insert(format!("wrong byte at offset {bad}"));
                            break;
                        }
                        end.report.verified += n as u64;
                    }
                    Err(Error::WouldBlock) | Err(Error::NotConnected) => break,
                    Err(e) => {
                        end.report.error.get_or_insert(e);
                        break;
                    }
                }
            }
        }
        // Shut down once everything was handed to the stack.
        if !end.report.shut_down
            && may_close
            && end.report.sent == end.to_send
            && matches!(state, State::Established | State::CloseWait)
        {
            match stack.shutdown(conn) {
                Ok(()) => end.report.shut_down = true,
                Err(Error::WouldBlock) => {}
                Err(e) => {
                    end.report.error.get_or_insert(e);
                }
            }
        }
        let state = stack.state(conn);
        if end.report.states.last() != Some(&state) {
            end.report.states.push(state);
            end.report.state_times.push(now);
        }
        if state == State::Closed && end.report.states.len() > 1 {
            if let Some(e) = stack.error(conn) {
                end.report.error.get_or_insert(e);
            } else if end.report.shut_down && end.report.eof {
                end.report.closed = true;
            }
            let _ = stack.close(conn);
            end.released = true;
        }
    }
}
