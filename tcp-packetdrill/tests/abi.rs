//! Drives the built `libtcp_packetdrill.so` the way packetdrill does: dlopen
//! it, call `packetdrill_interface_init`, then only the function pointers
//! of the interface struct, with packets built and parsed here. CI cannot
//! build packetdrill (it is in no package registry); this is its stand-in.

use std::ffi::CString;
use std::io;
use std::mem::{size_of, MaybeUninit};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tcp_packetdrill::ffi::PacketdrillInterface;
use tcp_stack::wire::ipv4::Ipv4Packet;
use tcp_stack::wire::tcp::fill_checksum;
use tcp_stack::wire::{IpProtocol, Ipv4Repr, Ipv6Packet, Ipv6Repr, TcpFlags, TcpOptions, TcpRepr};
use tcp_stack::SeqNum;

const LOCAL: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 1);
const REMOTE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

type Init = unsafe extern "C" fn(*const libc::c_char, *mut PacketdrillInterface);

/// The shared object cargo built for this test run: a cdylib lands in
/// `target/<profile>/deps/` next to the test binary (and is copied to
/// `target/<profile>/`).
fn so_path() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let deps = exe.parent().expect("deps dir").to_path_buf();
    let candidates = [
        deps.join("libtcp_packetdrill.so"),
        deps.parent()
            .map(|p| p.join("libtcp_packetdrill.so"))
            .unwrap_or_default(),
    ];
    for c in &candidates {
        if c.is_file() {
            return c.clone();
        }
    }
    panic!("libtcp_packetdrill.so not found at {candidates:?}: cargo builds the cdylib with the crate's lib target");
}

/// `packetdrill_interface_init` of the loaded object (loaded once, never
/// unloaded: packetdrill uses RTLD_NODELETE too).
fn init_fn() -> Init {
    static INIT: OnceLock<usize> = OnceLock::new();
    let addr = *INIT.get_or_init(|| {
        let path = CString::new(so_path().into_os_string().into_encoded_bytes()).unwrap();
        // SAFETY: a valid C string; the flags are packetdrill's.
        let handle = unsafe {
            libc::dlopen(
                path.as_ptr(),
                libc::RTLD_NOW | libc::RTLD_LOCAL | libc::RTLD_NODELETE,
            )
        };
        assert!(!handle.is_null(), "dlopen {path:?} failed");
        // SAFETY: a live handle and a C string.
        let sym = unsafe { libc::dlsym(handle, c"packetdrill_interface_init".as_ptr()) };
        assert!(!sym.is_null(), "packetdrill_interface_init not exported");
        sym as usize
    });
    // SAFETY: the symbol is the exported function of that signature.
    unsafe { std::mem::transmute::<usize, Init>(addr) }
}

/// One shim instance, as packetdrill holds it.
struct Pd {
    ifc: PacketdrillInterface,
}

// The interface is used from a second thread (as packetdrill's syscall
// thread does); the shim behind `userdata` is built for that.
unsafe impl Send for Pd {}
unsafe impl Sync for Pd {}

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

macro_rules! call {
    ($pd:expr, $slot:ident $(, $arg:expr)*) => {{
        let f = $pd.ifc.$slot.expect(concat!(stringify!($slot), " slot is NULL"));
        // SAFETY: the arguments are valid for the slot, as for the libc call.
        unsafe { f($pd.ifc.userdata $(, $arg)*) }
    }};
}

fn sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

impl Pd {
    fn new(flags: &str) -> Pd {
        let flags = CString::new(flags).unwrap();
        let mut ifc = MaybeUninit::<PacketdrillInterface>::zeroed();
        // SAFETY: a C string and a writable struct, as packetdrill passes.
        unsafe { init_fn()(flags.as_ptr(), ifc.as_mut_ptr()) };
        // SAFETY: zeroed is a valid PacketdrillInterface (NULL slots), and
        // init wrote a complete one.
        Pd {
            ifc: unsafe { ifc.assume_init() },
        }
    }

    fn socket(&self, ty: i32) -> i32 {
        call!(self, socket, libc::AF_INET, ty, 0)
    }

    fn setsockopt_int(&self, fd: i32, level: i32, name: i32, v: i32) -> i32 {
        let p = (&v as *const i32).cast();
        call!(self, setsockopt, fd, level, name, p, 4)
    }

    fn getsockopt_bytes(&self, fd: i32, level: i32, name: i32, len: usize) -> (i32, Vec<u8>) {
        let mut buf = vec![0u8; len];
        let mut l = len as libc::socklen_t;
        let rc = call!(
            self,
            getsockopt,
            fd,
            level,
            name,
            buf.as_mut_ptr().cast(),
            &mut l
        );
        buf.truncate(l as usize);
        (rc, buf)
    }

    fn getsockopt_int(&self, fd: i32, level: i32, name: i32) -> i32 {
        let (rc, b) = self.getsockopt_bytes(fd, level, name, 4);
        assert_eq!(rc, 0, "getsockopt({level}, {name}) errno {}", errno());
        i32::from_ne_bytes(b[..4].try_into().unwrap())
    }

    fn bind(&self, fd: i32, a: SocketAddrV4) -> i32 {
        let sin = sockaddr(a);
        let p = (&sin as *const libc::sockaddr_in).cast();
        call!(self, bind, fd, p, size_of::<libc::sockaddr_in>() as u32)
    }

    fn connect(&self, fd: i32, a: SocketAddrV4) -> i32 {
        let sin = sockaddr(a);
        let p = (&sin as *const libc::sockaddr_in).cast();
        call!(self, connect, fd, p, size_of::<libc::sockaddr_in>() as u32)
    }

    fn accept(&self, fd: i32) -> (i32, SocketAddrV4) {
        let mut sin = MaybeUninit::<libc::sockaddr_in>::zeroed();
        let mut len = size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let rc = call!(self, accept, fd, sin.as_mut_ptr().cast(), &mut len);
        // SAFETY: zeroed, and accept wrote at most `len` bytes.
        let sin = unsafe { sin.assume_init() };
        let a = SocketAddrV4::new(
            Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
            u16::from_be(sin.sin_port),
        );
        (rc, a)
    }

    fn write(&self, fd: i32, data: &[u8]) -> isize {
        call!(self, write, fd, data.as_ptr().cast(), data.len())
    }

    fn read(&self, fd: i32, len: usize) -> (isize, Vec<u8>) {
        let mut buf = vec![0u8; len];
        let n = call!(self, read, fd, buf.as_mut_ptr().cast(), len);
        buf.truncate(n.max(0) as usize);
        (n, buf)
    }

    fn inject(&self, packet: &[u8]) {
        let rc = call!(self, netdev_send, packet.as_ptr().cast(), packet.len());
        assert_eq!(rc, 0);
    }

    /// One sniff: (return code, bytes, timestamp).
    fn sniff_once(&self) -> (i32, Vec<u8>, i64) {
        let mut buf = vec![0u8; 65536];
        let mut count = buf.len();
        let mut t = 0i64;
        let rc = call!(
            self,
            netdev_receive,
            buf.as_mut_ptr().cast(),
            &mut count,
            &mut t
        );
        buf.truncate(count);
        (rc, buf, t)
    }

    /// The next outbound segment, waiting up to `within`.
    #[track_caller]
    fn expect(&self, within: Duration) -> Seg {
        let end = Instant::now() + within;
        loop {
            let (rc, bytes, t) = self.sniff_once();
            if rc == 0 && !bytes.is_empty() {
                return Seg::parse(&bytes, t);
            }
            assert!(Instant::now() < end, "no packet within {within:?}");
        }
    }

    fn now_us(&self) -> i64 {
        let mut tv = MaybeUninit::<libc::timeval>::zeroed();
        let rc = call!(self, gettimeofday, tv.as_mut_ptr(), std::ptr::null_mut());
        assert_eq!(rc, 0);
        // SAFETY: zeroed, then written.
        let tv = unsafe { tv.assume_init() };
        tv.tv_sec * 1_000_000 + tv.tv_usec
    }
}

impl Drop for Pd {
    fn drop(&mut self) {
        if let Some(free) = self.ifc.free {
            // SAFETY: the userdata init made, freed once.
            unsafe { free(self.ifc.userdata) };
        }
    }
}

/// A parsed outbound segment.
#[derive(Debug)]
struct Seg {
    src: SocketAddrV4,
    dst: SocketAddrV4,
    tcp: TcpRepr,
    payload: Vec<u8>,
    time_us: i64,
}

impl Seg {
    #[track_caller]
    fn parse(bytes: &[u8], time_us: i64) -> Seg {
        let ip = Ipv4Repr::parse(&Ipv4Packet::new_checked(bytes).unwrap()).unwrap();
        assert_eq!(ip.protocol, IpProtocol::Tcp);
        let (tcp, payload) = TcpRepr::parse(&bytes[20..], ip.src, ip.dst, true).unwrap();
        Seg {
            src: SocketAddrV4::new(ip.src, tcp.src_port),
            dst: SocketAddrV4::new(ip.dst, tcp.dst_port),
            tcp,
            payload: payload.to_vec(),
            time_us,
        }
    }
    fn has(&self, f: TcpFlags) -> bool {
        self.tcp.flags.contains(f)
    }
    fn seq(&self) -> u32 {
        self.tcp.seq.0
    }
    fn ack(&self) -> u32 {
        self.tcp.ack.0
    }
}

/// The TCP header of a peer segment (window 65535).
fn peer_tcp(
    src_port: u16,
    dst_port: u16,
    seq: u32,
    ack: u32,
    flags: TcpFlags,
    options: TcpOptions,
) -> TcpRepr {
    TcpRepr {
        src_port,
        dst_port,
        seq: SeqNum(seq),
        ack: SeqNum(ack),
        flags,
        window: 65535,
        urgent: 0,
        options,
    }
}

/// An IPv4/TCP datagram from the peer.
fn segment(
    src: SocketAddrV4,
    dst: SocketAddrV4,
    seq: u32,
    ack: u32,
    flags: TcpFlags,
    options: TcpOptions,
    payload: &[u8],
) -> Vec<u8> {
    let tcp = peer_tcp(src.port(), dst.port(), seq, ack, flags, options);
    let tcp_len = tcp.segment_len(payload.len());
    let ip = Ipv4Repr {
        src: *src.ip(),
        dst: *dst.ip(),
        protocol: IpProtocol::Tcp,
        payload_len: tcp_len,
        ttl: 64,
        tos: 0,
        ident: 0,
        dont_frag: true,
    };
    let mut buf = vec![0u8; ip.total_len()];
    ip.emit(&mut buf);
    tcp.emit(&mut buf[20..]);
    buf[20 + tcp.header_len()..].copy_from_slice(payload);
    fill_checksum(&mut buf[20..], *src.ip(), *dst.ip());
    buf
}

fn flags(parts: &[TcpFlags]) -> TcpFlags {
    TcpFlags(parts.iter().fold(0, |a, f| a | f.0))
}

fn mss(m: u16) -> TcpOptions {
    TcpOptions {
        mss: Some(m),
        ..TcpOptions::default()
    }
}

const SEC: Duration = Duration::from_secs(2);

#[test]
fn every_slot_of_the_interface_is_filled() {
    let pd = Pd::new("local=192.168.0.1");
    let i = &pd.ifc;
    assert!(!i.userdata.is_null());
    let slots = [
        i.free.is_some(),
        i.socket.is_some(),
        i.bind.is_some(),
        i.listen.is_some(),
        i.accept.is_some(),
        i.connect.is_some(),
        i.read.is_some(),
        i.readv.is_some(),
        i.recv.is_some(),
        i.recvfrom.is_some(),
        i.recvmsg.is_some(),
        i.write.is_some(),
        i.writev.is_some(),
        i.send.is_some(),
        i.sendto.is_some(),
        i.sendmsg.is_some(),
        i.fcntl.is_some(),
        i.ioctl.is_some(),
        i.close.is_some(),
        i.shutdown.is_some(),
        i.getsockopt.is_some(),
        i.setsockopt.is_some(),
        i.poll.is_some(),
        i.netdev_send.is_some(),
        i.netdev_receive.is_some(),
        i.usleep.is_some(),
        i.gettimeofday.is_some(),
        i.epoll_create.is_some(),
        i.epoll_ctl.is_some(),
        i.epoll_wait.is_some(),
        i.pipe.is_some(),
        i.splice.is_some(),
    ];
    assert!(slots.iter().all(|&s| s), "{slots:?}");
    // The slots the shim does not implement say so.
    assert_eq!(call!(pd, epoll_create, 1), -1);
    assert_eq!(errno(), libc::ENOSYS);
    let mut fds = [0; 2];
    assert_eq!(call!(pd, pipe, fds.as_mut_ptr()), -1);
    assert_eq!(errno(), libc::ENOSYS);
}

/// Handshake, data both ways, TCP_INFO and a close, on a passive open.
#[test]
fn passive_open_exchanges_data_and_closes() {
    let pd = Pd::new("local=192.168.0.1 timestamps=0 sack=0 wscale=0");
    let local = SocketAddrV4::new(LOCAL, 8080);
    let peer = SocketAddrV4::new(REMOTE, 40000);

    let l = pd.socket(libc::SOCK_STREAM);
    assert!(l >= 0, "socket: errno {}", errno());
    assert_eq!(
        pd.setsockopt_int(l, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1),
        0
    );
    assert_eq!(pd.bind(l, local), 0);
    assert_eq!(call!(pd, listen, l, 1), 0);

    // A non-blocking accept before any connection: EAGAIN.
    assert_eq!(
        call!(pd, fcntl, l, libc::F_SETFL, libc::O_RDWR | libc::O_NONBLOCK),
        0
    );
    assert_eq!(
        call!(pd, fcntl, l, libc::F_GETFL, 0),
        libc::O_RDWR | libc::O_NONBLOCK
    );
    assert_eq!(pd.accept(l).0, -1);
    assert_eq!(errno(), libc::EAGAIN);
    assert_eq!(call!(pd, fcntl, l, libc::F_SETFL, libc::O_RDWR), 0);

    // RFC 9293 3.5: SYN, SYN-ACK, ACK.
    pd.inject(&segment(
        peer,
        local,
        1000,
        0,
        TcpFlags::SYN,
        mss(1000),
        &[],
    ));
    let synack = pd.expect(SEC);
    assert!(synack.has(flags(&[TcpFlags::SYN, TcpFlags::ACK])));
    assert_eq!((synack.src, synack.dst), (local, peer));
    assert_eq!(synack.ack(), 1001);
    let iss = synack.seq();
    pd.inject(&segment(
        peer,
        local,
        1001,
        iss + 1,
        TcpFlags::ACK,
        TcpOptions::default(),
        &[],
    ));

    let (s, from) = pd.accept(l);
    assert!(s >= 0, "accept: errno {}", errno());
    assert_eq!(from, peer);

    // TCP_INFO: Linux's layout, ESTABLISHED, the peer's MSS.
    let (rc, info) = pd.getsockopt_bytes(s, libc::IPPROTO_TCP, libc::TCP_INFO, 1024);
    assert_eq!(rc, 0);
    assert_eq!(info.len(), size_of::<libc::tcp_info>());
    let u32_at = |off: usize| u32::from_ne_bytes(info[off..off + 4].try_into().unwrap());
    assert_eq!(info[0], 1, "tcpi_state");
    assert_eq!(u32_at(16), 1000, "tcpi_snd_mss");
    assert!(u32_at(20) > 0, "tcpi_rcv_mss");
    assert!(u32_at(8) >= 200_000, "tcpi_rto");
    assert_eq!(
        pd.getsockopt_int(s, libc::IPPROTO_TCP, libc::TCP_MAXSEG),
        1000
    );

    // Us to the peer.
    assert_eq!(pd.write(s, b"hello"), 5);
    let data = pd.expect(SEC);
    assert_eq!(data.payload, b"hello");
    assert_eq!(data.seq(), iss + 1);
    pd.inject(&segment(
        peer,
        local,
        1001,
        iss + 6,
        TcpFlags::ACK,
        TcpOptions::default(),
        &[],
    ));

    // The peer to us; FIONREAD sees it before read takes it.
    let psh_ack = flags(&[TcpFlags::PSH, TcpFlags::ACK]);
    pd.inject(&segment(
        peer,
        local,
        1001,
        iss + 6,
        psh_ack,
        TcpOptions::default(),
        b"world!",
    ));
    let mut avail = 0;
    assert_eq!(call!(pd, ioctl, s, libc::FIONREAD, &mut avail), 0);
    assert_eq!(avail, 6);
    assert_eq!(pd.read(s, 100), (6, b"world!".to_vec()));

    // close: FIN (after the ACK of the data, maybe delayed), then the
    // peer's FIN+ACK, answered by our ACK (TIME-WAIT).
    assert_eq!(call!(pd, close, s), 0);
    let fin = loop {
        let seg = pd.expect(SEC);
        if seg.has(TcpFlags::FIN) {
            break seg;
        }
        assert_eq!(seg.ack(), 1007);
    };
    assert_eq!(fin.seq(), iss + 6);
    let fin_ack = flags(&[TcpFlags::FIN, TcpFlags::ACK]);
    pd.inject(&segment(
        peer,
        local,
        1007,
        iss + 7,
        fin_ack,
        TcpOptions::default(),
        &[],
    ));
    let last = pd.expect(SEC);
    assert!(last.has(TcpFlags::ACK) && !last.has(TcpFlags::FIN));
    assert_eq!(last.ack(), 1008);

    assert_eq!(call!(pd, close, l), 0);
    // The descriptor is gone: EBADF.
    assert_eq!(call!(pd, close, s), -1);
    assert_eq!(errno(), libc::EBADF);
}

/// A read blocks in one thread (packetdrill's syscall thread) until the
/// main thread injects data.
#[test]
fn blocking_read_wakes_when_data_arrives() {
    let pd = Pd::new("local=192.168.0.1 timestamps=0");
    let local = SocketAddrV4::new(LOCAL, 9000);
    let peer = SocketAddrV4::new(REMOTE, 40001);
    let l = pd.socket(libc::SOCK_STREAM);
    assert_eq!(pd.bind(l, local), 0);
    assert_eq!(call!(pd, listen, l, 5), 0);
    pd.inject(&segment(
        peer,
        local,
        5000,
        0,
        TcpFlags::SYN,
        mss(1460),
        &[],
    ));
    let synack = pd.expect(SEC);
    pd.inject(&segment(
        peer,
        local,
        5001,
        synack.seq() + 1,
        TcpFlags::ACK,
        TcpOptions::default(),
        &[],
    ));
    let (s, _) = pd.accept(l);
    assert!(s >= 0);

    std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let start = Instant::now();
            let r = pd.read(s, 10);
            (r, start.elapsed())
        });
        std::thread::sleep(Duration::from_millis(100));
        let ack = synack.seq() + 1;
        pd.inject(&segment(
            peer,
            local,
            5001,
            ack,
            TcpFlags::ACK,
            TcpOptions::default(),
            b"abc",
        ));
        let ((n, data), waited) = reader.join().unwrap();
        assert_eq!((n, data), (3, b"abc".to_vec()));
        assert!(
            waited >= Duration::from_millis(90),
            "read returned after {waited:?}"
        );
    });
}

/// Non-blocking connect (EINPROGRESS, EALREADY, poll, SO_ERROR), and the
/// stack's retransmission timer running on the script clock.
#[test]
fn nonblocking_connect_and_syn_retransmission() {
    let pd = Pd::new("local=192.168.0.1 rto_initial_ms=300");
    let peer = SocketAddrV4::new(REMOTE, 8080);
    let s = pd.socket(libc::SOCK_STREAM | libc::SOCK_NONBLOCK);
    assert!(s >= 0);
    assert_eq!(pd.connect(s, peer), -1);
    assert_eq!(errno(), libc::EINPROGRESS);
    assert_eq!(pd.connect(s, peer), -1);
    assert_eq!(errno(), libc::EALREADY);

    let syn = pd.expect(SEC);
    assert!(syn.has(TcpFlags::SYN) && !syn.has(TcpFlags::ACK));
    // Linux's default: no ECN on active opens.
    assert!(!syn.has(TcpFlags::ECE));
    // Unanswered, the SYN is sent again after the initial RTO.
    let again = pd.expect(SEC);
    assert!(again.has(TcpFlags::SYN));
    assert_eq!(again.seq(), syn.seq());
    let gap = again.time_us - syn.time_us;
    assert!(
        (280_000..1_000_000).contains(&gap),
        "SYN retransmitted after {gap} us"
    );

    let synack = flags(&[TcpFlags::SYN, TcpFlags::ACK]);
    pd.inject(&segment(
        peer,
        syn.src,
        7000,
        syn.seq() + 1,
        synack,
        mss(1460),
        &[],
    ));
    let ack = pd.expect(SEC);
    assert!(ack.has(TcpFlags::ACK));
    assert_eq!(ack.ack(), 7001);

    let mut p = [libc::pollfd {
        fd: s,
        events: libc::POLLOUT,
        revents: 0,
    }];
    assert_eq!(call!(pd, poll, p.as_mut_ptr(), 1, 1000), 1);
    assert_eq!(p[0].revents, libc::POLLOUT);
    assert_eq!(pd.getsockopt_int(s, libc::SOL_SOCKET, libc::SO_ERROR), 0);
    // Linux __inet_stream_connect: 0 once the handshake is done, then EISCONN.
    assert_eq!(pd.connect(s, peer), 0);
    assert_eq!(pd.connect(s, peer), -1);
    assert_eq!(errno(), libc::EISCONN);

    // Nothing to read yet: EAGAIN; then the peer resets: ECONNRESET once,
    // then end of stream (Linux sock_error clears sk_err).
    assert_eq!(pd.read(s, 10).0, -1);
    assert_eq!(errno(), libc::EAGAIN);
    pd.inject(&segment(
        peer,
        syn.src,
        7001,
        syn.seq() + 1,
        TcpFlags::RST,
        TcpOptions::default(),
        &[],
    ));
    assert_eq!(pd.read(s, 10).0, -1);
    assert_eq!(errno(), libc::ECONNRESET);
    assert_eq!(pd.read(s, 10).0, 0);
    assert_eq!(pd.write(s, b"x"), -1);
    assert_eq!(errno(), libc::EPIPE);
}

/// netdev_receive waits a bounded time and reports -1 when nothing came;
/// after the sniff timeout it returns an empty packet, which packetdrill
/// rejects, so a missing packet fails a script instead of hanging it.
#[test]
fn netdev_receive_times_out() {
    let pd = Pd::new("local=192.168.0.1 receive_timeout_ms=50 sniff_timeout_ms=300");
    let start = Instant::now();
    let (rc, bytes, _) = pd.sniff_once();
    let waited = start.elapsed();
    assert_eq!((rc, bytes.len()), (-1, 0));
    assert!(waited >= Duration::from_millis(45), "{waited:?}");
    assert!(waited < Duration::from_millis(1000), "{waited:?}");

    let give_up = loop {
        let (rc, bytes, _) = pd.sniff_once();
        assert!(bytes.is_empty());
        if rc == 0 {
            break start.elapsed();
        }
        assert!(start.elapsed() < Duration::from_secs(3), "never gave up");
    };
    assert!(give_up >= Duration::from_millis(290), "{give_up:?}");

    // usleep and gettimeofday are the script clock.
    let t0 = pd.now_us();
    assert_eq!(call!(pd, usleep, 20_000), 0);
    let dt = pd.now_us() - t0;
    assert!((20_000..500_000).contains(&dt), "{dt}");
}

/// Bad flags do not abort packetdrill: every call fails, and the first
/// sniff ends the script.
#[test]
fn bad_flags_fail_every_call() {
    let pd = Pd::new("local=192.168.0.1 no_such_flag=1");
    assert_eq!(pd.socket(libc::SOCK_STREAM), -1);
    assert_eq!(errno(), libc::EINVAL);
    let (rc, bytes, _) = pd.sniff_once();
    assert_eq!((rc, bytes.len()), (0, 0));
}

/// Descriptors are real: packetdrill closes leftovers with libc's close(),
/// and the shim must neither break nor close someone else's descriptor.
#[test]
fn descriptors_are_real_and_survive_a_libc_close() {
    let pd = Pd::new("local=192.168.0.1");
    let a = pd.socket(libc::SOCK_STREAM);
    assert!(a >= 0);
    let mut st = MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: a valid out pointer.
    assert_eq!(unsafe { libc::fstat(a, st.as_mut_ptr()) }, 0);
    // SAFETY: `a` is a descriptor of this process; packetdrill does this.
    assert_eq!(unsafe { libc::close(a) }, 0);
    // The number is reused by the next socket; the stale entry goes.
    let b = pd.socket(libc::SOCK_STREAM);
    assert!(b >= 0);
    assert_eq!(
        pd.getsockopt_int(b, libc::SOL_SOCKET, libc::SO_TYPE),
        libc::SOCK_STREAM
    );
    // The shim speaks TCP over IPv4 and IPv6 only.
    assert_eq!(call!(pd, socket, libc::AF_UNIX, libc::SOCK_STREAM, 0), -1);
    assert_eq!(errno(), libc::EAFNOSUPPORT);
}

fn iov(buf: &mut [u8]) -> libc::iovec {
    libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    }
}

/// The vectored and message forms, poll on a listener, and shutdown.
#[test]
fn vectored_calls_poll_and_shutdown() {
    let pd = Pd::new("local=192.168.0.1 timestamps=0 sack=0");
    let local = SocketAddrV4::new(LOCAL, 7000);
    let peer = SocketAddrV4::new(REMOTE, 40002);
    let l = pd.socket(libc::SOCK_STREAM);
    assert_eq!(pd.bind(l, local), 0);
    assert_eq!(call!(pd, listen, l, 5), 0);

    // A listener polls readable once a connection is ready to accept.
    let mut p = [libc::pollfd {
        fd: l,
        events: libc::POLLIN,
        revents: 0,
    }];
    assert_eq!(call!(pd, poll, p.as_mut_ptr(), 1, 0), 0);
    pd.inject(&segment(peer, local, 100, 0, TcpFlags::SYN, mss(1460), &[]));
    let synack = pd.expect(SEC);
    let iss = synack.seq();
    pd.inject(&segment(
        peer,
        local,
        101,
        iss + 1,
        TcpFlags::ACK,
        TcpOptions::default(),
        &[],
    ));
    assert_eq!(call!(pd, poll, p.as_mut_ptr(), 1, 1000), 1);
    assert_eq!(p[0].revents, libc::POLLIN);
    let (s, _) = pd.accept(l);
    assert!(s >= 0);

    // writev and sendmsg gather their buffers.
    let (mut a, mut b) = (*b"abc", *b"def");
    let v = [iov(&mut a), iov(&mut b)];
    assert_eq!(call!(pd, writev, s, v.as_ptr(), 2), 6);
    assert_eq!(pd.expect(SEC).payload, b"abcdef");
    // Acknowledged, so Nagle's rule does not hold back the next write.
    pd.inject(&segment(
        peer,
        local,
        101,
        iss + 7,
        TcpFlags::ACK,
        TcpOptions::default(),
        &[],
    ));
    // SAFETY: all-zero is a valid msghdr (NULL pointers, zero lengths).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    let (mut c, mut d) = (*b"gh", *b"ij");
    let v = [iov(&mut c), iov(&mut d)];
    msg.msg_iov = v.as_ptr().cast_mut();
    msg.msg_iovlen = 2;
    assert_eq!(call!(pd, sendmsg, s, &msg, 0), 4);
    let seg = pd.expect(SEC);
    assert_eq!(seg.payload, b"ghij");
    let mut outq = 0;
    assert_eq!(call!(pd, ioctl, s, libc::TIOCOUTQ, &mut outq), 0);
    assert_eq!(outq, 4, "unacknowledged bytes");
    pd.inject(&segment(
        peer,
        local,
        101,
        iss + 11,
        TcpFlags::ACK,
        TcpOptions::default(),
        &[],
    ));

    // recvmsg, readv and recvfrom scatter what arrived.
    let psh_ack = flags(&[TcpFlags::PSH, TcpFlags::ACK]);
    pd.inject(&segment(
        peer,
        local,
        101,
        iss + 11,
        psh_ack,
        TcpOptions::default(),
        b"0123456789",
    ));
    let (mut x, mut y) = ([0u8; 3], [0u8; 2]);
    let v = [iov(&mut x), iov(&mut y)];
    // SAFETY: all-zero is a valid msghdr (NULL pointers, zero lengths).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = v.as_ptr().cast_mut();
    msg.msg_iovlen = 2;
    assert_eq!(call!(pd, recvmsg, s, &mut msg, libc::MSG_PEEK), 5);
    assert_eq!(call!(pd, recvmsg, s, &mut msg, 0), 5);
    assert_eq!((&x, &y), (b"012", b"34"));
    let (mut x, mut y) = ([0u8; 1], [0u8; 2]);
    let v = [iov(&mut x), iov(&mut y)];
    assert_eq!(call!(pd, readv, s, v.as_ptr(), 2), 3);
    assert_eq!((&x, &y), (b"5", b"67"));
    let mut buf = [0u8; 8];
    let mut from = MaybeUninit::<libc::sockaddr_in>::zeroed();
    let mut len = size_of::<libc::sockaddr_in>() as libc::socklen_t;
    let n = call!(
        pd,
        recvfrom,
        s,
        buf.as_mut_ptr().cast(),
        8,
        0,
        from.as_mut_ptr().cast(),
        &mut len
    );
    assert_eq!((n, &buf[..2], len), (2, &b"89"[..], 0));
    let n = call!(pd, recv, s, buf.as_mut_ptr().cast(), 8, libc::MSG_DONTWAIT);
    assert_eq!((n, errno()), (-1, libc::EAGAIN));

    // shutdown(SHUT_WR): FIN after the data; writes fail with EPIPE.
    assert_eq!(call!(pd, shutdown, s, libc::SHUT_WR), 0);
    let fin = loop {
        let seg = pd.expect(SEC);
        if seg.has(TcpFlags::FIN) {
            break seg;
        }
    };
    assert_eq!(fin.seq(), iss + 11);
    assert_eq!(pd.write(s, b"x"), -1);
    assert_eq!(errno(), libc::EPIPE);
    assert_eq!(call!(pd, shutdown, s, 7), -1);
    assert_eq!(errno(), libc::EINVAL);
}

// ---------------------------------------------------------------------
// IPv6 and IPv4-mapped IPv6 (packetdrill's --ip_version=ipv6 and
// --ip_version=ipv4-mapped-ipv6).
// ---------------------------------------------------------------------

const LOCAL6: Ipv6Addr = Ipv6Addr::new(0xfd3d, 0xfa7b, 0xd17d, 0, 0, 0, 0, 1);
const REMOTE6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const DUAL: &str = "local=192.168.0.1 local=fd3d:fa7b:d17d::1 timestamps=0 sack=0 wscale=0";

fn v6(ip: Ipv6Addr, port: u16) -> SocketAddr {
    SocketAddr::V6(SocketAddrV6::new(ip, port, 0, 0))
}

fn mapped(a: SocketAddrV4) -> SocketAddr {
    v6(a.ip().to_ipv6_mapped(), a.port())
}

/// The bytes of a `sockaddr_in` or `sockaddr_in6`, built with libc's
/// structs so that the layout is the C one.
fn sockaddr_bytes(a: SocketAddr) -> Vec<u8> {
    fn raw<T>(v: &T) -> Vec<u8> {
        // SAFETY: a plain C struct, read as its bytes.
        unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
    }
    match a {
        SocketAddr::V4(a) => raw(&sockaddr(a)),
        SocketAddr::V6(a) => {
            // SAFETY: all-zero is a valid sockaddr_in6.
            let mut sin6: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            raw(&sin6)
        }
    }
}

/// A `sockaddr_storage` as an address-returning call filled it.
fn from_storage(ss: &libc::sockaddr_storage, len: libc::socklen_t) -> SocketAddr {
    match i32::from(ss.ss_family) {
        libc::AF_INET => {
            assert_eq!(len as usize, size_of::<libc::sockaddr_in>());
            // SAFETY: the family says it is a sockaddr_in.
            let sin =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            SocketAddr::new(
                IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr))),
                u16::from_be(sin.sin_port),
            )
        }
        libc::AF_INET6 => {
            assert_eq!(len as usize, size_of::<libc::sockaddr_in6>());
            // SAFETY: the family says it is a sockaddr_in6.
            let sin6 =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            v6(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
            )
        }
        f => panic!("family {f}"),
    }
}

impl Pd {
    fn socket6(&self) -> i32 {
        let fd = call!(self, socket, libc::AF_INET6, libc::SOCK_STREAM, 0);
        assert!(fd >= 0, "socket(AF_INET6): errno {}", errno());
        fd
    }

    /// bind() with the address as `bytes` (any length).
    fn bind_raw(&self, fd: i32, bytes: &[u8]) -> i32 {
        call!(self, bind, fd, bytes.as_ptr().cast(), bytes.len() as u32)
    }

    fn connect_raw(&self, fd: i32, bytes: &[u8]) -> i32 {
        call!(self, connect, fd, bytes.as_ptr().cast(), bytes.len() as u32)
    }

    /// accept() into a `sockaddr_storage`: (fd, address, length written).
    fn accept_any(&self, fd: i32) -> (i32, SocketAddr) {
        // SAFETY: all-zero is a valid sockaddr_storage.
        let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let rc = call!(
            self,
            accept,
            fd,
            (&mut ss as *mut libc::sockaddr_storage).cast(),
            &mut len
        );
        assert!(rc >= 0, "accept: errno {}", errno());
        (rc, from_storage(&ss, len))
    }

    /// The next outbound segment of either family.
    #[track_caller]
    fn expect_any(&self, within: Duration) -> AnySeg {
        let end = Instant::now() + within;
        loop {
            let (rc, bytes, _) = self.sniff_once();
            if rc == 0 && !bytes.is_empty() {
                return AnySeg::parse(&bytes);
            }
            assert!(Instant::now() < end, "no packet within {within:?}");
        }
    }
}

/// An outbound segment of either family (the IP version as sent).
#[derive(Debug)]
struct AnySeg {
    src: SocketAddr,
    dst: SocketAddr,
    tcp: TcpRepr,
    payload: Vec<u8>,
}

impl AnySeg {
    #[track_caller]
    fn parse(bytes: &[u8]) -> AnySeg {
        let (src, dst, off) = match bytes[0] >> 4 {
            4 => {
                let ip = Ipv4Repr::parse(&Ipv4Packet::new_checked(bytes).unwrap()).unwrap();
                assert_eq!(ip.protocol, IpProtocol::Tcp);
                (IpAddr::V4(ip.src), IpAddr::V4(ip.dst), 20)
            }
            6 => {
                let (ip, off) = Ipv6Repr::parse(&Ipv6Packet::new_checked(bytes).unwrap()).unwrap();
                assert_eq!(ip.next_header, IpProtocol::Tcp);
                assert_eq!(bytes.len(), off + ip.payload_len, "IPv6 payload length");
                (IpAddr::V6(ip.src), IpAddr::V6(ip.dst), off)
            }
            v => panic!("IP version {v}"),
        };
        let (tcp, payload) = TcpRepr::parse(&bytes[off..], src, dst, true).unwrap();
        AnySeg {
            src: SocketAddr::new(src, tcp.src_port),
            dst: SocketAddr::new(dst, tcp.dst_port),
            tcp,
            payload: payload.to_vec(),
        }
    }
    fn has(&self, f: TcpFlags) -> bool {
        self.tcp.flags.contains(f)
    }
}

/// A TCP datagram from the peer, IPv4 or IPv6 (RFC 8200 3: fixed header,
/// no extension headers) by the addresses' family.
fn segment_any(
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: u32,
    flags: TcpFlags,
    payload: &[u8],
) -> Vec<u8> {
    let options = if flags.contains(TcpFlags::SYN) {
        mss(1000)
    } else {
        TcpOptions::default()
    };
    let (SocketAddr::V6(s6), SocketAddr::V6(d6)) = (src, dst) else {
        let (SocketAddr::V4(s4), SocketAddr::V4(d4)) = (src, dst) else {
            panic!("mixed families");
        };
        return segment(s4, d4, seq, ack, flags, options, payload);
    };
    let tcp = peer_tcp(src.port(), dst.port(), seq, ack, flags, options);
    let tcp_len = tcp.segment_len(payload.len());
    let ip = Ipv6Repr {
        src: *s6.ip(),
        dst: *d6.ip(),
        next_header: IpProtocol::Tcp,
        payload_len: tcp_len,
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0,
    };
    let h = Ipv6Repr::HEADER_LEN;
    let mut buf = vec![0u8; h + tcp_len];
    ip.emit(&mut buf);
    tcp.emit(&mut buf[h..]);
    buf[h + tcp.header_len()..].copy_from_slice(payload);
    fill_checksum(&mut buf[h..], *s6.ip(), *d6.ip());
    buf
}

/// A passive open on listener `l`, data both ways and a close the peer
/// answers, with `local`/`peer` the wire addresses; returns the address
/// accept() reported.
fn serve_one(pd: &Pd, l: i32, local: SocketAddr, peer: SocketAddr) -> SocketAddr {
    pd.inject(&segment_any(peer, local, 1000, 0, TcpFlags::SYN, &[]));
    let synack = pd.expect_any(SEC);
    assert!(synack.has(flags(&[TcpFlags::SYN, TcpFlags::ACK])));
    assert_eq!((synack.src, synack.dst), (local, peer));
    assert_eq!(synack.tcp.ack.0, 1001);
    assert!(synack.tcp.options.mss.is_some());
    let iss = synack.tcp.seq.0;
    pd.inject(&segment_any(peer, local, 1001, iss + 1, TcpFlags::ACK, &[]));
    let (s, from) = pd.accept_any(l);

    assert_eq!(pd.write(s, b"hello"), 5);
    let data = pd.expect_any(SEC);
    assert_eq!((data.src, data.dst), (local, peer));
    assert_eq!(
        (data.payload.as_slice(), data.tcp.seq.0),
        (&b"hello"[..], iss + 1)
    );
    pd.inject(&segment_any(peer, local, 1001, iss + 6, TcpFlags::ACK, &[]));

    let psh_ack = flags(&[TcpFlags::PSH, TcpFlags::ACK]);
    pd.inject(&segment_any(peer, local, 1001, iss + 6, psh_ack, b"world!"));
    assert_eq!(pd.read(s, 100), (6, b"world!".to_vec()));

    assert_eq!(call!(pd, close, s), 0);
    let fin = loop {
        let seg = pd.expect_any(SEC);
        assert_eq!((seg.src, seg.dst), (local, peer));
        if seg.has(TcpFlags::FIN) {
            break seg;
        }
        assert_eq!(seg.tcp.ack.0, 1007);
    };
    assert_eq!(fin.tcp.seq.0, iss + 6);
    let fin_ack = flags(&[TcpFlags::FIN, TcpFlags::ACK]);
    pd.inject(&segment_any(peer, local, 1007, iss + 7, fin_ack, &[]));
    let last = pd.expect_any(SEC);
    assert!(last.has(TcpFlags::ACK) && !last.has(TcpFlags::FIN));
    assert_eq!((last.src, last.tcp.ack.0), (local, 1008));
    from
}

/// --ip_version=ipv6: an AF_INET6 socket, sockaddr_in6 through bind and
/// accept, IPv6 packets (RFC 8200) both ways, data both ways and a close.
#[test]
fn ipv6_passive_open_exchanges_data_and_closes() {
    let pd = Pd::new(DUAL);
    let local = v6(LOCAL6, 8080);
    let peer = v6(REMOTE6, 40000);
    let l = pd.socket6();
    assert_eq!(
        pd.getsockopt_int(l, libc::SOL_SOCKET, libc::SO_DOMAIN),
        libc::AF_INET6
    );
    assert_eq!(
        pd.getsockopt_int(l, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY),
        0,
        "Linux's default, bindv6only=0"
    );
    assert_eq!(
        pd.bind_raw(l, &sockaddr_bytes(local)),
        0,
        "errno {}",
        errno()
    );
    assert_eq!(call!(pd, listen, l, 1), 0);
    let from = serve_one(&pd, l, local, peer);
    assert_eq!(from, peer);
    assert_eq!(call!(pd, close, l), 0);
}

/// accept() truncates a sockaddr_in6 to the caller's length and reports
/// the full one (move_addr_to_user), for an IPv6 peer.
#[test]
fn ipv6_accept_truncates_the_address_to_the_given_length() {
    let pd = Pd::new(DUAL);
    let local = v6(LOCAL6, 8090);
    let peer = v6(REMOTE6, 40090);
    let l = pd.socket6();
    assert_eq!(pd.bind_raw(l, &sockaddr_bytes(local)), 0);
    assert_eq!(call!(pd, listen, l, 1), 0);
    pd.inject(&segment_any(peer, local, 7, 0, TcpFlags::SYN, &[]));
    let iss = pd.expect_any(SEC).tcp.seq.0;
    pd.inject(&segment_any(peer, local, 8, iss + 1, TcpFlags::ACK, &[]));
    let mut buf = [0xaau8; 28];
    let mut len: libc::socklen_t = 8;
    let s = call!(pd, accept, l, buf.as_mut_ptr().cast(), &mut len);
    assert!(s >= 0, "accept: errno {}", errno());
    assert_eq!(len as usize, size_of::<libc::sockaddr_in6>());
    let full = sockaddr_bytes(peer);
    assert_eq!(&buf[..8], &full[..8]);
    assert!(buf[8..].iter().all(|&b| b == 0xaa), "wrote past the length");
}

/// --ip_version=ipv4-mapped-ipv6: an AF_INET6 socket bound to an
/// IPv4-mapped address (RFC 4291 2.5.5.2) talks IPv4 on the wire, and
/// accept() reports the peer as ::ffff:a.b.c.d. Then the same through a
/// dual-stack `[::]` listener.
#[test]
fn ipv4_mapped_listener_takes_ipv4_and_reports_mapped_peers() {
    let pd = Pd::new(DUAL);
    let local = SocketAddrV4::new(LOCAL, 8081);
    let peer = SocketAddrV4::new(REMOTE, 40010);
    let l = pd.socket6();
    assert_eq!(
        pd.bind_raw(l, &sockaddr_bytes(mapped(local))),
        0,
        "errno {}",
        errno()
    );
    assert_eq!(call!(pd, listen, l, 1), 0);
    let from = serve_one(&pd, l, local.into(), peer.into());
    assert_eq!(from, mapped(peer));
    assert_eq!(from.to_string(), "[::ffff:192.0.2.1]:40010");
    assert_eq!(call!(pd, close, l), 0);

    // `[::]:8082` takes IPv4 (reported mapped) and IPv6 alike.
    let l = pd.socket6();
    assert_eq!(
        pd.bind_raw(l, &sockaddr_bytes(v6(Ipv6Addr::UNSPECIFIED, 8082))),
        0
    );
    assert_eq!(call!(pd, listen, l, 2), 0);
    let peer4 = SocketAddrV4::new(REMOTE, 40011);
    let from = serve_one(&pd, l, SocketAddrV4::new(LOCAL, 8082).into(), peer4.into());
    assert_eq!(from, mapped(peer4));
    let from = serve_one(&pd, l, v6(LOCAL6, 8082), v6(REMOTE6, 40012));
    assert_eq!(from, v6(REMOTE6, 40012));
}

/// Active opens from an AF_INET6 socket: to an IPv6 peer the SYN is IPv6
/// from our IPv6 address; to an IPv4-mapped one it is IPv4.
#[test]
fn ipv6_socket_connects_over_ipv6_and_ipv4_mapped() {
    let pd = Pd::new(DUAL);
    for (remote, wire_src, wire_dst) in [
        (v6(REMOTE6, 8080), IpAddr::V6(LOCAL6), IpAddr::V6(REMOTE6)),
        (
            mapped(SocketAddrV4::new(REMOTE, 8080)),
            IpAddr::V4(LOCAL),
            IpAddr::V4(REMOTE),
        ),
    ] {
        let fd = call!(
            pd,
            socket,
            libc::AF_INET6,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK,
            0
        );
        assert!(fd >= 0);
        assert_eq!(pd.connect_raw(fd, &sockaddr_bytes(remote)), -1);
        assert_eq!(errno(), libc::EINPROGRESS);
        let syn = pd.expect_any(SEC);
        assert!(syn.has(TcpFlags::SYN) && !syn.has(TcpFlags::ACK));
        assert_eq!(
            (syn.src.ip(), syn.dst),
            (wire_src, SocketAddr::new(wire_dst, 8080))
        );
        let synack = flags(&[TcpFlags::SYN, TcpFlags::ACK]);
        pd.inject(&segment_any(
            syn.dst,
            syn.src,
            500,
            syn.tcp.seq.0 + 1,
            synack,
            &[],
        ));
        let ack = pd.expect_any(SEC);
        assert!(ack.has(TcpFlags::ACK) && !ack.has(TcpFlags::SYN));
        assert_eq!(ack.tcp.ack.0, 501);
        assert_eq!(pd.connect_raw(fd, &sockaddr_bytes(remote)), 0);
        assert_eq!(pd.connect_raw(fd, &sockaddr_bytes(remote)), -1);
        assert_eq!(errno(), libc::EISCONN);
        assert_eq!(call!(pd, close, fd), 0);
        let fin = pd.expect_any(SEC);
        assert!(fin.has(TcpFlags::FIN));
        assert_eq!((fin.src, fin.dst), (syn.src, syn.dst));
    }
}

/// Linux's rules where the families meet: lengths, families, IPV6_V6ONLY.
#[test]
fn address_families_and_ipv6_v6only_follow_linux() {
    let pd = Pd::new(DUAL);
    let sin = sockaddr_bytes(SocketAddrV4::new(LOCAL, 9100).into());
    let sin6 = sockaddr_bytes(v6(LOCAL6, 9100));

    // An AF_INET socket: a sockaddr_in6 is EAFNOSUPPORT (inet_bind,
    // tcp_v4_connect); a short address EINVAL; no IPv6 options.
    let s4 = pd.socket(libc::SOCK_STREAM);
    assert_eq!(
        pd.getsockopt_int(s4, libc::SOL_SOCKET, libc::SO_DOMAIN),
        libc::AF_INET
    );
    assert_eq!(pd.bind_raw(s4, &sin6), -1);
    assert_eq!(errno(), libc::EAFNOSUPPORT);
    assert_eq!(pd.connect_raw(s4, &sockaddr_bytes(v6(REMOTE6, 80))), -1);
    assert_eq!(errno(), libc::EAFNOSUPPORT);
    assert_eq!(pd.bind_raw(s4, &sin[..15]), -1);
    assert_eq!(errno(), libc::EINVAL);
    assert_eq!(
        pd.setsockopt_int(s4, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1),
        -1
    );
    assert_eq!(errno(), libc::ENOPROTOOPT);
    let (rc, _) = pd.getsockopt_bytes(s4, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 4);
    assert_eq!((rc, errno()), (-1, libc::ENOPROTOOPT));

    // An AF_INET6 socket: a sockaddr_in is too short (EINVAL); padded to
    // the length, of the wrong family (EAFNOSUPPORT) (inet6_bind).
    let s6 = pd.socket6();
    assert_eq!(pd.bind_raw(s6, &sin), -1);
    assert_eq!(errno(), libc::EINVAL);
    let mut padded = sin.clone();
    padded.resize(28, 0);
    assert_eq!(pd.bind_raw(s6, &padded), -1);
    assert_eq!(errno(), libc::EAFNOSUPPORT);
    // Not one of ours: EADDRNOTAVAIL.
    assert_eq!(pd.bind_raw(s6, &sockaddr_bytes(v6(REMOTE6, 9100))), -1);
    assert_eq!(errno(), libc::EADDRNOTAVAIL);

    // IPV6_V6ONLY: an IPv4-mapped bind is EINVAL, a mapped connect
    // ENETUNREACH (tcp_v6_connect); it cannot change once bound.
    assert_eq!(
        pd.setsockopt_int(s6, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1),
        0
    );
    assert_eq!(
        pd.getsockopt_int(s6, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY),
        1
    );
    let m = sockaddr_bytes(mapped(SocketAddrV4::new(LOCAL, 9100)));
    assert_eq!(pd.bind_raw(s6, &m), -1);
    assert_eq!(errno(), libc::EINVAL);
    assert_eq!(
        pd.connect_raw(s6, &sockaddr_bytes(mapped(SocketAddrV4::new(REMOTE, 80)))),
        -1
    );
    assert_eq!(errno(), libc::ENETUNREACH);
    assert_eq!(
        pd.bind_raw(s6, &sockaddr_bytes(v6(Ipv6Addr::UNSPECIFIED, 9100))),
        0
    );
    assert_eq!(
        pd.setsockopt_int(s6, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 0),
        -1
    );
    assert_eq!(errno(), libc::EINVAL);

    // A V6ONLY `[::]:9100` does not cover IPv4: an AF_INET bind of the
    // port is free, and the listener leaves IPv4 SYNs to it.
    assert_eq!(pd.bind_raw(s4, &sin), 0, "errno {}", errno());
    // A dual-stack `[::]:9100` would overlap both.
    let s6b = pd.socket6();
    assert_eq!(
        pd.bind_raw(s6b, &sockaddr_bytes(v6(Ipv6Addr::UNSPECIFIED, 9100))),
        -1
    );
    assert_eq!(errno(), libc::EADDRINUSE);
    assert_eq!(call!(pd, listen, s6, 1), 0);
    let peer = SocketAddrV4::new(REMOTE, 40100);
    pd.inject(&segment_any(
        peer.into(),
        SocketAddrV4::new(LOCAL, 9100).into(),
        1,
        0,
        TcpFlags::SYN,
        &[],
    ));
    let rst = pd.expect_any(SEC);
    assert!(rst.has(TcpFlags::RST), "{rst:?}");
    assert_eq!(rst.dst, SocketAddr::from(peer));
}
