package rules

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/rollguard/rollguard/pkg/manifest"
	"github.com/rollguard/rollguard/pkg/model"
)

// TestCheckWorkloadsInParallel holds the workload checks spread over
// several runs of workloads to one run over all of them: the same findings
// in the same order, for every rule. The model holds every rule fixture,
// twice, the second time under other file names.
func TestCheckWorkloadsInParallel(t *testing.T) {
	files, err := filepath.Glob("testdata/*/*.yaml")
	if err != nil || len(files) < 20 {
		t.Fatalf("fixtures: %v (%d files)", err, len(files))
	}
	res := &manifest.Result{}
	for copy := range 2 {
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			manifest.Decode(fmt.Sprintf("%d/%s", copy, f), data, res)
		}
	}
	m := model.Build(res.Objects, model.Options{Others: res.Others})
	var perWorkload []*Rule
	for _, r := range Default().All() {
		if r.Workload != nil {
			perWorkload = append(perWorkload, r)
		}
	}
	s := DefaultSettings()
	// byRule puts each rule's findings of every run of workloads together.
	byRule := func(runs [][][]Finding) [][]Finding {
		out := make([][]Finding, len(perWorkload))
		for i := range out {
			for _, run := range runs {
				out[i] = append(out[i], run[i]...)
			}
		}
		return out
	}
	want := byRule(checkWorkloads(perWorkload, m.Workloads, s, 1))
	total := 0
	for _, fs := range want {
		total += len(fs)
	}
	if len(m.Workloads) < 100 || total < 100 {
		t.Fatalf("only %d workloads and %d findings", len(m.Workloads), total)
	}
	for _, n := range []int{2, 3, 7} {
		if got := byRule(checkWorkloads(perWorkload, m.Workloads, s, n)); !reflect.DeepEqual(got, want) {
			t.Errorf("%d runs of workloads found other findings, or in another order, than one run", n)
		}
	}
}
