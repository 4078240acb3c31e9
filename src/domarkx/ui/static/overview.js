// Snapshots and instances: search, tags, names, and the fork tree as a graph.
import { get } from "./api.js";
import { ago, copyButton, h, short, svg } from "./dom.js";

const ROW = 30;
const INDENT = 26;

export async function showOverview(main, about) {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const hidden = params.get("hidden") === "1";
  const data = await get("/api/overview", { hidden: hidden ? 1 : null });
  const search = h("input", {
    type: "search", id: "search", placeholder: "search names, ids, tags, titles…",
    "aria-label": "search", autocomplete: "off",
  });
  const showHidden = h("input", { type: "checkbox", id: "show-hidden", checked: hidden });
  const tree = h("div", { class: "tree", id: "fork-tree" });
  const instances = h("tbody");
  const snapshots = h("tbody");
  const redraw = () => {
    const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    const shown = data.instances.filter((i) => matches(words, [i.id, i.name, i.title, i.snapshot_id, ...i.tags]));
    const snaps = data.snapshots.filter((s) => matches(words, [s.id, s.title, s.source, ...s.tags]));
    tree.replaceChildren(forkTree(shown, data.instances));
    instances.replaceChildren(...shown.map((i) => instanceRow(i, data.instances)));
    snapshots.replaceChildren(...snaps.map((s) => snapshotRow(s, data.instances, search, redraw)));
  };
  search.addEventListener("input", redraw);
  showHidden.addEventListener("change", () => {
    location.hash = showHidden.checked ? "#/?hidden=1" : "#/";
  });
  main.replaceChildren(
    h("div", { class: "toolbar" }, search,
      h("label", { class: "check" }, showHidden, " show the old heads that rewinds kept")),
    h("section", { class: "card" }, h("h2", {}, "Fork tree"),
      h("p", { class: "muted" }, "Each instance under the one it was forked from, at the message shown."), tree),
    h("section", { class: "card" }, h("h2", {}, `Instances (${data.instances.length})`),
      h("table", { class: "list", id: "instances" },
        h("thead", {}, h("tr", {}, ["name", "id", "snapshot", "status", "messages", "forked from", "created"].map((c) => h("th", {}, c)))),
        instances)),
    h("section", { class: "card" }, h("h2", {}, `Snapshots (${data.snapshots.length})`),
      h("table", { class: "list", id: "snapshots" },
        h("thead", {}, h("tr", {}, ["tags", "title", "id", "messages", "instances", "created"].map((c) => h("th", {}, c)))),
        snapshots)),
  );
  redraw();
  search.focus();
  performance.mark("domarkx:overview-ready");
}

function matches(words, fields) {
  const text = fields.filter(Boolean).join(" ").toLowerCase();
  return words.every((word) => text.includes(word));
}

const label = (i) => i.name || short(i.id);

function instanceRow(instance, all) {
  const parent = all.find((p) => p.id === instance.parent_id);
  return h("tr", { class: instance.hidden ? "hidden-row" : null },
    h("td", {}, h("a", { href: `#/i/${instance.id}` }, label(instance))),
    h("td", { class: "mono" }, short(instance.id), " ", copyButton(instance.id, "instance id")),
    h("td", {}, instance.tags.length ? instance.tags.map((t) => h("span", { class: "tag" }, t)) : h("span", { class: "mono" }, short(instance.snapshot_id)),
      instance.title ? h("span", { class: "muted" }, ` ${instance.title}`) : null),
    h("td", {}, h("span", { class: `status ${instance.status}` }, instance.status)),
    h("td", { class: "num" }, String(instance.messages)),
    h("td", {}, instance.parent_id
      ? [h("a", { href: `#/i/${instance.parent_id}/m/${instance.parent_at}` }, parent ? label(parent) : short(instance.parent_id)), ` @${instance.parent_at}`]
      : "—"),
    h("td", { class: "muted" }, ago(instance.created)),
  );
}

function snapshotRow(snapshot, all, search, redraw) {
  const count = all.filter((i) => i.snapshot_id === snapshot.id).length;
  return h("tr", {},
    h("td", {}, snapshot.tags.map((t) => h("span", { class: "tag" }, t))),
    h("td", {}, snapshot.title || snapshot.source || "—"),
    h("td", { class: "mono" }, short(snapshot.id), " ", copyButton(snapshot.id, "snapshot id")),
    h("td", { class: "num" }, String(snapshot.messages)),
    h("td", { class: "num" }, count
      ? h("button", { type: "button", class: "link", onclick: () => { search.value = snapshot.id; redraw(); } }, `${count} ▸`)
      : "0"),
    h("td", { class: "muted" }, ago(snapshot.created)),
  );
}

// The forest of forks, drawn like `git log --graph` turned sideways: one row per
// instance, indented under its parent, an elbow from the parent labelled @N.
function forkTree(shown, all) {
  if (!shown.length) return h("p", { class: "muted" }, "No instances yet: `domarkx run DOC` makes one.");
  const ids = new Set(shown.map((i) => i.id));
  const children = new Map();
  for (const instance of shown) {
    const parent = ids.has(instance.parent_id) ? instance.parent_id : null;
    if (!children.has(parent)) children.set(parent, []);
    children.get(parent).push(instance);
  }
  const rows = [];
  const walk = (parent, depth) => {
    const kids = (children.get(parent) || []).sort((a, b) => a.created - b.created);
    for (const kid of kids) {
      rows.push({ instance: kid, depth, parentRow: parent === null ? -1 : rows.findIndex((r) => r.instance.id === parent) });
      walk(kid.id, depth + 1);
    }
  };
  walk(null, 0);
  const width = 760;
  const graph = svg("svg", { width, height: rows.length * ROW + 8, class: "graph", role: "img", "aria-label": "fork tree" });
  rows.forEach((row, index) => {
    const x = 12 + row.depth * INDENT;
    const y = 16 + index * ROW;
    if (row.parentRow >= 0) {
      const px = 12 + rows[row.parentRow].depth * INDENT;
      const py = 16 + row.parentRow * ROW;
      graph.append(svg("path", { d: `M${px} ${py + 6} V${y} H${x - 6}`, class: "edge" }));
      graph.append(svg("text", { x: px + 4, y: y - 4, class: "at" }, `@${row.instance.parent_at}`));
    }
    const link = svg("a", { href: `#/i/${row.instance.id}`, class: "node", "data-id": row.instance.id });
    link.append(
      svg("circle", { cx: x, cy: y, r: 6, class: `dot ${row.instance.status}${row.instance.hidden ? " hidden" : ""}` }),
      svg("text", { x: x + 12, y: y + 4, class: "name" }, label(row.instance)),
      svg("text", { x: x + 12 + 8 * label(row.instance).length + 10, y: y + 4, class: "meta" },
        `${row.instance.messages} messages · ${row.instance.tags[0] || short(row.instance.snapshot_id)}${row.instance.hidden ? " · kept by a rewind" : ""}`),
    );
    graph.append(link);
  });
  return graph;
}
