/*
 * BasinWatch boundary import form for the served map (BasinWatch's own code, MIT).
 *
 * A plug-in of the served map (BasinWatchMap.plugins.panelSection, static/basinwatch/webmap.js;
 * styles in layer_import.css, none inline, for the page's CSP): a "导入边界" section of the
 * panel opens a form that POSTs the file to
 * {api}/layers/import with the editor key, shows the validation report and the impact on
 * the stored registry, draws the differences (areas gained/lost, enterprises whose result
 * changes) from {api}/layers/{id}/versions/{v}/impact?format=geojson, and can activate the
 * version ({api}/layers/{id}/activate), then reloads that reference layer.
 * UI text comes from config.layer_import (layers/data/webmap.toml); every text inserted
 * into the page is escaped.
 */
(function (global) {
  "use strict";
  var BW = global.BasinWatchMap;
  if (!BW || !BW.plugins) { return; }
  var esc = BW.esc;

  function el(tag, cls, html) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (html !== undefined) { node.innerHTML = html; }
    return node;
  }

  function fill(template, values) {
    return String(template).replace(/\{(\w+)\}/g, function (_, k) {
      return values[k] === undefined ? "" : String(values[k]);
    });
  }

  function attach(bw) {
    var t = bw.cfg.layer_import || {};
    if (!t.button) { return null; }
    var map = bw.map, api = bw.cfg.api || "";
    var state = {diff: null, version: null, layerId: null, key: ""};
    global.bwImport = state;

    var box = (function () {
      var box = el("div", "bw-import");
      var open = el("button", "bw-btn bw-import-open", esc(t.button));
      open.type = "button";
      var panel = el("form", "bw-import-form");
      panel.hidden = true;
      panel.innerHTML =
        "<b>" + esc(t.title) + "</b>" +
        row(t.file, '<input type="file" name="file" required>') +
        row(t.kind, '<select name="kind">' + (t.kinds || []).map(function (k) {
          return '<option value="' + esc(k[0]) + '">' + esc(k[1]) + "</option>";
        }).join("") + "</select>") +
        row(t.layer_id, '<input name="id" required value="shima" size="14">') +
        row(t.crs, '<input name="crs" size="14">') +
        row(t.source, '<input name="source" size="24">') +
        row(t.licence, '<input name="licence" size="24">') +
        row(t.accuracy, '<input name="accuracy_m" type="number" min="0" step="any" size="8">') +
        '<label class="bw-import-row"><input type="checkbox" name="repair" value="true"> ' +
        esc(t.repair) + "</label>" +
        row(t.key, '<input name="key" type="password" autocomplete="off" size="24">') +
        '<button type="submit" class="bw-btn bw-import-submit">' + esc(t.submit) +
        '</button> <button type="button" class="bw-btn bw-import-close">' + esc(t.close) +
        "</button>" +
        '<div class="bw-import-result"></div>';
      open.addEventListener("click", function () {
        panel.hidden = !panel.hidden;
      });
      panel.querySelector(".bw-import-close").addEventListener("click", function () {
        panel.hidden = true;
      });
      panel.addEventListener("submit", function (ev) {
        ev.preventDefault();
        submit(panel);
      });
      box.appendChild(open);
      box.appendChild(panel);
      return box;
    })();

    function row(label, input) {
      return '<label class="bw-import-row bw-import-field">' + esc(label) + "<br>" + input +
        "</label>";
    }

    function submit(form) {
      var out = form.querySelector(".bw-import-result");
      var data = new FormData();
      ["file", "kind", "id", "crs", "source", "licence", "accuracy_m"].forEach(function (name) {
        var input = form.elements[name];
        if (name === "file") {
          if (input.files.length) { data.append("file", input.files[0]); }
        } else if (input.value !== "") {
          data.append(name, input.value);
        }
      });
      if (form.elements.repair.checked) { data.append("repair", "true"); }
      state.key = form.elements.key.value;
      state.layerId = form.elements.id.value;
      out.innerHTML = '<div class="bw-note">' + esc(t.working) + "</div>";
      fetch(api + "/layers/import", {method: "POST", body: data,
                                     headers: {"X-API-Key": state.key}})
        .then(function (r) { return r.json().then(function (b) { return [r.status, b]; }); })
        .then(function (res) { showResult(out, res[0], res[1]); })
        .catch(function (err) {
          out.innerHTML = '<div class="bw-error">' + esc(err && err.message) + "</div>";
        });
    }

    function checksHtml(report) {
      return "<ul class=\"bw-import-checks\">" + report.checks.map(function (c) {
        var level = {error: 1, warning: 1, ok: 1, info: 1}[c.level] ? c.level : "info";
        return '<li class="bw-import-' + level + '">[' + esc(c.level) + "] " +
          esc(c.message_zh) + "</li>";
      }).join("") + "</ul>";
    }

    function showResult(out, status, body) {
      var imp = body["import"];
      if (status !== 201) {
        out.innerHTML = '<div class="bw-error bw-import-rejected">' + esc(t.rejected) + "：" +
          esc(body.description || status) + "</div>" +
          (imp && imp.report ? checksHtml(imp.report) : "");
        return;
      }
      var rec = imp.version;
      state.version = rec.version;
      var label = rec.layer_id + "@" + rec.version;
      var html = '<div class="bw-import-stored">' + esc(fill(t.stored, {label: label})) +
        "</div>" + checksHtml(imp.report);
      if (body.impact) {
        html += '<div class="bw-import-impact">' + esc(fill(t.impact, {
          changed: body.impact.changed, total: body.impact.enterprises})) + "</div>";
      }
      html += '<a class="bw-btn" download href="' + esc(api + "/layers/" +
        encodeURIComponent(rec.layer_id) + "/versions/" + encodeURIComponent(rec.version) +
        "/impact?format=xlsx") + '">' + esc(t.download) + "</a> ";
      html += '<button type="button" class="bw-btn bw-import-activate">' + esc(t.activate) +
        "</button>";
      out.innerHTML = html;
      out.querySelector(".bw-import-activate").addEventListener("click", function () {
        activate(out, rec.layer_id, rec.version);
      });
      drawDiff(rec.layer_id, rec.version);
    }

    function drawDiff(layerId, version) {
      if (state.diff) { map.removeLayer(state.diff); }
      fetch(api + "/layers/" + encodeURIComponent(layerId) + "/versions/" +
            encodeURIComponent(version) + "/impact?format=geojson")
        .then(function (r) { return r.json(); })
        .then(function (fc) {
          state.diff = L.geoJSON(fc, {
            style: function (f) {
              var gained = f.properties.change === "gained";
              return {color: gained ? "#1a9641" : "#d7191c", weight: 2, fillOpacity: 0.3,
                      className: "bw-diff-" + f.properties.change};
            },
            pointToLayer: function (f, latlng) {
              return L.circleMarker(latlng, {radius: 6, color: "#000", weight: 1,
                                             fillColor: "#fdae61", fillOpacity: 0.9});
            },
            onEachFeature: function (f, layer) {
              var p = f.properties;
              if (p.change === "enterprise") {
                var parts = String(p.changed || "").split(";").filter(Boolean).map(function (c) {
                  return esc(c) + "：" + esc(p[c + "_before"] || "—") + " → " +
                    esc(p[c + "_after"] || "—");
                });
                layer.bindPopup("<b>" + esc(p.name) + "</b><br>" + parts.join("<br>"));
              } else {
                layer.bindTooltip(esc(p.change === "gained" ? t.gained : t.lost) + " " +
                                  esc(p.area_km2) + " km²");
              }
            }
          }).addTo(map);
          state.features = fc.features.length;
          if (state.diff.getLayers().length) { map.fitBounds(state.diff.getBounds()); }
        });
    }

    function activate(out, layerId, version) {
      fetch(api + "/layers/" + encodeURIComponent(layerId) + "/activate?version=" +
            encodeURIComponent(version), {method: "POST", headers: {"X-API-Key": state.key}})
        .then(function (r) { return r.json().then(function (b) { return [r.status, b]; }); })
        .then(function (res) {
          if (res[0] !== 200) {
            out.appendChild(el("div", "bw-error", esc(res[1].description || res[0])));
            return;
          }
          state.active = layerId + "@" + version;
          out.appendChild(el("div", "bw-import-activated",
                             esc(fill(t.activated, {label: state.active}))));
          reloadReference(layerId);
        });
    }

    function reloadReference(layerId) {
      var group = bw.layers[layerId];
      if (!group || !group.bwInfo) { return; }
      var info = group.bwInfo;
      fetch(api + "/map/layers/" + encodeURIComponent(layerId) +
            (info.simplify !== undefined ? "?simplify=" + info.simplify : ""),
            {cache: "no-store", headers: {"Accept": "application/json"}})
        .then(function (r) { return r.json(); })
        .then(function (fc) {
          group.clearLayers();
          group.addData(fc);
          state.reloaded = layerId;
        });
    }
    return box;
  }

  // a section of the served map's panel (see BasinWatchMap.plugins in webmap.js)
  BW.plugins.panelSection({
    id: "layer_import", order: 90,
    title: function (bw) { return (bw.cfg.layer_import || {}).button || ""; },
    render: attach
  });
})(window);
