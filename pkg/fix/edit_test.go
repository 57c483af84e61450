package fix

import (
	"strings"
	"testing"

	"github.com/rollguard/rollguard/pkg/rules"
)

// TestEdits pins the exact text each kind of edit produces: everything
// outside the edit stays byte for byte.
func TestEdits(t *testing.T) {
	t.Parallel()
	sleep5 := rules.M("sleep", rules.M("seconds", 5))
	for _, tc := range []struct {
		name, src, path string
		value           any
		want            string
	}{
		{
			name: "insert into a block mapping before the next list item, keeping comments",
			src: `kind: Deployment
spec:
  containers:
    - name: web   # the app
      image: web:1
      # a comment that ends the container
    - name: side
      image: side:1
`,
			path:  "spec.containers[0].lifecycle.preStop",
			value: sleep5,
			want: `kind: Deployment
spec:
  containers:
    - name: web   # the app
      image: web:1
      lifecycle:
        preStop:
          sleep:
            seconds: 5
      # a comment that ends the container
    - name: side
      image: side:1
`,
		},
		{
			name:  "insert into a flow mapping",
			src:   "kind: Pod\nspec:\n  containers:\n    - {name: web, image: 'web:1' }\n",
			path:  "spec.containers[0].lifecycle.preStop",
			value: sleep5,
			want:  "kind: Pod\nspec:\n  containers:\n    - {name: web, image: 'web:1', lifecycle: {preStop: {sleep: {seconds: 5}}} }\n",
		},
		{
			name:  "insert into an empty flow mapping",
			src:   "kind: Pod\nspec: {}\n",
			path:  "spec.terminationGracePeriodSeconds",
			value: 10,
			want:  "kind: Pod\nspec: {terminationGracePeriodSeconds: 10}\n",
		},
		{
			name:  "replace a plain scalar, keeping its comment",
			src:   "spec:\n  maxUnavailable: 1       # the only pod goes first\n  maxSurge: 0\n",
			path:  "spec.maxUnavailable",
			value: 0,
			want:  "spec:\n  maxUnavailable: 0       # the only pod goes first\n  maxSurge: 0\n",
		},
		{
			name:  "replace a quoted scalar",
			src:   "spec:\n  canary: {maxSurge: \"25%\", maxUnavailable: \"100%\"}\n",
			path:  "spec.canary.maxUnavailable",
			value: 1,
			want:  "spec:\n  canary: {maxSurge: \"25%\", maxUnavailable: 1}\n",
		},
		{
			name: "replace a block mapping value",
			src: `lifecycle:
  preStop:
    exec:
      command:
        - sh
        - -c
        - sleep 2
  postStart: {exec: {command: [warm]}}
`,
			path:  "lifecycle.preStop",
			value: sleep5,
			want: `lifecycle:
  preStop:
    sleep:
      seconds: 5
  postStart: {exec: {command: [warm]}}
`,
		},
		{
			name:  "replace a flow mapping value",
			src:   "lifecycle:\n  preStop: {exec: {command: [\"sh\", \"-c\", \"sleep 2\"]}}  # old\n",
			path:  "lifecycle.preStop",
			value: sleep5,
			want:  "lifecycle:\n  preStop: {sleep: {seconds: 5}}  # old\n",
		},
		{
			name:  "an empty value gets a block below its key",
			src:   "spec:\n  lifecycle:\n  image: x\n",
			path:  "spec.lifecycle.preStop",
			value: sleep5,
			want:  "spec:\n  lifecycle:\n    preStop:\n      sleep:\n        seconds: 5\n  image: x\n",
		},
		{
			name:  "an explicit null becomes a block",
			src:   "spec:\n  lifecycle: null # none yet\n  image: x\n",
			path:  "spec.lifecycle.preStop",
			value: sleep5,
			want:  "spec:\n  lifecycle: # none yet\n    preStop:\n      sleep:\n        seconds: 5\n  image: x\n",
		},
		{
			name:  "four-space indentation and CRLF line endings are kept",
			src:   "spec:\r\n    containers:\r\n        -   name: web\r\n            image: web:1\r\n",
			path:  "spec.containers[0].readinessProbe",
			value: rules.M("tcpSocket", rules.M("port", "http")),
			want:  "spec:\r\n    containers:\r\n        -   name: web\r\n            image: web:1\r\n            readinessProbe:\r\n                tcpSocket:\r\n                    port: http\r\n",
		},
		{
			name:  "a file without a final newline",
			src:   "spec:\n  replicas: 2",
			path:  "spec.minReadySeconds",
			value: 5,
			want:  "spec:\n  replicas: 2\n  minReadySeconds: 5\n",
		},
		{
			name:  "a list value in a block is written in flow style",
			src:   "lifecycle:\n  preStop:\n    exec:\n      command: [\"sh\", \"-c\", \"nginx -s quit\"]\n",
			path:  "lifecycle.preStop.exec.command",
			value: []any{"sh", "-c", "sleep 5; nginx -s quit"},
			want:  "lifecycle:\n  preStop:\n    exec:\n      command: [\"sh\", \"-c\", \"sleep 5; nginx -s quit\"]\n",
		},
		{
			name:  "a block sequence is replaced item by item",
			src:   "exec:\n  command:\n  - sh\n  - -c\n  - nginx -s quit\nafter: 1\n",
			path:  "exec.command",
			value: []any{"sh", "-c", "sleep 5; nginx -s quit"},
			want:  "exec:\n  command:\n  - sh\n  - \"-c\"\n  - \"sleep 5; nginx -s quit\"\nafter: 1\n",
		},
		{
			name:  "unicode before the edit on the same line",
			src:   "metadata: {name: café, labels: {tier: 'é'}}\n",
			path:  "metadata.labels.team",
			value: "shop",
			want:  "metadata: {name: café, labels: {tier: 'é', team: shop}}\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			nl := "\n"
			if strings.Contains(tc.src, "\r\n") {
				nl = "\r\n"
			}
			got, err := applyRemedy([]byte(tc.src), 1, []rules.Op{{Path: tc.path, Value: tc.value}}, nl)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

func TestEditsRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, src, path, want string }{
		{"through an alias", "base: &b {replicas: 1}\nspec: *b\n", "spec.minReadySeconds", "alias"},
		{"into a block scalar", "spec:\n  x: |\n    text\n", "spec.x", "block scalars"},
		{"a missing list item", "spec:\n  containers: []\n", "spec.containers[0].image", "no list item 0"},
		{"a scalar that is not a mapping", "spec: 3\n", "spec.replicas", "not a mapping"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := applyRemedy([]byte(tc.src), 1, []rules.Op{{Path: tc.path, Value: 2}}, "\n")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error about %q", err, tc.want)
			}
		})
	}
}

func TestSameExceptOpCatchesCollateralChanges(t *testing.T) {
	t.Parallel()
	before := []byte(`{"spec":{"a":1,"b":2}}`)
	if err := sameExceptOp(before, []byte(`{"spec":{"a":1,"b":2,"c":3}}`), rules.Op{Path: "spec.c", Value: 3}); err != nil {
		t.Errorf("the intended change was refused: %v", err)
	}
	if err := sameExceptOp(before, []byte(`{"spec":{"a":9,"b":2,"c":3}}`), rules.Op{Path: "spec.c", Value: 3}); err == nil {
		t.Error("a change to another field went unnoticed")
	}
}
