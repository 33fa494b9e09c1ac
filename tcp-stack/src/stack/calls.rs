//! The socket calls: listen, accept, connect, send, receive, close, options.

use super::*;

impl Stack {
    // ------------------------------------------------------------------
    // Socket calls
    // ------------------------------------------------------------------

    /// Opens a listening socket (passive open) on `addr`, either family.
    /// Port 0 picks an ephemeral port. `[::]:p` takes IPv4 as well
    /// (dual stack, reporting IPv4 peers IPv4-mapped, as Linux with
    /// `bindv6only=0`); [`listen_with`](Stack::listen_with) and
    /// [`ListenOptions::v6_only`] turn that off.
    ///
    /// # Errors
    ///
    /// [`Error::AddrNotAvailable`] when the address is not one of the stack's
    /// (nor unspecified) or port 0 finds no free ephemeral port;
    /// [`Error::AddrInUse`] when a listener already takes the address and port
    /// (unless both use `SO_REUSEPORT`); [`Error::InvalidInput`] for an
    /// IPv4-mapped address with [`ListenOptions::v6_only`].
    pub fn listen(
        &mut self,
        addr: impl Into<SocketAddr>,
        backlog: usize,
    ) -> crate::Result<ListenerId> {
        self.listen_with(addr, backlog, ListenOptions::default())
    }

    /// [`listen`](Stack::listen) with options.
    ///
    /// # Errors
    ///
    /// As [`listen`](Stack::listen).
    pub fn listen_with(
        &mut self,
        addr: impl Into<SocketAddr>,
        backlog: usize,
        opts: ListenOptions,
    ) -> crate::Result<ListenerId> {
        let addr = addr.into();
        let v6_socket = addr.is_ipv6();
        let mut key = addr::canonical(addr);
        if opts.v6_only && key.is_ipv4() && v6_socket {
            // Linux: an IPV6_V6ONLY socket cannot bind an IPv4-mapped address.
            return Err(Error::InvalidInput);
        }
        self.check_local_ip(key.ip())?;
        if key.port() == 0 {
            let (lo, hi) = self.cfg.ephemeral_ports;
            let span = u32::from(hi.saturating_sub(lo)) + 1;
            let start = self.rng.next_u32() % span;
            let port = (0..span)
                .map(|i| lo + ((start + i) % span) as u16)
                .find(|&p| {
                    let cand = SocketAddr::new(key.ip(), p);
                    !self.listener_conflict(cand, opts.v6_only, opts.reuseport)
                })
                .ok_or(Error::AddrNotAvailable)?;
            key.set_port(port);
        } else if self.listener_conflict(key, opts.v6_only, opts.reuseport) {
            return Err(Error::AddrInUse);
        }
        let mut addr = addr;
        addr.set_port(key.port());
        let l = Listener {
            addr,
            key,
            v6_socket,
            v6_only: opts.v6_only && v6_socket,
            reuseport: opts.reuseport,
            backlog: backlog.clamp(1, 65535),
            syn_queue: 0,
            embryos: VecDeque::new(),
            last_cookie: None,
            accept_queue: VecDeque::new(),
            waiting: 0,
            in_events: false,
            buffers: (self.cfg.send_buffer, self.cfg.recv_buffer),
        };
        let idx = match self.listeners.iter().position(Option::is_none) {
            Some(i) => {
                self.listeners[i] = Some(l);
                i
            }
            None => {
                self.listeners.push(Some(l));
                self.listeners.len() - 1
            }
        } as u32;
        // A `SO_REUSEPORT` group keeps its first member in the map.
        self.listener_map.entry(key).or_insert(idx);
        Ok(ListenerId(idx))
    }

    /// Takes an established connection from a listener's accept queue.
    pub fn accept(&mut self, listener: ListenerId) -> Option<ConnId> {
        let l = self.listeners.get_mut(listener.0 as usize)?.as_mut()?;
        let id = l.accept_queue.pop_front()?;
        let slot = self.slots.get_mut(id.index as usize)?;
        slot.owned = true;
        self.stats.connections_accepted += 1;
        // Events that happened before accept (data, FIN) are now of interest.
        if let Some(c) = slot.conn.as_deref_mut() {
            if !c.recv_buf.is_empty() {
                c.raise(ev::READABLE);
            }
            if c.peer_fin_received() {
                c.raise(ev::PEER_CLOSED | ev::READABLE);
            }
            c.raise(ev::WRITABLE);
        }
        self.after(id, false);
        Some(id)
    }

    /// Closes a listener; connections not yet accepted are reset.
    pub fn close_listener(&mut self, listener: ListenerId) {
        let Some(l) = self
            .listeners
            .get_mut(listener.0 as usize)
            .and_then(Option::take)
        else {
            return;
        };
        if self.listener_map.get(&l.key) == Some(&listener.0) {
            // Another member of its `SO_REUSEPORT` group takes the key.
            let next = self
                .listeners
                .iter()
                .position(|o| matches!(o, Some(o) if o.key == l.key));
            match next {
                Some(i) => self.listener_map.insert(l.key, i as u32),
                None => self.listener_map.remove(&l.key),
            };
        }
        let mut doomed: Vec<ConnId> = l.accept_queue.into_iter().collect();
        for (i, s) in self.slots.iter().enumerate() {
            if let Some(c) = s.conn.as_deref() {
                if c.listener == Some(listener) && !s.owned && c.state == State::SynReceived {
                    doomed.push(ConnId {
                        index: i as u32,
                        generation: s.generation,
                    });
                }
            }
        }
        for id in doomed {
            if let Some(c) = self.conn_mut(id) {
                c.listener = None;
                c.abort(Error::ConnectionAborted);
                c.user_closed = true;
            }
            self.after(id, true);
        }
    }

    /// Tells the stack that `waiting` connections taken from `listener`
    /// with [`accept`](Stack::accept) still wait in a front end's own queue
    /// for its application. They count against the backlog as if they were
    /// still in the accept queue, so a front end that moves connections
    /// ahead of its application keeps the backlog's meaning.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidHandle`] when `listener` is not an open listener.
    pub fn set_listener_waiting(
        &mut self,
        listener: ListenerId,
        waiting: usize,
    ) -> crate::Result<()> {
        match self.listeners.get_mut(listener.0 as usize) {
            Some(Some(l)) => {
                l.waiting = waiting;
                Ok(())
            }
            _ => Err(Error::InvalidHandle),
        }
    }

    /// The address a listener is bound to, as it was given (with the
    /// port chosen for port 0).
    pub fn listener_addr(&self, listener: ListenerId) -> Option<SocketAddr> {
        self.listeners
            .get(listener.0 as usize)?
            .as_ref()
            .map(|l| l.addr)
    }

    /// Active open: sends a SYN. `local` None (or port 0) picks an address
    /// and ephemeral port. Either family; an IPv6 socket (an IPv6 `local`)
    /// may connect to an IPv4-mapped `remote`, which goes out as IPv4 and
    /// reports IPv4-mapped addresses (RFC 4291 2.5.5.2), as on Linux.
    ///
    /// # Errors
    ///
    /// - [`Error::InvalidInput`]: `remote` has port 0 or is unspecified,
    ///   broadcast or multicast; an IPv4 `local` with an IPv6 `remote`; a
    ///   loopback source for a remote that is not local.
    /// - [`Error::NetworkUnreachable`]: an IPv6 `local` with an IPv4 `remote`,
    ///   or no local address of `remote`'s family; with
    ///   [`Config::ethernet`], no on-link prefix nor gateway for `remote`.
    /// - [`Error::AddrNotAvailable`]: `local` is not one of the stack's
    ///   addresses, or no ephemeral port is free.
    /// - [`Error::AddrInUse`]: `local` with that `remote` is already a
    ///   connection.
    /// - [`Error::Exhausted`]: `Config::max_connections` or
    ///   `Config::max_buffer_memory` is reached.
    pub fn connect(
        &mut self,
        now: Instant,
        local: Option<SocketAddr>,
        remote: impl Into<SocketAddr>,
    ) -> crate::Result<ConnId> {
        let buffers = (self.cfg.send_buffer, self.cfg.recv_buffer);
        self.connect_with_buffers(now, local, remote, buffers)
    }

    /// [`connect`](Stack::connect) with send and receive buffers of the
    /// given sizes instead of the configured ones (`SO_SNDBUF`/`SO_RCVBUF`
    /// set before `connect`). The buffer factory is asked for them.
    ///
    /// # Errors
    ///
    /// As [`connect`](Stack::connect).
    pub fn connect_with_buffers(
        &mut self,
        now: Instant,
        local: Option<SocketAddr>,
        remote: impl Into<SocketAddr>,
        buffers: (usize, usize),
    ) -> crate::Result<ConnId> {
        let remote = remote.into();
        let v6_socket = remote.is_ipv6() || local.is_some_and(|l| l.is_ipv6());
        let remote = addr::canonical(remote);
        let rip = remote.ip();
        if remote.port() == 0 || addr::bad_source(rip) {
            return Err(Error::InvalidInput);
        }
        let local = match local.map(addr::canonical) {
            // `[::]` (or `0.0.0.0`): no address chosen, either family.
            Some(l) if l.ip().is_unspecified() => {
                SocketAddr::new(addr::unspecified_like(rip), l.port())
            }
            Some(l) if l.is_ipv4() != remote.is_ipv4() => {
                // Linux: an IPv4 socket cannot reach an IPv6 peer (EAFNOSUPPORT),
                // nor an IPv6 address reach an IPv4 one (ENETUNREACH).
                return Err(if l.is_ipv4() {
                    Error::InvalidInput
                } else {
                    Error::NetworkUnreachable
                });
            }
            Some(l) => l,
            None => SocketAddr::new(addr::unspecified_like(rip), 0),
        };
        self.check_local_ip(local.ip())?;
        let lip = if !local.ip().is_unspecified() {
            local.ip()
        } else {
            self.source_for(rip)?
        };
        // RFC 1122 3.2.1.3 (g), RFC 4291 2.5.3: a loopback source never
        // leaves the host (Linux: EINVAL).
        if lip.is_loopback() && !self.is_local(rip) {
            return Err(Error::InvalidInput);
        }
        // With a link layer: no prefix and no gateway for it (Linux
        // ENETUNREACH from the route lookup).
        if !self.routable(rip) {
            return Err(Error::NetworkUnreachable);
        }
        if self.live >= self.cfg.max_connections || self.memory_exhausted() {
            return Err(Error::Exhausted);
        }
        let local = if local.port() == 0 {
            self.ephemeral_port(lip, remote)?
        } else {
            let l = SocketAddr::new(lip, local.port());
            if self.conns.contains_key(&(l, remote)) {
                return Err(Error::AddrInUse);
            }
            l
        };
        let (id_hint, mut conn) = self.new_conn(now, local, remote, buffers, None);
        conn.v6_socket = v6_socket;
        conn.open_active();
        let id = self.insert(conn, true);
        debug_assert_eq!(id, id_hint);
        self.stats.connections_opened += 1;
        self.after(id, true);
        Ok(id)
    }

    /// Sets the send and receive buffer sizes of the connections
    /// `listener` accepts from now on (`SO_SNDBUF`/`SO_RCVBUF` set on a
    /// listening socket, which Linux passes on to accepted ones).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidHandle`] when `listener` is not an open listener.
    pub fn set_listener_buffers(
        &mut self,
        listener: ListenerId,
        send: usize,
        recv: usize,
    ) -> crate::Result<()> {
        match self.listeners.get_mut(listener.0 as usize) {
            Some(Some(l)) => {
                l.buffers = (send, recv);
                Ok(())
            }
            _ => Err(Error::InvalidHandle),
        }
    }

    /// SEND on a listening socket with a foreign socket given (RFC 9293
    /// 3.10.2, the LISTEN -> SYN-SENT arrow, as for active FTP data
    /// connections): the listener becomes an active open from its own
    /// address. Connections still queued on the listener are reset.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidHandle`] when `listener` is not an open listener;
    /// [`Error::AddrNotAvailable`] when it is bound to the unspecified address
    /// (it has no single source address), and then the listener stays open.
    /// Otherwise the listener is closed and the errors are those of
    /// [`connect`](Stack::connect).
    pub fn connect_listener(
        &mut self,
        now: Instant,
        listener: ListenerId,
        remote: impl Into<SocketAddr>,
    ) -> crate::Result<ConnId> {
        let local = self.listener_addr(listener).ok_or(Error::InvalidHandle)?;
        if local.ip().is_unspecified() {
            // A wildcard listener has no single source address to use.
            return Err(Error::AddrNotAvailable);
        }
        self.close_listener(listener);
        self.connect(now, Some(local), remote)
    }

    /// Ephemeral port selection (RFC 6056).
    pub(super) fn ephemeral_port(
        &mut self,
        lip: IpAddr,
        remote: SocketAddr,
    ) -> crate::Result<SocketAddr> {
        let (lo, hi) = self.cfg.ephemeral_ports;
        let span = u32::from(hi.saturating_sub(lo)) + 1;
        let mut h = KeyedState(self.port_key).build_hasher();
        match remote.ip() {
            IpAddr::V4(ip) => h.write(&ip.octets()),
            IpAddr::V6(ip) => h.write(&ip.octets()),
        }
        h.write(&remote.port().to_be_bytes());
        let hash = h.finish();
        // RFC 6056 3.3.4 (algorithm 4): a keyed per-destination offset plus
        // a small table of counters, so consecutive connects to one peer
        // walk forward instead of probing the same used ports again.
        let slot = (hash >> 56) as usize % self.port_table.len();
        let start = (hash as u32).wrapping_add(u32::from(self.port_table[slot])) % span;
        for i in 0..span {
            let port = lo + ((start + i) % span) as u16;
            let cand = SocketAddr::new(lip, port);
            // Not a port a listener takes segments to `lip` on.
            if !self.conns.contains_key(&(cand, remote))
                && !self.listener_conflict(cand, true, false)
            {
                self.port_table[slot] = self.port_table[slot].wrapping_add(i as u16 + 1);
                return Ok(cand);
            }
        }
        Err(Error::AddrNotAvailable)
    }

    /// Queues bytes for sending; returns how many were taken (`WouldBlock` if none fit).
    ///
    /// # Errors
    ///
    /// - [`Error::InvalidHandle`]: `conn` is not a connection the application
    ///   owns (connected or accepted, not yet closed).
    /// - The error that ended the connection ([`Error::ConnectionReset`],
    ///   [`Error::TimedOut`], ...), if one did.
    /// - [`Error::NotConnected`] in CLOSED; [`Error::BrokenPipe`] after
    ///   [`shutdown`](Stack::shutdown) or in a state where no more data may be
    ///   sent.
    /// - [`Error::WouldBlock`]: the send buffer is full (an empty `data` gives
    ///   `Ok(0)`).
    pub fn send(&mut self, conn: ConnId, data: &[u8]) -> crate::Result<usize> {
        let n = self.owned_conn_mut(conn)?.send(data)?;
        self.after(conn, true);
        Ok(n)
    }

    /// Reads received bytes; `Ok(0)` is the end of stream (the peer's FIN),
    /// `WouldBlock` means nothing yet.
    ///
    /// # Errors
    ///
    /// - [`Error::InvalidHandle`]: `conn` is not a connection the application
    ///   owns (connected or accepted, not yet closed).
    /// - The error that ended the connection, if one did (once the buffered
    ///   bytes are read, and unless the peer's FIN came first).
    /// - [`Error::NotConnected`] in CLOSED with nothing left to read.
    /// - [`Error::WouldBlock`]: no bytes yet (an empty `buf` gives `Ok(0)`).
    pub fn recv(&mut self, conn: ConnId, buf: &mut [u8]) -> crate::Result<usize> {
        let r = self.owned_conn_mut(conn)?.recv(buf, true);
        self.after(conn, true);
        r
    }

    /// Like `recv` without consuming.
    ///
    /// # Errors
    ///
    /// As [`recv`](Stack::recv).
    pub fn peek(&mut self, conn: ConnId, buf: &mut [u8]) -> crate::Result<usize> {
        self.owned_conn_mut(conn)?.recv(buf, false)
    }

    /// Half-close: a FIN is sent after the queued data; receiving continues.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidHandle`] when `conn` is not a connection the application
    /// owns; [`Error::NotConnected`] in CLOSED.
    pub fn shutdown(&mut self, conn: ConnId) -> crate::Result<()> {
        let r = self.owned_conn_mut(conn)?.shutdown();
        self.after(conn, true);
        r
    }

    /// Closes the connection and releases the handle. With unread data, or
    /// linger zero, sends RST (RFC 2525 2.17); otherwise a graceful close
    /// (FIN after queued data) continues in the background.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidHandle`] when `conn` is not a connection the application
    /// owns (for instance, already closed).
    pub fn close(&mut self, conn: ConnId) -> crate::Result<()> {
        self.owned_conn_mut(conn)?.close();
        if let Some(s) = self.slots.get_mut(conn.index as usize) {
            s.in_events = false;
        }
        self.after(conn, true);
        Ok(())
    }

    /// [`close`](Stack::close) with a non-zero `SO_LINGER` of `linger`:
    /// the graceful close goes on, but if the data written (and the FIN)
    /// are not all acknowledged `linger` after `now`, the connection is
    /// reset then. A zero `linger` is [`SockOpt::LingerZero`]'s abort.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidHandle`] when `conn` is not a connection the application
    /// owns (for instance, already closed).
    pub fn close_with_linger(
        &mut self,
        now: Instant,
        conn: ConnId,
        linger: Duration,
    ) -> crate::Result<()> {
        let c = self.owned_conn_mut(conn)?;
        if linger.is_zero() {
            c.opts.linger_zero = true;
            c.close();
        } else {
            c.close_linger(now + linger);
        }
        if let Some(s) = self.slots.get_mut(conn.index as usize) {
            s.in_events = false;
        }
        self.after(conn, true);
        Ok(())
    }

    /// Sends RST and drops the connection at once; the handle stays valid
    /// (state CLOSED) until `close`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidHandle`] when `conn` is not a connection the application
    /// owns (for instance, already closed).
    pub fn abort(&mut self, conn: ConnId) -> crate::Result<()> {
        let c = self.owned_conn_mut(conn)?;
        c.abort(Error::ConnectionAborted);
        c.events = 0;
        self.after(conn, true);
        Ok(())
    }

    /// The connection's state; `Closed` for unknown or released handles.
    pub fn state(&self, conn: ConnId) -> State {
        self.conn(conn).map_or(State::Closed, |c| c.state)
    }

    /// The error that ended the connection (reset, refused, timed out), if any.
    pub fn error(&self, conn: ConnId) -> Option<Error> {
        self.conn(conn).and_then(|c| c.error)
    }

    /// The soft error an ICMP message left on the connection (Linux
    /// `sk_err_soft`: unreachable or source quench while synchronized),
    /// if any; it stays until [`take_error`](Stack::take_error).
    pub fn soft_error(&self, conn: ConnId) -> Option<Error> {
        self.conn(conn).and_then(|c| c.soft_error)
    }

    /// `SO_ERROR`: the soft error left by an ICMP message, cleared as
    /// Linux `sock_getsockopt(SO_ERROR)` clears `sk_err_soft`. The error
    /// that ended the connection stays in [`error`](Stack::error) (a
    /// front end reports it once, before any soft error).
    pub fn take_error(&mut self, conn: ConnId) -> Option<Error> {
        self.conn_mut(conn).and_then(|c| c.soft_error.take())
    }

    /// The connection's local address: IPv4-mapped for an IPv4 connection
    /// an IPv6 socket owns (a dual-stack listener accepted it), as Linux
    /// reports it.
    pub fn local_addr(&self, conn: ConnId) -> Option<SocketAddr> {
        self.conn(conn).map(Conn::reported_local)
    }

    /// The peer's address, reported as [`local_addr`](Stack::local_addr) is.
    pub fn peer_addr(&self, conn: ConnId) -> Option<SocketAddr> {
        self.conn(conn).map(Conn::reported_remote)
    }

    /// Sets a per-connection option.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidHandle`] when `conn` is not a connection the application
    /// owns; [`Error::InvalidInput`] for [`SockOpt::KeepAliveParams`] with a zero
    /// `idle` or `interval`.
    pub fn set_option(&mut self, conn: ConnId, opt: SockOpt) -> crate::Result<()> {
        let iw = self.cfg.initial_window_segments;
        let c = self.owned_conn_mut(conn)?;
        match opt {
            SockOpt::NoDelay(v) => c.opts.nodelay = v,
            SockOpt::KeepAlive(v) => {
                c.opts.keepalive = v;
                // Idle time counts from the last segment received.
                let since = c.last_recv;
                c.arm_keepalive(since);
            }
            SockOpt::KeepAliveParams {
                idle,
                interval,
                probes,
            } => {
                // As Linux refuses TCP_KEEPIDLE or TCP_KEEPINTVL below 1 s
                // (EINVAL): a zero would re-arm the timer at `now` for ever.
                if idle.is_zero() || interval.is_zero() {
                    return Err(Error::InvalidInput);
                }
                c.opts.keepalive_idle = idle;
                c.opts.keepalive_interval = interval;
                c.opts.keepalive_probes = probes.max(1);
                let since = c.last_recv;
                c.arm_keepalive(since);
            }
            SockOpt::UserTimeout(d) => c.opts.user_timeout = d,
            SockOpt::Ttl(t) => c.opts.ttl = t.max(1),
            SockOpt::LingerZero(v) => c.opts.linger_zero = v,
            SockOpt::CongestionControl(kind) => c.set_congestion_control(kind, iw),
            SockOpt::Tos(tos) => c.opts.tos = tos & !0b11,
            SockOpt::QuickAck(v) => c.set_quickack(v),
        }
        self.after(conn, true);
        Ok(())
    }

    /// Snapshot of connection internals.
    pub fn info(&self, conn: ConnId) -> Option<TcpInfo> {
        self.conn(conn).map(Conn::info)
    }

    /// The application appended to the connection's send buffer directly
    /// (shared-buffer front ends): schedule transmission.
    pub fn notify_send(&mut self, conn: ConnId) {
        self.after(conn, true);
    }

    /// The application consumed from the receive buffer directly: the window
    /// may need an update.
    pub fn notify_recv(&mut self, conn: ConnId) {
        if let Some(c) = self.conn_mut(conn) {
            c.on_app_read();
        }
        self.after(conn, true);
    }

    /// The connection's send buffer (e.g. to downcast to a front end's type).
    pub fn send_buffer(&self, conn: ConnId) -> Option<&dyn SendBuffer> {
        self.conn(conn).map(|c| &*c.send_buf)
    }

    /// The connection's receive buffer.
    pub fn recv_buffer(&self, conn: ConnId) -> Option<&dyn RecvBuffer> {
        self.conn(conn).map(|c| &*c.recv_buf)
    }
}
