// Package manifest implements loading Kubernetes objects from YAML and JSON
// files, folders and streams, keeping where each object and its key fields
// came from so that findings can point at a file and line.
//
// Only the kinds rollguard reasons about are decoded into typed objects; every
// other object is counted and dropped early, so a large stream of ConfigMaps
// and CRDs costs little memory.
package manifest

import (
	"fmt"
	"strings"
)

// StdinName is the file name shown for objects read from standard input.
const StdinName = "<stdin>"

// Source says where an object came from. For objects read from a live
// cluster File is empty and Line is zero.
type Source struct {
	File string `json:"file,omitempty"`
	Line int    `json:"line,omitempty"`
}

// String renders the source as file:line, the form editors and terminals link.
func (s Source) String() string {
	switch {
	case s.File == "":
		return ""
	case s.Line == 0:
		return s.File
	default:
		return fmt.Sprintf("%s:%d", s.File, s.Line)
	}
}

// Object is one decoded Kubernetes object.
type Object struct {
	APIVersion string
	Kind       string
	Namespace  string // as written; empty means "the default namespace"
	Name       string
	Source     Source
	// Value holds the typed object, e.g. *appsv1.Deployment, or *Rollout.
	Value any

	// lines maps field paths such as "spec.template.spec.containers[0].readinessProbe"
	// to their line. Only paths that rules point at are kept (see keepPath).
	lines []pathLine
}

type pathLine struct {
	path string
	line int
}

// Ref renders the object as kubectl names it: kind/name, with the namespace
// when it has one.
func (o *Object) Ref() string {
	if o.Namespace == "" {
		return o.Kind + "/" + o.Name
	}
	return o.Namespace + "/" + o.Kind + "/" + o.Name
}

// At returns the source of the most specific recorded field on the way to
// path: the field itself when it was recorded, else its closest recorded
// parent, else the object itself. A path that does not exist in the
// manifest (because the rule is about a missing field) therefore points at
// the parent that should hold it.
func (o *Object) At(path string) Source {
	src := o.Source
	if src.File == "" {
		return src
	}
	for p := path; p != ""; p = parentPath(p) {
		for _, pl := range o.lines {
			if pl.path == p {
				src.Line = pl.line
				return src
			}
		}
	}
	return src
}

func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

// Error is an input error: a file that cannot be read, a document that is
// not valid YAML or not a Kubernetes object, a field of the wrong type.
type Error struct {
	File string
	Line int // 0 when the error is about the whole file
	Msg  string
	Err  error
}

func (e *Error) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", loc, e.Msg, e.Err)
	}
	return fmt.Sprintf("%s: %s", loc, e.Msg)
}

func (e *Error) Unwrap() error { return e.Err }

// Result is what a load produced: the objects, the input errors (each
// naming file and line; loading goes on past them), and how many objects of
// kinds that rollguard does not reason about were skipped, by kind.
type Result struct {
	Objects []*Object
	Errors  []error
	Skipped map[string]int
	// Others are the objects of custom resource kinds that were skipped
	// (their API group has a dot and is not a Kubernetes group): an
	// operator's objects, which may own pods the input does not show.
	Others []Ref
	Files  int
}

// Ref names an object without its content.
type Ref struct {
	APIVersion, Kind, Namespace, Name string
}

func (r *Result) skip(apiVersion, kind, namespace, name string) {
	if r.Skipped == nil {
		r.Skipped = map[string]int{}
	}
	r.Skipped[kind]++
	if group, _, ok := strings.Cut(apiVersion, "/"); ok && strings.Contains(group, ".") && !strings.HasSuffix(group, ".k8s.io") {
		r.Others = append(r.Others, Ref{apiVersion, kind, namespace, name})
	}
}

func (r *Result) fail(err error) { r.Errors = append(r.Errors, err) }
