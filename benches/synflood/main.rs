//! SYN flood: our stack and Linux under the same spoofed-SYN flood, in one
//! run, with legitimate clients connecting through it.
//!
//! `sudo CARGO_TARGET_DIR=target-bench cargo bench --bench synflood`
//! (root: network namespaces, veth, TUN, a raw socket).
//!
//! - ours: the `echo` example (built by this benchmark with `cargo build
//!   --release --example echo`, or `UBN_ECHO_BIN`) as its own process in a
//!   fresh namespace with no route out, on a TUN device; the flood enters
//!   through the TUN from the kernel side, in the same namespace. The TUN
//!   holds up to 500 packets for the stack (`UBN_TUN_QLEN` changes that)
//!   and drops the rest.
//! - linux: a Tokio echo server on kernel sockets, `tcp_syncookies=1`, over
//!   a veth pair between two namespaces, flooded the same way. A default
//!   veth delivers in the sender's softirq: the kernel handles each SYN
//!   inside the attacker's `sendmmsg`, so the attacker pays for the
//!   server's work and can never send faster than it is served.
//! - linux-napi: the same with GRO and threaded NAPI on the server's veth
//!   end: a 256-packet ring drained by a kernel thread, as a NIC's receive
//!   ring is, which overflows when the attacker is faster (as our TUN's
//!   queue does).
//!
//! For each: the server answers a warm-up connect; sequential
//! connect/1-byte echo/close for `UBN_BASE_SECS` gives the connection rate;
//! a 1-byte request/response connection runs for `UBN_BASE_SECS`; then the
//! flood runs `UBN_FLOOD_SECS` (at most `UBN_FLOOD_MAX` SYNs, at
//! `UBN_FLOOD_PPS` or as fast as the raw socket goes) while the same
//! request/response connection keeps going, `UBN_LEGIT_PER_SEC` fresh
//! connections a second try connect + 1-byte echo within 1 s, and the
//! server's memory is sampled every 50 ms; right after it, sequential
//! connects for `UBN_RECOVER_SECS` show when the rate is back.
//!
//! Two passes: the first floods at full rate (or `UBN_FLOOD_PPS`); the
//! second offers every server the rate the slowest took in the first
//! (`UBN_MATCHED_PPS` sets it; 0 skips the pass).
//!
//! Every namespace is named `ubn<pid>f*` and deleted at the end (stale ones
//! of a killed run at the start); the echo process dies with this one.
//! Prints a table; writes `target/bench-synflood.json` (or `UBN_JSON`).
//! `UBN_ONLY=ours,linux,linux-napi` (the default) chooses the servers.

mod flood;
mod load;
#[allow(dead_code)]
#[path = "../compare/sys.rs"]
mod sys;
mod targets;

use load::Attempt;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use sys::Netns;
use targets::Target;

/// The targets the issue sets.
const LEGIT_LIMIT: Duration = Duration::from_secs(1);
const RR_RATIO_TARGET: f64 = 0.5;
const MEM_TARGET: u64 = 32 << 20;
const RECOVERY_TARGET_S: f64 = 1.0;
/// "Full rate" after the flood: this share of the rate before it, in a
/// 100 ms window.
const FULL_RATE: f64 = 0.8;
const WINDOW: Duration = Duration::from_millis(100);

#[derive(Clone, Copy)]
struct Params {
    flood: Duration,
    flood_max: u64,
    flood_pps: u64,
    legit_per_sec: f64,
    base: Duration,
    recover: Duration,
}

type Metrics = BTreeMap<String, f64>;

/// One target's results.
struct Outcome {
    key: &'static str,
    label: &'static str,
    memory_label: &'static str,
    m: Metrics,
    notes: Vec<String>,
}

fn spawn_in<T: Send + 'static>(
    ns: &Arc<Netns>,
    name: &str,
    cpu: Option<usize>,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<JoinHandle<io::Result<T>>> {
    let ns = ns.clone();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            ns.enter()?;
            if let Some(c) = cpu {
                sys::pin(0, c)?;
            }
            f()
        })
}

fn join<T>(h: JoinHandle<io::Result<T>>, what: &str) -> Result<T, String> {
    match h.join() {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: thread panicked")),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// p50, p99 and max of `v` into `m` under `prefix`.
fn dist(m: &mut Metrics, prefix: &str, mut v: Vec<Duration>) {
    for (q, name) in [(0.5, "p50"), (0.99, "p99"), (1.0, "max")] {
        if let Some(d) = load::quantile(&mut v, q) {
            m.insert(format!("{prefix}_{name}_ms"), ms(d));
        }
    }
}

/// Successful attempts per second over `dur`.
fn rate(v: &[Attempt], dur: Duration) -> f64 {
    v.iter().filter(|a| a.ok()).count() as f64 / dur.as_secs_f64()
}

/// The first few distinct errors of `v`, counted.
fn errors(v: &[Attempt]) -> String {
    let mut by: BTreeMap<&str, usize> = BTreeMap::new();
    for e in v.iter().filter_map(|a| a.error.as_deref()) {
        *by.entry(e).or_default() += 1;
    }
    by.iter()
        .take(4)
        .map(|(e, n)| format!("{n} x {e}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn measure(t: &Target, p: &Params, m: &mut Metrics, notes: &mut Vec<String>) -> Result<(), String> {
    let addr = t.server;
    let ns = &t.client_ns;
    let r = spawn_in(ns, "ready", None, move || {
        load::wait_ready(addr, Duration::from_secs(15))
    })
    .map_err(|e| e.to_string())?;
    join(r, "server start")?;
    if let Some(tun) = &t.tun {
        // UBN_TUN_QLEN: try a longer (or shorter) TUN queue than the
        // kernel's default of 500.
        if let Ok(q) = std::env::var("UBN_TUN_QLEN") {
            sys::run(
                "ip",
                &["-n", &ns.name, "link", "set", "dev", tun, "txqueuelen", &q],
            )
            .map_err(|e| e.to_string())?;
        }
        if let Some(q) = targets::queue_len(&ns.name, tun) {
            m.insert("tun_queue_len".into(), q as f64);
        }
    }

    // Before the flood: connection rate, then request/response.
    let base = p.base;
    let h = spawn_in(ns, "cps", None, move || {
        Ok(load::sequential(addr, base, 200_000, LEGIT_LIMIT))
    })
    .map_err(|e| e.to_string())?;
    let before = join(h, "connections before the flood")?;
    let cps_before = rate(&before, base);
    m.insert("cps_before".into(), cps_before);
    if before.iter().any(|a| !a.ok()) {
        notes.push(format!("before the flood: {}", errors(&before)));
    }
    let h =
        spawn_in(ns, "rr-open", None, move || load::rr_open(addr)).map_err(|e| e.to_string())?;
    let mut rr_conn = join(h, "request/response connect")?;
    let never = AtomicBool::new(false);
    let rr_before = load::rr(&mut rr_conn, &never, base).map_err(|e| e.to_string())?;
    m.insert("rr_before_tps".into(), rr_before.rate());

    // The flood, with request/response, fresh connections and memory
    // samples alongside.
    let mem_before = (t.memory)();
    let cpu_before = (t.cpu)();
    let drops_before = ns.dev_tx_drops();
    let counters_before = (t.counters)();
    let stop_rr = Arc::new(AtomicBool::new(false));
    let stop_mem = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (stop, mem) = (stop_mem.clone(), t.memory.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut peak = 0u64;
            while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(600) {
                peak = peak.max(mem().unwrap_or(0));
                std::thread::sleep(Duration::from_millis(50));
            }
            peak
        })
    };
    let flood_limit = p.flood + Duration::from_secs(30);
    let rr = {
        let stop = stop_rr.clone();
        std::thread::spawn(move || load::rr(&mut rr_conn, &stop, flood_limit))
    };
    let (per_sec, dur) = (p.legit_per_sec, p.flood);
    let legit = spawn_in(ns, "legit", None, move || {
        Ok(load::paced(addr, per_sec, dur, LEGIT_LIMIT))
    })
    .map_err(|e| e.to_string())?;
    let dst = match addr {
        std::net::SocketAddr::V4(a) => *a.ip(),
        std::net::SocketAddr::V6(_) => return Err("IPv4 only".into()),
    };
    let spec = flood::Spec {
        net: t.net,
        dst,
        port: addr.port(),
        dur: p.flood,
        max: p.flood_max,
        pps: p.flood_pps,
        seed: u64::from(std::process::id()) << 20 ^ 0x5eed,
    };
    let flood_start = Instant::now();
    let flooder =
        spawn_in(ns, "flood", Some(0), move || flood::run(&spec)).map_err(|e| e.to_string())?;
    let sent = join(flooder, "flood");
    let flood_end = Instant::now();
    stop_rr.store(true, Ordering::Relaxed);
    let cpu_flood_end = (t.cpu)();
    let sent = sent?;

    // Right after: how soon connections are back at full rate.
    let recover = p.recover;
    let after = spawn_in(ns, "recover", None, move || {
        Ok(load::sequential(addr, recover, 200_000, LEGIT_LIMIT))
    })
    .map_err(|e| e.to_string())?;
    let rr_flood = rr
        .join()
        .map_err(|_| "request/response thread panicked".to_string());
    let legit = join(legit, "legitimate connects");
    let after = join(after, "connections after the flood");
    let drops_after = ns.dev_tx_drops();
    let counters_after = (t.counters)();
    stop_mem.store(true, Ordering::Relaxed);
    let peak = sampler.join().unwrap_or(0);
    let mem_after = (t.memory)();

    m.insert("flood_syns_sent".into(), sent.syns as f64);
    m.insert("flood_secs".into(), sent.secs);
    m.insert("flood_rate_sent".into(), sent.rate());
    m.insert("flood_send_errors".into(), sent.send_errors as f64);
    if let (Some(a), Some(b)) = (drops_before, drops_after) {
        let d = b.saturating_sub(a);
        m.insert("flood_device_drops".into(), d as f64);
        if sent.secs > 0.0 {
            let got = sent.syns.saturating_sub(d) as f64 / sent.secs;
            m.insert("flood_rate_delivered".into(), got);
        }
    }
    for (k, v) in &counters_after {
        let b = counters_before.get(k).copied().unwrap_or(0);
        m.insert(format!("nstat.{k}"), v.saturating_sub(b) as f64);
    }
    if let (Some((cpu_a, wait_a)), Some((cpu_b, wait_b))) = (cpu_before, cpu_flood_end) {
        // CPU time at clock-tick resolution (10 ms) over the whole flood.
        let wall = flood_end.duration_since(flood_start).as_secs_f64();
        m.insert(
            "server_cpu_pct".into(),
            100.0 * (cpu_b - cpu_a).as_secs_f64() / wall,
        );
        let wait = wait_b.saturating_sub(wait_a).as_secs_f64();
        m.insert("server_runq_wait_pct".into(), 100.0 * wait / wall);
    }

    match legit {
        Ok(v) => {
            m.insert("legit_attempted".into(), v.len() as f64);
            m.insert(
                "legit_succeeded".into(),
                v.iter().filter(|a| a.ok()).count() as f64,
            );
            dist(
                m,
                "legit_connect",
                v.iter().filter_map(|a| a.connect).collect(),
            );
            dist(m, "legit_echo", v.iter().filter_map(|a| a.total).collect());
            if v.iter().any(|a| !a.ok()) {
                notes.push(format!(
                    "legitimate connects during the flood: {}",
                    errors(&v)
                ));
            }
        }
        Err(e) => notes.push(e),
    }
    match rr_flood {
        Ok(Ok(r)) => {
            m.insert("rr_flood_tps".into(), r.rate());
            m.insert("rr_flood_longest_ms".into(), ms(r.longest));
            if rr_before.rate() > 0.0 {
                m.insert("rr_ratio".into(), r.rate() / rr_before.rate());
            }
        }
        Ok(Err(e)) => notes.push(format!("request/response during the flood: {e}")),
        Err(e) => notes.push(e),
    }
    if let Some(b) = mem_before {
        m.insert("mem_before_bytes".into(), b as f64);
        m.insert("mem_peak_bytes".into(), peak.max(b) as f64);
        m.insert("mem_growth_bytes".into(), peak.saturating_sub(b) as f64);
    }
    if let Some(a) = mem_after {
        m.insert("mem_after_bytes".into(), a as f64);
    }
    match after {
        Ok(v) => recovery(m, notes, &v, p.recover, cps_before),
        Err(e) => notes.push(e),
    }
    Ok(())
}

/// Connection rate after the flood, in 100 ms windows: the time to the end
/// of the first window at [`FULL_RATE`] of the rate before the flood.
fn recovery(m: &mut Metrics, notes: &mut Vec<String>, v: &[Attempt], dur: Duration, before: f64) {
    m.insert("cps_after".into(), rate(v, dur));
    let first_sec: Vec<Attempt> = v
        .iter()
        .filter(|a| a.at <= Duration::from_secs(1))
        .cloned()
        .collect();
    m.insert(
        "cps_after_first_s".into(),
        rate(&first_sec, Duration::from_secs(1)),
    );
    m.insert(
        "recovery_failures".into(),
        v.iter().filter(|a| !a.ok()).count() as f64,
    );
    if let Some(a) = v.iter().find(|a| a.ok()) {
        m.insert("recovery_first_ok_s".into(), a.at.as_secs_f64());
    }
    let windows = (dur.as_millis() / WINDOW.as_millis()) as usize;
    let need = before * FULL_RATE * WINDOW.as_secs_f64();
    let mut counts = vec![0usize; windows];
    for a in v.iter().filter(|a| a.ok()) {
        let w = (a.at.as_millis() / WINDOW.as_millis()) as usize;
        if let Some(c) = counts.get_mut(w) {
            *c += 1;
        }
    }
    match counts.iter().position(|&c| c as f64 >= need) {
        Some(w) => {
            m.insert("recovery_s".into(), ((w + 1) as f64) * WINDOW.as_secs_f64());
        }
        None => notes.push(format!(
            "connections not back at {:.0}% of the rate before the flood within {} s",
            FULL_RATE * 100.0,
            dur.as_secs()
        )),
    }
    if v.iter().any(|a| !a.ok()) {
        notes.push(format!("connects after the flood: {}", errors(v)));
    }
}

fn run_target(make: impl FnOnce() -> io::Result<Target>, p: &Params) -> Outcome {
    let mut m = Metrics::new();
    let mut notes = Vec::new();
    let t = match make() {
        Ok(t) => t,
        Err(e) => {
            return Outcome {
                key: "?",
                label: "?",
                memory_label: "",
                m,
                notes: vec![format!("setup failed: {e}")],
            }
        }
    };
    eprintln!("synflood: {}", t.label);
    if let Err(e) = measure(&t, p, &mut m, &mut notes) {
        notes.push(e);
    }
    let Target {
        key,
        label,
        memory_label,
        stop,
        keep,
        ..
    } = t;
    let (final_counters, note) = stop();
    for (k, v) in final_counters {
        m.insert(format!("stack.{k}"), v as f64);
    }
    notes.extend(note);
    drop(keep);
    Outcome {
        key,
        label,
        memory_label,
        m,
        notes,
    }
}

// ---------------------------------------------------------------- report

struct Row {
    name: &'static str,
    /// Metric keys joined with " / " in one cell.
    keys: &'static [&'static str],
    scale: f64,
    /// Ratio of ours to each Linux setup, of the first key.
    ratio: bool,
}

const fn row(name: &'static str, keys: &'static [&'static str], scale: f64, ratio: bool) -> Row {
    Row {
        name,
        keys,
        scale,
        ratio,
    }
}

const MIB: f64 = 1.0 / (1024.0 * 1024.0);

const ROWS: &[Row] = &[
    row(
        "flood: SYNs/s sent (raw socket)",
        &["flood_rate_sent"],
        1.0,
        true,
    ),
    row(
        "  SYNs/s reaching the server's device",
        &["flood_rate_delivered"],
        1.0,
        true,
    ),
    row(
        "  SYNs sent / dropped by the device",
        &["flood_syns_sent", "flood_device_drops"],
        1.0,
        false,
    ),
    row(
        "  our TUN's queue length, packets",
        &["tun_queue_len"],
        1.0,
        false,
    ),
    row(
        "  SYN cookies sent, flood + after [1]",
        &["stack.syncookies_sent", "nstat.SyncookiesSent"],
        1.0,
        false,
    ),
    row("legit connects attempted", &["legit_attempted"], 1.0, false),
    row(
        "  succeeded (connect + echo <= 1 s)",
        &["legit_succeeded"],
        1.0,
        false,
    ),
    row(
        "  connect ms p50 / p99 / max",
        &[
            "legit_connect_p50_ms",
            "legit_connect_p99_ms",
            "legit_connect_max_ms",
        ],
        1.0,
        false,
    ),
    row(
        "  connect+echo ms p50 / p99 / max",
        &[
            "legit_echo_p50_ms",
            "legit_echo_p99_ms",
            "legit_echo_max_ms",
        ],
        1.0,
        false,
    ),
    row("RR tx/s without flood", &["rr_before_tps"], 1.0, true),
    row("RR tx/s during flood", &["rr_flood_tps"], 1.0, true),
    row("  during / without", &["rr_ratio"], 1.0, false),
    row(
        "  longest transaction ms",
        &["rr_flood_longest_ms"],
        1.0,
        false,
    ),
    row("memory before flood MiB", &["mem_before_bytes"], MIB, false),
    row(
        "  growth, peak - before, MiB",
        &["mem_growth_bytes"],
        MIB,
        false,
    ),
    row("  after recovery MiB", &["mem_after_bytes"], MIB, false),
    row(
        "server process CPU during flood, % of a core",
        &["server_cpu_pct"],
        1.0,
        false,
    ),
    row(
        "  runnable, waiting for a CPU, % [2]",
        &["server_runq_wait_pct"],
        1.0,
        false,
    ),
    row("conn/s before flood", &["cps_before"], 1.0, true),
    row(
        "conn/s after flood, first s / all",
        &["cps_after_first_s", "cps_after"],
        1.0,
        true,
    ),
    row(
        "  first success after flood, s",
        &["recovery_first_ok_s"],
        1.0,
        false,
    ),
    row("  time to full rate, s [3]", &["recovery_s"], 1.0, false),
    row(
        "  failed connects after flood",
        &["recovery_failures"],
        1.0,
        false,
    ),
];

fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 || (v == v.round() && a < 1e15) {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn cell(o: &Outcome, r: &Row) -> String {
    let parts: Vec<String> = r
        .keys
        .iter()
        .filter_map(|k| o.m.get(*k).map(|v| fmt_num(v * r.scale)))
        .collect();
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(" / ")
    }
}

/// The targets, judged on one outcome: (name, met, measured).
fn verdicts(o: &Outcome) -> Vec<(&'static str, Option<bool>)> {
    let g = |k: &str| o.m.get(k).copied();
    vec![
        (
            "every legit connect succeeds within 1 s",
            match (g("legit_attempted"), g("legit_succeeded")) {
                (Some(a), Some(s)) => Some(a > 0.0 && a == s),
                _ => None,
            },
        ),
        (
            "RR during flood >= 0.5x without",
            g("rr_ratio").map(|r| r >= RR_RATIO_TARGET),
        ),
        (
            "memory growth < 32 MiB",
            g("mem_growth_bytes").map(|b| b < MEM_TARGET as f64),
        ),
        (
            "full connection rate < 1 s after flood",
            Some(g("recovery_s").is_some_and(|s| s < RECOVERY_TARGET_S)),
        ),
    ]
}

/// The first outcome, ours, over each other one, for `key`.
fn ratios<'a>(outs: &[&'a Outcome], key: &str) -> Vec<(&'a str, Option<f64>)> {
    match outs.split_first() {
        Some((ours, others)) if ours.key == "ours" => others
            .iter()
            .map(|o| {
                let r = match (ours.m.get(key), o.m.get(key)) {
                    (Some(a), Some(b)) if *b > 0.0 => Some(a / b),
                    _ => None,
                };
                (o.key, r)
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn table(outs: &[&Outcome]) -> String {
    let mut t = String::new();
    let name_w = 42;
    let _ = write!(t, "{:<name_w$}", "metric");
    for o in outs {
        let _ = write!(t, " {:>22}", o.key);
    }
    let heads = ratios(outs, "");
    for (k, _) in &heads {
        let _ = write!(t, " {:>15}", format!("ours/{k}"));
    }
    t.push('\n');
    let _ = writeln!(
        t,
        "{}",
        "-".repeat(name_w + 23 * outs.len() + 16 * heads.len())
    );
    for r in ROWS {
        let _ = write!(t, "{:<name_w$}", r.name);
        for o in outs {
            let _ = write!(t, " {:>22}", cell(o, r));
        }
        for (_, v) in ratios(outs, r.keys[0]) {
            let cell = match v {
                Some(v) if r.ratio => format!("{v:.2}x"),
                _ => String::new(),
            };
            let _ = write!(t, " {cell:>15}");
        }
        // No trailing blanks where the ratio cells are empty.
        t.truncate(t.trim_end().len());
        t.push('\n');
    }
    t.push_str("\ntargets (from the issue):\n");
    for o in outs {
        for (name, met) in verdicts(o) {
            let v = match met {
                Some(true) => "met",
                Some(false) => "MISSED",
                None => "not measured",
            };
            let _ = writeln!(t, "  {:<10} {name:<42} {v}", o.key);
        }
    }
    t
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => o += "\\\"",
            '\\' => o += "\\\\",
            '\n' => o += "\\n",
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o + "\""
}

fn json_num(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "null".into()
    }
}

/// One pass: both targets under the same flood parameters.
struct Pass {
    name: String,
    p: Params,
    outs: Vec<Outcome>,
}

fn json_pass(o: &mut String, pass: &Pass) {
    let p = &pass.p;
    let _ = write!(
        o,
        "    {{\"name\": {}, \"params\": {{\"flood_secs\": {}, \"flood_max\": {}, \"flood_pps\": {}, \"legit_per_sec\": {}, \"legit_limit_s\": 1, \"base_secs\": {}, \"recover_secs\": {}, \"full_rate_share\": {FULL_RATE}, \"window_s\": {}, \"backlog\": {}}},\n     \"targets\": {{",
        json_str(&pass.name),
        p.flood.as_secs_f64(),
        p.flood_max,
        p.flood_pps,
        p.legit_per_sec,
        p.base.as_secs_f64(),
        p.recover.as_secs_f64(),
        WINDOW.as_secs_f64(),
        targets::BACKLOG
    );
    let mut targets = Vec::new();
    for out in &pass.outs {
        let metrics: Vec<String> = out
            .m
            .iter()
            .map(|(k, v)| format!("{}: {}", json_str(k), json_num(*v)))
            .collect();
        let verdicts: Vec<String> = verdicts(out)
            .iter()
            .map(|(n, v)| {
                format!(
                    "{}: {}",
                    json_str(n),
                    v.map_or("null".to_string(), |b| b.to_string())
                )
            })
            .collect();
        let notes: Vec<String> = out.notes.iter().map(|n| json_str(n)).collect();
        targets.push(format!(
            "\n      {}: {{\"label\": {}, \"memory\": {}, \"metrics\": {{{}}}, \"targets_met\": {{{}}}, \"notes\": [{}]}}",
            json_str(out.key),
            json_str(out.label),
            json_str(out.memory_label),
            metrics.join(", "),
            verdicts.join(", "),
            notes.join(", ")
        ));
    }
    *o += &targets.join(",");
    *o += "},\n     \"ratios_ours_over\": {";
    let mut parts = Vec::new();
    let outs: Vec<&Outcome> = pass.outs.iter().collect();
    for r in ROWS.iter().filter(|r| r.ratio) {
        for (other, v) in ratios(&outs, r.keys[0]) {
            if let Some(v) = v {
                let k = format!("{}.{other}", r.keys[0]);
                parts.push(format!("{}: {}", json_str(&k), json_num(v)));
            }
        }
    }
    *o += &parts.join(", ");
    *o += "}}";
}

fn json(passes: &[Pass], head: &[(&str, String)]) -> String {
    let mut o = String::from("{\n");
    for (k, v) in head {
        let _ = writeln!(o, "  {}: {},", json_str(k), json_str(v));
    }
    o += "  \"passes\": [\n";
    for (i, pass) in passes.iter().enumerate() {
        json_pass(&mut o, pass);
        o += if i + 1 < passes.len() { ",\n" } else { "\n" };
    }
    o += "  ]\n}\n";
    o
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(String::from))
        .unwrap_or_else(|| "?".into())
}

fn commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let head = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    if dirty {
        format!("{head} (with uncommitted changes)")
    } else {
        head
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "synflood: must run as root (namespaces, veth, TUN, raw socket); nothing measured"
        );
        std::process::exit(1);
    }
    sys::remove_stale_namespaces();
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let p = Params {
        flood: Duration::from_secs(env("UBN_FLOOD_SECS", 10).clamp(1, 300)),
        flood_max: env("UBN_FLOOD_MAX", 100_000_000),
        flood_pps: env("UBN_FLOOD_PPS", 0),
        legit_per_sec: env("UBN_LEGIT_PER_SEC", 10).clamp(1, 1000) as f64,
        base: Duration::from_secs(env("UBN_BASE_SECS", 2).clamp(1, 60)),
        recover: Duration::from_secs(env("UBN_RECOVER_SECS", 3).clamp(1, 60)),
    };
    let only = std::env::var("UBN_ONLY").unwrap_or_else(|_| "ours,linux,linux-napi".into());
    let want = |k: &str| only.split(',').any(|x| x.trim().eq_ignore_ascii_case(k));
    let echo = if want("ours") {
        match targets::echo_binary() {
            Ok(b) => Some(b),
            Err(e) => {
                eprintln!("synflood: {e}");
                std::process::exit(1);
            }
        }
    } else {
        None
    };
    // Watchdog: whatever happens, the run ends and the namespaces go.
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(15 * 60));
        eprintln!("synflood: watchdog fired after 15 min; cleaning up");
        sys::remove_own_namespaces();
        std::process::exit(3);
    });
    let (cpu, kernel) = sys::machine();
    let commit = commit();
    let load_before = loadavg();
    eprintln!(
        "synflood: {cpu}, Linux {kernel}, {} CPUs, commit {commit}; flood {} s",
        sys::cpus(),
        p.flood.as_secs()
    );
    let run_pass = |name: String, p: Params| {
        let mut outs = Vec::new();
        if let Some(echo) = &echo {
            outs.push(run_target(|| targets::ours(echo), &p));
        }
        if want("linux") {
            outs.push(run_target(|| targets::linux(targets::Veth::Backlog), &p));
        }
        if want("linux-napi") {
            outs.push(run_target(
                || targets::linux(targets::Veth::ThreadedNapi),
                &p,
            ));
        }
        Pass { name, p, outs }
    };
    let mut passes = Vec::new();
    let first = if p.flood_pps > 0 {
        format!("{} SYNs/s (UBN_FLOOD_PPS)", p.flood_pps)
    } else {
        "full rate: as fast as the raw socket sends".to_string()
    };
    passes.push(run_pass(first, p));
    // The second pass offers every server the flood the slowest one took
    // in the first: what reached it past its device's queue or ring (for
    // Linux over the default veth, all that was sent: it handles each SYN
    // inside the sender's system call).
    let lowest = passes[0]
        .outs
        .iter()
        .filter_map(|o| o.m.get("flood_rate_delivered").copied())
        .min_by(f64::total_cmp);
    let matched = match std::env::var("UBN_MATCHED_PPS") {
        Ok(v) => v.parse().unwrap_or(0),
        Err(_) => lowest.map_or(0, |r| (r as u64) / 1000 * 1000),
    };
    if p.flood_pps == 0 && matched > 0 {
        let name = format!("{matched} SYNs/s: the lowest rate a server took in the first pass");
        passes.push(run_pass(
            name,
            Params {
                flood_pps: matched,
                ..p
            },
        ));
    }
    sys::remove_own_namespaces();
    let load_after = loadavg();

    println!();
    println!(
        "SYN flood: {cpu}, {} vCPU, Linux {kernel}; commit {commit}; flood {} s; legit {} connects/s, 1 s limit",
        sys::cpus(),
        p.flood.as_secs(),
        p.legit_per_sec
    );
    println!("Load average (1 min) before/after: {load_before} / {load_after}");
    if let Some(pass) = passes.first() {
        for o in &pass.outs {
            println!("  {}: {}; memory = {}", o.key, o.label, o.memory_label);
        }
    }
    for pass in &passes {
        println!("\n== flood at {}\n", pass.name);
        let refs: Vec<&Outcome> = pass.outs.iter().collect();
        print!("{}", table(&refs));
        for o in &pass.outs {
            for n in &o.notes {
                println!("note ({}): {n}", o.key);
            }
        }
    }
    println!();
    println!("[1] ours: the stack's counter over the echo process's life (it prints them at exit); Linux: nstat SyncookiesSent over flood and recovery. Both include the cookies answering the connects after the flood (the SYN queue is still full of the flood's half-open connections).");
    println!("[2] the time the server process's threads spent runnable but not running (/proc/<pid>/task/*/schedstat), over the flood's wall time: CPU the stack wanted and did not get.");
    println!("[3] the end of the first 100 ms window after the flood with at least {:.0}% of the connection rate before it (0.10: the first window).", FULL_RATE * 100.0);
    let path = std::env::var("UBN_JSON").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/target/bench-synflood.json").to_string()
    });
    if let Some(dir) = std::path::Path::new(&path).parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let head = [
        ("commit", commit),
        ("cpu", cpu),
        ("kernel", kernel),
        ("cpus", sys::cpus().to_string()),
        ("load_before", load_before),
        ("load_after", load_after),
    ];
    match std::fs::write(&path, json(&passes, &head)) {
        Ok(()) => println!("\nJSON: {path}"),
        Err(e) => eprintln!("cannot write {path}: {e}"),
    }
}
