use std::path::PathBuf;

use super::super::test_util::*;
use super::super::MemoryDevice;
use super::*;

/// A minimal valid IPv4/UDP packet carrying `payload`.
fn udp_packet(src_port: u16, payload: &[u8]) -> Vec<u8> {
    let total = 20 + 8 + payload.len();
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[8] = 64; // TTL
    p[9] = 17; // UDP
    p[12..16].copy_from_slice(&[10, 0, 0, 1]);
    p[16..20].copy_from_slice(&[10, 0, 0, 2]);
    let sum = p[..20]
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum::<u32>();
    let folded = (sum & 0xffff) + (sum >> 16);
    let folded = (folded & 0xffff) + (folded >> 16);
    p[10..12].copy_from_slice(&(!(folded as u16)).to_be_bytes());
    p[20..22].copy_from_slice(&src_port.to_be_bytes());
    p[22..24].copy_from_slice(&9u16.to_be_bytes());
    p[24..26].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    // UDP checksum 0: none, valid for IPv4.
    p[28..].copy_from_slice(payload);
    p
}

/// One record of a pcap file.
#[derive(Debug)]
struct Record {
    ts_sec: u32,
    ts_usec: u32,
    orig_len: u32,
    data: Vec<u8>,
}

/// Parses a little-endian classic pcap file; returns (linktype, records).
fn read_pcap(bytes: &[u8]) -> (u32, Vec<Record>) {
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let u16_at = |at: usize| u16::from_le_bytes(bytes[at..at + 2].try_into().unwrap());
    assert!(bytes.len() >= 24, "no header");
    assert_eq!(u32_at(0), 0xa1b2_c3d4, "magic");
    assert_eq!((u16_at(4), u16_at(6)), (2, 4), "version");
    assert_eq!(u32_at(16), 65_535, "snaplen");
    let linktype = u32_at(20);
    let mut records = Vec::new();
    let mut at = 24;
    while at < bytes.len() {
        assert!(at + 16 <= bytes.len(), "truncated record header");
        let caplen = u32_at(at + 8) as usize;
        assert!(at + 16 + caplen <= bytes.len(), "truncated record");
        records.push(Record {
            ts_sec: u32_at(at),
            ts_usec: u32_at(at + 4),
            orig_len: u32_at(at + 12),
            data: bytes[at + 16..at + 16 + caplen].to_vec(),
        });
        at += 16 + caplen;
    }
    (linktype, records)
}

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("tcp-async-{}-{name}.pcap", std::process::id()))
}

#[tokio::test]
async fn test_pcap_records_both_directions() {
    let path = temp_path("both");
    let (a, mut b) = MemoryDevice::pair(1500);
    let mut a = PcapWriter::new(a, &path).unwrap();
    let mut want = Vec::new();
    for i in 0..3u16 {
        let p = udp_packet(1000 + i, format!("out {i}").as_bytes());
        send(&mut a, &p).await.unwrap();
        want.push(p);
    }
    for i in 0..2u16 {
        let p = udp_packet(2000 + i, &[i as u8; 100]);
        send(&mut b, &p).await.unwrap();
        assert_eq!(recv(&mut a).await.unwrap(), p);
        want.push(p);
    }
    // A refused packet is not recorded.
    assert!(send(&mut a, &[0; 1501]).await.is_err());
    a.flush().unwrap();
    let (linktype, records) = read_pcap(&std::fs::read(&path).unwrap());
    assert_eq!(linktype, 101);
    assert_eq!(records.len(), 5);
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    for (r, w) in records.iter().zip(&want) {
        assert_eq!(&r.data, w);
        assert_eq!(r.orig_len as usize, w.len());
        assert!(r.ts_usec < 1_000_000);
        assert!(r.ts_sec.abs_diff(start) < 60, "timestamp {}", r.ts_sec);
    }
    drop(a);
    std::fs::remove_file(&path).unwrap();
}

#[tokio::test]
async fn test_pcap_flushed_on_drop() {
    let path = temp_path("drop");
    let (a, _b) = MemoryDevice::pair(1500);
    let mut a = PcapWriter::new(a, &path).unwrap();
    send(&mut a, &udp_packet(1, b"x")).await.unwrap();
    send(&mut a, &udp_packet(2, b"y")).await.unwrap();
    drop(a);
    let (_, records) = read_pcap(&std::fs::read(&path).unwrap());
    assert_eq!(records.len(), 2);
    std::fs::remove_file(&path).unwrap();
}

/// Lists the packets with tcpdump, if it is installed.
#[tokio::test]
async fn test_pcap_readable_by_tcpdump() {
    let Ok(out) = std::process::Command::new("tcpdump")
        .arg("--version")
        .output()
    else {
        eprintln!("tcpdump not installed; skipping");
        return;
    };
    if !out.status.success() {
        eprintln!("tcpdump unusable; skipping");
        return;
    }
    let path = temp_path("tcpdump");
    let (a, mut b) = MemoryDevice::pair(1500);
    let mut a = PcapWriter::new(a, &path).unwrap();
    for i in 0..4u16 {
        send(&mut a, &udp_packet(3000 + i, b"hello")).await.unwrap();
        recv(&mut b).await.unwrap();
    }
    drop(a);
    let out = std::process::Command::new("tcpdump")
        .args(["-r", path.to_str().unwrap(), "-n"])
        .output()
        .unwrap();
    std::fs::remove_file(&path).ok();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    for (i, line) in lines.iter().enumerate() {
        assert!(line.contains(&format!("10.0.0.1.{}", 3000 + i)), "{line}");
    }
}

/// A memory end that says its packets are Ethernet frames.
struct EthernetEnd(MemoryDevice);

impl Device for EthernetEnd {
    fn poll_recv(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.0.poll_recv(cx, buf)
    }
    fn poll_send(&mut self, cx: &mut Context<'_>, packet: &[u8]) -> Poll<io::Result<()>> {
        self.0.poll_send(cx, packet)
    }
    fn mtu(&self) -> usize {
        self.0.mtu()
    }
    fn medium(&self) -> Medium {
        Medium::Ethernet
    }
    fn mac_address(&self) -> Option<[u8; 6]> {
        Some([2, 0, 0, 0, 0, 9])
    }
}

#[tokio::test]
async fn test_pcap_ethernet_device_writes_linktype_ethernet() {
    let path = temp_path("ethernet");
    let (a, _b) = MemoryDevice::pair(1514);
    let mut a = PcapWriter::new(EthernetEnd(a), &path).unwrap();
    assert_eq!(a.medium(), Medium::Ethernet);
    assert_eq!(a.mac_address(), Some([2, 0, 0, 0, 0, 9]));
    let mut frame = vec![0xff; 6];
    frame.extend_from_slice(&[2, 0, 0, 0, 0, 9, 0x08, 0x00]);
    frame.extend_from_slice(&udp_packet(7, b"framed"));
    send(&mut a, &frame).await.unwrap();
    a.flush().unwrap();
    let (linktype, records) = read_pcap(&std::fs::read(&path).unwrap());
    assert_eq!(linktype, 1, "LINKTYPE_ETHERNET");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].data, frame);
    drop(a);
    std::fs::remove_file(&path).unwrap();
}
