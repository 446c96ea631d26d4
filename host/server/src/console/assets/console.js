// FlowMesh console: live updates over one EventSource per page, and the
// submit page's file loading. Everything works without it but live updates.
"use strict";

const TERMINAL = new Set(["succeeded", "failed", "cancelled", "skipped"]);

function setBadge(badge, state) {
  if (!badge) return;
  badge.textContent = state;
  badge.dataset.state = state;
}

function pretty(value) {
  const pre = document.createElement("pre");
  pre.className = "json";
  const code = document.createElement("code");
  code.textContent = JSON.stringify(value, null, 2);
  pre.appendChild(code);
  return pre;
}

function follow(url, handlers) {
  const source = new EventSource(url);
  for (const [name, handle] of Object.entries(handlers)) {
    source.addEventListener(name, (event) => {
      let data;
      try { data = JSON.parse(event.data); } catch (_) { data = event.data; }
      if (handle(data) === "done") source.close();
    });
  }
  window.addEventListener("pagehide", () => source.close());
  return source;
}

// The overview: the server sends the whole section again.
function liveOverview(root) {
  const source = new EventSource(root.dataset.live);
  source.addEventListener("html", (event) => { root.innerHTML = event.data; });
  window.addEventListener("pagehide", () => source.close());
}

// The task list: each row's state.
function liveTaskList(table) {
  follow(table.dataset.liveStates, {
    state: (change) => {
      const row = table.querySelector(`tr[data-task-id="${CSS.escape(change.id)}"]`);
      if (row) setBadge(row.querySelector(".state"), change.state);
    },
  });
}

// A task's page: state, progress, log, result.
function liveTask(article) {
  const badge = () => document.querySelector("#task-state .state");
  const finish = (state) => {
    setBadge(badge(), state);
    const cancel = document.getElementById("cancel");
    if (cancel && TERMINAL.has(state)) cancel.remove();
    const waiting = document.getElementById("waiting-reason");
    if (waiting && state !== "pending") waiting.hidden = true;
  };
  follow(article.dataset.events, {
    state: (record) => {
      finish(record.data.state);
      const attempt = document.getElementById("task-attempt");
      if (attempt && record.data.attempt) {
        attempt.textContent = attempt.textContent.replace(/^\d+/, String(record.data.attempt));
      }
    },
    log: (record) => {
      const log = document.getElementById("task-log");
      const line = `${record.at.slice(11, 23)} ${record.data.level.padEnd(5)} ${record.data.message}\n`;
      log.append(document.createTextNode(line));
      log.scrollTop = log.scrollHeight;
    },
    progress: (record) => {
      const bar = document.getElementById("task-progress");
      const fraction = Math.max(0, Math.min(1, record.data.fraction));
      bar.value = Math.round(fraction * 100);
      const text = document.getElementById("task-progress-text");
      text.textContent = `${Math.round(fraction * 100)} %` + (record.data.message ? ` · ${record.data.message}` : "");
    },
    result: (record) => {
      finish(record.data.state);
      const bar = document.getElementById("task-progress");
      bar.value = 100;
      document.getElementById("task-progress-text").textContent = "done";
      const target = document.getElementById("task-result");
      target.replaceChildren(pretty(record.data.result ?? record.data.error ?? { state: record.data.state }));
      const finished = document.getElementById("task-finished");
      if (finished) finished.textContent = record.at.slice(0, 19).replace("T", " ") + " UTC";
      const worker = document.getElementById("task-worker");
      if (worker && record.data.result && record.data.result.worker) worker.textContent = record.data.result.worker;
      return "done";
    },
  });
}

// A workflow's page: each stage's node and section, and the workflow's state.
function liveWorkflow(article) {
  const stage = (taskId, state) => {
    const node = document.querySelector(`g.node[data-task-id="${CSS.escape(taskId)}"]`);
    if (node) {
      node.dataset.state = state;
      const text = node.querySelector(".stage-state");
      if (text) text.textContent = state;
      const title = node.querySelector("title");
      if (title) title.textContent = `${node.dataset.stage}: ${state}`;
    }
    const section = document.querySelector(`section.stage[data-task-id="${CSS.escape(taskId)}"]`);
    if (section) setBadge(section.querySelector(".stage-badge .state"), state);
    return section;
  };
  follow(article.dataset.events, {
    state: (record) => { stage(record.taskId, record.data.state); },
    result: (record) => {
      const section = stage(record.taskId, record.data.state);
      const outcome = section && section.querySelector(".stage-outcome");
      if (outcome) {
        const heading = document.createElement("h4");
        heading.textContent = record.data.result ? "Output" : "Error";
        outcome.replaceChildren(heading, pretty(record.data.result ? record.data.result.output : record.data.error));
      }
    },
    workflow: (record) => {
      setBadge(document.querySelector("#workflow-state .state"), record.data.state);
      if (record.data.state !== "running") {
        const finished = document.getElementById("workflow-finished");
        if (finished) finished.textContent = record.at.slice(0, 19).replace("T", " ") + " UTC";
        const cancel = document.getElementById("cancel");
        if (cancel) cancel.remove();
        return "done";
      }
    },
  });
}

// The submit page: a chosen file's text goes into the editor.
function fileLoader(input) {
  input.addEventListener("change", () => {
    const file = input.files && input.files[0];
    if (!file) return;
    file.text().then((text) => { document.getElementById("document").value = text; });
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const overview = document.querySelector("[data-live]");
  if (overview) liveOverview(overview);
  const list = document.querySelector("[data-live-states]");
  if (list) liveTaskList(list);
  const task = document.querySelector("article#task[data-events]");
  // A finished task's stream replays its log, then ends with its result.
  if (task) liveTask(task);
  const workflow = document.querySelector("article#workflow[data-events]");
  if (workflow) liveWorkflow(workflow);
  const upload = document.getElementById("upload");
  if (upload) fileLoader(upload);
});
