//! A document rendered once with the places its URIs take the viewer's token query marked,
//! so each request copies the text and writes its own token in: a live playlist changes
//! only when its window does, the token with every request.

use crate::uri::TokenQuery;
use std::ops::Range;

/// Where a renderer writes the token query: a viewer's own ([`TokenQuery`]), or a mark in
/// a [`TokenTemplate`] being built.
pub trait TokenSlot {
    /// The token query at the end of `out` (or the place for it).
    fn put(&mut self, out: &mut Vec<u8>);
}

impl TokenSlot for TokenQuery<'_> {
    fn put(&mut self, out: &mut Vec<u8>) {
        self.write(out);
    }
}

impl<T: TokenSlot + ?Sized> TokenSlot for &mut T {
    fn put(&mut self, out: &mut Vec<u8>) {
        (**self).put(out);
    }
}

/// Marks the token's places in the text being built.
pub struct SlotMarks<'a> {
    slots: &'a mut Vec<u32>,
}

impl TokenSlot for SlotMarks<'_> {
    fn put(&mut self, out: &mut Vec<u8>) {
        // Documents are a few KiB; `u32` keeps the marks small.
        self.slots.push(out.len() as u32);
    }
}

/// A rendered document with its token places, and the revision of what it was rendered
/// from. Rebuilding reuses the buffers: once they have grown, it allocates nothing.
#[derive(Debug, Default)]
pub struct TokenTemplate {
    text: Vec<u8>,
    /// Offsets into `text`, ascending.
    slots: Vec<u32>,
    revision: Option<u64>,
}

impl TokenTemplate {
    /// Re-renders the document through `render` unless it was rendered at `revision`.
    pub fn refresh(&mut self, revision: u64, render: impl FnOnce(&mut Vec<u8>, SlotMarks<'_>)) {
        if self.revision == Some(revision) {
            return;
        }
        self.text.clear();
        self.slots.clear();
        let marks = SlotMarks {
            slots: &mut self.slots,
        };
        render(&mut self.text, marks);
        self.revision = Some(revision);
    }

    /// The document with `token` at every mark, appended to `out`. The token is
    /// percent-encoded once; its other places copy those bytes.
    pub fn write(&self, out: &mut Vec<u8>, token: TokenQuery<'_>) {
        let mut from = 0;
        let mut encoded: Option<Range<usize>> = None;
        for &slot in &self.slots {
            let slot = slot as usize;
            out.extend_from_slice(&self.text[from..slot]);
            match &encoded {
                Some(range) => out.extend_from_within(range.clone()),
                None => {
                    let start = out.len();
                    token.write(out);
                    encoded = Some(start..out.len());
                }
            }
            from = slot;
        }
        out.extend_from_slice(&self.text[from..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(text: &mut Vec<u8>, mut marks: SlotMarks<'_>) {
        marks.put(text);
        text.extend_from_slice(b"a\nb");
        marks.put(text);
        text.push(b'\n');
        marks.put(text);
    }

    #[test]
    fn writes_the_token_at_every_mark_once_encoded() {
        let mut template = TokenTemplate::default();
        template.refresh(1, render);
        let mut out = b"head ".to_vec();
        let token = TokenQuery {
            param: "t",
            token: Some(b"x y"),
        };
        template.write(&mut out, token);
        assert_eq!(out, b"head ?t=x%20ya\nb?t=x%20y\n?t=x%20y");
        out.clear();
        template.write(
            &mut out,
            TokenQuery {
                token: None,
                ..token
            },
        );
        assert_eq!(out, b"a\nb\n");
    }

    #[test]
    fn renders_again_only_at_a_new_revision() {
        let mut template = TokenTemplate::default();
        template.refresh(1, |text, _| text.push(b'1'));
        template.refresh(1, |text, _| text.push(b'2'));
        let token = TokenQuery {
            param: "t",
            token: None,
        };
        let mut out = Vec::new();
        template.write(&mut out, token);
        assert_eq!(out, b"1");
        template.refresh(2, |text, _| text.push(b'2'));
        out.clear();
        template.write(&mut out, token);
        assert_eq!(out, b"2");
    }
}
