package manifest

import (
	"fmt"
	"regexp"
	"strings"
)

// lostError is an input error that is not about one document: it kept a
// file, a folder, standard input, a chart or a kustomization out of the
// audit, or (what is "") nothing at all. It reads and unwraps as its
// *Error, so reports see the file and line. Errors about one document stay
// plain *Error values, as Decode has always returned them.
type lostError struct {
	err  *Error
	what string // "file", "folder", "path", "standard input", "Helm chart", "kustomization" or ""
}

// lose records an input error that is not about one document.
func lose(res *Result, what string, e *Error) { res.fail(&lostError{e, what}) }

func (e *lostError) Error() string { return e.err.Error() }
func (e *lostError) Unwrap() error { return e.err }

// listItemRe matches the start of the message of an error about one item
// of a List (decodeObject's listCtx).
var listItemRe = regexp.MustCompile(`^\w*List item \d+: `)

// LeftOut says what the input errors kept out of the audit, counted by
// kind: "2 documents, 1 file and 1 Helm chart". An error about one
// document (invalid YAML, a template, a field of the wrong type) costs that
// document, or that item of a List; one about a file, folder or chart costs
// all of it; one that costs nothing (a folder with no manifests) is not
// counted. It returns "" when nothing was left out.
func LeftOut(errs []error) string {
	order := []string{"document", "List item", "file", "folder", "path", "Helm chart", "kustomization", "standard input"}
	counts := map[string]int{}
	for _, err := range errs {
		switch e := err.(type) {
		case *lostError:
			counts[e.what]++
		case *Error:
			switch {
			case listItemRe.MatchString(e.Msg):
				counts["List item"]++
			default:
				counts["document"]++
			}
		}
	}
	var parts []string
	for _, what := range order {
		switch n := counts[what]; {
		case n == 0:
		case what == "standard input":
			parts = append(parts, what)
		case n == 1:
			parts = append(parts, "1 "+what)
		default:
			parts = append(parts, fmt.Sprintf("%d %ss", n, what))
		}
	}
	switch len(parts) {
	case 0:
		return ""
	case 1:
		return parts[0]
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}
