// The browser demo: microphone → 16 kHz PCM chunks over one websocket → interims and finals on screen.
// Wire format: SPEC §2 (client → server) and §3 (server → client).

const SAMPLE_RATE = 16000;
const CHUNK_SAMPLES = 16384; // 1.024 s: what the browser clients in the field send
const HEADER_BYTES = 60;
const MAX_PARTICIPANT_ID_CHARS = 57; // the header must also hold "|xx"
const END_OF_MEETING = new Uint8Array([0]); // "meeting over": the server flushes every final, then closes 1000
const MEETING_PATH = "/streaming-whisper/ws";
const MAX_QUEUED_CHUNKS = 60; // audio kept while (re)connecting: the server accepts a 60 s burst ahead
const RECONNECT_DELAYS_MS = [1000, 2000, 4000, 8000, 15000, 30000];
const STABLE_CONNECTION_MS = 10000; // open this long before a drop, a connection resets the backoff
const FINISH_TIMEOUT_MS = 30000; // how long Stop waits for the server's last finals
const FLUSH_TIMEOUT_MS = 1000;
const GAVE_UP_CLOSE_CODE = 4000; // an application code: not "normal", the last finals may be missing
// Closes that the same request would get again: stop and let the user fix the cause.
const FINAL_CLOSE_CODES = new Set([1002, 1003, 1007, 1008, 1009, 1010]);
const CLOSE_CODE_NAMES = {
  1000: "normal closure",
  1001: "going away",
  1002: "protocol error",
  1003: "unsupported data",
  1006: "abnormal closure: no close frame",
  1007: "invalid payload",
  1008: "policy violation",
  1009: "message too big",
  1011: "server error",
  1012: "service restart",
  1013: "try again later",
};
const DISALLOWED_IN_IDS = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}]/u; // as the server refuses them

const $ = (id) => document.getElementById(id);
const ui = {
  form: $("settings"),
  url: $("url"),
  meeting: $("meeting"),
  participant: $("participant"),
  lang: $("lang"),
  token: $("token"),
  words: $("words"),
  keyterms: $("keyterms"),
  target: $("target"),
  start: $("start"),
  stop: $("stop"),
  clear: $("clear"),
  level: $("level"),
  status: $("status"),
  problem: $("problem"),
  interims: $("interims"),
  finals: $("finals"),
  serverMessages: $("server-messages"),
  serverMessagesSection: $("server-messages-section"),
};

class InputError extends Error {
  constructor(field, message) {
    super(message);
    this.field = field;
  }
}

// ---- the wire format ---------------------------------------------------------------------------

function buildHeader(participantId, lang) {
  const text = new TextEncoder().encode(`${participantId}|${lang}`);
  const header = new Uint8Array(HEADER_BYTES).fill(0x20); // browsers pad with spaces, the Java bridge with NUL
  header.set(text);
  return header;
}

function buildMessage(header, samples) {
  const buffer = new ArrayBuffer(HEADER_BYTES + 2 * samples.length);
  new Uint8Array(buffer).set(header);
  const pcm = new DataView(buffer, HEADER_BYTES);
  for (let i = 0; i < samples.length; i++) {
    pcm.setInt16(2 * i, samples[i], true); // little-endian whatever the machine
  }
  return buffer;
}

// `extras`: the opt-in extras the socket asks for (docs/protocol.md, Opt-in extras).
function meetingUrl(base, meetingId, token, extras = {}) {
  let url;
  try {
    url = new URL(base.trim());
  } catch {
    throw new InputError(ui.url, "The WebSocket URL is not a valid URL (example: ws://127.0.0.1:8000).");
  }
  if (url.protocol !== "ws:" && url.protocol !== "wss:") {
    throw new InputError(ui.url, "The WebSocket URL must start with ws:// or wss://.");
  }
  // A URL that already names a meeting is used as it is; otherwise the meeting id field completes it.
  const path = url.pathname.replace(/\/+$/, "");
  const named = path.match(/\/streaming-whisper\/ws\/([^/]+)$/);
  if (!named) {
    if (!meetingId) {
      throw new InputError(ui.meeting, "Enter a meeting id.");
    }
    const prefix = path.endsWith(MEETING_PATH) ? path : path + MEETING_PATH;
    url.pathname = `${prefix}/${encodeURIComponent(meetingId)}`;
  }
  if (token) {
    url.searchParams.set("auth_token", token);
  }
  if (extras.words) {
    url.searchParams.set("words", "1"); // each interim and final then carries its timed words
  }
  const keyterms = (extras.keyterms || "").split(",").map((term) => term.trim()).filter(Boolean);
  if (keyterms.length) {
    url.searchParams.set("keyterms", keyterms.join(","));
  }
  return url;
}

function checkParticipant(participantId, lang) {
  if (!participantId) {
    throw new InputError(ui.participant, "Enter a participant id.");
  }
  if ([...participantId].length > MAX_PARTICIPANT_ID_CHARS) {
    throw new InputError(ui.participant, `The participant id may have at most ${MAX_PARTICIPANT_ID_CHARS} characters.`);
  }
  if (DISALLOWED_IN_IDS.test(participantId)) {
    throw new InputError(ui.participant, "The participant id may not hold control characters or line breaks.");
  }
  if (new TextEncoder().encode(`${participantId}|${lang}`).length > HEADER_BYTES) {
    throw new InputError(ui.participant, `The participant id is too long: "id|language" must fit in ${HEADER_BYTES} bytes.`);
  }
}

function describeClose(code, reason) {
  const name = CLOSE_CODE_NAMES[code];
  const head = name ? `close code ${code}, ${name}` : `close code ${code}`;
  return reason ? `${head}: ${reason}` : head;
}

// ---- the microphone ----------------------------------------------------------------------------

class Microphone {
  // Resolves once audio flows; `onChunk(Int16Array)` then gets every CHUNK_SAMPLES samples at 16 kHz.
  static async open(onChunk, onLevel) {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new Error("This page cannot use a microphone here: browsers allow it only on https:// pages or on localhost.");
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        // Whisper copes with raw audio better than with noise suppression's artefacts.
        audio: { channelCount: 1, echoCancellation: true, noiseSuppression: false, autoGainControl: false },
      });
    } catch (error) {
      throw new Error(microphoneProblem(error));
    }
    // The device's own rate: the worklet resamples to 16 kHz (some browsers refuse to connect a
    // microphone to a context running at another rate than the hardware).
    const context = new AudioContext();
    try {
      await context.audioWorklet.addModule(new URL("capture-worklet.js", import.meta.url));
      const source = context.createMediaStreamSource(stream);
      const node = new AudioWorkletNode(context, "pcm16-capture", {
        numberOfInputs: 1,
        numberOfOutputs: 0,
        processorOptions: { chunkSamples: CHUNK_SAMPLES },
      });
      const microphone = new Microphone(stream, context, source, node);
      node.port.onmessage = (event) => microphone.receive(event.data, onChunk, onLevel);
      source.connect(node);
      await context.resume();
      return microphone;
    } catch (error) {
      stream.getTracks().forEach((track) => track.stop());
      await context.close();
      throw error;
    }
  }

  constructor(stream, context, source, node) {
    this.stream = stream;
    this.context = context;
    this.source = source;
    this.node = node;
    this.flushed = null;
  }

  receive(message, onChunk, onLevel) {
    if (message.type === "chunk") {
      onChunk(message.samples);
    } else if (message.type === "level") {
      onLevel(message.rms);
    } else if (message.type === "flushed" && this.flushed) {
      this.flushed(message.samples);
    }
  }

  // Stops capturing; resolves with the samples of the last, partial chunk.
  async close() {
    this.stream.getTracks().forEach((track) => track.stop());
    this.source.disconnect();
    const tail = await new Promise((resolve) => {
      this.flushed = resolve;
      this.node.port.postMessage("flush");
      setTimeout(() => resolve(new Int16Array(0)), FLUSH_TIMEOUT_MS); // a stalled audio thread must not hang Stop
    });
    await this.context.close();
    return tail;
  }
}

function microphoneProblem(error) {
  switch (error && error.name) {
    case "NotAllowedError":
    case "SecurityError":
      return "Microphone permission was denied. Allow this page to use the microphone (the icon in the address bar), then press Start.";
    case "NotFoundError":
    case "OverconstrainedError":
      return "No microphone was found. Connect one, then press Start.";
    case "NotReadableError":
      return "The microphone is in use by another program or could not be opened.";
    default:
      return `The microphone could not be opened: ${error}`;
  }
}

// ---- one run: Start to Stop, across reconnects -------------------------------------------------

class Run {
  constructor({ url, displayUrl, header, participantId, meetingId, lang }) {
    this.url = url;
    this.displayUrl = displayUrl;
    this.header = header;
    this.participantId = participantId;
    this.meetingId = meetingId;
    this.lang = lang;
    this.queue = [];
    this.droppedChunks = 0;
    this.attempt = 0;
    this.socket = null;
    this.openedAt = 0;
    this.lastError = null;
    this.reconnectTimer = 0;
    this.finishTimer = 0;
    this.state = "starting"; // starting → connecting ⇄ waiting → listening → finishing → ended
    this.microphone = null;
  }

  async start() {
    setStatus("Opening the microphone…");
    const microphone = await Microphone.open(
      (samples) => this.send(buildMessage(this.header, samples)),
      (rms) => showLevel(rms),
    );
    if (this.state !== "starting") {
      await microphone.close(); // stopped while the browser asked for permission
      return;
    }
    this.microphone = microphone;
    this.connect();
  }

  connect() {
    this.state = "connecting";
    this.lastError = null;
    this.openedAt = 0;
    setStatus(this.attempt ? `Reconnecting to ${this.displayUrl}…` : `Connecting to ${this.displayUrl}…`);
    const socket = new WebSocket(this.url);
    socket.binaryType = "arraybuffer";
    socket.onopen = () => this.opened(socket);
    socket.onmessage = (event) => this.received(event.data);
    socket.onclose = (event) => this.closed(socket, event);
    this.socket = socket;
  }

  opened(socket) {
    this.openedAt = Date.now();
    if (this.state === "connecting") {
      this.state = "listening";
      setStatus(`Listening: ${this.participantId} in meeting ${this.meetingId} (${this.lang}).`);
      if (this.attempt) {
        const lost = this.droppedChunks ? ` ${chunkSeconds(this.droppedChunks)} of audio could not be kept meanwhile.` : "";
        showProblem(`Reconnected after ${this.attempt} attempt${this.attempt > 1 ? "s" : ""}.${lost}`, "notice");
      } else {
        clearProblem();
      }
      this.droppedChunks = 0;
    }
    while (this.queue.length) {
      socket.send(this.queue.shift());
    }
    if (this.state === "finishing") {
      socket.send(END_OF_MEETING);
    }
  }

  send(message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(message);
      return;
    }
    this.queue.push(message);
    if (this.queue.length > MAX_QUEUED_CHUNKS) {
      this.queue.shift();
      this.droppedChunks += 1;
    }
  }

  received(data) {
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      addServerMessage({ message: `not JSON: ${String(data).slice(0, 200)}` });
      return;
    }
    if (message.type === "error") {
      this.lastError = message;
      addServerMessage(message);
    } else if (message.type === "warning") {
      addServerMessage(message); // the declared language is not what the server hears
    } else if (message.type === "interim") {
      showInterim(message);
    } else if (message.type === "final") {
      addFinal(message);
    }
  }

  closed(socket, event) {
    if (socket !== this.socket) {
      return;
    }
    this.socket = null;
    clearInterims();
    // The server sends the whole reason as an error message before a close that can carry only 123 bytes.
    const explained = this.lastError && this.lastError.code === event.code ? this.lastError.message : "";
    const why = describeClose(event.code, explained || event.reason);
    if (this.state === "finishing") {
      this.end();
      if (event.code === 1000) {
        const count = ui.finals.children.length;
        setStatus(`Stopped. The meeting ended normally; ${count} final${count === 1 ? "" : "s"} on the page.`);
      } else {
        setStatus("Stopped.");
        showProblem(`The connection closed before the last finals arrived (${why}).`);
      }
      return;
    }
    if (this.state === "ended") {
      return;
    }
    const wasOpen = this.openedAt > 0;
    if (FINAL_CLOSE_CODES.has(event.code)) {
      const verb = event.code === 1008 ? "refused" : "closed";
      showProblem(`The server ${verb} the connection (${why}). Check the fields above, then press Start again.`);
      setStatus("Stopped.");
      stopRun(this, false);
      return;
    }
    if (wasOpen && Date.now() - this.openedAt >= STABLE_CONNECTION_MS) {
      this.attempt = 0;
    }
    const delay = RECONNECT_DELAYS_MS[Math.min(this.attempt, RECONNECT_DELAYS_MS.length - 1)];
    this.attempt += 1;
    const jittered = Math.round(delay * (0.8 + 0.4 * Math.random()));
    const what = wasOpen ? "The connection was lost" : `Could not connect to ${this.displayUrl}`;
    const hint = wasOpen ? "" : " Is the service running, and is the URL right?";
    showProblem(
      `${what} (${why}).${hint} Reconnecting in ${seconds(jittered / 1000)} (attempt ${this.attempt}); ` +
        "audio is kept meanwhile.",
    );
    setStatus("Waiting to reconnect…");
    this.state = "waiting";
    this.reconnectTimer = setTimeout(() => this.connect(), jittered);
  }

  // Stop: the last partial chunk and the end marker go out; the server sends the last finals and closes.
  async finish() {
    clearTimeout(this.reconnectTimer);
    const waiting = this.state === "waiting" || this.state === "starting";
    this.state = "finishing";
    setStatus("Finishing: waiting for the last finals…");
    if (this.microphone) {
      const microphone = this.microphone;
      this.microphone = null;
      const tail = await microphone.close();
      if (this.state !== "finishing") {
        return; // the connection closed meanwhile, and `closed` has said so
      }
      if (tail.length) {
        this.send(buildMessage(this.header, tail));
      }
    }
    showLevel(0);
    if (waiting || !this.socket) {
      const unsent = this.queue.length;
      this.end();
      setStatus(unsent ? `Stopped. Not connected: ${chunkSeconds(unsent)} of audio were not sent.` : "Stopped.");
      return;
    }
    if (this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(END_OF_MEETING);
    } // still connecting: `opened` sends the queue, then the end marker
    this.finishTimer = setTimeout(() => {
      if (this.socket) {
        this.socket.close(GAVE_UP_CLOSE_CODE, "the client stopped waiting for the last finals");
      }
    }, FINISH_TIMEOUT_MS);
  }

  // Releases everything, now (Stop after a refusal, or the end of a finished meeting).
  end() {
    this.state = "ended";
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.finishTimer);
    this.queue = [];
    if (this.microphone) {
      this.microphone.close().catch((error) => console.warn("closing the microphone failed", error));
      this.microphone = null;
    }
    if (this.socket) {
      const socket = this.socket;
      this.socket = null;
      socket.close(1000, "client stopped");
    }
    showLevel(0);
    setRunning(null);
  }
}

function readable(url) {
  try {
    return decodeURI(url.toString()); // a meeting id in any script shows as typed
  } catch {
    return url.toString();
  }
}

function seconds(value) {
  return `${value.toFixed(value < 10 ? 1 : 0)} s`;
}

function chunkSeconds(chunks) {
  return seconds((chunks * CHUNK_SAMPLES) / SAMPLE_RATE);
}

// ---- the page ----------------------------------------------------------------------------------

let currentRun = null;
const interimRows = new Map(); // participant id → { id, row }
const finalAudio = new Map(); // final id → { base64, url }
const player = new Audio();
let playingButton = null;

function setStatus(text) {
  ui.status.textContent = text;
}

function showProblem(text, kind = "error") {
  ui.problem.textContent = text;
  ui.problem.className = kind;
  ui.problem.hidden = false;
}

function clearProblem() {
  ui.problem.hidden = true;
  ui.problem.textContent = "";
}

function showLevel(rms) {
  // In decibels, -60 dBFS (a quiet room) to 0 dBFS: a linear meter would barely move for speech.
  const decibels = 20 * Math.log10(Math.max(rms, 1e-6));
  ui.level.value = Math.max(0, Math.min(1, (decibels + 60) / 60));
}

function setRunning(run) {
  currentRun = run;
  const busy = run !== null;
  ui.start.disabled = busy;
  ui.stop.disabled = !busy;
  for (const field of [ui.url, ui.meeting, ui.participant, ui.lang, ui.token, ui.words, ui.keyterms]) {
    field.disabled = busy;
  }
}

function stopRun(run, graceful) {
  if (graceful) {
    ui.stop.disabled = true;
    run.finish().catch((error) => {
      run.end();
      showProblem(`Stopping failed: ${error.message}`);
    });
  } else {
    run.end();
  }
}

function extras() {
  return { words: ui.words.checked, keyterms: ui.keyterms.value };
}

function updateTarget() {
  try {
    const url = meetingUrl(ui.url.value, ui.meeting.value.trim(), ui.token.value.trim() ? "…" : "", extras());
    ui.target.textContent = readable(url);
  } catch (error) {
    ui.target.textContent = error.message;
  }
}

function timeOf(ts) {
  return new Date(ts).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

function showInterim(message) {
  let entry = interimRows.get(message.participant_id);
  if (!entry) {
    const row = element("li", "interim");
    row.append(element("span", "who", message.participant_id), element("span", "text"));
    ui.interims.append(row);
    entry = { row };
    interimRows.set(message.participant_id, entry);
  }
  entry.id = message.id;
  entry.row.dataset.id = message.id;
  entry.row.querySelector(".text").textContent = message.text;
}

function clearInterims() {
  interimRows.clear();
  ui.interims.replaceChildren();
}

// A final's text; with `?words=1` each word its own span whose tooltip says when it was said (after
// the utterance's ts) and the model's probability for it.
function transcriptText(message) {
  const text = element("span", "text");
  if (!Array.isArray(message.words) || message.words.length === 0) {
    text.textContent = message.text;
    return text;
  }
  message.words.forEach((word, index) => {
    const span = element("span", "word", word.word);
    span.title = `+${(word.start / 1000).toFixed(2)}–${(word.end / 1000).toFixed(2)} s, ${Math.round(100 * word.probability)}%`;
    span.dataset.start = String(word.start);
    span.dataset.end = String(word.end);
    text.append(...(index ? [" ", span] : [span]));
  });
  return text;
}

function addFinal(message) {
  const entry = interimRows.get(message.participant_id);
  if (entry && entry.id === message.id) {
    entry.row.remove();
    interimRows.delete(message.participant_id);
  }
  const row = element("li", "final");
  row.dataset.id = message.id;
  row.dataset.ts = String(message.ts);
  const time = element("time", "when", timeOf(message.ts));
  time.dateTime = new Date(message.ts).toISOString();
  const confidence = Number(message.variance) || 0;
  const percent = Math.round(100 * confidence);
  const badge = element("span", `confidence ${confidence >= 0.8 ? "high" : confidence >= 0.6 ? "medium" : "low"}`, `${percent}%`);
  badge.title = "Confidence: the mean probability of the words";
  badge.setAttribute("aria-label", `confidence ${percent} percent`);
  row.append(time, element("span", "who", message.participant_id), transcriptText(message), badge);
  if (message.language) {
    // Sent for a participant whose language the server detects (Detect, header "auto").
    const language = element("span", "language", message.language);
    language.title = "The language the server heard";
    row.append(language);
  }
  if (message.audio) {
    finalAudio.set(message.id, { base64: message.audio, url: "" });
    const play = element("button", "play", "▶ Play");
    play.type = "button";
    play.setAttribute("aria-label", `Play the audio of “${message.text.trim().slice(0, 40)}”`);
    play.addEventListener("click", () => togglePlay(play, message.id));
    row.append(play);
  }
  // Sorted by utterance start: finals of several participants interleave as they were spoken.
  const list = ui.finals;
  const following = list.scrollHeight - list.scrollTop - list.clientHeight < 40; // else the reader scrolled up
  const later = [...list.children].find((other) => Number(other.dataset.ts) > message.ts);
  list.insertBefore(row, later || null);
  if (following) {
    list.scrollTop = list.scrollHeight;
  }
}

function togglePlay(button, id) {
  if (playingButton === button) {
    player.pause();
    markPlaying(null);
    return;
  }
  const audio = finalAudio.get(id);
  if (!audio.url) {
    const bytes = Uint8Array.from(atob(audio.base64), (char) => char.charCodeAt(0));
    audio.url = URL.createObjectURL(new Blob([bytes], { type: "audio/wav" }));
  }
  player.pause();
  player.src = audio.url;
  markPlaying(button);
  player.play().catch((error) => {
    markPlaying(null);
    showProblem(`The audio could not be played: ${error.message}`);
  });
}

function markPlaying(button) {
  if (playingButton) {
    playingButton.textContent = "▶ Play";
    playingButton.classList.remove("playing");
  }
  playingButton = button;
  if (button) {
    button.textContent = "■ Stop";
    button.classList.add("playing");
  }
}

player.addEventListener("ended", () => markPlaying(null));

function addServerMessage(message) {
  const row = element("li");
  const who = message.participant_id ? ` (${message.participant_id})` : "";
  const code = message.code ? `${message.code}${who}: ` : "";
  row.append(element("time", "when", timeOf(Date.now())), element("span", "text", `${code}${message.message}`));
  ui.serverMessages.append(row);
  ui.serverMessagesSection.hidden = false;
}

function clearAll() {
  ui.finals.replaceChildren();
  clearInterims();
  ui.serverMessages.replaceChildren();
  ui.serverMessagesSection.hidden = true;
  player.pause();
  for (const audio of finalAudio.values()) {
    if (audio.url) {
      URL.revokeObjectURL(audio.url);
    }
  }
  finalAudio.clear();
  if (!currentRun) {
    clearProblem();
  }
}

async function start(event) {
  event.preventDefault();
  clearProblem();
  for (const field of [ui.url, ui.meeting, ui.participant]) {
    field.removeAttribute("aria-invalid");
  }
  const participantId = ui.participant.value.trim();
  const meetingId = ui.meeting.value.trim();
  const lang = ui.lang.value;
  let url;
  try {
    checkParticipant(participantId, lang);
    url = meetingUrl(ui.url.value, meetingId, ui.token.value.trim(), extras());
  } catch (error) {
    if (!(error instanceof InputError)) {
      throw error;
    }
    error.field.setAttribute("aria-invalid", "true");
    error.field.focus();
    showProblem(error.message);
    return;
  }
  const displayUrl = readable(meetingUrl(ui.url.value, meetingId, "", extras())); // never shows the token
  const run = new Run({ url, displayUrl, header: buildHeader(participantId, lang), participantId, meetingId, lang });
  setRunning(run);
  try {
    await run.start();
  } catch (error) {
    run.end();
    setStatus("Stopped.");
    showProblem(error.message);
  }
}

function randomId(prefix) {
  const bytes = crypto.getRandomValues(new Uint8Array(4));
  return prefix + Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

function defaultUrl() {
  if (location.protocol === "https:" || location.protocol === "http:") {
    return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${MEETING_PATH}/`;
  }
  return `ws://127.0.0.1:8000${MEETING_PATH}/`; // opened as a file
}

function init() {
  // ?url=, ?meeting=, ?participant= and ?lang= prefill the fields (a link to share a meeting).
  const query = new URLSearchParams(location.search);
  ui.url.value = query.get("url") || defaultUrl();
  ui.meeting.value = query.get("meeting") || randomId("demo-");
  ui.participant.value = query.get("participant") || randomId("guest-");
  if ([...ui.lang.options].some((option) => option.value === query.get("lang"))) {
    ui.lang.value = query.get("lang");
  }
  ui.form.addEventListener("submit", start);
  ui.stop.addEventListener("click", () => currentRun && stopRun(currentRun, true));
  ui.clear.addEventListener("click", clearAll);
  for (const field of [ui.url, ui.meeting, ui.token, ui.words, ui.keyterms]) {
    field.addEventListener("input", updateTarget);
  }
  updateTarget();
  setRunning(null);
  setStatus("Idle. Press Start and allow the microphone.");
}

init();
