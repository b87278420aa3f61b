// Flatfile's own listener plugins, run unmodified against the flatjobs emulator: the JS half of
// tests/compat/plugins.py (`nox -s compat`). The packages are pinned by package-lock.json
// beside this file (SheetJS from npm, through the lock's `overrides`).
//
//   node plugins.cjs listen <setup>   a listener with <setup>'s plugins; every line on stdin is
//                                     one event (raw JSON, as the emulator emitted it), which it
//                                     dispatches; once an event's dispatch (and the plugins'
//                                     write-backs) ended it prints {"dispatched": id, "topic"}.
//                                     It prints {"ready": true} first, and ends when stdin does,
//                                     after every dispatch.
//   node plugins.cjs hook <setup>     one event on stdin (a commit:created); dispatches it, then
//                                     prints {"records": [...]}: the commit's records as its
//                                     dataUrl serves them after the hook ran, with their messages.
//   node plugins.cjs parse -          a JSON list of {text, options} on stdin: each CSV text
//                                     parsed by the delimiter extractor's own parser with those
//                                     header detection options; prints {"parsed": [{headers,
//                                     rows}]} (rows: how many records it made).
//
// What this script says is one line "@@flatjobs <JSON>"; every other line on stdout or stderr
// is the plugins' own logging.
//
// The setups are SETUPS below; FF_SETUP_OPTIONS (JSON) gives them their options (the sheet
// slug of a hook, the blueprint of configureSpace). Environment: AGENT_INTERNAL_URL (the
// emulator's root: @flatfile/listener and the extractors' record inserts read it, not
// FLATFILE_API_URL), FLATFILE_API_URL (the same root, for @flatfile/api), FLATFILE_BEARER_TOKEN,
// FF_API_MODULE_DIR (the node_modules to load from).
"use strict";
const path = require("path");
const readline = require("readline");
const { createRequire } = require("module");

function load(name) {
  const bases = [];
  if (process.env.FF_API_MODULE_DIR) bases.push(path.join(process.env.FF_API_MODULE_DIR, "..", "x.js"));
  bases.push(__filename);
  for (const base of bases) {
    try {
      return createRequire(base)(name);
    } catch (e) {
      if (e.code !== "MODULE_NOT_FOUND") throw e;
    }
  }
  throw new Error(`cannot find ${name}: run npm ci (tests/compat/run.py does) or set FF_API_MODULE_DIR`);
}

for (const name of ["AGENT_INTERNAL_URL", "FLATFILE_API_URL", "FLATFILE_BEARER_TOKEN"]) {
  if (!process.env[name]) {
    console.error(`plugins.cjs: ${name} is not set (tests/compat/plugins.py sets it)`);
    process.exit(2);
  }
}

// @flatfile/api 1.23.1 sends "Keep-Alive: timeout=200" on every generated method; Node's own
// fetch (undici, Node >= 19) refuses that header before any byte is sent ("fetch failed").
// Every user on Node 20 hits it and no server can help: strip it (compat.cjs does the same).
// The listener's own requests (a record hook's read and write-back) go through cross-fetch.
const realFetch = globalThis.fetch;
globalThis.fetch = async (url, init = {}) => {
  if (init.headers && typeof init.headers === "object" && !(init.headers instanceof Headers)) {
    const kept = {};
    for (const [k, v] of Object.entries(init.headers)) if (k.toLowerCase() !== "keep-alive") kept[k] = v;
    init = { ...init, headers: kept };
  }
  return realFetch(url, init);
};

const { FlatfileListener } = load("@flatfile/listener");
const OPTIONS = JSON.parse(process.env.FF_SETUP_OPTIONS || "{}");
const SLUG = OPTIONS.sheetSlug || "contacts";

// ---- record hooks: each handler is written once and run as a bulkRecordHook and a recordHook

function capitalize(record) {
  const name = record.get("name");
  if (typeof name === "string" && name.length) {
    const capitalized = name.charAt(0).toUpperCase() + name.slice(1);
    if (capitalized !== name) record.set("name", capitalized);
  }
  if (!record.get("email")) record.addError("email", "Email is required");
}

// Flatfile's e2e test "commits record message change": a last name is required once there is
// a first name; the message goes once the first name does.
function lastNameRequired(record) {
  if (!record.get("lastName") && record.get("firstName")) {
    record.addError("lastName", "lastName is required if firstName is present");
  }
}

function typed(record) {
  record.set("firstName", null);
  record.set("age", 18);
  record.set("alive", true);
  record.set("category", record.get("email") === "bad@x.io" ? "three" : "one");
  record.setMetadata({ test: true });
  record.setReadOnly("age");
}

const HANDLERS = {
  capitalize,
  lastNameRequired,
  typed,
  noop: () => {},
  throws: () => {
    throw new Error("oops");
  },
};

function hookSetup(kind, handler) {
  const { bulkRecordHook, recordHook } = load("@flatfile/plugin-record-hook");
  const options = { debug: Boolean(OPTIONS.debug), chunkSize: OPTIONS.chunkSize || 10_000 };
  if (kind === "bulk") {
    return (listener) =>
      listener.use(bulkRecordHook(SLUG, async (records) => { for (const r of records) await handler(r); }, options));
  }
  return (listener) => listener.use(recordHook(SLUG, (record) => handler(record), options));
}

const SETUPS = {
  configure: (listener) => {
    const { configureSpace } = load("@flatfile/plugin-space-configure");
    listener.use(configureSpace(OPTIONS.setup, async (_event, workbookIds, tick) => {
      await tick(80, `Configured ${workbookIds.length} workbooks`);
    }));
  },
  // One extractor a listener: two delimiter extractors would both take every
  // extract-plugin-delimiter job, whatever file it is about. '.csv' rather than 'csv': the
  // plugin refuses the bare names the platform extracts itself.
  "extract:csv": (listener) => {
    const { DelimiterExtractor } = load("@flatfile/plugin-delimiter-extractor");
    listener.use(DelimiterExtractor(".csv", { delimiter: "," }));
  },
  "extract:tsv": (listener) => {
    const { DelimiterExtractor } = load("@flatfile/plugin-delimiter-extractor");
    listener.use(DelimiterExtractor(".tsv", { delimiter: "\t" }));
  },
  "extract:xlsx": (listener) => {
    const { ExcelExtractor } = load("@flatfile/plugin-xlsx-extractor");
    listener.use(ExcelExtractor());
  },
};
for (const [name, handler] of Object.entries(HANDLERS)) {
  SETUPS[`bulk:${name}`] = hookSetup("bulk", handler);
  SETUPS[`record:${name}`] = hookSetup("record", handler);
}

function listenerFor(setup) {
  if (!SETUPS[setup]) {
    console.error(`plugins.cjs: no setup ${JSON.stringify(setup)}; one of ${Object.keys(SETUPS).join(", ")}`);
    process.exit(2);
  }
  return FlatfileListener.create((listener) => SETUPS[setup](listener));
}

const MARK = "@@flatjobs ";

function say(value) {
  process.stdout.write(MARK + JSON.stringify(value) + "\n");
}

async function listen(setup) {
  const listener = listenerFor(setup);
  const pending = new Set();
  say({ ready: true });
  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of lines) {
    if (!line.trim()) continue;
    const event = JSON.parse(line);
    // Events are dispatched as they come, not one after another: a driver delivers the next
    // event while a plugin still works on the last (an extractor waits 3 s in its job).
    const done = listener
      .dispatchEvent(event)
      .then(() => say({ dispatched: event.id, topic: event.topic }))
      .catch((error) => say({ dispatched: event.id, topic: event.topic, error: String(error?.stack || error) }))
      .finally(() => pending.delete(done));
    pending.add(done);
  }
  await Promise.all([...pending]);
}

async function hook(setup) {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const event = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  const listener = listenerFor(setup);
  await listener.dispatchEvent(event);
  const base = process.env.AGENT_INTERNAL_URL.replace(/\/+$/, "");
  const response = await realFetch(`${base}/${event.dataUrl}`, {
    headers: { Authorization: `Bearer ${process.env.FLATFILE_BEARER_TOKEN}` },
  });
  if (!response.ok) throw new Error(`GET ${event.dataUrl}: ${response.status} ${await response.text()}`);
  say({ records: (await response.json()).data.records });
}

async function parse() {
  const { delimiterParser } = load("@flatfile/plugin-delimiter-extractor");
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const tables = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  const parsed = [];
  for (const { text, options } of tables) {
    const sheets = await delimiterParser(Buffer.from(text, "utf8"), {
      delimiter: ",",
      headerDetectionOptions: options,
    });
    const sheet = sheets.Sheet1 || { headers: [], data: [] };
    parsed.push({ headers: sheet.headers, rows: sheet.data.length });
  }
  say({ parsed });
}

const [mode, setup] = process.argv.slice(2);
const run = { listen, hook, parse }[mode];
if (!run || !setup) {
  console.error("usage: node plugins.cjs listen|hook <setup> | parse -");
  process.exit(2);
}
run(setup).catch((error) => {
  console.error(error?.stack || String(error));
  process.exit(1);
});
