// The participant page's charts, drawn by the vendored Chart.js from the page's own JSON data.
// Every chart has the same values in a table for screen readers and keyboard users.
"use strict";

(function () {
  const OUTCOME_SHAPES = { accepted: "circle", rejected: "triangle", hostile: "crossRot", escaped: "rect", skipped: "line" };
  const INK = "#1b1b1b", MUTED = "#575757", BLUE = "#0072b2", ORANGE = "#d55e00", GREEN = "#009e73";
  // Level bands: alternating greys, each labelled with its level, so they read without colour.
  const BAND_GREYS = ["rgba(0,0,0,0.04)", "rgba(0,0,0,0.10)"];

  const levelBands = {
    id: "levelBands",
    beforeDatasetsDraw(chart, _args, options) {
      const bands = options.bands || [];
      const { ctx, chartArea, scales } = chart;
      ctx.save();
      bands.forEach((band, i) => {
        const left = Math.max(chartArea.left, scales.x.getPixelForValue(band.from - 0.5));
        const right = Math.min(chartArea.right, scales.x.getPixelForValue(band.to + 0.5));
        if (right <= left) return;
        ctx.fillStyle = BAND_GREYS[i % 2];
        ctx.fillRect(left, chartArea.top, right - left, chartArea.bottom - chartArea.top);
        ctx.fillStyle = MUTED;
        ctx.font = "12px system-ui, sans-serif";
        ctx.fillText("L" + band.level, left + 4, chartArea.top + 14);
      });
      ctx.restore();
    },
  };

  function xAxis() {
    return { type: "linear", title: { display: true, text: "attempt" }, ticks: { precision: 0 } };
  }

  function draw() {
    const source = document.getElementById("chart-data");
    if (!source || typeof Chart === "undefined") return;
    const data = JSON.parse(source.textContent);
    const attempts = data.attempts;
    Chart.defaults.font.family = "system-ui, 'Liberation Sans', Arial, sans-serif";
    Chart.defaults.color = INK;
    Chart.defaults.animation = false;

    new Chart(document.getElementById("suds-chart"), {
      type: "line",
      data: {
        datasets: [
          {
            label: "peak",
            data: attempts.map((a) => ({ x: a.number, y: a.peak, outcome: a.outcome, time: a.time })),
            borderColor: ORANGE, backgroundColor: ORANGE, borderWidth: 2,
            pointStyle: attempts.map((a) => OUTCOME_SHAPES[a.outcome] || "circle"), pointRadius: 6,
          },
          {
            label: "before", showLine: false,
            data: attempts.map((a) => ({ x: a.number, y: a.before, outcome: a.outcome, time: a.time })),
            borderColor: BLUE, backgroundColor: BLUE, pointStyle: "rectRot", pointRadius: 3,
          },
          {
            label: "after", showLine: false,
            data: attempts.map((a) => ({ x: a.number, y: a.after, outcome: a.outcome, time: a.time })),
            borderColor: GREEN, backgroundColor: "#ffffff", pointStyle: "circle", pointRadius: 3,
          },
        ],
      },
      options: {
        maintainAspectRatio: false, parsing: true,
        scales: { x: xAxis(), y: { min: 0, max: 100, title: { display: true, text: "SUDS (0-100)" } } },
        plugins: {
          levelBands: { bands: data.bands },
          tooltip: {
            callbacks: {
              label: (item) => `${item.dataset.label} ${item.parsed.y} (${item.raw.outcome}, ${item.raw.time.slice(0, 16).replace("T", " ")})`,
            },
          },
        },
      },
      plugins: [levelBands],
    });

    new Chart(document.getElementById("level-chart"), {
      type: "line",
      data: {
        datasets: [{
          label: "ladder level", stepped: true, borderColor: INK, backgroundColor: INK, pointRadius: 2,
          data: data.levels.map((p) => ({ x: p.position, y: p.level })),
        }],
      },
      options: {
        maintainAspectRatio: false,
        scales: { x: xAxis(), y: { min: 1, max: 10, ticks: { stepSize: 1 }, title: { display: true, text: "level" } } },
      },
    });

    const predicted = attempts.filter((a) => a.predicted !== null && a.predicted !== undefined);
    const cameTrue = attempts.filter((a) => a.came_true !== null && a.came_true !== undefined);
    new Chart(document.getElementById("expectancy-chart"), {
      type: "line",
      data: {
        datasets: [
          { label: "predicted peak", showLine: false, pointStyle: "triangle", pointRadius: 5, borderColor: BLUE, backgroundColor: BLUE,
            data: predicted.map((a) => ({ x: a.number, y: a.predicted })) },
          { label: "actual peak", showLine: false, pointStyle: "circle", pointRadius: 4, borderColor: ORANGE, backgroundColor: ORANGE,
            data: predicted.map((a) => ({ x: a.number, y: a.peak })) },
          { label: "prediction came true", showLine: false, pointStyle: "rect", pointRadius: 4, borderColor: GREEN, backgroundColor: "#ffffff",
            data: cameTrue.map((a) => ({ x: a.number, y: a.came_true })) },
          { label: "expectancy (last 5)", borderDash: [6, 4], borderColor: INK, backgroundColor: INK, pointRadius: 0,
            data: data.levels.filter((p) => p.expectancy !== null).map((p) => ({ x: p.position, y: p.expectancy })) },
        ],
      },
      options: {
        maintainAspectRatio: false,
        scales: { x: xAxis(), y: { min: 0, max: 100, title: { display: true, text: "0-100" } } },
      },
    });
  }

  // A form that changes something is sent once: its button is disabled after the first press.
  function sendOnce() {
    document.querySelectorAll("form.review").forEach((form) => {
      form.addEventListener("submit", () => {
        form.querySelectorAll("button").forEach((b) => { b.disabled = true; });
      });
    });
  }

  document.addEventListener("DOMContentLoaded", () => { draw(); sendOnce(); });
})();
