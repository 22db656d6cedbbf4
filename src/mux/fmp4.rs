//! Fragmented MP4 / CMAF muxer (ISO/IEC 14496-12) for HLS fMP4, LL-HLS parts and DASH.
//!
//! Owns: the initialization segment (`ftyp` §4.3, `moov` §8.2.1 with `mvhd` §8.2.2, one `trak`
//! per track with `tkhd` §8.3.2, `mdhd` §8.4.2, `hdlr` §8.4.3, `vmhd`/`smhd` §12.1.2/§12.2.2,
//! `dinf`/`dref` §8.7.1-2, an `stbl` whose only entry is the sample description (`stsd`
//! §8.5.2) and whose sample tables are empty, and `mvex`/`trex` §8.8.1/§8.8.3); the sample
//! entries `avc1` + `avcC` (ISO/IEC 14496-15 §5.3.3-4, §5.4.2) and `mp4a` + `esds` (ISO/IEC
//! 14496-14 §5.6, ES_Descriptor of ISO/IEC 14496-1 §7.2.6.5); and movie fragments (optional
//! `styp` §8.16.2, `moof` §8.8.4 with `mfhd` §8.8.5 and one `traf` §8.8.6 per track holding
//! samples: `tfhd` §8.8.7 with default-base-is-moof, `tfdt` §8.8.12, `trun` §8.8.8 with
//! sample flags of §8.8.3.1, then one `mdat` §8.1.1).
//!
//! Never does: I/O, clocks, segmentation decisions (the segmenter chooses where a fragment
//! starts and tells us where it ends), `sidx`/`mfra` indexes, edit lists, encryption, or any
//! rewrite of a payload: video frames are already the length-prefixed samples `mdat` wants
//! (14496-15 §5.3.2) and audio frames are raw AAC access units, so each frame's bytes are
//! appended exactly once into the fragment buffer, which is allocated once at its final size.
//!
//! Timescales: video runs at 90 kHz (the `Frame` timescale, so its times pass through), audio
//! at its sample rate. Audio times are converted from 90 kHz by rounding each absolute time
//! to the nearest sample, then differencing, so a 48 kHz stream's 1920-tick frames become
//! exactly 1024 samples and a 44.1 kHz stream whose 90 kHz times were rounded by the source
//! still gets exactly 1024 per frame; nothing accumulates across fragments.
//!
//! Sample durations come from the next frame's decode time. The last video sample of a
//! fragment lasts until `end_dts`, the first decode time of the next fragment. The last audio
//! sample lasts one AAC frame ([`aac::SAMPLES_PER_FRAME`]): the next fragment usually starts
//! at a video keyframe that falls inside that audio frame, and shortening it to `end_dts`
//! would leave a hole in the audio timeline before the next fragment's `tfdt`.
//!
//! Smooth Streaming (MS-SSTR) fragments are the single-track fragments above with two more
//! boxes at the end of the `traf` ([`Fmp4Muxer::mss_fragment`]): `tfxd` (§2.2.4.4, the
//! fragment's absolute time and duration) and `tfrf` (§2.2.4.5, the time and duration of the
//! next fragment, which a live client adds to its timeline instead of reloading the
//! manifest). Times are in the track's timescale, which the manifest announces per track.
//!
//! CMAF (ISO/IEC 23000-19) fits: a single-track muxer ([`Tracks::Video`] or
//! [`Tracks::Audio`]) writes CMAF headers and fragments and says so with the `cmfc` brand; a
//! muxer of both tracks writes the muxed fMP4 HLS accepts (RFC 8216 §3.3), which CMAF does not
//! cover, so it leaves `cmfc` out.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use crate::media::aac;
use crate::media::bits::BitReader;
use crate::media::frame::{AudioConfig, Frame, MediaInfo, TIMESCALE, TrackKind, VideoConfig};
use crate::media::h264::{self, H264Error};

/// Timescale of the movie header; nothing is timed in it, since fragments carry all samples.
const MOVIE_TIMESCALE: u32 = 1000;
/// Timescale of a video track: the `Frame` timescale, so video times are written unchanged.
pub const VIDEO_TIMESCALE: u32 = TIMESCALE as u32;

/// `sample_flags` (§8.8.3.1) of a sync sample: sample_depends_on = 2 (an I picture, or an
/// audio frame), sample_is_non_sync_sample = 0.
pub const SAMPLE_FLAGS_SYNC: u32 = 0x0200_0000;
/// `sample_flags` of a non-sync sample: sample_depends_on = 1, sample_is_non_sync_sample = 1.
pub const SAMPLE_FLAGS_NON_SYNC: u32 = 0x0101_0000;

/// `tfhd` flags (§8.8.7.1).
const TFHD_DEFAULT_SAMPLE_FLAGS: u32 = 0x00_0020;
const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;
/// `trun` flags (§8.8.8.1).
const TRUN_DATA_OFFSET: u32 = 0x00_0001;
const TRUN_FIRST_SAMPLE_FLAGS: u32 = 0x00_0004;
const TRUN_SAMPLE_DURATION: u32 = 0x00_0100;
const TRUN_SAMPLE_SIZE: u32 = 0x00_0200;
const TRUN_SAMPLE_FLAGS: u32 = 0x00_0400;
const TRUN_COMPOSITION_OFFSETS: u32 = 0x00_0800;

/// Size of a box header (size + type) and of a full box header (+ version + flags).
const BOX_HEADER_LEN: usize = 8;
const FULL_BOX_HEADER_LEN: usize = 12;

/// `uuid` extended types of the Smooth Streaming boxes (MS-SSTR §2.2.4.4, §2.2.4.5).
const TFXD_UUID: [u8; 16] = [
    0x6D, 0x1D, 0x9B, 0x05, 0x42, 0xD5, 0x44, 0xE6, 0x80, 0xE2, 0x14, 0x1D, 0xAF, 0xF7, 0x57, 0xB2,
];
const TFRF_UUID: [u8; 16] = [
    0xD4, 0x80, 0x7E, 0xF2, 0xCA, 0x39, 0x46, 0x95, 0x8E, 0x54, 0x26, 0xCB, 0x9E, 0x46, 0xA7, 0x9F,
];
/// Size of a version-1 `tfxd`: `uuid` header, extended type, version/flags, two 64-bit times.
const TFXD_LEN: usize = BOX_HEADER_LEN + 16 + 4 + 16;
/// Size of a version-1 `tfrf` announcing one fragment (its count is one byte).
const TFRF_ONE_LEN: usize = BOX_HEADER_LEN + 16 + 4 + 1 + 16;

/// The unity transformation matrix of `mvhd` and `tkhd` (§8.2.2.3).
const UNITY_MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];
/// `mdhd` language "und" as three 5-bit letters (ISO 639-2/T, §8.4.2.3).
const LANGUAGE_UND: u16 = ((b'u' - 0x60) as u16) << 10 | ((b'n' - 0x60) as u16) << 5 | 4;
/// `AVCProfileIndication` values whose `avcC` carries the chroma and bit depth fields
/// (14496-15 §5.3.3.1.2).
const AVCC_EXTENDED_PROFILES: [u8; 4] = [100, 110, 122, 144];
/// objectTypeIndication of ISO/IEC 14496-3 audio (14496-1 Table 5) and streamType of an
/// audio stream (Table 6) shifted into place with upStream = 0 and the reserved 1 bit.
const OBJECT_TYPE_AAC: u8 = 0x40;
const STREAM_TYPE_AUDIO_BYTE: u8 = (0x05 << 2) | 1;

/// Which tracks a muxer writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tracks {
    /// The video track alone (a DASH video adaptation set, a CMAF video track).
    Video,
    /// The audio track alone.
    Audio,
    /// Video and audio in the same fragments (muxed HLS fMP4). Both must be configured.
    Both,
}

/// Where a fragment sits on its track's timeline, in the track's timescale: what MSS writes
/// in `tfxd`, `tfrf` and the manifest's `<c t= d=>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragmentTime {
    /// Decode time of the first sample (`tfdt`).
    pub time: u64,
    /// Sum of the sample durations.
    pub duration: u64,
}

/// Why a muxer could not be built or a fragment written. Fragment errors carry the
/// fragment's sequence number and the offending frame's times, in 90 kHz ticks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fmp4Error {
    /// The [`MediaInfo`] has no track at all.
    NoTracks,
    /// [`Fmp4Muxer::for_tracks`] asked for a track the [`MediaInfo`] does not configure.
    TrackMissing { track: TrackKind },
    /// The SPS cannot be described in an `avcC` box.
    BadSps(H264Error),
    /// The PPS is empty or longer than the 16-bit length field of `avcC`.
    BadPps { len: usize },
    /// The audio configuration has no AudioSpecificConfig, one too long for a descriptor, or
    /// a sample rate of zero.
    BadAudioConfig { asc_len: usize, sample_rate: u32 },
    /// A fragment with no sample of any track this muxer writes.
    EmptyFragment { sequence: u32 },
    /// A frame of a track the stream's [`MediaInfo`] does not have.
    TrackNotConfigured {
        sequence: u32,
        track: TrackKind,
        dts: i64,
    },
    /// A frame with a negative decode time; `tfdt` cannot express it.
    NegativeDecodeTime {
        sequence: u32,
        track: TrackKind,
        dts: i64,
    },
    /// A sample whose duration (the next decode time, or `end_dts` for the last video
    /// sample, minus its own) is not between 1 and 2^32 - 1 ticks of its track timescale:
    /// decode times must increase within a track, and `end_dts` must follow the last frame.
    BadDuration {
        sequence: u32,
        track: TrackKind,
        dts: i64,
        next_dts: i64,
    },
    /// PTS - DTS does not fit the 32-bit composition offset of `trun`.
    CompositionOffsetOutOfRange {
        sequence: u32,
        track: TrackKind,
        pts: i64,
        dts: i64,
    },
    /// The fragment's media data would not fit a 32-bit `mdat` size or `trun` data offset.
    FragmentTooLarge { sequence: u32, bytes: u64 },
    /// A Smooth Streaming fragment asked of a muxer of two tracks (MSS fragments carry one).
    MssNeedsOneTrack,
}

impl fmt::Display for Fmp4Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fmp4Error::NoTracks => f.write_str("fmp4 mux: the stream has no track"),
            Fmp4Error::TrackMissing { track } => {
                write!(f, "fmp4 mux: {track:?} track requested but not configured")
            }
            Fmp4Error::BadSps(source) => write!(f, "fmp4 mux: SPS unusable for avcC: {source}"),
            Fmp4Error::BadPps { len } => write!(f, "fmp4 mux: PPS of {len} bytes unusable"),
            Fmp4Error::BadAudioConfig {
                asc_len,
                sample_rate,
            } => write!(
                f,
                "fmp4 mux: audio config unusable (AudioSpecificConfig of {asc_len} bytes, \
                 {sample_rate} Hz)"
            ),
            Fmp4Error::EmptyFragment { sequence } => {
                write!(f, "fmp4 mux: fragment {sequence} has no sample to write")
            }
            Fmp4Error::TrackNotConfigured {
                sequence,
                track,
                dts,
            } => write!(
                f,
                "fmp4 mux: fragment {sequence}: {track:?} frame at dts {dts} but the stream \
                 has no {track:?} track"
            ),
            Fmp4Error::NegativeDecodeTime {
                sequence,
                track,
                dts,
            } => write!(
                f,
                "fmp4 mux: fragment {sequence}: {track:?} frame has negative dts {dts}"
            ),
            Fmp4Error::BadDuration {
                sequence,
                track,
                dts,
                next_dts,
            } => write!(
                f,
                "fmp4 mux: fragment {sequence}: {track:?} sample at dts {dts} is followed at \
                 dts {next_dts}; decode times must increase by 1 tick to 2^32-1 ticks"
            ),
            Fmp4Error::CompositionOffsetOutOfRange {
                sequence,
                track,
                pts,
                dts,
            } => write!(
                f,
                "fmp4 mux: fragment {sequence}: {track:?} frame pts {pts} - dts {dts} does not \
                 fit 32 bits"
            ),
            Fmp4Error::FragmentTooLarge { sequence, bytes } => write!(
                f,
                "fmp4 mux: fragment {sequence}: {bytes} bytes of media exceed 32-bit offsets"
            ),
            Fmp4Error::MssNeedsOneTrack => {
                f.write_str("fmp4 mux: a Smooth Streaming fragment carries exactly one track")
            }
        }
    }
}

impl std::error::Error for Fmp4Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Fmp4Error::BadSps(source) => Some(source),
            _ => None,
        }
    }
}

/// One track of the output.
#[derive(Clone, Debug)]
struct Track {
    kind: TrackKind,
    /// `track_ID` in `tkhd`, `trex` and `tfhd`: 1, 2 in the order video, audio.
    id: u32,
    /// Ticks per second of `mdhd`, `tfdt` and `trun`.
    timescale: u32,
    /// Duration of a fragment's last sample, in `timescale` ticks, when it does not come
    /// from `end_dts` (audio: one AAC frame).
    fixed_last_duration: Option<u32>,
    /// `default_sample_flags` of `trex`: what most samples of the track are.
    default_flags: u32,
}

/// One sample of a `trun`.
#[derive(Clone, Copy, Debug)]
struct Sample {
    duration: u32,
    size: u32,
    flags: u32,
    composition_offset: i32,
}

/// The samples of one track in the fragment being written.
#[derive(Clone, Debug, Default)]
struct Run {
    samples: Vec<Sample>,
    base_decode_time: u64,
    data_len: u64,
}

impl Run {
    /// The run's first decode time and total duration.
    fn time(&self) -> FragmentTime {
        FragmentTime {
            time: self.base_decode_time,
            duration: self.samples.iter().map(|s| u64::from(s.duration)).sum(),
        }
    }
}

/// How a `trun` conveys its samples' flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FlagsLayout {
    /// Every sample has the same flags: `tfhd` default_sample_flags only.
    Default(u32),
    /// The first sample differs (a keyframe opening a GOP): `first_sample_flags` in `trun`
    /// and default_sample_flags for the rest.
    FirstThenDefault { first: u32, rest: u32 },
    /// Per-sample flags in `trun`.
    PerSample,
}

/// The shape of one `traf`, from which its size and its boxes' flags follow.
#[derive(Clone, Copy, Debug)]
struct TrafLayout {
    flags: FlagsLayout,
    composition_offsets: bool,
    sample_count: usize,
    /// Smooth Streaming boxes after `trun`: `tfxd`, and `tfrf` when it announces a fragment.
    mss: Option<MssBoxes>,
}

/// The Smooth Streaming boxes of one `traf`.
#[derive(Clone, Copy, Debug)]
struct MssBoxes {
    this: FragmentTime,
    next: Option<FragmentTime>,
}

impl TrafLayout {
    fn of(run: &Run) -> Self {
        TrafLayout {
            flags: flags_layout(&run.samples),
            composition_offsets: run.samples.iter().any(|s| s.composition_offset != 0),
            sample_count: run.samples.len(),
            mss: None,
        }
    }

    fn tfhd_flags(&self) -> u32 {
        match self.flags {
            FlagsLayout::PerSample => TFHD_DEFAULT_BASE_IS_MOOF,
            _ => TFHD_DEFAULT_BASE_IS_MOOF | TFHD_DEFAULT_SAMPLE_FLAGS,
        }
    }

    fn trun_flags(&self) -> u32 {
        let mut flags = TRUN_DATA_OFFSET | TRUN_SAMPLE_DURATION | TRUN_SAMPLE_SIZE;
        match self.flags {
            FlagsLayout::Default(_) => {}
            FlagsLayout::FirstThenDefault { .. } => flags |= TRUN_FIRST_SAMPLE_FLAGS,
            FlagsLayout::PerSample => flags |= TRUN_SAMPLE_FLAGS,
        }
        if self.composition_offsets {
            flags |= TRUN_COMPOSITION_OFFSETS;
        }
        flags
    }

    /// Version 1 (signed composition offsets, §8.8.8.2) whenever offsets are written, so
    /// B-frame streams may shift presentation to start at the decode time.
    fn trun_version(&self) -> u8 {
        u8::from(self.composition_offsets)
    }

    fn len(&self) -> usize {
        let tfhd = FULL_BOX_HEADER_LEN
            + 4
            + if self.tfhd_flags() & TFHD_DEFAULT_SAMPLE_FLAGS != 0 {
                4
            } else {
                0
            };
        let tfdt = FULL_BOX_HEADER_LEN + 8;
        let trun_flags = self.trun_flags();
        let per_sample = [
            TRUN_SAMPLE_DURATION,
            TRUN_SAMPLE_SIZE,
            TRUN_SAMPLE_FLAGS,
            TRUN_COMPOSITION_OFFSETS,
        ]
        .iter()
        .filter(|&&bit| trun_flags & bit != 0)
        .count()
            * 4;
        let first = if trun_flags & TRUN_FIRST_SAMPLE_FLAGS != 0 {
            4
        } else {
            0
        };
        let trun = FULL_BOX_HEADER_LEN + 4 + 4 + first + self.sample_count * per_sample;
        let mss = self.mss.map_or(0, |m| {
            TFXD_LEN + if m.next.is_some() { TFRF_ONE_LEN } else { 0 }
        });
        BOX_HEADER_LEN + tfhd + tfdt + trun + mss
    }
}

/// fMP4 muxer of one stream (or of one of its tracks).
///
/// Build it once per output rendition; the init segment is built with it and shared as
/// `Bytes`. [`Fmp4Muxer::fragment`] keeps only scratch space between calls, so fragments
/// may be written in any order (each carries its own `tfdt` and sequence number).
#[derive(Clone, Debug)]
pub struct Fmp4Muxer {
    /// Video first, then audio; at most one of each.
    tracks: Vec<Track>,
    /// One per track, reused across fragments so the hot path does not allocate tables.
    runs: Vec<Run>,
    /// Tracks the stream has but this muxer leaves out: their frames are skipped silently.
    skipped: Vec<TrackKind>,
    init: Bytes,
    codecs: String,
    styp: bool,
}

impl Fmp4Muxer {
    /// A muxer of every track `info` configures.
    ///
    /// # Errors
    ///
    /// [`Fmp4Error::NoTracks`] for a stream without tracks; `BadSps`, `BadPps` or
    /// `BadAudioConfig` when a configuration cannot be written as a sample entry.
    pub fn new(info: &MediaInfo) -> Result<Self, Fmp4Error> {
        let tracks = match (&info.video, &info.audio) {
            (Some(_), Some(_)) => Tracks::Both,
            (Some(_), None) => Tracks::Video,
            (None, Some(_)) => Tracks::Audio,
            (None, None) => return Err(Fmp4Error::NoTracks),
        };
        Self::for_tracks(info, tracks)
    }

    /// A muxer of the chosen tracks of `info`, e.g. one per DASH adaptation set. Frames of a
    /// track the stream has but this muxer leaves out are skipped by [`Fmp4Muxer::fragment`],
    /// so every muxer of a stream can be handed the same frames.
    ///
    /// # Errors
    ///
    /// [`Fmp4Error::TrackMissing`] when a chosen track is not in `info`, and the
    /// configuration errors of [`Fmp4Muxer::new`].
    pub fn for_tracks(info: &MediaInfo, tracks: Tracks) -> Result<Self, Fmp4Error> {
        let want_video = matches!(tracks, Tracks::Video | Tracks::Both);
        let want_audio = matches!(tracks, Tracks::Audio | Tracks::Both);
        let video = match (want_video, &info.video) {
            (true, None) => {
                return Err(Fmp4Error::TrackMissing {
                    track: TrackKind::Video,
                });
            }
            (true, Some(config)) => Some(config),
            (false, _) => None,
        };
        let audio = match (want_audio, &info.audio) {
            (true, None) => {
                return Err(Fmp4Error::TrackMissing {
                    track: TrackKind::Audio,
                });
            }
            (true, Some(config)) => Some(config),
            (false, _) => None,
        };

        let mut track_list = Vec::with_capacity(2);
        let mut entries = Vec::with_capacity(2);
        let mut codecs = Vec::with_capacity(2);
        if let Some(config) = video {
            entries.push(avc1_sample_entry(config)?);
            codecs.push(config.codec_string());
            track_list.push(Track {
                kind: TrackKind::Video,
                id: track_list.len() as u32 + 1,
                timescale: VIDEO_TIMESCALE,
                fixed_last_duration: None,
                default_flags: SAMPLE_FLAGS_NON_SYNC,
            });
        }
        if let Some(config) = audio {
            entries.push(mp4a_sample_entry(config)?);
            codecs.push(config.codec_string());
            track_list.push(Track {
                kind: TrackKind::Audio,
                id: track_list.len() as u32 + 1,
                timescale: config.sample_rate,
                fixed_last_duration: Some(aac::SAMPLES_PER_FRAME),
                default_flags: SAMPLE_FLAGS_SYNC,
            });
        }

        let mut skipped = Vec::new();
        if info.video.is_some() && !want_video {
            skipped.push(TrackKind::Video);
        }
        if info.audio.is_some() && !want_audio {
            skipped.push(TrackKind::Audio);
        }

        let init = init_segment(&track_list, video, &entries);
        Ok(Fmp4Muxer {
            runs: vec![Run::default(); track_list.len()],
            tracks: track_list,
            skipped,
            init,
            codecs: codecs.join(","),
            styp: false,
        })
    }

    /// Starts every fragment with a `styp` box (§8.16.2: brand `msdh`, plus `cmfs` for a
    /// single-track muxer), as DASH media segments may. Off by default; HLS needs none.
    pub fn with_styp(mut self, styp: bool) -> Self {
        self.styp = styp;
        self
    }

    /// `ftyp` + `moov`: the HLS `EXT-X-MAP` / DASH initialization segment. Built once.
    pub fn init_segment(&self) -> Bytes {
        self.init.clone()
    }

    /// RFC 6381 `CODECS` of the tracks, in track order, e.g. `avc1.42c01e,mp4a.40.2`.
    pub fn codecs(&self) -> &str {
        &self.codecs
    }

    /// The `track_ID` of a track this muxer writes.
    pub fn track_id(&self, kind: TrackKind) -> Option<u32> {
        self.track(kind).map(|t| t.id)
    }

    /// The timescale (`mdhd`, `tfdt`) of a track this muxer writes.
    pub fn timescale(&self, kind: TrackKind) -> Option<u32> {
        self.track(kind).map(|t| t.timescale)
    }

    /// A 90 kHz time in a track's timescale, rounded exactly as `tfdt` and sample durations
    /// are (for DASH `SegmentTimeline` entries that must match the fragments).
    pub fn track_time(&self, kind: TrackKind, ticks: i64) -> Option<i64> {
        self.track(kind).map(|t| to_timescale(ticks, t.timescale))
    }

    fn track(&self, kind: TrackKind) -> Option<&Track> {
        self.tracks.iter().find(|t| t.kind == kind)
    }

    /// One fragment: [`styp`](Fmp4Muxer::with_styp), `moof` (a `traf` for each track with
    /// samples here) and `mdat` holding every video frame, then every audio frame.
    ///
    /// `frames` are in decode order within each track; `end_dts` (90 kHz) is the decode time
    /// the fragment ends at, normally the next fragment's first video DTS, and sets the
    /// duration of the last video sample. `sequence` goes to `mfhd` (§8.8.5: starts at 1
    /// and increases by fragment).
    ///
    /// # Errors
    ///
    /// [`Fmp4Error`] when a frame's track is not in the stream, no frame belongs to this
    /// muxer, decode times are negative or do not increase, `end_dts` does not follow the
    /// last video frame, or offsets do not fit their fields. Nothing is written on error.
    pub fn fragment(
        &mut self,
        sequence: u32,
        frames: &[Frame],
        end_dts: i64,
    ) -> Result<Bytes, Fmp4Error> {
        self.write_fragment(sequence, frames, end_dts, None)
    }

    /// Where the fragment of `frames` ending at `end_dts` would sit on the timeline of this
    /// single-track muxer's track (the `tfrf` entry that announces it), without writing it.
    ///
    /// # Errors
    ///
    /// [`Fmp4Error::MssNeedsOneTrack`], and the timing errors of [`Fmp4Muxer::fragment`].
    pub fn fragment_time(
        &mut self,
        frames: &[Frame],
        end_dts: i64,
    ) -> Result<FragmentTime, Fmp4Error> {
        let (track, run) = match (&self.tracks[..], &mut self.runs[..]) {
            ([track], [run]) => (track, run),
            _ => return Err(Fmp4Error::MssNeedsOneTrack),
        };
        build_run(track, run, 0, frames, end_dts)?;
        if run.samples.is_empty() {
            return Err(Fmp4Error::EmptyFragment { sequence: 0 });
        }
        Ok(run.time())
    }

    /// A Smooth Streaming fragment (MS-SSTR §2.2.4) of this single-track muxer: what
    /// [`Fmp4Muxer::fragment`] writes, plus a `tfxd` with the fragment's own time and
    /// duration and, when `next` is known, a `tfrf` announcing the next fragment. Returns the
    /// fragment and its place on the timeline.
    ///
    /// # Errors
    ///
    /// [`Fmp4Error::MssNeedsOneTrack`] for a muxer of two tracks, and the errors of
    /// [`Fmp4Muxer::fragment`].
    pub fn mss_fragment(
        &mut self,
        sequence: u32,
        frames: &[Frame],
        end_dts: i64,
        next: Option<FragmentTime>,
    ) -> Result<(Bytes, FragmentTime), Fmp4Error> {
        if self.tracks.len() != 1 {
            return Err(Fmp4Error::MssNeedsOneTrack);
        }
        let bytes = self.write_fragment(sequence, frames, end_dts, Some(next))?;
        Ok((bytes, self.runs[0].time()))
    }

    /// `mss`: `None` for a plain fragment; `Some(next)` adds the Smooth Streaming boxes.
    fn write_fragment(
        &mut self,
        sequence: u32,
        frames: &[Frame],
        end_dts: i64,
        mss: Option<Option<FragmentTime>>,
    ) -> Result<Bytes, Fmp4Error> {
        if let Some(frame) = frames
            .iter()
            .find(|f| self.track(f.track).is_none() && !self.skipped.contains(&f.track))
        {
            return Err(Fmp4Error::TrackNotConfigured {
                sequence,
                track: frame.track,
                dts: frame.dts,
            });
        }
        for (track, run) in self.tracks.iter().zip(&mut self.runs) {
            build_run(track, run, sequence, frames, end_dts)?;
        }
        if self.runs.iter().all(|run| run.samples.is_empty()) {
            return Err(Fmp4Error::EmptyFragment { sequence });
        }

        // At most one run per track kind: no allocation for the layouts.
        let mut layouts: [Option<TrafLayout>; 2] = [None; 2];
        for (layout, run) in layouts.iter_mut().zip(&self.runs) {
            *layout = (!run.samples.is_empty()).then(|| TrafLayout {
                mss: mss.map(|next| MssBoxes {
                    this: run.time(),
                    next,
                }),
                ..TrafLayout::of(run)
            });
        }
        let moof_len = BOX_HEADER_LEN
            + (FULL_BOX_HEADER_LEN + 4)
            + layouts.iter().flatten().map(TrafLayout::len).sum::<usize>();
        let payload_len: u64 = self.runs.iter().map(|run| run.data_len).sum();
        let mdat_len = BOX_HEADER_LEN as u64 + payload_len;
        // The last track's data offset is below the mdat's end, so this bounds both.
        if moof_len as u64 + mdat_len > i32::MAX as u64 {
            return Err(Fmp4Error::FragmentTooLarge {
                sequence,
                bytes: payload_len,
            });
        }
        let single_track = self.tracks.len() == 1;
        let styp_len = if self.styp {
            brands_box_len(segment_brands(single_track))
        } else {
            0
        };
        let total = styp_len + moof_len + mdat_len as usize;
        let mut out = BytesMut::with_capacity(total);

        if self.styp {
            write_brands_box(&mut out, b"styp", b"msdh", segment_brands(single_track));
        }
        let moof = open_box(&mut out, b"moof");
        let mfhd = open_full_box(&mut out, b"mfhd", 0, 0);
        out.put_u32(sequence);
        close_box(&mut out, mfhd);
        // §8.8.7.1 default-base-is-moof: data offsets count from the first byte of `moof`.
        let mut data_offset = moof_len + BOX_HEADER_LEN;
        for ((track, run), layout) in self.tracks.iter().zip(&self.runs).zip(&layouts) {
            let Some(layout) = layout else { continue };
            write_traf(&mut out, track, run, layout, data_offset as i32);
            data_offset += run.data_len as usize;
        }
        close_box(&mut out, moof);
        debug_assert_eq!(out.len() - moof, moof_len);

        out.put_u32(mdat_len as u32);
        out.put_slice(b"mdat");
        for track in &self.tracks {
            for frame in frames.iter().filter(|f| f.track == track.kind) {
                out.put_slice(&frame.data);
            }
        }
        debug_assert_eq!(out.len(), total);
        Ok(out.freeze())
    }
}

/// Fills `run` with the samples of `track` in `frames`.
fn build_run(
    track: &Track,
    run: &mut Run,
    sequence: u32,
    frames: &[Frame],
    end_dts: i64,
) -> Result<(), Fmp4Error> {
    run.samples.clear();
    run.data_len = 0;
    run.base_decode_time = 0;
    let mut frames = frames.iter().filter(|f| f.track == track.kind).peekable();
    while let Some(frame) = frames.next() {
        if frame.dts < 0 {
            return Err(Fmp4Error::NegativeDecodeTime {
                sequence,
                track: track.kind,
                dts: frame.dts,
            });
        }
        let dts = to_timescale(frame.dts, track.timescale);
        if run.samples.is_empty() {
            run.base_decode_time = dts as u64;
        }
        let next_dts = frames.peek().map_or(end_dts, |next| next.dts);
        let duration = match (frames.peek(), track.fixed_last_duration) {
            (None, Some(fixed)) => Some(fixed),
            _ => u32::try_from(to_timescale(next_dts, track.timescale) - dts)
                .ok()
                .filter(|&d| d > 0),
        };
        let Some(duration) = duration else {
            return Err(Fmp4Error::BadDuration {
                sequence,
                track: track.kind,
                dts: frame.dts,
                next_dts,
            });
        };
        let composition_offset = i32::try_from(to_timescale(frame.pts, track.timescale) - dts)
            .map_err(|_| Fmp4Error::CompositionOffsetOutOfRange {
                sequence,
                track: track.kind,
                pts: frame.pts,
                dts: frame.dts,
            })?;
        let size = frame.data.len() as u64;
        run.data_len += size;
        if run.data_len > u64::from(u32::MAX) {
            return Err(Fmp4Error::FragmentTooLarge {
                sequence,
                bytes: run.data_len,
            });
        }
        run.samples.push(Sample {
            duration,
            size: size as u32,
            flags: if frame.keyframe {
                SAMPLE_FLAGS_SYNC
            } else {
                SAMPLE_FLAGS_NON_SYNC
            },
            composition_offset,
        });
    }
    Ok(())
}

/// A 90 kHz time in `timescale` ticks, rounded to the nearest tick (halves up). Exact for
/// video (90 kHz) and for audio frames whose 90 kHz times are within half a tick of exact.
fn to_timescale(ticks: i64, timescale: u32) -> i64 {
    if timescale == VIDEO_TIMESCALE {
        return ticks;
    }
    let scaled = i128::from(ticks) * i128::from(timescale) + i128::from(TIMESCALE / 2);
    // |ticks| * timescale / 90 000 fits i64 for every i64 ticks and u32 timescale below
    // 90 kHz; above it the result saturates, and the duration checks reject it.
    let value = scaled.div_euclid(i128::from(TIMESCALE));
    value.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

fn flags_layout(samples: &[Sample]) -> FlagsLayout {
    let Some((first, rest)) = samples.split_first() else {
        return FlagsLayout::Default(SAMPLE_FLAGS_SYNC);
    };
    let Some(second) = rest.first() else {
        return FlagsLayout::Default(first.flags);
    };
    if rest.iter().any(|s| s.flags != second.flags) {
        FlagsLayout::PerSample
    } else if first.flags == second.flags {
        FlagsLayout::Default(first.flags)
    } else {
        FlagsLayout::FirstThenDefault {
            first: first.flags,
            rest: second.flags,
        }
    }
}

/// `traf` with `tfhd`, `tfdt` and `trun` (§8.8.6-8, §8.8.12).
fn write_traf(out: &mut BytesMut, track: &Track, run: &Run, layout: &TrafLayout, offset: i32) {
    let traf = open_box(out, b"traf");

    let tfhd = open_full_box(out, b"tfhd", 0, layout.tfhd_flags());
    out.put_u32(track.id);
    match layout.flags {
        FlagsLayout::Default(flags) | FlagsLayout::FirstThenDefault { rest: flags, .. } => {
            out.put_u32(flags)
        }
        FlagsLayout::PerSample => {}
    }
    close_box(out, tfhd);

    // Version 1: 64-bit baseMediaDecodeTime, which a 90 kHz clock outgrows in 13 hours.
    let tfdt = open_full_box(out, b"tfdt", 1, 0);
    out.put_u64(run.base_decode_time);
    close_box(out, tfdt);

    let flags = layout.trun_flags();
    let trun = open_full_box(out, b"trun", layout.trun_version(), flags);
    out.put_u32(run.samples.len() as u32);
    out.put_i32(offset);
    if let FlagsLayout::FirstThenDefault { first, .. } = layout.flags {
        out.put_u32(first);
    }
    for sample in &run.samples {
        out.put_u32(sample.duration);
        out.put_u32(sample.size);
        if flags & TRUN_SAMPLE_FLAGS != 0 {
            out.put_u32(sample.flags);
        }
        if flags & TRUN_COMPOSITION_OFFSETS != 0 {
            out.put_i32(sample.composition_offset);
        }
    }
    close_box(out, trun);

    if let Some(mss) = layout.mss {
        // MS-SSTR §2.2.4.4: version 1, 64-bit absolute time and duration.
        let tfxd = open_box(out, b"uuid");
        out.put_slice(&TFXD_UUID);
        out.put_u32(1 << 24);
        out.put_u64(mss.this.time);
        out.put_u64(mss.this.duration);
        close_box(out, tfxd);
        if let Some(next) = mss.next {
            // §2.2.4.5: version 1, an 8-bit fragment count, then time and duration of each.
            let tfrf = open_box(out, b"uuid");
            out.put_slice(&TFRF_UUID);
            out.put_u32(1 << 24);
            out.put_u8(1);
            out.put_u64(next.time);
            out.put_u64(next.duration);
            close_box(out, tfrf);
        }
    }

    close_box(out, traf);
    debug_assert_eq!(out.len() - traf, layout.len());
}

// ---- initialization segment -----------------------------------------------------------------

/// Compatible brands of `ftyp` (§4.3; `iso6` for `tfdt` and default-base-is-moof, `cmfc`
/// for a CMAF track, 23000-19 §7.2).
fn file_brands(single_track: bool) -> &'static [&'static [u8; 4]] {
    if single_track {
        &[b"iso6", b"cmfc", b"isom", b"mp41"]
    } else {
        &[b"iso6", b"isom", b"mp41"]
    }
}

/// Compatible brands of `styp`: `msdh` (ISO/IEC 23009-1 §6.3.4.2), `cmfs` for a CMAF segment.
fn segment_brands(single_track: bool) -> &'static [&'static [u8; 4]] {
    if single_track {
        &[b"msdh", b"cmfs"]
    } else {
        &[b"msdh"]
    }
}

fn brands_box_len(brands: &[&[u8; 4]]) -> usize {
    BOX_HEADER_LEN + 8 + 4 * brands.len()
}

/// `ftyp` or `styp`: major_brand, minor_version 0, compatible_brands.
fn write_brands_box(out: &mut BytesMut, kind: &[u8; 4], major: &[u8; 4], brands: &[&[u8; 4]]) {
    let start = open_box(out, kind);
    out.put_slice(major);
    out.put_u32(0);
    for brand in brands {
        out.put_slice(&brand[..]);
    }
    close_box(out, start);
}

fn init_segment(tracks: &[Track], video: Option<&VideoConfig>, entries: &[Vec<u8>]) -> Bytes {
    let mut out = BytesMut::with_capacity(1024 + entries.iter().map(Vec::len).sum::<usize>());
    write_brands_box(&mut out, b"ftyp", b"iso6", file_brands(tracks.len() == 1));

    let moov = open_box(&mut out, b"moov");
    let mvhd = open_full_box(&mut out, b"mvhd", 0, 0);
    out.put_u32(0); // creation_time
    out.put_u32(0); // modification_time
    out.put_u32(MOVIE_TIMESCALE);
    out.put_u32(0); // duration: all samples are in fragments
    out.put_u32(0x0001_0000); // rate 1.0
    out.put_u16(0x0100); // volume 1.0
    out.put_bytes(0, 2 + 8); // reserved
    put_matrix(&mut out);
    out.put_bytes(0, 6 * 4); // pre_defined
    out.put_u32(tracks.len() as u32 + 1); // next_track_ID
    close_box(&mut out, mvhd);

    for (track, entry) in tracks.iter().zip(entries) {
        write_trak(&mut out, track, video, entry);
    }

    let mvex = open_box(&mut out, b"mvex");
    for track in tracks {
        let trex = open_full_box(&mut out, b"trex", 0, 0);
        out.put_u32(track.id);
        out.put_u32(1); // default_sample_description_index
        out.put_u32(0); // default_sample_duration
        out.put_u32(0); // default_sample_size
        out.put_u32(track.default_flags);
        close_box(&mut out, trex);
    }
    close_box(&mut out, mvex);
    close_box(&mut out, moov);
    out.freeze()
}

fn write_trak(out: &mut BytesMut, track: &Track, video: Option<&VideoConfig>, entry: &[u8]) {
    let is_video = track.kind == TrackKind::Video;
    let trak = open_box(out, b"trak");

    // track_enabled | track_in_movie.
    let tkhd = open_full_box(out, b"tkhd", 0, 0x00_0003);
    out.put_u32(0); // creation_time
    out.put_u32(0); // modification_time
    out.put_u32(track.id);
    out.put_u32(0); // reserved
    out.put_u32(0); // duration
    out.put_bytes(0, 8); // reserved
    out.put_u16(0); // layer
    out.put_u16(0); // alternate_group
    out.put_u16(if is_video { 0 } else { 0x0100 }); // volume
    out.put_u16(0); // reserved
    put_matrix(out);
    let (width, height) = video
        .filter(|_| is_video)
        .map_or((0, 0), |v| (u32::from(v.width), u32::from(v.height)));
    out.put_u32(width << 16); // 16.16 fixed point
    out.put_u32(height << 16);
    close_box(out, tkhd);

    let mdia = open_box(out, b"mdia");
    let mdhd = open_full_box(out, b"mdhd", 0, 0);
    out.put_u32(0); // creation_time
    out.put_u32(0); // modification_time
    out.put_u32(track.timescale);
    out.put_u32(0); // duration
    out.put_u16(LANGUAGE_UND);
    out.put_u16(0); // pre_defined
    close_box(out, mdhd);

    let hdlr = open_full_box(out, b"hdlr", 0, 0);
    out.put_u32(0); // pre_defined
    let (handler, name): (&[u8; 4], &[u8]) = if is_video {
        (b"vide", b"VideoHandler\0")
    } else {
        (b"soun", b"SoundHandler\0")
    };
    out.put_slice(handler);
    out.put_bytes(0, 12); // reserved
    out.put_slice(name);
    close_box(out, hdlr);

    let minf = open_box(out, b"minf");
    if is_video {
        // flags = 1 (§12.1.2.1); graphicsmode copy, opcolor 0.
        let vmhd = open_full_box(out, b"vmhd", 0, 1);
        out.put_bytes(0, 8);
        close_box(out, vmhd);
    } else {
        let smhd = open_full_box(out, b"smhd", 0, 0);
        out.put_u32(0); // balance, reserved
        close_box(out, smhd);
    }
    let dinf = open_box(out, b"dinf");
    let dref = open_full_box(out, b"dref", 0, 0);
    out.put_u32(1); // entry_count
    let url = open_full_box(out, b"url ", 0, 1); // media data in this file
    close_box(out, url);
    close_box(out, dref);
    close_box(out, dinf);

    let stbl = open_box(out, b"stbl");
    let stsd = open_full_box(out, b"stsd", 0, 0);
    out.put_u32(1); // entry_count
    out.put_slice(entry);
    close_box(out, stsd);
    for kind in [b"stts", b"stsc", b"stco"] {
        let empty = open_full_box(out, kind, 0, 0);
        out.put_u32(0); // entry_count
        close_box(out, empty);
    }
    let stsz = open_full_box(out, b"stsz", 0, 0);
    out.put_u32(0); // sample_size
    out.put_u32(0); // sample_count
    close_box(out, stsz);
    close_box(out, stbl);

    close_box(out, minf);
    close_box(out, mdia);
    close_box(out, trak);
}

/// `avc1` VisualSampleEntry (14496-12 §12.1.3, 14496-15 §5.4.2.1) with its `avcC`.
fn avc1_sample_entry(config: &VideoConfig) -> Result<Vec<u8>, Fmp4Error> {
    let avcc = avc_decoder_configuration(config)?;
    let mut out = BytesMut::with_capacity(86 + BOX_HEADER_LEN + avcc.len());
    let avc1 = open_box(&mut out, b"avc1");
    put_sample_entry_header(&mut out);
    out.put_u16(0); // pre_defined
    out.put_u16(0); // reserved
    out.put_bytes(0, 12); // pre_defined
    out.put_u16(config.width);
    out.put_u16(config.height);
    out.put_u32(0x0048_0000); // horizresolution 72 dpi
    out.put_u32(0x0048_0000); // vertresolution 72 dpi
    out.put_u32(0); // reserved
    out.put_u16(1); // frame_count
    out.put_bytes(0, 32); // compressorname: empty
    out.put_u16(0x0018); // depth
    out.put_i16(-1); // pre_defined
    let avcc_box = open_box(&mut out, b"avcC");
    out.put_slice(&avcc);
    close_box(&mut out, avcc_box);
    close_box(&mut out, avc1);
    Ok(out.to_vec())
}

/// AVCDecoderConfigurationRecord (14496-15 §5.3.3.1.2): one SPS, one PPS, 4-byte NAL unit
/// lengths, and for the high profiles the chroma format and bit depths read from the SPS.
fn avc_decoder_configuration(config: &VideoConfig) -> Result<Vec<u8>, Fmp4Error> {
    let sps = &config.sps;
    let info = h264::parse_sps(sps).map_err(Fmp4Error::BadSps)?;
    let sps_len = u16::try_from(sps.len()).map_err(|_| {
        Fmp4Error::BadSps(H264Error::InvalidValue {
            field: "sps length",
            value: sps.len() as u64,
        })
    })?;
    let pps = &config.pps;
    let pps_len = u16::try_from(pps.len())
        .ok()
        .filter(|&len| len > 0)
        .ok_or(Fmp4Error::BadPps { len: pps.len() })?;

    let mut out = Vec::with_capacity(11 + sps.len() + pps.len() + 4);
    // parse_sps succeeded, so the SPS has its header and the three profile bytes.
    out.extend_from_slice(&[1, sps[1], sps[2], sps[3]]);
    out.push(0xFC | (h264::AVCC_LENGTH_SIZE as u8 - 1)); // lengthSizeMinusOne
    out.push(0xE0 | 1); // numOfSequenceParameterSets
    out.extend_from_slice(&sps_len.to_be_bytes());
    out.extend_from_slice(sps);
    out.push(1); // numOfPictureParameterSets
    out.extend_from_slice(&pps_len.to_be_bytes());
    out.extend_from_slice(pps);
    if AVCC_EXTENDED_PROFILES.contains(&info.profile_idc) {
        let (luma, chroma) = sps_bit_depths(sps).map_err(Fmp4Error::BadSps)?;
        out.push(0xFC | info.chroma_format_idc as u8);
        out.push(0xF8 | luma);
        out.push(0xF8 | chroma);
        out.push(0); // numOfSequenceParameterSetExt
    }
    Ok(out)
}

/// `bit_depth_luma_minus8` and `bit_depth_chroma_minus8` of an SPS of a profile that has them
/// (H.264 §7.3.2.1.1). `parse_sps` has checked the SPS up to and past these fields.
fn sps_bit_depths(sps: &[u8]) -> Result<(u8, u8), H264Error> {
    let rbsp = h264::unescape_emulation(&sps[1..]);
    let r = &mut BitReader::new(&rbsp);
    let syntax = |field| move |source| H264Error::Syntax { field, source };
    r.skip(24).map_err(syntax("profile_idc"))?;
    r.ue().map_err(syntax("seq_parameter_set_id"))?;
    if r.ue().map_err(syntax("chroma_format_idc"))? == 3 {
        r.flag().map_err(syntax("separate_colour_plane_flag"))?;
    }
    let luma = r.ue().map_err(syntax("bit_depth_luma_minus8"))?;
    let chroma = r.ue().map_err(syntax("bit_depth_chroma_minus8"))?;
    // parse_sps limits both to 6.
    Ok((luma as u8 & 0x07, chroma as u8 & 0x07))
}

/// `mp4a` AudioSampleEntry (14496-12 §12.2.3, 14496-14 §5.6.1) with its `esds`.
fn mp4a_sample_entry(config: &AudioConfig) -> Result<Vec<u8>, Fmp4Error> {
    // The descriptor lengths below are single bytes.
    if config.asc.is_empty() || config.asc.len() > 64 || config.sample_rate == 0 {
        return Err(Fmp4Error::BadAudioConfig {
            asc_len: config.asc.len(),
            sample_rate: config.sample_rate,
        });
    }
    let mut out = BytesMut::with_capacity(128);
    let mp4a = open_box(&mut out, b"mp4a");
    put_sample_entry_header(&mut out);
    out.put_bytes(0, 8); // reserved
    // channelConfiguration 7 is 7.1: eight channels (14496-3 Table 1.19).
    out.put_u16(if config.channels == 7 {
        8
    } else {
        config.channels.into()
    });
    out.put_u16(16); // samplesize
    out.put_u16(0); // pre_defined
    out.put_u16(0); // reserved
    // 16.16 fixed point; rates above 65535 Hz do not fit and are left to the AudioSpecificConfig.
    let rate = u16::try_from(config.sample_rate).unwrap_or(0);
    out.put_u32(u32::from(rate) << 16);

    // esds (14496-14 §5.6.1): ES_Descriptor (14496-1 §7.2.6.5) holding a
    // DecoderConfigDescriptor (§7.2.6.6) with the AudioSpecificConfig as DecoderSpecificInfo
    // (§7.2.6.7), and an SLConfigDescriptor (§7.2.6.8) with predefined = 2 (MP4 files).
    let asc_len = config.asc.len() as u8;
    let decoder_config_len = 13 + 2 + asc_len;
    let es_len = 3 + 2 + decoder_config_len + 3;
    let esds = open_full_box(&mut out, b"esds", 0, 0);
    out.put_slice(&[0x03, es_len, 0x00, 0x00, 0x00]); // ES_ID 0, no flags
    out.put_slice(&[
        0x04,
        decoder_config_len,
        OBJECT_TYPE_AAC,
        STREAM_TYPE_AUDIO_BYTE,
    ]);
    out.put_bytes(0, 3 + 4 + 4); // bufferSizeDB, maxBitrate, avgBitrate: unknown
    out.put_slice(&[0x05, asc_len]);
    out.put_slice(&config.asc);
    out.put_slice(&[0x06, 0x01, 0x02]);
    close_box(&mut out, esds);
    close_box(&mut out, mp4a);
    Ok(out.to_vec())
}

/// SampleEntry (§8.5.2.2): six reserved bytes and data_reference_index 1.
fn put_sample_entry_header(out: &mut BytesMut) {
    out.put_bytes(0, 6);
    out.put_u16(1);
}

fn put_matrix(out: &mut BytesMut) {
    for value in UNITY_MATRIX {
        out.put_u32(value);
    }
}

// ---- box framing ----------------------------------------------------------------------------

/// Starts a box whose size is patched by [`close_box`]; returns where it starts.
fn open_box(out: &mut BytesMut, kind: &[u8; 4]) -> usize {
    let start = out.len();
    out.put_u32(0);
    out.put_slice(kind);
    start
}

/// Starts a full box (§4.2): version and 24-bit flags after the header.
fn open_full_box(out: &mut BytesMut, kind: &[u8; 4], version: u8, flags: u32) -> usize {
    let start = open_box(out, kind);
    out.put_u32(u32::from(version) << 24 | (flags & 0x00FF_FFFF));
    start
}

/// Writes the size of the box that starts at `start` and ends at the end of `out`. Only
/// headers go through here; `mdat`, the one large box, is sized up front.
fn close_box(out: &mut BytesMut, start: usize) {
    let size = (out.len() - start) as u32;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    // ---- a small box parser ---------------------------------------------------------------

    /// One parsed box; `body` follows the 8-byte header, `children` are parsed for the
    /// container boxes this muxer writes.
    #[derive(Debug)]
    struct Mp4Box<'a> {
        kind: [u8; 4],
        body: &'a [u8],
        children: Vec<Mp4Box<'a>>,
    }

    impl<'a> Mp4Box<'a> {
        fn name(&self) -> &str {
            std::str::from_utf8(&self.kind).unwrap()
        }

        fn child(&self, kind: &str) -> &Mp4Box<'a> {
            let mut found = self.children.iter().filter(|b| b.name() == kind);
            let first = found
                .next()
                .unwrap_or_else(|| panic!("{} has no {kind}", self.name()));
            assert!(found.next().is_none(), "{} has two {kind}", self.name());
            first
        }

        fn all(&self, kind: &str) -> Vec<&Mp4Box<'a>> {
            self.children.iter().filter(|b| b.name() == kind).collect()
        }

        fn path(&self, path: &str) -> &Mp4Box<'a> {
            path.split('/').fold(self, |b, kind| b.child(kind))
        }

        fn names(&self) -> Vec<&str> {
            self.children.iter().map(Mp4Box::name).collect()
        }

        fn version(&self) -> u8 {
            self.body[0]
        }

        fn flags(&self) -> u32 {
            be32(&self.body[..4]) & 0x00FF_FFFF
        }

        /// The body after a full box's version and flags.
        fn full(&self) -> &'a [u8] {
            &self.body[4..]
        }
    }

    fn be16(b: &[u8]) -> u16 {
        u16::from_be_bytes(b[..2].try_into().unwrap())
    }

    fn be32(b: &[u8]) -> u32 {
        u32::from_be_bytes(b[..4].try_into().unwrap())
    }

    fn be64(b: &[u8]) -> u64 {
        u64::from_be_bytes(b[..8].try_into().unwrap())
    }

    /// Parses a sequence of boxes that fills `buf` exactly; panics on any size that does not
    /// add up.
    fn parse(buf: &[u8]) -> Vec<Mp4Box<'_>> {
        let mut boxes = Vec::new();
        let mut rest = buf;
        while !rest.is_empty() {
            assert!(rest.len() >= 8, "truncated box header: {rest:?}");
            let size = be32(rest) as usize;
            assert!(
                size >= 8 && size <= rest.len(),
                "box size {size} of {}",
                rest.len()
            );
            let kind: [u8; 4] = rest[4..8].try_into().unwrap();
            let body = &rest[8..size];
            let children_at = match &kind {
                b"moov" | b"trak" | b"mdia" | b"minf" | b"dinf" | b"stbl" | b"mvex" | b"moof"
                | b"traf" => Some(0),
                b"stsd" | b"dref" => Some(8),
                b"avc1" => Some(78),
                b"mp4a" => Some(28),
                _ => None,
            };
            let children = children_at.map_or_else(Vec::new, |at| parse(&body[at..]));
            if let Some(count_at) = matches!(&kind, b"stsd" | b"dref").then_some(4) {
                assert_eq!(
                    be32(&body[count_at..]) as usize,
                    children.len(),
                    "entry_count"
                );
            }
            boxes.push(Mp4Box {
                kind,
                body,
                children,
            });
            rest = &rest[size..];
        }
        boxes
    }

    /// A `trun` read back with the defaults of its `tfhd`.
    #[derive(Debug)]
    struct TrunSamples {
        track_id: u32,
        base_decode_time: u64,
        version: u8,
        data_offset: i32,
        /// (duration, size, flags, composition offset)
        samples: Vec<(u32, u32, u32, i32)>,
    }

    fn read_traf(traf: &Mp4Box<'_>) -> TrunSamples {
        assert_eq!(traf.names(), ["tfhd", "tfdt", "trun"]);
        let tfhd = traf.child("tfhd");
        assert_eq!(tfhd.version(), 0);
        let tfhd_flags = tfhd.flags();
        assert_eq!(
            tfhd_flags & !TFHD_DEFAULT_SAMPLE_FLAGS,
            TFHD_DEFAULT_BASE_IS_MOOF
        );
        let track_id = be32(tfhd.full());
        let default_flags = (tfhd_flags & TFHD_DEFAULT_SAMPLE_FLAGS != 0).then(|| {
            assert_eq!(tfhd.full().len(), 8);
            be32(&tfhd.full()[4..])
        });
        let tfdt = traf.child("tfdt");
        assert_eq!((tfdt.version(), tfdt.full().len()), (1, 8));
        let base_decode_time = be64(tfdt.full());

        let trun = traf.child("trun");
        let flags = trun.flags();
        let b = trun.full();
        let count = be32(b) as usize;
        assert_ne!(flags & TRUN_DATA_OFFSET, 0);
        let data_offset = be32(&b[4..]) as i32;
        let mut at = 8;
        let first_flags = (flags & TRUN_FIRST_SAMPLE_FLAGS != 0).then(|| {
            at += 4;
            be32(&b[8..])
        });
        let mut field = |present: bool| {
            present.then(|| {
                at += 4;
                be32(&b[at - 4..])
            })
        };
        let mut samples = Vec::new();
        for i in 0..count {
            let duration = field(flags & TRUN_SAMPLE_DURATION != 0).unwrap();
            let size = field(flags & TRUN_SAMPLE_SIZE != 0).unwrap();
            let sample_flags = field(flags & TRUN_SAMPLE_FLAGS != 0)
                .or(if i == 0 { first_flags } else { None })
                .or(default_flags)
                .expect("flags from trun or tfhd");
            let cto = field(flags & TRUN_COMPOSITION_OFFSETS != 0).unwrap_or(0) as i32;
            samples.push((duration, size, sample_flags, cto));
        }
        assert_eq!(at, b.len(), "trun has no trailing bytes");
        if trun.version() == 0 {
            assert!(samples.iter().all(|s| s.3 >= 0));
        }
        TrunSamples {
            track_id,
            base_decode_time,
            version: trun.version(),
            data_offset,
            samples,
        }
    }

    /// A fragment read back: sequence number, its trafs, and the bytes of each sample.
    struct Fragment {
        sequence: u32,
        trafs: Vec<TrunSamples>,
        payloads: Vec<Vec<Vec<u8>>>,
    }

    fn read_fragment(buf: &[u8]) -> Fragment {
        let boxes = parse(buf);
        let boxes: Vec<&Mp4Box<'_>> = boxes.iter().filter(|b| b.name() != "styp").collect();
        assert_eq!(
            boxes.iter().map(|b| b.name()).collect::<Vec<_>>(),
            ["moof", "mdat"]
        );
        let moof = boxes[0];
        let moof_start = moof.body.as_ptr() as usize - 8 - buf.as_ptr() as usize;
        let mdat = boxes[1];
        let mdat_start = mdat.body.as_ptr() as usize - buf.as_ptr() as usize;
        let mdat_end = mdat_start + mdat.body.len();
        assert_eq!(mdat_end, buf.len());
        assert_eq!(moof.names()[0], "mfhd");
        let sequence = be32(moof.child("mfhd").full());
        let trafs: Vec<TrunSamples> = moof.all("traf").into_iter().map(read_traf).collect();
        let mut payloads = Vec::new();
        let mut expected_offset = mdat_start;
        for traf in &trafs {
            let mut at = moof_start + traf.data_offset as usize;
            assert_eq!(
                at, expected_offset,
                "track data is contiguous, in track order"
            );
            let mut samples = Vec::new();
            for &(_, size, _, _) in &traf.samples {
                samples.push(buf[at..at + size as usize].to_vec());
                at += size as usize;
            }
            assert!(at <= mdat_end);
            expected_offset = at;
            payloads.push(samples);
        }
        assert_eq!(expected_offset, mdat_end, "mdat holds exactly the samples");
        Fragment {
            sequence,
            trafs,
            payloads,
        }
    }

    // ---- fixtures -------------------------------------------------------------------------

    /// x264's SPS for 320x240 Constrained Baseline level 1.3 at 25 fps.
    const SPS: &[u8] = &[
        0x67, 0x42, 0xC0, 0x0D, 0xD9, 0x01, 0x41, 0xFB, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
        0x00, 0x00, 0x03, 0x03, 0x20, 0xF1, 0x42, 0xA4, 0x80,
    ];
    const PPS: &[u8] = &[0x68, 0xCB, 0x83, 0xCB, 0x20];
    /// x264's SPS for 1280x720 High profile level 3.1 at 25 fps.
    const SPS_HIGH: &[u8] = &[
        0x67, 0x64, 0x00, 0x1F, 0xAC, 0xD9, 0x40, 0x50, 0x05, 0xBB, 0x01, 0x10, 0x00, 0x00, 0x03,
        0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0x20, 0xF1, 0x83, 0x19, 0x60,
    ];

    fn video_config(sps: &'static [u8]) -> VideoConfig {
        h264::video_config(Bytes::from_static(sps), Bytes::from_static(PPS)).unwrap()
    }

    fn av_info(sample_rate: u32) -> MediaInfo {
        MediaInfo {
            video: Some(video_config(SPS)),
            audio: aac::audio_config(2, sample_rate, 2),
        }
    }

    fn patterned(seed: usize, len: usize) -> Bytes {
        (0..len)
            .map(|i| seed.wrapping_mul(31).wrapping_add(i) as u8)
            .collect()
    }

    fn video(dts: i64, keyframe: bool, len: usize) -> Frame {
        Frame {
            track: TrackKind::Video,
            pts: dts,
            dts,
            keyframe,
            data: patterned(dts as usize, len),
        }
    }

    fn audio(dts: i64, len: usize) -> Frame {
        Frame {
            track: TrackKind::Audio,
            pts: dts,
            dts,
            keyframe: true,
            data: patterned(dts as usize + 7, len),
        }
    }

    /// `seconds` of 25 fps video (a keyframe every second) and 48 kHz AAC from `start`
    /// (90 kHz), in decode order.
    fn av_frames(start: i64, seconds: i64) -> Vec<Frame> {
        let mut frames = Vec::new();
        let end = start + seconds * 90_000;
        let (mut v, mut a) = (start, start);
        while v < end || a < end {
            if v <= a && v < end {
                frames.push(video(
                    v,
                    (v - start) % 90_000 == 0,
                    200 + (v / 3600 % 50) as usize,
                ));
                v += 3600;
            } else {
                frames.push(audio(a, 100 + (a / 1920 % 30) as usize));
                a += 1920;
            }
        }
        frames
    }

    // ---- tests ----------------------------------------------------------------------------

    #[test]
    fn init_segment_parses_back() {
        let mux = Fmp4Muxer::new(&av_info(48_000)).unwrap();
        let init = mux.init_segment();
        let boxes = parse(&init);
        assert_eq!(
            boxes.iter().map(Mp4Box::name).collect::<Vec<_>>(),
            ["ftyp", "moov"]
        );
        let ftyp = boxes[0].body;
        assert_eq!(&ftyp[..4], b"iso6");
        assert_eq!(be32(&ftyp[4..]), 0);
        assert_eq!(
            &ftyp[8..],
            b"iso6isommp41",
            "no cmfc: muxed A/V is not a CMAF track"
        );

        let moov = &boxes[1];
        assert_eq!(moov.names(), ["mvhd", "trak", "trak", "mvex"]);
        let mvhd = moov.child("mvhd").full();
        assert_eq!(mvhd.len(), 96);
        assert_eq!(be32(&mvhd[8..]), MOVIE_TIMESCALE);
        assert_eq!(be32(&mvhd[92..]), 3, "next_track_ID");

        let traks = moov.all("trak");
        let v = traks[0];
        assert_eq!(v.names(), ["tkhd", "mdia"]);
        let tkhd = v.child("tkhd");
        assert_eq!((tkhd.version(), tkhd.flags()), (0, 3));
        assert_eq!(be32(&tkhd.full()[8..]), 1, "track_ID");
        assert_eq!(be32(&tkhd.full()[72..]), 320 << 16);
        assert_eq!(be32(&tkhd.full()[76..]), 240 << 16);
        assert_eq!(v.child("mdia").names(), ["mdhd", "hdlr", "minf"]);
        let mdhd = v.path("mdia/mdhd").full();
        assert_eq!(be32(&mdhd[8..]), 90_000);
        assert_eq!(be16(&mdhd[16..]), 0x55C4, "und");
        assert_eq!(&v.path("mdia/hdlr").full()[4..8], b"vide");
        let minf = v.path("mdia/minf");
        assert_eq!(minf.names(), ["vmhd", "dinf", "stbl"]);
        assert_eq!(minf.child("vmhd").flags(), 1);
        let url = minf.path("dinf/dref/url ");
        assert_eq!((url.flags(), url.full().len()), (1, 0));
        let stbl = minf.child("stbl");
        assert_eq!(stbl.names(), ["stsd", "stts", "stsc", "stco", "stsz"]);
        for empty in ["stts", "stsc", "stco"] {
            assert_eq!(stbl.child(empty).full(), [0, 0, 0, 0]);
        }
        assert_eq!(stbl.child("stsz").full(), [0; 8]);
        let avc1 = stbl.path("stsd/avc1");
        assert_eq!(be16(&avc1.body[6..]), 1, "data_reference_index");
        assert_eq!((be16(&avc1.body[24..]), be16(&avc1.body[26..])), (320, 240));
        assert_eq!(avc1.names(), ["avcC"]);
        let mut want = vec![1, 0x42, 0xC0, 0x0D, 0xFF, 0xE1, 0, SPS.len() as u8];
        want.extend_from_slice(SPS);
        want.extend_from_slice(&[1, 0, PPS.len() as u8]);
        want.extend_from_slice(PPS);
        assert_eq!(avc1.child("avcC").body, &want[..]);

        let a = traks[1];
        assert_eq!(be32(&a.child("tkhd").full()[8..]), 2);
        assert_eq!(be16(&a.child("tkhd").full()[32..]), 0x0100, "audio volume");
        assert_eq!(be32(&a.path("mdia/mdhd").full()[8..]), 48_000);
        assert_eq!(&a.path("mdia/hdlr").full()[4..8], b"soun");
        assert_eq!(a.path("mdia/minf").names(), ["smhd", "dinf", "stbl"]);
        let mp4a = a.path("mdia/minf/stbl/stsd/mp4a");
        assert_eq!(be16(&mp4a.body[16..]), 2, "channelcount");
        assert_eq!(be16(&mp4a.body[18..]), 16, "samplesize");
        assert_eq!(be32(&mp4a.body[24..]), 48_000 << 16);
        let esds = mp4a.child("esds").full();
        assert_eq!(
            esds,
            [
                0x03, 25, 0, 0, 0, // ES_Descriptor
                0x04, 17, 0x40, 0x15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // DecoderConfig
                0x05, 2, 0x11, 0x90, // AudioSpecificConfig: AAC LC, 48 kHz, stereo
                0x06, 1, 2, // SLConfigDescriptor
            ]
        );

        let trex = moov.child("mvex").all("trex");
        assert_eq!(trex.len(), 2);
        assert_eq!(be32(trex[0].full()), 1);
        assert_eq!(be32(&trex[0].full()[4..]), 1, "sample description 1");
        assert_eq!(be32(&trex[0].full()[16..]), SAMPLE_FLAGS_NON_SYNC);
        assert_eq!(be32(trex[1].full()), 2);
        assert_eq!(be32(&trex[1].full()[16..]), SAMPLE_FLAGS_SYNC);
        assert_eq!(mux.codecs(), "avc1.42c00d,mp4a.40.2");
    }

    #[test]
    fn high_profile_avcc_carries_chroma_and_bit_depth() {
        let info = MediaInfo {
            video: Some(video_config(SPS_HIGH)),
            audio: None,
        };
        let mux = Fmp4Muxer::new(&info).unwrap();
        let init = mux.init_segment();
        let boxes = parse(&init);
        let avcc = boxes[1].path("trak/mdia/minf/stbl/stsd/avc1/avcC").body;
        assert_eq!(&avcc[..4], [1, 0x64, 0x00, 0x1F]);
        // 4:2:0, 8-bit luma and chroma, no SPS extensions.
        assert_eq!(&avcc[avcc.len() - 4..], [0xFD, 0xF8, 0xF8, 0x00]);
        assert_eq!(avcc.len(), 11 + SPS_HIGH.len() + PPS.len() + 4);
    }

    #[test]
    fn fragments_parse_back_and_match_input() {
        let mut mux = Fmp4Muxer::new(&av_info(48_000)).unwrap();
        let frames = av_frames(0, 6);
        // Three 2 s fragments cut at keyframes.
        for (k, (chunk, end_dts)) in split(&frames, 180_000).into_iter().enumerate() {
            let out = mux.fragment(k as u32 + 1, &chunk, end_dts).unwrap();
            let moof_len = be32(&out) as usize;
            assert_eq!(out.len(), moof_len + be32(&out[moof_len..]) as usize);
            let fragment = read_fragment(&out);
            assert_eq!(fragment.sequence, k as u32 + 1);
            assert_eq!(fragment.trafs.len(), 2);
            for (t, kind) in [TrackKind::Video, TrackKind::Audio].into_iter().enumerate() {
                let input: Vec<&Frame> = chunk.iter().filter(|f| f.track == kind).collect();
                let traf = &fragment.trafs[t];
                assert_eq!(traf.track_id, t as u32 + 1);
                assert_eq!(traf.version, 0);
                assert_eq!(traf.samples.len(), input.len());
                let tick = if kind == TrackKind::Video { 3600 } else { 1024 };
                let first = if kind == TrackKind::Video {
                    input[0].dts as u64
                } else {
                    input[0].dts as u64 * 1024 / 1920
                };
                assert_eq!(traf.base_decode_time, first);
                for (i, (frame, sample)) in input.iter().zip(&traf.samples).enumerate() {
                    assert_eq!(sample.0, tick, "duration of sample {i}");
                    assert_eq!(sample.1 as usize, frame.data.len());
                    let want = if frame.keyframe {
                        SAMPLE_FLAGS_SYNC
                    } else {
                        SAMPLE_FLAGS_NON_SYNC
                    };
                    assert_eq!(sample.2, want);
                    assert_eq!(sample.3, 0);
                    assert_eq!(fragment.payloads[t][i], frame.data);
                }
            }
        }
    }

    /// Splits frames into fragments `ticks` long from the first frame, each with its `end_dts`.
    fn split(frames: &[Frame], ticks: i64) -> Vec<(Vec<Frame>, i64)> {
        let last = frames.iter().map(|f| f.dts).max().unwrap();
        let count = (last - frames[0].dts) / ticks + 1;
        (0..count)
            .map(|k| {
                let (start, end) = (k * ticks, (k + 1) * ticks);
                let chunk = frames
                    .iter()
                    .filter(|f| (start..end).contains(&(f.dts - frames[0].dts)))
                    .cloned()
                    .collect();
                (chunk, frames[0].dts + end)
            })
            .collect()
    }

    #[test]
    fn tfdt_continues_across_fragments() {
        for rate in [48_000, 44_100, 32_000] {
            let info = av_info(rate);
            let mut mux = Fmp4Muxer::new(&info).unwrap();
            // Audio frames at 1024 samples, their 90 kHz times rounded as a source would.
            let start = 7 * 24 * 3600 * 90_000i64; // a week in: past the 32-bit tfdt range
            let mut frames: Vec<Frame> = (0..300)
                .map(|i| {
                    let dts = start + (i * 1024 * 90_000 + i64::from(rate) / 2) / i64::from(rate);
                    audio(dts, 50)
                })
                .collect();
            frames.retain(|f| f.dts < start + 6 * 90_000);
            frames.extend((0..150).map(|i| video(start + i * 3600, i % 25 == 0, 80)));
            frames.sort_by_key(|f| f.dts);
            let mut next: [Option<u64>; 2] = [None, None];
            for (k, (chunk, end)) in split(&frames, 90_000).into_iter().enumerate() {
                let out = mux.fragment(k as u32, &chunk, end).unwrap();
                for traf in read_fragment(&out).trafs {
                    let t = traf.track_id as usize - 1;
                    if let Some(expected) = next[t] {
                        assert_eq!(traf.base_decode_time, expected, "rate {rate} fragment {k}");
                    } else {
                        let first = chunk.iter().find(|f| f.dts == start).unwrap().dts;
                        let want = first as i128 * [90_000, i128::from(rate)][t] / 90_000;
                        assert_eq!(traf.base_decode_time as i128, want);
                    }
                    if t == 1 {
                        assert!(traf.samples.iter().all(|s| s.0 == 1024), "rate {rate}");
                    }
                    let total: u64 = traf.samples.iter().map(|s| u64::from(s.0)).sum();
                    next[t] = Some(traf.base_decode_time + total);
                }
            }
        }
    }

    #[test]
    fn audio_timescale_conversion_is_exact() {
        assert_eq!(to_timescale(1920, 48_000), 1024);
        assert_eq!(
            to_timescale(90_000 * 3600 * 24 * 365, 48_000),
            48_000 * 3600 * 24 * 365
        );
        assert_eq!(to_timescale(2090, 44_100), 1024); // 2089.795... rounded by the source
        assert_eq!(to_timescale(2089, 44_100), 1024);
        assert_eq!(to_timescale(-1920, 48_000), -1024);
        assert_eq!(to_timescale(i64::MAX, 90_000), i64::MAX);
        let info = MediaInfo {
            video: Some(video_config(SPS)),
            audio: aac::audio_config(2, 48_000, 2),
        };
        let mut mux = Fmp4Muxer::for_tracks(&info, Tracks::Audio).unwrap();
        assert_eq!(mux.timescale(TrackKind::Audio), Some(48_000));
        assert_eq!(mux.track_time(TrackKind::Audio, 3840), Some(2048));
        let frames = [audio(1920 * 1000, 10), audio(1920 * 1001, 10)];
        let out = mux.fragment(1, &frames, 0).unwrap();
        let traf = &read_fragment(&out).trafs[0];
        assert_eq!(traf.base_decode_time, 1_024_000);
        assert_eq!(
            traf.samples.iter().map(|s| s.0).collect::<Vec<_>>(),
            [1024, 1024]
        );
    }

    #[test]
    fn composition_offsets_use_signed_trun_version_1() {
        let info = MediaInfo {
            video: Some(video_config(SPS)),
            audio: None,
        };
        let mut mux = Fmp4Muxer::new(&info).unwrap();
        // Reordered pictures (B-frames), and one pts below its dts (legal in trun version 1).
        let mut frames = Vec::new();
        for (dts, pts, key) in [
            (0, 7200, true),
            (3600, 18_000, false),
            (7200, 10_800, false),
            (10_800, 7_000, false),
        ] {
            let mut f = video(dts, key, 30);
            f.pts = pts;
            frames.push(f);
        }
        let out = mux.fragment(1, &frames, 14_400).unwrap();
        let traf = &read_fragment(&out).trafs[0];
        assert_eq!(traf.version, 1);
        let ctos: Vec<i32> = traf.samples.iter().map(|s| s.3).collect();
        assert_eq!(ctos, [7200, 14_400, 3600, -3800]);
    }

    #[test]
    fn sample_flags_layouts() {
        let info = MediaInfo {
            video: Some(video_config(SPS)),
            audio: None,
        };
        let mut mux = Fmp4Muxer::new(&info).unwrap();
        let cases: [(&[bool], FlagsLayout); 4] = [
            (
                &[true, false, false],
                FlagsLayout::FirstThenDefault {
                    first: SAMPLE_FLAGS_SYNC,
                    rest: SAMPLE_FLAGS_NON_SYNC,
                },
            ),
            // An LL-HLS part in the middle of a GOP.
            (&[false, false], FlagsLayout::Default(SAMPLE_FLAGS_NON_SYNC)),
            (&[false, true, false], FlagsLayout::PerSample),
            (&[true], FlagsLayout::Default(SAMPLE_FLAGS_SYNC)),
        ];
        for (keys, layout) in cases {
            let frames: Vec<Frame> = keys
                .iter()
                .enumerate()
                .map(|(i, &key)| video(i as i64 * 3600, key, 10))
                .collect();
            let run = Run {
                samples: frames
                    .iter()
                    .map(|f| Sample {
                        duration: 1,
                        size: 1,
                        flags: if f.keyframe {
                            SAMPLE_FLAGS_SYNC
                        } else {
                            SAMPLE_FLAGS_NON_SYNC
                        },
                        composition_offset: 0,
                    })
                    .collect(),
                ..Run::default()
            };
            assert_eq!(TrafLayout::of(&run).flags, layout);
            let out = mux.fragment(1, &frames, keys.len() as i64 * 3600).unwrap();
            let traf = &read_fragment(&out).trafs[0];
            for (&key, sample) in keys.iter().zip(&traf.samples) {
                let want = if key {
                    SAMPLE_FLAGS_SYNC
                } else {
                    SAMPLE_FLAGS_NON_SYNC
                };
                assert_eq!(sample.2, want);
            }
        }
    }

    #[test]
    fn single_track_muxers_for_dash() {
        let info = av_info(48_000);
        let frames = av_frames(0, 2);
        for (tracks, kind, handler) in [
            (Tracks::Video, TrackKind::Video, b"vide"),
            (Tracks::Audio, TrackKind::Audio, b"soun"),
        ] {
            let mut mux = Fmp4Muxer::for_tracks(&info, tracks)
                .unwrap()
                .with_styp(true);
            assert_eq!(mux.track_id(kind), Some(1));
            let init = mux.init_segment();
            let boxes = parse(&init);
            assert_eq!(&boxes[0].body[8..], b"iso6cmfcisommp41");
            let moov = &boxes[1];
            assert_eq!(moov.names(), ["mvhd", "trak", "mvex"]);
            assert_eq!(be32(&moov.child("mvhd").full()[92..]), 2);
            assert_eq!(&moov.path("trak/mdia/hdlr").full()[4..8], handler);
            // Frames of the other track are skipped, not errors.
            let out = mux.fragment(9, &frames, 180_000).unwrap();
            let top = parse(&out);
            assert_eq!(top[0].name(), "styp");
            assert_eq!(top[0].body, b"msdh\0\0\0\0msdhcmfs");
            let fragment = read_fragment(&out);
            assert_eq!(fragment.trafs.len(), 1);
            assert_eq!(fragment.trafs[0].track_id, 1);
            let want = frames.iter().filter(|f| f.track == kind).count();
            assert_eq!(fragment.trafs[0].samples.len(), want);
            assert_eq!(fragment.payloads[0].len(), want);
        }
        assert_eq!(
            Fmp4Muxer::for_tracks(
                &MediaInfo {
                    audio: None,
                    ..info.clone()
                },
                Tracks::Both
            )
            .unwrap_err(),
            Fmp4Error::TrackMissing {
                track: TrackKind::Audio
            }
        );
    }

    /// The `uuid` boxes after `trun`, as (extended type, body after version/flags).
    fn uuid_boxes<'a>(traf: &Mp4Box<'a>) -> Vec<([u8; 16], u8, &'a [u8])> {
        traf.all("uuid")
            .into_iter()
            .map(|b| (b.body[..16].try_into().unwrap(), b.body[16], &b.body[20..]))
            .collect()
    }

    #[test]
    fn mss_fragments_carry_tfxd_and_tfrf() {
        let info = av_info(48_000);
        let frames = av_frames(180_000, 2);
        let cut = frames
            .iter()
            .rposition(|f| f.keyframe && f.track == TrackKind::Video)
            .unwrap();
        let (first, second) = frames.split_at(cut);
        let next_start = second[0].dts;
        for (tracks, kind) in [
            (Tracks::Video, TrackKind::Video),
            (Tracks::Audio, TrackKind::Audio),
        ] {
            let mut mux = Fmp4Muxer::for_tracks(&info, tracks).unwrap();
            let next = mux.fragment_time(second, 360_000).unwrap();
            let (out, this) = mux.mss_fragment(3, first, next_start, Some(next)).unwrap();
            let plain = mux.fragment(3, first, next_start).unwrap();
            assert_eq!(out.len(), plain.len() + TFXD_LEN + TFRF_ONE_LEN);
            let boxes = parse(&out);
            let traf = boxes[0].child("traf");
            assert_eq!(traf.names(), ["tfhd", "tfdt", "trun", "uuid", "uuid"]);
            let uuids = uuid_boxes(traf);
            let (tfxd, tfrf) = (&uuids[0], &uuids[1]);
            assert_eq!((tfxd.0, tfxd.1), (TFXD_UUID, 1));
            assert_eq!(be64(tfxd.2), this.time);
            assert_eq!(be64(&tfxd.2[8..]), this.duration);
            assert_eq!(tfxd.2.len(), 16);
            assert_eq!((tfrf.0, tfrf.1, tfrf.2[0]), (TFRF_UUID, 1, 1));
            assert_eq!(be64(&tfrf.2[1..]), next.time);
            assert_eq!(be64(&tfrf.2[9..]), next.duration);
            // The announced fragment starts where this one ends, and tfxd matches tfdt.
            assert_eq!(this.time + this.duration, next.time, "{kind:?}");
            assert_eq!(be64(traf.child("tfdt").full()), this.time);
            // Data offsets still point at the samples.
            let samples: u64 = first.iter().filter(|f| f.track == kind).count() as u64;
            let trun = traf.child("trun");
            assert_eq!(u64::from(be32(trun.full())), samples);
            let offset = be32(&trun.full()[4..]) as usize;
            let first_sample = first.iter().find(|f| f.track == kind).unwrap();
            assert_eq!(
                &out[offset..offset + first_sample.data.len()],
                &first_sample.data[..]
            );
            match kind {
                TrackKind::Video => assert_eq!(
                    (this.time, this.duration, next.duration),
                    (180_000, 90_000, 90_000)
                ),
                // 48 kHz: 1024 samples per AAC frame, times in samples.
                TrackKind::Audio => {
                    assert_eq!(this.time, 96_000);
                    assert_eq!(this.duration % 1024, 0);
                }
            }
            // Without a known next fragment there is no tfrf.
            let (last, _) = mux.mss_fragment(4, second, 360_000, None).unwrap();
            let boxes = parse(&last);
            assert_eq!(boxes[0].child("traf").all("uuid").len(), 1);
        }
        let mut both = Fmp4Muxer::new(&info).unwrap();
        assert_eq!(
            both.mss_fragment(1, &frames, 360_000, None).unwrap_err(),
            Fmp4Error::MssNeedsOneTrack
        );
        assert_eq!(
            both.fragment_time(&frames, 360_000).unwrap_err(),
            Fmp4Error::MssNeedsOneTrack
        );
    }

    #[test]
    fn a_track_without_samples_has_no_traf() {
        let mut mux = Fmp4Muxer::new(&av_info(48_000)).unwrap();
        let out = mux
            .fragment(1, &[audio(0, 10), audio(1920, 10)], 3840)
            .unwrap();
        let fragment = read_fragment(&out);
        assert_eq!(fragment.trafs.len(), 1);
        assert_eq!(fragment.trafs[0].track_id, 2);
    }

    #[test]
    fn frames_of_a_track_not_in_the_stream_are_an_error() {
        let info = MediaInfo {
            video: Some(video_config(SPS)),
            audio: None,
        };
        let mut mux = Fmp4Muxer::new(&info).unwrap();
        let frames = [video(0, true, 10), audio(1920, 10)];
        let err = mux.fragment(4, &frames, 3600).unwrap_err();
        assert_eq!(
            err,
            Fmp4Error::TrackNotConfigured {
                sequence: 4,
                track: TrackKind::Audio,
                dts: 1920
            }
        );
        assert_eq!(
            err.to_string(),
            "fmp4 mux: fragment 4: Audio frame at dts 1920 but the stream has no Audio track"
        );
        // The muxer carries on.
        assert!(mux.fragment(5, &frames[..1], 3600).is_ok());
    }

    #[test]
    fn timing_errors_carry_context() {
        let mut mux = Fmp4Muxer::new(&av_info(48_000)).unwrap();
        let err = |mux: &mut Fmp4Muxer, frames: &[Frame], end| mux.fragment(2, frames, end);
        assert_eq!(
            err(&mut mux, &[], 0).unwrap_err(),
            Fmp4Error::EmptyFragment { sequence: 2 }
        );
        assert_eq!(
            err(
                &mut mux,
                &[video(3600, true, 1), video(3600, false, 1)],
                7200
            )
            .unwrap_err(),
            Fmp4Error::BadDuration {
                sequence: 2,
                track: TrackKind::Video,
                dts: 3600,
                next_dts: 3600
            }
        );
        assert_eq!(
            err(&mut mux, &[video(3600, true, 1)], 3600).unwrap_err(),
            Fmp4Error::BadDuration {
                sequence: 2,
                track: TrackKind::Video,
                dts: 3600,
                next_dts: 3600
            }
        );
        assert_eq!(
            err(&mut mux, &[audio(-1920, 1)], 0).unwrap_err(),
            Fmp4Error::NegativeDecodeTime {
                sequence: 2,
                track: TrackKind::Audio,
                dts: -1920
            }
        );
        let mut late = video(0, true, 1);
        late.pts = 1 << 40;
        assert!(matches!(
            err(&mut mux, &[late], 3600).unwrap_err(),
            Fmp4Error::CompositionOffsetOutOfRange { pts, .. } if pts == 1 << 40
        ));
        assert!(err(&mut mux, &[video(0, true, 1)], 3600).is_ok());
    }

    #[test]
    fn configuration_errors() {
        assert_eq!(
            Fmp4Muxer::new(&MediaInfo::default()).unwrap_err(),
            Fmp4Error::NoTracks
        );
        let mut bad = video_config(SPS);
        bad.sps = Bytes::from_static(&[0x68, 1]);
        assert!(matches!(
            Fmp4Muxer::new(&MediaInfo {
                video: Some(bad),
                audio: None
            }),
            Err(Fmp4Error::BadSps(H264Error::WrongNalType { .. }))
        ));
        let mut bad = video_config(SPS);
        bad.pps = Bytes::new();
        assert_eq!(
            Fmp4Muxer::new(&MediaInfo {
                video: Some(bad),
                audio: None
            })
            .unwrap_err(),
            Fmp4Error::BadPps { len: 0 }
        );
        let mut bad = aac::audio_config(2, 48_000, 2).unwrap();
        bad.asc = Bytes::new();
        assert!(matches!(
            Fmp4Muxer::new(&MediaInfo {
                video: None,
                audio: Some(bad)
            }),
            Err(Fmp4Error::BadAudioConfig { asc_len: 0, .. })
        ));
    }

    #[test]
    fn fragment_is_allocated_once_at_its_final_size() {
        let mut mux = Fmp4Muxer::new(&av_info(48_000)).unwrap().with_styp(true);
        let frames = av_frames(0, 2);
        let out = mux.fragment(1, &frames, 180_000).unwrap();
        let payload: usize = frames.iter().map(|f| f.data.len()).sum();
        let headers = out.len() - payload;
        // styp 20, moof 8, mfhd 16, video traf (two keyframes: per-sample flags) 64 + 50 * 12,
        // audio traf 68 + 94 * 8, mdat 8.
        assert_eq!(headers, 20 + 8 + 16 + (64 + 50 * 12) + (68 + 94 * 8) + 8);
    }
}
