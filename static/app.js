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
