(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("lb-data").textContent);
  // Okabe-Ito colour-blind-safe palette, with dash patterns once colours repeat.
  var PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"];
  var DASHES = ["", "6 3", "2 2", "8 3 2 3"];
  var TEXT_KEYS = { detector: 1, dataset: 1, split: 1 };
  var state = { dataset: "", morph: "", text: "", sortKey: "rank", sortDir: 1, open: {} };

  var detectorNames = [];
  DATA.entries.forEach(function (it) {
    if (detectorNames.indexOf(it.row.detector) < 0) detectorNames.push(it.row.detector);
  });
  detectorNames.sort();
  function styleFor(name) {
    var i = detectorNames.indexOf(name);
    // colours 5-8 of the palette resemble 1-2 (orange/vermillion, sky blue/blue) under colour-vision
    // deficiencies, so they are dashed; past 8 detectors the dash patterns cycle
    var dash = DASHES[Math.floor(i / PALETTE.length) % DASHES.length] || ((i % PALETTE.length) >= 4 ? "6 3" : "");
    return { colour: PALETTE[i % PALETTE.length], dash: dash };
  }

  function el(tag, attrs, text) {
    var ns = /^(svg|path|line|text|rect|g|polygon|polyline|title)$/.test(tag) ? "http://www.w3.org/2000/svg" : null;
    var e = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
    if (attrs) Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }

  var nSplits = {}, nDatasets = {};
  DATA.entries.forEach(function (it) { nSplits[it.row.split] = 1; nDatasets[it.row.dataset] = 1; });
  function shown(c) {  // columns that would repeat one value on every visible row are left out
    if (c.key === "split") return Object.keys(nSplits).length > 1;
    if (c.key === "dataset") return !state.dataset && Object.keys(nDatasets).length > 1;
    return true;
  }
  function columns() {
    var base = DATA.columns.filter(shown);
    if (!state.morph) return base;
    var keep = base.filter(function (c) { return ["rank", "detector", "dataset", "split"].indexOf(c.key) >= 0; });
    return keep.concat(DATA.morph_columns);
  }

  function value(it, key) {
    if (state.morph && !(key in TEXT_KEYS) && key !== "rank") {
      var m = it.morphology[state.morph];
      return m ? m[key] : null;
    }
    return it.row[key];
  }
  function ci(it, key) {
    var src = (state.morph && key !== "rank" && !(key in TEXT_KEYS)) ? (it.morphology[state.morph] || {}) : it.row;
    var lo = src[key + "_lo"], hi = src[key + "_hi"];
    return (typeof lo === "number" && typeof hi === "number") ? [lo, hi] : null;
  }

  function fmt(v, digits) {
    if (v === null || v === undefined || (typeof v === "number" && !isFinite(v))) return "\u2013";
    if (digits === null || digits === undefined || typeof v !== "number") return String(v);
    if (v !== 0 && Math.abs(v) < Math.pow(10, -digits)) return v.toPrecision(2);
    return v.toFixed(digits);
  }

  function visibleItems() {
    var text = state.text.toLowerCase();
    return DATA.entries.filter(function (it) {
      if (state.dataset && it.row.dataset !== state.dataset) return false;
      if (state.morph && !it.morphology[state.morph]) return false;
      if (text && it.row.detector.toLowerCase().indexOf(text) < 0) return false;
      return true;
    });
  }

  function compare(a, b) {
    var key = state.sortKey, dir = state.sortDir;
    var va = value(a, key), vb = value(b, key);
    var na = va === null || va === undefined, nb = vb === null || vb === undefined;
    if (na !== nb) return na ? 1 : -1;  // missing values last in either direction
    var c = 0;
    if (key === "rank") {  // ranks only compare within a table: group by dataset and split first
      c = String(a.row.dataset).localeCompare(String(b.row.dataset)) ||
        String(a.row.split).localeCompare(String(b.row.split));
      if (c !== 0) return c;
    }
    if (!na) {
      if (typeof va === "number" && typeof vb === "number") c = va - vb;
      else c = String(va).localeCompare(String(vb));
    }
    if (c !== 0) return dir * c;
    // stable tie-break: dataset, split, rank
    return String(a.row.dataset).localeCompare(String(b.row.dataset)) ||
      String(a.row.split).localeCompare(String(b.row.split)) || (a.row.rank - b.row.rank);
  }

  function renderHead() {
    var tr = document.querySelector("#lb-table thead tr");
    tr.textContent = "";
    columns().forEach(function (c) {
      var numeric = c.digits !== null || c.key === "rank" || c.key === "n_images" || c.key === "n_crs";
      var th = el("th", { "data-key": c.key, "class": numeric ? "num" : "", scope: "col" });
      var active = state.sortKey === c.key;
      th.setAttribute("aria-sort", active ? (state.sortDir > 0 ? "ascending" : "descending") : "none");
      var b = el("button", { type: "button", title: "sort by " + c.label });
      // keep numbers such as 5e-4 on one line when headers wrap
      b.appendChild(el("span", null, c.label.replace(/(\d)e-(\d)/g, "$1e\u2011$2")));
      b.appendChild(el("span", { "class": "arrow" }, active ? (state.sortDir > 0 ? "\u25B2" : "\u25BC") : ""));
      b.addEventListener("click", function () {
        if (state.sortKey === c.key) state.sortDir = -state.sortDir;
        else {
          state.sortKey = c.key;
          // best first: higher is better for scores, lower for rank, time and text
          var lower = (DATA.lower_better || []).indexOf(c.key) >= 0;
          state.sortDir = (c.key in TEXT_KEYS || c.key === "rank" || lower) ? 1 : -1;
        }
        render();
      });
      th.appendChild(b);
      tr.appendChild(th);
    });
    tr.appendChild(el("th", { scope: "col" }, "Provenance"));
  }

  function renderBody(items) {
    var tbody = document.querySelector("#lb-table tbody");
    tbody.textContent = "";
    var cols = columns();
    items.forEach(function (it) {
      var tr = el("tr", { "class": "lb-row", "data-id": String(it.row.id), "data-detector": it.row.detector,
                          "data-dataset": it.row.dataset });
      cols.forEach(function (c) {
        var numeric = c.digits !== null || c.key === "rank" || c.key === "n_images" || c.key === "n_crs";
        var td = el("td", { "data-key": c.key, "class": (numeric ? "num " : "") + (c.key === "detector" ? "detector" : "") });
        var v = value(it, c.key);
        if (c.key === "detector") {
          var st = styleFor(it.row.detector);
          td.appendChild(el("span", { "class": "swatch", style: "background:" + st.colour }));
        }
        td.appendChild(el("span", { "class": "v" }, fmt(v, c.digits)));
        var iv = c.digits !== null ? ci(it, c.key) : null;
        if (iv) td.appendChild(el("span", { "class": "ci" }, "[" + fmt(iv[0], c.digits) + ", " + fmt(iv[1], c.digits) + "]"));
        if (typeof v === "number") td.setAttribute("data-value", String(v));
        tr.appendChild(td);
      });
      var td = el("td");
      var open = !!state.open[it.row.id];
      var b = el("button", { type: "button", "class": "prov-toggle", "aria-expanded": String(open) }, open ? "hide" : "show");
      b.addEventListener("click", function () { state.open[it.row.id] = !state.open[it.row.id]; render(); });
      td.appendChild(b);
      tr.appendChild(td);
      tbody.appendChild(tr);
      if (open) {
        var pr = el("tr", { "class": "prov-row", "data-id": String(it.row.id) });
        var pc = el("td", { colspan: String(cols.length + 1) });
        pc.appendChild(el("pre", null, JSON.stringify(it.provenance, null, 2)));
        pr.appendChild(pc);
        tbody.appendChild(pr);
      }
    });
    document.getElementById("empty-note").hidden = items.length > 0;
    document.getElementById("row-count").textContent = items.length + " of " + DATA.entries.length + " entries shown";
  }

  // ------------------------------------------------------------------------------------ plots
  var W = 520, H = 380, M = { l: 62, r: 14, t: 14, b: 50 };

  function drawPlot(svg, items, kind) {
    svg.textContent = "";
    var pw = W - M.l - M.r, ph = H - M.t - M.b;
    var xlog = kind === "roc";
    var xmin = 0, xmax = 1;
    if (xlog) {
      var minPos = 1;
      items.forEach(function (it) { (it.curve.fpr || []).forEach(function (f) { if (f > 0 && f < minPos) minPos = f; }); });
      xmin = Math.max(-7, Math.floor(Math.log10(minPos))); xmax = 0;
    }
    function X(v) {
      var t = xlog ? (Math.log10(Math.max(v, Math.pow(10, xmin))) - xmin) / (xmax - xmin) : (v - xmin) / (xmax - xmin);
      return M.l + t * pw;
    }
    function Y(v) { return M.t + (1.02 - v) / 1.02 * ph; }  // headroom so curves at 1 clear the frame
    // grid and ticks
    var xt = [];
    if (xlog) { for (var e = xmin; e <= xmax; e++) xt.push(Math.pow(10, e)); } else { xt = [0, 0.2, 0.4, 0.6, 0.8, 1]; }
    xt.forEach(function (v) {
      svg.appendChild(el("line", { "class": "grid", x1: X(v), x2: X(v), y1: M.t, y2: M.t + ph }));
      var label = xlog ? "1e" + Math.round(Math.log10(v)) : v.toFixed(1);
      if (xlog && Math.round(Math.log10(v)) === 0) label = "1";
      svg.appendChild(el("text", { x: X(v), y: M.t + ph + 18, "text-anchor": "middle" }, label));
    });
    [0, 0.2, 0.4, 0.6, 0.8, 1].forEach(function (v) {
      svg.appendChild(el("line", { "class": "grid", x1: M.l, x2: M.l + pw, y1: Y(v), y2: Y(v) }));
      svg.appendChild(el("text", { x: M.l - 8, y: Y(v) + 4, "text-anchor": "end" }, v.toFixed(1)));
    });
    svg.appendChild(el("rect", { "class": "axis", x: M.l, y: M.t, width: pw, height: ph }));
    svg.appendChild(el("text", { x: M.l + pw / 2, y: H - 10, "text-anchor": "middle" },
      xlog ? "False positive rate (pixels, log scale)" : "Recall (pixels)"));
    svg.appendChild(el("text", { x: 16, y: M.t + ph / 2, "text-anchor": "middle",
      transform: "rotate(-90 16 " + (M.t + ph / 2) + ")" }, xlog ? "True positive rate (pixels)" : "Precision (pixels)"));
    var multiDataset = {};
    items.forEach(function (it) { multiDataset[it.row.dataset] = 1; });
    var showDs = Object.keys(multiDataset).length > 1;
    var legend = [];
    items.forEach(function (it) {
      var c = it.curve, xs = xlog ? c.fpr : c.recall, ys = xlog ? c.tpr : c.precision;
      if (!xs || !ys) return;
      var st = styleFor(it.row.detector);
      var lo = xlog ? c.tpr_lo : c.precision_lo, hi = xlog ? c.tpr_hi : c.precision_hi;
      var pts = [];
      for (var i = 0; i < xs.length; i++) {
        if (xs[i] === null || ys[i] === null) continue;
        if (xlog && xs[i] <= 0) continue;
        pts.push([X(xs[i]), Y(ys[i]), i]);
      }
      pts.sort(function (a, b) { return a[0] - b[0]; });
      if (lo && hi) {
        var ok = pts.filter(function (p) { return hi[p[2]] !== null && lo[p[2]] !== null; });
        var band = ok.map(function (p) { return [p[0], Y(lo[p[2]]), Y(hi[p[2]])]; });
        if (!xlog && band.length > 1) {  // stepped like the PR curve
          var stepped = [band[0]];
          for (var q = 1; q < band.length; q++) {
            stepped.push([band[q - 1][0], band[q][1], band[q][2]]);
            stepped.push(band[q]);
          }
          band = stepped;
        }
        if (band.length > 1) {
          var poly = band.map(function (b) { return b[0].toFixed(1) + "," + b[2].toFixed(1); })
            .concat(band.slice().reverse().map(function (b) { return b[0].toFixed(1) + "," + b[1].toFixed(1); }));
          svg.appendChild(el("polygon", { points: poly.join(" "), fill: st.colour, "fill-opacity": "0.18", stroke: "none" }));
        }
      }
      if (pts.length) {
        var path = pts;
        if (!xlog) {  // PR as steps: precision P_k holds on (R_k-1, R_k], as average precision sums it
          path = [pts[0]];
          for (var k = 1; k < pts.length; k++) { path.push([pts[k - 1][0], pts[k][1]]); path.push(pts[k]); }
        }
        var d = path.map(function (p) { return p[0].toFixed(1) + "," + p[1].toFixed(1); }).join(" ");
        var attrs = { points: d, fill: "none", stroke: st.colour, "stroke-width": "2", "class": "curve",
                      "data-detector": it.row.detector };
        if (st.dash) attrs["stroke-dasharray"] = st.dash;
        svg.appendChild(el("polyline", attrs));
      }
      var metric = xlog ? it.row.roc_auc : it.row.ap;
      legend.push({ st: st, text: it.row.detector + (showDs ? " (" + it.row.dataset + ")" : "") +
                    (xlog ? "  AUC " : "  AP ") + fmt(metric, 3) });
    });
    // legend below the axes (never over the curves), in two columns when it is long
    var lh = 18, ncol = legend.length > 4 ? 2 : 1, colw = (W - M.l) / ncol;
    var rows = Math.ceil(legend.length / ncol), top = H + 4;
    svg.setAttribute("viewBox", "0 0 " + W + " " + (H + rows * lh + 10));
    legend.forEach(function (l, i) {
      var col = Math.floor(i / rows), row = i % rows;
      var x = M.l + col * colw, y = top + row * lh + 12;
      var la = { x1: x, x2: x + 22, y1: y - 4, y2: y - 4, stroke: l.st.colour, "stroke-width": "2.5" };
      if (l.st.dash) la["stroke-dasharray"] = l.st.dash;
      svg.appendChild(el("line", la));
      var maxChars = Math.floor((colw - 34) / 7);
      var text = l.text.length > maxChars ? l.text.slice(0, maxChars - 1) + "\u2026" : l.text;
      var t = el("text", { x: x + 28, y: y }, text);
      t.appendChild(el("title", null, l.text));
      svg.appendChild(t);
    });
    if (!items.length) svg.appendChild(el("text", { x: M.l + pw / 2, y: M.t + ph / 2, "text-anchor": "middle" }, "no entries"));
  }

  function render() {
    var items = visibleItems().sort(compare);
    var cols = columns().map(function (c) { return c.key; });
    if (cols.indexOf(state.sortKey) < 0) { state.sortKey = "rank"; state.sortDir = 1; items.sort(compare); }
    renderHead();
    renderBody(items);
    var note = document.getElementById("morph-note");
    note.hidden = !state.morph;
    if (state.morph) note.textContent = "Per-CR recall for " + state.morph + " CRs at each detector's operating point (pixel FPR 5e-4); entries without per-morphology results are hidden.";
    // curves of one dataset at a time: the selected one, else that of the top row
    var plotDs = state.dataset || (items.length ? items[0].row.dataset : "");
    var plotItems = items.filter(function (it) { return it.row.dataset === plotDs; }).slice(0, 16);
    drawPlot(document.getElementById("roc-plot"), plotItems, "roc");
    drawPlot(document.getElementById("pr-plot"), plotItems, "pr");
    var many = !state.dataset && Object.keys(nDatasets).length > 1;
    document.getElementById("plot-note").textContent = plotDs ? "Curves for " + plotDs +
      (many ? " (the top row's dataset; pick a dataset above to change)." : ".") : "";
  }

  function init() {
    var ds = document.getElementById("dataset-filter");
    DATA.datasets.forEach(function (d) { ds.appendChild(el("option", { value: d }, d)); });
    var mf = document.getElementById("morphology-filter");
    DATA.morphologies.forEach(function (m) { mf.appendChild(el("option", { value: m }, m)); });
    if (!DATA.morphologies.length) { mf.disabled = true; mf.title = "no entry has per-morphology results"; }
    if (DATA.default_dataset && DATA.datasets.length > 1) { state.dataset = DATA.default_dataset; ds.value = state.dataset; }
    ds.addEventListener("change", function () { state.dataset = ds.value; render(); });
    mf.addEventListener("change", function () { state.morph = mf.value; render(); });
    var tf = document.getElementById("detector-filter");
    tf.addEventListener("input", function () { state.text = tf.value; render(); });
    render();
  }
  init();
})();
