// Package fix implements `rollguard fix`: it applies the rules'
// remediations to manifests as text edits, so comments, key order,
// indentation, quoting and document separators stay byte for byte as they
// were. Each edit is checked by parsing the result and comparing it with the
// intended change; an edit that would change anything else is refused and
// the file is left alone.
package fix

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"

	yaml "go.yaml.in/yaml/v3"

	"github.com/rollguard/rollguard/pkg/manifest"
	"github.com/rollguard/rollguard/pkg/model"
	"github.com/rollguard/rollguard/pkg/rules"
)

// maxRounds bounds the fix loop: each round audits the current text and
// applies every fix it can; a later round sees what earlier fixes changed
// (a grace period sized for a preStop delay added in the round before).
const maxRounds = 5

// Options configure a fix run.
type Options struct {
	Rules rules.Options
	Fix   rules.FixOptions
	Model model.Options
}

// Input is one file to fix.
type Input struct {
	Name string
	Data []byte
}

// File is a file's text before and after fixing.
type File struct {
	Name          string
	Before, After []byte
}

// Changed reports whether the fix changed the file.
func (f *File) Changed() bool { return !bytes.Equal(f.Before, f.After) }

// Applied is a fix that was made.
type Applied struct {
	Finding rules.Finding
	Note    string
}

// Remaining is a finding that is still there after fixing, and why.
type Remaining struct {
	Finding rules.Finding
	Why     string
	// Original is where the finding was in the text before fixing; its
	// Finding.Source is in the fixed text.
	Original manifest.Source
}

// Result is the outcome of a fix run.
type Result struct {
	Files     []*File
	Applied   []Applied
	Remaining []Remaining
	// Errors are input errors; files with one are not changed.
	Errors []error
	// Final is the audit of the fixed text.
	Final *rules.Report
}

// Run fixes inputs.
func Run(inputs []Input, reg *rules.Registry, opts Options) *Result {
	res := &Result{}
	for _, in := range inputs {
		res.Files = append(res.Files, &File{Name: in.Name, Before: in.Data, After: in.Data})
	}
	broken := map[string]bool{}
	refused := map[string]string{} // finding key -> why an edit was refused
	initial := map[string]manifest.Source{}
	for round := 0; ; round++ {
		loaded := &manifest.Result{}
		for _, f := range res.Files {
			manifest.DecodeFile(f.Name, f.After, loaded)
		}
		if round == 0 {
			res.Errors = loaded.Errors
			for _, err := range loaded.Errors {
				if me, ok := err.(*manifest.Error); ok {
					broken[me.File] = true
				}
			}
		}
		rep := reg.Run(model.Build(loaded.Objects, opts.Model), opts.Rules)
		res.Final = rep
		if round == 0 {
			for _, f := range rep.Findings {
				initial[key(f)] = f.Source
			}
		}
		if round == maxRounds {
			break
		}
		byFile := map[string][]planned{}
		for _, f := range rep.Findings {
			if f.Rule.Remediate == nil || broken[f.Object.Source.File] || refused[key(f)] != "" {
				continue
			}
			r := f.Rule.Remediate(opts.Fix, f)
			if r.Unfixable != "" || len(r.Ops) == 0 {
				continue
			}
			byFile[f.Object.Source.File] = append(byFile[f.Object.Source.File], planned{f, r})
		}
		if len(byFile) == 0 {
			break
		}
		for _, file := range res.Files {
			plans := byFile[file.Name]
			if len(plans) == 0 {
				continue
			}
			after, applied, errs := applyFile(file.After, plans)
			file.After = after
			res.Applied = append(res.Applied, applied...)
			for k, why := range errs {
				refused[k] = why
			}
		}
	}
	for _, f := range res.Final.Findings {
		why := f.Rule.NoFix
		if f.Rule.Remediate != nil {
			switch r := f.Rule.Remediate(opts.Fix, f); {
			case refused[key(f)] != "":
				why = "the edit could not be made safely: " + refused[key(f)]
			case broken[f.Object.Source.File]:
				why = "the file has input errors, so it is not changed"
			case r.Unfixable != "":
				why = r.Unfixable
			default:
				why = "the fix did not settle"
			}
		}
		orig, ok := initial[key(f)]
		if !ok {
			orig = f.Source
		}
		res.Remaining = append(res.Remaining, Remaining{Finding: f, Why: why, Original: orig})
	}
	return res
}

type planned struct {
	finding rules.Finding
	remedy  rules.Remedy
}

func key(f rules.Finding) string {
	return strings.Join([]string{f.Rule.ID, f.Object.Source.File, f.Object.Ref(), f.Container}, "\x00")
}

// applyFile applies the planned remedies to one file's text, document by
// document from the end, so that earlier offsets stay valid. It returns the
// new text, the fixes made, and the findings whose edits were refused.
func applyFile(data []byte, plans []planned) ([]byte, []Applied, map[string]string) {
	nl := "\n"
	if bytes.Contains(data, []byte("\r\n")) {
		nl = "\r\n"
	}
	docs := manifest.Documents(data)
	refused := map[string]string{}
	var applied []Applied
	// The object a finding is about starts at a line of the file; each
	// document holds the objects whose line falls inside it.
	sort.SliceStable(plans, func(i, j int) bool {
		return plans[i].finding.Object.Source.Line > plans[j].finding.Object.Source.Line
	})
	out := data
	for d := len(docs) - 1; d >= 0; d-- {
		doc := docs[d]
		last := doc.First + bytes.Count(doc.Data, []byte("\n"))
		text := doc.Data
		changed := false
		for _, p := range plans {
			line := p.finding.Object.Source.Line
			if line < doc.First || line > last {
				continue
			}
			next, err := applyRemedy(text, line-doc.First+1, p.remedy.Ops, nl)
			if err != nil {
				refused[key(p.finding)] = err.Error()
				continue
			}
			text, changed = next, true
			applied = append(applied, Applied{Finding: p.finding, Note: p.remedy.Note})
		}
		if changed {
			off := doc.Offset
			out = append(append(append([]byte{}, out[:off]...), text...), out[off+len(doc.Data):]...)
		}
	}
	return out, applied, refused
}

// applyRemedy applies ops to the object whose mapping starts at objLine
// (1-based, within doc), checking after each edit that the document still
// parses and that the object changed exactly as the op says.
func applyRemedy(doc []byte, objLine int, ops []rules.Op, nl string) ([]byte, error) {
	for _, op := range ops {
		obj, err := parseObject(doc, objLine)
		if err != nil {
			return nil, err
		}
		before, err := manifest.NodeJSON(obj)
		if err != nil {
			return nil, err
		}
		ed := newEditor(doc, nl, indentStep(obj))
		next, err := ed.set(obj, op.Path, op.Value)
		if err != nil {
			return nil, err
		}
		newObj, err := parseObject(next, objLine)
		if err != nil {
			return nil, fmt.Errorf("the edited text does not parse: %w", err)
		}
		after, err := manifest.NodeJSON(newObj)
		if err != nil {
			return nil, err
		}
		if err := sameExceptOp(before, after, op); err != nil {
			return nil, err
		}
		doc = next
	}
	return doc, nil
}

// parseObject parses a document and finds the object mapping that starts
// at line: the document itself, or an item of a List.
func parseObject(doc []byte, line int) (*yaml.Node, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(doc, &root); err != nil {
		return nil, err
	}
	if len(root.Content) == 0 {
		return nil, fmt.Errorf("empty document")
	}
	top := root.Content[0]
	if top.Line == line && top.Kind == yaml.MappingNode {
		return top, nil
	}
	if _, items := lookup(top, "items"); items != nil && items.Kind == yaml.SequenceNode {
		for _, it := range items.Content {
			if it.Line == line && it.Kind == yaml.MappingNode {
				return it, nil
			}
		}
	}
	return nil, fmt.Errorf("no object at line %d", line)
}

// indentStep guesses the document's indentation step from the object's
// first nested block mapping; 2 when there is none.
func indentStep(obj *yaml.Node) int {
	for i := 1; i < len(obj.Content); i += 2 {
		v := obj.Content[i]
		if v.Kind == yaml.MappingNode && !isFlow(v) && len(v.Content) > 0 {
			if step := v.Content[0].Column - obj.Content[i-1].Column; step > 0 {
				return step
			}
		}
	}
	return 2
}

// sameExceptOp checks that after is before with op applied, and nothing
// else changed.
func sameExceptOp(before, after []byte, op rules.Op) error {
	var want, got any
	if err := json.Unmarshal(before, &want); err != nil {
		return err
	}
	if err := json.Unmarshal(after, &got); err != nil {
		return err
	}
	segs, err := parsePath(op.Path)
	if err != nil {
		return err
	}
	value, err := generic(op.Value)
	if err != nil {
		return err
	}
	want, err = setGeneric(want, segs, value)
	if err != nil {
		return err
	}
	if !reflect.DeepEqual(want, got) {
		return fmt.Errorf("editing %s would change more than that field", op.Path)
	}
	return nil
}

func generic(v any) (any, error) {
	var toJSON func(any) any
	toJSON = func(v any) any {
		switch t := v.(type) {
		case rules.Map:
			m := map[string]any{}
			for _, f := range t {
				m[f.Key] = toJSON(f.Value)
			}
			return m
		case []any:
			out := make([]any, len(t))
			for i, x := range t {
				out[i] = toJSON(x)
			}
			return out
		}
		return v
	}
	data, err := json.Marshal(toJSON(v))
	if err != nil {
		return nil, err
	}
	var out any
	return out, json.Unmarshal(data, &out)
}

func setGeneric(cur any, segs []segment, value any) (any, error) {
	if len(segs) == 0 {
		return value, nil
	}
	s := segs[0]
	if s.index >= 0 {
		list, ok := cur.([]any)
		if !ok || s.index >= len(list) {
			return nil, fmt.Errorf("no list item %d", s.index)
		}
		v, err := setGeneric(list[s.index], segs[1:], value)
		list[s.index] = v
		return list, err
	}
	m, ok := cur.(map[string]any)
	if !ok {
		if cur != nil {
			return nil, fmt.Errorf("%s is not a mapping", s.key)
		}
		m = map[string]any{}
	}
	v, err := setGeneric(m[s.key], segs[1:], value)
	m[s.key] = v
	return m, err
}
