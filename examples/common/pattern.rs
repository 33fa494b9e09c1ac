//! A deterministic, non-repeating byte stream and a streaming checksum.
//!
//! Byte `i` of the stream depends only on `i` (a splitmix64 of the 8-byte
//! block index), so a receiver can check every chunk at its offset and name
//! the first wrong byte, and any reordering, duplication or loss shows up.

/// splitmix64 finaliser.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Fills `buf` with the stream's bytes starting at `offset`.
pub fn fill(offset: u64, buf: &mut [u8]) {
    let mut pos = offset;
    let mut i = 0;
    while i < buf.len() {
        let block = mix(pos / 8).to_le_bytes();
        let start = (pos % 8) as usize;
        let n = (8 - start).min(buf.len() - i);
        buf[i..i + n].copy_from_slice(&block[start..start + n]);
        i += n;
        pos += n as u64;
    }
}

/// Checks received chunks against the stream; remembers the first mismatch.
#[derive(Debug, Default)]
pub struct Verifier {
    pub offset: u64,
    pub first_mismatch: Option<u64>,
    scratch: Vec<u8>,
}

impl Verifier {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, data: &[u8]) {
        if self.first_mismatch.is_none() {
            self.scratch.resize(data.len(), 0);
            fill(self.offset, &mut self.scratch);
            if let Some(i) = data.iter().zip(&self.scratch).position(|(a, b)| a != b) {
                self.first_mismatch = Some(self.offset + i as u64);
            }
        }
        self.offset += data.len() as u64;
    }

    /// True when every byte so far matched the stream.
    pub fn ok(&self) -> bool {
        self.first_mismatch.is_none()
    }
}

/// FNV-1a, 64 bit: an order-sensitive checksum of a byte stream.
#[derive(Debug, Clone, Copy)]
pub struct Fnv64(pub u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv64 {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, data: &[u8]) {
        let mut h = self.0;
        for &b in data {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }

    pub fn value(&self) -> u64 {
        self.0
    }
}

/// The checksum of the first `len` bytes of the stream.
pub fn stream_checksum(len: u64) -> u64 {
    let mut h = Fnv64::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut off = 0;
    while off < len {
        let n = (len - off).min(buf.len() as u64) as usize;
        fill(off, &mut buf[..n]);
        h.update(&buf[..n]);
        off += n as u64;
    }
    h.value()
}
