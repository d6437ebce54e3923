// The /ui page: tabs, the API key (sessionStorage, sent as a bearer header by htmx) and the
// learning dashboard (polls /ui/api/stats, plots with Chart.js from /ui/static/vendor).
(function () {
  "use strict";
  const KEY = "memento-ui-key";
  const keyInput = document.getElementById("api-key");
  const mode = document.getElementById("key-mode");
  keyInput.value = sessionStorage.getItem(KEY) || "";
  function showMode() {
    mode.textContent = keyInput.value ? "key set (the service decides what it allows)" : "read-only viewer";
  }
  keyInput.addEventListener("input", () => { sessionStorage.setItem(KEY, keyInput.value); showMode(); });
  document.getElementById("key-form").addEventListener("submit", (e) => e.preventDefault());
  showMode();

  document.body.addEventListener("htmx:configRequest", (e) => {
    if (keyInput.value) e.detail.headers["Authorization"] = "Bearer " + keyInput.value;
    const path = e.detail.path || "";
    if (path.indexOf("/__user__/") >= 0) {
      const user = document.getElementById("erase-user").value.trim();
      e.detail.path = path.replace("__user__", encodeURIComponent(user));
    }
  });
  document.body.addEventListener("htmx:sendError", (e) => {
    const target = e.detail.target;
    if (target) target.innerHTML = '<div class="error" role="alert"><strong>Service unreachable</strong> The server did not answer; is it running?</div>';
  });

  for (const tab of document.querySelectorAll("button.tab")) {
    tab.addEventListener("click", () => {
      for (const t of document.querySelectorAll("button.tab")) t.classList.toggle("active", t === tab);
      for (const p of document.querySelectorAll(".panel")) p.classList.toggle("hidden", p.id !== "tab-" + tab.dataset.tab);
      // charts built while their tab was hidden have no size: measure them again when shown
      if (tab.dataset.tab === "dashboard") for (const c of Object.values(charts)) if (c) c.resize();
    });
  }

  // --- learning dashboard ---------------------------------------------------------------
  const MAX_POINTS = 120;
  const charts = {};
  let last = null;
  function chart(id, label) {
    if (!window.Chart) return null;
    const el = document.getElementById(id);
    return new Chart(el, {
      type: "line",
      data: { labels: [], datasets: [{ label: label, data: [], borderWidth: 1.5, pointRadius: 0, tension: 0.2, spanGaps: true }] },
      options: { animation: false, responsive: true, plugins: { legend: { display: false } }, scales: { x: { ticks: { maxTicksLimit: 6 } } } },
    });
  }
  function push(c, label, value) {
    if (!c) return;
    c.data.labels.push(label);
    c.data.datasets[0].data.push(value);
    if (c.data.labels.length > MAX_POINTS) { c.data.labels.shift(); c.data.datasets[0].data.shift(); }
    c.update("none");
  }
  function text(id, value) { document.getElementById(id).textContent = value; }
  async function poll() {
    let s;
    try {
      const r = await fetch("/ui/api/stats", { cache: "no-store" });
      s = await r.json();
    } catch (err) {
      document.getElementById("dash-status").innerHTML = '<div class="error" role="alert"><strong>Service unreachable</strong> no answer from /ui/api/stats</div>';
      return;
    }
    document.getElementById("dash-status").innerHTML = s.ready ? "" :
      '<div class="error" role="alert"><strong>Service not ready</strong> ' + (s.message || "") + "</div>";
    if (s.model_version == null) return;
    text("model-version", s.model_version);
    text("model-loaded", new Date(s.loaded_at * 1000).toLocaleString());
    text("bank-size", s.bank_size);
    text("updates", s.updates);
    const run = document.getElementById("mlflow-run");
    run.textContent = s.mlflow_run ? "MLflow run " + s.mlflow_run : "MLflow run: not known";
    const t = new Date(s.ts * 1000).toLocaleTimeString();
    push(charts.reward, t, s.updates ? s.last_reward : null);
    push(charts.td, t, s.updates ? s.td_loss : null);
    push(charts.entropy, t, s.policy_entropy);
    text("entropy-note", s.policy_entropy == null ? "not exported by this core's metrics" : "");
    push(charts.greedy, t, s.greedy_top1_share);
    text("greedy-note", s.greedy_top1_share == null ? "no first choice yet" : "share " + s.greedy_top1_share.toFixed(3));
    push(charts.queue, t, s.queue_depth);
    push(charts.lag, t, s.lag_decisions);
    let ms = null;
    if (last && s.latency_count > last.latency_count) {
      ms = 1000 * (s.latency_sum - last.latency_sum) / (s.latency_count - last.latency_count);
    }
    push(charts.latency, t, ms);
    document.body.dataset.updates = s.updates;
    last = s;
  }
  charts.reward = chart("chart-reward", "reward");
  charts.td = chart("chart-td", "TD loss");
  charts.entropy = chart("chart-entropy", "entropy");
  charts.greedy = chart("chart-greedy", "greedy top-1 share");
  charts.queue = chart("chart-queue", "queue depth");
  charts.lag = chart("chart-lag", "lag (decisions)");
  charts.latency = chart("chart-latency", "latency ms");
  window.mementoCharts = charts;
  poll();
  setInterval(poll, 1000);
})();
