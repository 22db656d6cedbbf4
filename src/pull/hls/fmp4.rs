//! fMP4 segments of an HLS pull (ISO/IEC 14496-12 fragments, CMAF), sans-IO: the
//! initialization section (`moov`: each track's id, timescale, `avcC` or `esds`, `trex`
//! defaults) and then `moof` + `mdat` pairs back to frames with 90 kHz timestamps, H.264
//! (`avc1`/`avc3`, 4-byte NAL lengths as tessera carries them) and AAC. Written here
//! rather than taken from a crate: the boxes an HLS origin writes are a dozen, the parsers
//! of `rtmp::flv` read `avcC` and the AudioSpecificConfig already, and the crates that
//! read MP4 want a whole file or a seekable reader.
//!
//! Bytes come in any split; top-level boxes are read whole, each at most [`MAX_BOX`]
//! (an `mdat` of one fragment). Samples are slices of the `mdat`, never copied.

use crate::media::frame::{Frame, MediaInfo, TrackKind};
use crate::mux::ts_demux::DemuxEvent;
use crate::rtmp::flv::{parse_audio_specific_config, parse_avc_config};
use bytes::{Bytes, BytesMut};

/// Largest top-level box read (a fragment's `mdat`).
pub const MAX_BOX: usize = 32 << 20;
/// Decode and presentation times (90 kHz) at most, in magnitude.
const MAX_TIME: u64 = 1 << 50;
/// Samples of one fragment, at most.
const MAX_SAMPLES: usize = 100_000;

#[derive(Debug, Clone)]
struct Track {
    id: u32,
    kind: TrackKind,
    timescale: u32,
    default_duration: u32,
    default_size: u32,
    default_flags: u32,
    /// Decode time after the last sample (for a fragment without `tfdt`).
    next_dts: u64,
}

/// A sample of the last `moof`, waiting for its `mdat`.
#[derive(Debug, Clone)]
struct SampleRef {
    track: usize,
    dts: u64,
    cto: i64,
    size: u32,
    /// Position in the segment.
    at: u64,
    keyframe: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Fmp4Demuxer {
    tracks: Vec<Track>,
    info: MediaInfo,
    announced: bool,
    pending: BytesMut,
    /// Bytes of the current segment before `pending`.
    position: u64,
    samples: Vec<SampleRef>,
}

type Res<T> = Result<T, String>;

impl Fmp4Demuxer {
    pub fn new() -> Self {
        Self::default()
    }

    /// The same tracks, starting over (a discontinuity: nothing half-read is kept).
    pub fn restarted(&self) -> Self {
        Fmp4Demuxer {
            tracks: self.tracks.clone(),
            info: self.info.clone(),
            ..Self::default()
        }
    }

    /// Reads the initialization section.
    pub fn init(&mut self, init: &[u8]) -> Res<()> {
        let moov = find(init, b"moov")?.ok_or("initialization section without moov")?;
        let mut trex = Vec::new();
        for child in Boxes(moov) {
            let (kind, body) = child?;
            match &kind {
                b"trak" => self.trak(body)?,
                b"mvex" => {
                    for b in Boxes(body) {
                        let (k, v) = b?;
                        if &k == b"trex" {
                            trex.push(v);
                        }
                    }
                }
                _ => {}
            }
        }
        for t in trex {
            let id = be32(t, 4)?;
            if let Some(track) = self.tracks.iter_mut().find(|tr| tr.id == id) {
                track.default_duration = be32(t, 12)?;
                track.default_size = be32(t, 16)?;
                track.default_flags = be32(t, 20)?;
            }
        }
        if self.tracks.is_empty() {
            return Err("fMP4 initialization section without H.264 or AAC track".into());
        }
        Ok(())
    }

    fn trak(&mut self, trak: &[u8]) -> Res<()> {
        let tkhd = find(trak, b"tkhd")?.ok_or("trak without tkhd")?;
        let id = be32(tkhd, if tkhd.first() == Some(&1) { 20 } else { 12 })?;
        let mdia = find(trak, b"mdia")?.ok_or("trak without mdia")?;
        let mdhd = find(mdia, b"mdhd")?.ok_or("mdia without mdhd")?;
        let timescale = be32(mdhd, if mdhd.first() == Some(&1) { 20 } else { 12 })?;
        let stsd = find_path(mdia, &[b"minf", b"stbl", b"stsd"])?.ok_or("no stsd")?;
        // stsd: version/flags, entry count, then the first sample entry.
        let (format, entry) = Boxes(stsd.get(8..).ok_or("short stsd")?)
            .next()
            .ok_or("empty stsd")??;
        let kind = match &format {
            b"avc1" | b"avc3" => {
                // VisualSampleEntry: 78 bytes before its child boxes.
                let avcc = find(entry.get(78..).ok_or("short avc1")?, b"avcC")?
                    .ok_or("avc1 without avcC")?;
                let (config, length_size) =
                    parse_avc_config(&Bytes::copy_from_slice(avcc)).map_err(|e| e.to_string())?;
                if length_size != 4 {
                    return Err(format!(
                        "H.264 with {length_size}-byte NAL lengths is not supported"
                    ));
                }
                self.info.video = Some(config);
                TrackKind::Video
            }
            b"mp4a" => {
                // AudioSampleEntry: 28 bytes before its child boxes.
                let esds = find(entry.get(28..).ok_or("short mp4a")?, b"esds")?
                    .ok_or("mp4a without esds")?;
                let asc = decoder_specific_info(esds)?;
                let config = parse_audio_specific_config(Bytes::copy_from_slice(asc))
                    .map_err(|e| e.to_string())?;
                self.info.audio = Some(config);
                TrackKind::Audio
            }
            other => {
                log::debug!(
                    "fmp4: track of `{}` ignored",
                    String::from_utf8_lossy(other)
                );
                return Ok(());
            }
        };
        if timescale == 0 {
            return Err("a track with timescale 0".into());
        }
        self.tracks.push(Track {
            id,
            kind,
            timescale,
            default_duration: 0,
            default_size: 0,
            default_flags: 0,
            next_dts: 0,
        });
        Ok(())
    }

    /// A new segment begins (base data offsets count from its start).
    pub fn start_segment(&mut self) {
        self.pending.clear();
        self.position = 0;
        self.samples.clear();
    }

    /// Demuxes `bytes` of the current segment; appends `Media` (first) and frames to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<DemuxEvent>) -> Res<()> {
        if !self.announced {
            self.announced = true;
            out.push(DemuxEvent::Media(self.info.clone()));
        }
        self.pending.extend_from_slice(bytes);
        while let Some((size, header)) = box_size(&self.pending)? {
            if size > MAX_BOX {
                return Err(format!("an fMP4 box over {} MiB", MAX_BOX >> 20));
            }
            if self.pending.len() < size {
                break;
            }
            let whole = self.pending.split_to(size).freeze();
            let at = self.position;
            self.position += size as u64;
            match &whole[4..8] {
                b"moof" => self.moof(&whole[header..], at)?,
                b"mdat" => self.mdat(whole, header, at, out)?,
                _ => {}
            }
        }
        Ok(())
    }

    fn moof(&mut self, moof: &[u8], moof_at: u64) -> Res<()> {
        self.samples.clear();
        for child in Boxes(moof) {
            let (kind, traf) = child?;
            if &kind == b"traf" {
                self.traf(traf, moof_at)?;
            }
        }
        Ok(())
    }

    fn traf(&mut self, traf: &[u8], moof_at: u64) -> Res<()> {
        let tfhd = find(traf, b"tfhd")?.ok_or("traf without tfhd")?;
        let flags = be32(tfhd, 0)? & 0xFF_FFFF;
        let id = be32(tfhd, 4)?;
        let Some(index) = self.tracks.iter().position(|t| t.id == id) else {
            return Ok(());
        };
        let mut pos = 8;
        let mut field = |present: bool, len: usize| -> Res<Option<u64>> {
            if !present {
                return Ok(None);
            }
            let v = if len == 8 {
                be64(tfhd, pos)?
            } else {
                u64::from(be32(tfhd, pos)?)
            };
            pos += len;
            Ok(Some(v))
        };
        let base_offset = field(flags & 0x1 != 0, 8)?;
        field(flags & 0x2 != 0, 4)?;
        let track = &self.tracks[index];
        let duration = field(flags & 0x8 != 0, 4)?.map_or(track.default_duration, |v| v as u32);
        let size = field(flags & 0x10 != 0, 4)?.map_or(track.default_size, |v| v as u32);
        let sample_flags = field(flags & 0x20 != 0, 4)?.map_or(track.default_flags, |v| v as u32);
        let mut dts = match find(traf, b"tfdt")? {
            Some(t) if t.first() == Some(&1) => be64(t, 4)?,
            Some(t) => u64::from(be32(t, 4)?),
            None => track.next_dts,
        };
        let mut data_at = base_offset.unwrap_or(moof_at);
        for child in Boxes(traf) {
            let (kind, trun) = child?;
            if &kind != b"trun" {
                continue;
            }
            let defaults = (duration, size, sample_flags);
            (dts, data_at) = self.trun(
                trun,
                index,
                defaults,
                dts,
                data_at,
                base_offset.unwrap_or(moof_at),
            )?;
        }
        self.tracks[index].next_dts = dts;
        Ok(())
    }

    /// One `trun`'s samples; returns the decode time and position after them.
    fn trun(
        &mut self,
        trun: &[u8],
        track: usize,
        (duration, size, flags): (u32, u32, u32),
        mut dts: u64,
        mut data_at: u64,
        base: u64,
    ) -> Res<(u64, u64)> {
        let version = trun.first().copied().unwrap_or(0);
        let tflags = be32(trun, 0)? & 0xFF_FFFF;
        let count = be32(trun, 4)? as usize;
        let mut pos = 8;
        if tflags & 0x1 != 0 {
            data_at = base.wrapping_add_signed(i64::from(be32(trun, pos)? as i32));
            pos += 4;
        }
        let first_flags = if tflags & 0x4 != 0 {
            pos += 4;
            Some(be32(trun, pos - 4)?)
        } else {
            None
        };
        let per_sample = [0x100, 0x200, 0x400, 0x800]
            .iter()
            .filter(|&&f| tflags & f != 0)
            .count()
            * 4;
        if self.samples.len() + count > MAX_SAMPLES || count * per_sample > trun.len() {
            return Err("a trun with more samples than it holds".into());
        }
        let video = self.tracks[track].kind == TrackKind::Video;
        for i in 0..count {
            let mut next = |present: bool, default: u32| -> Res<u32> {
                if !present {
                    return Ok(default);
                }
                pos += 4;
                be32(trun, pos - 4)
            };
            let d = next(tflags & 0x100 != 0, duration)?;
            let s = next(tflags & 0x200 != 0, size)?;
            let default_flags = if i == 0 {
                first_flags.unwrap_or(flags)
            } else {
                flags
            };
            let f = next(tflags & 0x400 != 0, default_flags)?;
            let raw_cto = next(tflags & 0x800 != 0, 0)?;
            let cto = if version == 0 {
                i64::from(raw_cto)
            } else {
                i64::from(raw_cto as i32)
            };
            self.samples.push(SampleRef {
                track,
                dts,
                cto,
                size: s,
                at: data_at,
                keyframe: !video || f & 0x1_0000 == 0,
            });
            dts = dts.wrapping_add(u64::from(d));
            data_at = data_at
                .checked_add(u64::from(s))
                .ok_or("fMP4 sample offsets overflow")?;
        }
        Ok((dts, data_at))
    }

    fn mdat(&mut self, mdat: Bytes, header: usize, at: u64, out: &mut Vec<DemuxEvent>) -> Res<()> {
        let start = at + header as u64;
        let end = at + mdat.len() as u64;
        let mut frames = Vec::with_capacity(self.samples.len());
        for s in self.samples.drain(..) {
            if s.at < start || s.at.saturating_add(u64::from(s.size)) > end {
                return Err("an fMP4 sample outside its mdat".into());
            }
            let from = (s.at - at) as usize;
            let track = &self.tracks[s.track];
            let to_90k = |t: i128| t * 90_000 / i128::from(track.timescale);
            let (dts, pts) = (
                to_90k(i128::from(s.dts)),
                to_90k(i128::from(s.dts) + i128::from(s.cto)),
            );
            // Bounded far beyond any real stream (2^50 / 90 kHz is 396 years), so the
            // timestamp arithmetic after this cannot overflow.
            let (Ok(dts), Ok(pts)) = (i64::try_from(dts), i64::try_from(pts)) else {
                return Err("an fMP4 decode time out of range".into());
            };
            if dts.unsigned_abs() >= MAX_TIME || pts.unsigned_abs() >= MAX_TIME {
                return Err("an fMP4 decode time out of range".into());
            }
            frames.push(Frame {
                track: track.kind,
                pts,
                dts,
                keyframe: s.keyframe,
                data: mdat.slice(from..from + s.size as usize),
            });
        }
        // Tracks come one after the other in a fragment; frames go out in decode order.
        frames.sort_by_key(|f| f.dts);
        out.extend(frames.into_iter().map(DemuxEvent::Frame));
        Ok(())
    }
}

/// A box's size and header length at the start of `buf`, once its header is there.
fn box_size(buf: &[u8]) -> Res<Option<(usize, usize)>> {
    if buf.len() < 8 {
        return Ok(None);
    }
    let size = u64::from(be32(buf, 0)?);
    let (size, header) = match size {
        0 => return Err("an fMP4 box that runs to the end of the file".into()),
        1 if buf.len() < 16 => return Ok(None),
        1 => (be64(buf, 8)?, 16),
        _ => (size, 8),
    };
    if size < header as u64 {
        return Err("an fMP4 box shorter than its header".into());
    }
    Ok(Some((usize::try_from(size).unwrap_or(usize::MAX), header)))
}

/// The child boxes of a box's payload: (type, payload).
struct Boxes<'a>(&'a [u8]);

impl<'a> Iterator for Boxes<'a> {
    type Item = Res<([u8; 4], &'a [u8])>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let item = match box_size(self.0) {
            Ok(Some((size, header))) if size <= self.0.len() => {
                let kind = [self.0[4], self.0[5], self.0[6], self.0[7]];
                let body = &self.0[header..size];
                self.0 = &self.0[size..];
                Ok((kind, body))
            }
            Ok(_) => Err("a truncated fMP4 box".to_owned()),
            Err(e) => Err(e),
        };
        if item.is_err() {
            self.0 = &[];
        }
        Some(item)
    }
}

fn find<'a>(payload: &'a [u8], kind: &[u8; 4]) -> Res<Option<&'a [u8]>> {
    for child in Boxes(payload) {
        let (k, body) = child?;
        if &k == kind {
            return Ok(Some(body));
        }
    }
    Ok(None)
}

fn find_path<'a>(mut payload: &'a [u8], path: &[&[u8; 4]]) -> Res<Option<&'a [u8]>> {
    for kind in path {
        match find(payload, kind)? {
            Some(body) => payload = body,
            None => return Ok(None),
        }
    }
    Ok(Some(payload))
}

/// The DecoderSpecificInfo (the AudioSpecificConfig) inside `esds` (ISO 14496-1 §7.2.6).
fn decoder_specific_info(esds: &[u8]) -> Res<&[u8]> {
    let mut pos = 4; // version and flags
    while pos < esds.len() {
        let tag = esds[pos];
        pos += 1;
        let mut len = 0usize;
        for _ in 0..4 {
            let b = *esds.get(pos).ok_or("truncated esds")?;
            pos += 1;
            len = (len << 7) | usize::from(b & 0x7F);
            if b & 0x80 == 0 {
                break;
            }
        }
        match tag {
            // ES_Descriptor: ES_ID, flags (and what they announce), then its children.
            0x03 => {
                let flags = *esds.get(pos + 2).ok_or("truncated esds")?;
                pos += 3;
                if flags & 0x80 != 0 {
                    pos += 2;
                }
                if flags & 0x40 != 0 {
                    pos += 1 + usize::from(*esds.get(pos).ok_or("truncated esds")?);
                }
                if flags & 0x20 != 0 {
                    pos += 2;
                }
            }
            // DecoderConfigDescriptor: 13 bytes, then DecoderSpecificInfo.
            0x04 => pos += 13,
            0x05 => {
                return esds
                    .get(pos..pos + len)
                    .ok_or_else(|| "truncated esds".into());
            }
            _ => pos += len,
        }
    }
    Err("esds without an AudioSpecificConfig".into())
}

fn be32(b: &[u8], at: usize) -> Res<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| "a truncated fMP4 box".into())
}

fn be64(b: &[u8], at: usize) -> Res<u64> {
    Ok((u64::from(be32(b, at)?) << 32) | u64::from(be32(b, at + 4)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mux::fmp4;
    use crate::source::fake::FakeSource;

    /// tessera's own fMP4 muxer writes an init section and a fragment; they read back.
    #[test]
    fn tessera_fragments_read_back_to_the_same_frames() {
        let mut source = FakeSource::new(0, 25);
        let mut frames = Vec::new();
        source.poll(2 * 90_000, &mut frames);
        let mut muxer = fmp4::Fmp4Muxer::new(&source.media_info()).unwrap();
        let init = muxer.init_segment();
        let end = frames.iter().map(|f| f.dts).max().unwrap() + 3600;
        let fragment = muxer.fragment(1, &frames, end).unwrap();
        let mut demux = Fmp4Demuxer::new();
        demux.init(&init).unwrap();
        let mut out = Vec::new();
        for piece in fragment.chunks(777) {
            demux.push(piece, &mut out).unwrap();
        }
        let got: Vec<Frame> = out
            .into_iter()
            .filter_map(|e| match e {
                DemuxEvent::Frame(f) => Some(f),
                _ => None,
            })
            .collect();
        assert_eq!(got.len(), frames.len());
        let mut want = frames.clone();
        want.sort_by_key(|f| f.dts);
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(
                (g.track, g.dts, g.keyframe, &g.data),
                (w.track, w.dts, w.keyframe, &w.data)
            );
        }
    }

    #[test]
    fn garbage_and_absurd_boxes_are_errors() {
        let mut demux = Fmp4Demuxer::new();
        assert!(demux.init(b"\0\0\0\x08moov").is_err());
        let mut out = Vec::new();
        let huge = [&((MAX_BOX as u32) + 1).to_be_bytes()[..], b"mdat"].concat();
        assert!(demux.push(&huge, &mut out).is_err());
        let mut demux = Fmp4Demuxer::new();
        assert!(demux.push(b"\0\0\0\x04moof", &mut out).is_err());
    }
}
