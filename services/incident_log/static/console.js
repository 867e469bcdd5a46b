// Live updates: the server sends an event on every change; each region marked data-live reloads
// its own fragment. Without JavaScript the pages are complete, only not live.
(function () {
  const regions = document.querySelectorAll("[data-live]");
  if (!regions.length || !window.EventSource) return;
  let pending = false;
  async function refresh() {
    pending = false;
    for (const region of regions) {
      const response = await fetch(region.dataset.live, { credentials: "same-origin" });
      if (response.ok) region.innerHTML = await response.text();
    }
    const stamp = document.getElementById("live-stamp");
    if (stamp) stamp.textContent = "updated " + new Date().toLocaleTimeString();
  }
  function schedule() { if (!pending) { pending = true; setTimeout(refresh, 150); } }
  const source = new EventSource(document.body.dataset.events);
  source.addEventListener("changed", schedule);
  setInterval(schedule, 15000); // other replicas' changes, if any
})();
