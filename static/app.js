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
// canary, all at once, no error budget, users disconnected) are in view when chosen.
document.addEventListener("change", (event) => {
  const custom = document.getElementById("custom-safety");
  if (custom && event.target.name === "preset" && event.target.value === "custom") {
    custom.open = true;
  }
});

// A refused form opens with its error summary focused, so that it is read out and Tab goes
// on to its links: autofocus does it in most browsers, this script where a browser left the
// focus on the page.
document.addEventListener("DOMContentLoaded", () => {
  const summary = document.querySelector(".error-summary[tabindex]");
  if (summary && (document.activeElement === document.body || !document.activeElement)) {
    summary.focus();
  }
});

// A link of the error summary goes to its field with the field's label (radios: their
// legend) in view, not the input at the very top edge with its label above it, out of view.
document.addEventListener("click", (event) => {
  const link = event.target.closest(".error-summary a[href^='#']");
  const field = link && document.getElementById(decodeURIComponent(link.hash.slice(1)));
  if (!field) return;
  event.preventDefault();
  const details = field.closest("details");
  if (details) details.open = true;
  const group = field.type === "radio" ? field.closest("fieldset") : null;
  const legend = group ? group.querySelector("legend") : null;
  const label = field.labels && field.labels.length ? field.labels[0] : null;
  (legend || label || field).scrollIntoView({ block: "start" });
  field.focus({ preventScroll: true });
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

// Switching the language reloads the page: what the person typed on it survives the switch.
// On submitting the language form, the fields of the page's other forms that differ from
// what the page was served with are kept in sessionStorage under the page's address; the
// page served after the switch puts them back into the same-named fields of the same form,
// once, and forgets them. Never kept: passwords, hidden inputs (the CSRF token among them),
// files, and controls that store their own value on the server as they change (hx-post…).
const KEPT_INPUT_PREFIX = "kept-input:";
const KEPT_INPUT_TTL_MS = 5 * 60 * 1000;
const NOT_KEPT_TYPES = new Set(["password", "hidden", "file", "submit", "button", "reset", "image"]);

function pageKey() {
  return KEPT_INPUT_PREFIX + window.location.pathname + window.location.search;
}

// The same form on the page served again: its id, else its action and its place among the
// forms with that action.
function formKey(form) {
  if (form.id) return `#${form.id}`;
  const action = form.getAttribute("action") || "";
  const same = Array.from(document.forms).filter((f) => !f.id && (f.getAttribute("action") || "") === action);
  return `${action}@${same.indexOf(form)}`;
}

function keepable(field) {
  if (!field.name || field.disabled || field.name === "csrfmiddlewaretoken") return false;
  if (!["INPUT", "TEXTAREA", "SELECT"].includes(field.tagName)) return false;
  if (field.tagName === "INPUT" && NOT_KEPT_TYPES.has(field.type)) return false;
  return !["hx-post", "hx-put", "hx-patch", "hx-delete", "hx-get"].some(
    (attribute) => field.hasAttribute(attribute) || field.hasAttribute(`data-${attribute}`),
  );
}

function changedFields(form) {
  const changed = [];
  Array.from(form.elements).forEach((field) => {
    if (!keepable(field)) return;
    if (field.type === "checkbox" || field.type === "radio") {
      if (field.checked !== field.defaultChecked) {
        changed.push({ name: field.name, value: field.value, checked: field.checked });
      }
    } else if (field.tagName === "SELECT") {
      const options = Array.from(field.options);
      if (options.some((option) => option.selected !== option.defaultSelected)) {
        changed.push({ name: field.name, selected: options.filter((o) => o.selected).map((o) => o.value) });
      }
    } else if (field.value !== field.defaultValue) {
      changed.push({ name: field.name, value: field.value });
    }
  });
  return changed;
}

function keepTypedInput(languageForm) {
  const forms = [];
  Array.from(document.forms).forEach((form) => {
    if (form === languageForm) return;
    const fields = changedFields(form);
    if (fields.length) forms.push({ form: formKey(form), fields });
  });
  try {
    if (forms.length) sessionStorage.setItem(pageKey(), JSON.stringify({ at: Date.now(), forms }));
  } catch {
    // Storage full or refused: the switch goes on, as it would without this script.
  }
}

function restoreField(form, kept) {
  const fields = Array.from(form.elements).filter((field) => field.name === kept.name && keepable(field));
  fields.forEach((field) => {
    if (field.type === "checkbox" || field.type === "radio") {
      if (field.value === kept.value && "checked" in kept) field.checked = kept.checked;
    } else if (field.tagName === "SELECT" && Array.isArray(kept.selected)) {
      Array.from(field.options).forEach((option) => {
        option.selected = kept.selected.includes(option.value);
      });
    } else if (field.tagName !== "SELECT" && typeof kept.value === "string") {
      field.value = kept.value;
    }
  });
}

function restoreTypedInput() {
  let entry;
  try {
    const stored = sessionStorage.getItem(pageKey());
    if (stored === null) return;
    sessionStorage.removeItem(pageKey());
    entry = JSON.parse(stored);
  } catch {
    return;
  }
  if (!entry || !Array.isArray(entry.forms) || Date.now() - entry.at > KEPT_INPUT_TTL_MS) return;
  const byKey = new Map(Array.from(document.forms).map((form) => [formKey(form), form]));
  entry.forms.forEach((kept) => {
    const form = byKey.get(kept.form);
    if (form && Array.isArray(kept.fields)) kept.fields.forEach((field) => restoreField(form, field));
  });
}

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!form.matches || !form.matches("form.language")) return;
  // Back to the page as it is now: htmx may have pushed a newer address (a filter) since
  // the page was served with its `next`.
  const next = form.querySelector('input[name="next"]');
  if (next) next.value = window.location.pathname + window.location.search;
  keepTypedInput(form);
});
document.addEventListener("DOMContentLoaded", restoreTypedInput);
