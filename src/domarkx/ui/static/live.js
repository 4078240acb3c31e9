// A turn as it happens: the reply's text as it streams, each tool call before it
// runs (with its output live), approval when asked for, then the stored result.
import { instancePath, post, watchTurn } from "./api.js";
import { h, toast } from "./dom.js";
import { result, toolCall } from "./parts.js";

export async function startTurn(view, body) {
  const { turn } = await post(`${instancePath(view.id)}/turns`, body);
  const box = body.continue
    ? h("div", { class: "live card", id: "live-turn" }, h("div", { class: "muted" }, "answering the last message…"))
    : h("div", { class: "live card", id: "live-turn" },
      h("div", { class: "msg-head" }, h("span", { class: "role" }, "you")),
      h("div", { class: "md" }, h("p", {}, body.text)));
  view.live.replaceChildren(box);
  view.live.dataset.deltas = "0";
  let text = null;
  const calls = new Map();
  const assistant = () => {
    const card = h("div", { class: "msg role-assistant streaming" },
      h("div", { class: "msg-head" }, h("span", { class: "role" }, "assistant"), h("span", { class: "muted" }, " streaming…")));
    text = h("div", { class: "md live-text" });
    card.append(text);
    box.append(card);
    return card;
  };
  let card = null;
  const finish = async () => {
    view.sendButton.disabled = false;
    await view.refresh();
  };
  watchTurn(turn, {
    step: () => { card = assistant(); },
    text: (data) => {
      if (!card) card = assistant();
      text.append(data.delta);
      view.live.dataset.deltas = String(Number(view.live.dataset.deltas) + 1); // pieces that arrived live
      card.scrollIntoView({ block: "end" });
    },
    call: (data) => {
      if (!card) card = assistant();
      const details = toolCall(data.call);
      details.open = true;
      details.classList.add("running");
      details.querySelector(".result").replaceChildren(h("pre", { class: "live-output" }));
      calls.set(data.call.id, details);
      card.append(details);
    },
    output: (data) => {
      const running = [...calls.values()].at(-1);
      running?.querySelector(".live-output")?.append(data.text);
    },
    approval: (data) => {
      const details = calls.get(data.call.id);
      details?.classList.replace("running", "asking");
      const decide = async (decision) => {
        bar.remove();
        try {
          await post(`/api/turns/${turn}/approval`, { call: data.call.id, decision });
        } catch (error) {
          toast(error.message, "error");
        }
      };
      const bar = h("div", { class: "approval", role: "group", "aria-label": "approve this call" },
        h("span", {}, `Run ${data.call.name}?`),
        h("button", { type: "button", class: "primary", id: "approve-yes", onclick: () => decide("yes") }, "Approve"),
        h("button", { type: "button", id: "approve-no", onclick: () => decide("no") }, "Refuse"),
        h("button", { type: "button", id: "approve-always", onclick: () => decide("always") }, "Approve all in this turn"));
      (details || box).append(bar);
      bar.scrollIntoView({ block: "center" });
    },
    decided: (data) => {
      const details = calls.get(data.call);
      details?.classList.replace("asking", data.decision === "no" ? "refused" : "running");
    },
    result: (data) => {
      const details = calls.get(data.call);
      if (!details) return;
      details.classList.remove("running", "asking", "refused");
      details.querySelector(".result").replaceChildren(result(data.ok, data.text));
    },
    notice: (data) => toast(data.message),
    progress: (data) => {
      const line = box.querySelector(".progress") || box.appendChild(h("div", { class: "progress muted" }));
      line.textContent = `· ${data.message}`;
    },
    done: async (data) => {
      if (data.hit_max_steps) toast("stopped after the most model calls one turn may make; send another message to go on");
      await finish();
    },
    failed: async (data) => {
      toast(`${data.message}${data.hint ? ` (${data.hint})` : ""}`, "error");
      await finish();
      view.live.replaceChildren(h("div", { class: "error-box", id: "turn-error" }, `error: ${data.message}`,
        data.hint ? h("div", { class: "hint" }, `hint: ${data.hint}`) : null));
    },
  });
}
