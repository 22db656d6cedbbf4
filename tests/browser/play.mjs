// Plays a tessera player page in headless Chromium and checks what a viewer would see.
//
//   node tests/browser/play.mjs URL play  [SECONDS]   the video's currentTime advances by
//                                                     SECONDS (default 3) of playback
//   node tests/browser/play.mjs URL refused           the player reports an error and the
//                                                     server answered a request with 403
//   node tests/browser/play.mjs URL webrtc [SECONDS] [REVOKE_URL]
//                                                     the WebRTC page decodes video frames
//                                                     for SECONDS (default 10), and audio:
//                                                     packets received rise and samples are
//                                                     decoded, not concealed (getStats);
//                                                     with REVOKE_URL, it
//                                                     is then POSTed (Bearer $TESSERA_API_KEY)
//                                                     and the frames must stop
//
// Chromium is $TESSERA_CHROMIUM or /usr/bin/chromium, driven by playwright-core from
// tools/player/node_modules (tools/player/install.sh). Prints one JSON line with what it
// saw; exits 0 when the check holds, 1 when it does not, 2 when it cannot run at all. The
// caller bounds its running time (tests/browser_playback.rs); the checks here give up after
// DEADLINE_MS on their own too.
import { createRequire } from 'node:module';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const DEADLINE_MS = 60_000;
const [url, expect, secondsArg, revokeUrl] = process.argv.slice(2);
if (!url || !['play', 'refused', 'webrtc'].includes(expect)) {
  console.error('usage: play.mjs URL play|refused|webrtc [SECONDS] [REVOKE_URL]');
  process.exit(2);
}
const seconds = Number(secondsArg || (expect === 'webrtc' ? 10 : 3));
const chromiumPath = process.env.TESSERA_CHROMIUM || '/usr/bin/chromium';
if (!existsSync(chromiumPath)) {
  console.error(`play.mjs: no Chromium at ${chromiumPath}: run tools/test.sh as root (apt-get install chromium)`);
  process.exit(2);
}
let chromium;
try {
  const require = createRequire(new URL('../../tools/player/package.json', import.meta.url));
  ({ chromium } = require('playwright-core'));
} catch (e) {
  console.error(`play.mjs: playwright-core is not installed: run tools/player/install.sh (${e.message})`);
  process.exit(2);
}

const profile = mkdtempSync(join(tmpdir(), 'tessera-chromium-'));
const seen = { url, expect, statuses: [], console: [], pageErrors: [] };
let context;
let verdict = { ok: false, reason: 'not run' };
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    // The HTTPS test serves a certificate the test made; no other run serves TLS.
    ignoreHTTPSErrors: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--autoplay-policy=no-user-gesture-required',
    ],
  });
  const page = context.pages()[0] || (await context.newPage());
  page.on('response', (r) => seen.statuses.push(`${r.status()} ${new URL(r.url()).pathname}`));
  page.on('console', (m) => seen.console.push(`${m.type()}: ${m.text()}`.slice(0, 300)));
  page.on('pageerror', (e) => seen.pageErrors.push(String(e).slice(0, 300)));
  const response = await page.goto(url, { timeout: 20_000 });
  if (!response || response.status() !== 200) {
    throw new Error(`the page answered ${response ? response.status() : 'nothing'}`);
  }
  const state = () =>
    page.evaluate(async () => {
      const v = document.getElementById('tessera-video');
      const p = window.tesseraPlayer || {};
      const latency = typeof p.latency === 'function' ? p.latency() : null;
      const stats = typeof p.stats === 'function' ? await p.stats() : null;
      return { state: p.state, errors: p.errors || [], time: v ? v.currentTime : -1, latency, stats };
    });
  const started = Date.now();
  if (expect === 'webrtc') {
    verdict = await webrtc(state, page);
  } else if (expect === 'play') {
    let first = null;
    for (;;) {
      const s = await state();
      seen.last = s;
      if (s.state === 'error') {
        verdict = { ok: false, reason: `the player reported: ${s.errors.join('; ')}` };
        break;
      }
      if (first === null && s.time > 0) {
        first = s.time;
      }
      if (first !== null && s.time >= first + seconds) {
        verdict = { ok: true, reason: `currentTime advanced from ${first} to ${s.time}` };
        break;
      }
      if (Date.now() - started > DEADLINE_MS) {
        verdict = { ok: false, reason: `currentTime stayed at ${s.time} (first ${first})` };
        break;
      }
      await page.waitForTimeout(250);
    }
  } else {
    for (;;) {
      const s = await state();
      seen.last = s;
      const refused = seen.statuses.some((line) => line.startsWith('403 '));
      if (s.state === 'error' && refused) {
        verdict = { ok: true, reason: `403 seen; the player reported: ${s.errors.join('; ')}` };
        break;
      }
      if (s.time > 0) {
        verdict = { ok: false, reason: `the video played to ${s.time} without a token` };
        break;
      }
      if (Date.now() - started > DEADLINE_MS) {
        verdict = { ok: false, reason: `no refusal reported (403 seen: ${refused}, state ${s.state})` };
        break;
      }
      await page.waitForTimeout(250);
    }
  }
} catch (e) {
  verdict = { ok: false, reason: `browser run failed: ${e.message}` };
  seen.stack = String(e.stack).slice(0, 500);
} finally {
  if (context) {
    await context.close().catch(() => {});
  }
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify({ ...verdict, ...seen }));
process.exit(verdict.ok ? 0 : 1);

// Frames decoded must rise over `seconds` once the first one is decoded, and audio samples
// must be decoded too; then, with a revoke URL, the frames must stop after it is posted.
async function webrtc(state, page) {
  const frames = (s) => (s.stats && s.stats.video && s.stats.video.frames) || 0;
  const audio = (s, field) => (s.stats && s.stats.audio && s.stats.audio[field]) || 0;
  const samples = (s) => audio(s, 'samples');
  // Decoded from packets: what was received less what the jitter buffer made up.
  const decodedSamples = (s) => samples(s) - audio(s, 'concealed');
  const posted = Date.now();
  let first = null;
  for (;;) {
    const s = await state();
    seen.last = s;
    if (s.state === 'error') {
      return { ok: false, reason: `the player reported: ${s.errors.join('; ')}` };
    }
    if (first === null && frames(s) > 0) {
      first = { at: Date.now(), frames: frames(s), audioPackets: audio(s, 'packets') };
      seen.firstFrameMs = first.at - posted;
    }
    if (first !== null && Date.now() - first.at >= seconds * 1000) {
      seen.decoded = {
        frames: frames(s) - first.frames,
        samples: samples(s),
        decodedSamples: decodedSamples(s),
        audioPackets: audio(s, 'packets') - first.audioPackets,
      };
      if (frames(s) <= first.frames) {
        return { ok: false, reason: `frames decoded stayed at ${first.frames}` };
      }
      if (seen.decoded.audioPackets <= 0 || seen.decoded.decodedSamples <= 0) {
        return { ok: false, reason: `no audio decoded (${JSON.stringify(s.stats.audio)})` };
      }
      break;
    }
    if (Date.now() - posted > DEADLINE_MS) {
      return { ok: false, reason: `no frame decoded (${JSON.stringify(s.stats)})` };
    }
    await page.waitForTimeout(250);
  }
  if (!revokeUrl) {
    const d = seen.decoded;
    return {
      ok: true,
      reason: `frames decoded rose by ${d.frames}, audio packets by ${d.audioPackets}`,
    };
  }
  const key = process.env.TESSERA_API_KEY || '';
  const revokedAt = Date.now();
  const r = await fetch(revokeUrl, { method: 'POST', headers: { authorization: `Bearer ${key}` } });
  if (r.status !== 200) {
    return { ok: false, reason: `revoke answered ${r.status}` };
  }
  // Stopped: no new frame for 2 s (at 25 fps, 50 frames would have come).
  let last = { at: Date.now(), frames: frames(await state()) };
  for (;;) {
    await page.waitForTimeout(50);
    const s = await state();
    seen.last = s;
    if (frames(s) !== last.frames) {
      last = { at: Date.now(), frames: frames(s) };
    } else if (Date.now() - last.at >= 2000) {
      seen.stoppedAfterMs = last.at - revokedAt;
      return { ok: true, reason: `frames stopped ${seen.stoppedAfterMs} ms after the revocation` };
    }
    if (Date.now() - revokedAt > DEADLINE_MS) {
      return { ok: false, reason: 'frames went on after the revocation' };
    }
  }
}
