//! Reports for people and tools: every connection and listener as
//! `ss -tni` lists them, and the counters under their `nstat` names.

use super::{Stack, Stats, TcpInfo};
use crate::state::State;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// One listener, as `ss -tl` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerInfo {
    /// The address it was bound to.
    pub local: SocketAddr,
    /// Connections that may wait for `accept` (`ss` `Send-Q`).
    pub backlog: usize,
    /// Established connections waiting for `accept`, in the stack's queue
    /// and the front end's ([`Stack::set_listener_waiting`]) (`ss` `Recv-Q`).
    pub accept_queue: usize,
    /// Half-open connections (SYN-RECEIVED) of this listener.
    pub syn_queue: usize,
}

impl Stack {
    /// A snapshot of every connection, in any state (TIME-WAIT and those
    /// the application released included), like `ss -tnai`. O(connections).
    pub fn connections(&self) -> impl Iterator<Item = TcpInfo> + '_ {
        self.slots
            .iter()
            .filter_map(|s| s.conn.as_deref())
            .map(|c| c.info())
    }

    /// A snapshot of every listener, like `ss -tln`.
    pub fn listeners(&self) -> impl Iterator<Item = ListenerInfo> + '_ {
        self.listeners.iter().flatten().map(|l| ListenerInfo {
            local: l.addr,
            backlog: l.backlog,
            accept_queue: l.accept_queue.len() + l.waiting,
            syn_queue: l.syn_queue,
        })
    }
}

/// `ss`'s name for a state.
fn ss_state(state: State) -> &'static str {
    match state {
        State::Closed => "CLOSE",
        State::Listen => "LISTEN",
        State::SynSent => "SYN-SENT",
        State::SynReceived => "SYN-RECV",
        State::Established => "ESTAB",
        State::FinWait1 => "FIN-WAIT-1",
        State::FinWait2 => "FIN-WAIT-2",
        State::CloseWait => "CLOSE-WAIT",
        State::Closing => "CLOSING",
        State::LastAck => "LAST-ACK",
        State::TimeWait => "TIME-WAIT",
    }
}

/// Milliseconds with three decimals, as `ss` prints times.
fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One line as `ss -tni` prints a connection: state, local and peer
/// address, then its `tcp_info` fields under `ss`'s names where it has
/// one (`rto`, `rtt:srtt/rttvar` in ms, `mss`, `rcvmss`, `cwnd` and
/// `ssthresh` in segments, `bytes_sent`, `bytes_acked`, `bytes_received`,
/// `segs_out`, `segs_in`, `retrans`, `unacked` in segments, `snd_wnd`,
/// `rcv_space`) and ours otherwise (`inflight` bytes, `sndbuf`, `rcvbuf`).
impl fmt::Display for TcpInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<11} {} {}",
            ss_state(self.state),
            self.local,
            self.remote
        )?;
        let mut opts = Vec::new();
        if self.timestamps {
            opts.push("ts");
        }
        if self.sack {
            opts.push("sack");
        }
        if self.window_scaling {
            opts.push("wscale");
        }
        if !opts.is_empty() {
            write!(f, " {}", opts.join(" "))?;
        }
        write!(f, " rto:{:.0}", ms(self.rto))?;
        if let Some(srtt) = self.srtt {
            write!(f, " rtt:{:.3}/{:.3}", ms(srtt), ms(self.rttvar))?;
        }
        let mss = self.mss.max(1);
        write!(
            f,
            " mss:{} rcvmss:{} cwnd:{}",
            self.mss,
            self.rcv_mss,
            self.cwnd / mss
        )?;
        if self.ssthresh < usize::MAX / 2 {
            write!(f, " ssthresh:{}", self.ssthresh / mss)?;
        }
        write!(
            f,
            " bytes_sent:{} bytes_acked:{} bytes_received:{} segs_out:{} segs_in:{}",
            self.bytes_sent,
            self.bytes_acked,
            self.bytes_received,
            self.segments_sent,
            self.segments_received
        )?;
        if self.retransmits > 0 {
            write!(f, " retrans:{}", self.retransmits)?;
        }
        if self.in_flight > 0 {
            write!(
                f,
                " unacked:{} inflight:{}",
                self.in_flight.div_ceil(mss),
                self.in_flight
            )?;
        }
        write!(
            f,
            " snd_wnd:{} rcv_space:{} sndbuf:{} rcvbuf:{}",
            self.send_window, self.recv_window, self.send_buffer, self.recv_buffer
        )
    }
}

/// One line as `ss -tln` prints a listener: `LISTEN`, the accept queue
/// (`Recv-Q`), the backlog (`Send-Q`), the address, then ours: `synq:`
/// half-open connections.
impl fmt::Display for ListenerInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<11} {} {} {} synq:{}",
            "LISTEN", self.accept_queue, self.backlog, self.local, self.syn_queue
        )
    }
}

impl Stats {
    /// Every counter with its name: the `nstat` name where Linux counts
    /// the same thing (`TcpActiveOpens`, `TcpRetransSegs`,
    /// `TcpExtListenOverflows`, ...), otherwise ours, prefixed `Utcp` in
    /// `nstat`'s style (`UtcpDropMalformed`, ...) so that no name claims a
    /// kernel meaning it does not have. The field docs say which is which.
    pub fn nstat(&self) -> Vec<(&'static str, u64)> {
        // No `..`: a new counter must be named here to compile.
        let Stats {
            packets_in,
            packets_out,
            drop_malformed,
            drop_checksum,
            drop_fragment,
            drop_not_ours,
            drop_protocol,
            drop_segment,
            drop_listen_overflow,
            syncookies_sent,
            syncookies_validated,
            syncookies_rejected,
            syn_queue_overflows,
            accept_queue_overflows,
            syn_queue_evictions,
            rst_sent,
            rst_received,
            challenge_acks,
            sack_reneging,
            challenge_acks_suppressed,
            retransmits,
            fast_retransmits,
            ecn_reductions,
            rto_expirations,
            icmp_in,
            icmp_ignored,
            pmtu_reductions,
            icmp_echo_replies,
            icmp_rate_limited,
            drop_control_full,
            drop_memory,
            orphans_reset,
            connections_opened,
            connections_accepted,
            loopback,
            link_drop_malformed,
            link_drop_not_ours,
            link_drop_ethertype,
            arp_in,
            arp_dropped,
            arp_replies,
            ndp_invalid,
            neigh_solicits,
            drop_no_route,
            neigh_queue_drops,
            neigh_res_failed,
            neigh_failed_drops,
            neigh_table_full,
            drop_link_control_full,
        } = *self;
        vec![
            ("IpInReceives", packets_in),
            ("IpOutRequests", packets_out),
            ("IpInAddrErrors", drop_not_ours),
            ("IpInUnknownProtos", drop_protocol),
            ("IpReasmFails", drop_fragment),
            ("IcmpInMsgs", icmp_in),
            ("IcmpOutEchoReps", icmp_echo_replies),
            ("IcmpOutRateLimitGlobal", icmp_rate_limited),
            ("TcpActiveOpens", connections_opened),
            ("TcpRetransSegs", retransmits),
            ("TcpInCsumErrors", drop_checksum),
            ("TcpExtListenOverflows", accept_queue_overflows),
            ("TcpExtListenDrops", drop_listen_overflow),
            ("TcpExtSyncookiesSent", syncookies_sent),
            ("TcpExtSyncookiesRecv", syncookies_validated),
            ("TcpExtSyncookiesFailed", syncookies_rejected),
            ("TcpExtTCPChallengeACK", challenge_acks),
            ("TcpExtTCPACKSkippedChallenge", challenge_acks_suppressed),
            ("TcpExtTCPSACKReneging", sack_reneging),
            ("TcpExtTCPTimeouts", rto_expirations),
            ("UtcpDropMalformed", drop_malformed),
            ("UtcpDropSegment", drop_segment),
            ("UtcpDropControlFull", drop_control_full),
            ("UtcpDropMemory", drop_memory),
            ("UtcpSynQueueOverflows", syn_queue_overflows),
            ("UtcpSynQueueEvictions", syn_queue_evictions),
            ("UtcpRstSent", rst_sent),
            ("UtcpRstReceived", rst_received),
            ("UtcpFastRetransmits", fast_retransmits),
            ("UtcpEcnReductions", ecn_reductions),
            ("UtcpIcmpIgnored", icmp_ignored),
            ("UtcpPmtuReductions", pmtu_reductions),
            ("UtcpOrphansReset", orphans_reset),
            ("UtcpConnectionsAccepted", connections_accepted),
            ("UtcpLoopback", loopback),
            ("IpOutNoRoutes", drop_no_route),
            ("UtcpLinkDropMalformed", link_drop_malformed),
            ("UtcpLinkDropNotOurs", link_drop_not_ours),
            ("UtcpLinkDropEthertype", link_drop_ethertype),
            ("UtcpArpIn", arp_in),
            ("UtcpArpDropped", arp_dropped),
            ("UtcpArpReplies", arp_replies),
            ("UtcpNdpInvalid", ndp_invalid),
            ("UtcpNeighSolicits", neigh_solicits),
            ("UtcpNeighQueueDrops", neigh_queue_drops),
            ("UtcpNeighResFailed", neigh_res_failed),
            ("UtcpNeighFailedDrops", neigh_failed_drops),
            ("UtcpNeighTableFull", neigh_table_full),
            ("UtcpDropLinkControlFull", drop_link_control_full),
        ]
    }
}

/// The counters as `nstat -a` prints them: `#kernel`, then one
/// `Name value` line per counter ([`Stats::nstat`]), without the rate
/// column.
impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "#kernel")?;
        for (name, value) in self.nstat() {
            writeln!(f, "{name:<32}{value:>16}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::collections::HashSet;

    #[test]
    fn nstat_names_every_counter_once() {
        let names = Stats::default().nstat();
        let unique: HashSet<_> = names.iter().map(|(n, _)| *n).collect();
        assert_eq!(unique.len(), names.len(), "a name is used twice");
        // Stats is all u64 counters: one name per 8 bytes.
        assert_eq!(names.len(), std::mem::size_of::<Stats>() / 8);
        let stats = Stats {
            connections_opened: 12,
            retransmits: 3,
            drop_malformed: 1,
            ..Stats::default()
        };
        let text = stats.to_string();
        assert!(text.starts_with("#kernel\n"));
        let line = |name: &str| {
            text.lines()
                .find(|l| l.split_whitespace().next() == Some(name))
                .map(|l| l.split_whitespace().nth(1).unwrap().to_owned())
        };
        assert_eq!(line("TcpActiveOpens").as_deref(), Some("12"));
        assert_eq!(line("TcpRetransSegs").as_deref(), Some("3"));
        assert_eq!(line("UtcpDropMalformed").as_deref(), Some("1"));
    }

    #[test]
    fn connections_and_listeners_are_listed() {
        let mut s = Stack::new(Config::with_addr("10.0.0.1".parse().unwrap()));
        let l = s
            .listen("10.0.0.1:80".parse::<SocketAddr>().unwrap(), 16)
            .unwrap();
        let now = crate::time::Instant::from_millis(0);
        let remote: SocketAddr = "10.0.0.2:80".parse().unwrap();
        let c = s.connect(now, None, remote).unwrap();
        let listeners: Vec<_> = s.listeners().collect();
        assert_eq!(listeners.len(), 1);
        assert_eq!(listeners[0].local, s.listener_addr(l).unwrap());
        assert_eq!(listeners[0].backlog, 16);
        assert!(listeners[0].to_string().starts_with("LISTEN"));
        let conns: Vec<_> = s.connections().collect();
        assert_eq!(conns.len(), 1);
        assert_eq!(conns[0].state, State::SynSent);
        assert_eq!(Some(conns[0].remote), s.peer_addr(c));
        let line = conns[0].to_string();
        assert!(
            line.starts_with("SYN-SENT") && line.contains("10.0.0.2:80"),
            "{line}"
        );
    }
}
