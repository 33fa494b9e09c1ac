//! The examples as programs, run with their command-line flags: `echo` and
//! `http` on a TUN device over IPv6 and dual stack, reached from the
//! kernel over both families; `client` connecting to a kernel server over
//! IPv6; the in-memory demos with IPv6 addresses.
//!
//! The binaries are the ones `cargo test` builds beside this test
//! (`target/<profile>/examples/`); run through `cargo test --workspace`
//! (or with `--examples`) so they are current. Missing binaries skip
//! visibly, and fail under CI=true.

mod common;
// Only its GREETING is used here.
#[allow(dead_code)]
#[path = "../examples/common/router.rs"]
mod router;

use common::example::{args, Example};
use common::{claim_subnet, kernel_echo_server, next_n, pattern, test_addrs, within};
use std::net::{Ipv6Addr, SocketAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

/// A TUN name and a claimed subnet number for one example run.
fn tun_and_subnet() -> (String, u8, std::os::unix::net::UnixListener) {
    let n = next_n();
    let (octet, claim) = claim_subnet(n);
    let name = format!("ue{}x{n}", std::process::id());
    assert!(name.len() < 16, "TUN name too long: {name}");
    (name, octet, claim)
}

/// From the kernel: connects to `addr`, sends `msg`, half-closes, reads the
/// echo to EOF.
async fn kernel_echo_roundtrip(addr: SocketAddr, msg: &[u8]) -> Vec<u8> {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("kernel connect to {addr}: {e}"));
    s.write_all(msg).await.unwrap();
    s.shutdown().await.unwrap();
    let mut back = Vec::new();
    s.read_to_end(&mut back).await.unwrap();
    back
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_example_over_ipv6() {
    if common::no_tun() {
        return;
    }
    let (tun, octet, _claim) = tun_and_subnet();
    let (_, kernel6) = test_addrs(octet, 1);
    let (_, ours6) = test_addrs(octet, 2);
    let (ours6_s, kernel6_s) = (ours6.to_string(), kernel6.to_string());
    let a = args(&[
        "--tun", &tun, "--addr", &ours6_s, "--peer", &kernel6_s, "--prefix", "64", "--port", "7",
        "--mode", "echo",
    ]);
    let Some(mut ex) = Example::spawn("echo", &a) else {
        return;
    };
    let line = ex.wait_for("listening").await;
    assert!(line.contains(&format!("[{ours6}]:7")), "{line}");
    let addr = SocketAddr::new(ours6.into(), 7);
    let msg = b"echo example over IPv6\n".repeat(1000);
    let back = within(30, "echo over IPv6", kernel_echo_roundtrip(addr, &msg)).await;
    assert!(
        back == msg,
        "echo differs ({} of {} B)",
        back.len(),
        msg.len()
    );
    ex.wait_for("done, received").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_example_dual_stack() {
    if common::no_tun() {
        return;
    }
    let (tun, octet, _claim) = tun_and_subnet();
    let (kernel, kernel6) = test_addrs(octet, 1);
    let (ours, ours6) = test_addrs(octet, 2);
    let (ours_s, kernel_s, ours6_s, kernel6_s) = (
        ours.to_string(),
        kernel.to_string(),
        ours6.to_string(),
        kernel6.to_string(),
    );
    let a = args(&[
        "--tun",
        &tun,
        "--addr",
        &ours_s,
        "--peer",
        &kernel_s,
        "--prefix",
        "24",
        "--addr6",
        &ours6_s,
        "--peer6",
        &kernel6_s,
        "--prefix6",
        "64",
        "--port",
        "7",
        "--mode",
        "echo",
    ]);
    let Some(mut ex) = Example::spawn("echo", &a) else {
        return;
    };
    let line = ex.wait_for("listening").await;
    assert!(
        line.contains("[::]:7"),
        "dual stack listens on [::]: {line}"
    );
    for addr in [
        SocketAddr::new(ours.into(), 7),
        SocketAddr::new(ours6.into(), 7),
    ] {
        let msg = format!("dual-stack echo to {addr}\n")
            .repeat(500)
            .into_bytes();
        let back = within(30, "dual-stack echo", kernel_echo_roundtrip(addr, &msg)).await;
        assert!(back == msg, "{addr}: echo differs");
    }
    // The example saw the IPv4 client as IPv4-mapped, the IPv6 one as is.
    ex.wait_for(&format!("[::ffff:{kernel}]:")).await;
    ex.wait_for(&format!("[{kernel6}]:")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_example_over_ipv6_with_curl() {
    if common::no_tun() {
        return;
    }
    let (tun, octet, _claim) = tun_and_subnet();
    let (_, kernel6) = test_addrs(octet, 1);
    let (_, ours6) = test_addrs(octet, 2);
    let (ours6_s, kernel6_s) = (ours6.to_string(), kernel6.to_string());
    let a = args(&[
        "--tun", &tun, "--addr", &ours6_s, "--peer", &kernel6_s, "--prefix", "64", "--port", "8080",
    ]);
    let Some(mut ex) = Example::spawn("http", &a) else {
        return;
    };
    ex.wait_for("listening").await;
    let url = format!("http://[{ours6}]:8080/");
    let out = within(
        30,
        "curl",
        Command::new("curl")
            .args(["-g", "-sS", "--max-time", "20", &url])
            .kill_on_drop(true)
            .output(),
    )
    .await;
    let out = match out {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            common::skip("curl is not installed");
            return;
        }
        Err(e) => panic!("running curl: {e}"),
    };
    assert!(
        out.status.success(),
        "curl {url}: {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, router::GREETING.as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_example_over_ipv6() {
    if common::no_tun() {
        return;
    }
    let (tun, octet, _claim) = tun_and_subnet();
    let (_, kernel6) = test_addrs(octet, 1);
    let (_, ours6) = test_addrs(octet, 2);
    // The example makes the TUN (and so kernel6) itself: the kernel server
    // listens on every address, on a port of its choice.
    let listener = common::kernel_listener(SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 0));
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(kernel_echo_server(listener));
    let connect = SocketAddr::new(kernel6.into(), port).to_string();
    let (ours6_s, kernel6_s) = (ours6.to_string(), kernel6.to_string());
    let len = 300_000u64;
    let len_s = len.to_string();
    let a = args(&[
        "--tun",
        &tun,
        "--addr",
        &ours6_s,
        "--peer",
        &kernel6_s,
        "--prefix",
        "64",
        "--connect",
        &connect,
        "--send",
        &len_s,
    ]);
    let Some(ex) = Example::spawn("client", &a) else {
        return;
    };
    let (status, out) = ex.finish().await;
    assert!(status.success(), "client: {status}; printed:\n{out}");
    let sum = pattern::stream_checksum(len);
    let want =
        format!("sent {len} bytes (fnv64 {sum:016x}), received {len} bytes (fnv64 {sum:016x})");
    assert!(out.contains(&want), "expected {want:?}; printed:\n{out}");
    server.abort();
}

/// The in-memory demos (no TUN needed) with IPv6 and dual-stack flags, and
/// with today's IPv4 defaults.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_demos_with_ipv6_addresses() {
    let runs: [(&str, &[&str], &str); 7] = [
        ("echo", &["--mode", "echo"], "demo finished"),
        (
            "echo",
            &["--addr", "fd00:7::2", "--mode", "echo"],
            "demo finished",
        ),
        (
            "echo",
            &["--addr6", "fd00:7::2", "--mode", "source:100000"],
            "demo finished",
        ),
        (
            "http",
            &["--addr", "fd00:7::2", "--prefix", "64"],
            "demo finished",
        ),
        ("http", &["--addr6", "fd00:7::2"], "demo finished"),
        (
            "client",
            &[
                "--addr",
                "fd00:7::2",
                "--connect",
                "[fd00:7::1]:9000",
                "--send",
                "200000",
            ],
            "demo finished: echo matched",
        ),
        (
            "client",
            &[
                "--addr6",
                "fd00:7::2",
                "--connect",
                "[fd00:7::1]:9000",
                "--send",
                "200000",
            ],
            "demo finished: echo matched",
        ),
    ];
    for (name, flags, needle) in runs {
        let mut a = args(&["--memory"]);
        a.extend(args(flags));
        let Some(ex) = Example::spawn(name, &a) else {
            return;
        };
        let (status, out) = ex.finish().await;
        assert!(status.success(), "{name} {a:?}: {status}; printed:\n{out}");
        assert!(
            out.contains(needle),
            "{name} {a:?}: no {needle:?}; printed:\n{out}"
        );
        if flags.contains(&"fd00:7::2") {
            assert!(
                out.contains("fd00:7::"),
                "{name} {a:?}: not over IPv6:\n{out}"
            );
        }
    }
}

/// Bad IPv6 flag combinations are refused with exit status 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_example_refuses_bad_family_flags() {
    let bad: [&[&str]; 4] = [
        &["--addr", "fd00:7::2", "--prefix", "129"],
        &["--addr", "10.7.0.2", "--prefix", "33"],
        &["--addr", "10.7.0.2", "--peer", "fd00:7::1"],
        &["--addr", "fd00:7::2", "--addr6", "fd00:8::2"],
    ];
    for flags in bad {
        let mut a = args(&["--memory"]);
        a.extend(args(flags));
        let Some(ex) = Example::spawn("echo", &a) else {
            return;
        };
        let (status, out) = ex.finish().await;
        assert_eq!(status.code(), Some(2), "echo {a:?}; printed:\n{out}");
    }
}
