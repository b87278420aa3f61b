// Compatibility check: Flatfile's JS client `@flatfile/api` (1.23.1, pinned by
// package-lock.json beside this file) against the flatjobs emulator. Every endpoint
// flatjobs' client covers is called through the SDK.
//
// Run by tests/compat/run.py (`nox -s compat`), which starts a seeded emulator and sets
// FLATFILE_API_URL (the emulator's root: the client url-joins "/v1" itself, as it does for
// any FLATFILE_API_URL) and FLATFILE_BEARER_TOKEN (read by the client on each request), as
// `emulator.env()` gives them, plus the ids: FF_ENVIRONMENT_ID FF_ACCOUNT_ID FF_SPACE_ID
// FF_WORKBOOK_ID FF_SHEET_ID FF_FILE_ID FF_DOCUMENT_ID FF_JOB_ID (a ready job)
// FF_RECORD_IDS (comma-separated). FF_API_MODULE_DIR: the node_modules to load from.
//
// The SDK itself hardly ever throws on a malformed 2xx answer: it parses with
// skipValidation, only console.warn()s "Failed to validate." for some type errors and
// returns the raw JSON. So a call fails here (1) on any thrown error, non-2xx answer or SDK
// console.warn, and (2) when the SDK's own serializer, re-run on the captured JSON with the
// same options but skipValidation:false ("strict"), finds an error (a missing required key,
// a wrong type, a bad date). Prints "N passed, M failed"; exit 0 = all passed, 1 = failure.
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const { createRequire } = require("module");
// Node 20 has a global File; Node 18 (Debian 12's nodejs) has it in "buffer" only.
const File = globalThis.File || require("buffer").File;

function sdkRequire(name) {
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
const { FlatfileClient } = sdkRequire("@flatfile/api");
const serializers = sdkRequire("@flatfile/api/serialization");

function need(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`compat.cjs: ${name} is not set (tests/compat/run.py sets it)`);
    process.exit(2);
  }
  return value;
}
need("FLATFILE_API_URL");
need("FLATFILE_BEARER_TOKEN");
const ENV = need("FF_ENVIRONMENT_ID");
const ACCOUNT = need("FF_ACCOUNT_ID");
const SPACE = need("FF_SPACE_ID");
const WORKBOOK = need("FF_WORKBOOK_ID");
const SHEET = need("FF_SHEET_ID");
const FILE = need("FF_FILE_ID");
const DOC = need("FF_DOCUMENT_ID");
const JOB = need("FF_JOB_ID");
const RECORDS = need("FF_RECORD_IDS").split(",");

// ---- capture every HTTP exchange the SDK makes (it uses global fetch on Node >= 18) ----
let exchanges = [];
const realFetch = globalThis.fetch;
globalThis.fetch = async (url, init = {}) => {
  // @flatfile/api 1.23.1 sends "Keep-Alive: timeout=200" on every generated method (not on
  // the records.insert wrapper); Node's own fetch (undici) refuses that header before any
  // byte is sent ("fetch failed", cause UND_ERR_INVALID_ARG "invalid keep-alive header").
  // Every user on Node >= 18 hits it; no server can help. Strip it, as
  // shared/bench-reference/bench-jobs.cjs does.
  if (init.headers) {
    const h = {};
    for (const [k, v] of Object.entries(init.headers)) if (k.toLowerCase() !== "keep-alive") h[k] = v;
    init = { ...init, headers: h };
  }
  const res = await realFetch(url, init);
  exchanges.push({
    url: String(url), method: init.method || "GET", status: res.status,
    contentType: res.headers.get("content-type"), text: res.clone().text(),
  });
  return res;
};
let warnings = [];
const realWarn = console.warn;
console.warn = (...args) => { warnings.push(args.join(" ")); };

const STRICT = {
  unrecognizedObjectKeys: "passthrough", allowUnrecognizedUnionMembers: true,
  allowUnrecognizedEnumValues: true, skipValidation: false, breadcrumbsPrefix: ["response"],
};

function expect(cond, what) { if (!cond) throw new Error("expected " + what); }

async function readStream(s) {
  const chunks = [];
  for await (const c of s) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks);
}

async function main() {
  // No options: the client finds the emulator and the token in the environment, as a
  // handler deployed next to `flatjobs emulator` would.
  const client = new FlatfileClient();
  const made = {};
  let passed = 0;
  let failed = 0;

  // `serializer`: the response type every JSON answer of the call must strictly parse as.
  async function check(name, serializer, fn) {
    exchanges = [];
    warnings = [];
    const problems = [];
    try {
      await fn();
    } catch (e) {
      problems.push(`threw ${e && e.constructor && e.constructor.name}: ${e && e.message}` +
        (e && e.body ? ` body=${JSON.stringify(e.body).slice(0, 500)}` : ""));
    }
    for (const x of exchanges) {
      if (x.status < 200 || x.status > 299) problems.push(`HTTP ${x.status} for ${x.method} ${x.url}`);
      const text = await x.text;
      if (serializer === null) continue; // a byte stream
      let body;
      try {
        body = JSON.parse(text);
      } catch {
        problems.push(`non-JSON answer to ${x.method} ${x.url}: ${text.slice(0, 100)}`);
        continue;
      }
      const kind = typeof serializer === "function" ? serializer(x) : serializer;
      const r = serializers[kind].parse(body, STRICT);
      if (!r.ok) {
        problems.push(`strict ${kind} (${x.method} ${x.url}): ` +
          r.errors.map((er) => `${er.path.join(".")}: ${er.message}`).join("; "));
      }
    }
    if (exchanges.length === 0) problems.push("no HTTP request made");
    for (const w of warnings) problems.push("SDK warned: " + w.replace(/\n/g, " | "));
    if (problems.length) failed++; else passed++;
    console.log(problems.length ? `FAIL ${name}: ${problems.join(" || ")}` : `ok   ${name}`);
  }

  // ---- records ----
  await check("records.get", "GetRecordsResponse", async () => {
    const r = await client.records.get(SHEET, { pageSize: 5, pageNumber: 1, includeCounts: true,
      fields: ["firstName", "email"], filter: "valid", sortField: "firstName", sortDirection: "asc" });
    expect(r.data.records.length > 0, "records");
    for (const rec of r.data.records) expect(rec.id && rec.values, "record id/values");
  });
  await check("records.get(all, messages)", "GetRecordsResponse", async () => {
    const r = await client.records.get(SHEET, { includeMessages: true, includeLength: true });
    expect(r.data.records.length >= RECORDS.length, "every record");
    expect(r.data.records.some((rec) => rec.valid === false), "an invalid record");
    expect(r.data.commitId && r.data.versionId, "the page's commitId and versionId");
    made.commit = r.data.commitId;
  });
  await check("records.get(ids)", "GetRecordsResponse", async () => {
    const r = await client.records.get(SHEET, { ids: RECORDS.slice(0, 2) });
    expect(r.data.records.map((rec) => rec.id).join() === RECORDS.slice(0, 2).join(), "the records asked for");
  });
  await check("records.get(sinceCommitId)", "GetRecordsResponse", async () => {
    const r = await client.records.get(SHEET, { sinceCommitId: made.commit });
    expect(Array.isArray(r.data.records), "records");
  });
  await check("records.get(filter=error)", "GetRecordsResponse", async () => {
    const r = await client.records.get(SHEET, { filter: "error", filterField: "firstName", includeMessages: true });
    expect(r.data.records.length > 0 && r.data.records[0].values.firstName.valid === false, "invalid");
  });
  await check("records.insert", "RecordsResponse", async () => {
    const r = await client.records.insert(SHEET, [
      { firstName: { value: "Ann" }, email: { value: "ann@example.com" } },
      { firstName: { value: "Bob" }, age: { value: 7 }, tags: { value: ["a"] } },
      { email: { value: "no-name@example.com" } },
    ]);
    expect(r.data.success === true, "success");
  });
  await check("records.insert(gzip)", "RecordsResponse", async () => {
    const r = await client.records.insert(SHEET, [{ firstName: { value: "Zed" } }], { compressRequestBody: true });
    expect(r.data.success === true, "success");
  });
  await check("records.update", "VersionResponse", async () => {
    const r = await client.records.update(SHEET, [
      { id: RECORDS[0], values: { firstName: { value: "Anne" } }, metadata: { k: 1 } },
      { id: RECORDS[1], values: { email: { value: "bob@example.com",
        messages: [{ type: "error", message: "Taken", source: "custom-logic" }] } } },
    ]);
    expect(r.data.versionId, "versionId");
  });
  await check("records.update(unchanged)", "VersionResponse", async () => {
    const r = await client.records.update(SHEET, [{ id: RECORDS[0], values: { firstName: { value: "Anne" } } }]);
    expect(r.data.versionId, "versionId");
  });
  await check("records.delete", "Success", async () => {
    await client.records.delete(SHEET, { ids: RECORDS.slice(-2) });
  });

  // ---- sheets ----
  await check("sheets.list", "ListSheetsResponse", async () => {
    const r = await client.sheets.list({ workbookId: WORKBOOK });
    expect(r.data.some((s) => s.id === SHEET), "the sheet listed");
  });
  await check("sheets.get", "SheetResponse", async () => {
    const r = await client.sheets.get(SHEET);
    expect(r.data.id === SHEET && r.data.config.fields.length > 0, "the sheet and its fields");
  });
  await check("sheets.getRecordCounts", "RecordCountsResponse", async () => {
    const r = await client.sheets.getRecordCounts(SHEET);
    expect(typeof r.data.counts.total === "number" && r.data.counts.total > 0, "counts.total");
  });
  await check("sheets.getRecordsAsCsv", null, async () => {
    const s = await client.sheets.getRecordsAsCsv(SHEET, { filter: "all" });
    expect((await readStream(s)).toString().includes("firstName"), "csv with a header");
  });

  // ---- workbooks ----
  await check("workbooks.list", "ListWorkbooksResponse", async () => {
    const r = await client.workbooks.list({ spaceId: SPACE, includeSheets: true });
    expect(r.data.some((w) => w.id === WORKBOOK), "the workbook listed");
  });
  await check("workbooks.get", "WorkbookResponse", async () => {
    const r = await client.workbooks.get(WORKBOOK);
    expect(r.data.id === WORKBOOK && r.data.sheets.length > 0, "the workbook and its sheets");
  });
  await check("workbooks.create", "WorkbookResponse", async () => {
    const r = await client.workbooks.create({
      name: "Compat", spaceId: SPACE, environmentId: ENV, labels: ["compat"],
      sheets: [{ name: "People", slug: "people", fields: [
        { key: "firstName", type: "string" }, { key: "age", type: "number" },
        { key: "ok", type: "boolean" }, { key: "plan", type: "enum", config: { options: [{ value: "a" }] } },
      ] }],
      actions: [{ label: "Submit", operation: "submit", mode: "foreground" }],
      settings: { trackChanges: false }, metadata: { k: "v" },
    });
    expect(r.data.id, "id");
    made.workbook = r.data.id;
  });
  await check("workbooks.update", "WorkbookResponse", async () => {
    const r = await client.workbooks.update(WORKBOOK, { name: "Renamed", metadata: { k: "w" } });
    expect(r.data.id === WORKBOOK && r.data.name === "Renamed", "renamed");
  });
  await check("workbooks.delete", "Success", async () => {
    await client.workbooks.delete(made.workbook);
  });

  // ---- files ----
  await check("files.upload(File)", "FileResponse", async () => {
    const file = new File([Buffer.from("a,b\n1,2\n")], "compat.csv", { type: "text/csv" });
    const r = await client.files.upload(file, { spaceId: SPACE, environmentId: ENV, mode: "import",
      actions: [{ label: "Import", operation: "import" }] });
    expect(r.data.id && r.data.name === "compat.csv", "the file");
    made.file = r.data.id;
  });
  await check("files.upload(ReadStream, export)", "FileResponse", async () => {
    const where = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "compat-")), "export.csv");
    fs.writeFileSync(where, "x,y\n1,2\n");
    const r = await client.files.upload(fs.createReadStream(where), { spaceId: SPACE, environmentId: ENV, mode: "export" });
    expect(r.data.id && r.data.name === "export.csv", "the file, named after the stream's path");
    fs.rmSync(path.dirname(where), { recursive: true });
  });
  await check("files.list", "ListFilesResponse", async () => {
    const r = await client.files.list({ spaceId: SPACE, pageSize: 10, pageNumber: 1, mode: "import" });
    expect(r.data.some((f) => f.id === FILE), "the seeded file listed");
  });
  await check("files.get", "FileResponse", async () => {
    const r = await client.files.get(FILE);
    expect(r.data.id === FILE, "id");
  });
  await check("files.download", null, async () => {
    const s = await client.files.download(FILE);
    expect((await readStream(s)).length > 0, "bytes");
  });
  await check("files.delete", "Success", async () => {
    await client.files.delete(made.file);
  });

  // ---- spaces / documents ----
  await check("spaces.list", "ListSpacesResponse", async () => {
    const r = await client.spaces.list({ environmentId: ENV, pageSize: 10, pageNumber: 1 });
    expect(r.data.some((s) => s.id === SPACE), "the space listed");
  });
  await check("spaces.get", "SpaceResponse", async () => {
    const r = await client.spaces.get(SPACE);
    expect(r.data.id === SPACE, "id");
  });
  await check("spaces.update", "SpaceResponse", async () => {
    const r = await client.spaces.update(SPACE, { name: "Renamed", metadata: { k: "v" } });
    expect(r.data.id === SPACE, "id");
  });
  await check("documents.list", "ListDocumentsResponse", async () => {
    const r = await client.documents.list(SPACE);
    expect(r.data.some((d) => d.id === DOC), "the document listed");
  });
  await check("documents.get", "DocumentResponse", async () => {
    const r = await client.documents.get(SPACE, DOC);
    expect(r.data.id === DOC, "id");
  });
  await check("documents.create", "DocumentResponse", async () => {
    const r = await client.documents.create(SPACE, { title: "Hello", body: "<p>hi</p>" });
    expect(r.data.id, "id");
  });
  await check("documents.update", "DocumentResponse", async () => {
    const r = await client.documents.update(SPACE, DOC, { title: "Welcome", body: "<p>Again</p>" });
    expect(r.data.id === DOC, "id");
  });

  // ---- jobs ----
  await check("jobs.get", "JobResponse", async () => {
    const r = await client.jobs.get(JOB);
    expect(r.data.id === JOB && r.data.status === "ready", "the ready job");
  });
  await check("jobs.ack", "JobResponse", async () => {
    const r = await client.jobs.ack(JOB, { info: "starting", progress: 10 });
    expect(r.data.status === "executing", "executing");
  });
  await check("jobs.ack(no body)", "JobResponse", async () => {
    const r = await client.jobs.ack(JOB);
    expect(r.data.status === "executing", "executing");
  });
  await check("jobs.update", "JobResponse", async () => {
    const r = await client.jobs.update(JOB, { info: "halfway", progress: 50, metadata: { k: 1 } });
    expect(r.data.id === JOB, "id");
  });
  await check("jobs.complete", "JobResponse", async () => {
    const r = await client.jobs.complete(JOB, { outcome: { message: "done", acknowledge: true } });
    expect(r.data.status === "complete", "complete");
  });
  await check("jobs.ackOutcome", "JobResponse", async () => {
    const r = await client.jobs.ackOutcome(JOB);
    expect(r.data.id === JOB, "id");
  });
  await check("jobs.list", "ListJobsResponse", async () => {
    const r = await client.jobs.list({ environmentId: ENV, pageSize: 50 });
    expect(r.data.some((j) => j.id === JOB), "the job listed");
  });
  await check("jobs.create", "JobResponse", async () => {
    const r = await client.jobs.create({ type: "workbook", operation: "compat", source: WORKBOOK });
    expect(r.data.status === "created", "created");
    made.job = r.data.id;
  });
  await check("jobs.execute", "Success", async () => {
    await client.jobs.execute(made.job);
  });
  await check("jobs.fail", "JobResponse", async () => {
    await client.jobs.ack(made.job);
    const r = await client.jobs.fail(made.job, { info: "bad", outcome: { message: "Broken" } });
    expect(r.data.status === "failed", "failed");
  });
  await check("jobs.retry", "JobResponse", async () => {
    const r = await client.jobs.retry(made.job);
    expect(r.data.status === "ready", "ready");
  });
  await check("jobs.cancel", "JobResponse", async () => {
    const r = await client.jobs.cancel(made.job, { info: "stopped" });
    expect(r.data.status === "canceled", "canceled");
  });
  await check("jobs.delete", "Success", async () => {
    await client.jobs.delete(made.job);
  });
  await check("jobs.split", "JobResponse", async () => {
    const job = await client.jobs.create({ type: "sheet", operation: "compat-split", source: SHEET, trigger: "immediate" });
    await client.jobs.ack(job.data.id);
    const r = await client.jobs.split(job.data.id, { parts: 2, runInParallel: true });
    expect(r.data.id === job.data.id, "id");
  });

  // ---- events / subscription / secrets ----
  await check("events.create", "EventResponse", async () => {
    const r = await client.events.create({ topic: "workbook:updated", domain: "workbook",
      context: { accountId: ACCOUNT, environmentId: ENV, spaceId: SPACE, workbookId: WORKBOOK },
      payload: { compat: true } });
    expect(r.data.id, "id");
    made.event = r.data.id;
  });
  await check("events.get", "EventResponse", async () => {
    const r = await client.events.get(made.event);
    expect(r.data.id === made.event, "id");
  });
  await check("events.ack", "Success", async () => {
    await client.events.ack(made.event);
  });
  await check("events.list(space, domain)", "ListAllEventsResponse", async () => {
    const r = await client.events.list({ environmentId: ENV, spaceId: SPACE, domain: "job" });
    expect(Array.isArray(r.data), "array");
  });
  await check("events.getEventToken", "EventTokenResponse", async () => {
    const r = await client.events.getEventToken({ scope: ENV });
    expect(r.data && r.data.token, "a token");
  });
  await check("events.getEventToken(space)", "EventTokenResponse", async () => {
    const r = await client.events.getEventToken({ scope: SPACE, spaceId: SPACE });
    expect(r.data && r.data.subscribeKey, "a subscribe key");
  });
  await check("secrets.list", "SecretsResponse", async () => {
    const r = await client.secrets.list({ environmentId: ENV, spaceId: SPACE });
    expect(Array.isArray(r.data), "array");
  });
  // Last: every event the calls above made the emulator emit must parse, strictly.
  await check("events.list(all emitted)", "ListAllEventsResponse", async () => {
    const r = await client.events.list({ environmentId: ENV, includeAcknowledged: true, pageSize: 1000 });
    expect(r.data.length > 10, "the events emitted");
  });

  console.log(`${passed} passed, ${failed} failed`);
  return failed ? 1 : 0;
}

main().then(
  (code) => { console.warn = realWarn; process.exit(code); },
  (e) => { console.error(e); process.exit(1); },
);
