//! The HTTP/1.1 client side the HTTP pulls share (tshttp, HLS), sans-IO: a GET request
//! (with Basic credentials from the input URL when it has them), the response head
//! (httparse, bounded), and the body's framing — `Content-Length`, chunked (RFC 9112 §7.1)
//! or until the origin closes — decoded into the bytes the caller demuxes.

/// Longest response head accepted.
pub const MAX_HEAD: usize = 16 * 1024;
/// Longest chunk-size line accepted (hex digits and extensions).
const MAX_CHUNK_LINE: usize = 1024;

/// Writes `GET path` to `host:port`, asking the origin to keep the connection only as long
/// as this response.
pub fn get_request(host: &str, port: u16, path: &str, userinfo: Option<&str>, out: &mut Vec<u8>) {
    request_with(host, port, path, userinfo, "close", out);
}

/// Writes `GET path` to `host:port` on a connection kept for the next request (HLS).
pub fn get_request_keep_alive(
    host: &str,
    port: u16,
    path: &str,
    userinfo: Option<&str>,
    out: &mut Vec<u8>,
) {
    request_with(host, port, path, userinfo, "keep-alive", out);
}

fn request_with(
    host: &str,
    port: u16,
    path: &str,
    userinfo: Option<&str>,
    connection: &str,
    out: &mut Vec<u8>,
) {
    let host_header = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    out.extend_from_slice(format!("GET {path} HTTP/1.1\r\nHost: {host_header}\r\n").as_bytes());
    out.extend_from_slice(b"User-Agent: tessera-edge\r\nAccept: */*\r\nConnection: ");
    out.extend_from_slice(connection.as_bytes());
    out.extend_from_slice(b"\r\n");
    if let Some(user) = userinfo {
        out.extend_from_slice(b"Authorization: Basic ");
        base64_into(user.as_bytes(), out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

fn base64_into(input: &[u8], out: &mut Vec<u8>) {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
}

/// How the body of a response ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Length(u64),
    Chunked,
    /// Until the origin closes the connection.
    Close,
}

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub framing: Framing,
    /// `Location` of a redirect.
    pub location: Option<String>,
    /// The origin closes the connection after this response (`Connection: close`, or
    /// HTTP/1.0 without `keep-alive`).
    pub closes: bool,
}

/// Parses the response head at the start of `buf`: `Ok(None)` until it is whole, then the
/// head and its length.
pub fn parse_head(buf: &[u8]) -> Result<Option<(ResponseHead, usize)>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 48];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            return Err(format!("response head longer than {MAX_HEAD} bytes"));
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("malformed response head: {e}")),
    };
    let status = response.code.unwrap_or(0);
    let mut framing = Framing::Close;
    let mut location = None;
    let mut connection = None;
    for h in response.headers.iter() {
        let value = std::str::from_utf8(h.value).unwrap_or("").trim();
        if h.name.eq_ignore_ascii_case("transfer-encoding")
            && value.to_ascii_lowercase().ends_with("chunked")
        {
            framing = Framing::Chunked;
        } else if h.name.eq_ignore_ascii_case("content-length") && framing != Framing::Chunked {
            let n = value
                .parse()
                .map_err(|_| format!("bad content-length `{value}`"))?;
            framing = Framing::Length(n);
        } else if h.name.eq_ignore_ascii_case("location") {
            location = Some(value.to_owned());
        } else if h.name.eq_ignore_ascii_case("connection") {
            connection = Some(value.to_ascii_lowercase());
        }
    }
    let closes = match connection.as_deref() {
        Some(c) if c.contains("close") => true,
        Some(c) if c.contains("keep-alive") => false,
        _ => response.version != Some(1),
    };
    Ok(Some((
        ResponseHead {
            status,
            framing,
            location,
            closes,
        },
        len,
    )))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    Size,
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    Done,
}

/// Decodes a body's framing; what it yields is the body's bytes.
#[derive(Debug, Clone)]
pub struct BodyDecoder {
    framing: Framing,
    remaining: u64,
    chunk: ChunkState,
}

impl BodyDecoder {
    pub fn new(framing: Framing) -> Self {
        BodyDecoder {
            framing,
            remaining: match framing {
                Framing::Length(n) => n,
                _ => 0,
            },
            chunk: ChunkState::Size,
        }
    }

    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// The whole body was read (never for `Close`, which ends with the connection).
    pub fn is_done(&self) -> bool {
        match self.framing {
            Framing::Length(_) => self.remaining == 0,
            Framing::Chunked => self.chunk == ChunkState::Done,
            Framing::Close => false,
        }
    }

    /// Consumes what it can of `buf`, handing body bytes to `on_body`; returns the bytes
    /// consumed (the rest waits for more input).
    pub fn decode(&mut self, buf: &[u8], on_body: &mut impl FnMut(&[u8])) -> Result<usize, String> {
        match self.framing {
            Framing::Close => {
                on_body(buf);
                Ok(buf.len())
            }
            Framing::Length(_) => {
                let n = (self.remaining.min(buf.len() as u64)) as usize;
                on_body(&buf[..n]);
                self.remaining -= n as u64;
                Ok(n)
            }
            Framing::Chunked => self.decode_chunked(buf, on_body),
        }
    }

    fn decode_chunked(
        &mut self,
        buf: &[u8],
        on_body: &mut impl FnMut(&[u8]),
    ) -> Result<usize, String> {
        let mut pos = 0;
        loop {
            match self.chunk {
                ChunkState::Done => return Ok(pos),
                ChunkState::Size => {
                    let rest = &buf[pos..];
                    let Some(end) = rest.windows(2).position(|w| w == b"\r\n") else {
                        if rest.len() > MAX_CHUNK_LINE {
                            return Err("chunk size line too long".into());
                        }
                        return Ok(pos);
                    };
                    let line = std::str::from_utf8(&rest[..end]).map_err(|_| "bad chunk size")?;
                    let hex = line.split(';').next().unwrap_or("").trim();
                    let size = u64::from_str_radix(hex, 16)
                        .map_err(|_| format!("bad chunk size `{hex}`"))?;
                    pos += end + 2;
                    // The trailer section after the last chunk is taken as empty.
                    self.chunk = if size == 0 {
                        ChunkState::Done
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(left) => {
                    let rest = &buf[pos..];
                    if rest.is_empty() {
                        return Ok(pos);
                    }
                    let n = (left.min(rest.len() as u64)) as usize;
                    on_body(&rest[..n]);
                    pos += n;
                    self.chunk = if left == n as u64 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left - n as u64)
                    };
                }
                ChunkState::DataEnd => {
                    let rest = &buf[pos..];
                    if rest.len() < 2 {
                        return Ok(pos);
                    }
                    if &rest[..2] != b"\r\n" {
                        return Err("chunk data not followed by CRLF".into());
                    }
                    pos += 2;
                    self.chunk = ChunkState::Size;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_carries_basic_credentials() {
        let mut out = Vec::new();
        get_request("o", 80, "/s/mpegts", Some("Aladdin:open sesame"), &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("GET /s/mpegts HTTP/1.1\r\nHost: o:80\r\n"));
        assert!(text.contains("Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
    }

    #[test]
    fn heads_and_chunked_bodies_decode_in_any_split() {
        let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        assert_eq!(parse_head(&wire[..20]), Ok(None));
        let (head, len) = parse_head(wire).unwrap().unwrap();
        assert_eq!((head.status, head.framing), (200, Framing::Chunked));
        for split in 1..wire.len() - len {
            let body = &wire[len..];
            let mut dec = BodyDecoder::new(head.framing);
            let mut got = Vec::new();
            let mut buf = body[..split].to_vec();
            let used = dec.decode(&buf, &mut |b| got.extend_from_slice(b)).unwrap();
            buf.drain(..used);
            buf.extend_from_slice(&body[split..]);
            dec.decode(&buf, &mut |b| got.extend_from_slice(b)).unwrap();
            assert_eq!(got, b"hello world", "split at {split}");
            assert!(dec.is_done());
        }
        let mut dec = BodyDecoder::new(Framing::Chunked);
        assert!(dec.decode(b"zz\r\n", &mut |_| {}).is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").is_err());
        assert!(parse_head(&[b'a'; MAX_HEAD + 1]).is_err());
    }

    #[test]
    fn lengths_stop_at_the_body_end() {
        let mut dec = BodyDecoder::new(Framing::Length(3));
        let mut got = Vec::new();
        assert_eq!(
            dec.decode(b"abcdef", &mut |b| got.extend_from_slice(b)),
            Ok(3)
        );
        assert!(dec.is_done());
        assert_eq!(got, b"abc");
    }
}
