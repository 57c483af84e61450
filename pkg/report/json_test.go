package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// encodeJSON is how JSON wrote the report before writeJSON: the whole
// document through one indenting encoder. writeJSON must write the same
// bytes.
func encodeJSON(r *jsonReport) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

func TestWriteJSONMatchesEncoder(t *testing.T) {
	finding := func(i int) jsonFinding {
		return jsonFinding{
			RuleID: fmt.Sprintf("RG%03d", 100+i%20), RuleName: "prestop-too-short", Severity: "error", Case: "1",
			Object: jsonObject{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "shop", Name: fmt.Sprintf("app-%d", i),
				File: "deploy/a <&> \"b\".yaml", Line: i % 3},
			Container: []string{"", "app", "sidecar"}[i%3], Path: "spec.template.spec.containers[0]",
			File: []string{"", "x.yaml"}[i%2], Line: i % 4,
			Message: "stops after 2s < 5s: \"sleep 2\" \u2028 é \t\x01", Rollout: "r", Fix: "<raise> & done",
			Reason: []string{"", "rollguard.io/ignore"}[i%2],
		}
	}
	var many []jsonFinding
	for i := range 50 {
		many = append(many, finding(i))
	}
	reports := map[string]*jsonReport{
		"empty": {SchemaVersion: SchemaVersion, Findings: []jsonFinding{}, Suppressed: []jsonFinding{},
			Errors: []jsonError{}, Warnings: []string{},
			Summary: jsonSummary{BySeverity: map[string]int{"error": 0, "warning": 0, "info": 0}, Skipped: map[string]int{}}},
		"full": {SchemaVersion: SchemaVersion, Tool: jsonTool{Name: "rollguard", Version: "v1 <dev>"},
			Settings: jsonSettings{PropagationBudget: "5s", DrainAllowance: "0s", FailOn: "warning"},
			Summary: jsonSummary{Files: 3, Objects: 50, Workloads: 9, Served: 4, Findings: 50, Suppressed: 1, InputErrors: 2,
				BySeverity: map[string]int{"error": 40, "warning": 10, "info": 0},
				Skipped:    map[string]int{"ConfigMap": 7, "Secret": 1}, Failed: true},
			Findings: many, Suppressed: many[:1],
			Errors:   []jsonError{{File: "a.yaml", Line: 3, Message: "invalid YAML: <x>"}, {File: "b.yaml", Message: "cannot read"}},
			Warnings: []string{"one", "two & \"three\""}},
	}
	for name, r := range reports {
		var got bytes.Buffer
		if err := writeJSON(&got, r); err != nil {
			t.Fatal(err)
		}
		if want := encodeJSON(r); !bytes.Equal(got.Bytes(), want) {
			t.Errorf("%s: writeJSON differs from the encoder:\n got %s\nwant %s", name, got.Bytes(), want)
		}
	}
	// A field added to the report must be added to writeJSON too: the
	// full report above fills every field, and writeJSON names 8.
	if n := reflect.TypeFor[jsonReport]().NumField(); n != 8 {
		t.Errorf("jsonReport has %d fields; writeJSON writes 8: add the new ones to it and to this test", n)
	}
}

// TestWriteJSONRandomFindings holds appendFinding to the encoder on
// findings with random strings (every ASCII byte, invalid UTF-8, U+2028
// and U+2029, HTML characters) and every mix of empty optional fields.
func TestWriteJSONRandomFindings(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	pieces := []string{"", "a", "app-1", " ", "<", ">", "&", "\"", "\\", "/", "\u2028", "\u2029", "é", "日本", "\U0001F600",
		"\xff", "\xc3", "\xe2\x80", "\xed\xa0\x80", "\ufffd", "\x7f", "\u0085", "\u00a0"}
	for c := range 0x20 {
		pieces = append(pieces, string(rune(c)))
	}
	str := func() string {
		var sb strings.Builder
		for range r.IntN(6) {
			if r.IntN(4) == 0 {
				sb.WriteByte(byte(r.IntN(256)))
			} else {
				sb.WriteString(pieces[r.IntN(len(pieces))])
			}
		}
		return sb.String()
	}
	num := func() int { return []int{0, 1, -1, 31, 1 << 40}[r.IntN(5)] }
	rep := &jsonReport{Errors: []jsonError{}, Warnings: []string{}, Suppressed: []jsonFinding{}}
	for range 3000 {
		rep.Findings = append(rep.Findings, jsonFinding{RuleID: str(), RuleName: str(), Severity: str(), Case: str(),
			Object:    jsonObject{APIVersion: str(), Kind: str(), Namespace: str(), Name: str(), File: str(), Line: num()},
			Container: str(), Path: str(), File: str(), Line: num(), Message: str(), Rollout: str(), Fix: str(), Reason: str()})
	}
	rep.Suppressed = rep.Findings[:100]
	var got bytes.Buffer
	if err := writeJSON(&got, rep); err != nil {
		t.Fatal(err)
	}
	if want := encodeJSON(rep); !bytes.Equal(got.Bytes(), want) {
		g, w := got.Bytes(), want
		i := 0
		for i < len(g) && i < len(w) && g[i] == w[i] {
			i++
		}
		t.Fatalf("writeJSON differs from the encoder at byte %d:\n got %q\nwant %q", i, g[max(0, i-80):min(len(g), i+80)], w[max(0, i-80):min(len(w), i+80)])
	}
}

func BenchmarkWriteJSON(b *testing.B) {
	r := benchReport()
	b.ReportAllocs()
	for b.Loop() {
		if err := writeJSON(io.Discard, r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeJSON(b *testing.B) {
	r := benchReport()
	b.ReportAllocs()
	for b.Loop() {
		encodeJSON(r)
	}
}

// benchReport is a report of 20,000 findings, as the audit benchmark's corpus gives.
func benchReport() *jsonReport {
	r := &jsonReport{SchemaVersion: SchemaVersion, Suppressed: []jsonFinding{}, Errors: []jsonError{}, Warnings: []string{}}
	for i := range 20000 {
		r.Findings = append(r.Findings, jsonFinding{RuleID: "RG102", RuleName: "prestop-too-short", Severity: "error",
			Object: jsonObject{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "shop", Name: fmt.Sprintf("app-%d", i), File: "apps.yaml", Line: i},
			Path:   "spec.template.spec.containers[0].lifecycle", File: "apps.yaml", Line: i + 30,
			Message: "container \"app\" stops accepting connections 2s after its pod is deleted", Rollout: "The container stops listening early.", Fix: "raise the preStop sleep to 5s"})
	}
	return r
}
