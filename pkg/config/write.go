package config

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"

	"github.com/rollguard/rollguard/pkg/rules"
)

// SetPropagationBudget returns a configuration file's text with its
// propagationBudget set to d, everything else kept byte for byte: the
// value is replaced where it stands, or a line is added at the end. With
// empty data it returns a new file. note, when not empty, becomes a
// comment on that line. The result is parsed strictly before it is
// returned, so a file that did not load, or would not, is an error.
func SetPropagationBudget(data []byte, d time.Duration, note string, reg *rules.Registry) ([]byte, error) {
	if d <= 0 {
		return nil, fmt.Errorf("propagationBudget %s: want more than 0", d)
	}
	value := d.String()
	comment := ""
	if note != "" {
		comment = "  # " + strings.ReplaceAll(note, "\n", " ")
	}
	var out []byte
	if len(bytes.TrimSpace(data)) == 0 {
		out = fmt.Appendf(nil, "apiVersion: %s\nkind: %s\npropagationBudget: %s%s\n", APIVersion, Kind, value, comment)
	} else {
		if _, err := Parse(data, reg); err != nil {
			return nil, fmt.Errorf("the file as it is: %w", err)
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(data, &doc); err != nil {
			return nil, err
		}
		root := &doc
		if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
			root = root.Content[0]
		}
		if root.Kind != yaml.MappingNode {
			return nil, errors.New("the file is not a mapping of settings")
		}
		if root.Style&yaml.FlowStyle != 0 {
			return nil, errors.New("the file is a flow mapping ({...}): write it as one setting per line to let rollguard edit it")
		}
		var val *yaml.Node
		for i := 0; i+1 < len(root.Content); i += 2 {
			if root.Content[i].Value == "propagationBudget" {
				val = root.Content[i+1]
			}
		}
		if val == nil {
			out = append([]byte{}, data...)
			if !bytes.HasSuffix(out, []byte("\n")) {
				out = append(out, '\n')
			}
			out = fmt.Appendf(out, "propagationBudget: %s%s\n", value, comment)
		} else {
			var err error
			if out, err = replaceScalar(data, val, value); err != nil {
				return nil, err
			}
		}
	}
	cfg, err := Parse(out, reg)
	if err != nil {
		return nil, fmt.Errorf("the edited file does not load (%w); it was not written", err)
	}
	if cfg.PropagationBudget != d {
		return nil, fmt.Errorf("the edited file holds propagationBudget %s, not %s; it was not written", cfg.PropagationBudget, d)
	}
	return out, nil
}

// replaceScalar replaces the text of a one-line scalar node (plain,
// single- or double-quoted) with a plain value.
func replaceScalar(data []byte, n *yaml.Node, value string) ([]byte, error) {
	if n.Kind != yaml.ScalarNode || n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return nil, fmt.Errorf("line %d: propagationBudget is not a one-line value", n.Line)
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	if n.Line < 1 || n.Line > len(lines) {
		return nil, fmt.Errorf("line %d: out of the file", n.Line)
	}
	line := lines[n.Line-1]
	// Column counts characters; the line before the value is the key
	// and spaces, ASCII in any file that loaded as settings.
	start := n.Column - 1
	if start < 0 || start > len(line) {
		return nil, fmt.Errorf("line %d: column %d: out of the line", n.Line, n.Column)
	}
	end := start + len(n.Value)
	switch {
	case n.Style&yaml.DoubleQuotedStyle != 0:
		end = start + 1 + bytes.IndexByte(line[start+1:], '"') + 1
	case n.Style&yaml.SingleQuotedStyle != 0:
		end = start + 1 + bytes.IndexByte(line[start+1:], '\'') + 1
	}
	if end <= start || end > len(line) {
		return nil, fmt.Errorf("line %d: propagationBudget's value does not end on its line", n.Line)
	}
	var out bytes.Buffer
	for i, l := range lines {
		if i == n.Line-1 {
			out.Write(line[:start])
			out.WriteString(value)
			out.Write(line[end:])
			continue
		}
		out.Write(l)
	}
	return out.Bytes(), nil
}
