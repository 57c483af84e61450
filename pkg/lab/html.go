package lab

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/template"
	"time"

	"github.com/rollguard/rollguard/pkg/diagnose"
	"github.com/rollguard/rollguard/pkg/timeline"
	"github.com/rollguard/rollguard/pkg/traffic"
)

type htmlScenario struct {
	Name     string        `json:"name"`
	Verdict  string        `json:"verdict"`
	Requests int           `json:"requests"`
	Failed   int           `json:"failed"`
	Case1    int           `json:"case1"`
	Case2    int           `json:"case2"`
	Ambig    int           `json:"ambiguous"`
	End      float64       `json:"end"`
	Nodes    []string      `json:"nodes"`
	Lanes    []lane        `json:"lanes"`
	Failures []htmlFailure `json:"failures"`
}

type htmlFailure struct {
	T     float64        `json:"t"`
	Node  int            `json:"node"`
	Class traffic.Class  `json:"class"`
	Cause diagnose.Cause `json:"cause"`
	Why   string         `json:"why"`
}

// WriteHTML writes a self-contained report: no network fetches, the data
// embedded as JSON and drawn as SVG by an inline script.
func WriteHTML(w io.Writer, results []*Result) error {
	var pages []Page
	for _, r := range results {
		p := Page{Name: r.Scenario.Name, Verdict: r.verdict(), Start: r.Start, Requests: r.Summary.Total, Failed: r.Summary.Failed(),
			Timeline: r.Timeline, Failures: r.Failures, Diagnosis: r.Diagnosis}
		for i, d := range r.Scenario.Propagation {
			p.Nodes = append(p.Nodes, fmt.Sprintf("node %d (%s)", i, short(d.Round(1e6))))
		}
		pages = append(pages, p)
	}
	return WritePages(w, "rollguard lab", tableText(results), pages)
}

// Page is one picture of the HTML report: a lab scenario, or a rollout
// verify watched. Its lanes are drawn from the timeline's pod events
// (PodListening and PodClosed for when a pod accepted connections), its
// ticks from endpoint changes, and its dots from the diagnosis.
type Page struct {
	Name, Verdict    string
	Start            time.Time
	Requests, Failed int
	Nodes            []string // client node names, by index
	Timeline         []timeline.Event
	Failures         []traffic.Record
	Diagnosis        diagnose.Result
}

// WritePages writes the report's HTML: a title, a text table, and a
// picture per page.
func WritePages(w io.Writer, title, table string, pages []Page) error {
	var data []htmlScenario
	for _, p := range pages {
		end := 0.0
		for _, e := range p.Timeline {
			end = max(end, e.At.Sub(p.Start).Seconds())
		}
		for _, f := range p.Failures {
			end = max(end, f.Start.Sub(p.Start).Seconds())
		}
		end += 0.5
		hs := htmlScenario{Name: p.Name, Verdict: p.Verdict, Requests: p.Requests, Failed: p.Failed,
			Case1: p.Diagnosis.Counts[diagnose.Case1], Case2: p.Diagnosis.Counts[diagnose.Case2], Ambig: p.Diagnosis.Counts[diagnose.Ambiguous],
			End: end, Nodes: p.Nodes, Lanes: lanes(p.Timeline, p.Start, end)}
		for _, a := range p.Diagnosis.Attributions {
			hs.Failures = append(hs.Failures, htmlFailure{T: a.At.Sub(p.Start).Seconds(), Node: a.Node, Class: a.Class, Cause: a.Cause, Why: a.Evidence})
		}
		data = append(data, hs)
	}
	js, err := json.Marshal(data) // escapes <, > and &: safe inside a script element
	if err != nil {
		return err
	}
	return htmlTmpl.Execute(w, map[string]any{"Data": string(js), "Table": table, "Title": title})
}

func tableText(results []*Result) string {
	var b strings.Builder
	_ = WriteTable(&b, results)
	return b.String()
}

var htmlTmpl = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{html .Title}} report</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}
pre{background:#f6f6f6;padding:10px;overflow-x:auto}
.legend span{display:inline-block;margin-right:14px}
.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-1px}
.state-starting{fill:#d9d9d9}.state-listening{fill:#b7e1b0}.state-ready-not-listening{fill:#e8685f}
.state-serving{fill:#3fa34d}.state-terminating{fill:#f0a640}.state-stopped{fill:#8c5a9e}.state-gone{fill:#f4f4f4}
.tick{stroke:#1f4e9c;stroke-width:1.5}.axis{stroke:#999}
.class-refused{fill:#d62728}.class-reset{fill:#9467bd}.class-connect-timeout,.class-response-timeout{fill:#ff7f0e}
.class-no-route,.class-net-unreachable{fill:#17becf}.mark{fill-opacity:.7}
</style></head><body>
<h1>{{html .Title}}</h1>
<pre id="table">{{html .Table}}</pre>
<div class="legend">
<span><i style="background:#d9d9d9"></i>starting</span><span><i style="background:#e8685f"></i>ready, not listening (Case 2)</span>
<span><i style="background:#b7e1b0"></i>listening, not ready</span><span><i style="background:#3fa34d"></i>serving</span>
<span><i style="background:#f0a640"></i>terminating, still listening</span><span><i style="background:#8c5a9e"></i>stopped listening (Case 1)</span>
<span><i style="background:#1f4e9c"></i>| a node applied an endpoint change</span>
<span><i style="background:#d62728"></i>refused</span><span><i style="background:#9467bd"></i>reset</span><span><i style="background:#ff7f0e"></i>timeout</span>
</div>
<div id="charts"></div>
<script>
const data = {{.Data}};
const NS = "http://www.w3.org/2000/svg";
function el(name, attrs, parent) {
  const e = document.createElementNS(NS, name);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (parent) parent.appendChild(e);
  return e;
}
const charts = document.getElementById("charts");
for (const sc of data) {
  const h = document.createElement("h2");
  h.textContent = sc.name + ": " + sc.failed + " of " + sc.requests + " requests failed (" + sc.case1 + " Case 1, " + sc.case2 + " Case 2, " + sc.ambiguous + " ambiguous), " + sc.verdict;
  charts.appendChild(h);
  const left = 200, width = 900, row = 18;
  const rows = sc.lanes.length + sc.nodes.length;
  const svg = el("svg", {width: left + width + 20, height: rows * row + 40, class: "scenario"}, charts);
  const x = t => left + (t / sc.end) * width;
  sc.lanes.forEach((ln, i) => {
    const g = el("g", {class: "lane", "data-pod": ln.pod}, svg);
    const y = 10 + i * row;
    el("text", {x: 4, y: y + 12}, g).textContent = ln.pod;
    for (const p of ln.phases) {
      const r = el("rect", {x: x(p.from), y: y, width: Math.max(x(p.to) - x(p.from), 0.5), height: row - 4, class: "phase state-" + p.state}, g);
      el("title", {}, r).textContent = p.state + " " + p.from.toFixed(2) + "s to " + p.to.toFixed(2) + "s";
    }
    for (const t of (ln.endpointChanges || [])) el("line", {x1: x(t), x2: x(t), y1: y - 1, y2: y + row - 3, class: "tick"}, g);
  });
  sc.nodes.forEach((n, j) => {
    const g = el("g", {class: "lane requests", "data-node": j}, svg);
    const y = 10 + (sc.lanes.length + j) * row;
    el("text", {x: 4, y: y + 12}, g).textContent = "requests from " + n;
    for (const f of (sc.failures || []).filter(f => f.node === j)) {
      const c = el("circle", {cx: x(f.t), cy: y + 7, r: 3, class: "mark class-" + f.class}, g);
      el("title", {}, c).textContent = f.t.toFixed(3) + "s " + f.class + " -> " + f.cause + ": " + f.why;
    }
  });
  const ay = 10 + rows * row + 4;
  el("line", {x1: left, x2: left + width, y1: ay, y2: ay, class: "axis"}, svg);
  for (let t = 0; t <= sc.end; t += Math.max(1, Math.round(sc.end / 10))) {
    el("text", {x: x(t) - 6, y: ay + 16}, svg).textContent = t + "s";
  }
}
document.body.setAttribute("data-rendered", String(data.length));
</script>
</body></html>
`))
