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
	"slices"
	"sort"
	"strings"

	"github.com/pmezard/go-difflib/difflib"
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

// Applied is a finding whose remedy was applied.
type Applied struct {
	Finding rules.Finding
	Note    string
}

// Edit is one change fix made to a file: one op of a rule's remedy. Every
// edit is here, including those of later rounds of the fix loop (a grace
// period sized for a preStop delay added in the round before).
type Edit struct {
	File string
	// Object is the object edited, as the round that edited it read it.
	Object *manifest.Object
	// Rules are the rules whose remedies asked for the edit: the one that
	// made it, then any that asked for the same value at the same path in
	// the same round or later (RG102 and RG104 both replace a hook that
	// only sleeps with the native action).
	Rules []*rules.Rule
	// Path is the field that was set, below the object, and Value what it
	// was set to.
	Path  string
	Value any
	// Notes explain the edit: its remedy's note, and the notes fix adds
	// itself (the Kubernetes version a native sleep needs).
	Notes []string
	// Line is the line of Path's key in the fixed text. OriginalLine is the
	// line of the text before fixing where the edit is: the edited line, or
	// for an inserted field the line it goes in before, as the diff shows.
	Line, OriginalLine int
	// Round is the round of the fix loop that made the edit: 0 for the
	// findings of the first audit, 1 or more for findings that appeared
	// once earlier edits were made.
	Round int

	file, doc, item int // where the object is: input, document, List item (-1 for none)
}

// ValueText renders the edit's value as one line of YAML.
func (e *Edit) ValueText() string { return flowText(e.Value) }

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
	Files []*File
	// Applied lists the findings whose remedies were applied, Edits every
	// change made, in the order they were made.
	Applied   []Applied
	Edits     []Edit
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
	var edits []*Edit
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
		for fi, file := range res.Files {
			plans := byFile[file.Name]
			if len(plans) == 0 {
				continue
			}
			after, done, errs := applyFile(file.After, plans)
			file.After = after
			for _, d := range done {
				if d.first {
					res.Applied = append(res.Applied, Applied{Finding: d.plan.finding, Note: d.plan.remedy.Note})
				}
				edits = record(edits, d, fi, file.Name, round, opts.Fix)
			}
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
	locate(res.Files, edits)
	for _, e := range edits {
		res.Edits = append(res.Edits, *e)
	}
	return res
}

// record adds an applied op to the edits: a new edit when it changed the
// text, or one more rule on the earlier edit that had already set the
// same value at the same path.
func record(edits []*Edit, d doneOp, file int, name string, round int, o rules.FixOptions) []*Edit {
	var notes []string
	if d.first && d.plan.remedy.Note != "" {
		notes = append(notes, d.plan.remedy.Note)
	}
	// The native sleep action is the default, so a cluster older than
	// 1.30 would reject the fixed manifest; say so unless the remedy did.
	if writesSleepHandler(d.op) && o.NativeSleep() && !strings.Contains(d.plan.remedy.Note, "1.30") {
		notes = append(notes, nativeSleepNote)
	}
	if !d.edited {
		for _, e := range slices.Backward(edits) {
			if e.file == file && e.doc == d.doc && e.item == d.item && e.Path == d.op.Path {
				if !slices.Contains(e.Rules, d.plan.finding.Rule) {
					e.Rules = append(e.Rules, d.plan.finding.Rule)
				}
				for _, n := range notes {
					if !slices.Contains(e.Notes, n) {
						e.Notes = append(e.Notes, n)
					}
				}
				break
			}
		}
		return edits
	}
	return append(edits, &Edit{
		File: name, Object: d.plan.finding.Object, Rules: []*rules.Rule{d.plan.finding.Rule},
		Path: d.op.Path, Value: d.op.Value, Notes: notes, Round: round,
		file: file, doc: d.doc, item: d.item,
	})
}

const nativeSleepNote = "the native sleep action needs Kubernetes 1.30 or later (beta and on by default in 1.30, GA in 1.34); " +
	"for older clusters, run fix with --k8s-version (e.g. 1.29) to get an exec sleep instead"

// writesSleepHandler reports whether op writes a lifecycle handler's
// "sleep" key, as opposed to changing the seconds of one already there.
func writesSleepHandler(op rules.Op) bool {
	segs, err := parsePath(op.Path)
	if err != nil || len(segs) == 0 {
		return false
	}
	parent := ""
	if len(segs) > 1 {
		parent = segs[len(segs)-2].key
	}
	var walk func(parent, key string, v any) bool
	walk = func(parent, key string, v any) bool {
		if key == "sleep" && (parent == "preStop" || parent == "postStart") {
			return true
		}
		if m, ok := v.(rules.Map); ok {
			for _, f := range m {
				if walk(key, f.Key, f.Value) {
					return true
				}
			}
		}
		return false
	}
	return walk(parent, segs[len(segs)-1].key, op.Value)
}

// locate sets each edit's lines: where its field is in the fixed text, and
// where that is in the text before fixing, by the same line matching the
// unified diff uses.
func locate(files []*File, edits []*Edit) {
	for fi, f := range files {
		var docs []manifest.Document
		var codes []difflib.OpCode
		for _, e := range edits {
			if e.file != fi {
				continue
			}
			if docs == nil {
				docs = manifest.Documents(f.After)
				codes = difflib.NewMatcher(difflib.SplitLines(string(f.Before)), difflib.SplitLines(string(f.After))).GetOpCodes()
			}
			doc := docs[e.doc]
			e.Line = doc.First - 1 + fieldLine(doc.Data, e.item, e.Path)
			e.OriginalLine = originalLine(codes, e.Line)
		}
	}
}

// fieldLine returns the line (within doc) of the key of path in the object
// at item, or of the nearest parent on the way that is there.
func fieldLine(doc []byte, item int, path string) int {
	obj, err := objectAt(doc, item)
	if err != nil {
		return 1
	}
	line := obj.Line
	segs, err := parsePath(path)
	if err != nil {
		return line
	}
	cur := obj
	for _, s := range segs {
		switch {
		case s.index >= 0 && cur.Kind == yaml.SequenceNode && s.index < len(cur.Content):
			cur = cur.Content[s.index]
			line = cur.Line
		case s.index < 0 && cur.Kind == yaml.MappingNode:
			k, v := lookup(cur, s.key)
			if k == nil {
				return line
			}
			cur, line = v, k.Line
		default:
			return line
		}
	}
	return line
}

// originalLine maps a line of the fixed text to the text before fixing:
// an unchanged or rewritten line to its counterpart, an inserted line to
// the line it was inserted before.
func originalLine(codes []difflib.OpCode, line int) int {
	j := line - 1
	for _, c := range codes {
		if j < c.J1 || j >= c.J2 {
			continue
		}
		switch c.Tag {
		case 'e':
			return c.I1 + (j - c.J1) + 1
		case 'r':
			return c.I1 + min(j-c.J1, c.I2-c.I1-1) + 1
		default: // 'i': the line the insertion goes before
			return c.I1 + 1
		}
	}
	return line
}

type planned struct {
	finding rules.Finding
	remedy  rules.Remedy
}

// doneOp is one op of a remedy that was applied.
type doneOp struct {
	plan      planned
	op        rules.Op
	first     bool // the remedy's first op
	edited    bool // false when the field already held the value
	doc, item int
}

func key(f rules.Finding) string {
	return strings.Join([]string{f.Rule.ID, f.Object.Source.File, f.Object.Ref(), f.Container}, "\x00")
}

// applyFile applies the planned remedies to one file's text, document by
// document from the end, so that earlier offsets stay valid. It returns the
// new text, the ops applied, and the findings whose edits were refused.
func applyFile(data []byte, plans []planned) ([]byte, []doneOp, map[string]string) {
	nl := "\n"
	if bytes.Contains(data, []byte("\r\n")) {
		nl = "\r\n"
	}
	docs := manifest.Documents(data)
	refused := map[string]string{}
	var done []doneOp
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
			next, item, edited, err := applyRemedy(text, line-doc.First+1, p.remedy.Ops, nl)
			if err != nil {
				refused[key(p.finding)] = err.Error()
				continue
			}
			text, changed = next, true
			for i, op := range p.remedy.Ops {
				done = append(done, doneOp{plan: p, op: op, first: i == 0, edited: edited[i], doc: d, item: item})
			}
		}
		if changed {
			off := doc.Offset
			out = append(append(append([]byte{}, out[:off]...), text...), out[off+len(doc.Data):]...)
		}
	}
	return out, done, refused
}

// applyRemedy applies ops to the object whose mapping starts at objLine
// (1-based, within doc), checking after each edit that the document still
// parses and that the object changed exactly as the op says. It returns
// the object's List item index (-1 for none) and, for each op, whether it
// changed the text: an op whose field already holds its value (set by an
// earlier remedy) is skipped.
func applyRemedy(doc []byte, objLine int, ops []rules.Op, nl string) ([]byte, int, []bool, error) {
	edited := make([]bool, len(ops))
	item := -1
	for i, op := range ops {
		obj, idx, err := parseObject(doc, objLine)
		if err != nil {
			return nil, 0, nil, err
		}
		item = idx
		before, err := manifest.NodeJSON(obj)
		if err != nil {
			return nil, 0, nil, err
		}
		if holds(before, op) {
			continue
		}
		ed := newEditor(doc, nl, indentStep(obj))
		next, err := ed.set(obj, op.Path, op.Value)
		if err != nil {
			return nil, 0, nil, err
		}
		newObj, _, err := parseObject(next, objLine)
		if err != nil {
			return nil, 0, nil, fmt.Errorf("the edited text does not parse: %w", err)
		}
		after, err := manifest.NodeJSON(newObj)
		if err != nil {
			return nil, 0, nil, err
		}
		if err := sameExceptOp(before, after, op); err != nil {
			return nil, 0, nil, err
		}
		doc, edited[i] = next, true
	}
	return doc, item, edited, nil
}

// holds reports whether the object (as JSON) already has op's value at
// op's path.
func holds(obj []byte, op rules.Op) bool {
	var cur any
	if json.Unmarshal(obj, &cur) != nil {
		return false
	}
	segs, err := parsePath(op.Path)
	if err != nil {
		return false
	}
	for _, s := range segs {
		if s.index >= 0 {
			list, ok := cur.([]any)
			if !ok || s.index >= len(list) {
				return false
			}
			cur = list[s.index]
			continue
		}
		m, ok := cur.(map[string]any)
		if !ok {
			return false
		}
		if cur, ok = m[s.key]; !ok {
			return false
		}
	}
	want, err := generic(op.Value)
	return err == nil && reflect.DeepEqual(cur, want)
}

// parseObject parses a document and finds the object mapping that starts
// at line: the document itself (item -1), or an item of a List.
func parseObject(doc []byte, line int) (*yaml.Node, int, error) {
	top, err := parseTop(doc)
	if err != nil {
		return nil, 0, err
	}
	if top.Line == line && top.Kind == yaml.MappingNode {
		return top, -1, nil
	}
	if _, items := lookup(top, "items"); items != nil && items.Kind == yaml.SequenceNode {
		for i, it := range items.Content {
			if it.Line == line && it.Kind == yaml.MappingNode {
				return it, i, nil
			}
		}
	}
	return nil, 0, fmt.Errorf("no object at line %d", line)
}

// objectAt parses a document and returns the object that parseObject
// called item: objects move down as edits above them add lines, but stay
// the same item.
func objectAt(doc []byte, item int) (*yaml.Node, error) {
	top, err := parseTop(doc)
	if err != nil || item < 0 {
		return top, err
	}
	if _, items := lookup(top, "items"); items != nil && items.Kind == yaml.SequenceNode && item < len(items.Content) {
		return items.Content[item], nil
	}
	return nil, fmt.Errorf("no List item %d", item)
}

func parseTop(doc []byte) (*yaml.Node, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(doc, &root); err != nil {
		return nil, err
	}
	if len(root.Content) == 0 {
		return nil, fmt.Errorf("empty document")
	}
	return root.Content[0], nil
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
