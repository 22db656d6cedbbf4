//! Large shared bodies (media segments) sent with `sendfile` from a memory file: the kernel
//! then hangs the file's pages on the socket instead of copying the bytes into every
//! viewer's socket buffer, which was most of a segment request's cost (the copy was 61% of
//! the server's samples under wrk; nginx serves its segment files the same way).
//!
//! Each shard keeps a memory file (`memfd`) for the large bodies asked of it most recently:
//! one copy per body per shard instead of one per request. A file is made at a body's
//! *second* request (the first is sent from memory and only remembered): making a file costs
//! a copy, so a body asked once — or a set of hot bodies larger than what is kept, going
//! round — must not pay it on every request. The files kept are bounded by count (the
//! descriptors the connection caps keep back per shard) and by bytes; the least recently
//! used makes room, unless it was used within `BUSY`: then the new body is sent from memory,
//! so more hot bodies than files keep the files they have (and the rest pays the copy,
//! as before files) instead of each request making a file for another to drop. A body is known by its shared buffer (address and length): a
//! kept entry holds a clone of the `Bytes`, so the buffer cannot be freed and its address
//! reused while the file stands for it (a remembered first request holds nothing: at worst a
//! new body at a freed one's address gets its file one request early).
//! Plain TCP only (TLS encrypts in user space); anything that fails falls back to the send.

use crate::config::FD_RESERVE_BODY_FILES;
use bytes::Bytes;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Bodies below this are sent as they are: the file costs more than the copy.
pub const MIN_BODY: usize = 64 * 1024;
/// Files kept per shard at most (each is a descriptor the connection caps keep back).
const KEPT: usize = FD_RESERVE_BODY_FILES as usize;
/// Bytes of files kept per shard at most: each holds a second copy of its body.
const KEPT_BYTES: usize = 64 << 20;
/// First requests remembered per shard (address and length), to know a body's second.
const SEEN: usize = 64;
/// A file used this recently is not made room from.
const BUSY: Duration = Duration::from_secs(1);

struct Kept {
    body: Bytes,
    /// Shared with the sends in flight (no `dup`: a descriptor per download would count
    /// against the file limit the connection caps are derived from).
    file: Rc<OwnedFd>,
    used: Instant,
}

/// One shard's files, least recently used first, and the bodies asked once.
struct Files {
    kept: VecDeque<Kept>,
    bytes: usize,
    seen: [(usize, usize); SEEN],
    next_seen: usize,
}

thread_local! {
    // One per shard thread: a shard's connections share its files; no other thread sees them.
    static FILES: RefCell<Files> = const {
        RefCell::new(Files {
            kept: VecDeque::new(),
            bytes: 0,
            seen: [(0, 0); SEEN],
            next_seen: 0,
        })
    };
}

/// The memory file holding `body`'s bytes, open for as long as the caller holds it; `None`
/// at the body's first request, when the files kept are all busy (send it from memory) or
/// when a file cannot be made.
pub fn file_for(body: &Bytes, now: Instant) -> Option<Rc<OwnedFd>> {
    FILES.with(|files| files.borrow_mut().file_for(body, now))
}

impl Files {
    fn file_for(&mut self, body: &Bytes, now: Instant) -> Option<Rc<OwnedFd>> {
        if let Some(at) = self.kept.iter().position(|k| same_buffer(&k.body, body)) {
            let mut kept = self.kept.remove(at)?;
            kept.used = now;
            let file = kept.file.clone();
            self.kept.push_back(kept);
            return Some(file);
        }
        if !self.asked_before(body) || !self.make_room(body.len(), now) {
            return None;
        }
        let file = write_file(body)
            .map_err(|e| log::debug!("no memory file for a {} B body: {e}", body.len()))
            .ok()?;
        let file = Rc::new(file);
        self.bytes += body.len();
        self.kept.push_back(Kept {
            body: body.clone(),
            file: file.clone(),
            used: now,
        });
        Some(file)
    }

    /// Drops the least recently used files until a body of `len` fits; `false` (nothing
    /// dropped) when that would drop one used within `BUSY`.
    fn make_room(&mut self, len: usize, now: Instant) -> bool {
        if len > KEPT_BYTES {
            return false;
        }
        let (mut count, mut bytes, mut dropped) = (self.kept.len(), self.bytes, 0);
        for k in &self.kept {
            if count < KEPT && bytes + len <= KEPT_BYTES {
                break;
            }
            if now.saturating_duration_since(k.used) < BUSY {
                return false;
            }
            count -= 1;
            bytes -= k.body.len();
            dropped += 1;
        }
        for old in self.kept.drain(..dropped) {
            self.bytes -= old.body.len();
        }
        true
    }

    /// Whether `body` was asked for since it was last remembered; remembers it if not.
    fn asked_before(&mut self, body: &Bytes) -> bool {
        let id = (body.as_ptr() as usize, body.len());
        if let Some(slot) = self.seen.iter_mut().find(|s| **s == id) {
            *slot = (0, 0);
            return true;
        }
        self.seen[self.next_seen] = id;
        self.next_seen = (self.next_seen + 1) % SEEN;
        false
    }
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

    fn size(f: &Rc<OwnedFd>) -> i64 {
        nix::sys::stat::fstat(f.as_raw_fd()).unwrap().st_size
    }

    fn inode(f: &Rc<OwnedFd>) -> u64 {
        nix::sys::stat::fstat(f.as_raw_fd()).unwrap().st_ino
    }

    fn kept(body: &Bytes) -> bool {
        FILES.with(|f| f.borrow().kept.iter().any(|k| same_buffer(&k.body, body)))
    }

    /// Asks for `body` twice at `now`: the second request makes or finds its file.
    fn asked_twice(body: &Bytes, now: Instant) -> Option<Rc<OwnedFd>> {
        file_for(body, now);
        file_for(body, now)
    }

    #[test]
    fn a_body_gets_its_file_at_its_second_request_and_a_slice_of_it_another() {
        let now = Instant::now();
        let body = Bytes::from(vec![7u8; MIN_BODY]);
        assert!(
            file_for(&body, now).is_none(),
            "the first is sent from memory"
        );
        let a = file_for(&body, now).expect("memfd");
        let b = file_for(&body.clone(), now).expect("memfd");
        assert_eq!(size(&a), MIN_BODY as i64);
        assert_eq!(inode(&a), inode(&b));
        let slice = body.slice(1..);
        assert!(file_for(&slice, now).is_none());
        let c = file_for(&slice, now).expect("memfd");
        assert_ne!(inode(&a), inode(&c));
        assert_eq!(size(&c), MIN_BODY as i64 - 1);
    }

    #[test]
    fn the_least_recently_used_file_makes_room_once_idle() {
        let start = Instant::now();
        let bodies: Vec<Bytes> = (0..KEPT + 1)
            .map(|i| Bytes::from(vec![i as u8; 16]))
            .collect();
        for b in &bodies[..KEPT] {
            asked_twice(b, start).expect("memfd");
        }
        // Every file is busy: the newcomer is sent from memory and nothing is dropped.
        assert!(asked_twice(&bodies[KEPT], start).is_none());
        assert!(bodies[..KEPT].iter().all(kept));
        // A second on, the first is used again: the second is the least recently used.
        let later = start + BUSY;
        file_for(&bodies[0], later).expect("kept");
        asked_twice(&bodies[KEPT], later).expect("memfd");
        FILES.with(|f| assert_eq!(f.borrow().kept.len(), KEPT));
        assert!(kept(&bodies[0]));
        assert!(!kept(&bodies[1]));
        assert!(kept(&bodies[KEPT]));
    }

    #[test]
    fn bodies_asked_once_each_make_no_file() {
        let now = Instant::now();
        let bodies: Vec<Bytes> = (0..SEEN * 2)
            .map(|i| Bytes::from(vec![i as u8; 16]))
            .collect();
        for b in &bodies {
            assert!(file_for(b, now).is_none());
        }
        assert!(!bodies.iter().any(kept));
    }

    #[test]
    fn kept_files_stay_within_their_bytes() {
        let start = Instant::now();
        let big = KEPT_BYTES / 3 + 1;
        let bodies: Vec<Bytes> = (0..3).map(|i| Bytes::from(vec![i as u8; big])).collect();
        for (i, b) in bodies.iter().enumerate() {
            asked_twice(b, start + BUSY * i as u32).expect("memfd");
        }
        FILES.with(|f| {
            let f = f.borrow();
            assert_eq!(f.kept.len(), 2);
            assert!(f.bytes <= KEPT_BYTES);
        });
        assert!(!kept(&bodies[0]));
    }
}
