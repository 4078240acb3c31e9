// The side panel: what a message's tool calls changed, and the files of the
// workspace at a message (through the plugins' read-a-version methods).
import { get, instancePath, url } from "./api.js";
import { h, short } from "./dom.js";

function open(panel, title, ...body) {
  panel.hidden = false;
  panel.replaceChildren(
    h("div", { class: "panel-head" }, h("h2", {}, title),
      h("button", { type: "button", class: "small", "aria-label": "close", onclick: () => { panel.hidden = true; } }, "×")),
    ...body.filter((part) => part !== null),
  );
}

function failure(panel, title, error) {
  open(panel, title, h("div", { class: "error-box" }, error.message, error.hint ? h("div", { class: "hint" }, `hint: ${error.hint}`) : null));
}

export async function showDiff(panel, id, at) {
  const title = `Changes at message ${at}`;
  open(panel, title, h("p", { class: "muted" }, "Comparing…"));
  let data;
  try {
    data = await get(`${instancePath(id)}/diff`, { at });
  } catch (error) {
    failure(panel, title, error);
    return;
  }
  const body = [h("p", { class: "muted mono" }, `${short(data.old)} → ${short(data.new)}`)];
  for (const resource of data.resources) {
    body.push(h("h3", {}, `${resource.name} `, h("span", { class: "muted" }, `(${resource.type})`)));
    if (!resource.changes.length && !resource.notes.length) body.push(h("p", { class: "muted" }, "no change"));
    for (const note of resource.notes) body.push(h("p", { class: "note" }, note));
    for (const change of resource.changes) body.push(changeView(change));
  }
  open(panel, title, h("div", { class: "diff", id: "diff" }, body));
}

function changeView(change) {
  let stat = "";
  if (change.binary) stat = " · binary";
  else if (change.kind === "file" || change.added || change.removed) stat = ` · +${change.added} −${change.removed}`;
  return h("details", { class: `change ${change.status}`, open: true },
    h("summary", {}, h("span", { class: `badge ${change.status}` }, change.status), " ",
      h("span", { class: "mono" }, change.name), " ", h("span", { class: "muted" }, `${change.kind}${stat}`)),
    change.detail ? patch(change.detail) : null);
}

function patch(text) {
  const lines = text.replace(/\n$/, "").split("\n").map((line) => {
    let kind = "";
    if (line.startsWith("+++") || line.startsWith("---")) kind = "file";
    else if (line.startsWith("+")) kind = "add";
    else if (line.startsWith("-")) kind = "del";
    else if (line.startsWith("@@")) kind = "hunk";
    return h("span", { class: `line ${kind}` }, `${line}\n`);
  });
  return h("pre", { class: "patch" }, lines);
}

export async function showFiles(panel, id, at, where, resource = null, path = "") {
  const title = `Files at ${where}`;
  let data;
  try {
    data = await get(`${instancePath(id)}/files`, { at, resource, path });
  } catch (error) {
    failure(panel, title, error);
    return;
  }
  const go = (next, nextResource = data.resource) => showFiles(panel, id, at, where, nextResource, next);
  const parts = path ? path.split("/") : [];
  const crumbs = [h("button", { type: "button", class: "link", onclick: () => go("") }, data.resource)];
  parts.forEach((part, i) => crumbs.push(" / ", h("button", { type: "button", class: "link", onclick: () => go(parts.slice(0, i + 1).join("/")) }, part)));
  const picker = data.resources && data.resources.length > 1
    ? h("select", { "aria-label": "resource", onchange: (event) => go("", event.target.value) },
      data.resources.map((name) => h("option", { value: name, selected: name === data.resource }, name)))
    : null;
  const viewer = h("div", { class: "viewer", id: "viewer" });
  const rows = data.entries.map((entry) => {
    const full = path ? `${path}/${entry.name}` : entry.name;
    let name;
    if (entry.kind === "dir") name = h("button", { type: "button", class: "link dir" }, `${entry.name}/`);
    else if (entry.kind === "file") name = h("button", { type: "button", class: "link file" }, entry.name);
    else name = h("span", {}, entry.name);
    if (entry.kind === "dir") name.addEventListener("click", () => go(full));
    if (entry.kind === "file") name.addEventListener("click", () => showFile(viewer, id, at, data.resource, full));
    return h("tr", {},
      h("td", {}, name, entry.kind === "link" ? h("span", { class: "muted" }, ` → ${entry.target}`) : null),
      h("td", { class: "num muted" }, entry.kind === "file" ? `${entry.size} B` : entry.kind),
    );
  });
  open(panel, title,
    h("p", { class: "muted mono" }, `workspace ${short(data.version)}`),
    h("div", { class: "files-nav" }, picker, h("span", { class: "crumbs" }, crumbs)),
    data.note ? h("p", { class: "note" }, data.note) : null,
    h("table", { class: "files", id: "files" }, h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { class: "muted" }, "(empty)")))),
    viewer);
}

async function showFile(viewer, id, at, resource, path) {
  let data;
  try {
    data = await get(`${instancePath(id)}/file`, { at, resource, path });
  } catch (error) {
    viewer.replaceChildren(h("div", { class: "error-box" }, error.message));
    return;
  }
  const download = h("a", { class: "button small", href: url(`${instancePath(id)}/raw`, { at, resource, path }), download: "" }, "Download");
  viewer.replaceChildren(
    h("div", { class: "viewer-head" }, h("span", { class: "mono" }, path), h("span", { class: "muted" }, ` ${data.size} bytes `), download),
    data.text === null ? h("p", { class: "muted" }, "binary or too large to show") : h("pre", { class: "file-text" }, data.text),
  );
}
