// The flatjobs emulator's jobs panel: what a person in Flatfile sees of your jobs.
//
// Every value that comes from the emulator (names, messages, cell values, URLs) is written
// as text: elements are made with document.createElement and filled with textContent or
// text nodes, never with HTML. Links only take http(s) URLs. The page is served with a
// Content-Security-Policy that allows no inline script, as a second line of defence.
"use strict";

const API = "/_panel/api";
const UNFINISHED = new Set(["created", "planning", "scheduled", "ready", "executing", "waiting"]);
const ENDED = new Set(["complete", "failed", "canceled"]);
const PAGE_SIZE = 50;
const SHOWN_JOBS = 100;

const state = {
  jobs: new Map(), // id -> job (wire JSON + label)
  cards: new Map(), // id -> <li> of the jobs panel
  tree: null,
  treeKey: "",
  synced: false, // a snapshot has arrived
  sheet: null, // {id, page, filter, hidden: Set, snapshot}
  dialog: null, // the job whose outcome dialog is open
  queue: [], // jobs whose outcome dialogs wait their turn
  action: null, // {target, action} of the action dialog
  refresh: null, // a pending refresh after data changed
  dirtySheets: new Set(),
  editing: false, // a cell of the table is being edited: refreshes wait
};

// ------------------------------------------------------------------ building blocks

/** An element with properties and children; strings become text nodes, never HTML. */
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = String(value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "href") {
      const url = safeUrl(value);
      if (url !== null) node.setAttribute("href", url);
    } else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** The URL if it is http(s) (relative URLs resolve against the page), else null. */
function safeUrl(value) {
  try {
    const url = new URL(String(value), window.location.href);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

function $(id) {
  return document.getElementById(id);
}

async function api(path, { method = "GET", body } = {}) {
  const init = { method, headers: {} };
  if (method !== "GET") {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body ?? {});
  }
  const response = await fetch(`${API}${path}`, init);
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  if (!response.ok) {
    const message = parsed?.errors?.[0]?.message ?? `${response.status} ${response.statusText}`;
    throw new Error(message);
  }
  return parsed;
}

function report(error) {
  toast({ kind: "error", heading: "The emulator refused", message: String(error.message ?? error) });
}

function display(value) {
  if (value === null || value === undefined) return "";
  if (Array.isArray(value)) return value.map(display).join(", ");
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function setProgress(bar, progress) {
  const value = Math.max(0, Math.min(100, Number(progress) || 0));
  bar.setAttribute("aria-valuenow", String(Math.round(value)));
  bar.querySelector(".progress-fill").style.width = `${value}%`;
}

function progressBar() {
  return el(
    "div",
    { class: "progress", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": 0 },
    el("div", { class: "progress-fill" }),
  );
}

function eta(job) {
  if (job.status !== "executing" || !job.estimatedCompletionAt) return "";
  const left = (Date.parse(job.estimatedCompletionAt) - Date.now()) / 1000;
  if (!Number.isFinite(left)) return "";
  if (left <= 0) return "finishing…";
  if (left < 60) return `about ${Math.ceil(left)}s left`;
  if (left < 3600) return `about ${Math.round(left / 60)} min left`;
  return `about ${Math.round(left / 3600)} h left`;
}

function outcomeTrigger(outcome) {
  const trigger = outcome?.trigger;
  return typeof trigger === "string" ? trigger : trigger?.type ?? "manual";
}

function byNewest(a, b) {
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

// ------------------------------------------------------------------ the tree

function resources() {
  const found = new Map();
  for (const space of state.tree?.spaces ?? []) {
    found.set(space.id, { kind: "space", item: space, space });
    for (const workbook of space.workbooks) {
      found.set(workbook.id, { kind: "workbook", item: workbook, space });
      for (const sheet of workbook.sheets ?? []) found.set(sheet.id, { kind: "sheet", item: sheet, space, workbook });
    }
    for (const file of space.files) found.set(file.id, { kind: "file", item: file, space });
    for (const document_ of space.documents) found.set(document_.id, { kind: "document", item: document_, space });
  }
  return found;
}

function counts(sheet) {
  return sheet.recordCounts ?? { total: 0, valid: 0, error: 0 };
}

/** Why an action cannot run now (its constraints, a toolbar-blocking job), or null. */
function blocked(targetId, action, byId) {
  for (const job of state.jobs.values()) {
    if (job.mode === "toolbarBlocking" && job.source === targetId && UNFINISHED.has(job.status)) {
      return `${job.label} is running`;
    }
  }
  const found = byId.get(targetId);
  const sheets = found?.kind === "sheet" ? [found.item] : found?.kind === "workbook" ? found.item.sheets ?? [] : [];
  const total = sheets.reduce((n, s) => n + counts(s).total, 0);
  const errors = sheets.reduce((n, s) => n + counts(s).error, 0);
  for (const constraint of action.constraints ?? []) {
    if (constraint?.type === "hasData" && sheets.length && total === 0) return "There are no records";
    if (constraint?.type === "hasAllValid" && errors > 0) return "Every record must be valid";
  }
  return null;
}

function actionButtons(targetId, actions) {
  if (!actions?.length) return null;
  return el(
    "div",
    { class: "actions" },
    actions.map((action) =>
      el("button", {
        type: "button",
        class: action.primary ? "action primary" : "action",
        text: action.label ?? action.operation,
        title: action.tooltip ?? action.description,
        dataset: { target: targetId, operation: action.operation ?? "" },
        onclick: () => clickAction(targetId, action),
      }),
    ),
  );
}

function updateActionStates() {
  const byId = resources();
  for (const button of document.querySelectorAll("button.action")) {
    const found = byId.get(button.dataset.target);
    const action = (found?.kind === "sheet" ? found.item.config?.actions : found?.item.actions)?.find(
      (a) => (a.operation ?? "") === button.dataset.operation,
    );
    const reason = action ? blocked(button.dataset.target, action, byId) : null;
    button.disabled = reason !== null;
    if (reason !== null) button.title = reason;
    else button.title = action?.tooltip ?? action?.description ?? "";
  }
}

function treeKey(tree) {
  return JSON.stringify(tree, (key, value) => (key === "recordCounts" || key === "updatedAt" ? undefined : value));
}

function renderTree() {
  const nav = $("tree");
  const key = treeKey(state.tree);
  if (key === state.treeKey) {
    for (const [id, found] of resources()) {
      if (found.kind !== "sheet") continue;
      const count = nav.querySelector(`[data-count-of="${CSS.escape(id)}"]`);
      if (count) count.textContent = countText(found.item);
    }
    updateActionStates();
    return;
  }
  state.treeKey = key;
  $("environment").textContent = state.tree.environmentId;
  nav.replaceChildren(
    ...state.tree.spaces.map((space) =>
      el(
        "section",
        { class: "space", dataset: { id: space.id } },
        el("h2", { class: "space-name", text: space.name || space.id, title: space.id }),
        actionButtons(space.id, space.actions),
        space.workbooks.map((workbook) =>
          el(
            "div",
            { class: "workbook", dataset: { id: workbook.id } },
            el("h3", { class: "workbook-name", text: workbook.name || workbook.id, title: workbook.id }),
            actionButtons(workbook.id, workbook.actions),
            el(
              "ul",
              { class: "sheets" },
              (workbook.sheets ?? []).map((sheet) =>
                el(
                  "li",
                  { class: "sheet", dataset: { id: sheet.id } },
                  el(
                    "button",
                    { type: "button", class: "sheet-link", onclick: () => openSheet(sheet.id), title: sheet.id },
                    el("span", { class: "sheet-name", text: sheet.name }),
                    el("span", { class: "count", dataset: { countOf: sheet.id }, text: countText(sheet) }),
                  ),
                  actionButtons(sheet.id, sheet.config?.actions),
                ),
              ),
            ),
          ),
        ),
        listSection("Files", { class: "files", dataset: { space: space.id } }, space.files, (file) =>
          el(
            "li",
            { class: "file", dataset: { id: file.id, mode: file.mode } },
            el("a", {
              href: `${API}/files/${encodeURIComponent(file.id)}/download`,
              download: file.name,
              text: file.name,
              title: file.id,
            }),
            el("span", { class: "tag", text: file.mode }),
            actionButtons(file.id, file.actions),
          ),
        ),
        listSection("Documents", { class: "documents" }, space.documents, (document_) =>
          el(
            "li",
            { class: "document", dataset: { id: document_.id } },
            el("span", { text: document_.title, title: document_.id }),
            actionButtons(document_.id, document_.actions),
          ),
        ),
      ),
    ),
  );
  updateActionStates();
}

/** A titled list of a space's files or documents, or nothing when there is none. */
function listSection(title, props, items, row) {
  return items.length ? el("div", props, el("h3", { text: title }), el("ul", {}, items.map(row))) : null;
}

function countText(sheet) {
  const c = counts(sheet);
  return c.error ? `${c.total.toLocaleString()} · ${c.error.toLocaleString()} invalid` : c.total.toLocaleString();
}

async function refreshTree() {
  try {
    state.tree = await api("/tree");
  } catch (error) {
    report(error);
    return;
  }
  renderTree();
  if (state.sheet && !resources().has(state.sheet.id)) closeSheet();
}

function flash(node) {
  node.scrollIntoView({ block: "nearest" });
  node.classList.remove("flash");
  void node.offsetWidth; // restarts the animation
  node.classList.add("flash");
}

// ------------------------------------------------------------------ actions

function clickAction(target, action) {
  if (action.confirm || action.inputForm?.fields?.length) {
    openActionDialog(target, action);
    return;
  }
  trigger(target, action, undefined);
}

// The answers of the POSTs are not shown: a job's state comes from the event stream alone,
// in the order it changed (an answer may arrive after a newer state was streamed).
async function trigger(target, action, input) {
  try {
    await api("/actions", { method: "POST", body: { target, operation: action.operation, input } });
  } catch (error) {
    report(error);
  }
}

function openActionDialog(target, action) {
  state.action = { target, action };
  $("action-title").textContent = action.label ?? action.operation;
  $("action-description").textContent = action.description ?? "";
  $("action-submit").textContent = action.label ?? "Run";
  const fields = action.inputForm?.fields ?? [];
  $("action-fields").replaceChildren(...fields.map(inputField));
  $("action-dialog").hidden = false;
  ($("action-fields").querySelector("input, select, textarea") ?? $("action-submit")).focus();
}

function inputField(field) {
  const id = `input-${field.key}`;
  const required = (field.constraints ?? []).some((c) => c?.type === "required");
  let control;
  if (field.type === "enum") {
    control = el(
      "select",
      { id, name: field.key, required },
      (field.config?.options ?? []).map((option) =>
        el("option", { value: display(option.value), text: option.label ?? display(option.value) }),
      ),
    );
    if (field.defaultValue !== undefined) control.value = display(field.defaultValue);
  } else if (field.type === "boolean") {
    control = el("input", { id, name: field.key, type: "checkbox" });
    control.checked = Boolean(field.defaultValue);
  } else if (field.type === "textarea") {
    control = el("textarea", { id, name: field.key, required });
    control.value = display(field.defaultValue);
  } else {
    control = el("input", { id, name: field.key, type: field.type === "number" ? "number" : "text", required });
    control.value = display(field.defaultValue);
  }
  control.dataset.kind = field.type ?? "string";
  return el(
    "div",
    { class: "field" },
    el("label", { for: id, text: field.label ?? field.key }),
    control,
    field.description ? el("p", { class: "muted", text: field.description }) : null,
  );
}

function closeActionDialog() {
  state.action = null;
  $("action-dialog").hidden = true;
}

function submitAction(event) {
  event.preventDefault();
  if (!state.action) return;
  const { target, action } = state.action;
  const input = {};
  for (const control of $("action-fields").querySelectorAll("[name]")) {
    const kind = control.dataset.kind;
    if (kind === "boolean") input[control.name] = control.checked;
    else if (kind === "number") input[control.name] = control.value === "" ? null : Number(control.value);
    else input[control.name] = control.value;
  }
  closeActionDialog();
  trigger(target, action, action.inputForm?.fields?.length ? input : undefined);
}

// ------------------------------------------------------------------ records

function openSheet(sheetId, { hidden = [], snapshot = null } = {}) {
  state.sheet = { id: sheetId, page: 1, filter: "all", hidden: new Set(hidden), snapshot };
  for (const node of document.querySelectorAll("#tree .sheet.selected")) node.classList.remove("selected");
  document.querySelector(`#tree .sheet[data-id="${CSS.escape(sheetId)}"]`)?.classList.add("selected");
  loadRecords();
}

function closeSheet() {
  state.sheet = null;
  $("content").replaceChildren(el("p", { class: "empty", text: "Pick a sheet to browse its records." }));
}

async function loadRecords() {
  const view = state.sheet;
  if (!view) return;
  const query = new URLSearchParams({ page: view.page, size: PAGE_SIZE, filter: view.filter });
  let answer;
  try {
    answer = await api(`/sheets/${encodeURIComponent(view.id)}/records?${query}`);
  } catch (error) {
    report(error);
    return;
  }
  if (state.sheet !== view) return; // another sheet was opened meanwhile
  if (view.page > answer.pageCount) {
    view.page = answer.pageCount;
    loadRecords();
    return;
  }
  renderRecords(view, answer);
}

function renderRecords(view, answer) {
  const sheet = answer.sheet;
  const fields = (sheet.config?.fields ?? []).filter((f) => !view.hidden.has(f.key));
  const c = answer.counts;
  const filters = [
    ["all", `All ${c.total.toLocaleString()}`],
    ["valid", `Valid ${c.valid.toLocaleString()}`],
    ["error", `Error ${c.error.toLocaleString()}`],
  ];
  const notes = [];
  if (view.snapshot) {
    notes.push(
      el("p", {
        class: "note",
        text: `Snapshot ${view.snapshot}: the emulator keeps no snapshots, this is the sheet as it is now.`,
      }),
    );
  }
  if (view.hidden.size) {
    notes.push(
      el(
        "p",
        { class: "note hidden-columns" },
        `${view.hidden.size} column${view.hidden.size === 1 ? "" : "s"} hidden: ${[...view.hidden].join(", ")} `,
        el("button", {
          type: "button",
          class: "link",
          text: "Show all",
          onclick: () => {
            view.hidden.clear();
            loadRecords();
          },
        }),
      ),
    );
  }
  const first = (answer.page - 1) * answer.pageSize;
  const body = el(
    "tbody",
    {},
    answer.records.map((record, index) =>
      el(
        "tr",
        { class: record.valid === false ? "record invalid" : "record", dataset: { id: record.id } },
        el("th", { scope: "row", class: "row-number", text: first + index + 1, title: record.id }),
        fields.map((field) => cell(field, record.values?.[field.key], record, sheet)),
      ),
    ),
  );
  $("content").replaceChildren(
    el(
      "div",
      { class: "sheet-head" },
      el("h2", { id: "sheet-title", text: sheet.name, title: sheet.id }),
      actionButtons(sheet.id, sheet.config?.actions),
    ),
    el(
      "div",
      { class: "filters", role: "group", "aria-label": "Filter records" },
      filters.map(([value, label]) =>
        el("button", {
          type: "button",
          class: view.filter === value ? "filter selected" : "filter",
          "aria-pressed": view.filter === value ? "true" : "false",
          text: label,
          onclick: () => {
            view.filter = value;
            view.page = 1;
            loadRecords();
          },
        }),
      ),
    ),
    ...notes,
    el(
      "div",
      { class: "table-wrap" },
      el(
        "table",
        { class: "records" },
        el(
          "thead",
          {},
          el(
            "tr",
            {},
            el("th", { scope: "col", text: "#" }),
            fields.map((f) => el("th", { scope: "col", text: f.label ?? f.key, title: f.key, dataset: { field: f.key } })),
          ),
        ),
        body,
      ),
    ),
    ...(answer.records.length ? [] : [el("p", { class: "empty", text: "No records." })]),
    el(
      "div",
      { class: "pager" },
      el("button", {
        type: "button",
        text: "Previous",
        disabled: answer.page <= 1,
        onclick: () => {
          view.page -= 1;
          loadRecords();
        },
      }),
      el("span", { id: "page-status", text: `Page ${answer.page} of ${answer.pageCount}` }),
      el("button", {
        type: "button",
        text: "Next",
        disabled: answer.page >= answer.pageCount,
        onclick: () => {
          view.page += 1;
          loadRecords();
        },
      }),
    ),
  );
  updateActionStates();
}

function editable(sheet, field, record) {
  const config = record.config ?? {};
  return !(sheet.config?.readonly || field.readonly || config.readonly || config.fields?.[field.key]?.readonly);
}

function cell(field, value, record, sheet) {
  const messages = value?.messages ?? [];
  const worst = ["error", "warn", "info"].find((type) => messages.some((m) => (m.type ?? "error") === type));
  const classes = ["cell"];
  if (value?.valid === false) classes.push("invalid");
  if (worst) classes.push(`has-${worst}`);
  const canEdit = editable(sheet, field, record);
  if (canEdit) classes.push("editable");
  const node = el(
    "td",
    {
      class: classes.join(" "),
      dataset: { field: field.key },
      tabindex: canEdit ? "0" : null,
      title: messages.map((m) => m.message ?? "").join("\n") || (canEdit ? "Double-click (or Enter) to edit" : null),
    },
    el("span", { class: "value", text: display(value?.value) }),
    messages.length
      ? el(
          "ul",
          { class: "messages" },
          messages.map((m) => el("li", { class: `message-${m.type ?? "error"}`, text: m.message ?? "" })),
        )
      : null,
  );
  if (canEdit) {
    node.addEventListener("dblclick", () => editCell(node, sheet.id, field, record, value));
    node.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && event.target === node) {
        event.preventDefault();
        editCell(node, sheet.id, field, record, value);
      }
    });
  }
  return node;
}

/** The user edits a cell, as in Flatfile's table: Enter saves (one commit, which starts the
 * record hooks), Escape or leaving the cell cancels. */
function editCell(node, sheetId, field, record, value) {
  if (state.editing) return;
  const before = display(value?.value);
  const input = el("input", {
    type: "text",
    class: "edit",
    value: before,
    "aria-label": `Edit ${field.label ?? field.key}`,
  });
  state.editing = true;
  let finished = false;
  const finish = async (save) => {
    if (finished) return;
    finished = true;
    if (save && input.value !== before) {
      const path = `/sheets/${encodeURIComponent(sheetId)}/records/${encodeURIComponent(record.id)}`;
      try {
        await api(path, { method: "POST", body: { values: { [field.key]: input.value } } });
      } catch (error) {
        report(error);
      }
    }
    state.editing = false;
    loadRecords();
  };
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      finish(true);
    } else if (event.key === "Escape") {
      event.preventDefault();
      finish(false);
    }
  });
  input.addEventListener("blur", () => finish(false));
  node.replaceChildren(input);
  input.focus();
  input.select();
}

// ------------------------------------------------------------------ jobs

function upsert(job) {
  const before = state.jobs.get(job.id);
  if (job.deleted) {
    state.jobs.delete(job.id);
    state.cards.get(job.id)?.remove();
    state.cards.delete(job.id);
  } else {
    state.jobs.set(job.id, job);
    renderJob(job);
    if (shouldPresent(job, before, false)) present(job);
    if (state.dialog?.id === job.id && job.outcomeAcknowledgedAt && !state.dialog.reopened) closeDialog();
  }
  $("no-jobs").hidden = state.jobs.size > 0;
  renderOverlay();
  updateActionStates();
}

function jobCard(job) {
  const card = el(
    "li",
    { class: "job", dataset: { jobId: job.id } },
    el(
      "div",
      { class: "job-head" },
      el("span", { class: "job-label" }),
      el("span", { class: "badge" }),
    ),
    el("div", { class: "job-name muted" }),
    progressBar(),
    el("div", { class: "info" }),
    el("div", { class: "eta muted" }),
    el("div", { class: "acknowledged muted", text: "outcome acknowledged" }),
    el(
      "div",
      { class: "buttons" },
      el("button", { type: "button", class: "cancel secondary", text: "Cancel", onclick: () => cancel(job.id) }),
      el("button", { type: "button", class: "retry secondary", text: "Retry", onclick: () => retry(job.id) }),
      el("button", {
        type: "button",
        class: "show-outcome secondary",
        text: "Outcome",
        onclick: () => showDialog(state.jobs.get(job.id), true),
      }),
    ),
  );
  return card;
}

function renderJob(job) {
  let card = state.cards.get(job.id);
  if (!card) {
    card = jobCard(job);
    state.cards.set(job.id, card);
    const list = $("jobs");
    const later = [...list.children].find((li) => li.dataset.jobId < job.id);
    list.insertBefore(card, later ?? null);
    while (list.children.length > SHOWN_JOBS) {
      const last = list.lastElementChild;
      state.cards.delete(last.dataset.jobId);
      last.remove();
    }
  }
  card.dataset.status = job.status;
  card.dataset.mode = job.mode ?? "background";
  card.classList.toggle("part", Boolean(job.parentId));
  const part = job.parentId ? ` · part ${Number(job.part ?? 0) + 1}` : "";
  card.querySelector(".job-label").textContent = job.label + part;
  card.querySelector(".badge").textContent = job.status;
  card.querySelector(".job-name").textContent = `${job.type}:${job.operation} · ${job.mode ?? "background"} · ${job.id}`;
  setProgress(card.querySelector(".progress"), job.status === "complete" ? 100 : job.progress);
  // An ended job's card says how it ended, as its outcome does, not its last progress.
  const ended = job.status === "complete" || job.status === "failed";
  const outcome = ended ? job.outcome?.message || job.outcome?.heading : null;
  card.querySelector(".info").textContent = outcome || job.info || "";
  card.querySelector(".eta").textContent = eta(job);
  card.querySelector(".acknowledged").hidden = !job.outcomeAcknowledgedAt;
  card.querySelector(".cancel").hidden = !UNFINISHED.has(job.status);
  card.querySelector(".retry").hidden = !(job.status === "failed" || job.status === "canceled");
  card.querySelector(".show-outcome").hidden = !(job.status === "complete" || job.status === "failed");
}

function foregroundJobs() {
  return [...state.jobs.values()]
    .filter((job) => job.mode === "foreground" && !job.parentId && UNFINISHED.has(job.status))
    .sort(byNewest);
}

function renderOverlay() {
  const running = foregroundJobs();
  const overlay = $("overlay");
  if (!running.length) {
    overlay.hidden = true;
    delete overlay.dataset.jobId;
    return;
  }
  const job = running[0];
  overlay.hidden = false;
  overlay.dataset.jobId = job.id;
  $("overlay-title").textContent = job.label;
  $("overlay-status").textContent =
    job.status === "executing" ? `${job.type}:${job.operation}` : `${job.type}:${job.operation} · ${job.status}: waiting for a listener`;
  setProgress($("overlay-progress"), job.progress);
  $("overlay-info").textContent = job.info ?? "";
  $("overlay-eta").textContent = eta(job);
  $("overlay-more").textContent = running.length > 1 ? `and ${running.length - 1} more job(s) running` : "";
}

function refreshEtas() {
  for (const job of state.jobs.values()) {
    if (job.status !== "executing" || !job.estimatedCompletionAt) continue;
    const card = state.cards.get(job.id);
    if (card) card.querySelector(".eta").textContent = eta(job);
  }
  if (!$("overlay").hidden) {
    const job = state.jobs.get($("overlay").dataset.jobId);
    if (job) $("overlay-eta").textContent = eta(job);
  }
}

async function cancel(jobId) {
  try {
    await api(`/jobs/${encodeURIComponent(jobId)}/cancel`, { method: "POST" });
  } catch (error) {
    report(error);
  }
}

async function retry(jobId) {
  try {
    await api(`/jobs/${encodeURIComponent(jobId)}/retry`, { method: "POST" });
  } catch (error) {
    report(error);
  }
}

/** The user acknowledged an outcome that asked for it (`acknowledge: true`: a dialog). */
async function acknowledge(job) {
  const current = state.jobs.get(job.id) ?? job;
  if (!current.outcome?.acknowledge || current.outcomeAcknowledgedAt) return;
  if (!(current.status === "complete" || current.status === "failed")) return;
  try {
    await api(`/jobs/${encodeURIComponent(job.id)}/outcome-ack`, { method: "POST" });
  } catch (error) {
    report(error);
  }
}

// ------------------------------------------------------------------ outcomes

/** Whether a job that just changed has an outcome to show: it ended (complete or failed)
 * since we last saw it, nobody acknowledged it yet, and the user sees it (not a part, not
 * a hidden job). At load, only the outcomes that wait for an acknowledgement. */
function shouldPresent(job, before, atLoad) {
  if (!(job.status === "complete" || job.status === "failed") || job.outcomeAcknowledgedAt) return false;
  if (job.parentId || job.mode === "hidden") return false;
  if (before && ENDED.has(before.status) && before.finishedAt === job.finishedAt) return false;
  if (atLoad && !job.outcome?.acknowledge) return false;
  return true;
}

function present(job) {
  const trigger = outcomeTrigger(job.outcome);
  const next = job.outcome?.next;
  if (trigger === "automatic_silent") {
    if (next) runNext(job, next, true);
    acknowledge(job);
    return;
  }
  if (trigger === "automatic" && next) runNext(job, next, true);
  if (job.outcome?.acknowledge) {
    if (state.dialog) {
      if (!state.queue.some((j) => j.id === job.id)) state.queue.push(job);
    } else showDialog(job, false);
  } else outcomeToast(job);
}

function nextLabel(next) {
  const defaults = {
    id: "Go",
    url: "Open link",
    download: "Download",
    files: "Download files",
    snapshot: "View snapshot",
    retry: "Retry",
    view: "View",
    clearFilters: "Clear filters",
  };
  return next.label || defaults[next.type] || next.type;
}

/** What the outcome's `next` puts in the dialog or toast: a button or links. */
function nextControls(job, next, close) {
  if (!next) return [];
  const done = () => {
    close();
    acknowledge(job);
  };
  switch (next.type) {
    case "url": {
      const href = safeUrl(next.url);
      return [
        href
          ? el("a", { class: "button primary next-button", href, target: "_blank", rel: "noopener noreferrer", text: nextLabel(next), onclick: done })
          : el("span", { class: "note", text: `Not an http(s) link: ${display(next.url)}` }),
      ];
    }
    case "download": {
      const href = safeUrl(next.url);
      return [
        href
          ? el("a", { class: "button primary next-button", href, download: next.fileName ?? "", text: nextLabel(next), onclick: done })
          : el("span", { class: "note", text: `Not an http(s) link: ${display(next.url)}` }),
      ];
    }
    case "files":
      return [
        next.label ? el("p", { class: "files-label", text: next.label }) : null,
        el(
          "ul",
          { class: "next-files" },
          (next.files ?? []).map((file) =>
            el(
              "li",
              {},
              el("a", {
                class: "button next-file",
                href: `${API}/files/${encodeURIComponent(file.fileId)}/download`,
                download: job.fileNames?.[file.fileId] ?? "",
                text: file.label || job.fileNames?.[file.fileId] || file.fileId,
                onclick: () => acknowledge(job),
              }),
            ),
          ),
        ),
      ];
    case "wait":
      return [
        el(
          "div",
          { class: `waiting${next.fade ? " fade" : ""}${next.confetti ? " confetti" : ""}` },
          el("span", { class: "spinner", "aria-hidden": "true" }),
          next.confetti ? el("span", { class: "confetti-burst", "aria-hidden": "true", text: "🎉" }) : null,
          el("span", { text: "Waiting…" }),
        ),
      ];
    case "id":
    case "snapshot":
    case "view":
    case "retry":
    case "clearFilters":
      return [
        el("button", {
          type: "button",
          class: "primary next-button",
          text: nextLabel(next),
          onclick: async () => {
            close();
            await acknowledge(job);
            runNext(job, next, false);
          },
        }),
      ];
    default:
      return [el("span", { class: "note", text: `A next action this panel does not know: ${display(next.type)}` })];
  }
}

/** Do what a `next` does on its own (a click, or an automatic trigger). */
function runNext(job, next, automatic) {
  switch (next.type) {
    case "id":
      goTo(next.id, next.path, next.query);
      break;
    case "snapshot":
      openSheet(next.sheetId, { snapshot: next.snapshotId });
      break;
    case "view":
      openSheet(next.sheetId, { hidden: next.hiddenColumns ?? [] });
      break;
    case "retry":
      retry(job.id);
      break;
    case "clearFilters": {
      const sheets = next.sheetIds ?? (state.sheet ? [state.sheet.id] : []);
      if (state.sheet && sheets.includes(state.sheet.id)) {
        state.sheet.filter = "all";
        state.sheet.hidden.clear();
        state.sheet.page = 1;
        loadRecords();
      }
      toast({ kind: "info", heading: "Filters cleared", message: sheets.join(", ") || "no sheet open" });
      break;
    }
    case "url":
    case "download":
      if (automatic) {
        const href = safeUrl(next.url);
        if (href) {
          const link = el("a", { href, target: "_blank", rel: "noopener noreferrer", download: next.type === "download" ? next.fileName ?? "" : null });
          link.click();
        }
      }
      break;
    default:
      break;
  }
}

/** A `next` of type id: open the sheet (a workbook's first), or show the entity. */
function goTo(id, path, query) {
  const found = resources().get(id);
  if (found?.kind === "sheet") return openSheet(id);
  if (found?.kind === "workbook" && found.item.sheets?.length) return openSheet(found.item.sheets[0].id);
  const node =
    found?.kind === "space" && path === "files"
      ? document.querySelector(`#tree .files[data-space="${CSS.escape(id)}"]`)
      : found
        ? document.querySelector(`#tree [data-id="${CSS.escape(id)}"]`)
        : null;
  if (node) return flash(node);
  const where = `${id}${path ? `/${path}` : ""}${query ? `?${query}` : ""}`;
  toast({ kind: "info", heading: "Go to", message: `${where}: not in this emulator` });
}

function showDialog(job, reopened) {
  if (!job) return;
  state.dialog = { id: job.id, reopened };
  const failed = job.status === "failed";
  const outcome = job.outcome ?? {};
  const box = $("outcome");
  box.dataset.jobId = job.id;
  box.dataset.status = job.status;
  $("outcome-icon").textContent = failed ? "!" : "✓";
  $("outcome-heading").textContent = outcome.heading || (failed ? "Failed" : "Complete");
  $("outcome-job").textContent = job.label;
  $("outcome-message").textContent = outcome.message ?? job.info ?? "";
  const close = () => closeDialog();
  $("outcome-next").replaceChildren(...nextControls(job, outcome.next, close));
  const buttons = [];
  if (!outcome.hideDefaultButton) {
    buttons.push(
      el("button", {
        type: "button",
        class: outcome.next ? "secondary default-button" : "primary default-button",
        text: outcome.buttonText || "Continue",
        onclick: () => {
          close();
          acknowledge(job);
        },
      }),
    );
  }
  $("outcome-buttons").replaceChildren(...buttons);
  box.hidden = false;
  (box.querySelector(".next-button, .default-button") ?? $("outcome-dismiss")).focus();
}

function closeDialog() {
  state.dialog = null;
  $("outcome").hidden = true;
  while (state.queue.length) {
    const waiting = state.jobs.get(state.queue.shift().id);
    if (waiting && !waiting.outcomeAcknowledgedAt && (waiting.status === "complete" || waiting.status === "failed")) {
      showDialog(waiting, false);
      return;
    }
  }
}

function dismissDialog() {
  const open = state.dialog && state.jobs.get(state.dialog.id);
  closeDialog();
  if (open) acknowledge(open);
}

function outcomeToast(job) {
  const failed = job.status === "failed";
  const outcome = job.outcome ?? {};
  toast({
    kind: failed ? "error" : "success",
    heading: outcome.heading || (failed ? `${job.label} failed` : `${job.label} complete`),
    message: outcome.message ?? job.info ?? "",
    job,
  });
}

function toast({ kind, heading, message, job = null }) {
  const box = $("toasts");
  const node = el("div", { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status", dataset: job ? { jobId: job.id } : {} });
  const close = () => node.remove();
  node.append(
    el("button", { type: "button", class: "dismiss", "aria-label": "Dismiss", text: "×", onclick: close }),
    el("strong", { class: "toast-heading", text: heading }),
    message ? el("p", { class: "toast-message", text: message }) : null,
    ...(job ? nextControls(job, job.outcome?.next, close) : []),
  );
  box.append(node);
  while (box.children.length > 5) box.firstElementChild.remove();
}

// ------------------------------------------------------------------ the live feed

function dataChanged(sheets) {
  for (const id of sheets) state.dirtySheets.add(id);
  if (state.refresh !== null) return;
  // Changes come in bursts (a page of records is many events): one refresh per burst.
  state.refresh = setTimeout(async () => {
    state.refresh = null;
    const dirty = state.dirtySheets;
    state.dirtySheets = new Set();
    await refreshTree();
    if (state.editing) {
      // Redrawing the table now would throw the user's typing away: it is redrawn once the
      // edit ends (saved or cancelled).
      return;
    }
    if (state.sheet && dirty.has(state.sheet.id)) loadRecords();
  }, 150);
}

function connect() {
  const source = new EventSource(`${API}/stream`);
  const status = $("connection");
  source.addEventListener("snapshot", (event) => {
    const snapshot = JSON.parse(event.data);
    const atLoad = !state.synced;
    state.synced = true;
    const seen = new Set();
    for (const job of [...snapshot.jobs].reverse()) {
      seen.add(job.id);
      const before = state.jobs.get(job.id);
      state.jobs.set(job.id, job);
      renderJob(job);
      if (shouldPresent(job, before, atLoad)) present(job);
    }
    for (const id of [...state.jobs.keys()]) {
      if (!seen.has(id)) upsert({ id, deleted: true });
    }
    $("no-jobs").hidden = state.jobs.size > 0;
    renderOverlay();
    refreshTree().then(() => {
      if (state.sheet) loadRecords();
    });
    status.dataset.state = "live";
    status.textContent = "live";
  });
  source.addEventListener("job", (event) => upsert(JSON.parse(event.data)));
  source.addEventListener("data", (event) => dataChanged(JSON.parse(event.data).sheets));
  source.addEventListener("error", () => {
    status.dataset.state = "offline";
    status.textContent = "reconnecting…";
  });
}

document.addEventListener("DOMContentLoaded", () => {
  $("overlay-cancel").addEventListener("click", () => {
    const id = $("overlay").dataset.jobId;
    if (id) cancel(id);
  });
  $("outcome-dismiss").addEventListener("click", dismissDialog);
  $("action-cancel").addEventListener("click", closeActionDialog);
  $("action-form").addEventListener("submit", submitAction);
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    if (!$("action-dialog").hidden) closeActionDialog();
  });
  setInterval(refreshEtas, 1000); // the clock moves the ETAs: nothing is fetched
  connect();
});
