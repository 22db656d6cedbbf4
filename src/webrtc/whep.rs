//! WHEP signalling, sans-IO: resource paths, the offer's bound, session resource ids,
//! the Bearer token, and the STUN username that leads a datagram to its session.

/// The largest SDP offer taken (a browser's audio and video offer is 4 to 8 KB).
pub const MAX_OFFER: usize = 32 * 1024;

/// The path segment of the WHEP endpoint: `POST /NAME/whep`.
pub const WHEP_SEGMENT: &str = "whep";

/// What a WHEP path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhepPath<'a> {
    /// `/NAME/whep`: where offers are posted.
    Endpoint { stream: &'a str },
    /// `/NAME/whep/ID`: one session's resource (DELETE ends it).
    Resource { stream: &'a str, id: &'a str },
}

/// Recognises a WHEP path (a normalized path: leading `/`, no `..`).
pub fn whep_path(path: &str) -> Option<WhepPath<'_>> {
    let p = path.strip_prefix('/')?;
    if let Some(stream) = p.strip_suffix("/whep") {
        return (!stream.is_empty()).then_some(WhepPath::Endpoint { stream });
    }
    let (rest, id) = p.rsplit_once('/')?;
    let stream = rest.strip_suffix("/whep")?;
    let valid = !stream.is_empty() && is_resource_id(id);
    valid.then_some(WhepPath::Resource { stream, id })
}

/// A session resource id: 32 lowercase hex digits (128 random bits).
pub const RESOURCE_ID_LEN: usize = 32;

/// Whether `id` has the shape of a resource id.
pub fn is_resource_id(id: &str) -> bool {
    id.len() == RESOURCE_ID_LEN && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Writes 128 bits as a resource id.
pub fn resource_id(bits: u128) -> String {
    format!("{bits:032x}")
}

/// The token of `Authorization: Bearer T` (WHEP clients send it there), if that is what
/// the header holds.
pub fn bearer_token(authorization: Option<&[u8]>) -> Option<&[u8]> {
    let value = authorization?;
    let (scheme, rest) = value.split_at(value.iter().position(|&b| b == b' ')?);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// The local ICE username fragment a STUN binding request is addressed to (its USERNAME
/// is `LOCAL:REMOTE`, RFC 8445 §7.2.2): how a peer's first datagram finds its session.
/// `None` for anything that is not a binding request with a username.
pub fn stun_local_ufrag(datagram: &[u8]) -> Option<&str> {
    let msg = str0m::ice::StunMessage::parse(datagram).ok()?;
    if !msg.is_binding_request() {
        return None;
    }
    let username = msg.username()?;
    let (local, _) = username.split_once(':')?;
    (!local.is_empty()).then_some(local)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whep_paths_name_the_endpoint_and_resources() {
        assert_eq!(
            whep_path("/live/cam/whep"),
            Some(WhepPath::Endpoint { stream: "live/cam" })
        );
        let id = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            whep_path(&format!("/cam/whep/{id}")),
            Some(WhepPath::Resource { stream: "cam", id })
        );
        assert_eq!(whep_path("/whep"), None);
        assert_eq!(whep_path("/cam/whep/short"), None);
        assert_eq!(
            whep_path("/cam/whep/0123456789ABCDEF0123456789abcdef"),
            None
        );
        assert_eq!(whep_path("/cam/index.m3u8"), None);
    }

    #[test]
    fn resource_ids_are_32_hex_digits() {
        let id = resource_id(0xdead_beef);
        assert_eq!(id.len(), RESOURCE_ID_LEN);
        assert!(is_resource_id(&id));
        assert!(is_resource_id(&resource_id(u128::MAX)));
    }

    #[test]
    fn the_bearer_token_is_read_from_authorization() {
        assert_eq!(bearer_token(Some(b"Bearer abc")), Some(&b"abc"[..]));
        assert_eq!(bearer_token(Some(b"bearer  abc ")), Some(&b"abc"[..]));
        assert_eq!(bearer_token(Some(b"Basic abc")), None);
        assert_eq!(bearer_token(Some(b"Bearer ")), None);
        assert_eq!(bearer_token(Some(b"Bearer")), None);
        assert_eq!(bearer_token(None), None);
    }

    #[test]
    fn a_stun_binding_request_names_its_local_ufrag() {
        // RFC 5769 §2.1's sample request: USERNAME "evtj:h6vY".
        let request: [u8; 108] = [
            0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34,
            0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e,
            0x20, 0x74, 0x65, 0x73, 0x74, 0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x00, 0x24,
            0x00, 0x04, 0x6e, 0x00, 0x01, 0xff, 0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1,
            0x51, 0x26, 0x3b, 0x36, 0x00, 0x06, 0x00, 0x09, 0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68,
            0x36, 0x76, 0x59, 0x20, 0x20, 0x20, 0x00, 0x08, 0x00, 0x14, 0x9a, 0xea, 0xa7, 0x0c,
            0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e, 0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49, 0xc1, 0xb5,
            0x71, 0xa2, 0x80, 0x28, 0x00, 0x04, 0xe5, 0x7a, 0x3b, 0xcf,
        ];
        assert_eq!(stun_local_ufrag(&request), Some("evtj"));
        assert_eq!(stun_local_ufrag(&request[..40]), None);
        assert_eq!(stun_local_ufrag(b"\x16\xfe\xfd not stun"), None);
        assert_eq!(stun_local_ufrag(&[]), None);
    }
}
