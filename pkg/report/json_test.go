package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
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
