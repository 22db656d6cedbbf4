//! Large shared bodies (media segments) sent with `sendfile` from a memory file: the kernel
//! then hangs the file's pages on the socket instead of copying the bytes into every
//! viewer's socket buffer, which was most of a segment request's cost (the copy was 61% of
//! the server's samples under wrk; nginx serves its segment files the same way).
//!
//! Each shard keeps a memory file (`memfd`) for the last few large bodies asked of it, made
//! on the first request: one copy per body per shard instead of one per request. A body is
//! known by its shared buffer (address and length): the entry holds a clone of the `Bytes`,
//! so the buffer cannot be freed and its address reused while the file stands for it.
//! Plain TCP only (TLS encrypts in user space); anything that fails falls back to the send.

use bytes::Bytes;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::rc::Rc;

/// Bodies below this are sent as they are: the file costs more than the copy.
pub const MIN_BODY: usize = 64 * 1024;
/// Files kept per shard (each is a descriptor; the file limit's reserve covers them).
const KEPT: usize = 8;

struct Kept {
    body: Bytes,
    /// Shared with the sends in flight (no `dup`: a descriptor per download would count
    /// against the file limit the connection caps are derived from).
    file: Rc<OwnedFd>,
}

thread_local! {
    // One per shard thread: a shard's connections share its files; no other thread sees them.
    static FILES: RefCell<VecDeque<Kept>> = const { RefCell::new(VecDeque::new()) };
}

/// The memory file holding `body`'s bytes (made now when it is not kept yet), open for as
/// long as the caller holds it; `None` when one cannot be made.
pub fn file_for(body: &Bytes) -> Option<Rc<OwnedFd>> {
    FILES.with(|files| {
        let mut files = files.borrow_mut();
        if let Some(kept) = files.iter().find(|k| same_buffer(&k.body, body)) {
            return Some(kept.file.clone());
        }
        let file = write_file(body)
            .map_err(|e| log::debug!("no memory file for a {} B body: {e}", body.len()))
            .ok()?;
        let file = Rc::new(file);
        let mine = file.clone();
        if files.len() == KEPT {
            files.pop_front();
        }
        files.push_back(Kept {
            body: body.clone(),
            file,
        });
        Some(mine)
    })
}

fn same_buffer(a: &Bytes, b: &Bytes) -> bool {
    a.as_ptr() == b.as_ptr() && a.len() == b.len()
}

fn write_file(body: &[u8]) -> std::io::Result<OwnedFd> {
    use nix::sys::memfd::{MemFdCreateFlag, memfd_create};
    let file = memfd_create(c"tessera-body", MemFdCreateFlag::MFD_CLOEXEC)?;
    let mut written = 0;
    while written < body.len() {
        match nix::unistd::write(file.as_raw_fd(), &body[written..]) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(file)
}

/// What one nonblocking `sendfile` did.
pub enum Sent {
    Bytes(usize),
    /// The socket's buffer is full.
    Full,
}

/// Sends what fits now of `file` from `offset` (up to `count` bytes) to the socket `fd`,
/// without waiting: the socket is made nonblocking for the call (glommio's sockets are
/// blocking; io_uring never needs otherwise) and blocking again after it.
pub fn send_now(
    fd: RawFd,
    file: &OwnedFd,
    offset: &mut i64,
    count: usize,
) -> std::io::Result<Sent> {
    // SAFETY: `fd` is the connection's socket, open for as long as its stream is borrowed.
    let socket = unsafe { BorrowedFd::borrow_raw(fd) };
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    let sent = loop {
        match nix::sys::sendfile::sendfile(socket, file.as_fd(), Some(offset), count) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => break other,
        }
    };
    fcntl(fd, FcntlArg::F_SETFL(flags))?;
    match sent {
        Ok(n) => Ok(Sent::Bytes(n)),
        Err(nix::errno::Errno::EAGAIN) => Ok(Sent::Full),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_gets_one_file_with_its_bytes_and_a_slice_of_it_another() {
        let body = Bytes::from(vec![7u8; MIN_BODY]);
        let a = file_for(&body).expect("memfd");
        let b = file_for(&body.clone()).expect("memfd");
        let size = |f: &Rc<OwnedFd>| nix::sys::stat::fstat(f.as_raw_fd()).unwrap().st_size;
        assert_eq!(size(&a), MIN_BODY as i64);
        let inode = |f: &Rc<OwnedFd>| nix::sys::stat::fstat(f.as_raw_fd()).unwrap().st_ino;
        assert_eq!(inode(&a), inode(&b));
        let c = file_for(&body.slice(1..)).expect("memfd");
        assert_ne!(inode(&a), inode(&c));
        assert_eq!(size(&c), MIN_BODY as i64 - 1);
    }

    #[test]
    fn only_the_last_bodies_keep_their_files() {
        let bodies: Vec<Bytes> = (0..KEPT + 1)
            .map(|i| Bytes::from(vec![i as u8; 16]))
            .collect();
        for b in &bodies {
            file_for(b).expect("memfd");
        }
        FILES.with(|f| {
            let f = f.borrow();
            assert_eq!(f.len(), KEPT);
            assert!(!f.iter().any(|k| same_buffer(&k.body, &bodies[0])));
        });
    }
}
