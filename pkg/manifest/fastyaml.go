package manifest

import (
	"bytes"
	"strconv"
	"sync"
	"unicode/utf8"
	"unsafe"

	yaml "go.yaml.in/yaml/v3"
)

// fastParse builds the node tree yaml.Unmarshal would build for one
// document, for the block-style YAML that tools and people write for
// Kubernetes: block mappings and sequences (indentless ones too), plain
// and one-line quoted scalars, literal block scalars and one-line flow
// collections. It reports false for anything else (anchors, aliases, tags,
// folded or multi-line scalars, multi-line flow collections, tabs, CR line
// ends, directives, explicit keys, and every malformed input), and the
// caller then parses the document with yaml.v3, which gives the same tree
// or the exact error. So the fast path decides nothing on its own: it is
// a cheaper way to the same tree, and FuzzFastParse holds it to yaml.v3's.
//
// yaml.v3 spends most of an audit's time allocating tokens and events; this
// parser allocates the nodes in blocks and takes scalar values as substrings
// of the document, which makes a document about seven times cheaper.
//
// The tree's nodes come from the parser's arena, reused by the next
// document: the caller calls release once it is done with the tree, and
// keeps no node (nor a node's Content) after that. Values are slices of a
// copy of data, which the tree does not share with other documents; or,
// when the caller says data is fixed (never written to, even after the
// tree is released), of data itself. Nothing keeps a value without
// copying it (scalarAt, the JSON writer and the line map copy), so the
// copy only guards against a value that escapes by mistake and a caller
// that reuses its buffer; the loader's files are never reused, and an
// escaped value would only keep its file in memory.
func fastParse(data []byte, fixed bool) (root *yaml.Node, release func(), ok bool) {
	if bytes.IndexByte(data, '\t') >= 0 || bytes.IndexByte(data, '\r') >= 0 ||
		bytes.HasPrefix(data, []byte("\xef\xbb\xbf")) {
		return nil, nil, false
	}
	p := parsers.Get().(*fastParser)
	if fixed && len(data) > 0 {
		p.src = unsafe.String(&data[0], len(data)) // a 20k-object audit copied 8 MB here
	} else {
		p.src = string(data)
	}
	if !p.splitLines() {
		p.release()
		return nil, nil, false
	}
	first := p.nextContent(0)
	if first < 0 {
		p.release()
		return &yaml.Node{}, func() {}, true // only comments or blank lines
	}
	doc := p.newNode(yaml.DocumentNode, "", first, p.lines[first].indent)
	top, ok := p.block(first, -1)
	if !ok || p.nextContent(p.next) >= 0 {
		p.release()
		return nil, nil, false
	}
	doc.Content = p.one(top)
	return doc, p.release, true
}

type fastLine struct {
	start, end int // the line's bytes in src, without its line break
	indent     int // leading spaces
	content    bool
	ascii      bool
	lastBreak  bool // the line ends with a line break
}

type fastParser struct {
	src   string
	lines []fastLine
	next  int // the first line not yet consumed
	arena *arena
	stack []*yaml.Node // children of the collections being parsed
	depth int
}

// parsers keeps parsers for their line and stack buffers; the nodes they
// made belong to the trees they returned.
var parsers = sync.Pool{New: func() any { return &fastParser{arena: &arena{}} }}

func (p *fastParser) release() {
	p.arena.reset()
	*p = fastParser{lines: p.lines[:0], stack: p.stack[:0], arena: p.arena}
	parsers.Put(p)
}

// arena hands out the nodes and Content slices of one document's tree in
// blocks, and takes them all back at once: an audit of 20,000 objects
// builds about 850,000 nodes, and allocating each tree anew cost more than
// parsing it (fresh memory is zeroed and faulted in).
type arena struct {
	nodes  [][]yaml.Node
	nb, ni int // the block in use, the next free node in it
	ptrs   [][]*yaml.Node
	pb, pi int
}

const (
	arenaNodes = 512
	arenaPtrs  = 1024
)

func (a *arena) node() *yaml.Node {
	if a.nb < len(a.nodes) && a.ni == arenaNodes {
		a.nb, a.ni = a.nb+1, 0
	}
	if a.nb == len(a.nodes) {
		a.nodes = append(a.nodes, make([]yaml.Node, arenaNodes))
	}
	n := &a.nodes[a.nb][a.ni]
	a.ni++
	return n
}

func (a *arena) slice(n int) []*yaml.Node {
	if n > arenaPtrs {
		return make([]*yaml.Node, n)
	}
	if a.pb < len(a.ptrs) && a.pi+n > arenaPtrs {
		a.pb, a.pi = a.pb+1, 0
	}
	if a.pb == len(a.ptrs) {
		a.ptrs = append(a.ptrs, make([]*yaml.Node, arenaPtrs))
	}
	c := a.ptrs[a.pb][a.pi : a.pi+n : a.pi+n]
	a.pi += n
	return c
}

// reset clears what was handed out, so that no value of the last tree
// stays reachable, and makes it free again.
func (a *arena) reset() {
	for b := 0; b <= a.nb && b < len(a.nodes); b++ {
		end := arenaNodes
		if b == a.nb {
			end = a.ni
		}
		clear(a.nodes[b][:end])
	}
	for b := 0; b <= a.pb && b < len(a.ptrs); b++ {
		end := arenaPtrs
		if b == a.pb {
			end = a.pi
		}
		clear(a.ptrs[b][:end])
	}
	a.nb, a.ni, a.pb, a.pi = 0, 0, 0, 0
}

// maxFastDepth bounds the parser's recursion; deeper documents go to
// yaml.v3, which has its own limit.
const maxFastDepth = 64

func (p *fastParser) splitLines() bool {
	s := p.src
	for pos := 0; pos < len(s); {
		end := len(s)
		brk := false
		if i := indexByte(s[pos:], '\n'); i >= 0 {
			end, brk = pos+i, true
		}
		l := fastLine{start: pos, end: end, lastBreak: brk, ascii: true}
		for l.indent < end-pos && s[pos+l.indent] == ' ' {
			l.indent++
		}
		rest := s[pos+l.indent : end]
		l.content = rest != "" && rest[0] != '#'
		for i := 0; i < len(rest); i++ {
			if c := rest[i]; c >= utf8.RuneSelf {
				l.ascii = false
			} else if c < 0x20 || c == 0x7f {
				return false // control characters: yaml.v3 refuses them
			}
		}
		if !l.ascii && !printable(rest) {
			return false
		}
		if l.indent == 0 && (hasPrefix(rest, "---") || hasPrefix(rest, "...") || hasPrefix(rest, "%")) {
			return false // document markers and directives: yaml.v3 reads them
		}
		p.lines = append(p.lines, l)
		if !brk {
			break
		}
		pos = end + 1
	}
	return true
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

func hasPrefix(s, prefix string) bool { return len(s) >= len(prefix) && s[:len(prefix)] == prefix }

// nextContent returns the first line at or after i that holds more than
// blanks and a comment, or -1.
func (p *fastParser) nextContent(i int) int {
	for ; i < len(p.lines); i++ {
		if p.lines[i].content {
			return i
		}
	}
	return -1
}

// text is line li from byte offset off (relative to the line's start).
func (p *fastParser) text(li, off int) string {
	l := p.lines[li]
	return p.src[l.start+off : l.end]
}

// column is the 1-based column yaml.v3 reports for byte offset off of line
// li: it counts characters, not bytes.
func (p *fastParser) column(li, off int) int {
	l := p.lines[li]
	if l.ascii {
		return off + 1
	}
	return utf8.RuneCountInString(p.src[l.start:l.start+off]) + 1
}

func (p *fastParser) newNode(kind yaml.Kind, value string, li, off int) *yaml.Node {
	n := p.arena.node()
	n.Kind, n.Value, n.Line, n.Column = kind, value, li+1, p.column(li, off)
	switch kind {
	case yaml.MappingNode:
		n.Tag = "!!map"
	case yaml.SequenceNode:
		n.Tag = "!!seq"
	}
	return n
}

// one is a Content slice of one node.
func (p *fastParser) one(n *yaml.Node) []*yaml.Node {
	c := p.arena.slice(1)
	c[0] = n
	return c
}

// children moves the nodes stacked since base into the Content slice of
// the collection that ends.
func (p *fastParser) children(base int) []*yaml.Node {
	n := len(p.stack) - base
	if n == 0 {
		return nil
	}
	c := p.arena.slice(n)
	copy(c, p.stack[base:])
	p.stack = p.stack[:base]
	return c
}

// scalar makes a scalar node with yaml.v3's tag: a plain scalar's is
// resolved from its text ("<<" is a merge key), the others are strings.
func (p *fastParser) scalar(value string, style yaml.Style, li, off int) *yaml.Node {
	n := p.newNode(yaml.ScalarNode, value, li, off)
	n.Style = style
	switch {
	case style != 0:
		n.Tag = "!!str"
	case value == "<<":
		n.Tag = "!!merge"
	case value != "" && !resolvable[value[0]]:
		n.Tag = "!!str" // what yaml.v3's resolution gives without looking further
	case isPlainInt(value) && value[0] != '-':
		n.Tag = "!!int" // "8080": what strconv.ParseInt, yaml.v3's first try after timestamps, reads
	case value != "" && value[0] >= '0' && value[0] <= '9' && !numberish(value):
		n.Tag = "!!str" // "128Mi", "100m": yaml.v3 tries to read them as numbers, fails, and says !!str
	default:
		n.Tag = n.ShortTag() // yaml.v3's own resolution of an untagged plain scalar
	}
	return n
}

// numberish reports whether s holds only bytes that yaml.v3 may read as
// part of a number or a timestamp: digits, signs, points, colons,
// underscores, blanks, the hex digits and base prefixes (0x, 0o, 0b),
// exponents, and a timestamp's T, t and Z. A plain scalar that starts with
// a digit and holds any other byte is a string, which saves yaml.v3's
// failed attempts (each allocating an error) to read it otherwise.
func numberish(s string) bool {
	for i := 0; i < len(s); i++ {
		if !numberBytes[s[i]] {
			return false
		}
	}
	return true
}

var numberBytes = func() (t [256]bool) {
	for _, c := range "0123456789abcdefABCDEFxXoOeEtTzZ+-.:_ " {
		t[c] = true
	}
	return t
}()

// resolvable holds the first characters of a plain scalar that yaml.v3
// may resolve to something other than a string: a sign, a digit, a dot,
// and the first letters of true, false, null and ~.
var resolvable = func() (t [256]bool) {
	for _, c := range "+-.0123456789yYnNtTfFoO~" {
		t[c] = true
	}
	return t
}()

// restEmpty reports whether s holds only blanks and an optional comment.
func restEmpty(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ':
		case '#':
			return true
		default:
			return false
		}
	}
	return true
}

// afterToken reports whether what follows a token is blanks and an
// optional comment, which must be separated from the token by a blank.
func afterToken(s string) bool {
	if s == "" {
		return true
	}
	return s[0] == ' ' && restEmpty(s)
}

// isItem reports whether a line's content is a block sequence entry.
func isItem(s string) bool { return s == "-" || hasPrefix(s, "- ") }

// block parses the block node whose first line is li (a content line) and
// which must be indented more than parent.
func (p *fastParser) block(li, parent int) (*yaml.Node, bool) {
	l := p.lines[li]
	if l.indent <= parent {
		return nil, false
	}
	if isItem(p.text(li, l.indent)) {
		return p.sequence(li, l.indent)
	}
	if _, _, ok := p.key(li, l.indent); !ok {
		return nil, false // a scalar on a line of its own: multi-line, or not an object
	}
	return p.mapping(li, l.indent)
}

func (p *fastParser) enter() bool {
	p.depth++
	return p.depth <= maxFastDepth
}

// mapping parses a block mapping whose first key starts at byte offset
// indent of line li; later keys start lines at that indent.
func (p *fastParser) mapping(li, indent int) (*yaml.Node, bool) {
	if !p.enter() {
		return nil, false
	}
	defer func() { p.depth-- }()
	m := p.newNode(yaml.MappingNode, "", li, indent)
	base := len(p.stack)
	for {
		k, after, ok := p.key(li, indent)
		if !ok {
			return nil, false
		}
		v, ok := p.value(li, after, indent, true)
		if !ok {
			return nil, false
		}
		p.stack = append(p.stack, k, v)
		nl := p.nextContent(p.next)
		if nl < 0 || p.lines[nl].indent < indent {
			break
		}
		if p.lines[nl].indent > indent || isItem(p.text(nl, indent)) {
			return nil, false
		}
		li = nl
	}
	m.Content = p.children(base)
	return m, true
}

// sequence parses a block sequence whose entries start lines at indent.
func (p *fastParser) sequence(li, indent int) (*yaml.Node, bool) {
	if !p.enter() {
		return nil, false
	}
	defer func() { p.depth-- }()
	s := p.newNode(yaml.SequenceNode, "", li, indent)
	base := len(p.stack)
	for {
		v, ok := p.value(li, indent+1, indent, false)
		if !ok {
			return nil, false
		}
		p.stack = append(p.stack, v)
		nl := p.nextContent(p.next)
		if nl < 0 || p.lines[nl].indent < indent {
			break
		}
		if p.lines[nl].indent > indent {
			return nil, false
		}
		if !isItem(p.text(nl, indent)) {
			break // the next key of the mapping this indentless sequence is the value of
		}
		li = nl
	}
	s.Content = p.children(base)
	return s, true
}

// value parses the value that starts at byte offset off of line li, after
// a key's colon (inMapping) or a sequence entry's dash; indent is the
// collection's. An empty rest of line means the value is on the lines
// below, or null. It leaves p.next at the first line after the value.
func (p *fastParser) value(li, off, indent int, inMapping bool) (*yaml.Node, bool) {
	for t := p.text(li, off); t != "" && t[0] == ' '; t = t[1:] {
		off++
	}
	rest := p.text(li, off)
	if restEmpty(rest) {
		p.next = li + 1
		nl := p.nextContent(li + 1)
		switch {
		case nl >= 0 && p.lines[nl].indent > indent:
			return p.block(nl, indent)
		case nl >= 0 && inMapping && p.lines[nl].indent == indent && isItem(p.text(nl, indent)):
			return p.sequence(nl, indent) // an indentless sequence
		}
		// Null, placed where yaml.v3 puts it: just after the indicator.
		end := off
		for end > 0 && p.src[p.lines[li].start+end-1] == ' ' {
			end--
		}
		return p.scalar("", 0, li, end), true // resolves to !!null
	}
	switch c := rest[0]; c {
	case '{', '[':
		n, end, ok := p.flow(li, off, 0)
		if !ok || !afterToken(p.text(li, end)) {
			return nil, false
		}
		p.next = li + 1
		return n, true
	case '|':
		return p.literal(li, off, indent)
	case '"', '\'':
		if _, _, isKey := p.key(li, off); isKey {
			if inMapping {
				return nil, false
			}
			return p.mapping(li, off) // "- "key": value"
		}
		n, end, ok := p.quoted(li, off)
		if !ok || !afterToken(p.text(li, end)) {
			return nil, false
		}
		p.next = li + 1
		return n, true
	}
	if !plainStart(rest) {
		return nil, false
	}
	if _, _, isKey := p.key(li, off); isKey {
		if inMapping {
			return nil, false // "a: b: c"
		}
		return p.mapping(li, off) // a mapping in a sequence entry: "- name: web"
	}
	v, ok := plainValue(rest)
	if !ok {
		return nil, false
	}
	p.next = li + 1
	return p.scalar(v, 0, li, off), true
}

// plainStart reports whether s may start a plain scalar where the fast
// path reads one: not an indicator, except a dash followed by more than a
// blank or a flow indicator ("-1", "--flag").
func plainStart(s string) bool {
	switch s[0] {
	case '?', ':', ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`', ' ':
		return false
	case '-':
		return len(s) > 1 && !isFlowIndicator(s[1]) && s[1] != ' '
	}
	return true
}

func isFlowIndicator(c byte) bool {
	return c == ',' || c == '[' || c == ']' || c == '{' || c == '}'
}

// plainValue reads a one-line plain scalar in block context: up to a
// comment or the end of the line, without trailing blanks. A colon
// followed by a blank would make it a key, which the caller ruled out.
func plainValue(rest string) (string, bool) {
	end := len(rest)
	for i := 1; i < len(rest); i++ {
		if rest[i] == '#' && rest[i-1] == ' ' {
			end = i
			break
		}
	}
	v := rest[:end]
	for v != "" && v[len(v)-1] == ' ' {
		v = v[:len(v)-1]
	}
	for i := 0; i < len(v); i++ {
		if v[i] == ':' && (i+1 == len(v) || v[i+1] == ' ') {
			return "", false
		}
	}
	return v, v != ""
}

// key reads the implicit key at byte offset off of line li: a plain or
// one-line quoted scalar followed by a colon and a blank or the line's end.
// It returns the key's node and the offset just after the colon.
func (p *fastParser) key(li, off int) (*yaml.Node, int, bool) {
	t := p.text(li, off)
	if t == "" {
		return nil, 0, false
	}
	if t[0] == '"' || t[0] == '\'' {
		n, end, ok := p.quoted(li, off)
		if !ok {
			return nil, 0, false
		}
		e := end
		for r := p.text(li, e); r != "" && r[0] == ' '; r = r[1:] {
			e++
		}
		r := p.text(li, e)
		if r == "" || r[0] != ':' || (len(r) > 1 && r[1] != ' ') {
			return nil, 0, false
		}
		return n, e + 1, true
	}
	if !plainStart(t) {
		return nil, 0, false
	}
	for i := 1; i < len(t); i++ {
		switch {
		case t[i] == '#' && t[i-1] == ' ':
			return nil, 0, false
		case t[i] == ':' && (i+1 == len(t) || t[i+1] == ' '):
			k := t[:i]
			for k[len(k)-1] == ' ' {
				k = k[:len(k)-1]
			}
			if len(k) > 1000 {
				return nil, 0, false // yaml.v3 limits implicit keys to 1024 characters
			}
			return p.scalar(k, 0, li, off), off + i + 1, true
		}
	}
	return nil, 0, false
}

// quoted reads a quoted scalar that ends on its own line, returning the
// node and the offset after the closing quote.
func (p *fastParser) quoted(li, off int) (*yaml.Node, int, bool) {
	t := p.text(li, off)
	q := t[0]
	var b []byte // the value, once it differs from the text
	for i := 1; i < len(t); i++ {
		c := t[i]
		switch {
		case c == q && q == '\'' && i+1 < len(t) && t[i+1] == '\'':
			if b == nil {
				b = append([]byte{}, t[1:i]...)
			}
			b = append(b, '\'')
			i++
		case c == q:
			v := t[1:i]
			if b != nil {
				v = string(b)
			}
			style := yaml.SingleQuotedStyle
			if q == '"' {
				style = yaml.DoubleQuotedStyle
			}
			return p.scalar(v, style, li, off), off + i + 1, true
		case c == '\\' && q == '"':
			if b == nil {
				b = append([]byte{}, t[1:i]...)
			}
			var n int
			var ok bool
			if b, n, ok = unescape(b, t[i+1:]); !ok {
				return nil, 0, false
			}
			i += n
		default:
			if b != nil {
				b = append(b, c)
			}
		}
	}
	return nil, 0, false // the scalar goes on to the next line
}

// simpleEscapes are yaml.v3's one-character escapes of double-quoted
// scalars (JSON's "\/" is not one of them).
var simpleEscapes = map[byte]string{'0': "\x00", 'a': "\a", 'b': "\b", 't': "\t", 'n': "\n", 'v': "\v",
	'f': "\f", 'r': "\r", 'e': "\x1b", ' ': " ", '"': "\"", '\'': "'", '\\': "\\",
	'N': "\u0085", '_': "\u00a0", 'L': "\u2028", 'P': "\u2029"}

// printable reports whether s is valid UTF-8 of the characters YAML
// allows in a stream.
func printable(s string) bool {
	for _, r := range s {
		switch {
		case r == utf8.RuneError:
			return false // invalid UTF-8 (a literal U+FFFD is refused too, rarely)
		case r < 0x80:
		case r == 0x85, r >= 0xA0 && r <= 0xD7FF, r >= 0xE000 && r <= 0xFFFD, r >= 0x10000 && r <= 0x10FFFF:
		default:
			return false
		}
	}
	return true
}

// unescape appends the character of the escape sequence at the start of s
// (after its backslash) to b, with yaml.v3's escapes, and returns how many
// bytes of s it used.
func unescape(b []byte, s string) ([]byte, int, bool) {
	if s == "" {
		return nil, 0, false
	}
	if r, ok := simpleEscapes[s[0]]; ok {
		return append(b, r...), 1, true
	}
	digits := 0
	switch s[0] {
	case 'x':
		digits = 2
	case 'u':
		digits = 4
	case 'U':
		digits = 8
	}
	if digits == 0 || len(s) < 1+digits {
		return nil, 0, false
	}
	v, err := strconv.ParseUint(s[1:1+digits], 16, 32)
	if err != nil || (v >= 0xD800 && v <= 0xDFFF) || v > 0x10FFFF {
		return nil, 0, false
	}
	return utf8.AppendRune(b, rune(v)), 1 + digits, true
}

// literal reads a literal block scalar ("|", "|-", "|+") whose header is
// at byte offset off of line li, in a collection at indent.
func (p *fastParser) literal(li, off, indent int) (*yaml.Node, bool) {
	h := p.text(li, off)
	chomp := byte(0)
	i := 1
	if i < len(h) && (h[i] == '-' || h[i] == '+') {
		chomp = h[i]
		i++
	}
	if !afterToken(h[i:]) {
		return nil, false // an indentation indicator, or more after the header
	}
	// The first line with more than blanks sets the content's indent;
	// blank lines before it, or none at all, go to yaml.v3.
	j := li + 1
	if j >= len(p.lines) {
		return nil, false
	}
	ci := p.lines[j].indent
	if p.lines[j].start+ci == p.lines[j].end || ci <= indent {
		return nil, false
	}
	var b []byte
	trailing := 0 // line breaks of empty lines after the last content line
	for ; j < len(p.lines); j++ {
		l := p.lines[j]
		raw := p.src[l.start:l.end]
		blank := l.start+l.indent == l.end
		if !blank && l.indent < ci {
			break
		}
		if blank && len(raw) <= ci {
			if l.lastBreak {
				trailing++
			}
			continue
		}
		for ; trailing > 0; trailing-- {
			b = append(b, '\n')
		}
		b = append(b, raw[ci:]...)
		if l.lastBreak {
			trailing = 1
		}
	}
	switch chomp {
	case '-':
	case '+':
		for ; trailing > 0; trailing-- {
			b = append(b, '\n')
		}
	default:
		if trailing > 0 {
			b = append(b, '\n')
		}
	}
	p.next = j
	return p.scalar(string(b), yaml.LiteralStyle, li, off), true
}

// flow reads a flow mapping or sequence that closes on its own line; it
// returns the node and the offset after the closing bracket.
func (p *fastParser) flow(li, off, depth int) (*yaml.Node, int, bool) {
	if depth > maxFastDepth {
		return nil, 0, false
	}
	t := p.text(li, 0)
	open := t[off]
	kind, closing := yaml.SequenceNode, byte(']')
	if open == '{' {
		kind, closing = yaml.MappingNode, '}'
	}
	n := p.newNode(kind, "", li, off)
	n.Style = yaml.FlowStyle
	base := len(p.stack)
	i := skipSpaces(t, off+1)
	if i < len(t) && t[i] == closing {
		return n, i + 1, true
	}
	for {
		if kind == yaml.MappingNode {
			k, end, ok := p.flowScalar(li, i, true)
			if !ok {
				return nil, 0, false
			}
			if end >= len(t) || t[end] != ':' || end+1 >= len(t) || t[end+1] != ' ' {
				return nil, 0, false
			}
			p.stack = append(p.stack, k)
			i = skipSpaces(t, end+1)
		}
		if i >= len(t) {
			return nil, 0, false
		}
		var v *yaml.Node
		var end int
		var ok bool
		if t[i] == '{' || t[i] == '[' {
			v, end, ok = p.flow(li, i, depth+1)
		} else {
			v, end, ok = p.flowScalar(li, i, false)
		}
		if !ok {
			return nil, 0, false
		}
		p.stack = append(p.stack, v)
		i = skipSpaces(t, end)
		if i >= len(t) {
			return nil, 0, false
		}
		if t[i] == closing {
			n.Content = p.children(base)
			return n, i + 1, true
		}
		if t[i] != ',' {
			return nil, 0, false
		}
		i = skipSpaces(t, i+1)
		if i >= len(t) || t[i] == closing {
			return nil, 0, false // a trailing comma, or more on the next line
		}
	}
}

func skipSpaces(t string, i int) int {
	for i < len(t) && t[i] == ' ' {
		i++
	}
	return i
}

// flowScalar reads a scalar inside a flow collection at offset i of line
// li (offsets from the line's start), returning it and the offset after
// it, before any blanks. A plain key ends at its colon; a plain value at a
// comma or closing bracket.
func (p *fastParser) flowScalar(li, i int, isKey bool) (*yaml.Node, int, bool) {
	t := p.text(li, 0)
	if i >= len(t) {
		return nil, 0, false
	}
	if t[i] == '"' || t[i] == '\'' {
		return p.quoted(li, i)
	}
	if !plainStart(t[i:]) {
		return nil, 0, false
	}
	j := i
	for ; j < len(t); j++ {
		c := t[j]
		if c == ',' || c == ']' || c == '}' {
			break
		}
		if c == ':' {
			if !isKey || j+1 >= len(t) || t[j+1] != ' ' {
				return nil, 0, false
			}
			break
		}
		if c == '?' || c == '[' || c == '{' || c == '#' {
			return nil, 0, false
		}
	}
	end := j
	for end > i && t[end-1] == ' ' {
		end--
	}
	if end == i {
		return nil, 0, false
	}
	return p.scalar(t[i:end], 0, li, i), end, true
}
