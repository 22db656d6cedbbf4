//! `TokenQuery`: the `?PARAM=TOKEN` a viewer's token travels in, written into every URI a
//! playlist, manifest or player page hands out.

use super::percent_encode_into;

/// The query a viewer's URIs must carry: `?PARAM=TOKEN`, or nothing for open streams.
#[derive(Clone, Copy, Debug)]
pub struct TokenQuery<'a> {
    pub param: &'a str,
    pub token: Option<&'a [u8]>,
}

impl TokenQuery<'_> {
    /// Appends `?param=token` (percent-encoded) when there is a token.
    pub fn write(&self, out: &mut Vec<u8>) {
        if let Some(token) = self.token {
            out.push(b'?');
            percent_encode_into(self.param.as_bytes(), out);
            out.push(b'=');
            percent_encode_into(token, out);
        }
    }
}
