// The explorer's only script (served from the package; the page allows no other):
// copy the SQL, switch the query builder's measure, and refresh the page when a table
// changes (polling /freshness.json).
"use strict";

function copySql(button) {
  const text = document.getElementById(button.dataset.target).textContent;
  const done = () => { document.getElementById("copied").textContent = "Copied."; };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, () => fallbackCopy(text, done));
  } else {
    fallbackCopy(text, done);
  }
}

function fallbackCopy(text, done) {
  const area = document.createElement("textarea");
  area.value = text;
  document.body.appendChild(area);
  area.select();
  document.execCommand("copy");
  area.remove();
  done();
}

async function refreshIfChanged() {
  const main = document.getElementById("main");
  try {
    const answer = await fetch("/freshness.json", { cache: "no-store" });
    if (!answer.ok) return;
    const fresh = await answer.json();
    if (fresh.version === main.dataset.version) return;
    const page = await fetch(location.href, { cache: "no-store" });
    if (!page.ok) return;
    const doc = new DOMParser().parseFromString(await page.text(), "text/html");
    const focused = document.activeElement && document.activeElement.id;
    main.replaceWith(doc.getElementById("main"));
    const details = document.getElementById("freshness");
    const newer = doc.getElementById("freshness");
    if (details && newer) {
      newer.open = details.open;
      details.replaceWith(newer);
    }
    const live = document.getElementById("live");
    if (live) live.textContent = " (updated as new events arrived)";
    if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
    wire();
  } catch (_) {
    // the server is away for a moment: try again at the next tick
  }
}

function wire() {
  const copy = document.getElementById("copy-sql");
  if (copy) copy.addEventListener("click", () => copySql(copy));
  const chooser = document.getElementById("measure");
  if (chooser) {
    chooser.addEventListener("change", () => {
      location.assign("/query?measure=" + encodeURIComponent(chooser.value));
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  wire();
  setInterval(refreshIfChanged, 3000);
});
