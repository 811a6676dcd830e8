// Live parts of the console: an element with data-live="URL" is refreshed every two seconds from that
// URL, which answers the element's inner HTML rendered by the server (escaped there). Paused while the
// tab is hidden. Everything else works without JavaScript.
"use strict";
(function () {
  const PERIOD_MS = 2000;
  async function refresh(element) {
    if (document.hidden) return;
    try {
      const answer = await fetch(element.dataset.live, { credentials: "same-origin", cache: "no-store" });
      if (answer.ok) element.innerHTML = await answer.text();
      else if (answer.status === 401) window.location.reload();
    } catch (error) {
      // The engine is restarting or the network dropped: the next round tries again.
    }
  }
  document.addEventListener("DOMContentLoaded", function () {
    for (const element of document.querySelectorAll("[data-live]")) {
      setInterval(function () { refresh(element); }, PERIOD_MS);
    }
  });
})();
