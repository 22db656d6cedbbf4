use super::*;

use crate::rtmp::flv::tests::{PPS, SPS};

fn sent(pull: &mut RtspPull) -> String {
    String::from_utf8(pull.take_output()).unwrap()
}

fn answer(pull: &mut RtspPull, text: &str) -> Result<(), String> {
    let used = pull.handle_input(text.as_bytes())?;
    assert_eq!(used, text.len(), "all of {text:?}");
    Ok(())
}

fn cseq(request: &str) -> u32 {
    request
        .lines()
        .find_map(|l| l.strip_prefix("CSeq: "))
        .unwrap()
        .parse()
        .unwrap()
}

fn sdp() -> String {
    let mut text = String::new();
    let video =
        crate::media::h264::video_config(Bytes::from_static(SPS), Bytes::from_static(PPS)).ok();
    let media = MediaInfo {
        video,
        audio: crate::media::aac::audio_config(2, 48_000, 2),
    };
    crate::rtsp::sdp::write_sdp(&media, "cam", 1, &mut text);
    text
}

fn interleaved(channel: u8, rtp: &[u8]) -> Vec<u8> {
    let mut out = vec![b'$', channel];
    out.extend_from_slice(&(rtp.len() as u16).to_be_bytes());
    out.extend_from_slice(rtp);
    out
}

fn rtp(pt: u8, marker: bool, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt | if marker { 0x80 } else { 0 }];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&1u32.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// Runs OPTIONS (with a Digest challenge on the first try), DESCRIBE, two SETUPs and PLAY.
fn playing() -> RtspPull {
    let mut pull = RtspPull::new("10.0.0.1", 554, "/cam?k=1", Some("bob:s%40cret"), 42);
    let options = sent(&mut pull);
    assert!(options.starts_with("OPTIONS rtsp://10.0.0.1:554/cam?k=1 RTSP/1.0\r\n"));
    assert!(!options.contains("Authorization"));
    answer(
        &mut pull,
        &format!(
            "RTSP/1.0 401 Unauthorized\r\nCSeq: {}\r\n\
             WWW-Authenticate: Digest realm=\"cams\", nonce=\"abc\"\r\n\r\n",
            cseq(&options)
        ),
    )
    .unwrap();
    let again = sent(&mut pull);
    assert!(again.starts_with("OPTIONS "));
    let expected = digest::authorization(
        &Challenge::Digest {
            realm: "cams".into(),
            nonce: "abc".into(),
            opaque: None,
            qop_auth: false,
        },
        &Answer {
            user: "bob",
            password: "s@cret",
            method: "OPTIONS",
            uri: "rtsp://10.0.0.1:554/cam?k=1",
            count: 1,
            cnonce: "000000000000002a",
        },
    );
    assert!(
        again.contains(&format!("Authorization: {expected}\r\n")),
        "{again}"
    );
    answer(
        &mut pull,
        &format!(
            "RTSP/1.0 200 OK\r\nCSeq: {}\r\nPublic: OPTIONS, DESCRIBE, GET_PARAMETER\r\n\r\n",
            cseq(&again)
        ),
    )
    .unwrap();
    let describe = sent(&mut pull);
    assert!(describe.starts_with("DESCRIBE rtsp://10.0.0.1:554/cam?k=1 RTSP/1.0\r\n"));
    assert!(describe.contains("Authorization: Digest "));
    let body = sdp();
    answer(
        &mut pull,
        &format!(
            "RTSP/1.0 200 OK\r\nCSeq: {}\r\nContent-Base: rtsp://10.0.0.1:554/cam/\r\n\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            cseq(&describe),
            body.len()
        ),
    )
    .unwrap();
    // The origin picks other channels than the ones asked for (video 4-5, audio 2-3).
    for (track, asked, given) in [(0, "0-1", "4-5"), (1, "2-3", "2-3")] {
        let setup = sent(&mut pull);
        let line = format!("SETUP rtsp://10.0.0.1:554/cam/trackID={track} RTSP/1.0\r\n");
        assert!(setup.starts_with(&line), "{setup}");
        assert!(setup.contains(&format!(
            "Transport: RTP/AVP/TCP;unicast;interleaved={asked}\r\n"
        )));
        assert_eq!(track == 1, setup.contains("Session: F00D\r\n"));
        answer(
            &mut pull,
            &format!(
                "RTSP/1.0 200 OK\r\nCSeq: {}\r\nSession: F00D;timeout=20\r\n\
                 Transport: RTP/AVP/TCP;unicast;interleaved={given}\r\n\r\n",
                cseq(&setup)
            ),
        )
        .unwrap();
    }
    let play = sent(&mut pull);
    assert!(
        play.starts_with("PLAY rtsp://10.0.0.1:554/cam/ RTSP/1.0\r\n"),
        "{play}"
    );
    answer(
        &mut pull,
        &format!(
            "RTSP/1.0 200 OK\r\nCSeq: {}\r\nSession: F00D\r\n\
             RTP-Info: url=rtsp://10.0.0.1:554/cam/trackID=0;seq=1;rtptime=90000,\
             url=rtsp://10.0.0.1:554/cam/trackID=1;seq=1;rtptime=48000\r\n\r\n",
            cseq(&play)
        ),
    )
    .unwrap();
    pull
}

#[test]
fn digest_challenge_then_describe_setup_play_and_frames() {
    let mut pull = playing();
    let Some(MediaFrame::Config(info)) = pull.poll_media() else {
        panic!("no configuration")
    };
    assert_eq!(info.video.as_ref().unwrap().sps, SPS);
    assert_eq!(info.audio.as_ref().unwrap().sample_rate, 48_000);
    // Video on channel 4 (as the origin chose), 1 s after rtptime: pts 90000.
    let mut wire = interleaved(4, &rtp(96, true, 1, 180_000, &[0x65, 1, 2, 3]));
    // RTCP on channel 5 is ignored; audio on channel 2, 0.5 s in.
    wire.extend(interleaved(5, &[0x80, 200, 0, 0]));
    wire.extend(interleaved(
        2,
        &rtp(97, true, 1, 72_000, &[0, 16, 0, 24, 7, 7, 7]),
    ));
    assert_eq!(pull.handle_input(&wire).unwrap(), wire.len());
    let Some(MediaFrame::Frame(video)) = pull.poll_media() else {
        panic!()
    };
    assert_eq!(
        (video.track, video.pts, video.keyframe),
        (TrackKind::Video, 90_000, true)
    );
    assert_eq!(&video.data[..], &[0, 0, 0, 4, 0x65, 1, 2, 3]);
    let Some(MediaFrame::Frame(audio)) = pull.poll_media() else {
        panic!()
    };
    assert_eq!((audio.track, audio.pts), (TrackKind::Audio, 45_000));
    assert_eq!(&audio.data[..], &[7, 7, 7]);
    // A partial frame waits for the rest.
    assert_eq!(pull.handle_input(&wire[..10]).unwrap(), 0);
}

#[test]
fn keep_alive_goes_out_at_half_the_session_timeout() {
    let mut pull = playing();
    let t0 = Instant::now();
    pull.tick(t0);
    assert!(pull.take_output().is_empty());
    pull.tick(t0 + Duration::from_secs(9));
    assert!(pull.take_output().is_empty());
    pull.tick(t0 + Duration::from_secs(10));
    let keepalive = sent(&mut pull);
    assert!(keepalive.starts_with("GET_PARAMETER rtsp://10.0.0.1:554/cam/ RTSP/1.0\r\n"));
    assert!(keepalive.contains("Session: F00D\r\n"));
    answer(
        &mut pull,
        &format!("RTSP/1.0 200 OK\r\nCSeq: {}\r\n\r\n", cseq(&keepalive)),
    )
    .unwrap();
    let err = answer(
        &mut pull,
        "RTSP/1.0 454 Session Not Found\r\nCSeq: 9\r\n\r\n",
    )
    .unwrap_err();
    assert!(err.contains("session"));
}

#[test]
fn refusals_and_garbage_fail_the_source_without_credentials_in_the_message() {
    let mut pull = RtspPull::new("h", 554, "/s", None, 1);
    let err = answer(
        &mut pull,
        "RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\nWWW-Authenticate: Basic realm=\"x\"\r\n\r\n",
    )
    .unwrap_err();
    assert!(err.contains("has none"), "{err}");

    let mut pull = RtspPull::new("h", 554, "/s", Some("u:topsecret"), 1);
    let challenge =
        "RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\nWWW-Authenticate: Basic realm=\"x\"\r\n\r\n";
    answer(&mut pull, challenge).unwrap();
    assert!(sent(&mut pull).contains("Authorization: Basic "));
    let err = answer(&mut pull, challenge).unwrap_err();
    assert!(err.contains("refused the credentials") && !err.contains("topsecret"));

    let mut pull = RtspPull::new("h", 554, "/s", None, 1);
    assert_eq!(
        answer(&mut pull, "RTSP/1.0 404 Not Found\r\nCSeq: 1\r\n\r\n").unwrap_err(),
        "origin answered 404 to OPTIONS"
    );
    let mut pull = RtspPull::new("h", 554, "/s", None, 1);
    assert!(pull.handle_input(b"HTTP/1.1 200 OK\r\n\r\n").is_err());

    let mut pull = playing();
    let bad = interleaved(4, &[0x40; 20]);
    let mut wire = Vec::new();
    for _ in 0..MAX_BAD_PACKETS_IN_A_ROW {
        wire.extend_from_slice(&bad);
    }
    assert!(pull.handle_input(&wire).is_err());
}

#[test]
fn in_band_parameter_sets_announce_a_track_without_sprop() {
    let mut pull = RtspPull::new("h", 554, "/s", None, 1);
    let body = "v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:v\r\n";
    let steps = [
        "RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n".to_owned(),
        format!(
            "RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
        "RTSP/1.0 200 OK\r\nCSeq: 3\r\nSession: 1\r\n\r\n".to_owned(),
        "RTSP/1.0 200 OK\r\nCSeq: 4\r\n\r\n".to_owned(),
    ];
    for step in &steps {
        answer(&mut pull, step).unwrap();
    }
    assert!(sent(&mut pull).contains("SETUP rtsp://h:554/s/v RTSP/1.0"));
    assert!(pull.poll_media().is_none());
    let mut wire = interleaved(0, &rtp(96, false, 1, 0, SPS));
    wire.extend(interleaved(0, &rtp(96, false, 2, 0, PPS)));
    wire.extend(interleaved(0, &rtp(96, true, 3, 0, &[0x65, 9])));
    pull.handle_input(&wire).unwrap();
    assert!(matches!(pull.poll_media(), Some(MediaFrame::Config(_))));
    assert!(matches!(pull.poll_media(), Some(MediaFrame::Frame(f)) if f.keyframe));
}

#[test]
fn rtp_clock_unwraps_32_bits() {
    let mut clock = RtpClock {
        origin: Some(u32::MAX - 899),
        ..RtpClock::default()
    };
    assert_eq!(clock.pts(u32::MAX - 899, 90_000), 0);
    assert_eq!(clock.pts(2700, 90_000), 3600);
    assert_eq!(clock.pts(6300, 90_000), 7200);
}
