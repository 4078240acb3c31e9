// The page's router: #/ is the overview, #/i/ID the timeline of one instance,
// #/i/ID/m/N the same, scrolled to message N.
import { get } from "./api.js";
import { h, toast } from "./dom.js";
import { showOverview } from "./overview.js";
import { showInstance } from "./timeline.js";

const state = { about: null };

function crumbs(...items) {
  document.getElementById("crumbs").replaceChildren(
    ...items.flatMap((item, i) => (i ? [h("span", { class: "sep" }, "/"), item] : [item])),
  );
}

async function route() {
  const main = document.getElementById("main");
  const hash = decodeURIComponent(location.hash.replace(/^#/, "")) || "/";
  const match = hash.match(/^\/i\/([^/]+)(?:\/m\/(\d+))?$/);
  try {
    if (match) {
      crumbs(h("a", { href: "#/" }, "sessions"), h("span", {}, "instance"));
      await showInstance(main, match[1], match[2] === undefined ? null : Number(match[2]), state.about);
    } else {
      crumbs(h("span", {}, "sessions"));
      await showOverview(main, state.about);
    }
  } catch (error) {
    main.replaceChildren(h("div", { class: "error-box" }, h("strong", {}, "error: "), error.message,
      error.hint ? h("div", { class: "hint" }, `hint: ${error.hint}`) : null));
    toast(error.message, "error");
  }
}

async function boot() {
  state.about = await get("/api/about");
  document.getElementById("mode").hidden = !state.about.read_only;
  window.addEventListener("hashchange", route);
  await route();
}

boot().catch((error) => {
  document.getElementById("main").replaceChildren(h("div", { class: "error-box" }, `error: ${error.message}`));
});
