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

// blockBoundary returns the first line (1-based) after a block collection
// whose entries start at column indent (0-based) on startLine: the first
// later line, not blank and not a comment, that is indented less (or, for a
// sequence, as much without a "-"), or one past the last line.
func (e *editor) blockBoundary(startLine, indent int, seq bool) int {
	for l := startLine + 1; l <= e.lines(); l++ {
		text := e.lineText(l)
		t := strings.TrimLeft(text, " ")
		if t == "" || t[0] == '#' {
			continue
		}
		lead := len(text) - len(t)
		if lead < indent || (seq && lead == indent && !strings.HasPrefix(t, "-")) {
			return l
		}
		if lead == 0 && (strings.HasPrefix(t, "---") || strings.HasPrefix(t, "...")) {
			return l
		}
	}
	return e.lines() + 1
}

// blockEnd returns the offset just past the last content line of a block
// collection whose entries start at column indent on startLine.
func (e *editor) blockEnd(startLine, indent int, seq bool) int {
	return e.lineEnd(e.lastLineBefore(e.blockBoundary(startLine, indent, seq), startLine, -1))
}

// lastLineBefore walks back from the line before boundary, no further than
// floor, over blank lines and over comment lines indented at most
// keyIndent (all comment lines when keyIndent is -1), and returns the line
// it stops at. A comment indented at a key's level introduces what follows
// it, so new text goes before it; a comment indented deeper belongs to the
// value above it, so new text goes after it.
func (e *editor) lastLineBefore(boundary, floor, keyIndent int) int {
	l := boundary - 1
	for ; l > floor; l-- {
		text := e.lineText(l)
		t := strings.TrimLeft(text, " ")
		if t == "" {
			continue
		}
		if t[0] == '#' && (keyIndent < 0 || len(text)-len(t) <= keyIndent) {
			continue
		}
		break
	}
	return l
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
	_, kindNode := lookup(obj, "kind")
	kind := ""
	if kindNode != nil {
		kind = kindNode.Value
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
			if i == len(segs)-1 {
				return e.replaceItem(cur, s.index, value)
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
			return e.insertKey(cur, fieldRanks(kind, segs[:i]), s.key, nested)
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

// insertKey adds key: value to mapping m, where placement puts it in the
// reading order (see order.go), or at the end.
func (e *editor) insertKey(m *yaml.Node, order map[string]int, key string, value any) ([]byte, error) {
	after, before := placement(m, key, order)
	if isFlow(m) || len(m.Content) == 0 {
		return e.insertFlow(m, key, value, after, before)
	}
	first := m.Content[0]
	indent := first.Column - 1
	at := -1
	switch {
	case after != nil:
		at = e.entryEnd(m, after)
	case before != nil:
		at = e.entryStart(before)
	}
	if at < 0 {
		// At the end: after the mapping's last content line, and before
		// a comment at its keys' level that ends it.
		at = e.lineEnd(e.lastLineBefore(e.blockBoundary(first.Line, indent, false), first.Line, indent))
	}
	text := e.blockField(key, value, indent)
	if at > 0 && e.src[at-1] != '\n' {
		text = e.nl + text
	}
	return e.splice(at, at, text), nil
}

// entryEnd returns the offset just past the entry of key k in block
// mapping m: its value's last line, before the blank lines and comments
// that lead into the next key.
func (e *editor) entryEnd(m, k *yaml.Node) int {
	indent := k.Column - 1
	boundary := -1
	for i := 0; i+2 < len(m.Content); i += 2 {
		if m.Content[i] == k {
			boundary = m.Content[i+2].Line
		}
	}
	if boundary < 0 { // k is the last key: the mapping's end
		boundary = e.blockBoundary(m.Content[0].Line, m.Content[0].Column-1, false)
	}
	return e.lineEnd(e.lastLineBefore(boundary, k.Line, indent))
}

// entryStart returns the offset of the start of key k's line, above the
// comments right over it, which are about it; -1 when k does not start its
// line (the first key of a "- " list item).
func (e *editor) entryStart(k *yaml.Node) int {
	text := e.lineText(k.Line)
	indent := len(text) - len(strings.TrimLeft(text, " "))
	if indent != k.Column-1 {
		return -1
	}
	l := k.Line
	for l > 1 {
		above := e.lineText(l - 1)
		t := strings.TrimLeft(above, " ")
		if t == "" || t[0] != '#' || len(above)-len(t) > indent {
			break
		}
		l--
	}
	return e.lineStarts[l-1]
}

// insertFlow adds key: value to flow mapping m, after the value of key
// after, before key before, or before the closing brace.
func (e *editor) insertFlow(m *yaml.Node, key string, value any, after, before *yaml.Node) ([]byte, error) {
	field := keyText(key) + ": " + flowText(value)
	if after != nil {
		if end, ok := e.flowValueEnd(m, after); ok {
			return e.splice(end, end, ", "+field), nil
		}
	}
	if before != nil {
		if start, err := e.offset(before.Line, before.Column); err == nil && bytes.HasPrefix(e.src[start:], []byte(before.Value)) {
			return e.splice(start, start, field+", "), nil
		}
	}
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
	if len(m.Content) > 0 {
		field = ", " + field
	}
	return e.splice(at, at, field), nil
}

// flowValueEnd returns the offset just past the value of key k in flow
// mapping m, and false when its text is not where the parser says (a tag
// or an anchor in front of it, an alias, an empty value).
func (e *editor) flowValueEnd(m, k *yaml.Node) (int, bool) {
	var v *yaml.Node
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i] == k {
			v = m.Content[i+1]
		}
	}
	if v == nil || v.Anchor != "" {
		return 0, false
	}
	start, err := e.offset(v.Line, v.Column)
	if err != nil || start >= len(e.src) {
		return 0, false
	}
	switch v.Kind {
	case yaml.ScalarNode:
		if v.Value == "" && v.Style == 0 {
			return 0, false
		}
		if q := e.src[start]; (v.Style&yaml.DoubleQuotedStyle != 0 && q != '"') || (v.Style&yaml.SingleQuotedStyle != 0 && q != '\'') {
			return 0, false
		}
		end, err := e.scalarEnd(start, v, true)
		return end, err == nil
	case yaml.MappingNode, yaml.SequenceNode:
		if c := e.src[start]; c != '{' && c != '[' {
			return 0, false
		}
		closing, err := e.matchClose(start)
		return closing + 1, err == nil
	}
	return 0, false
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
			return e.splice(start, end, e.scalarLike(value, v, mapContext(inFlow))), nil
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
	case v.Kind == yaml.SequenceNode && isList(value):
		return e.replaceList(k, v, value.([]any))
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

func isList(v any) bool {
	_, ok := v.([]any)
	return ok
}

// replaceList sets sequence v (the value of key k) to list, keeping the
// sequence's style: a flow list stays flow, a block list stays block, and
// each item is written in the quoting style of the item it replaces. When
// the lengths match, only the items that change are rewritten, so the
// spacing, comments and untouched items stay byte for byte (this is what
// --prepend-sleep does to a hook's command).
func (e *editor) replaceList(k, v *yaml.Node, list []any) ([]byte, error) {
	flow := isFlow(v)
	ctx := blockSeqContext
	if flow {
		ctx = flowSeqContext
	}
	if len(list) == len(v.Content) && scalarItems(v.Content, list) {
		changed := map[int]any{}
		for i, item := range v.Content {
			if !sameScalar(item, list[i]) {
				changed[i] = list[i]
			}
		}
		return e.setItems(v, changed)
	}
	// A different length: write the whole list, each item styled like the
	// original item at its index (or the last one).
	like := func(i int) *yaml.Node {
		if len(v.Content) == 0 {
			return nil
		}
		return v.Content[min(i, len(v.Content)-1)]
	}
	if flow {
		start, err := e.offset(v.Line, v.Column)
		if err != nil {
			return nil, err
		}
		closing, err := e.matchClose(start)
		if err != nil {
			return nil, err
		}
		parts := make([]string, len(list))
		for i, item := range list {
			parts[i] = e.itemText(item, like(i), ctx)
		}
		return e.splice(start, closing+1, "["+strings.Join(parts, ", ")+"]"), nil
	}
	if v.Line == k.Line {
		return nil, fmt.Errorf("line %d: block value starts on its key's line", k.Line)
	}
	indent := v.Column - 1
	var b strings.Builder
	for i, item := range list {
		b.WriteString(strings.Repeat(" ", indent) + "- " + e.itemText(item, like(i), ctx) + e.nl)
	}
	return e.splice(e.lineStarts[v.Line-1], e.blockEnd(v.Line, indent, true), b.String()), nil
}

// replaceItem sets item i of sequence seq, a scalar, to a scalar value in
// the item's own style, leaving the rest of the list as it was.
func (e *editor) replaceItem(seq *yaml.Node, i int, value any) ([]byte, error) {
	item := seq.Content[i]
	if item.Kind != yaml.ScalarNode || item.Anchor != "" || !scalarItems([]*yaml.Node{item}, []any{value}) {
		return nil, fmt.Errorf("line %d: list item %d is not a plain value to replace", item.Line, i)
	}
	return e.setItems(seq, map[int]any{i: value})
}

// setItems rewrites the scalar items of seq at the given indexes, each in
// the quoting style it has, and leaves every other byte of the list alone.
func (e *editor) setItems(seq *yaml.Node, items map[int]any) ([]byte, error) {
	ctx := blockSeqContext
	if isFlow(seq) {
		ctx = flowSeqContext
	}
	out := e.src
	for i := len(seq.Content) - 1; i >= 0; i-- { // from the last, so earlier offsets hold
		value, ok := items[i]
		if !ok {
			continue
		}
		item := seq.Content[i]
		start, err := e.offset(item.Line, item.Column)
		if err != nil {
			return nil, err
		}
		end, err := e.scalarEnd(start, item, ctx == flowSeqContext)
		if err != nil {
			return nil, err
		}
		text := e.scalarLike(value, item, ctx)
		out = append(append(append([]byte{}, out[:start]...), text...), out[end:]...)
	}
	return out, nil
}

// itemText renders a list item like the original item orig, or as a new
// list's item when there is none.
func (e *editor) itemText(item any, orig *yaml.Node, ctx plainContext) string {
	if _, ok := item.(string); ok && orig != nil && orig.Kind == yaml.ScalarNode {
		return e.scalarLike(item, orig, ctx)
	}
	if ctx == flowSeqContext {
		return flowItemText(item)
	}
	return flowText(item)
}

// scalarItems reports whether a list of scalars is replaced by one.
func scalarItems(nodes []*yaml.Node, list []any) bool {
	for i, n := range nodes {
		if n.Kind != yaml.ScalarNode || n.Anchor != "" {
			return false
		}
		switch list[i].(type) {
		case rules.Map, []any:
			return false
		}
	}
	return true
}

// sameScalar reports whether node n already holds value.
func sameScalar(n *yaml.Node, value any) bool {
	if s, ok := value.(string); ok {
		return n.ShortTag() == "!!str" && n.Value == s
	}
	return n.ShortTag() != "!!str" && n.Value == scalarText(value)
}

// plainContext is where a scalar is written, which decides what a plain
// scalar may contain.
type plainContext int

const (
	blockMapContext plainContext = iota
	blockSeqContext
	flowMapContext
	flowSeqContext
)

func mapContext(flow bool) plainContext {
	if flow {
		return flowMapContext
	}
	return blockMapContext
}

// scalarLike renders value in the style of the scalar orig it replaces: a
// string keeps orig's quotes (double, single, or none where the text can
// be read plain in ctx); anything else, and a string replacing a non-string,
// is written as a new scalar.
func (e *editor) scalarLike(value any, orig *yaml.Node, ctx plainContext) string {
	s, ok := value.(string)
	if !ok || orig.ShortTag() != "!!str" {
		return scalarText(value)
	}
	switch {
	case orig.Style&yaml.SingleQuotedStyle != 0:
		if singleQuotable(s) {
			return "'" + strings.ReplaceAll(s, "'", "''") + "'"
		}
	case orig.Style&(yaml.DoubleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0:
	default:
		if plainReads(s, ctx) {
			return s
		}
	}
	return strconv.Quote(s)
}

// singleQuotable reports whether s can be single-quoted on one line: a
// single-quoted scalar has no escapes, so only printable characters fit.
func singleQuotable(s string) bool {
	for _, r := range s {
		if !strconv.IsPrint(r) {
			return false
		}
	}
	return true
}

// plainReads reports whether s, written plain in ctx, reads back as the
// same string: the YAML parser decides, so every rule of plain scalars
// (indicators, ": " and " #", flow punctuation, strings that would read as
// numbers, booleans or null) is applied as the parser applies it.
func plainReads(s string, ctx plainContext) bool {
	if s == "" || strings.TrimSpace(s) != s || strings.ContainsAny(s, "\r\n\t") {
		return false
	}
	doc := map[plainContext]string{
		blockMapContext: "k: " + s + "\n",
		blockSeqContext: "- " + s + "\n",
		flowMapContext:  "{k: " + s + "}\n",
		flowSeqContext:  "[" + s + "]\n",
	}[ctx]
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(doc), &root); err != nil || len(root.Content) != 1 {
		return false
	}
	c := root.Content[0]
	var n *yaml.Node
	switch {
	case c.Kind == yaml.MappingNode && len(c.Content) == 2:
		n = c.Content[1]
	case c.Kind == yaml.SequenceNode && len(c.Content) == 1:
		n = c.Content[0]
	default:
		return false
	}
	return n.Kind == yaml.ScalarNode && n.Style == 0 && n.ShortTag() == "!!str" && n.Value == s
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
			parts[i] = flowItemText(item)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return scalarText(value)
}

// flowItemText renders an item of a new flow list: strings double-quoted,
// as command lists are usually written (["sleep", "5"]).
func flowItemText(item any) string {
	if s, ok := item.(string); ok {
		return strconv.Quote(s)
	}
	return flowText(item)
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
