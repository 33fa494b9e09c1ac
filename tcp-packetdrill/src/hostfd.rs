//! Real host descriptors standing for the shim's sockets.
//!
//! packetdrill treats the numbers the shim returns as descriptors of its
//! own process: when a script ends it closes the ones left open with
//! libc's `close()`, not through the shim. So each socket holds a real
//! descriptor: an unbound Unix datagram socket, which gives every shim
//! socket its own inode. The inode is remembered so that the shim closes a
//! number only while it still names that very socket (after packetdrill
//! closed it, the number may belong to someone else).

use std::io;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixDatagram;

#[derive(Debug)]
pub struct HostFd {
    fd: RawFd,
    id: (u64, u64),
}

impl HostFd {
    /// Opens a fresh descriptor.
    pub fn open() -> io::Result<HostFd> {
        let fd = UnixDatagram::unbound()?.into_raw_fd();
        match identity(fd) {
            Some(id) => Ok(HostFd { fd, id }),
            None => {
                // SAFETY: `fd` came from `into_raw_fd` just above and was
                // handed to no one else, so this is its only owner.
                drop(unsafe { OwnedFd::from_raw_fd(fd) });
                Err(io::Error::last_os_error())
            }
        }
    }

    pub fn raw(&self) -> RawFd {
        self.fd
    }

    /// Whether the number still names the descriptor opened here.
    pub fn is_ours(&self) -> bool {
        identity(self.fd) == Some(self.id)
    }

    /// Closes the descriptor if it is still ours; if packetdrill closed it
    /// already, the number is left alone.
    pub fn close(self) {
        if self.is_ours() {
            // SAFETY: `is_ours` checked that the number still names the
            // socket this struct opened (same device and inode, and socket
            // inodes are never reused while open), which nothing else owns.
            drop(unsafe { OwnedFd::from_raw_fd(self.fd) });
        }
    }
}

/// Device and inode of an open descriptor, or `None` if it is not open.
fn identity(fd: RawFd) -> Option<(u64, u64)> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: `fstat` writes at most one `struct stat` into the pointer it
    // is given, which points to one; it reads no other memory. On failure
    // nothing is read back.
    let rc = unsafe { libc::fstat(fd, st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: `fstat` returned 0, so it filled the struct (and it was
    // zeroed before, so every byte is initialised either way).
    let st = unsafe { st.assume_init() };
    Some((st.st_dev, st.st_ino))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_are_distinct_and_closed_once() {
        let a = HostFd::open().unwrap();
        let b = HostFd::open().unwrap();
        assert_ne!(a.raw(), b.raw());
        assert!(a.is_ours() && b.is_ours());
        let n = a.raw();
        a.close();
        assert!(identity(n).is_none() || identity(n) != Some(b.id));
        b.close();
    }
}
