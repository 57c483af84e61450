package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Op is one change a remediation makes: the field at Path (in the form
// findings use, "spec.template.spec.containers[0].lifecycle.preStop") is set
// to Value, creating the mappings on the way. `rollguard fix` turns ops into
// text edits that keep the rest of a file as it was.
type Op struct {
	Path  string
	Value any // int, int64, string, bool, Map or []any
}

// Map is a mapping whose keys keep their order when written out.
type Map []Field

// Field is one key of a Map.
type Field struct {
	Key   string
	Value any
}

// M builds a Map from alternating keys and values: M("sleep", M("seconds", 5)).
func M(kv ...any) Map {
	m := make(Map, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		m = append(m, Field{Key: kv[i].(string), Value: kv[i+1]})
	}
	return m
}

// FixOptions tune remediations.
type FixOptions struct {
	Settings
	// KubeMinor is the oldest Kubernetes 1.x minor version the manifests
	// must run on; 0 means a current one. Below 30 there is no native
	// preStop sleep action.
	KubeMinor int
	// PrependSleep lets a preStop hook that does other work get a sleep in
	// front of that work instead of staying unfixed.
	PrependSleep bool
}

// NativeSleep reports whether the target version has the native preStop
// sleep action (beta and on by default in 1.30, GA in 1.34).
func (o FixOptions) NativeSleep() bool { return o.KubeMinor == 0 || o.KubeMinor >= 30 }

// Remedy is what a rule proposes for one finding: ops to apply, or the
// reason there is no safe automatic fix.
type Remedy struct {
	Ops []Op
	// Note explains a choice the fix made, or a condition it depends on.
	Note string
	// Unfixable, when set, says why this finding is left for a person.
	Unfixable string
}

func unfixable(format string, args ...any) Remedy {
	return Remedy{Unfixable: fmt.Sprintf(format, args...)}
}

// toMap turns a Kubernetes API value into a Map in the API's field order,
// by way of its JSON form.
func toMap(v any) (Map, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	val, err := orderedValue(dec)
	if err != nil {
		return nil, err
	}
	m, ok := val.(Map)
	if !ok {
		return nil, fmt.Errorf("%T is not an object", v)
	}
	return m, nil
}

func orderedValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			m := Map{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				v, err := orderedValue(dec)
				if err != nil {
					return nil, err
				}
				m = append(m, Field{Key: k.(string), Value: v})
			}
			_, err := dec.Token()
			return m, err
		case '[':
			var list []any
			for dec.More() {
				v, err := orderedValue(dec)
				if err != nil {
					return nil, err
				}
				list = append(list, v)
			}
			_, err := dec.Token()
			return list, err
		}
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i, nil
		}
		return t.String(), nil
	}
	return tok, nil
}
