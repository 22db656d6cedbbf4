// tessera's player page script (served as /_player/embed.js, compiled into the binary).
// Plays the manifest named by <video data-src> with hls.js (hls, llhls) or dash.js (dash,
// mss), or posts a WHEP offer to it (webrtc: a small WHEP client, below), and reports what happens in the page and in window.tesseraPlayer, which
// tests/browser/play.mjs reads: { format, state: 'loading' | 'playing' | 'error', errors }.
(function () {
  'use strict';
  var video = document.getElementById('tessera-video');
  var status = document.getElementById('tessera-status');
  var format = video.getAttribute('data-format');
  var src = video.getAttribute('data-src');
  var player = (window.tesseraPlayer = { format: format, state: 'loading', errors: [] });

  document.body.style.margin = '0';
  document.body.style.background = '#000';
  document.body.style.color = '#ccc';
  document.body.style.font = '14px sans-serif';
  video.style.width = '100%';
  video.style.height = 'auto';
  video.style.maxHeight = '95vh';
  status.style.margin = '4px 8px';

  function show(text) {
    status.textContent = text;
  }

  function fail(source, detail) {
    player.state = 'error';
    player.errors.push(source + ': ' + detail);
    show('Cannot play: ' + detail);
  }

  video.addEventListener('playing', function () {
    if (player.state !== 'error') {
      player.state = 'playing';
      show('playing (' + format + ')');
    }
  });
  video.addEventListener('error', function () {
    fail('media', video.error ? video.error.code + ' ' + video.error.message : 'unknown error');
  });

  function startHls() {
    if (typeof Hls === 'undefined') {
      return fail('setup', 'hls.js is not installed on this server (/_player/hls.min.js)');
    }
    if (!Hls.isSupported()) {
      if (video.canPlayType('application/vnd.apple.mpegurl')) {
        video.src = src; // Safari plays HLS natively
        return;
      }
      return fail('setup', 'this browser has no Media Source Extensions');
    }
    var hls = new Hls({ lowLatencyMode: format === 'llhls' });
    hls.on(Hls.Events.ERROR, function (event, data) {
      if (!data.fatal) {
        return;
      }
      var code = data.response && data.response.code ? ' (HTTP ' + data.response.code + ')' : '';
      fail('hls.js', data.type + ' ' + data.details + code);
      hls.destroy();
    });
    // How far behind live the player is: hls.js's own estimate, and glass to player (the
    // wall clock against the playhead's PROGRAM-DATE-TIME, the source's own clock).
    player.latency = function () {
      var date = hls.playingDate;
      return {
        estimate: hls.latency,
        target: hls.targetLatency,
        glass: date ? (Date.now() - date.getTime()) / 1000 : null,
      };
    };
    hls.loadSource(src);
    hls.attachMedia(video);
  }

  function startDash() {
    if (typeof dashjs === 'undefined') {
      return fail('setup', 'dash.js is not installed on this server (/_player/dash.all.min.js)');
    }
    if (format === 'mss' && typeof dashjs.MssHandler === 'undefined') {
      return fail('setup', 'dash.js MSS support is not installed (/_player/dash.mss.min.js)');
    }
    var dash = dashjs.MediaPlayer().create();
    if (format === 'mss') {
      // An MSS manifest names no clock, and dash.js's default one is on the internet;
      // MSS live timing comes from the fragments' tfxd/tfrf boxes anyway.
      dash.updateSettings({ streaming: { utcSynchronization: { enabled: false } } });
    }
    dash.on(dashjs.MediaPlayer.events.ERROR, function (e) {
      var error = e.error || {};
      var message = error.message || String(error);
      fail('dash.js', (error.code !== undefined ? error.code + ' ' : '') + message);
    });
    dash.initialize(video, src, true);
  }

  // WHEP (draft-ietf-wish-whep): a recvonly offer POSTed to data-src (the token is in its
  // query), the answer applied; the session resource (Location) is DELETEd on page exit.
  function startWebrtc() {
    if (typeof RTCPeerConnection === 'undefined') {
      return fail('setup', 'this browser has no WebRTC');
    }
    var pc = new RTCPeerConnection();
    var media = new MediaStream();
    var resource = null;
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.ontrack = function (e) {
      media.addTrack(e.track);
      video.srcObject = media;
    };
    pc.onconnectionstatechange = function () {
      var s = pc.connectionState;
      if (s === 'failed' || s === 'closed' || s === 'disconnected') {
        fail('webrtc', 'connection ' + s);
      }
    };
    // What tests and operators read: decoded video frames and audio samples, and the
    // browser's own delay figures (getStats, inbound-rtp and the candidate pair).
    player.stats = function () {
      return pc.getStats().then(function (report) {
        var out = { connection: pc.connectionState, video: null, audio: null, rtt: null };
        report.forEach(function (r) {
          if (r.type === 'inbound-rtp') {
            out[r.kind] = {
              packets: r.packetsReceived,
              frames: r.framesDecoded,
              samples: r.totalSamplesReceived,
              concealed: r.concealedSamples,
              jitterBufferDelay: r.jitterBufferDelay,
              jitterBufferEmitted: r.jitterBufferEmittedCount,
            };
          } else if (r.type === 'candidate-pair' && r.nominated) {
            out.rtt = r.currentRoundTripTime;
          }
        });
        return out;
      });
    };
    window.addEventListener('pagehide', function () {
      if (resource) {
        fetch(resource, { method: 'DELETE', keepalive: true });
      }
    });
    pc.createOffer()
      .then(function (offer) {
        return pc.setLocalDescription(offer);
      })
      .then(function () {
        return fetch(src, {
          method: 'POST',
          headers: { 'content-type': 'application/sdp' },
          body: pc.localDescription.sdp,
        });
      })
      .then(function (r) {
        if (r.status !== 201) {
          var reason = r.headers.get('x-deny-reason');
          throw new Error('HTTP ' + r.status + (reason ? ' ' + reason : ''));
        }
        resource = r.headers.get('location');
        return r.text();
      })
      .then(function (sdp) {
        return pc.setRemoteDescription({ type: 'answer', sdp: sdp });
      })
      .catch(function (e) {
        fail('whep', e.message || String(e));
      });
  }

  if (format === 'hls' || format === 'llhls') {
    startHls();
  } else if (format === 'webrtc') {
    startWebrtc();
  } else {
    startDash();
  }
})();
