package manifest_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rollguard/rollguard/pkg/manifest"
	"github.com/rollguard/rollguard/pkg/model"
	"github.com/rollguard/rollguard/pkg/rules"
)

// FuzzDecode feeds arbitrary bytes through the loader, the model and every
// rule: none may panic, and every input error must name the file.
func FuzzDecode(f *testing.F) {
	seeds, _ := filepath.Glob("../rules/testdata/*/*.yaml")
	seeds = append(seeds, "../rules/testdata/quiet-fixed.yaml")
	for _, p := range seeds {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("apiVersion: v1\nkind: List\nitems: [{apiVersion: v1, kind: Service, metadata: {name: a}}]\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("--- {apiVersion: v1, kind: Pod, metadata: {name: p}, spec: {containers: [{name: c}]}}\n"))
	f.Add([]byte("apiVersion: v1\nkind: Service\nmetadata:\n  name: {{ .Release.Name }}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: a, annotations: {x: Instance {{ $labels.instance }}}}\n"))
	if data, err := os.ReadFile("testdata/mixed/app-and-alerts.yaml"); err == nil {
		f.Add(data)
	}
	reg := rules.Default()
	f.Fuzz(func(t *testing.T, data []byte) {
		res := &manifest.Result{}
		manifest.Decode("fuzz.yaml", data, res)
		// DecodeFile judges templates document by document: it must not
		// panic either, and input that Decode reads without an error is
		// never dropped or refused as a template.
		asFile := &manifest.Result{}
		manifest.DecodeFile("fuzz.yaml", data, asFile)
		for _, err := range append(res.Errors, asFile.Errors...) {
			me, ok := err.(*manifest.Error)
			if !ok || me.File != "fuzz.yaml" {
				t.Fatalf("error without the file: %v", err)
			}
		}
		if len(res.Errors) == 0 && (len(asFile.Errors) > 0 || len(asFile.Objects) != len(res.Objects)) {
			t.Fatalf("DecodeFile: %d objects and %d errors, Decode: %d and %d", len(asFile.Objects), len(asFile.Errors), len(res.Objects), len(res.Errors))
		}
		m := model.Build(res.Objects, model.Options{AssumeServed: true})
		reg.Run(m, rules.Options{Settings: rules.DefaultSettings()})
	})
}
