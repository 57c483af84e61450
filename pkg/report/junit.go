package report

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"

	"github.com/rollguard/rollguard/pkg/manifest"
	"github.com/rollguard/rollguard/pkg/rules"
)

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Skipped  int         `xml:"skipped,attr"`
	File     string      `xml:"file,attr,omitempty"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	File      string        `xml:"file,attr,omitempty"`
	Line      int           `xml:"line,attr,omitempty"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Error     *junitMessage `xml:"error,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Body    string `xml:",chardata"`
}

// JUnit writes one test suite per audited object and one test case per
// object and rule that applies to its kind: CI systems then show each rule
// as passed, failed (a finding at or above --fail-on), or skipped
// (suppressed). Findings below --fail-on pass, with the finding as output.
// Input errors are an "input" suite of errored cases.
func JUnit(w io.Writer, in *Input) error {
	ns := in.defaultNS()
	type key struct {
		obj  *manifest.Object
		rule *rules.Rule
	}
	found := map[key][]rules.Finding{}
	for _, f := range in.Report.Findings {
		found[key{f.Object, f.Rule}] = append(found[key{f.Object, f.Rule}], f)
	}
	for _, f := range in.Report.Suppressed {
		found[key{f.Object, f.Rule}] = append(found[key{f.Object, f.Rule}], f)
	}
	var subjects []*manifest.Object
	for _, wl := range in.Model.Workloads {
		subjects = append(subjects, wl.Object)
	}
	for _, s := range in.Model.Services {
		subjects = append(subjects, s.Object)
	}
	for _, p := range in.Model.PDBs {
		subjects = append(subjects, p.Object)
	}
	out := junitSuites{Name: "rollguard audit"}
	for _, obj := range subjects {
		suite := junitSuite{Name: objectName(obj, ns), File: obj.Source.File}
		for _, r := range in.Report.Rules {
			if !applies(r, obj) {
				continue
			}
			c := junitCase{Name: r.ID + " " + r.Name, Classname: suite.Name, File: obj.Source.File, Line: obj.Source.Line}
			fs := found[key{obj, r}]
			var failing, passing, suppressed []string
			for _, f := range fs {
				text := findingText(f)
				switch {
				case f.Suppressed:
					suppressed = append(suppressed, f.SuppressReason)
				case in.Failing(f):
					failing = append(failing, text)
					c.Line = f.Source.Line
				default:
					passing = append(passing, text)
				}
			}
			switch {
			case len(failing) > 0:
				c.Failure = &junitMessage{Message: fs[0].Message, Type: fs[0].Severity.String(), Body: strings.Join(failing, "\n\n")}
				suite.Failures++
			case len(suppressed) > 0 && len(passing) == 0:
				c.Skipped = &junitMessage{Message: "suppressed: " + suppressed[0]}
				suite.Skipped++
			}
			c.SystemOut = strings.Join(passing, "\n\n")
			suite.Cases = append(suite.Cases, c)
		}
		suite.Tests = len(suite.Cases)
		out.Suites = append(out.Suites, suite)
	}
	if len(in.Load.Errors) > 0 {
		suite := junitSuite{Name: "input"}
		for i, err := range in.Load.Errors {
			suite.Cases = append(suite.Cases, junitCase{Name: fmt.Sprintf("input error %d", i+1), Classname: "input",
				Error: &junitMessage{Message: err.Error(), Type: "InputError"}})
		}
		suite.Tests, suite.Errors = len(suite.Cases), len(suite.Cases)
		out.Suites = append(out.Suites, suite)
	}
	for _, s := range out.Suites {
		out.Tests += s.Tests
		out.Failures += s.Failures
		out.Errors += s.Errors
		out.Skipped += s.Skipped
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func applies(r *rules.Rule, obj *manifest.Object) bool {
	if r.Subject == "" {
		return obj.Kind != "Service" && obj.Kind != "PodDisruptionBudget"
	}
	return r.Subject == obj.Kind
}

func findingText(f rules.Finding) string {
	loc := ""
	if s := f.Source.String(); s != "" {
		loc = s + ": "
	}
	return fmt.Sprintf("%s%s: %s\nrollout: %s\nfix: %s", loc, f.Severity, f.Message, f.Rule.Rollout, f.Fix)
}
