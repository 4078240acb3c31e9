// One instance as a timeline: a page of messages at a time (a 10,000-message
// instance shows its last 50 first), tool calls folded, each assistant message
// with its workspace version, the changes its calls made and the files then;
// fork, rewind, export, and a composer whose reply streams in live.
import { get, instancePath, post, url } from "./api.js";
import { ago, confirmDialog, copyButton, h, short, toast, trustedHtml } from "./dom.js";
import { showDiff, showFiles } from "./panels.js";
import { startTurn } from "./live.js";
import { code, result, toolCall } from "./parts.js";

export async function showInstance(main, ref, at, about) {
  const info = await get(instancePath(ref));
  const view = new Timeline(main, info, about);
  await view.open(at);
  performance.mark("domarkx:timeline-ready");
}

class Timeline {
  constructor(main, info, about) {
    this.main = main;
    this.info = info;
    this.id = info.id;
    this.about = about;
    this.readOnly = about.read_only;
    this.pageSize = about.page;
    this.start = 0;
    this.stop = 0;
    this.calls = new Map(); // call id -> its <details>, so a result finds its call
    this.list = h("ol", { class: "messages", id: "messages" });
    this.earlier = h("button", { type: "button", class: "more", id: "load-earlier", onclick: () => this.loadEarlier() });
    this.later = h("button", { type: "button", class: "more", id: "load-later", onclick: () => this.loadLater() });
    this.panel = h("aside", { class: "panel", id: "panel", hidden: true });
    this.live = h("div", { id: "live" });
  }

  async open(at) {
    const params = at === null ? {} : { start: Math.max(0, at - 5), stop: Math.max(0, at - 5) + this.pageSize };
    const page = await get(`${instancePath(this.id)}/messages`, params);
    this.main.replaceChildren(
      this.header(),
      h("div", { class: "split" },
        h("div", { class: "timeline" }, this.jump(), this.earlier, this.list, this.later, this.live,
          this.readOnly ? null : this.composer()),
        this.panel),
    );
    this.render(page, "replace");
    if (at !== null) document.getElementById(`m-${at}`)?.scrollIntoView({ block: "center" });
    else this.list.lastElementChild?.scrollIntoView({ block: "end" });
  }

  header() {
    const i = this.info;
    const actions = [
      h("a", { class: "button", id: "export", href: url(`${instancePath(this.id)}/export`), download: "" }, "Export Markdown"),
      h("button", { type: "button", onclick: () => showFiles(this.panel, this.id, null, "head") }, "Files at head"),
    ];
    return h("section", { class: "card instance-head" },
      h("h1", {}, i.name || short(i.id), i.title ? h("span", { class: "muted" }, ` — ${i.title}`) : null),
      h("dl", { class: "facts" },
        h("dt", {}, "instance"), h("dd", { class: "mono" }, short(i.id), " ", copyButton(i.id, "instance id")),
        h("dt", {}, "snapshot"), h("dd", {}, i.tags.map((t) => h("span", { class: "tag" }, t)),
          h("span", { class: "mono" }, ` ${short(i.snapshot_id)} `), copyButton(i.snapshot_id, "snapshot id")),
        h("dt", {}, "status"), h("dd", {}, h("span", { class: `status ${i.status}` }, i.status), ` · created ${ago(i.created)}`),
        h("dt", {}, "messages"), h("dd", { id: "total" }, String(i.messages)),
        h("dt", {}, "workspace"), h("dd", { class: "mono" }, short(i.head_version), " ", copyButton(i.head_version || "", "workspace version"),
          h("span", { class: "muted" }, ` ${i.resources.map((r) => `${r.name} (${r.type})`).join(", ")}`)),
        i.parent_id ? [h("dt", {}, "forked from"),
          h("dd", {}, h("a", { href: `#/i/${i.parent_id}/m/${i.parent_at}`, id: "parent" }, short(i.parent_id)), ` at message ${i.parent_at}`)] : null,
      ),
      h("div", { class: "actions" }, actions),
    );
  }

  jump() {
    const input = h("input", { type: "number", min: 0, id: "jump", placeholder: "#", "aria-label": "message number" });
    return h("form", {
      class: "jump",
      onsubmit: (event) => {
        event.preventDefault();
        if (input.value !== "") location.hash = `#/i/${this.id}/m/${input.value}`;
      },
    }, "Go to message ", input);
  }

  render(page, how) {
    this.info.messages = page.total;
    document.getElementById("total").textContent = String(page.total);
    const items = page.messages.map((m) => this.message(m)).filter(Boolean);
    const first = page.start;
    const last = page.start + page.messages.length;
    if (how === "replace") {
      this.calls.clear();
      this.list.replaceChildren(...items);
      [this.start, this.stop] = [first, last];
    } else if (how === "before") {
      this.list.prepend(...items);
      this.start = first;
    } else {
      this.list.append(...items);
      this.stop = last;
    }
    this.earlier.hidden = this.start === 0;
    this.earlier.textContent = `Load earlier messages (${this.start} before)`;
    if (how !== "before" && page.messages.length && last === page.total) this.lastRole = page.messages.at(-1).role;
    if (this.answerButton) this.answerButton.hidden = !(this.stop >= page.total && ["user", "tool"].includes(this.lastRole));
    this.later.hidden = this.stop >= page.total;
    this.later.textContent = `Load later messages (${page.total - this.stop} after)`;
  }

  async loadEarlier() {
    const page = await get(`${instancePath(this.id)}/messages`, { start: Math.max(0, this.start - this.pageSize), stop: this.start });
    const anchor = this.list.firstElementChild;
    this.render(page, "before");
    anchor?.scrollIntoView({ block: "start" });
  }

  async loadLater() {
    const page = await get(`${instancePath(this.id)}/messages`, { start: this.stop, stop: this.stop + this.pageSize });
    this.render(page, "after");
  }

  // After a turn: what was stored since the last message shown.
  async refresh() {
    this.info = await get(instancePath(this.id));
    const page = await get(`${instancePath(this.id)}/messages`, { start: this.stop, stop: this.info.messages });
    this.render(page, "after");
    this.live.replaceChildren();
    this.list.lastElementChild?.scrollIntoView({ block: "end" });
  }

  message(m) {
    if (m.role === "tool") {
      const call = this.calls.get(m.tool_call_id);
      if (call) {
        call.querySelector(".result").replaceChildren(result(m.tool_ok, m.text));
        call.classList.toggle("failed", !m.tool_ok);
        return null;
      }
    }
    const item = h("li", { class: `msg role-${m.role}`, id: `m-${m.index}`, dataset: { index: m.index } },
      h("div", { class: "msg-head" },
        h("span", { class: "role" }, m.role),
        h("a", { class: "idx", href: `#/i/${this.id}/m/${m.index}` }, `#${m.index}`),
        m.model ? h("span", { class: "model" }, m.model) : null,
        m.workspace_version ? h("span", { class: "version mono", title: m.workspace_version },
          `workspace ${short(m.workspace_version)}`, " ", copyButton(m.workspace_version, "workspace version")) : null,
        h("span", { class: "spacer" }),
        this.actions(m)),
      m.html ? h("div", { class: "md" }, trustedHtml(m.html)) : null,
      m.role === "tool" ? h("div", { class: "tool-standalone" }, h("span", { class: "muted" }, `result of ${m.tool_name || "a call"}`), result(m.tool_ok, m.text)) : null,
      m.code.map((block) => code(block)),
      m.tool_calls.map((call) => this.call(call)),
    );
    return item;
  }

  call(c) {
    const details = toolCall(c);
    this.calls.set(c.id, details);
    return details;
  }

  actions(m) {
    const buttons = [];
    if (m.workspace_version) {
      buttons.push(h("button", { type: "button", class: "small diff-button", onclick: () => showDiff(this.panel, this.id, m.index) }, "Changes"));
      buttons.push(h("button", { type: "button", class: "small files-button", onclick: () => showFiles(this.panel, this.id, m.index, `message ${m.index}`) }, "Files"));
    }
    buttons.push(h("a", { class: "button small", href: url(`${instancePath(this.id)}/export`, { at: m.index }), download: "", title: "export up to here" }, "Export"));
    if (!this.readOnly) {
      buttons.push(h("button", { type: "button", class: "small fork-button", onclick: () => this.fork(m.index) }, "Fork here"));
      if (m.index < this.info.messages - 1) {
        buttons.push(h("button", { type: "button", class: "small rewind-button", onclick: () => this.rewind(m.index) }, "Rewind here"));
      }
    }
    return h("span", { class: "actions" }, buttons);
  }

  async fork(at) {
    const name = await confirmDialog(`Fork at message ${at}: a new instance with messages 0..${at} and the workspace as it was then.`, { askName: true, ok: "Fork" });
    if (name === null) return;
    try {
      const made = await post(`${instancePath(this.id)}/fork`, { at, name: name || null });
      toast(`forked: ${made.name || short(made.id)}`);
      location.hash = `#/i/${made.id}`;
    } catch (error) {
      toast(`${error.message}${error.hint ? ` (${error.hint})` : ""}`, "error");
    }
  }

  async rewind(at) {
    const later = this.info.messages - 1 - at;
    const sure = await confirmDialog(`Rewind this instance to message ${at}? Its ${later} later messages and the workspace after them are kept as a hidden fork.`, { ok: "Rewind" });
    if (sure === null) return;
    try {
      const done = await post(`${instancePath(this.id)}/rewind`, { at });
      toast(`rewound to message ${at}; the old head is kept as ${short(done.kept)}`);
      await showInstance(this.main, this.id, null, this.about);
    } catch (error) {
      toast(`${error.message}${error.hint ? ` (${error.hint})` : ""}`, "error");
    }
  }

  composer() {
    const settings = this.info.settings || {};
    const text = h("textarea", { id: "message", rows: 3, placeholder: "Message the model (Ctrl+Enter sends)", "aria-label": "message" });
    const model = h("input", {
      id: "model", "aria-label": "model", autocomplete: "off",
      placeholder: settings.model ? `model (remembered: ${settings.model})` : "model (default: the session's)",
    });
    const approve = h("input", { type: "checkbox", id: "approve", checked: settings.approve === true });
    const send = h("button", { type: "submit", class: "primary", id: "send" }, "Send");
    const turn = async (body) => {
      send.disabled = true;
      // unticking a remembered "ask" says so; an untouched box leaves the instance's choice
      const ask = approve.checked ? true : settings.approve === true ? false : null;
      try {
        await startTurn(this, { ...body, model: model.value.trim() || null, approve: ask });
        return true;
      } catch (error) {
        toast(`${error.message}${error.hint ? ` (${error.hint})` : ""}`, "error");
        send.disabled = false;
        return false;
      }
    };
    this.answerButton = h("button", {
      type: "button", id: "answer", hidden: true, title: "the last message has no answer yet (domarkx continue)",
      onclick: () => turn({ continue: true }),
    }, "Answer the last message");
    const form = h("form", {
      class: "composer card",
      onsubmit: async (event) => {
        event.preventDefault();
        if (text.value.trim() && (await turn({ text: text.value }))) text.value = "";
      },
    }, text, h("div", { class: "row" }, model, h("label", { class: "check" }, approve, " ask before each tool call"),
      this.answerButton, send));
    text.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) form.requestSubmit();
    });
    this.sendButton = send;
    return form;
  }
}
