package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/bmatcuk/doublestar/v4"

	"github.com/rollguard/rollguard/pkg/render"
)

// Options control which files Load reads.
type Options struct {
	// Stdin is read for the path "-".
	Stdin io.Reader
	// Ignore holds glob patterns ("**" allowed) of files and folders to
	// skip while walking folders; they are matched against the path as the
	// walk found it and against its base name.
	Ignore []string
	// Render builds a Helm chart or kustomization folder into the stream
	// its tool prints (render.Render does, with the user's helm and
	// kustomize). Load refuses such folders when it is nil.
	Render func(render.Unit) ([]byte, error)
}

// manifestExt lists the file name endings read when walking a folder.
var manifestExt = map[string]bool{".yaml": true, ".yml": true, ".json": true}

// notManifests are files that live beside manifests but are not objects.
// A folder holding Chart.yaml or a kustomization file is rendered, not
// walked, so what this catches is strays: a values file outside its chart.
var notManifests = map[string]bool{
	"kustomization.yaml": true, "kustomization.yml": true, "Kustomization": true,
	"values.yaml": true, "values.yml": true, "values.schema.json": true,
	"Chart.yaml": true, "Chart.lock": true,
}

// Load reads every path: "-" is standard input, a Helm chart or
// kustomization folder is rendered with opts.Render, any other folder is
// walked recursively for .yaml, .yml and .json files and for chart and
// kustomization folders (each rendered as a whole, its own files not read),
// and anything else is read as a file. Errors about one file, document or
// folder are collected in the result and loading goes on; a path that does
// not exist is such an error too.
func Load(paths []string, opts Options) *Result {
	res := &Result{}
	// Reading and rendering go in input order; decoding, most of the
	// work, is spread over every core in chunks of documents, which the
	// decoders take while the next files are read, and the chunks'
	// results are put together in input order again.
	var parts []*part
	jobs, done := decodeParts()
	// What the walk itself records (files that cannot be read, counts)
	// goes into the parts too, so that errors keep their input order.
	walked := &Result{}
	flush := func() {
		if len(walked.Errors) > 0 || walked.Files > 0 {
			parts = append(parts, &part{res: *walked})
			*walked = Result{}
		}
	}
	walk(paths, opts, walked, func(name string, data []byte) {
		flush()
		docs := Documents(data)
		for i := range docs {
			docs[i].fixed = true // read here, and written to by no one
		}
		braces := bytes.Contains(data, []byte("{{"))
		for len(docs) > 0 {
			n := min(len(docs), chunkDocs)
			pt := &part{name: name, docs: docs[:n], braces: braces}
			parts = append(parts, pt)
			jobs <- pt
			docs = docs[n:]
		}
	}, func(u render.Unit) {
		flush()
		pt := &part{}
		renderUnit(u, opts.Render, &pt.res)
		parts = append(parts, pt)
	})
	flush()
	close(jobs)
	<-done
	for _, pt := range parts {
		mergeInto(res, &pt.res)
	}
	return res
}

// chunkDocs is how many documents one decoding job takes: enough to make
// a job worth scheduling, few enough to balance one large stream over the
// cores.
const chunkDocs = 64

// part is a run of documents of one file, or a rendered unit already
// decoded, and what decoding it produced.
type part struct {
	name   string
	docs   []Document
	braces bool // the file holds "{{": documents are judged as DecodeFile does
	res    Result
}

// decodeParts starts a decoder per core, each decoding the parts sent on
// jobs into their results; done is closed once jobs is closed and every
// part sent is decoded.
func decodeParts() (jobs chan<- *part, done <-chan struct{}) {
	ch := make(chan *part, 2*runtime.GOMAXPROCS(0))
	fin := make(chan struct{})
	var wg sync.WaitGroup
	for range max(1, runtime.GOMAXPROCS(0)) {
		wg.Go(func() {
			for pt := range ch {
				decodeDocs(pt.name, pt.docs, pt.braces, &pt.res)
			}
		})
	}
	go func() {
		wg.Wait()
		close(fin)
	}()
	return ch, fin
}

// Read finds and reads the files Load would decode, calling each with the
// file's name and bytes in order; read errors are collected in res. It is
// for callers that edit files (rollguard fix), so a Helm chart or
// kustomization folder is refused as an input error: its objects exist only
// once rendered, and rendered output has no file to edit.
func Read(paths []string, opts Options, res *Result, each func(name string, data []byte)) {
	walk(paths, opts, res, each, func(u render.Unit) {
		how := "helm template " + render.ReleaseName(u.Dir) + " " + u.Dir
		if u.Tool == render.Kustomize {
			how = "kustomize build " + u.Dir
		}
		lose(res, u.Kind(), &Error{File: u.Dir, Msg: fmt.Sprintf("is a %s (%s): its objects exist only once rendered, "+
			"and rendered output has no file to edit, so nothing in it was read or changed; "+
			"see the findings with rollguard audit %s and edit its files by hand, or fix the rendered stream: %s | rollguard fix - > fixed.yaml",
			u.Kind(), filepath.Base(u.File), u.Dir, how)})
	})
}

// walk visits paths in order: files and standard input through each,
// chart and kustomization folders through unit.
func walk(paths []string, opts Options, res *Result, each func(name string, data []byte), unit func(render.Unit)) {
	for _, p := range paths {
		if p == "-" {
			if opts.Stdin == nil {
				lose(res, "standard input", &Error{File: StdinName, Msg: "no standard input"})
				continue
			}
			data, err := io.ReadAll(opts.Stdin)
			if err != nil {
				lose(res, "standard input", &Error{File: StdinName, Msg: "cannot read", Err: err})
				continue
			}
			res.Files++
			each(StdinName, data)
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			lose(res, "path", &Error{File: p, Msg: "cannot read", Err: unwrapPathError(err)})
			continue
		}
		if !fi.IsDir() {
			readFile(p, res, each)
			continue
		}
		walkDir(p, opts.Ignore, res, each, unit)
	}
}

// walkDir reads a folder's manifests in path order. A folder holding
// Chart.yaml or a kustomization file, the root included, is handed to unit
// whole and not walked further: its templates are not manifests, and a
// kustomization's resource files and patches reach the audit through the
// build (a patch read on its own would be a partial object).
func walkDir(root string, ignore []string, res *Result, each func(string, []byte), unit func(render.Unit)) {
	type entry struct {
		path string
		unit *render.Unit
	}
	var found []entry
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			what := "file"
			if d != nil && d.IsDir() {
				what = "folder"
			}
			lose(res, what, &Error{File: path, Msg: "cannot read", Err: unwrapPathError(err)})
			if what == "folder" {
				return fs.SkipDir
			}
			return nil
		}
		name := d.Name()
		if ignored(path, name, ignore) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if path != root && strings.HasPrefix(name, ".") {
				return fs.SkipDir // .git, .github and the like hold no manifests
			}
			if u, ok := render.Detect(path); ok {
				found = append(found, entry{path, &u})
				return fs.SkipDir
			}
			return nil
		}
		if manifestExt[strings.ToLower(filepath.Ext(name))] && !notManifests[name] {
			found = append(found, entry{path: path})
		}
		return nil
	})
	if err != nil {
		lose(res, "folder", &Error{File: root, Msg: "cannot walk", Err: err})
	}
	if len(found) == 0 {
		lose(res, "", &Error{File: root, Msg: "no manifests (.yaml, .yml or .json files, Helm charts or kustomizations) found in this folder"})
	}
	sort.Slice(found, func(i, j int) bool { return found[i].path < found[j].path })
	for _, e := range found {
		if e.unit != nil {
			unit(*e.unit)
			continue
		}
		readFile(e.path, res, each)
	}
}

func ignored(path, name string, patterns []string) bool {
	slashed := filepath.ToSlash(path)
	for _, p := range patterns {
		if ok, _ := doublestar.Match(p, slashed); ok {
			return true
		}
		if ok, _ := doublestar.Match(p, name); ok {
			return true
		}
	}
	return false
}

func readFile(path string, res *Result, each func(string, []byte)) {
	data, err := os.ReadFile(path)
	if err != nil {
		lose(res, "file", &Error{File: path, Msg: "cannot read", Err: unwrapPathError(err)})
		return
	}
	res.Files++
	each(path, data)
}

// DecodeFile is Decode for a file that may hold unrendered templates. Each
// document is judged alone. One that parses and decodes is read whatever
// its strings hold: a PrometheusRule's "Instance {{ $labels.instance }}
// down" or an Argo Workflow's "echo {{inputs.parameters.message}}" is valid
// YAML meant for another program. One that fails, and has a template
// directive where YAML reads structure, is reported as a template at the
// directive's line, with how to render it, because the YAML error the
// directive caused would mislead; its YAML error is kept in the message.
func DecodeFile(name string, data []byte, res *Result) {
	decodeDocs(name, Documents(data), bytes.Contains(data, []byte("{{")), res)
}

// decodeDocs decodes documents of one file; braces says whether the file
// holds "{{" anywhere, so that the template judgement can be skipped.
func decodeDocs(name string, docs []Document, braces bool, res *Result) {
	if !braces {
		for _, doc := range docs {
			decodeDocument(name, doc, res)
		}
		return
	}
	for _, doc := range docs {
		if !bytes.Contains(doc.Data, []byte("{{")) {
			decodeDocument(name, doc, res)
			continue
		}
		var one Result
		decodeDocument(name, doc, &one)
		line := TemplateLine(doc.Data)
		if len(one.Errors) == 0 || line == 0 {
			mergeInto(res, &one)
			continue
		}
		// A template that happens to decode in part is not the objects it
		// seems to be: the whole document goes, with one error.
		res.fail(&Error{File: name, Line: doc.First + line - 1, Msg: "contains template directives ({{ ... }}) and is not a valid manifest (" +
			errorAt(one.Errors[0]) + "); " + renderHint(name)})
	}
}

// errorAt renders a decoding error without its file name, which the
// template error that carries it names already.
func errorAt(err error) string {
	me, ok := err.(*Error)
	if !ok {
		return err.Error()
	}
	s := me.Msg
	if me.Err != nil {
		s += ": " + me.Err.Error()
	}
	if me.Line > 0 {
		s = fmt.Sprintf("line %d: %s", me.Line, s)
	}
	return s
}

// renderHint says how to audit a template: through the chart folder that
// holds the file when there is one, else by rendering it first.
func renderHint(name string) string {
	if name != StdinName {
		dir := filepath.Dir(name)
		for range 4 { // chart/templates/sub/x.yaml is as deep as templates usually go
			if fi, err := os.Stat(filepath.Join(dir, "Chart.yaml")); err == nil && !fi.IsDir() {
				return "it belongs to the Helm chart " + dir + ": audit the chart instead, which rollguard renders " +
					"(rollguard audit " + dir + ", values with -f and --set), or render it yourself: " +
					"helm template " + render.ReleaseName(dir) + " " + dir + " | rollguard audit -"
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "rollguard reads rendered manifests: give it the chart folder (rollguard audit CHART), " +
		"or render it first: helm template CHART | rollguard audit -"
}

// TemplateLine returns the line of the first template directive that
// stands where YAML would read it as structure, or 0. "{{" inside a quoted
// string or a block scalar ("key: |") is data, legal in a manifest: an
// annotation or a ConfigMap holding a template.
func TemplateLine(data []byte) int {
	if !bytes.Contains(data, []byte("{{")) {
		return 0
	}
	blockIndent := -1
	for i, line := range bytes.Split(data, []byte("\n")) {
		t := bytes.TrimSpace(line)
		indent := len(line) - len(bytes.TrimLeft(line, " "))
		if blockIndent >= 0 {
			if len(t) == 0 || indent > blockIndent {
				continue
			}
			blockIndent = -1
		}
		if len(t) == 0 || t[0] == '#' {
			continue
		}
		if j := bytes.Index(t, []byte("{{")); j >= 0 {
			before := t[:j]
			if bytes.Count(before, []byte(`"`))%2 == 0 && bytes.Count(before, []byte(`'`))%2 == 0 {
				return i + 1
			}
		}
		if opensBlockScalar(t) {
			blockIndent = indent
		}
	}
	return 0
}

// opensBlockScalar reports whether a line ends with a block scalar header
// ("|", ">-", "|2+" ...), optionally followed by a comment.
func opensBlockScalar(t []byte) bool {
	if k := bytes.Index(t, []byte(" #")); k >= 0 {
		t = bytes.TrimSpace(t[:k])
	}
	j := bytes.LastIndexAny(t, "|>")
	if j < 0 {
		return false
	}
	for _, c := range t[j+1:] {
		if c != '-' && c != '+' && (c < '1' || c > '9') {
			return false
		}
	}
	return j == 0 || t[j-1] == ' '
}

// unwrapPathError drops the *fs.PathError wrapper whose path the caller
// already names.
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
