/**
 * The API docs page: a small self-contained renderer of /api/openapi.json (inline CSS and script, nothing
 * loaded from elsewhere — an appliance at a client site has no internet). Grouped by tag, filterable; each
 * operation shows its role, parameters and request body schema.
 */
export const DOCS_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>SecuMon Collector API</title>
<style>
  body { font: 14px/1.45 system-ui, sans-serif; margin: 0; color: #1d2733; background: #f6f7f9; }
  header { background: #1d2733; color: #fff; padding: 14px 24px; display: flex; gap: 16px; align-items: center; }
  header h1 { font-size: 18px; margin: 0; flex: 1; }
  header input { padding: 6px 10px; border-radius: 4px; border: 0; width: 280px; }
  main { max-width: 1100px; margin: 0 auto; padding: 16px 24px; }
  h2 { text-transform: capitalize; border-bottom: 1px solid #d5dae1; padding-bottom: 4px; margin-top: 28px; }
  details { background: #fff; border: 1px solid #d5dae1; border-radius: 6px; margin: 6px 0; }
  summary { cursor: pointer; padding: 8px 12px; display: flex; gap: 12px; align-items: baseline; }
  .m { font-weight: 700; width: 64px; text-transform: uppercase; font-family: ui-monospace, monospace; }
  .get { color: #1f6feb; } .post { color: #1a7f37; } .patch { color: #9a6700; } .delete { color: #cf222e; } .put { color: #8250df; }
  .p { font-family: ui-monospace, monospace; }
  .s { color: #57606a; flex: 1; }
  .role { font-size: 12px; background: #eef1f5; border-radius: 10px; padding: 1px 8px; }
  .body { padding: 4px 16px 12px; border-top: 1px solid #eef1f5; }
  table { border-collapse: collapse; width: 100%; margin: 6px 0; }
  td, th { text-align: left; padding: 4px 8px; border-bottom: 1px solid #eef1f5; vertical-align: top; }
  pre { background: #f6f8fa; padding: 8px; overflow: auto; border-radius: 4px; max-height: 320px; }
  .muted { color: #57606a; }
</style>
</head>
<body>
<header><h1 id="title">SecuMon Collector API</h1><input id="filter" placeholder="Filter: path, summary or tag" autofocus></header>
<main><p id="intro" class="muted">Loading the API description…</p><div id="ops"></div></main>
<script>
(function () {
  var el = function (tag, attrs, children) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    (children || []).forEach(function (c) { e.append(c); });
    return e;
  };
  var schemaText = function (s) { return JSON.stringify(s, null, 2); };
  fetch("openapi.json").then(function (r) { return r.json(); }).then(function (doc) {
    document.getElementById("title").textContent = doc.info.title + " " + doc.info.version;
    document.getElementById("intro").textContent = doc.info.description;
    var groups = {};
    Object.keys(doc.paths).forEach(function (path) {
      Object.keys(doc.paths[path]).forEach(function (method) {
        var op = doc.paths[path][method];
        var tag = (op.tags && op.tags[0]) || "other";
        (groups[tag] = groups[tag] || []).push({ path: path, method: method, op: op });
      });
    });
    var root = document.getElementById("ops");
    Object.keys(groups).sort().forEach(function (tag) {
      var section = el("section", { "data-tag": tag }, [el("h2", {}, [tag])]);
      groups[tag].forEach(function (x) {
        var op = x.op;
        var body = el("div", { class: "body" });
        if (op.description) body.append(el("p", {}, [op.description]));
        body.append(el("p", { class: "muted" }, [op["x-required-role"]
          ? "Needs a bearer token or API key with at least the " + op["x-required-role"] + " role."
          : "No authentication needed."]));
        if (op.parameters && op.parameters.length) {
          var t = el("table", {}, [el("tr", {}, [el("th", {}, ["parameter"]), el("th", {}, ["in"]), el("th", {}, ["schema"])])]);
          op.parameters.forEach(function (p) {
            t.append(el("tr", {}, [el("td", { class: "p" }, [p.name + (p.required ? " *" : "")]), el("td", {}, [p.in]),
              el("td", {}, [el("code", {}, [schemaText(p.schema)]), p.description ? el("div", { class: "muted" }, [p.description]) : ""])]));
          });
          body.append(t);
        }
        if (op.requestBody) {
          body.append(el("div", {}, ["Request body (application/json):"]));
          body.append(el("pre", {}, [schemaText(op.requestBody.content["application/json"].schema)]));
        }
        body.append(el("div", { class: "muted" }, ["Responses: " + Object.keys(op.responses).join(", ")]));
        var d = el("details", { "data-text": (x.method + " " + x.path + " " + op.summary + " " + tag).toLowerCase() }, [
          el("summary", {}, [el("span", { class: "m " + x.method }, [x.method]), el("span", { class: "p" }, [x.path]),
            el("span", { class: "s" }, [op.summary || ""]),
            op["x-required-role"] ? el("span", { class: "role" }, [op["x-required-role"]]) : ""]),
          body]);
        section.append(d);
      });
      root.append(section);
    });
    document.getElementById("filter").addEventListener("input", function (ev) {
      var q = ev.target.value.toLowerCase();
      root.querySelectorAll("section").forEach(function (s) {
        var any = false;
        s.querySelectorAll("details").forEach(function (d) {
          var show = !q || d.getAttribute("data-text").indexOf(q) >= 0;
          d.style.display = show ? "" : "none";
          any = any || show;
        });
        s.style.display = any ? "" : "none";
      });
    });
  }).catch(function (e) {
    document.getElementById("intro").textContent = "Cannot load openapi.json: " + e;
  });
})();
</script>
</body>
</html>
`;
