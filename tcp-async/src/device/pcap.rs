//! A device wrapper that records every packet to a pcap file.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Device, Medium, Offloads, RxPacket, TxHeaders, TxPacket};

/// Classic pcap: magic, version 2.4, microsecond timestamps.
const MAGIC: u32 = 0xa1b2_c3d4;
const VERSION_MAJOR: u16 = 2;
const VERSION_MINOR: u16 = 4;
const SNAPLEN: u32 = 65_535;
/// LINKTYPE_RAW: each record is a bare IPv4 or IPv6 packet.
const LINKTYPE_RAW: u32 = 101;
/// LINKTYPE_ETHERNET: each record is an Ethernet frame.
const LINKTYPE_ETHERNET: u32 = 1;

/// Flush after this many packets...
const FLUSH_PACKETS: u32 = 64;
/// ...or when this long has passed since the last flush.
const FLUSH_INTERVAL: Duration = Duration::from_millis(200);

/// Wraps a device and writes every packet it sends or receives to a classic
/// pcap file (`LINKTYPE_RAW`, or `LINKTYPE_ETHERNET` for a device whose
/// [`medium`](Device::medium) is Ethernet), readable by `tcpdump -r` and Wireshark.
///
/// Timestamps come from [`SystemTime`]. The file is flushed every
/// 64 packets, when 200 ms have passed since the last flush, on
/// [`flush`](Self::flush), and on drop. A failed write stops the capture
/// (logged once) but never the traffic.
///
/// # Examples
/// ```no_run
/// use tcp_async::device::{MemoryDevice, PcapWriter};
///
/// let (a, _b) = MemoryDevice::pair(1500);
/// let dev = PcapWriter::new(a, "/tmp/a.pcap")?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct PcapWriter<D: Device> {
    inner: D,
    /// `None` after a write error.
    out: Option<BufWriter<File>>,
    unflushed: u32,
    last_flush: SystemTime,
}

impl<D: Device> PcapWriter<D> {
    /// Wraps `inner`, creating (or truncating) the file at `path` and
    /// writing the pcap header.
    ///
    /// # Errors
    /// If the file cannot be created or the header written.
    pub fn new(inner: D, path: impl AsRef<Path>) -> io::Result<Self> {
        let mut out = BufWriter::new(File::create(path)?);
        let mut header = Vec::with_capacity(24);
        header.extend_from_slice(&MAGIC.to_le_bytes());
        header.extend_from_slice(&VERSION_MAJOR.to_le_bytes());
        header.extend_from_slice(&VERSION_MINOR.to_le_bytes());
        header.extend_from_slice(&0i32.to_le_bytes()); // thiszone: UTC
        header.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
        header.extend_from_slice(&SNAPLEN.to_le_bytes());
        let linktype = match inner.medium() {
            Medium::Ip => LINKTYPE_RAW,
            Medium::Ethernet => LINKTYPE_ETHERNET,
        };
        header.extend_from_slice(&linktype.to_le_bytes());
        out.write_all(&header)?;
        out.flush()?;
        Ok(PcapWriter {
            inner,
            out: Some(out),
            unflushed: 0,
            last_flush: SystemTime::now(),
        })
    }

    /// Writes buffered records to the file.
    ///
    /// # Errors
    /// If the capture failed earlier or the write fails now.
    pub fn flush(&mut self) -> io::Result<()> {
        match &mut self.out {
            Some(out) => {
                self.unflushed = 0;
                self.last_flush = SystemTime::now();
                out.flush()
            }
            None => Err(io::Error::other("pcap capture stopped after a write error")),
        }
    }

    /// The wrapped device.
    pub fn get_ref(&self) -> &D {
        &self.inner
    }

    /// The wrapped device.
    pub fn get_mut(&mut self) -> &mut D {
        &mut self.inner
    }

    /// Appends one record; on error, logs and stops capturing.
    fn record(&mut self, packet: &[u8]) {
        let Some(out) = &mut self.out else { return };
        let now = SystemTime::now();
        let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let caplen = packet.len().min(SNAPLEN as usize);
        let mut header = [0u8; 16];
        header[0..4].copy_from_slice(&(since.as_secs() as u32).to_le_bytes());
        header[4..8].copy_from_slice(&since.subsec_micros().to_le_bytes());
        header[8..12].copy_from_slice(&(caplen as u32).to_le_bytes());
        header[12..16].copy_from_slice(&(packet.len() as u32).to_le_bytes());
        let mut result = out
            .write_all(&header)
            .and_then(|()| out.write_all(&packet[..caplen]));
        self.unflushed += 1;
        let stale = now.duration_since(self.last_flush).unwrap_or_default() >= FLUSH_INTERVAL;
        if result.is_ok() && (self.unflushed >= FLUSH_PACKETS || stale) {
            result = self.flush();
        }
        if let Err(e) = result {
            tracing::warn!(error = %e, "pcap capture stopped");
            self.out = None;
        }
    }
}

impl<D: Device> Device for PcapWriter<D> {
    fn poll_recv(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let res = self.inner.poll_recv(cx, buf);
        if let Poll::Ready(Ok(n)) = res {
            self.record(&buf[..n]);
        }
        res
    }

    fn poll_send(&mut self, cx: &mut Context<'_>, packet: &[u8]) -> Poll<io::Result<()>> {
        let res = self.inner.poll_send(cx, packet);
        if let Poll::Ready(Ok(())) = res {
            self.record(packet);
        }
        res
    }

    fn mtu(&self) -> usize {
        self.inner.mtu()
    }

    fn medium(&self) -> Medium {
        self.inner.medium()
    }

    fn mac_address(&self) -> Option<[u8; 6]> {
        self.inner.mac_address()
    }

    fn offloads(&self) -> Offloads {
        self.inner.offloads()
    }

    /// Records the packet as received: a super-packet as one record larger
    /// than the MTU, a partial checksum as is (Wireshark flags it bad), as
    /// `tcpdump` on the interface shows them.
    fn poll_recv_meta(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<RxPacket>> {
        let res = self.inner.poll_recv_meta(cx, buf);
        if let Poll::Ready(Ok(p)) = res {
            self.record(&buf[..p.len]);
        }
        res
    }

    /// Records the super-packet as one record, before segmentation, with
    /// its partial checksum (as `tcpdump` on a TSO interface shows it).
    fn poll_send_gso(
        &mut self,
        cx: &mut Context<'_>,
        packet: &[u8],
        segment_size: u16,
        headers: TxHeaders,
    ) -> Poll<io::Result<()>> {
        let res = self.inner.poll_send_gso(cx, packet, segment_size, headers);
        if let Poll::Ready(Ok(())) = res {
            self.record(packet);
        }
        res
    }

    /// Forwards the batch whole (the inner device keeps its batching) and
    /// records the packets it took.
    fn poll_send_batch(
        &mut self,
        cx: &mut Context<'_>,
        batch: &[TxPacket<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = self.inner.poll_send_batch(cx, batch);
        if let Poll::Ready(Ok(n)) = res {
            for p in &batch[..n.min(batch.len())] {
                self.record(p.data);
            }
        }
        res
    }
}

impl<D: Device> Drop for PcapWriter<D> {
    fn drop(&mut self) {
        if let Some(out) = &mut self.out {
            let _ = out.flush();
        }
    }
}

#[cfg(test)]
mod tests;
