//! The eleven connection states of RFC 9293 3.3.2, and handles and events.

use core::fmt;

/// A connection state of the RFC 9293 3.3.2 state diagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// CLOSED: no connection state at all (RFC 9293 3.3.2).
    Closed,
    /// LISTEN: waiting for a connection request from any remote TCP peer and
    /// port (RFC 9293 3.3.2).
    Listen,
    /// SYN-SENT: waiting for a matching connection request after having sent
    /// one (RFC 9293 3.3.2).
    SynSent,
    /// SYN-RECEIVED: waiting for a confirming acknowledgment of the
    /// connection request after having both received and sent one
    /// (RFC 9293 3.3.2).
    SynReceived,
    /// ESTABLISHED: an open connection; data received can be delivered to
    /// the user. The normal state for the data transfer phase
    /// (RFC 9293 3.3.2).
    Established,
    /// FIN-WAIT-1: waiting for a connection termination request from the
    /// remote TCP peer, or an acknowledgment of the termination request
    /// previously sent (RFC 9293 3.3.2).
    FinWait1,
    /// FIN-WAIT-2: waiting for a connection termination request from the
    /// remote TCP peer (RFC 9293 3.3.2).
    FinWait2,
    /// CLOSE-WAIT: waiting for a connection termination request from the
    /// local user (RFC 9293 3.3.2).
    CloseWait,
    /// CLOSING: waiting for a connection termination request acknowledgment
    /// from the remote TCP peer (RFC 9293 3.3.2).
    Closing,
    /// LAST-ACK: waiting for an acknowledgment of the connection termination
    /// request previously sent to the remote TCP peer, which includes an
    /// acknowledgment of its termination request (RFC 9293 3.3.2).
    LastAck,
    /// TIME-WAIT: waiting for enough time to pass to be sure the remote TCP
    /// peer received the acknowledgment of its connection termination
    /// request, and to avoid new connections being impacted by delayed
    /// segments from previous connections (RFC 9293 3.3.2).
    TimeWait,
}

impl State {
    /// RFC 9293 "synchronized" states: the ISNs of both sides are known.
    pub fn is_synchronized(self) -> bool {
        !matches!(
            self,
            State::Closed | State::Listen | State::SynSent | State::SynReceived
        )
    }

    /// We may still send new data (FIN not yet queued).
    pub fn can_send(self) -> bool {
        matches!(
            self,
            State::SynSent | State::SynReceived | State::Established | State::CloseWait
        )
    }

    /// The peer may still send us data (its FIN not yet received).
    pub fn can_recv(self) -> bool {
        matches!(
            self,
            State::SynSent
                | State::SynReceived
                | State::Established
                | State::FinWait1
                | State::FinWait2
        )
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Closed => "CLOSED",
            State::Listen => "LISTEN",
            State::SynSent => "SYN-SENT",
            State::SynReceived => "SYN-RECEIVED",
            State::Established => "ESTABLISHED",
            State::FinWait1 => "FIN-WAIT-1",
            State::FinWait2 => "FIN-WAIT-2",
            State::CloseWait => "CLOSE-WAIT",
            State::Closing => "CLOSING",
            State::LastAck => "LAST-ACK",
            State::TimeWait => "TIME-WAIT",
        })
    }
}

/// Handle of a connection. Stale handles (after the connection is gone) are
/// detected by a generation count and never alias a newer connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

impl ConnId {
    /// A compact integer for maps and logs (index and generation).
    pub fn as_u64(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.index)
    }
}

/// Handle of a listening socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenerId(pub(crate) u32);

/// Something the application may want to react to. Events are coalesced per
/// connection, so the queue is bounded by the number of connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// An active open completed (SYN-SENT -> ESTABLISHED).
    Connected(ConnId),
    /// A listener has a connection ready for `accept`.
    Incoming(ListenerId),
    /// New bytes (or the end of stream) can be read.
    Readable(ConnId),
    /// Send buffer space became free.
    Writable(ConnId),
    /// The peer's FIN arrived: after the buffered bytes, `recv` returns 0.
    PeerClosed(ConnId),
    /// The peer reset the connection (or refused the connect).
    Reset(ConnId),
    /// Connect, user or keep-alive timeout: the connection is gone.
    TimedOut(ConnId),
    /// The connection reached CLOSED; after `close`, its handle is now invalid.
    Closed(ConnId),
    /// An ICMP error left a soft error (Linux `sk_err_soft`) on a live
    /// connection: [`Stack::soft_error`](crate::Stack::soft_error) has it,
    /// [`Stack::take_error`](crate::Stack::take_error) reports it once.
    SoftError(ConnId),
}
