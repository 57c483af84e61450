package fix

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	yaml "go.yaml.in/yaml/v3"

	"github.com/rollguard/rollguard/pkg/rules"
)

// editor edits the text of one YAML document in place: it finds nodes by
// the positions the parser reports and splices new text in, so that every
// byte it does not mean to change stays as it was.
type editor struct {
	src        []byte
	lineStarts []int
	nl         string // the document's line ending
	step       int    // the document's indentation step
}

func newEditor(src []byte, nl string, step int) *editor {
	e := &editor{src: src, nl: nl, step: step, lineStarts: []int{0}}
	for i, b := range src {
		if b == '\n' {
			e.lineStarts = append(e.lineStarts, i+1)
		}
	}
	return e
}

// lineText returns line l (1-based) without its line ending.
func (e *editor) lineText(l int) string {
	start := e.lineStarts[l-1]
	end := len(e.src)
	if l < len(e.lineStarts) {
		end = e.lineStarts[l]
	}
	return strings.TrimRight(string(e.src[start:end]), "\r\n")
}

func (e *editor) lines() int { return len(e.lineStarts) }

// lineEnd is the offset just past line l's line ending.
func (e *editor) lineEnd(l int) int {
	if l < len(e.lineStarts) {
		return e.lineStarts[l]
	}
	return len(e.src)
}

// offset converts a parser position (1-based line, 1-based column counted
// in characters) to a byte offset.
func (e *editor) offset(line, col int) (int, error) {
	if line < 1 || line > len(e.lineStarts) {
		return 0, fmt.Errorf("line %d out of range", line)
	}
	off := e.lineStarts[line-1]
	for i := 1; i < col; i++ {
		if off >= len(e.src) || e.src[off] == '\n' {
			return 0, fmt.Errorf("column %d out of range on line %d", col, line)
		}
		_, size := utf8.DecodeRune(e.src[off:])
		off += size
	}
	return off, nil
}

// blockEnd returns the offset just past the last content line of a block
// collection whose entries start at column indent (0-based) on startLine:
// the block ends before the first later line, not blank and not a comment,
// that is indented less (or, for a sequence, as much without a "-").
func (e *editor) blockEnd(startLine, indent int, seq bool) int {
	last := startLine
	for l := startLine + 1; l <= e.lines(); l++ {
		text := e.lineText(l)
		t := strings.TrimLeft(text, " ")
		if t == "" || t[0] == '#' {
			continue
		}
		lead := len(text) - len(t)
		if lead < indent || (seq && lead == indent && !strings.HasPrefix(t, "-")) {
			break
		}
		if lead == 0 && (strings.HasPrefix(t, "---") || strings.HasPrefix(t, "...")) {
			break
		}
		last = l
	}
	return e.lineEnd(last)
}

// matchClose returns the offset of the bracket that closes the flow
// collection opening at open, skipping quoted strings and comments.
func (e *editor) matchClose(open int) (int, error) {
	depth := 0
	for i := open; i < len(e.src); i++ {
		switch c := e.src[i]; c {
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i, nil
			}
		case '"':
			for i++; i < len(e.src) && e.src[i] != '"'; i++ {
				if e.src[i] == '\\' {
					i++
				}
			}
		case '\'':
			for i++; i < len(e.src); i++ {
				if e.src[i] == '\'' {
					if i+1 < len(e.src) && e.src[i+1] == '\'' {
						i++
						continue
					}
					break
				}
			}
		case '#':
			if i > 0 && (e.src[i-1] == ' ' || e.src[i-1] == '\t' || e.src[i-1] == '\n') {
				for i < len(e.src) && e.src[i] != '\n' {
					i++
				}
			}
		}
	}
	return 0, fmt.Errorf("unterminated flow collection")
}

// scalarEnd returns the end offset of the scalar token starting at start.
func (e *editor) scalarEnd(start int, n *yaml.Node, inFlow bool) (int, error) {
	switch {
	case n.Style&yaml.DoubleQuotedStyle != 0:
		for i := start + 1; i < len(e.src); i++ {
			switch e.src[i] {
			case '\\':
				i++
			case '"':
				return i + 1, nil
			}
		}
	case n.Style&yaml.SingleQuotedStyle != 0:
		for i := start + 1; i < len(e.src); i++ {
			if e.src[i] == '\'' {
				if i+1 < len(e.src) && e.src[i+1] == '\'' {
					i++
					continue
				}
				return i + 1, nil
			}
		}
	case n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0:
		return 0, fmt.Errorf("block scalars are not edited")
	default:
		end := start
		for end < len(e.src) && e.src[end] != '\n' && e.src[end] != '\r' {
			if e.src[end] == '#' && end > start && e.src[end-1] == ' ' {
				break
			}
			if inFlow && bytes.IndexByte([]byte(",]}"), e.src[end]) >= 0 {
				break
			}
			end++
		}
		for end > start && e.src[end-1] == ' ' {
			end--
		}
		if string(e.src[start:end]) != n.Value {
			return 0, fmt.Errorf("multi-line plain scalars are not edited")
		}
		return end, nil
	}
	return 0, fmt.Errorf("unterminated quoted scalar")
}

// splice returns the source with [start, end) replaced by text.
func (e *editor) splice(start, end int, text string) []byte {
	out := make([]byte, 0, len(e.src)+len(text))
	out = append(out, e.src[:start]...)
	out = append(out, text...)
	return append(out, e.src[end:]...)
}

// segment is one step of a field path: a key, or an index into a list.
type segment struct {
	key   string
	index int // -1 for a key
}

// parsePath splits "spec.template.spec.containers[0].lifecycle".
func parsePath(p string) ([]segment, error) {
	var segs []segment
	for _, part := range strings.Split(p, ".") {
		key, rest, _ := strings.Cut(part, "[")
		if key == "" {
			return nil, fmt.Errorf("path %q: empty key", p)
		}
		segs = append(segs, segment{key: key, index: -1})
		for rest != "" {
			num, after, ok := strings.Cut(rest, "]")
			i, err := strconv.Atoi(num)
			if !ok || err != nil || i < 0 {
				return nil, fmt.Errorf("path %q: bad index", p)
			}
			segs = append(segs, segment{index: i})
			rest = strings.TrimPrefix(after, "[")
		}
	}
	return segs, nil
}

// set edits the document so that path, below the object's mapping node,
// holds value. It returns the new document text.
func (e *editor) set(obj *yaml.Node, path string, value any) ([]byte, error) {
	segs, err := parsePath(path)
	if err != nil {
		return nil, err
	}
	cur := obj
	for i, s := range segs {
		if cur.Kind == yaml.AliasNode {
			return nil, fmt.Errorf("%s goes through a YAML alias; edit it by hand", path)
		}
		if s.index >= 0 {
			if cur.Kind != yaml.SequenceNode || s.index >= len(cur.Content) {
				return nil, fmt.Errorf("%s: no list item %d", path, s.index)
			}
			cur = cur.Content[s.index]
			continue
		}
		if cur.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("%s: %s is not a mapping", path, s.key)
		}
		k, v := lookup(cur, s.key)
		if k == nil {
			nested, err := nest(segs[i+1:], value)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			return e.insertKey(cur, s.key, nested)
		}
		if v.Kind == yaml.AliasNode {
			return nil, fmt.Errorf("%s goes through a YAML alias; edit it by hand", path)
		}
		if i == len(segs)-1 {
			return e.replace(cur, k, v, value)
		}
		if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null" {
			nested, err := nest(segs[i+1:], value)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			return e.replace(cur, k, v, nested)
		}
		cur = v
	}
	return nil, fmt.Errorf("%s: empty path", path)
}

func lookup(m *yaml.Node, key string) (k, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key && m.Content[i].ShortTag() != "!!merge" {
			return m.Content[i], m.Content[i+1]
		}
	}
	return nil, nil
}

// nest wraps value in the mappings that the remaining keys name.
func nest(rest []segment, value any) (any, error) {
	for j := len(rest) - 1; j >= 0; j-- {
		if rest[j].index >= 0 {
			return nil, fmt.Errorf("cannot create list item %d", rest[j].index)
		}
		value = rules.Map{{Key: rest[j].key, Value: value}}
	}
	return value, nil
}

func isFlow(n *yaml.Node) bool { return n.Style&yaml.FlowStyle != 0 }

// insertKey adds key: value at the end of mapping m.
func (e *editor) insertKey(m *yaml.Node, key string, value any) ([]byte, error) {
	if isFlow(m) || len(m.Content) == 0 {
		open, err := e.offset(m.Line, m.Column)
		if err != nil {
			return nil, err
		}
		if open >= len(e.src) || e.src[open] != '{' {
			return nil, fmt.Errorf("line %d: expected a flow mapping", m.Line)
		}
		closing, err := e.matchClose(open)
		if err != nil {
			return nil, err
		}
		at := closing
		for at > open+1 && e.src[at-1] == ' ' {
			at--
		}
		text := keyText(key) + ": " + flowText(value)
		if len(m.Content) > 0 {
			text = ", " + text
		}
		return e.splice(at, at, text), nil
	}
	first := m.Content[0]
	indent := first.Column - 1
	end := e.blockEnd(first.Line, indent, false)
	text := e.blockField(key, value, indent)
	if end > 0 && e.src[end-1] != '\n' {
		text = e.nl + text
	}
	return e.splice(end, end, text), nil
}

// replace sets the value v of key k (in mapping parent) to value.
func (e *editor) replace(parent, k, v *yaml.Node, value any) ([]byte, error) {
	_, valueIsCollection := value.(rules.Map)
	if _, ok := value.([]any); ok {
		valueIsCollection = true
	}
	inFlow := isFlow(parent)
	switch {
	case v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null" && v.Value == "":
		// "key:" with nothing after it.
		if inFlow {
			return nil, fmt.Errorf("line %d: empty value in a flow mapping", k.Line)
		}
		if !valueIsCollection {
			at, err := e.afterColon(k)
			if err != nil {
				return nil, err
			}
			return e.splice(at, at, " "+scalarText(value)), nil
		}
		return e.insertBelow(k, value), nil
	case v.Kind == yaml.ScalarNode:
		start, err := e.offset(v.Line, v.Column)
		if err != nil {
			return nil, err
		}
		end, err := e.scalarEnd(start, v, inFlow)
		if err != nil {
			return nil, err
		}
		switch {
		case !valueIsCollection:
			return e.splice(start, end, scalarText(value)), nil
		case inFlow:
			return e.splice(start, end, flowText(value)), nil
		default: // "key: null" becomes "key:" with a block below
			lineEnd := e.lineEnd(k.Line)
			at := start
			for at > 0 && e.src[at-1] == ' ' {
				at--
			}
			e2 := newEditor(e.splice(at, end, ""), e.nl, e.step)
			return e2.splice(lineEnd-(end-at), lineEnd-(end-at), e2.blockBody(value, k.Column-1+e.step)), nil
		}
	case isFlow(v):
		start, err := e.offset(v.Line, v.Column)
		if err != nil {
			return nil, err
		}
		closing, err := e.matchClose(start)
		if err != nil {
			return nil, err
		}
		return e.splice(start, closing+1, flowText(value)), nil
	case v.Kind == yaml.MappingNode || v.Kind == yaml.SequenceNode:
		if !valueIsCollection || len(v.Content) == 0 {
			return nil, fmt.Errorf("line %d: cannot replace a block collection with a scalar", v.Line)
		}
		line, indent := v.Content[0].Line, v.Content[0].Column-1
		seq := v.Kind == yaml.SequenceNode
		if seq {
			line, indent = v.Line, v.Column-1
		}
		if line == k.Line {
			return nil, fmt.Errorf("line %d: block value starts on its key's line", k.Line)
		}
		return e.splice(e.lineStarts[line-1], e.blockEnd(line, indent, seq), e.blockBody(value, indent)), nil
	}
	return nil, fmt.Errorf("line %d: cannot edit this value", v.Line)
}

// afterColon returns the offset just past the ':' that follows key k.
func (e *editor) afterColon(k *yaml.Node) (int, error) {
	start, err := e.offset(k.Line, k.Column)
	if err != nil {
		return 0, err
	}
	end, err := e.scalarEnd(start, k, false)
	if err != nil {
		return 0, err
	}
	for end < len(e.src) && e.src[end] == ' ' {
		end++
	}
	if end >= len(e.src) || e.src[end] != ':' {
		return 0, fmt.Errorf("line %d: no ':' after key", k.Line)
	}
	return end + 1, nil
}

// insertBelow writes a collection value on the lines after key k.
func (e *editor) insertBelow(k *yaml.Node, value any) []byte {
	at := e.lineEnd(k.Line)
	text := e.blockBody(value, k.Column-1+e.step)
	if at > 0 && e.src[at-1] != '\n' {
		text = e.nl + text
	}
	return e.splice(at, at, text)
}

// blockField renders "key: value" (or "key:" and a nested block) at indent.
func (e *editor) blockField(key string, value any, indent int) string {
	pad := strings.Repeat(" ", indent)
	if m, ok := value.(rules.Map); ok && len(m) > 0 {
		return pad + keyText(key) + ":" + e.nl + e.blockBody(m, indent+e.step)
	}
	return pad + keyText(key) + ": " + flowText(value) + e.nl
}

// blockBody renders a mapping's fields, or a list's items, at indent.
func (e *editor) blockBody(value any, indent int) string {
	var b strings.Builder
	switch v := value.(type) {
	case rules.Map:
		for _, f := range v {
			b.WriteString(e.blockField(f.Key, f.Value, indent))
		}
	case []any:
		for _, item := range v {
			b.WriteString(strings.Repeat(" ", indent) + "- " + flowText(item) + e.nl)
		}
	}
	return b.String()
}

// flowText renders a value on one line: {a: 1}, ["sleep", "5"], or a scalar.
func flowText(value any) string {
	switch v := value.(type) {
	case rules.Map:
		parts := make([]string, len(v))
		for i, f := range v {
			parts[i] = keyText(f.Key) + ": " + flowText(f.Value)
		}
		return "{" + strings.Join(parts, ", ") + "}"
	case []any:
		parts := make([]string, len(v))
		for i, item := range v {
			if s, ok := item.(string); ok {
				parts[i] = strconv.Quote(s)
			} else {
				parts[i] = flowText(item)
			}
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return scalarText(value)
}

func keyText(k string) string { return scalarText(k) }

// scalarText renders a scalar, quoting a string only when YAML would read
// it as something else.
func scalarText(value any) string {
	switch v := value.(type) {
	case string:
		if plainSafe(v) {
			return v
		}
		return strconv.Quote(v)
	case int:
		return strconv.Itoa(v)
	case int32:
		return strconv.FormatInt(int64(v), 10)
	case int64:
		return strconv.FormatInt(v, 10)
	case bool:
		return strconv.FormatBool(v)
	case nil:
		return "null"
	}
	return strconv.Quote(fmt.Sprint(value))
}

func plainSafe(s string) bool {
	if s == "" {
		return false
	}
	switch strings.ToLower(s) {
	case "true", "false", "yes", "no", "on", "off", "y", "n", "null", "~":
		return false
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return false
	}
	for i, c := range s {
		ok := c == '_' || c == '/' || c == '.' || c == '-' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
		if !ok || (i == 0 && (c == '-' || c == '.')) {
			return false
		}
	}
	return true
}
