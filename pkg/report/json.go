package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"unicode/utf8"

	"github.com/rollguard/rollguard/pkg/manifest"
	"github.com/rollguard/rollguard/pkg/rules"
)

// SchemaVersion versions the JSON report; it changes only when a field is
// removed or changes meaning.
const SchemaVersion = "rollguard.io/audit/v1"

type jsonReport struct {
	SchemaVersion string        `json:"schemaVersion"`
	Tool          jsonTool      `json:"tool"`
	Settings      jsonSettings  `json:"settings"`
	Summary       jsonSummary   `json:"summary"`
	Findings      []jsonFinding `json:"findings"`
	Suppressed    []jsonFinding `json:"suppressed"`
	Errors        []jsonError   `json:"errors"`
	Warnings      []string      `json:"warnings"`
}

type jsonTool struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

type jsonSettings struct {
	PropagationBudget string `json:"propagationBudget"`
	DrainAllowance    string `json:"drainAllowance"`
	FailOn            string `json:"failOn"`
}

type jsonSummary struct {
	Files       int            `json:"files"`
	Objects     int            `json:"objects"`
	Workloads   int            `json:"workloads"`
	Served      int            `json:"servedWorkloads"`
	Findings    int            `json:"findings"`
	BySeverity  map[string]int `json:"bySeverity"`
	Suppressed  int            `json:"suppressed"`
	InputErrors int            `json:"inputErrors"`
	Skipped     map[string]int `json:"skippedKinds"`
	Failed      bool           `json:"failed"`
}

type jsonObject struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace"`
	Name       string `json:"name"`
	File       string `json:"file,omitempty"`
	Line       int    `json:"line,omitempty"`
}

type jsonFinding struct {
	RuleID    string     `json:"ruleID"`
	RuleName  string     `json:"ruleName"`
	Severity  string     `json:"severity"`
	Case      string     `json:"case"`
	Object    jsonObject `json:"object"`
	Container string     `json:"container,omitempty"`
	Path      string     `json:"path"`
	File      string     `json:"file,omitempty"`
	Line      int        `json:"line,omitempty"`
	Message   string     `json:"message"`
	Rollout   string     `json:"rollout"`
	Fix       string     `json:"fix"`
	Reason    string     `json:"suppressedReason,omitempty"`
}

type jsonError struct {
	File    string `json:"file"`
	Line    int    `json:"line,omitempty"`
	Message string `json:"message"`
}

// JSON writes the report as one JSON document.
func JSON(w io.Writer, in *Input) error {
	ns := in.defaultNS()
	r := jsonReport{
		SchemaVersion: SchemaVersion,
		Tool:          jsonTool{Name: "rollguard", Version: in.Version},
		Settings: jsonSettings{
			PropagationBudget: in.Settings.PropagationBudget.String(),
			DrainAllowance:    in.Settings.DrainAllowance.String(),
			FailOn:            in.FailOn.String(),
		},
		Findings:   make([]jsonFinding, 0, len(in.Report.Findings)),
		Suppressed: make([]jsonFinding, 0, len(in.Report.Suppressed)),
		Errors:     make([]jsonError, 0, len(in.Load.Errors)),
		Warnings:   append([]string{}, in.Report.Warnings...),
	}
	s := &r.Summary
	s.Files, s.Objects, s.Workloads = in.Load.Files, len(in.Load.Objects), len(in.Model.Workloads)
	for _, wl := range in.Model.Workloads {
		if wl.Served {
			s.Served++
		}
	}
	s.BySeverity = map[string]int{"error": 0, "warning": 0, "info": 0}
	for sev, n := range in.counts() {
		s.BySeverity[sev.String()] = n
	}
	s.Skipped = map[string]int{}
	for k, v := range in.Load.Skipped {
		s.Skipped[k] = v
	}
	for _, f := range in.Report.Findings {
		r.Findings = append(r.Findings, toJSON(f, ns))
		s.Failed = s.Failed || in.Failing(f)
	}
	for _, f := range in.Report.Suppressed {
		r.Suppressed = append(r.Suppressed, toJSON(f, ns))
	}
	for _, err := range in.Load.Errors {
		je := jsonError{Message: err.Error()}
		var me *manifest.Error
		if errors.As(err, &me) {
			je.File, je.Line = me.File, me.Line
		}
		r.Errors = append(r.Errors, je)
	}
	s.Findings, s.Suppressed, s.InputErrors = len(r.Findings), len(r.Suppressed), len(r.Errors)
	s.Failed = s.Failed || len(r.Errors) > 0
	return writeJSON(w, &r)
}

// writeJSON writes the report as a json.Encoder with two-space indent and
// no HTML escaping writes it, byte for byte, but an element of its lists at
// a time through a small buffer: encoding 20,000 findings at once built two
// buffers the size of the output (compact, then indented) by doubling, and
// the copies and fresh pages cost more than the encoding.
func writeJSON(w io.Writer, r *jsonReport) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	field := newIndentEncoder("  ")         // a value of the report's own fields
	item := newIndentEncoder(findingPrefix) // an element of one of its lists
	bw.WriteString("{\n")
	for i, f := range []struct {
		key   string
		value any
	}{
		{"schemaVersion", r.SchemaVersion}, {"tool", r.Tool}, {"settings", r.Settings}, {"summary", r.Summary},
		{"findings", r.Findings}, {"suppressed", r.Suppressed}, {"errors", r.Errors}, {"warnings", r.Warnings},
	} {
		if i > 0 {
			bw.WriteString(",\n")
		}
		bw.WriteString(`  "` + f.key + `": `)
		var err error
		switch v := f.value.(type) {
		case []jsonFinding:
			err = writeList(bw, item, v)
		case []jsonError:
			err = writeList(bw, item, v)
		case []string:
			err = writeList(bw, item, v)
		default:
			err = field.write(bw, v)
		}
		if err != nil {
			return err
		}
	}
	bw.WriteString("\n}\n")
	return bw.Flush()
}

// writeList writes a list as an indenting encoder would inside the
// report: [] when it is empty (nil never occurs: JSON fills every list).
func writeList[T any](bw *bufio.Writer, item *indentEncoder, list []T) error {
	if len(list) == 0 {
		bw.WriteString("[]")
		return nil
	}
	bw.WriteString("[\n")
	for i := range list {
		if i > 0 {
			bw.WriteString(",\n")
		}
		bw.WriteString(item.prefix)
		if err := item.write(bw, &list[i]); err != nil { // a pointer, so boxing copies nothing
			return err
		}
	}
	bw.WriteString("\n  ]")
	return nil
}

// indentEncoder encodes one value as it would appear nested at prefix in
// an indented document, without the line break Encode ends with.
type indentEncoder struct {
	prefix string
	buf    bytes.Buffer
	enc    *json.Encoder
	out    []byte // appendFinding's
}

// findingPrefix is where findings sit: in a list of the report.
const findingPrefix = "    "

// appendFinding appends a finding as the indenting encoder writes it at
// findingPrefix, without reflection: the findings are most of a report,
// and encoding/json spent more time finding their fields and indenting
// its output than writing it. The keys, their order and omitempty are the
// struct tags' (TestWriteJSONMatchesEncoder holds the two to each other).
func appendFinding(b []byte, f *jsonFinding) []byte {
	const in1, in2 = "\n" + findingPrefix + "  ", "\n" + findingPrefix + "    "
	b = appendJSONString(append(b, "{"+in1+`"ruleID": `...), f.RuleID)
	b = appendJSONString(append(b, ","+in1+`"ruleName": `...), f.RuleName)
	b = appendJSONString(append(b, ","+in1+`"severity": `...), f.Severity)
	b = appendJSONString(append(b, ","+in1+`"case": `...), f.Case)
	o := &f.Object
	b = appendJSONString(append(b, ","+in1+`"object": {`+in2+`"apiVersion": `...), o.APIVersion)
	b = appendJSONString(append(b, ","+in2+`"kind": `...), o.Kind)
	b = appendJSONString(append(b, ","+in2+`"namespace": `...), o.Namespace)
	b = appendJSONString(append(b, ","+in2+`"name": `...), o.Name)
	if o.File != "" {
		b = appendJSONString(append(b, ","+in2+`"file": `...), o.File)
	}
	if o.Line != 0 {
		b = strconv.AppendInt(append(b, ","+in2+`"line": `...), int64(o.Line), 10)
	}
	b = append(b, in1+"}"...)
	if f.Container != "" {
		b = appendJSONString(append(b, ","+in1+`"container": `...), f.Container)
	}
	b = appendJSONString(append(b, ","+in1+`"path": `...), f.Path)
	if f.File != "" {
		b = appendJSONString(append(b, ","+in1+`"file": `...), f.File)
	}
	if f.Line != 0 {
		b = strconv.AppendInt(append(b, ","+in1+`"line": `...), int64(f.Line), 10)
	}
	b = appendJSONString(append(b, ","+in1+`"message": `...), f.Message)
	b = appendJSONString(append(b, ","+in1+`"rollout": `...), f.Rollout)
	b = appendJSONString(append(b, ","+in1+`"fix": `...), f.Fix)
	if f.Reason != "" {
		b = appendJSONString(append(b, ","+in1+`"suppressedReason": `...), f.Reason)
	}
	return append(b, "\n"+findingPrefix+"}"...)
}

// appendJSONString appends s as encoding/json writes a string without
// HTML escaping: quotes and backslashes escaped, \b \f \n \r \t by
// name, other control characters as \u00XX, invalid UTF-8 as \ufffd, and
// U+2028 and U+2029 escaped.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(append(b, s[start:i]...), `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(append(b, s[start:i]...), '\\', 'u', '2', '0', '2', hex[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	return append(append(b, s[start:]...), '"')
}

func newIndentEncoder(prefix string) *indentEncoder {
	e := &indentEncoder{prefix: prefix}
	e.enc = json.NewEncoder(&e.buf)
	e.enc.SetIndent(prefix, "  ")
	e.enc.SetEscapeHTML(false)
	return e
}

func (e *indentEncoder) write(bw *bufio.Writer, v any) error {
	if f, ok := v.(*jsonFinding); ok && e.prefix == findingPrefix {
		e.out = appendFinding(e.out[:0], f)
		_, err := bw.Write(e.out)
		return err
	}
	e.buf.Reset()
	if err := e.enc.Encode(v); err != nil {
		return err
	}
	_, err := bw.Write(bytes.TrimSuffix(e.buf.Bytes(), []byte("\n")))
	return err
}

func toJSON(f rules.Finding, defaultNS string) jsonFinding {
	ns := namespaceOf(f.Object, defaultNS)
	return jsonFinding{
		RuleID: f.Rule.ID, RuleName: f.Rule.Name, Severity: f.Severity.String(), Case: string(f.Rule.Case),
		Object: jsonObject{APIVersion: f.Object.APIVersion, Kind: f.Object.Kind, Namespace: ns, Name: f.Object.Name,
			File: f.Object.Source.File, Line: f.Object.Source.Line},
		Container: f.Container, Path: f.Path, File: f.Source.File, Line: f.Source.Line,
		Message: f.Message, Rollout: f.Rule.Rollout, Fix: f.Fix, Reason: f.SuppressReason,
	}
}
