//! The driver of a pulled input (`input rtmp://`, `tshttp://`, `hls://`, `rtsp://`, `srt://`):
//! runs on the stream's owner shard, one per stream per node (`OwnedInputs`), until told to
//! stop.
//!
//! It connects to the current source, drives its sans-IO client (`pull::rtmp`,
//! `pull::tshttp`, `pull::rtsp`) over a glommio socket (HLS: `hls_pull`'s requests; SRT:
//! `srt_pull`'s datagrams), and feeds the media to the stream's `LiveInput`,
//! whose events fan out to every shard like any input's. A source fails when it refuses,
//! closes, sends garbage, or sends no frame for `source_timeout`; the next source (the
//! next `input` line) takes over without ending the stream (`LiveInput::continuing`: the
//! timeline goes on, frame viewers keep playing). When every source has failed in a row,
//! the stream ends (`InputEnded`) and the round starts again after a backoff with jitter.
//! While a backup runs, the primary is probed; once it delivers a keyframe, the driver
//! returns to it. State changes are logged once each; credentials never are (`PullUrl`'s
//! `Display` hides them).

use crate::config::pull::{PullOptions, PullScheme, PullUrl};
use crate::pull::PullClient;
use crate::pull::backoff::{Backoff, Failover};
use crate::pull::rtmp::RtmpPull;
use crate::pull::rtsp::RtspPull;
use crate::pull::tshttp::TsHttpPull;
use crate::rtmp::flv::MediaFrame;
use crate::runtime::fanout::Fanout;
use crate::runtime::hls_pull::HlsSource;
use crate::runtime::inputs::InputStart;
use crate::runtime::srt_pull::SrtLink;
use crate::stream::StreamId;
use crate::stream::input_status::{InputState, InputStatus};
use crate::stream::live_input::{LiveInput, Timeline};
use crate::stream::view::StreamEvent;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Bytes read from the origin and not yet consumed by its client, at most.
const MAX_PENDING: usize = 1 << 20;
/// How often a backup's run checks whether the primary is back.
const PRIMARY_PROBE_EVERY: Duration = Duration::from_secs(5);

/// Runs the pull until stopped; returns the timeline the stream's next input continues from.
pub async fn run(primary: PullUrl, options: PullOptions, start: InputStart) -> Timeline {
    let sources: Vec<PullUrl> = std::iter::once(primary)
        .chain(options.backups.iter().cloned())
        .collect();
    let source_timeout = Duration::from_millis(options.source_timeout_ms.into());
    let stop = start.stop.clone();
    let name = start.name.clone();
    let mut pipe = Pipeline::new(&start);
    let mut failover = Failover::new(sources.len());
    let mut backoff = Backoff::new(crate::auth::os_seed() ^ u64::from(start.stream));
    log::info!("stream {name}: pull started from {}", sources[0]);
    let mut connections = 0u64;
    while !stop.is_fired() {
        let at = failover.current();
        let url = &sources[at];
        pipe.report(|s| {
            s.state = InputState::Connecting;
            s.source = at;
            s.source_url = url.to_string().into();
            s.reconnects = connections;
        });
        connections += 1;
        let probe = (at > 0).then(|| &sources[0]);
        let session = session(url, probe, &mut pipe, source_timeout);
        let Some(outcome) = stop.unless_fired(session).await else {
            break;
        };
        if pipe.delivered {
            failover.delivered();
            backoff.reset();
        }
        match outcome {
            Outcome::PrimaryBack => {
                log::info!(
                    "stream {name}: primary {} is back, returning to it",
                    sources[0]
                );
                failover.back_to_primary();
                continue;
            }
            Outcome::Failed(why) if pipe.delivered => {
                log::warn!("stream {name}: source {url} failed: {why}")
            }
            Outcome::Failed(why) => log::debug!("stream {name}: source {url} failed: {why}"),
        }
        pipe.delivered = false;
        if failover.failed() {
            pipe.report(|s| s.state = InputState::Failed);
            if pipe.end().await {
                log::warn!(
                    "stream {name}: every source failed (last: {url}); retrying with backoff"
                );
            }
            let delay = Duration::from_millis(backoff.next_delay_ms());
            if stop
                .unless_fired(glommio::timer::sleep(delay))
                .await
                .is_none()
            {
                break;
            }
        } else {
            log::info!(
                "stream {name}: failing over to {}",
                sources[failover.current()]
            );
        }
    }
    pipe.end().await;
    pipe.report(|s| s.state = InputState::Stopped);
    log::info!("stream {name}: pull stopped");
    pipe.timeline
}

/// How a source's session ended.
enum Outcome {
    Failed(String),
    /// A backup ran and the primary answered the probe with media.
    PrimaryBack,
}

/// The stream's `LiveInput` across sources: each source gets a new one that continues the
/// timeline of the last.
struct Pipeline {
    stream: StreamId,
    generation: u64,
    segment_ms: u32,
    fanout: Rc<Fanout>,
    input: Option<LiveInput>,
    timeline: Timeline,
    events: Vec<StreamEvent>,
    /// The current source sent a frame.
    delivered: bool,
}

impl Pipeline {
    fn new(start: &InputStart) -> Self {
        Pipeline {
            stream: start.stream,
            generation: start.generation,
            segment_ms: start.segment_ms,
            fanout: start.fanout.clone(),
            input: None,
            timeline: start.timeline,
            events: Vec::with_capacity(16),
            delivered: false,
        }
    }

    /// A new source begins: the previous one hands over (the stream goes on).
    async fn begin(&mut self) {
        let (stream, generation, segment_ms) = (self.stream, self.generation, self.segment_ms);
        let next = match self.input.take() {
            Some(mut old) => {
                let (timeline, announced) = old.hand_over(&mut self.events);
                self.timeline = timeline;
                if announced {
                    LiveInput::continuing(stream, generation, segment_ms, timeline)
                } else {
                    LiveInput::new(stream, generation, segment_ms, timeline)
                }
            }
            None => LiveInput::new(stream, generation, segment_ms, self.timeline),
        };
        self.input = Some(next);
        self.flush().await;
    }

    async fn push(&mut self, media: MediaFrame) {
        let Some(input) = self.input.as_mut() else {
            return;
        };
        match media {
            MediaFrame::Config(info) => input.configure(info),
            MediaFrame::Frame(frame) => {
                if !self.delivered {
                    self.delivered = true;
                    let state = self.fanout.state();
                    state.borrow_mut().input_status_mut(self.stream).state = InputState::Running;
                }
                input.push(frame, crate::utc::now_ms(), &mut self.events);
            }
        }
        self.flush().await;
    }

    /// Updates the input's status on this shard (`/metrics`, the API's stream listing).
    fn report(&self, update: impl FnOnce(&mut InputStatus)) {
        update(
            self.fanout
                .state()
                .borrow_mut()
                .input_status_mut(self.stream),
        );
    }

    /// Ends the stream (partial segment, `InputEnded`); returns whether it was running.
    async fn end(&mut self) -> bool {
        let Some(mut input) = self.input.take() else {
            return false;
        };
        self.timeline = input.finish(&mut self.events);
        let was_live = self
            .events
            .iter()
            .any(|e| matches!(e, StreamEvent::InputEnded { .. }));
        self.flush().await;
        was_live
    }

    async fn flush(&mut self) {
        for event in self.events.drain(..) {
            self.fanout.publish(event).await;
        }
    }
}

/// The sans-IO client of `url`'s byte-stream protocol; `None` for SRT and HLS.
fn client_for(url: &PullUrl) -> Option<Box<dyn PullClient>> {
    Some(match url.scheme {
        PullScheme::Rtmp => {
            let (app, name) = url.rtmp_app_and_name();
            let tc_url = format!("rtmp://{}:{}/{app}", url.host, url.port);
            let epoch = (crate::utc::now_ms() & 0xFFFF_FFFF) as u32;
            Box::new(RtmpPull::new(
                &tc_url,
                app,
                name,
                epoch,
                crate::auth::os_seed(),
            ))
        }
        PullScheme::Rtsp => Box::new(RtspPull::new(
            &url.host,
            url.port,
            &url.path,
            url.userinfo.as_deref(),
            crate::auth::os_seed(),
        )),
        PullScheme::TsHttp => Box::new(TsHttpPull::new(
            &url.host,
            url.port,
            &url.path,
            url.userinfo.as_deref(),
        )),
        // Datagrams (`srt_pull`) and HTTP requests (`hls_pull`), not one byte stream.
        PullScheme::Srt | PullScheme::Hls | PullScheme::Hlss => return None,
    })
}

/// One connection to a source, until it fails (or, on a backup, until the primary is back).
async fn session(
    url: &PullUrl,
    probe: Option<&PullUrl>,
    pipe: &mut Pipeline,
    source_timeout: Duration,
) -> Outcome {
    let mut conn = match Upstream::open(url, source_timeout).await {
        Ok(conn) => conn,
        Err(why) => return Outcome::Failed(why),
    };
    pipe.begin().await;
    let mut next_probe = Instant::now() + PRIMARY_PROBE_EVERY;
    // Probes run beside the backup's session, so a primary that does not answer never
    // stalls it.
    let mut probing: Option<glommio::task::JoinHandle<bool>> = None;
    loop {
        let media = match conn.next(source_timeout).await {
            Ok(media) => media,
            Err(why) => return Outcome::Failed(why),
        };
        pipe.push(media).await;
        let Some(primary) = probe else { continue };
        if let Some(task) = probing.as_mut()
            && let Some(answered) = futures_lite::future::poll_once(task).await
        {
            probing = None;
            if answered == Some(true) {
                return Outcome::PrimaryBack;
            }
        }
        if probing.is_none() && Instant::now() >= next_probe {
            next_probe = Instant::now() + PRIMARY_PROBE_EVERY;
            let primary = primary.clone();
            let task = async move { probe_delivers(&primary, source_timeout).await };
            probing = Some(glommio::spawn_local(task).detach());
        }
    }
}

/// Whether `primary` answers with a keyframe within `timeout` (the connection is closed
/// either way; the switch itself reconnects).
async fn probe_delivers(primary: &PullUrl, timeout: Duration) -> bool {
    let Ok(mut conn) = Upstream::probe(primary, timeout).await else {
        return false;
    };
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match conn
            .next(deadline.saturating_duration_since(Instant::now()))
            .await
        {
            Ok(MediaFrame::Frame(f)) if f.keyframe => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    false
}

/// A source's connection: a byte stream and its client, SRT's datagrams, or an HLS pull's
/// requests.
enum Upstream {
    Stream(StreamConnection),
    /// Boxed: the SRT connection's state is large.
    Srt(Box<SrtLink>),
    Hls(Box<HlsSource>),
}

impl Upstream {
    async fn open(url: &PullUrl, timeout: Duration) -> Result<Upstream, String> {
        match url.scheme {
            PullScheme::Hls | PullScheme::Hlss => {
                Ok(Upstream::Hls(Box::new(HlsSource::new(url, timeout))))
            }
            PullScheme::Srt => SrtLink::open(url, timeout)
                .await
                .map(|link| Upstream::Srt(Box::new(link))),
            _ => StreamConnection::open(url, timeout)
                .await
                .map(Upstream::Stream),
        }
    }

    /// A probe of a primary: an HLS probe counts only segments that appear after its first
    /// playlist (a stalled origin still serves its last ones).
    async fn probe(url: &PullUrl, timeout: Duration) -> Result<Upstream, String> {
        match url.scheme {
            PullScheme::Hls | PullScheme::Hlss => {
                Ok(Upstream::Hls(Box::new(HlsSource::probe(url, timeout))))
            }
            _ => Self::open(url, timeout).await,
        }
    }

    async fn next(&mut self, timeout: Duration) -> Result<MediaFrame, String> {
        match self {
            Upstream::Stream(c) => c.next(timeout).await,
            Upstream::Srt(c) => c.next(timeout).await,
            Upstream::Hls(hls) => hls.next(timeout).await,
        }
    }
}

/// A socket and the protocol client that speaks over it.
struct StreamConnection {
    socket: TcpStream,
    client: Box<dyn PullClient>,
    pending: Vec<u8>,
    scratch: Vec<u8>,
}

impl StreamConnection {
    async fn open(url: &PullUrl, timeout: Duration) -> Result<StreamConnection, String> {
        let client = client_for(url).ok_or("not a stream protocol")?;
        let socket = super::resolve::connect(&url.host, url.port, timeout).await?;
        let _ = socket.set_nodelay(true);
        Ok(StreamConnection {
            socket,
            client,
            pending: Vec::new(),
            scratch: vec![0; 64 * 1024],
        })
    }

    /// The next configuration or frame; an error when the source failed, or sent no frame
    /// for `timeout`.
    async fn next(&mut self, timeout: Duration) -> Result<MediaFrame, String> {
        let deadline = Instant::now() + timeout;
        loop {
            self.client.tick(Instant::now());
            let out = self.client.take_output();
            if !out.is_empty() {
                self.socket
                    .write_all(&out)
                    .await
                    .map_err(|e| format!("write: {e}"))?;
            }
            if let Some(media) = self.client.poll_media() {
                return Ok(media);
            }
            let wait = deadline.saturating_duration_since(Instant::now());
            let read = self.socket.read(&mut self.scratch);
            let n = match futures_lite::future::or(async { Some(read.await) }, async {
                glommio::timer::sleep(wait).await;
                None
            })
            .await
            {
                None => return Err(format!("no media for {} s", timeout.as_secs())),
                Some(Ok(0)) => return Err("the origin closed the connection".into()),
                Some(Ok(n)) => n,
                Some(Err(e)) => return Err(format!("read: {e}")),
            };
            self.pending.extend_from_slice(&self.scratch[..n]);
            let used = self.client.handle_input(&self.pending)?;
            self.pending.drain(..used);
            if self.pending.len() > MAX_PENDING {
                return Err("the origin's data is not being consumed".into());
            }
        }
    }
}
