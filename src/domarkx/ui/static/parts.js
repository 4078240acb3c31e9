// Pieces of a message shared by the timeline and the live turn: a tool call, a result, a code block.
import { h } from "./dom.js";

export function result(ok, text) {
  return h("div", { class: ok ? "out ok" : "out err" }, h("pre", {}, text || (ok ? "(no output)" : "(failed)")));
}

export function toolCall(c) {
  const preview = c.arguments.replace(/\s+/g, " ");
  return h("details", { class: "call", dataset: { call: c.id } },
    h("summary", {}, h("span", { class: "arrow" }, "→ "), h("span", { class: "call-name" }, c.name),
      h("span", { class: "call-args" }, `(${preview.length > 90 ? `${preview.slice(0, 89)}…` : preview})`)),
    h("div", { class: "call-body" },
      h("h4", {}, "arguments"), h("pre", { class: "args" }, c.arguments),
      h("h4", {}, "result"), h("div", { class: "result" }, h("span", { class: "muted" }, "no result recorded"))),
  );
}

export function code(block) {
  if (block.recorded_output) return h("div", { class: "out recorded" }, h("div", { class: "caption" }, "recorded output"), h("pre", {}, block.text));
  return h("figure", { class: "code" },
    h("figcaption", {}, block.lang || "code"),
    h("pre", {}, h("code", {}, block.text)),
    block.output && (block.output.text || !block.output.ok) ? result(block.output.ok, block.output.text) : null,
  );
}
