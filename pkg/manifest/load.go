package manifest

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
)

// Options control which files Load reads.
type Options struct {
	// Stdin is read for the path "-".
	Stdin io.Reader
	// Ignore holds glob patterns ("**" allowed) of files and folders to
	// skip while walking folders; they are matched against the path as the
	// walk found it and against its base name.
	Ignore []string
}

// manifestExt lists the file name endings read when walking a folder.
var manifestExt = map[string]bool{".yaml": true, ".yml": true, ".json": true}

// notManifests are files that live beside manifests but are not objects.
var notManifests = map[string]bool{
	"kustomization.yaml": true, "kustomization.yml": true, "Kustomization": true,
	"values.yaml": true, "values.yml": true, "values.schema.json": true,
	"Chart.yaml": true, "Chart.lock": true,
}

// Load reads every path: "-" is standard input, a folder is walked
// recursively for .yaml, .yml and .json files, anything else is read as a
// file. Errors about one file or document are collected in the result and
// loading goes on; a path that does not exist is such an error too.
func Load(paths []string, opts Options) *Result {
	res := &Result{}
	Read(paths, opts, res, func(name string, data []byte) { DecodeFile(name, data, res) })
	return res
}

// Read finds and reads the files Load would decode, calling each with the
// file's name and bytes in order; read errors are collected in res.
func Read(paths []string, opts Options, res *Result, each func(name string, data []byte)) {
	for _, p := range paths {
		if p == "-" {
			if opts.Stdin == nil {
				res.fail(&Error{File: StdinName, Msg: "no standard input"})
				continue
			}
			data, err := io.ReadAll(opts.Stdin)
			if err != nil {
				res.fail(&Error{File: StdinName, Msg: "cannot read", Err: err})
				continue
			}
			res.Files++
			each(StdinName, data)
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			res.fail(&Error{File: p, Msg: "cannot read", Err: unwrapPathError(err)})
			continue
		}
		if !fi.IsDir() {
			readFile(p, res, each)
			continue
		}
		walkDir(p, opts.Ignore, res, each)
	}
}

func walkDir(root string, ignore []string, res *Result, each func(string, []byte)) {
	var files []string
	chart := false
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			res.fail(&Error{File: path, Msg: "cannot read", Err: unwrapPathError(err)})
			if d != nil && d.IsDir() {
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
			if _, err := os.Stat(filepath.Join(path, "Chart.yaml")); err == nil {
				chart = true
				res.fail(&Error{File: path, Msg: "is a Helm chart: its templates are not manifests; " +
					"audit the rendered output instead: helm template " + path + " | rollguard audit -"})
				return fs.SkipDir
			}
			return nil
		}
		if manifestExt[strings.ToLower(filepath.Ext(name))] && !notManifests[name] {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		res.fail(&Error{File: root, Msg: "cannot walk", Err: err})
	}
	if len(files) == 0 && !chart {
		res.fail(&Error{File: root, Msg: "no manifests (.yaml, .yml or .json files) found in this folder"})
	}
	sort.Strings(files)
	for _, f := range files {
		readFile(f, res, each)
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
		res.fail(&Error{File: path, Msg: "cannot read", Err: unwrapPathError(err)})
		return
	}
	res.Files++
	each(path, data)
}

// DecodeFile is Decode for a whole file, refusing templates before parsing
// them: a Helm or Go template may parse as YAML by accident and then be
// read as something it is not.
func DecodeFile(name string, data []byte, res *Result) {
	if line := TemplateLine(data); line > 0 {
		res.fail(&Error{File: name, Line: line, Msg: "contains template directives ({{ ... }}): " +
			"rollguard reads rendered manifests; render it first (helm template CHART) and pass the output with -"})
		return
	}
	Decode(name, data, res)
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
