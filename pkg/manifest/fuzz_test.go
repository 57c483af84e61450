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
	reg := rules.Default()
	f.Fuzz(func(t *testing.T, data []byte) {
		res := &manifest.Result{}
		manifest.Decode("fuzz.yaml", data, res)
		for _, err := range res.Errors {
			me, ok := err.(*manifest.Error)
			if !ok || me.File != "fuzz.yaml" {
				t.Fatalf("error without the file: %v", err)
			}
		}
		m := model.Build(res.Objects, model.Options{AssumeServed: true})
		reg.Run(m, rules.Options{Settings: rules.DefaultSettings()})
	})
}
