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
