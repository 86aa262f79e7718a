/* Draws the dashboards' charts and wires the PNG and print buttons. No inline script anywhere:
   the Content-Security-Policy forbids it.

   A chart's spec is either on the page (<script type="application/json" id="…">: a funnel, a
   measure's chart) or, on a unit's page, in one JSON resource the page links with its version
   (data-charts on #dashboard-body): fetched once, then kept by the browser, so a repeat visit
   downloads no spec at all. */
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  function language() {
    return (document.documentElement.lang || "en").indexOf("sv") === 0 ? "sv" : "en";
  }

  function config(el) {
    return {
      responsive: true,
      displaylogo: false,
      locale: language(),
      modeBarButtonsToRemove: ["select2d", "lasso2d", "autoScale2d"],
      toImageButtonOptions: { format: "png", filename: el.dataset.filename || "chart", scale: 2 },
    };
  }

  // Specs fetched from data-charts URLs: URL → {id → spec} (LOADING meanwhile). Kept per URL:
  // the same ids come back with other filters, and Back shows an earlier URL again.
  var LOADING = {};
  var fetched = {};

  function specFor(el) {
    var holder = el.closest("[data-charts]");
    if (holder) {
      var specs = fetched[holder.dataset.charts];
      return specs && specs !== LOADING ? specs[el.dataset.spec] || null : null;
    }
    var source = document.getElementById(el.dataset.spec);
    if (source && source.textContent.trim()) return JSON.parse(source.textContent);
    return null;
  }

  function drawOne(el) {
    if (el.dataset.drawn === "1") return;
    var spec = specFor(el);
    if (!spec) return;
    el.dataset.drawn = "1";
    window.Plotly.newPlot(el, spec.data, spec.layout, config(el));
  }

  // One chart a frame, top of the page first: forty charts drawn at once kept the browser
  // from painting anything for a second or two.
  var queue = [];
  var scheduled = false;

  function next() {
    scheduled = false;
    var el = queue.shift();
    if (el) drawOne(el);
    if (queue.length) schedule();
  }

  function schedule() {
    if (!scheduled) {
      scheduled = true;
      window.requestAnimationFrame(next);
    }
  }

  function queueReady() {
    document.querySelectorAll(".plot[data-spec]").forEach(function (el) {
      if (el.dataset.drawn !== "1" && queue.indexOf(el) < 0 && specFor(el)) queue.push(el);
    });
    if (queue.length) schedule();
  }

  function load(url) {
    if (Object.prototype.hasOwnProperty.call(fetched, url)) return;
    fetched[url] = LOADING;
    window
      .fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error(response.status + " " + url);
        return response.json();
      })
      .then(function (specs) {
        fetched[url] = specs;
        queueReady();
      })
      .catch(function (error) {
        // The page still has its figures and its table links; the next visit tries again.
        delete fetched[url];
        if (window.console) window.console.warn("charts not loaded:", error);
      });
  }

  function drawAll() {
    if (!window.Plotly) return;
    document.querySelectorAll("[data-charts]").forEach(function (el) {
      load(el.dataset.charts);
    });
    queueReady();
  }

  function drawNow() {
    if (!window.Plotly) return;
    while (queue.length) drawOne(queue.shift());
    document.querySelectorAll(".plot[data-spec]").forEach(drawOne);
  }

  document.addEventListener("DOMContentLoaded", drawAll);
  document.addEventListener("htmx:afterSettle", drawAll);

  document.addEventListener("click", function (event) {
    var png = event.target.closest("button.png");
    if (png) {
      var panel = document.getElementById(png.dataset.png);
      var plot = panel && panel.querySelector(".plot[data-spec]");
      if (plot && window.Plotly) {
        window.Plotly.downloadImage(plot, { format: "png", filename: plot.dataset.filename || "chart", scale: 2 });
      }
      return;
    }
    if (event.target.closest("button.print")) {
      window.print();
    }
  });

  // Charts take the width of the printed page, and back again after printing.
  function resize() {
    if (!window.Plotly) return;
    drawNow();
    document.querySelectorAll(".plot[data-spec]").forEach(function (el) {
      if (el.dataset.drawn === "1") window.Plotly.Plots.resize(el);
    });
  }
  window.addEventListener("beforeprint", resize);
  window.addEventListener("afterprint", resize);
})();
