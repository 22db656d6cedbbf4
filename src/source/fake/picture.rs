//! The pictures of the `fake://` source: 8-bit 4:2:0 planes (Y 320x240, Cb and Cr 160x120),
//! the test card painted on them (colour bars, a luma ramp, a bouncing box, and the frame's
//! UTC wall-clock time and counter in a 5x7 bitmap font), and which 16x16 macroblocks changed
//! since the previous picture.
//!
//! Every sample stays in the nominal video range (ITU-R BT.601: luma 16..=235, chroma
//! 16..=240) so the I_PCM macroblocks of ITU-T H.264 §7.3.5 / §8.3.5 carry legal values.
//! Sample order of a PCM macroblock follows §7.3.5: 256 luma samples in raster order, then 64
//! Cb, then 64 Cr.
//!
//! Never: encodes (see `encoder`) or keeps time (the caller passes the frame's clock).

/// Luma width in samples.
pub const WIDTH: usize = 320;
/// Luma height in samples.
pub const HEIGHT: usize = 240;
/// Chroma plane width (4:2:0).
pub const CHROMA_WIDTH: usize = WIDTH / 2;
/// Chroma plane height (4:2:0).
pub const CHROMA_HEIGHT: usize = HEIGHT / 2;
/// Macroblock columns.
pub const WIDTH_MBS: usize = WIDTH / 16;
/// Macroblock rows.
pub const HEIGHT_MBS: usize = HEIGHT / 16;
/// Macroblocks in a picture (`PicSizeInMbs`).
pub const MB_COUNT: usize = WIDTH_MBS * HEIGHT_MBS;
/// Samples of one I_PCM macroblock: 16x16 luma and two 8x8 chroma blocks.
pub const PCM_SAMPLES_PER_MB: usize = 256 + 2 * 64;

/// Height of the black band at the top that holds the text.
const TEXT_BAND_HEIGHT: usize = 32;
/// Top of the luma ramp at the bottom of the picture.
const RAMP_TOP: usize = 208;
/// Side of the bouncing box, in luma samples.
const BOX_SIZE: usize = 32;
/// Width of the box's black border.
const BOX_BORDER: usize = 4;
/// Box speed in luma samples per frame; even, so the box stays on chroma sample boundaries.
const BOX_STEP_X: usize = 4;
const BOX_STEP_Y: usize = 2;
/// Font magnification: each font pixel becomes a square of this side.
const TEXT_SCALE: usize = 2;
/// Horizontal distance between characters, in font pixels (5 wide plus 1 space).
const GLYPH_ADVANCE: usize = 6;
/// Where the clock line and the counter line start. Each line fits one macroblock row, so a
/// changing digit dirties as few macroblocks as possible.
const CLOCK_ORIGIN: (usize, usize) = (8, 1);
const COUNTER_ORIGIN: (usize, usize) = (8, 17);

/// One colour in Y'CbCr, already within the nominal range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Yuv {
    y: u8,
    cb: u8,
    cr: u8,
}

impl Yuv {
    /// A colour clamped into luma 16..=235, chroma 16..=240.
    pub const fn new(y: u8, cb: u8, cr: u8) -> Self {
        const fn clamp(v: u8, max: u8) -> u8 {
            if v < 16 {
                16
            } else if v > max {
                max
            } else {
                v
            }
        }
        Yuv {
            y: clamp(y, 235),
            cb: clamp(cb, 240),
            cr: clamp(cr, 240),
        }
    }
}

const BLACK: Yuv = Yuv::new(16, 128, 128);
const WHITE: Yuv = Yuv::new(235, 128, 128);

/// 75% colour bars (ITU-R BT.601 Y'CbCr), left to right, plus a black eighth bar.
const BARS: [Yuv; 8] = [
    Yuv::new(180, 128, 128), // white
    Yuv::new(162, 44, 142),  // yellow
    Yuv::new(131, 156, 44),  // cyan
    Yuv::new(112, 72, 58),   // green
    Yuv::new(84, 184, 198),  // magenta
    Yuv::new(65, 100, 212),  // red
    Yuv::new(35, 212, 114),  // blue
    Yuv::new(16, 128, 128),  // black
];

/// An 8-bit 4:2:0 picture whose samples are all within the nominal range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Picture {
    luma: Vec<u8>,
    cb: Vec<u8>,
    cr: Vec<u8>,
}

impl Picture {
    /// A picture of one colour.
    pub fn filled(colour: Yuv) -> Self {
        Picture {
            luma: vec![colour.y; WIDTH * HEIGHT],
            cb: vec![colour.cb; CHROMA_WIDTH * CHROMA_HEIGHT],
            cr: vec![colour.cr; CHROMA_WIDTH * CHROMA_HEIGHT],
        }
    }

    /// The luma plane, `WIDTH` samples per row.
    pub fn luma(&self) -> &[u8] {
        &self.luma
    }

    /// The Cb plane, `CHROMA_WIDTH` samples per row.
    pub fn cb(&self) -> &[u8] {
        &self.cb
    }

    /// The Cr plane, `CHROMA_WIDTH` samples per row.
    pub fn cr(&self) -> &[u8] {
        &self.cr
    }

    /// Fills a rectangle given in luma samples, clipped to the picture. Chroma covers every
    /// chroma sample the rectangle touches, so keep `x`, `y`, `w`, `h` even for exact edges.
    fn fill_rect(&mut self, x: usize, y: usize, w: usize, h: usize, colour: Yuv) {
        let (x_end, y_end) = ((x + w).min(WIDTH), (y + h).min(HEIGHT));
        if x >= x_end || y >= y_end {
            return;
        }
        for row in self.luma[y * WIDTH..y_end * WIDTH].chunks_exact_mut(WIDTH) {
            row[x..x_end].fill(colour.y);
        }
        let (cx, cx_end) = (x / 2, x_end.div_ceil(2));
        let (cy, cy_end) = (y / 2, y_end.div_ceil(2));
        let rows = cy * CHROMA_WIDTH..cy_end * CHROMA_WIDTH;
        for row in self.cb[rows.clone()].chunks_exact_mut(CHROMA_WIDTH) {
            row[cx..cx_end].fill(colour.cb);
        }
        for row in self.cr[rows].chunks_exact_mut(CHROMA_WIDTH) {
            row[cx..cx_end].fill(colour.cr);
        }
    }

    /// Sets the luma of a rectangle, clipped to the picture; chroma is left alone.
    fn fill_luma_rect(&mut self, x: usize, y: usize, w: usize, h: usize, luma: u8) {
        let (x_end, y_end) = ((x + w).min(WIDTH), (y + h).min(HEIGHT));
        if x >= x_end || y >= y_end {
            return;
        }
        for row in self.luma[y * WIDTH..y_end * WIDTH].chunks_exact_mut(WIDTH) {
            row[x..x_end].fill(luma);
        }
    }

    /// The samples of macroblock `mb_addr` (raster order) in I_PCM order (§7.3.5): 256 luma
    /// in raster order, then 64 Cb, then 64 Cr.
    ///
    /// Panics when `mb_addr` is not below [`MB_COUNT`]: callers iterate `0..MB_COUNT`.
    pub fn pcm_samples(&self, mb_addr: usize, out: &mut [u8; PCM_SAMPLES_PER_MB]) {
        let (mb_x, mb_y) = (mb_addr % WIDTH_MBS, mb_addr / WIDTH_MBS);
        let (luma, chroma) = out.split_at_mut(256);
        for (row, dst) in luma.chunks_exact_mut(16).enumerate() {
            let start = (mb_y * 16 + row) * WIDTH + mb_x * 16;
            dst.copy_from_slice(&self.luma[start..start + 16]);
        }
        let (cb, cr) = chroma.split_at_mut(64);
        for (plane, dst) in [(&self.cb, cb), (&self.cr, cr)] {
            for (row, dst) in dst.chunks_exact_mut(8).enumerate() {
                let start = (mb_y * 8 + row) * CHROMA_WIDTH + mb_x * 8;
                dst.copy_from_slice(&plane[start..start + 8]);
            }
        }
    }

    /// Whether macroblock `mb_addr` differs between `self` and `other`.
    fn macroblock_differs(&self, other: &Picture, mb_addr: usize) -> bool {
        let (mb_x, mb_y) = (mb_addr % WIDTH_MBS, mb_addr / WIDTH_MBS);
        let luma_differs = (0..16).any(|row| {
            let start = (mb_y * 16 + row) * WIDTH + mb_x * 16;
            self.luma[start..start + 16] != other.luma[start..start + 16]
        });
        luma_differs
            || (0..8).any(|row| {
                let start = (mb_y * 8 + row) * CHROMA_WIDTH + mb_x * 8;
                self.cb[start..start + 8] != other.cb[start..start + 8]
                    || self.cr[start..start + 8] != other.cr[start..start + 8]
            })
    }
}

/// A set of macroblock addresses (raster order, below [`MB_COUNT`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirtyMacroblocks {
    bits: [u64; MB_COUNT.div_ceil(64)],
}

impl DirtyMacroblocks {
    /// Every macroblock of the picture.
    pub fn all() -> Self {
        let mut set = Self::default();
        for mb_addr in 0..MB_COUNT {
            set.insert(mb_addr);
        }
        set
    }

    /// Adds `mb_addr`; addresses outside the picture are ignored.
    pub fn insert(&mut self, mb_addr: usize) {
        if mb_addr < MB_COUNT {
            self.bits[mb_addr / 64] |= 1 << (mb_addr % 64);
        }
    }

    pub fn contains(&self, mb_addr: usize) -> bool {
        mb_addr < MB_COUNT && self.bits[mb_addr / 64] & (1 << (mb_addr % 64)) != 0
    }

    /// How many macroblocks are in the set.
    pub fn len(&self) -> usize {
        self.bits.iter().map(|w| w.count_ones() as usize).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|w| *w == 0)
    }
}

/// The moving test card: paints one picture per frame and reports which macroblocks changed.
///
/// The content is a pure function of the frame index and its clock, so a picture can be
/// painted again (e.g. by a test) without replaying the frames before it.
#[derive(Clone, Debug)]
pub struct TestCard {
    /// Static layer: text band, colour bars, luma ramp.
    background: Picture,
    /// The picture of the last painted frame.
    current: Picture,
    /// The picture of the frame before it, kept to find the changed macroblocks.
    previous: Picture,
}

impl Default for TestCard {
    fn default() -> Self {
        Self::new()
    }
}

impl TestCard {
    pub fn new() -> Self {
        let mut background = Picture::filled(BLACK);
        let bar_width = WIDTH / BARS.len();
        for (i, colour) in BARS.iter().enumerate() {
            background.fill_rect(
                i * bar_width,
                TEXT_BAND_HEIGHT,
                bar_width,
                RAMP_TOP - TEXT_BAND_HEIGHT,
                *colour,
            );
        }
        for x in 0..WIDTH {
            // 16 at the left edge to 235 at the right edge: within range by construction.
            let luma = 16 + (x * 219 / (WIDTH - 1)) as u8;
            background.fill_luma_rect(x, RAMP_TOP, 1, HEIGHT - RAMP_TOP, luma);
        }
        TestCard {
            current: background.clone(),
            previous: background.clone(),
            background,
        }
    }

    /// The picture of the last painted frame.
    pub fn picture(&self) -> &Picture {
        &self.current
    }

    /// Paints frame `frame_index`, whose wall-clock time is `utc_ms` (milliseconds since the
    /// Unix epoch), and returns the macroblocks that differ from the previously painted frame.
    pub fn paint(&mut self, frame_index: u64, utc_ms: i64) -> DirtyMacroblocks {
        std::mem::swap(&mut self.current, &mut self.previous);
        self.current.clone_from(&self.background);

        let (box_x, box_y) = box_position(frame_index);
        self.current
            .fill_rect(box_x, box_y, BOX_SIZE, BOX_SIZE, BLACK);
        self.current.fill_rect(
            box_x + BOX_BORDER,
            box_y + BOX_BORDER,
            BOX_SIZE - 2 * BOX_BORDER,
            BOX_SIZE - 2 * BOX_BORDER,
            WHITE,
        );

        let clock = clock_text(utc_ms);
        self.draw_text(CLOCK_ORIGIN, &clock);
        let counter = counter_text(frame_index);
        self.draw_text(COUNTER_ORIGIN, &counter);

        let mut dirty = DirtyMacroblocks::default();
        for mb_addr in 0..MB_COUNT {
            if self.current.macroblock_differs(&self.previous, mb_addr) {
                dirty.insert(mb_addr);
            }
        }
        dirty
    }

    /// Draws white text on the text band; unknown characters are blank.
    fn draw_text(&mut self, (x0, y0): (usize, usize), text: &[u8]) {
        for (i, &c) in text.iter().enumerate() {
            let glyph_x = x0 + i * GLYPH_ADVANCE * TEXT_SCALE;
            for (row, bits) in glyph(c).iter().enumerate() {
                for col in 0..5 {
                    if bits & (0x10 >> col) != 0 {
                        self.current.fill_luma_rect(
                            glyph_x + col * TEXT_SCALE,
                            y0 + row * TEXT_SCALE,
                            TEXT_SCALE,
                            TEXT_SCALE,
                            WHITE.y,
                        );
                    }
                }
            }
        }
    }
}

/// Top-left corner of the box in frame `frame_index`: it bounces between the picture edges
/// below the text band, moving `BOX_STEP_X`, `BOX_STEP_Y` samples per frame.
fn box_position(frame_index: u64) -> (usize, usize) {
    /// Position on a path that goes 0..=span and back, `travelled` samples along it.
    fn bounce(travelled: u64, span: u64) -> usize {
        let phase = travelled % (2 * span);
        // Both branches are at most `span`, which is below the picture size.
        (if phase <= span {
            phase
        } else {
            2 * span - phase
        }) as usize
    }
    let x = bounce(frame_index * BOX_STEP_X as u64, (WIDTH - BOX_SIZE) as u64);
    let y_span = (HEIGHT - TEXT_BAND_HEIGHT - BOX_SIZE) as u64;
    // Start halfway down so the box does not begin in a corner.
    let y = bounce(frame_index * BOX_STEP_Y as u64 + y_span / 2, y_span);
    (x, TEXT_BAND_HEIGHT + y)
}

/// `HH:MM:SS.mmm UTC` of a Unix time in milliseconds.
fn clock_text(utc_ms: i64) -> [u8; 16] {
    const MS_PER_DAY: i64 = 86_400_000;
    // rem_euclid keeps times before 1970 on the right side of midnight; the result is below
    // 86_400_000, so it fits every field below.
    let ms_of_day = utc_ms.rem_euclid(MS_PER_DAY) as u32;
    let (h, m, s, ms) = (
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000,
    );
    let mut text = *b"00:00:00.000 UTC";
    write_digits(&mut text[0..2], h);
    write_digits(&mut text[3..5], m);
    write_digits(&mut text[6..8], s);
    write_digits(&mut text[9..12], ms);
    text
}

/// `FRAME nnnnnnnn`: the frame index, zero-padded, wrapping past 8 digits.
fn counter_text(frame_index: u64) -> [u8; 14] {
    let mut text = *b"FRAME 00000000";
    // Below 10^8 after the modulo, so it fits in u32.
    write_digits(&mut text[6..], (frame_index % 100_000_000) as u32);
    text
}

/// Writes `value` as decimal digits right-aligned into `out`, keeping its lowest digits.
fn write_digits(out: &mut [u8], mut value: u32) {
    for slot in out.iter_mut().rev() {
        // `value % 10` is a single digit.
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// The 5x7 bitmap of a character: seven rows, bit 4 is the leftmost column.
fn glyph(c: u8) -> [u8; 7] {
    match c {
        b'0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        b'1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        b'2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        b'3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        b'4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        b'5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        b'6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        b'7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        b'8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        b'9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        b':' => [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00],
        b'.' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C],
        b'A' => [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        b'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        b'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        b'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        b'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        b'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        b'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        b'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        _ => [0; 7],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_range(picture: &Picture) -> bool {
        picture.luma().iter().all(|v| (16..=235).contains(v))
            && picture
                .cb()
                .iter()
                .chain(picture.cr())
                .all(|v| (16..=240).contains(v))
    }

    #[test]
    fn clock_and_counter_text() {
        // 2024-01-02T03:04:05.678Z
        assert_eq!(&clock_text(1_704_164_645_678), b"03:04:05.678 UTC");
        assert_eq!(&clock_text(-1), b"23:59:59.999 UTC");
        assert_eq!(&counter_text(42), b"FRAME 00000042");
        assert_eq!(&counter_text(123_456_789), b"FRAME 23456789");
    }

    #[test]
    fn text_fits_the_band_and_one_macroblock_row_per_line() {
        let glyph_height = 7 * TEXT_SCALE;
        assert_eq!(
            CLOCK_ORIGIN.1 / 16,
            (CLOCK_ORIGIN.1 + glyph_height - 1) / 16
        );
        assert_eq!(
            COUNTER_ORIGIN.1 / 16,
            (COUNTER_ORIGIN.1 + glyph_height - 1) / 16
        );
        assert!(COUNTER_ORIGIN.1 + glyph_height <= TEXT_BAND_HEIGHT);
        assert!(CLOCK_ORIGIN.0 + 16 * GLYPH_ADVANCE * TEXT_SCALE <= WIDTH);
    }

    #[test]
    fn box_stays_inside_and_moves() {
        let mut last = None;
        for frame in 0..2000 {
            let (x, y) = box_position(frame);
            assert!(x + BOX_SIZE <= WIDTH && y + BOX_SIZE <= HEIGHT);
            assert!(y >= TEXT_BAND_HEIGHT);
            assert!(x % 2 == 0 && y % 2 == 0, "box off the chroma grid");
            assert_ne!(Some((x, y)), last);
            last = Some((x, y));
        }
    }

    #[test]
    fn dirty_macroblocks_are_exactly_the_changed_ones() {
        let mut card = TestCard::new();
        let first = card.paint(0, 1_000);
        assert!(!first.is_empty());
        for frame in 1..60u64 {
            let before = card.picture().clone();
            let dirty = card.paint(frame, 1_000 + frame as i64 * 40);
            let after = card.picture();
            assert!(in_range(after));
            assert!(
                dirty.len() < MB_COUNT / 4,
                "frame {frame}: {} dirty",
                dirty.len()
            );
            // Copy the dirty macroblocks onto the old picture: the result is the new one.
            let mut patched = before.clone();
            let mut samples = [0u8; PCM_SAMPLES_PER_MB];
            for mb_addr in 0..MB_COUNT {
                after.pcm_samples(mb_addr, &mut samples);
                let mut old = [0u8; PCM_SAMPLES_PER_MB];
                before.pcm_samples(mb_addr, &mut old);
                assert_eq!(
                    dirty.contains(mb_addr),
                    samples != old,
                    "frame {frame} mb {mb_addr}"
                );
                if dirty.contains(mb_addr) {
                    patched.set_macroblock(mb_addr, &samples);
                }
            }
            assert_eq!(&patched, after);
        }
    }

    #[test]
    fn dirty_set_basics() {
        let mut set = DirtyMacroblocks::default();
        assert!(set.is_empty());
        set.insert(0);
        set.insert(299);
        set.insert(300); // ignored
        assert_eq!(set.len(), 2);
        assert!(set.contains(299) && !set.contains(300) && !set.contains(1));
        assert_eq!(DirtyMacroblocks::all().len(), MB_COUNT);
    }

    impl Picture {
        /// Test helper: writes PCM-ordered samples back into macroblock `mb_addr`.
        pub(crate) fn set_macroblock(
            &mut self,
            mb_addr: usize,
            samples: &[u8; PCM_SAMPLES_PER_MB],
        ) {
            let (mb_x, mb_y) = (mb_addr % WIDTH_MBS, mb_addr / WIDTH_MBS);
            for (row, src) in samples[..256].chunks_exact(16).enumerate() {
                let start = (mb_y * 16 + row) * WIDTH + mb_x * 16;
                self.luma[start..start + 16].copy_from_slice(src);
            }
            for (plane, src) in [
                (&mut self.cb, &samples[256..320]),
                (&mut self.cr, &samples[320..]),
            ] {
                for (row, src) in src.chunks_exact(8).enumerate() {
                    let start = (mb_y * 8 + row) * CHROMA_WIDTH + mb_x * 8;
                    plane[start..start + 8].copy_from_slice(src);
                }
            }
        }
    }
}
