/* Draws the dashboards' charts from the specs the server put on the page, and wires the
   PNG and print buttons. No inline script anywhere: the Content-Security-Policy forbids it. */
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

  function drawOne(el) {
    if (el.dataset.drawn === "1") return;
    var source = document.getElementById(el.dataset.spec);
    if (!source || !source.textContent.trim()) return;
    var spec = JSON.parse(source.textContent);
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

  function drawAll() {
    if (!window.Plotly) return;
    document.querySelectorAll(".plot[data-spec]").forEach(function (el) {
      if (el.dataset.drawn !== "1" && queue.indexOf(el) < 0) queue.push(el);
    });
    schedule();
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
