// Package report implements the audit's output formats: text for people,
// and JSON, SARIF 2.1.0 and JUnit XML for machines. Every writer reads the
// same Input and is deterministic, so their outputs can be golden-tested.
package report

import (
	"fmt"
	"io"
	"strings"

	"github.com/rollguard/rollguard/pkg/manifest"
	"github.com/rollguard/rollguard/pkg/model"
	"github.com/rollguard/rollguard/pkg/rules"
)

// Input is everything a report shows.
type Input struct {
	Report   *rules.Report
	Load     *manifest.Result
	Model    *model.Model
	Settings rules.Settings
	FailOn   rules.Severity
	Version  string
	// Namespace is the one given to objects that name none.
	Namespace string
}

// Formats lists the names accepted by Write.
var Formats = []string{"text", "json", "sarif", "junit"}

// Write renders in to w in the named format. color applies to text only.
func Write(w io.Writer, format string, in *Input, color bool) error {
	switch format {
	case "text", "":
		return Text(w, in, color)
	case "json":
		return JSON(w, in)
	case "sarif":
		return SARIF(w, in)
	case "junit":
		return JUnit(w, in)
	}
	return fmt.Errorf("unknown output format %q (want %s)", format, strings.Join(Formats, ", "))
}

// Failing reports whether a finding fails the run.
func (in *Input) Failing(f rules.Finding) bool { return f.Severity >= in.FailOn }

// counts tallies active findings by severity.
func (in *Input) counts() map[rules.Severity]int {
	c := map[rules.Severity]int{}
	for _, f := range in.Report.Findings {
		c[f.Severity]++
	}
	return c
}

// group is the findings about one object, in the order they were found.
type group struct {
	obj      *manifest.Object
	findings []rules.Finding
}

func groups(fs []rules.Finding) []group {
	var out []group
	idx := map[*manifest.Object]int{}
	for _, f := range fs {
		i, ok := idx[f.Object]
		if !ok {
			i = len(out)
			idx[f.Object] = i
			out = append(out, group{obj: f.Object})
		}
		out[i].findings = append(out[i].findings, f)
	}
	return out
}

// objectName renders an object as "Deployment shop/web".
func objectName(o *manifest.Object, defaultNS string) string {
	return fmt.Sprintf("%s %s/%s", o.Kind, namespaceOf(o, defaultNS), o.Name)
}

// namespaceOf is the object's namespace, or the one given to objects that
// name none.
func namespaceOf(o *manifest.Object, defaultNS string) string {
	if o.Namespace == "" {
		return defaultNS
	}
	return o.Namespace
}

func (in *Input) defaultNS() string {
	if in.Namespace == "" {
		return "default"
	}
	return in.Namespace
}
