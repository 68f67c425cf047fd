// Progressive enhancement only: every page works without this file.
document.addEventListener("change", (event) => {
  const toggle = event.target.closest("[data-toggle-all]");
  if (!toggle) return;
  const form = toggle.closest("form");
  form.querySelectorAll(`input[type=checkbox][name="${toggle.dataset.toggleAll}"]`).forEach((box) => {
    box.checked = toggle.checked;
  });
});

// Progress bars get their widths from data attributes (no inline styles under our CSP).
function sizeBars(root) {
  root.querySelectorAll("[data-share]").forEach((bar) => {
    bar.style.width = `${bar.dataset.share}%`;
  });
}
document.addEventListener("DOMContentLoaded", () => sizeBars(document));
document.addEventListener("htmx:afterSettle", () => sizeBars(document));

// On narrow screens the navigation folds behind a menu button (CSS shows the button only
// once this has run, so without JavaScript the links simply wrap and stay reachable).
document.addEventListener("DOMContentLoaded", () => {
  const toggle = document.querySelector(".menu-toggle");
  if (!toggle) return;
  const bar = toggle.closest(".topbar");
  const setOpen = (open) => {
    toggle.setAttribute("aria-expanded", String(open));
    bar.classList.toggle("menu-open", open);
  };
  bar.classList.add("has-menu");
  toggle.addEventListener("click", () => setOpen(toggle.getAttribute("aria-expanded") !== "true"));
  bar.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && bar.classList.contains("menu-open")) {
      setOpen(false);
      toggle.focus();
    }
  });
});

// Choosing "Custom" on the plan form opens the settings it uses, so their defaults (no
// canary, all at once, no error budget) are in view when chosen.
document.addEventListener("change", (event) => {
  const custom = document.getElementById("custom-safety");
  if (custom && event.target.name === "preset" && event.target.value === "custom") {
    custom.open = true;
  }
});

// A table that scrolls sideways in its own box must be reachable by keyboard: tables
// without a .table-scroll wrapper (which is focusable already) get a tab stop when they
// overflow.
function focusableOverflow() {
  document.querySelectorAll("main table").forEach((table) => {
    if (table.closest(".table-scroll")) return;
    if (table.scrollWidth > table.clientWidth) table.tabIndex = 0;
    else table.removeAttribute("tabindex");
  });
}
document.addEventListener("DOMContentLoaded", focusableOverflow);
window.addEventListener("resize", focusableOverflow);

// Polled or swapped text is spoken once, when it changes: a hidden polite region
// (data-announce="#source") repeats the source's words, not its buttons, so a badge that
// polls every few seconds is not read out at every poll.
function spokenText(selector) {
  const source = document.querySelector(selector);
  if (!source) return "";
  const copy = source.cloneNode(true);
  copy.querySelectorAll("form, button").forEach((node) => node.remove());
  return copy.textContent.replace(/\s+/g, " ").trim();
}
function announceChanges(initial) {
  document.querySelectorAll("[data-announce]").forEach((region) => {
    const text = spokenText(region.dataset.announce);
    if (!initial && text !== region.dataset.spoken) region.textContent = text;
    region.dataset.spoken = text;
  });
}
document.addEventListener("DOMContentLoaded", () => announceChanges(true));
document.addEventListener("htmx:afterSettle", () => announceChanges(false));

// The selection lives on the server. After "select all N matching" or "clear" the bar says
// whether every row shown is selected or none is (data-page-ticks), and the ticks follow at
// once; after a single tick the bar says nothing and the box already shows the truth.
// The box that ticks the whole page is ticked only while every row shown is.
function followSelectionBar() {
  const bar = document.getElementById("selection-bar");
  const ticks = bar ? bar.dataset.pageTicks : "";
  const rows = document.querySelectorAll('#server-results input[type=checkbox][name="server"]');
  if (ticks === "all" || ticks === "none") {
    rows.forEach((box) => {
      box.checked = ticks === "all";
    });
  }
  const whole = document.querySelector("#server-results [data-toggle-all]");
  if (whole) whole.checked = rows.length > 0 && Array.from(rows).every((box) => box.checked);
}
document.addEventListener("htmx:afterSettle", followSelectionBar);

// A page restored from the back/forward cache shows the selection as it was when left;
// regions marked data-fresh-on-return are asked for again (htmx's own history restore asks
// the server: the servers page keeps no snapshot, hx-history="false").
window.addEventListener("pageshow", (event) => {
  if (!event.persisted || !window.htmx) return;
  document.querySelectorAll("[data-fresh-on-return][id]").forEach((region) => {
    const target = `#${region.id}`;
    window.htmx.ajax("GET", window.location.href, { target, select: target, swap: "outerHTML" });
  });
});

// A control for browsers without scripts, where the selection bar does the same with them
// (the servers page's "Plan rollout for selected" beside the bar's "Plan rollout for N
// selected"): hidden once this script runs, so the page offers one way, not two.
function hideWithoutScriptControls() {
  document.querySelectorAll("[data-without-script]").forEach((control) => {
    control.hidden = true;
  });
}
document.addEventListener("DOMContentLoaded", hideWithoutScriptControls);
document.addEventListener("htmx:afterSettle", hideWithoutScriptControls);
