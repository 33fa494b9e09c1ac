//! Read access to the stack's internals for the fuzzing invariant checker
//! ([`crate::fuzzing`]). Compiled only for tests and the `fuzzing` feature.

use super::{EventSource, Stack};
use crate::fuzzing::{ConnSnapshot, ListenerSnapshot, StackSnapshot};
use crate::state::ConnId;

impl Stack {
    /// Everything the fuzzing invariants look at, copied out.
    #[doc(hidden)]
    pub fn fuzz_snapshot(&self) -> StackSnapshot {
        let mut conns = Vec::new();
        for (i, s) in self.slots.iter().enumerate() {
            let Some(c) = s.conn.as_deref() else {
                continue;
            };
            conns.push(ConnSnapshot {
                id: ConnId {
                    index: i as u32,
                    generation: s.generation,
                },
                owned: s.owned,
                user_closed: c.user_closed,
                state: c.state,
                local: c.local,
                remote: c.remote,
                iss: c.iss,
                snd_una: c.snd_una,
                snd_nxt: c.snd_nxt,
                snd_max: c.snd_max,
                irs: c.irs,
                rcv_nxt: c.rcv_nxt,
                rcv_adv: c.rcv_adv,
                rcv_wscale: c.rcv_wscale,
                send_len: c.send_buf.len(),
                send_cap: c.send_buf.capacity(),
                recv_len: c.recv_buf.len(),
                recv_cap: c.recv_buf.capacity(),
                send_buffer_max: c.send_buffer_max,
                recv_buffer_max: c.recv_buffer_max,
                assembler_ranges: c.assembler.len(),
                assembler_end: c.assembler.iter().last().map_or(0, |(_, e)| e),
                sacked_bytes: c.sent.sacked_bytes(),
                lost_bytes: c.sent.lost_bytes(),
                timer_invariant: c.retransmission_timer_invariant(),
                next_timer: c.timers.next(),
                events: c.events,
            });
        }
        let listeners = self
            .listeners
            .iter()
            .flatten()
            .map(|l| ListenerSnapshot {
                addr: l.addr,
                backlog: l.backlog,
                syn_queue: l.syn_queue,
                accept_queue: l.accept_queue.len(),
            })
            .collect();
        StackSnapshot {
            live: self.live,
            slots: self.slots.len(),
            free: self.free.len(),
            conn_map: self.conns.len(),
            listener_map: self.listener_map.len(),
            timers: self.timers.len(),
            dirty: self.dirty.len(),
            events: self.events.len(),
            listener_events: self
                .events
                .iter()
                .filter(|e| matches!(e, EventSource::Listener(_)))
                .count(),
            control: self.control.len(),
            max_control: super::MAX_CONTROL,
            conns,
            listeners,
        }
    }
}
