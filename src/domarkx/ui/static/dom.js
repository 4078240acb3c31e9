// Building the page without ever parsing text as HTML: every string from the
// store goes in through textContent. The one exception, trustedHtml(), takes
// the Markdown the server rendered and sanitised (domarkx/ui/markdown.py).

export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export function svg(tag, attrs, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, String(value));
  append(el, children);
  return el;
}

// HTML the server made safe (Markdown with raw HTML off, links and images checked).
export function trustedHtml(html) {
  const template = document.createElement("template");
  template.innerHTML = html;
  return template.content;
}

export function short(id) {
  return id ? id.replace(/^sha256:/, "").slice(0, 12) : "";
}

export function ago(seconds) {
  const delta = Math.max(0, Date.now() / 1000 - seconds);
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["min", 60]]) {
    if (delta >= size) return `${Math.floor(delta / size)} ${unit} ago`;
  }
  return "just now";
}

let toastTimer = 0;
export function toast(message, kind = "info") {
  const box = document.getElementById("toast");
  box.replaceChildren(h("div", { class: `toast ${kind}` }, message));
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => box.replaceChildren(), kind === "error" ? 8000 : 4000);
}

export function copyButton(text, what) {
  return h("button", {
    class: "copy", type: "button", title: `copy ${what}`, "aria-label": `copy ${what}`,
    onclick: async (event) => {
      event.stopPropagation();
      try {
        await navigator.clipboard.writeText(text);
        toast(`copied ${what}`);
      } catch {
        toast(`${what}: ${text}`);
      }
    },
  }, "copy");
}

// A modal question; resolves to null (cancelled) or the name typed (maybe "").
export function confirmDialog(text, { askName = false, ok = "OK" } = {}) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-name-row").hidden = !askName;
  const input = document.getElementById("confirm-name");
  input.value = "";
  document.getElementById("confirm-ok").textContent = ok;
  dialog.returnValue = "";
  dialog.showModal();
  if (askName) input.focus();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok" ? input.value.trim() : null), { once: true });
  });
}
