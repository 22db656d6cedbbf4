//! Percent-encoding (RFC 3986 §2.1), both ways, for request targets, token queries,
//! playlists and portal requests.

use super::TargetError;

/// Appends the percent-decoding of `src` to `dst`. `+` stays `+` (RFC 3986, not form
/// encoding), so base64 tokens survive.
pub fn percent_decode_into(src: &[u8], dst: &mut Vec<u8>) -> Result<(), TargetError> {
    let mut i = 0;
    while i < src.len() {
        let b = src[i];
        if b == b'%' {
            let hi = src.get(i + 1).and_then(|&c| hex_value(c));
            let lo = src.get(i + 2).and_then(|&c| hex_value(c));
            match (hi, lo) {
                (Some(hi), Some(lo)) => dst.push(hi << 4 | lo),
                _ => return Err(TargetError::BadPercentEncoding),
            }
            i += 3;
        } else {
            dst.push(b);
            i += 1;
        }
    }
    Ok(())
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Appends `value` percent-encoded so it is safe inside a URI query value and inside a
/// playlist line: everything but RFC 3986 unreserved characters is encoded.
pub fn percent_encode_into(value: &[u8], dst: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in value {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            dst.push(b);
        } else {
            dst.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_escapes_everything_unsafe() {
        let mut v = Vec::new();
        percent_encode_into(b"ab-_.~ \n#&?=%/+", &mut v);
        assert_eq!(v, b"ab-_.~%20%0A%23%26%3F%3D%25%2F%2B");
    }
}
