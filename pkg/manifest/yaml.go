package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	yaml "go.yaml.in/yaml/v3"
)

// Decode reads every object in data, a YAML stream or a JSON document,
// into res. name is the file name used in sources and errors. A document
// that fails does not stop the others: each is parsed on its own, as kubectl
// does, so one bad document costs only itself.
func Decode(name string, data []byte, res *Result) {
	for _, doc := range Documents(data) {
		decodeDocument(name, doc, res)
	}
}

// Document is one YAML document of a stream: its bytes, which are a slice
// of the stream's, and the line it starts on.
type Document struct {
	Data   []byte
	First  int // 1-based line of Data's first line in the stream
	Offset int // where Data starts in the stream
	// fixed says that Data is never written to, not even after decoding
	// (the loader's own copy of a file), so the fast parser may take its
	// values from Data itself instead of a copy.
	fixed bool
}

// Documents cuts a stream at "---" separator lines. A separator may be
// followed by a comment; one followed by content ("--- {a: 1}") starts a
// document whose first line is that content. The documents' bytes put
// together, with the separator lines, are the stream.
func Documents(data []byte) []Document {
	docs := make([]Document, 0, bytes.Count(data, []byte("\n---"))+1) // about as many as there are

	start, startLine, line := 0, 1, 1
	for pos := 0; pos < len(data); line++ {
		end := bytes.IndexByte(data[pos:], '\n')
		next := len(data)
		if end >= 0 {
			next = pos + end + 1
		}
		l := data[pos:next]
		if bytes.HasPrefix(l, []byte("---")) {
			rest := bytes.TrimSpace(l[3:])
			if len(l) == 3 || l[3] == ' ' || l[3] == '\t' || l[3] == '\n' || l[3] == '\r' {
				docs = append(docs, Document{Data: data[start:pos], First: startLine, Offset: start})
				if len(rest) == 0 || rest[0] == '#' {
					start, startLine = next, line+1
				} else {
					start, startLine = pos, line
				}
			}
		}
		pos = next
	}
	docs = append(docs, Document{Data: data[start:], First: startLine, Offset: start})
	return docs
}

var yamlLineRe = regexp.MustCompile(`^yaml: line (\d+): `)

func decodeDocument(name string, doc Document, res *Result) {
	root, release, err := parseDocument(doc)
	defer release()
	if err != nil {
		line := doc.First
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if m := yamlLineRe.FindStringSubmatch(err.Error()); m != nil {
			n, _ := strconv.Atoi(m[1])
			line = doc.First + n - 1
			msg = err.Error()[len(m[0]):]
		}
		res.fail(&Error{File: name, Line: line, Msg: "invalid YAML: " + msg})
		return
	}
	if len(root.Content) == 0 {
		return // only comments or whitespace
	}
	n := deref(root.Content[0])
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return // an empty document, as Helm renders for disabled templates
	}
	lineOff := doc.First - 1
	if n.Kind != yaml.MappingNode {
		res.fail(&Error{File: name, Line: n.Line + lineOff,
			Msg: "not a Kubernetes object: expected a mapping with apiVersion and kind, found a " + nodeKind(n)})
		return
	}
	decodeObject(name, n, lineOff, "", res)
}

// parseDocument parses one YAML document into yaml.v3's node tree: by the
// fast path when it takes the document, else by yaml.v3 itself.
// The caller calls release when it is done with the tree.
func parseDocument(doc Document) (root *yaml.Node, release func(), err error) {
	if root, release, ok := fastParse(doc.Data, doc.fixed); ok {
		return root, release, nil
	}
	var n yaml.Node
	err = yaml.Unmarshal(doc.Data, &n)
	return &n, func() {}, err
}

// decodeObject decodes one object (or a List's items) from its mapping node.
func decodeObject(name string, n *yaml.Node, lineOff int, listCtx string, res *Result) {
	line := n.Line + lineOff
	apiVersion, kind := scalarAt(n, "apiVersion"), scalarAt(n, "kind")
	if apiVersion == "" || kind == "" {
		missing := "apiVersion"
		if apiVersion != "" {
			missing = "kind"
		} else if kind == "" {
			missing = "apiVersion and kind"
		}
		res.fail(&Error{File: name, Line: line, Msg: listCtx + "not a Kubernetes object: " + missing + " missing"})
		return
	}
	if strings.HasSuffix(kind, "List") {
		if items := valueAt(n, "items"); items != nil && items.Kind == yaml.SequenceNode {
			for i, it := range items.Content {
				it = deref(it)
				ctx := fmt.Sprintf("%s item %d: ", kind, i)
				if it.Kind != yaml.MappingNode {
					res.fail(&Error{File: name, Line: it.Line + lineOff, Msg: ctx + "not a Kubernetes object"})
					continue
				}
				decodeObject(name, it, lineOff, ctx, res)
			}
			return
		}
	}
	key := typeKey{apiVersion, kind}
	newValue, ok := decoded[key]
	if !ok {
		if r, gone := removed[key]; gone {
			res.fail(&Error{File: name, Line: line, Msg: fmt.Sprintf(
				"%s%s %s is no longer served (removed in Kubernetes %s); use apiVersion %s",
				listCtx, kind, apiVersion, r.in, r.use)})
			return
		}
		if _, builtin := builtinKinds[apiVersion]; builtin && !builtinKindSet[key] {
			res.fail(&Error{File: name, Line: line, Msg: fmt.Sprintf(
				"%sunknown kind %q in apiVersion %s (check the spelling)", listCtx, kind, apiVersion)})
			return
		}
		md := valueAt(n, "metadata")
		res.skip(apiVersion, kind, scalarAt(md, "namespace"), scalarAt(md, "name"))
		return
	}

	obj := &Object{APIVersion: apiVersion, Kind: kind, Source: Source{File: name, Line: line}}
	s := scratches.Get().(*scratch)
	defer s.release() // encoding/json copies what it keeps
	w := jsonWriter{s: s, buf: &s.buf, lineOff: lineOff}
	if err := w.node(n); err != nil {
		res.fail(&Error{File: name, Line: w.errLine, Msg: listCtx + "cannot read " + kind, Err: err})
		return
	}
	if len(s.lines) > 0 {
		obj.lines = make([]pathLine, len(s.lines))
		copy(obj.lines, s.lines)
	}
	v := newValue()
	if err := json.Unmarshal(s.buf.Bytes(), v); err != nil {
		errLine := line
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			if f := fieldNode(n, strings.Split(te.Field, ".")); f != nil {
				errLine = f.Line + lineOff
			}
			err = fmt.Errorf("field %s: cannot use %s as %s", te.Field, te.Value, te.Type)
		}
		res.fail(&Error{File: name, Line: errLine, Msg: fmt.Sprintf("%sinvalid %s", listCtx, kind), Err: err})
		return
	}
	obj.Value = v
	if md := valueAt(n, "metadata"); md != nil {
		obj.Name, obj.Namespace = scalarAt(md, "name"), scalarAt(md, "namespace")
	}
	if obj.Name == "" {
		res.fail(&Error{File: name, Line: line, Msg: fmt.Sprintf("%s%s has no metadata.name", listCtx, kind)})
		return
	}
	res.Objects = append(res.Objects, obj)
}

// scratch is what rendering one object as JSON needs and need not keep:
// reused object after object, so that an object costs its JSON's copy in
// encoding/json and its line map, and not the buffers and path strings
// that led there.
type scratch struct {
	buf   bytes.Buffer
	path  []byte     // the path of the node being written
	lines []pathLine // the object's line map, copied out at the end
	pairs []mapPair  // the entries of the mappings being written
	// paths holds the line maps' path strings already made, so that
	// 20,000 objects share one "spec.template.spec.containers[0]".
	paths map[string]string
}

// maxPaths bounds the paths a scratch keeps for sharing; past it, a path
// is a string of its own, as it would be without sharing.
const maxPaths = 4096

var scratches = sync.Pool{New: func() any { return &scratch{paths: map[string]string{}} }}

func (s *scratch) release() {
	clear(s.pairs[:cap(s.pairs)]) // no node of this document stays reachable
	s.buf.Reset()
	s.path, s.lines, s.pairs = s.path[:0], s.lines[:0], s.pairs[:0]
	scratches.Put(s)
}

// NodeJSON renders a YAML node as JSON with the rules the loader uses.
func NodeJSON(n *yaml.Node) ([]byte, error) {
	s := &scratch{paths: map[string]string{}}
	w := jsonWriter{s: s, buf: &s.buf}
	if err := w.node(n); err != nil {
		return nil, err
	}
	return s.buf.Bytes(), nil
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "scalar value"
	default:
		return "non-mapping node"
	}
}

// valueAt returns the value of key in mapping n, or nil.
func valueAt(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return deref(n.Content[i+1])
		}
	}
	return nil
}

// scalarAt returns the scalar value of key in mapping n, or "". The value
// is a copy: the fast parser's values are slices of their document, which
// a kept name must not hold in memory.
func scalarAt(n *yaml.Node, key string) string {
	v := valueAt(n, key)
	if v == nil || v.Kind != yaml.ScalarNode || v.ShortTag() == "!!null" {
		return ""
	}
	return strings.Clone(v.Value)
}

// fieldNode finds the node of a dotted JSON field path, looking through
// list items; it is used only to put a line on a decoding error.
func fieldNode(n *yaml.Node, path []string) *yaml.Node {
	n = deref(n)
	if len(path) == 0 || n == nil {
		return n
	}
	switch n.Kind {
	case yaml.MappingNode:
		if v := valueAt(n, path[0]); v != nil {
			if f := fieldNode(v, path[1:]); f != nil {
				return f
			}
		}
	case yaml.SequenceNode:
		for _, it := range n.Content {
			if f := fieldNode(it, path); f != nil {
				return f
			}
		}
	}
	return nil
}

// keepPath says whether the line of a field path is worth recording: the
// object's top fields, and each container and its direct fields, which is
// where findings point.
func keepPath(p []byte) bool {
	// One pass from the end: the dots after the last containers field,
	// or in the whole path when it has none.
	dots := 0
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] != '.' {
			continue
		}
		if rest := p[i+1:]; bytes.HasPrefix(rest, containersField) || bytes.HasPrefix(rest, initContainersField) {
			return dots <= 2
		}
		dots++
	}
	return dots <= 3 && !bytes.HasPrefix(p, metadataPath) && !bytes.HasPrefix(p, statusPath)
}

var (
	containersField     = []byte("containers[")
	initContainersField = []byte("initContainers[")
	metadataPath        = []byte("metadata.")
	statusPath          = []byte("status")
)

// jsonWriter renders a YAML node tree as JSON with Kubernetes' YAML rules
// (keys are strings; merge keys are expanded; aliases are followed), and
// records the lines of the paths keepPath selects.
type jsonWriter struct {
	s       *scratch
	buf     *bytes.Buffer // s.buf
	lineOff int
	depth   int
	nodes   int
	errLine int
}

// maxDepth and maxNodes bound the work one object may cause, so that deep
// nesting or an alias bomb ("billion laughs") is an error, not a hang.
const (
	maxDepth = 200
	maxNodes = 1 << 20
)

func (w *jsonWriter) fail(n *yaml.Node, format string, args ...any) error {
	w.errLine = n.Line + w.lineOff
	return fmt.Errorf(format, args...)
}

// setLine records the line of the field at the current path.
func (w *jsonWriter) setLine(line int) {
	s := w.s
	p, ok := s.paths[string(s.path)]
	if !ok {
		p = string(s.path)
		if len(s.paths) < maxPaths {
			s.paths[p] = p
		}
	}
	s.lines = append(s.lines, pathLine{p, line})
}

// node writes n, the value at the path in w.s.path.
func (w *jsonWriter) node(n *yaml.Node) error {
	w.depth++
	defer func() { w.depth-- }()
	if w.depth > maxDepth {
		return w.fail(n, "nested more than %d levels deep", maxDepth)
	}
	if w.nodes++; w.nodes > maxNodes {
		return w.fail(n, "expands to more than %d values (aliases used recursively?)", maxNodes)
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			return w.fail(n, "alias to an unknown anchor")
		}
		return w.node(n.Alias)
	}
	switch n.Kind {
	case yaml.MappingNode:
		return w.mapping(n)
	case yaml.SequenceNode:
		w.buf.WriteByte('[')
		base := len(w.s.path)
		for i, it := range n.Content {
			if i > 0 {
				w.buf.WriteByte(',')
			}
			w.s.path = append(w.s.path, '[')
			w.s.path = strconv.AppendInt(w.s.path, int64(i), 10)
			w.s.path = append(w.s.path, ']')
			if base > 0 && keepPath(w.s.path) {
				w.setLine(it.Line + w.lineOff)
			}
			if err := w.node(it); err != nil {
				return err
			}
			w.s.path = w.s.path[:base]
		}
		w.buf.WriteByte(']')
		return nil
	case yaml.ScalarNode:
		return w.scalar(n)
	default:
		return w.fail(n, "unexpected YAML node")
	}
}

// mapPair is a key and its value after merge keys are expanded.
type mapPair struct{ key, value *yaml.Node }

func (w *jsonWriter) mapping(n *yaml.Node) error {
	// The entries go on the scratch's stack, above those of the mappings
	// this one is inside; a mapping inside this one stacks its own above
	// them (perhaps in a grown copy of the stack, leaving pairs as it is)
	// and takes them off again.
	top := len(w.s.pairs)
	stack, err := w.pairs(w.s.pairs, n, 0)
	if err != nil {
		return err
	}
	w.s.pairs = stack
	pairs := stack[top:]
	w.buf.WriteByte('{')
	base := len(w.s.path)
	for i, kv := range pairs {
		if i > 0 {
			w.buf.WriteByte(',')
		}
		appendString(w.buf, kv.key.Value)
		w.buf.WriteByte(':')
		if base > 0 {
			w.s.path = append(w.s.path, '.')
		}
		w.s.path = append(w.s.path, kv.key.Value...)
		if keepPath(w.s.path) {
			w.setLine(kv.key.Line + w.lineOff)
		}
		if err := w.node(kv.value); err != nil {
			return err
		}
		w.s.path = w.s.path[:base]
	}
	w.buf.WriteByte('}')
	w.s.pairs = w.s.pairs[:top]
	return nil
}

// pairs appends a mapping's entries to out in order, expanding "<<" merge
// keys (explicit keys win over merged ones) and refusing duplicate keys,
// which kubectl refuses too.
func (w *jsonWriter) pairs(out []mapPair, n *yaml.Node, depth int) ([]mapPair, error) {
	if depth > 20 {
		return nil, w.fail(n, "merge keys nested too deep")
	}
	top := len(out)
	var merged []mapPair
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), n.Content[i+1]
		if k == nil || k.Kind != yaml.ScalarNode {
			return nil, w.fail(n.Content[i], "mapping key is not a scalar")
		}
		if k.ShortTag() == "!!merge" {
			src := deref(v)
			var srcs []*yaml.Node
			switch {
			case src != nil && src.Kind == yaml.MappingNode:
				srcs = []*yaml.Node{src}
			case src != nil && src.Kind == yaml.SequenceNode:
				for _, s := range src.Content {
					srcs = append(srcs, deref(s))
				}
			}
			for _, s := range srcs {
				if s == nil || s.Kind != yaml.MappingNode {
					return nil, w.fail(k, "merge key << needs a mapping or a list of mappings")
				}
				ps, err := w.pairs(nil, s, depth+1)
				if err != nil {
					return nil, err
				}
				merged = append(merged, ps...)
			}
			continue
		}
		for _, prev := range out[top:] {
			if prev.key.Value == k.Value {
				return nil, w.fail(k, "duplicate key %q (first at line %d)", k.Value, prev.key.Line+w.lineOff)
			}
		}
		out = append(out, mapPair{k, v})
	}
outer:
	for _, m := range merged {
		for _, have := range out[top:] {
			if have.key.Value == m.key.Value {
				continue outer
			}
		}
		out = append(out, m)
	}
	return out, nil
}

func (w *jsonWriter) scalar(n *yaml.Node) error {
	switch n.ShortTag() {
	case "!!null":
		w.buf.WriteString("null")
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return w.fail(n, "invalid boolean %q", n.Value)
		}
		w.buf.WriteString(strconv.FormatBool(b))
	case "!!int":
		if isPlainInt(n.Value) {
			w.buf.WriteString(n.Value)
			return nil
		}
		var i int64
		if err := n.Decode(&i); err != nil {
			var u uint64
			if err2 := n.Decode(&u); err2 != nil {
				return w.fail(n, "invalid integer %q", n.Value)
			}
			w.buf.WriteString(strconv.FormatUint(u, 10))
			return nil
		}
		w.buf.WriteString(strconv.FormatInt(i, 10))
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil {
			return w.fail(n, "invalid number %q", n.Value)
		}
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return w.fail(n, "number %q cannot be represented in JSON", n.Value)
		}
		w.buf.WriteString(strconv.FormatFloat(f, 'g', -1, 64))
	default: // !!str, !!timestamp, !!binary and custom tags keep their text
		appendString(w.buf, n.Value)
	}
	return nil
}

func isPlainInt(s string) bool {
	s = strings.TrimPrefix(s, "-")
	if s == "" || len(s) > 18 || (len(s) > 1 && s[0] == '0') {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// appendString writes s as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendString(buf *bytes.Buffer, s string) {
	const hex = "0123456789abcdef"
	buf.WriteByte('"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				buf.WriteByte('\\')
				buf.WriteByte(c)
			case c < 0x20:
				buf.WriteString(`\u00`)
				buf.WriteByte(hex[c>>4])
				buf.WriteByte(hex[c&0xf])
			default:
				buf.WriteByte(c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf.WriteString(`\ufffd`)
		} else {
			buf.WriteString(s[i : i+size])
		}
		i += size
	}
	buf.WriteByte('"')
}
